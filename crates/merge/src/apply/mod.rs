//! Server-side apply and managed fields tracking, following upstream's
//! field manager stack (structured-merge-diff's updater plus the apiserver
//! layers that strip metadata, stamp times, cap update managers, adopt
//! unmanaged objects and upgrade from client-side apply).
//!
//! - [`update`] is what every ordinary write (create, update, non-apply
//!   patch) does to `metadata.managedFields`: fields the write added,
//!   changed or removed are taken by the writer (operation `Update`) and
//!   removed from everybody else's sets.
//! - [`apply`] merges an applied configuration into the live object,
//!   removes fields the applier applied before and dropped now (unless
//!   someone else owns them), and fails with [`ApplyError::Conflicts`] when
//!   it would change fields other managers own, unless forced.
//! - [`FieldManager`] holds the configuration both need (schema, reset
//!   fields, update manager cap).
//!
//! All managers' field sets are taken to be in the API version of the
//! object being written; no conversion between versions happens.
//!
//! Upstream behaviour reproduced on top of the plain algorithm:
//! - creating an object diffs it against the schema's zero value
//!   ([`TypeGraph::zero_value`]), so every field it sets is owned;
//! - an update of an object that has no managed fields (and is not being
//!   created) is not tracked at all;
//! - the first apply to an object without managed fields first gives the
//!   existing fields to a `before-first-apply` updater;
//! - `apiVersion`, `kind`, `metadata.name`, `.namespace`, `.uid`,
//!   `.resourceVersion`, `.generation`, `.creationTimestamp`, `.selfLink`,
//!   `.managedFields` are never owned;
//! - at most ten `Update` managers are kept; the oldest are folded into an
//!   `ancient-changes` entry per API version;
//! - conflicts of manager `kubectl` that merely take over fields recorded
//!   in `kubectl.kubernetes.io/last-applied-configuration` are forced, and
//!   that annotation is kept in sync with what `kubectl` applies.

mod conflict;
mod managed;

use std::sync::OnceLock;

use serde_json::{Map, Value};
use thiserror::Error;

pub use conflict::{conflict_causes, conflict_message, conflict_status, Conflict};
pub use managed::{ManagedFields, ManagedFieldsEntry, ManagedFieldsError, Operation};

use crate::fieldpath::{FieldSet, Path, PathElement};
use crate::goval::{go_json, smd_equals};
use crate::schema::{TypeGraph, TypeId};
use crate::typed::{
    compare, compare_without_managed_fields, ensure_named_fields_are_members, field_set_of,
    format_validation_errors, merge, remove_items, validate, Comparison,
};
use managed::{manager_identifier, time_seconds, ManagerEntry, Managers};

/// The annotation client-side `kubectl apply` keeps its configuration in.
pub const LAST_APPLIED_ANNOTATION: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Upstream's cap on `Update` managers per object.
pub const DEFAULT_MAX_UPDATE_MANAGERS: usize = 10;

const ANCIENT_CHANGES: &str = "ancient-changes";
const BEFORE_FIRST_APPLY: &str = "before-first-apply";
const TOTAL_ANNOTATION_SIZE_LIMIT: usize = 256 * 1024;

/// A failed server-side apply.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ApplyError {
    /// The apply would change fields owned by other managers (HTTP 409).
    #[error("{}", conflict_message(.0))]
    Conflicts(Vec<Conflict>),
    /// The request is malformed (HTTP 400), e.g. `metadata.managedFields
    /// must be nil`.
    #[error("{0}")]
    BadRequest(String),
    /// The applied or live object does not fit the schema (upstream answers
    /// 500), e.g. a list-map item without its key.
    #[error("{0}")]
    Invalid(String),
}

impl ApplyError {
    /// The HTTP status upstream answers with.
    pub fn status_code(&self) -> u16 {
        match self {
            ApplyError::Conflicts(_) => 409,
            ApplyError::BadRequest(_) => 400,
            ApplyError::Invalid(_) => 500,
        }
    }
}

/// The field manager configuration of one resource.
#[derive(Clone, Debug)]
pub struct FieldManager<'g> {
    graph: &'g TypeGraph,
    root: TypeId,
    ignored_fields: FieldSet,
    max_update_managers: usize,
}

/// The fields no manager ever owns.
fn strip_set() -> &'static FieldSet {
    static STRIP: OnceLock<FieldSet> = OnceLock::new();
    STRIP.get_or_init(build_strip_set)
}

fn build_strip_set() -> FieldSet {
    let mut s = FieldSet::new();
    for p in [
        &["apiVersion"][..],
        &["kind"],
        &["metadata"],
        &["metadata", "name"],
        &["metadata", "namespace"],
        &["metadata", "creationTimestamp"],
        &["metadata", "selfLink"],
        &["metadata", "uid"],
        &["metadata", "clusterName"],
        &["metadata", "generation"],
        &["metadata", "managedFields"],
        &["metadata", "resourceVersion"],
    ] {
        s.insert(&Path::fields(p).0);
    }
    s
}

fn without_managed_fields(obj: &Value) -> Value {
    let mut obj = obj.clone();
    if let Some(Value::Object(meta)) = obj.get_mut("metadata") {
        meta.remove("managedFields");
    }
    obj
}

/// The string at a JSON pointer of plain object keys (no escapes, no list
/// indices), or `""`; without the allocations `Value::pointer` makes.
fn str_at<'v>(obj: &'v Value, pointer: &str) -> &'v str {
    managed::at(obj, pointer)
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn is_empty_object(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Object(m) => m.is_empty(),
        _ => false,
    }
}

/// Upstream's `namespace/name; group/version, Kind=kind` for messages.
fn object_gvknn(obj: &Value) -> String {
    let api_version = str_at(obj, "/apiVersion");
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    format!(
        "{}/{}; {}/{}, Kind={}",
        str_at(obj, "/metadata/namespace"),
        str_at(obj, "/metadata/name"),
        group,
        version,
        str_at(obj, "/kind")
    )
}

impl<'g> FieldManager<'g> {
    /// A field manager for objects of type `root`, with no reset fields and
    /// upstream's cap of ten update managers.
    pub fn new(graph: &'g TypeGraph, root: TypeId) -> FieldManager<'g> {
        FieldManager {
            graph,
            root,
            ignored_fields: FieldSet::new(),
            max_update_managers: DEFAULT_MAX_UPDATE_MANAGERS,
        }
    }

    /// Sets the fields this resource (or subresource) resets on write, e.g.
    /// `status` for a main resource: changes to them are never owned by
    /// anyone and never conflict.
    pub fn with_ignored_fields(mut self, ignored: FieldSet) -> FieldManager<'g> {
        self.ignored_fields = ignored;
        self
    }

    /// Sets the cap on `Update` managers.
    pub fn with_max_update_managers(mut self, max: usize) -> FieldManager<'g> {
        self.max_update_managers = max;
        self
    }

    /// The managed fields after an ordinary write of `new` over `old` by
    /// `manager` (through `subresource`, empty for the main resource) at
    /// time `now` (RFC 3339). `old` is `null` (or `{}`) for a create.
    /// `managed` is what the write starts from, usually
    /// [`ManagedFields::for_update`].
    pub fn update(
        &self,
        old: &Value,
        new: &Value,
        manager: &str,
        subresource: &str,
        managed: &ManagedFields,
        now: &str,
    ) -> ManagedFields {
        let mut managers = Managers::from_managed(managed);
        let is_create = str_at(old, "/metadata/uid").is_empty();
        if managers.map.is_empty() && !is_create {
            return ManagedFields::new();
        }
        let zero;
        let old = if is_empty_object(old) {
            zero = self.graph.zero_value(self.root);
            &zero
        } else {
            old
        };
        let version = match str_at(new, "/apiVersion") {
            "" => str_at(old, "/apiVersion").to_string(),
            v => v.to_string(),
        };
        let now = managed::normalize_time(now).unwrap_or_else(|| now.to_string());
        // The comparison leaves `metadata.managedFields` of both objects
        // out, as if they had been taken off.
        let cmp = compare_without_managed_fields(self.graph, self.root, old, new);
        self.update_managers(cmp, manager, subresource, &version, &mut managers, &now);
        self.cap_managers(&mut managers);
        managers.into_encoded()
    }

    /// Server-side apply of `config` by `manager` over `live` (`null` or
    /// `{}` when the apply creates the object). Returns the new object, with
    /// `metadata.managedFields` set, and its managed fields.
    #[allow(clippy::too_many_arguments)]
    pub fn apply(
        &self,
        live: &Value,
        config: &Value,
        manager: &str,
        subresource: &str,
        force: bool,
        managed: &ManagedFields,
        now: &str,
    ) -> Result<(Value, ManagedFields), ApplyError> {
        if !config.is_object() {
            return Err(ApplyError::BadRequest(
                "the applied configuration must be an object".to_string(),
            ));
        }
        if config
            .pointer("/metadata/managedFields")
            .map(Value::is_array)
            == Some(true)
        {
            return Err(ApplyError::BadRequest(
                "metadata.managedFields must be nil".to_string(),
            ));
        }
        let errs = validate(self.graph, self.root, config, false);
        if !errs.is_empty() {
            return Err(ApplyError::Invalid(format!(
                "failed to create typed patch object ({}): {}",
                object_gvknn(config),
                format_validation_errors(&errs)
            )));
        }
        let live = if live.is_null() {
            Value::Object(Map::new())
        } else {
            without_managed_fields(live)
        };
        let errs = validate(self.graph, self.root, &live, true);
        if !errs.is_empty() {
            return Err(ApplyError::Invalid(format!(
                "failed to create typed live object ({}): {}",
                object_gvknn(&live),
                format_validation_errors(&errs)
            )));
        }
        let version = str_at(config, "/apiVersion").to_string();
        let now = managed::normalize_time(now).unwrap_or_else(|| now.to_string());
        let managers = Managers::from_managed(managed);

        let ctx = ApplyCtx {
            live: &live,
            config,
            manager,
            subresource,
            version: &version,
            now: &now,
        };
        let mut result = self.apply_once(&ctx, managers.clone(), force);
        if let Err(conflicts) = &result {
            if manager == "kubectl" && !force {
                if let Some(allowed) = self.allowed_conflicts_from_last_applied(&live, &version) {
                    let remaining: Vec<Conflict> = conflicts
                        .iter()
                        .filter(|c| !allowed.has(&c.path.0))
                        .cloned()
                        .collect();
                    result = if remaining.is_empty() {
                        self.apply_once(&ctx, managers, true)
                    } else {
                        Err(remaining)
                    };
                }
            }
        }
        let (mut obj, managers) = result.map_err(ApplyError::Conflicts)?;
        if manager == "kubectl" && has_last_applied(&obj) {
            set_last_applied(&mut obj, config);
        }
        let mf = managers.encode();
        mf.write_to(&mut obj);
        Ok((obj, mf))
    }

    /// One pass of the apply stack below the client-side-apply upgrade.
    fn apply_once(
        &self,
        ctx: &ApplyCtx<'_>,
        managers: Managers,
        force: bool,
    ) -> Result<(Value, Managers), Vec<Conflict>> {
        let g = self.graph;
        let mut managers = managers;
        if managers.map.is_empty() {
            // Adopt the fields of an object nobody manages yet.
            let zero = g.zero_value(self.root);
            self.update_managers(
                compare(g, self.root, &zero, ctx.live),
                BEFORE_FIRST_APPLY,
                ctx.subresource,
                ctx.version,
                &mut managers,
                ctx.now,
            );
            self.cap_managers(&mut managers);
        }

        let id = manager_identifier(ctx.manager, Operation::Apply, "", ctx.subresource);
        let merged = merge(g, self.root, ctx.live, ctx.config);
        let last = managers.map.get(&id).map(|e| e.set.clone());
        let set = field_set_of(ctx.config, g, self.root).recursive_difference(&self.ignored_fields);
        let previous_time = managers.map.get(&id).and_then(|e| e.time.clone());
        managers.map.insert(
            id.clone(),
            ManagerEntry {
                manager: ctx.manager.to_string(),
                operation: Operation::Apply,
                subresource: ctx.subresource.to_string(),
                set,
                api_version: ctx.version.to_string(),
                applied: true,
                time: previous_time,
            },
        );
        let new_obj = self.prune(merged, &managers, last.as_ref());

        let cmp = compare(g, self.root, ctx.live, &new_obj).exclude(&self.ignored_fields);
        let touched = cmp.modified.union(&cmp.added);
        let mut conflicts = Vec::new();
        for (other, entry) in &managers.map {
            if *other == id {
                continue;
            }
            for path in entry.set.intersection(&touched).paths() {
                conflicts.push(Conflict {
                    manager: entry.manager.clone(),
                    operation: entry.operation,
                    api_version: if entry.operation == Operation::Update {
                        entry.api_version.clone()
                    } else {
                        String::new()
                    },
                    subresource: entry.subresource.clone(),
                    path,
                });
            }
        }
        if !force && !conflicts.is_empty() {
            return Err(conflicts);
        }
        for (other, entry) in managers.map.iter_mut() {
            if *other != id {
                entry.set = entry.set.difference(&touched).difference(&cmp.removed);
            }
        }
        managers.map.retain(|_, e| !e.set.is_empty());

        let changed = !smd_equals(ctx.live, &new_obj);
        if let Some(entry) = managers.map.get_mut(&id) {
            entry.set.difference_with(strip_set());
            if changed {
                entry.time = Some(ctx.now.to_string());
            }
        }
        managers.map.retain(|_, e| !e.set.is_empty());
        self.cap_managers(&mut managers);
        let out = if changed { new_obj } else { ctx.live.clone() };
        Ok((out, managers))
    }

    /// The ownership bookkeeping of an ordinary write (upstream's managed
    /// fields updater around the structured-merge-diff updater), given the
    /// comparison of the old and the new object.
    fn update_managers(
        &self,
        cmp: Comparison,
        manager: &str,
        subresource: &str,
        version: &str,
        managers: &mut Managers,
        now: &str,
    ) {
        let cmp = cmp.exclude(&self.ignored_fields);
        let mut touched = cmp.modified;
        touched.union_with(cmp.added);
        let removed = cmp.removed;
        for entry in managers.map.values_mut() {
            entry.set.difference_with(&touched);
            entry.set.difference_with(&removed);
        }
        managers.map.retain(|_, e| !e.set.is_empty());

        let mut own = touched;
        own.difference_with(&removed);
        own.recursive_difference_with(&self.ignored_fields);
        own.difference_with(strip_set());
        if own.is_empty() {
            return;
        }
        let id = manager_identifier(manager, Operation::Update, version, subresource);
        if let Some(prev) = managers.map.remove(&id) {
            own.union_with(prev.set);
        }
        managers.map.insert(
            id,
            ManagerEntry {
                manager: manager.to_string(),
                operation: Operation::Update,
                subresource: subresource.to_string(),
                set: own,
                api_version: version.to_string(),
                applied: false,
                time: Some(now.to_string()),
            },
        );
    }

    /// Removes what the applier applied last time and no longer applies,
    /// unless another manager (or the new configuration) owns it.
    fn prune(&self, merged: Value, managers: &Managers, last: Option<&FieldSet>) -> Value {
        let Some(last) = last.filter(|l| !l.is_empty()) else {
            return merged;
        };
        let g = self.graph;
        let root = self.root;
        let enf = |s: &FieldSet| ensure_named_fields_are_members(s, g, root);
        let last = enf(last);
        let pruned = remove_items(g, root, &merged, &last);

        let mut owned = FieldSet::new();
        for e in managers.map.values() {
            owned = owned.union(&e.set);
        }
        let merged_set = enf(&field_set_of(&merged, g, root));
        let pruned_set = enf(&field_set_of(&pruned, g, root));
        let pruned = remove_items(
            g,
            root,
            &merged,
            &merged_set.difference(&pruned_set.union(&enf(&owned))),
        );

        let pruned_set = enf(&field_set_of(&pruned, g, root));
        remove_items(
            g,
            root,
            &merged,
            &merged_set.difference(&pruned_set).intersection(&last),
        )
    }

    /// Folds the oldest `Update` managers into `ancient-changes` entries
    /// until at most the cap remain.
    fn cap_managers(&self, managers: &mut Managers) {
        let mut updaters: Vec<String> = managers
            .map
            .iter()
            .filter(|(_, e)| !e.applied)
            .map(|(k, _)| k.clone())
            .collect();
        if updaters.len() <= self.max_update_managers {
            return;
        }
        updaters.sort_by(|a, b| {
            let ta = managers
                .map
                .get(a)
                .map(|e| time_seconds(&e.time))
                .unwrap_or(0);
            let tb = managers
                .map
                .get(b)
                .map(|e| time_seconds(&e.time))
                .unwrap_or(0);
            ta.cmp(&tb).then_with(|| a.cmp(b))
        });
        let mut first_of_version: std::collections::HashMap<String, String> = Default::default();
        let mut length = updaters.len();
        for name in updaters {
            if length <= self.max_update_managers {
                break;
            }
            let Some(entry) = managers.map.get(&name).cloned() else {
                continue;
            };
            let version = entry.api_version.clone();
            let bucket = manager_identifier(ANCIENT_CHANGES, Operation::Update, &version, "");
            match first_of_version.get(&version) {
                Some(first) => {
                    if !managers.map.contains_key(&bucket) {
                        if let Some(mut f) = managers.map.remove(first) {
                            f.manager = ANCIENT_CHANGES.to_string();
                            f.operation = Operation::Update;
                            f.subresource = String::new();
                            managers.map.insert(bucket.clone(), f);
                        }
                    }
                    if let Some(b) = managers.map.get_mut(&bucket) {
                        b.set = entry.set.union(&b.set);
                        b.api_version = entry.api_version.clone();
                        b.applied = entry.applied;
                        b.time = entry.time.clone();
                    }
                    managers.map.remove(&name);
                    length -= 1;
                }
                None => {
                    first_of_version.insert(version, name);
                }
            }
        }
    }

    /// The conflicts a `kubectl` apply may take over because the live
    /// object's last-applied annotation shows `kubectl` set those values.
    fn allowed_conflicts_from_last_applied(&self, live: &Value, version: &str) -> Option<FieldSet> {
        let text = live
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(LAST_APPLIED_ANNOTATION))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())?;
        let last: Value = serde_json::from_str(text).ok()?;
        if !last.is_object() || str_at(&last, "/kind").is_empty() {
            return None;
        }
        if str_at(&last, "/apiVersion") != version {
            return None;
        }
        if !validate(self.graph, self.root, &last, false).is_empty()
            || !validate(self.graph, self.root, live, false).is_empty()
        {
            return None;
        }
        let set = field_set_of(&last, self.graph, self.root);
        let cmp = compare(self.graph, self.root, &last, live);
        Some(
            set.difference(&cmp.modified)
                .difference(&cmp.added)
                .difference(&cmp.removed),
        )
    }
}

struct ApplyCtx<'a> {
    live: &'a Value,
    config: &'a Value,
    manager: &'a str,
    subresource: &'a str,
    version: &'a str,
    now: &'a str,
}

fn has_last_applied(obj: &Value) -> bool {
    obj.pointer("/metadata/annotations")
        .and_then(|a| a.get(LAST_APPLIED_ANNOTATION))
        .and_then(Value::as_str)
        .map(|s| !s.is_empty())
        .unwrap_or(false)
}

/// Sets the last-applied annotation of `obj` to `config` (without that
/// annotation) as upstream encodes it; drops it when annotations would grow
/// past their size limit.
fn set_last_applied(obj: &mut Value, config: &Value) {
    let mut applied = config.clone();
    if let Some(Value::Object(ann)) = applied.pointer_mut("/metadata/annotations") {
        ann.remove(LAST_APPLIED_ANNOTATION);
    }
    let value = format!("{}\n", go_json(&applied));
    if let Some(Value::Object(ann)) = obj.pointer_mut("/metadata/annotations") {
        ann.insert(LAST_APPLIED_ANNOTATION.to_string(), Value::String(value));
        let total: usize = ann
            .iter()
            .map(|(k, v)| k.len() + v.as_str().map(str::len).unwrap_or(0))
            .sum();
        if total > TOTAL_ANNOTATION_SIZE_LIMIT {
            ann.remove(LAST_APPLIED_ANNOTATION);
        }
    }
}

/// Managed fields after an ordinary write; see [`FieldManager::update`].
#[allow(clippy::too_many_arguments)]
pub fn update(
    old: &Value,
    new: &Value,
    manager: &str,
    subresource: &str,
    managed: &ManagedFields,
    graph: &TypeGraph,
    root: TypeId,
    now: &str,
) -> ManagedFields {
    FieldManager::new(graph, root).update(old, new, manager, subresource, managed, now)
}

/// Server-side apply through the main resource; see
/// [`FieldManager::apply`].
#[allow(clippy::too_many_arguments)]
pub fn apply(
    live: &Value,
    config: &Value,
    manager: &str,
    force: bool,
    managed: &ManagedFields,
    graph: &TypeGraph,
    root: TypeId,
    now: &str,
) -> Result<(Value, ManagedFields), ApplyError> {
    FieldManager::new(graph, root).apply(live, config, manager, "", force, managed, now)
}

/// The manager name of a write: the `fieldManager` parameter, or else the
/// user agent up to its first `/`, without unprintable characters and cut
/// to 128 bytes (`kubectl/v1.33.0 (linux/amd64) ...` gives `kubectl`).
pub fn manager_or_user_agent(field_manager: &str, user_agent: &str) -> String {
    if !field_manager.is_empty() {
        return field_manager.to_string();
    }
    let head = user_agent.split('/').next().unwrap_or("");
    let mut out = String::new();
    for c in head.chars() {
        if c.is_control() || (c.is_whitespace() && c != ' ') {
            continue;
        }
        if out.len() + c.len_utf8() > 128 {
            break;
        }
        out.push(c);
    }
    out
}

/// Renders a path as upstream does in conflict messages
/// (`.spec.containers[name="nginx"].image`).
pub fn render_path(path: &[PathElement]) -> String {
    Path(path.to_vec()).to_string()
}

#[cfg(test)]
mod tests;
