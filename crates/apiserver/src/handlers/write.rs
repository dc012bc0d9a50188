//! CREATE, UPDATE (PUT) and PATCH.
//!
//! Create: decode, check type and namespace, fill system metadata, let the strategy
//! prepare and validate, run admission, store. Update and patch read the current
//! object, compute the new one (the body, or the patch applied to the current object),
//! apply the update strategy and validation, and compare-and-swap it into the store;
//! when the client gave no resourceVersion a lost race is retried with the fresh
//! object, as upstream's GuaranteedUpdate does. An update that changes nothing is not
//! written.

use super::Ctx;
use crate::admission;
use crate::error::{ApiError, ApiResult};
use crate::negotiate::{self, BodyType};
use crate::object;
use crate::registry::ResourceStore;
use crate::Body;
use bytes::Bytes;
use http::{Response, StatusCode};
use serde_json::{json, Value};
use std::sync::Arc;
use store::StoreError;

/// An object as written: its value (storage version, without resourceVersion), the
/// revision it was written at (0 for dry runs) and the exact bytes stored.
pub struct Written {
    /// The object.
    pub obj: Value,
    /// Its revision.
    pub rev: i64,
    /// The bytes in the store (without resourceVersion).
    pub stored: Bytes,
    /// 200, or 201 when the write created the object.
    pub code: StatusCode,
}

impl Written {
    /// The response for this object: the stored bytes with the revision spliced in
    /// when they can be sent as they are, else the converted, encoded object.
    pub fn response(self, ctx: &Ctx<'_>) -> ApiResult<Response<Body>> {
        if self.rev > 0 && ctx.output == crate::negotiate::Output::Json && ctx.is_storage_version()
        {
            return Ok(super::bytes_response(
                self.code,
                "application/json",
                object::with_resource_version(&self.stored, self.rev),
            ));
        }
        stored_response(ctx, self.code, self.obj, self.rev)
    }
}

/// Which endpoint an update came through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// The resource itself.
    Main,
    /// The status subresource.
    Status,
    /// Another writable subresource whose rules the kind's strategy gives
    /// (`certificatesigningrequests/approval`).
    Subresource(&'static str),
    /// A server-side change with its own rules (binding, finalize, scale): the closure
    /// computing the object decides what changes, strategy hooks are not run, but the
    /// result is still validated as an update.
    Internal,
}

/// Decodes a JSON or YAML request body.
pub fn decode_body(ctx: &Ctx<'_>, body: &[u8]) -> ApiResult<Value> {
    let ct = ctx
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let v = match negotiate::body_type(ct)? {
        BodyType::Json => negotiate::decode(body, false)?,
        BodyType::Yaml => negotiate::decode(body, true)?,
        BodyType::Protobuf => negotiate::decode_protobuf(body)?,
        _ => return Err(ApiError::unsupported_media_type(ct.unwrap_or(""))),
    };
    if !v.is_object() {
        return Err(ApiError::bad_request(format!(
            "Object '{}' is missing in '{}'",
            "Kind",
            String::from_utf8_lossy(&body[..body.len().min(200)])
        )));
    }
    Ok(v)
}

/// Checks (and fills in when missing) `apiVersion` and `kind` against the endpoint.
pub fn check_type_meta(
    ctx: &Ctx<'_>,
    obj: &mut Value,
    kind: &str,
    api_version: &str,
) -> ApiResult<()> {
    let (got_version, got_kind) = object::type_meta(obj);
    if !got_version.is_empty() && got_version != api_version {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({got_version}) does not match the expected API version ({api_version})"
        )));
    }
    if !got_kind.is_empty() && got_kind != kind {
        return Err(ApiError::bad_request(format!(
            "the kind in the data ({got_kind}) does not match the expected kind ({kind})"
        )));
    }
    obj["apiVersion"] = json!(api_version);
    obj["kind"] = json!(kind);
    let _ = ctx;
    Ok(())
}

/// Puts the request's namespace into the object, refusing a different one.
pub fn check_namespace(ctx: &Ctx<'_>, obj: &mut Value) -> ApiResult<()> {
    let meta = object::meta_mut(obj);
    if ctx.info.namespaced() {
        let ns = meta.get("namespace").and_then(Value::as_str).unwrap_or("");
        if ns.is_empty() {
            meta.insert("namespace".into(), json!(ctx.req.namespace));
        } else if ns != ctx.req.namespace {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
    } else {
        meta.remove("namespace");
    }
    Ok(())
}

/// Converts a served-version object to the storage version, dropping the empty
/// metadata lists and maps upstream never stores (they are `omitempty`): a patch that
/// removes the last owner reference leaves no `ownerReferences: []` behind.
fn to_storage(ctx: &Ctx<'_>, obj: Value) -> Value {
    let mut obj = if ctx.is_storage_version() {
        obj
    } else {
        crate::convert::to_storage(ctx.info, obj)
    };
    drop_empty_metadata(&mut obj);
    obj
}

/// Removes empty `ownerReferences`, `finalizers`, `labels`, `annotations` and
/// `managedFields` from `metadata`.
fn drop_empty_metadata(obj: &mut Value) {
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        for field in [
            "ownerReferences",
            "finalizers",
            "labels",
            "annotations",
            "managedFields",
        ] {
            let empty = match meta.get(field) {
                Some(Value::Array(a)) => a.is_empty(),
                Some(Value::Object(o)) => o.is_empty(),
                Some(Value::Null) => true,
                _ => false,
            };
            if empty {
                meta.remove(field);
            }
        }
    }
}

fn validation_error(
    store: &ResourceStore,
    name: &str,
    errs: &[apimachinery::FieldError],
) -> ApiError {
    ApiError::invalid(store.info.kind, store.info.group, name, errs)
}

/// Response for a stored object given as a value (storage version) and revision.
fn stored_response(
    ctx: &Ctx<'_>,
    code: StatusCode,
    mut obj: Value,
    rev: i64,
) -> ApiResult<Response<Body>> {
    if rev > 0 {
        object::set_resource_version(&mut obj, rev);
    }
    ctx.value_response(code, ctx.served(obj))
}

/// POST: create an object.
pub async fn create(ctx: &Ctx<'_>, body: Bytes) -> ApiResult<Response<Body>> {
    let mut obj = decode_body(ctx, &body)?;
    check_type_meta(ctx, &mut obj, ctx.info.kind, &ctx.info.api_version())?;
    crate::fieldmanager::check_fields(ctx, &obj)?;
    check_namespace(ctx, &mut obj)?;
    let obj = to_storage(ctx, obj);
    create_object(ctx, obj).await?.response(ctx)
}

/// Fills system metadata, prepares, validates, admits and stores a new object
/// (storage version).
pub async fn create_object(ctx: &Ctx<'_>, obj: Value) -> ApiResult<Written> {
    create_object_tracked(ctx, obj, true).await
}

/// [`create_object`], recording managed fields only when `track` (apply has already
/// recorded them).
pub async fn create_object_tracked(
    ctx: &Ctx<'_>,
    mut obj: Value,
    track: bool,
) -> ApiResult<Written> {
    let store = ctx.store()?;
    let dry_run = ctx.query.dry_run()?;
    {
        let meta = object::meta_mut(&mut obj);
        for k in [
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "resourceVersion",
            "selfLink",
            "uid",
            "creationTimestamp",
            "generation",
        ] {
            meta.remove(k);
        }
        meta.insert("uid".into(), json!(object::new_uid()));
        meta.insert("creationTimestamp".into(), json!(object::now_rfc3339()));
    }
    fill_required(store, &mut obj);
    let mut tracked = !track;
    let generate = object::meta_str(&obj, "generateName").to_string();
    let needs_name = object::name(&obj).is_empty() && !generate.is_empty();
    let mut attempts = 0;
    loop {
        attempts += 1;
        if needs_name {
            object::meta_mut(&mut obj).insert(
                "name".into(),
                json!(format!("{generate}{}", object::random_suffix())),
            );
        }
        let name = object::name(&obj).to_string();
        let errs = if attempts == 1 {
            let user = resources::UserInfo {
                name: &ctx.user.name,
                uid: &ctx.user.uid,
                groups: &ctx.user.groups,
                extra: &ctx.user.extra,
            };
            store.strategy.create_as(&mut obj, &user)
        } else {
            // Only the generated name changed since the first pass.
            store.strategy.validate(&obj)
        };
        if !errs.is_empty() {
            return Err(validation_error(store, &name, &errs));
        }
        // Ownership is recorded on the object as the client made it, before
        // admission fills in server-allocated fields (as upstream's order is).
        if !tracked {
            crate::fieldmanager::on_create(ctx, &mut obj)?;
            tracked = true;
        }
        let admitted = admission::admit_create(ctx, &mut obj, dry_run).await?;
        let stored = object::to_stored(&obj);
        if dry_run {
            return Ok(Written {
                obj,
                rev: 0,
                stored,
                code: StatusCode::CREATED,
            });
        }
        let key = store.key(ctx.namespace(), &name);
        match store.store().create(&key, stored.clone()).await {
            Ok(rev) => {
                return Ok(Written {
                    obj,
                    rev,
                    stored,
                    code: StatusCode::CREATED,
                })
            }
            Err(e) => {
                admitted.rollback(ctx.server).await;
                match e {
                    StoreError::AlreadyExists { .. } if needs_name && attempts < 8 => continue,
                    e => return Err(ApiError::from_store(e, &ctx.target_named(&name))),
                }
            }
        }
    }
}

/// How an update computes the new object from the current one.
pub enum Change<'a> {
    /// PUT: the body replaces the object.
    Replace(Value),
    /// PATCH: apply this patch to the current object.
    Patch(BodyType, &'a Value),
    /// Compute the new object (served version) from the current one.
    Func(&'a (dyn Fn(&Value) -> ApiResult<Value> + Send + Sync)),
    /// Server-side apply: compute the new object, whose managed fields the closure
    /// has already set.
    Applied(&'a (dyn Fn(&Value) -> ApiResult<Value> + Send + Sync)),
}

/// PUT: replace an object.
pub async fn update(ctx: &Ctx<'_>, body: Bytes, endpoint: Endpoint) -> ApiResult<Response<Body>> {
    let mut obj = decode_body(ctx, &body)?;
    check_type_meta(ctx, &mut obj, ctx.info.kind, &ctx.info.api_version())?;
    crate::fieldmanager::check_fields(ctx, &obj)?;
    let name = object::name(&obj).to_string();
    if name != ctx.req.name {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({name}) does not match the name on the URL ({})",
            ctx.req.name
        )));
    }
    check_namespace(ctx, &mut obj)?;
    update_object(ctx, Change::Replace(obj), endpoint)
        .await?
        .response(ctx)
}

/// PATCH: apply a patch to an object.
pub async fn patch(ctx: &Ctx<'_>, body: Bytes, endpoint: Endpoint) -> ApiResult<Response<Body>> {
    let ct = ctx
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let kind = negotiate::body_type(ct)?;
    let patch = match kind {
        BodyType::Json | BodyType::Yaml | BodyType::Protobuf => {
            return Err(ApiError::unsupported_media_type(ct.unwrap_or("")))
        }
        BodyType::ApplyPatch => negotiate::decode(&body, true)?,
        _ => negotiate::decode(&body, false)?,
    };
    if kind == BodyType::ApplyPatch {
        return crate::fieldmanager::apply(ctx, patch, endpoint).await;
    }
    if ctx.query.get("force").is_some() {
        return Err(ApiError::bad_request(
            "force is not supported for non-apply patch requests",
        ));
    }
    update_object(ctx, Change::Patch(kind, &patch), endpoint)
        .await?
        .response(ctx)
}

/// Applies a non-apply patch to a served-version object.
pub fn apply_patch(
    ctx: &Ctx<'_>,
    kind: BodyType,
    current: &Value,
    patch: &Value,
) -> ApiResult<Value> {
    let unprocessable = |msg: String| ApiError {
        code: 422,
        reason: "Invalid",
        message: msg,
        details: None,
    };
    let mut doc = current.clone();
    match kind {
        BodyType::JsonPatch => {
            let p: json_patch::Patch = serde_json::from_value(patch.clone())
                .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
            json_patch::patch(&mut doc, &p).map_err(|e| unprocessable(e.to_string()))?;
        }
        BodyType::MergePatch => {
            if !patch.is_object() {
                return Err(ApiError::bad_request(
                    "error decoding patch: the patch is not a JSON object",
                ));
            }
            json_patch::merge(&mut doc, patch);
        }
        BodyType::StrategicMergePatch => {
            doc = crate::fieldmanager::strategic_patch(ctx, current, patch)?;
        }
        _ => return Err(ApiError::bad_request("unsupported patch type")),
    }
    if !doc.is_object() {
        return Err(unprocessable(
            "the patch made the object not an object".into(),
        ));
    }
    Ok(doc)
}

/// Reads the current object, computes the new one with `change`, runs the update
/// strategy, validation and admission, and writes it.
pub async fn update_object(
    ctx: &Ctx<'_>,
    change: Change<'_>,
    endpoint: Endpoint,
) -> ApiResult<Written> {
    let store: &Arc<ResourceStore> = ctx.store()?;
    let dry_run = ctx.query.dry_run()?;
    let key = store.key(ctx.namespace(), &ctx.req.name);
    let target = ctx.target();
    loop {
        let current = store
            .cache
            .get_cached(&key)
            .await
            .map_err(|e| ApiError::from_store(e, &target))?;
        let Some(current) = current else {
            return match change {
                Change::Replace(obj)
                    if store.strategy.allow_create_on_update() && endpoint == Endpoint::Main =>
                {
                    if object::resource_version(&obj).is_some() {
                        return Err(ApiError::not_found(&target));
                    }
                    let obj = to_storage(ctx, obj);
                    create_object(ctx, obj).await
                }
                _ => Err(ApiError::not_found(&target)),
            };
        };
        let old: Value = current.extra.value();
        let old_served = ctx.served(old.clone());
        let new_served = match &change {
            Change::Replace(obj) => obj.clone(),
            Change::Patch(kind, patch) => {
                let mut n = apply_patch(ctx, *kind, &old_served, patch)?;
                // A patch may not rename or move the object.
                if object::name(&n) != ctx.req.name {
                    return Err(ApiError::bad_request(format!(
                        "the name of the object ({}) does not match the name on the URL ({})",
                        object::name(&n),
                        ctx.req.name
                    )));
                }
                check_namespace(ctx, &mut n)?;
                n
            }
            Change::Func(f) | Change::Applied(f) => f(&old_served)?,
        };
        if let Change::Patch(..) = change {
            crate::fieldmanager::check_fields(ctx, &new_served)?;
        }
        // A replacement's resourceVersion is a precondition. A patch (or apply) starts
        // from the current object, so only a resourceVersion it changes is one: an
        // unchanged one is re-read and the patch re-applied on a conflict, as
        // upstream does.
        let precondition = match change {
            Change::Replace(_) => object::resource_version(&new_served),
            _ => object::resource_version(&new_served).filter(|rv| *rv != current.kv.mod_revision),
        };
        if let Some(rv) = precondition {
            if rv != current.kv.mod_revision {
                return Err(ApiError::modified(&target));
            }
        }
        let mut new = to_storage(ctx, new_served);
        fill_required(store, &mut new);
        let errs = prepare_update(store, &mut new, &old, endpoint, current.kv.mod_revision);
        if !errs.is_empty() {
            return Err(validation_error(store, &ctx.req.name, &errs));
        }
        if !matches!(change, Change::Applied(_)) {
            crate::fieldmanager::on_update(ctx, &old, &mut new, endpoint)?;
        }
        let admitted = admission::admit_update(ctx, &mut new, &old, dry_run).await?;
        let stored = object::to_stored(&new);
        object::meta_mut(&mut new).remove("resourceVersion");
        let written = |obj: Value, rev, stored: Bytes| Written {
            obj,
            rev,
            stored,
            code: StatusCode::OK,
        };
        if stored == current.kv.value || dry_run {
            // Nothing changed (or nothing may): no write, same resourceVersion.
            admitted.rollback(ctx.server).await;
            return Ok(written(new, current.kv.mod_revision, stored));
        }
        match store
            .store()
            .update(&key, stored.clone(), current.kv.mod_revision)
            .await
        {
            Ok(rev) => {
                admission::updated(ctx, &old, &new).await;
                let rev = super::delete::finish_if_finalized(ctx, store, &key, &new, rev)
                    .await?
                    .unwrap_or(rev);
                return Ok(written(new, rev, stored));
            }
            Err(StoreError::Conflict { .. } | StoreError::NotFound { .. })
                if precondition.is_none() =>
            {
                // Admitted again against the object as it is now.
                admitted.rollback(ctx.server).await;
                continue;
            }
            Err(e) => {
                admitted.rollback(ctx.server).await;
                return Err(ApiError::from_store(e, &target));
            }
        }
    }
}

/// Adds required fields the object lacks, with zero values, so typed validation can
/// report them (as decoding into Go structs would let upstream do).
fn fill_required(store: &ResourceStore, obj: &mut Value) {
    schema::shape::shapes()
        .fill_required((store.info.group, store.info.version, store.info.kind), obj);
}

/// What every update does (upstream's BeforeUpdate): system fields come from the old
/// object and cannot be changed by clients; then the strategy prepares and validates
/// (seeing the revision being replaced, as upstream's update does).
fn prepare_update(
    store: &ResourceStore,
    new: &mut Value,
    old: &Value,
    endpoint: Endpoint,
    revision: i64,
) -> Vec<apimachinery::FieldError> {
    let old_meta = old.get("metadata").cloned().unwrap_or_else(|| json!({}));
    {
        let meta = object::meta_mut(new);
        if meta
            .get("uid")
            .and_then(Value::as_str)
            .unwrap_or("")
            .is_empty()
        {
            if let Some(uid) = old_meta.get("uid") {
                meta.insert("uid".into(), uid.clone());
            }
        }
        for k in [
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
        ] {
            match old_meta.get(k) {
                Some(v) => {
                    meta.insert(k.into(), v.clone());
                }
                None => {
                    meta.remove(k);
                }
            }
        }
        meta.insert("resourceVersion".into(), json!(revision.to_string()));
        meta.remove("selfLink");
    }
    match endpoint {
        Endpoint::Main => store.strategy.update(new, old, false),
        Endpoint::Status => store.strategy.update(new, old, true),
        Endpoint::Subresource(name) => store
            .strategy
            .update_subresource(name, new, old)
            .unwrap_or_else(|| {
                vec![apimachinery::FieldError::internal(
                    &apimachinery::Path::default(),
                    format!(
                        "{} has no update rules for the {name} subresource",
                        store.info.kind
                    ),
                )]
            }),
        Endpoint::Internal => store.strategy.validate_update(new, old),
    }
}

#[cfg(test)]
mod tests {
    use super::drop_empty_metadata;
    use serde_json::json;

    #[test]
    fn empty_metadata_collections_are_not_stored() {
        let mut obj = json!({"metadata": {
            "name": "x", "ownerReferences": [], "finalizers": [], "labels": {},
            "annotations": null, "managedFields": [],
        }});
        drop_empty_metadata(&mut obj);
        assert_eq!(obj, json!({"metadata": {"name": "x"}}));
        let mut kept = json!({"metadata": {"labels": {"a": "b"}, "finalizers": ["f"]}});
        let before = kept.clone();
        drop_empty_metadata(&mut kept);
        assert_eq!(kept, before);
    }
}
