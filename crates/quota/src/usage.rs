//! Recomputing a quota's usage from the objects in its namespace, as the
//! resourcequota controller does: [`calculate_usage`] sums what the objects in the
//! quota's scopes charge, for the resources its `spec.hard` tracks, and
//! [`sync_status`] turns that into the new status.

use serde_json::Value;

use crate::evaluator::{object_count_group_resource, Evaluator, GroupResource};
use crate::resources::{add, equals, mask, names, zero, ResourceList};
use crate::scopes::QuotaView;
use crate::QuotaError;

/// The evaluators needed for `hard`: the core ones plus an object count for every
/// `count/<resource>.<group>` name none of them handles.
pub fn evaluators_for(hard: &[String]) -> Vec<Evaluator> {
    let mut out = Evaluator::core();
    for name in hard {
        if out
            .iter()
            .any(|e| !e.matching_resources(&[name]).is_empty())
        {
            continue;
        }
        if let Some(gr) = object_count_group_resource(name) {
            out.push(Evaluator::for_resource(&gr.group, &gr.resource));
        }
    }
    out
}

/// The usage of the quota's tracked resources by the objects `list` returns for
/// each evaluated resource (the objects of the quota's namespace). Resources whose
/// listing failed are left out of the result; the errors are returned beside it.
pub fn calculate_usage(
    quota: &QuotaView,
    list: &mut dyn FnMut(&GroupResource) -> Result<Vec<Value>, QuotaError>,
    now: jiff::Timestamp,
) -> (ResourceList, Vec<QuotaError>) {
    let hard = names(&quota.spec_hard);
    let evaluators = evaluators_for(&hard);
    let mut matched: Vec<String> = hard
        .iter()
        .filter(|n| {
            evaluators
                .iter()
                .any(|e| !e.matching_resources(&[n]).is_empty())
        })
        .cloned()
        .collect();
    let selectors = quota.scope_selectors();
    let mut used = ResourceList::new();
    let mut errors = Vec::new();
    for e in &evaluators {
        let tracked = e.matching_resources(&matched);
        if tracked.is_empty() {
            continue;
        }
        let objects = match list(&e.group_resource()) {
            Ok(o) => o,
            Err(err) => {
                errors.push(err);
                matched.retain(|n| !tracked.contains(n));
                continue;
            }
        };
        let mut stats: ResourceList = tracked.iter().map(|n| (n.clone(), zero())).collect();
        for obj in &objects {
            match e.matches_scopes(&selectors, obj) {
                Ok(true) => stats = add(&stats, &e.usage(obj, now)),
                Ok(false) => {}
                Err(err) => {
                    errors.push(err);
                    break;
                }
            }
        }
        used = add(&used, &stats);
    }
    (mask(&used, &matched), errors)
}

/// The status a quota should have: `hard` from `spec.hard`, `used` the previous
/// usage updated with `new_usage`, restricted to the hard resources. `None` when the
/// current status already says so.
pub fn sync_status(
    quota: &QuotaView,
    new_usage: &ResourceList,
) -> Option<(ResourceList, ResourceList)> {
    let hard = quota.spec_hard.clone();
    let mut used = quota.used.clone();
    for (k, v) in new_usage {
        used.insert(k.clone(), v.clone());
    }
    let used = mask(&used, &names(&hard));
    let dirty = !quota.has_status_hard
        || !quota.has_status_used
        || !equals(&hard, &quota.hard)
        || !equals(&used, &quota.used);
    dirty.then_some((hard, used))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::pretty_print;
    use serde_json::json;

    fn now() -> jiff::Timestamp {
        "2025-01-01T00:00:00Z".parse().unwrap()
    }

    #[test]
    fn sums_scoped_objects() {
        let q = QuotaView::from_json(&json!({
            "metadata": {"name": "q", "namespace": "ns"},
            "spec": {"hard": {"pods": "10", "requests.cpu": "4", "configmaps": "3", "count/deployments.apps": "2", "services": "1"},
                     "scopes": ["NotBestEffort"]},
        }));
        let mut list = |gr: &GroupResource| -> Result<Vec<Value>, QuotaError> {
            Ok(match (gr.group.as_str(), gr.resource.as_str()) {
                ("", "pods") => vec![
                    json!({"spec": {"containers": [{"name": "a", "resources": {"requests": {"cpu": "1"}}}]}}),
                    json!({"spec": {"containers": [{"name": "a", "resources": {"requests": {"cpu": "500m"}}}]}}),
                    json!({"spec": {"containers": [{"name": "a"}]}}),
                    json!({"spec": {"containers": [{"name": "a", "resources": {"requests": {"cpu": "1"}}}]}, "status": {"phase": "Failed"}}),
                ],
                ("apps", "deployments") => vec![json!({}), json!({})],
                ("", "configmaps") => return Err(QuotaError::List("boom".into())),
                _ => vec![],
            })
        };
        let (used, errs) = calculate_usage(&q, &mut list, now());
        // Scoped quota: only pods are in the NotBestEffort scope; other kinds match no
        // scope, so they are charged nothing.
        assert_eq!(
            pretty_print(&used),
            "count/deployments.apps=0,pods=2,requests.cpu=1500m,services=0"
        );
        assert_eq!(errs, [QuotaError::List("boom".into())]);
        let (hard, used) = sync_status(&q, &used).unwrap();
        assert_eq!(
            pretty_print(&hard),
            "configmaps=3,count/deployments.apps=2,pods=10,requests.cpu=4,services=1"
        );
        assert_eq!(
            pretty_print(&used),
            "count/deployments.apps=0,pods=2,requests.cpu=1500m,services=0"
        );
    }

    #[test]
    fn unscoped_counts_and_clean_status() {
        let q = QuotaView::from_json(&json!({
            "metadata": {"name": "q"},
            "spec": {"hard": {"count/deployments.apps": "2", "secrets": "5"}},
            "status": {"hard": {"count/deployments.apps": "2", "secrets": "5"}, "used": {"count/deployments.apps": "2", "secrets": "0"}},
        }));
        let mut list = |gr: &GroupResource| -> Result<Vec<Value>, QuotaError> {
            Ok(if gr.resource == "deployments" {
                vec![json!({}), json!({})]
            } else {
                vec![]
            })
        };
        let (used, errs) = calculate_usage(&q, &mut list, now());
        assert!(errs.is_empty());
        assert_eq!(pretty_print(&used), "count/deployments.apps=2,secrets=0");
        assert_eq!(sync_status(&q, &used), None);
    }
}
