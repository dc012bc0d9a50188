//! Container root filesystems: layers unpacked once per chain id (atomically, by
//! rename) and overlayfs mounts over them.

use std::fs::{self, File};
use std::io::{self, BufReader};
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::PoisonError;

use super::{now_nanos, ImageRecord, ImageStore, LayerRecord, TMP_COUNTER};
use crate::digest::{digest_hex, HashingReader};
use crate::error::IoContext;
use crate::{archive, compress, mount, unpack, Error, Image};

/// How precisely the last use of an image is recorded (one minute).
const LAST_USED_GRANULARITY_NANOS: u64 = 60_000_000_000;

impl ImageStore {
    /// Root filesystem for one container: unpacks the image's layers (once per chain id,
    /// shared by all images, atomically), then mounts overlayfs at
    /// `<container_dir>/rootfs` with the layers as lower directories and
    /// `<container_dir>/upper` and `work`. Returns `<container_dir>/rootfs`. When it is
    /// already mounted (a restarted kubelet adopting a container) it is returned as is.
    /// Records the image as used now.
    pub fn mount_rootfs(&self, image: &Image, container_dir: &Path) -> Result<PathBuf, Error> {
        fs::create_dir_all(container_dir)
            .ctx(|| format!("creating {}", container_dir.display()))?;
        let cdir = fs::canonicalize(container_dir)
            .ctx(|| format!("resolving {}", container_dir.display()))?;
        let rootfs = cdir.join("rootfs");
        let result = container_dir.join("rootfs");
        let mounted = rootfs.is_dir()
            && mount::is_mount_point(&rootfs).ctx(|| "reading /proc/self/mountinfo".to_string())?;
        let rec = self.touch(&image.id)?;
        if mounted {
            return Ok(result);
        }
        let mut lowers = Vec::with_capacity(rec.layers.len());
        for layer in &rec.layers {
            lowers.push(self.ensure_layer(layer)?);
        }
        lowers.reverse();
        let upper = cdir.join("upper");
        let work = cdir.join("work");
        for d in [&upper, &work, &rootfs] {
            fs::create_dir_all(d).ctx(|| format!("creating {}", d.display()))?;
        }
        if lowers.is_empty() {
            // overlayfs needs a lower directory; an image without layers gets an empty one.
            let empty = cdir.join("empty");
            fs::create_dir_all(&empty).ctx(|| format!("creating {}", empty.display()))?;
            lowers.push(empty);
        }
        mount::mount_overlay(&lowers, &upper, &work, &rootfs)?;
        tracing::debug!(image = %image.id, rootfs = %rootfs.display(), layers = lowers.len(), "mounted container rootfs");
        Ok(result)
    }

    /// Unmounts `<container_dir>/rootfs` and anything else mounted below `container_dir`
    /// (lazily detaching busy mounts), then deletes `container_dir`. Nothing to do if it
    /// does not exist.
    pub fn unmount_rootfs(container_dir: &Path) -> Result<(), Error> {
        let cdir = match fs::canonicalize(container_dir) {
            Ok(p) => p,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => {
                return Err(Error::io(
                    format!("resolving {}", container_dir.display()),
                    e,
                ))
            }
        };
        mount::unmount_all_under(&cdir)?;
        match fs::remove_dir_all(&cdir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io(format!("removing {}", cdir.display()), e)),
        }
    }

    /// Records that the image was used now; returns its record. The time is kept to
    /// the minute (garbage collection orders images by it, and marks images in use as
    /// used at each pass): within a minute of the last record nothing is written, so a
    /// burst of container starts does not rewrite the store's metadata for each.
    fn touch(&self, id: &str) -> Result<ImageRecord, Error> {
        let _lock = self.lock()?;
        let mut meta = self.load_meta()?;
        let rec = meta
            .images
            .get_mut(id)
            .ok_or_else(|| Error::NotFound(id.to_string()))?;
        let now = now_nanos();
        if rec
            .last_used
            .is_some_and(|t| now.saturating_sub(t) < LAST_USED_GRANULARITY_NANOS)
        {
            return Ok(rec.clone());
        }
        rec.last_used = Some(now);
        let out = rec.clone();
        self.save_meta(&meta)?;
        Ok(out)
    }

    /// Unpacks a layer (if not yet unpacked) and returns its directory.
    fn ensure_layer(&self, layer: &LayerRecord) -> Result<PathBuf, Error> {
        let chain_hex = digest_hex(&layer.chain_id)?.to_string();
        let layers_dir = self.layers_dir();
        let final_dir = layers_dir.join(&chain_hex);
        let fs_dir = final_dir.join("fs");
        if final_dir.is_dir() {
            return Ok(fs_dir);
        }
        let lock = {
            let mut locks = self
                .layer_locks
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            locks.entry(chain_hex.clone()).or_default().clone()
        };
        let _guard = lock.lock().unwrap_or_else(PoisonError::into_inner);
        if final_dir.is_dir() {
            return Ok(fs_dir);
        }
        let tmp = layers_dir.join(format!(
            ".tmp-{chain_hex}-{}-{}",
            std::process::id(),
            TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let result = self.unpack_into(layer, &tmp);
        if let Err(e) = result {
            let _ = fs::remove_dir_all(&tmp);
            return Err(e);
        }
        match fs::rename(&tmp, &final_dir) {
            Ok(()) => archive::sync_dir(&layers_dir)?,
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOTEMPTY) | Some(libc::EEXIST)) => {
                // Another process unpacked the same layer first; use theirs.
                let _ = fs::remove_dir_all(&tmp);
            }
            Err(e) => {
                let _ = fs::remove_dir_all(&tmp);
                return Err(Error::io(
                    format!("renaming {} to {}", tmp.display(), final_dir.display()),
                    e,
                ));
            }
        }
        Ok(fs_dir)
    }

    fn unpack_into(&self, layer: &LayerRecord, tmp: &Path) -> Result<(), Error> {
        let fs_dir = tmp.join("fs");
        fs::create_dir_all(&fs_dir).ctx(|| format!("creating {}", fs_dir.display()))?;
        fs::set_permissions(&fs_dir, fs::Permissions::from_mode(0o755))
            .ctx(|| format!("chmod {}", fs_dir.display()))?;
        let blob = self.blob_path(&layer.digest)?;
        let file = File::open(&blob).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                Error::MissingBlob {
                    digest: layer.digest.clone(),
                    needed_by: format!("layer {}", layer.chain_id),
                }
            } else {
                Error::io(format!("opening {}", blob.display()), e)
            }
        })?;
        let reader = compress::decompress(BufReader::with_capacity(256 << 10, file))
            .ctx(|| format!("reading {}", blob.display()))?;
        let mut hashing = HashingReader::new(reader);
        unpack::unpack_layer(&mut hashing, &fs_dir, &layer.digest)?;
        let (diff_id, _) = hashing.finish().map_err(|e| Error::InvalidLayer {
            layer: layer.digest.clone(),
            reason: format!("reading after the end of the archive: {e}"),
        })?;
        if diff_id != layer.diff_id {
            return Err(Error::DigestMismatch {
                what: format!("uncompressed content (diff id) of layer {}", layer.digest),
                expected: layer.diff_id.clone(),
                actual: diff_id,
            });
        }
        // Make the content durable before the rename publishes it.
        let dir = File::open(tmp).ctx(|| format!("opening {}", tmp.display()))?;
        // SAFETY: syncfs on a valid open file descriptor.
        if unsafe { libc::syncfs(dir.as_raw_fd()) } != 0 {
            return Err(Error::io(
                format!("syncfs {}", tmp.display()),
                io::Error::last_os_error(),
            ));
        }
        Ok(())
    }
}
