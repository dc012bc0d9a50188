//! The kubelet's side of the built-in pod network (`--pod-network=bridge`): the node's
//! podCIDR (from `--pod-cidr` or the Node's `spec.podCIDR`), addresses from it kept
//! under `<root-dir>/networks/<bridge>` (host-local IPAM, in the CNI plugin's layout),
//! each pod's sandbox connected to the bridge, and its host ports forwarded.

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Node;
use k8s_openapi::api::core::v1::PodSpec;
use kube::Api;
use pod_network::{host_ifname, Bridge, HostLocal, HostPort, HostPorts};

use crate::Shared;

/// The node's pod network.
pub(crate) struct PodNetwork {
    pub(crate) ipam: HostLocal,
    pub(crate) bridge: Bridge,
    pub(crate) hostports: Arc<HostPorts>,
}

/// The network, set up on first use. Fails (and is tried again by the next pod)
/// while the node has no podCIDR yet, with upstream's wording for a network that is
/// not ready.
async fn network(shared: &Shared) -> Result<Arc<PodNetwork>, String> {
    shared
        .network
        .get_or_try_init(|| async {
            let cidr = match shared.config.pod_cidr {
                Some(c) => c,
                None => {
                    let api: Api<Node> = Api::all(shared.client.clone());
                    let node = api
                        .get(&shared.node_name)
                        .await
                        .map_err(|e| format!("network is not ready: reading the node: {e}"))?;
                    node.spec
                        .and_then(|s| s.pod_cidr)
                        .and_then(|c| c.parse().ok())
                        .ok_or_else(|| {
                            "network is not ready: the node has no podCIDR yet".to_string()
                        })?
                }
            };
            let bridge =
                Bridge::new(&shared.config.pod_bridge_name, cidr).with_mtu(shared.config.pod_mtu);
            bridge
                .enable_forwarding()
                .map_err(|e| format!("network is not ready: {e}"))?;
            let dir = shared
                .config
                .root_dir
                .join("networks")
                .join(&shared.config.pod_bridge_name);
            // Addresses of pods whose directory is gone were left behind by pods
            // removed while no kubelet ran: released here.
            let pods = shared.config.pods_dir();
            let ipam = tokio::task::spawn_blocking(move || {
                let ipam = HostLocal::open(&dir, cidr)?;
                for (ip, owner) in ipam.release_unless(|owner| pods.join(owner).exists())? {
                    tracing::info!(%ip, pod = owner, "released the address of a pod that is gone");
                }
                Ok::<_, pod_network::IpamError>(ipam)
            })
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("network is not ready: {e}"))?;
            // Host port rules of pods gone while no kubelet ran go now.
            let hostports = Arc::new(HostPorts::new("nft"));
            let hp = hostports.clone();
            tokio::task::spawn_blocking(move || hp.reset())
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| format!("network is not ready: {e}"))?;
            Ok(Arc::new(PodNetwork {
                ipam,
                bridge,
                hostports,
            }))
        })
        .await
        .cloned()
}

/// Gives the pod `uid` an address and connects its network namespace `netns` to the
/// bridge; the same address again for a pod connected before (a restarted kubelet).
pub(crate) async fn connect(
    shared: &Shared,
    uid: &str,
    netns: &Path,
    spec: &PodSpec,
) -> Result<IpAddr, String> {
    let net = network(shared).await?;
    let owner = uid.to_string();
    let n = net.clone();
    let ip = tokio::task::spawn_blocking(move || n.ipam.allocate(&owner, pod_network::POD_IFNAME))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("failed to allocate for range 0: {e}"))?;
    if let Err(e) = net.bridge.attach(netns, &host_ifname(uid), ip).await {
        let _ = net.ipam.release(uid);
        return Err(format!("failed to set up pod network: {e}"));
    }
    if let IpAddr::V4(pod_ip) = ip {
        let ports = host_ports(spec, pod_ip);
        if !ports.is_empty() {
            let (hp, owner) = (net.hostports.clone(), uid.to_string());
            tokio::task::spawn_blocking(move || hp.set(&owner, ports))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| format!("failed to set up host ports: {e}"))?;
        }
    }
    Ok(ip)
}

/// The host ports of the pod's containers (and init containers, as upstream
/// counts them), forwarded to `pod_ip`.
fn host_ports(spec: &PodSpec, pod_ip: std::net::Ipv4Addr) -> Vec<HostPort> {
    let containers = spec
        .init_containers
        .iter()
        .flatten()
        .chain(spec.containers.iter());
    let mut out: Vec<HostPort> = containers
        .flat_map(|c| c.ports.iter().flatten())
        .filter_map(|p| {
            let host_port = u16::try_from(p.host_port?).ok().filter(|h| *h > 0)?;
            Some(HostPort {
                protocol: p.protocol.as_deref().unwrap_or("TCP").to_lowercase(),
                host_ip: p
                    .host_ip
                    .as_deref()
                    .and_then(|h| h.parse().ok())
                    .filter(|h: &std::net::Ipv4Addr| !h.is_unspecified()),
                host_port,
                pod_ip,
                container_port: u16::try_from(p.container_port).ok()?,
            })
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Releases the pod's address (its veth pair goes with its network namespace). Before
/// the network is set up in this process there is nothing in memory to release: the
/// setup releases the addresses of pods whose directory is gone.
pub(crate) fn disconnect(shared: &Shared, uid: &str) {
    if let Some(net) = shared.network.get() {
        if let Err(e) = net.ipam.release(uid) {
            tracing::warn!(error = %e, uid, "releasing the pod's address failed");
        }
        let (hp, owner) = (net.hostports.clone(), uid.to_string());
        tokio::task::spawn_blocking(move || {
            if let Err(e) = hp.remove(&owner) {
                tracing::warn!(error = %e, uid = owner, "removing the pod's host ports failed");
            }
        });
    }
}
