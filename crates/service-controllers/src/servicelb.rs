//! The built-in service load balancer (the role k3s's servicelb plays): a Service
//! of type LoadBalancer with no `loadBalancerClass` gets the addresses of the
//! cluster's Ready nodes as its load-balancer ingress (a node's ExternalIP when it
//! has one, else its InternalIP), with `ipMode: VIP`; kube-proxy then serves the
//! Service's ports on those addresses. A Service that stops being a LoadBalancer
//! loses the ingress. Services of another class are another implementation's.

use std::collections::BTreeSet;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Service};
use kube::api::{Api, Patch, PatchParams};
use kube::Client;
use serde_json::json;

use controllers::controller::{ControllerContext, ControllerFuture};
use controllers::error::ControllerError;
use controllers::informer::{
    object_key, split_key, HandlerRegistration, Informer, InformerFactory, Notification, Store,
};
use controllers::workqueue::WorkQueue;

use crate::workers::{run_when_synced, KeySync};

/// Canonical name of the service load balancer controller.
pub const SERVICE_LB_CONTROLLER_NAME: &str = "service-lb-controller";

/// Starts the controller (one worker).
pub fn start_service_lb_controller(
    ctx: &ControllerContext,
) -> Result<ControllerFuture, ControllerError> {
    let c = ServiceLbController::new(ctx);
    Ok(Box::pin(c.run(1)))
}

struct Inner {
    client: Client,
    services: Store<Service>,
    nodes: Store<Node>,
    queue: WorkQueue<String>,
}

/// The service load balancer controller.
pub struct ServiceLbController {
    inner: Arc<Inner>,
    informers: InformerFactory,
    service_informer: Informer<Service>,
    node_informer: Informer<Node>,
    registrations: Vec<HandlerRegistration>,
}

/// Whether this controller serves the Service's load balancer.
fn ours(svc: &Service) -> bool {
    svc.spec.as_ref().is_some_and(|s| {
        s.type_.as_deref() == Some("LoadBalancer") && s.load_balancer_class.is_none()
    })
}

/// The load-balancer addresses the nodes offer: each Ready node's ExternalIP, or
/// its InternalIP, sorted.
pub fn node_ingress(nodes: &[Arc<Node>]) -> Vec<String> {
    let mut ips = BTreeSet::new();
    for n in nodes {
        let status = n.status.as_ref();
        let ready = status
            .and_then(|s| s.conditions.as_ref())
            .into_iter()
            .flatten()
            .any(|c| c.type_ == "Ready" && c.status == "True");
        if !ready {
            continue;
        }
        let addrs = status.and_then(|s| s.addresses.as_ref());
        let pick = |ty: &str| {
            addrs
                .into_iter()
                .flatten()
                .find(|a| a.type_ == ty)
                .map(|a| a.address.clone())
        };
        if let Some(ip) = pick("ExternalIP").or_else(|| pick("InternalIP")) {
            ips.insert(ip);
        }
    }
    ips.into_iter().collect()
}

/// The ingress addresses a Service's status lists.
fn current_ingress(svc: &Service) -> Vec<String> {
    svc.status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|i| i.ip.clone())
        .collect()
}

impl ServiceLbController {
    /// Builds the controller on the context's shared informers and subscribes to them.
    pub fn new(ctx: &ControllerContext) -> Self {
        let service_informer = ctx.informers.informer::<Service>();
        let node_informer = ctx.informers.informer::<Node>();
        let queue = WorkQueue::new("service-lb");
        let q = queue.clone();
        let svc_reg = service_informer.add_handler(move |n: &Notification<Service>| {
            if !matches!(n, Notification::Deleted(_)) {
                q.add(object_key(n.object().as_ref()));
            }
        });
        // A node coming, going or changing its addresses or readiness changes every
        // load balancer.
        let q = queue.clone();
        let services = service_informer.store();
        let node_reg = node_informer.add_handler(move |_: &Notification<Node>| {
            for svc in services.list() {
                if ours(&svc) {
                    q.add(object_key(svc.as_ref()));
                }
            }
        });
        ServiceLbController {
            inner: Arc::new(Inner {
                client: ctx.client.clone(),
                services: service_informer.store(),
                nodes: node_informer.store(),
                queue,
            }),
            informers: ctx.informers.clone(),
            service_informer,
            node_informer,
            registrations: vec![svc_reg, node_reg],
        }
    }

    /// Starts the informers, waits for their caches, and runs `workers` workers until
    /// the future is dropped.
    pub async fn run(self, workers: usize) {
        let synced = async {
            tokio::join!(
                self.service_informer.wait_synced(),
                self.node_informer.wait_synced()
            );
        };
        run_when_synced(
            SERVICE_LB_CONTROLLER_NAME,
            &self.informers,
            synced,
            self.registrations,
            workers,
            self.inner,
        )
        .await;
    }
}

impl Inner {
    async fn sync(&self, key: &str) -> Result<(), ControllerError> {
        let Some(svc) = self.services.get(key) else {
            return Ok(());
        };
        let current = current_ingress(&svc);
        let wanted = if ours(&svc) {
            node_ingress(&self.nodes.list())
        } else if svc.spec.as_ref().and_then(|s| s.type_.as_deref()) != Some("LoadBalancer") {
            Vec::new()
        } else {
            return Ok(()); // another class's load balancer
        };
        if current == wanted {
            return Ok(());
        }
        let ingress = if wanted.is_empty() {
            serde_json::Value::Null
        } else {
            wanted
                .iter()
                .map(|ip| json!({"ip": ip, "ipMode": "VIP"}))
                .collect()
        };
        let (namespace, name) = split_key(key);
        let api: Api<Service> = Api::namespaced(self.client.clone(), namespace);
        let patch = json!({"status": {"loadBalancer": {"ingress": ingress}}});
        match api
            .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => {
                let e = ControllerError::from(e);
                if e.is_not_found() {
                    Ok(())
                } else {
                    Err(e)
                }
            }
        }
    }
}

impl KeySync for Inner {
    fn queue(&self) -> &WorkQueue<String> {
        &self.queue
    }

    async fn sync(&self, key: &str) -> Result<(), ControllerError> {
        Inner::sync(self, key).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, ready: bool, addrs: &[(&str, &str)]) -> Arc<Node> {
        let addrs: Vec<_> = addrs
            .iter()
            .map(|(t, a)| json!({"type": t, "address": a}))
            .collect();
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name},
                "status": {
                    "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}],
                    "addresses": addrs
                }
            }))
            .unwrap(),
        )
    }

    #[test]
    fn ready_nodes_offer_external_then_internal_addresses() {
        let nodes = [
            node("b", true, &[("InternalIP", "192.0.2.20")]),
            node(
                "a",
                true,
                &[("InternalIP", "192.0.2.10"), ("ExternalIP", "198.51.100.1")],
            ),
            node("c", false, &[("InternalIP", "192.0.2.30")]),
            node("d", true, &[("Hostname", "d")]),
        ];
        assert_eq!(node_ingress(&nodes), ["192.0.2.20", "198.51.100.1"]);
    }

    #[test]
    fn only_classless_load_balancers_are_ours() {
        let svc = |v: serde_json::Value| -> Service { serde_json::from_value(v).unwrap() };
        assert!(ours(&svc(json!({"spec": {"type": "LoadBalancer"}}))));
        assert!(!ours(&svc(
            json!({"spec": {"type": "LoadBalancer", "loadBalancerClass": "example.com/lb"}})
        )));
        assert!(!ours(&svc(json!({"spec": {"type": "NodePort"}}))));
    }
}
