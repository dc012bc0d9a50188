//! The status conditions a terminating namespace carries while its content is
//! deleted: discovery failures, group/version parsing failures, content deletion
//! failures, content remaining and finalizers remaining, each `True` with a reason
//! and message when something is wrong and `False` with the "all is well" reason
//! otherwise (upstream's reasons and messages).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{NamespaceCondition, NamespaceStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::discovery::Gvr;

/// Discovery failed for some resources.
pub const DELETION_DISCOVERY_FAILURE: &str = "NamespaceDeletionDiscoveryFailure";
/// A group/version could not be parsed.
pub const DELETION_GV_PARSING_FAILURE: &str = "NamespaceDeletionGroupVersionParsingFailure";
/// Deleting some resource type failed.
pub const DELETION_CONTENT_FAILURE: &str = "NamespaceDeletionContentFailure";
/// Objects are left in the namespace.
pub const CONTENT_REMAINING: &str = "NamespaceContentRemaining";
/// Objects with finalizers are left in the namespace.
pub const FINALIZERS_REMAINING: &str = "NamespaceFinalizersRemaining";

/// The condition types the namespace controller maintains, in status order.
pub const CONDITION_TYPES: [&str; 5] = [
    DELETION_DISCOVERY_FAILURE,
    DELETION_GV_PARSING_FAILURE,
    DELETION_CONTENT_FAILURE,
    CONTENT_REMAINING,
    FINALIZERS_REMAINING,
];

fn ok_reason_and_message(type_: &str) -> (&'static str, &'static str) {
    match type_ {
        DELETION_DISCOVERY_FAILURE => (
            "ResourcesDiscovered",
            "All resources successfully discovered",
        ),
        DELETION_GV_PARSING_FAILURE => (
            "ParsedGroupVersions",
            "All legacy kube types successfully parsed",
        ),
        DELETION_CONTENT_FAILURE => (
            "ContentDeleted",
            "All content successfully deleted, may be waiting on finalization",
        ),
        CONTENT_REMAINING => ("ContentRemoved", "All content successfully removed"),
        _ => (
            "ContentHasNoFinalizers",
            "All content-preserving finalizers finished",
        ),
    }
}

/// What is left in a namespace after a deletion pass.
#[derive(Clone, Debug, Default)]
pub struct ContentTotals {
    /// Objects left per resource.
    pub remaining_by_resource: BTreeMap<Gvr, usize>,
    /// Objects left per finalizer they carry.
    pub remaining_by_finalizer: BTreeMap<String, usize>,
}

/// Collects the failures of one deletion pass and turns them into conditions.
#[derive(Debug)]
pub struct ConditionUpdater {
    now: Time,
    new_conditions: Vec<NamespaceCondition>,
    delete_content_errors: Vec<String>,
}

impl ConditionUpdater {
    /// An updater stamping transitions with `now`.
    pub fn new(now: Time) -> Self {
        ConditionUpdater {
            now,
            new_conditions: Vec::new(),
            delete_content_errors: Vec::new(),
        }
    }

    fn failing(&mut self, type_: &str, reason: &str, message: String) {
        self.new_conditions.push(NamespaceCondition {
            type_: type_.to_string(),
            status: "True".to_string(),
            last_transition_time: Some(self.now.clone()),
            reason: Some(reason.to_string()),
            message: Some(message),
        });
    }

    /// Discovery failed: for some group/versions (`failed_groups` of them, with
    /// `message` the discovery error) or altogether (`failed_groups` `None`).
    pub fn process_discovery_error(&mut self, message: &str, failed_groups: Option<usize>) {
        let msg = match failed_groups {
            Some(n) => format!("Discovery failed for some groups, {n} failing: {message}"),
            None => message.to_string(),
        };
        self.failing(DELETION_DISCOVERY_FAILURE, "DiscoveryFailed", msg);
    }

    /// A group/version could not be parsed.
    pub fn process_group_version_error(&mut self, message: &str) {
        self.failing(
            DELETION_GV_PARSING_FAILURE,
            "GroupVersionParsingFailed",
            message.to_string(),
        );
    }

    /// Deleting the content of one resource type failed.
    pub fn process_delete_content_error(&mut self, message: &str) {
        self.delete_content_errors.push(message.to_string());
    }

    /// Records what is left.
    pub fn process_content_totals(&mut self, totals: &ContentTotals) {
        if !totals.remaining_by_resource.is_empty() {
            let mut parts: Vec<String> = totals
                .remaining_by_resource
                .iter()
                .filter(|(_, n)| **n > 0)
                .map(|(gvr, n)| {
                    format!("{}.{} has {n} resource instances", gvr.resource, gvr.group)
                })
                .collect();
            parts.sort();
            self.failing(
                CONTENT_REMAINING,
                "SomeResourcesRemain",
                format!("Some resources are remaining: {}", parts.join(", ")),
            );
        }
        if !totals.remaining_by_finalizer.is_empty() {
            let mut parts: Vec<String> = totals
                .remaining_by_finalizer
                .iter()
                .filter(|(_, n)| **n > 0)
                .map(|(f, n)| format!("{f} in {n} resource instances"))
                .collect();
            parts.sort();
            self.failing(
                FINALIZERS_REMAINING,
                "SomeFinalizersRemain",
                format!(
                    "Some content in the namespace has finalizers remaining: {}",
                    parts.join(", ")
                ),
            );
        }
    }

    /// Writes the conditions into `status`; returns whether anything changed.
    pub fn update(mut self, status: &mut NamespaceStatus) -> bool {
        if !self
            .new_conditions
            .iter()
            .any(|c| c.type_ == DELETION_CONTENT_FAILURE)
            && !self.delete_content_errors.is_empty()
        {
            let mut msgs = std::mem::take(&mut self.delete_content_errors);
            msgs.sort();
            let n = msgs.len();
            self.failing(
                DELETION_CONTENT_FAILURE,
                "ContentDeletionFailed",
                format!(
                    "Failed to delete all resource types, {n} remaining: {}",
                    msgs.join(", ")
                ),
            );
        }
        let mut changed = false;
        let conditions = status.conditions.get_or_insert_with(Vec::new);
        for type_ in CONDITION_TYPES {
            let new = match self.new_conditions.iter().find(|c| c.type_ == type_) {
                Some(c) => c.clone(),
                None => {
                    let (reason, message) = ok_reason_and_message(type_);
                    NamespaceCondition {
                        type_: type_.to_string(),
                        status: "False".to_string(),
                        last_transition_time: Some(self.now.clone()),
                        reason: Some(reason.to_string()),
                        message: Some(message.to_string()),
                    }
                }
            };
            match conditions.iter_mut().find(|c| c.type_ == type_) {
                None => {
                    conditions.push(new);
                    changed = true;
                }
                Some(old) => {
                    if old.status != new.status
                        || old.message != new.message
                        || old.reason != new.reason
                    {
                        if old.status != new.status {
                            old.last_transition_time = Some(self.now.clone());
                        }
                        old.status = new.status;
                        old.reason = new.reason;
                        old.message = new.message;
                        changed = true;
                    }
                }
            }
        }
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now(secs: i64) -> Time {
        Time(jiff::Timestamp::from_second(secs).unwrap())
    }

    fn find<'a>(s: &'a NamespaceStatus, t: &str) -> &'a NamespaceCondition {
        s.conditions
            .as_ref()
            .unwrap()
            .iter()
            .find(|c| c.type_ == t)
            .unwrap()
    }

    #[test]
    fn all_ok_conditions() {
        let mut status = NamespaceStatus::default();
        assert!(ConditionUpdater::new(now(1)).update(&mut status));
        let types: Vec<&str> = status
            .conditions
            .as_ref()
            .unwrap()
            .iter()
            .map(|c| c.type_.as_str())
            .collect();
        assert_eq!(types, CONDITION_TYPES);
        let c = find(&status, FINALIZERS_REMAINING);
        assert_eq!(c.status, "False");
        assert_eq!(c.reason.as_deref(), Some("ContentHasNoFinalizers"));
        assert_eq!(
            c.message.as_deref(),
            Some("All content-preserving finalizers finished")
        );
        // Nothing new: no change.
        assert!(!ConditionUpdater::new(now(2)).update(&mut status));
    }

    #[test]
    fn failures_and_remaining_content() {
        let mut status = NamespaceStatus::default();
        ConditionUpdater::new(now(1)).update(&mut status);
        let mut u = ConditionUpdater::new(now(5));
        u.process_discovery_error(
            "unable to retrieve the complete list of server APIs: metrics.k8s.io/v1beta1: boom",
            Some(1),
        );
        u.process_delete_content_error("b failed");
        u.process_delete_content_error("a failed");
        let mut totals = ContentTotals::default();
        let gvr = |g: &str, r: &str| Gvr {
            group: g.into(),
            version: "v1".into(),
            resource: r.into(),
        };
        totals.remaining_by_resource.insert(gvr("", "pods"), 2);
        totals
            .remaining_by_resource
            .insert(gvr("apps", "deployments"), 1);
        totals
            .remaining_by_finalizer
            .insert("example.com/x".into(), 3);
        u.process_content_totals(&totals);
        assert!(u.update(&mut status));
        let c = find(&status, DELETION_DISCOVERY_FAILURE);
        assert_eq!(c.status, "True");
        assert_eq!(c.reason.as_deref(), Some("DiscoveryFailed"));
        assert_eq!(c.message.as_deref(), Some("Discovery failed for some groups, 1 failing: unable to retrieve the complete list of server APIs: metrics.k8s.io/v1beta1: boom"));
        assert_eq!(c.last_transition_time, Some(now(5)));
        let c = find(&status, DELETION_CONTENT_FAILURE);
        assert_eq!(c.reason.as_deref(), Some("ContentDeletionFailed"));
        assert_eq!(
            c.message.as_deref(),
            Some("Failed to delete all resource types, 2 remaining: a failed, b failed")
        );
        let c = find(&status, CONTENT_REMAINING);
        assert_eq!(c.reason.as_deref(), Some("SomeResourcesRemain"));
        assert_eq!(
            c.message.as_deref(),
            Some("Some resources are remaining: deployments.apps has 1 resource instances, pods. has 2 resource instances")
        );
        let c = find(&status, FINALIZERS_REMAINING);
        assert_eq!(c.reason.as_deref(), Some("SomeFinalizersRemain"));
        assert_eq!(
            c.message.as_deref(),
            Some("Some content in the namespace has finalizers remaining: example.com/x in 3 resource instances")
        );
        // Unchanged GV parsing condition keeps its original transition time.
        assert_eq!(
            find(&status, DELETION_GV_PARSING_FAILURE).last_transition_time,
            Some(now(1))
        );
    }
}
