//! Managed fields, strategic merge patch and server-side apply: the bridge between
//! the REST handlers and the `merge` crate.
//!
//! Until that crate is wired in, writes leave `managedFields` as clients send them and
//! strategic-merge and apply patches are refused with a clear error.

use crate::error::{ApiError, ApiResult};
use crate::handlers::write::Endpoint;
use crate::handlers::Ctx;
use crate::Body;
use http::Response;
use serde_json::Value;

/// Records field ownership on create.
pub fn on_create(_ctx: &Ctx<'_>, _obj: &mut Value) -> ApiResult<()> {
    Ok(())
}

/// Records field ownership on update.
pub fn on_update(
    _ctx: &Ctx<'_>,
    _old: &Value,
    _new: &mut Value,
    _endpoint: Endpoint,
) -> ApiResult<()> {
    Ok(())
}

/// Server-side apply.
pub async fn apply(
    _ctx: &Ctx<'_>,
    _patch: Value,
    _endpoint: Endpoint,
) -> ApiResult<Response<Body>> {
    Err(ApiError::unsupported_media_type(
        "application/apply-patch+yaml",
    ))
}

/// Applies a strategic merge patch.
pub fn strategic_patch(_ctx: &Ctx<'_>, _current: &Value, _patch: &Value) -> Result<Value, String> {
    Err("strategic merge patch is not supported by this server yet".into())
}
