//! API errors and their `metav1.Status` form: every failure a client sees carries the
//! HTTP code, `reason`, message and details upstream Kubernetes would send.

use apimachinery::field::FieldError;
use serde_json::{json, Value};
use store::StoreError;

/// The resource an error is about, as upstream names it in messages and details.
#[derive(Clone, Debug, Default)]
pub struct Target {
    /// API group ("" for core).
    pub group: String,
    /// Plural resource name (`pods`), used as `details.kind` and in messages.
    pub resource: String,
    /// Object name, if any.
    pub name: String,
}

impl Target {
    /// `pods` or `deployments.apps`, as upstream's qualified resource prints.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.resource.clone()
        } else {
            format!("{}.{}", self.resource, self.group)
        }
    }
}

/// A failed request.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    /// HTTP status code.
    pub code: u16,
    /// `metav1.StatusReason`.
    pub reason: &'static str,
    /// Human-readable message.
    pub message: String,
    /// `details`, if any.
    pub details: Option<Value>,
}

impl ApiError {
    /// An error with any code, reason and message.
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }

    fn with_target(mut self, t: &Target) -> ApiError {
        let mut d = json!({});
        if !t.name.is_empty() {
            d["name"] = json!(t.name);
        }
        if !t.group.is_empty() {
            d["group"] = json!(t.group);
        }
        if !t.resource.is_empty() {
            d["kind"] = json!(t.resource);
        }
        self.details = Some(d);
        self
    }

    /// 404 for a missing object.
    pub fn not_found(t: &Target) -> ApiError {
        ApiError::new(
            404,
            "NotFound",
            format!("{} \"{}\" not found", t.qualified(), t.name),
        )
        .with_target(t)
    }

    /// 404 for a path that names nothing.
    pub fn path_not_found() -> ApiError {
        ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
        .with_details(json!({}))
    }

    /// 409 for a create of an existing object.
    pub fn already_exists(t: &Target) -> ApiError {
        ApiError::new(
            409,
            "AlreadyExists",
            format!("{} \"{}\" already exists", t.qualified(), t.name),
        )
        .with_target(t)
    }

    /// 409 for a stale resourceVersion.
    pub fn conflict(t: &Target, why: &str) -> ApiError {
        ApiError::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{}\": {}",
                t.qualified(),
                t.name,
                why
            ),
        )
        .with_target(t)
    }

    /// The usual optimistic-concurrency conflict.
    pub fn modified(t: &Target) -> ApiError {
        ApiError::conflict(
            t,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    /// 422 with field causes.
    pub fn invalid(kind: &str, group: &str, name: &str, errs: &[FieldError]) -> ApiError {
        let qualified = if group.is_empty() {
            kind.to_string()
        } else {
            format!("{kind}.{group}")
        };
        let message = apimachinery::field::invalid_message(&qualified, name, errs);
        let mut details = json!({
            "name": name,
            "kind": kind,
            "causes": errs.iter().map(|e| e.to_status_cause()).collect::<Vec<_>>(),
        });
        if !group.is_empty() {
            details["group"] = json!(group);
        }
        ApiError::new(422, "Invalid", message).with_details(details)
    }

    /// 400.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(400, "BadRequest", message)
    }

    /// 401.
    pub fn unauthorized() -> ApiError {
        ApiError::new(401, "Unauthorized", "Unauthorized")
    }

    /// 403.
    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(403, "Forbidden", message)
    }

    /// 405.
    pub fn method_not_supported(t: &Target, verb: &str) -> ApiError {
        ApiError::new(
            405,
            "MethodNotAllowed",
            format!(
                "{verb} is not supported on resources of kind \"{}\"",
                t.qualified()
            ),
        )
        .with_target(t)
    }

    /// 406.
    pub fn not_acceptable(accept: &str) -> ApiError {
        ApiError::new(
            406,
            "NotAcceptable",
            format!("the server was unable to respond with a content type that the client supports: {accept}"),
        )
    }

    /// 415.
    pub fn unsupported_media_type(content_type: &str) -> ApiError {
        ApiError::new(
            415,
            "UnsupportedMediaType",
            format!("the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf (got {content_type})"),
        )
    }

    /// 410 for a resourceVersion or continue token that is no longer available.
    pub fn gone(message: impl Into<String>) -> ApiError {
        ApiError::new(410, "Expired", message)
    }

    /// 413.
    pub fn too_large(message: impl Into<String>) -> ApiError {
        ApiError::new(413, "RequestEntityTooLarge", message)
    }

    /// 500.
    pub fn internal(message: impl std::fmt::Display) -> ApiError {
        ApiError::new(
            500,
            "InternalError",
            format!("Internal error occurred: {message}"),
        )
        .with_details(json!({"causes": [{"message": message.to_string()}]}))
    }

    /// 504 for a resourceVersion the server has not reached yet.
    pub fn too_large_resource_version(rv: i64) -> ApiError {
        ApiError::new(
            504,
            "Timeout",
            format!("Too large resource version: {rv}, current: 0"),
        )
        .with_details(json!({"causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}], "retryAfterSeconds": 1}))
    }

    /// 503.
    pub fn unavailable(message: impl Into<String>) -> ApiError {
        ApiError::new(503, "ServiceUnavailable", message)
    }

    /// Replaces the details.
    pub fn with_details(mut self, details: Value) -> ApiError {
        self.details = Some(details);
        self
    }

    /// Maps a store failure for `t`.
    pub fn from_store(err: StoreError, t: &Target) -> ApiError {
        match err {
            StoreError::NotFound { .. } => ApiError::not_found(t),
            StoreError::AlreadyExists { .. } => ApiError::already_exists(t),
            StoreError::Conflict { .. } => ApiError::modified(t),
            StoreError::Compacted {
                requested,
                compacted,
            } => ApiError::gone(format!(
                "too old resource version: {requested} ({compacted})"
            )),
            StoreError::FutureRevision { requested, .. } => {
                ApiError::too_large_resource_version(requested)
            }
            StoreError::TooLarge { .. } => ApiError::too_large("etcdserver: request is too large"),
            StoreError::Timeout => ApiError::new(504, "Timeout", "storage request timed out"),
            e => ApiError::internal(e),
        }
    }

    /// The `metav1.Status` body.
    pub fn status(&self) -> Value {
        let mut s = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(d) = &self.details {
            s["details"] = d.clone();
        }
        s
    }
}

/// Result type of the handlers.
pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_look_like_upstream() {
        let t = Target {
            group: "apps".into(),
            resource: "deployments".into(),
            name: "web".into(),
        };
        let s = ApiError::not_found(&t).status();
        assert_eq!(s["message"], "deployments.apps \"web\" not found");
        assert_eq!(
            s["details"],
            json!({"name": "web", "group": "apps", "kind": "deployments"})
        );
        assert_eq!(s["code"], 404);
        let c = ApiError::modified(&Target {
            group: String::new(),
            resource: "pods".into(),
            name: "p".into(),
        });
        assert_eq!(
            c.message,
            "Operation cannot be fulfilled on pods \"p\": the object has been modified; please apply your changes to the latest version and try again"
        );
    }
}
