//! The kubelet's side of the built-in pod network (`--pod-network=bridge`): the node's
//! podCIDR (from `--pod-cidr` or the Node's `spec.podCIDR`), addresses from it kept
//! under `<root-dir>/networks/<bridge>` (host-local IPAM, in the CNI plugin's layout),
//! and each pod's sandbox connected to the bridge.

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Node;
use kube::Api;
use pod_network::{host_ifname, Bridge, HostLocal};

use crate::Shared;

/// The node's pod network.
pub(crate) struct PodNetwork {
    pub(crate) ipam: HostLocal,
    pub(crate) bridge: Bridge,
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
            let bridge = Bridge::new(&shared.config.pod_bridge_name, cidr);
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
            Ok(Arc::new(PodNetwork { ipam, bridge }))
        })
        .await
        .cloned()
}

/// Gives the pod `uid` an address and connects its network namespace `netns` to the
/// bridge; the same address again for a pod connected before (a restarted kubelet).
pub(crate) async fn connect(shared: &Shared, uid: &str, netns: &Path) -> Result<IpAddr, String> {
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
    Ok(ip)
}

/// Releases the pod's address (its veth pair goes with its network namespace). Before
/// the network is set up in this process there is nothing in memory to release: the
/// setup releases the addresses of pods whose directory is gone.
pub(crate) fn disconnect(shared: &Shared, uid: &str) {
    if let Some(net) = shared.network.get() {
        if let Err(e) = net.ipam.release(uid) {
            tracing::warn!(error = %e, uid, "releasing the pod's address failed");
        }
    }
}
