//! The overlay that carries pod traffic between nodes, in flannel's model (its `kube`
//! subnet manager with the `vxlan` backend), so a node of ours and a node running
//! flannel understand each other:
//!
//! - each node's podCIDR comes from the node IPAM controller (`spec.podCIDR`);
//! - each node makes its VXLAN tunnel endpoint ([`pod_network::Vtep`]) and publishes
//!   it in its Node's annotations: `flannel.alpha.coreos.com/backend-type: vxlan`,
//!   `.../backend-data: {"VNI":1,"VtepMAC":"…"}`, `.../public-ip` and
//!   `.../kube-subnet-manager: "true"`;
//! - each node watches the Nodes and routes every other node's podCIDR through its
//!   endpoint ([`peers`] reads them, [`pod_network::Vtep::sync_peers`] programs them);
//! - with a cluster CIDR given, pods' traffic leaving the cluster is masqueraded
//!   ([`pod_network::egress`], flannel's `--ip-masq`).
//!
//! [`run`] does all three until shut down, retrying after failures.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use ipnet::Ipv4Net;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::Client;
use pod_network::vxlan::{format_mac, parse_mac, Peer, Vtep, VtepInfo};
use pod_network::NetError;
use serde_json::json;

/// The backend a node's overlay endpoint uses.
pub const BACKEND_TYPE: &str = "flannel.alpha.coreos.com/backend-type";
/// The backend's data (for vxlan: the VNI and the endpoint's MAC).
pub const BACKEND_DATA: &str = "flannel.alpha.coreos.com/backend-data";
/// The address peers send tunnelled packets to.
pub const PUBLIC_IP: &str = "flannel.alpha.coreos.com/public-ip";
/// Marks subnets managed through the Kubernetes API (rather than etcd).
pub const SUBNET_MANAGER: &str = "flannel.alpha.coreos.com/kube-subnet-manager";

/// How long to wait before trying again after a failure.
const RETRY: Duration = Duration::from_secs(2);
/// How often everything is programmed again, whether or not anything changed
/// (repairs what someone else changed on the node).
const RESYNC: Duration = Duration::from_secs(300);

/// Why the overlay could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum OverlayError {
    /// Programming the node's network failed.
    #[error(transparent)]
    Net(#[from] NetError),
    /// An API request failed.
    #[error("{0}: {1}")]
    Api(String, #[source] kube::Error),
    /// The watch of the Nodes ended before it had listed them.
    #[error("the watch of nodes ended")]
    WatchEnded,
}

/// This node's part in the overlay.
#[derive(Clone, Debug)]
pub struct OverlayConfig {
    /// The Node this process runs for.
    pub node_name: String,
    /// The node's address: where other nodes send its pods' traffic.
    pub public_ip: Ipv4Addr,
    /// The cluster's pod range, to masquerade pods' traffic leaving it; `None`
    /// leaves pods' traffic as it is (and removes rules an earlier run made).
    pub masquerade: Option<Ipv4Net>,
}

/// The annotations a node publishes for its endpoint.
pub fn annotations(info: &VtepInfo, vni: u32, public_ip: Ipv4Addr) -> BTreeMap<String, String> {
    let data = json!({"VNI": vni, "VtepMAC": format_mac(&info.mac)});
    BTreeMap::from([
        (BACKEND_TYPE.to_string(), "vxlan".to_string()),
        (BACKEND_DATA.to_string(), data.to_string()),
        (PUBLIC_IP.to_string(), public_ip.to_string()),
        (SUBNET_MANAGER.to_string(), "true".to_string()),
    ])
}

fn pod_cidr(node: &Node) -> Option<Ipv4Net> {
    let spec = node.spec.as_ref()?;
    // The IPv4 one of a dual-stack node's podCIDRs.
    std::iter::once(spec.pod_cidr.as_ref())
        .chain(spec.pod_cidrs.iter().flatten().map(Some))
        .flatten()
        .find_map(|c| c.parse::<Ipv4Net>().ok())
        .map(|n| n.trunc())
}

/// The endpoint a node published, if it did and it is one of ours (vxlan, VNI
/// `vni`).
fn peer_of(node: &Node, vni: u32) -> Option<Peer> {
    let ann = node.metadata.annotations.as_ref()?;
    if ann.get(BACKEND_TYPE).map(String::as_str) != Some("vxlan") {
        return None;
    }
    let data: serde_json::Value = serde_json::from_str(ann.get(BACKEND_DATA)?).ok()?;
    if data["VNI"].as_u64() != Some(u64::from(vni)) {
        return None;
    }
    Some(Peer {
        subnet: pod_cidr(node)?,
        public_ip: ann.get(PUBLIC_IP)?.parse().ok()?,
        mac: parse_mac(data["VtepMAC"].as_str()?)?,
    })
}

/// The endpoints of every node but `me` that published one, in a stable order.
pub fn peers<'a>(nodes: impl IntoIterator<Item = &'a Node>, me: &str, vni: u32) -> Vec<Peer> {
    let mut out: Vec<Peer> = nodes
        .into_iter()
        .filter(|n| n.metadata.name.as_deref() != Some(me))
        .filter_map(|n| peer_of(n, vni))
        .collect();
    out.sort();
    out.dedup();
    out
}

/// What has been done so far, to redo only what changed.
#[derive(Default)]
struct State {
    /// The podCIDR the endpoint was made for, and what it turned out to be.
    vtep: Option<(Ipv4Net, VtepInfo)>,
    /// The peers last programmed.
    programmed: Option<Vec<Peer>>,
    /// The podCIDR the masquerade rules were written for.
    masquerade: Option<Ipv4Net>,
}

/// One pass: the endpoint, the node's annotations, the peers.
async fn sync(
    api: &Api<Node>,
    store: &Store<Node>,
    vtep: &Vtep,
    config: &OverlayConfig,
    state: &mut State,
) -> Result<(), OverlayError> {
    let Some(me) = store.get(&ObjectRef::new(&config.node_name)) else {
        tracing::debug!(node = %config.node_name, "waiting for the node to register");
        return Ok(());
    };
    let Some(cidr) = pod_cidr(&me) else {
        tracing::debug!(node = %config.node_name, "waiting for the node's podCIDR");
        return Ok(());
    };
    let info = match &state.vtep {
        Some((c, info)) if *c == cidr => info.clone(),
        _ => {
            let info = vtep.ensure(cidr).await?;
            tracing::info!(device = %vtep.device, mac = %format_mac(&info.mac), mtu = info.mtu, %cidr, "overlay endpoint ready");
            state.vtep = Some((cidr, info.clone()));
            info
        }
    };
    if let Some(cluster) = config.masquerade {
        if state.masquerade != Some(cidr) {
            state.masquerade = None;
            nft_blocking(move |nft| pod_network::egress::apply(nft, cluster, cidr)).await?;
            tracing::info!(%cluster, %cidr, "pods' traffic leaving the cluster is masqueraded");
            state.masquerade = Some(cidr);
        }
    }
    let want = annotations(&info, vtep.vni, config.public_ip);
    let have = me.metadata.annotations.clone().unwrap_or_default();
    if want.iter().any(|(k, v)| have.get(k) != Some(v)) {
        api.patch(
            &config.node_name,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": want}})),
        )
        .await
        .map_err(|e| OverlayError::Api(format!("annotating node {}", config.node_name), e))?;
    }
    let peers = peers(
        store.state().iter().map(|n| &**n),
        &config.node_name,
        vtep.vni,
    );
    if state.programmed.as_ref() != Some(&peers) {
        state.programmed = None;
        vtep.sync_peers(&peers).await?;
        tracing::info!(peers = peers.len(), "overlay routes programmed");
        state.programmed = Some(peers);
    }
    Ok(())
}

/// Runs `f` with the `nft` command on a blocking thread.
async fn nft_blocking(
    f: impl FnOnce(&std::path::Path) -> Result<(), NetError> + Send + 'static,
) -> Result<(), OverlayError> {
    tokio::task::spawn_blocking(move || f(std::path::Path::new("nft")))
        .await
        .map_err(|e| {
            OverlayError::Net(NetError::Io {
                context: "running nft".into(),
                source: std::io::Error::other(e),
            })
        })?
        .map_err(OverlayError::from)
}

/// Runs this node's part of the overlay until `shutdown` completes. The device and
/// its routes stay when it stops (pods keep talking while it restarts).
pub async fn run(
    client: Client,
    config: OverlayConfig,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), OverlayError> {
    let api: Api<Node> = Api::all(client);
    let vtep = Vtep::new(config.public_ip);
    let (store, writer) = reflector::store::<Node>();
    let changed = Arc::new(tokio::sync::Notify::new());
    let notify = changed.clone();
    let watch = reflector::reflector(
        writer,
        watcher::watcher(api.clone(), watcher::Config::default()),
    )
    .default_backoff()
    .for_each(move |event| {
        if let Err(e) = event {
            tracing::warn!(error = %e, "watching nodes");
        }
        notify.notify_one();
        std::future::ready(())
    });
    let watch = tokio::spawn(watch);
    let mut shutdown = std::pin::pin!(shutdown);
    let mut state = State::default();
    if config.masquerade.is_none() {
        if let Err(e) = nft_blocking(pod_network::egress::remove).await {
            tracing::debug!(error = %e, "no egress masquerade rules removed");
        }
    }
    let result = async {
        tokio::select! {
            r = store.wait_until_ready() => r.map_err(|_| OverlayError::WatchEnded)?,
            _ = &mut shutdown => return Ok(()),
        }
        let mut last_full = tokio::time::Instant::now();
        loop {
            if last_full.elapsed() >= RESYNC {
                state = State::default();
                last_full = tokio::time::Instant::now();
            }
            let wait = match sync(&api, &store, &vtep, &config, &mut state).await {
                Ok(()) => RESYNC,
                Err(e) => {
                    tracing::warn!(error = %e, "overlay sync failed; retrying");
                    state.vtep = None;
                    RETRY
                }
            };
            tokio::select! {
                _ = changed.notified() => {}
                _ = tokio::time::sleep(wait) => {}
                _ = &mut shutdown => return Ok(()),
            }
        }
    }
    .await;
    watch.abort();
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, cidr: Option<&str>, ann: &[(&str, &str)]) -> Node {
        serde_json::from_value(json!({
            "metadata": {"name": name, "annotations": ann.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>()},
            "spec": {"podCIDR": cidr},
        }))
        .unwrap()
    }

    fn published(name: &str, cidr: &str, ip: &str, mac: &str) -> Node {
        let data = format!(r#"{{"VNI":1,"VtepMAC":"{mac}"}}"#);
        node(
            name,
            Some(cidr),
            &[
                (BACKEND_TYPE, "vxlan"),
                (BACKEND_DATA, &data),
                (PUBLIC_IP, ip),
                (SUBNET_MANAGER, "true"),
            ],
        )
    }

    #[test]
    fn annotations_are_flannels() {
        let info = VtepInfo {
            mac: [0x0a, 0, 0, 0, 0, 0x01],
            mtu: 1450,
        };
        let a = annotations(&info, 1, Ipv4Addr::new(192, 0, 2, 1));
        assert_eq!(a[BACKEND_TYPE], "vxlan");
        assert_eq!(
            a[BACKEND_DATA],
            r#"{"VNI":1,"VtepMAC":"0a:00:00:00:00:01"}"#
        );
        assert_eq!(a[PUBLIC_IP], "192.0.2.1");
        assert_eq!(a[SUBNET_MANAGER], "true");
    }

    #[test]
    fn peers_are_other_nodes_that_published_an_endpoint() {
        let nodes = [
            published("me", "10.42.0.0/24", "192.0.2.1", "0a:00:00:00:00:01"),
            published("b", "10.42.2.0/24", "192.0.2.3", "0a:00:00:00:00:03"),
            published("a", "10.42.1.0/24", "192.0.2.2", "0a:00:00:00:00:02"),
            // No podCIDR yet, another backend, another VNI, a bad MAC, no address.
            published("c", "", "192.0.2.4", "0a:00:00:00:00:04"),
            node("d", Some("10.42.4.0/24"), &[(BACKEND_TYPE, "host-gw")]),
            node(
                "e",
                Some("10.42.5.0/24"),
                &[
                    (BACKEND_TYPE, "vxlan"),
                    (BACKEND_DATA, r#"{"VNI":7,"VtepMAC":"0a:00:00:00:00:05"}"#),
                    (PUBLIC_IP, "192.0.2.6"),
                ],
            ),
            published("f", "10.42.6.0/24", "192.0.2.7", "nope"),
            node(
                "g",
                Some("10.42.7.0/24"),
                &[
                    (BACKEND_TYPE, "vxlan"),
                    (BACKEND_DATA, r#"{"VNI":1,"VtepMAC":"0a:00:00:00:00:07"}"#),
                ],
            ),
        ];
        let got = peers(&nodes, "me", 1);
        assert_eq!(
            got,
            vec![
                Peer {
                    subnet: "10.42.1.0/24".parse().unwrap(),
                    public_ip: Ipv4Addr::new(192, 0, 2, 2),
                    mac: [0x0a, 0, 0, 0, 0, 2],
                },
                Peer {
                    subnet: "10.42.2.0/24".parse().unwrap(),
                    public_ip: Ipv4Addr::new(192, 0, 2, 3),
                    mac: [0x0a, 0, 0, 0, 0, 3],
                },
            ]
        );
    }

    #[test]
    fn dual_stack_nodes_use_their_ipv4_cidr() {
        let n: Node = serde_json::from_value(json!({
            "metadata": {"name": "n"},
            "spec": {"podCIDR": "fd00:42::/64", "podCIDRs": ["fd00:42::/64", "10.42.3.7/24"]},
        }))
        .unwrap();
        assert_eq!(pod_cidr(&n), Some("10.42.3.0/24".parse().unwrap()));
    }
}
