//! Allocators for Service ClusterIPs and NodePorts: a bitmap per range, persisted in
//! the store (`/registry/ranges/serviceips`, `/registry/ranges/servicenodeports`) and
//! changed only by compare-and-swap, so an address is never handed out twice, even by
//! several apiservers sharing one etcd.

use base64::Engine;
use bytes::Bytes;
use serde_json::{json, Value};
use std::net::Ipv4Addr;
use std::sync::Arc;
use store::{guaranteed_update, Storage, StoreError, UpdateAction};

/// Why an allocation failed.
#[derive(Debug, thiserror::Error)]
pub enum AllocError {
    /// The value is outside the range.
    #[error("out of range")]
    OutOfRange,
    /// The value is taken.
    #[error("already allocated")]
    Taken,
    /// Nothing is free.
    #[error("range is full")]
    Full,
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A range of `size` values, offsets `0..size`, stored as a bitmap.
pub struct RangeAllocator {
    key: String,
    description: String,
    size: u64,
    /// Offsets that are never handed out (network and broadcast addresses).
    reserved: Vec<u64>,
    store: Arc<dyn Storage>,
}

fn bitmap_of(v: &Value, size: u64) -> Vec<u8> {
    let mut bits = v["data"]
        .as_str()
        .and_then(|d| base64::engine::general_purpose::STANDARD.decode(d).ok())
        .unwrap_or_default();
    bits.resize(size.div_ceil(8) as usize, 0);
    bits
}

fn is_set(bits: &[u8], i: u64) -> bool {
    bits[(i / 8) as usize] & (1 << (i % 8)) != 0
}

fn set(bits: &mut [u8], i: u64, on: bool) {
    let b = &mut bits[(i / 8) as usize];
    if on {
        *b |= 1 << (i % 8);
    } else {
        *b &= !(1 << (i % 8));
    }
}

impl RangeAllocator {
    /// An allocator for `size` values persisted under `key`.
    pub fn new(
        store: Arc<dyn Storage>,
        key: &str,
        description: &str,
        size: u64,
        reserved: Vec<u64>,
    ) -> RangeAllocator {
        RangeAllocator {
            key: key.to_string(),
            description: description.to_string(),
            size,
            reserved,
            store,
        }
    }

    fn encode(&self, bits: &[u8]) -> Bytes {
        Bytes::from(
            json!({
                "range": self.description,
                "data": base64::engine::general_purpose::STANDARD.encode(bits),
            })
            .to_string(),
        )
    }

    async fn ensure(&self) -> Result<(), AllocError> {
        if self.store.get(&self.key).await?.is_none() {
            let empty = vec![0u8; self.size.div_ceil(8) as usize];
            match self.store.create(&self.key, self.encode(&empty)).await {
                Ok(_) | Err(StoreError::AlreadyExists { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Changes the bitmap with `f` (which returns the chosen offset), atomically.
    async fn change(
        &self,
        f: impl Fn(&mut Vec<u8>) -> Result<u64, AllocError>,
    ) -> Result<u64, AllocError> {
        self.ensure().await?;
        let mut chosen = 0;
        guaranteed_update::<dyn Storage, _, AllocError>(&*self.store, &self.key, |kv| {
            let v: Value = serde_json::from_slice(&kv.value).unwrap_or(Value::Null);
            let mut bits = bitmap_of(&v, self.size);
            chosen = f(&mut bits)?;
            Ok(UpdateAction::Put(self.encode(&bits)))
        })
        .await?;
        Ok(chosen)
    }

    /// Whether `offset` is free (for dry runs).
    pub async fn is_free(&self, offset: u64) -> Result<bool, AllocError> {
        if offset >= self.size || self.reserved.contains(&offset) {
            return Err(AllocError::OutOfRange);
        }
        let Some(kv) = self.store.get(&self.key).await? else {
            return Ok(true);
        };
        let v: Value = serde_json::from_slice(&kv.value).unwrap_or(Value::Null);
        Ok(!is_set(&bitmap_of(&v, self.size), offset))
    }

    /// Allocates a specific offset.
    pub async fn allocate(&self, offset: u64) -> Result<(), AllocError> {
        if offset >= self.size || self.reserved.contains(&offset) {
            return Err(AllocError::OutOfRange);
        }
        self.change(|bits| {
            if is_set(bits, offset) {
                return Err(AllocError::Taken);
            }
            set(bits, offset, true);
            Ok(offset)
        })
        .await
        .map(|_| ())
    }

    /// Allocates any free offset, searching from a random start.
    pub async fn allocate_next(&self) -> Result<u64, AllocError> {
        let start = uuid::Uuid::new_v4().as_u128() as u64 % self.size.max(1);
        self.change(|bits| {
            for i in 0..self.size {
                let o = (start + i) % self.size;
                if !self.reserved.contains(&o) && !is_set(bits, o) {
                    set(bits, o, true);
                    return Ok(o);
                }
            }
            Err(AllocError::Full)
        })
        .await
    }

    /// A free offset without allocating it (dry runs).
    pub async fn peek_free(&self) -> Result<u64, AllocError> {
        for o in 0..self.size {
            if !self.reserved.contains(&o) && self.is_free(o).await? {
                return Ok(o);
            }
        }
        Err(AllocError::Full)
    }

    /// Releases an offset (releasing a free one is harmless).
    pub async fn release(&self, offset: u64) -> Result<(), AllocError> {
        if offset >= self.size {
            return Ok(());
        }
        self.change(|bits| {
            set(bits, offset, false);
            Ok(offset)
        })
        .await
        .map(|_| ())
    }

    /// Marks offsets as allocated without failing on ones already marked (repair).
    pub async fn mark(&self, offsets: &[u64]) -> Result<(), AllocError> {
        if offsets.is_empty() {
            return Ok(());
        }
        self.change(|bits| {
            for o in offsets.iter().filter(|o| **o < self.size) {
                set(bits, *o, true);
            }
            Ok(0)
        })
        .await
        .map(|_| ())
    }
}

/// An IPv4 CIDR.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    /// Network address.
    pub base: u32,
    /// Prefix length.
    pub prefix: u8,
}

impl Cidr {
    /// Parses `10.43.0.0/16`.
    pub fn parse(s: &str) -> Option<Cidr> {
        let (ip, len) = s.split_once('/')?;
        let ip: Ipv4Addr = ip.parse().ok()?;
        let prefix: u8 = len.parse().ok()?;
        if prefix > 30 {
            return None;
        }
        let mask = if prefix == 0 {
            0
        } else {
            u32::MAX << (32 - prefix)
        };
        Some(Cidr {
            base: u32::from(ip) & mask,
            prefix,
        })
    }

    /// Number of addresses.
    pub fn size(&self) -> u64 {
        1u64 << (32 - self.prefix)
    }

    /// The address at `offset`.
    pub fn addr(&self, offset: u64) -> Ipv4Addr {
        Ipv4Addr::from(self.base.wrapping_add(offset as u32))
    }

    /// The offset of `ip`, if inside.
    pub fn offset(&self, ip: Ipv4Addr) -> Option<u64> {
        let o = u32::from(ip).wrapping_sub(self.base) as u64;
        (u32::from(ip) >= self.base && o < self.size()).then_some(o)
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", Ipv4Addr::from(self.base), self.prefix)
    }
}

/// The cluster's Service allocators.
pub struct ServiceAllocators {
    /// The ClusterIP range.
    pub cidr: Cidr,
    /// ClusterIPs.
    pub ips: RangeAllocator,
    /// First NodePort.
    pub node_port_base: u16,
    /// Last NodePort.
    pub node_port_last: u16,
    /// NodePorts.
    pub ports: RangeAllocator,
}

impl ServiceAllocators {
    /// Allocators for a service CIDR and a NodePort range.
    pub fn new(store: Arc<dyn Storage>, cidr: Cidr, ports: (u16, u16)) -> ServiceAllocators {
        let size = cidr.size();
        ServiceAllocators {
            ips: RangeAllocator::new(
                store.clone(),
                "/registry/ranges/serviceips",
                &cidr.to_string(),
                size,
                vec![0, size - 1],
            ),
            ports: RangeAllocator::new(
                store,
                "/registry/ranges/servicenodeports",
                &format!("{}-{}", ports.0, ports.1),
                u64::from(ports.1 - ports.0) + 1,
                vec![],
            ),
            cidr,
            node_port_base: ports.0,
            node_port_last: ports.1,
        }
    }

    /// The `kubernetes` Service's address: the first one of the range.
    pub fn first_ip(&self) -> Ipv4Addr {
        self.cidr.addr(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use store::{EmbeddedOptions, EmbeddedStore};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn never_hands_out_twice() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Storage> =
            Arc::new(EmbeddedStore::open(dir.path(), EmbeddedOptions::default()).unwrap());
        let cidr = Cidr::parse("10.43.0.0/29").unwrap();
        let a = Arc::new(ServiceAllocators::new(store.clone(), cidr, (30000, 30002)));
        a.ips.allocate(1).await.unwrap();
        assert!(matches!(a.ips.allocate(1).await, Err(AllocError::Taken)));
        assert!(matches!(
            a.ips.allocate(0).await,
            Err(AllocError::OutOfRange)
        ));
        let mut tasks = Vec::new();
        for _ in 0..5 {
            let a = a.clone();
            tasks.push(tokio::spawn(
                async move { a.ips.allocate_next().await.unwrap() },
            ));
        }
        let mut got: Vec<u64> = Vec::new();
        for t in tasks {
            got.push(t.await.unwrap());
        }
        got.sort();
        assert_eq!(got, vec![2, 3, 4, 5, 6]);
        assert!(matches!(a.ips.allocate_next().await, Err(AllocError::Full)));
        a.ips.release(4).await.unwrap();
        // A second allocator over the same store sees the same bitmap.
        let b = ServiceAllocators::new(store, cidr, (30000, 30002));
        assert_eq!(b.ips.allocate_next().await.unwrap(), 4);
        assert_eq!(cidr.addr(1).to_string(), "10.43.0.1");
        assert_eq!(cidr.offset("10.43.0.6".parse().unwrap()), Some(6));
        assert_eq!(cidr.offset("10.44.0.6".parse().unwrap()), None);
    }
}
