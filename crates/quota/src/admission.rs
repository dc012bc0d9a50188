//! The admission check of one request against the quotas of its namespace
//! ([`check_request`]): which quotas constrain the object, the constraints they put on
//! it, the usage it adds (for updates, the growth over the old object), and whether
//! that fits every quota's `status.hard`. The caller writes the returned usage to the
//! quotas (compare-and-swap) before admitting the request.

use serde_json::Value;

use crate::evaluator::{Evaluator, Operation};
use crate::resources::{
    add, less_than_or_equal, mask, names, negative_names, pretty_print, pretty_print_names,
    remove_zeros, subtract_non_negative, ResourceList,
};
use crate::scopes::QuotaView;

/// Why a request may not be admitted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CheckError {
    /// Refused (403): the reason, as it follows `<resource> "<name>" is forbidden: `.
    #[error("{0}")]
    Forbidden(String),
    /// The quotas could not be evaluated (500).
    #[error("{0}")]
    Internal(String),
}

/// The new `status.used` of one quota, by its index in the input.
#[derive(Clone, Debug, PartialEq)]
pub struct UsageChange {
    /// Index into the quotas given to [`check_request`].
    pub index: usize,
    /// The quota's usage with the request charged.
    pub used: ResourceList,
}

/// Checks a create or update of `obj` (with the stored `old` object for updates)
/// against `quotas`. Returns the quotas whose usage grows (empty if none does), or
/// why the request must be refused: the constraints of a matching quota
/// (`failed quota: <name>: must specify ...`), a matching quota without usage yet
/// (`status unknown for quota: ...`), negative usage, or a limit it would exceed
/// (`exceeded quota: <name>, requested: ..., used: ..., limited: ...`).
pub fn check_request(
    quotas: &[QuotaView],
    evaluator: &Evaluator,
    op: Operation,
    obj: &Value,
    old: Option<&Value>,
    now: jiff::Timestamp,
) -> Result<Vec<UsageChange>, CheckError> {
    if !evaluator.handles(op) {
        return Ok(Vec::new());
    }
    let mut interesting = Vec::new();
    for (i, q) in quotas.iter().enumerate() {
        let matched = evaluator.matches(q, obj).map_err(|e| {
            CheckError::Internal(format!("error matching quota {}, err: {e}", q.name))
        })?;
        if !matched {
            continue;
        }
        let restricted = evaluator.matching_resources(&names(&q.hard));
        if let Err(reason) = evaluator.constraints(&restricted, obj) {
            return Err(CheckError::Forbidden(format!(
                "failed quota: {}: {reason}",
                q.name
            )));
        }
        let has_stats = q
            .hard
            .keys()
            .filter(|k| restricted.contains(k))
            .all(|k| q.used.contains_key(k));
        if !has_stats {
            return Err(CheckError::Forbidden(format!(
                "status unknown for quota: {}, resources: {}",
                q.name,
                pretty_print_names(&restricted)
            )));
        }
        interesting.push(i);
    }
    if interesting.is_empty() {
        return Ok(Vec::new());
    }
    let input = evaluator.usage(obj, now);
    let negative = negative_names(&input);
    if !negative.is_empty() {
        return Err(CheckError::Forbidden(format!(
            "quota usage is negative for resource(s): {}",
            pretty_print_names(&negative)
        )));
    }
    let mut deltas: Vec<(usize, ResourceList)> =
        interesting.iter().map(|i| (*i, input.clone())).collect();
    if op == Operation::Update {
        let Some(old) = old else {
            return Err(CheckError::Forbidden(
                "unable to get previous usage since prior version of object was not found".into(),
            ));
        };
        let has_version = old["metadata"]["resourceVersion"]
            .as_str()
            .is_some_and(|s| !s.is_empty())
            || old["metadata"]["resourceVersion"].is_number();
        if has_version {
            let delta = subtract_non_negative(&input, &evaluator.usage(old, now));
            for (i, d) in deltas.iter_mut() {
                // Charge only the growth when the old object was charged to the quota too.
                let old_matched = evaluator.matches(&quotas[*i], old).map_err(|e| {
                    CheckError::Internal(format!(
                        "error matching quota {}, err: {e}",
                        quotas[*i].name
                    ))
                })?;
                if old_matched {
                    *d = delta.clone();
                }
            }
        }
    }
    let mut changes = Vec::new();
    for (i, delta) in deltas {
        let delta = remove_zeros(&delta);
        if delta.is_empty() {
            continue;
        }
        let q = &quotas[i];
        let requested = mask(&delta, &names(&q.hard));
        let new_used = add(&q.used, &requested);
        let masked_new = mask(&new_used, &names(&requested));
        let (ok, exceeded) = less_than_or_equal(&masked_new, &q.hard);
        if !ok {
            return Err(CheckError::Forbidden(format!(
                "exceeded quota: {}, requested: {}, used: {}, limited: {}",
                q.name,
                pretty_print(&mask(&requested, &exceeded)),
                pretty_print(&mask(&q.used, &exceeded)),
                pretty_print(&mask(&q.hard, &exceeded)),
            )));
        }
        if !crate::resources::equals(&new_used, &q.used) {
            changes.push(UsageChange {
                index: i,
                used: new_used,
            });
        }
    }
    Ok(changes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> jiff::Timestamp {
        "2025-01-01T00:00:00Z".parse().unwrap()
    }

    fn quota(name: &str, hard: Value, used: Value) -> QuotaView {
        QuotaView::from_json(&json!({
            "metadata": {"name": name, "namespace": "ns"},
            "spec": {"hard": hard.clone()},
            "status": {"hard": hard, "used": used},
        }))
    }

    fn pod(cpu: Option<&str>) -> Value {
        let resources = match cpu {
            Some(c) => json!({"requests": {"cpu": c}, "limits": {"cpu": c}}),
            None => json!({}),
        };
        json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "resources": resources}]}})
    }

    #[test]
    fn exceeding_pods_is_refused_with_upstream_message() {
        let q = quota("pods-quota", json!({"pods": "2"}), json!({"pods": "2"}));
        let err = check_request(
            &[q],
            &Evaluator::Pods,
            Operation::Create,
            &pod(None),
            None,
            now(),
        )
        .unwrap_err();
        assert_eq!(
            err,
            CheckError::Forbidden(
                "exceeded quota: pods-quota, requested: pods=1, used: pods=2, limited: pods=2"
                    .into()
            )
        );
    }

    #[test]
    fn fitting_request_charges_every_matching_quota() {
        let a = quota(
            "a",
            json!({"pods": "2", "requests.cpu": "1"}),
            json!({"pods": "1", "requests.cpu": "500m"}),
        );
        let b = quota("b", json!({"configmaps": "1"}), json!({"configmaps": "0"}));
        let out = check_request(
            &[a, b],
            &Evaluator::Pods,
            Operation::Create,
            &pod(Some("250m")),
            None,
            now(),
        )
        .unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].index, 0);
        assert_eq!(
            crate::resources::pretty_print(&out[0].used),
            "pods=2,requests.cpu=750m"
        );
        let err = check_request(
            &[quota(
                "a",
                json!({"requests.cpu": "1"}),
                json!({"requests.cpu": "900m"}),
            )],
            &Evaluator::Pods,
            Operation::Create,
            &pod(Some("250m")),
            None,
            now(),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "exceeded quota: a, requested: requests.cpu=250m, used: requests.cpu=900m, limited: requests.cpu=1"
        );
    }

    #[test]
    fn constraints_and_unknown_status() {
        let q = quota(
            "compute",
            json!({"limits.cpu": "2", "limits.memory": "1Gi"}),
            json!({"limits.cpu": "0", "limits.memory": "0"}),
        );
        let err = check_request(
            &[q],
            &Evaluator::Pods,
            Operation::Create,
            &pod(Some("1")),
            None,
            now(),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "failed quota: compute: must specify limits.memory for: c"
        );
        let unknown = QuotaView::from_json(&json!({
            "metadata": {"name": "q"}, "status": {"hard": {"pods": "1", "cpu": "1"}}
        }));
        assert_eq!(
            check_request(
                &[unknown],
                &Evaluator::Pods,
                Operation::Create,
                &pod(Some("1")),
                None,
                now()
            )
            .unwrap_err()
            .to_string(),
            "status unknown for quota: q, resources: cpu,pods"
        );
        // No status.hard yet: the quota does not constrain.
        let fresh = QuotaView::from_json(
            &json!({"metadata": {"name": "q"}, "spec": {"hard": {"pods": "0"}}}),
        );
        assert!(check_request(
            &[fresh],
            &Evaluator::Pods,
            Operation::Create,
            &pod(None),
            None,
            now()
        )
        .unwrap()
        .is_empty());
    }

    #[test]
    fn scoped_quota_ignores_other_pods() {
        let mut q = quota("be", json!({"pods": "0"}), json!({"pods": "0"}));
        q.scopes = vec!["BestEffort".into()];
        assert!(check_request(
            std::slice::from_ref(&q),
            &Evaluator::Pods,
            Operation::Create,
            &pod(Some("1")),
            None,
            now()
        )
        .unwrap()
        .is_empty());
        assert!(check_request(
            &[q],
            &Evaluator::Pods,
            Operation::Create,
            &pod(None),
            None,
            now()
        )
        .is_err());
    }

    #[test]
    fn service_updates_charge_growth_only() {
        let q = quota(
            "svc",
            json!({"services": "5", "services.loadbalancers": "1", "services.nodeports": "10"}),
            json!({"services": "1", "services.loadbalancers": "1", "services.nodeports": "1"}),
        );
        let old = json!({"metadata": {"resourceVersion": "5"}, "spec": {"type": "NodePort", "ports": [{"port": 1}]}});
        let new = json!({"metadata": {"resourceVersion": "5"}, "spec": {"type": "LoadBalancer", "ports": [{"port": 1}]}});
        let err = check_request(
            std::slice::from_ref(&q),
            &Evaluator::Services,
            Operation::Update,
            &new,
            Some(&old),
            now(),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "exceeded quota: svc, requested: services.loadbalancers=1, used: services.loadbalancers=1, limited: services.loadbalancers=1"
        );
        // Same type: nothing grows, nothing to write.
        assert!(check_request(
            &[q],
            &Evaluator::Services,
            Operation::Update,
            &old,
            Some(&old),
            now()
        )
        .unwrap()
        .is_empty());
    }
}
