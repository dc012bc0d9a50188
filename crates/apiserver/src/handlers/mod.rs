//! The generic REST handler: one code path for every resource, parameterised by the
//! catalog entry and the kind's strategy.
//!
//! - [`read`]: get and list (with selectors, pagination, resourceVersion semantics).
//! - [`watch`]: watch streams.
//! - [`write`]: create, update (PUT) and patch (json, merge, strategic, apply).
//! - [`delete`]: delete (graceful, preconditions, finalizers, propagation) and
//!   deletecollection.
//! - [`subresource`]: scale, binding and the other special endpoints.

#[cfg(test)]
mod csr_tests;
pub mod delete;
pub mod read;
pub mod subresource;
pub mod watch;
pub mod write;

use crate::auth::User;
use crate::convert;
use crate::error::{ApiError, ApiResult, Target};
use crate::negotiate::{self, Output};
use crate::registry::ResourceStore;
use crate::request::{Query, ResourceRequest};
use crate::table::{self, IncludeObject};
use crate::{Body, Server};
use bytes::Bytes;
use http::{HeaderMap, Response, StatusCode};
use resources::{Backing, ResourceInfo};
use serde_json::Value;
use std::sync::Arc;

/// Everything a handler needs to know about the request.
#[derive(Clone, Copy)]
pub struct Ctx<'a> {
    /// The server.
    pub server: &'a Arc<Server>,
    /// The caller.
    pub user: &'a User,
    /// What was asked for.
    pub req: &'a ResourceRequest,
    /// Query parameters.
    pub query: &'a Query,
    /// The catalog entry of the requested group/version/resource.
    pub info: &'static ResourceInfo,
    /// The representation to answer with.
    pub output: Output,
    /// Request headers.
    pub headers: &'a HeaderMap,
    /// Warnings for the client (`Warning` response headers).
    pub warnings: &'a parking_lot::Mutex<Vec<String>>,
}

impl Ctx<'_> {
    /// Adds warnings for the client.
    pub fn warn(&self, items: impl IntoIterator<Item = String>) {
        self.warnings.lock().extend(items);
    }

    /// The error target of this request.
    pub fn target(&self) -> Target {
        Target {
            group: self.info.group.to_string(),
            resource: self.info.plural.to_string(),
            name: self.req.name.clone(),
        }
    }

    /// The error target for a named object.
    pub fn target_named(&self, name: &str) -> Target {
        Target {
            name: name.to_string(),
            ..self.target()
        }
    }

    /// The resource's store.
    pub fn store(&self) -> ApiResult<&Arc<ResourceStore>> {
        self.server
            .registry
            .for_resource(self.info)
            .ok_or_else(|| ApiError::method_not_supported(&self.target(), self.req.verb))
    }

    /// Whether objects of the requested version are stored as they are served.
    pub fn is_storage_version(&self) -> bool {
        match self.info.backing {
            Backing::Stored {
                storage_version, ..
            } => storage_version == (self.info.group, self.info.version),
            _ => true,
        }
    }

    /// The namespace the request is about ("" for cluster-scoped resources).
    pub fn namespace(&self) -> &str {
        if self.info.namespaced() {
            &self.req.namespace
        } else {
            ""
        }
    }

    /// An object from storage converted to the requested version.
    pub fn served(&self, stored: Value) -> Value {
        if self.is_storage_version() {
            stored
        } else {
            convert::from_storage(self.info, stored)
        }
    }

    /// Encodes one object (given as served JSON bytes in the storage version).
    pub fn object_response(&self, code: StatusCode, json: &Bytes) -> ApiResult<Response<Body>> {
        if self.output == Output::Json && self.is_storage_version() {
            return Ok(bytes_response(code, "application/json", json.clone()));
        }
        let v: Value = serde_json::from_slice(json).map_err(ApiError::internal)?;
        self.value_response(code, self.served(v))
    }

    /// Encodes one object given as a value in the requested version.
    pub fn value_response(&self, code: StatusCode, obj: Value) -> ApiResult<Response<Body>> {
        let body = match self.output {
            Output::Json | Output::Discovery(_) => {
                serde_json::to_vec(&obj).map_err(ApiError::internal)?
            }
            Output::Yaml => negotiate::to_yaml(&obj),
            Output::PartialMetadata(v) => {
                serde_json::to_vec(&table::partial_metadata(&obj, v)).map_err(ApiError::internal)?
            }
            Output::Table(v) => {
                let list_meta = serde_json::json!({
                    "resourceVersion": obj["metadata"]["resourceVersion"].clone(),
                });
                let t = table::table(
                    self.info,
                    std::slice::from_ref(&obj),
                    v,
                    IncludeObject::parse(self.query.get("includeObject")),
                    list_meta,
                    false,
                );
                serde_json::to_vec(&t).map_err(ApiError::internal)?
            }
        };
        Ok(bytes_response(
            code,
            &self.output.content_type(),
            Bytes::from(body),
        ))
    }
}

/// A response with a body.
pub fn bytes_response(code: StatusCode, content_type: &str, body: Bytes) -> Response<Body> {
    let mut r = Response::new(crate::full(body));
    *r.status_mut() = code;
    if let Ok(v) = http::HeaderValue::from_str(content_type) {
        r.headers_mut().insert(http::header::CONTENT_TYPE, v);
    }
    r
}

/// A JSON response.
pub fn json_response(code: StatusCode, v: &Value) -> Response<Body> {
    bytes_response(
        code,
        "application/json",
        Bytes::from(serde_json::to_vec(v).unwrap_or_default()),
    )
}

/// The response for an error.
pub fn error_response(err: &ApiError) -> Response<Body> {
    json_response(
        StatusCode::from_u16(err.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        &err.status(),
    )
}

/// Handles a resource request.
pub async fn handle(
    server: &Arc<Server>,
    user: &User,
    req: &ResourceRequest,
    query: &Query,
    headers: &HeaderMap,
    body: Bytes,
) -> ApiResult<Response<Body>> {
    let info = resources::find(&req.group, &req.version, &req.resource)
        .ok_or_else(ApiError::path_not_found)?;
    let accept = headers
        .get(http::header::ACCEPT)
        .and_then(|v| v.to_str().ok());
    let output = negotiate::choose(accept, false)?;
    let warnings = parking_lot::Mutex::new(Vec::new());
    let ctx = Ctx {
        server,
        user,
        req,
        query,
        info,
        output,
        headers,
        warnings: &warnings,
    };
    let mut response = dispatch(&ctx, body).await?;
    for w in warnings.into_inner() {
        let text = format!("299 - {}", serde_json::Value::String(w));
        if let Ok(v) = http::HeaderValue::from_str(&text) {
            response.headers_mut().append(http::header::WARNING, v);
        }
    }
    Ok(response)
}

async fn dispatch(ctx: &Ctx<'_>, body: Bytes) -> ApiResult<Response<Body>> {
    let (info, req) = (ctx.info, ctx.req);
    if info.namespaced() && req.namespace.is_empty() && !matches!(req.verb, "list" | "watch") {
        // Namespaced objects are addressed within a namespace.
        return Err(ApiError::path_not_found());
    }
    if !req.subresource.is_empty() {
        return subresource::handle(ctx, body).await;
    }
    if !info.allows(req.verb) {
        return Err(ApiError::method_not_supported(&ctx.target(), req.verb));
    }
    match info.backing {
        Backing::Virtual if info.kind == "Binding" => {
            return subresource::bind(ctx, body, "").await
        }
        Backing::Virtual => return crate::reviews::create(ctx, body).await,
        Backing::Computed => return crate::reviews::computed(ctx).await,
        Backing::Stored { .. } => {}
    }
    match req.verb {
        "get" => read::get(ctx).await,
        "list" => read::list(ctx).await,
        "watch" => watch::watch(ctx).await,
        "create" => write::create(ctx, body).await,
        "update" => write::update(ctx, body, write::Endpoint::Main).await,
        "patch" => write::patch(ctx, body, write::Endpoint::Main).await,
        "delete" => delete::delete(ctx, body).await,
        "deletecollection" => delete::delete_collection(ctx, body).await,
        _ => Err(ApiError::method_not_supported(&ctx.target(), req.verb)),
    }
}
