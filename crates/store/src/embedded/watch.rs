//! Watches on the embedded store. Each watcher is a task that first replays the log
//! from its start revision up to the revision published when it subscribed, then
//! forwards live batches; if it falls behind the broadcast buffer it catches up from
//! the log again, and fails with `Compacted` only if that history is gone.

use super::record::Record;
use super::{Shared, LOG};
use crate::{Event, EventKind, Result, Revision, StoreError, WatchItem, WatchStream};
use futures::StreamExt;
use redb::ReadableDatabase;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::sync::{broadcast, mpsc};

/// The events of one committed transaction.
pub(crate) struct Batch {
    pub events: Vec<Event>,
    /// The last revision of the transaction.
    pub revision: Revision,
}

/// Most log records read in one catch-up step.
const CATCH_UP_CHUNK: usize = 1024;

/// Starts a watch of `prefix` for changes after `after` (0 = from now).
pub(crate) fn start(shared: Arc<Shared>, prefix: String, after: Revision) -> Result<WatchStream> {
    let compacted = shared.compacted.load(Ordering::Acquire);
    if after > 0 && after < compacted {
        return Err(StoreError::Compacted {
            requested: after,
            compacted,
        });
    }
    let (sub, upto) = subscribe(&shared);
    let after = if after == 0 { upto } else { after };
    let (tx, rx) = mpsc::channel(256);
    tokio::spawn(run(shared, prefix, after, upto, sub, tx));
    Ok(tokio_receiver_stream(rx))
}

fn tokio_receiver_stream(mut rx: mpsc::Receiver<Result<WatchItem>>) -> WatchStream {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx)).boxed()
}

fn subscribe(shared: &Shared) -> (broadcast::Receiver<Arc<Batch>>, Revision) {
    let _guard = shared.publish.lock();
    (
        shared.events.subscribe(),
        shared.revision.load(Ordering::Acquire),
    )
}

type Sink = mpsc::Sender<Result<WatchItem>>;

async fn run(
    shared: Arc<Shared>,
    prefix: String,
    mut delivered: Revision,
    upto: Revision,
    mut sub: broadcast::Receiver<Arc<Batch>>,
    tx: Sink,
) {
    if let Err(e) = catch_up(&shared, &prefix, &mut delivered, upto, &tx).await {
        let _ = tx.send(Err(e)).await;
        return;
    }
    loop {
        let batch = tokio::select! {
            b = sub.recv() => b,
            _ = tx.closed() => return,
        };
        match batch {
            Ok(batch) => {
                if batch.revision <= delivered {
                    continue;
                }
                let mut last_sent = delivered;
                for ev in &batch.events {
                    if ev.revision > delivered && ev.key.starts_with(&prefix) {
                        last_sent = ev.revision;
                        if tx.send(Ok(WatchItem::Event(ev.clone()))).await.is_err() {
                            return;
                        }
                    }
                }
                delivered = batch.revision;
                // A group commit may end with changes outside the prefix: the watcher
                // learns that the store reached the batch's revision all the same.
                if last_sent < delivered && !report_progress(&tx, delivered) {
                    return;
                }
            }
            Err(broadcast::error::RecvError::Lagged(_)) => {
                let (fresh, upto) = subscribe(&shared);
                sub = fresh;
                if let Err(e) = catch_up(&shared, &prefix, &mut delivered, upto, &tx).await {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
            }
            Err(broadcast::error::RecvError::Closed) => {
                let _ = tx.send(Err(StoreError::Closed)).await;
                return;
            }
        }
    }
}

/// Sends the logged changes under `prefix` in `(delivered, upto]`.
async fn catch_up(
    shared: &Shared,
    prefix: &str,
    delivered: &mut Revision,
    upto: Revision,
    tx: &Sink,
) -> Result<()> {
    while *delivered < upto {
        let from = *delivered + 1;
        let (events, last) = read_log(shared, prefix, from, upto)?;
        let compacted = shared.compacted.load(Ordering::Acquire);
        if compacted > *delivered {
            return Err(StoreError::Compacted {
                requested: *delivered,
                compacted,
            });
        }
        let last_sent = events.last().map(|e| e.revision);
        for ev in events {
            tx.send(Ok(WatchItem::Event(ev)))
                .await
                .map_err(|_| StoreError::Closed)?;
        }
        *delivered = last;
        if last_sent.is_none_or(|r| r < last) && !report_progress(tx, last) {
            return Err(StoreError::Closed);
        }
    }
    Ok(())
}

/// Tells the watcher the store reached `revision` with nothing more under its prefix.
/// Progress is advisory: it is skipped when the channel is full (a later batch reports
/// again); false only when the watcher is gone.
fn report_progress(tx: &Sink, revision: Revision) -> bool {
    tx.try_send(Ok(WatchItem::Progress(revision))).is_ok() || !tx.is_closed()
}

/// Reads up to [`CATCH_UP_CHUNK`] records in `[from, upto]`, returning the matching
/// events and the last revision covered.
fn read_log(
    shared: &Shared,
    prefix: &str,
    from: Revision,
    upto: Revision,
) -> Result<(Vec<Event>, Revision)> {
    let txn = shared.db.begin_read().map_err(StoreError::backend)?;
    let log = txn.open_table(LOG).map_err(StoreError::backend)?;
    let mut events = Vec::new();
    let mut last = upto;
    for (n, entry) in log
        .range(from as u64..=upto as u64)
        .map_err(StoreError::backend)?
        .enumerate()
    {
        let (rev, raw) = entry.map_err(StoreError::backend)?;
        let rev = rev.value() as Revision;
        if n >= CATCH_UP_CHUNK {
            last = rev - 1;
            break;
        }
        let rec = Record::decode(raw.value())?;
        if !rec.key.starts_with(prefix) {
            continue;
        }
        let prev_value = if rec.prev_revision > 0 {
            let prev = log
                .get(rec.prev_revision as u64)
                .map_err(StoreError::backend)?
                .ok_or(StoreError::Compacted {
                    requested: from,
                    compacted: shared.compacted.load(Ordering::Acquire),
                })?;
            Some(Record::decode(prev.value())?.value)
        } else {
            None
        };
        let kind = if rec.tombstone {
            EventKind::Deleted
        } else if rec.prev_revision == 0 {
            EventKind::Created
        } else {
            EventKind::Updated
        };
        events.push(Event {
            kind,
            value: if rec.tombstone {
                prev_value.clone().unwrap_or_default()
            } else {
                rec.value
            },
            key: rec.key,
            prev_value,
            revision: rev,
            create_revision: rec.create_revision,
        });
    }
    Ok((events, last))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embedded::{EmbeddedOptions, EmbeddedStore};
    use crate::Storage;
    use std::time::Duration;

    async fn next(w: &mut WatchStream) -> WatchItem {
        tokio::time::timeout(Duration::from_secs(5), w.next())
            .await
            .expect("the watch reported nothing")
            .expect("the watch ended")
            .expect("the watch failed")
    }

    fn event(key: &str, revision: Revision) -> Event {
        Event {
            kind: EventKind::Created,
            key: key.to_string(),
            value: "v".into(),
            prev_value: None,
            revision,
            create_revision: revision,
        }
    }

    /// A transaction whose last change lies outside the prefix still moves the watcher
    /// to its revision (a cache waiting for that revision would otherwise wait until the
    /// next write anywhere).
    #[tokio::test]
    async fn a_batch_ending_outside_the_prefix_reports_its_revision() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(dir.path(), EmbeddedOptions::default()).unwrap();
        let shared = store.shared.clone();
        let mut w = start(shared.clone(), "/a/".into(), 0).unwrap();
        let base = shared.revision.load(Ordering::Acquire);
        {
            let _guard = shared.publish.lock();
            shared.revision.store(base + 2, Ordering::Release);
            let _ = shared.events.send(Arc::new(Batch {
                events: vec![event("/a/x", base + 1), event("/b/y", base + 2)],
                revision: base + 2,
            }));
        }
        match next(&mut w).await {
            WatchItem::Event(ev) => assert_eq!((ev.key.as_str(), ev.revision), ("/a/x", base + 1)),
            other => panic!("expected the event, got {other:?}"),
        }
        match next(&mut w).await {
            WatchItem::Progress(r) => assert_eq!(r, base + 2),
            other => panic!("expected progress, got {other:?}"),
        }
    }

    /// The same when catching up from the log.
    #[tokio::test]
    async fn catching_up_reports_the_revision_it_reached() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(dir.path(), EmbeddedOptions::default()).unwrap();
        let r1 = store.create("/a/x", "1".into()).await.unwrap();
        let r2 = store.create("/b/y", "2".into()).await.unwrap();
        let mut w = store.watch("/a/", r1 - 1).await.unwrap();
        match next(&mut w).await {
            WatchItem::Event(ev) => assert_eq!((ev.key.as_str(), ev.revision), ("/a/x", r1)),
            other => panic!("expected the event, got {other:?}"),
        }
        match next(&mut w).await {
            WatchItem::Progress(r) => assert_eq!(r, r2),
            other => panic!("expected progress, got {other:?}"),
        }
    }
}
