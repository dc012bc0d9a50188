//! Pod admission on the node, as upstream's admit handlers decide it before a pod new
//! to the kubelet gets a worker that runs it:
//!
//! - under node pressure (the eviction manager's conditions), only critical pods are
//!   admitted, except that MemoryPressure alone still admits pods that are not
//!   BestEffort, and BestEffort pods tolerating the memory-pressure taint (reason
//!   `Evicted`, message `The node had condition: [MemoryPressure]. `);
//! - the pod's requests must fit what the node can allocate beside the pods already
//!   admitted: cpu, memory, ephemeral-storage, extended resources, and the pod count
//!   (reason `OutOf<resource>`, message `Node didn't have enough resource: ...`).
//!
//! Pods reach a node without the scheduler when their `spec.nodeName` is set by hand
//! or they are static; those are the pods this stops. A rejected pod fails at once
//! with the reason and `Pod was rejected: <message>`, and no container of it starts.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::Pod;
use podspec::resources::{pod_requests, Resources};

/// Priority at and above which a pod is critical (upstream's SystemCriticalPriority).
const SYSTEM_CRITICAL_PRIORITY: i32 = 2_000_000_000;
/// The taint a node under memory pressure gets.
const MEMORY_PRESSURE_TAINT: &str = "node.kubernetes.io/memory-pressure";

/// Why a pod was not admitted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    /// One word, e.g. `OutOfcpu` or `Evicted`.
    pub reason: String,
    /// The explanation (without the `Pod was rejected: ` prefix the status gets).
    pub message: String,
}

/// Critical pods: static and mirror pods, and those with a system-critical priority.
pub fn is_critical(pod: &Pod) -> bool {
    crate::staticpods::is_static(pod)
        || crate::staticpods::is_mirror(pod)
        || pod.spec.as_ref().and_then(|s| s.priority).unwrap_or(0) >= SYSTEM_CRITICAL_PRIORITY
}

/// Decides whether `pod` may run beside the already admitted `others` on a node that
/// can allocate `allocatable` and now has the `pressure` conditions.
pub fn admit(
    pod: &Pod,
    others: &[&Pod],
    allocatable: &Resources,
    pressure: &BTreeSet<&str>,
) -> Result<(), Rejection> {
    admit_under_pressure(pod, pressure)?;
    fits(pod, others, allocatable)
}

fn admit_under_pressure(pod: &Pod, pressure: &BTreeSet<&str>) -> Result<(), Rejection> {
    if pressure.is_empty() || is_critical(pod) {
        return Ok(());
    }
    if pressure.len() == 1 && pressure.contains("MemoryPressure") {
        let spec = pod.spec.clone().unwrap_or_default();
        if podspec::pod_qos_class(&spec) != "BestEffort" {
            return Ok(());
        }
        let tolerates = spec.tolerations.iter().flatten().any(|t| {
            let exists = t.operator.as_deref() == Some("Exists");
            let key_ok = match t.key.as_deref() {
                None | Some("") => exists,
                // The taint has no value: Equal matches only an empty one.
                Some(k) => {
                    k == MEMORY_PRESSURE_TAINT
                        && (exists || t.value.as_deref().unwrap_or("").is_empty())
                }
            };
            let effect_ok = matches!(t.effect.as_deref(), None | Some("") | Some("NoSchedule"));
            key_ok && effect_ok
        });
        if tolerates {
            return Ok(());
        }
    }
    // Conditions in the order the node reports them, as upstream prints its list.
    let names: Vec<&str> = ["MemoryPressure", "DiskPressure", "PIDPressure"]
        .into_iter()
        .filter(|c| pressure.contains(c))
        .collect();
    Err(Rejection {
        reason: "Evicted".into(),
        message: format!("The node had condition: [{}]. ", names.join(" ")),
    })
}

fn fits(pod: &Pod, others: &[&Pod], allocatable: &Resources) -> Result<(), Rejection> {
    let short = |name: &str, requested: i64, used: i64, capacity: i64| {
        Rejection {
        reason: format!("OutOf{name}"),
        message: format!(
            "Node didn't have enough resource: {name}, requested: {requested}, used: {used}, capacity: {capacity}"
        ),
    }
    };
    if others.len() as i64 + 1 > allocatable.pods {
        return Err(short("pods", 1, others.len() as i64, allocatable.pods));
    }
    let want = pod_requests(pod, false);
    let mut used = Resources::default();
    for p in others {
        used.add(&pod_requests(p, false));
    }
    let checks = [
        ("cpu", want.milli_cpu, used.milli_cpu, allocatable.milli_cpu),
        ("memory", want.memory, used.memory, allocatable.memory),
        (
            "ephemeral-storage",
            want.ephemeral_storage,
            used.ephemeral_storage,
            allocatable.ephemeral_storage,
        ),
    ];
    for (name, requested, used, capacity) in checks {
        if requested > 0 && requested > capacity - used {
            return Err(short(name, requested, used, capacity));
        }
    }
    for (name, &requested) in &want.scalar {
        let capacity = allocatable.scalar.get(name).copied().unwrap_or(0);
        let used = used.scalar.get(name).copied().unwrap_or(0);
        if requested > 0 && requested > capacity - used {
            return Err(short(name, requested, used, capacity));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).unwrap()
    }

    fn with_requests(name: &str, cpu: &str, memory: &str) -> Pod {
        pod(json!({
            "metadata": {"name": name},
            "spec": {"containers": [{"name": "c", "resources": {
                "requests": {"cpu": cpu, "memory": memory},
                "limits": {"cpu": cpu, "memory": memory}
            }}]}
        }))
    }

    fn best_effort(name: &str) -> Pod {
        pod(json!({"metadata": {"name": name}, "spec": {"containers": [{"name": "c"}]}}))
    }

    fn node(cpu_milli: i64, memory: i64, pods: i64) -> Resources {
        Resources {
            milli_cpu: cpu_milli,
            memory,
            pods,
            ..Default::default()
        }
    }

    #[test]
    fn requests_must_fit_beside_the_admitted_pods() {
        let alloc = node(2000, 4 << 30, 110);
        let a = with_requests("a", "1500m", "1Gi");
        let b = with_requests("b", "1", "1Gi");
        assert_eq!(admit(&a, &[], &alloc, &BTreeSet::new()), Ok(()));
        let r = admit(&b, &[&a], &alloc, &BTreeSet::new()).unwrap_err();
        assert_eq!(r.reason, "OutOfcpu");
        assert_eq!(
            r.message,
            "Node didn't have enough resource: cpu, requested: 1000, used: 1500, capacity: 2000"
        );
        let big = with_requests("big", "100m", "5Gi");
        let r = admit(&big, &[], &alloc, &BTreeSet::new()).unwrap_err();
        assert_eq!(r.reason, "OutOfmemory");
        assert_eq!(
            r.message,
            format!(
                "Node didn't have enough resource: memory, requested: {}, used: 0, capacity: {}",
                5_i64 << 30,
                4_i64 << 30
            )
        );
        // Pods without requests always fit, up to the pod count.
        let tiny = node(2000, 4 << 30, 1);
        let r = admit(&best_effort("x"), &[&a], &tiny, &BTreeSet::new()).unwrap_err();
        assert_eq!(r.reason, "OutOfpods");
        assert_eq!(
            r.message,
            "Node didn't have enough resource: pods, requested: 1, used: 1, capacity: 1"
        );
    }

    #[test]
    fn pressure_turns_pods_away_as_upstream() {
        let memory: BTreeSet<&str> = ["MemoryPressure"].into();
        let disk: BTreeSet<&str> = ["DiskPressure"].into();
        let both: BTreeSet<&str> = ["MemoryPressure", "DiskPressure"].into();
        let alloc = node(2000, 4 << 30, 110);
        let be = best_effort("be");
        let burstable = with_requests("g", "100m", "10Mi");

        let r = admit(&be, &[], &alloc, &memory).unwrap_err();
        assert_eq!(r.reason, "Evicted");
        assert_eq!(r.message, "The node had condition: [MemoryPressure]. ");
        assert_eq!(admit(&burstable, &[], &alloc, &memory), Ok(()));
        // A BestEffort pod tolerating the memory-pressure taint gets in.
        let tolerant = pod(json!({"metadata": {"name": "t"}, "spec": {
            "containers": [{"name": "c"}],
            "tolerations": [{"key": MEMORY_PRESSURE_TAINT, "operator": "Exists", "effect": "NoSchedule"}]
        }}));
        assert_eq!(admit(&tolerant, &[], &alloc, &memory), Ok(()));
        // Any other condition turns every pod away, critical ones excepted.
        let r = admit(&burstable, &[], &alloc, &disk).unwrap_err();
        assert_eq!(r.message, "The node had condition: [DiskPressure]. ");
        let r = admit(&burstable, &[], &alloc, &both).unwrap_err();
        assert_eq!(
            r.message,
            "The node had condition: [MemoryPressure DiskPressure]. "
        );
        let critical = pod(json!({"metadata": {"name": "c"}, "spec": {
            "containers": [{"name": "c"}], "priority": 2_000_001_000
        }}));
        assert_eq!(admit(&critical, &[], &alloc, &both), Ok(()));
    }
}
