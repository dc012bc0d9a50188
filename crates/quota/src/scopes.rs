//! A ResourceQuota as quota evaluation reads it ([`QuotaView`]): its scopes and scope
//! selector (both turned into [`ScopeSelectorRequirement`]s), and its hard limits and
//! usage.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::resources::{parse_list, ResourceList};
use crate::QuotaError;

/// One scope requirement: a scope name with an operator (`In`, `NotIn`, `Exists`,
/// `DoesNotExist`) and values. A plain `spec.scopes` entry is `Exists`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScopeSelectorRequirement {
    /// The scope (`BestEffort`, `PriorityClass`, ...).
    pub scope_name: String,
    /// The operator.
    pub operator: String,
    /// The values (for `In` and `NotIn`).
    pub values: Vec<String>,
}

impl ScopeSelectorRequirement {
    /// An `Exists` requirement on a scope.
    pub fn exists(scope: &str) -> Self {
        ScopeSelectorRequirement {
            scope_name: scope.to_string(),
            operator: "Exists".into(),
            values: Vec::new(),
        }
    }

    /// Reads a `scopeSelector.matchExpressions` entry.
    pub fn from_json(v: &Value) -> Self {
        ScopeSelectorRequirement {
            scope_name: v["scopeName"].as_str().unwrap_or("").to_string(),
            operator: v["operator"].as_str().unwrap_or("").to_string(),
            values: v["values"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|s| s.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    /// Evaluates the requirement as a label requirement keyed by the scope name over
    /// `labels`.
    pub fn matches_labels(&self, labels: &BTreeMap<&str, &str>) -> Result<bool, QuotaError> {
        let value = labels.get(self.scope_name.as_str());
        match self.operator.as_str() {
            "In" => Ok(value.is_some_and(|v| self.values.iter().any(|x| x == v))),
            "NotIn" => Ok(value.is_none_or(|v| !self.values.iter().any(|x| x == v))),
            "Exists" => Ok(value.is_some()),
            "DoesNotExist" => Ok(value.is_none()),
            other => Err(QuotaError::InvalidScopeOperator(other.to_string())),
        }
    }
}

/// The parts of a ResourceQuota quota evaluation reads.
#[derive(Clone, Debug, Default)]
pub struct QuotaView {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace`.
    pub namespace: String,
    /// `metadata.resourceVersion`.
    pub resource_version: String,
    /// `spec.scopes`.
    pub scopes: Vec<String>,
    /// `spec.scopeSelector.matchExpressions`.
    pub scope_selector: Vec<ScopeSelectorRequirement>,
    /// `spec.hard`.
    pub spec_hard: ResourceList,
    /// `status.hard`: what admission enforces (set by the controller).
    pub hard: ResourceList,
    /// `status.used`.
    pub used: ResourceList,
    /// Whether `status.hard` is present.
    pub has_status_hard: bool,
    /// Whether `status.used` is present.
    pub has_status_used: bool,
}

impl QuotaView {
    /// Reads a ResourceQuota (JSON).
    pub fn from_json(q: &Value) -> QuotaView {
        let meta = &q["metadata"];
        let s = |v: &Value| v.as_str().unwrap_or("").to_string();
        QuotaView {
            name: s(&meta["name"]),
            namespace: s(&meta["namespace"]),
            resource_version: s(&meta["resourceVersion"]),
            scopes: q["spec"]["scopes"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default(),
            scope_selector: q["spec"]["scopeSelector"]["matchExpressions"]
                .as_array()
                .map(|a| a.iter().map(ScopeSelectorRequirement::from_json).collect())
                .unwrap_or_default(),
            spec_hard: parse_list(&q["spec"]["hard"]),
            hard: parse_list(&q["status"]["hard"]),
            used: parse_list(&q["status"]["used"]),
            has_status_hard: q["status"]["hard"].is_object(),
            has_status_used: q["status"]["used"].is_object(),
        }
    }

    /// Every scope requirement: the scopes (as `Exists`) then the selector's.
    pub fn scope_selectors(&self) -> Vec<ScopeSelectorRequirement> {
        self.scopes
            .iter()
            .map(|s| ScopeSelectorRequirement::exists(s))
            .chain(self.scope_selector.iter().cloned())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_quota() {
        let q = QuotaView::from_json(&json!({
            "metadata": {"name": "q", "namespace": "ns", "resourceVersion": "7"},
            "spec": {"hard": {"pods": "2"}, "scopes": ["BestEffort"],
                     "scopeSelector": {"matchExpressions": [{"scopeName": "PriorityClass", "operator": "In", "values": ["high"]}]}},
            "status": {"hard": {"pods": "2"}}
        }));
        assert_eq!(q.name, "q");
        assert!(q.has_status_hard && !q.has_status_used);
        let sels = q.scope_selectors();
        assert_eq!(sels.len(), 2);
        assert_eq!(sels[0], ScopeSelectorRequirement::exists("BestEffort"));
        assert_eq!(sels[1].values, ["high"]);
    }
}
