//! GET of one object and LIST of a collection: label and field selectors,
//! `limit`/`continue` pagination, and the `resourceVersion`/`resourceVersionMatch`
//! semantics of the Kubernetes API, served from the watch cache.

use super::{bytes_response, Ctx};
use crate::error::{ApiError, ApiResult};
use crate::negotiate::{self, Output};
use crate::registry::{Entry, Item};
use crate::table::{self, IncludeObject};
use crate::Body;
use apimachinery::{fields, labels};
use base64::Engine;
use bytes::{BufMut, Bytes, BytesMut};
use http::{Response, StatusCode};
use resources::Strategy;
use serde_json::{json, Value};
use store::cacher::CachedItem;
use store::{ListOptions, ReadAt, Revision};

/// GET one object.
pub async fn get(ctx: &Ctx<'_>) -> ApiResult<Response<Body>> {
    let store = ctx.store()?;
    let key = store.key(ctx.namespace(), &ctx.req.name);
    let item = store
        .cache
        .get_cached(&key)
        .await
        .map_err(|e| ApiError::from_store(e, &ctx.target()))?
        .ok_or_else(|| ApiError::not_found(&ctx.target()))?;
    ctx.object_response(StatusCode::OK, &item.extra.json)
}

/// Label and field selectors of a request, validated.
pub struct Selectors {
    /// The label selector.
    pub labels: labels::Selector,
    /// The field selector.
    pub fields: fields::Selector,
}

impl Selectors {
    /// Parses `labelSelector` and `fieldSelector` (and the name of a single-object
    /// watch), refusing field labels the kind does not support.
    pub fn parse(ctx: &Ctx<'_>, strategy: &dyn Strategy) -> ApiResult<Selectors> {
        let labels = match ctx.query.get("labelSelector") {
            Some(s) => {
                labels::Selector::parse(s).map_err(|e| ApiError::bad_request(e.to_string()))?
            }
            None => labels::Selector::everything(),
        };
        let mut fields = match ctx.query.get("fieldSelector") {
            Some(s) => {
                fields::Selector::parse(s).map_err(|e| ApiError::bad_request(e.to_string()))?
            }
            None => fields::Selector::everything(),
        };
        if !ctx.req.name.is_empty() {
            let by_name = fields::Selector::one_term_equal("metadata.name", &ctx.req.name);
            fields =
                fields::Selector::parse(&join_selectors(&fields.to_string(), &by_name.to_string()))
                    .map_err(|e| ApiError::bad_request(e.to_string()))?;
        }
        for r in fields.requirements() {
            let known = matches!(r.field.as_str(), "metadata.name" | "metadata.namespace")
                || strategy.field_labels().contains(&r.field.as_str())
                || strategy
                    .selectable_fields(&Value::Null)
                    .iter()
                    .any(|(k, _)| *k == r.field);
            if !known {
                return Err(ApiError::bad_request(format!(
                    "field label not supported: {}",
                    r.field
                )));
            }
        }
        Ok(Selectors { labels, fields })
    }

    /// Whether no selector was given.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty() && self.fields.is_empty()
    }

    /// Whether a cached object matches.
    pub fn matches(&self, entry: &Entry, strategy: &dyn Strategy) -> bool {
        if self.is_empty() {
            return true;
        }
        let attrs = entry.attrs(strategy);
        self.labels.matches(&attrs.labels) && self.fields.matches(|f| attrs.field(f))
    }
}

fn join_selectors(a: &str, b: &str) -> String {
    match (a.is_empty(), b.is_empty()) {
        (true, _) => b.to_string(),
        (_, true) => a.to_string(),
        _ => format!("{a},{b}"),
    }
}

/// A parsed `resourceVersion` parameter.
pub fn parse_rv(s: &str) -> ApiResult<Revision> {
    s.parse::<Revision>()
        .ok()
        .filter(|r| *r >= 0)
        .ok_or_else(|| ApiError::bad_request(format!("invalid resource version: {s:?}")))
}

/// How a list must read, from `resourceVersion` and `resourceVersionMatch`.
pub fn read_at(ctx: &Ctx<'_>) -> ApiResult<ReadAt> {
    let rv = ctx.query.get("resourceVersion").filter(|s| !s.is_empty());
    let rvm = ctx
        .query
        .get("resourceVersionMatch")
        .filter(|s| !s.is_empty());
    Ok(match (rv, rvm) {
        (None, None) => ReadAt::Latest,
        (None, Some(_)) => {
            return Err(ApiError::bad_request(
                "resourceVersionMatch is forbidden unless resourceVersion is provided",
            ))
        }
        (Some(rv), None | Some("NotOlderThan")) => ReadAt::NotOlderThan(parse_rv(rv)?),
        (Some("0"), Some("Exact")) => {
            return Err(ApiError::bad_request(
                "resourceVersionMatch \"Exact\" is forbidden for resourceVersion \"0\"",
            ))
        }
        (Some(rv), Some("Exact")) => ReadAt::Exact(parse_rv(rv)?),
        (Some(_), Some(other)) => {
            return Err(ApiError::bad_request(format!(
                "invalid value for resourceVersionMatch: {other:?}"
            )))
        }
    })
}

/// The continue token format (as upstream's): resource version and next start key,
/// relative to the listed prefix.
pub fn encode_continue(rv: Revision, start: &str) -> String {
    let token = json!({"v": "meta.k8s.io/v1", "rv": rv, "start": start});
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(token.to_string())
}

fn decode_continue(token: &str) -> ApiResult<(Revision, String)> {
    let bad = || {
        ApiError::bad_request("continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)")
    };
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token.trim_end_matches('='))
        .map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
    if v["v"] != "meta.k8s.io/v1" {
        return Err(bad());
    }
    let rv = v["rv"].as_i64().filter(|r| *r > 0).ok_or_else(bad)?;
    let start = v["start"].as_str().ok_or_else(bad)?.to_string();
    if start.starts_with('/') || start.split('/').any(|s| s == "..") {
        return Err(bad());
    }
    Ok((rv, start))
}

/// LIST a collection.
pub async fn list(ctx: &Ctx<'_>) -> ApiResult<Response<Body>> {
    let store = ctx.store()?;
    let strategy = store.strategy;
    let selectors = Selectors::parse(ctx, strategy)?;
    let limit = ctx.query.int("limit")?.unwrap_or(0).max(0) as usize;
    let prefix = store.prefix(ctx.namespace());
    let (at, start) = match ctx.query.str("continue") {
        Some(token) => {
            if ctx.query.str("resourceVersion").is_some_and(|rv| rv != "0") {
                return Err(ApiError::bad_request(
                    "specifying resource version is not allowed when using continue",
                ));
            }
            let (rv, start) = decode_continue(token)?;
            (ReadAt::Exact(rv), Some(format!("{prefix}{start}")))
        }
        None => (read_at(ctx)?, None),
    };
    let filter = |item: &CachedItem<Entry>| selectors.matches(&item.extra, strategy);
    let result = store
        .cache
        .list_filtered(
            &prefix,
            ListOptions { at, start, limit },
            if selectors.is_empty() { None } else { Some(&filter) },
        )
        .await
        .map_err(|e| match e {
            store::StoreError::Compacted { .. } if ctx.query.str("continue").is_some() => ApiError::gone(
                "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.",
            ),
            e => ApiError::from_store(e, &ctx.target()),
        })?;
    let mut list_meta = json!({"resourceVersion": result.revision.to_string()});
    if result.more {
        if let Some(last) = &result.last_key {
            let rel = last.strip_prefix(&prefix).unwrap_or(last);
            list_meta["continue"] = json!(encode_continue(result.revision, &format!("{rel}\0")));
        }
        if selectors.is_empty() && result.remaining > 0 {
            list_meta["remainingItemCount"] = json!(result.remaining);
        }
    }
    list_response(ctx, &result.items, list_meta)
}

/// Encodes a list of cached objects in the negotiated representation.
pub fn list_response(ctx: &Ctx<'_>, items: &[Item], list_meta: Value) -> ApiResult<Response<Body>> {
    if ctx.output == Output::Json && ctx.is_storage_version() {
        // Fast path: the cached bytes, concatenated lazily in chunks as the body is
        // sent, so copying overlaps with encryption and the first bytes leave at once.
        let head = json!({
            "kind": format!("{}List", ctx.info.kind),
            "apiVersion": ctx.info.api_version(),
            "metadata": list_meta,
        });
        let mut head = serde_json::to_vec(&head).map_err(ApiError::internal)?;
        head.pop();
        head.extend_from_slice(b",\"items\":[");
        return Ok(chunked_list(head, items.to_vec()));
    }
    let objs: Vec<Value> = items.iter().map(|i| ctx.served(i.extra.value())).collect();
    let body = match ctx.output {
        Output::Table(v) => table::table(
            ctx.info,
            &objs,
            v,
            IncludeObject::parse(ctx.query.get("includeObject")),
            list_meta,
            false,
        ),
        Output::PartialMetadata(v) => table::partial_metadata_list(&objs, v, list_meta),
        _ => json!({
            "kind": format!("{}List", ctx.info.kind),
            "apiVersion": ctx.info.api_version(),
            "metadata": list_meta,
            "items": objs,
        }),
    };
    let bytes = if ctx.output == Output::Yaml {
        negotiate::to_yaml(&body)
    } else {
        serde_json::to_vec(&body).map_err(ApiError::internal)?
    };
    Ok(bytes_response(
        StatusCode::OK,
        &ctx.output.content_type(),
        Bytes::from(bytes),
    ))
}

/// Size of the pieces a JSON list is sent in.
const LIST_CHUNK: usize = 256 * 1024;

/// A list response whose body is produced piece by piece from the cached items.
fn chunked_list(head: Vec<u8>, items: Vec<Item>) -> Response<Body> {
    use http_body_util::{BodyExt, StreamBody};
    use hyper::body::Frame;
    struct State {
        head: Option<Vec<u8>>,
        items: std::vec::IntoIter<Item>,
        first: bool,
        done: bool,
    }
    let state = State {
        head: Some(head),
        items: items.into_iter(),
        first: true,
        done: false,
    };
    let stream = futures::stream::unfold(state, |mut st| async move {
        if st.done {
            return None;
        }
        let mut buf = BytesMut::with_capacity(LIST_CHUNK + 8192);
        if let Some(h) = st.head.take() {
            buf.put_slice(&h);
        }
        while buf.len() < LIST_CHUNK {
            match st.items.next() {
                Some(item) => {
                    if !st.first {
                        buf.put_u8(b',');
                    }
                    st.first = false;
                    buf.put_slice(&item.extra.json);
                }
                None => {
                    buf.put_slice(b"]}");
                    st.done = true;
                    break;
                }
            }
        }
        Some((
            Ok::<_, std::convert::Infallible>(Frame::data(buf.freeze())),
            st,
        ))
    });
    let mut r = Response::new(BodyExt::boxed(StreamBody::new(stream)));
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continue_tokens_round_trip() {
        let t = encode_continue(42, "default/web-1\0");
        assert_eq!(
            decode_continue(&t).unwrap(),
            (42, "default/web-1\0".to_string())
        );
        assert!(decode_continue("garbage").is_err());
        let evil = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(json!({"v": "meta.k8s.io/v1", "rv": 1, "start": "../x"}).to_string());
        assert!(decode_continue(&evil).is_err());
    }
}
