//! Managed fields, strategic merge patch, server-side apply and field validation: the
//! bridge between the REST handlers and the `merge` crate, over the type graph the
//! `schema` crate builds.
//!
//! Every write records which manager (`fieldManager`, or the client's user agent)
//! set which fields in `metadata.managedFields`; apply merges an applied configuration
//! into the live object, refusing (409) to change fields other managers own unless
//! forced. `fieldValidation` decides what unknown fields in a request cause: nothing
//! (Ignore), a `Warning` header (Warn, the default) or a 400 (Strict).

use crate::error::{ApiError, ApiResult};
use crate::handlers::write::{self, Change, Endpoint};
use crate::handlers::Ctx;
use crate::object;
use crate::Body;
use http::Response;
use merge::fieldpath::{FieldSet, Path as FieldPath};
use merge::{FieldManager, ManagedFields, TypeGraph, TypeId};
use serde_json::{json, Value};

/// The type graph and the root type of the storage version of `ctx`'s resource.
fn storage_type(ctx: &Ctx<'_>) -> Option<(&'static TypeGraph, TypeId)> {
    let store = ctx.store().ok()?;
    let g = schema::graph::api_graph();
    let root = g.root(store.info.group, store.info.version, store.info.kind)?;
    Some((&g.graph, root))
}

/// The type graph and the root type of the requested version.
fn served_type(ctx: &Ctx<'_>) -> Option<(&'static TypeGraph, TypeId)> {
    let g = schema::graph::api_graph();
    let root = g.root(ctx.info.group, ctx.info.version, ctx.info.kind)?;
    Some((&g.graph, root))
}

/// The manager a write is recorded under: `fieldManager`, else the client's user
/// agent up to its first `/` (as upstream does).
pub fn manager(ctx: &Ctx<'_>) -> String {
    if let Some(m) = ctx.query.str("fieldManager") {
        return m.to_string();
    }
    let ua = ctx
        .headers
        .get(http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    merge::apply::manager_or_user_agent("", ua)
}

fn check_manager(ctx: &Ctx<'_>) -> ApiResult<()> {
    if let Some(m) = ctx.query.get("fieldManager") {
        if m.chars().count() > 128 {
            return Err(ApiError::invalid(
                "PatchOptions",
                "meta.k8s.io",
                "",
                &[apimachinery::FieldError::too_long(
                    &apimachinery::Path::new("fieldManager"),
                    json!(m),
                    128,
                )],
            ));
        }
    }
    Ok(())
}

fn subresource(endpoint: Endpoint) -> &'static str {
    match endpoint {
        Endpoint::Status => "status",
        Endpoint::Subresource(name) => name,
        _ => "",
    }
}

/// Records field ownership on create (storage-version object).
pub fn on_create(ctx: &Ctx<'_>, obj: &mut Value) -> ApiResult<()> {
    check_manager(ctx)?;
    let Some((graph, root)) = storage_type(ctx) else {
        return Ok(());
    };
    let mgr = manager(ctx);
    let managed = ManagedFields::for_update(&json!({}), obj, false);
    let zero = graph.zero_value(root);
    let updated = merge::apply::update(
        &zero,
        obj,
        &mgr,
        "",
        &managed,
        graph,
        root,
        &object::now_rfc3339(),
    );
    updated.write_to(obj);
    Ok(())
}

/// Records field ownership on update.
pub fn on_update(ctx: &Ctx<'_>, old: &Value, new: &mut Value, endpoint: Endpoint) -> ApiResult<()> {
    check_manager(ctx)?;
    let Some((graph, root)) = storage_type(ctx) else {
        return Ok(());
    };
    let mgr = manager(ctx);
    let sub = subresource(endpoint);
    let managed = ManagedFields::for_update(old, new, !sub.is_empty());
    let updated = merge::apply::update(
        old,
        new,
        &mgr,
        sub,
        &managed,
        graph,
        root,
        &object::now_rfc3339(),
    );
    updated.write_to(new);
    Ok(())
}

/// Applies a strategic merge patch to a served-version object.
pub fn strategic_patch(ctx: &Ctx<'_>, current: &Value, patch: &Value) -> ApiResult<Value> {
    let Some((graph, root)) = served_type(ctx) else {
        return Err(ApiError {
            code: 415,
            reason: "UnsupportedMediaType",
            message: format!(
                "strategic merge patch is not supported for {}",
                ctx.info.group_resource()
            ),
            details: None,
        });
    };
    merge::apply_strategic_patch(current, patch, graph, root).map_err(|e| ApiError {
        code: e.status_code(),
        reason: match e.status_code() {
            400 => "BadRequest",
            422 => "Invalid",
            _ => "InternalError",
        },
        message: e.to_string(),
        details: None,
    })
}

/// How unknown fields are treated (`fieldValidation`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Validation {
    /// Dropped silently.
    Ignore,
    /// Dropped with a warning.
    Warn,
    /// The request fails.
    Strict,
}

/// Parses `fieldValidation`.
pub fn validation(ctx: &Ctx<'_>) -> ApiResult<Validation> {
    match ctx.query.get("fieldValidation") {
        None | Some("") | Some("Warn") => Ok(Validation::Warn),
        Some("Ignore") => Ok(Validation::Ignore),
        Some("Strict") => Ok(Validation::Strict),
        Some(other) => Err(ApiError::bad_request(format!(
            "fieldValidation parameter unsupported: {other}"
        ))),
    }
}

/// Checks a request object (served version) for fields its type does not declare.
pub fn check_fields(ctx: &Ctx<'_>, obj: &Value) -> ApiResult<()> {
    let mode = validation(ctx)?;
    if mode == Validation::Ignore {
        return Ok(());
    }
    let gvk = (ctx.info.group, ctx.info.version, ctx.info.kind);
    let Some(unknown) = schema::shape::shapes().unknown_fields(gvk, obj) else {
        return Ok(());
    };
    if unknown.is_empty() {
        return Ok(());
    }
    let items: Vec<String> = unknown
        .iter()
        .map(|f| format!("unknown field \"{f}\""))
        .collect();
    match mode {
        Validation::Strict => Err(ApiError::bad_request(format!(
            "{kind} in version \"{version}\" cannot be handled as a {kind}: strict decoding error: {}",
            items.join(", "),
            kind = ctx.info.kind,
            version = ctx.info.version,
        ))),
        _ => {
            ctx.warn(items);
            Ok(())
        }
    }
}

/// Server-side apply.
pub async fn apply(ctx: &Ctx<'_>, config: Value, endpoint: Endpoint) -> ApiResult<Response<Body>> {
    let Some(mgr) = ctx.query.str("fieldManager").map(str::to_string) else {
        return Err(ApiError::bad_request(
            "PATCH requests with apply require a fieldManager query parameter",
        ));
    };
    check_manager(ctx)?;
    if !config.is_object() {
        return Err(ApiError::bad_request(
            "the apply configuration is not an object",
        ));
    }
    let (api_version, kind) = object::type_meta(&config);
    if api_version != ctx.info.api_version() || kind != ctx.info.kind {
        return Err(ApiError::bad_request(format!(
            "the API version and kind in the data ({api_version}, {kind}) do not match the expected ones ({}, {})",
            ctx.info.api_version(),
            ctx.info.kind
        )));
    }
    let name = object::name(&config);
    if !name.is_empty() && name != ctx.req.name {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({name}) does not match the name on the URL ({})",
            ctx.req.name
        )));
    }
    if config["metadata"]
        .get("managedFields")
        .is_some_and(|m| !m.is_null())
    {
        return Err(ApiError::bad_request("metadata.managedFields must be nil"));
    }
    check_fields(ctx, &config)?;
    let Some((graph, root)) = served_type(ctx) else {
        return Err(ApiError::unsupported_media_type(
            "application/apply-patch+yaml",
        ));
    };
    let force = ctx.query.flag("force");
    let sub = subresource(endpoint);
    let mut fm = FieldManager::new(graph, root);
    if endpoint == Endpoint::Main && ctx.info.subresource("status").is_some() {
        // Status is reset by the main endpoint: nobody owns it through it.
        fm = fm.with_ignored_fields(FieldSet::from_paths([FieldPath::fields(&["status"])]));
    }
    let now = object::now_rfc3339();
    let run = |live: &Value| -> ApiResult<Value> {
        // Unreadable managed fields are reset, as upstream does.
        let managed = ManagedFields::from_object(live).unwrap_or_default();
        let (mut obj, updated) = fm
            .apply(live, &config, &mgr, sub, force, &managed, &now)
            .map_err(apply_error)?;
        updated.write_to(&mut obj);
        Ok(obj)
    };
    // Apply to an existing object, or create it.
    let store = ctx.store()?;
    let exists = store
        .cache
        .get_cached(&store.key(ctx.namespace(), &ctx.req.name))
        .await
        .map_err(|e| ApiError::from_store(e, &ctx.target()))?
        .is_some();
    if !exists && endpoint == Endpoint::Main {
        let mut live = json!({"apiVersion": ctx.info.api_version(), "kind": ctx.info.kind, "metadata": {"name": ctx.req.name}});
        if ctx.info.namespaced() {
            live["metadata"]["namespace"] = json!(ctx.req.namespace);
        }
        let mut obj = run(&live)?;
        write::check_namespace(ctx, &mut obj)?;
        let storage_obj = if ctx.is_storage_version() {
            obj
        } else {
            crate::convert::to_storage(ctx.info, obj)
        };
        match write::create_object_tracked(ctx, storage_obj, false).await {
            Ok(w) => return w.response(ctx),
            // Created meanwhile: apply to it instead.
            Err(e) if e.code == 409 => {}
            Err(e) => return Err(e),
        }
    }
    write::update_object(ctx, Change::Applied(&run), endpoint)
        .await?
        .response(ctx)
}

fn apply_error(e: merge::ApplyError) -> ApiError {
    match e {
        merge::ApplyError::Conflicts(c) => {
            let status = merge::conflict_status(&c);
            ApiError {
                code: 409,
                reason: "Conflict",
                message: merge::conflict_message(&c),
                details: status.get("details").cloned(),
            }
        }
        merge::ApplyError::BadRequest(m) => ApiError::bad_request(m),
        merge::ApplyError::Invalid(m) => ApiError::internal(m),
    }
}
