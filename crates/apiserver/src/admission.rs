//! Built-in admission, run on writes after validation:
//!
//! - NamespaceLifecycle: objects may only be created in namespaces that exist and are
//!   not terminating; the system namespaces may not be deleted.
//! - Service allocation: ClusterIPs and NodePorts are allocated when a Service is
//!   created or changes type, and released when it is deleted.
//! - Priority: a new pod's spec.priority and preemptionPolicy come from its
//!   PriorityClass (or the global default class); at most one PriorityClass is the
//!   global default.
//! - DefaultTolerationSeconds: a new pod that does not tolerate the
//!   `node.kubernetes.io/not-ready` or `unreachable` NoExecute taints gets a
//!   toleration of each for 300 s, so its pods survive short node outages.
//! - ServiceAccount ([`serviceaccount`]): new pods run as a service account that
//!   exists (`default` unless named) and get its token mounted.
//! - ResourceQuota ([`quota`]): creates, and updates that can grow usage, are checked
//!   against the namespace's quotas and charged to them.
//!
//! Plugins named in [`crate::Config::disable_admission_plugins`] are skipped (upstream's
//! `--disable-admission-plugins`).

pub mod quota;
pub mod serviceaccount;

use crate::alloc::{AllocError, ServiceAllocators};
use crate::error::{ApiError, ApiResult};
use crate::handlers::Ctx;
use crate::registry::ResourceStore;
use crate::Server;
use apimachinery::{FieldError, Path};
use serde_json::{json, Value};
use std::net::Ipv4Addr;
use std::sync::Arc;

/// Namespaces that always exist and may not be deleted.
pub const IMMORTAL_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public"];

/// Allocations made while admitting a create, undone if the write fails.
#[derive(Default)]
pub struct Admitted {
    ips: Vec<u64>,
    ports: Vec<u64>,
}

impl Admitted {
    /// Releases what admission allocated.
    pub async fn rollback(self, server: &Server) {
        for ip in self.ips {
            let _ = server.services.ips.release(ip).await;
        }
        for p in self.ports {
            let _ = server.services.ports.release(p).await;
        }
    }
}

fn is_core(ctx: &Ctx<'_>, plural: &str) -> bool {
    ctx.info.group.is_empty() && ctx.info.plural == plural
}

async fn check_namespace(ctx: &Ctx<'_>, obj: &Value) -> ApiResult<()> {
    let ns = ctx.namespace();
    if ns.is_empty() {
        return Ok(());
    }
    let Some(namespaces) = ctx.server.registry.get("namespaces") else {
        return Ok(());
    };
    // As upstream's NamespaceLifecycle: trust the cache when it has the namespace,
    // and make sure with a consistent read only when it does not (it may be new).
    let item = lister_get(namespaces, &namespaces.key("", ns)).await?;
    let target = crate::error::Target {
        group: String::new(),
        resource: "namespaces".into(),
        name: ns.to_string(),
    };
    let Some(item) = item else {
        return Err(ApiError::not_found(&target));
    };
    let v = item.extra.value();
    if v["metadata"].get("deletionTimestamp").is_some() || v["status"]["phase"] == "Terminating" {
        return Err(ApiError {
            code: 403,
            reason: "Forbidden",
            message: format!(
                "{} \"{}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated",
                ctx.info.group_resource(),
                object_name(ctx, obj),
            ),
            details: Some(json!({
                "name": object_name(ctx, obj),
                "kind": ctx.info.plural,
                "causes": [{"reason": "NamespaceTerminating", "message": format!("namespace {ns} is being terminated"), "field": "metadata.namespace"}],
            })),
        });
    }
    Ok(())
}

fn is_priority_class(ctx: &Ctx<'_>) -> bool {
    ctx.info.group == "scheduling.k8s.io" && ctx.info.plural == "priorityclasses"
}

/// Reads `key` as an informer's lister would: from the cache as it stands, with a
/// consistent read only when the cache does not have it (it may be new).
pub(crate) async fn lister_get(
    store: &ResourceStore,
    key: &str,
) -> ApiResult<Option<crate::registry::Item>> {
    match store.cache.get_known(key) {
        Some(item) => Ok(Some(item)),
        None => store
            .cache
            .get_cached(key)
            .await
            .map_err(ApiError::internal),
    }
}

/// Every PriorityClass, as JSON. `consistent` reads wait for the cache to catch up
/// with the store; otherwise the cache is read like a lister, as upstream's
/// Priority admission does for pods (a consistent read would make every pod create
/// wait for this cache to catch up with every other write).
async fn priority_classes(ctx: &Ctx<'_>, consistent: bool) -> ApiResult<Vec<Value>> {
    let Some(store) = ctx.server.registry.get("priorityclasses") else {
        return Ok(Vec::new());
    };
    let prefix = store.prefix("");
    let known = if consistent {
        None
    } else {
        store.cache.list_known(&prefix)
    };
    let items = match known {
        Some(items) => items,
        None => store
            .cache
            .list_cached(&prefix, store::ListOptions::default())
            .await
            .map_err(ApiError::internal)?
            .items
            .to_vec(),
    };
    Ok(items.iter().map(|i| i.extra.value()).collect())
}

/// Upstream's Priority admission for a new pod.
async fn admit_pod_priority(ctx: &Ctx<'_>, pod: &mut Value) -> ApiResult<()> {
    let class_name = pod["spec"]["priorityClassName"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let pod_name = object_name(ctx, pod);
    let forbidden = |msg: String| {
        ApiError::forbidden(format!("pods \"{pod_name}\" is forbidden: {msg}"))
            .with_details(json!({"name": pod_name, "kind": "pods"}))
    };
    let class = if class_name.is_empty() {
        // The global default with the lowest value, if any.
        priority_classes(ctx, false)
            .await?
            .into_iter()
            .filter(|c| c["globalDefault"] == json!(true))
            .min_by_key(|c| c["value"].as_i64().unwrap_or(0))
    } else {
        // Only the named class is read (pod creates are a hot path); a class the
        // cache does not know yet is read again consistently before the pod is
        // refused, so a class created just before its pods is found.
        let found = match ctx.server.registry.get("priorityclasses") {
            Some(store) => {
                let key = store.key("", &class_name);
                match lister_get(store, &key).await? {
                    Some(item) => Some(item),
                    None => store
                        .cache
                        .get_cached(&key)
                        .await
                        .map_err(ApiError::internal)?,
                }
            }
            None => None,
        };
        match found {
            Some(item) => Some(item.extra.value()),
            None => {
                return Err(forbidden(format!(
                    "no PriorityClass with name {class_name} was found"
                )))
            }
        }
    };
    let (priority, policy) = match class {
        Some(c) => {
            if class_name.is_empty() {
                pod["spec"]["priorityClassName"] = c["metadata"]["name"].clone();
            }
            (
                c["value"].as_i64().unwrap_or(0),
                c["preemptionPolicy"]
                    .as_str()
                    .unwrap_or("PreemptLowerPriority")
                    .to_string(),
            )
        }
        None => (0, "PreemptLowerPriority".to_string()),
    };
    if let Some(given) = pod["spec"]["priority"].as_i64() {
        if given != priority {
            return Err(forbidden(format!(
                "the integer value of priority ({given}) must not be provided in pod spec; priority admission controller computed {priority} from the given PriorityClass name"
            )));
        }
    }
    pod["spec"]["priority"] = json!(priority);
    match pod["spec"]["preemptionPolicy"].as_str() {
        Some(given) if given != policy => {
            return Err(forbidden(format!(
                "the string value of PreemptionPolicy ({given}) must not be provided in pod spec; priority admission controller computed {policy} from the given PriorityClass name"
            )));
        }
        Some(_) => {}
        None => pod["spec"]["preemptionPolicy"] = json!(policy),
    }
    Ok(())
}

/// Only one PriorityClass may be the global default.
async fn check_single_global_default(ctx: &Ctx<'_>, class: &Value) -> ApiResult<()> {
    if class["globalDefault"] != json!(true) {
        return Ok(());
    }
    let name = class["metadata"]["name"].as_str().unwrap_or("");
    // PriorityClass writes are rare: read consistently, so a default created just
    // before is seen.
    let classes = priority_classes(ctx, true).await?;
    if let Some(other) = classes
        .iter()
        .find(|c| c["globalDefault"] == json!(true) && c["metadata"]["name"] != json!(name))
    {
        let other = other["metadata"]["name"].as_str().unwrap_or("");
        return Err(ApiError::forbidden(format!(
            "priorityclasses.scheduling.k8s.io \"{name}\" is forbidden: PriorityClass {other} is already marked as default. Only one default can exist"
        ))
        .with_details(json!({"name": name, "group": "scheduling.k8s.io", "kind": "priorityclasses"})));
    }
    Ok(())
}

/// The name of the object being admitted (a create's name is in its body).
fn object_name(ctx: &Ctx<'_>, obj: &Value) -> String {
    obj["metadata"]["name"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| ctx.req.name.clone())
}

/// Admission for a create (storage-version object).
pub async fn admit_create(ctx: &Ctx<'_>, obj: &mut Value, dry_run: bool) -> ApiResult<Admitted> {
    let enabled = |plugin: &str| ctx.server.admission_enabled(plugin);
    if ctx.info.namespaced() && enabled("NamespaceLifecycle") {
        check_namespace(ctx, obj).await?;
    }
    if is_core(ctx, "pods") {
        if enabled("ServiceAccount") {
            serviceaccount::admit_pod(ctx, obj).await?;
        }
        if enabled("Priority") {
            admit_pod_priority(ctx, obj).await?;
        }
        if enabled("DefaultTolerationSeconds") {
            default_toleration_seconds(obj);
        }
    }
    if is_priority_class(ctx) {
        check_single_global_default(ctx, obj).await?;
    }
    let mut admitted = Admitted::default();
    if is_core(ctx, "services") {
        if let Err(e) = allocate_service(ctx, obj, None, dry_run, &mut admitted).await {
            admitted.rollback(ctx.server).await;
            return Err(e);
        }
    }
    if enabled("ResourceQuota") {
        if let Err(e) = quota::admit(ctx, ::quota::Operation::Create, obj, None, dry_run).await {
            admitted.rollback(ctx.server).await;
            return Err(e);
        }
    }
    Ok(admitted)
}

/// Seconds a pod tolerates a not-ready or unreachable node unless it says otherwise
/// (upstream's `--default-not-ready-toleration-seconds` and
/// `--default-unreachable-toleration-seconds`).
pub const DEFAULT_TOLERATION_SECONDS: i64 = 300;

/// DefaultTolerationSeconds: adds the not-ready and unreachable NoExecute
/// tolerations a pod lacks (a toleration with an empty key or effect covers them).
fn default_toleration_seconds(pod: &mut Value) {
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    let existing = spec
        .get("tolerations")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let covers = |key: &str| {
        existing.iter().any(|t| {
            let k = t["key"].as_str().unwrap_or("");
            let e = t["effect"].as_str().unwrap_or("");
            (k == key || k.is_empty()) && (e == "NoExecute" || e.is_empty())
        })
    };
    let mut added = Vec::new();
    for key in [
        "node.kubernetes.io/not-ready",
        "node.kubernetes.io/unreachable",
    ] {
        if !covers(key) {
            added.push(
                json!({"key": key, "operator": "Exists", "effect": "NoExecute",
                "tolerationSeconds": DEFAULT_TOLERATION_SECONDS}),
            );
        }
    }
    if added.is_empty() {
        return;
    }
    let mut all = existing;
    all.extend(added);
    spec.insert("tolerations".into(), Value::Array(all));
}

/// Admission for an update. What it allocated is returned: rolled back by the
/// caller if the object is not written, and followed by [`updated`] if it is.
pub async fn admit_update(
    ctx: &Ctx<'_>,
    new: &mut Value,
    old: &Value,
    dry_run: bool,
) -> ApiResult<Admitted> {
    if is_priority_class(ctx) {
        check_single_global_default(ctx, new).await?;
    }
    let mut admitted = Admitted::default();
    if is_core(ctx, "services") {
        if let Err(e) = allocate_service(ctx, new, Some(old), dry_run, &mut admitted).await {
            admitted.rollback(ctx.server).await;
            return Err(e);
        }
    }
    if ctx.server.admission_enabled("ResourceQuota") {
        if let Err(e) = quota::admit(ctx, ::quota::Operation::Update, new, Some(old), dry_run).await
        {
            admitted.rollback(ctx.server).await;
            return Err(e);
        }
    }
    Ok(admitted)
}

/// After an update was written: a Service's addresses and ports that `old` held
/// and `new` does not go back to their ranges (only now, so that a write that
/// fails or is retried releases nothing still in use).
pub async fn updated(ctx: &Ctx<'_>, old: &Value, new: &Value) {
    if is_core(ctx, "services") {
        release_dropped(&ctx.server.services, old, new).await;
    }
}

/// Admission for a delete.
pub async fn admit_delete(ctx: &Ctx<'_>, obj: &Value) -> ApiResult<()> {
    if is_core(ctx, "namespaces") {
        let name = obj["metadata"]["name"].as_str().unwrap_or("");
        if IMMORTAL_NAMESPACES.contains(&name) {
            return Err(ApiError::forbidden(format!(
                "namespaces \"{name}\" is forbidden: this namespace may not be deleted"
            ))
            .with_details(json!({"name": name, "kind": "namespaces"})));
        }
    }
    Ok(())
}

/// After an object is gone from storage.
pub async fn on_deleted(server: &Arc<Server>, store: &ResourceStore, obj: &Value) {
    if store.info.group.is_empty() && store.storage == "services" {
        release_dropped(&server.services, obj, &json!({})).await;
    }
}

fn service_ips(svc: &Value) -> Vec<String> {
    let mut ips: Vec<String> = svc["spec"]["clusterIPs"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    if ips.is_empty() {
        if let Some(ip) = svc["spec"]["clusterIP"].as_str().filter(|s| !s.is_empty()) {
            ips.push(ip.to_string());
        }
    }
    ips.retain(|ip| ip != "None");
    ips
}

fn node_ports(svc: &Value) -> Vec<i64> {
    let mut out: Vec<i64> = svc["spec"]["ports"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|p| p["nodePort"].as_i64())
                .filter(|p| *p > 0)
                .collect()
        })
        .unwrap_or_default();
    if let Some(h) = svc["spec"]["healthCheckNodePort"]
        .as_i64()
        .filter(|p| *p > 0)
    {
        out.push(h);
    }
    out
}

/// Releases what `old` held and `new` no longer does.
async fn release_dropped(a: &ServiceAllocators, old: &Value, new: &Value) {
    let keep_ips = service_ips(new);
    for ip in service_ips(old)
        .into_iter()
        .filter(|ip| !keep_ips.contains(ip))
    {
        if let Some(o) = ip.parse::<Ipv4Addr>().ok().and_then(|ip| a.cidr.offset(ip)) {
            let _ = a.ips.release(o).await;
        }
    }
    let keep_ports = node_ports(new);
    for p in node_ports(old)
        .into_iter()
        .filter(|p| !keep_ports.contains(p))
    {
        if p >= i64::from(a.node_port_base) {
            let _ = a
                .ports
                .release((p - i64::from(a.node_port_base)) as u64)
                .await;
        }
    }
}

fn invalid(ctx: &Ctx<'_>, obj: &Value, errs: Vec<FieldError>) -> ApiError {
    ApiError::invalid(
        ctx.info.kind,
        ctx.info.group,
        obj["metadata"]["name"].as_str().unwrap_or(""),
        &errs,
    )
}

/// Allocates the ClusterIP and NodePorts a Service needs (create, or an update from
/// `old`), writing them into `svc`.
async fn allocate_service(
    ctx: &Ctx<'_>,
    svc: &mut Value,
    old: Option<&Value>,
    dry_run: bool,
    admitted: &mut Admitted,
) -> ApiResult<()> {
    let a = &ctx.server.services;
    let ty = svc["spec"]["type"]
        .as_str()
        .unwrap_or("ClusterIP")
        .to_string();
    if ty == "ExternalName" {
        return Ok(());
    }
    // ClusterIP: only when the service has none yet.
    let had_ip =
        old.is_some_and(|o| !service_ips(o).is_empty() || o["spec"]["clusterIP"] == "None");
    let requested = svc["spec"]["clusterIP"].as_str().unwrap_or("").to_string();
    if requested == "None" {
        let spec = &mut svc["spec"];
        spec["clusterIPs"] = json!(["None"]);
        default_families(spec);
    } else if !had_ip || old.is_some_and(|o| o["spec"]["type"] == "ExternalName") {
        let path = Path::new("spec").child("clusterIPs");
        let ip = if requested.is_empty() {
            let o = if dry_run {
                a.ips.peek_free().await
            } else {
                a.ips.allocate_next().await
            };
            let o = o.map_err(|e| alloc_internal(ctx, svc, &path, e))?;
            if !dry_run {
                admitted.ips.push(o);
            }
            a.cidr.addr(o)
        } else {
            let bad = |detail: String| {
                invalid(
                    ctx,
                    svc,
                    vec![FieldError::invalid(
                        &path,
                        json!([requested.clone()]),
                        detail,
                    )],
                )
            };
            let ip: Ipv4Addr = requested.parse().map_err(|_| {
                bad(format!(
                    "failed to allocate IP {requested}: invalid IP address"
                ))
            })?;
            let o = a.cidr.offset(ip).filter(|o| *o != 0 && *o != a.cidr.size() - 1).ok_or_else(|| {
                bad(format!(
                    "failed to allocate IP {requested}: the provided IP ({requested}) is not in the valid range. The range of valid IPs is {}",
                    a.cidr
                ))
            })?;
            let r = if dry_run {
                match a.ips.is_free(o).await {
                    Ok(true) => Ok(()),
                    Ok(false) => Err(AllocError::Taken),
                    Err(e) => Err(e),
                }
            } else {
                a.ips.allocate(o).await
            };
            match r {
                Ok(()) => {
                    if !dry_run {
                        admitted.ips.push(o);
                    }
                }
                Err(AllocError::Taken) => {
                    return Err(bad(format!(
                        "failed to allocate IP {requested}: provided IP is already allocated"
                    )))
                }
                Err(e) => return Err(alloc_internal(ctx, svc, &path, e)),
            }
            ip
        };
        let spec = &mut svc["spec"];
        spec["clusterIP"] = json!(ip.to_string());
        spec["clusterIPs"] = json!([ip.to_string()]);
        default_families(spec);
    }
    // NodePorts.
    if !matches!(ty.as_str(), "NodePort" | "LoadBalancer") {
        if let Some(ports) = svc["spec"]["ports"].as_array_mut() {
            for p in ports {
                if let Some(m) = p.as_object_mut() {
                    m.remove("nodePort");
                }
            }
        }
        return Ok(());
    }
    let old_ports = old.map(node_ports).unwrap_or_default();
    let n = svc["spec"]["ports"].as_array().map(Vec::len).unwrap_or(0);
    for i in 0..n {
        let path = Path::new("spec").child("ports").index(i).child("nodePort");
        let want = svc["spec"]["ports"][i]["nodePort"].as_i64().unwrap_or(0);
        if want > 0 && old_ports.contains(&want) {
            continue;
        }
        let port = allocate_node_port(ctx, svc, &path, want, dry_run, admitted).await?;
        svc["spec"]["ports"][i]["nodePort"] = json!(port);
    }
    // A LoadBalancer with the Local external policy gets a node port of its own
    // for load balancers' health checks, kept across updates that still need it.
    let needs_health_check =
        ty == "LoadBalancer" && svc["spec"]["externalTrafficPolicy"] == "Local";
    if needs_health_check {
        let path = Path::new("spec").child("healthCheckNodePort");
        let want = svc["spec"]["healthCheckNodePort"].as_i64().unwrap_or(0);
        let kept = old
            .and_then(|o| o["spec"]["healthCheckNodePort"].as_i64())
            .filter(|p| *p > 0);
        let port = match kept {
            Some(k) if want == 0 || want == k => k,
            _ => allocate_node_port(ctx, svc, &path, want, dry_run, admitted).await?,
        };
        svc["spec"]["healthCheckNodePort"] = json!(port);
    }
    Ok(())
}

/// Allocates node port `want` (any free one when 0) from the node-port range;
/// failures are errors of the field at `path`.
async fn allocate_node_port(
    ctx: &Ctx<'_>,
    svc: &Value,
    path: &Path,
    want: i64,
    dry_run: bool,
    admitted: &mut Admitted,
) -> ApiResult<i64> {
    let a = &ctx.server.services;
    if want == 0 {
        let o = if dry_run {
            a.ports.peek_free().await
        } else {
            a.ports.allocate_next().await
        };
        let o = o.map_err(|e| alloc_internal(ctx, svc, path, e))?;
        if !dry_run {
            admitted.ports.push(o);
        }
        return Ok(i64::from(a.node_port_base) + o as i64);
    }
    let range = format!("{}-{}", a.node_port_base, a.node_port_last);
    if want < i64::from(a.node_port_base) || want > i64::from(a.node_port_last) {
        return Err(invalid(
            ctx,
            svc,
            vec![FieldError::invalid(
                path,
                json!(want),
                format!(
                    "provided port is not in the valid range. The range of valid ports is {range}"
                ),
            )],
        ));
    }
    let o = (want - i64::from(a.node_port_base)) as u64;
    let r = if dry_run {
        match a.ports.is_free(o).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(AllocError::Taken),
            Err(e) => Err(e),
        }
    } else {
        a.ports.allocate(o).await
    };
    match r {
        Ok(()) => {
            if !dry_run {
                admitted.ports.push(o);
            }
            Ok(want)
        }
        Err(AllocError::Taken) => Err(invalid(
            ctx,
            svc,
            vec![FieldError::invalid(
                path,
                json!(want),
                "provided port is already allocated",
            )],
        )),
        Err(e) => Err(alloc_internal(ctx, svc, path, e)),
    }
}

fn default_families(spec: &mut Value) {
    if spec
        .get("ipFamilies")
        .and_then(Value::as_array)
        .is_none_or(|a| a.is_empty())
    {
        spec["ipFamilies"] = json!(["IPv4"]);
    }
    if spec.get("ipFamilyPolicy").and_then(Value::as_str).is_none() {
        spec["ipFamilyPolicy"] = json!("SingleStack");
    }
}

fn alloc_internal(ctx: &Ctx<'_>, svc: &Value, path: &Path, e: AllocError) -> ApiError {
    match e {
        AllocError::Full => invalid(
            ctx,
            svc,
            vec![FieldError::invalid(path, Value::Null, "range is full")],
        ),
        e => ApiError::internal(format!("failed to allocate: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::default_toleration_seconds;
    use serde_json::json;

    #[test]
    fn pods_get_the_default_not_ready_and_unreachable_tolerations() {
        let mut pod = json!({"spec": {"containers": []}});
        default_toleration_seconds(&mut pod);
        assert_eq!(
            pod["spec"]["tolerations"],
            json!([
                {"key": "node.kubernetes.io/not-ready", "operator": "Exists",
                 "effect": "NoExecute", "tolerationSeconds": 300},
                {"key": "node.kubernetes.io/unreachable", "operator": "Exists",
                 "effect": "NoExecute", "tolerationSeconds": 300},
            ])
        );

        // An own toleration of one of them is kept and not duplicated.
        let own = json!({"key": "node.kubernetes.io/unreachable", "operator": "Exists",
            "effect": "NoExecute", "tolerationSeconds": 2});
        let mut pod = json!({"spec": {"tolerations": [own.clone()]}});
        default_toleration_seconds(&mut pod);
        let t = pod["spec"]["tolerations"].as_array().unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t[0], own);
        assert_eq!(t[1]["key"], "node.kubernetes.io/not-ready");

        // Tolerating everything covers both.
        let mut pod = json!({"spec": {"tolerations": [{"operator": "Exists"}]}});
        default_toleration_seconds(&mut pod);
        assert_eq!(pod["spec"]["tolerations"].as_array().unwrap().len(), 1);
    }
}
