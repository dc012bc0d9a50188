//! Subresources: `status` (the status strategy), `approval` (the approval strategy of
//! CertificateSigningRequests), `scale` (autoscaling/v1 Scale over
//! `spec.replicas`), `pods/binding` and the `bindings` resource (what the scheduler
//! posts), `pods/eviction` (a delete that respects PodDisruptionBudgets),
//! `namespaces/finalize` and `serviceaccounts/token` (TokenRequest, in
//! [`crate::serviceaccount`]).

use super::delete::{delete_object, DeleteOptions};
use super::write::{self, Change, Endpoint};
use super::{json_response, Ctx};
use crate::error::{ApiError, ApiResult};
use crate::negotiate::{self, BodyType};
use crate::object;
use crate::Body;
use apimachinery::labels;
use bytes::Bytes;
use http::{Response, StatusCode};
use serde_json::{json, Value};

/// Dispatches a subresource request.
pub async fn handle(ctx: &Ctx<'_>, body: Bytes) -> ApiResult<Response<Body>> {
    let sub = ctx
        .info
        .subresource(&ctx.req.subresource)
        .ok_or_else(ApiError::path_not_found)?;
    if !sub.verbs.contains(&ctx.req.verb) {
        return Err(ApiError::method_not_supported(&ctx.target(), ctx.req.verb));
    }
    match (sub.name, ctx.req.verb) {
        ("status", "get") => super::read::get(ctx).await,
        ("status", "update") => write::update(ctx, body, Endpoint::Status).await,
        ("status", "patch") => write::patch(ctx, body, Endpoint::Status).await,
        ("approval", "get") => super::read::get(ctx).await,
        ("approval", "update") => write::update(ctx, body, Endpoint::Subresource("approval")).await,
        ("approval", "patch") => write::patch(ctx, body, Endpoint::Subresource("approval")).await,
        ("scale", verb) => scale(ctx, verb, body).await,
        ("binding", "create") => bind(ctx, body, &ctx.req.name).await,
        ("eviction", "create") => evict(ctx, body).await,
        ("finalize", "update") => finalize(ctx, body).await,
        ("token", "create") if ctx.info.plural == "serviceaccounts" => {
            crate::serviceaccount::token_request(ctx, body).await
        }
        _ => Err(ApiError {
            code: 501,
            reason: "NotImplemented",
            message: format!(
                "the {}/{} subresource is not served by this server yet",
                ctx.info.plural, sub.name
            ),
            details: None,
        }),
    }
}

/// The label selector of a scalable object, as the Scale's `status.selector` string.
fn selector_string(obj: &Value) -> String {
    let sel = &obj["spec"]["selector"];
    if sel.get("matchLabels").is_some() || sel.get("matchExpressions").is_some() {
        return labels::Selector::from_label_selector(sel)
            .map(|s| s.to_string())
            .unwrap_or_default();
    }
    // ReplicationControllers select with a plain map.
    let set = sel
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                .collect()
        })
        .unwrap_or_default();
    labels::Selector::from_set(&set).to_string()
}

/// The Scale of an object.
fn scale_of(obj: &Value) -> Value {
    let meta = &obj["metadata"];
    let mut m = json!({});
    for k in [
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "creationTimestamp",
    ] {
        if let Some(v) = meta.get(k) {
            m[k] = v.clone();
        }
    }
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": m,
        "spec": {"replicas": obj["spec"]["replicas"].as_i64().unwrap_or(1)},
        "status": {
            "replicas": obj["status"]["replicas"].as_i64().unwrap_or(0),
            "selector": selector_string(obj),
        },
    })
}

fn scale_response(code: StatusCode, scale: &Value) -> Response<Body> {
    json_response(code, scale)
}

async fn scale(ctx: &Ctx<'_>, verb: &str, body: Bytes) -> ApiResult<Response<Body>> {
    let store = ctx.store()?;
    if verb == "get" {
        let item = store
            .cache
            .get_cached(&store.key(ctx.namespace(), &ctx.req.name))
            .await
            .map_err(|e| ApiError::from_store(e, &ctx.target()))?
            .ok_or_else(|| ApiError::not_found(&ctx.target()))?;
        return Ok(scale_response(
            StatusCode::OK,
            &scale_of(&ctx.served(item.extra.value())),
        ));
    }
    let ct = ctx
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let kind = negotiate::body_type(ct)?;
    let input = match kind {
        BodyType::Protobuf => negotiate::decode_protobuf(&body)?,
        k => negotiate::decode(&body, matches!(k, BodyType::Yaml | BodyType::ApplyPatch))?,
    };
    let compute = |old: &Value| -> ApiResult<Value> {
        let current = scale_of(old);
        let new_scale = if verb == "update" {
            input.clone()
        } else {
            match kind {
                BodyType::Json | BodyType::Yaml | BodyType::ApplyPatch | BodyType::Protobuf => {
                    return Err(ApiError::unsupported_media_type(ct.unwrap_or("")))
                }
                // Scale has no lists: a strategic merge patch is a merge patch here.
                BodyType::StrategicMergePatch => {
                    write::apply_patch(ctx, BodyType::MergePatch, &current, &input)?
                }
                k => write::apply_patch(ctx, k, &current, &input)?,
            }
        };
        if let Some(rv) = object::resource_version(&new_scale) {
            if Some(rv) != object::resource_version(old) {
                return Err(ApiError::modified(&ctx.target()));
            }
        }
        let replicas = new_scale["spec"]["replicas"].as_i64().ok_or_else(|| {
            ApiError::invalid(
                "Scale",
                "autoscaling",
                &ctx.req.name,
                &[apimachinery::FieldError::required(
                    &apimachinery::Path::new("spec").child("replicas"),
                    "",
                )],
            )
        })?;
        if replicas < 0 {
            return Err(ApiError::invalid(
                "Scale",
                "autoscaling",
                &ctx.req.name,
                &[apimachinery::FieldError::invalid(
                    &apimachinery::Path::new("spec").child("replicas"),
                    json!(replicas),
                    "must be greater than or equal to 0",
                )],
            ));
        }
        let mut new = old.clone();
        new["spec"]["replicas"] = json!(replicas);
        object::meta_mut(&mut new).remove("resourceVersion");
        Ok(new)
    };
    let w = write::update_object(ctx, Change::Func(&compute), Endpoint::Main).await?;
    let mut obj = ctx.served(w.obj);
    object::set_resource_version(&mut obj, w.rev);
    Ok(scale_response(StatusCode::OK, &scale_of(&obj)))
}

/// Binds a pod to a node (pods/binding, and the bindings resource).
pub async fn bind(ctx: &Ctx<'_>, body: Bytes, pod: &str) -> ApiResult<Response<Body>> {
    let binding = write::decode_body(ctx, &body)?;
    let node = binding["target"]["name"].as_str().unwrap_or("").to_string();
    let pod_name = if pod.is_empty() {
        binding["metadata"]["name"]
            .as_str()
            .unwrap_or("")
            .to_string()
    } else {
        pod.to_string()
    };
    if node.is_empty() {
        return Err(ApiError::invalid(
            "Binding",
            "",
            &pod_name,
            &[apimachinery::FieldError::required(
                &apimachinery::Path::new("target").child("name"),
                "",
            )],
        ));
    }
    let pods = resources::find("", "v1", "pods").ok_or_else(ApiError::path_not_found)?;
    let req = crate::request::ResourceRequest {
        verb: "update",
        group: String::new(),
        version: "v1".into(),
        namespace: ctx.req.namespace.clone(),
        resource: "pods".into(),
        name: pod_name.clone(),
        subresource: "binding".into(),
        rest: vec![],
    };
    let pod_ctx = Ctx {
        info: pods,
        req: &req,
        ..*ctx
    };
    let annotations = binding["metadata"]["annotations"].clone();
    let compute = |old: &Value| -> ApiResult<Value> {
        if old["metadata"].get("deletionTimestamp").is_some() {
            return Err(ApiError::conflict(
                &pod_ctx.target(),
                &format!("pod {pod_name} is being deleted, cannot be assigned to a host"),
            ));
        }
        let current = old["spec"]["nodeName"].as_str().unwrap_or("");
        if !current.is_empty() {
            return Err(ApiError::conflict(
                &pod_ctx.target(),
                &format!("pod {pod_name} is already assigned to node \"{current}\""),
            ));
        }
        let mut new = old.clone();
        new["spec"]["nodeName"] = json!(node);
        if let Some(a) = annotations.as_object() {
            for (k, v) in a {
                new["metadata"]["annotations"][k] = v.clone();
            }
        }
        let cond = json!({"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": object::now_rfc3339()});
        match new["status"]["conditions"].as_array_mut() {
            Some(conds) => {
                conds.retain(|c| c["type"] != "PodScheduled");
                conds.push(cond);
            }
            None => new["status"]["conditions"] = json!([cond]),
        }
        object::meta_mut(&mut new).remove("resourceVersion");
        Ok(new)
    };
    let store = pod_ctx.store()?;
    // Binding changes spec.nodeName, which ordinary pod updates may not: apply it with
    // the status rules skipped but metadata validation kept.
    let (_, _, _) = bind_update(&pod_ctx, store, &compute).await?;
    Ok(json_response(
        StatusCode::CREATED,
        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
    ))
}

async fn bind_update(
    ctx: &Ctx<'_>,
    store: &std::sync::Arc<crate::registry::ResourceStore>,
    compute: &(dyn Fn(&Value) -> ApiResult<Value> + Send + Sync),
) -> ApiResult<(Value, i64, StatusCode)> {
    let key = store.key(&ctx.req.namespace, &ctx.req.name);
    loop {
        let current = store
            .cache
            .get_cached(&key)
            .await
            .map_err(|e| ApiError::from_store(e, &ctx.target()))?
            .ok_or_else(|| ApiError::not_found(&ctx.target()))?;
        let new = compute(&current.extra.value())?;
        match store
            .store()
            .update(&key, object::to_stored(&new), current.kv.mod_revision)
            .await
        {
            Ok(rev) => return Ok((new, rev, StatusCode::CREATED)),
            Err(store::StoreError::Conflict { .. }) => continue,
            Err(e) => return Err(ApiError::from_store(e, &ctx.target())),
        }
    }
}

/// Evictions a budget may have recorded but its controller not yet confirmed, at most
/// (upstream's MaxDisruptedPodSize).
const MAX_DISRUPTED_PODS: usize = 2000;

/// The 429 an eviction gets when a budget does not allow it (now).
fn budget_refusal(cause: String) -> ApiError {
    ApiError {
        code: 429,
        reason: "TooManyRequests",
        message: "Cannot evict pod as it would violate the pod's disruption budget.".into(),
        details: Some(json!({"causes": [{"reason": "DisruptionBudget", "message": cause}]})),
    }
}

fn forbidden_eviction(ctx: &Ctx<'_>, why: &str) -> ApiError {
    ApiError {
        code: 403,
        reason: "Forbidden",
        message: format!("pods \"{}\" is forbidden: {why}", ctx.req.name),
        details: None,
    }
}

/// Whether the pod's Ready condition is True.
fn pod_ready(pod: &Value) -> bool {
    pod["status"]["conditions"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    })
}

/// Spends one disruption of the budget stored under `key` for `pod` (recording it in
/// status.disruptedPods with a compare-and-swap), or says why the eviction must wait.
/// Returns without spending when the budget lets the pod go as it is (an unhealthy
/// pod under a healthy budget, or the AlwaysAllow policy).
async fn spend_disruption(
    ctx: &Ctx<'_>,
    pdbs: &crate::registry::ResourceStore,
    mut item: crate::registry::Item,
    pod: &Value,
    dry_run: bool,
) -> ApiResult<()> {
    for _ in 0..5 {
        let mut pdb = item.extra.value();
        let name = pdb["metadata"]["name"].as_str().unwrap_or("").to_string();
        let status = &pdb["status"];
        let int = |v: &Value| v.as_i64().unwrap_or(0);
        if !pod_ready(pod) {
            let always = pdb["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow";
            let healthy_budget = int(&status["desiredHealthy"]) > 0
                && int(&status["currentHealthy"]) >= int(&status["desiredHealthy"]);
            if always || healthy_budget {
                return Ok(());
            }
        }
        if int(&status["observedGeneration"]) < int(&pdb["metadata"]["generation"]) {
            return Err(budget_refusal(format!(
                "The disruption budget {name} is still being processed by the server."
            )));
        }
        let allowed = int(&status["disruptionsAllowed"]);
        if allowed < 0 {
            return Err(forbidden_eviction(
                ctx,
                "pdb disruptions allowed is negative",
            ));
        }
        let disrupted = status["disruptedPods"].as_object().map_or(0, |m| m.len());
        if disrupted > MAX_DISRUPTED_PODS {
            return Err(forbidden_eviction(
                ctx,
                "DisruptedPods map too big - too many evictions not confirmed by PDB controller",
            ));
        }
        if allowed == 0 {
            return Err(budget_refusal(format!(
                "The disruption budget {name} needs {} healthy pods and has {} currently",
                int(&status["desiredHealthy"]),
                int(&status["currentHealthy"]),
            )));
        }
        if dry_run {
            return Ok(());
        }
        pdb["status"]["disruptionsAllowed"] = json!(allowed - 1);
        let now = jiff::Timestamp::now()
            .round(jiff::Unit::Second)
            .unwrap_or_else(|_| jiff::Timestamp::now());
        if !pdb["status"]["disruptedPods"].is_object() {
            pdb["status"]["disruptedPods"] = json!({});
        }
        pdb["status"]["disruptedPods"][ctx.req.name.as_str()] = json!(now.to_string());
        match pdbs
            .store()
            .update(&item.kv.key, object::to_stored(&pdb), item.kv.mod_revision)
            .await
        {
            Ok(_) => return Ok(()),
            Err(store::StoreError::Conflict { .. }) => {
                item = pdbs
                    .cache
                    .get_cached(&item.kv.key)
                    .await
                    .map_err(ApiError::internal)?
                    .ok_or_else(|| {
                        budget_refusal(format!("The disruption budget {name} is gone."))
                    })?;
            }
            Err(e) => return Err(ApiError::internal(e)),
        }
    }
    Err(budget_refusal(
        "The disruption budget is being changed by others; try again.".into(),
    ))
}

/// Marks the pod with the DisruptionTarget condition before it is deleted (best
/// effort: a concurrent change of the pod only loses the condition).
async fn mark_evicted(store: &crate::registry::ResourceStore, key: &str) {
    let Ok(Some(item)) = store.cache.get_cached(key).await else {
        return;
    };
    let mut pod = item.extra.value();
    let condition = json!({
        "type": "DisruptionTarget", "status": "True", "reason": "EvictionByEvictionAPI",
        "message": "Eviction API: evicting",
        "lastTransitionTime": jiff::Timestamp::now().round(jiff::Unit::Second)
            .unwrap_or_else(|_| jiff::Timestamp::now()).to_string(),
    });
    let mut conditions: Vec<Value> = pod["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    conditions.retain(|c| c["type"] != "DisruptionTarget");
    conditions.push(condition);
    if !pod["status"].is_object() {
        pod["status"] = json!({});
    }
    pod["status"]["conditions"] = Value::Array(conditions);
    let _ = store
        .store()
        .update(&item.kv.key, object::to_stored(&pod), item.kv.mod_revision)
        .await;
}

/// pods/eviction: deletes the pod unless its PodDisruptionBudget forbids it, spending
/// one of the budget's allowed disruptions (as upstream's eviction REST).
async fn evict(ctx: &Ctx<'_>, body: Bytes) -> ApiResult<Response<Body>> {
    let eviction = write::decode_body(ctx, &body)?;
    let store = ctx.store()?;
    let key = store.key(ctx.namespace(), &ctx.req.name);
    let pod = store
        .cache
        .get_cached(&key)
        .await
        .map_err(|e| ApiError::from_store(e, &ctx.target()))?
        .ok_or_else(|| ApiError::not_found(&ctx.target()))?
        .extra
        .value();
    let dry_run = ctx.query.dry_run()?;
    let terminal = matches!(
        pod["status"]["phase"].as_str(),
        Some("Succeeded" | "Failed")
    );
    if !terminal {
        if let Some(pdbs) = ctx.server.registry.get("poddisruptionbudgets") {
            let list = pdbs
                .cache
                .list_cached(&pdbs.prefix(ctx.namespace()), store::ListOptions::default())
                .await
                .map_err(|e| ApiError::from_store(e, &ctx.target()))?;
            let pod_labels = pod["metadata"]["labels"].clone();
            let matching: Vec<crate::registry::Item> = list
                .items
                .iter()
                .filter(|item| {
                    let pdb = item.extra.value();
                    labels::Selector::from_label_selector(&pdb["spec"]["selector"])
                        .is_ok_and(|sel| !sel.is_empty() && sel.matches(&pod_labels))
                })
                .cloned()
                .collect();
            if matching.len() > 1 {
                return Err(ApiError::internal(
                    "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.",
                ));
            }
            if let Some(item) = matching.into_iter().next() {
                spend_disruption(ctx, pdbs, item, &pod, dry_run).await?;
            }
        }
        if !dry_run {
            mark_evicted(store, &key).await;
        }
    }
    let mut opts = DeleteOptions {
        dry_run,
        ..Default::default()
    };
    let d = &eviction["deleteOptions"];
    opts.grace_period = d["gracePeriodSeconds"].as_i64();
    opts.propagation = d["propagationPolicy"].as_str().map(str::to_string);
    opts.uid = d["preconditions"]["uid"].as_str().map(str::to_string);
    opts.resource_version = d["preconditions"]["resourceVersion"]
        .as_str()
        .map(str::to_string);
    delete_object(ctx, store, &key, &opts).await?;
    Ok(json_response(
        StatusCode::CREATED,
        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
    ))
}

/// namespaces/finalize: only `spec.finalizers` changes.
async fn finalize(ctx: &Ctx<'_>, body: Bytes) -> ApiResult<Response<Body>> {
    let input = write::decode_body(ctx, &body)?;
    let compute = |old: &Value| -> ApiResult<Value> {
        let mut new = old.clone();
        match input["spec"].get("finalizers") {
            Some(f) => new["spec"]["finalizers"] = f.clone(),
            None => {
                if let Some(spec) = new["spec"].as_object_mut() {
                    spec.remove("finalizers");
                }
            }
        }
        object::meta_mut(&mut new).remove("resourceVersion");
        Ok(new)
    };
    write::update_object(ctx, Change::Func(&compute), Endpoint::Internal)
        .await?
        .response(ctx)
}
