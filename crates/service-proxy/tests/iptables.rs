//! The iptables data path on the real kernel, with both backends of Debian's
//! iptables (`iptables-nft` and `iptables-legacy`), inside a network namespace each
//! test makes: endpoints are TCP and UDP listeners on addresses of a veth pair whose
//! both ends live in that namespace. Connections to cluster IPs, node ports and
//! load-balancer addresses must reach them, follow endpoint changes applied as
//! partial restores, and be refused when a Service has no endpoint; other
//! programs' rules stay while upstream kube-proxy's leftovers go; a restore that
//! fails because the rules changed behind the proxy's back is followed by a full
//! one; cleanup leaves no chain of ours.

mod common;

use std::net::Ipv4Addr;
use std::process::Command;
use std::time::Duration;

use common::{answers, ask, ask_udp, dns, ep, serve, serve_udp, source_ranges_hold, web, Netns};
use service_proxy::conntrack::Conntrack;
use service_proxy::iptables::{Iptables, Rules, SyncKind};
use service_proxy::model::{stale_udp_flows, Networks, ServicePort};

/// `tool-save` output for the nat and filter tables.
fn save(tool: &str) -> String {
    let out = Command::new(format!("{tool}-save")).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap()
}

fn run(tool: &str, args: &str) {
    let args: Vec<&str> = args.split(' ').collect();
    let st = Command::new(tool).args(&args).status().unwrap();
    assert!(st.success(), "{tool} {args:?}");
}

fn data_path(tool: &str, role: &str) {
    let _ns = Netns::enter(&format!("ipt-{role}"));
    serve(Ipv4Addr::new(10, 42, 0, 5), "five");
    serve(Ipv4Addr::new(10, 42, 0, 6), "six");
    // Another program's rules, which the proxy must leave alone.
    run(tool, "-t nat -N OTHER");
    run(tool, "-t nat -A OTHER -s 198.51.100.1/32 -j RETURN");
    run(tool, "-A INPUT -s 198.51.100.2/32 -j ACCEPT");
    // What upstream's proxy leaves on a node: a filter KUBE-NODEPORTS jumped to
    // from INPUT, and an old local-policy chain jumping to an endpoint chain.
    run(tool, "-N KUBE-NODEPORTS");
    run(
        tool,
        "-A INPUT -m comment --comment upstream -j KUBE-NODEPORTS",
    );
    run(tool, "-t nat -N KUBE-SEP-OLDOLDOLDOLDOLDO");
    run(tool, "-t nat -N KUBE-XLB-OLDOLDOLDOLDOLDO");
    run(
        tool,
        "-t nat -A KUBE-XLB-OLDOLDOLDOLDOLDO -j KUBE-SEP-OLDOLDOLDOLDOLDO",
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let nets = Networks {
        cluster_cidr: Some("10.42.0.0/16".parse().unwrap()),
        service_cidr: Some("10.43.0.0/16".parse().unwrap()),
        all: false,
    };
    let mut ipt = Iptables::new(tool);
    let sync = |ipt: &mut Iptables, ports: &[ServicePort]| {
        rt.block_on(ipt.sync(Rules::build(ports, &nets))).unwrap()
    };

    // Both endpoints answer, through the cluster IP, the node port and the
    // load-balancer address.
    assert_eq!(sync(&mut ipt, &[web(vec![ep(5), ep(6)])]), SyncKind::Full);
    let both: std::collections::BTreeSet<String> = ["five".to_string(), "six".to_string()].into();
    assert_eq!(answers("10.43.0.10:80", 40), both);
    assert_eq!(answers("10.42.0.5:30080", 40), both);
    assert_eq!(answers("192.0.2.50:80", 40), both);
    let saved = save(tool);
    assert!(
        !saved.contains("OLDOLD") && !saved.contains("upstream"),
        "{saved}"
    );
    // Upstream's chain names, e.g. KUBE-SVC-<16 base32 characters>.
    assert!(
        saved.contains("-A KUBE-SERVICES -d 10.43.0.10/32 -p tcp -m comment --comment \"default/web:http cluster IP\" -m tcp --dport 80 -j KUBE-SVC-"),
        "{saved}"
    );
    assert_eq!(saved.matches("-j KUBE-SERVICES").count(), 4, "{saved}");

    // One endpoint goes: a partial restore, and only the other answers.
    assert_eq!(sync(&mut ipt, &[web(vec![ep(6)])]), SyncKind::Partial);
    assert_eq!(answers("10.43.0.10:80", 20), ["six".to_string()].into());
    assert_eq!(sync(&mut ipt, &[web(vec![ep(6)])]), SyncKind::Unchanged);
    assert_eq!(save(tool).matches(":KUBE-SEP-").count(), 1);

    // Session affinity pins this client to one endpoint.
    let mut pinned = web(vec![ep(5), ep(6)]);
    pinned.affinity_timeout = Some(30);
    assert_eq!(sync(&mut ipt, &[pinned]), SyncKind::Partial);
    assert_eq!(answers("10.43.0.10:80", 20).len(), 1);

    // Source ranges on the load-balancer address: only clients in them get
    // through; the cluster IP and the node port stay open to everyone.
    let mut limited = web(vec![ep(5), ep(6)]);
    limited.source_ranges = vec!["10.42.0.6/32".parse().unwrap()];
    assert_eq!(sync(&mut ipt, &[limited]), SyncKind::Partial);
    source_ranges_hold();

    // No endpoint: refused at once, on every address.
    assert_eq!(sync(&mut ipt, &[web(vec![])]), SyncKind::Partial);
    for addr in ["10.43.0.10:80", "10.42.0.5:30080", "192.0.2.50:80"] {
        assert_eq!(
            ask(addr),
            Err(std::io::ErrorKind::ConnectionRefused),
            "{addr}"
        );
    }

    // Endpoints back, after the rules were changed behind the proxy's back: the
    // partial restore fails, and the next sync rewrites everything.
    run(tool, "-F KUBE-SERVICES");
    let ports = [web(vec![ep(5)])];
    assert!(rt.block_on(ipt.sync(Rules::build(&ports, &nets))).is_err());
    assert_eq!(sync(&mut ipt, &ports), SyncKind::Full);
    assert_eq!(answers("10.43.0.10:80", 10), ["five".to_string()].into());

    // The Service goes: its chains and rules go with it.
    assert_eq!(sync(&mut ipt, &[]), SyncKind::Partial);
    let saved = save(tool);
    assert!(!saved.contains("default/web"), "{saved}");
    assert!(
        !saved.contains("KUBE-SVC-") && !saved.contains("KUBE-SEP-"),
        "{saved}"
    );

    // A new proxy (a restart) takes over what is there; cleanup removes it all.
    let mut again = Iptables::new(tool);
    assert_eq!(sync(&mut again, &[web(vec![ep(6)])]), SyncKind::Full);
    assert_eq!(answers("10.43.0.10:80", 10), ["six".to_string()].into());
    assert_eq!(save(tool).matches("-j KUBE-SERVICES").count(), 4);
    rt.block_on(again.cleanup()).unwrap();
    let saved = save(tool);
    assert!(!saved.contains("KUBE-"), "{saved}");
    assert!(
        saved.contains("-A OTHER -s 198.51.100.1/32 -j RETURN"),
        "{saved}"
    );
    assert!(
        saved.contains("-A INPUT -s 198.51.100.2/32 -j ACCEPT"),
        "{saved}"
    );
}

/// With `iptables` (Debian's default, the nf_tables backend).
#[test]
fn nft_backend_reaches_endpoints() {
    data_path("iptables", "nft");
}

/// With `iptables-legacy` (the x_tables backend).
#[test]
fn legacy_backend_reaches_endpoints() {
    data_path("iptables-legacy", "legacy");
}

/// A UDP flow keeps its endpoint while the conntrack entry lives: after the
/// endpoint leaves the Service, the same client socket still reaches it until the
/// stale entry is deleted, then reaches the new endpoint.
#[test]
fn udp_flows_follow_endpoints_once_stale_entries_go() {
    let _ns = Netns::enter("ipt-udp");
    serve_udp(Ipv4Addr::new(10, 42, 0, 5), "five");
    serve_udp(Ipv4Addr::new(10, 42, 0, 6), "six");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let nets = Networks::default();
    let mut ipt = Iptables::new("iptables");
    let client = std::net::UdpSocket::bind("10.42.0.5:40000").unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();

    let before = [dns(&[5])];
    rt.block_on(ipt.sync(Rules::build(&before, &nets))).unwrap();
    assert_eq!(ask_udp(&client), "five");
    let after = [dns(&[6])];
    rt.block_on(ipt.sync(Rules::build(&after, &nets))).unwrap();
    assert_eq!(
        ask_udp(&client),
        "five",
        "the flow's entry still leads to five"
    );

    let stale = stale_udp_flows(&before, &after);
    rt.block_on(Conntrack::new("conntrack").clear(&stale));
    assert_eq!(ask_udp(&client), "six");
    rt.block_on(ipt.cleanup()).unwrap();
}
