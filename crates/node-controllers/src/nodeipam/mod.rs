//! The node IPAM controller (`node-ipam-controller`) with upstream's range allocator:
//! when `--allocate-node-cidrs` is set, every node without `spec.podCIDRs` gets one
//! subnet per cluster CIDR (`--cluster-cidr`, at most one per IP family, subnets of
//! `--node-cidr-mask-size-ipv4`/`-ipv6`), written with a patch of `spec.podCIDR` and
//! `spec.podCIDRs`. CIDRs of existing nodes are marked used, those of deleted nodes
//! released, and the service range (`--service-cluster-ip-range`) is kept out when
//! it overlaps. When a range is exhausted the node gets a `CIDRNotAvailable` event
//! (component `cidrAllocator`).
//!
//! [`RangeAllocator`] is the bookkeeping, without I/O.

pub mod cidrset;

use std::sync::Arc;

use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch, PatchParams};
use kube::Client;
use parking_lot::Mutex;
use serde_json::json;

use controllers::events::EventRecorder;
use controllers::informer::{HandlerRegistration, Informer, Notification};
use controllers::workqueue::WorkQueue;
use controllers::{
    run_workers, ControllerContext, ControllerError, ControllerFuture, ControllerManagerConfig,
};

use crate::nodelifecycle::record_node_status_change;
pub use cidrset::{CidrError, CidrSet, IpNet};

/// Canonical name of the controller.
pub const NODE_IPAM_CONTROLLER_NAME: &str = "node-ipam-controller";
/// The event source component of the range allocator.
pub const CIDR_ALLOCATOR_COMPONENT: &str = "cidrAllocator";

const CIDR_UPDATE_WORKERS: usize = 30;
const CIDR_UPDATE_RETRIES: usize = 3;

/// Parses a comma-separated list of CIDRs (`--cluster-cidr`): one or two, and two only
/// when they are of different families.
pub fn parse_cluster_cidrs(list: &str) -> Result<Vec<IpNet>, ControllerError> {
    let mut out = Vec::new();
    for part in list.trim().split(',') {
        let cidr: IpNet = part.parse().map_err(|_| {
            ControllerError::Config(format!(
                "failed to parse cidr value:{part:?} with error:invalid CIDR address: {part}"
            ))
        })?;
        out.push(cidr);
    }
    let v6 = out.iter().filter(|c| c.is_ipv6()).count();
    let dual = v6 > 0 && v6 < out.len();
    if out.len() > 1 && !dual {
        return Err(ControllerError::Config(format!(
            "len of ClusterCIDRs=={} and they are not configured as dual stack (at least one from each IPFamily",
            out.len()
        )));
    }
    if out.len() > 2 {
        return Err(ControllerError::Config(format!(
            "length of clusterCIDRs is:{} more than max allowed of 2",
            out.len()
        )));
    }
    Ok(out)
}

/// Why the allocator refused.
#[derive(Debug, thiserror::Error)]
pub enum AllocatorError {
    /// A node CIDR that does not parse.
    #[error("failed to parse node {node}, CIDR {cidr}")]
    BadNodeCidr {
        /// The node.
        node: String,
        /// The CIDR text.
        cidr: String,
    },
    /// A node CIDR at an index without a cluster CIDR.
    #[error("node:{node} has an allocated cidr: {cidr} at index:{index} that does not exist in cluster cidrs configuration")]
    NoSuchIndex {
        /// The node.
        node: String,
        /// The CIDR text.
        cidr: String,
        /// Its index in `spec.podCIDRs`.
        index: usize,
    },
    /// Occupying a node CIDR failed.
    #[error("failed to mark cidr[{cidr}] at idx [{index}] as occupied for node: {node}: {source}")]
    Occupy {
        /// The node.
        node: String,
        /// The CIDR text.
        cidr: String,
        /// Its index.
        index: usize,
        /// Why.
        source: CidrError,
    },
    /// A cluster CIDR is exhausted.
    #[error("failed to allocate cidr from cluster cidr at idx:{index}: {source}")]
    Allocate {
        /// The index of the exhausted cluster CIDR.
        index: usize,
        /// Why.
        source: CidrError,
    },
}

/// The pod CIDRs of a node.
pub fn node_pod_cidrs(node: &Node) -> Vec<String> {
    node.spec
        .as_ref()
        .and_then(|s| s.pod_cidrs.clone())
        .filter(|v| !v.is_empty())
        .or_else(|| {
            node.spec
                .as_ref()
                .and_then(|s| s.pod_cidr.clone())
                .filter(|c| !c.is_empty())
                .map(|c| vec![c])
        })
        .unwrap_or_default()
}

/// The bookkeeping of the range allocator: one [`CidrSet`] per cluster CIDR.
#[derive(Debug, Clone)]
pub struct RangeAllocator {
    sets: Vec<CidrSet>,
}

impl RangeAllocator {
    /// Sets over `cluster_cidrs` with the node mask of each family, the service
    /// ranges kept out where they overlap.
    pub fn new(
        cluster_cidrs: &[IpNet],
        mask_ipv4: u8,
        mask_ipv6: u8,
        service_cidrs: &[IpNet],
    ) -> Result<Self, CidrError> {
        let mut sets = Vec::new();
        for c in cluster_cidrs {
            let mask = if c.is_ipv6() { mask_ipv6 } else { mask_ipv4 };
            let mut set = CidrSet::new(*c, mask)?;
            for s in service_cidrs {
                if c.overlaps(s) {
                    set.occupy(s)?;
                }
            }
            sets.push(set);
        }
        Ok(RangeAllocator { sets })
    }

    /// The per-cluster-CIDR sets.
    pub fn sets(&self) -> &[CidrSet] {
        &self.sets
    }

    fn parse_node_cidrs(&self, node: &Node) -> Result<Vec<IpNet>, AllocatorError> {
        let name = node.metadata.name.clone().unwrap_or_default();
        let mut out = Vec::new();
        for (index, cidr) in node_pod_cidrs(node).into_iter().enumerate() {
            let parsed: IpNet = cidr.parse().map_err(|_| AllocatorError::BadNodeCidr {
                node: name.clone(),
                cidr: cidr.clone(),
            })?;
            if index >= self.sets.len() {
                return Err(AllocatorError::NoSuchIndex {
                    node: name,
                    cidr,
                    index,
                });
            }
            out.push(parsed);
        }
        Ok(out)
    }

    /// Marks the node's CIDRs as used.
    pub fn occupy_node(&mut self, node: &Node) -> Result<(), AllocatorError> {
        let name = node.metadata.name.clone().unwrap_or_default();
        for (index, cidr) in self.parse_node_cidrs(node)?.iter().enumerate() {
            self.sets[index]
                .occupy(cidr)
                .map_err(|source| AllocatorError::Occupy {
                    node: name.clone(),
                    cidr: cidr.to_string(),
                    index,
                    source,
                })?;
        }
        Ok(())
    }

    /// Frees the node's CIDRs.
    pub fn release_node(&mut self, node: &Node) -> Result<(), AllocatorError> {
        let cidrs = self.parse_node_cidrs(node)?;
        self.release(&cidrs);
        Ok(())
    }

    /// Frees CIDRs (one per set, in order).
    pub fn release(&mut self, cidrs: &[IpNet]) {
        for (set, cidr) in self.sets.iter_mut().zip(cidrs) {
            if let Err(err) = set.release(cidr) {
                tracing::error!(cidr = %cidr, error = %err, "error when releasing CIDR");
            }
        }
    }

    /// Takes one subnet from every set; on exhaustion nothing stays taken.
    pub fn allocate(&mut self) -> Result<Vec<IpNet>, AllocatorError> {
        let mut out = Vec::new();
        for index in 0..self.sets.len() {
            match self.sets[index].allocate_next() {
                Ok(c) => out.push(c),
                Err(source) => {
                    self.release(&out);
                    return Err(AllocatorError::Allocate { index, source });
                }
            }
        }
        Ok(out)
    }
}

/// Starts the controller (the manager's [`controllers::StartFn`]). Without
/// `--allocate-node-cidrs` it does nothing.
pub fn start_node_ipam_controller(
    ctx: &ControllerContext,
) -> Result<ControllerFuture, ControllerError> {
    if !ctx.config.allocate_node_cidrs {
        tracing::info!(
            controller = NODE_IPAM_CONTROLLER_NAME,
            "--allocate-node-cidrs is false; not allocating pod CIDRs"
        );
        return Ok(Box::pin(futures::future::pending()));
    }
    Ok(NodeIpamController::new(ctx)?.run())
}

/// The allocator from the controller manager's flags.
pub fn allocator_from_config(
    c: &ControllerManagerConfig,
) -> Result<RangeAllocator, ControllerError> {
    let cluster = parse_cluster_cidrs(&c.cluster_cidr)?;
    let mut services = Vec::new();
    if !c.service_cluster_ip_range.trim().is_empty() {
        for part in c.service_cluster_ip_range.trim().split(',') {
            let s: IpNet = part.parse().map_err(|e: CidrError| {
                ControllerError::Config(format!("invalid --service-cluster-ip-range {part:?}: {e}"))
            })?;
            services.push(s);
        }
    }
    RangeAllocator::new(
        &cluster,
        c.node_cidr_mask_size_ipv4,
        c.node_cidr_mask_size_ipv6,
        &services,
    )
    .map_err(|e| ControllerError::Config(e.to_string()))
}

struct Inner {
    client: Client,
    recorder: EventRecorder,
    nodes: Informer<Node>,
    allocator: Mutex<RangeAllocator>,
    queue: WorkQueue<String>,
}

/// The node IPAM controller.
pub struct NodeIpamController {
    inner: Arc<Inner>,
    registrations: Vec<HandlerRegistration>,
}

impl NodeIpamController {
    /// Builds the controller on `ctx`; fails on invalid CIDR flags.
    pub fn new(ctx: &ControllerContext) -> Result<Self, ControllerError> {
        let allocator = allocator_from_config(&ctx.config)?;
        let nodes = ctx.informers.informer::<Node>();
        let inner = Arc::new(Inner {
            client: ctx.client.clone(),
            recorder: ctx.events.recorder(CIDR_ALLOCATOR_COMPONENT),
            nodes: nodes.clone(),
            allocator: Mutex::new(allocator),
            queue: WorkQueue::new("cidrallocator_node"),
        });
        let weak = Arc::downgrade(&inner);
        let registration = nodes.add_handler(move |n: &Notification<Node>| {
            let Some(inner) = weak.upgrade() else { return };
            if let Notification::Deleted(node) = n {
                if let Err(err) = inner.allocator.lock().release_node(node) {
                    tracing::error!(error = %err, "error while processing CIDR Release");
                }
            }
            inner
                .queue
                .add(n.object().metadata.name.clone().unwrap_or_default());
        });
        Ok(NodeIpamController {
            inner,
            registrations: vec![registration],
        })
    }

    /// The future that runs the controller until dropped.
    pub fn run(self) -> ControllerFuture {
        let NodeIpamController {
            inner,
            registrations,
        } = self;
        Box::pin(async move {
            let _registrations = registrations;
            tracing::info!(
                controller = NODE_IPAM_CONTROLLER_NAME,
                "starting range CIDR allocator"
            );
            inner.nodes.wait_synced().await;
            // Mark the CIDRs of existing nodes before handing out any.
            for node in inner.nodes.store().list() {
                if let Err(err) = inner.allocator.lock().occupy_node(&node) {
                    tracing::error!(error = %err, "failed to occupy the CIDRs of an existing node");
                }
            }
            let i = inner.clone();
            run_workers(
                NODE_IPAM_CONTROLLER_NAME,
                inner.queue.clone(),
                CIDR_UPDATE_WORKERS,
                move |name| {
                    let i = i.clone();
                    async move { i.sync_node(&name).await }
                },
            )
            .await;
        })
    }
}

impl Inner {
    async fn sync_node(&self, name: &str) -> Result<(), ControllerError> {
        let Some(node) = self.nodes.store().get(name) else {
            return Ok(());
        };
        if node.metadata.deletion_timestamp.is_some() {
            return self
                .allocator
                .lock()
                .release_node(&node)
                .map_err(|e| ControllerError::Other(e.to_string()));
        }
        if !node_pod_cidrs(&node).is_empty() {
            return self
                .allocator
                .lock()
                .occupy_node(&node)
                .map_err(|e| ControllerError::Other(e.to_string()));
        }
        let allocated = self.allocator.lock().allocate();
        let cidrs = match allocated {
            Ok(c) => c,
            Err(err) => {
                record_node_status_change(&self.recorder, &node, "CIDRNotAvailable");
                return Err(ControllerError::Other(err.to_string()));
            }
        };
        self.update_cidrs(&node, &cidrs).await
    }

    async fn update_cidrs(&self, cached: &Node, cidrs: &[IpNet]) -> Result<(), ControllerError> {
        let name = cached.metadata.name.clone().unwrap_or_default();
        let wanted: Vec<String> = cidrs.iter().map(ToString::to_string).collect();
        let api: Api<Node> = Api::all(self.client.clone());
        // A fresh read: the cache may not show a CIDR written moments ago.
        let node = match api.get_opt(&name).await {
            Ok(Some(n)) => n,
            Ok(None) => {
                self.allocator.lock().release(cidrs);
                return Ok(());
            }
            Err(err) => {
                self.allocator.lock().release(cidrs);
                return Err(err.into());
            }
        };
        let current = node_pod_cidrs(&node);
        if current == wanted {
            return Ok(());
        }
        if !current.is_empty() {
            tracing::error!(node = %name, pod_cidrs = ?current, "node already has a CIDR allocated; releasing the new one");
            self.allocator.lock().release(cidrs);
            return Ok(());
        }
        let Some(first) = wanted.first() else {
            return Ok(());
        };
        let patch = json!({"spec": {"podCIDR": first, "podCIDRs": wanted}});
        let mut last = None;
        for _ in 0..CIDR_UPDATE_RETRIES {
            match api
                .patch(&name, &PatchParams::default(), &Patch::Strategic(&patch))
                .await
            {
                Ok(_) => {
                    tracing::info!(node = %name, pod_cidrs = ?wanted, "set node PodCIDR");
                    return Ok(());
                }
                Err(err) => last = Some(ControllerError::from(err)),
            }
        }
        let err = last.unwrap_or_else(|| ControllerError::Other("patch failed".into()));
        tracing::error!(node = %name, error = %err, "failed to update node PodCIDR after multiple attempts");
        record_node_status_change(&self.recorder, &node, "CIDRAssignmentFailed");
        if err.code() != Some(504) {
            self.allocator.lock().release(cidrs);
        }
        Err(ControllerError::Other(format!(
            "failed to patch node CIDR: {err}"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::NodeSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    fn node(name: &str, cidrs: &[&str]) -> Node {
        Node {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            spec: Some(NodeSpec {
                pod_cidr: cidrs.first().map(|s| s.to_string()),
                pod_cidrs: Some(cidrs.iter().map(|s| s.to_string()).collect()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn strings(v: &[IpNet]) -> Vec<String> {
        v.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn cluster_cidr_flag() {
        assert_eq!(
            strings(&parse_cluster_cidrs("10.244.0.0/16").unwrap()),
            ["10.244.0.0/16"]
        );
        assert_eq!(
            strings(&parse_cluster_cidrs("10.244.0.0/16,fd00:10:244::/56").unwrap()),
            ["10.244.0.0/16", "fd00:10:244::/56"]
        );
        assert_eq!(
            parse_cluster_cidrs("10.244.0.0/16,10.245.0.0/16").unwrap_err().to_string(),
            "len of ClusterCIDRs==2 and they are not configured as dual stack (at least one from each IPFamily"
        );
        assert!(parse_cluster_cidrs("10.0.0.0/8,fd00::/8,10.1.0.0/16").is_err());
        assert!(parse_cluster_cidrs("").is_err());
        assert!(parse_cluster_cidrs("nonsense").is_err());
    }

    #[test]
    fn service_range_is_kept_out() {
        let mut a = RangeAllocator::new(
            &[net("10.0.0.0/22")],
            24,
            64,
            &[net("10.0.1.0/24"), net("10.96.0.0/12")],
        )
        .unwrap();
        assert_eq!(a.sets()[0].allocated(), 1);
        let got: Vec<String> = (0..3)
            .map(|_| strings(&a.allocate().unwrap()).join(","))
            .collect();
        assert_eq!(got, ["10.0.0.0/24", "10.0.2.0/24", "10.0.3.0/24"]);
        assert!(a.allocate().is_err());
    }

    #[test]
    fn occupancy_release_and_exhaustion() {
        let mut a = RangeAllocator::new(&[net("10.0.0.0/23")], 24, 64, &[]).unwrap();
        a.occupy_node(&node("existing", &["10.0.0.0/24"])).unwrap();
        assert_eq!(strings(&a.allocate().unwrap()), ["10.0.1.0/24"]);
        let err = a.allocate().unwrap_err();
        assert_eq!(
            err.to_string(),
            "failed to allocate cidr from cluster cidr at idx:0: CIDR allocation failed; there are no remaining CIDRs left to allocate in the accepted range"
        );
        a.release_node(&node("existing", &["10.0.0.0/24"])).unwrap();
        assert_eq!(strings(&a.allocate().unwrap()), ["10.0.0.0/24"]);
        // Occupying is idempotent.
        a.occupy_node(&node("existing", &["10.0.0.0/24"])).unwrap();
        assert_eq!(a.sets()[0].allocated(), 2);
        assert_eq!(
            a.occupy_node(&node("x", &["10.0.0.0/24", "fd00::/64"])).unwrap_err().to_string(),
            "node:x has an allocated cidr: fd00::/64 at index:1 that does not exist in cluster cidrs configuration"
        );
        assert!(matches!(
            a.occupy_node(&node("y", &["192.168.0.0/24"])),
            Err(AllocatorError::Occupy { .. })
        ));
        assert!(a.release_node(&node("none", &[])).is_ok());
    }

    #[test]
    fn dual_stack_allocation() {
        let mut a = RangeAllocator::new(
            &[net("10.244.0.0/16"), net("fd00:10:244::/56")],
            24,
            64,
            &[],
        )
        .unwrap();
        assert_eq!(
            strings(&a.allocate().unwrap()),
            ["10.244.0.0/24", "fd00:10:244::/64"]
        );
        assert_eq!(
            strings(&a.allocate().unwrap()),
            ["10.244.1.0/24", "fd00:10:244:1::/64"]
        );
        a.occupy_node(&node("n", &["10.244.2.0/24", "fd00:10:244:2::/64"]))
            .unwrap();
        assert_eq!(
            strings(&a.allocate().unwrap()),
            ["10.244.3.0/24", "fd00:10:244:3::/64"]
        );
        // If one family runs out, the other's CIDR is given back.
        let mut small =
            RangeAllocator::new(&[net("10.0.0.0/24"), net("fd00::/63")], 24, 64, &[]).unwrap();
        assert!(small.allocate().is_ok());
        assert!(matches!(
            small.allocate(),
            Err(AllocatorError::Allocate { index: 0, .. })
        ));
        assert_eq!(small.sets()[1].allocated(), 1);
    }
}
