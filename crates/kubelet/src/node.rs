//! The Node object of this kubelet: registration (create, or take over an existing
//! Node of the same name), the Lease renewed every 10 s in `kube-node-lease`, and
//! NodeStatus (capacity, allocatable, conditions, addresses, nodeInfo, images)
//! posted when it changes and at least every `--node-status-update-frequency`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{
    ContainerImage, Node, NodeAddress, NodeCondition, NodeSpec, NodeStatus, Taint,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use tracing::{debug, warn};

use crate::machine::node_info;
use crate::{KubeletError, Shared};

/// Where node Leases live.
const LEASE_NAMESPACE: &str = "kube-node-lease";
/// Upstream's lease duration for node heartbeats.
const LEASE_DURATION_SECONDS: i32 = 40;
/// How often the Lease is renewed (a quarter of its duration, as upstream).
const LEASE_RENEW: Duration = Duration::from_secs(10);

/// The HTTP status code of an API error, if it is one.
pub(crate) fn api_code(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(s) => Some(s.code),
        _ => None,
    }
}

/// Parses a `--register-with-taints` item: `key=value:Effect` or `key:Effect`.
pub(crate) fn parse_taint(s: &str) -> Result<Taint, KubeletError> {
    let (kv, effect) = s
        .rsplit_once(':')
        .ok_or_else(|| KubeletError::Config(format!("taint {s:?} has no effect")))?;
    if !matches!(effect, "NoSchedule" | "PreferNoSchedule" | "NoExecute") {
        return Err(KubeletError::Config(format!(
            "taint {s:?}: invalid taint effect: {effect}, unsupported taint effect"
        )));
    }
    let (key, value) = match kv.split_once('=') {
        Some((k, v)) => (k, Some(v.to_string())),
        None => (kv, None),
    };
    Ok(Taint {
        key: key.to_string(),
        value,
        effect: effect.to_string(),
        time_added: None,
    })
}

/// A node condition, keeping the transition time of an unchanged status.
fn condition(
    ty: &str,
    ok: bool,
    reason: &str,
    message: &str,
    previous: Option<&NodeStatus>,
    now: Timestamp,
) -> NodeCondition {
    let status = if ok { "True" } else { "False" };
    let since = previous
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == ty && c.status == status))
        .and_then(|c| c.last_transition_time.clone())
        .unwrap_or(Time(now));
    NodeCondition {
        type_: ty.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_heartbeat_time: Some(Time(now)),
        last_transition_time: Some(since),
    }
}

/// The status this kubelet reports now.
pub(crate) fn desired_status(shared: &Shared, previous: Option<&NodeStatus>) -> NodeStatus {
    let now = Timestamp::now();
    let machine = &shared.machine;
    let cfg = &shared.config;
    let conditions = vec![
        if shared.pressure.read().contains("MemoryPressure") {
            condition(
                "MemoryPressure",
                true,
                "KubeletHasInsufficientMemory",
                "kubelet has insufficient memory available",
                previous,
                now,
            )
        } else {
            condition(
                "MemoryPressure",
                false,
                "KubeletHasSufficientMemory",
                "kubelet has sufficient memory available",
                previous,
                now,
            )
        },
        if shared.pressure.read().contains("DiskPressure") {
            condition(
                "DiskPressure",
                true,
                "KubeletHasDiskPressure",
                "kubelet has disk pressure",
                previous,
                now,
            )
        } else {
            condition(
                "DiskPressure",
                false,
                "KubeletHasNoDiskPressure",
                "kubelet has no disk pressure",
                previous,
                now,
            )
        },
        if shared.pressure.read().contains("PIDPressure") {
            condition(
                "PIDPressure",
                true,
                "KubeletHasInsufficientPID",
                "kubelet has insufficient PID available",
                previous,
                now,
            )
        } else {
            condition(
                "PIDPressure",
                false,
                "KubeletHasSufficientPID",
                "kubelet has sufficient PID available",
                previous,
                now,
            )
        },
        if shared
            .shutting_down
            .load(std::sync::atomic::Ordering::SeqCst)
        {
            condition(
                "Ready",
                false,
                "KubeletNotReady",
                "node is shutting down",
                previous,
                now,
            )
        } else {
            condition(
                "Ready",
                true,
                "KubeletReady",
                "kubelet is posting ready status",
                previous,
                now,
            )
        },
    ];
    let mut images: Vec<ContainerImage> = shared
        .images
        .list()
        .unwrap_or_default()
        .into_iter()
        .map(|i| ContainerImage {
            names: Some(
                i.repo_digests
                    .iter()
                    .chain(i.repo_tags.iter())
                    .cloned()
                    .collect(),
            ),
            size_bytes: Some(i.size as i64),
        })
        .collect();
    images.sort_by_key(|i| std::cmp::Reverse(i.size_bytes));
    images.truncate(50);
    NodeStatus {
        capacity: Some(machine.capacity(cfg.max_pods)),
        allocatable: Some(machine.allocatable(cfg.max_pods, &shared.reserved)),
        conditions: Some(conditions),
        addresses: Some(vec![
            NodeAddress {
                type_: "InternalIP".into(),
                address: shared.node_ip.to_string(),
            },
            NodeAddress {
                type_: "Hostname".into(),
                address: shared.node_name.clone(),
            },
        ]),
        daemon_endpoints: Some(k8s_openapi::api::core::v1::NodeDaemonEndpoints {
            kubelet_endpoint: Some(k8s_openapi::api::core::v1::DaemonEndpoint {
                port: i32::from(shared.config.port),
            }),
        }),
        node_info: Some(node_info()),
        images: Some(images),
        ..Default::default()
    }
}

/// The Node this kubelet registers.
fn node_object(shared: &Shared) -> Result<Node, KubeletError> {
    let mut labels = BTreeMap::from([
        (
            "kubernetes.io/hostname".to_string(),
            shared.node_name.clone(),
        ),
        ("kubernetes.io/os".to_string(), "linux".to_string()),
        ("kubernetes.io/arch".to_string(), node_info().architecture),
        ("beta.kubernetes.io/os".to_string(), "linux".to_string()),
        (
            "beta.kubernetes.io/arch".to_string(),
            node_info().architecture,
        ),
    ]);
    for l in shared.config.node_labels.iter().filter(|l| !l.is_empty()) {
        let (k, v) = l.split_once('=').unwrap_or((l.as_str(), ""));
        labels.insert(k.to_string(), v.to_string());
    }
    let taints = shared
        .config
        .register_with_taints
        .iter()
        .filter(|t| !t.is_empty())
        .map(|t| parse_taint(t))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Node {
        metadata: ObjectMeta {
            name: Some(shared.node_name.clone()),
            labels: Some(labels),
            annotations: Some(BTreeMap::from([(
                "volumes.kubernetes.io/controller-managed-attach-detach".to_string(),
                "true".to_string(),
            )])),
            ..Default::default()
        },
        spec: Some(NodeSpec {
            taints: (!taints.is_empty()).then_some(taints),
            ..Default::default()
        }),
        status: Some(desired_status(shared, None)),
    })
}

/// Creates the Node, or takes over one that exists (keeping its spec), then posts
/// its status.
pub(crate) async fn register(shared: &Arc<Shared>) -> Result<(), KubeletError> {
    let api: Api<Node> = Api::all(shared.client.clone());
    let node = node_object(shared)?;
    let mut delay = Duration::from_millis(100);
    loop {
        let result = match api.create(&PostParams::default(), &node).await {
            Ok(_) => Ok(()),
            Err(e) if api_code(&e) == Some(409) => {
                let patch = json!({"metadata": {"labels": node.metadata.labels}});
                api.patch(
                    &shared.node_name,
                    &PatchParams::default(),
                    &Patch::Merge(&patch),
                )
                .await
                .map(|_| ())
            }
            Err(e) => Err(e),
        };
        match result {
            Ok(()) => break,
            Err(e) if api_code(&e).is_some_and(|c| c < 500 && c != 429) => {
                return Err(KubeletError::Api {
                    what: format!("registering node {}", shared.node_name),
                    source: e,
                })
            }
            Err(e) => {
                debug!(error = %e, "node registration: retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(7));
            }
        }
    }
    post_status(shared).await
}

/// Posts the node status now.
pub(crate) async fn post_status(shared: &Shared) -> Result<(), KubeletError> {
    let api: Api<Node> = Api::all(shared.client.clone());
    let current = api
        .get_status(&shared.node_name)
        .await
        .map_err(|e| KubeletError::Api {
            what: format!("reading node {}", shared.node_name),
            source: e,
        })?;
    let status = desired_status(shared, current.status.as_ref());
    let patch = json!({"status": status});
    api.patch_status(
        &shared.node_name,
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await
    .map_err(|e| KubeletError::Api {
        what: format!("updating node {} status", shared.node_name),
        source: e,
    })?;
    Ok(())
}

/// Posts node status every `--node-status-update-frequency`, forever.
pub(crate) async fn status_loop(shared: Arc<Shared>) {
    loop {
        tokio::time::sleep(shared.config.node_status_update_frequency).await;
        if let Err(e) = post_status(&shared).await {
            warn!(error = %e, "Error updating node status, will retry");
        }
    }
}

/// Renews the node's Lease every 10 s, creating it (owned by the Node) when missing.
pub(crate) async fn lease_loop(shared: Arc<Shared>) {
    let leases: Api<Lease> = Api::namespaced(shared.client.clone(), LEASE_NAMESPACE);
    loop {
        if let Err(e) = renew_lease(&shared, &leases).await {
            warn!(error = %e, "failed to renew lease");
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        tokio::time::sleep(LEASE_RENEW).await;
    }
}

async fn renew_lease(shared: &Shared, leases: &Api<Lease>) -> Result<(), kube::Error> {
    let now = MicroTime(Timestamp::now());
    match leases.get_opt(&shared.node_name).await? {
        Some(mut lease) => {
            let spec = lease.spec.get_or_insert_with(Default::default);
            spec.renew_time = Some(now);
            spec.holder_identity = Some(shared.node_name.clone());
            spec.lease_duration_seconds = Some(LEASE_DURATION_SECONDS);
            leases
                .replace(&shared.node_name, &PostParams::default(), &lease)
                .await?;
        }
        None => {
            let nodes: Api<Node> = Api::all(shared.client.clone());
            let owner = nodes.get(&shared.node_name).await?;
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(shared.node_name.clone()),
                    owner_references: Some(vec![
                        k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
                            api_version: "v1".into(),
                            kind: "Node".into(),
                            name: shared.node_name.clone(),
                            uid: owner.metadata.uid.unwrap_or_default(),
                            ..Default::default()
                        },
                    ]),
                    ..Default::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(shared.node_name.clone()),
                    lease_duration_seconds: Some(LEASE_DURATION_SECONDS),
                    renew_time: Some(now),
                    ..Default::default()
                }),
            };
            match leases.create(&PostParams::default(), &lease).await {
                Ok(_) => {}
                Err(e) if api_code(&e) == Some(409) => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn taints_from_flags() {
        let t = parse_taint("dedicated=gpu:NoSchedule").unwrap();
        assert_eq!(
            (t.key.as_str(), t.value.as_deref(), t.effect.as_str()),
            ("dedicated", Some("gpu"), "NoSchedule")
        );
        let t = parse_taint("node-role:NoExecute").unwrap();
        assert_eq!((t.key.as_str(), t.value), ("node-role", None));
        assert!(parse_taint("x=y").is_err());
        assert!(parse_taint("x=y:Sometimes").is_err());
    }

    #[test]
    fn conditions_keep_their_transition_time() {
        let t0 = Timestamp::from_second(1_000_000).unwrap();
        let first = condition("Ready", true, "KubeletReady", "m", None, t0);
        let prev = NodeStatus {
            conditions: Some(vec![first]),
            ..Default::default()
        };
        let t1 = Timestamp::from_second(2_000_000).unwrap();
        let again = condition("Ready", true, "KubeletReady", "m", Some(&prev), t1);
        assert_eq!(again.last_transition_time, Some(Time(t0)));
        assert_eq!(again.last_heartbeat_time, Some(Time(t1)));
        let flipped = condition("Ready", false, "KubeletNotReady", "m", Some(&prev), t1);
        assert_eq!(flipped.last_transition_time, Some(Time(t1)));
    }
}
