//! Server-side apply conflicts and upstream's 409 message, causes and
//! Status object built from them.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::managed::{manager_identifier, Operation};
use crate::fieldpath::Path;
use crate::goval::go_quote;

/// A field that an apply would change although another manager owns it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conflict {
    /// The other manager's name.
    pub manager: String,
    /// The other manager's operation.
    pub operation: Operation,
    /// The other manager's API version (empty for appliers: upstream keeps
    /// it out of their identity).
    pub api_version: String,
    /// The other manager's subresource.
    pub subresource: String,
    /// The contested field.
    pub path: Path,
}

impl Conflict {
    /// Upstream's identifier of the conflicting manager.
    pub fn manager_identifier(&self) -> String {
        manager_identifier(
            &self.manager,
            self.operation,
            &self.api_version,
            &self.subresource,
        )
    }

    /// How upstream names the manager in messages: `"name"`, plus `with
    /// subresource "status"`, plus `using apps/v1` for updaters.
    pub fn describe_manager(&self) -> String {
        let mut s = go_quote(&self.manager);
        if !self.subresource.is_empty() {
            s = format!("{} with subresource {}", s, go_quote(&self.subresource));
        }
        if self.operation == Operation::Update {
            s = format!("{} using {}", s, self.api_version);
        }
        s
    }
}

/// Upstream's conflict message, e.g. `Apply failed with 1 conflict:
/// conflict with "kubectl-client-side-apply" using apps/v1: .spec.replicas`;
/// several conflicts are grouped by manager (sorted by identifier), one
/// `- <path>` line each.
pub fn conflict_message(conflicts: &[Conflict]) -> String {
    if let [one] = conflicts {
        return format!(
            "Apply failed with 1 conflict: conflict with {}: {}",
            one.describe_manager(),
            one.path
        );
    }
    let mut by_manager: BTreeMap<String, (&Conflict, Vec<&Path>)> = BTreeMap::new();
    for c in conflicts {
        by_manager
            .entry(c.manager_identifier())
            .or_insert_with(|| (c, Vec::new()))
            .1
            .push(&c.path);
    }
    let mut lines = Vec::new();
    for (c, paths) in by_manager.values() {
        lines.push(format!("conflicts with {}:", c.describe_manager()));
        for p in paths {
            lines.push(format!("- {}", p));
        }
    }
    format!(
        "Apply failed with {} conflicts: {}",
        conflicts.len(),
        lines.join("\n")
    )
}

/// The `details.causes` of upstream's 409: one
/// `{"reason":"FieldManagerConflict","message":"conflict with ...","field":".spec.x"}`
/// per conflict.
pub fn conflict_causes(conflicts: &[Conflict]) -> Vec<Value> {
    conflicts
        .iter()
        .map(|c| {
            json!({
                "reason": "FieldManagerConflict",
                "message": format!("conflict with {}", c.describe_manager()),
                "field": c.path.to_string(),
            })
        })
        .collect()
}

/// The whole `Status` object upstream answers a conflicting apply with
/// (HTTP 409, reason `Conflict`).
pub fn conflict_status(conflicts: &[Conflict]) -> Value {
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": conflict_message(conflicts),
        "reason": "Conflict",
        "details": {"causes": conflict_causes(conflicts)},
        "code": 409,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fieldpath::PathElement;

    fn conflict(manager: &str, op: Operation, sub: &str, path: Path) -> Conflict {
        Conflict {
            manager: manager.into(),
            operation: op,
            api_version: if op == Operation::Update {
                "apps/v1".into()
            } else {
                String::new()
            },
            subresource: sub.into(),
            path,
        }
    }

    #[test]
    fn single_conflict_message() {
        let c = conflict(
            "kubectl-client-side-apply",
            Operation::Update,
            "",
            Path::fields(&["spec", "replicas"]),
        );
        assert_eq!(
            conflict_message(std::slice::from_ref(&c)),
            "Apply failed with 1 conflict: conflict with \"kubectl-client-side-apply\" using apps/v1: .spec.replicas"
        );
        assert_eq!(
            conflict_causes(&[c]),
            vec![json!({
                "reason": "FieldManagerConflict",
                "message": "conflict with \"kubectl-client-side-apply\" using apps/v1",
                "field": ".spec.replicas"
            })]
        );
    }

    #[test]
    fn grouped_message() {
        let image = Path(vec![
            PathElement::field("spec"),
            PathElement::field("containers"),
            PathElement::key([("name", json!("nginx"))]),
            PathElement::field("image"),
        ]);
        let cs = vec![
            conflict(
                "b-applier",
                Operation::Apply,
                "",
                Path::fields(&["spec", "replicas"]),
            ),
            conflict("a-updater", Operation::Update, "status", image.clone()),
            conflict(
                "a-updater",
                Operation::Update,
                "status",
                Path::fields(&["spec", "paused"]),
            ),
        ];
        assert_eq!(
            conflict_message(&cs),
            "Apply failed with 3 conflicts: conflicts with \"a-updater\" with subresource \"status\" using apps/v1:\n- .spec.containers[name=\"nginx\"].image\n- .spec.paused\nconflicts with \"b-applier\":\n- .spec.replicas"
        );
        let status = conflict_status(&cs);
        assert_eq!(status["code"], json!(409));
        assert_eq!(status["reason"], json!("Conflict"));
        assert_eq!(
            status["details"]["causes"][0]["message"],
            json!("conflict with \"b-applier\"")
        );
    }
}
