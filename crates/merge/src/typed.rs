//! Schema-aware walks over JSON values, the structured-merge-diff way:
//! computing the field set of an object, comparing two objects into
//! added/modified/removed field sets, merging an applied configuration into
//! a live object, removing field paths from an object, and validating list
//! keys.

use std::sync::OnceLock;

use serde_json::{Map, Value};

use crate::fieldpath::{quick_cmp, FieldSet, Path, PathElement};
use crate::goval::smd_equals;
use crate::schema::{Field, ListType, TypeDef, TypeGraph, TypeId};

/// How a value of some type is walked.
#[derive(Clone, Copy)]
pub(crate) enum Shape<'g> {
    /// Owned and compared as one value.
    Leaf,
    /// An object with known fields; other keys are atomic untyped.
    Struct(&'g std::collections::BTreeMap<String, Field>),
    /// An object whose values all have the given type.
    Map(TypeId),
    /// An associative list: keyed (list-map) or not (set).
    Assoc {
        items: TypeId,
        keys: Option<&'g [String]>,
    },
}

impl Shape<'_> {
    fn discriminant(&self) -> u8 {
        match self {
            Shape::Leaf => 0,
            Shape::Struct(_) => 1,
            Shape::Map(_) => 2,
            Shape::Assoc { .. } => 3,
        }
    }

    fn is_struct(&self) -> bool {
        matches!(self, Shape::Struct(_))
    }

    /// The type of child `name` of a struct or map shape.
    fn child_type(&self, name: &str) -> TypeId {
        match self {
            Shape::Struct(fields) => fields
                .get(name)
                .map(|f| f.ty)
                .unwrap_or(TypeId::UNTYPED_ATOMIC),
            Shape::Map(values) => *values,
            Shape::Assoc { items, .. } => *items,
            Shape::Leaf => TypeId::UNTYPED_ATOMIC,
        }
    }
}

/// Finds the types of an object's children for keys that come in sorted
/// order (as `serde_json` maps give them), walking the struct's sorted
/// fields alongside instead of searching them for every key. Keys out of
/// order are looked up the ordinary way.
pub(crate) struct ChildTypes<'g, 'v> {
    shape: Shape<'g>,
    cursor: Option<std::collections::btree_map::Iter<'g, String, Field>>,
    current: Option<(&'g String, &'g Field)>,
    previous: Option<&'v str>,
}

impl<'g, 'v> ChildTypes<'g, 'v> {
    pub(crate) fn new(shape: Shape<'g>) -> ChildTypes<'g, 'v> {
        let mut cursor = match shape {
            Shape::Struct(fields) => Some(fields.iter()),
            _ => None,
        };
        let current = cursor.as_mut().and_then(Iterator::next);
        ChildTypes {
            shape,
            cursor,
            current,
            previous: None,
        }
    }

    /// The field of struct child `key` (None for unknown keys and for
    /// shapes other than structs).
    pub(crate) fn field(&mut self, key: &'v str) -> Option<&'g Field> {
        let Shape::Struct(fields) = self.shape else {
            return None;
        };
        let in_order = self.previous.map(|p| p < key).unwrap_or(true);
        if !in_order {
            return fields.get(key);
        }
        self.previous = Some(key);
        while let Some((name, f)) = self.current {
            match quick_cmp(name, key) {
                std::cmp::Ordering::Less => {
                    self.current = self.cursor.as_mut().and_then(Iterator::next);
                }
                std::cmp::Ordering::Equal => return Some(f),
                std::cmp::Ordering::Greater => return None,
            }
        }
        None
    }

    /// The type of child `key`, like [`Shape::child_type`].
    pub(crate) fn child_type(&mut self, key: &'v str) -> TypeId {
        match self.shape {
            Shape::Struct(_) => self
                .field(key)
                .map(|f| f.ty)
                .unwrap_or(TypeId::UNTYPED_ATOMIC),
            other => other.child_type(key),
        }
    }
}

/// The shape of `value` under type `ty`. A value whose JSON kind does not
/// fit the type is a leaf.
pub(crate) fn shape<'g>(g: &'g TypeGraph, ty: TypeId, value: &Value) -> Shape<'g> {
    let objectish = value.is_object() || value.is_null();
    let listish = value.is_array() || value.is_null();
    match g.get(ty) {
        TypeDef::Scalar | TypeDef::Untyped { atomic: true } => Shape::Leaf,
        TypeDef::Untyped { atomic: false } => {
            if value.is_object() {
                Shape::Map(TypeId::UNTYPED)
            } else {
                Shape::Leaf
            }
        }
        TypeDef::Struct { fields, atomic } => {
            if *atomic || !objectish {
                Shape::Leaf
            } else {
                Shape::Struct(fields)
            }
        }
        TypeDef::Map { values, atomic } => {
            if *atomic || !objectish {
                Shape::Leaf
            } else {
                Shape::Map(*values)
            }
        }
        TypeDef::List { items, list_type } => match list_type {
            ListType::Atomic => Shape::Leaf,
            _ if !listish => Shape::Leaf,
            ListType::Set => Shape::Assoc {
                items: *items,
                keys: None,
            },
            ListType::Map { keys } => Shape::Assoc {
                items: *items,
                keys: Some(keys.as_slice()),
            },
        },
    }
}

/// The path element identifying a list item, or upstream's error text.
pub(crate) fn item_path_element(
    g: &TypeGraph,
    items: TypeId,
    keys: Option<&[String]>,
    item: &Value,
) -> Result<PathElement, String> {
    match keys {
        Some(keys) => {
            let obj = match item {
                Value::Object(m) => m,
                Value::Null => {
                    return Err("associative list with keys may not have a null element".into())
                }
                _ => return Err("associative list with keys may not have non-map elements".into()),
            };
            if let [k] = keys {
                // The usual single key field, present.
                if let Some((name, v)) = obj.get_key_value(k) {
                    let fields: std::sync::Arc<[(String, Value)]> =
                        std::sync::Arc::new([(name.clone(), v.clone())]);
                    return Ok(PathElement::Key(fields));
                }
            }
            let default = |k: &str| g.field(items, k).and_then(|f| f.default.clone());
            for k in keys {
                if !obj.contains_key(k) && default(k).is_none() {
                    return Err(format!(
                        "associative list with keys has an element that omits key field {} (and doesn't have default value)",
                        crate::goval::go_quote(k)
                    ));
                }
            }
            // Every key is there or has a default by now.
            let value = |k: &String| match obj.get(k) {
                Some(v) => v.clone(),
                None => default(k).unwrap_or(Value::Null),
            };
            if keys.windows(2).all(|w| w[0] <= w[1]) {
                // Already in element order: build the shared list in one go.
                let fields: std::sync::Arc<[(String, Value)]> =
                    keys.iter().map(|k| (k.clone(), value(k))).collect();
                return Ok(PathElement::Key(fields));
            }
            Ok(PathElement::key(keys.iter().map(|k| (k.clone(), value(k)))))
        }
        None => match item {
            Value::Object(_) => {
                Err("associative list without keys has an element that's a map type".into())
            }
            Value::Array(_) => Err("not supported: associative list with lists as elements".into()),
            Value::Null => {
                Err("associative list without keys has an element that's an explicit null".into())
            }
            v => Ok(PathElement::Value(v.clone())),
        },
    }
}

/// The items of an associative list with their path elements, first
/// occurrence of each key only; items whose key cannot be built are left
/// out.
fn index_items<'v>(
    g: &TypeGraph,
    items: TypeId,
    keys: Option<&[String]>,
    list: Option<&'v Value>,
) -> Vec<(PathElement, &'v Value)> {
    let mut out: Vec<(PathElement, &Value)> = Vec::new();
    if let Some(Value::Array(arr)) = list {
        for item in arr {
            if let Ok(pe) = item_path_element(g, items, keys, item) {
                if !out.iter().any(|(p, _)| *p == pe) {
                    out.push((pe, item));
                }
            }
        }
    }
    out
}

fn is_empty_value(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => true,
        Some(Value::Object(m)) => m.is_empty(),
        Some(Value::Array(a)) => a.is_empty(),
        Some(_) => false,
    }
}

// ---------------------------------------------------------------------------
// Field sets

/// The fields an object sets, as structured-merge-diff computes them: every
/// leaf (scalars and atomic values), every list-map item (by key) and set
/// item (by value), every entry of a granular map; struct fields that hold
/// granular values appear only through their children.
pub fn field_set_of(obj: &Value, graph: &TypeGraph, root: TypeId) -> FieldSet {
    let mut set = FieldSet::new();
    // The root itself (the empty path) is never a member.
    to_set(graph, root, obj, &mut set);
    set
}

/// Whether `serde_json` maps iterate in key order (they do unless its
/// `preserve_order` feature is on), so that field elements pushed while
/// walking an object come out sorted.
fn maps_iterate_sorted() -> bool {
    static SORTED: OnceLock<bool> = OnceLock::new();
    *SORTED.get_or_init(|| {
        let mut m = Map::new();
        m.insert("b".to_string(), Value::Null);
        m.insert("a".to_string(), Value::Null);
        m.keys().next().map(String::as_str) == Some("a")
    })
}

/// Sizes `out` for the children of object `m`: at most one member per key,
/// a subtree per non-empty object or list.
fn reserve_for_object(out: &mut FieldSet, m: &Map<String, Value>) {
    let nested = m
        .values()
        .filter(|v| match v {
            Value::Object(o) => !o.is_empty(),
            Value::Array(a) => !a.is_empty(),
            _ => false,
        })
        .count();
    out.reserve(m.len(), nested);
}

/// Adds to `out` the paths below `v` (relative to it) and tells whether the
/// path of `v` itself is a member.
fn to_set(g: &TypeGraph, ty: TypeId, v: &Value, out: &mut FieldSet) -> bool {
    let sh = shape(g, ty, v);
    match sh {
        Shape::Leaf => return true,
        Shape::Struct(_) => {
            if let Value::Object(m) = v {
                reserve_for_object(out, m);
                let mut types = ChildTypes::new(sh);
                for (k, cv) in m {
                    let mut sub = FieldSet::new();
                    let field = types.field(k);
                    let ty = field.map(|f| f.ty).unwrap_or(TypeId::UNTYPED_ATOMIC);
                    let member = to_set(g, ty, cv, &mut sub) | field.is_none();
                    attach(out, || PathElement::field(k), member, sub);
                }
            }
        }
        Shape::Map(values) => {
            if let Value::Object(m) = v {
                reserve_for_object(out, m);
                for (k, cv) in m {
                    let mut sub = FieldSet::new();
                    to_set(g, values, cv, &mut sub);
                    attach(out, || PathElement::field(k), true, sub);
                }
            }
        }
        Shape::Assoc { items, keys } => {
            if let Value::Array(arr) = v {
                out.reserve(arr.len(), arr.len());
                for item in arr {
                    let Ok(pe) = item_path_element(g, items, keys, item) else {
                        continue;
                    };
                    let mut sub = FieldSet::new();
                    to_set(g, items, item, &mut sub);
                    attach(out, || pe, true, sub);
                }
            }
        }
    }
    if matches!(sh, Shape::Assoc { .. }) || !maps_iterate_sorted() {
        out.normalize();
    }
    false
}

/// Adds the node `pe` of a parent set: as a member when `member`, with
/// `sub` below it when that is not empty. The element is only built when
/// it is needed.
fn attach(out: &mut FieldSet, pe: impl FnOnce() -> PathElement, member: bool, sub: FieldSet) {
    let has_sub = !sub.is_empty();
    if !member && !has_sub {
        return;
    }
    let pe = pe();
    match (member, has_sub) {
        (true, true) => {
            out.push_member(pe.clone());
            out.push_child(pe, sub);
        }
        (true, false) => out.push_member(pe),
        _ => out.push_child(pe, sub),
    }
}

/// Adds as members the named struct fields that have children in the set
/// (upstream's `EnsureNamedFieldsAreMembers`).
pub(crate) fn ensure_named_fields_are_members(
    set: &FieldSet,
    g: &TypeGraph,
    ty: TypeId,
) -> FieldSet {
    let def = g.get(ty);
    let mut out = FieldSet::new();
    for m in set.members() {
        out.insert(std::slice::from_ref(m));
    }
    for (pe, child) in set.children() {
        let child_ty = match (pe, def) {
            (PathElement::Field(name), TypeDef::Struct { fields, .. }) => match fields.get(&**name)
            {
                Some(f) => {
                    out.insert(std::slice::from_ref(pe));
                    f.ty
                }
                None => TypeId::UNTYPED_ATOMIC,
            },
            (PathElement::Field(_), TypeDef::Map { values, .. }) => *values,
            (PathElement::Field(_), TypeDef::Untyped { atomic: false }) => TypeId::UNTYPED,
            (PathElement::Key(_), TypeDef::List { items, .. }) => *items,
            _ => TypeId::UNTYPED_ATOMIC,
        };
        out.add_child(pe, ensure_named_fields_are_members(child, g, child_ty));
    }
    out
}

// ---------------------------------------------------------------------------
// Comparison

/// The difference between two objects as field sets.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Comparison {
    pub added: FieldSet,
    pub modified: FieldSet,
    pub removed: FieldSet,
}

impl Comparison {
    pub fn exclude(mut self, ignored: &FieldSet) -> Comparison {
        if ignored.is_empty() {
            return self;
        }
        self.added.recursive_difference_with(ignored);
        self.modified.recursive_difference_with(ignored);
        self.removed.recursive_difference_with(ignored);
        self
    }

    fn normalize(&mut self) {
        self.added.normalize();
        self.modified.normalize();
        self.removed.normalize();
    }

    fn union_with(&mut self, other: Comparison) {
        self.added.union_with(other.added);
        self.modified.union_with(other.modified);
        self.removed.union_with(other.removed);
    }
}

/// Compares `lhs` (old) with `rhs` (new).
pub(crate) fn compare(g: &TypeGraph, root: TypeId, lhs: &Value, rhs: &Value) -> Comparison {
    compare_with(g, root, lhs, rhs, Skip::Nothing)
}

/// Compares `lhs` (old) with `rhs` (new) as if neither had
/// `metadata.managedFields`.
pub(crate) fn compare_without_managed_fields(
    g: &TypeGraph,
    root: TypeId,
    lhs: &Value,
    rhs: &Value,
) -> Comparison {
    compare_with(g, root, lhs, rhs, Skip::RootMeta)
}

fn compare_with(g: &TypeGraph, root: TypeId, lhs: &Value, rhs: &Value, skip: Skip) -> Comparison {
    let mut c = Comparison::default();
    // What happens to the root itself (the empty path) is not tracked.
    cmp(g, root, Some(lhs), Some(rhs), skip, &mut c);
    c
}

/// Which part of the compared values to act as if it were absent.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Skip {
    Nothing,
    /// The values are whole objects: leave out `metadata.managedFields`.
    RootMeta,
    /// The values are `metadata`: leave out its `managedFields` key.
    MetaKey,
}

const MANAGED_FIELDS: &str = "managedFields";

impl Skip {
    /// What to leave out below the child `key` of an object.
    fn child(self, key: &str) -> Skip {
        match self {
            Skip::RootMeta if key == "metadata" => Skip::MetaKey,
            _ => Skip::Nothing,
        }
    }

    /// Whether the key `key` of an object is left out.
    fn drops(self, key: &str) -> bool {
        self == Skip::MetaKey && key == MANAGED_FIELDS
    }
}

/// Whether a value is empty once the skipped part is left out.
fn is_empty_skipping(v: Option<&Value>, skip: Skip) -> bool {
    match (v, skip) {
        (Some(Value::Object(m)), Skip::MetaKey) => m.keys().all(|k| k == MANAGED_FIELDS),
        _ => is_empty_value(v),
    }
}

/// [`smd_equals`] once the skipped part is left out.
fn equals_skipping(a: &Value, b: &Value, skip: Skip) -> bool {
    match (a, b, skip) {
        (_, _, Skip::Nothing) => smd_equals(a, b),
        (Value::Object(x), Value::Object(y), _) => {
            let kept = |m: &Map<String, Value>| m.keys().filter(|k| !skip.drops(k)).count();
            kept(x) == kept(y)
                && x.iter().filter(|(k, _)| !skip.drops(k)).all(|(k, v)| {
                    y.get(k)
                        .map(|w| equals_skipping(v, w, skip.child(k)))
                        .unwrap_or(false)
                })
        }
        _ => smd_equals(a, b),
    }
}

/// What happened to a node itself (its own path).
#[derive(Clone, Copy, Default)]
struct Flags {
    added: bool,
    modified: bool,
    removed: bool,
}

/// Attaches what was found at and below the child `pe` of a node to the
/// node's comparison.
fn attach_cmp(out: &mut Comparison, pe: impl FnOnce() -> PathElement, f: Flags, sub: Comparison) {
    let Comparison {
        added,
        modified,
        removed,
    } = sub;
    let parts = [
        (f.added, added),
        (f.modified, modified),
        (f.removed, removed),
    ];
    if parts.iter().all(|(flag, set)| !flag && set.is_empty()) {
        return;
    }
    let pe = pe();
    let [a, m, r] = parts;
    attach(&mut out.added, || pe.clone(), a.0, a.1);
    attach(&mut out.modified, || pe.clone(), m.0, m.1);
    attach(&mut out.removed, || pe.clone(), r.0, r.1);
}

/// Compares one node: returns what happened to it and adds to `out` what
/// happened below it (paths relative to it).
fn cmp(
    g: &TypeGraph,
    ty: TypeId,
    lhs: Option<&Value>,
    rhs: Option<&Value>,
    skip: Skip,
    out: &mut Comparison,
) -> Flags {
    let mut flags = Flags::default();
    match (lhs, rhs) {
        // Equal values hold no change (with or without the skipped part);
        // comparing them as JSON is much cheaper than walking them. Whole
        // objects are not compared at once: they seldom are equal, and the
        // children are compared one by one right after.
        (Some(l), Some(r)) if std::ptr::eq(l, r) || (skip != Skip::RootMeta && l == r) => {
            return flags
        }
        (None, Some(r)) => {
            // Everything below a new value is new.
            let mut sub = FieldSet::new();
            let member = added_set(g, ty, r, skip, &mut sub);
            out.added.union_with(sub);
            flags.added = member;
            return flags;
        }
        _ => {}
    }
    let sl = lhs.map(|v| shape(g, ty, v));
    let sr = rhs.map(|v| shape(g, ty, v));
    let sh = match (sl, sr) {
        (None, None) => return flags,
        (Some(a), None) => a,
        (None, Some(b)) => b,
        (Some(a), Some(b)) => {
            if a.discriminant() != b.discriminant() {
                // The value changed kind: the node itself is modified, what
                // hung below the old value is gone and what hangs below the
                // new one is new.
                flags.modified = true;
                cmp_children(g, a, lhs, None, skip, out);
                let mut more = Comparison::default();
                cmp_children(g, b, None, rhs, skip, &mut more);
                out.union_with(more);
                return flags;
            }
            b
        }
    };
    if matches!(sh, Shape::Leaf) || (is_empty_skipping(lhs, skip) && is_empty_skipping(rhs, skip)) {
        match (lhs, rhs) {
            (None, Some(_)) => flags.added = true,
            (Some(_), None) => flags.removed = true,
            (Some(l), Some(r)) => flags.modified = !equals_skipping(l, r, skip),
            (None, None) => {}
        }
        return flags;
    }
    cmp_children(g, sh, lhs, rhs, skip, out);
    if lhs.is_none() {
        flags.added = true;
    } else if rhs.is_none() {
        flags.removed = true;
    }
    flags
}

/// What [`cmp`] finds for a value that is new (`lhs` absent): adds the
/// paths below `v` to `out` and tells whether `v` itself counts as added
/// (always, unless its kind has no node at all).
fn added_set(g: &TypeGraph, ty: TypeId, v: &Value, skip: Skip, out: &mut FieldSet) -> bool {
    let sh = shape(g, ty, v);
    if matches!(sh, Shape::Leaf) || is_empty_skipping(Some(v), skip) {
        return true;
    }
    match sh {
        Shape::Leaf => {}
        Shape::Struct(_) | Shape::Map(_) => {
            if let Value::Object(m) = v {
                reserve_for_object(out, m);
                let mut types = ChildTypes::new(sh);
                for (k, cv) in m {
                    if skip.drops(k) {
                        continue;
                    }
                    let mut sub = FieldSet::new();
                    let member = added_set(g, types.child_type(k), cv, skip.child(k), &mut sub);
                    attach(out, || PathElement::field(k), member, sub);
                }
            }
        }
        Shape::Assoc { items, keys } => {
            let items_of = index_items(g, items, keys, Some(v));
            out.reserve(items_of.len(), items_of.len());
            for (pe, item) in items_of {
                let mut sub = FieldSet::new();
                let member = added_set(g, items, item, Skip::Nothing, &mut sub);
                attach(out, || pe, member, sub);
            }
        }
    }
    if matches!(sh, Shape::Assoc { .. }) || !maps_iterate_sorted() {
        out.normalize();
    }
    true
}

fn cmp_children(
    g: &TypeGraph,
    sh: Shape<'_>,
    lhs: Option<&Value>,
    rhs: Option<&Value>,
    skip: Skip,
    out: &mut Comparison,
) {
    match sh {
        Shape::Leaf => {}
        Shape::Struct(_) | Shape::Map(_) => {
            let lm = lhs.and_then(Value::as_object);
            let rm = rhs.and_then(Value::as_object);
            if let Some(lm) = lm {
                let mut types = ChildTypes::new(sh);
                for (k, lv) in lm {
                    if skip.drops(k) {
                        continue;
                    }
                    let mut sub = Comparison::default();
                    let rv = rm.and_then(|m| m.get(k));
                    let f = cmp(
                        g,
                        types.child_type(k),
                        Some(lv),
                        rv,
                        skip.child(k),
                        &mut sub,
                    );
                    attach_cmp(out, || PathElement::field(k), f, sub);
                }
            }
            if let Some(rm) = rm {
                let mut types = ChildTypes::new(sh);
                for (k, rv) in rm {
                    if skip.drops(k) || lm.map(|m| m.contains_key(k)).unwrap_or(false) {
                        continue;
                    }
                    // A new key: everything at and below it is added.
                    let mut sub = FieldSet::new();
                    let ty = types.child_type(k);
                    let member = added_set(g, ty, rv, skip.child(k), &mut sub);
                    attach(&mut out.added, || PathElement::field(k), member, sub);
                }
            }
            out.normalize();
        }
        Shape::Assoc { items, keys } => {
            let li = index_items(g, items, keys, lhs);
            let mut ri: Vec<Option<(PathElement, &Value)>> = index_items(g, items, keys, rhs)
                .into_iter()
                .map(Some)
                .collect();
            for (pe, lv) in li {
                let matched = ri
                    .iter_mut()
                    .find(|slot| slot.as_ref().map(|(p, _)| *p == pe).unwrap_or(false))
                    .and_then(Option::take);
                let mut sub = Comparison::default();
                let f = cmp(
                    g,
                    items,
                    Some(lv),
                    matched.map(|(_, v)| v),
                    Skip::Nothing,
                    &mut sub,
                );
                attach_cmp(out, || pe, f, sub);
            }
            for (pe, rv) in ri.into_iter().flatten() {
                let mut sub = FieldSet::new();
                let member = added_set(g, items, rv, Skip::Nothing, &mut sub);
                attach(&mut out.added, || pe, member, sub);
            }
            out.normalize();
        }
    }
}

// ---------------------------------------------------------------------------
// Merge

/// Merges `rhs` (an applied configuration) into `lhs` (the live object):
/// leaves of `rhs` win, granular maps and structs are merged key by key,
/// associative lists item by item keeping a stable order.
pub(crate) fn merge(g: &TypeGraph, root: TypeId, lhs: &Value, rhs: &Value) -> Value {
    merge_value(g, root, Some(lhs), Some(rhs)).unwrap_or(Value::Null)
}

fn merge_value(
    g: &TypeGraph,
    ty: TypeId,
    lhs: Option<&Value>,
    rhs: Option<&Value>,
) -> Option<Value> {
    let sl = lhs.map(|v| shape(g, ty, v));
    let sr = rhs.map(|v| shape(g, ty, v));
    let sh = match (sl, sr) {
        (None, None) => return None,
        (Some(a), None) => a,
        (None, Some(b)) => b,
        (Some(a), Some(b)) => {
            if a.discriminant() != b.discriminant() {
                return rhs.cloned();
            }
            b
        }
    };
    if matches!(sh, Shape::Leaf) || (is_empty_value(lhs) && is_empty_value(rhs)) {
        return rhs.or(lhs).cloned();
    }
    match sh {
        Shape::Leaf => rhs.or(lhs).cloned(),
        Shape::Struct(_) | Shape::Map(_) => {
            let lm = lhs.and_then(Value::as_object);
            let rm = rhs.and_then(Value::as_object);
            let mut out = Map::new();
            if let Some(lm) = lm {
                for (k, lv) in lm {
                    if let Some(v) =
                        merge_value(g, sh.child_type(k), Some(lv), rm.and_then(|m| m.get(k)))
                    {
                        out.insert(k.clone(), v);
                    }
                }
            }
            if let Some(rm) = rm {
                for (k, rv) in rm {
                    if lm.map(|m| m.contains_key(k)).unwrap_or(false) {
                        continue;
                    }
                    if let Some(v) = merge_value(g, sh.child_type(k), None, Some(rv)) {
                        out.insert(k.clone(), v);
                    }
                }
            }
            (!out.is_empty()).then_some(Value::Object(out))
        }
        Shape::Assoc { items, keys } => {
            let out = merge_list(g, items, keys, lhs, rhs);
            (!out.is_empty()).then_some(Value::Array(out))
        }
    }
}

/// Upstream's ordered list merge: live items keep their order, applied items
/// shared with the live list follow the applied order, new applied items are
/// placed after the applied item before them.
fn merge_list(
    g: &TypeGraph,
    items: TypeId,
    keys: Option<&[String]>,
    lhs: Option<&Value>,
    rhs: Option<&Value>,
) -> Vec<Value> {
    let lhs_order = index_items(g, items, keys, lhs);
    let rhs_order = index_items(g, items, keys, rhs);
    let in_lhs = |pe: &PathElement| lhs_order.iter().find(|(p, _)| p == pe).map(|(_, v)| *v);
    let in_rhs = |pe: &PathElement| rhs_order.iter().find(|(p, _)| p == pe).map(|(_, v)| *v);

    let mut shared: std::collections::VecDeque<&PathElement> = rhs_order
        .iter()
        .filter(|(pe, _)| in_lhs(pe).is_some())
        .map(|(pe, _)| pe)
        .collect();
    let mut next_shared = shared.pop_front();

    let mut out = Vec::new();
    let (l_len, r_len) = (lhs_order.len(), rhs_order.len());
    let (mut li, mut ri) = (0, 0);
    while li < l_len || ri < r_len {
        if li < l_len && ri < r_len {
            let pe = &lhs_order[li].0;
            if *pe == rhs_order[ri].0 {
                if let Some(v) = merge_value(g, items, Some(lhs_order[li].1), Some(rhs_order[ri].1))
                {
                    out.push(v);
                }
                li += 1;
                ri += 1;
                next_shared = shared.pop_front();
                continue;
            }
            if in_rhs(pe).is_some() && next_shared.map(|n| n != pe).unwrap_or(false) {
                // A shared item, but not the one due in this round.
                li += 1;
                continue;
            }
        }
        if li < l_len {
            let (pe, lv) = &lhs_order[li];
            if in_rhs(pe).is_none() {
                if let Some(v) = merge_value(g, items, Some(lv), None) {
                    out.push(v);
                }
                li += 1;
                continue;
            }
        }
        if ri < r_len {
            let (pe, rv) = &rhs_order[ri];
            if let Some(v) = merge_value(g, items, in_lhs(pe), Some(rv)) {
                out.push(v);
            }
            ri += 1;
            if next_shared.map(|n| n == pe).unwrap_or(false) {
                next_shared = shared.pop_front();
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Removal

/// Removes the paths of `set` from `value`. Map keys and list items that are
/// members go away with everything below them. A granular map or list that
/// becomes empty this way is dropped from its parent; a struct stays as
/// `{}`.
pub(crate) fn remove_items(g: &TypeGraph, ty: TypeId, value: &Value, set: &FieldSet) -> Value {
    let sh = shape(g, ty, value);
    match (sh, value) {
        (Shape::Struct(_) | Shape::Map(_), Value::Object(m)) => {
            let mut out = Map::new();
            for (k, cv) in m {
                let pe = PathElement::field(k);
                if set.has_member(&pe) {
                    continue;
                }
                match set.child(&pe) {
                    Some(sub) => {
                        let cty = sh.child_type(k);
                        let nv = remove_items(g, cty, cv, sub);
                        if became_empty(cv, &nv) && !shape(g, cty, cv).is_struct() {
                            continue;
                        }
                        out.insert(k.clone(), nv);
                    }
                    None => {
                        out.insert(k.clone(), cv.clone());
                    }
                }
            }
            Value::Object(out)
        }
        (Shape::Assoc { items, keys }, Value::Array(arr)) => {
            let mut out = Vec::new();
            for item in arr {
                match item_path_element(g, items, keys, item) {
                    Ok(pe) => {
                        if set.has_member(&pe) {
                            continue;
                        }
                        match set.child(&pe) {
                            Some(sub) => out.push(remove_items(g, items, item, sub)),
                            None => out.push(item.clone()),
                        }
                    }
                    Err(_) => out.push(item.clone()),
                }
            }
            Value::Array(out)
        }
        _ => value.clone(),
    }
}

fn became_empty(old: &Value, new: &Value) -> bool {
    let old_non_empty = match old {
        Value::Object(m) => !m.is_empty(),
        Value::Array(a) => !a.is_empty(),
        _ => false,
    };
    old_non_empty && is_empty_value(Some(new))
}

// ---------------------------------------------------------------------------
// Validation

/// One problem found while reading an object against the schema.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ValidationError {
    pub path: Path,
    pub message: String,
}

/// Renders validation errors like upstream's `ValidationErrors.Error()`.
pub(crate) fn format_validation_errors(errs: &[ValidationError]) -> String {
    let one = |e: &ValidationError| {
        if e.path.0.is_empty() {
            e.message.clone()
        } else {
            format!("{}: {}", e.path, e.message)
        }
    };
    if errs.len() == 1 {
        return one(&errs[0]);
    }
    let mut lines = vec!["errors:".to_string()];
    lines.extend(errs.iter().map(|e| format!("  {}", one(e))));
    lines.join("\n")
}

/// Checks that every associative list item can be keyed and, unless
/// `allow_duplicates`, that no key appears twice.
pub(crate) fn validate(
    g: &TypeGraph,
    root: TypeId,
    value: &Value,
    allow_duplicates: bool,
) -> Vec<ValidationError> {
    let mut errs = Vec::new();
    let mut path = Vec::new();
    validate_value(g, root, value, allow_duplicates, &mut path, &mut errs);
    errs
}

fn validate_value(
    g: &TypeGraph,
    ty: TypeId,
    v: &Value,
    allow_duplicates: bool,
    path: &mut Vec<PathElement>,
    errs: &mut Vec<ValidationError>,
) {
    let sh = shape(g, ty, v);
    match (sh, v) {
        (Shape::Struct(_) | Shape::Map(_), Value::Object(m)) => {
            for (k, cv) in m {
                path.push(PathElement::field(k));
                validate_value(g, sh.child_type(k), cv, allow_duplicates, path, errs);
                path.pop();
            }
        }
        (Shape::Assoc { items, keys }, Value::Array(arr)) => {
            let mut seen: Vec<PathElement> = Vec::new();
            for (i, item) in arr.iter().enumerate() {
                match item_path_element(g, items, keys, item) {
                    Err(msg) => {
                        // Like upstream, the rest of the list is not looked
                        // at once an item cannot be keyed.
                        errs.push(ValidationError {
                            path: Path(path.clone()),
                            message: format!("element {}: {}", i, msg),
                        });
                        return;
                    }
                    Ok(pe) => {
                        if seen.contains(&pe) && !allow_duplicates {
                            errs.push(ValidationError {
                                path: Path(path.clone()),
                                message: format!("duplicate entries for key {}", pe),
                            });
                        }
                        path.push(pe.clone());
                        validate_value(g, items, item, allow_duplicates, path, errs);
                        path.pop();
                        seen.push(pe);
                    }
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::StructDef;
    use serde_json::json;

    /// A small Deployment-like schema.
    pub(crate) fn graph() -> (TypeGraph, TypeId) {
        let mut g = TypeGraph::new();
        let labels = g.map(TypeId::SCALAR);
        let meta = g.add_struct(
            "ObjectMeta",
            StructDef::new()
                .scalar("name")
                .scalar("namespace")
                .field("labels", labels),
        );
        let port = g.add_struct(
            "ContainerPort",
            StructDef::new().scalar("containerPort").field(
                "protocol",
                Field::new(TypeId::SCALAR).default_value(json!("TCP")),
            ),
        );
        let ports = g.list(port, ListType::map(["containerPort", "protocol"]));
        let args = g.list(TypeId::SCALAR, ListType::Atomic);
        let container = g.add_struct(
            "Container",
            StructDef::new()
                .scalar("name")
                .scalar("image")
                .field("args", args)
                .field("ports", ports),
        );
        let containers = g.list(container, ListType::map(["name"]));
        let finalizers = g.list(TypeId::SCALAR, ListType::Set);
        let selector = g.add_struct(
            "LabelSelector",
            StructDef::new().field("matchLabels", labels).atomic(),
        );
        let spec = g.add_struct(
            "Spec",
            StructDef::new()
                .scalar("replicas")
                .field("selector", selector)
                .field("containers", containers)
                .field("finalizers", finalizers)
                .field("extra", TypeId::UNTYPED),
        );
        let root = g.add_struct(
            "Root",
            StructDef::new()
                .scalar("apiVersion")
                .scalar("kind")
                .field("metadata", meta)
                .field("spec", spec),
        );
        (g, root)
    }

    #[test]
    fn field_set_of_object() {
        let (g, root) = graph();
        let obj = json!({
            "apiVersion": "v1",
            "metadata": {"name": "x", "labels": {"app": "a"}},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": "a"}},
                "containers": [{"name": "nginx", "image": "nginx", "args": ["a"],
                                "ports": [{"containerPort": 80}]}],
                "finalizers": ["f1", "f2"],
                "extra": {"deep": {"x": [1]}},
                "unknown": {"a": 1}
            }
        });
        let set = field_set_of(&obj, &g, root);
        assert_eq!(
            set.to_fields_v1(),
            concat!(
                r#"{"f:apiVersion":{},"f:metadata":{"f:labels":{"f:app":{}},"f:name":{}},"#,
                r#""f:spec":{"f:containers":{"k:{\"name\":\"nginx\"}":{".":{},"f:args":{},"f:image":{},"f:name":{},"#,
                r#""f:ports":{"k:{\"containerPort\":80,\"protocol\":\"TCP\"}":{".":{},"f:containerPort":{}}}}},"#,
                r#""f:extra":{"f:deep":{".":{},"f:x":{}}},"f:finalizers":{"v:\"f1\"":{},"v:\"f2\"":{}},"#,
                r#""f:replicas":{},"f:selector":{},"f:unknown":{}}}"#
            )
        );
    }

    #[test]
    fn compare_sets() {
        let (g, root) = graph();
        let old = json!({"spec": {"replicas": 1, "containers": [{"name": "a", "image": "x"}]}});
        let new = json!({"metadata": {"labels": {"l": "v"}},
                         "spec": {"replicas": 2, "containers": [{"name": "b", "image": "y"}]}});
        let c = compare(&g, root, &old, &new);
        assert_eq!(
            c.added.to_fields_v1(),
            r#"{"f:metadata":{".":{},"f:labels":{".":{},"f:l":{}}},"f:spec":{"f:containers":{"k:{\"name\":\"b\"}":{".":{},"f:image":{},"f:name":{}}}}}"#
        );
        assert_eq!(c.modified.to_fields_v1(), r#"{"f:spec":{"f:replicas":{}}}"#);
        assert_eq!(
            c.removed.to_fields_v1(),
            r#"{"f:spec":{"f:containers":{"k:{\"name\":\"a\"}":{".":{},"f:image":{},"f:name":{}}}}}"#
        );
    }

    #[test]
    fn merge_keeps_order() {
        let (g, root) = graph();
        let live = json!({"spec": {"containers": [
            {"name": "a", "image": "1"}, {"name": "b", "image": "1"}, {"name": "c", "image": "1"}
        ]}});
        let cfg = json!({"spec": {"containers": [
            {"name": "c", "image": "2"}, {"name": "d", "image": "2"}, {"name": "a", "image": "2"}
        ]}});
        let merged = merge(&g, root, &live, &cfg);
        let names: Vec<&str> = merged["spec"]["containers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, vec!["b", "c", "d", "a"]);
        assert_eq!(merged["spec"]["containers"][1]["image"], json!("2"));
    }

    #[test]
    fn remove_paths() {
        let (g, root) = graph();
        let obj = json!({"metadata": {"labels": {"a": "1"}}, "spec": {"replicas": 1,
                         "containers": [{"name": "a"}, {"name": "b"}]}});
        let mut set = FieldSet::new();
        set.insert(&[
            PathElement::field("metadata"),
            PathElement::field("labels"),
            PathElement::field("a"),
        ]);
        set.insert(&[PathElement::field("spec"), PathElement::field("replicas")]);
        set.insert(&[
            PathElement::field("spec"),
            PathElement::field("containers"),
            PathElement::key([("name", json!("a"))]),
        ]);
        let out = remove_items(&g, root, &obj, &set);
        assert_eq!(
            out,
            json!({"metadata": {}, "spec": {"containers": [{"name": "b"}]}})
        );
    }

    #[test]
    fn validation_messages() {
        let (g, root) = graph();
        let obj = json!({"spec": {"containers": [{"image": "x"}, {"name": "a"}, {"name": "a"}],
                                  "finalizers": ["a", "b", "a"]}});
        let errs = validate(&g, root, &obj, false);
        assert_eq!(
            format_validation_errors(&errs),
            "errors:\n  .spec.containers: element 0: associative list with keys has an element that omits key field \"name\" (and doesn't have default value)\n  .spec.finalizers: duplicate entries for key [=\"a\"]"
        );
        assert_eq!(validate(&g, root, &obj, true).len(), 1);
        let one = json!({"spec": {"containers": [{"name": "a"}, {"name": "a"}]}});
        assert_eq!(
            format_validation_errors(&validate(&g, root, &one, false)),
            ".spec.containers: duplicate entries for key [name=\"a\"]"
        );
    }

    #[test]
    fn compare_leaves_managed_fields_out() {
        let (g, root) = graph();
        let strip = |v: &Value| {
            let mut v = v.clone();
            if let Some(Value::Object(m)) = v.get_mut("metadata") {
                m.remove("managedFields");
            }
            v
        };
        let mf = json!([{"manager": "m", "operation": "Update"}]);
        let cases = [
            (json!({}), json!({"metadata": {"managedFields": mf}})),
            (
                json!({"spec": {}}),
                json!({"metadata": {"managedFields": mf}}),
            ),
            (
                json!({"metadata": {"managedFields": mf, "name": "a"}}),
                json!({"metadata": {"name": "b", "labels": {"x": "y"}}}),
            ),
            (
                json!({"metadata": {"managedFields": mf}, "spec": {"replicas": 1}}),
                json!({"metadata": {"managedFields": [], "labels": {}}, "spec": {"replicas": 2}}),
            ),
            (
                json!({"metadata": {"managedFields": mf}}),
                json!({"metadata": 5}),
            ),
        ];
        for (old, new) in &cases {
            for (l, r) in [(old, new), (new, old), (old, old)] {
                assert_eq!(
                    compare_without_managed_fields(&g, root, l, r),
                    compare(&g, root, &strip(l), &strip(r)),
                    "{} -> {}",
                    l,
                    r
                );
            }
        }
    }
}
