//! The embedded store's single writer: it drains every queued write into one
//! transaction, checks each write's precondition against the state left by the writes
//! before it, commits once (fsync), then updates the index, publishes the batch to
//! watchers and only then acknowledges the writes (group commit).

use super::record::Record;
use super::watch::Batch;
use super::{Shared, LOG, META, META_COMPACTED, META_REVISION};
use crate::{Event, EventKind, KeyValue, Result, Revision, StoreError};
use bytes::Bytes;
use redb::{ReadableTable, Table};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};
use tokio::sync::oneshot;

/// A write the writer thread performs.
pub(crate) enum WriteOp {
    Create {
        key: String,
        value: Bytes,
    },
    Update {
        key: String,
        value: Bytes,
        expected: Revision,
    },
    Delete {
        key: String,
        expected: Option<Revision>,
    },
    Compact {
        revision: Revision,
    },
}

/// What a successful write reports back.
pub(crate) struct WriteOutcome {
    pub revision: Revision,
    /// The value the write replaced or deleted.
    pub prev: Option<KeyValue>,
}

/// A queued write and where to send its result.
pub(crate) struct WriteRequest {
    pub op: WriteOp,
    pub reply: oneshot::Sender<Result<WriteOutcome>>,
}

/// Starts the writer thread; it stops when every sender is dropped.
pub(crate) fn spawn(shared: Arc<Shared>, max_batch: usize) -> Result<mpsc::Sender<WriteRequest>> {
    let (tx, rx) = mpsc::channel::<WriteRequest>();
    std::thread::Builder::new()
        .name("store-writer".into())
        .spawn(move || {
            while let Ok(first) = rx.recv() {
                let mut batch = vec![first];
                while batch.len() < max_batch {
                    match rx.try_recv() {
                        Ok(req) => batch.push(req),
                        Err(_) => break,
                    }
                }
                let (compactions, writes): (Vec<_>, Vec<_>) = batch
                    .into_iter()
                    .partition(|r| matches!(r.op, WriteOp::Compact { .. }));
                if !writes.is_empty() {
                    commit_batch(&shared, writes);
                }
                for req in compactions {
                    if let WriteOp::Compact { revision } = req.op {
                        let result = compact(&shared, revision).map(|()| WriteOutcome {
                            revision,
                            prev: None,
                        });
                        let _ = req.reply.send(result);
                    }
                }
            }
        })
        .map_err(StoreError::backend)?;
    Ok(tx)
}

/// A key's state as left by earlier writes of the batch being built.
struct Staged {
    kv: Option<KeyValue>,
}

fn current(
    shared: &Shared,
    staged: &HashMap<String, Staged>,
    log: &Table<u64, &[u8]>,
    key: &str,
) -> Result<Option<KeyValue>> {
    if let Some(s) = staged.get(key) {
        return Ok(s.kv.clone());
    }
    let Some(v) = shared.index.read().latest(key) else {
        return Ok(None);
    };
    if v.tombstone {
        return Ok(None);
    }
    let raw = log
        .get(v.revision as u64)
        .map_err(StoreError::backend)?
        .ok_or_else(|| StoreError::Backend(format!("log lost revision {}", v.revision)))?;
    let rec = Record::decode(raw.value())?;
    Ok(Some(KeyValue {
        key: key.to_string(),
        value: rec.value,
        create_revision: rec.create_revision,
        mod_revision: v.revision,
    }))
}

fn check_expected(cur: &KeyValue, expected: Option<Revision>) -> Result<()> {
    match expected {
        Some(exp) if exp != cur.mod_revision => Err(StoreError::Conflict {
            key: cur.key.clone(),
            expected: exp,
            actual: cur.mod_revision,
            current: Some(Box::new(cur.clone())),
        }),
        _ => Ok(()),
    }
}

/// Applies `writes` in one transaction and acknowledges them.
fn commit_batch(shared: &Shared, writes: Vec<WriteRequest>) {
    let base = shared.revision.load(Ordering::Acquire);
    let mut rev = base;
    let mut staged: HashMap<String, Staged> = HashMap::new();
    let mut pushes: Vec<(String, Revision, bool)> = Vec::new();
    let mut events: Vec<Event> = Vec::new();
    let mut replies: Vec<(oneshot::Sender<Result<WriteOutcome>>, Result<WriteOutcome>)> =
        Vec::with_capacity(writes.len());

    let txn = match shared.db.begin_write() {
        Ok(t) => t,
        Err(e) => {
            let msg = e.to_string();
            for w in writes {
                let _ = w.reply.send(Err(StoreError::Backend(msg.clone())));
            }
            return;
        }
    };
    let applied: Result<()> = (|| {
        let mut log = txn.open_table(LOG).map_err(StoreError::backend)?;
        for w in writes {
            let result = apply_one(shared, &mut log, &mut staged, &mut rev, w.op);
            let result = match result {
                Ok((outcome, event, tombstone)) => {
                    pushes.push((event.key.clone(), event.revision, tombstone));
                    events.push(event);
                    Ok(outcome)
                }
                Err(e) => Err(e),
            };
            replies.push((w.reply, result));
        }
        if rev > base {
            let mut meta = txn.open_table(META).map_err(StoreError::backend)?;
            meta.insert(META_REVISION, rev as u64)
                .map_err(StoreError::backend)?;
        }
        Ok(())
    })();
    let committed = applied.and_then(|()| {
        if rev > base {
            txn.commit().map_err(StoreError::backend)
        } else {
            txn.abort().map_err(StoreError::backend)
        }
    });
    if let Err(e) = committed {
        let msg = e.to_string();
        for (reply, result) in replies {
            let _ = reply.send(result.and(Err(StoreError::Backend(msg.clone()))));
        }
        return;
    }
    if rev > base {
        {
            let mut index = shared.index.write();
            for (key, r, tombstone) in &pushes {
                index.push(key, *r, *tombstone);
            }
        }
        let _guard = shared.publish.lock();
        shared.revision.store(rev, Ordering::Release);
        let _ = shared.events.send(Arc::new(Batch {
            events,
            revision: rev,
        }));
    }
    for (reply, result) in replies {
        let _ = reply.send(result);
    }
}

/// Checks and applies one write inside the batch transaction.
fn apply_one(
    shared: &Shared,
    log: &mut Table<u64, &[u8]>,
    staged: &mut HashMap<String, Staged>,
    rev: &mut Revision,
    op: WriteOp,
) -> Result<(WriteOutcome, Event, bool)> {
    let (key, value, prev, kind) = match op {
        WriteOp::Create { key, value } => {
            if current(shared, staged, log, &key)?.is_some() {
                return Err(StoreError::AlreadyExists { key });
            }
            (key, value, None, EventKind::Created)
        }
        WriteOp::Update {
            key,
            value,
            expected,
        } => {
            let Some(cur) = current(shared, staged, log, &key)? else {
                return Err(StoreError::NotFound { key });
            };
            check_expected(&cur, Some(expected))?;
            (key, value, Some(cur), EventKind::Updated)
        }
        WriteOp::Delete { key, expected } => {
            let Some(cur) = current(shared, staged, log, &key)? else {
                return Err(StoreError::NotFound { key });
            };
            check_expected(&cur, expected)?;
            (key, Bytes::new(), Some(cur), EventKind::Deleted)
        }
        WriteOp::Compact { .. } => {
            return Err(StoreError::Backend(
                "compaction inside a write batch".into(),
            ))
        }
    };
    let next = *rev + 1;
    let tombstone = kind == EventKind::Deleted;
    let record = Record {
        tombstone,
        create_revision: prev.as_ref().map(|p| p.create_revision).unwrap_or(next),
        prev_revision: prev.as_ref().map(|p| p.mod_revision).unwrap_or(0),
        key: key.clone(),
        value: value.clone(),
    };
    log.insert(next as u64, record.encode().as_slice())
        .map_err(StoreError::backend)?;
    *rev = next;
    let new_kv = KeyValue {
        key: key.clone(),
        value: value.clone(),
        create_revision: record.create_revision,
        mod_revision: next,
    };
    staged.insert(
        key.clone(),
        Staged {
            kv: (!tombstone).then_some(new_kv),
        },
    );
    let prev_value = prev.as_ref().map(|p| p.value.clone());
    let event = Event {
        kind,
        key,
        value: if tombstone {
            prev_value.clone().unwrap_or_default()
        } else {
            value
        },
        prev_value,
        revision: next,
        create_revision: record.create_revision,
    };
    Ok((
        WriteOutcome {
            revision: next,
            prev,
        },
        event,
        tombstone,
    ))
}

/// Discards history before `at`: trims the index, then deletes dead log records.
fn compact(shared: &Shared, at: Revision) -> Result<()> {
    let current = shared.revision.load(Ordering::Acquire);
    if at > current {
        return Err(StoreError::FutureRevision {
            requested: at,
            current,
        });
    }
    let dead = {
        let mut index = shared.index.write();
        let compacted = shared.compacted.load(Ordering::Acquire);
        if at <= compacted {
            return Err(StoreError::Compacted {
                requested: at,
                compacted,
            });
        }
        // Readers check `compacted` under the index lock, so they never see a
        // trimmed index without also seeing the new compaction revision.
        shared.compacted.store(at, Ordering::Release);
        index.compact(at)
    };
    let txn = shared.db.begin_write().map_err(StoreError::backend)?;
    {
        let mut log = txn.open_table(LOG).map_err(StoreError::backend)?;
        for rev in dead {
            log.remove(rev as u64).map_err(StoreError::backend)?;
        }
        let mut meta = txn.open_table(META).map_err(StoreError::backend)?;
        meta.insert(META_COMPACTED, at as u64)
            .map_err(StoreError::backend)?;
    }
    txn.commit().map_err(StoreError::backend)
}
