//! The pod bridge on test hosts made of network namespaces this test creates and
//! removes (a "node" namespace holding the bridge, one namespace per pod): addresses,
//! routes and hairpin mode as the CNI bridge plugin sets them, pod-to-pod and
//! pod-to-gateway TCP, detaching, and address bookkeeping with host-local IPAM. No
//! packet leaves these namespaces.

mod common;

use common::{block_in_netns, listen_in, serve_once, talk_from, Netns};
use pod_network::{host_ifname, Bridge, HostLocal};
use std::path::Path;

#[test]
fn pods_on_the_bridge_reach_each_other_and_the_gateway() {
    let node = Netns::new("node");
    let pod1 = Netns::new("pod1");
    let pod2 = Netns::new("pod2");
    let state = tempfile::tempdir().unwrap();
    let subnet: ipnet::IpNet = "10.42.9.0/24".parse().unwrap();
    let ipam = HostLocal::open(state.path(), subnet).unwrap();
    let bridge = Bridge::new("fktest0", subnet);
    let ip1 = ipam.allocate("pod1", "eth0").unwrap();
    let ip2 = ipam.allocate("pod2", "eth0").unwrap();
    assert_eq!(ip1.to_string(), "10.42.9.2");
    let (veth1, veth2) = (host_ifname("pod1"), host_ifname("pod2"));

    {
        let (b, p1, p2, v1, v2) = (
            bridge.clone(),
            pod1.path(),
            pod2.path(),
            veth1.clone(),
            veth2.clone(),
        );
        block_in_netns(&node.path(), move || {
            Box::pin(async move {
                b.attach(&p1, &v1, ip1).await.expect("attach pod1");
                b.attach(&p2, &v2, ip2).await.expect("attach pod2");
                // Attaching again changes nothing.
                b.attach(&p1, &v1, ip1).await.expect("attach pod1 again");
            })
        });
    }

    // What the pods and the node look like.
    let addrs = pod1.ip(&["-o", "addr", "show", "eth0"]);
    assert!(addrs.contains("inet 10.42.9.2/24"), "{addrs}");
    let routes = pod1.ip(&["route"]);
    assert!(
        routes.contains("default via 10.42.9.1 dev eth0"),
        "{routes}"
    );
    assert!(pod1.ip(&["link", "show", "lo"]).contains("UP"));
    let br = node.ip(&["-o", "addr", "show", "fktest0"]);
    assert!(br.contains("inet 10.42.9.1/24"), "{br}");
    let port = node.ip(&["-d", "link", "show", &veth1]);
    assert!(port.contains("master fktest0"), "{port}");
    assert!(port.contains("hairpin on"), "{port}");

    // pod2 -> pod1, across the bridge.
    let l = listen_in(&pod1.path(), ip1);
    let addr = l.local_addr().unwrap();
    let server = serve_once(l);
    assert_eq!(talk_from(&pod2.path(), addr).unwrap(), "pong");
    assert_eq!(server.join().unwrap(), Some(ip2));

    // pod1 -> the gateway (the node's side of the bridge).
    let gw = bridge.gateway;
    let l = listen_in(&node.path(), gw);
    let addr = l.local_addr().unwrap();
    let server = serve_once(l);
    assert_eq!(talk_from(&pod1.path(), addr).unwrap(), "pong");
    assert_eq!(server.join().unwrap(), Some(ip1));

    // Detaching pod1 removes its veth pair; pod2 stays connected.
    {
        let (b, v1) = (bridge.clone(), veth1.clone());
        block_in_netns(&node.path(), move || {
            Box::pin(async move {
                b.detach(&v1).await.expect("detach");
                b.detach(&v1).await.expect("detach again");
            })
        });
    }
    assert!(!node.ip(&["link"]).contains(&veth1));
    assert!(!pod1.ip(&["link"]).contains("eth0"));
    assert!(node.ip(&["link"]).contains(&veth2));
    assert_eq!(ipam.release("pod1").unwrap(), vec![ip1]);
    let l = listen_in(&pod2.path(), ip2);
    let addr = l.local_addr().unwrap();
    let server = serve_once(l);
    assert_eq!(talk_from(&node.path(), addr).unwrap(), "pong");
    assert_eq!(server.join().unwrap(), Some(gw));
}

#[test]
fn a_failed_attach_leaves_no_veth_behind() {
    let node = Netns::new("node2");
    let state = tempfile::tempdir().unwrap();
    let subnet: ipnet::IpNet = "10.42.10.0/24".parse().unwrap();
    let bridge = Bridge::new("fktest1", subnet);
    let veth = host_ifname("missing");
    let v = veth.clone();
    let err = block_in_netns(&node.path(), move || {
        Box::pin(async move {
            bridge
                .attach(
                    Path::new("/run/netns/does-not-exist-fkpn"),
                    &v,
                    "10.42.10.2".parse().unwrap(),
                )
                .await
                .expect_err("no such namespace")
                .to_string()
        })
    });
    assert!(err.contains("does-not-exist-fkpn"), "{err}");
    let links = node.ip(&["link"]);
    assert!(!links.contains(&veth), "{links}");
    // The bridge itself stays, with its address.
    assert!(node
        .ip(&["-o", "addr", "show", "fktest1"])
        .contains("10.42.10.1/24"));
    drop(state);
}
