//! What the pod-owning controllers of this crate (ReplicaSet and
//! ReplicationController, DaemonSet, StatefulSet) share: the informer handlers that
//! map set and pod changes to set keys on the work queue ([`PodOwnerHandlers`],
//! subscribed by [`watch_sets_and_pods`]), the claim candidates of an owner
//! ([`claim_candidates`], [`claim_pods`]), and the worker start-up every controller
//! here runs once its caches are synced ([`run_synced`]).

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::core::NamespaceResourceScope;
use kube::{Client, Resource};

use controllers::controller::run_workers;
use controllers::error::ControllerError;
use controllers::expectations::Expectations;
use controllers::informer::{
    object_key, orphan_index_value, HandlerRegistration, Informer, Notification, Object, Store,
    CONTROLLER_UID_INDEX,
};
use controllers::podcontrol::PodControl;
use controllers::util::{controller_ref, is_pod_ready, pod_key, LabelMatcher};
use controllers::workqueue::WorkQueue;

/// How an update that marks a pod for deletion (sets its deletion timestamp) is
/// handled, which differs between the upstream controllers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TerminatingPods {
    /// Like any other update (StatefulSet).
    Update,
    /// As a deletion of the pod, so that a replacement is made at once (DaemonSet).
    Deletion,
    /// As a deletion, and also as a deletion of the old pod when its labels changed,
    /// since it may have left another set (ReplicaSet).
    DeletionWithOldLabels,
}

/// The state the informer callbacks of a pod-owning controller use: the set cache,
/// the work queue (keys `namespace/name`), and, for controllers that count their own
/// creations and deletions, the expectations.
pub(crate) struct PodOwnerHandlers<K> {
    /// The cache of the owning sets.
    pub(crate) sets: Store<K>,
    /// The controller's work queue.
    pub(crate) queue: WorkQueue<String>,
    /// Observed creations and deletions are recorded here when present.
    pub(crate) expectations: Option<Arc<Expectations>>,
    /// The pod selector of a set.
    pub(crate) selector: fn(&K) -> Result<LabelMatcher, String>,
    /// `spec.minReadySeconds` of a set.
    pub(crate) min_ready_seconds: fn(&K) -> i32,
    /// How updates of pods being deleted are handled.
    pub(crate) terminating: TerminatingPods,
}

impl<K: Object> PodOwnerHandlers<K> {
    /// The set a controller reference in `namespace` points to, if it is of kind `K`
    /// and still has the referenced UID.
    pub(crate) fn resolve(&self, namespace: &str, r: &OwnerReference) -> Option<Arc<K>> {
        if r.kind != K::kind(&()) {
            return None;
        }
        let set = self.sets.get_namespaced(namespace, &r.name)?;
        (set.meta().uid.as_deref() == Some(r.uid.as_str())).then_some(set)
    }

    /// Queues a sync of `set`.
    pub(crate) fn enqueue(&self, set: &K) {
        self.queue.add(object_key(set));
    }

    /// Sets in `namespace` whose (non-empty, valid) selector matches `labels`; none for
    /// empty labels.
    pub(crate) fn matching(
        &self,
        namespace: &str,
        labels: Option<&BTreeMap<String, String>>,
    ) -> Vec<Arc<K>> {
        if labels.is_none_or(|l| l.is_empty()) {
            return Vec::new();
        }
        self.sets
            .list_namespace(namespace)
            .into_iter()
            .filter(|s| (self.selector)(s).is_ok_and(|sel| !sel.is_empty() && sel.matches(labels)))
            .collect()
    }

    /// Sets that match an orphan pod, warning when more than one does.
    fn matching_pod(&self, pod: &Pod) -> Vec<Arc<K>> {
        let ns = pod.metadata.namespace.as_deref().unwrap_or("");
        let sets = self.matching(ns, pod.metadata.labels.as_ref());
        if sets.len() > 1 {
            tracing::warn!(kind = %K::kind(&()), pod = %pod_key(pod), "user error: more than one controller selects this pod's labels");
        }
        sets
    }

    /// Handles a change of a set: queues it (and, when the name was reused by a new
    /// object, the old one too), forgetting the expectations of objects gone.
    pub(crate) fn on_set(&self, n: &Notification<K>) {
        match n {
            Notification::Added(s) => self.enqueue(s),
            Notification::Updated { old, new } => {
                if old.meta().uid != new.meta().uid {
                    if let Some(e) = &self.expectations {
                        e.delete(&object_key(old.as_ref()));
                    }
                    self.enqueue(old);
                }
                self.enqueue(new);
            }
            Notification::Deleted(s) => {
                let key = object_key(s.as_ref());
                if let Some(e) = &self.expectations {
                    e.delete(&key);
                }
                self.queue.add(key);
            }
        }
    }

    /// A pod is gone (or going): queues its controlling set, recording the deletion.
    fn pod_deleted(&self, pod: &Pod) {
        let Some(r) = controller_ref(&pod.metadata) else {
            return;
        };
        let ns = pod.metadata.namespace.as_deref().unwrap_or("");
        let Some(set) = self.resolve(ns, r) else {
            return;
        };
        let key = object_key(set.as_ref());
        if let Some(e) = &self.expectations {
            e.deletion_observed(&key, &pod_key(pod));
        }
        self.queue.add(key);
    }

    /// Handles a change of a pod: queues its controlling set, or, for an orphan, the
    /// sets that may adopt it.
    pub(crate) fn on_pod(&self, n: &Notification<Pod>) {
        match n {
            Notification::Added(pod) => {
                if pod.metadata.deletion_timestamp.is_some()
                    && self.terminating != TerminatingPods::Update
                {
                    // Already going away (seen after a restart): not a creation.
                    self.pod_deleted(pod);
                    return;
                }
                let ns = pod.metadata.namespace.as_deref().unwrap_or("");
                if let Some(r) = controller_ref(&pod.metadata) {
                    if let Some(set) = self.resolve(ns, r) {
                        let key = object_key(set.as_ref());
                        if let Some(e) = &self.expectations {
                            e.creation_observed(&key);
                        }
                        self.queue.add(key);
                    }
                    return;
                }
                for set in self.matching_pod(pod) {
                    self.enqueue(&set);
                }
            }
            Notification::Updated { old, new } => self.pod_updated(old, new),
            Notification::Deleted(pod) => self.pod_deleted(pod),
        }
    }

    fn pod_updated(&self, old: &Pod, new: &Pod) {
        if old.metadata.resource_version == new.metadata.resource_version {
            return;
        }
        let labels_changed = old.metadata.labels != new.metadata.labels;
        if new.metadata.deletion_timestamp.is_some() {
            match self.terminating {
                TerminatingPods::Update => {}
                TerminatingPods::Deletion => {
                    self.pod_deleted(new);
                    return;
                }
                TerminatingPods::DeletionWithOldLabels => {
                    self.pod_deleted(new);
                    if labels_changed {
                        self.pod_deleted(old);
                    }
                    return;
                }
            }
        }
        let ns = new.metadata.namespace.as_deref().unwrap_or("");
        let cur_ref = controller_ref(&new.metadata);
        let old_ref = controller_ref(&old.metadata);
        let ref_changed = cur_ref != old_ref;
        if ref_changed {
            if let Some(set) = old_ref.and_then(|r| self.resolve(ns, r)) {
                self.enqueue(&set);
            }
        }
        if let Some(r) = cur_ref {
            let Some(set) = self.resolve(ns, r) else {
                return;
            };
            self.enqueue(&set);
            let min_ready = (self.min_ready_seconds)(&set);
            if !is_pod_ready(old) && is_pod_ready(new) && min_ready > 0 {
                // One extra second against clock skew, as upstream.
                let after = Duration::from_secs(u64::try_from(min_ready).unwrap_or(0) + 1);
                self.queue.add_after(object_key(set.as_ref()), after);
            }
            return;
        }
        if labels_changed || ref_changed {
            for set in self.matching_pod(new) {
                self.enqueue(&set);
            }
        }
    }
}

/// Subscribes `handlers` to the set and pod informers; the registrations must be
/// kept for as long as the controller runs.
pub(crate) fn watch_sets_and_pods<K: Object>(
    handlers: &Arc<PodOwnerHandlers<K>>,
    set_informer: &Informer<K>,
    pod_informer: &Informer<Pod>,
) -> Vec<HandlerRegistration> {
    let h = handlers.clone();
    let set_reg = set_informer.add_handler(move |n| h.on_set(n));
    let h = handlers.clone();
    let pod_reg = pod_informer.add_handler(move |n| h.on_pod(n));
    vec![set_reg, pod_reg]
}

/// The objects of `store` an owner may claim: those it controls (by the
/// [`CONTROLLER_UID_INDEX`]) and the orphans of its namespace.
pub(crate) fn claim_candidates<T: Object, O: Resource>(store: &Store<T>, owner: &O) -> Vec<Arc<T>> {
    let namespace = owner.meta().namespace.clone().unwrap_or_default();
    let uid = owner.meta().uid.clone().unwrap_or_default();
    let mut candidates = store.by_index(CONTROLLER_UID_INDEX, &uid);
    candidates.extend(store.by_index(CONTROLLER_UID_INDEX, &orphan_index_value(&namespace)));
    candidates.retain(|c| c.meta().namespace.as_deref() == Some(namespace.as_str()));
    candidates
}

/// Claims `candidates` for `owner` (see [`controllers::claim::claim`]), patching pods
/// through `pod_control` and keeping the cached pod for an adopted one.
pub(crate) async fn claim_pods<O>(
    client: &Client,
    pod_control: &PodControl,
    owner: &O,
    selector: &LabelMatcher,
    candidates: Vec<Arc<Pod>>,
    controller: &str,
) -> Result<Vec<Arc<Pod>>, ControllerError>
where
    O: Object + Resource<Scope = NamespaceResourceScope>,
{
    controllers::claim::claim(
        client,
        owner,
        selector,
        candidates,
        controller,
        |pod, patch| async move {
            let ns = pod.metadata.namespace.clone().unwrap_or_default();
            let name = pod.metadata.name.clone().unwrap_or_default();
            pod_control.patch_pod(&ns, &name, &patch).await?;
            Ok(pod)
        },
    )
    .await
}

/// Once the caches are synced: runs `workers` workers that sync the keys of `queue`
/// with `sync(inner, key)`, keeping `registrations` alive, until the future is
/// dropped.
pub(crate) async fn run_synced<T, F, Fut>(
    name: &'static str,
    workers: usize,
    registrations: Vec<HandlerRegistration>,
    inner: Arc<T>,
    queue: WorkQueue<String>,
    sync: F,
) where
    T: Send + Sync + 'static,
    F: Fn(Arc<T>, String) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), ControllerError>> + Send + 'static,
{
    tracing::info!(
        controller = name,
        workers,
        "caches synced; starting workers"
    );
    let _registrations = registrations;
    run_workers(name, queue, workers, move |key| sync(inner.clone(), key)).await;
}
