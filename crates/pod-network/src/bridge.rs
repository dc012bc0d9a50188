//! The node's pod bridge and one veth pair per pod, made as the CNI `bridge` plugin
//! makes them: the bridge holds the gateway address (the podCIDR's first host
//! address), each pod's host-side veth is a bridge port in hairpin mode (so a pod can
//! reach itself through a Service), and the pod-side end becomes `eth0` in the pod's
//! network namespace with the pod's address and a default route via the gateway.
//!
//! Everything here talks netlink. Calls on the node side act in the network namespace
//! of the calling thread; the pod side is reached through a netlink socket opened
//! inside the pod's namespace (a socket stays bound to the namespace it was made in).

use std::fs::File;
use std::net::IpAddr;
use std::os::fd::AsRawFd;
use std::path::Path;

use futures::TryStreamExt;
use ipnet::IpNet;
use nix::errno::Errno;
use nix::sched::{setns, CloneFlags};
use rtnetlink::packet_route::link::LinkMessage;
use rtnetlink::{Handle, LinkBridge, LinkBridgePort, LinkUnspec, LinkVeth, RouteMessageBuilder};

/// The interface name pods see.
pub const POD_IFNAME: &str = "eth0";

/// Why a pod could not be connected or disconnected.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// A netlink request failed.
    #[error("{context}: {source}")]
    Netlink {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: rtnetlink::Error,
    },
    /// Opening a namespace or a netlink socket failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// An interface that was just made could not be found.
    #[error("interface {0} not found")]
    NoSuchLink(String),
}

pub(crate) fn nl(context: impl Into<String>) -> impl FnOnce(rtnetlink::Error) -> NetError {
    let context = context.into();
    move |source| NetError::Netlink { context, source }
}

pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> NetError {
    let context = context.into();
    move |source| NetError::Io { context, source }
}

/// A Linux bridge for the pods of one node's podCIDR.
#[derive(Clone, Debug)]
pub struct Bridge {
    /// The bridge's name (at most 15 bytes).
    pub name: String,
    /// The node's podCIDR.
    pub subnet: IpNet,
    /// The bridge's own address, the pods' default gateway.
    pub gateway: IpAddr,
    /// The MTU of pods' interfaces (the overlay's, when there is one); the kernel's
    /// default otherwise.
    pub mtu: Option<u32>,
}

/// A netlink connection whose socket lives in the calling thread's network namespace.
pub(crate) fn connect_here() -> Result<Handle, NetError> {
    let (conn, handle, _) = rtnetlink::new_connection().map_err(io("opening a netlink socket"))?;
    tokio::spawn(conn);
    Ok(handle)
}

/// A netlink connection whose socket lives in the network namespace at `netns`. A
/// thread of its own enters that namespace to make the socket, so no other task ever
/// runs there.
fn connect_in(netns: &Path) -> Result<Handle, NetError> {
    let target = File::open(netns).map_err(io(format!("opening {}", netns.display())))?;
    // The socket registers with this runtime's reactor when it is made.
    let runtime = tokio::runtime::Handle::current();
    let (conn, handle, _) = std::thread::scope(|s| {
        s.spawn(|| {
            let _entered = runtime.enter();
            setns(&target, CloneFlags::CLONE_NEWNET)
                .map_err(|e| std::io::Error::from_raw_os_error(e as i32))
                .map_err(io(format!("entering {}", netns.display())))?;
            rtnetlink::new_connection().map_err(io("opening a netlink socket"))
        })
        .join()
        .unwrap_or_else(|_| {
            Err(io("opening a netlink socket")(std::io::Error::other(
                "thread panicked",
            )))
        })
    })?;
    tokio::spawn(conn);
    Ok(handle)
}

/// A netlink request's result with the answer `errno` (EEXIST for "there already",
/// ENODEV for "gone already") taken as success: `None` then.
pub(crate) fn unless_errno<T>(
    result: Result<T, rtnetlink::Error>,
    errno: nix::errno::Errno,
) -> Result<Option<T>, rtnetlink::Error> {
    match result {
        Ok(v) => Ok(Some(v)),
        Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -(errno as i32) => Ok(None),
        Err(e) => Err(e),
    }
}

pub(crate) async fn link_by_name(
    handle: &Handle,
    name: &str,
) -> Result<Option<LinkMessage>, NetError> {
    let mut links = handle.link().get().match_name(name.to_string()).execute();
    unless_errno(links.try_next().await, Errno::ENODEV)
        .map(Option::flatten)
        .map_err(nl(format!("looking up {name}")))
}

pub(crate) async fn index_of(handle: &Handle, name: &str) -> Result<u32, NetError> {
    link_by_name(handle, name)
        .await?
        .map(|l| l.header.index)
        .ok_or_else(|| NetError::NoSuchLink(name.to_string()))
}

/// Adds an address unless the interface has it (EEXIST).
pub(crate) async fn add_address(
    handle: &Handle,
    index: u32,
    ip: IpAddr,
    prefix: u8,
) -> Result<(), NetError> {
    let added = handle.address().add(index, ip, prefix).execute().await;
    unless_errno(added, Errno::EEXIST)
        .map(drop)
        .map_err(nl(format!("adding {ip}/{prefix}")))
}

impl Bridge {
    /// A bridge named `name` for `subnet`, with the subnet's first host address as the
    /// gateway.
    pub fn new(name: &str, subnet: IpNet) -> Bridge {
        let subnet = subnet.trunc();
        Bridge {
            name: name.to_string(),
            subnet,
            gateway: crate::ipam::gateway_of(subnet),
            mtu: None,
        }
    }

    /// The same bridge with pods' interfaces at `mtu`.
    pub fn with_mtu(mut self, mtu: Option<u32>) -> Bridge {
        self.mtu = mtu;
        self
    }

    /// Lets the node route pod traffic (IP forwarding on) and pass bridged IPv4
    /// packets through netfilter (`bridge-nf-call-iptables`), so that a Service's
    /// DNAT also applies between pods on this bridge and replies are translated
    /// back, as kube-proxy needs. Both settings belong to the calling thread's
    /// network namespace. Without the bridge netfilter module only the second is
    /// skipped, with a warning.
    pub fn enable_forwarding(&self) -> Result<(), NetError> {
        let forward = if self.subnet.addr().is_ipv4() {
            "/proc/sys/net/ipv4/ip_forward"
        } else {
            "/proc/sys/net/ipv6/conf/all/forwarding"
        };
        write_sysctl(forward)?;
        let bridged = if self.subnet.addr().is_ipv4() {
            "/proc/sys/net/bridge/bridge-nf-call-iptables"
        } else {
            "/proc/sys/net/bridge/bridge-nf-call-ip6tables"
        };
        if std::path::Path::new(bridged).exists() {
            write_sysctl(bridged)?;
        } else {
            tracing::warn!(
                "{bridged} is missing (br_netfilter not loaded): Services between pods on one bridge will not work"
            );
        }
        Ok(())
    }

    /// gateway address and brings it up. Returns its index.
    pub async fn ensure(&self) -> Result<u32, NetError> {
        let handle = connect_here()?;
        self.ensure_with(&handle).await
    }

    async fn ensure_with(&self, handle: &Handle) -> Result<u32, NetError> {
        let index = match link_by_name(handle, &self.name).await? {
            Some(l) => l.header.index,
            None => {
                // EEXIST: made meanwhile by someone else.
                let added = handle
                    .link()
                    .add(LinkBridge::new(&self.name).build())
                    .execute()
                    .await;
                unless_errno(added, Errno::EEXIST)
                    .map_err(nl(format!("creating bridge {}", self.name)))?;
                index_of(handle, &self.name).await?
            }
        };
        add_address(handle, index, self.gateway, self.subnet.prefix_len()).await?;
        handle
            .link()
            .set(LinkUnspec::new_with_index(index).up().build())
            .execute()
            .await
            .map_err(nl(format!("bringing {} up", self.name)))?;
        Ok(index)
    }

    /// Connects the pod whose network namespace is `netns`: a veth pair with
    /// `host_ifname` on the bridge and `eth0` in the pod holding `pod_ip`, the pod's
    /// loopback up and its default route via the gateway. Makes the bridge first if
    /// needed. A pod already connected through `host_ifname` is left as it is.
    pub async fn attach(
        &self,
        netns: &Path,
        host_ifname: &str,
        pod_ip: IpAddr,
    ) -> Result<(), NetError> {
        let node = connect_here()?;
        let bridge = self.ensure_with(&node).await?;
        if link_by_name(&node, host_ifname).await?.is_some() {
            return Ok(());
        }
        // The peer is made on the node under a temporary name and moved.
        let peer = format!("{host_ifname}p");
        node.link()
            .add(LinkVeth::new(host_ifname, &peer).build())
            .execute()
            .await
            .map_err(nl(format!("creating veth {host_ifname}")))?;
        let result = self
            .wire(&node, bridge, netns, host_ifname, &peer, pod_ip)
            .await;
        if result.is_err() {
            // Deleting one end removes both, wherever the peer is.
            if let Ok(i) = index_of(&node, host_ifname).await {
                let _ = node.link().del(i).execute().await;
            }
        }
        result
    }

    async fn wire(
        &self,
        node: &Handle,
        bridge: u32,
        netns: &Path,
        host_ifname: &str,
        peer: &str,
        pod_ip: IpAddr,
    ) -> Result<(), NetError> {
        let host = index_of(node, host_ifname).await?;
        let peer_index = index_of(node, peer).await?;
        if let Some(mtu) = self.mtu {
            for (index, name) in [(host, host_ifname), (peer_index, peer)] {
                node.link()
                    .set(LinkUnspec::new_with_index(index).mtu(mtu).build())
                    .execute()
                    .await
                    .map_err(nl(format!("setting the MTU of {name}")))?;
            }
        }
        let ns = File::open(netns).map_err(io(format!("opening {}", netns.display())))?;
        node.link()
            .set(
                LinkUnspec::new_with_index(peer_index)
                    .setns_by_fd(ns.as_raw_fd())
                    .build(),
            )
            .execute()
            .await
            .map_err(nl(format!("moving {peer} into the pod")))?;
        node.link()
            .set(
                LinkUnspec::new_with_index(host)
                    .controller(bridge)
                    .up()
                    .build(),
            )
            .execute()
            .await
            .map_err(nl(format!("attaching {host_ifname} to {}", self.name)))?;
        node.link()
            .set_port(LinkBridgePort::new(host).hairpin(true).build())
            .execute()
            .await
            .map_err(nl(format!("hairpin mode on {host_ifname}")))?;

        let pod = connect_in(netns)?;
        let inner = index_of(&pod, peer).await?;
        pod.link()
            .set(
                LinkUnspec::new_with_index(inner)
                    .name(POD_IFNAME.to_string())
                    .build(),
            )
            .execute()
            .await
            .map_err(nl("renaming the pod's interface"))?;
        add_address(&pod, inner, pod_ip, self.subnet.prefix_len()).await?;
        pod.link()
            .set(LinkUnspec::new_with_index(inner).up().build())
            .execute()
            .await
            .map_err(nl("bringing eth0 up"))?;
        let lo = index_of(&pod, "lo").await?;
        pod.link()
            .set(LinkUnspec::new_with_index(lo).up().build())
            .execute()
            .await
            .map_err(nl("bringing lo up"))?;
        let route = match self.gateway {
            IpAddr::V4(gw) => RouteMessageBuilder::<std::net::Ipv4Addr>::new()
                .gateway(gw)
                .output_interface(inner)
                .build(),
            IpAddr::V6(gw) => RouteMessageBuilder::<std::net::Ipv6Addr>::new()
                .gateway(gw)
                .output_interface(inner)
                .build(),
        };
        let added = pod.route().add(route).execute().await;
        unless_errno(added, Errno::EEXIST)
            .map(drop)
            .map_err(nl("adding the default route"))
    }

    /// Disconnects a pod: deletes its veth pair (by the host-side name). Nothing to do
    /// if it is gone already (it goes with the pod's namespace).
    pub async fn detach(&self, host_ifname: &str) -> Result<(), NetError> {
        let node = connect_here()?;
        let Some(link) = link_by_name(&node, host_ifname).await? else {
            return Ok(());
        };
        let deleted = node.link().del(link.header.index).execute().await;
        unless_errno(deleted, Errno::ENODEV)
            .map(drop)
            .map_err(nl(format!("deleting {host_ifname}")))
    }
}

/// The host-side veth name for a sandbox: `veth` and eight hex digits of a hash of
/// its id (stable, so it can be found again after a restart).
pub fn host_ifname(sandbox_id: &str) -> String {
    // FNV-1a: stable across builds, unlike std's hasher.
    let mut h: u32 = 0x811c_9dc5;
    for b in sandbox_id.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    format!("veth{h:08x}")
}

/// Sets a boolean sysctl to 1.
fn write_sysctl(path: &str) -> Result<(), NetError> {
    std::fs::write(path, b"1").map_err(|source| NetError::Io {
        context: format!("writing {path}"),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_and_names() {
        let b = Bridge::new("fk0", "10.42.7.9/24".parse().unwrap());
        assert_eq!(b.subnet.to_string(), "10.42.7.0/24");
        assert_eq!(b.gateway.to_string(), "10.42.7.1");
        let b = Bridge::new("fk0", "fd00:1::/64".parse().unwrap());
        assert_eq!(b.gateway.to_string(), "fd00:1::1");
        let n = host_ifname("3f1b0c2e-aaaa-bbbb-cccc-000000000001");
        assert_eq!(n.len(), 12);
        assert!(n.starts_with("veth"));
        assert_eq!(n, host_ifname("3f1b0c2e-aaaa-bbbb-cccc-000000000001"));
        assert_ne!(n, host_ifname("3f1b0c2e-aaaa-bbbb-cccc-000000000002"));
    }
}
