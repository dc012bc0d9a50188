//! Server-side printing: objects as `meta.k8s.io` Tables (what `kubectl get` shows)
//! and as PartialObjectMetadata.

use resources::ResourceInfo;
use serde_json::{json, Value};

/// What each Table row carries besides its cells (`includeObject`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IncludeObject {
    /// No object.
    None,
    /// PartialObjectMetadata (the default).
    Metadata,
    /// The full object.
    Object,
}

impl IncludeObject {
    /// Parses the query parameter.
    pub fn parse(v: Option<&str>) -> IncludeObject {
        match v {
            Some("None") => IncludeObject::None,
            Some("Object") => IncludeObject::Object,
            _ => IncludeObject::Metadata,
        }
    }
}

/// The printer for a resource: its own, or upstream's fallback for built-ins.
fn printer(info: &ResourceInfo) -> &'static printers::Printer {
    printers::printer_for(info.group, info.plural).unwrap_or_else(printers::created_at_printer)
}

/// PartialObjectMetadata of an object.
pub fn partial_metadata(obj: &Value, version: &str) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": format!("meta.k8s.io/{version}"),
        "metadata": obj.get("metadata").cloned().unwrap_or_else(|| json!({})),
    })
}

/// PartialObjectMetadata of an object given as JSON, rendered as JSON: the object's
/// `metadata` is copied as it is, without parsing the rest of the object.
pub fn partial_metadata_json(json: &[u8], version: &str) -> Option<Vec<u8>> {
    #[derive(serde::Deserialize)]
    struct Meta<'a> {
        #[serde(borrow)]
        metadata: Option<&'a serde_json::value::RawValue>,
    }
    let m: Meta<'_> = serde_json::from_slice(json).ok()?;
    let meta = m.metadata.map_or("{}", |r| r.get());
    let mut out = Vec::with_capacity(meta.len() + 80);
    out.extend_from_slice(b"{\"apiVersion\":\"meta.k8s.io/");
    out.extend_from_slice(version.as_bytes());
    out.extend_from_slice(b"\",\"kind\":\"PartialObjectMetadata\",\"metadata\":");
    out.extend_from_slice(meta.as_bytes());
    out.push(b'}');
    Some(out)
}

/// A PartialObjectMetadataList.
pub fn partial_metadata_list(objs: &[Value], version: &str, list_meta: Value) -> Value {
    json!({
        "kind": "PartialObjectMetadataList",
        "apiVersion": format!("meta.k8s.io/{version}"),
        "metadata": list_meta,
        "items": objs.iter().map(|o| {
            let mut p = partial_metadata(o, version);
            if let Some(m) = p.as_object_mut() {
                m.remove("kind");
                m.remove("apiVersion");
            }
            p
        }).collect::<Vec<_>>(),
    })
}

/// A Table of `objs`.
pub fn table(
    info: &ResourceInfo,
    objs: &[Value],
    version: &str,
    include: IncludeObject,
    list_meta: Value,
    no_headers: bool,
) -> Value {
    let p = printer(info);
    let now = jiff::Timestamp::now();
    let rows: Vec<Value> = objs
        .iter()
        .map(|o| {
            let mut row = json!({ "cells": p.cells(o, now) });
            if let Some(c) = printers::row_conditions(info.group, info.plural, o) {
                row["conditions"] = c;
            }
            match include {
                IncludeObject::None => {}
                IncludeObject::Metadata => row["object"] = partial_metadata(o, version),
                IncludeObject::Object => row["object"] = o.clone(),
            }
            row
        })
        .collect();
    let mut t = json!({
        "kind": "Table",
        "apiVersion": format!("meta.k8s.io/{version}"),
        "metadata": list_meta,
        "rows": rows,
    });
    if !no_headers {
        t["columnDefinitions"] = p.columns_json();
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_metadata_from_json_matches_the_parsed_form() {
        let obj = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "a", "namespace": "ns", "resourceVersion": "7",
                         "labels": {"x": "y"}, "ownerReferences": [{"uid": "u"}]},
            "spec": {"containers": [{"name": "c", "image": "i"}]},
        });
        let bytes = serde_json::to_vec(&obj).unwrap();
        let fast: Value =
            serde_json::from_slice(&partial_metadata_json(&bytes, "v1").unwrap()).unwrap();
        assert_eq!(fast, partial_metadata(&obj, "v1"));
        let none: Value =
            serde_json::from_slice(&partial_metadata_json(b"{\"kind\":\"X\"}", "v1beta1").unwrap())
                .unwrap();
        assert_eq!(none["metadata"], json!({}));
        assert_eq!(none["apiVersion"], "meta.k8s.io/v1beta1");
        assert!(partial_metadata_json(b"{not json", "v1").is_none());
    }
}
