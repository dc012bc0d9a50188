//! The type graph that describes object shapes for strategic merge patch and
//! server-side apply.
//!
//! A [`TypeGraph`] is an arena of types addressed by [`TypeId`]. Types may be
//! named (and looked up by name) or anonymous; recursive shapes are built by
//! [`TypeGraph::declare`]-ing a name first and [`TypeGraph::define`]-ing it
//! later. Every graph starts with three built-in types:
//!
//! - [`TypeId::SCALAR`]: a string, number, boolean or null leaf;
//! - [`TypeId::UNTYPED`]: arbitrary JSON, "deduced" from the value the way
//!   structured-merge-diff does it: objects are granular maps whose entries
//!   are untyped again, lists are atomic, everything else is a scalar;
//! - [`TypeId::UNTYPED_ATOMIC`]: arbitrary JSON owned and replaced as a whole.
//!
//! # Unknown fields
//!
//! A key of a [`TypeDef::Struct`] that has no [`Field`] entry is treated as
//! [`TypeId::UNTYPED_ATOMIC`]: server-side apply owns it as one leaf (any
//! change to it is a change of the whole value), and a strategic merge patch
//! merges it like a plain JSON merge patch (objects recursively, lists
//! replaced). Nothing is rejected because it is missing from the schema.
//!
//! # Example
//!
//! ```
//! use merge::schema::{Field, ListType, StructDef, TypeGraph, TypeId};
//!
//! let mut g = TypeGraph::new();
//! let container = g.add_struct(
//!     "Container",
//!     StructDef::new().scalar("name").scalar("image"),
//! );
//! let containers = g.list(container, ListType::map(["name"]));
//! let spec = g.add_struct(
//!     "PodSpec",
//!     StructDef::new().field(
//!         "containers",
//!         Field::new(containers).strategy("merge").merge_key("name"),
//!     ),
//! );
//! assert_eq!(g.lookup("PodSpec"), Some(spec));
//! ```

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;

/// Handle of a type inside a [`TypeGraph`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TypeId(u32);

/// A reference from one type to another; the same thing as a [`TypeId`].
pub type TypeRef = TypeId;

impl TypeId {
    /// The built-in scalar type.
    pub const SCALAR: TypeId = TypeId(0);
    /// The built-in deduced untyped type (granular objects, atomic lists).
    pub const UNTYPED: TypeId = TypeId(1);
    /// The built-in atomic untyped type (the whole value is one leaf).
    pub const UNTYPED_ATOMIC: TypeId = TypeId(2);

    /// The position of this type in its graph.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// How the items of a list relate to each other (`x-kubernetes-list-type`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListType {
    /// The list is replaced and owned as a whole.
    Atomic,
    /// A set of scalars: each distinct value is owned separately.
    Set,
    /// An associative list of objects identified by the given key fields.
    Map {
        /// The key fields (`x-kubernetes-list-map-keys`), in schema order.
        keys: Vec<String>,
    },
}

impl ListType {
    /// A list-map keyed by the given fields.
    pub fn map<I, S>(keys: I) -> ListType
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        ListType::Map {
            keys: keys.into_iter().map(Into::into).collect(),
        }
    }
}

/// One type of the graph.
#[derive(Clone, Debug, PartialEq)]
pub enum TypeDef {
    /// A string, number, boolean or null.
    Scalar,
    /// Arbitrary JSON. With `atomic` the whole value is one leaf; without, the
    /// shape is deduced from the value (objects granular, lists atomic).
    Untyped {
        /// Whether the value is owned and replaced as a whole.
        atomic: bool,
    },
    /// An object with known fields.
    Struct {
        /// The known fields by JSON name.
        fields: BTreeMap<String, Field>,
        /// `x-kubernetes-map-type: atomic` / `+structType=atomic`.
        atomic: bool,
    },
    /// An object with arbitrary keys whose values share one type.
    Map {
        /// The type of every value.
        values: TypeRef,
        /// `x-kubernetes-map-type: atomic`.
        atomic: bool,
    },
    /// A JSON array.
    List {
        /// The type of every item.
        items: TypeRef,
        /// How items relate to each other.
        list_type: ListType,
    },
}

/// A field of a struct: its type and its strategic-merge-patch metadata.
#[derive(Clone, Debug, PartialEq)]
pub struct Field {
    /// The type of the field's value.
    pub ty: TypeRef,
    /// `patchStrategy` split on commas, e.g. `["merge"]`, `["merge",
    /// "retainKeys"]`, `["replace"]`, `["retainKeys"]`; empty for none.
    pub patch_strategy: Vec<String>,
    /// `patchMergeKey`, for lists merged by key.
    pub patch_merge_key: Option<String>,
    /// The default value of the field, used when it is the key of a list-map
    /// and an item omits it (like `protocol: TCP` of container ports).
    pub default: Option<Value>,
    /// Whether the field is present in the zero value of its struct (a Go
    /// non-pointer struct, or a field serialized without `omitempty`). Only
    /// affects which fields an object creation reports as newly added
    /// containers (the `.` entries of `fieldsV1`); see
    /// [`TypeGraph::zero_value`].
    pub present_in_zero: bool,
}

impl Field {
    /// A field of the given type with no patch metadata.
    pub fn new(ty: TypeRef) -> Field {
        Field {
            ty,
            patch_strategy: Vec::new(),
            patch_merge_key: None,
            default: None,
            present_in_zero: false,
        }
    }

    /// Sets the patch strategy from its tag form (`"merge"`,
    /// `"merge,retainKeys"`, ...).
    pub fn strategy(mut self, strategy: &str) -> Field {
        self.patch_strategy = strategy
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        self
    }

    /// Sets the patch merge key.
    pub fn merge_key(mut self, key: &str) -> Field {
        self.patch_merge_key = Some(key.to_string());
        self
    }

    /// Sets the default value.
    pub fn default_value(mut self, value: Value) -> Field {
        self.default = Some(value);
        self
    }

    /// Marks the field as present in the zero value of its struct.
    pub fn in_zero(mut self) -> Field {
        self.present_in_zero = true;
        self
    }
}

impl From<TypeId> for Field {
    fn from(ty: TypeId) -> Field {
        Field::new(ty)
    }
}

/// Builder for a [`TypeDef::Struct`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StructDef {
    fields: BTreeMap<String, Field>,
    atomic: bool,
}

impl StructDef {
    /// An empty, granular struct.
    pub fn new() -> StructDef {
        StructDef::default()
    }

    /// Adds a field (a [`TypeId`] or a [`Field`] with metadata).
    pub fn field(mut self, name: &str, field: impl Into<Field>) -> StructDef {
        self.fields.insert(name.to_string(), field.into());
        self
    }

    /// Adds a scalar field.
    pub fn scalar(self, name: &str) -> StructDef {
        self.field(name, TypeId::SCALAR)
    }

    /// Makes the struct atomic.
    pub fn atomic(mut self) -> StructDef {
        self.atomic = true;
        self
    }

    /// The finished type definition.
    pub fn build(self) -> TypeDef {
        TypeDef::Struct {
            fields: self.fields,
            atomic: self.atomic,
        }
    }
}

impl From<StructDef> for TypeDef {
    fn from(s: StructDef) -> TypeDef {
        s.build()
    }
}

/// An arena of named and anonymous types.
#[derive(Clone, Debug)]
pub struct TypeGraph {
    types: Vec<(Option<String>, TypeDef)>,
    names: HashMap<String, TypeId>,
}

impl Default for TypeGraph {
    fn default() -> Self {
        TypeGraph::new()
    }
}

/// What an out-of-range [`TypeId`] resolves to.
static FALLBACK: TypeDef = TypeDef::Untyped { atomic: true };

impl TypeGraph {
    /// A graph holding only the built-in types.
    pub fn new() -> TypeGraph {
        TypeGraph {
            types: vec![
                (None, TypeDef::Scalar),
                (None, TypeDef::Untyped { atomic: false }),
                (None, TypeDef::Untyped { atomic: true }),
            ],
            names: HashMap::new(),
        }
    }

    /// Number of types in the graph (built-ins included).
    pub fn len(&self) -> usize {
        self.types.len()
    }

    /// Whether the graph holds only the built-in types.
    pub fn is_empty(&self) -> bool {
        self.types.len() <= 3
    }

    /// Adds a type, named or anonymous. Adding a name twice points the name
    /// at the newer type.
    pub fn add(&mut self, name: Option<&str>, def: impl Into<TypeDef>) -> TypeId {
        let id = TypeId(self.types.len() as u32);
        self.types.push((name.map(str::to_string), def.into()));
        if let Some(n) = name {
            self.names.insert(n.to_string(), id);
        }
        id
    }

    /// Adds a named struct.
    pub fn add_struct(&mut self, name: &str, def: StructDef) -> TypeId {
        self.add(Some(name), def.build())
    }

    /// Adds an anonymous list type.
    pub fn list(&mut self, items: TypeRef, list_type: ListType) -> TypeId {
        self.add(None, TypeDef::List { items, list_type })
    }

    /// Adds an anonymous granular map type.
    pub fn map(&mut self, values: TypeRef) -> TypeId {
        self.add(
            None,
            TypeDef::Map {
                values,
                atomic: false,
            },
        )
    }

    /// Adds an anonymous atomic map type.
    pub fn atomic_map(&mut self, values: TypeRef) -> TypeId {
        self.add(
            None,
            TypeDef::Map {
                values,
                atomic: true,
            },
        )
    }

    /// Reserves a named type whose definition comes later through
    /// [`TypeGraph::define`] (for recursive types). Until then it behaves as
    /// [`TypeId::UNTYPED_ATOMIC`]. Declaring an existing name returns it.
    pub fn declare(&mut self, name: &str) -> TypeId {
        if let Some(id) = self.names.get(name) {
            return *id;
        }
        self.add(Some(name), TypeDef::Untyped { atomic: true })
    }

    /// Sets (or replaces) the definition of a type. Ids outside the graph
    /// and the built-in types are left alone.
    pub fn define(&mut self, id: TypeId, def: impl Into<TypeDef>) {
        if id.index() < 3 {
            return;
        }
        if let Some(slot) = self.types.get_mut(id.index()) {
            slot.1 = def.into();
        }
    }

    /// Finds a named type.
    pub fn lookup(&self, name: &str) -> Option<TypeId> {
        self.names.get(name).copied()
    }

    /// The name of a type, if it has one.
    pub fn name(&self, id: TypeId) -> Option<&str> {
        self.types.get(id.index()).and_then(|t| t.0.as_deref())
    }

    /// The definition of a type; unknown ids resolve to atomic untyped.
    pub fn get(&self, id: TypeId) -> &TypeDef {
        self.types
            .get(id.index())
            .map(|t| &t.1)
            .unwrap_or(&FALLBACK)
    }

    /// The field `name` of struct `id`, if both exist.
    pub fn field(&self, id: TypeId, name: &str) -> Option<&Field> {
        match self.get(id) {
            TypeDef::Struct { fields, .. } => fields.get(name),
            _ => None,
        }
    }

    /// The zero value of a type as an empty Go object of it would serialize:
    /// structs hold their [`Field::present_in_zero`] fields (nested structs
    /// as their own zero value, everything else as `null`); any other type
    /// is `null`. Server-side apply compares a created object against the
    /// zero value of its root type.
    pub fn zero_value(&self, id: TypeId) -> Value {
        self.zero_value_depth(id, 0)
    }

    fn zero_value_depth(&self, id: TypeId, depth: usize) -> Value {
        match self.get(id) {
            TypeDef::Struct { fields, .. } if depth < 64 => {
                let mut out = serde_json::Map::new();
                for (name, f) in fields {
                    if !f.present_in_zero {
                        continue;
                    }
                    let v = match self.get(f.ty) {
                        TypeDef::Struct { .. } => self.zero_value_depth(f.ty, depth + 1),
                        _ => Value::Null,
                    };
                    out.insert(name.clone(), v);
                }
                Value::Object(out)
            }
            _ => Value::Null,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn builtins_and_lookup() {
        let mut g = TypeGraph::new();
        assert!(g.is_empty());
        assert_eq!(g.get(TypeId::SCALAR), &TypeDef::Scalar);
        assert_eq!(g.get(TypeId::UNTYPED), &TypeDef::Untyped { atomic: false });
        assert_eq!(g.get(TypeId(999)), &TypeDef::Untyped { atomic: true });
        let s = g.add_struct("S", StructDef::new().scalar("a"));
        assert_eq!(g.lookup("S"), Some(s));
        assert_eq!(g.name(s), Some("S"));
        assert!(g.field(s, "a").is_some());
        assert!(g.field(s, "b").is_none());
    }

    #[test]
    fn strategy_parsing() {
        let f = Field::new(TypeId::SCALAR).strategy("merge,retainKeys");
        assert_eq!(f.patch_strategy, vec!["merge", "retainKeys"]);
        let f = Field::new(TypeId::SCALAR).strategy("replace");
        assert_eq!(f.patch_strategy, vec!["replace"]);
    }

    #[test]
    fn recursive_types() {
        let mut g = TypeGraph::new();
        let node = g.declare("Node");
        let children = g.list(node, ListType::Atomic);
        g.define(
            node,
            StructDef::new().scalar("name").field("children", children),
        );
        assert_eq!(g.declare("Node"), node);
        assert!(matches!(g.get(node), TypeDef::Struct { .. }));
    }

    #[test]
    fn zero_values() {
        let mut g = TypeGraph::new();
        let meta = g.add_struct("Meta", StructDef::new().scalar("name"));
        let containers = g.list(TypeId::UNTYPED, ListType::Atomic);
        let spec = g.add_struct(
            "Spec",
            StructDef::new()
                .field("containers", Field::new(containers).in_zero())
                .scalar("replicas"),
        );
        let root = g.add_struct(
            "Root",
            StructDef::new()
                .field("metadata", Field::new(meta).in_zero())
                .field("spec", Field::new(spec).in_zero()),
        );
        assert_eq!(
            g.zero_value(root),
            json!({"metadata": {}, "spec": {"containers": null}})
        );
        assert_eq!(g.zero_value(TypeId::SCALAR), Value::Null);
    }
}
