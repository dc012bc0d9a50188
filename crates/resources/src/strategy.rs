//! The per-kind rules the generic REST handler applies, and a configurable strategy
//! that covers the rules most kinds share.

use apimachinery::field::{FieldError, Path};
use serde_json::{json, Map, Value};
use validation::UserInfo;

/// How the names of a kind are validated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameRule {
    /// RFC 1123 subdomain (most kinds).
    Subdomain,
    /// RFC 1123 label (namespaces, ...).
    Label,
    /// RFC 1035 label (services).
    Dns1035Label,
    /// Only path-segment safety (no `/`, `%`, `.` or `..`): events, RBAC, ...
    PathSegment,
}

/// Per-kind rules of the generic REST handler (Kubernetes' RESTCreateStrategy,
/// RESTUpdateStrategy and the status strategy together).
///
/// Objects are JSON values in the served version. Hooks that change objects must be
/// deterministic: the handler may run them more than once when it retries an update.
pub trait Strategy: Send + Sync + 'static {
    /// On create, before validation: clear what clients may not set (status for most
    /// kinds), set generation, apply defaults.
    fn prepare_for_create(&self, obj: &mut Value);
    /// Validates a new object.
    fn validate(&self, obj: &Value) -> Vec<FieldError>;
    /// On update of the main resource, before validation: keep what this endpoint may
    /// not change (status for kinds with a status subresource), apply defaults, bump
    /// generation when the spec changed.
    fn prepare_for_update(&self, new: &mut Value, old: &Value);
    /// Validates an update of the main resource.
    fn validate_update(&self, new: &Value, old: &Value) -> Vec<FieldError>;
    /// On update through the status subresource: keep everything but status (and
    /// what else the kind lets its status writers change).
    fn prepare_for_status_update(&self, new: &mut Value, old: &Value);
    /// Validates a status update.
    fn validate_status_update(&self, new: &Value, old: &Value) -> Vec<FieldError>;
    /// The kind-specific selectable fields (`metadata.name` and `metadata.namespace`
    /// are added by the caller) and their values for `obj`.
    fn selectable_fields(&self, obj: &Value) -> Vec<(&'static str, String)>;
    /// The kind-specific field labels usable in field selectors.
    fn field_labels(&self) -> &'static [&'static str];
    /// Whether PUT of a missing object creates it.
    fn allow_create_on_update(&self) -> bool;
    /// Whether PUT without a resourceVersion is accepted.
    fn allow_unconditional_update(&self) -> bool;

    /// [`Strategy::prepare_for_create`] then [`Strategy::validate`]; kinds with typed
    /// rules do both on one decoded object.
    fn create(&self, obj: &mut Value) -> Vec<FieldError> {
        self.prepare_for_create(obj);
        self.validate(obj)
    }

    /// [`Strategy::create`] for a request made by `user`, for kinds whose
    /// PrepareForCreate records who asked (CertificateSigningRequests); others ignore
    /// the user.
    fn create_as(&self, obj: &mut Value, user: &UserInfo<'_>) -> Vec<FieldError> {
        let _ = user;
        self.create(obj)
    }

    /// Prepares and validates an update through another writable subresource with
    /// rules of its own (`approval` of CertificateSigningRequests); `None` when the
    /// kind has no such subresource.
    fn update_subresource(
        &self,
        subresource: &str,
        new: &mut Value,
        old: &Value,
    ) -> Option<Vec<FieldError>> {
        let _ = (subresource, new, old);
        None
    }

    /// [`Strategy::prepare_for_update`] then [`Strategy::validate_update`] (or their
    /// status-subresource forms when `status`), in one pass where the kind can.
    fn update(&self, new: &mut Value, old: &Value, status: bool) -> Vec<FieldError> {
        if status {
            self.prepare_for_status_update(new, old);
            self.validate_status_update(new, old)
        } else {
            self.prepare_for_update(new, old);
            self.validate_update(new, old)
        }
    }
}

/// A strategy made of the rules most kinds share, configured per kind.
pub struct GenericStrategy {
    /// Kind name for messages.
    pub kind: &'static str,
    /// Namespaced or cluster scoped.
    pub namespaced: bool,
    /// How names are validated.
    pub names: NameRule,
    /// The kind has a status subresource: the main endpoint keeps status and the
    /// status endpoint keeps everything else.
    pub has_status: bool,
    /// The kind tracks `metadata.generation` (bumped when anything but metadata and
    /// status changes).
    pub generation: bool,
    /// PUT of a missing object creates it.
    pub create_on_update: bool,
    /// Extra selectable fields: (label, JSON path segments).
    pub fields: &'static [(&'static str, &'static [&'static str])],
    /// Kind-specific field labels (the first elements of `fields`).
    pub field_labels: &'static [&'static str],
}

fn lookup<'a>(obj: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(obj, |v, seg| v.get(seg))
}

/// The string form Kubernetes' field selectors use for a JSON value.
fn field_string(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(Value::Number(n)) => n.to_string(),
        Some(other) => other.to_string(),
    }
}

/// Everything of an object except `metadata` and `status`: what generation tracks.
fn spec_part(obj: &Value) -> Map<String, Value> {
    obj.as_object()
        .map(|m| {
            m.iter()
                .filter(|(k, _)| {
                    !matches!(k.as_str(), "metadata" | "status" | "apiVersion" | "kind")
                })
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default()
}

impl GenericStrategy {
    fn name_validator(&self) -> fn(&str, bool) -> Vec<String> {
        use apimachinery::validation as v;
        match self.names {
            NameRule::Subdomain => v::name_is_dns_subdomain,
            NameRule::Label => v::name_is_dns_label,
            NameRule::Dns1035Label => v::name_is_dns1035_label,
            NameRule::PathSegment => v::validate_path_segment_name,
        }
    }

    fn validate_meta(&self, obj: &Value) -> Vec<FieldError> {
        let empty;
        let meta = match obj.get("metadata") {
            Some(m) => m,
            None => {
                empty = json!({});
                &empty
            }
        };
        apimachinery::validation::validate_object_meta(
            meta,
            self.namespaced,
            self.name_validator(),
            &Path::new("metadata"),
        )
    }
}

impl Strategy for GenericStrategy {
    fn prepare_for_create(&self, obj: &mut Value) {
        if self.has_status {
            if let Some(m) = obj.as_object_mut() {
                m.remove("status");
            }
        }
        if self.generation {
            obj["metadata"]["generation"] = json!(1);
        }
    }

    fn validate(&self, obj: &Value) -> Vec<FieldError> {
        self.validate_meta(obj)
    }

    fn prepare_for_update(&self, new: &mut Value, old: &Value) {
        if self.has_status {
            match old.get("status") {
                Some(s) => new["status"] = s.clone(),
                None => {
                    if let Some(m) = new.as_object_mut() {
                        m.remove("status");
                    }
                }
            }
        }
        if self.generation {
            let old_gen = old["metadata"]["generation"].as_i64().unwrap_or(0);
            let gen = if spec_part(new) != spec_part(old) {
                old_gen + 1
            } else {
                old_gen
            };
            new["metadata"]["generation"] = json!(gen);
        }
    }

    fn validate_update(&self, new: &Value, old: &Value) -> Vec<FieldError> {
        let mut errs = self.validate_meta(new);
        errs.extend(apimachinery::validation::validate_object_meta_update(
            &new["metadata"],
            &old["metadata"],
            &Path::new("metadata"),
        ));
        errs
    }

    fn prepare_for_status_update(&self, new: &mut Value, old: &Value) {
        let status = new.get("status").cloned();
        let mut merged = old.clone();
        match status {
            Some(s) => merged["status"] = s,
            None => {
                if let Some(m) = merged.as_object_mut() {
                    m.remove("status");
                }
            }
        }
        // Metadata changes other than labels/annotations/finalizers/ownerReferences go
        // through the main resource; status writers may still touch those.
        for key in ["labels", "annotations", "finalizers", "ownerReferences"] {
            match new["metadata"].get(key) {
                Some(v) => merged["metadata"][key] = v.clone(),
                None => {
                    if let Some(m) = merged["metadata"].as_object_mut() {
                        m.remove(key);
                    }
                }
            }
        }
        merged["metadata"]["resourceVersion"] = new["metadata"]["resourceVersion"].clone();
        *new = merged;
    }

    fn validate_status_update(&self, new: &Value, old: &Value) -> Vec<FieldError> {
        self.validate_update(new, old)
    }

    fn selectable_fields(&self, obj: &Value) -> Vec<(&'static str, String)> {
        self.fields
            .iter()
            .map(|(label, path)| (*label, field_string(lookup(obj, path))))
            .collect()
    }

    fn field_labels(&self) -> &'static [&'static str] {
        self.field_labels
    }

    fn allow_create_on_update(&self) -> bool {
        self.create_on_update
    }

    fn allow_unconditional_update(&self) -> bool {
        true
    }
}
