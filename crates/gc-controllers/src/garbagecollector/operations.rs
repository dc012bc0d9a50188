//! The garbage collector's workers and their API calls: deciding whether an object
//! is garbage (classifying its owners as solid, dangling or waiting for their
//! dependents' deletion), deleting with preconditions, patching away
//! ownerReferences (strategic merge patch, falling back to a JSON merge patch guarded
//! by resourceVersion for types without strategic merge support), finishing
//! foreground deletions, orphaning dependents, and removing finalizers.

use std::sync::Arc;
use std::time::Duration;

use controllers::ControllerError;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{
    Api, DeleteParams, DynamicObject, Patch, PatchParams, Preconditions, PropagationPolicy,
};
use serde_json::{json, Value};

use super::graph::{GraphEvent, ObjectRef, FINALIZER_FOREGROUND, FINALIZER_ORPHAN};
use super::{GcError, Shared, WorkAction};

/// Attempts of a finalizer removal that meets conflicts (client-go's DefaultBackoff).
const FINALIZER_UPDATE_STEPS: u32 = 5;
const FINALIZER_UPDATE_DELAY: Duration = Duration::from_millis(10);

/// The dynamic Api of `identity`'s resource (namespaced to its namespace if the
/// resource is namespaced), and whether it is namespaced.
fn api_for(
    shared: &Shared,
    api_version: &str,
    kind: &str,
    namespace: &str,
) -> Result<(Api<DynamicObject>, bool), GcError> {
    let mapper = shared.mapper.read();
    let r = mapper
        .lookup(api_version, kind)
        .ok_or_else(|| GcError::RestMapping {
            api_version: api_version.to_string(),
            kind: kind.to_string(),
        })?;
    let api = if r.namespaced {
        Api::namespaced_with(shared.client.clone(), namespace, &r.resource)
    } else {
        Api::all_with(shared.client.clone(), &r.resource)
    };
    Ok((api, r.namespaced))
}

fn api_of(shared: &Shared, identity: &ObjectRef) -> Result<Api<DynamicObject>, GcError> {
    api_for(
        shared,
        &identity.api_version,
        &identity.kind,
        &identity.namespace,
    )
    .map(|(a, _)| a)
}

async fn get_object(shared: &Shared, identity: &ObjectRef) -> Result<ObjectMeta, GcError> {
    let api = api_of(shared, identity)?;
    Ok(api.get_metadata(&identity.name).await?.metadata)
}

fn enqueue_virtual_delete(shared: &Shared, identity: &ObjectRef) {
    let _ = shared.changes.send(GraphEvent::virtual_delete(identity));
}

/// Deletes `identity` with `policy`, preconditioned on its UID and (if given) on
/// `resource_version`. If only the resourceVersion precondition fails and the
/// ownerReferences are unchanged since, retries with the UID precondition alone.
async fn delete_object(
    shared: &Shared,
    identity: &ObjectRef,
    resource_version: &str,
    owners_at_resource_version: &[OwnerReference],
    policy: PropagationPolicy,
) -> Result<(), GcError> {
    let api = api_of(shared, identity)?;
    let mut dp = DeleteParams {
        propagation_policy: Some(policy.clone()),
        preconditions: Some(Preconditions {
            uid: Some(identity.uid.clone()),
            resource_version: (!resource_version.is_empty()).then(|| resource_version.to_string()),
        }),
        ..Default::default()
    };
    let err = match api.delete(&identity.name, &dp).await {
        Ok(_) => return Ok(()),
        Err(e) => GcError::from(e),
    };
    if !err.is_conflict() || resource_version.is_empty() {
        return Err(err);
    }
    match api.get_metadata(&identity.name).await {
        Err(e) => {
            let e = GcError::from(e);
            if e.is_not_found() {
                return Err(e);
            }
            Err(err)
        }
        Ok(live) => {
            let live = live.metadata;
            let unchanged_owners =
                live.owner_references.clone().unwrap_or_default() == owners_at_resource_version;
            if live.uid.as_deref() == Some(identity.uid.as_str())
                && live.resource_version.as_deref() != Some(resource_version)
                && unchanged_owners
            {
                dp.preconditions = Some(Preconditions {
                    uid: Some(identity.uid.clone()),
                    resource_version: None,
                });
                api.delete(&identity.name, &dp).await?;
                return Ok(());
            }
            Err(err)
        }
    }
}

/// Applies the strategic merge patch `smp` to `identity`; for types that do not
/// support it, applies the JSON merge patch `jmp` builds from the live metadata.
async fn patch_object(
    shared: &Shared,
    identity: &ObjectRef,
    smp: Value,
    jmp: impl FnOnce(&ObjectMeta) -> Value,
) -> Result<(), GcError> {
    let api = api_of(shared, identity)?;
    let pp = PatchParams::default();
    let err = match api.patch(&identity.name, &pp, &Patch::Strategic(smp)).await {
        Ok(_) => return Ok(()),
        Err(e) => GcError::from(e),
    };
    if !err.is_unsupported_media_type() {
        return Err(err);
    }
    let live = api.get_metadata(&identity.name).await?.metadata;
    api.patch(&identity.name, &pp, &Patch::Merge(jmp(&live)))
        .await?;
    Ok(())
}

/// The strategic merge patch deleting the references to `owner_uids` from the
/// object `dependent_uid` (whose UID it also asserts).
pub fn delete_owner_refs_strategic_patch(dependent_uid: &str, owner_uids: &[String]) -> Value {
    let refs: Vec<Value> = owner_uids
        .iter()
        .map(|u| json!({"$patch": "delete", "uid": u}))
        .collect();
    json!({"metadata": {"ownerReferences": refs, "uid": dependent_uid}})
}

/// The JSON merge patch keeping all of `live`'s references but those to
/// `owner_uids`, guarded by its resourceVersion.
pub fn delete_owner_refs_merge_patch(live: &ObjectMeta, owner_uids: &[String]) -> Value {
    let kept: Vec<&OwnerReference> = live
        .owner_references
        .iter()
        .flatten()
        .filter(|r| !owner_uids.contains(&r.uid))
        .collect();
    json!({"metadata": {
        "resourceVersion": live.resource_version.clone().unwrap_or_default(),
        "ownerReferences": if kept.is_empty() { Value::Null } else { json!(kept) },
    }})
}

/// The strategic merge patch setting `blockOwnerDeletion: false` on every blocking
/// reference among `owners` of the object `uid`.
pub fn unblock_owner_refs_strategic_patch(uid: &str, owners: &[OwnerReference]) -> Value {
    let refs: Vec<OwnerReference> = owners
        .iter()
        .filter(|o| o.block_owner_deletion == Some(true))
        .map(|o| OwnerReference {
            block_owner_deletion: Some(false),
            ..o.clone()
        })
        .collect();
    json!({"metadata": {"ownerReferences": refs, "uid": uid}})
}

/// The JSON merge patch setting `blockOwnerDeletion: false` on all of `owners`.
pub fn unblock_owner_refs_merge_patch(live: &ObjectMeta, owners: &[OwnerReference]) -> Value {
    let refs: Vec<OwnerReference> = owners
        .iter()
        .map(|o| OwnerReference {
            block_owner_deletion: Some(false),
            ..o.clone()
        })
        .collect();
    json!({"metadata": {
        "resourceVersion": live.resource_version.clone().unwrap_or_default(),
        "ownerReferences": refs,
    }})
}

/// Removes `finalizer` from `identity` (read, then merge patch guarded by the
/// resourceVersion, retried on conflicts). Gone objects and absent finalizers are
/// success.
async fn remove_finalizer(
    shared: &Shared,
    identity: &ObjectRef,
    finalizer: &str,
) -> Result<(), GcError> {
    let api = api_of(shared, identity)?;
    for _ in 0..FINALIZER_UPDATE_STEPS {
        let live = match api.get_metadata(&identity.name).await {
            Ok(m) => m.metadata,
            Err(e) => {
                let e = GcError::from(e);
                if e.is_not_found() {
                    return Ok(());
                }
                return Err(GcError::Api(ControllerError::Other(format!(
                    "cannot finalize owner {identity}, because cannot get it: {e}. The garbage collector will retry later."
                ))));
            }
        };
        let current = live.finalizers.clone().unwrap_or_default();
        if !current.iter().any(|f| f == finalizer) {
            return Ok(());
        }
        let remaining: Vec<&String> = current.iter().filter(|f| *f != finalizer).collect();
        let patch = json!({"metadata": {
            "resourceVersion": live.resource_version.clone().unwrap_or_default(),
            "finalizers": if remaining.is_empty() { Value::Null } else { json!(remaining) },
        }});
        match api
            .patch(
                &identity.name,
                &PatchParams::default(),
                &Patch::Merge(patch),
            )
            .await
        {
            Ok(_) => return Ok(()),
            Err(e) => {
                let e = GcError::from(e);
                if e.is_not_found() {
                    return Ok(());
                }
                if !e.is_conflict() {
                    return Err(e);
                }
                tokio::time::sleep(FINALIZER_UPDATE_DELAY).await;
            }
        }
    }
    Err(GcError::Api(ControllerError::Other(format!(
        "updateMaxRetries({FINALIZER_UPDATE_STEPS}) has reached. The garbage collector will retry later for owner {identity}."
    ))))
}

/// Whether `reference` (an owner of `item`) points at an object that does not exist,
/// and the owner's live metadata if it does.
async fn is_dangling(
    shared: &Shared,
    reference: &OwnerReference,
    item: &ObjectRef,
) -> Result<(bool, Option<ObjectMeta>), GcError> {
    let mut key = ObjectRef::from_owner(reference, "");
    if shared.absent.lock().has(&key) {
        return Ok((true, None));
    }
    key.namespace = item.namespace.clone();
    if shared.absent.lock().has(&key) {
        return Ok((true, None));
    }
    let (api, namespaced) = api_for(
        shared,
        &reference.api_version,
        &reference.kind,
        &item.namespace,
    )?;
    if !namespaced {
        key.namespace.clear();
    }
    if item.namespace.is_empty() && namespaced {
        tracing::debug!(item = %item, owner = %key, "item is cluster-scoped, but refers to a namespaced owner");
        return Err(GcError::NamespacedOwnerOfClusterScopedObject);
    }
    match api.get_metadata(&reference.name).await {
        Err(e) => {
            let e = GcError::from(e);
            if e.is_not_found() {
                shared.absent.lock().add(key);
                return Ok((true, None));
            }
            Err(e)
        }
        Ok(owner) => {
            if owner.metadata.uid.as_deref() != Some(reference.uid.as_str()) {
                shared.absent.lock().add(key);
                return Ok((true, None));
            }
            Ok((false, Some(owner.metadata)))
        }
    }
}

/// The owners of an object, split by state.
#[derive(Debug, Default)]
struct Classified {
    solid: Vec<OwnerReference>,
    dangling: Vec<OwnerReference>,
    waiting_for_dependents_deletion: Vec<OwnerReference>,
}

async fn classify_references(
    shared: &Shared,
    item: &ObjectRef,
    references: &[OwnerReference],
) -> Result<Classified, GcError> {
    let mut out = Classified::default();
    for r in references {
        let (dangling, owner) = is_dangling(shared, r, item).await?;
        if dangling {
            out.dangling.push(r.clone());
            continue;
        }
        let waiting = owner.is_some_and(|o| {
            o.deletion_timestamp.is_some()
                && o.finalizers
                    .iter()
                    .flatten()
                    .any(|f| f == FINALIZER_FOREGROUND)
        });
        if waiting {
            out.waiting_for_dependents_deletion.push(r.clone());
        } else {
            out.solid.push(r.clone());
        }
    }
    Ok(out)
}

/// The graph's view of a node, copied out of the lock.
struct NodeView {
    being_deleted: bool,
    deleting_dependents: bool,
    owners: Vec<OwnerReference>,
    dependents: Vec<(ObjectRef, bool)>,
}

fn node_view(shared: &Shared, uid: &str) -> Option<NodeView> {
    let g = shared.graph.read();
    let n = g.get(uid)?;
    Some(NodeView {
        being_deleted: n.being_deleted,
        deleting_dependents: n.deleting_dependents,
        owners: n.owners.clone(),
        dependents: g
            .dependents(uid)
            .into_iter()
            .map(|d| (d.identity.clone(), d.deleting_dependents))
            .collect(),
    })
}

/// Processes one item of the attempt-to-delete queue.
pub(super) async fn attempt_to_delete_worker(shared: &Arc<Shared>, item: &ObjectRef) -> WorkAction {
    let identity = {
        let g = shared.graph.read();
        let Some(node) = g.get(&item.uid) else {
            // Deleted from the graph meanwhile: nothing left to decide.
            return WorkAction::Forget;
        };
        if node.is_observed()
            && (node.identity.name != item.name || node.identity.namespace != item.namespace)
        {
            // Queued for a virtual node since replaced by the observed object.
            return WorkAction::Forget;
        }
        ObjectRef {
            api_version: node.identity.api_version.clone(),
            kind: node.identity.kind.clone(),
            ..item.clone()
        }
    };
    match attempt_to_delete_item(shared, &identity).await {
        Err(GcError::VirtualDeleteEnqueued)
        | Err(GcError::NamespacedOwnerOfClusterScopedObject) => WorkAction::Forget,
        Err(err) => {
            tracing::warn!(item = %identity, error = %err, "error syncing item");
            WorkAction::Requeue
        }
        Ok(()) => {
            let still_virtual = shared
                .graph
                .read()
                .get(&identity.uid)
                .is_some_and(|n| !n.is_observed());
            if still_virtual {
                // Keep checking until the object is observed or found absent.
                WorkAction::Requeue
            } else {
                WorkAction::Forget
            }
        }
    }
}

/// Looks up `item` live and deletes it if all its owners are gone (or it must go in
/// the foreground for an owner waiting on it), patches away references to dead
/// owners if some remain, or finishes its own foreground deletion.
async fn attempt_to_delete_item(shared: &Arc<Shared>, item: &ObjectRef) -> Result<(), GcError> {
    let Some(node) = node_view(shared, &item.uid) else {
        return Ok(());
    };
    tracing::debug!(item = %item, "processing item");
    if node.being_deleted && !node.deleting_dependents {
        // Deletion is under way; the dependents are handled once it completes.
        return Ok(());
    }
    let latest = match get_object(shared, item).await {
        Ok(m) => m,
        Err(e) if e.is_not_found() => {
            enqueue_virtual_delete(shared, item);
            return Err(GcError::VirtualDeleteEnqueued);
        }
        Err(e) => return Err(e),
    };
    if latest.uid.as_deref() != Some(item.uid.as_str()) {
        enqueue_virtual_delete(shared, item);
        return Err(GcError::VirtualDeleteEnqueued);
    }
    if node.deleting_dependents {
        return process_deleting_dependents_item(shared, item).await;
    }
    let owner_refs = latest.owner_references.clone().unwrap_or_default();
    if owner_refs.is_empty() {
        return Ok(());
    }
    let c = classify_references(shared, item, &owner_refs).await?;
    let resource_version = latest.resource_version.clone().unwrap_or_default();
    if !c.solid.is_empty() {
        if c.dangling.is_empty() && c.waiting_for_dependents_deletion.is_empty() {
            return Ok(());
        }
        // References to owners waiting for their dependents would block those
        // owners forever: drop them along with the dangling ones.
        let uids: Vec<String> = c
            .dangling
            .iter()
            .chain(&c.waiting_for_dependents_deletion)
            .map(|r| r.uid.clone())
            .collect();
        let smp = delete_owner_refs_strategic_patch(&item.uid, &uids);
        return patch_object(shared, item, smp, |live| {
            delete_owner_refs_merge_patch(live, &uids)
        })
        .await;
    }
    if !c.waiting_for_dependents_deletion.is_empty() && !node.dependents.is_empty() {
        if node.dependents.iter().any(|(_, deleting)| *deleting) {
            // A dependent is itself deleting its dependents: unblock our owners to
            // avoid a deadlock in a potential cycle.
            tracing::debug!(item = %item, "some owners and a dependent of item are deleting dependents; unblocking its ownerReferences");
            let smp = unblock_owner_refs_strategic_patch(&item.uid, &node.owners);
            let owners = node.owners.clone();
            patch_object(shared, item, smp, |live| {
                unblock_owner_refs_merge_patch(live, &owners)
            })
            .await?;
        }
        let res = delete_object(
            shared,
            item,
            &resource_version,
            &owner_refs,
            PropagationPolicy::Foreground,
        )
        .await;
        return not_found_as_virtual_delete(shared, item, res);
    }
    let finalizers = latest.finalizers.clone().unwrap_or_default();
    let policy = if finalizers.iter().any(|f| f == FINALIZER_ORPHAN) {
        PropagationPolicy::Orphan
    } else if finalizers.iter().any(|f| f == FINALIZER_FOREGROUND) {
        PropagationPolicy::Foreground
    } else {
        PropagationPolicy::Background
    };
    tracing::debug!(item = %item, policy = ?policy, "deleting item");
    let res = delete_object(shared, item, &resource_version, &owner_refs, policy).await;
    not_found_as_virtual_delete(shared, item, res)
}

fn not_found_as_virtual_delete(
    shared: &Shared,
    item: &ObjectRef,
    res: Result<(), GcError>,
) -> Result<(), GcError> {
    match res {
        Err(e) if e.is_not_found() => {
            enqueue_virtual_delete(shared, item);
            Err(GcError::VirtualDeleteEnqueued)
        }
        other => other,
    }
}

/// An object deleted in the foreground: drop its finalizer when no blocking
/// dependent is left, otherwise queue those dependents for deletion.
async fn process_deleting_dependents_item(
    shared: &Arc<Shared>,
    item: &ObjectRef,
) -> Result<(), GcError> {
    let blocking: Vec<(ObjectRef, bool)> = shared
        .graph
        .read()
        .blocking_dependents(&item.uid)
        .into_iter()
        .map(|d| (d.identity.clone(), d.deleting_dependents))
        .collect();
    if blocking.is_empty() {
        tracing::debug!(item = %item, "removing the foregroundDeletion finalizer");
        return remove_finalizer(shared, item, FINALIZER_FOREGROUND).await;
    }
    for (dep, deleting) in blocking {
        if !deleting {
            shared.attempt_to_delete.add(dep);
        }
    }
    Ok(())
}

/// Processes one item of the attempt-to-orphan queue: removes the owner's
/// reference from each dependent, then its `orphan` finalizer.
pub(super) async fn attempt_to_orphan_worker(
    shared: &Arc<Shared>,
    owner: &ObjectRef,
) -> WorkAction {
    let dependents: Vec<ObjectRef> = shared
        .graph
        .read()
        .dependents(&owner.uid)
        .into_iter()
        .map(|d| d.identity.clone())
        .collect();
    if let Err(err) = orphan_dependents(shared, owner, &dependents).await {
        tracing::warn!(owner = %owner, error = %err, "orphanDependents failed");
        return WorkAction::Requeue;
    }
    if let Err(err) = remove_finalizer(shared, owner, FINALIZER_ORPHAN).await {
        tracing::warn!(owner = %owner, error = %err, "removing the orphan finalizer failed");
        return WorkAction::Requeue;
    }
    WorkAction::Forget
}

async fn orphan_dependents(
    shared: &Shared,
    owner: &ObjectRef,
    dependents: &[ObjectRef],
) -> Result<(), GcError> {
    let patches = dependents.iter().map(|dep| async move {
        let uids = vec![owner.uid.clone()];
        let smp = delete_owner_refs_strategic_patch(&dep.uid, &uids);
        match patch_object(shared, dep, smp, |live| {
            delete_owner_refs_merge_patch(live, &uids)
        })
        .await
        {
            Err(e) if !e.is_not_found() => Some(ControllerError::Other(format!(
                "orphaning {dep} failed, {e}"
            ))),
            _ => None,
        }
    });
    let errors: Vec<ControllerError> = futures::future::join_all(patches)
        .await
        .into_iter()
        .flatten()
        .collect();
    match ControllerError::aggregate(errors) {
        None => Ok(()),
        Some(agg) => Err(GcError::Api(ControllerError::Other(format!(
            "failed to orphan dependents of owner {owner}, got errors: {agg}"
        )))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oref(uid: &str, block: Option<bool>) -> OwnerReference {
        OwnerReference {
            api_version: "v1".into(),
            kind: "ConfigMap".into(),
            name: format!("n-{uid}"),
            uid: uid.into(),
            controller: None,
            block_owner_deletion: block,
        }
    }

    #[test]
    fn patches_match_upstream_shapes() {
        assert_eq!(
            delete_owner_refs_strategic_patch("d", &["a".into(), "b".into()]).to_string(),
            r#"{"metadata":{"ownerReferences":[{"$patch":"delete","uid":"a"},{"$patch":"delete","uid":"b"}],"uid":"d"}}"#
        );
        let live = ObjectMeta {
            resource_version: Some("7".into()),
            owner_references: Some(vec![oref("a", None), oref("b", Some(true))]),
            ..Default::default()
        };
        assert_eq!(
            delete_owner_refs_merge_patch(&live, &["a".into()]),
            json!({"metadata": {"resourceVersion": "7", "ownerReferences": [
                {"apiVersion": "v1", "kind": "ConfigMap", "name": "n-b", "uid": "b", "blockOwnerDeletion": true}
            ]}})
        );
        assert_eq!(
            delete_owner_refs_merge_patch(&live, &["a".into(), "b".into()]),
            json!({"metadata": {"resourceVersion": "7", "ownerReferences": null}})
        );
        let owners = [oref("a", None), oref("b", Some(true))];
        assert_eq!(
            unblock_owner_refs_strategic_patch("d", &owners),
            json!({"metadata": {"ownerReferences": [
                {"apiVersion": "v1", "kind": "ConfigMap", "name": "n-b", "uid": "b", "blockOwnerDeletion": false}
            ], "uid": "d"}})
        );
        assert_eq!(
            unblock_owner_refs_merge_patch(&live, &owners)["metadata"]["ownerReferences"][0]
                ["blockOwnerDeletion"],
            json!(false)
        );
    }
}
