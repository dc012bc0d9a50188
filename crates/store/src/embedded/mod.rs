//! The embedded backend: an MVCC key-value store in one data directory, shaped like
//! etcd's storage engine.
//!
//! - The log ([`redb`] table `log`) maps each revision to the record written at it
//!   ([`record`]); the `meta` table keeps the latest and the compacted revision.
//! - The key index ([`index`]) lives in memory and is rebuilt from the log at start.
//! - One writer thread ([`writer`]) takes every write, checks preconditions, and commits
//!   whole batches in one fsynced transaction (group commit): a write is acknowledged
//!   only after the batch holding it is durable.
//! - Committed batches are published to watchers ([`watch`]), which catch up from the
//!   log when they start behind or fall behind.

mod index;
mod record;
mod watch;
mod writer;

use crate::types::prefix_end;
use crate::{
    KeyValue, ListOptions, ListResult, ReadAt, Result, Revision, Storage, StoreError, WatchStream,
    MAX_VALUE_BYTES,
};
use async_trait::async_trait;
use bytes::Bytes;
use index::Index;
use parking_lot::{Mutex, RwLock};
use record::Record;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{mpsc, Arc};
use tokio::sync::{broadcast, oneshot};
use writer::{WriteOp, WriteRequest};

pub(crate) const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("log");
pub(crate) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
pub(crate) const META_REVISION: &str = "revision";
pub(crate) const META_COMPACTED: &str = "compacted";

/// Tuning of the embedded store.
#[derive(Clone, Debug)]
pub struct EmbeddedOptions {
    /// Bytes of page cache the database may keep in memory.
    pub cache_bytes: usize,
    /// Most writes committed in one transaction.
    pub max_batch: usize,
}

impl Default for EmbeddedOptions {
    fn default() -> Self {
        EmbeddedOptions {
            cache_bytes: 32 << 20,
            max_batch: 2048,
        }
    }
}

/// State shared by the store handle, its writer thread and its watchers.
pub(crate) struct Shared {
    pub db: Database,
    pub index: RwLock<Index>,
    /// Latest revision whose batch is in the index and published.
    pub revision: AtomicI64,
    pub compacted: AtomicI64,
    /// Taken while publishing a batch and while a watcher subscribes, so that a watcher
    /// sees every revision exactly once (from the log up to `revision`, then live).
    pub publish: Mutex<()>,
    pub events: broadcast::Sender<Arc<watch::Batch>>,
}

impl Shared {
    fn read_record(&self, rev: Revision) -> Result<Option<Record>> {
        let txn = self.db.begin_read().map_err(StoreError::backend)?;
        let table = txn.open_table(LOG).map_err(StoreError::backend)?;
        let raw = table.get(rev as u64).map_err(StoreError::backend)?;
        raw.map(|r| Record::decode(r.value())).transpose()
    }
}

/// The embedded store. Cheap to clone; all clones share one database.
#[derive(Clone)]
pub struct EmbeddedStore {
    shared: Arc<Shared>,
    writes: mpsc::Sender<WriteRequest>,
    path: Arc<PathBuf>,
}

impl EmbeddedStore {
    /// Opens (or creates) the store in `dir`, replaying its log into memory.
    pub fn open(dir: &Path, options: EmbeddedOptions) -> Result<EmbeddedStore> {
        std::fs::create_dir_all(dir).map_err(StoreError::backend)?;
        let path = dir.join("store.redb");
        let db = Database::builder()
            .set_cache_size(options.cache_bytes)
            .create(&path)
            .map_err(StoreError::backend)?;
        let (index, revision, compacted) = Self::load(&db)?;
        let (events, _) = broadcast::channel(1024);
        let shared = Arc::new(Shared {
            db,
            index: RwLock::new(index),
            revision: AtomicI64::new(revision),
            compacted: AtomicI64::new(compacted),
            publish: Mutex::new(()),
            events,
        });
        let writes = writer::spawn(shared.clone(), options.max_batch)?;
        Ok(EmbeddedStore {
            shared,
            writes,
            path: Arc::new(path),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn load(db: &Database) -> Result<(Index, Revision, Revision)> {
        // Create the tables on first start so readers never see them missing.
        let txn = db.begin_write().map_err(StoreError::backend)?;
        {
            txn.open_table(LOG).map_err(StoreError::backend)?;
            txn.open_table(META).map_err(StoreError::backend)?;
        }
        txn.commit().map_err(StoreError::backend)?;

        let txn = db.begin_read().map_err(StoreError::backend)?;
        let meta = txn.open_table(META).map_err(StoreError::backend)?;
        let get = |k: &str| -> Result<i64> {
            Ok(meta
                .get(k)
                .map_err(StoreError::backend)?
                .map(|v| v.value() as i64)
                .unwrap_or(0))
        };
        let mut revision = get(META_REVISION)?.max(1);
        let compacted = get(META_COMPACTED)?;
        let log = txn.open_table(LOG).map_err(StoreError::backend)?;
        let mut index = Index::default();
        for entry in log.iter().map_err(StoreError::backend)? {
            let (rev, raw) = entry.map_err(StoreError::backend)?;
            let rev = rev.value() as i64;
            let rec = Record::decode(raw.value())?;
            index.push(&rec.key, rev, rec.tombstone);
            revision = revision.max(rev);
        }
        Ok((index, revision, compacted))
    }

    async fn write(&self, op: WriteOp) -> Result<writer::WriteOutcome> {
        let (reply, rx) = oneshot::channel();
        self.writes
            .send(WriteRequest { op, reply })
            .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
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

    fn kv_at(&self, key: &str, rev: Revision) -> Result<Option<KeyValue>> {
        Ok(self.shared.read_record(rev)?.map(|rec| KeyValue {
            key: key.to_string(),
            value: rec.value,
            create_revision: rec.create_revision,
            mod_revision: rev,
        }))
    }
}

#[async_trait]
impl Storage for EmbeddedStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        loop {
            let latest = self.shared.index.read().latest(key);
            match latest {
                None => return Ok(None),
                Some(v) if v.tombstone => return Ok(None),
                Some(v) => match self.kv_at(key, v.revision)? {
                    Some(kv) => return Ok(Some(kv)),
                    // Replaced and compacted between the two reads: look again.
                    None => continue,
                },
            }
        }
    }

    async fn list(&self, prefix: &str, opts: ListOptions) -> Result<ListResult> {
        let current = self.shared.revision.load(Ordering::Acquire);
        let at = match opts.at {
            ReadAt::Exact(r) if r > 0 => r,
            ReadAt::NotOlderThan(r) if r > current => r,
            _ => current,
        };
        if at > current {
            return Err(StoreError::FutureRevision {
                requested: at,
                current,
            });
        }
        let end = prefix_end(prefix);
        let from = match &opts.start {
            Some(s) if s.as_str() > prefix => s.as_str(),
            _ => prefix,
        };
        let (found, remaining) = {
            let index = self.shared.index.read();
            let compacted = self.shared.compacted.load(Ordering::Acquire);
            if at < compacted {
                return Err(StoreError::Compacted {
                    requested: at,
                    compacted,
                });
            }
            index.range(from, &end, at, opts.limit)
        };
        let txn = self.shared.db.begin_read().map_err(StoreError::backend)?;
        let table = txn.open_table(LOG).map_err(StoreError::backend)?;
        let mut items = Vec::with_capacity(found.len());
        for (key, rev) in found {
            let Some(raw) = table.get(rev as u64).map_err(StoreError::backend)? else {
                // Compacted while we were reading.
                return Err(StoreError::Compacted {
                    requested: at,
                    compacted: self.shared.compacted.load(Ordering::Acquire),
                });
            };
            let rec = Record::decode(raw.value())?;
            items.push(KeyValue {
                key,
                value: rec.value,
                create_revision: rec.create_revision,
                mod_revision: rev,
            });
        }
        Ok(ListResult {
            items,
            revision: at,
            more: remaining > 0,
            remaining,
        })
    }

    async fn create(&self, key: &str, value: Bytes) -> Result<Revision> {
        Self::check_size(&value)?;
        self.write(WriteOp::Create {
            key: key.to_string(),
            value,
        })
        .await
        .map(|o| o.revision)
    }

    async fn update(
        &self,
        key: &str,
        value: Bytes,
        expected_revision: Revision,
    ) -> Result<Revision> {
        Self::check_size(&value)?;
        self.write(WriteOp::Update {
            key: key.to_string(),
            value,
            expected: expected_revision,
        })
        .await
        .map(|o| o.revision)
    }

    async fn delete(
        &self,
        key: &str,
        expected_revision: Option<Revision>,
    ) -> Result<(KeyValue, Revision)> {
        let out = self
            .write(WriteOp::Delete {
                key: key.to_string(),
                expected: expected_revision,
            })
            .await?;
        let prev = out
            .prev
            .ok_or_else(|| StoreError::Backend("delete without value".into()))?;
        Ok((prev, out.revision))
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream> {
        watch::start(self.shared.clone(), prefix.to_string(), after)
    }

    async fn current_revision(&self) -> Result<Revision> {
        Ok(self.shared.revision.load(Ordering::Acquire))
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        self.write(WriteOp::Compact { revision }).await.map(|_| ())
    }

    async fn compacted_revision(&self) -> Result<Revision> {
        Ok(self.shared.compacted.load(Ordering::Acquire))
    }
}
