//! The garbage collector's dependency graph: one node per object UID (observed
//! through a watch, or "virtual" when only known as somebody's owner), each with the
//! ownerReferences of the object and the UIDs of its dependents.
//!
//! [`Graph::process`] applies one change (a watch event, or a virtual delete event
//! from a worker that found an object absent) and returns the [`Action`]s it calls
//! for: objects to look at for deletion or orphaning, owners now known to be absent,
//! and invalid cross-namespace references to report. It is pure, so the rules
//! (virtual nodes, coordinate mismatches, namespace checks, transitions into
//! orphaning or foreground deletion) are unit-tested without an apiserver.

use std::cmp::Ordering;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

/// The finalizer of objects whose dependents are orphaned before they go.
pub const FINALIZER_ORPHAN: &str = "orphan";
/// The finalizer of objects deleted in the foreground.
pub const FINALIZER_FOREGROUND: &str = "foregroundDeletion";

/// The coordinates of an object: apiVersion, kind, name, UID and namespace (empty
/// for cluster-scoped objects, and for virtual owners, the dependent's namespace).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct ObjectRef {
    /// apiVersion (`v1`, `apps/v1`).
    pub api_version: String,
    /// Kind.
    pub kind: String,
    /// Name.
    pub name: String,
    /// UID.
    pub uid: String,
    /// Namespace; empty for cluster-scoped objects.
    pub namespace: String,
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "[{}/{}, namespace: {}, name: {}, uid: {}]",
            self.api_version, self.kind, self.namespace, self.name, self.uid
        )
    }
}

impl ObjectRef {
    /// The coordinates an ownerReference names, placed in `namespace`.
    pub fn from_owner(r: &OwnerReference, namespace: &str) -> Self {
        ObjectRef {
            api_version: r.api_version.clone(),
            kind: r.kind.clone(),
            name: r.name.clone(),
            uid: r.uid.clone(),
            namespace: namespace.to_string(),
        }
    }

    /// Whether `r` names exactly these coordinates (UID, name, kind, apiVersion).
    pub fn matches_owner(&self, r: &OwnerReference) -> bool {
        r.uid == self.uid
            && r.name == self.name
            && r.kind == self.kind
            && r.api_version == self.api_version
    }
}

/// Orders references by kind, apiVersion, namespace, name, then UID.
pub fn reference_cmp(a: &ObjectRef, b: &ObjectRef) -> Ordering {
    a.kind
        .cmp(&b.kind)
        .then_with(|| a.api_version.cmp(&b.api_version))
        .then_with(|| a.namespace.cmp(&b.namespace))
        .then_with(|| a.name.cmp(&b.name))
        .then_with(|| a.uid.cmp(&b.uid))
}

/// One object in the graph.
#[derive(Clone, Debug, Default)]
pub struct Node {
    /// Who the object is.
    pub identity: ObjectRef,
    /// UIDs of the objects that list this one as an owner.
    pub dependents: BTreeSet<String>,
    /// Being deleted with the `foregroundDeletion` finalizer.
    pub deleting_dependents: bool,
    /// Has a deletionTimestamp.
    pub being_deleted: bool,
    /// Only known as an owner, never observed.
    pub virtual_: bool,
    /// The object's ownerReferences.
    pub owners: Vec<OwnerReference>,
}

impl Node {
    /// Whether the node came from a watch.
    pub fn is_observed(&self) -> bool {
        !self.virtual_
    }
}

/// The kind of a graph change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    /// An object appeared.
    Add,
    /// An object changed.
    Update,
    /// An object went away.
    Delete,
}

/// A change to apply to the graph.
#[derive(Clone, Debug)]
pub struct GraphEvent {
    /// Constructed by a worker, not seen on a watch.
    pub virtual_: bool,
    /// Add, update or delete.
    pub event_type: EventType,
    /// apiVersion of the watched resource (or of the reference, for virtual events).
    pub api_version: String,
    /// Kind.
    pub kind: String,
    /// The object's metadata.
    pub obj: ObjectMeta,
    /// The previous metadata, for updates.
    pub old: Option<ObjectMeta>,
}

impl GraphEvent {
    /// The virtual delete event of an object found absent at the apiserver.
    pub fn virtual_delete(r: &ObjectRef) -> Self {
        GraphEvent {
            virtual_: true,
            event_type: EventType::Delete,
            api_version: r.api_version.clone(),
            kind: r.kind.clone(),
            obj: ObjectMeta {
                name: Some(r.name.clone()),
                namespace: (!r.namespace.is_empty()).then(|| r.namespace.clone()),
                uid: Some(r.uid.clone()),
                ..Default::default()
            },
            old: None,
        }
    }

    fn identity(&self) -> ObjectRef {
        ObjectRef {
            api_version: self.api_version.clone(),
            kind: self.kind.clone(),
            name: self.obj.name.clone().unwrap_or_default(),
            uid: self.obj.uid.clone().unwrap_or_default(),
            namespace: self.obj.namespace.clone().unwrap_or_default(),
        }
    }
}

/// What a graph change asks the garbage collector to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Look at the object (delete it if its owners are gone, finish its foreground
    /// deletion, or verify a virtual node).
    AttemptToDelete(ObjectRef),
    /// The same, after the queue's backoff.
    AttemptToDeleteRateLimited(ObjectRef),
    /// Orphan the object's dependents, then drop its `orphan` finalizer.
    AttemptToOrphan(ObjectRef),
    /// The object is known not to exist.
    AbsentOwner(ObjectRef),
    /// Warn on `dependent` (event reason `OwnerRefInvalidNamespace`) with `message`.
    InvalidNamespaceOwnerRef {
        /// The object holding the bad reference.
        dependent: ObjectRef,
        /// The event message.
        message: String,
    },
}

fn has_finalizer(meta: &ObjectMeta, name: &str) -> bool {
    meta.finalizers
        .as_ref()
        .is_some_and(|f| f.iter().any(|x| x == name))
}

fn being_deleted(meta: &ObjectMeta) -> bool {
    meta.deletion_timestamp.is_some()
}

/// Whether `new` is being deleted with `finalizer` and `old` was not.
fn deletion_starts_with(old: Option<&ObjectMeta>, new: &ObjectMeta, finalizer: &str) -> bool {
    if !being_deleted(new) || !has_finalizer(new, finalizer) {
        return false;
    }
    match old {
        None => true,
        Some(old) => !being_deleted(old) || !has_finalizer(old, finalizer),
    }
}

/// The ownerReferences added, removed and changed (old, new) between two lists,
/// matched by UID.
pub fn references_diffs(
    old: &[OwnerReference],
    new: &[OwnerReference],
) -> (
    Vec<OwnerReference>,
    Vec<OwnerReference>,
    Vec<(OwnerReference, OwnerReference)>,
) {
    let old_by_uid: HashMap<&str, &OwnerReference> =
        old.iter().map(|r| (r.uid.as_str(), r)).collect();
    let mut remaining: HashSet<&str> = old_by_uid.keys().copied().collect();
    let mut added = Vec::new();
    let mut changed = Vec::new();
    for r in new {
        if remaining.remove(r.uid.as_str()) {
            if let Some(o) = old_by_uid.get(r.uid.as_str()) {
                if *o != r {
                    changed.push(((*o).clone(), r.clone()));
                }
            }
        } else {
            added.push(r.clone());
        }
    }
    let removed = old
        .iter()
        .filter(|r| remaining.contains(r.uid.as_str()))
        .cloned()
        .collect();
    (added, removed, changed)
}

fn blocks(r: &OwnerReference) -> bool {
    r.block_owner_deletion == Some(true)
}

/// The dependency graph, keyed by UID.
#[derive(Clone, Debug, Default)]
pub struct Graph {
    nodes: HashMap<String, Node>,
}

impl Graph {
    /// An empty graph.
    pub fn new() -> Self {
        Graph::default()
    }

    /// The node of `uid`.
    pub fn get(&self, uid: &str) -> Option<&Node> {
        self.nodes.get(uid)
    }

    /// How many nodes there are.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the graph is empty.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The dependents of `uid` that exist in the graph.
    pub fn dependents(&self, uid: &str) -> Vec<&Node> {
        self.nodes
            .get(uid)
            .map(|n| {
                n.dependents
                    .iter()
                    .filter_map(|d| self.nodes.get(d))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The dependents of `uid` holding a reference to it with `blockOwnerDeletion`.
    pub fn blocking_dependents(&self, uid: &str) -> Vec<&Node> {
        self.dependents(uid)
            .into_iter()
            .filter(|d| d.owners.iter().any(|o| o.uid == uid && blocks(o)))
            .collect()
    }

    /// Applies one change and returns what it calls for.
    pub fn process(&mut self, event: &GraphEvent) -> Vec<Action> {
        let mut actions = Vec::new();
        let uid = event.obj.uid.clone().unwrap_or_default();
        if uid.is_empty() {
            return actions;
        }
        let found = self.nodes.contains_key(&uid);
        if found && !event.virtual_ {
            self.observe(&uid, event, &mut actions);
        }
        match event.event_type {
            EventType::Add | EventType::Update if !found => {
                let node = Node {
                    identity: event.identity(),
                    dependents: BTreeSet::new(),
                    deleting_dependents: being_deleted(&event.obj)
                        && has_finalizer(&event.obj, FINALIZER_FOREGROUND),
                    being_deleted: being_deleted(&event.obj),
                    virtual_: false,
                    owners: event.obj.owner_references.clone().unwrap_or_default(),
                };
                let owners = node.owners.clone();
                self.nodes.insert(uid.clone(), node);
                self.add_dependent_to_owners(&uid, &owners, &mut actions);
                self.process_transitions(event.old.as_ref(), &event.obj, &uid, &mut actions);
            }
            EventType::Add | EventType::Update => {
                if !event.virtual_ {
                    if let Some(n) = self.nodes.get_mut(&uid) {
                        n.identity.api_version = event.api_version.clone();
                        n.identity.kind = event.kind.clone();
                    }
                }
                let new_owners = event.obj.owner_references.clone().unwrap_or_default();
                let old_owners = self
                    .nodes
                    .get(&uid)
                    .map(|n| n.owners.clone())
                    .unwrap_or_default();
                let (added, removed, changed) = references_diffs(&old_owners, &new_owners);
                if !added.is_empty() || !removed.is_empty() || !changed.is_empty() {
                    self.add_unblocked_owners_to_delete_queue(&removed, &changed, &mut actions);
                    if let Some(n) = self.nodes.get_mut(&uid) {
                        n.owners = new_owners;
                    }
                    self.add_dependent_to_owners(&uid, &added, &mut actions);
                    self.remove_dependent_from_owners(&uid, &removed);
                }
                if being_deleted(&event.obj) {
                    if let Some(n) = self.nodes.get_mut(&uid) {
                        n.being_deleted = true;
                    }
                }
                self.process_transitions(event.old.as_ref(), &event.obj, &uid, &mut actions);
            }
            EventType::Delete => {
                if found {
                    self.process_delete(&uid, event, &mut actions);
                }
            }
        }
        actions
    }

    /// A watch event for a node known so far only as an owner: adopt the observed
    /// identity (re-checking dependents that named it otherwise) and mark it observed.
    fn observe(&mut self, uid: &str, event: &GraphEvent, actions: &mut Vec<Action>) {
        let Some(existing) = self.nodes.get(uid) else {
            return;
        };
        if existing.is_observed() {
            return;
        }
        let observed = event.identity();
        if observed != existing.identity {
            let deps: Vec<Node> = self.dependents(uid).into_iter().cloned().collect();
            let (_, nonmatching) = partition_dependents(&deps, &observed);
            for dep in nonmatching {
                if !observed.namespace.is_empty() && dep.identity.namespace != observed.namespace {
                    if let Some(a) = invalid_namespace_owner_ref(dep, &observed.uid) {
                        actions.push(a);
                    }
                }
                actions.push(Action::AttemptToDelete(dep.identity.clone()));
            }
            if let Some(n) = self.nodes.get_mut(uid) {
                n.identity = observed;
            }
        }
        if let Some(n) = self.nodes.get_mut(uid) {
            n.virtual_ = false;
        }
    }

    fn process_delete(&mut self, uid: &str, event: &GraphEvent, actions: &mut Vec<Action>) {
        let Some(existing) = self.nodes.get(uid).cloned() else {
            return;
        };
        let mut remove = true;
        if event.virtual_ {
            let deleted = event.identity();
            let deps: Vec<Node> = self.dependents(uid).into_iter().cloned().collect();
            if existing.virtual_ {
                let (matching, nonmatching) = partition_dependents(&deps, &deleted);
                if !nonmatching.is_empty() {
                    // Dependents disagree on who this owner is: keep the node.
                    remove = false;
                    if !matching.is_empty() {
                        actions.push(Action::AbsentOwner(deleted.clone()));
                        for dep in &matching {
                            actions.push(Action::AttemptToDelete(dep.identity.clone()));
                        }
                    }
                    if existing.identity == deleted {
                        if let Some(replacement) = alternate_owner_identity(&nonmatching, &deleted)
                        {
                            if let Some(n) = self.nodes.get_mut(uid) {
                                n.identity = replacement.clone();
                            }
                            actions.push(Action::AttemptToDeleteRateLimited(replacement));
                        }
                    }
                }
            } else if existing.identity != deleted {
                // An observed node is not removed by a virtual event naming other
                // coordinates; only dependents naming those coordinates are affected.
                remove = false;
                let (matching, _) = partition_dependents(&deps, &deleted);
                if !matching.is_empty() {
                    actions.push(Action::AbsentOwner(deleted.clone()));
                    for dep in &matching {
                        actions.push(Action::AttemptToDelete(dep.identity.clone()));
                    }
                }
            }
        }
        if !remove {
            return;
        }
        self.nodes.remove(uid);
        self.remove_dependent_from_owners(uid, &existing.owners);
        if !existing.dependents.is_empty() {
            actions.push(Action::AbsentOwner(event.identity()));
        }
        for dep in &existing.dependents {
            if let Some(d) = self.nodes.get(dep) {
                actions.push(Action::AttemptToDelete(d.identity.clone()));
            }
        }
        for owner in &existing.owners {
            if let Some(o) = self.nodes.get(&owner.uid) {
                if o.deleting_dependents {
                    actions.push(Action::AttemptToDelete(o.identity.clone()));
                }
            }
        }
    }

    /// Files `uid` under each of `owners`, creating virtual nodes for owners not seen
    /// yet, and asks for a check of `uid` if a reference looks wrong.
    fn add_dependent_to_owners(
        &mut self,
        uid: &str,
        owners: &[OwnerReference],
        actions: &mut Vec<Action>,
    ) {
        let Some(dependent) = self.nodes.get(uid).cloned() else {
            return;
        };
        let mut potentially_invalid = false;
        for owner in owners {
            match self.nodes.get_mut(&owner.uid) {
                None => {
                    let identity = ObjectRef::from_owner(owner, &dependent.identity.namespace);
                    let mut node = Node {
                        identity: identity.clone(),
                        virtual_: true,
                        ..Default::default()
                    };
                    node.dependents.insert(uid.to_string());
                    self.nodes.insert(owner.uid.clone(), node);
                    actions.push(Action::AttemptToDelete(identity));
                }
                Some(owner_node) => {
                    owner_node.dependents.insert(uid.to_string());
                    if potentially_invalid {
                        continue;
                    }
                    let owner_namespaced = !owner_node.identity.namespace.is_empty();
                    if owner_namespaced
                        && owner_node.identity.namespace != dependent.identity.namespace
                    {
                        if owner_node.is_observed() {
                            if let Some(a) = invalid_namespace_owner_ref(&dependent, &owner.uid) {
                                actions.push(a);
                            }
                        }
                        potentially_invalid = true;
                    } else if !owner_node.identity.matches_owner(owner)
                        || (!owner_namespaced
                            && owner_node.identity.namespace != dependent.identity.namespace
                            && !owner_node.is_observed())
                    {
                        // Coordinates disagree with what is known of the owner, or a
                        // namespaced dependent names a virtual cluster-scoped owner
                        // that may really be a missing namespaced object.
                        potentially_invalid = true;
                    }
                }
            }
        }
        if potentially_invalid {
            actions.push(Action::AttemptToDelete(dependent.identity.clone()));
        }
    }

    fn remove_dependent_from_owners(&mut self, uid: &str, owners: &[OwnerReference]) {
        for owner in owners {
            if let Some(o) = self.nodes.get_mut(&owner.uid) {
                o.dependents.remove(uid);
            }
        }
    }

    /// Owners whose blocking reference went away (or stopped blocking) may be able to
    /// finish their foreground deletion.
    fn add_unblocked_owners_to_delete_queue(
        &self,
        removed: &[OwnerReference],
        changed: &[(OwnerReference, OwnerReference)],
        actions: &mut Vec<Action>,
    ) {
        for r in removed {
            if blocks(r) {
                if let Some(n) = self.nodes.get(&r.uid) {
                    actions.push(Action::AttemptToDelete(n.identity.clone()));
                }
            }
        }
        for (old, new) in changed {
            if blocks(old) && !blocks(new) {
                if let Some(n) = self.nodes.get(&new.uid) {
                    actions.push(Action::AttemptToDelete(n.identity.clone()));
                }
            }
        }
    }

    fn process_transitions(
        &mut self,
        old: Option<&ObjectMeta>,
        new: &ObjectMeta,
        uid: &str,
        actions: &mut Vec<Action>,
    ) {
        if deletion_starts_with(old, new, FINALIZER_ORPHAN) {
            if let Some(n) = self.nodes.get(uid) {
                actions.push(Action::AttemptToOrphan(n.identity.clone()));
            }
            return;
        }
        if deletion_starts_with(old, new, FINALIZER_FOREGROUND) {
            let Some(n) = self.nodes.get_mut(uid) else {
                return;
            };
            n.deleting_dependents = true;
            let identity = n.identity.clone();
            for dep in self.dependents(uid) {
                actions.push(Action::AttemptToDelete(dep.identity.clone()));
            }
            actions.push(Action::AttemptToDelete(identity));
        }
    }
}

/// The Warning event for a dependent whose reference `owner_uid` names an owner in
/// another namespace.
fn invalid_namespace_owner_ref(dependent: &Node, owner_uid: &str) -> Option<Action> {
    let r = dependent.owners.iter().find(|o| o.uid == owner_uid)?;
    let invalid = ObjectRef::from_owner(r, &dependent.identity.namespace);
    Some(Action::InvalidNamespaceOwnerRef {
        dependent: dependent.identity.clone(),
        message: format!(
            "ownerRef {invalid} does not exist in namespace {:?}",
            dependent.identity.namespace
        ),
    })
}

/// Splits `dependents` into those whose reference to `owner.uid` matches `owner`'s
/// coordinates (and namespace) and those with a reference that does not. A dependent
/// with several references to the UID can land in both.
pub fn partition_dependents<'a>(
    dependents: &'a [Node],
    owner: &ObjectRef,
) -> (Vec<&'a Node>, Vec<&'a Node>) {
    let owner_namespaced = !owner.namespace.is_empty();
    let mut matching = Vec::new();
    let mut nonmatching = Vec::new();
    for dep in dependents {
        let mut found_match = false;
        let mut found_mismatch = false;
        if owner_namespaced && owner.namespace != dep.identity.namespace {
            found_mismatch = true;
        } else {
            for r in dep.owners.iter().filter(|r| r.uid == owner.uid) {
                if owner.matches_owner(r) {
                    found_match = true;
                } else {
                    found_mismatch = true;
                }
            }
        }
        if found_match {
            matching.push(dep);
        }
        if found_mismatch {
            nonmatching.push(dep);
        }
    }
    (matching, nonmatching)
}

/// Another identity the dependents give the owner UID of `absent` (verified not to
/// exist): the first one ordered after `absent`, else the first one; `None` if there
/// is no other.
pub fn alternate_owner_identity(deps: &[&Node], absent: &ObjectRef) -> Option<ObjectRef> {
    let absent_cluster_scoped = absent.namespace.is_empty();
    let mut seen: HashSet<ObjectRef> = HashSet::from([absent.clone()]);
    let mut first: Option<ObjectRef> = None;
    let mut first_following: Option<ObjectRef> = None;
    for dep in deps {
        for r in dep.owners.iter().filter(|r| r.uid == absent.uid) {
            if absent.matches_owner(r)
                && (absent_cluster_scoped || absent.namespace == dep.identity.namespace)
            {
                continue;
            }
            let mut candidate = ObjectRef::from_owner(r, &dep.identity.namespace);
            if absent_cluster_scoped
                && candidate.api_version == absent.api_version
                && candidate.kind == absent.kind
            {
                candidate.namespace.clear();
            }
            if !seen.insert(candidate.clone()) {
                continue;
            }
            if first
                .as_ref()
                .is_none_or(|f| reference_cmp(&candidate, f) == Ordering::Less)
            {
                first = Some(candidate.clone());
            }
            if reference_cmp(absent, &candidate) == Ordering::Less
                && first_following
                    .as_ref()
                    .is_none_or(|f| reference_cmp(&candidate, f) == Ordering::Less)
            {
                first_following = Some(candidate);
            }
        }
    }
    first_following.or(first)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn oref(api_version: &str, kind: &str, name: &str, uid: &str, block: bool) -> OwnerReference {
        OwnerReference {
            api_version: api_version.into(),
            kind: kind.into(),
            name: name.into(),
            uid: uid.into(),
            controller: None,
            block_owner_deletion: block.then_some(true),
        }
    }

    fn meta(ns: &str, name: &str, uid: &str, owners: Vec<OwnerReference>) -> ObjectMeta {
        ObjectMeta {
            namespace: (!ns.is_empty()).then(|| ns.to_string()),
            name: Some(name.into()),
            uid: Some(uid.into()),
            owner_references: (!owners.is_empty()).then_some(owners),
            ..Default::default()
        }
    }

    fn add(api_version: &str, kind: &str, m: ObjectMeta) -> GraphEvent {
        GraphEvent {
            virtual_: false,
            event_type: EventType::Add,
            api_version: api_version.into(),
            kind: kind.into(),
            obj: m,
            old: None,
        }
    }

    fn update(api_version: &str, kind: &str, old: ObjectMeta, new: ObjectMeta) -> GraphEvent {
        GraphEvent {
            virtual_: false,
            event_type: EventType::Update,
            api_version: api_version.into(),
            kind: kind.into(),
            obj: new,
            old: Some(old),
        }
    }

    fn delete(api_version: &str, kind: &str, m: ObjectMeta) -> GraphEvent {
        GraphEvent {
            event_type: EventType::Delete,
            ..add(api_version, kind, m)
        }
    }

    fn r(api_version: &str, kind: &str, ns: &str, name: &str, uid: &str) -> ObjectRef {
        ObjectRef {
            api_version: api_version.into(),
            kind: kind.into(),
            name: name.into(),
            uid: uid.into(),
            namespace: ns.into(),
        }
    }

    fn deleting(mut m: ObjectMeta, finalizer: &str) -> ObjectMeta {
        m.deletion_timestamp = Some(Time(jiff::Timestamp::UNIX_EPOCH));
        m.finalizers = Some(vec![finalizer.to_string()]);
        m
    }

    #[test]
    fn display_like_upstream() {
        assert_eq!(
            r("apps/v1", "ReplicaSet", "ns", "rs", "u1").to_string(),
            "[apps/v1/ReplicaSet, namespace: ns, name: rs, uid: u1]"
        );
    }

    #[test]
    fn unseen_owner_becomes_virtual_node_and_is_verified() {
        let mut g = Graph::new();
        let owner = oref("v1", "ConfigMap", "owner", "o1", false);
        let actions = g.process(&add(
            "v1",
            "ConfigMap",
            meta("ns", "dep", "d1", vec![owner]),
        ));
        let virtual_owner = r("v1", "ConfigMap", "ns", "owner", "o1");
        assert_eq!(
            actions,
            vec![Action::AttemptToDelete(virtual_owner.clone())]
        );
        let n = g.get("o1").unwrap();
        assert!(n.virtual_);
        assert_eq!(n.identity, virtual_owner);
        assert_eq!(n.dependents.iter().collect::<Vec<_>>(), ["d1"]);

        // Observing the owner makes it a real node; its dependents stay.
        let actions = g.process(&add("v1", "ConfigMap", meta("ns", "owner", "o1", vec![])));
        assert!(actions.is_empty(), "{actions:?}");
        let n = g.get("o1").unwrap();
        assert!(n.is_observed());
        assert_eq!(n.dependents.len(), 1);
    }

    #[test]
    fn virtual_delete_of_absent_owner_removes_it_and_checks_dependents() {
        let mut g = Graph::new();
        let owner = oref("v1", "ConfigMap", "owner", "o1", false);
        g.process(&add(
            "v1",
            "ConfigMap",
            meta("ns", "dep", "d1", vec![owner]),
        ));
        let virtual_owner = r("v1", "ConfigMap", "ns", "owner", "o1");
        let actions = g.process(&GraphEvent::virtual_delete(&virtual_owner));
        assert_eq!(
            actions,
            vec![
                Action::AbsentOwner(virtual_owner),
                Action::AttemptToDelete(r("v1", "ConfigMap", "ns", "dep", "d1")),
            ]
        );
        assert!(g.get("o1").is_none());
        assert!(g.get("d1").is_some());
    }

    #[test]
    fn observed_owner_deletion_enqueues_dependents() {
        let mut g = Graph::new();
        g.process(&add(
            "apps/v1",
            "ReplicaSet",
            meta("ns", "rs", "o1", vec![]),
        ));
        let owner = oref("apps/v1", "ReplicaSet", "rs", "o1", true);
        for (name, uid) in [("p1", "d1"), ("p2", "d2")] {
            let a = g.process(&add(
                "v1",
                "Pod",
                meta("ns", name, uid, vec![owner.clone()]),
            ));
            assert!(a.is_empty(), "{a:?}");
        }
        assert_eq!(g.blocking_dependents("o1").len(), 2);
        let actions = g.process(&delete(
            "apps/v1",
            "ReplicaSet",
            meta("ns", "rs", "o1", vec![]),
        ));
        assert_eq!(
            actions,
            vec![
                Action::AbsentOwner(r("apps/v1", "ReplicaSet", "ns", "rs", "o1")),
                Action::AttemptToDelete(r("v1", "Pod", "ns", "p1", "d1")),
                Action::AttemptToDelete(r("v1", "Pod", "ns", "p2", "d2")),
            ]
        );
        // A dependent going away drops it from no longer existing owners quietly.
        let a = g.process(&delete("v1", "Pod", meta("ns", "p1", "d1", vec![owner])));
        assert!(a.is_empty());
        assert_eq!(g.len(), 1);
    }

    #[test]
    fn owner_in_other_namespace_is_reported_and_dependent_checked() {
        let mut g = Graph::new();
        g.process(&add("v1", "ConfigMap", meta("a", "owner", "o1", vec![])));
        let owner = oref("v1", "ConfigMap", "owner", "o1", false);
        let actions = g.process(&add("v1", "Secret", meta("b", "dep", "d1", vec![owner])));
        assert_eq!(
            actions,
            vec![
                Action::InvalidNamespaceOwnerRef {
                    dependent: r("v1", "Secret", "b", "dep", "d1"),
                    message: "ownerRef [v1/ConfigMap, namespace: b, name: owner, uid: o1] does not exist in namespace \"b\"".into(),
                },
                Action::AttemptToDelete(r("v1", "Secret", "b", "dep", "d1")),
            ]
        );
    }

    #[test]
    fn bad_child_then_good_parent_rechecks_the_child() {
        let mut g = Graph::new();
        // The child names the owner with the wrong kind; the owner is seen later.
        let wrong = oref("v1", "Secret", "owner", "o1", false);
        g.process(&add("v1", "Pod", meta("ns", "child", "d1", vec![wrong])));
        let actions = g.process(&add("v1", "ConfigMap", meta("ns", "owner", "o1", vec![])));
        assert_eq!(
            actions,
            vec![Action::AttemptToDelete(r("v1", "Pod", "ns", "child", "d1"))]
        );
        assert_eq!(g.get("o1").unwrap().identity.kind, "ConfigMap");
        // A second child with the wrong coordinates is checked at once.
        let wrong = oref("v1", "Secret", "owner", "o1", false);
        let actions = g.process(&add("v1", "Pod", meta("ns", "child2", "d2", vec![wrong])));
        assert_eq!(
            actions,
            vec![Action::AttemptToDelete(r(
                "v1", "Pod", "ns", "child2", "d2"
            ))]
        );
    }

    #[test]
    fn cluster_scoped_virtual_owner_of_namespaced_child() {
        let mut g = Graph::new();
        // A cluster-scoped child creates a cluster-scoped virtual owner...
        let node_ref = oref("v1", "Node", "n1", "o1", false);
        g.process(&add(
            "v1",
            "PersistentVolume",
            meta("", "pv", "d1", vec![node_ref.clone()]),
        ));
        // ...and a namespaced child naming the same owner must be verified.
        let actions = g.process(&add("v1", "Pod", meta("ns", "p", "d2", vec![node_ref])));
        assert_eq!(
            actions,
            vec![Action::AttemptToDelete(r("v1", "Pod", "ns", "p", "d2"))]
        );
    }

    #[test]
    fn virtual_delete_keeps_node_when_dependents_disagree() {
        let mut g = Graph::new();
        let as_cm = oref("v1", "ConfigMap", "owner", "o1", false);
        let as_secret = oref("v1", "Secret", "owner", "o1", false);
        g.process(&add("v1", "Pod", meta("ns", "a", "d1", vec![as_cm])));
        g.process(&add("v1", "Pod", meta("ns", "b", "d2", vec![as_secret])));
        let cm = r("v1", "ConfigMap", "ns", "owner", "o1");
        let actions = g.process(&GraphEvent::virtual_delete(&cm));
        let secret = r("v1", "Secret", "ns", "owner", "o1");
        assert_eq!(
            actions,
            vec![
                Action::AbsentOwner(cm),
                Action::AttemptToDelete(r("v1", "Pod", "ns", "a", "d1")),
                Action::AttemptToDeleteRateLimited(secret.clone()),
            ]
        );
        let n = g.get("o1").unwrap();
        assert!(n.virtual_);
        assert_eq!(n.identity, secret);
    }

    #[test]
    fn alternate_identities_follow_reference_order() {
        let mk = |ns: &str, owners: Vec<OwnerReference>| Node {
            identity: r("v1", "Pod", ns, "p", "x"),
            owners,
            ..Default::default()
        };
        let absent = r("v1", "B", "ns", "o", "u");
        let deps = [
            mk("ns", vec![oref("v1", "A", "o", "u", false)]),
            mk("ns", vec![oref("v1", "C", "o", "u", false)]),
            mk("ns", vec![oref("v1", "B", "o", "u", false)]),
        ];
        let refs: Vec<&Node> = deps.iter().collect();
        assert_eq!(
            alternate_owner_identity(&refs, &absent),
            Some(r("v1", "C", "ns", "o", "u"))
        );
        let absent = r("v1", "D", "ns", "o", "u");
        assert_eq!(
            alternate_owner_identity(&refs, &absent),
            Some(r("v1", "A", "ns", "o", "u"))
        );
        let only = [mk("ns", vec![oref("v1", "D", "o", "u", false)])];
        let refs: Vec<&Node> = only.iter().collect();
        assert_eq!(alternate_owner_identity(&refs, &absent), None);
    }

    #[test]
    fn orphan_and_foreground_transitions() {
        let mut g = Graph::new();
        let owner_meta = meta("ns", "owner", "o1", vec![]);
        g.process(&add("v1", "ConfigMap", owner_meta.clone()));
        let owner = oref("v1", "ConfigMap", "owner", "o1", true);
        g.process(&add(
            "v1",
            "Secret",
            meta("ns", "s", "d1", vec![owner.clone()]),
        ));
        let orphaning = deleting(owner_meta.clone(), FINALIZER_ORPHAN);
        let actions = g.process(&update(
            "v1",
            "ConfigMap",
            owner_meta.clone(),
            orphaning.clone(),
        ));
        let owner_ref = r("v1", "ConfigMap", "ns", "owner", "o1");
        assert_eq!(actions, vec![Action::AttemptToOrphan(owner_ref.clone())]);
        assert!(g.get("o1").unwrap().being_deleted);
        // The same state again is no new transition.
        let actions = g.process(&update("v1", "ConfigMap", orphaning.clone(), orphaning));
        assert!(actions.is_empty());

        let mut g = Graph::new();
        g.process(&add("v1", "ConfigMap", owner_meta.clone()));
        g.process(&add(
            "v1",
            "Secret",
            meta("ns", "s", "d1", vec![owner.clone()]),
        ));
        let fg = deleting(owner_meta.clone(), FINALIZER_FOREGROUND);
        let actions = g.process(&update("v1", "ConfigMap", owner_meta, fg));
        assert_eq!(
            actions,
            vec![
                Action::AttemptToDelete(r("v1", "Secret", "ns", "s", "d1")),
                Action::AttemptToDelete(owner_ref.clone()),
            ]
        );
        assert!(g.get("o1").unwrap().deleting_dependents);
        // Dropping the blocking reference re-checks the owner.
        let actions = g.process(&update(
            "v1",
            "Secret",
            meta("ns", "s", "d1", vec![owner]),
            meta("ns", "s", "d1", vec![]),
        ));
        assert_eq!(actions, vec![Action::AttemptToDelete(owner_ref)]);
        assert!(g.blocking_dependents("o1").is_empty());
        assert!(g.dependents("o1").is_empty());
    }

    #[test]
    fn deleting_a_dependent_rechecks_foreground_owner() {
        let mut g = Graph::new();
        let fg = deleting(meta("ns", "owner", "o1", vec![]), FINALIZER_FOREGROUND);
        let actions = g.process(&add("v1", "ConfigMap", fg));
        let owner_ref = r("v1", "ConfigMap", "ns", "owner", "o1");
        assert_eq!(actions, vec![Action::AttemptToDelete(owner_ref.clone())]);
        let owner = oref("v1", "ConfigMap", "owner", "o1", true);
        let dep = meta("ns", "s", "d1", vec![owner]);
        g.process(&add("v1", "Secret", dep.clone()));
        let actions = g.process(&delete("v1", "Secret", dep));
        assert_eq!(actions, vec![Action::AttemptToDelete(owner_ref)]);
    }

    #[test]
    fn ownership_cycles_terminate() {
        // a owns b, b owns a: both nodes exist once, each the other's dependent.
        let mut g = Graph::new();
        let a_ref = oref("v1", "ConfigMap", "a", "ua", true);
        let b_ref = oref("v1", "ConfigMap", "b", "ub", true);
        g.process(&add(
            "v1",
            "ConfigMap",
            meta("ns", "a", "ua", vec![b_ref.clone()]),
        ));
        let actions = g.process(&add(
            "v1",
            "ConfigMap",
            meta("ns", "b", "ub", vec![a_ref.clone()]),
        ));
        assert!(actions.is_empty(), "{actions:?}");
        assert_eq!(g.len(), 2);
        assert_eq!(g.dependents("ua")[0].identity.name, "b");
        assert_eq!(g.dependents("ub")[0].identity.name, "a");
        // Foreground deletion of a asks to look at b and a, once each.
        let fg = deleting(
            meta("ns", "a", "ua", vec![b_ref.clone()]),
            FINALIZER_FOREGROUND,
        );
        let actions = g.process(&update(
            "v1",
            "ConfigMap",
            meta("ns", "a", "ua", vec![b_ref]),
            fg,
        ));
        assert_eq!(actions.len(), 2);
        // Deleting both leaves an empty graph.
        g.process(&delete("v1", "ConfigMap", meta("ns", "a", "ua", vec![])));
        let actions = g.process(&delete(
            "v1",
            "ConfigMap",
            meta("ns", "b", "ub", vec![a_ref]),
        ));
        assert!(actions
            .iter()
            .all(|a| !matches!(a, Action::AttemptToOrphan(_))));
        // a was removed first; its reference from b left a dangling dependents entry
        // only on a (gone), so b is removed cleanly.
        assert!(g.is_empty(), "{g:?}");
    }

    #[test]
    fn diffs_match_by_uid() {
        let a = oref("v1", "A", "a", "1", true);
        let b = oref("v1", "B", "b", "2", false);
        let b2 = oref("v1", "B", "b", "2", true);
        let c = oref("v1", "C", "c", "3", false);
        let (added, removed, changed) =
            references_diffs(&[a.clone(), b.clone()], &[b2.clone(), c.clone()]);
        assert_eq!(added, vec![c]);
        assert_eq!(removed, vec![a]);
        assert_eq!(changed, vec![(b, b2)]);
    }
}
