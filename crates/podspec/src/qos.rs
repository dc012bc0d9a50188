//! The pod QoS class (`Guaranteed`, `Burstable`, `BestEffort`) from the cpu and
//! memory requests and limits of its containers and init containers, by upstream's
//! rules.

use std::collections::BTreeMap;

use apimachinery::quantity::Quantity;
use k8s_openapi::api::core::v1::{Container, PodSpec};

/// The QoS class of a pod spec.
///
/// A request left out while its limit is set counts as equal to the limit (the
/// apiserver defaults it so on create). Quantities that do not parse are treated
/// as absent.
pub fn pod_qos_class(spec: &PodSpec) -> &'static str {
    let mut requests: BTreeMap<&str, Quantity> = BTreeMap::new();
    let mut limits: BTreeMap<&str, Quantity> = BTreeMap::new();
    let mut guaranteed = true;
    let all = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten());
    for c in all {
        let (reqs, lims) = container_resources(c);
        for (name, q) in &reqs {
            add(&mut requests, name, q);
        }
        for (name, q) in &lims {
            add(&mut limits, name, q);
        }
        if !(lims.contains_key("cpu") && lims.contains_key("memory")) {
            guaranteed = false;
        }
    }
    if requests.is_empty() && limits.is_empty() {
        return "BestEffort";
    }
    if guaranteed
        && requests.len() == limits.len()
        && requests
            .iter()
            .all(|(name, req)| limits.get(name) == Some(req))
    {
        return "Guaranteed";
    }
    "Burstable"
}

fn add<'a>(sums: &mut BTreeMap<&'a str, Quantity>, name: &'a str, q: &Quantity) {
    match sums.get_mut(name) {
        Some(sum) => *sum += q,
        None => {
            sums.insert(name, q.clone());
        }
    }
}

/// The positive cpu/memory requests and limits of one container, with requests
/// defaulted from limits.
fn container_resources(
    c: &Container,
) -> (
    BTreeMap<&'static str, Quantity>,
    BTreeMap<&'static str, Quantity>,
) {
    let mut reqs = BTreeMap::new();
    let mut lims = BTreeMap::new();
    let Some(r) = &c.resources else {
        return (reqs, lims);
    };
    for name in ["cpu", "memory"] {
        let limit = r
            .limits
            .as_ref()
            .and_then(|m| m.get(name))
            .and_then(|q| Quantity::parse(&q.0).ok());
        let request = r
            .requests
            .as_ref()
            .and_then(|m| m.get(name))
            .and_then(|q| Quantity::parse(&q.0).ok())
            .or_else(|| limit.clone());
        if let Some(q) = request.filter(|q| q.sign() > 0) {
            reqs.insert(name, q);
        }
        if let Some(q) = limit.filter(|q| q.sign() > 0) {
            lims.insert(name, q);
        }
    }
    (reqs, lims)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ResourceRequirements;
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity as Q;

    fn ctr(requests: &[(&str, &str)], limits: &[(&str, &str)]) -> Container {
        let map = |pairs: &[(&str, &str)]| {
            (!pairs.is_empty()).then(|| {
                pairs
                    .iter()
                    .map(|(k, v)| (k.to_string(), Q(v.to_string())))
                    .collect()
            })
        };
        Container {
            name: "c".into(),
            resources: Some(ResourceRequirements {
                requests: map(requests),
                limits: map(limits),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn spec(containers: Vec<Container>, init: Vec<Container>) -> PodSpec {
        PodSpec {
            containers,
            init_containers: (!init.is_empty()).then_some(init),
            ..Default::default()
        }
    }

    #[test]
    fn classes() {
        let both = [("cpu", "1"), ("memory", "1Gi")];
        assert_eq!(
            pod_qos_class(&spec(vec![ctr(&[], &[])], vec![])),
            "BestEffort"
        );
        assert_eq!(
            pod_qos_class(&spec(vec![ctr(&both, &both)], vec![])),
            "Guaranteed"
        );
        // Requests defaulted from limits.
        assert_eq!(
            pod_qos_class(&spec(vec![ctr(&[], &both)], vec![])),
            "Guaranteed"
        );
        // Equal values in other spellings.
        assert_eq!(
            pod_qos_class(&spec(
                vec![ctr(&[("cpu", "1000m"), ("memory", "1024Mi")], &both)],
                vec![]
            )),
            "Guaranteed"
        );
        assert_eq!(
            pod_qos_class(&spec(vec![ctr(&[("cpu", "500m")], &[])], vec![])),
            "Burstable"
        );
        assert_eq!(
            pod_qos_class(&spec(vec![ctr(&[("cpu", "500m")], &both)], vec![])),
            "Burstable"
        );
        // Only a cpu limit: not guaranteed.
        assert_eq!(
            pod_qos_class(&spec(vec![ctr(&[], &[("cpu", "1")])], vec![])),
            "Burstable"
        );
        // One container without limits spoils it for the pod.
        assert_eq!(
            pod_qos_class(&spec(vec![ctr(&both, &both), ctr(&[], &[])], vec![])),
            "Burstable"
        );
        // Init containers count too.
        assert_eq!(
            pod_qos_class(&spec(
                vec![ctr(&[], &[])],
                vec![ctr(&[("memory", "1Mi")], &[])]
            )),
            "Burstable"
        );
        // Zero quantities and other resources do not count.
        assert_eq!(
            pod_qos_class(&spec(
                vec![ctr(&[("cpu", "0"), ("ephemeral-storage", "1Gi")], &[])],
                vec![]
            )),
            "BestEffort"
        );
    }
}
