//! The etcd v3 backend: every [`Storage`](crate::Storage) call maps onto etcd's KV,
//! transaction and watch APIs, as Kubernetes' own etcd3 store does. Creates are a
//! transaction on `create_revision == 0`; updates and conditional deletes compare the
//! `mod_revision` and read the current value back when the comparison fails.

use crate::types::prefix_end;
use crate::{
    Event, EventKind, KeyValue, ListOptions, ListResult, ReadAt, Result, Revision, Storage,
    StoreError, WatchItem, WatchStream, MAX_VALUE_BYTES,
};
use async_trait::async_trait;
use bytes::Bytes;
use etcd_client::{
    Client, CompactionOptions, Compare, CompareOp, ConnectOptions, DeleteOptions, EventType,
    GetOptions, KvClient, Txn, TxnOp, TxnOpResponse, WatchOptions,
};
use futures::StreamExt;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// How often an idle watch asks etcd for a progress notification, so that watchers of
/// quiet prefixes still learn the store's revision.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(200);

/// A store backed by an etcd v3 cluster.
#[derive(Clone)]
pub struct EtcdStore {
    client: Client,
    /// Key-value calls without tonic's 4 MiB default answer limit: a list of a large
    /// prefix (or a watch batch of big objects) is far bigger. Upstream's apiserver
    /// lifts the limit the same way.
    kv: KvClient,
    compacted: Arc<AtomicI64>,
    /// Wakes every watch of this store to request a progress notification.
    progress: Arc<tokio::sync::Notify>,
    /// Whether the server orders requested progress notifications after pending
    /// events (see [`progress_is_ordered`]); if not, none are requested.
    ordered_progress: bool,
}

/// Whether an etcd server version sends requested progress notifications in order
/// with the events of the stream. Older servers answer a progress request with the
/// store's current revision even while events before it are still queued for the
/// stream (etcd issues 15220 and 17507, fixed in 3.4.31 and 3.5.13), which would
/// let a cache claim a revision whose events it has not seen. Upstream Kubernetes
/// gates consistent reads from its watch cache on the same versions.
pub fn progress_is_ordered(version: &str) -> bool {
    let mut parts = version
        .trim_start_matches('v')
        .split(['.', '-', '+'])
        .map(|p| p.parse::<u64>().unwrap_or(0));
    let (major, minor, patch) = (
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
    );
    match (major, minor) {
        (3, 4) => patch >= 31,
        (3, 5) => patch >= 13,
        (3, m) => m >= 6,
        (m, _) => m > 3,
    }
}

impl EtcdStore {
    /// Connects to the given endpoints (e.g. `http://127.0.0.1:2379`).
    pub async fn connect(endpoints: &[String]) -> Result<EtcdStore> {
        let opts = ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(5))
            .with_keep_alive(Duration::from_secs(30), Duration::from_secs(10));
        let client = Client::connect(endpoints, Some(opts))
            .await
            .map_err(map_err)?;
        let status = client
            .maintenance_client()
            .status()
            .await
            .map_err(map_err)?;
        let ordered_progress = progress_is_ordered(status.version());
        if !ordered_progress {
            tracing::info!(
                version = status.version(),
                "etcd orders progress notifications unreliably before 3.4.31/3.5.13: \
                 consistent reads go to etcd instead of the watch cache"
            );
        }
        Ok(EtcdStore {
            kv: client.kv_client().max_decoding_message_size(usize::MAX),
            client,
            compacted: Arc::new(AtomicI64::new(0)),
            progress: Arc::new(tokio::sync::Notify::new()),
            ordered_progress,
        })
    }

    fn note_compacted(&self, rev: Revision) {
        self.compacted.fetch_max(rev, Ordering::AcqRel);
    }

    fn map(&self, err: etcd_client::Error, requested: Revision) -> StoreError {
        let msg = err.to_string();
        if msg.contains("required revision has been compacted") {
            let compacted = self.compacted.load(Ordering::Acquire).max(requested);
            return StoreError::Compacted {
                requested,
                compacted,
            };
        }
        if msg.contains("required revision is a future revision") {
            return StoreError::FutureRevision {
                requested,
                current: 0,
            };
        }
        map_err(err)
    }
}

fn map_err(err: etcd_client::Error) -> StoreError {
    let msg = err.to_string();
    if msg.contains("request is too large") {
        return StoreError::TooLarge {
            size: 0,
            limit: MAX_VALUE_BYTES,
        };
    }
    StoreError::Backend(msg)
}

fn convert(kv: &etcd_client::KeyValue) -> Result<KeyValue> {
    Ok(KeyValue {
        key: kv.key_str().map_err(map_err)?.to_string(),
        value: Bytes::copy_from_slice(kv.value()),
        create_revision: kv.create_revision(),
        mod_revision: kv.mod_revision(),
    })
}

fn header_revision(h: Option<&etcd_client::ResponseHeader>) -> Revision {
    h.map(|h| h.revision()).unwrap_or(0)
}

/// The value read back by the `or_else` branch of a failed transaction.
fn fallback_value(resp: &etcd_client::TxnResponse) -> Result<Option<KeyValue>> {
    for op in resp.op_responses() {
        if let TxnOpResponse::Get(get) = op {
            return get.kvs().first().map(convert).transpose();
        }
    }
    Ok(None)
}

fn check_size(value: &Bytes) -> Result<()> {
    if value.len() > MAX_VALUE_BYTES {
        return Err(StoreError::TooLarge {
            size: value.len(),
            limit: MAX_VALUE_BYTES,
        });
    }
    Ok(())
}

#[async_trait]
impl Storage for EtcdStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        let resp = self.kv.clone().get(key, None).await.map_err(map_err)?;
        resp.kvs().first().map(convert).transpose()
    }

    async fn list(&self, prefix: &str, opts: ListOptions) -> Result<ListResult> {
        let start = match &opts.start {
            Some(s) if s.as_str() > prefix => s.clone(),
            _ => prefix.to_string(),
        };
        let mut get = GetOptions::new().with_range(prefix_end(prefix));
        if opts.limit > 0 {
            get = get.with_limit(opts.limit as i64);
        }
        let requested = match opts.at {
            ReadAt::Exact(r) => r,
            _ => 0,
        };
        if requested > 0 {
            get = get.with_revision(requested);
        }
        let resp = self
            .kv
            .clone()
            .get(start, Some(get))
            .await
            .map_err(|e| self.map(e, requested))?;
        let items = resp.kvs().iter().map(convert).collect::<Result<Vec<_>>>()?;
        let revision = if requested > 0 {
            requested
        } else {
            header_revision(resp.header())
        };
        if let ReadAt::NotOlderThan(min) = opts.at {
            if revision < min {
                return Err(StoreError::FutureRevision {
                    requested: min,
                    current: revision,
                });
            }
        }
        let remaining = (resp.count() as u64).saturating_sub(items.len() as u64);
        Ok(ListResult {
            more: resp.more(),
            remaining: if resp.more() { remaining } else { 0 },
            items,
            revision,
        })
    }

    async fn create(&self, key: &str, value: Bytes) -> Result<Revision> {
        check_size(&value)?;
        let txn = Txn::new()
            .when([Compare::create_revision(key, CompareOp::Equal, 0)])
            .and_then([TxnOp::put(key, value.to_vec(), None)]);
        let resp = self.kv.clone().txn(txn).await.map_err(map_err)?;
        if !resp.succeeded() {
            return Err(StoreError::AlreadyExists {
                key: key.to_string(),
            });
        }
        Ok(header_revision(resp.header()))
    }

    async fn update(
        &self,
        key: &str,
        value: Bytes,
        expected_revision: Revision,
    ) -> Result<Revision> {
        check_size(&value)?;
        let txn = Txn::new()
            .when([Compare::mod_revision(
                key,
                CompareOp::Equal,
                expected_revision,
            )])
            .and_then([TxnOp::put(key, value.to_vec(), None)])
            .or_else([TxnOp::get(key, None)]);
        let resp = self.kv.clone().txn(txn).await.map_err(map_err)?;
        if resp.succeeded() {
            return Ok(header_revision(resp.header()));
        }
        match fallback_value(&resp)? {
            None => Err(StoreError::NotFound {
                key: key.to_string(),
            }),
            Some(cur) => Err(StoreError::Conflict {
                key: key.to_string(),
                expected: expected_revision,
                actual: cur.mod_revision,
                current: Some(Box::new(cur)),
            }),
        }
    }

    async fn delete(
        &self,
        key: &str,
        expected_revision: Option<Revision>,
    ) -> Result<(KeyValue, Revision)> {
        let del = TxnOp::delete(key, Some(DeleteOptions::new().with_prev_key()));
        let txn = match expected_revision {
            Some(rev) => Txn::new()
                .when([Compare::mod_revision(key, CompareOp::Equal, rev)])
                .and_then([del])
                .or_else([TxnOp::get(key, None)]),
            None => Txn::new().and_then([del]),
        };
        let resp = self.kv.clone().txn(txn).await.map_err(map_err)?;
        if !resp.succeeded() {
            return match fallback_value(&resp)? {
                None => Err(StoreError::NotFound {
                    key: key.to_string(),
                }),
                Some(cur) => Err(StoreError::Conflict {
                    key: key.to_string(),
                    expected: expected_revision.unwrap_or(0),
                    actual: cur.mod_revision,
                    current: Some(Box::new(cur)),
                }),
            };
        }
        let revision = header_revision(resp.header());
        for op in resp.op_responses() {
            if let TxnOpResponse::Delete(d) = op {
                if let Some(prev) = d.prev_kvs().first() {
                    return Ok((convert(prev)?, revision));
                }
            }
        }
        Err(StoreError::NotFound {
            key: key.to_string(),
        })
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream> {
        let mut opts = WatchOptions::new()
            .with_range(prefix_end(prefix))
            .with_prev_key()
            .with_progress_notify();
        if after > 0 {
            opts = opts.with_start_revision(after + 1);
        }
        let mut stream = self
            .client
            .watch_client()
            .max_decoding_message_size(usize::MAX)
            .watch(prefix, Some(opts))
            .await
            .map_err(map_err)?;
        // The first response confirms creation or reports compaction.
        let first = stream
            .message()
            .await
            .map_err(map_err)?
            .ok_or(StoreError::Closed)?;
        if first.compact_revision() > 0 {
            self.note_compacted(first.compact_revision());
            return Err(StoreError::Compacted {
                requested: after,
                compacted: first.compact_revision(),
            });
        }
        if first.canceled() {
            return Err(StoreError::Backend(first.cancel_reason().to_string()));
        }
        let (tx, rx) = mpsc::channel::<Result<WatchItem>>(256);
        let compacted = self.compacted.clone();
        let wanted = self.progress.clone();
        let ask_progress = self.ordered_progress;
        tokio::spawn(async move {
            let mut quiet = tokio::time::interval(PROGRESS_INTERVAL);
            let mut saw_event = false;
            loop {
                let msg = tokio::select! {
                    m = stream.message() => m,
                    _ = quiet.tick(), if ask_progress => {
                        if !saw_event && stream.request_progress().await.is_err() {
                            let _ = tx.send(Err(StoreError::Closed)).await;
                            return;
                        }
                        saw_event = false;
                        continue;
                    }
                    _ = wanted.notified(), if ask_progress => {
                        if stream.request_progress().await.is_err() {
                            let _ = tx.send(Err(StoreError::Closed)).await;
                            return;
                        }
                        continue;
                    }
                    _ = tx.closed() => return,
                };
                let resp = match msg {
                    Ok(Some(r)) => r,
                    Ok(None) => {
                        let _ = tx.send(Err(StoreError::Closed)).await;
                        return;
                    }
                    Err(e) => {
                        let _ = tx.send(Err(map_err(e))).await;
                        return;
                    }
                };
                if resp.compact_revision() > 0 {
                    compacted.fetch_max(resp.compact_revision(), Ordering::AcqRel);
                    let _ = tx
                        .send(Err(StoreError::Compacted {
                            requested: after,
                            compacted: resp.compact_revision(),
                        }))
                        .await;
                    return;
                }
                if resp.canceled() {
                    let _ = tx
                        .send(Err(StoreError::Backend(resp.cancel_reason().to_string())))
                        .await;
                    return;
                }
                if resp.events().is_empty() {
                    let rev = header_revision(resp.header());
                    if rev > 0 && tx.send(Ok(WatchItem::Progress(rev))).await.is_err() {
                        return;
                    }
                    continue;
                }
                saw_event = true;
                for ev in resp.events() {
                    let Some(kv) = ev.kv() else { continue };
                    let item = (|| -> Result<Event> {
                        let key = kv.key_str().map_err(map_err)?.to_string();
                        let prev_value = ev.prev_kv().map(|p| Bytes::copy_from_slice(p.value()));
                        Ok(match ev.event_type() {
                            EventType::Put => Event {
                                kind: if kv.create_revision() == kv.mod_revision() {
                                    EventKind::Created
                                } else {
                                    EventKind::Updated
                                },
                                key,
                                value: Bytes::copy_from_slice(kv.value()),
                                prev_value,
                                revision: kv.mod_revision(),
                                create_revision: kv.create_revision(),
                            },
                            EventType::Delete => Event {
                                kind: EventKind::Deleted,
                                key,
                                value: prev_value.clone().unwrap_or_default(),
                                create_revision: ev
                                    .prev_kv()
                                    .map(|p| p.create_revision())
                                    .unwrap_or(0),
                                prev_value,
                                revision: kv.mod_revision(),
                            },
                        })
                    })();
                    if tx.send(item.map(WatchItem::Event)).await.is_err() {
                        return;
                    }
                }
            }
        });
        Ok(futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        })
        .boxed())
    }

    async fn current_revision(&self) -> Result<Revision> {
        let resp = self
            .kv
            .clone()
            .get("/", Some(GetOptions::new().with_count_only()))
            .await
            .map_err(map_err)?;
        Ok(header_revision(resp.header()))
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        let current = self.current_revision().await?;
        if revision > current {
            return Err(StoreError::FutureRevision {
                requested: revision,
                current,
            });
        }
        self.kv
            .clone()
            .compact(revision, Some(CompactionOptions::new().with_physical()))
            .await
            .map_err(|e| self.map(e, revision))?;
        self.note_compacted(revision);
        Ok(())
    }

    async fn compacted_revision(&self) -> Result<Revision> {
        Ok(self.compacted.load(Ordering::Acquire))
    }

    fn request_progress(&self) {
        self.progress.notify_waiters();
    }

    fn progress_is_ordered(&self) -> bool {
        self.ordered_progress
    }
}

#[cfg(test)]
mod tests {
    use super::progress_is_ordered;

    #[test]
    fn progress_ordering_follows_the_fixed_etcd_releases() {
        for v in ["3.4.23", "3.4.30", "3.5.0", "3.5.12", "3.3.27", "2.3.8", ""] {
            assert!(!progress_is_ordered(v), "{v}");
        }
        for v in [
            "3.4.31", "3.4.35", "3.5.13", "3.5.21", "3.6.0", "v3.6.4", "4.0.0",
        ] {
            assert!(progress_is_ordered(v), "{v}");
        }
    }
}
