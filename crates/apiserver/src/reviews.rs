//! Resources answered on the spot rather than stored: access reviews (what
//! `kubectl auth can-i` asks), SelfSubjectReview (`kubectl auth whoami`),
//! TokenReview, and the computed ComponentStatus list.
//!
//! Authorization is "every authenticated user may do everything" until RBAC lands, so
//! reviews answer from that rule; they report exactly what the server enforces.

use crate::error::{ApiError, ApiResult};
use crate::handlers::{json_response, write, Ctx};
use crate::negotiate;
use crate::Body;
use bytes::Bytes;
use http::{Response, StatusCode};
use serde_json::{json, Value};

/// Whether `user` may act: the rule the server enforces today.
pub fn allowed(user_groups: &[String]) -> bool {
    user_groups.iter().any(|g| g == "system:authenticated")
}

/// POST of a review resource.
pub async fn create(ctx: &Ctx<'_>, body: Bytes) -> ApiResult<Response<Body>> {
    let mut obj = write::decode_body(ctx, &body)?;
    write::check_type_meta(ctx, &mut obj, ctx.info.kind, &ctx.info.api_version())?;
    let me = ctx.user.info();
    match ctx.info.kind {
        "SelfSubjectAccessReview" => {
            let attrs = &obj["spec"];
            if attrs.get("resourceAttributes").is_none()
                && attrs.get("nonResourceAttributes").is_none()
            {
                return Err(invalid(
                    ctx,
                    "spec.resourceAttributes",
                    "exactly one of nonResourceAttributes or resourceAttributes must be specified",
                ));
            }
            obj["status"] = json!({"allowed": allowed(&ctx.user.groups)});
        }
        "SubjectAccessReview" | "LocalSubjectAccessReview" => {
            let groups: Vec<String> = obj["spec"]["groups"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|g| g.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            let user = obj["spec"]["user"].as_str().unwrap_or("");
            if user.is_empty() && groups.is_empty() {
                return Err(invalid(
                    ctx,
                    "spec.user",
                    "at least one of user or group must be specified",
                ));
            }
            // Any named user or group is an authenticated principal.
            obj["status"] = json!({"allowed": true});
        }
        "SelfSubjectRulesReview" => {
            obj["status"] = json!({
                "resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}],
                "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}],
                "incomplete": false,
            });
        }
        "SelfSubjectReview" => {
            obj["status"] = json!({"userInfo": me});
        }
        "TokenReview" => {
            obj["status"] = token_review(ctx, &obj["spec"]).await;
        }
        _ => return Err(ApiError::method_not_supported(&ctx.target(), "create")),
    }
    if obj["metadata"].is_null() {
        obj["metadata"] = json!({});
    }
    ctx.value_response(StatusCode::CREATED, obj)
}

/// The status of a TokenReview: the static token table, then service account tokens
/// for the review's audiences (the API audiences when it names none).
async fn token_review(ctx: &Ctx<'_>, spec: &Value) -> Value {
    let token = spec["token"].as_str().unwrap_or("");
    let wanted: Vec<String> = spec["audiences"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    if let Some(u) = ctx.server.tokens.lookup(token) {
        return json!({"authenticated": true, "user": u.info()});
    }
    let authority = &ctx.server.sa_tokens;
    let audiences = if wanted.is_empty() {
        authority.api_audiences().to_vec()
    } else {
        wanted
    };
    match authority.authenticate(ctx.server, token, &audiences).await {
        Ok(Some(a)) => json!({
            "authenticated": true,
            "user": a.user.info(),
            "audiences": a.audiences,
        }),
        Ok(None) => json!({"user": {}}),
        Err(e) => json!({"user": {}, "error": e.to_string()}),
    }
}

fn invalid(ctx: &Ctx<'_>, field: &str, detail: &str) -> ApiError {
    let mut path = apimachinery::Path::default();
    for (i, seg) in field.split('.').enumerate() {
        path = if i == 0 {
            apimachinery::Path::new(seg)
        } else {
            path.child(seg)
        };
    }
    ApiError::invalid(
        ctx.info.kind,
        ctx.info.group,
        "",
        &[apimachinery::FieldError::invalid(
            &path,
            Value::Null,
            detail,
        )],
    )
}

/// GET/LIST of computed resources (componentstatuses).
pub async fn computed(ctx: &Ctx<'_>) -> ApiResult<Response<Body>> {
    let healthy = ctx
        .server
        .registry
        .backend()
        .current_revision()
        .await
        .is_ok();
    let component = |name: &str, ok: bool| {
        json!({
            "kind": "ComponentStatus",
            "apiVersion": "v1",
            "metadata": {"name": name},
            "conditions": [{"type": "Healthy", "status": if ok { "True" } else { "False" }, "message": if ok { "ok" } else { "" }}],
        })
    };
    // Only the store is checked: the other components report through their own
    // health endpoints, which this server does not probe.
    let items = vec![component("etcd-0", healthy)];
    match ctx.req.verb {
        "get" => {
            let item = items
                .into_iter()
                .find(|c| c["metadata"]["name"] == ctx.req.name.as_str())
                .ok_or_else(|| ApiError::not_found(&ctx.target()))?;
            ctx.value_response(StatusCode::OK, item)
        }
        "list" => {
            if let negotiate::Output::Table(v) = ctx.output {
                let t = crate::table::table(
                    ctx.info,
                    &items,
                    v,
                    crate::table::IncludeObject::Metadata,
                    json!({}),
                    false,
                );
                return Ok(json_response(StatusCode::OK, &t));
            }
            ctx.value_response(
                StatusCode::OK,
                json!({"kind": "ComponentStatusList", "apiVersion": "v1", "metadata": {}, "items": items}),
            )
        }
        _ => Err(ApiError::method_not_supported(&ctx.target(), ctx.req.verb)),
    }
}
