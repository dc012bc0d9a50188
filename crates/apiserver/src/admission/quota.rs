//! ResourceQuota admission: a create (or an update that can grow usage: services,
//! claims) in a namespace with quotas is checked against every quota whose scopes
//! match, using the quotas' `status.hard` and `status.used` (see the `quota` crate).
//! A request that fits is charged: the new `status.used` is written to each affected
//! quota with a compare-and-swap on its revision before the request proceeds, so
//! concurrent requests can never together exceed a quota. On a conflict the changed
//! quotas are read again and checked again (a few times, then the conflict is the
//! answer). Requests in one namespace are admitted one at a time, as upstream's
//! per-namespace work queue does, which keeps conflicts rare. Dry runs are checked
//! but charge nothing. Usage is released by the resourcequota controller when
//! objects go away.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use quota::{check_request, CheckError, Evaluator, Operation, QuotaView};
use serde_json::{json, Value};
use store::StoreError;

use crate::error::{ApiError, ApiResult};
use crate::handlers::Ctx;
use crate::object;
use crate::registry::{Item, ResourceStore};

/// How many times conflicting quota writes are retried.
const CONFLICT_RETRIES: usize = 3;

type NamespaceLocks = parking_lot::Mutex<HashMap<(usize, String), Arc<tokio::sync::Mutex<()>>>>;

/// One lock per (server, namespace): quota admission in a namespace is serial.
fn namespace_lock(ctx: &Ctx<'_>, ns: &str) -> Arc<tokio::sync::Mutex<()>> {
    static LOCKS: OnceLock<NamespaceLocks> = OnceLock::new();
    let locks = LOCKS.get_or_init(Default::default);
    let server = Arc::as_ptr(ctx.server) as usize;
    locks
        .lock()
        .entry((server, ns.to_string()))
        .or_default()
        .clone()
}

/// The quotas of a namespace as an informer lister sees them.
async fn namespace_quotas(store: &ResourceStore, ns: &str) -> ApiResult<Vec<Item>> {
    let prefix = store.prefix(ns);
    match store.cache.list_known(&prefix) {
        Some(items) => Ok(items),
        None => Ok(store
            .cache
            .list_cached(&prefix, store::ListOptions::default())
            .await
            .map_err(ApiError::internal)?
            .items
            .to_vec()),
    }
}

fn forbidden(ctx: &Ctx<'_>, obj: &Value, reason: &str) -> ApiError {
    let name = obj["metadata"]["name"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| ctx.req.name.clone());
    let mut details = json!({"name": name, "kind": ctx.info.plural});
    if !ctx.info.group.is_empty() {
        details["group"] = json!(ctx.info.group);
    }
    ApiError::forbidden(format!(
        "{} \"{name}\" is forbidden: {reason}",
        ctx.info.group_resource()
    ))
    .with_details(details)
}

/// Checks a create (`old` is `None`) or update of `obj` (storage version) against the
/// quotas of its namespace and charges it to them unless `dry_run`.
pub async fn admit(
    ctx: &Ctx<'_>,
    op: Operation,
    obj: &Value,
    old: Option<&Value>,
    dry_run: bool,
) -> ApiResult<()> {
    let ns = ctx.namespace();
    if ns.is_empty() || !ctx.req.subresource.is_empty() || !ctx.info.namespaced() {
        return Ok(());
    }
    let evaluator = Evaluator::for_resource(ctx.info.group, ctx.info.plural);
    if !evaluator.handles(op) {
        return Ok(());
    }
    let Some(store) = ctx.server.registry.get("resourcequotas") else {
        return Ok(());
    };
    let mut items = namespace_quotas(store, ns).await?;
    if items.is_empty() {
        return Ok(());
    }
    let lock = namespace_lock(ctx, ns);
    let _serial = lock.lock().await;
    let mut retries = CONFLICT_RETRIES;
    loop {
        let views: Vec<QuotaView> = items
            .iter()
            .map(|i| QuotaView::from_json(&i.extra.value()))
            .collect();
        let changes = match check_request(&views, &evaluator, op, obj, old, jiff::Timestamp::now())
        {
            Ok(c) => c,
            Err(CheckError::Forbidden(reason)) => return Err(forbidden(ctx, obj, &reason)),
            Err(CheckError::Internal(msg)) => return Err(ApiError::internal(msg)),
        };
        if dry_run || changes.is_empty() {
            return Ok(());
        }
        let mut failed = Vec::new();
        let mut last_err = None;
        for change in changes {
            let item = &items[change.index];
            let mut q = item.extra.value();
            q["status"]["used"] = quota::resources::list_to_json(&change.used);
            match store
                .store()
                .update(&item.kv.key, object::to_stored(&q), item.kv.mod_revision)
                .await
            {
                Ok(_) => {}
                Err(e @ (StoreError::Conflict { .. } | StoreError::NotFound { .. })) => {
                    failed.push(item.kv.key.clone());
                    last_err = Some(e);
                }
                Err(e) => return Err(ApiError::internal(e)),
            }
        }
        let Some(err) = last_err else {
            return Ok(());
        };
        if retries == 0 {
            return Err(ApiError::from_store(
                err,
                &crate::error::Target {
                    group: String::new(),
                    resource: "resourcequotas".into(),
                    name: String::new(),
                },
            ));
        }
        retries -= 1;
        // Check again only against the quotas that changed under us (the others are
        // charged already); deleted ones drop out.
        let mut fresh = Vec::new();
        for key in failed {
            if let Some(item) = store
                .cache
                .get_cached(&key)
                .await
                .map_err(ApiError::internal)?
            {
                fresh.push(item);
            }
        }
        items = fresh;
        if items.is_empty() {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::User;
    use crate::request::{Query, ResourceRequest};
    use crate::{Config, Server};
    use store::Storage;

    async fn server(dir: &std::path::Path) -> Arc<Server> {
        let db: Arc<dyn Storage> =
            Arc::new(store::EmbeddedStore::open(&dir.join("db"), Default::default()).unwrap());
        let config = Config::new(dir.to_path_buf());
        let server = Arc::new(Server::new(config, db).unwrap());
        server
            .ready
            .store(true, std::sync::atomic::Ordering::Release);
        assert!(server.registry.wait_ready().await);
        server
    }

    async fn put_quota(server: &Server, quota: Value) {
        let store = server.registry.get("resourcequotas").unwrap();
        let key = store.key("ns", quota["metadata"]["name"].as_str().unwrap());
        store
            .store()
            .create(&key, object::to_stored(&quota))
            .await
            .unwrap();
    }

    async fn stored_used(server: &Server, name: &str) -> Value {
        let store = server.registry.get("resourcequotas").unwrap();
        let item = store
            .cache
            .get_cached(&store.key("ns", name))
            .await
            .unwrap()
            .unwrap();
        item.extra.value()["status"]["used"].clone()
    }

    async fn admit_pod(server: &Arc<Server>, name: &str, dry_run: bool) -> ApiResult<()> {
        let user = User {
            name: "admin".into(),
            groups: vec![],
            uid: String::new(),
            extra: Default::default(),
        };
        let req = ResourceRequest {
            verb: "create",
            version: "v1".into(),
            namespace: "ns".into(),
            resource: "pods".into(),
            ..Default::default()
        };
        let query = Query::parse(None);
        let headers = http::HeaderMap::new();
        let warnings = parking_lot::Mutex::new(Vec::new());
        let ctx = Ctx {
            server,
            user: &user,
            req: &req,
            query: &query,
            info: resources::find("", "v1", "pods").unwrap(),
            output: crate::negotiate::Output::Json,
            headers: &headers,
            warnings: &warnings,
        };
        let pod = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "ns"},
            "spec": {"containers": [{"name": "c", "image": "i"}]}});
        admit(&ctx, Operation::Create, &pod, None, dry_run).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_creates_never_overshoot() {
        let dir = tempfile::tempdir().unwrap();
        let server = server(dir.path()).await;
        let hard = json!({"pods": "3", "count/pods": "10"});
        put_quota(&server, json!({"apiVersion": "v1", "kind": "ResourceQuota",
            "metadata": {"name": "q", "namespace": "ns", "uid": "u"},
            "spec": {"hard": hard}, "status": {"hard": hard, "used": {"pods": "0", "count/pods": "0"}}}))
        .await;
        // A second quota without status.hard does not constrain.
        put_quota(
            &server,
            json!({"apiVersion": "v1", "kind": "ResourceQuota",
            "metadata": {"name": "new", "namespace": "ns", "uid": "v"},
            "spec": {"hard": {"pods": "0"}}}),
        )
        .await;
        assert!(admit_pod(&server, "dry", true).await.is_ok());
        assert_eq!(
            stored_used(&server, "q").await,
            json!({"pods": "0", "count/pods": "0"})
        );
        let names: Vec<String> = (0..8).map(|i| format!("p{i}")).collect();
        let results =
            futures::future::join_all(names.iter().map(|n| admit_pod(&server, n, false))).await;
        let admitted = results.iter().filter(|r| r.is_ok()).count();
        assert_eq!(admitted, 3);
        let refused = results.iter().find_map(|r| r.as_ref().err()).unwrap();
        assert_eq!(refused.code, 403);
        assert!(
            refused.message.ends_with(
                "is forbidden: exceeded quota: q, requested: pods=1, used: pods=3, limited: pods=3"
            ),
            "{}",
            refused.message
        );
        assert!(refused.message.starts_with("pods \"p"));
        assert_eq!(
            stored_used(&server, "q").await,
            json!({"pods": "3", "count/pods": "3"})
        );
    }
}
