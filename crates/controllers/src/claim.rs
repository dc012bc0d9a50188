//! Claiming dependents for a controller: adopting matching orphans and releasing
//! owned objects that no longer match the owner's selector. Shared by the
//! ReplicaSet controller (claiming pods) and the Deployment controller (claiming
//! ReplicaSets).

use std::future::Future;
use std::sync::Arc;

use kube::core::NamespaceResourceScope;
use kube::{Api, Client, Resource};

use crate::error::ControllerError;
use crate::informer::Object;
use crate::podcontrol::{adopt_patch, release_patch};
use crate::util::{controller_ref, new_controller_ref, LabelMatcher};

/// Namespace and name of an object (empty strings where unset).
fn name_of<K: Resource>(obj: &K) -> (String, String) {
    (
        obj.meta().namespace.clone().unwrap_or_default(),
        obj.meta().name.clone().unwrap_or_default(),
    )
}

/// Confirms with a fresh read that `owner` still exists (same UID) and is not being
/// deleted, before it adopts anything.
pub async fn can_adopt<O>(client: &Client, owner: &O) -> Result<(), String>
where
    O: Object + Resource<Scope = NamespaceResourceScope>,
{
    let (namespace, name) = name_of(owner);
    let api: Api<O> = Api::namespaced(client.clone(), &namespace);
    let fresh = api.get(&name).await.map_err(|e| {
        format!(
            "can't recheck DeletionTimestamp: {}",
            ControllerError::from(e)
        )
    })?;
    let want = owner.meta().uid.clone().unwrap_or_default();
    let got = fresh.meta().uid.clone().unwrap_or_default();
    if got != want {
        return Err(format!(
            "can't recheck DeletionTimestamp: original {} {namespace}/{name} is gone: got uid {got}, wanted {want}",
            O::kind(&())
        ));
    }
    if let Some(ts) = &fresh.meta().deletion_timestamp {
        return Err(format!(
            "{namespace}/{name} has just been deleted at {}",
            ts.0
        ));
    }
    Ok(())
}

/// The candidates `owner` controls after claiming: owned ones matching `selector`
/// are kept, matching orphans are adopted (after one [`can_adopt`] recheck), owned
/// ones that stopped matching are released (unless the owner is being deleted).
///
/// `patch` applies a strategic merge patch to a candidate and returns what to keep
/// for it when it is adopted. Errors other than "not found" (and, on release,
/// "invalid") are aggregated; `controller` names the controller in logs.
pub async fn claim<O, X, P, Fut>(
    client: &Client,
    owner: &O,
    selector: &LabelMatcher,
    candidates: Vec<Arc<X>>,
    controller: &str,
    patch: P,
) -> Result<Vec<Arc<X>>, ControllerError>
where
    O: Object + Resource<Scope = NamespaceResourceScope>,
    X: Resource<DynamicType = ()>,
    P: Fn(Arc<X>, serde_json::Value) -> Fut,
    Fut: Future<Output = Result<Arc<X>, ControllerError>>,
{
    let uid = owner.meta().uid.clone().unwrap_or_default();
    let deleting = owner.meta().deletion_timestamp.is_some();
    let cref = new_controller_ref(owner);
    let mut claimed = Vec::with_capacity(candidates.len());
    let mut errors = Vec::new();
    let mut adoptable: Option<Result<(), String>> = None;
    for obj in candidates {
        let (ns, name) = name_of(obj.as_ref());
        let obj_uid = obj.meta().uid.clone().unwrap_or_default();
        let matches = selector.matches(obj.meta().labels.as_ref());
        match controller_ref(obj.meta()) {
            Some(owner_ref) => {
                if owner_ref.uid != uid {
                    continue;
                }
                if matches {
                    claimed.push(obj);
                    continue;
                }
                if deleting {
                    continue;
                }
                tracing::info!(
                    controller,
                    kind = %X::kind(&()),
                    object = %format!("{ns}/{name}"),
                    "releasing object that no longer matches the selector"
                );
                match patch(obj, release_patch(&uid, &obj_uid)).await {
                    Ok(_) => {}
                    Err(e) if e.is_not_found() || e.is_invalid() => {}
                    Err(e) => errors.push(e),
                }
            }
            None => {
                if deleting || !matches || obj.meta().deletion_timestamp.is_some() {
                    continue;
                }
                if adoptable.is_none() {
                    adoptable = Some(can_adopt(client, owner).await);
                }
                if let Some(Err(why)) = &adoptable {
                    errors.push(ControllerError::Other(format!(
                        "can't adopt {} {ns}/{name} ({obj_uid}): {why}",
                        X::kind(&())
                    )));
                    continue;
                }
                match patch(obj, adopt_patch(&cref, &obj_uid)).await {
                    Ok(adopted) => claimed.push(adopted),
                    Err(e) if e.is_not_found() => {}
                    Err(e) => errors.push(e),
                }
            }
        }
    }
    match ControllerError::aggregate(errors) {
        Some(e) => Err(e),
        None => Ok(claimed),
    }
}
