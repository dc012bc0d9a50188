//! DELETE and DELETECOLLECTION.
//!
//! A delete either removes the object at once, or marks it: pods get a grace period
//! (`deletionTimestamp` in the future, the kubelet finishes the deletion), objects with
//! finalizers (including the `orphan`/`foregroundDeletion` ones that propagation
//! policies add, and namespaces with `spec.finalizers`) keep existing with a
//! `deletionTimestamp` until their finalizers are removed; the update that removes the
//! last one deletes the object ([`finish_if_finalized`]).

use super::read::{list_response, Selectors};
use super::{json_response, Ctx};
use crate::admission;
use crate::error::{ApiError, ApiResult};
use crate::negotiate;
use crate::object;
use crate::registry::ResourceStore;
use crate::Body;
use bytes::Bytes;
use http::{Response, StatusCode};
use serde_json::{json, Value};
use std::sync::Arc;
use store::{ListOptions, ReadAt, Revision, StoreError};

/// Parsed DeleteOptions (body and query parameters).
#[derive(Clone, Debug, Default)]
pub struct DeleteOptions {
    /// Requested grace period.
    pub grace_period: Option<i64>,
    /// Precondition on the UID.
    pub uid: Option<String>,
    /// Precondition on the resourceVersion.
    pub resource_version: Option<String>,
    /// Orphan, Background or Foreground.
    pub propagation: Option<String>,
    /// Dry run.
    pub dry_run: bool,
    /// The legacy `orphanDependents` flag.
    pub orphan_dependents: Option<bool>,
}

impl DeleteOptions {
    /// Reads the options from a DeleteOptions body and the query string.
    pub fn parse(ctx: &Ctx<'_>, body: &[u8]) -> ApiResult<DeleteOptions> {
        let mut o = DeleteOptions {
            dry_run: ctx.query.dry_run()?,
            grace_period: ctx.query.int("gracePeriodSeconds")?,
            propagation: ctx.query.str("propagationPolicy").map(str::to_string),
            orphan_dependents: ctx.query.str("orphanDependents").map(|v| v == "true"),
            ..Default::default()
        };
        if !body.iter().all(u8::is_ascii_whitespace) {
            let v = if body.starts_with(&protobuf::MAGIC) {
                negotiate::decode_protobuf(body)?
            } else {
                negotiate::decode(body, false)?
            };
            if let Some(g) = v.get("gracePeriodSeconds").and_then(Value::as_i64) {
                o.grace_period = Some(g);
            }
            if let Some(p) = v.get("propagationPolicy").and_then(Value::as_str) {
                o.propagation = Some(p.to_string());
            }
            if let Some(b) = v.get("orphanDependents").and_then(Value::as_bool) {
                o.orphan_dependents = Some(b);
            }
            if let Some(pre) = v.get("preconditions") {
                o.uid = pre.get("uid").and_then(Value::as_str).map(str::to_string);
                o.resource_version = pre
                    .get("resourceVersion")
                    .and_then(Value::as_str)
                    .map(str::to_string);
            }
            if let Some(d) = v.get("dryRun").and_then(Value::as_array) {
                if d.iter().any(|x| x == "All") {
                    o.dry_run = true;
                } else if !d.is_empty() {
                    return Err(ApiError::bad_request("Invalid dry run value"));
                }
            }
        }
        if let Some(p) = &o.propagation {
            if !matches!(p.as_str(), "Orphan" | "Background" | "Foreground") {
                return Err(ApiError::invalid(
                    "DeleteOptions",
                    "",
                    "",
                    &[apimachinery::FieldError::not_supported(
                        &apimachinery::Path::new("propagationPolicy"),
                        json!(p),
                        &["Foreground", "Background", "Orphan", "nil"],
                    )],
                ));
            }
            if o.orphan_dependents.is_some() {
                return Err(ApiError::invalid(
                    "DeleteOptions",
                    "",
                    "",
                    &[apimachinery::FieldError::invalid(
                        &apimachinery::Path::new("propagationPolicy"),
                        json!(p),
                        "orphanDependents and deletionPropagation cannot be both set",
                    )],
                ));
            }
        }
        Ok(o)
    }

    /// The finalizer the propagation policy asks for.
    fn propagation_finalizer(&self) -> Option<&'static str> {
        match (self.propagation.as_deref(), self.orphan_dependents) {
            (Some("Orphan"), _) | (None, Some(true)) => Some("orphan"),
            (Some("Foreground"), _) => Some("foregroundDeletion"),
            _ => None,
        }
    }
}

/// The outcome of deleting one object.
pub struct Deleted {
    /// The object (as deleted, or as marked for deletion).
    pub obj: Value,
    /// Whether it is gone from storage.
    pub gone: bool,
}

/// Kinds whose delete returns the deleted object rather than a Status.
fn returns_object(ctx: &Ctx<'_>) -> bool {
    ctx.info.group.is_empty() && matches!(ctx.info.plural, "pods" | "namespaces")
}

/// DELETE one object.
pub async fn delete(ctx: &Ctx<'_>, body: Bytes) -> ApiResult<Response<Body>> {
    let store = ctx.store()?;
    let opts = DeleteOptions::parse(ctx, &body)?;
    let key = store.key(ctx.namespace(), &ctx.req.name);
    let out = delete_object(ctx, store, &key, &opts).await?;
    if out.gone && !returns_object(ctx) {
        let mut details = json!({"name": ctx.req.name, "kind": ctx.info.plural});
        if !ctx.info.group.is_empty() {
            details["group"] = json!(ctx.info.group);
        }
        if let Some(uid) = out.obj["metadata"].get("uid") {
            details["uid"] = uid.clone();
        }
        return Ok(json_response(
            StatusCode::OK,
            &json!({
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Success",
                "details": details,
            }),
        ));
    }
    let code = if !out.gone && opts.orphan_dependents == Some(false) {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    ctx.value_response(code, ctx.served(out.obj))
}

/// The grace period a pod deletion gets.
fn pod_grace(obj: &Value, requested: Option<i64>) -> i64 {
    let spec = &obj["spec"];
    let phase = obj["status"]["phase"].as_str().unwrap_or("");
    if spec["nodeName"].as_str().unwrap_or("").is_empty() || matches!(phase, "Succeeded" | "Failed")
    {
        return 0;
    }
    let g = requested
        .or_else(|| spec["terminationGracePeriodSeconds"].as_i64())
        .unwrap_or(30);
    // Upstream turns a negative request into the minimum graceful period.
    if g < 0 {
        1
    } else {
        g
    }
}

fn finalizers(obj: &Value) -> Vec<String> {
    obj["metadata"]["finalizers"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Namespaces also wait for `spec.finalizers`.
fn spec_finalizers(ctx_is_namespace: bool, obj: &Value) -> bool {
    ctx_is_namespace
        && obj["spec"]["finalizers"]
            .as_array()
            .is_some_and(|a| !a.is_empty())
}

/// Deletes (or marks for deletion) the object at `key`.
pub async fn delete_object(
    ctx: &Ctx<'_>,
    store: &Arc<ResourceStore>,
    key: &str,
    opts: &DeleteOptions,
) -> ApiResult<Deleted> {
    let name = key.rsplit('/').next().unwrap_or("").to_string();
    let target = ctx.target_named(&name);
    let is_pod = store.info.group.is_empty() && store.storage == "pods";
    let is_namespace = store.info.group.is_empty() && store.storage == "namespaces";
    loop {
        let current = store
            .cache
            .get_cached(key)
            .await
            .map_err(|e| ApiError::from_store(e, &target))?
            .ok_or_else(|| ApiError::not_found(&target))?;
        let mut obj = current.extra.value();
        if let Some(uid) = &opts.uid {
            let have = object::meta_str(&obj, "uid");
            if uid != have {
                return Err(ApiError::conflict(
                    &target,
                    &format!("Precondition failed: UID in precondition: {uid}, UID in object meta: {have}"),
                ));
            }
        }
        if let Some(rv) = &opts.resource_version {
            let have = current.kv.mod_revision.to_string();
            if *rv != have {
                return Err(ApiError::conflict(
                    &target,
                    &format!("Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {have}"),
                ));
            }
        }
        admission::admit_delete(ctx, &obj).await?;
        let grace = if is_pod {
            pod_grace(&obj, opts.grace_period)
        } else {
            0
        };
        let mut fins = finalizers(&obj);
        if let Some(f) = opts.propagation_finalizer() {
            // The two propagation finalizers exclude each other.
            fins.retain(|x| x != "orphan" && x != "foregroundDeletion");
            fins.push(f.to_string());
        }
        let already = obj["metadata"].get("deletionTimestamp").is_some();
        let waits = !fins.is_empty() || spec_finalizers(is_namespace, &obj);
        let mut marked = obj.clone();
        let now = jiff::Timestamp::now();
        {
            let meta = object::meta_mut(&mut marked);
            let existing_grace = meta
                .get("deletionGracePeriodSeconds")
                .and_then(Value::as_i64);
            if !already || existing_grace.is_some_and(|g| grace < g) {
                let when = now + jiff::SignedDuration::from_secs(grace);
                meta.insert("deletionTimestamp".into(), json!(object::format_time(when)));
                meta.insert("deletionGracePeriodSeconds".into(), json!(grace));
            }
            if !fins.is_empty() {
                meta.insert("finalizers".into(), json!(fins));
            }
            meta.remove("resourceVersion");
        }
        if is_namespace {
            marked["status"]["phase"] = json!("Terminating");
        }
        let effective_grace = marked["metadata"]["deletionGracePeriodSeconds"]
            .as_i64()
            .unwrap_or(0);
        if waits || effective_grace > 0 {
            // Mark and keep.
            if opts.dry_run {
                return Ok(Deleted {
                    obj: marked,
                    gone: false,
                });
            }
            let mut marked_stored = marked.clone();
            object::meta_mut(&mut marked_stored).remove("resourceVersion");
            let stored = object::to_stored(&marked_stored);
            if stored == current.kv.value {
                object::set_resource_version(&mut marked, current.kv.mod_revision);
                return Ok(Deleted {
                    obj: marked,
                    gone: false,
                });
            }
            match store
                .store()
                .update(key, stored, current.kv.mod_revision)
                .await
            {
                Ok(rev) => {
                    object::set_resource_version(&mut marked, rev);
                    return Ok(Deleted {
                        obj: marked,
                        gone: false,
                    });
                }
                Err(StoreError::Conflict { .. }) if opts.resource_version.is_none() => continue,
                Err(e) => return Err(ApiError::from_store(e, &target)),
            }
        }
        if opts.dry_run {
            return Ok(Deleted { obj, gone: true });
        }
        match store
            .store()
            .delete(key, Some(current.kv.mod_revision))
            .await
        {
            Ok((_, rev)) => {
                object::set_resource_version(&mut obj, rev);
                admission::on_deleted(ctx.server, store, &obj).await;
                return Ok(Deleted { obj, gone: true });
            }
            Err(StoreError::Conflict { .. }) if opts.resource_version.is_none() => continue,
            Err(e) => return Err(ApiError::from_store(e, &target)),
        }
    }
}

/// After an update at `rev`: if the object is marked for deletion, has no finalizers
/// left and no grace period to wait for, delete it now. Returns the deletion revision.
pub async fn finish_if_finalized(
    ctx: &Ctx<'_>,
    store: &Arc<ResourceStore>,
    key: &str,
    obj: &Value,
    rev: Revision,
) -> ApiResult<Option<Revision>> {
    let meta = &obj["metadata"];
    let is_namespace = store.info.group.is_empty() && store.storage == "namespaces";
    if meta.get("deletionTimestamp").is_none()
        || !finalizers(obj).is_empty()
        || spec_finalizers(is_namespace, obj)
        || meta["deletionGracePeriodSeconds"].as_i64().unwrap_or(0) > 0
    {
        return Ok(None);
    }
    match store.store().delete(key, Some(rev)).await {
        Ok((_, del)) => {
            admission::on_deleted(ctx.server, store, obj).await;
            Ok(Some(del))
        }
        // Someone changed it in between: their write decides.
        Err(StoreError::Conflict { .. } | StoreError::NotFound { .. }) => Ok(None),
        Err(e) => Err(ApiError::from_store(e, &ctx.target())),
    }
}

/// DELETECOLLECTION: delete every object matching the selectors.
pub async fn delete_collection(ctx: &Ctx<'_>, body: Bytes) -> ApiResult<Response<Body>> {
    let store = ctx.store()?;
    let opts = DeleteOptions::parse(ctx, &body)?;
    let selectors = Selectors::parse(ctx, store.strategy)?;
    let prefix = store.prefix(ctx.namespace());
    let strategy = store.strategy;
    let filter = |item: &store::cacher::CachedItem<crate::registry::Entry>| {
        selectors.matches(&item.extra, strategy)
    };
    let list = store
        .cache
        .list_filtered(
            &prefix,
            ListOptions {
                at: ReadAt::Latest,
                start: None,
                limit: 0,
            },
            if selectors.is_empty() {
                None
            } else {
                Some(&filter)
            },
        )
        .await
        .map_err(|e| ApiError::from_store(e, &ctx.target()))?;
    let mut deleted = Vec::new();
    for item in &list.items {
        match delete_object(ctx, store, &item.kv.key, &opts).await {
            Ok(d) => deleted.push(store.cache.decorate(store::KeyValue {
                key: item.kv.key.clone(),
                value: object::to_stored(&d.obj),
                create_revision: item.kv.create_revision,
                mod_revision: object::resource_version(&d.obj).unwrap_or(item.kv.mod_revision),
            })),
            Err(e) if e.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    list_response(
        ctx,
        &deleted,
        json!({"resourceVersion": list.revision.to_string()}),
    )
}
