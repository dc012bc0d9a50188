//! Compact object shapes for the checks every write runs: which fields a type declares
//! (for `fieldValidation`'s unknown-field check) and which are required (filled with
//! their zero values before typed validation). Built once from the definitions into
//! index-linked tables with sorted field names, so a check is one descent through the
//! object with binary searches and no allocation unless something is found.

use crate::defs::{Definitions, Gvk, REF_PREFIX};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};

/// A field of a struct shape.
struct FieldShape {
    name: Box<str>,
    ty: usize,
    /// Set when the field is required: the value a missing one gets.
    zero: Option<Value>,
}

enum Shape {
    /// Fields sorted by name.
    Struct(Box<[FieldShape]>),
    /// Arbitrary keys, values of one shape.
    Map(usize),
    /// Items of one shape.
    List(usize),
    /// Scalars and free-form JSON: nothing to check below.
    Leaf,
}

/// All shapes and the root shape of every served kind.
pub struct Shapes {
    shapes: Vec<Shape>,
    roots: HashMap<Gvk, usize>,
}

const LEAF: usize = 0;

struct Builder<'a> {
    shapes: Vec<Shape>,
    named: HashMap<&'a str, usize>,
    schemas: &'a BTreeMap<String, Value>,
}

fn reference(schema: &Value) -> Option<&str> {
    if let Some(r) = schema["$ref"].as_str() {
        return r.strip_prefix(REF_PREFIX);
    }
    schema["allOf"]
        .as_array()
        .filter(|a| a.len() == 1)
        .and_then(|a| a[0]["$ref"].as_str())
        .and_then(|r| r.strip_prefix(REF_PREFIX))
}

impl<'a> Builder<'a> {
    fn named(&mut self, name: &'a str) -> usize {
        if let Some(i) = self.named.get(name) {
            return *i;
        }
        let Some(schema) = self.schemas.get(name) else {
            return LEAF;
        };
        // Reserve the slot first: definitions refer to themselves (JSONSchemaProps).
        let i = self.shapes.len();
        self.shapes.push(Shape::Leaf);
        self.named.insert(name, i);
        let shape = self.shape_of(schema);
        self.shapes[i] = shape;
        i
    }

    fn anonymous(&mut self, schema: &'a Value) -> usize {
        if let Some(name) = reference(schema) {
            return self.named(name);
        }
        match self.shape_of(schema) {
            Shape::Leaf => LEAF,
            s => {
                self.shapes.push(s);
                self.shapes.len() - 1
            }
        }
    }

    fn shape_of(&mut self, schema: &'a Value) -> Shape {
        if let Some(props) = schema["properties"].as_object() {
            let required: Vec<&str> = schema["required"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            let mut fields: Vec<FieldShape> = props
                .iter()
                .map(|(name, p)| FieldShape {
                    name: name.as_str().into(),
                    ty: self.anonymous(p),
                    zero: required
                        .contains(&name.as_str())
                        .then(|| zero_of(self.schemas, p, 0)),
                })
                .collect();
            fields.sort_by(|a, b| a.name.cmp(&b.name));
            return Shape::Struct(fields.into_boxed_slice());
        }
        if schema.get("x-kubernetes-int-or-string").is_some() {
            return Shape::Leaf;
        }
        match schema["type"].as_str() {
            Some("array") => match self.anonymous(&schema["items"]) {
                LEAF => Shape::Leaf,
                i => Shape::List(i),
            },
            Some("object") => match schema.get("additionalProperties") {
                Some(ap @ Value::Object(_)) => match self.anonymous(ap) {
                    LEAF => Shape::Leaf,
                    i => Shape::Map(i),
                },
                _ => Shape::Leaf,
            },
            _ => Shape::Leaf,
        }
    }
}

/// The zero value of a schema (what Go holds for a missing field).
fn zero_of(schemas: &BTreeMap<String, Value>, schema: &Value, depth: usize) -> Value {
    if let Some(name) = reference(schema) {
        return match schemas.get(name) {
            Some(s) if depth < 32 => zero_of(schemas, s, depth + 1),
            _ => json!({}),
        };
    }
    match schema["type"].as_str() {
        Some("string") => json!(""),
        Some("integer") | Some("number") => json!(0),
        Some("boolean") => json!(false),
        Some("array") => json!([]),
        _ if schema.get("x-kubernetes-int-or-string").is_some() => json!(0),
        _ => json!({}),
    }
}

/// The shapes, built on first use (with the type graph, from one set of definitions).
pub fn shapes() -> &'static Shapes {
    &crate::tables().shapes
}

/// Builds the shapes from the definitions.
pub(crate) fn build(defs: &Definitions) -> Shapes {
    let mut b = Builder {
        shapes: vec![Shape::Leaf],
        named: HashMap::new(),
        schemas: &defs.schemas,
    };
    let mut roots = HashMap::new();
    for (gvk, name) in &defs.kinds {
        roots.insert(*gvk, b.named(name.as_str()));
    }
    Shapes {
        shapes: b.shapes,
        roots,
    }
}

/// One step of a path being walked.
#[derive(Clone, Copy)]
enum Seg<'v> {
    Field(&'v str),
    Index(usize),
}

fn render(path: &[Seg<'_>], last: &str) -> String {
    let mut out = String::new();
    for s in path {
        match s {
            Seg::Field(f) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(f);
            }
            Seg::Index(i) => {
                out.push('[');
                out.push_str(&i.to_string());
                out.push(']');
            }
        }
    }
    if !out.is_empty() {
        out.push('.');
    }
    out.push_str(last);
    out
}

impl Shapes {
    fn root(&self, group: &str, version: &str, kind: &str) -> Option<usize> {
        self.roots
            .iter()
            .find(|((g, v, k), _)| *g == group && *v == version && *k == kind)
            .map(|(_, i)| *i)
    }

    fn field(&self, shape: usize, name: &str) -> Option<&FieldShape> {
        match &self.shapes[shape] {
            Shape::Struct(fields) => fields
                .binary_search_by(|f| (*f.name).cmp(name))
                .ok()
                .map(|i| &fields[i]),
            _ => None,
        }
    }

    /// Field paths (`spec.replica`, `spec.containers[0].imagex`) of `obj` that the
    /// kind does not declare; None if the kind is unknown.
    pub fn unknown_fields(&self, gvk: (&str, &str, &str), obj: &Value) -> Option<Vec<String>> {
        let root = self.root(gvk.0, gvk.1, gvk.2)?;
        let mut out = Vec::new();
        let mut path = Vec::new();
        self.walk_unknown(root, obj, &mut path, &mut out);
        Some(out)
    }

    fn walk_unknown<'v>(
        &self,
        shape: usize,
        v: &'v Value,
        path: &mut Vec<Seg<'v>>,
        out: &mut Vec<String>,
    ) {
        match (&self.shapes[shape], v) {
            (Shape::Struct(_), Value::Object(m)) => {
                for (k, x) in m {
                    match self.field(shape, k) {
                        Some(f) if f.ty != LEAF => {
                            path.push(Seg::Field(k));
                            self.walk_unknown(f.ty, x, path, out);
                            path.pop();
                        }
                        Some(_) => {}
                        None => out.push(render(path, k)),
                    }
                }
            }
            (Shape::Map(values), Value::Object(m)) => {
                for (k, x) in m {
                    path.push(Seg::Field(k));
                    self.walk_unknown(*values, x, path, out);
                    path.pop();
                }
            }
            (Shape::List(items), Value::Array(a)) => {
                for (i, x) in a.iter().enumerate() {
                    path.push(Seg::Index(i));
                    self.walk_unknown(*items, x, path, out);
                    path.pop();
                }
            }
            _ => {}
        }
    }

    /// Adds the fields `obj` lacks but its kind requires, with their zero values, at
    /// every level (what decoding into Go structs does).
    pub fn fill_required(&self, gvk: (&str, &str, &str), obj: &mut Value) {
        if let Some(root) = self.root(gvk.0, gvk.1, gvk.2) {
            self.fill(root, obj, 0);
        }
    }

    fn fill(&self, shape: usize, v: &mut Value, depth: usize) {
        if depth > 64 {
            return;
        }
        match (&self.shapes[shape], v) {
            (Shape::Struct(fields), Value::Object(m)) => {
                for f in fields.iter() {
                    if let Some(zero) = &f.zero {
                        if m.get(&*f.name).is_none_or(Value::is_null) {
                            m.insert(f.name.to_string(), zero.clone());
                        }
                    }
                }
                for (k, x) in m.iter_mut() {
                    if let Some(f) = self.field(shape, k) {
                        if f.ty != LEAF {
                            self.fill(f.ty, x, depth + 1);
                        }
                    }
                }
            }
            (Shape::Map(values), Value::Object(m)) => {
                for x in m.values_mut() {
                    self.fill(*values, x, depth + 1);
                }
            }
            (Shape::List(items), Value::Array(a)) => {
                for x in a {
                    self.fill(*items, x, depth + 1);
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_fields_match_the_graph_walk() {
        let s = shapes();
        let obj = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x", "bogus": 1, "labels": {"a": "b"}},
            "spec": {"replica": 2, "template": {"spec": {"containers": [{"name": "c", "imagex": "y", "env": [{"name": "A", "valu": "1"}]}]}}}});
        let mut u = s
            .unknown_fields(("apps", "v1", "Deployment"), &obj)
            .unwrap();
        u.sort();
        assert_eq!(
            u,
            vec![
                "metadata.bogus",
                "spec.replica",
                "spec.template.spec.containers[0].env[0].valu",
                "spec.template.spec.containers[0].imagex"
            ]
        );
        let labels = json!({"metadata": {"labels": {"any": "thing"}, "annotations": {"a": "b"}}});
        assert!(s
            .unknown_fields(("apps", "v1", "Deployment"), &labels)
            .unwrap()
            .is_empty());
        assert!(s.unknown_fields(("no", "v1", "Such"), &obj).is_none());
    }

    #[test]
    fn fills_like_the_definition_walk() {
        let s = shapes();
        let mut d = json!({"spec": {"template": {"spec": {"containers": [{"image": "x"}]}}}});
        s.fill_required(("apps", "v1", "Deployment"), &mut d);
        assert_eq!(d["spec"]["selector"], json!({}));
        assert_eq!(d["spec"]["template"]["spec"]["containers"][0]["name"], "");
        let mut svc = json!({"spec": {"ports": [{"targetPort": 80}]}});
        s.fill_required(("", "v1", "Service"), &mut svc);
        assert_eq!(svc["spec"]["ports"][0]["port"], 0);
    }
}
