//! Container root filesystems: layers unpacked once per chain id (atomically, by
//! rename), an init layer per image holding the mount points every container of it
//! needs, and overlayfs mounts over them.

use std::fs::{self, File};
use std::io::{self, BufReader};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};

use super::{now_nanos, ImageRecord, ImageStore, LayerRecord, TMP_COUNTER};
use crate::digest::{digest_hex, HashingReader};
use crate::error::IoContext;
use crate::{archive, compress, mount, unpack, Error, Image};

/// How precisely the last use of an image is recorded (one minute).
const LAST_USED_GRANULARITY_NANOS: u64 = 60_000_000_000;

/// A path the runtime mounts over in every container of an image (`/etc/hosts`, the
/// service account directory, `/proc`): made once in the image's init layer, so a
/// container start creates nothing in its writable layer for it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MountPoint {
    /// A directory, absolute path.
    Dir(String),
    /// An empty file, absolute path.
    File(String),
}

impl MountPoint {
    fn path(&self) -> &str {
        match self {
            MountPoint::Dir(p) | MountPoint::File(p) => p,
        }
    }
}

/// A container's root filesystem: overlayfs of the image's layers and the container's
/// writable layer, mounted at `rootfs`, or about to be.
#[derive(Clone, Debug)]
pub struct RootfsLayers {
    /// The lower directories, top first (empty when already mounted).
    pub lowers: Vec<PathBuf>,
    /// The writable layer.
    pub upper: PathBuf,
    /// overlayfs's work directory.
    pub work: PathBuf,
    /// `<container_dir>/rootfs`, the mount point.
    pub rootfs: PathBuf,
    /// Mounted in this mount namespace already (a restarted kubelet adopting a
    /// container): there is nothing left to mount.
    pub mounted: bool,
}

/// A file of a root filesystem that its layers alone do not settle (a symbolic link
/// on the way, an unreadable entry): read it through the mounted overlay instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unresolved;

impl RootfsLayers {
    /// Mounts the overlay at `rootfs` in this mount namespace, unless it is mounted.
    pub fn mount(&self) -> Result<(), Error> {
        if self.mounted {
            return Ok(());
        }
        mount::mount_overlay(&self.lowers, &self.upper, &self.work, &self.rootfs)?;
        tracing::debug!(rootfs = %self.rootfs.display(), layers = self.lowers.len(), "mounted container rootfs");
        Ok(())
    }

    /// The overlayfs mount's options (`lowerdir=...`, `upperdir=...`, ...), for a
    /// runtime that mounts the root in the container's own mount namespace; `None`
    /// when already mounted or when they do not fit the one page `mount(2)` takes.
    pub fn overlay_options(&self) -> Option<Vec<String>> {
        if self.mounted {
            return None;
        }
        mount::overlay_options(&self.lowers, &self.upper, &self.work)
            .ok()
            .flatten()
    }

    /// The contents of the regular file at `rel` (relative to the root) as the
    /// overlay shows it, read from the layers without mounting them: the topmost
    /// layer's entry wins, whiteouts delete and opaque directories hide what lies
    /// below. `Ok(None)` when the file does not exist (or is not a regular file).
    pub fn read_file(&self, rel: &Path) -> Result<Option<Vec<u8>>, Unresolved> {
        use std::os::unix::fs::{FileTypeExt, MetadataExt};
        let comps: Vec<&std::ffi::OsStr> = rel
            .components()
            .map(|c| match c {
                std::path::Component::Normal(n) => Ok(n),
                _ => Err(Unresolved),
            })
            .collect::<Result<_, _>>()?;
        if comps.is_empty() || self.mounted {
            return Err(Unresolved);
        }
        'layers: for layer in std::iter::once(&self.upper).chain(&self.lowers) {
            let mut cur = layer.clone();
            let mut opaque = false;
            for (i, c) in comps.iter().enumerate() {
                cur.push(c);
                let md = match fs::symlink_metadata(&cur) {
                    Ok(m) => m,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {
                        if opaque {
                            return Ok(None);
                        }
                        continue 'layers;
                    }
                    Err(_) => return Err(Unresolved),
                };
                let ft = md.file_type();
                if ft.is_char_device() && md.rdev() == 0 {
                    return Ok(None);
                }
                if ft.is_symlink() {
                    return Err(Unresolved);
                }
                if i + 1 == comps.len() {
                    if !ft.is_file() {
                        return Ok(None);
                    }
                    return fs::read(&cur).map(Some).map_err(|_| Unresolved);
                }
                if !ft.is_dir() {
                    // A file where a directory was expected hides the layers below.
                    return Ok(None);
                }
                opaque |= crate::unpack::is_opaque_dir(&cur);
            }
        }
        Ok(None)
    }
}

impl ImageStore {
    /// Root filesystem for one container: unpacks the image's layers (once per chain id,
    /// shared by all images, atomically), then mounts overlayfs at
    /// `<container_dir>/rootfs` with the layers as lower directories and
    /// `<container_dir>/upper` and `work`. Returns `<container_dir>/rootfs`. When it is
    /// already mounted (a restarted kubelet adopting a container) it is returned as is.
    /// Records the image as used now.
    pub fn mount_rootfs(&self, image: &Image, container_dir: &Path) -> Result<PathBuf, Error> {
        self.mount_rootfs_with(image, container_dir, &[])
    }

    /// [`mount_rootfs`](Self::mount_rootfs), with `points` present in the root
    /// filesystem: they are made once per image and set of points in an init layer,
    /// the topmost lower directory, following the image's symlinks inside its root (a
    /// `/var/run` linked to `/run` stays a link). A point that cannot be made there (a
    /// file in the way, a dangling link) is left to the runtime, as without this.
    pub fn mount_rootfs_with(
        &self,
        image: &Image,
        container_dir: &Path,
        points: &[MountPoint],
    ) -> Result<PathBuf, Error> {
        let layers = self.prepare_rootfs_with(image, container_dir, points)?;
        layers.mount()?;
        Ok(layers.rootfs)
    }

    /// Everything [`mount_rootfs_with`](Self::mount_rootfs_with) does but the mount
    /// itself: the layers unpacked, the init layer made, the writable layer's
    /// directories and the mount point created. The caller mounts the result here
    /// ([`RootfsLayers::mount`]) or in the container's own mount namespace
    /// ([`RootfsLayers::overlay_options`]).
    pub fn prepare_rootfs_with(
        &self,
        image: &Image,
        container_dir: &Path,
        points: &[MountPoint],
    ) -> Result<RootfsLayers, Error> {
        fs::create_dir_all(container_dir)
            .ctx(|| format!("creating {}", container_dir.display()))?;
        let cdir = fs::canonicalize(container_dir)
            .ctx(|| format!("resolving {}", container_dir.display()))?;
        let rootfs = cdir.join("rootfs");
        let upper = cdir.join("upper");
        let work = cdir.join("work");
        let mounted = rootfs.is_dir()
            && mount::is_mount_point(&rootfs).ctx(|| "reading /proc/self/mountinfo".to_string())?;
        let rec = self.touch(&image.id)?;
        let mut layers = RootfsLayers {
            lowers: Vec::new(),
            upper,
            work,
            rootfs: container_dir.join("rootfs"),
            mounted,
        };
        if mounted {
            return Ok(layers);
        }
        let mut lowers = Vec::with_capacity(rec.layers.len());
        for layer in &rec.layers {
            lowers.push(self.ensure_layer(layer)?);
        }
        lowers.reverse();
        if !points.is_empty() && !lowers.is_empty() {
            if let Some(init) = self.ensure_init_layer(&rec, &lowers, points) {
                lowers.insert(0, init);
            }
        }
        for d in [&layers.upper, &layers.work, &rootfs] {
            fs::create_dir_all(d).ctx(|| format!("creating {}", d.display()))?;
        }
        if lowers.is_empty() {
            // overlayfs needs a lower directory; an image without layers gets an empty one.
            let empty = cdir.join("empty");
            fs::create_dir_all(&empty).ctx(|| format!("creating {}", empty.display()))?;
            lowers.push(empty);
        }
        layers.lowers = lowers;
        Ok(layers)
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

    /// The lock making one directory of `layers` or `init` at a time per name.
    fn unpack_lock(&self, name: String) -> Arc<Mutex<()>> {
        let mut locks = self
            .layer_locks
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        locks.entry(name).or_default().clone()
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
        let lock = self.unpack_lock(chain_hex.clone());
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

    /// The init layer of the image with these `lowers` (topmost first) holding
    /// `points`, made if missing; `None` (logged) when it cannot be made, so the
    /// container goes without. Named `<top chain id>-<hash of the points>`, so the
    /// store's sweep removes it with the image's layers.
    fn ensure_init_layer(
        &self,
        rec: &ImageRecord,
        lowers: &[PathBuf],
        points: &[MountPoint],
    ) -> Option<PathBuf> {
        let top = rec.layers.last()?;
        let chain_hex = digest_hex(&top.chain_id).ok()?;
        let mut sorted: Vec<&MountPoint> = points.iter().collect();
        sorted.sort();
        sorted.dedup();
        let key = format!("{chain_hex}-{}", points_hash(&sorted));
        let init_dir = self.init_dir();
        let final_dir = init_dir.join(&key);
        let fs_dir = final_dir.join("fs");
        if final_dir.is_dir() {
            return Some(fs_dir);
        }
        let lock = self.unpack_lock(format!("init-{key}"));
        let _guard = lock.lock().unwrap_or_else(PoisonError::into_inner);
        if final_dir.is_dir() {
            return Some(fs_dir);
        }
        let tmp = init_dir.join(format!(
            ".tmp-{key}-{}-{}",
            std::process::id(),
            TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let made = make_init_layer(&tmp, lowers, &sorted).and_then(|()| {
            fs::rename(&tmp, &final_dir).ctx(|| format!("renaming {}", tmp.display()))
        });
        match made {
            Ok(()) => Some(fs_dir),
            Err(e) => {
                let _ = fs::remove_dir_all(&tmp);
                if final_dir.is_dir() {
                    // Another process made it first.
                    return Some(fs_dir);
                }
                tracing::warn!(image = %rec.id, error = %e, "making the image's init layer; containers make their mount points themselves");
                None
            }
        }
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

/// A short stable name for a set of mount points (sorted, deduplicated): the first 16
/// hex digits of the sha256 of their kinds and paths.
fn points_hash(points: &[&MountPoint]) -> String {
    let mut data = Vec::new();
    for p in points {
        data.push(match p {
            MountPoint::Dir(_) => b'd',
            MountPoint::File(_) => b'f',
        });
        data.extend_from_slice(p.path().as_bytes());
        data.push(0);
    }
    let digest = crate::digest::sha256_digest(&data);
    digest_hex(&digest)
        .ok()
        .and_then(|h| h.get(..16))
        .unwrap_or_default()
        .to_string()
}

/// Makes `<tmp>/fs` hold `points` over `lowers`: mounts the layers with `<tmp>/fs` as
/// the upper directory, so what is made follows the image's own directories and
/// links (parents are copied up with their owners and modes), then unmounts and
/// leaves only `<tmp>/fs`.
fn make_init_layer(tmp: &Path, lowers: &[PathBuf], points: &[&MountPoint]) -> Result<(), Error> {
    let (upper, work, mnt) = (tmp.join("fs"), tmp.join("work"), tmp.join("mnt"));
    for d in [&upper, &work, &mnt] {
        fs::create_dir_all(d).ctx(|| format!("creating {}", d.display()))?;
    }
    fs::set_permissions(&upper, fs::Permissions::from_mode(0o755))
        .ctx(|| format!("chmod {}", upper.display()))?;
    mount::mount_overlay(lowers, &upper, &work, &mnt)?;
    let made = (|| -> Result<(), Error> {
        let root = File::open(&mnt).ctx(|| format!("opening {}", mnt.display()))?;
        for p in points {
            let create = match p {
                MountPoint::Dir(_) => root_path::Create::Dir,
                MountPoint::File(_) => root_path::Create::File,
            };
            if let Err(e) = root_path::open_in_root(root.as_fd(), Path::new(p.path()), create) {
                tracing::debug!(path = p.path(), error = %e, "mount point left to the runtime");
            }
        }
        Ok(())
    })();
    let unmounted = nix::mount::umount2(&mnt, nix::mount::MntFlags::empty())
        .map_err(|e| Error::io(format!("unmounting {}", mnt.display()), e.into()));
    made?;
    unmounted?;
    for d in [&work, &mnt] {
        fs::remove_dir_all(d).ctx(|| format!("removing {}", d.display()))?;
    }
    archive::sync_dir(tmp)?;
    Ok(())
}
