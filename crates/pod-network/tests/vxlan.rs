//! The VXLAN overlay between two test hosts, each a network namespace this test
//! creates (joined by a veth pair on 192.0.2.0/24, with a bridge and a pod of its
//! own): pods on different hosts reach each other by their own addresses, the host
//! reaches the other host's pods, the device is flannel's (VNI 1, port 8472, MTU 50
//! below the link's), and a peer that goes takes its route and entries with it. No
//! packet leaves these namespaces.

mod common;

use common::{block_in_netns, listen_in, serve_once, talk_from, Netns};
use ipnet::{IpNet, Ipv4Net};
use pod_network::vxlan::{format_mac, Peer, Vtep, VtepInfo};
use pod_network::{host_ifname, Bridge};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::Command;

fn run(args: &[&str]) {
    let ok = Command::new(args[0])
        .args(&args[1..])
        .status()
        .expect(args[0]);
    assert!(ok.success(), "{args:?}");
}

/// A test host: its namespace, address, podCIDR, one pod and its VTEP.
struct Host {
    ns: Netns,
    pod: Netns,
    ip: Ipv4Addr,
    subnet: Ipv4Net,
    pod_ip: IpAddr,
    vtep: Vtep,
}

impl Host {
    fn new(role: &str, ip: Ipv4Addr, subnet: &str, pod_ip: &str) -> Host {
        let ns = Netns::new(role);
        let pod = Netns::new(&format!("{role}pod"));
        Host {
            ns,
            pod,
            ip,
            subnet: subnet.parse().unwrap(),
            pod_ip: pod_ip.parse().unwrap(),
            vtep: Vtep::new(ip),
        }
    }

    /// Makes the VTEP, then the bridge at the VTEP's MTU with the pod on it.
    fn bring_up(&self) -> VtepInfo {
        let (vtep, subnet, pod, pod_ip) =
            (self.vtep.clone(), self.subnet, self.pod.path(), self.pod_ip);
        block_in_netns(&self.ns.path(), move || {
            Box::pin(async move {
                let info = vtep.ensure(subnet).await.expect("vtep");
                let bridge = Bridge::new("fkvx0", IpNet::V4(subnet)).with_mtu(Some(info.mtu));
                bridge.enable_forwarding().expect("forwarding");
                bridge
                    .attach(&pod, &host_ifname("pod"), pod_ip)
                    .await
                    .expect("attach");
                info
            })
        })
    }

    fn sync(&self, peers: Vec<Peer>) {
        let vtep = self.vtep.clone();
        block_in_netns(&self.ns.path(), move || {
            Box::pin(async move { vtep.sync_peers(&peers).await.expect("sync") })
        })
    }

    fn peer(&self, info: &VtepInfo) -> Peer {
        Peer {
            subnet: self.subnet,
            public_ip: self.ip,
            mac: info.mac,
        }
    }
}

/// A TCP exchange from `from`'s namespace to a listener in `to`'s; the address the
/// listener saw, or the error.
fn exchange(from: &Netns, to: &Netns, to_ip: IpAddr) -> std::io::Result<Option<IpAddr>> {
    let listener = listen_in(&to.path(), to_ip);
    let addr: SocketAddr = listener.local_addr().unwrap();
    let server = serve_once(listener);
    let reply = talk_from(&from.path(), addr);
    if reply.is_err() {
        // Unblock the server thread.
        let _ = talk_from(&to.path(), addr);
        let _ = server.join();
        return reply.map(|_| None);
    }
    assert_eq!(reply.unwrap(), "pong");
    Ok(server.join().unwrap())
}

#[test]
fn pods_on_two_hosts_reach_each_other_through_the_overlay() {
    let a = Host::new(
        "vxa",
        Ipv4Addr::new(192, 0, 2, 1),
        "10.42.1.0/24",
        "10.42.1.2",
    );
    let b = Host::new(
        "vxb",
        Ipv4Addr::new(192, 0, 2, 2),
        "10.42.2.0/24",
        "10.42.2.2",
    );
    // The "wire" between the hosts.
    let (ea, eb) = (
        format!("fkvxa{}", std::process::id() % 10000),
        format!("fkvxb{}", std::process::id() % 10000),
    );
    run(&[
        "ip", "link", "add", &ea, "netns", &a.ns.name, "type", "veth", "peer", "name", &eb,
        "netns", &b.ns.name,
    ]);
    for (h, dev) in [(&a, &ea), (&b, &eb)] {
        let n = &h.ns.name;
        run(&[
            "ip",
            "-n",
            n,
            "addr",
            "add",
            &format!("{}/24", h.ip),
            "dev",
            dev,
        ]);
        run(&["ip", "-n", n, "link", "set", dev, "up"]);
        run(&["ip", "-n", n, "link", "set", "lo", "up"]);
    }

    let info_a = a.bring_up();
    let info_b = b.bring_up();
    // Making it again keeps the device and its MAC.
    assert_eq!(a.bring_up(), info_a);
    assert_eq!(info_a.mtu, 1450, "veth's 1500 less 50");
    let link = a.ns.ip(&["-d", "link", "show", "flannel.1"]);
    assert!(link.contains("vxlan id 1 "), "{link}");
    assert!(link.contains("dstport 8472"), "{link}");
    assert!(link.contains("nolearning"), "{link}");
    assert!(link.contains(&format_mac(&info_a.mac)), "{link}");
    assert!(a
        .ns
        .ip(&["addr", "show", "flannel.1"])
        .contains("10.42.1.0/32"));
    assert!(a.pod.ip(&["link", "show", "eth0"]).contains("mtu 1450"));

    // Before the peers are known, nothing crosses.
    assert!(exchange(&a.pod, &b.pod, b.pod_ip).is_err());

    a.sync(vec![b.peer(&info_b)]);
    b.sync(vec![a.peer(&info_a)]);
    // Syncing again changes nothing.
    a.sync(vec![b.peer(&info_b)]);
    let routes = a.ns.ip(&["route", "show", "dev", "flannel.1"]);
    assert!(
        routes.starts_with("10.42.2.0/24 via 10.42.2.0 ") && routes.contains("onlink"),
        "{routes}"
    );
    let neigh = a.ns.ip(&["neigh", "show", "dev", "flannel.1"]);
    assert!(
        neigh.contains(&format!(
            "10.42.2.0 lladdr {} PERMANENT",
            format_mac(&info_b.mac)
        )),
        "{neigh}"
    );
    let fdb = String::from_utf8_lossy(
        &Command::new("bridge")
            .args(["-n", &a.ns.name, "fdb", "show", "dev", "flannel.1"])
            .output()
            .expect("bridge fdb")
            .stdout,
    )
    .into_owned();
    assert!(
        fdb.contains(&format!(
            "{} dst 192.0.2.2 self permanent",
            format_mac(&info_b.mac)
        )),
        "{fdb}"
    );

    // Pod to pod across hosts, both ways, with the pods' own addresses (no NAT).
    assert_eq!(exchange(&a.pod, &b.pod, b.pod_ip).unwrap(), Some(a.pod_ip));
    assert_eq!(exchange(&b.pod, &a.pod, a.pod_ip).unwrap(), Some(b.pod_ip));
    // The host reaches the other host's pod from its VTEP address.
    assert_eq!(
        exchange(&a.ns, &b.pod, b.pod_ip).unwrap(),
        Some("10.42.1.0".parse().unwrap())
    );
    // The peer goes: its route, neighbour and forwarding entries go.
    a.sync(vec![]);
    assert_eq!(a.ns.ip(&["route", "show", "dev", "flannel.1"]).trim(), "");
    assert!(!a
        .ns
        .ip(&["neigh", "show", "dev", "flannel.1"])
        .contains("10.42.2.0"));
    assert!(exchange(&a.pod, &b.pod, b.pod_ip).is_err());

    let vtep = a.vtep.clone();
    block_in_netns(&a.ns.path(), move || {
        Box::pin(async move { vtep.remove().await.expect("remove") })
    });
    assert!(!a.ns.ip(&["link"]).contains("flannel.1"));
}
