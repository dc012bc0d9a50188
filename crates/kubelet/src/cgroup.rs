//! Pod-level cgroup limits from the pod spec, as upstream's kubelet sets them on
//! `kubepods/<qos>/pod<uid>`: cpu.shares from the summed cpu requests, and a cpu
//! quota and memory limit only when every container sets that limit, and the
//! `--pod-max-pids` process limit.

use apimachinery::Quantity;
use container_runtime::cgroups::PodResources;
use k8s_openapi::api::core::v1::{Container, PodSpec};

use crate::ocispec::CPU_PERIOD;

fn quantity(c: &Container, limits: bool, name: &str) -> Option<Quantity> {
    let r = c.resources.as_ref()?;
    let m = if limits {
        r.limits.as_ref()
    } else {
        r.requests.as_ref()
    }?;
    m.get(name)?.0.parse().ok()
}

/// The pod cgroup's limits; `pod_max_pids` (`--pod-max-pids`) caps its processes
/// when positive.
pub fn pod_resources(spec: &PodSpec, pod_max_pids: i64) -> PodResources {
    let containers = &spec.containers;
    let mut cpu_request_milli: i64 = 0;
    let mut cpu_limit_milli: Option<i64> = Some(0);
    let mut memory_limit: Option<i64> = Some(0);
    for c in containers {
        let req = quantity(c, false, "cpu").or_else(|| quantity(c, true, "cpu"));
        cpu_request_milli += req.map_or(0, |q| q.milli_value());
        cpu_limit_milli = match (cpu_limit_milli, quantity(c, true, "cpu")) {
            (Some(sum), Some(q)) => Some(sum + q.milli_value()),
            _ => None,
        };
        memory_limit = match (memory_limit, quantity(c, true, "memory")) {
            (Some(sum), Some(q)) => Some(sum + q.value()),
            _ => None,
        };
    }
    // Init containers run alone: the pod needs the larger of their needs.
    for c in spec.init_containers.iter().flatten() {
        if let Some(q) = quantity(c, true, "memory") {
            memory_limit = memory_limit.map(|m| m.max(q.value()));
        }
    }
    let cpu_shares = ((cpu_request_milli.max(0) as u64) * 1024 / 1000).max(2);
    let has_containers = !containers.is_empty();
    PodResources {
        cpu_shares: Some(cpu_shares),
        cpu_quota_us: cpu_limit_milli
            .filter(|_| has_containers)
            .map(|m| (m * CPU_PERIOD as i64 / 1000).max(1000)),
        cpu_period_us: Some(CPU_PERIOD),
        memory_limit_bytes: memory_limit.filter(|_| has_containers),
        pids_limit: (pod_max_pids > 0).then_some(pod_max_pids),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn limits_only_when_every_container_sets_them() {
        let spec: PodSpec = serde_json::from_value(json!({"containers": [
            {"name": "a", "resources": {"requests": {"cpu": "500m"}, "limits": {"cpu": "1", "memory": "64Mi"}}},
            {"name": "b", "resources": {"limits": {"cpu": "250m", "memory": "32Mi"}}}
        ]}))
        .unwrap();
        let r = pod_resources(&spec, -1);
        assert_eq!(r.pids_limit, None);
        assert_eq!(r.cpu_shares, Some(768));
        assert_eq!(r.cpu_quota_us, Some(125_000));
        assert_eq!(r.memory_limit_bytes, Some(96 << 20));
        let spec: PodSpec = serde_json::from_value(json!({"containers": [
            {"name": "a", "resources": {"limits": {"memory": "64Mi"}}},
            {"name": "b"}
        ]}))
        .unwrap();
        let r = pod_resources(&spec, 64);
        assert_eq!(r.pids_limit, Some(64));
        assert_eq!(
            (r.cpu_shares, r.cpu_quota_us, r.memory_limit_bytes),
            (Some(2), None, None)
        );
    }
}
