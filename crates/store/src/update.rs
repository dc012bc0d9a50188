//! `guaranteed_update`: read, transform, compare-and-swap, retry on conflict, as
//! Kubernetes' `GuaranteedUpdate` does.

use crate::{KeyValue, Result, Storage, StoreError};
use bytes::Bytes;

/// What an update closure wants done with the key.
pub enum UpdateAction {
    /// Write these bytes.
    Put(Bytes),
    /// Leave the key as it is (no write, no new revision).
    Keep,
}

/// Reads `key`, passes the current value to `try_update` and writes its answer with a
/// compare-and-swap on the revision read, re-reading and retrying when another writer
/// got there first. `try_update` may return an error to stop; it must be side-effect
/// free because it can run several times. The key must exist.
///
/// Returns the key-value as stored after the update (or the untouched current one for
/// [`UpdateAction::Keep`]).
pub async fn guaranteed_update<S, F, E>(
    store: &S,
    key: &str,
    mut try_update: F,
) -> std::result::Result<KeyValue, E>
where
    S: Storage + ?Sized,
    F: FnMut(&KeyValue) -> std::result::Result<UpdateAction, E>,
    E: From<StoreError>,
{
    let mut current = match store.get(key).await? {
        Some(kv) => kv,
        None => {
            return Err(StoreError::NotFound {
                key: key.to_string(),
            }
            .into())
        }
    };
    loop {
        let value = match try_update(&current)? {
            UpdateAction::Keep => return Ok(current),
            UpdateAction::Put(value) => value,
        };
        match store.update(key, value.clone(), current.mod_revision).await {
            Ok(rev) => {
                return Ok(KeyValue {
                    key: key.to_string(),
                    value,
                    create_revision: current.create_revision,
                    mod_revision: rev,
                })
            }
            Err(StoreError::Conflict {
                current: Some(now), ..
            }) => current = *now,
            Err(StoreError::Conflict { current: None, .. }) => {
                current = reread(store, key).await?;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

async fn reread<S: Storage + ?Sized>(store: &S, key: &str) -> Result<KeyValue> {
    store.get(key).await?.ok_or_else(|| StoreError::NotFound {
        key: key.to_string(),
    })
}
