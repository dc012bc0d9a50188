//! Field paths and field sets as structured-merge-diff has them, and their
//! `fieldsV1` encoding used in `metadata.managedFields`.
//!
//! A path is a list of [`PathElement`]s: `f:<name>` selects a struct field or
//! map key, `k:{json}` a list-map item by its keys, `v:<json>` a set item by
//! value and `i:<n>` a list item by index. A [`FieldSet`] is a tree of such
//! elements; a path is a *member* of the set when its last element is a
//! member of the node reached by the path's prefix. A node may be a member
//! and have children at once (`"."` in `fieldsV1`).
//!
//! Elements are ordered like upstream: field names, then keys, then values,
//! then indices; within a kind by name, key list, value order
//! (numbers < strings < booleans < lists < maps < null) and index.

use std::cmp::Ordering;
use std::fmt;

use serde_json::Value;
use thiserror::Error;

use crate::goval::{smd_compare, smd_equals, smd_to_string, write_go_json, write_go_json_string};

pub use crate::typed::field_set_of;

/// An error reading a field path element or a `fieldsV1` document.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FieldPathError {
    /// A path element key is malformed.
    #[error("parsing key as path element: {0}")]
    BadPathElement(String),
    /// The `fieldsV1` document is not a JSON object tree.
    #[error("{0}")]
    BadDocument(String),
}

/// One step of a field path.
#[derive(Clone, Debug)]
pub enum PathElement {
    /// A struct field or map key (`f:<name>`).
    Field(String),
    /// A list-map item selected by its key fields, sorted by name
    /// (`k:{"name":"nginx"}`).
    Key(Vec<(String, Value)>),
    /// A set item selected by its value (`v:"a"`).
    Value(Value),
    /// A list item selected by index (`i:0`).
    Index(i64),
}

impl PathElement {
    /// A field element.
    pub fn field(name: &str) -> PathElement {
        PathElement::Field(name.to_string())
    }

    /// A key element; the fields are sorted by name.
    pub fn key<I, S>(fields: I) -> PathElement
    where
        I: IntoIterator<Item = (S, Value)>,
        S: Into<String>,
    {
        let mut fields: Vec<(String, Value)> =
            fields.into_iter().map(|(k, v)| (k.into(), v)).collect();
        fields.sort_by(|a, b| a.0.cmp(&b.0));
        PathElement::Key(fields)
    }

    fn rank(&self) -> u8 {
        match self {
            PathElement::Field(_) => 0,
            PathElement::Key(_) => 1,
            PathElement::Value(_) => 2,
            PathElement::Index(_) => 3,
        }
    }

    /// The upstream order of path elements.
    pub fn compare(&self, other: &PathElement) -> Ordering {
        match (self, other) {
            (PathElement::Field(a), PathElement::Field(b)) => a.cmp(b),
            (PathElement::Key(a), PathElement::Key(b)) => {
                for (x, y) in a.iter().zip(b) {
                    let c = x.0.cmp(&y.0).then_with(|| smd_compare(&x.1, &y.1));
                    if c != Ordering::Equal {
                        return c;
                    }
                }
                a.len().cmp(&b.len())
            }
            (PathElement::Value(a), PathElement::Value(b)) => smd_compare(a, b),
            (PathElement::Index(a), PathElement::Index(b)) => a.cmp(b),
            _ => self.rank().cmp(&other.rank()),
        }
    }

    /// The `fieldsV1` key of this element (`f:name`, `k:{...}`, `v:...`,
    /// `i:n`).
    pub fn serialize(&self) -> String {
        let mut out = String::new();
        match self {
            PathElement::Field(name) => {
                out.push_str("f:");
                out.push_str(name);
            }
            PathElement::Key(fields) => {
                out.push_str("k:{");
                for (i, (name, value)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write_go_json_string(name, &mut out);
                    out.push(':');
                    write_go_json(value, &mut out);
                }
                out.push('}');
            }
            PathElement::Value(v) => {
                out.push_str("v:");
                write_go_json(v, &mut out);
            }
            PathElement::Index(i) => {
                out.push_str("i:");
                out.push_str(&i.to_string());
            }
        }
        out
    }

    /// Parses a `fieldsV1` key. Unknown element kinds (a letter other than
    /// `f`, `k`, `v`, `i` before the colon) give `Ok(None)`: upstream drops
    /// them.
    pub fn parse(s: &str) -> Result<Option<PathElement>, FieldPathError> {
        let bytes = s.as_bytes();
        if bytes.len() < 2 {
            return Err(FieldPathError::BadPathElement(
                "key must be 2 characters long:".to_string(),
            ));
        }
        if bytes[1] != b':' {
            return Err(FieldPathError::BadPathElement(format!(
                "missing colon: {}",
                s
            )));
        }
        let rest = &s[2..];
        match bytes[0] {
            b'f' => Ok(Some(PathElement::Field(rest.to_string()))),
            b'v' => serde_json::from_str::<Value>(rest)
                .map(|v| Some(PathElement::Value(v)))
                .map_err(|e| FieldPathError::BadPathElement(e.to_string())),
            b'k' => {
                let v: Value = serde_json::from_str(rest)
                    .map_err(|e| FieldPathError::BadPathElement(e.to_string()))?;
                match v {
                    Value::Object(m) => Ok(Some(PathElement::key(m))),
                    _ => Err(FieldPathError::BadPathElement(format!(
                        "expected an object in key path element: {}",
                        s
                    ))),
                }
            }
            b'i' => rest
                .parse::<i64>()
                .map(|i| Some(PathElement::Index(i)))
                .map_err(|e| {
                    FieldPathError::BadPathElement(format!(
                        "strconv.Atoi: parsing {:?}: {}",
                        rest,
                        if matches!(
                            e.kind(),
                            std::num::IntErrorKind::PosOverflow
                                | std::num::IntErrorKind::NegOverflow
                        ) {
                            "value out of range"
                        } else {
                            "invalid syntax"
                        }
                    ))
                }),
            _ => Ok(None),
        }
    }
}

impl PartialEq for PathElement {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (PathElement::Field(a), PathElement::Field(b)) => a == b,
            (PathElement::Key(a), PathElement::Key(b)) => {
                a.len() == b.len()
                    && a.iter()
                        .zip(b)
                        .all(|(x, y)| x.0 == y.0 && smd_equals(&x.1, &y.1))
            }
            (PathElement::Value(a), PathElement::Value(b)) => smd_equals(a, b),
            (PathElement::Index(a), PathElement::Index(b)) => a == b,
            _ => false,
        }
    }
}

impl Eq for PathElement {}

impl PartialOrd for PathElement {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for PathElement {
    fn cmp(&self, other: &Self) -> Ordering {
        self.compare(other)
    }
}

impl fmt::Display for PathElement {
    /// Upstream's human form: `.name`, `[name="nginx"]`, `[="a"]`, `[0]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathElement::Field(name) => write!(f, ".{}", name),
            PathElement::Key(fields) => {
                let parts: Vec<String> = fields
                    .iter()
                    .map(|(k, v)| format!("{}={}", k, smd_to_string(v)))
                    .collect();
                write!(f, "[{}]", parts.join(","))
            }
            PathElement::Value(v) => write!(f, "[={}]", smd_to_string(v)),
            PathElement::Index(i) => write!(f, "[{}]", i),
        }
    }
}

/// A field path.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Path(pub Vec<PathElement>);

impl Path {
    /// A path of field names.
    pub fn fields(names: &[&str]) -> Path {
        Path(names.iter().map(|n| PathElement::field(n)).collect())
    }

    /// The elements of the path.
    pub fn elements(&self) -> &[PathElement] {
        &self.0
    }
}

impl fmt::Display for Path {
    /// Upstream's human form, e.g. `.spec.containers[name="nginx"].image`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for pe in &self.0 {
            write!(f, "{}", pe)?;
        }
        Ok(())
    }
}

impl From<Vec<PathElement>> for Path {
    fn from(v: Vec<PathElement>) -> Path {
        Path(v)
    }
}

/// A set of field paths, stored as a tree.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSet {
    /// Elements whose path (prefix + element) is in the set; sorted.
    members: Vec<PathElement>,
    /// Subtrees under each element; sorted, never empty.
    children: Vec<(PathElement, FieldSet)>,
}

fn find<T>(
    items: &[T],
    key: impl Fn(&T) -> &PathElement,
    pe: &PathElement,
) -> Result<usize, usize> {
    items.binary_search_by(|x| key(x).compare(pe))
}

impl FieldSet {
    /// The empty set.
    pub fn new() -> FieldSet {
        FieldSet::default()
    }

    /// A set holding the given paths.
    pub fn from_paths<I: IntoIterator<Item = Path>>(paths: I) -> FieldSet {
        let mut s = FieldSet::new();
        for p in paths {
            s.insert(&p.0);
        }
        s
    }

    /// Whether the set has no members at all.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty() && self.children.iter().all(|(_, c)| c.is_empty())
    }

    /// Number of member paths.
    pub fn len(&self) -> usize {
        self.members.len() + self.children.iter().map(|(_, c)| c.len()).sum::<usize>()
    }

    /// The member elements at this level.
    pub fn members(&self) -> &[PathElement] {
        &self.members
    }

    /// The subtrees at this level.
    pub fn children(&self) -> impl Iterator<Item = (&PathElement, &FieldSet)> {
        self.children.iter().map(|(p, s)| (p, s))
    }

    /// Whether `pe` is a member at this level.
    pub fn has_member(&self, pe: &PathElement) -> bool {
        find(&self.members, |x| x, pe).is_ok()
    }

    /// The subtree under `pe`, if any.
    pub fn child(&self, pe: &PathElement) -> Option<&FieldSet> {
        find(&self.children, |x| &x.0, pe)
            .ok()
            .map(|i| &self.children[i].1)
    }

    fn descend(&mut self, pe: &PathElement) -> &mut FieldSet {
        let i = match find(&self.children, |x| &x.0, pe) {
            Ok(i) => i,
            Err(i) => {
                self.children.insert(i, (pe.clone(), FieldSet::new()));
                i
            }
        };
        &mut self.children[i].1
    }

    fn insert_member(&mut self, pe: &PathElement) {
        if let Err(i) = find(&self.members, |x| x, pe) {
            self.members.insert(i, pe.clone());
        }
    }

    /// Adds `set` below `pe` (merging with what is there).
    pub(crate) fn add_child(&mut self, pe: &PathElement, set: FieldSet) {
        if set.is_empty() {
            return;
        }
        let slot = self.descend(pe);
        *slot = slot.union(&set);
    }

    /// Adds a path. The empty path (the whole object) is never tracked.
    pub fn insert(&mut self, path: &[PathElement]) {
        match path {
            [] => {}
            [last] => self.insert_member(last),
            [first, rest @ ..] => self.descend(first).insert(rest),
        }
    }

    /// Whether a path is a member of the set.
    pub fn has(&self, path: &[PathElement]) -> bool {
        match path {
            [] => false,
            [last] => self.has_member(last),
            [first, rest @ ..] => self.child(first).map(|c| c.has(rest)).unwrap_or(false),
        }
    }

    /// The paths under `pe`, with `pe` removed from their front.
    pub fn with_prefix(&self, pe: &PathElement) -> FieldSet {
        self.child(pe).cloned().unwrap_or_default()
    }

    /// Paths in either set.
    pub fn union(&self, other: &FieldSet) -> FieldSet {
        let mut members = self.members.clone();
        for m in &other.members {
            if let Err(i) = find(&members, |x| x, m) {
                members.insert(i, m.clone());
            }
        }
        let mut children = Vec::with_capacity(self.children.len() + other.children.len());
        let (mut i, mut j) = (0, 0);
        while i < self.children.len() && j < other.children.len() {
            let (a, b) = (&self.children[i], &other.children[j]);
            match a.0.compare(&b.0) {
                Ordering::Less => {
                    children.push(a.clone());
                    i += 1;
                }
                Ordering::Greater => {
                    children.push(b.clone());
                    j += 1;
                }
                Ordering::Equal => {
                    children.push((a.0.clone(), a.1.union(&b.1)));
                    i += 1;
                    j += 1;
                }
            }
        }
        children.extend_from_slice(&self.children[i..]);
        children.extend_from_slice(&other.children[j..]);
        FieldSet { members, children }
    }

    /// Paths in both sets.
    pub fn intersection(&self, other: &FieldSet) -> FieldSet {
        let members = self
            .members
            .iter()
            .filter(|m| other.has_member(m))
            .cloned()
            .collect();
        let children = self
            .children
            .iter()
            .filter_map(|(pe, c)| {
                let o = other.child(pe)?;
                let i = c.intersection(o);
                (!i.is_empty()).then(|| (pe.clone(), i))
            })
            .collect();
        FieldSet { members, children }
    }

    /// Paths of `self` that are not paths of `other`. Children of a path in
    /// `other` are kept unless they are themselves in `other`.
    pub fn difference(&self, other: &FieldSet) -> FieldSet {
        let members = self
            .members
            .iter()
            .filter(|m| !other.has_member(m))
            .cloned()
            .collect();
        let children = self
            .children
            .iter()
            .filter_map(|(pe, c)| match other.child(pe) {
                Some(o) => {
                    let d = c.difference(o);
                    (!d.is_empty()).then(|| (pe.clone(), d))
                }
                None => Some((pe.clone(), c.clone())),
            })
            .collect();
        FieldSet { members, children }
    }

    /// Like [`FieldSet::difference`], but a path in `other` also removes
    /// every path below it (`a.b.c` minus `a.b` is `a`... without `a.b.c`).
    pub fn recursive_difference(&self, other: &FieldSet) -> FieldSet {
        let members = self
            .members
            .iter()
            .filter(|m| !other.has_member(m))
            .cloned()
            .collect();
        let children = self
            .children
            .iter()
            .filter_map(|(pe, c)| {
                if other.has_member(pe) {
                    return None;
                }
                match other.child(pe) {
                    Some(o) => {
                        let d = c.recursive_difference(o);
                        (!d.is_empty()).then(|| (pe.clone(), d))
                    }
                    None => Some((pe.clone(), c.clone())),
                }
            })
            .collect();
        FieldSet { members, children }
    }

    /// Only the leaf paths: members that have no children in the set.
    pub fn leaves(&self) -> FieldSet {
        let members = self
            .members
            .iter()
            .filter(|m| self.child(m).is_none())
            .cloned()
            .collect();
        let children = self
            .children
            .iter()
            .map(|(pe, c)| (pe.clone(), c.leaves()))
            .filter(|(_, c)| !c.is_empty())
            .collect();
        FieldSet { members, children }
    }

    /// All member paths in upstream's iteration order (at each level the
    /// members first, then the children's paths).
    pub fn paths(&self) -> Vec<Path> {
        let mut out = Vec::new();
        let mut prefix = Vec::new();
        self.collect_paths(&mut prefix, &mut out);
        out
    }

    fn collect_paths(&self, prefix: &mut Vec<PathElement>, out: &mut Vec<Path>) {
        for m in &self.members {
            let mut p = prefix.clone();
            p.push(m.clone());
            out.push(Path(p));
        }
        for (pe, c) in &self.children {
            prefix.push(pe.clone());
            c.collect_paths(prefix, out);
            prefix.pop();
        }
    }

    /// The `fieldsV1` JSON of the set, byte for byte as upstream writes it:
    /// keys in element order, `"."` first in a node that is also a member.
    pub fn to_fields_v1(&self) -> String {
        let mut out = String::from("{");
        self.emit_v1(false, &mut out);
        out.push('}');
        out
    }

    /// The `fieldsV1` document as a JSON value.
    pub fn to_value(&self) -> Value {
        serde_json::from_str(&self.to_fields_v1())
            .unwrap_or_else(|_| Value::Object(Default::default()))
    }

    fn emit_v1(&self, include_self: bool, out: &mut String) {
        let mut first = true;
        let mut sep = |out: &mut String| {
            if !first {
                out.push(',');
            }
            first = false;
        };
        if include_self && !(self.members.is_empty() && self.children.is_empty()) {
            sep(out);
            out.push_str("\".\":{}");
        }
        let (mut mi, mut ci) = (0, 0);
        while mi < self.members.len() || ci < self.children.len() {
            let order = match (self.members.get(mi), self.children.get(ci)) {
                (Some(m), Some(c)) => m.compare(&c.0),
                (Some(_), None) => Ordering::Less,
                _ => Ordering::Greater,
            };
            sep(out);
            match order {
                Ordering::Less => {
                    write_go_json_string(&self.members[mi].serialize(), out);
                    out.push_str(":{}");
                    mi += 1;
                }
                Ordering::Greater => {
                    let (pe, c) = &self.children[ci];
                    write_go_json_string(&pe.serialize(), out);
                    out.push_str(":{");
                    c.emit_v1(false, out);
                    out.push('}');
                    ci += 1;
                }
                Ordering::Equal => {
                    let (pe, c) = &self.children[ci];
                    write_go_json_string(&pe.serialize(), out);
                    out.push_str(":{");
                    c.emit_v1(true, out);
                    out.push('}');
                    mi += 1;
                    ci += 1;
                }
            }
        }
    }

    /// Reads a `fieldsV1` document. Keys of unknown element kinds are
    /// dropped, like upstream does.
    pub fn from_fields_v1(doc: &Value) -> Result<FieldSet, FieldPathError> {
        match doc {
            Value::Object(_) => Ok(read_v1(doc)?.0.unwrap_or_default()),
            Value::Null => Ok(FieldSet::new()),
            other => Err(FieldPathError::BadDocument(format!(
                "ReadMapCB: expect {{ or n, but found {}",
                match other {
                    Value::Array(_) => "[",
                    Value::String(_) => "\"",
                    Value::Bool(true) => "t",
                    Value::Bool(false) => "f",
                    _ => "number",
                }
            ))),
        }
    }

    /// Reads a `fieldsV1` document from its JSON text.
    pub fn from_fields_v1_str(s: &str) -> Result<FieldSet, FieldPathError> {
        let v: Value =
            serde_json::from_str(s).map_err(|e| FieldPathError::BadDocument(e.to_string()))?;
        FieldSet::from_fields_v1(&v)
    }
}

/// Returns the children set (None when there are none) and whether the node
/// itself is a member.
fn read_v1(doc: &Value) -> Result<(Option<FieldSet>, bool), FieldPathError> {
    let Value::Object(m) = doc else {
        // A non-object value under a key carries no children.
        return Ok((None, true));
    };
    let mut children: Option<FieldSet> = None;
    let mut is_member = false;
    for (key, sub) in m {
        if key == "." {
            is_member = true;
            continue;
        }
        let Some(pe) = PathElement::parse(key)? else {
            continue;
        };
        let (grand, child_is_member) = read_v1(sub)?;
        if child_is_member {
            children
                .get_or_insert_with(FieldSet::new)
                .insert_member(&pe);
        }
        if let Some(g) = grand {
            let c = children.get_or_insert_with(FieldSet::new);
            let slot = c.descend(&pe);
            *slot = slot.union(&g);
        }
    }
    if children.is_none() {
        is_member = true;
    }
    Ok((children, is_member))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn p(s: &[&str]) -> Path {
        Path(
            s.iter()
                .map(|e| PathElement::parse(e).unwrap().unwrap())
                .collect(),
        )
    }

    #[test]
    fn golden_round_trip_upstream() {
        // Upstream's TestSerializeV1GoldenData, first example.
        let s = r#"{"f:aaa":{},"f:aab":{},"f:aac":{},"f:aad":{},"f:aae":{},"f:aaf":{},"k:{\"name\":\"first\"}":{},"k:{\"name\":\"second\"}":{},"k:{\"port\":443,\"protocol\":\"tcp\"}":{},"k:{\"port\":443,\"protocol\":\"udp\"}":{},"v:1":{},"v:2":{},"v:3":{},"v:\"aa\"":{},"v:\"ab\"":{},"v:true":{},"i:1":{},"i:2":{},"i:3":{},"i:4":{}}"#;
        let set = FieldSet::from_fields_v1_str(s).unwrap();
        assert_eq!(set.to_fields_v1(), s);
        assert_eq!(set.len(), 20);
    }

    #[test]
    fn golden_nested_upstream() {
        let s = r#"{"f:aaa":{"k:{\"name\":\"second\"}":{"v:3":{"f:aab":{}}},"v:3":{},"v:true":{}},"f:aab":{"f:aaa":{},"f:aaf":{"k:{\"port\":443,\"protocol\":\"udp\"}":{"k:{\"port\":443,\"protocol\":\"tcp\"}":{}}},"k:{\"name\":\"first\"}":{}},"i:1":{"i:3":{"f:aaf":{}}}}"#;
        let set = FieldSet::from_fields_v1_str(s).unwrap();
        assert_eq!(set.to_fields_v1(), s);
    }

    #[test]
    fn dot_entries_first() {
        let s = r#"{"f:metadata":{"f:labels":{".":{},"f:app":{}}},"f:spec":{"f:containers":{"k:{\"name\":\"nginx\"}":{".":{},"f:image":{},"f:name":{}}}}}"#;
        let set = FieldSet::from_fields_v1_str(s).unwrap();
        assert_eq!(set.to_fields_v1(), s);
        assert!(set.has(&p(&["f:metadata", "f:labels"]).0));
        assert!(set.has(&p(&["f:metadata", "f:labels", "f:app"]).0));
        assert!(!set.has(&p(&["f:metadata"]).0));
        let paths: Vec<String> = set.paths().iter().map(|p| p.to_string()).collect();
        assert_eq!(
            paths,
            vec![
                ".metadata.labels",
                ".metadata.labels.app",
                ".spec.containers[name=\"nginx\"]",
                ".spec.containers[name=\"nginx\"].image",
                ".spec.containers[name=\"nginx\"].name",
            ]
        );
    }

    #[test]
    fn unknown_kinds_dropped() {
        let set = FieldSet::from_fields_v1_str(r#"{"f:aaa":{},"r:aab":{}}"#).unwrap();
        assert_eq!(set.to_fields_v1(), r#"{"f:aaa":{}}"#);
        assert!(FieldSet::from_fields_v1_str(r#"{"x":{}}"#).is_err());
        assert!(FieldSet::from_fields_v1_str(r#"{"fa":{}}"#).is_err());
        assert!(FieldSet::from_fields_v1(&json!([])).is_err());
    }

    #[test]
    fn key_serialization_sorted_and_escaped() {
        let pe = PathElement::key([
            ("protocol".to_string(), json!("TCP")),
            ("containerPort".to_string(), json!(80)),
        ]);
        assert_eq!(pe.serialize(), r#"k:{"containerPort":80,"protocol":"TCP"}"#);
        assert_eq!(pe.to_string(), r#"[containerPort=80,protocol="TCP"]"#);
        let v = PathElement::Value(json!("a<b"));
        assert_eq!(v.serialize(), r#"v:"a\u003cb""#);
        assert_eq!(v.to_string(), r#"[="a<b"]"#);
        assert_eq!(PathElement::Index(3).to_string(), "[3]");
    }

    #[test]
    fn set_operations() {
        let a = FieldSet::from_paths([p(&["f:a", "f:b"]), p(&["f:a", "f:c"]), p(&["f:x"])]);
        let b = FieldSet::from_paths([p(&["f:a", "f:c"]), p(&["f:y"])]);
        assert_eq!(
            a.union(&b).to_fields_v1(),
            r#"{"f:a":{"f:b":{},"f:c":{}},"f:x":{},"f:y":{}}"#
        );
        assert_eq!(a.intersection(&b).to_fields_v1(), r#"{"f:a":{"f:c":{}}}"#);
        assert_eq!(
            a.difference(&b).to_fields_v1(),
            r#"{"f:a":{"f:b":{}},"f:x":{}}"#
        );
        // Difference keeps children of removed parents; recursive difference
        // drops them.
        let parent = FieldSet::from_paths([p(&["f:a"])]);
        assert_eq!(a.difference(&parent), a);
        assert_eq!(
            a.recursive_difference(&parent).to_fields_v1(),
            r#"{"f:x":{}}"#
        );
        let mut both = a.clone();
        both.insert(&p(&["f:a"]).0);
        assert_eq!(
            both.leaves().to_fields_v1(),
            r#"{"f:a":{"f:b":{},"f:c":{}},"f:x":{}}"#
        );
        assert!(FieldSet::new().is_empty());
        assert!(a.intersection(&FieldSet::new()).is_empty());
    }

    #[test]
    fn element_order() {
        let mut v = [
            PathElement::Index(1),
            PathElement::Value(json!(true)),
            PathElement::Value(json!("aa")),
            PathElement::Value(json!(3)),
            PathElement::key([("name", json!("first"))]),
            PathElement::field("b"),
            PathElement::field("a"),
        ];
        v.sort();
        let s: Vec<String> = v.iter().map(|e| e.serialize()).collect();
        assert_eq!(
            s,
            vec![
                "f:a",
                "f:b",
                r#"k:{"name":"first"}"#,
                "v:3",
                r#"v:"aa""#,
                "v:true",
                "i:1"
            ]
        );
    }
}
