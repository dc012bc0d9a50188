//! Image garbage collection by disk usage, as the kubelet's image GC manager does it.

use std::collections::HashSet;
use std::io;
use std::path::Path;
use std::sync::PoisonError;

use super::{now_nanos, ImageStore};
use crate::error::IoContext;
use crate::{Error, Image};

/// Capacity and free space of the filesystem holding the store, in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DiskUsage {
    /// Total size of the filesystem.
    pub capacity: u64,
    /// Bytes available to unprivileged users.
    pub available: u64,
}

/// What one image garbage collection pass did.
#[derive(Clone, Debug, PartialEq)]
pub struct GcReport {
    /// Disk usage percentage that was measured (kubelet's formula).
    pub usage_percent: u8,
    /// Bytes that had to be freed to get down to the low threshold (0 if below high).
    pub amount_to_free: u64,
    /// Sum of the sizes of the removed images.
    pub freed: u64,
    /// The removed images, least recently used first.
    pub removed: Vec<Image>,
}

impl GcReport {
    /// Whether enough was freed; when not, the kubelet reports FreeDiskSpaceFailed.
    pub fn satisfied(&self) -> bool {
        self.freed >= self.amount_to_free
    }
}

pub(super) fn statvfs_usage(path: &Path) -> io::Result<DiskUsage> {
    let s = nix::sys::statvfs::statvfs(path)?;
    let frsize = s.fragment_size() as u64;
    Ok(DiskUsage {
        capacity: (s.blocks() as u64).saturating_mul(frsize),
        available: (s.blocks_available() as u64).saturating_mul(frsize),
    })
}

impl ImageStore {
    /// Capacity and free space of the store's filesystem.
    pub fn disk_usage(&self) -> Result<DiskUsage, Error> {
        (self.disk_usage)(&self.root).ctx(|| format!("statfs {}", self.root.display()))
    }

    /// Image garbage collection as the kubelet does it: when disk usage is at or above
    /// `high_percent`, removes unused images (least recently used first, never those in
    /// use or younger than the minimum GC age) until the sizes of the removed images add
    /// up to what is needed to get back to `low_percent`. `high_percent` 100 disables it.
    /// Returns the removed images; when not enough could be freed it logs a warning (use
    /// [`gc_report`](Self::gc_report) to see that).
    pub fn gc(&self, high_percent: u8, low_percent: u8) -> Result<Vec<Image>, Error> {
        let report = self.gc_report(high_percent, low_percent)?;
        if !report.satisfied() {
            tracing::warn!(
                "Failed to garbage collect required amount of images. Attempted to free {} bytes, but only found {} bytes eligible to free.",
                report.amount_to_free,
                report.freed
            );
        }
        Ok(report.removed)
    }

    /// [`gc`](Self::gc) with the numbers behind it.
    pub fn gc_report(&self, high_percent: u8, low_percent: u8) -> Result<GcReport, Error> {
        if high_percent > 100 || low_percent >= high_percent {
            return Err(Error::InvalidGcThresholds {
                high: high_percent,
                low: low_percent,
            });
        }
        let usage = self.disk_usage()?;
        if usage.capacity == 0 {
            return Err(Error::InvalidCapacity);
        }
        let capacity = u128::from(usage.capacity);
        let available = u128::from(usage.available.min(usage.capacity));
        let usage_percent = (100 - available * 100 / capacity) as u8;
        let mut report = GcReport {
            usage_percent,
            amount_to_free: 0,
            freed: 0,
            removed: Vec::new(),
        };
        let _lock = self.lock()?;
        let mut meta = self.load_meta()?;
        let now = now_nanos();
        // Images in use count as used now (the kubelet's image detection).
        let in_use: HashSet<String> = self
            .in_use
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let mut touched = false;
        for id in &in_use {
            if let Some(rec) = meta.images.get_mut(id) {
                rec.last_used = Some(now);
                touched = true;
            }
        }
        if high_percent == 100 || usage_percent < high_percent {
            if touched {
                self.save_meta(&meta)?;
            }
            return Ok(report);
        }
        let target_available = capacity * u128::from(100 - low_percent) / 100;
        report.amount_to_free =
            u64::try_from(target_available.saturating_sub(available)).unwrap_or(u64::MAX);
        tracing::info!(
            usage = usage_percent,
            high_threshold = high_percent,
            amount_to_free = report.amount_to_free,
            low_threshold = low_percent,
            "Disk usage on image filesystem is over the high threshold, trying to free bytes down to the low threshold"
        );
        let min_age = u64::try_from(self.gc_min_age.as_nanos()).unwrap_or(u64::MAX);
        let mut candidates: Vec<(u64, u64, String)> = meta
            .images
            .values()
            .filter(|r| !in_use.contains(&r.id))
            .filter(|r| now.saturating_sub(r.first_seen) >= min_age)
            .map(|r| (r.last_used.unwrap_or(0), r.first_seen, r.id.clone()))
            .collect();
        candidates.sort();
        for (_, _, id) in candidates {
            if report.freed >= report.amount_to_free {
                break;
            }
            if let Some(rec) = meta.images.remove(&id) {
                tracing::info!(id = %id, size = rec.size, "removing image to free bytes");
                report.freed += rec.size;
                report.removed.push(rec.image());
            }
        }
        self.save_meta(&meta)?;
        self.sweep(&meta)?;
        Ok(report)
    }
}
