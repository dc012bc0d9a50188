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
use std::sync::Arc;

use serde_json::{Map, Value};
use thiserror::Error;

use crate::goval::{smd_compare, smd_equals, smd_to_string, write_go_json, write_go_json_string};

pub use crate::typed::field_set_of;

/// How deep `serde_json` nests objects before refusing a document.
const MAX_READ_DEPTH: usize = 127;

/// `a.cmp(b)`, deciding on the first byte without a call to `memcmp` when
/// it can (field names mostly differ there).
pub(crate) fn quick_cmp(a: &str, b: &str) -> Ordering {
    match (a.as_bytes().first(), b.as_bytes().first()) {
        (Some(x), Some(y)) if x != y => x.cmp(y),
        _ => a.cmp(b),
    }
}

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
    /// A struct field or map key (`f:<name>`). Shared, so that copies of
    /// an element do not copy the name.
    Field(Arc<str>),
    /// A list-map item selected by its key fields, sorted by name
    /// (`k:{"name":"nginx"}`). Shared like field names.
    Key(Arc<[(String, Value)]>),
    /// A set item selected by its value (`v:"a"`).
    Value(Value),
    /// A list item selected by index (`i:0`).
    Index(i64),
}

impl PathElement {
    /// A field element.
    pub fn field(name: &str) -> PathElement {
        PathElement::Field(Arc::from(name))
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
        PathElement::Key(Arc::from(fields))
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
            (PathElement::Field(a), PathElement::Field(b)) => quick_cmp(a, b),
            (PathElement::Key(a), PathElement::Key(b)) => {
                for (x, y) in a.iter().zip(b.iter()) {
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
        let mut out = match self {
            PathElement::Field(name) => String::with_capacity(name.len() + 2),
            _ => String::with_capacity(32),
        };
        self.write_key(&mut out);
        out
    }

    /// Appends [`PathElement::serialize`] to `out`.
    pub(crate) fn write_key(&self, out: &mut String) {
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
                    write_go_json_string(name, out);
                    out.push(':');
                    write_go_json(value, out);
                }
                out.push('}');
            }
            PathElement::Value(v) => {
                out.push_str("v:");
                write_go_json(v, out);
            }
            PathElement::Index(i) => {
                out.push_str("i:");
                out.push_str(&i.to_string());
            }
        }
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
            b'f' => Ok(Some(PathElement::field(rest))),
            b'v' => serde_json::from_str::<Value>(rest)
                .map(|v| Some(PathElement::Value(v)))
                .map_err(|e| FieldPathError::BadPathElement(e.to_string())),
            b'k' => {
                if let Some(pe) = parse_simple_key(rest) {
                    return Ok(Some(pe));
                }
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

/// Most keys fields a `k:` element holds, for [`parse_simple_key`].
const SIMPLE_KEY_FIELDS: usize = 8;

/// A value of a simple key: a string without escapes or an unsigned
/// integer, as byte ranges of the text.
#[derive(Clone, Copy)]
enum SimpleValue {
    Str(usize, usize),
    Uint(u64),
}

/// Reads the JSON object of a `k:` element the quick way when it is plain:
/// no whitespace, keys in ascending order, names and string values without
/// escapes or control characters, numbers that are unsigned integers. Gives
/// what reading it as JSON gives, or None for anything else (which then
/// goes through the JSON reader, errors included).
fn parse_simple_key(text: &str) -> Option<PathElement> {
    let b = text.as_bytes();
    let plain_str = |from: usize| -> Option<usize> {
        // Index of the closing quote of a string starting after `from`.
        let mut i = from;
        loop {
            match *b.get(i)? {
                b'"' => return Some(i),
                b'\\' => return None,
                c if c < 0x20 => return None,
                _ => i += 1,
            }
        }
    };
    let mut fields = [((0usize, 0usize), SimpleValue::Uint(0)); SIMPLE_KEY_FIELDS];
    let mut n = 0;
    if b.first() != Some(&b'{') {
        return None;
    }
    let mut i = 1;
    loop {
        if n == SIMPLE_KEY_FIELDS || b.get(i) != Some(&b'"') {
            return None;
        }
        let name_end = plain_str(i + 1)?;
        let name = (i + 1, name_end);
        if n > 0 {
            let (ps, pe) = fields[n - 1].0;
            if b[ps..pe] >= b[name.0..name.1] {
                return None;
            }
        }
        i = name_end + 1;
        if b.get(i) != Some(&b':') {
            return None;
        }
        i += 1;
        let value = match *b.get(i)? {
            b'"' => {
                let end = plain_str(i + 1)?;
                let v = SimpleValue::Str(i + 1, end);
                i = end + 1;
                v
            }
            b'0'..=b'9' => {
                let start = i;
                let mut v: u64 = 0;
                while let Some(d @ b'0'..=b'9') = b.get(i) {
                    v = v.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
                    i += 1;
                }
                if b[start] == b'0' && i - start > 1 {
                    return None;
                }
                SimpleValue::Uint(v)
            }
            _ => return None,
        };
        fields[n] = (name, value);
        n += 1;
        match *b.get(i)? {
            b',' => i += 1,
            b'}' if i + 1 == b.len() => break,
            _ => return None,
        }
    }
    let owned: Arc<[(String, Value)]> = fields[..n]
        .iter()
        .map(|&((ns, ne), v)| {
            let value = match v {
                SimpleValue::Str(vs, ve) => Value::String(text[vs..ve].to_string()),
                SimpleValue::Uint(u) => Value::from(u),
            };
            (text[ns..ne].to_string(), value)
        })
        .collect();
    Some(PathElement::Key(owned))
}

impl PartialEq for PathElement {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (PathElement::Field(a), PathElement::Field(b)) => a == b,
            (PathElement::Key(a), PathElement::Key(b)) => {
                a.len() == b.len()
                    && a.iter()
                        .zip(b.iter())
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

/// Merges two sorted vectors; on equal elements `tie` folds the second
/// into the first.
fn merge_sorted<T>(
    a: Vec<T>,
    b: Vec<T>,
    cmp: impl Fn(&T, &T) -> Ordering,
    mut tie: impl FnMut(&mut T, T),
) -> Vec<T> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let mut bi = b.into_iter().peekable();
    for x in a {
        while let Some(y) = bi.peek() {
            if cmp(y, &x) == Ordering::Less {
                if let Some(y) = bi.next() {
                    out.push(y);
                }
            } else {
                break;
            }
        }
        let mut x = x;
        if let Some(y) = bi.peek() {
            if cmp(&x, y) == Ordering::Equal {
                if let Some(y) = bi.next() {
                    tie(&mut x, y);
                }
            }
        }
        out.push(x);
    }
    out.extend(bi);
    out
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

    /// Removes from `self` the paths of `other`, like
    /// [`FieldSet::difference`] but in place: only the nodes `other` reaches
    /// are looked at.
    pub(crate) fn difference_with(&mut self, other: &FieldSet) {
        for m in &other.members {
            if let Ok(i) = find(&self.members, |x| x, m) {
                self.members.remove(i);
            }
        }
        for (pe, oc) in &other.children {
            if let Ok(i) = find(&self.children, |x| &x.0, pe) {
                let c = &mut self.children[i].1;
                c.difference_with(oc);
                if c.is_empty() {
                    self.children.remove(i);
                }
            }
        }
    }

    /// [`FieldSet::recursive_difference`] in place.
    pub(crate) fn recursive_difference_with(&mut self, other: &FieldSet) {
        for m in &other.members {
            if let Ok(i) = find(&self.members, |x| x, m) {
                self.members.remove(i);
            }
            if let Ok(i) = find(&self.children, |x| &x.0, m) {
                self.children.remove(i);
            }
        }
        for (pe, oc) in &other.children {
            if other.has_member(pe) {
                continue;
            }
            if let Ok(i) = find(&self.children, |x| &x.0, pe) {
                let c = &mut self.children[i].1;
                c.recursive_difference_with(oc);
                if c.is_empty() {
                    self.children.remove(i);
                }
            }
        }
    }

    /// [`FieldSet::union`] in place, taking `other` apart instead of
    /// cloning it. On equal elements the ones of `self` are kept.
    pub(crate) fn union_with(&mut self, other: FieldSet) {
        if other.members.is_empty() && other.children.is_empty() {
            return;
        }
        if self.members.is_empty() && self.children.is_empty() {
            *self = other;
            return;
        }
        if !other.members.is_empty() {
            let mine = std::mem::take(&mut self.members);
            self.members = merge_sorted(mine, other.members, |a, b| a.compare(b), |_, _| {});
        }
        if !other.children.is_empty() {
            let mine = std::mem::take(&mut self.children);
            self.children = merge_sorted(
                mine,
                other.children,
                |a, b| a.0.compare(&b.0),
                |a, b| a.1.union_with(b.1),
            );
        }
    }

    /// Makes room for this many more members and subtrees at this level.
    pub(crate) fn reserve(&mut self, members: usize, children: usize) {
        self.members.reserve(members);
        self.children.reserve(children);
    }

    /// Appends a member without keeping the order; [`FieldSet::normalize`]
    /// must follow unless elements come in order.
    pub(crate) fn push_member(&mut self, pe: PathElement) {
        self.members.push(pe);
    }

    /// Appends a non-empty subtree without keeping the order; see
    /// [`FieldSet::push_member`].
    pub(crate) fn push_child(&mut self, pe: PathElement, set: FieldSet) {
        self.children.push((pe, set));
    }

    /// Restores the order of this level after pushes, merging equal
    /// elements (the first pushed wins, like inserting them one by one).
    pub(crate) fn normalize(&mut self) {
        let strictly_sorted =
            |v: &[PathElement]| v.windows(2).all(|w| w[0].compare(&w[1]) == Ordering::Less);
        if !strictly_sorted(&self.members) {
            self.members.sort_by(|a, b| a.compare(b));
            self.members
                .dedup_by(|later, first| later.compare(first) == Ordering::Equal);
        }
        let children_sorted = self
            .children
            .windows(2)
            .all(|w| w[0].0.compare(&w[1].0) == Ordering::Less);
        if !children_sorted {
            self.children.sort_by(|a, b| a.0.compare(&b.0));
            let distinct = self
                .children
                .windows(2)
                .all(|w| w[0].0.compare(&w[1].0) == Ordering::Less);
            if distinct {
                return;
            }
            let mut merged: Vec<(PathElement, FieldSet)> = Vec::with_capacity(self.children.len());
            for (pe, set) in std::mem::take(&mut self.children) {
                match merged.last_mut() {
                    Some(last) if last.0.compare(&pe) == Ordering::Equal => last.1.union_with(set),
                    _ => merged.push((pe, set)),
                }
            }
            self.children = merged;
        }
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

    /// The `fieldsV1` document as a JSON value (what reading back
    /// [`FieldSet::to_fields_v1`] gives; a document nested deeper than a
    /// JSON reader accepts comes out as `{}`).
    pub fn to_value(&self) -> Value {
        let mut too_deep = false;
        let m = self.value_v1(false, 1, &mut too_deep);
        if too_deep {
            return Value::Object(Map::new());
        }
        Value::Object(m)
    }

    /// Turns `doc` into [`FieldSet::to_value`], reusing what it already
    /// holds: parts of a previous `fieldsV1` document that still match are
    /// left as they are instead of being built again.
    pub(crate) fn write_value(&self, doc: &mut Value) {
        if let Value::Object(m) = doc {
            let mut buf = String::new();
            let mut too_deep = false;
            if self.fix_v1(false, 1, m, &mut buf, &mut too_deep) && !too_deep {
                return;
            }
        }
        *doc = self.to_value();
    }

    /// The keys of the `fieldsV1` object of this node in the order
    /// [`FieldSet::emit_v1`] writes them.
    fn entries_v1(&self, include_self: bool) -> EntriesV1<'_> {
        EntriesV1 {
            set: self,
            dot: include_self && !(self.members.is_empty() && self.children.is_empty()),
            mi: 0,
            ci: 0,
            mj: self.members.len(),
            cj: self.children.len(),
        }
    }

    /// Makes `m` what [`FieldSet::value_v1`] builds for the same arguments,
    /// changing only what differs; false when it gave up (`m` is then left
    /// half done).
    fn fix_v1(
        &self,
        include_self: bool,
        depth: usize,
        m: &mut Map<String, Value>,
        buf: &mut String,
        too_deep: &mut bool,
    ) -> bool {
        if depth >= MAX_READ_DEPTH {
            // Close to the limit: let `value_v1` deal with it.
            return false;
        }
        // Usually the keys are all there and come in writing order: check
        // them side by side, without looking each one up.
        if m.len() == self.entries_v1(include_self).count() {
            let mut in_order = true;
            for ((key, v), entry) in m.iter_mut().zip(self.entries_v1(include_self)) {
                if !entry.key_is(key, buf) {
                    in_order = false;
                    break;
                }
                entry.fix_value(v, depth, buf, too_deep);
            }
            if in_order {
                return true;
            }
        }
        let mut count = 0;
        for entry in self.entries_v1(include_self) {
            count += 1;
            entry.write_key(buf);
            match m.get_mut(buf.as_str()) {
                Some(v) => entry.fix_value(v, depth, buf, too_deep),
                None => {
                    let key = buf.clone();
                    let mut v = Value::Null;
                    entry.fix_value(&mut v, depth, buf, too_deep);
                    m.insert(key, v);
                }
            }
        }
        if m.len() == count {
            return true;
        }
        // Keys the set does not have (or elements written alike): keep
        // only the expected ones, which hold their final values by now.
        let mut old = std::mem::take(m);
        for entry in self.entries_v1(include_self) {
            entry.write_key(buf);
            if m.contains_key(buf.as_str()) {
                continue;
            }
            match old.remove_entry(buf.as_str()) {
                Some((k, v)) => {
                    m.insert(k, v);
                }
                None => return false,
            }
        }
        true
    }

    /// The object of one node, built in the order [`FieldSet::emit_v1`]
    /// writes it (so that a key written twice keeps the later value, like
    /// reading the text does). `depth` is the nesting of the object.
    fn value_v1(
        &self,
        include_self: bool,
        depth: usize,
        too_deep: &mut bool,
    ) -> Map<String, Value> {
        let mut out = Map::new();
        if depth > MAX_READ_DEPTH {
            *too_deep = true;
            return out;
        }
        // Keys go in from the last: they mostly come in ascending order, and
        // a map places a key below all it holds at once. A key written
        // twice keeps its later value, as reading the text does.
        for entry in self.entries_v1(include_self).rev() {
            let v = match entry {
                EntryV1::Leaf(_) => {
                    if depth >= MAX_READ_DEPTH {
                        *too_deep = true;
                    }
                    Map::new()
                }
                EntryV1::Node(_, c, with_self) => c.value_v1(with_self, depth + 1, too_deep),
            };
            if let serde_json::map::Entry::Vacant(slot) = out.entry(entry.key()) {
                slot.insert(Value::Object(v));
            }
        }
        out
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

/// One key of a node's `fieldsV1` object.
#[derive(Clone, Copy)]
enum EntryV1<'a> {
    /// A key whose value is `{}`: `"."` (no element) or a member without
    /// children.
    Leaf(Option<&'a PathElement>),
    /// A key with children; with `"."` among them when it is also a member.
    Node(&'a PathElement, &'a FieldSet, bool),
}

impl EntryV1<'_> {
    fn key(self) -> String {
        match self {
            EntryV1::Leaf(None) => ".".to_string(),
            EntryV1::Leaf(Some(pe)) | EntryV1::Node(pe, _, _) => pe.serialize(),
        }
    }

    /// Whether `key` is this entry's key (`buf` is scratch space).
    fn key_is(self, key: &str, buf: &mut String) -> bool {
        match self {
            EntryV1::Leaf(None) => key == ".",
            EntryV1::Leaf(Some(PathElement::Field(name)))
            | EntryV1::Node(PathElement::Field(name), _, _) => {
                key.len() == name.len() + 2 && key.starts_with("f:") && key[2..] == **name
            }
            _ => {
                self.write_key(buf);
                buf == key
            }
        }
    }

    /// Makes `v`, found under this entry's key in an object at `depth`,
    /// what [`FieldSet::value_v1`] builds for the entry.
    fn fix_value(self, v: &mut Value, depth: usize, buf: &mut String, too_deep: &mut bool) {
        match (self, v) {
            (EntryV1::Leaf(_), Value::Object(o)) if o.is_empty() => {}
            (EntryV1::Leaf(_), v) => *v = Value::Object(Map::new()),
            (EntryV1::Node(_, c, with_self), Value::Object(cm)) => {
                if !c.fix_v1(with_self, depth + 1, cm, buf, too_deep) {
                    *cm = c.value_v1(with_self, depth + 1, too_deep);
                }
            }
            (EntryV1::Node(_, c, with_self), v) => {
                *v = Value::Object(c.value_v1(with_self, depth + 1, too_deep));
            }
        }
    }

    /// Puts the key in `buf` (replacing what it held).
    fn write_key(self, buf: &mut String) {
        buf.clear();
        match self {
            EntryV1::Leaf(None) => buf.push('.'),
            EntryV1::Leaf(Some(pe)) | EntryV1::Node(pe, _, _) => pe.write_key(buf),
        }
    }
}

/// The keys of a node's `fieldsV1` object in writing order.
struct EntriesV1<'a> {
    set: &'a FieldSet,
    dot: bool,
    /// Members and children not yet given out from the front...
    mi: usize,
    ci: usize,
    /// ...and from the back (exclusive ends).
    mj: usize,
    cj: usize,
}

impl<'a> Iterator for EntriesV1<'a> {
    type Item = EntryV1<'a>;

    fn next(&mut self) -> Option<EntryV1<'a>> {
        if self.dot {
            self.dot = false;
            return Some(EntryV1::Leaf(None));
        }
        let set = self.set;
        let m = (self.mi < self.mj).then(|| &set.members[self.mi]);
        let c = (self.ci < self.cj).then(|| &set.children[self.ci]);
        match (m, c) {
            (None, None) => None,
            (Some(m), None) => {
                self.mi += 1;
                Some(EntryV1::Leaf(Some(m)))
            }
            (m, Some((pe, c))) => {
                let order = m.map(|m| m.compare(pe)).unwrap_or(Ordering::Greater);
                if order == Ordering::Less {
                    self.mi += 1;
                    return Some(EntryV1::Leaf(m));
                }
                if order == Ordering::Equal {
                    self.mi += 1;
                }
                self.ci += 1;
                Some(EntryV1::Node(pe, c, order == Ordering::Equal))
            }
        }
    }
}

impl DoubleEndedIterator for EntriesV1<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        let set = self.set;
        let m = (self.mi < self.mj).then(|| &set.members[self.mj - 1]);
        let c = (self.ci < self.cj).then(|| &set.children[self.cj - 1]);
        match (m, c) {
            (None, None) => {
                if self.dot {
                    self.dot = false;
                    return Some(EntryV1::Leaf(None));
                }
                None
            }
            (Some(m), None) => {
                self.mj -= 1;
                Some(EntryV1::Leaf(Some(m)))
            }
            (m, Some((pe, c))) => {
                let order = m.map(|m| m.compare(pe)).unwrap_or(Ordering::Less);
                if order == Ordering::Greater {
                    self.mj -= 1;
                    return Some(EntryV1::Leaf(m));
                }
                if order == Ordering::Equal {
                    self.mj -= 1;
                }
                self.cj -= 1;
                Some(EntryV1::Node(pe, c, order == Ordering::Equal))
            }
        }
    }
}

/// Returns the children set (None when there are none) and whether the node
/// itself is a member.
fn read_v1(doc: &Value) -> Result<(Option<FieldSet>, bool), FieldPathError> {
    let Value::Object(m) = doc else {
        // A non-object value under a key carries no children.
        return Ok((None, true));
    };
    let nested = m
        .values()
        .filter(|v| matches!(v, Value::Object(c) if !c.is_empty()))
        .count();
    let mut set = FieldSet {
        members: Vec::with_capacity(m.len()),
        children: Vec::with_capacity(nested),
    };
    let mut is_member = false;
    for (key, sub) in m {
        if key == "." {
            is_member = true;
            continue;
        }
        let Some(pe) = PathElement::parse(key)? else {
            continue;
        };
        match read_v1(sub)? {
            (Some(grand), child_is_member) => {
                if child_is_member {
                    set.members.push(pe.clone());
                }
                set.children.push((pe, grand));
            }
            (None, _) => set.members.push(pe),
        }
    }
    if set.members.is_empty() && set.children.is_empty() {
        return Ok((None, true));
    }
    // Keys come sorted as text, which is element order except for keys,
    // values and indices; equal elements written differently are merged.
    set.normalize();
    Ok((Some(set), is_member))
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

    #[test]
    fn in_place_operations_match_copying_ones() {
        let a = FieldSet::from_paths([
            p(&["f:a", "f:b"]),
            p(&["f:a"]),
            p(&["f:a", "f:c", "f:d"]),
            p(&["f:x"]),
            p(&[r#"k:{"name":"n"}"#, "f:image"]),
        ]);
        let b = FieldSet::from_paths([
            p(&["f:a", "f:c"]),
            p(&["f:a", "f:c", "f:d"]),
            p(&["f:y"]),
            p(&["f:x", "f:z"]),
            p(&[r#"k:{"name":"n"}"#]),
        ]);
        for (x, y) in [(&a, &b), (&b, &a), (&a, &a), (&a, &FieldSet::new())] {
            let mut d = x.clone();
            d.difference_with(y);
            assert_eq!(d, x.difference(y));
            let mut r = x.clone();
            r.recursive_difference_with(y);
            assert_eq!(r, x.recursive_difference(y));
            let mut u = x.clone();
            u.union_with(y.clone());
            assert_eq!(u, x.union(y));
        }
    }

    #[test]
    fn value_is_the_text_read_back() {
        for s in [
            r#"{"f:metadata":{"f:labels":{".":{},"f:app":{}}},"f:spec":{"f:containers":{"k:{\"name\":\"nginx\"}":{".":{},"f:image":{},"f:name":{}}}}}"#,
            r#"{"f:aaa":{"k:{\"name\":\"second\"}":{"v:3":{"f:aab":{}}},"v:3":{},"v:true":{}},"i:1":{"i:3":{"f:aaf":{}}},"v:\"a\u003cb\"":{}}"#,
        ] {
            let set = FieldSet::from_fields_v1_str(s).unwrap();
            let text: Value = serde_json::from_str(&set.to_fields_v1()).unwrap();
            assert_eq!(set.to_value(), text);
        }
        // Nested deeper than a JSON reader goes: the text does not read
        // back, and the value is empty like before.
        for depth in [126, 127, 128] {
            let path: Vec<PathElement> = (0..depth).map(|_| PathElement::field("a")).collect();
            let set = FieldSet::from_paths([Path(path)]);
            let read = serde_json::from_str(&set.to_fields_v1())
                .unwrap_or_else(|_| Value::Object(Map::new()));
            assert_eq!(set.to_value(), read, "depth {}", depth);
        }
    }

    #[test]
    fn write_value_fixes_a_previous_document() {
        let set = FieldSet::from_fields_v1_str(
            r#"{"f:a":{".":{},"f:b":{}},"f:c":{},"k:{\"a\":2,\"b\":1}":{"f:d":{}}}"#,
        )
        .unwrap();
        let expected = set.to_value();
        for previous in [
            json!({}),
            json!([1]),
            expected.clone(),
            json!({"f:a": {"f:b": {"x": 1}}, "f:c": {"f:zz": {}}, "f:stray": {}}),
            json!({"f:a": 1, "k:{\"b\":1,\"a\":2}": {"f:d": {}}, ".": {}}),
            json!({"f:c": {}, "f:a": {".": {}, "f:b": {}, "f:q": {}}, "k:{\"a\":2,\"b\":1}": {}}),
        ] {
            let mut doc = previous.clone();
            set.write_value(&mut doc);
            assert_eq!(doc, expected, "from {}", previous);
        }
    }

    #[test]
    fn simple_keys_read_like_json() {
        for key in [
            r#"k:{"name":"web"}"#,
            r#"k:{"containerPort":8080,"protocol":"TCP"}"#,
            r#"k:{"port":0,"x":"é"}"#,
            r#"k:{"b":1,"a":2}"#,
            r#"k:{"a":1,"a":2}"#,
            r#"k:{"a":080}"#,
            r#"k:{"a":-1}"#,
            r#"k:{"a":1.5}"#,
            r#"k:{"a":18446744073709551616}"#,
            r#"k:{"a":"x\"y"}"#,
            r#"k:{"a": 1}"#,
            r#"k:{"a":true}"#,
            r#"k:{}"#,
            r#"k:{"a":1}x"#,
            r#"k:{"a":1"#,
            r#"k:[1]"#,
        ] {
            let slow = serde_json::from_str::<Value>(&key[2..])
                .map_err(|e| FieldPathError::BadPathElement(e.to_string()))
                .and_then(|v| match v {
                    Value::Object(m) => Ok(Some(PathElement::key(m))),
                    _ => Err(FieldPathError::BadPathElement(format!(
                        "expected an object in key path element: {}",
                        key
                    ))),
                });
            let fast = PathElement::parse(key);
            assert_eq!(format!("{:?}", fast), format!("{:?}", slow), "{}", key);
        }
    }
}
