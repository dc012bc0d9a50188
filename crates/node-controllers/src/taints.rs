//! Taints and tolerations: the well-known node taint keys, matching (a taint matches
//! another by key and effect; a toleration tolerates a taint as upstream's
//! `ToleratesTaint`), the tolerations a pod uses against a set of taints, and the
//! node taint writes of the node controllers ([`swap_node_controller_taint`]: add
//! with `timeAdded`, remove, with conflict retries).

use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, NodeCondition, Taint, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, Patch, PatchParams};
use kube::Client;
use serde_json::json;

use controllers::ControllerError;

/// The node's Ready condition is False.
pub const TAINT_NODE_NOT_READY: &str = "node.kubernetes.io/not-ready";
/// The node's Ready condition is Unknown.
pub const TAINT_NODE_UNREACHABLE: &str = "node.kubernetes.io/unreachable";
/// The node is cordoned (`spec.unschedulable`).
pub const TAINT_NODE_UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";
/// MemoryPressure is True.
pub const TAINT_NODE_MEMORY_PRESSURE: &str = "node.kubernetes.io/memory-pressure";
/// DiskPressure is True.
pub const TAINT_NODE_DISK_PRESSURE: &str = "node.kubernetes.io/disk-pressure";
/// NetworkUnavailable is True.
pub const TAINT_NODE_NETWORK_UNAVAILABLE: &str = "node.kubernetes.io/network-unavailable";
/// PIDPressure is True.
pub const TAINT_NODE_PID_PRESSURE: &str = "node.kubernetes.io/pid-pressure";
/// Set by an administrator on a node that is shut down for good.
pub const TAINT_NODE_OUT_OF_SERVICE: &str = "node.kubernetes.io/out-of-service";

/// The `NoExecute` effect.
pub const NO_EXECUTE: &str = "NoExecute";
/// The `NoSchedule` effect.
pub const NO_SCHEDULE: &str = "NoSchedule";

/// The condition taints: condition type, the status that sets the taint, taint key.
pub const CONDITION_TAINTS: &[(&str, &str, &str)] = &[
    ("Ready", "False", TAINT_NODE_NOT_READY),
    ("Ready", "Unknown", TAINT_NODE_UNREACHABLE),
    ("MemoryPressure", "True", TAINT_NODE_MEMORY_PRESSURE),
    ("DiskPressure", "True", TAINT_NODE_DISK_PRESSURE),
    ("NetworkUnavailable", "True", TAINT_NODE_NETWORK_UNAVAILABLE),
    ("PIDPressure", "True", TAINT_NODE_PID_PRESSURE),
];

/// A taint with only key and effect set.
pub fn taint(key: &str, effect: &str) -> Taint {
    Taint {
        key: key.to_string(),
        effect: effect.to_string(),
        ..Default::default()
    }
}

/// `node.kubernetes.io/unreachable:NoExecute`.
pub fn unreachable_taint() -> Taint {
    taint(TAINT_NODE_UNREACHABLE, NO_EXECUTE)
}

/// `node.kubernetes.io/not-ready:NoExecute`.
pub fn not_ready_taint() -> Taint {
    taint(TAINT_NODE_NOT_READY, NO_EXECUTE)
}

/// Whether two taints are the same slot: same key and effect.
pub fn taint_matches(a: &Taint, b: &Taint) -> bool {
    a.key == b.key && a.effect == b.effect
}

/// Whether `taints` holds a taint with the key and effect of `t`.
pub fn taint_exists(taints: &[Taint], t: &Taint) -> bool {
    taints.iter().any(|x| taint_matches(x, t))
}

/// The taints of a node.
pub fn node_taints(node: &Node) -> &[Taint] {
    node.spec
        .as_ref()
        .and_then(|s| s.taints.as_deref())
        .unwrap_or(&[])
}

/// The `NoExecute` taints among `taints`.
pub fn no_execute_taints(taints: &[Taint]) -> Vec<Taint> {
    taints
        .iter()
        .filter(|t| t.effect == NO_EXECUTE)
        .cloned()
        .collect()
}

/// Taints of `a` missing from `b`, and taints of `b` missing from `a` (by key and
/// effect).
pub fn taint_set_diff(a: &[Taint], b: &[Taint]) -> (Vec<Taint>, Vec<Taint>) {
    let add = a.iter().filter(|t| !taint_exists(b, t)).cloned().collect();
    let remove = b.iter().filter(|t| !taint_exists(a, t)).cloned().collect();
    (add, remove)
}

/// Whether `toleration` tolerates `taint`: effects and keys agree where the toleration
/// sets them, and the value matches (`Equal`, the default) or the operator is `Exists`.
pub fn tolerates(toleration: &Toleration, taint: &Taint) -> bool {
    if let Some(effect) = toleration.effect.as_deref().filter(|e| !e.is_empty()) {
        if effect != taint.effect {
            return false;
        }
    }
    if let Some(key) = toleration.key.as_deref().filter(|k| !k.is_empty()) {
        if key != taint.key {
            return false;
        }
    }
    match toleration.operator.as_deref().unwrap_or("") {
        "" | "Equal" => {
            toleration.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or("")
        }
        "Exists" => true,
        _ => false,
    }
}

/// Whether every taint is tolerated, and the first tolerating toleration of each
/// taint (empty when some taint is not tolerated).
pub fn matching_tolerations(
    taints: &[Taint],
    tolerations: &[Toleration],
) -> (bool, Vec<Toleration>) {
    let mut used = Vec::new();
    for t in taints {
        match tolerations.iter().find(|tol| tolerates(tol, t)) {
            Some(tol) => used.push(tol.clone()),
            None => return (false, Vec::new()),
        }
    }
    (true, used)
}

/// How long the tolerations let a pod stay: `Some(ZERO)` for none or a non-positive
/// `tolerationSeconds`, the smallest `tolerationSeconds` otherwise, `None` (forever)
/// when none of them sets `tolerationSeconds`.
pub fn min_toleration_time(tolerations: &[Toleration]) -> Option<Duration> {
    if tolerations.is_empty() {
        return Some(Duration::ZERO);
    }
    let mut min: Option<i64> = None;
    for t in tolerations {
        if let Some(secs) = t.toleration_seconds {
            if secs <= 0 {
                return Some(Duration::ZERO);
            }
            min = Some(min.map_or(secs, |m| m.min(secs)));
        }
    }
    min.map(|s| Duration::from_secs(s.unsigned_abs()))
}

/// The node condition of type `type_`.
pub fn node_condition<'a>(node: &'a Node, type_: &str) -> Option<&'a NodeCondition> {
    node.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
}

/// Whether the node's Ready condition is True.
pub fn is_node_ready(node: &Node) -> bool {
    node_condition(node, "Ready").is_some_and(|c| c.status == "True")
}

/// How many times a taint write is retried on conflicts (upstream's
/// UpdateTaintBackoff steps).
const TAINT_UPDATE_ATTEMPTS: usize = 5;

async fn patch_taints(
    client: &Client,
    name: &str,
    resource_version: Option<&str>,
    taints: &[Taint],
) -> Result<(), ControllerError> {
    let api: Api<Node> = Api::all(client.clone());
    let taints_value = if taints.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::to_value(taints).map_err(|e| ControllerError::Other(e.to_string()))?
    };
    // The resourceVersion makes the write conditional, as upstream's PatchNodeTaints.
    let patch = json!({
        "metadata": {"resourceVersion": resource_version},
        "spec": {"taints": taints_value},
    });
    api.patch(name, &PatchParams::default(), &Patch::Strategic(&patch))
        .await?;
    Ok(())
}

/// Retries `edit` on the current node (the cached `node` first, then fresh reads)
/// while the write conflicts. `edit` returns the new taints, or `None` for no change.
async fn edit_taints(
    client: &Client,
    name: &str,
    node: Option<&Node>,
    edit: impl Fn(&[Taint]) -> Option<Vec<Taint>>,
) -> Result<(), ControllerError> {
    let api: Api<Node> = Api::all(client.clone());
    let mut cached = node.cloned();
    let mut last = None;
    for attempt in 0..TAINT_UPDATE_ATTEMPTS {
        let current = match cached.take() {
            Some(n) => n,
            None => api.get(name).await?,
        };
        let Some(new_taints) = edit(node_taints(&current)) else {
            return Ok(());
        };
        match patch_taints(
            client,
            name,
            current.metadata.resource_version.as_deref(),
            &new_taints,
        )
        .await
        {
            Ok(()) => return Ok(()),
            Err(e) if e.is_conflict() => {
                last = Some(e);
                tokio::time::sleep(Duration::from_millis(100 * (1 << attempt))).await;
            }
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| ControllerError::Other("taint update failed".into())))
}

/// Adds `taints` to the node (replacing taints of the same key and effect).
pub async fn add_or_update_taints(
    client: &Client,
    name: &str,
    node: Option<&Node>,
    taints: &[Taint],
) -> Result<(), ControllerError> {
    if taints.is_empty() {
        return Ok(());
    }
    edit_taints(client, name, node, |current| {
        let mut out: Vec<Taint> = current.to_vec();
        let mut changed = false;
        for t in taints {
            match out.iter_mut().find(|x| taint_matches(x, t)) {
                Some(existing) if existing == t => {}
                Some(existing) => {
                    *existing = t.clone();
                    changed = true;
                }
                None => {
                    out.push(t.clone());
                    changed = true;
                }
            }
        }
        changed.then_some(out)
    })
    .await
}

/// Removes `taints` (by key and effect) from the node. Does nothing when the cached
/// `node` has none of them.
pub async fn remove_taints(
    client: &Client,
    name: &str,
    node: Option<&Node>,
    taints: &[Taint],
) -> Result<(), ControllerError> {
    if taints.is_empty() {
        return Ok(());
    }
    if let Some(n) = node {
        if !taints.iter().any(|t| taint_exists(node_taints(n), t)) {
            return Ok(());
        }
    }
    edit_taints(client, name, node, |current| {
        let out: Vec<Taint> = current
            .iter()
            .filter(|x| !taint_exists(taints, x))
            .cloned()
            .collect();
        (out.len() != current.len()).then_some(out)
    })
    .await
}

/// Adds `add` (stamped with `timeAdded` now) and removes `remove` on the node, as the
/// node controllers swap their taints. Returns whether both writes succeeded.
pub async fn swap_node_controller_taint(
    client: &Client,
    node: &Node,
    add: &[Taint],
    remove: &[Taint],
) -> bool {
    let name = node.metadata.name.as_deref().unwrap_or("");
    let now = Time(jiff::Timestamp::now());
    let add: Vec<Taint> = add
        .iter()
        .map(|t| Taint {
            time_added: Some(now.clone()),
            ..t.clone()
        })
        .collect();
    if let Err(err) = add_or_update_taints(client, name, Some(node), &add).await {
        tracing::error!(node = %name, error = %err, "failed to add taints to node");
        return false;
    }
    if let Err(err) = remove_taints(client, name, Some(node), remove).await {
        tracing::error!(node = %name, error = %err, "failed to remove taints from node");
        return false;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tol(key: &str, op: &str, value: &str, effect: &str, secs: Option<i64>) -> Toleration {
        let opt = |s: &str| (!s.is_empty()).then(|| s.to_string());
        Toleration {
            key: opt(key),
            operator: opt(op),
            value: opt(value),
            effect: opt(effect),
            toleration_seconds: secs,
        }
    }

    fn valued(key: &str, value: &str, effect: &str) -> Taint {
        Taint {
            value: Some(value.into()),
            ..taint(key, effect)
        }
    }

    #[test]
    fn toleration_matching() {
        let t = valued("k", "v", NO_EXECUTE);
        assert!(tolerates(&tol("k", "Equal", "v", "NoExecute", None), &t));
        assert!(
            tolerates(&tol("k", "", "v", "", None), &t),
            "empty operator is Equal"
        );
        assert!(!tolerates(&tol("k", "Equal", "w", "", None), &t));
        assert!(tolerates(&tol("k", "Exists", "", "", None), &t));
        assert!(
            tolerates(&tol("", "Exists", "", "", None), &t),
            "tolerates everything"
        );
        assert!(!tolerates(&tol("", "Exists", "", "NoSchedule", None), &t));
        assert!(!tolerates(&tol("other", "Exists", "", "", None), &t));
        assert!(!tolerates(&tol("k", "Gt", "v", "", None), &t));
        // A taint without value matches an Equal toleration without value.
        assert!(tolerates(
            &tol(TAINT_NODE_UNREACHABLE, "", "", NO_EXECUTE, Some(300)),
            &unreachable_taint()
        ));
    }

    #[test]
    fn used_tolerations_and_min_time() {
        let taints = [unreachable_taint(), valued("dedicated", "gpu", NO_EXECUTE)];
        let a = tol(TAINT_NODE_UNREACHABLE, "Exists", "", NO_EXECUTE, Some(30));
        let b = tol("dedicated", "Equal", "gpu", "", None);
        let (all, used) = matching_tolerations(&taints, &[b.clone(), a.clone()]);
        assert!(all);
        assert_eq!(used, vec![a.clone(), b.clone()]);
        assert_eq!(min_toleration_time(&used), Some(Duration::from_secs(30)));
        let (all, used) = matching_tolerations(&taints, std::slice::from_ref(&a));
        assert!(!all);
        assert!(used.is_empty());
        assert_eq!(matching_tolerations(&[], &[]), (true, vec![]));
        assert_eq!(min_toleration_time(&[]), Some(Duration::ZERO));
        assert_eq!(min_toleration_time(std::slice::from_ref(&b)), None);
        let zero = tol("x", "Exists", "", "", Some(0));
        assert_eq!(min_toleration_time(&[a, zero]), Some(Duration::ZERO));
    }

    #[test]
    fn diff_by_key_and_effect() {
        let a = [taint("x", NO_SCHEDULE), taint("y", NO_SCHEDULE)];
        let b = [valued("x", "other", NO_SCHEDULE), taint("z", NO_SCHEDULE)];
        let (add, remove) = taint_set_diff(&a, &b);
        assert_eq!(add, vec![taint("y", NO_SCHEDULE)]);
        assert_eq!(remove, vec![taint("z", NO_SCHEDULE)]);
        assert!(taint_exists(&a, &valued("x", "v", NO_SCHEDULE)));
        assert!(!taint_exists(&a, &taint("x", NO_EXECUTE)));
    }
}
