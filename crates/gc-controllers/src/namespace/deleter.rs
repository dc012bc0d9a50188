//! Emptying one terminating namespace: mark it `Terminating`, delete every object of
//! every discovered namespaced resource in it (pods first, the rest once no pod is
//! left: upstream's ordered namespace deletion), keep its deletion conditions up to
//! date, and once nothing is left, remove the `kubernetes` finalizer through the
//! `finalize` subresource (the apiserver then deletes the namespace).

use std::collections::{BTreeMap, HashSet};

use controllers::ControllerError;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, PostParams};
use kube::Client;
use parking_lot::Mutex;

use super::conditions::{ConditionUpdater, ContentTotals};
use crate::discovery::{self, DiscoveredResource, Gvr};

/// The finalizer the namespace controller owns in `spec.finalizers`.
pub const FINALIZER_KUBERNETES: &str = "kubernetes";

/// Seconds to wait for objects that remain because of finalizers.
pub const FINALIZER_ESTIMATE_SECONDS: i64 = 15;

/// Why a namespace is not finished yet.
#[derive(Debug, thiserror::Error)]
pub enum NamespaceDeletionError {
    /// Content was deleted but is not gone yet; try again in about this many seconds.
    #[error("some content remains in the namespace, estimate {0} seconds before it is removed")]
    ResourcesRemaining(i64),
    /// A request failed.
    #[error(transparent)]
    Api(#[from] ControllerError),
}

impl From<kube::Error> for NamespaceDeletionError {
    fn from(e: kube::Error) -> Self {
        NamespaceDeletionError::Api(e.into())
    }
}

impl NamespaceDeletionError {
    fn is_not_found(&self) -> bool {
        matches!(self, NamespaceDeletionError::Api(e) if e.is_not_found())
    }

    fn is_conflict(&self) -> bool {
        matches!(self, NamespaceDeletionError::Api(e) if e.is_conflict())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Operation {
    List,
    DeleteCollection,
}

/// What is left of one resource in the namespace after a deletion pass.
#[derive(Debug, Default)]
struct GvrDeletion {
    /// Seconds to wait (0: no estimate; does not mean nothing is left).
    estimate: i64,
    remaining: usize,
    by_finalizer: BTreeMap<String, usize>,
}

/// Go's `%v` rendering of a group/version/resource.
fn gvr_v(gvr: &Gvr) -> String {
    format!("{{{} {} {}}}", gvr.group, gvr.version, gvr.resource)
}

fn method_not_supported_or_not_found(e: &ControllerError) -> bool {
    matches!(e.code(), Some(404) | Some(405))
}

/// Deletes everything in terminating namespaces.
pub struct NamespacedResourcesDeleter {
    client: Client,
    finalizer_token: String,
    /// Operations found unsupported (by discovery or by a 404/405 answer).
    unsupported: Mutex<HashSet<(Operation, Gvr)>>,
}

impl NamespacedResourcesDeleter {
    /// A deleter removing `finalizer_token` from namespaces it has emptied.
    pub fn new(client: Client, finalizer_token: &str) -> Self {
        NamespacedResourcesDeleter {
            client,
            finalizer_token: finalizer_token.to_string(),
            unsupported: Mutex::new(HashSet::new()),
        }
    }

    fn namespaces(&self) -> Api<Namespace> {
        Api::all(self.client.clone())
    }

    /// Works on the namespace `name`: nothing if it is gone or not being deleted;
    /// otherwise deletes its content and, once it is empty, finalizes it. Returns
    /// [`NamespaceDeletionError::ResourcesRemaining`] while content remains.
    pub async fn delete(&self, name: &str) -> Result<(), NamespaceDeletionError> {
        let Some(ns) = self.namespaces().get_opt(name).await? else {
            return Ok(());
        };
        if ns.metadata.deletion_timestamp.is_none() {
            return Ok(());
        }
        let ns = match self.retry_on_conflict(ns, Step::MarkTerminating).await {
            Ok(ns) => ns,
            Err(e) if e.is_not_found() => return Ok(()),
            Err(e) => return Err(e),
        };
        if ns.metadata.deletion_timestamp.is_none() {
            return Ok(());
        }
        if finalized(&ns) {
            return Ok(());
        }
        let estimate = self.delete_all_content(&ns).await?;
        if estimate > 0 {
            return Err(NamespaceDeletionError::ResourcesRemaining(estimate));
        }
        match self.retry_on_conflict(ns, Step::Finalize).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Runs `step`, re-reading the namespace after each conflict (failing if its UID
    /// changed).
    async fn retry_on_conflict(
        &self,
        ns: Namespace,
        step: Step,
    ) -> Result<Namespace, NamespaceDeletionError> {
        let mut latest = ns;
        loop {
            let result = match step {
                Step::MarkTerminating => self.mark_terminating(&latest).await,
                Step::Finalize => self.finalize(&latest).await,
            };
            match result {
                Ok(ns) => return Ok(ns),
                Err(e) if e.is_conflict() => {
                    let name = latest.metadata.name.clone().unwrap_or_default();
                    let fresh = self.namespaces().get(&name).await?;
                    if fresh.metadata.uid != latest.metadata.uid {
                        return Err(ControllerError::Other(
                            "namespace uid has changed across retries".into(),
                        )
                        .into());
                    }
                    latest = fresh;
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn mark_terminating(&self, ns: &Namespace) -> Result<Namespace, NamespaceDeletionError> {
        let phase = ns.status.as_ref().and_then(|s| s.phase.as_deref());
        if ns.metadata.deletion_timestamp.is_none() || phase == Some("Terminating") {
            return Ok(ns.clone());
        }
        let mut updated = ns.clone();
        updated.status.get_or_insert_with(Default::default).phase = Some("Terminating".into());
        let name = ns.metadata.name.clone().unwrap_or_default();
        Ok(self
            .namespaces()
            .replace_status(&name, &PostParams::default(), &updated)
            .await?)
    }

    async fn finalize(&self, ns: &Namespace) -> Result<Namespace, NamespaceDeletionError> {
        let mut finalizers: Vec<String> = ns
            .spec
            .as_ref()
            .and_then(|s| s.finalizers.clone())
            .unwrap_or_default()
            .into_iter()
            .filter(|f| *f != self.finalizer_token)
            .collect();
        finalizers.sort();
        finalizers.dedup();
        let mut updated = ns.clone();
        updated.spec.get_or_insert_with(Default::default).finalizers = Some(finalizers);
        let name = ns.metadata.name.clone().unwrap_or_default();
        Ok(self
            .namespaces()
            .replace_subresource("finalize", &name, &PostParams::default(), &updated)
            .await?)
    }

    fn is_supported(&self, op: Operation, gvr: &Gvr) -> bool {
        !self.unsupported.lock().contains(&(op, gvr.clone()))
    }

    fn set_unsupported(&self, op: Operation, gvr: &Gvr) {
        self.unsupported.lock().insert((op, gvr.clone()));
    }

    fn dynamic_api(&self, r: &DiscoveredResource, namespace: &str) -> Api<DynamicObject> {
        Api::namespaced_with(self.client.clone(), namespace, &r.resource)
    }

    /// Deletes the whole collection; `Ok(false)` if the resource does not support it.
    async fn delete_collection(
        &self,
        r: &DiscoveredResource,
        namespace: &str,
    ) -> Result<bool, ControllerError> {
        let gvr = r.gvr();
        if !self.is_supported(Operation::DeleteCollection, &gvr) {
            return Ok(false);
        }
        match self
            .dynamic_api(r, namespace)
            .delete_collection(&DeleteParams::background(), &ListParams::default())
            .await
        {
            Ok(_) => Ok(true),
            Err(e) => {
                let e = ControllerError::from(e);
                if method_not_supported_or_not_found(&e) {
                    self.set_unsupported(Operation::DeleteCollection, &gvr);
                    return Ok(false);
                }
                Err(e)
            }
        }
    }

    /// The metadata of every object left; `None` if the resource cannot be listed.
    async fn list_collection(
        &self,
        r: &DiscoveredResource,
        namespace: &str,
    ) -> Result<
        Option<Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta>>,
        ControllerError,
    > {
        let gvr = r.gvr();
        if !self.is_supported(Operation::List, &gvr) {
            return Ok(None);
        }
        match self
            .dynamic_api(r, namespace)
            .list_metadata(&ListParams::default())
            .await
        {
            Ok(list) => Ok(Some(list.items.into_iter().map(|m| m.metadata).collect())),
            Err(e) => {
                let e = ControllerError::from(e);
                if method_not_supported_or_not_found(&e) {
                    self.set_unsupported(Operation::List, &gvr);
                    return Ok(None);
                }
                Err(e)
            }
        }
    }

    async fn delete_each_item(
        &self,
        r: &DiscoveredResource,
        namespace: &str,
    ) -> Result<(), ControllerError> {
        let Some(items) = self.list_collection(r, namespace).await? else {
            return Ok(());
        };
        let api = self.dynamic_api(r, namespace);
        for item in items {
            let name = item.name.unwrap_or_default();
            if let Err(e) = api.delete(&name, &DeleteParams::background()).await {
                let e = ControllerError::from(e);
                if !method_not_supported_or_not_found(&e) {
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// Deletes every object of `r` in `namespace` and reports what is left.
    async fn delete_all_content_for_resource(
        &self,
        r: &DiscoveredResource,
        namespace: &str,
        deleted_at: &Time,
    ) -> (GvrDeletion, Option<ControllerError>) {
        let gvr = r.gvr();
        let estimate = match self
            .estimate_graceful_termination(&gvr, namespace, deleted_at)
            .await
        {
            Ok(e) => e,
            Err(e) => return (GvrDeletion::default(), Some(e)),
        };
        let with_estimate = |estimate| GvrDeletion {
            estimate,
            ..Default::default()
        };
        match self.delete_collection(r, namespace).await {
            Err(e) => return (with_estimate(estimate), Some(e)),
            Ok(false) => {
                if let Err(e) = self.delete_each_item(r, namespace).await {
                    return (with_estimate(estimate), Some(e));
                }
            }
            Ok(true) => {}
        }
        let items = match self.list_collection(r, namespace).await {
            Err(e) => return (with_estimate(estimate), Some(e)),
            Ok(None) => return (with_estimate(estimate), None),
            Ok(Some(items)) => items,
        };
        if items.is_empty() {
            return (GvrDeletion::default(), None);
        }
        let mut by_finalizer = BTreeMap::new();
        for item in &items {
            for f in item.finalizers.iter().flatten() {
                *by_finalizer.entry(f.clone()).or_insert(0) += 1;
            }
        }
        let remaining = items.len();
        if estimate != 0 {
            return (
                GvrDeletion {
                    estimate,
                    remaining,
                    by_finalizer,
                },
                None,
            );
        }
        if !by_finalizer.is_empty() {
            return (
                GvrDeletion {
                    estimate: FINALIZER_ESTIMATE_SECONDS,
                    remaining,
                    by_finalizer,
                },
                None,
            );
        }
        (
            GvrDeletion {
                estimate,
                remaining,
                by_finalizer,
            },
            Some(ControllerError::Other(format!(
                "unexpected items still remain in namespace: {namespace} for gvr: {}",
                gvr_v(&gvr)
            ))),
        )
    }

    /// Seconds the namespace's pods may still need to terminate gracefully (0 once
    /// that long has passed since the namespace's deletion).
    async fn estimate_graceful_termination(
        &self,
        gvr: &Gvr,
        namespace: &str,
        deleted_at: &Time,
    ) -> Result<i64, ControllerError> {
        let mut estimate = 0;
        if gvr.group.is_empty() && gvr.resource == "pods" {
            let pods: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
            for pod in pods.list(&ListParams::default()).await?.items {
                let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
                if matches!(phase, Some("Succeeded") | Some("Failed")) {
                    continue;
                }
                if let Some(grace) = pod
                    .spec
                    .as_ref()
                    .and_then(|s| s.termination_grace_period_seconds)
                {
                    estimate = estimate.max(grace);
                }
            }
        }
        let elapsed = jiff::Timestamp::now()
            .duration_since(deleted_at.0)
            .as_secs();
        if elapsed >= estimate {
            estimate = 0;
        }
        Ok(estimate)
    }

    /// Deletes the content of `ns`, updates its conditions, and returns how long to
    /// wait before checking again (0 once everything is gone).
    async fn delete_all_content(&self, ns: &Namespace) -> Result<i64, NamespaceDeletionError> {
        let namespace = ns.metadata.name.clone().unwrap_or_default();
        let Some(deleted_at) = ns.metadata.deletion_timestamp.clone() else {
            return Ok(0);
        };
        let mut errs: Vec<ControllerError> = Vec::new();
        let mut updater = ConditionUpdater::new(Time(jiff::Timestamp::now()));
        let discovered = match discovery::discover(&self.client).await {
            Ok(d) => {
                if let Some(msg) = d.failure_message() {
                    updater.process_discovery_error(&msg, Some(d.failed.len()));
                    errs.push(ControllerError::Other(msg));
                }
                d
            }
            Err(e) => {
                updater.process_discovery_error(&e.to_string(), None);
                errs.push(e);
                Default::default()
            }
        };
        let mut resources: Vec<DiscoveredResource> = discovered
            .preferred
            .into_iter()
            .filter(|r| r.namespaced && r.supports_all(&["delete"]))
            .collect();
        for r in &resources {
            for (op, verb) in [
                (Operation::List, "list"),
                (Operation::DeleteCollection, "deletecollection"),
            ] {
                if !r.supports_all(&[verb]) {
                    self.set_unsupported(op, &r.gvr());
                }
            }
        }
        let mut estimate = 0;
        let mut totals = ContentTotals::default();
        let tally = |gvr: Gvr, d: &GvrDeletion, totals: &mut ContentTotals, estimate: &mut i64| {
            *estimate = (*estimate).max(d.estimate);
            if d.remaining > 0 {
                totals.remaining_by_resource.insert(gvr, d.remaining);
                for (f, n) in &d.by_finalizer {
                    if *n > 0 {
                        *totals.remaining_by_finalizer.entry(f.clone()).or_insert(0) += n;
                    }
                }
            }
        };
        // Pods go first; nothing else is deleted while any is left.
        if let Some(i) = resources
            .iter()
            .position(|r| r.resource.group.is_empty() && r.resource.plural == "pods")
        {
            let pods = resources.remove(i);
            let (d, err) = self
                .delete_all_content_for_resource(&pods, &namespace, &deleted_at)
                .await;
            if let Some(e) = err {
                updater.process_delete_content_error(&e.to_string());
                errs.push(e);
            }
            tally(pods.gvr(), &d, &mut totals, &mut estimate);
            if d.remaining > 0 {
                updater.process_content_totals(&totals);
                self.update_conditions(ns, updater).await;
                return match ControllerError::aggregate(errs) {
                    Some(e) if estimate == 0 => Err(e.into()),
                    _ => Ok(estimate),
                };
            }
        }
        for r in &resources {
            let (d, err) = self
                .delete_all_content_for_resource(r, &namespace, &deleted_at)
                .await;
            if let Some(e) = err {
                updater.process_delete_content_error(&e.to_string());
                errs.push(e);
            }
            tally(r.gvr(), &d, &mut totals, &mut estimate);
        }
        updater.process_content_totals(&totals);
        self.update_conditions(ns, updater).await;
        match ControllerError::aggregate(errs) {
            Some(e) => Err(e.into()),
            None => Ok(estimate),
        }
    }

    async fn update_conditions(&self, ns: &Namespace, updater: ConditionUpdater) {
        let mut updated = ns.clone();
        let status = updated.status.get_or_insert_with(Default::default);
        if updater.update(status) {
            let name = ns.metadata.name.clone().unwrap_or_default();
            if let Err(e) = self
                .namespaces()
                .replace_status(&name, &PostParams::default(), &updated)
                .await
            {
                tracing::warn!(namespace = %name, error = %e, "couldn't update status condition for namespace");
            }
        }
    }
}

#[derive(Clone, Copy)]
enum Step {
    MarkTerminating,
    Finalize,
}

/// Whether no finalizer is left in `spec.finalizers`.
pub fn finalized(ns: &Namespace) -> bool {
    ns.spec
        .as_ref()
        .and_then(|s| s.finalizers.as_ref())
        .is_none_or(|f| f.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::NamespaceSpec;

    #[test]
    fn formats_and_finalized() {
        let gvr = Gvr {
            group: String::new(),
            version: "v1".into(),
            resource: "pods".into(),
        };
        assert_eq!(gvr_v(&gvr), "{ v1 pods}");
        assert_eq!(
            NamespaceDeletionError::ResourcesRemaining(16).to_string(),
            "some content remains in the namespace, estimate 16 seconds before it is removed"
        );
        let mut ns = Namespace::default();
        assert!(finalized(&ns));
        ns.spec = Some(NamespaceSpec {
            finalizers: Some(vec!["kubernetes".into()]),
        });
        assert!(!finalized(&ns));
    }
}
