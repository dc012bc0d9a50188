//! The nftables data path on the real kernel, inside a network namespace each test
//! makes: endpoints are TCP and UDP listeners on addresses of a veth pair whose both
//! ends live in that namespace. Connections to cluster IPs, node ports and
//! load-balancer addresses must reach them, follow endpoint changes applied as
//! partial transactions, and be refused when a Service has no endpoint or a cluster
//! IP lacks the port; UDP flows move to a new endpoint once the stale conntrack
//! entries are deleted.

mod common;

use std::net::Ipv4Addr;
use std::process::Command;
use std::time::Duration;

use common::{answers, ask, ask_udp, dns, ep, serve, serve_udp, source_ranges_hold, web, Netns};
use service_proxy::conntrack::Conntrack;
use service_proxy::model::{stale_udp_flows, ServicePort};
use service_proxy::nftables::{Networks, Nftables, Ruleset, SyncKind, TABLE};

#[test]
fn cluster_ips_and_node_ports_reach_endpoints() {
    let _ns = Netns::enter("dp");
    serve(Ipv4Addr::new(10, 42, 0, 5), "five");
    serve(Ipv4Addr::new(10, 42, 0, 6), "six");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let masq = Networks {
        cluster_cidr: Some("10.42.0.0/16".parse().unwrap()),
        service_cidr: Some("10.43.0.0/16".parse().unwrap()),
        all: false,
    };
    let mut nft = Nftables::new("nft", masq.clone());
    let sync = |nft: &mut Nftables, ports: &[ServicePort]| {
        rt.block_on(nft.sync(Ruleset::build(ports, &masq))).unwrap()
    };

    // Both endpoints answer, through the cluster IP, the node port and the
    // load-balancer address.
    assert_eq!(sync(&mut nft, &[web(vec![ep(5), ep(6)])]), SyncKind::Full);
    let both: std::collections::BTreeSet<String> = ["five".to_string(), "six".to_string()].into();
    assert_eq!(answers("10.43.0.10:80", 40), both);
    assert_eq!(answers("10.42.0.5:30080", 40), both);
    assert_eq!(answers("192.0.2.50:80", 40), both);
    // A port the cluster IP does not serve is refused, not sent on; an address
    // of the Service range no Service holds is dropped (the connection times out).
    assert_eq!(
        ask("10.43.0.10:81"),
        Err(std::io::ErrorKind::ConnectionRefused)
    );
    assert_eq!(ask("10.43.0.99:80"), Err(std::io::ErrorKind::TimedOut));

    // One endpoint goes: a partial transaction, and only the other answers.
    assert_eq!(sync(&mut nft, &[web(vec![ep(6)])]), SyncKind::Partial);
    assert_eq!(answers("10.43.0.10:80", 20), ["six".to_string()].into());
    assert_eq!(sync(&mut nft, &[web(vec![ep(6)])]), SyncKind::Unchanged);

    // Session affinity pins this client to one endpoint.
    let mut pinned = web(vec![ep(5), ep(6)]);
    pinned.affinity_timeout = Some(30);
    assert_eq!(sync(&mut nft, &[pinned]), SyncKind::Partial);
    assert_eq!(answers("10.43.0.10:80", 20).len(), 1);

    // Source ranges on the load-balancer address: only clients in them get
    // through; the cluster IP and the node port stay open to everyone.
    let mut limited = web(vec![ep(5), ep(6)]);
    limited.source_ranges = vec!["10.42.0.6/32".parse().unwrap()];
    assert_eq!(sync(&mut nft, &[limited]), SyncKind::Partial);
    source_ranges_hold();

    // No endpoint: refused at once, on both addresses.
    assert_eq!(sync(&mut nft, &[web(vec![])]), SyncKind::Partial);
    assert_eq!(
        ask("10.43.0.10:80"),
        Err(std::io::ErrorKind::ConnectionRefused)
    );
    assert_eq!(
        ask("10.42.0.5:30080"),
        Err(std::io::ErrorKind::ConnectionRefused)
    );
    assert_eq!(
        ask("192.0.2.50:80"),
        Err(std::io::ErrorKind::ConnectionRefused)
    );

    // Endpoints back, after the table was changed behind the proxy's back: a
    // failed partial transaction makes the next sync rewrite the whole table.
    assert!(Command::new("nft")
        .args(["delete", "table", "ip", TABLE])
        .status()
        .unwrap()
        .success());
    let ports = [web(vec![ep(5)])];
    assert!(rt
        .block_on(nft.sync(Ruleset::build(&ports, &masq)))
        .is_err());
    assert_eq!(sync(&mut nft, &ports), SyncKind::Full);
    assert_eq!(answers("10.43.0.10:80", 10), ["five".to_string()].into());

    // The service goes: its chains and elements go with it.
    assert_eq!(sync(&mut nft, &[]), SyncKind::Partial);
    let listing = Command::new("nft")
        .args(["list", "table", "ip", TABLE])
        .output()
        .unwrap();
    let listing = String::from_utf8(listing.stdout).unwrap();
    assert!(!listing.contains("default/web"), "{listing}");
    assert!(!listing.contains("10.43.0.10"), "{listing}");
    rt.block_on(nft.cleanup()).unwrap();
}

/// A UDP flow keeps its endpoint while the conntrack entry lives: after the
/// endpoint leaves the Service, the same client socket still reaches it until the
/// stale entry is deleted, then reaches the new endpoint.
#[test]
fn udp_flows_follow_endpoints_once_stale_entries_go() {
    let _ns = Netns::enter("udp");
    serve_udp(Ipv4Addr::new(10, 42, 0, 5), "five");
    serve_udp(Ipv4Addr::new(10, 42, 0, 6), "six");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let nets = Networks::default();
    let mut nft = Nftables::new("nft", nets.clone());
    let client = std::net::UdpSocket::bind("10.42.0.5:40000").unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();

    let before = [dns(&[5])];
    rt.block_on(nft.sync(Ruleset::build(&before, &nets)))
        .unwrap();
    assert_eq!(ask_udp(&client), "five");
    let after = [dns(&[6])];
    rt.block_on(nft.sync(Ruleset::build(&after, &nets)))
        .unwrap();
    assert_eq!(
        ask_udp(&client),
        "five",
        "the flow's entry still leads to five"
    );

    let stale = stale_udp_flows(&before, &after);
    rt.block_on(Conntrack::new("conntrack").clear(&stale));
    assert_eq!(ask_udp(&client), "six");
    rt.block_on(nft.cleanup()).unwrap();
}
