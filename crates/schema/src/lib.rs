//! The API's type schema.
//!
//! [`defs`] builds the JSON schema of every served kind from k8s-openapi (with the
//! Kubernetes list, map and patch extensions from `data/`), and [`openapi`] assembles
//! the OpenAPI v2 document and the per-group-version OpenAPI v3 documents kubectl reads
//! for `explain`, client-side validation and to learn which query parameters the
//! server supports.

pub mod defs;
pub mod graph;
pub mod openapi;
pub mod shape;
pub mod v2proto;

/// The tables writes use, built together from one transient set of definitions.
struct Tables {
    graph: graph::ApiGraph,
    shapes: shape::Shapes,
}

fn tables() -> &'static Tables {
    static T: std::sync::OnceLock<Tables> = std::sync::OnceLock::new();
    T.get_or_init(|| {
        let defs = defs::definitions();
        Tables {
            graph: graph::build(&defs),
            shapes: shape::build(&defs),
        }
    })
}
