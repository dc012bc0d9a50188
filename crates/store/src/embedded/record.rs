//! The on-disk form of one revision in the embedded store's log.
//!
//! Layout: `kind: u8 | create_revision: i64 LE | prev_revision: i64 LE |
//! key_len: u32 LE | key | value`. `prev_revision` points at the record this one
//! replaced (0 when the key did not exist), so watch catch-up can report previous
//! values without consulting the index.

use crate::{Revision, StoreError};
use bytes::Bytes;

const PUT: u8 = 1;
const TOMBSTONE: u8 = 2;
const HEADER: usize = 1 + 8 + 8 + 4;

/// A decoded log record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Record {
    /// True for a deletion marker.
    pub tombstone: bool,
    /// Create revision of the key's generation.
    pub create_revision: Revision,
    /// The revision this record replaced, 0 if none.
    pub prev_revision: Revision,
    /// The key.
    pub key: String,
    /// The value (empty for tombstones).
    pub value: Bytes,
}

impl Record {
    /// Encodes the record.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER + self.key.len() + self.value.len());
        out.push(if self.tombstone { TOMBSTONE } else { PUT });
        out.extend_from_slice(&self.create_revision.to_le_bytes());
        out.extend_from_slice(&self.prev_revision.to_le_bytes());
        out.extend_from_slice(&(self.key.len() as u32).to_le_bytes());
        out.extend_from_slice(self.key.as_bytes());
        out.extend_from_slice(&self.value);
        out
    }

    /// Decodes a record written by [`Record::encode`].
    pub fn decode(raw: &[u8]) -> Result<Record, StoreError> {
        let corrupt = || StoreError::Backend("corrupt log record".into());
        if raw.len() < HEADER {
            return Err(corrupt());
        }
        let tombstone = match raw[0] {
            PUT => false,
            TOMBSTONE => true,
            _ => return Err(corrupt()),
        };
        let int = |at: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&raw[at..at + 8]);
            i64::from_le_bytes(b)
        };
        let mut len = [0u8; 4];
        len.copy_from_slice(&raw[17..21]);
        let key_end = HEADER + u32::from_le_bytes(len) as usize;
        if raw.len() < key_end {
            return Err(corrupt());
        }
        let key = std::str::from_utf8(&raw[HEADER..key_end])
            .map_err(|_| corrupt())?
            .to_string();
        Ok(Record {
            tombstone,
            create_revision: int(1),
            prev_revision: int(9),
            key,
            value: Bytes::copy_from_slice(&raw[key_end..]),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let r = Record {
            tombstone: false,
            create_revision: 7,
            prev_revision: 9,
            key: "/registry/pods/default/a".into(),
            value: Bytes::from_static(b"{\"a\":1}"),
        };
        assert_eq!(Record::decode(&r.encode()).unwrap(), r);
        let t = Record {
            tombstone: true,
            value: Bytes::new(),
            ..r
        };
        assert_eq!(Record::decode(&t.encode()).unwrap(), t);
        assert!(Record::decode(&[1, 2, 3]).is_err());
    }
}
