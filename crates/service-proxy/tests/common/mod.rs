//! What the data-path tests share: a network namespace with a veth pair whose both
//! ends hold endpoint addresses, TCP and UDP listeners answering with their names,
//! and the Service ports they program.
#![allow(dead_code)] // each test file uses its own part

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::time::Duration;

use service_proxy::model::{Endpoint, Protocol, ServicePort, ServicePortName};

/// A namespace entered by the calling thread; removed on drop.
pub struct Netns(String);

impl Netns {
    pub fn enter(role: &str) -> Netns {
        let name = format!("fkproxy-{}-{role}", std::process::id());
        let _ = Command::new("ip").args(["netns", "del", &name]).status();
        assert!(Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .unwrap()
            .success());
        let f = std::fs::File::open(format!("/run/netns/{name}")).unwrap();
        nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        let ns = Netns(name);
        for cmd in [
            "link set lo up",
            "link add vA type veth peer name vB",
            "link set vA up",
            "link set vB up",
            "addr add 10.42.0.5/32 dev vA",
            "addr add 10.42.0.6/32 dev vB",
            // A load-balancer address of this node.
            "addr add 192.0.2.50/32 dev vB",
            "route add 10.43.0.0/16 dev vA",
        ] {
            let args: Vec<&str> = cmd.split(' ').collect();
            assert!(
                Command::new("ip").args(&args).status().unwrap().success(),
                "{cmd}"
            );
        }
        ns
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// A listener answering each connection with its name.
pub fn serve(ip: Ipv4Addr, name: &'static str) {
    let l = TcpListener::bind((ip, 8080)).unwrap();
    std::thread::spawn(move || {
        for mut s in l.incoming().flatten() {
            let _ = s.write_all(name.as_bytes());
        }
    });
}

/// Who answers at `addr`, or the connection's error kind.
pub fn ask(addr: &str) -> Result<String, std::io::ErrorKind> {
    let addr: SocketAddr = addr.parse().unwrap();
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).map_err(|e| e.kind())?;
    let mut out = String::new();
    s.read_to_string(&mut out).map_err(|e| e.kind())?;
    Ok(out)
}

pub fn ep(last: u8) -> Endpoint {
    Endpoint {
        ip: Ipv4Addr::new(10, 42, 0, last),
        port: 8080,
        ready: true,
        serving: true,
        terminating: false,
        local: true,
    }
}

pub fn web(endpoints: Vec<Endpoint>) -> ServicePort {
    ServicePort {
        id: ServicePortName {
            namespace: "default".into(),
            name: "web".into(),
            port: "http".into(),
            protocol: Protocol::Tcp,
        },
        cluster_ips: vec![Ipv4Addr::new(10, 43, 0, 10)],
        port: 80,
        node_port: Some(30080),
        external_ips: vec![Ipv4Addr::new(192, 0, 2, 50)],
        load_balancer_ips: vec![Ipv4Addr::new(192, 0, 2, 50)],
        source_ranges: vec![],
        affinity_timeout: None,
        external_local: false,
        internal_local: false,
        endpoints,
    }
}

pub fn answers(addr: &str, tries: usize) -> std::collections::BTreeSet<String> {
    (0..tries).map(|_| ask(addr).unwrap()).collect()
}

/// A UDP listener answering each datagram with its name.
pub fn serve_udp(ip: Ipv4Addr, name: &'static str) {
    let s = std::net::UdpSocket::bind((ip, 8053)).unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 64];
        while let Ok((_, from)) = s.recv_from(&mut buf) {
            let _ = s.send_to(name.as_bytes(), from);
        }
    });
}

/// Who answers one datagram from `client` to 10.43.0.20:53.
pub fn ask_udp(client: &std::net::UdpSocket) -> String {
    client.send_to(b"?", "10.43.0.20:53").unwrap();
    let mut buf = [0u8; 64];
    let n = client.recv(&mut buf).unwrap();
    String::from_utf8_lossy(&buf[..n]).to_string()
}

pub fn dns(endpoints: &[u8]) -> ServicePort {
    ServicePort {
        id: ServicePortName {
            namespace: "kube-system".into(),
            name: "dns".into(),
            port: "dns".into(),
            protocol: Protocol::Udp,
        },
        cluster_ips: vec![Ipv4Addr::new(10, 43, 0, 20)],
        port: 53,
        node_port: None,
        external_ips: vec![],
        load_balancer_ips: vec![],
        source_ranges: vec![],
        affinity_timeout: None,
        external_local: false,
        internal_local: false,
        endpoints: endpoints
            .iter()
            .map(|l| Endpoint {
                port: 8053,
                ..ep(*l)
            })
            .collect(),
    }
}

/// Who answers at `addr` for a client bound to the address `from`, or the
/// connection's error kind (timing out after 2 s).
pub fn ask_from(from: Ipv4Addr, addr: &str) -> Result<String, std::io::ErrorKind> {
    use tokio::io::AsyncReadExt;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let s = tokio::net::TcpSocket::new_v4().map_err(|e| e.kind())?;
        s.bind((from, 0).into()).map_err(|e| e.kind())?;
        let connect = s.connect(addr.parse().unwrap());
        let mut c = tokio::time::timeout(Duration::from_secs(2), connect)
            .await
            .map_err(|_| std::io::ErrorKind::TimedOut)?
            .map_err(|e| e.kind())?;
        let mut out = String::new();
        c.read_to_string(&mut out).await.map_err(|e| e.kind())?;
        Ok(out)
    })
}

/// With [`web`]'s source ranges set to 10.42.0.6/32: a client from that address
/// reaches the load-balancer address, one from 10.42.0.5 times out there, and
/// both reach the cluster IP and the node port.
pub fn source_ranges_hold() {
    let (inside, outside) = (Ipv4Addr::new(10, 42, 0, 6), Ipv4Addr::new(10, 42, 0, 5));
    assert!(ask_from(inside, "192.0.2.50:80").is_ok());
    assert_eq!(
        ask_from(outside, "192.0.2.50:80"),
        Err(std::io::ErrorKind::TimedOut)
    );
    assert!(ask_from(outside, "10.43.0.10:80").is_ok());
    assert!(ask_from(outside, "10.42.0.5:30080").is_ok());
}
