//! Helpers shared by controllers: owner references, pod states (active, ready,
//! available), and label selectors.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Pod, PodCondition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use kube::core::{Selector, SelectorExt};
use kube::Resource;

/// The owner reference marked `controller: true`, if any.
pub fn controller_ref(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references
        .as_ref()?
        .iter()
        .find(|r| r.controller == Some(true))
}

/// A controller owner reference to `owner` (`controller` and `blockOwnerDeletion` set).
pub fn new_controller_ref<O: Resource<DynamicType = ()>>(owner: &O) -> OwnerReference {
    let meta = owner.meta();
    OwnerReference {
        api_version: O::api_version(&()).to_string(),
        kind: O::kind(&()).to_string(),
        name: meta.name.clone().unwrap_or_default(),
        uid: meta.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// The cache key of a pod (`namespace/name`).
pub fn pod_key(pod: &Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or(""),
        pod.metadata.name.as_deref().unwrap_or("")
    )
}

fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

/// Neither finished (Succeeded/Failed) nor being deleted.
pub fn is_pod_active(pod: &Pod) -> bool {
    !matches!(phase(pod), "Succeeded" | "Failed") && pod.metadata.deletion_timestamp.is_none()
}

/// Finished (Succeeded or Failed).
pub fn is_pod_terminal(pod: &Pod) -> bool {
    matches!(phase(pod), "Succeeded" | "Failed")
}

/// The pod's Ready condition.
pub fn pod_ready_condition(pod: &Pod) -> Option<&PodCondition> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")
}

/// Whether the Ready condition is True.
pub fn is_pod_ready(pod: &Pod) -> bool {
    pod_ready_condition(pod).is_some_and(|c| c.status == "True")
}

/// When the pod last became ready (`None` if not ready or unknown).
pub fn pod_ready_time(pod: &Pod) -> Option<jiff::Timestamp> {
    let c = pod_ready_condition(pod)?;
    if c.status != "True" {
        return None;
    }
    c.last_transition_time.as_ref().map(|t| t.0)
}

/// Ready for at least `min_ready_seconds` at `now` (any ready pod when 0).
pub fn is_pod_available(pod: &Pod, min_ready_seconds: i32, now: jiff::Timestamp) -> bool {
    if !is_pod_ready(pod) {
        return false;
    }
    if min_ready_seconds <= 0 {
        return true;
    }
    match pod_ready_condition(pod).and_then(|c| c.last_transition_time.as_ref()) {
        Some(t) => {
            let ready_until = t.0 + jiff::SignedDuration::from_secs(i64::from(min_ready_seconds));
            ready_until < now
        }
        None => false,
    }
}

/// The largest container restart count of a pod.
pub fn max_container_restarts(pod: &Pod) -> i32 {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .map(|cs| cs.iter().map(|c| c.restart_count).max().unwrap_or(0))
        .unwrap_or(0)
}

/// A label selector as the controllers use it: `Nothing` for an absent selector,
/// `Everything` for an empty one.
#[derive(Clone, Debug)]
pub enum LabelMatcher {
    /// Matches no object.
    Nothing,
    /// Matches what the selector matches (everything if it has no requirements).
    Selector(Selector),
}

impl LabelMatcher {
    /// Converts a `metav1.LabelSelector` (upstream's LabelSelectorAsSelector).
    pub fn from_label_selector(sel: Option<&LabelSelector>) -> Result<Self, String> {
        match sel {
            None => Ok(LabelMatcher::Nothing),
            Some(s) => Selector::try_from(s.clone())
                .map(LabelMatcher::Selector)
                .map_err(|e| e.to_string()),
        }
    }

    /// A selector requiring exactly the given labels (an empty map matches everything).
    pub fn from_map(labels: Option<&BTreeMap<String, String>>) -> Self {
        match labels {
            None => LabelMatcher::Nothing,
            Some(m) => LabelMatcher::Selector(m.clone().into_iter().collect()),
        }
    }

    /// Whether `labels` match.
    pub fn matches(&self, labels: Option<&BTreeMap<String, String>>) -> bool {
        match self {
            LabelMatcher::Nothing => false,
            LabelMatcher::Selector(s) => {
                let empty = BTreeMap::new();
                s.matches(labels.unwrap_or(&empty))
            }
        }
    }

    /// Whether the selector has no requirements (matches everything) or is absent.
    pub fn is_empty(&self) -> bool {
        match self {
            LabelMatcher::Nothing => true,
            LabelMatcher::Selector(s) => s.selects_all(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{ContainerStatus, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelectorRequirement, Time};

    fn ts(s: i64) -> jiff::Timestamp {
        jiff::Timestamp::from_second(1_700_000_000 + s).unwrap()
    }

    fn ready_pod(since: i64) -> Pod {
        Pod {
            status: Some(PodStatus {
                phase: Some("Running".into()),
                conditions: Some(vec![PodCondition {
                    type_: "Ready".into(),
                    status: "True".into(),
                    last_transition_time: Some(Time(ts(since))),
                    ..Default::default()
                }]),
                container_statuses: Some(vec![
                    ContainerStatus {
                        restart_count: 2,
                        ..Default::default()
                    },
                    ContainerStatus {
                        restart_count: 5,
                        ..Default::default()
                    },
                ]),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn availability_needs_min_ready_seconds() {
        let p = ready_pod(0);
        assert!(is_pod_ready(&p));
        assert!(is_pod_available(&p, 0, ts(0)));
        assert!(!is_pod_available(&p, 10, ts(10)), "strictly after");
        assert!(is_pod_available(&p, 10, ts(11)));
        assert_eq!(pod_ready_time(&p), Some(ts(0)));
        assert_eq!(max_container_restarts(&p), 5);
        assert!(!is_pod_ready(&Pod::default()));
    }

    #[test]
    fn active_pods() {
        let mut p = ready_pod(0);
        assert!(is_pod_active(&p));
        p.status.as_mut().unwrap().phase = Some("Failed".into());
        assert!(!is_pod_active(&p));
        let mut q = ready_pod(0);
        q.metadata.deletion_timestamp = Some(Time(ts(1)));
        assert!(!is_pod_active(&q));
    }

    #[test]
    fn selectors() {
        let labels: BTreeMap<String, String> = [("app".to_string(), "web".to_string())].into();
        assert!(!LabelMatcher::from_label_selector(None)
            .unwrap()
            .matches(Some(&labels)));
        let everything =
            LabelMatcher::from_label_selector(Some(&LabelSelector::default())).unwrap();
        assert!(everything.matches(Some(&labels)) && everything.is_empty());
        let sel = LabelSelector {
            match_labels: Some(labels.clone()),
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "tier".into(),
                operator: "NotIn".into(),
                values: Some(vec!["db".into()]),
            }]),
        };
        let m = LabelMatcher::from_label_selector(Some(&sel)).unwrap();
        assert!(m.matches(Some(&labels)));
        let mut db = labels.clone();
        db.insert("tier".into(), "db".into());
        assert!(!m.matches(Some(&db)));
        assert!(!m.matches(None));
        assert!(LabelMatcher::from_map(Some(&labels)).matches(Some(&db)));
    }
}
