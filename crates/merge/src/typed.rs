//! Schema-aware walks over JSON values, the structured-merge-diff way:
//! computing the field set of an object, comparing two objects into
//! added/modified/removed field sets, merging an applied configuration into
//! a live object, removing field paths from an object, and validating list
//! keys.

use serde_json::{Map, Value};

use crate::fieldpath::{FieldSet, Path, PathElement};
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
            let mut fields = Vec::with_capacity(keys.len());
            for k in keys {
                if let Some(v) = obj.get(k) {
                    fields.push((k.clone(), v.clone()));
                } else if let Some(d) = g.field(items, k).and_then(|f| f.default.clone()) {
                    fields.push((k.clone(), d));
                } else {
                    return Err(format!(
                        "associative list with keys has an element that omits key field {} (and doesn't have default value)",
                        crate::goval::go_quote(k)
                    ));
                }
            }
            Ok(PathElement::key(fields))
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
    let mut path = Vec::new();
    to_set(graph, root, obj, &mut path, &mut set);
    set
}

fn to_set(g: &TypeGraph, ty: TypeId, v: &Value, path: &mut Vec<PathElement>, set: &mut FieldSet) {
    let sh = shape(g, ty, v);
    match sh {
        Shape::Leaf => set.insert(path),
        Shape::Struct(fields) => {
            if let Value::Object(m) = v {
                for (k, cv) in m {
                    path.push(PathElement::Field(k.clone()));
                    to_set(g, sh.child_type(k), cv, path, set);
                    if !fields.contains_key(k) {
                        set.insert(path);
                    }
                    path.pop();
                }
            }
        }
        Shape::Map(values) => {
            if let Value::Object(m) = v {
                for (k, cv) in m {
                    path.push(PathElement::Field(k.clone()));
                    to_set(g, values, cv, path, set);
                    set.insert(path);
                    path.pop();
                }
            }
        }
        Shape::Assoc { items, keys } => {
            if let Value::Array(arr) = v {
                for item in arr {
                    let Ok(pe) = item_path_element(g, items, keys, item) else {
                        continue;
                    };
                    path.push(pe);
                    to_set(g, items, item, path, set);
                    set.insert(path);
                    path.pop();
                }
            }
        }
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
            (PathElement::Field(name), TypeDef::Struct { fields, .. }) => match fields.get(name) {
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
        self.added = self.added.recursive_difference(ignored);
        self.modified = self.modified.recursive_difference(ignored);
        self.removed = self.removed.recursive_difference(ignored);
        self
    }
}

/// Compares `lhs` (old) with `rhs` (new).
pub(crate) fn compare(g: &TypeGraph, root: TypeId, lhs: &Value, rhs: &Value) -> Comparison {
    let mut c = Comparison::default();
    let mut path = Vec::new();
    cmp(g, root, Some(lhs), Some(rhs), &mut path, &mut c);
    c
}

fn leaf_rule(lhs: Option<&Value>, rhs: Option<&Value>, path: &[PathElement], c: &mut Comparison) {
    match (lhs, rhs) {
        (None, Some(_)) => c.added.insert(path),
        (Some(_), None) => c.removed.insert(path),
        (Some(l), Some(r)) => {
            if !smd_equals(l, r) {
                c.modified.insert(path)
            }
        }
        (None, None) => {}
    }
}

fn cmp(
    g: &TypeGraph,
    ty: TypeId,
    lhs: Option<&Value>,
    rhs: Option<&Value>,
    path: &mut Vec<PathElement>,
    c: &mut Comparison,
) {
    let sl = lhs.map(|v| shape(g, ty, v));
    let sr = rhs.map(|v| shape(g, ty, v));
    let sh = match (sl, sr) {
        (None, None) => return,
        (Some(a), None) => a,
        (None, Some(b)) => b,
        (Some(a), Some(b)) => {
            if a.discriminant() != b.discriminant() {
                // The value changed kind: the node itself is modified, what
                // hung below the old value is gone and what hangs below the
                // new one is new.
                c.modified.insert(path);
                cmp_children(g, a, lhs, None, path, c);
                cmp_children(g, b, None, rhs, path, c);
                return;
            }
            b
        }
    };
    if matches!(sh, Shape::Leaf) || (is_empty_value(lhs) && is_empty_value(rhs)) {
        leaf_rule(lhs, rhs, path, c);
        return;
    }
    cmp_children(g, sh, lhs, rhs, path, c);
    if lhs.is_none() {
        c.added.insert(path);
    } else if rhs.is_none() {
        c.removed.insert(path);
    }
}

fn cmp_children(
    g: &TypeGraph,
    sh: Shape<'_>,
    lhs: Option<&Value>,
    rhs: Option<&Value>,
    path: &mut Vec<PathElement>,
    c: &mut Comparison,
) {
    match sh {
        Shape::Leaf => {}
        Shape::Struct(_) | Shape::Map(_) => {
            let lm = lhs.and_then(Value::as_object);
            let rm = rhs.and_then(Value::as_object);
            if let Some(lm) = lm {
                for (k, lv) in lm {
                    path.push(PathElement::Field(k.clone()));
                    cmp(
                        g,
                        sh.child_type(k),
                        Some(lv),
                        rm.and_then(|m| m.get(k)),
                        path,
                        c,
                    );
                    path.pop();
                }
            }
            if let Some(rm) = rm {
                for (k, rv) in rm {
                    if lm.map(|m| m.contains_key(k)).unwrap_or(false) {
                        continue;
                    }
                    path.push(PathElement::Field(k.clone()));
                    cmp(g, sh.child_type(k), None, Some(rv), path, c);
                    path.pop();
                }
            }
        }
        Shape::Assoc { items, keys } => {
            let li = index_items(g, items, keys, lhs);
            let ri = index_items(g, items, keys, rhs);
            for (pe, lv) in &li {
                let rv = ri.iter().find(|(p, _)| p == pe).map(|(_, v)| *v);
                path.push(pe.clone());
                cmp(g, items, Some(lv), rv, path, c);
                path.pop();
            }
            for (pe, rv) in &ri {
                if li.iter().any(|(p, _)| p == pe) {
                    continue;
                }
                path.push(pe.clone());
                cmp(g, items, None, Some(rv), path, c);
                path.pop();
            }
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
                let pe = PathElement::Field(k.clone());
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
                path.push(PathElement::Field(k.clone()));
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
}
