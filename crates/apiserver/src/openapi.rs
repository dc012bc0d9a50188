//! Serving the OpenAPI documents: `/openapi/v2` and `/openapi/v3` (the index and one
//! document per group version). Documents are built on first request and kept as
//! bytes; the v3 index carries a content hash per document so clients cache them.

use crate::error::{ApiError, ApiResult};
use crate::handlers::bytes_response;
use crate::Body;
use bytes::Bytes;
use http::{Response, StatusCode};
use std::collections::BTreeMap;
use std::sync::OnceLock;

struct Docs {
    v3: BTreeMap<String, Bytes>,
    hashes: BTreeMap<String, String>,
}

fn docs() -> &'static Docs {
    static D: OnceLock<Docs> = OnceLock::new();
    D.get_or_init(|| {
        let mut v3 = BTreeMap::new();
        let mut hashes = BTreeMap::new();
        let defs = schema::defs::definitions();
        for (g, v) in schema::openapi::group_versions() {
            if let Some(doc) = schema::openapi::v3_group_version(&defs, g, v) {
                let bytes = Bytes::from(serde_json::to_vec(&doc).unwrap_or_default());
                let path = schema::openapi::group_version_path(g, v);
                hashes.insert(path.clone(), schema::openapi::hash(&bytes));
                v3.insert(path, bytes);
            }
        }
        Docs { v3, hashes }
    })
}

/// The v2 document as JSON and as gnostic protobuf.
fn v2_docs() -> &'static (Bytes, Bytes) {
    static D: OnceLock<(Bytes, Bytes)> = OnceLock::new();
    D.get_or_init(|| {
        let doc = schema::openapi::v2(&schema::defs::definitions());
        (
            Bytes::from(serde_json::to_vec(&doc).unwrap_or_default()),
            Bytes::from(schema::v2proto::encode(&doc)),
        )
    })
}

/// Media type of the protobuf OpenAPI v2 document.
const V2_PROTOBUF: &str = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";

fn accepts_v2_protobuf(accept: Option<&str>) -> bool {
    accept.is_some_and(|a| {
        a.split(',').any(|m| {
            let essence = m.split(';').next().unwrap_or("").trim();
            essence.starts_with("application/com.github.proto-openapi.spec.v2")
        })
    })
}

fn accepts_json(accept: Option<&str>) -> bool {
    match accept {
        None => true,
        Some(a) => a.split(',').any(|m| {
            let essence = m.split(';').next().unwrap_or("").trim();
            matches!(essence, "application/json" | "*/*" | "application/*" | "")
        }),
    }
}

/// `/openapi/v2`.
pub fn v2(accept: Option<&str>) -> ApiResult<Response<Body>> {
    if accepts_v2_protobuf(accept) {
        return Ok(bytes_response(
            StatusCode::OK,
            V2_PROTOBUF,
            v2_docs().1.clone(),
        ));
    }
    if !accepts_json(accept) {
        return Err(ApiError::not_acceptable(accept.unwrap_or("")));
    }
    Ok(bytes_response(
        StatusCode::OK,
        "application/json",
        v2_docs().0.clone(),
    ))
}

/// `/openapi/v3` (empty `path`) or `/openapi/v3/<path>`.
pub fn v3(path: &str, accept: Option<&str>) -> ApiResult<Response<Body>> {
    if !accepts_json(accept) {
        return Err(ApiError::not_acceptable(accept.unwrap_or("")));
    }
    let d = docs();
    if path.is_empty() {
        let index = schema::openapi::v3_index(&d.hashes);
        return Ok(bytes_response(
            StatusCode::OK,
            "application/json",
            Bytes::from(serde_json::to_vec(&index).unwrap_or_default()),
        ));
    }
    let doc = d.v3.get(path).ok_or_else(ApiError::path_not_found)?;
    let mut r = bytes_response(StatusCode::OK, "application/json", doc.clone());
    r.headers_mut().insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("public, immutable"),
    );
    Ok(r)
}
