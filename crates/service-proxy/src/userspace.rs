//! The userspace proxy mode: no packet filter at all. Every Service address this
//! node serves is made local (a /32 on the `kube-proxy0` device, a bridge without
//! ports standing in for IPVS mode's dummy `kube-ipvs0`), and the proxy listens on
//! each cluster IP, external IP and node port itself, relaying each TCP connection
//! and each UDP client's datagrams to a ready endpoint, round robin (or by client
//! address under `sessionAffinity: ClientIP`), as upstream's old userspace mode
//! did. Endpoints see the node as the client.
//!
//! A Service port without any endpoint gets no listener, so connections to it are
//! refused; one whose endpoints are only on other nodes under a Local policy
//! accepts and closes them. Endpoint changes only swap the backend lists the
//! listeners read; listeners come and go with Service ports.

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use ipnet::Ipv4Net;
use rtnetlink::packet_route::address::AddressAttribute;
use rtnetlink::{LinkBridge, LinkUnspec};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

use crate::model::{Endpoint, Protocol, ServicePort};

/// The device holding the Service addresses.
pub const DEVICE: &str = "kube-proxy0";
/// How long a connection to one endpoint may take before the next is tried.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Why the userspace data path could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum UserspaceError {
    #[error("netlink: {0}: {1}")]
    Netlink(&'static str, rtnetlink::Error),
    #[error("netlink socket: {0}")]
    Io(#[from] std::io::Error),
}

/// Where clients connect: an address and port, TCP or UDP.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Frontend {
    addr: SocketAddrV4,
    protocol: Protocol,
}

/// Each client's endpoint under `sessionAffinity: ClientIP`, and when it was last
/// used.
type Pins = Mutex<HashMap<IpAddr, (SocketAddrV4, Instant)>>;

/// The endpoints a frontend relays to, replaced on each sync.
struct Backends {
    endpoints: RwLock<Vec<SocketAddrV4>>,
    /// The clients it serves (`loadBalancerSourceRanges`); empty serves all.
    allowed: RwLock<Vec<Ipv4Net>>,
    next: AtomicUsize,
    /// `sessionAffinity: ClientIP`: the timeout and each client's endpoint.
    affinity: Option<(Duration, Pins)>,
}

impl Backends {
    fn new(endpoints: Vec<SocketAddrV4>, affinity: Option<u32>) -> Backends {
        Backends {
            endpoints: RwLock::new(endpoints),
            allowed: RwLock::new(Vec::new()),
            next: AtomicUsize::new(0),
            affinity: affinity.map(|t| {
                (
                    Duration::from_secs(u64::from(t)),
                    Mutex::new(HashMap::new()),
                )
            }),
        }
    }

    /// Whether `client` may use this frontend.
    fn allows(&self, client: IpAddr) -> bool {
        let allowed = self.allowed.read().map(|a| a.clone()).unwrap_or_default();
        allowed.is_empty()
            || matches!(client, IpAddr::V4(c) if allowed.iter().any(|r| r.contains(&c)))
    }

    fn current(&self) -> Vec<SocketAddrV4> {
        self.endpoints.read().map(|e| e.clone()).unwrap_or_default()
    }

    fn contains(&self, ep: &SocketAddrV4) -> bool {
        self.endpoints.read().is_ok_and(|e| e.contains(ep))
    }

    /// The endpoints to try for `client`, the chosen one first.
    fn pick(&self, client: IpAddr) -> Vec<SocketAddrV4> {
        let eps = self.current();
        if eps.is_empty() {
            return eps;
        }
        if let Some((timeout, sessions)) = &self.affinity {
            if let Ok(mut s) = sessions.lock() {
                let now = Instant::now();
                if let Some((ep, seen)) = s.get_mut(&client) {
                    if now.duration_since(*seen) < *timeout && eps.contains(ep) {
                        *seen = now;
                        let ep = *ep;
                        return std::iter::once(ep)
                            .chain(eps.into_iter().filter(|e| *e != ep))
                            .collect();
                    }
                }
                let first = self.next.fetch_add(1, Ordering::Relaxed) % eps.len();
                s.insert(client, (eps[first], now));
                return rotate(eps, first);
            }
        }
        let first = self.next.fetch_add(1, Ordering::Relaxed) % eps.len();
        rotate(eps, first)
    }
}

fn rotate(mut eps: Vec<SocketAddrV4>, first: usize) -> Vec<SocketAddrV4> {
    eps.rotate_left(first);
    eps
}

/// What one frontend should do: its endpoints and affinity, or nothing when the
/// port has no endpoint anywhere (no listener: refused).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Plan {
    endpoints: Vec<SocketAddrV4>,
    affinity: Option<u32>,
    /// Clients allowed (load-balancer addresses with source ranges); empty: all.
    allowed: Vec<Ipv4Net>,
    /// A load-balancer address, served only where it is already this node's own.
    load_balancer: bool,
}

fn addrs(eps: &[&Endpoint]) -> Vec<SocketAddrV4> {
    eps.iter()
        .map(|e| SocketAddrV4::new(e.ip, e.port))
        .collect()
}

/// Every frontend of `ports` with its plan, and the Service addresses to make
/// local: cluster IPs and `externalIPs`, with or without endpoints. Load-balancer
/// addresses are not made local: they may be other nodes' own addresses (as
/// servicelb publishes them), which this node must still reach.
fn plan(ports: &[ServicePort]) -> (HashMap<Frontend, Plan>, BTreeSet<Ipv4Addr>) {
    let mut frontends = HashMap::new();
    let mut local = BTreeSet::new();
    for sp in ports {
        local.extend(sp.cluster_ips.iter().copied());
        local.extend(
            sp.external_ips
                .iter()
                .filter(|ip| !sp.load_balancer_ips.contains(ip))
                .copied(),
        );
        let cat = sp.categorize();
        if !cat.any {
            continue;
        }
        let internal = if sp.internal_local {
            &cat.local
        } else {
            &cat.cluster
        };
        let external = if sp.external_local {
            &cat.local
        } else {
            &cat.cluster
        };
        let mut add = |ip: Ipv4Addr, port: u16, eps: &[&Endpoint], allowed: &[Ipv4Net]| {
            let load_balancer = sp.load_balancer_ips.contains(&ip);
            frontends.insert(
                Frontend {
                    addr: SocketAddrV4::new(ip, port),
                    protocol: sp.id.protocol,
                },
                Plan {
                    endpoints: addrs(eps),
                    affinity: sp.affinity_timeout,
                    allowed: allowed.to_vec(),
                    load_balancer,
                },
            );
        };
        for ip in &sp.cluster_ips {
            add(*ip, sp.port, internal, &[]);
        }
        for ip in &sp.external_ips {
            let allowed = if sp.load_balancer_ips.contains(ip) {
                &sp.source_ranges[..]
            } else {
                &[]
            };
            add(*ip, sp.port, external, allowed);
        }
        if let Some(np) = sp.node_port {
            add(Ipv4Addr::UNSPECIFIED, np, external, &[]);
        }
    }
    (frontends, local)
}

struct Running {
    backends: Arc<Backends>,
    affinity: Option<u32>,
    task: tokio::task::JoinHandle<()>,
}

/// The userspace data path of this node.
pub struct Userspace {
    udp_timeout: Duration,
    running: HashMap<Frontend, Running>,
    addresses: Option<BTreeSet<Ipv4Addr>>,
}

impl Drop for Userspace {
    fn drop(&mut self) {
        for r in self.running.values() {
            r.task.abort();
        }
    }
}

impl Userspace {
    /// A proxy whose UDP sessions end after `udp_timeout` without traffic.
    pub fn new(udp_timeout: Duration) -> Userspace {
        Userspace {
            udp_timeout,
            running: HashMap::new(),
            addresses: None,
        }
    }

    /// Makes the next sync set the Service addresses again, whatever was set last.
    pub fn force_full(&mut self) {
        self.addresses = None;
    }

    /// Makes the listeners, backends and local addresses those of `ports`.
    pub async fn sync(&mut self, ports: &[ServicePort]) -> Result<(), UserspaceError> {
        let (frontends, local) = plan(ports);
        if self.addresses.as_ref() != Some(&local) {
            self.addresses = None;
            set_addresses(&local).await?;
            self.addresses = Some(local);
        }
        self.running.retain(|f, r| {
            let keep =
                frontends.get(f).is_some_and(|p| p.affinity == r.affinity) && !r.task.is_finished();
            if !keep {
                r.task.abort();
            }
            keep
        });
        for (f, p) in frontends {
            if let Some(r) = self.running.get(&f) {
                if let Ok(mut eps) = r.backends.endpoints.write() {
                    *eps = p.endpoints;
                }
                if let Ok(mut allowed) = r.backends.allowed.write() {
                    *allowed = p.allowed;
                }
                continue;
            }
            let backends = Arc::new(Backends::new(p.endpoints, p.affinity));
            if let Ok(mut allowed) = backends.allowed.write() {
                *allowed = p.allowed;
            }
            // A load-balancer address that is not this node's is another node's
            // to serve: binding it fails, which is expected.
            let cannot_listen = |e: std::io::Error| {
                if p.load_balancer && e.kind() == std::io::ErrorKind::AddrNotAvailable {
                    tracing::debug!(frontend = %f.addr, "load-balancer address of another node");
                } else {
                    tracing::warn!(frontend = %f.addr, error = %e, "cannot listen");
                }
            };
            let task = match f.protocol {
                Protocol::Tcp => match TcpListener::bind(f.addr).await {
                    Ok(l) => tokio::spawn(serve_tcp(l, backends.clone())),
                    Err(e) => {
                        cannot_listen(e);
                        continue;
                    }
                },
                Protocol::Udp => match UdpSocket::bind(f.addr).await {
                    Ok(s) => tokio::spawn(serve_udp(s, backends.clone(), self.udp_timeout)),
                    Err(e) => {
                        cannot_listen(e);
                        continue;
                    }
                },
                Protocol::Sctp => continue,
            };
            self.running.insert(
                f,
                Running {
                    backends,
                    affinity: p.affinity,
                    task,
                },
            );
        }
        Ok(())
    }
}

async fn serve_tcp(listener: TcpListener, backends: Arc<Backends>) {
    loop {
        let Ok((mut client, peer)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        if !backends.allows(peer.ip()) {
            continue; // closed: the client is outside the source ranges
        }
        let backends = backends.clone();
        tokio::spawn(async move {
            for ep in backends.pick(peer.ip()) {
                let connected = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(ep)).await;
                if let Ok(Ok(mut upstream)) = connected {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                    return;
                }
            }
            // No endpoint took it: the client's connection is closed.
        });
    }
}

/// One UDP client's flow: a socket connected to its endpoint.
struct Session {
    upstream: Arc<UdpSocket>,
    endpoint: SocketAddrV4,
    task: tokio::task::JoinHandle<()>,
}

async fn serve_udp(socket: UdpSocket, backends: Arc<Backends>, idle: Duration) {
    let socket = Arc::new(socket);
    let mut sessions: HashMap<SocketAddr, Session> = HashMap::new();
    let mut buf = vec![0u8; 65536];
    loop {
        let Ok((n, client)) = socket.recv_from(&mut buf).await else {
            continue;
        };
        sessions.retain(|_, s| !s.task.is_finished());
        // A flow to an endpoint that left moves to another one.
        if let Some(s) = sessions.get(&client) {
            if !backends.contains(&s.endpoint) {
                s.task.abort();
                sessions.remove(&client);
            }
        }
        if !backends.allows(client.ip()) {
            continue;
        }
        if let std::collections::hash_map::Entry::Vacant(slot) = sessions.entry(client) {
            let Some(endpoint) = backends.pick(client.ip()).first().copied() else {
                continue;
            };
            let Ok(upstream) = UdpSocket::bind("0.0.0.0:0").await else {
                continue;
            };
            if upstream.connect(endpoint).await.is_err() {
                continue;
            }
            let upstream = Arc::new(upstream);
            let task = tokio::spawn(relay_replies(
                upstream.clone(),
                socket.clone(),
                client,
                idle,
            ));
            slot.insert(Session {
                upstream,
                endpoint,
                task,
            });
        }
        if let Some(s) = sessions.get(&client) {
            let _ = s.upstream.send(&buf[..n]).await;
        }
    }
}

/// Sends the endpoint's replies back to the client until the flow is idle.
async fn relay_replies(
    upstream: Arc<UdpSocket>,
    frontend: Arc<UdpSocket>,
    client: SocketAddr,
    idle: Duration,
) {
    let mut buf = vec![0u8; 65536];
    while let Ok(Ok(n)) = tokio::time::timeout(idle, upstream.recv(&mut buf)).await {
        let _ = frontend.send_to(&buf[..n], client).await;
    }
}

/// Makes `wanted` the addresses of the device (made if missing), except those the
/// node already has elsewhere.
async fn set_addresses(wanted: &BTreeSet<Ipv4Addr>) -> Result<(), UserspaceError> {
    let (conn, handle, _) = rtnetlink::new_connection()?;
    tokio::spawn(conn);
    let nl = |what| move |e| UserspaceError::Netlink(what, e);
    let mut links = handle.link().get().match_name(DEVICE.to_string()).execute();
    let index = match links.try_next().await {
        Ok(Some(l)) => l.header.index,
        _ => {
            handle
                .link()
                .add(LinkBridge::new(DEVICE).build())
                .execute()
                .await
                .map_err(nl("creating kube-proxy0"))?;
            let mut links = handle.link().get().match_name(DEVICE.to_string()).execute();
            links
                .try_next()
                .await
                .map_err(nl("finding kube-proxy0"))?
                .map(|l| l.header.index)
                .ok_or(UserspaceError::Netlink(
                    "finding kube-proxy0",
                    rtnetlink::Error::RequestFailed,
                ))?
        }
    };
    handle
        .link()
        .set(LinkUnspec::new_with_index(index).up().build())
        .execute()
        .await
        .map_err(nl("bringing kube-proxy0 up"))?;
    let mut ours = Vec::new();
    let mut elsewhere = BTreeSet::new();
    let mut all = handle.address().get().execute();
    while let Some(a) = all.try_next().await.map_err(nl("listing addresses"))? {
        let ip = a.attributes.iter().find_map(|x| match x {
            AddressAttribute::Address(IpAddr::V4(ip)) => Some(*ip),
            _ => None,
        });
        let Some(ip) = ip else { continue };
        if a.header.index == index {
            ours.push((ip, a));
        } else {
            elsewhere.insert(ip);
        }
    }
    let have: BTreeSet<Ipv4Addr> = ours.iter().map(|(ip, _)| *ip).collect();
    for (ip, msg) in ours {
        if !wanted.contains(&ip) || elsewhere.contains(&ip) {
            let _ = handle.address().del(msg).execute().await;
        }
    }
    for ip in wanted {
        if have.contains(ip) || elsewhere.contains(ip) {
            continue;
        }
        handle
            .address()
            .add(index, IpAddr::V4(*ip), 32)
            .execute()
            .await
            .map_err(nl("adding a Service address"))?;
    }
    Ok(())
}

/// Removes the device and its addresses (`--cleanup`).
pub async fn cleanup() -> Result<(), UserspaceError> {
    let (conn, handle, _) = rtnetlink::new_connection()?;
    tokio::spawn(conn);
    let mut links = handle.link().get().match_name(DEVICE.to_string()).execute();
    if let Ok(Some(l)) = links.try_next().await {
        handle
            .link()
            .del(l.header.index)
            .execute()
            .await
            .map_err(|e| UserspaceError::Netlink("deleting kube-proxy0", e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;

    fn ep(last: u8, ready: bool, local: bool) -> Endpoint {
        Endpoint {
            ready,
            serving: ready,
            ..fixtures::ep(last, local)
        }
    }

    fn port(endpoints: Vec<Endpoint>) -> ServicePort {
        ServicePort {
            cluster_ips: vec![Ipv4Addr::new(10, 43, 0, 20)],
            node_port: Some(30080),
            external_ips: vec![Ipv4Addr::new(192, 0, 2, 50)],
            ..fixtures::port("web", endpoints)
        }
    }

    #[test]
    fn load_balancer_addresses_are_not_made_local() {
        let mut sp = port(vec![ep(2, true, true)]);
        sp.load_balancer_ips = sp.external_ips.clone();
        sp.source_ranges = vec!["198.51.100.0/24".parse().unwrap()];
        let (frontends, local) = plan(&[sp]);
        assert!(!local.contains(&Ipv4Addr::new(192, 0, 2, 50)), "{local:?}");
        assert!(local.contains(&Ipv4Addr::new(10, 43, 0, 20)));
        let lb = &frontends[&Frontend {
            addr: SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 50), 80),
            protocol: Protocol::Tcp,
        }];
        assert!(lb.load_balancer);
        assert_eq!(lb.allowed, ["198.51.100.0/24".parse::<Ipv4Net>().unwrap()]);
        let backends = Backends::new(lb.endpoints.clone(), None);
        *backends.allowed.write().unwrap() = lb.allowed.clone();
        assert!(backends.allows("198.51.100.7".parse().unwrap()));
        assert!(!backends.allows("192.0.2.4".parse().unwrap()));
    }

    #[test]
    fn frontends_follow_ready_endpoints_and_policies() {
        let sp = port(vec![
            ep(2, true, true),
            ep(3, true, false),
            ep(4, false, true),
        ]);
        let (fronts, local) = plan(std::slice::from_ref(&sp));
        assert_eq!(
            local,
            BTreeSet::from([Ipv4Addr::new(10, 43, 0, 20), Ipv4Addr::new(192, 0, 2, 50)])
        );
        assert_eq!(fronts.len(), 3);
        let cluster = &fronts[&Frontend {
            addr: "10.43.0.20:80".parse().unwrap(),
            protocol: Protocol::Tcp,
        }];
        assert_eq!(
            cluster.endpoints,
            vec![
                "10.42.0.2:8080".parse().unwrap(),
                "10.42.0.3:8080".parse().unwrap()
            ]
        );
        // externalTrafficPolicy: Local: outside traffic only to this node's.
        let mut local_only = sp.clone();
        local_only.external_local = true;
        let (fronts, _) = plan(&[local_only]);
        let node_port = &fronts[&Frontend {
            addr: "0.0.0.0:30080".parse().unwrap(),
            protocol: Protocol::Tcp,
        }];
        assert_eq!(node_port.endpoints, vec!["10.42.0.2:8080".parse().unwrap()]);
        // No endpoint at all: no listener (refused), but the address stays local.
        let (fronts, local) = plan(&[port(vec![ep(4, false, true)])]);
        assert!(fronts.is_empty());
        assert_eq!(local.len(), 2);
    }

    #[test]
    fn round_robin_and_affinity() {
        let eps: Vec<SocketAddrV4> = vec![
            "10.42.0.2:80".parse().unwrap(),
            "10.42.0.3:80".parse().unwrap(),
        ];
        let rr = Backends::new(eps.clone(), None);
        let client: IpAddr = "10.42.0.9".parse().unwrap();
        let firsts: BTreeSet<SocketAddrV4> = (0..4).map(|_| rr.pick(client)[0]).collect();
        assert_eq!(firsts.len(), 2, "round robin reaches both");
        assert_eq!(rr.pick(client).len(), 2, "the others follow as fallbacks");
        let sticky = Backends::new(eps.clone(), Some(60));
        let first = sticky.pick(client)[0];
        assert!((0..5).all(|_| sticky.pick(client)[0] == first));
        // The pinned endpoint leaves: the client moves.
        *sticky.endpoints.write().unwrap() = eps.iter().copied().filter(|e| *e != first).collect();
        assert_ne!(sticky.pick(client)[0], first);
        assert!(Backends::new(vec![], None).pick(client).is_empty());
    }
}
