//! WATCH: a stream of `{"type":..., "object":...}` lines.
//!
//! Without a resourceVersion (or with "0") the stream starts with synthetic ADDED
//! events for the current state; with one it resumes after it. Selectors turn updates
//! into ADDED/DELETED when an object enters or leaves the selection, BOOKMARK events
//! are sent when asked for, and `sendInitialEvents=true` ends the initial state with a
//! bookmark annotated `k8s.io/initial-events-end`. A resourceVersion too old to resume
//! from ends the stream with an ERROR event carrying 410 Expired, as upstream does.

use super::read::{parse_rv, Selectors};
use super::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::negotiate::Output;
use crate::registry::{Entry, Item};
use crate::table::{self, IncludeObject};
use crate::Body;
use bytes::Bytes;
use futures::StreamExt;
use http::{Response, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use resources::{ResourceInfo, Strategy};
use serde_json::json;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};
use store::cacher::CachedWatchItem;
use store::{EventKind, ListOptions, ReadAt, Revision};
use tokio::sync::mpsc;

/// Least time between two bookmarks of one watch.
const BOOKMARK_INTERVAL: Duration = Duration::from_secs(5);

/// How events are rendered for one watch.
struct Renderer {
    info: &'static ResourceInfo,
    output: Output,
    storage_version: bool,
    include: IncludeObject,
}

impl Renderer {
    fn object(&self, entry: &Entry) -> Option<Bytes> {
        if self.output == Output::Json && self.storage_version {
            return Some(entry.json.clone());
        }
        if let Output::PartialMetadata(ver) = self.output {
            // Metadata is the same in every version: no conversion, no full parse.
            return table::partial_metadata_json(&entry.json, ver).map(Bytes::from);
        }
        let mut v = entry.value();
        if !self.storage_version {
            v = crate::convert::from_storage(self.info, v);
        }
        let out = match self.output {
            Output::Table(ver) => {
                let meta = json!({"resourceVersion": v["metadata"]["resourceVersion"].clone()});
                table::table(
                    self.info,
                    std::slice::from_ref(&v),
                    ver,
                    self.include,
                    meta,
                    false,
                )
            }
            // (PartialMetadata returned above.)
            _ => v,
        };
        serde_json::to_vec(&out).ok().map(Bytes::from)
    }

    fn event(&self, kind: &str, entry: &Entry) -> Option<Bytes> {
        let obj = self.object(entry)?;
        let mut line = Vec::with_capacity(obj.len() + 32);
        line.extend_from_slice(b"{\"type\":\"");
        line.extend_from_slice(kind.as_bytes());
        line.extend_from_slice(b"\",\"object\":");
        line.extend_from_slice(&obj);
        line.extend_from_slice(b"}\n");
        Some(Bytes::from(line))
    }

    fn bookmark(&self, rv: Revision, initial_end: bool) -> Bytes {
        let mut meta = json!({"resourceVersion": rv.to_string()});
        if initial_end {
            meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        let obj = match self.output {
            Output::Table(ver) => json!({
                "kind": "Table", "apiVersion": format!("meta.k8s.io/{ver}"),
                "metadata": {"resourceVersion": rv.to_string()}, "rows": [],
            }),
            Output::PartialMetadata(ver) => json!({
                "kind": "PartialObjectMetadata", "apiVersion": format!("meta.k8s.io/{ver}"),
                "metadata": meta,
            }),
            _ => json!({
                "kind": self.info.kind, "apiVersion": self.info.api_version(), "metadata": meta,
            }),
        };
        let mut line =
            serde_json::to_vec(&json!({"type": "BOOKMARK", "object": obj})).unwrap_or_default();
        line.push(b'\n');
        Bytes::from(line)
    }

    fn error(&self, err: &ApiError) -> Bytes {
        let mut line = serde_json::to_vec(&json!({"type": "ERROR", "object": err.status()}))
            .unwrap_or_default();
        line.push(b'\n');
        Bytes::from(line)
    }
}

/// The default watch length: between 30 and 60 minutes, as upstream randomizes it.
fn default_timeout() -> Duration {
    let jitter = uuid::Uuid::new_v4().as_u128() % 1800;
    Duration::from_secs(1800 + jitter as u64)
}

/// WATCH a collection (or one object by name).
pub async fn watch(ctx: &Ctx<'_>) -> ApiResult<Response<Body>> {
    let store = ctx.store()?.clone();
    let strategy = store.strategy;
    let selectors = Selectors::parse(ctx, strategy)?;
    let timeout = match ctx.query.int("timeoutSeconds")? {
        Some(s) if s > 0 => Duration::from_secs(s as u64),
        _ => default_timeout(),
    };
    let bookmarks = ctx.query.flag("allowWatchBookmarks");
    let send_initial = ctx.query.get("sendInitialEvents");
    let rv = ctx.query.str("resourceVersion");
    let rvm = ctx.query.str("resourceVersionMatch");
    let prefix = store.prefix(ctx.namespace());
    // Whether to start with the current state, and from which revision to read it.
    let initial: Option<ReadAt> = match send_initial {
        Some("true") => {
            if rvm != Some("NotOlderThan") || !bookmarks {
                return Err(ApiError::invalid(
                    "ListOptions",
                    "meta.k8s.io",
                    "",
                    &[apimachinery::FieldError::forbidden(
                        &apimachinery::Path::new("sendInitialEvents"),
                        "sendInitialEvents is forbidden for watch unless the WatchList feature gate is enabled and resourceVersionMatch is NotOlderThan and allowWatchBookmarks is true",
                    )],
                ));
            }
            Some(match rv {
                None => ReadAt::Latest,
                Some(r) => ReadAt::NotOlderThan(parse_rv(r)?),
            })
        }
        Some("false") => None,
        _ => match rv {
            None => Some(ReadAt::Latest),
            Some("0") => Some(ReadAt::NotOlderThan(0)),
            Some(_) => None,
        },
    };
    let initial_end_bookmark = send_initial == Some("true");
    let renderer = Renderer {
        info: ctx.info,
        output: ctx.output,
        storage_version: ctx.is_storage_version(),
        include: IncludeObject::parse(ctx.query.get("includeObject")),
    };
    let target = ctx.target();
    let (start_rev, initial_items): (Revision, Vec<Item>) = match initial {
        Some(at) => {
            let filter =
                |item: &store::cacher::CachedItem<Entry>| selectors.matches(&item.extra, strategy);
            let list = store
                .cache
                .list_filtered(
                    &prefix,
                    ListOptions {
                        at,
                        start: None,
                        limit: 0,
                    },
                    Some(&filter),
                )
                .await
                .map_err(|e| ApiError::from_store(e, &target))?;
            (list.revision, list.items)
        }
        None => (parse_rv(rv.unwrap_or("0"))?, Vec::new()),
    };
    let stream = store.cache.watch_cached(&prefix, start_rev).await;
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    let content_type = ctx.output.content_type();
    tokio::spawn(async move {
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        for item in &initial_items {
            if let Some(line) = renderer.event("ADDED", &item.extra) {
                if tx.send(line).await.is_err() {
                    return;
                }
            }
        }
        if initial_end_bookmark && tx.send(renderer.bookmark(start_rev, true)).await.is_err() {
            return;
        }
        let mut stream = match stream {
            Ok(s) => s,
            Err(e) => {
                let _ = tx
                    .send(renderer.error(&watch_error(e, start_rev, &target)))
                    .await;
                return;
            }
        };
        let mut last_bookmark = Instant::now();
        loop {
            let item = tokio::select! {
                item = stream.next() => item,
                _ = &mut deadline => return,
                _ = tx.closed() => return,
            };
            let line = match item {
                None => return,
                Some(Err(e)) => Some(renderer.error(&watch_error(e, start_rev, &target))),
                Some(Ok(CachedWatchItem::Progress(rev))) => {
                    if bookmarks && last_bookmark.elapsed() >= BOOKMARK_INTERVAL {
                        last_bookmark = Instant::now();
                        Some(renderer.bookmark(rev, false))
                    } else {
                        None
                    }
                }
                Some(Ok(CachedWatchItem::Event(ev))) => event_type(&ev, &selectors, strategy)
                    .and_then(|kind| renderer.event(kind, &ev.item.extra)),
            };
            if let Some(line) = line {
                let is_error = line.starts_with(b"{\"type\":\"ERROR\"");
                if tx.send(line).await.is_err() || is_error {
                    return;
                }
            }
        }
    });
    let body = StreamBody::new(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<_, Infallible>(Frame::data(b)), rx))
    }));
    let mut resp = Response::new(BodyExt::boxed(body));
    *resp.status_mut() = StatusCode::OK;
    if let Ok(v) = http::HeaderValue::from_str(&content_type) {
        resp.headers_mut().insert(http::header::CONTENT_TYPE, v);
    }
    Ok(resp)
}

fn watch_error(e: store::StoreError, start: Revision, target: &crate::error::Target) -> ApiError {
    match e {
        store::StoreError::Compacted { compacted, .. } => {
            ApiError::gone(format!("too old resource version: {start} ({compacted})"))
        }
        e => ApiError::from_store(e, target),
    }
}

/// The watch event type of a change for a selection, or None if it is not visible.
fn event_type(
    ev: &Arc<store::cacher::CachedEvent<Entry>>,
    selectors: &Selectors,
    strategy: &dyn Strategy,
) -> Option<&'static str> {
    let now = selectors.matches(&ev.item.extra, strategy);
    match ev.kind {
        EventKind::Created => now.then_some("ADDED"),
        EventKind::Deleted => now.then_some("DELETED"),
        EventKind::Updated => {
            let before = ev
                .prev
                .as_ref()
                .is_some_and(|p| selectors.matches(&p.extra, strategy));
            match (before, now) {
                (true, true) => Some("MODIFIED"),
                (false, true) => Some("ADDED"),
                (true, false) => Some("DELETED"),
                (false, false) => None,
            }
        }
    }
}
