//! The image store: content-addressed blobs, image records (names, digests, layers,
//! last use) in one atomically rewritten JSON file, layers unpacked once per chain id,
//! overlay root filesystems for containers, and kubelet-style image garbage collection.
//!
//! On-disk layout under the root:
//! - `blobs/sha256/<hex>`: manifests, configs, indexes and compressed layers;
//! - `layers/<chain id hex>/fs`: unpacked layers (appear only by atomic rename);
//! - `meta.json`: the image records; `lock`: flock for cross-process writers;
//! - `tmp/`: staging of imports in progress.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use crate::archive;
use crate::digest::{digest_hex, is_sha256_digest};
use crate::error::IoContext;
use crate::reference::{parse_reference, Reference};
use crate::{Error, Image, ImageConfig};

const META_VERSION: u32 = 1;
/// Kubelet's default ImageMinimumGCAge.
pub const DEFAULT_GC_MIN_AGE: Duration = Duration::from_secs(120);

mod gc;
mod import;
mod pull;
mod rootfs;

pub use gc::{DiskUsage, GcReport};
pub use import::ARCHIVE_SUFFIXES;
pub use pull::PullOptions;
pub use rootfs::{MountPoint, RootfsLayers, Unresolved};

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

pub(crate) type DiskUsageFn = dyn Fn(&Path) -> io::Result<DiskUsage> + Send + Sync;

/// A node's image store. Cheap to share behind an `Arc`; all methods take `&self`.
pub struct ImageStore {
    root: PathBuf,
    mutex: Mutex<()>,
    in_use: Mutex<HashSet<String>>,
    layer_locks: Mutex<HashMap<String, Arc<Mutex<()>>>>,
    disk_usage: Box<DiskUsageFn>,
    gc_min_age: Duration,
    pulls: pull::InFlight,
}

impl std::fmt::Debug for ImageStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImageStore")
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

/// One layer of an image.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub(crate) struct LayerRecord {
    pub digest: String,
    pub media_type: String,
    pub size: u64,
    pub diff_id: String,
    pub chain_id: String,
}

/// Everything the store remembers about one image.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct ImageRecord {
    id: String,
    #[serde(default)]
    repo_tags: BTreeSet<String>,
    #[serde(default)]
    repo_digests: BTreeSet<String>,
    manifest_digest: String,
    /// Digests the image can be addressed by in `name@digest`: its manifests and the
    /// indexes that led to them.
    #[serde(default)]
    target_digests: BTreeSet<String>,
    /// Other stored blobs belonging to the image (indexes, alternative manifests).
    #[serde(default)]
    extra_blobs: BTreeSet<String>,
    config_size: u64,
    layers: Vec<LayerRecord>,
    size: u64,
    config: ImageConfig,
    first_seen: u64,
    #[serde(default)]
    last_used: Option<u64>,
}

impl ImageRecord {
    fn image(&self) -> Image {
        Image {
            id: self.id.clone(),
            repo_tags: self.repo_tags.iter().cloned().collect(),
            repo_digests: self.repo_digests.iter().cloned().collect(),
            size: self.size,
            config: self.config.clone(),
        }
    }

    fn blobs(&self) -> impl Iterator<Item = &String> {
        std::iter::once(&self.id)
            .chain(std::iter::once(&self.manifest_digest))
            .chain(self.extra_blobs.iter())
            .chain(self.layers.iter().map(|l| &l.digest))
    }
}

/// An archive seen by `import_dir`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
struct ImportRecord {
    size: u64,
    mtime_ns: i64,
    ids: Vec<String>,
}

/// Contents of meta.json.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Meta {
    version: u32,
    #[serde(default)]
    images: BTreeMap<String, ImageRecord>,
    #[serde(default)]
    imports: BTreeMap<String, ImportRecord>,
}

/// A verified image waiting to be recorded.
struct PendingImage {
    manifest_digest: String,
    manifest_bytes: Vec<u8>,
    config_digest: String,
    config_bytes: Vec<u8>,
    config: ImageConfig,
    layers: Vec<PendingLayer>,
    extra_blobs: Vec<(String, Vec<u8>)>,
    target_digest: String,
    names: Vec<Reference>,
}

struct PendingLayer {
    record: LayerRecord,
    /// Staged content to move into the store; `None` when the blob is already there.
    source: Option<PathBuf>,
}

/// Where a blob needed by a manifest can be read.
struct Located {
    path: PathBuf,
    stored: bool,
}

/// How a reference matched an image.
enum Found {
    Id(String),
    Tag(String, String),
    Digest(String, String),
}

impl Found {
    fn id(&self) -> &str {
        match self {
            Found::Id(id) | Found::Tag(id, _) | Found::Digest(id, _) => id,
        }
    }
}

struct StoreLock<'a> {
    _flock: Flock<File>,
    _guard: MutexGuard<'a, ()>,
}

fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn pid_alive(pid: &str) -> bool {
    pid.parse::<u32>()
        .is_ok_and(|p| Path::new(&format!("/proc/{p}")).exists())
}

fn normalize_id(id: &str) -> String {
    if id.starts_with("sha256:") {
        id.to_string()
    } else {
        format!("sha256:{id}")
    }
}

impl ImageStore {
    /// Opens (creating) a store rooted at `root` (e.g. /var/lib/ferrokube/images),
    /// removing leftovers of interrupted imports, unpacks and deletions.
    pub fn open(root: impl Into<PathBuf>) -> Result<ImageStore, Error> {
        let root = root.into();
        for dir in [
            root.join("blobs/sha256"),
            root.join("layers"),
            root.join("init"),
            root.join("tmp"),
        ] {
            fs::create_dir_all(&dir).ctx(|| format!("creating {}", dir.display()))?;
        }
        // Unpacked layers may hold set-id binaries: keep them out of reach of other users.
        for dir in [root.clone(), root.join("layers"), root.join("tmp")] {
            fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))
                .ctx(|| format!("chmod {}", dir.display()))?;
        }
        let store = ImageStore {
            root,
            mutex: Mutex::new(()),
            in_use: Mutex::new(HashSet::new()),
            layer_locks: Mutex::new(HashMap::new()),
            disk_usage: Box::new(gc::statvfs_usage),
            gc_min_age: DEFAULT_GC_MIN_AGE,
            pulls: pull::InFlight::default(),
        };
        {
            let _lock = store.lock()?;
            let meta = store.load_meta()?;
            store.remove_stale_temporaries();
            store.sweep(&meta)?;
        }
        Ok(store)
    }

    /// Replaces the function measuring the store's filesystem (statvfs by default), so
    /// tests can drive garbage collection.
    pub fn with_disk_usage<F>(mut self, f: F) -> ImageStore
    where
        F: Fn(&Path) -> io::Result<DiskUsage> + Send + Sync + 'static,
    {
        self.disk_usage = Box::new(f);
        self
    }

    /// Sets the minimum age of an image before garbage collection may remove it
    /// (kubelet's ImageMinimumGCAge, 2 minutes by default).
    pub fn with_gc_min_age(mut self, age: Duration) -> ImageStore {
        self.gc_min_age = age;
        self
    }

    /// The store's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn blobs_dir(&self) -> PathBuf {
        self.root.join("blobs/sha256")
    }

    fn layers_dir(&self) -> PathBuf {
        self.root.join("layers")
    }

    /// Init layers: per image, the mount points its containers need.
    fn init_dir(&self) -> PathBuf {
        self.root.join("init")
    }

    fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    fn meta_path(&self) -> PathBuf {
        self.root.join("meta.json")
    }

    /// Path of the blob with `digest` (which need not exist).
    fn blob_path(&self, digest: &str) -> Result<PathBuf, Error> {
        Ok(self.blobs_dir().join(digest_hex(digest)?))
    }

    /// Whether the blob with this digest is stored (a puller can skip downloading it).
    pub fn has_blob(&self, digest: &str) -> bool {
        self.blob_path(digest).is_ok_and(|p| p.is_file())
    }

    fn lock(&self) -> Result<StoreLock<'_>, Error> {
        let guard = self.mutex.lock().unwrap_or_else(PoisonError::into_inner);
        let path = self.root.join("lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .ctx(|| format!("opening {}", path.display()))?;
        let flock = Flock::lock(file, FlockArg::LockExclusive)
            .map_err(|(_, e)| Error::io(format!("locking {}", path.display()), e.into()))?;
        Ok(StoreLock {
            _flock: flock,
            _guard: guard,
        })
    }

    fn load_meta(&self) -> Result<Meta, Error> {
        let path = self.meta_path();
        let text = match fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Ok(Meta {
                    version: META_VERSION,
                    ..Meta::default()
                })
            }
            Err(e) => return Err(Error::io(format!("reading {}", path.display()), e)),
        };
        let meta: Meta = serde_json::from_slice(&text).map_err(|e| Error::CorruptMetadata {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        if meta.version != META_VERSION {
            return Err(Error::CorruptMetadata {
                path,
                reason: format!("unknown version {}", meta.version),
            });
        }
        Ok(meta)
    }

    fn save_meta(&self, meta: &Meta) -> Result<(), Error> {
        let data = serde_json::to_vec_pretty(meta)
            .map_err(|e| Error::io("encoding metadata", io::Error::other(e)))?;
        archive::write_atomic(&self.meta_path(), &data)
    }

    // ----- queries -----

    /// All images, ordered by id.
    pub fn list(&self) -> Result<Vec<Image>, Error> {
        Ok(self
            .load_meta()?
            .images
            .values()
            .map(ImageRecord::image)
            .collect())
    }

    /// Finds an image by a reference as users write it in pod specs (`busybox`,
    /// `busybox:1.36`, `docker.io/library/busybox:latest`, `host:5000/x/y:tag`,
    /// `name@sha256:<manifest or index digest>`) or by image id (`sha256:<hex>`, the hex,
    /// or a unique prefix of at least 12 hex digits). `Ok(None)` when nothing matches; an
    /// error for references that are neither a valid name nor an id.
    pub fn resolve(&self, reference: &str) -> Result<Option<Image>, Error> {
        let meta = self.load_meta()?;
        Ok(find(&meta, reference)?.and_then(|f| meta.images.get(f.id()).map(ImageRecord::image)))
    }

    /// Removes a name (tag or `name@digest`) from its image, deleting the image when no
    /// name is left, or, given an id, the image and all its names. Blobs and unpacked
    /// layers no longer used by any image are deleted. Images marked in use cannot be
    /// deleted ([`Error::InUse`]).
    pub fn remove(&self, reference: &str) -> Result<(), Error> {
        let _lock = self.lock()?;
        let mut meta = self.load_meta()?;
        let found =
            find(&meta, reference)?.ok_or_else(|| Error::NotFound(reference.to_string()))?;
        let id = found.id().to_string();
        let in_use = self.is_in_use(&id);
        let Some(rec) = meta.images.get_mut(&id) else {
            return Err(Error::NotFound(reference.to_string()));
        };
        // What the image's names would be after removing this one.
        let mut tags = rec.repo_tags.clone();
        let mut digests = rec.repo_digests.clone();
        match &found {
            Found::Id(_) => {
                tags.clear();
                digests.clear();
            }
            Found::Tag(_, tag) => {
                tags.remove(tag);
                let repo = tag.rsplit_once(':').map(|(r, _)| r).unwrap_or(tag);
                // Docker drops a repository's digests together with its last tag.
                if !tags
                    .iter()
                    .any(|t| t.rsplit_once(':').is_some_and(|(r, _)| r == repo))
                {
                    digests.retain(|d| d.rsplit_once('@').is_none_or(|(r, _)| r != repo));
                }
            }
            Found::Digest(_, d) => {
                digests.remove(d);
            }
        }
        let delete = tags.is_empty() && digests.is_empty();
        if delete && in_use {
            return Err(Error::InUse { id });
        }
        if delete {
            meta.images.remove(&id);
            tracing::info!(id = %id, reference, "deleted image");
        } else {
            rec.repo_tags = tags;
            rec.repo_digests = digests;
            tracing::info!(id = %id, reference, "untagged image");
        }
        self.save_meta(&meta)?;
        self.sweep(&meta)?;
        Ok(())
    }

    /// Marks the images used by containers (by id, with or without `sha256:`) so that
    /// `remove` and `gc` leave them alone. Replaces the previous set.
    pub fn set_in_use(&self, ids: &HashSet<String>) {
        let mut set = self.in_use.lock().unwrap_or_else(PoisonError::into_inner);
        *set = ids.iter().map(|i| normalize_id(i)).collect();
    }

    fn is_in_use(&self, id: &str) -> bool {
        self.in_use
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(id)
    }

    /// Deletes blobs and unpacked layers that no image references.
    fn sweep(&self, meta: &Meta) -> Result<(), Error> {
        let blobs: HashSet<String> = meta
            .images
            .values()
            .flat_map(|r| {
                r.blobs()
                    .filter_map(|d| digest_hex(d).ok().map(str::to_string))
            })
            .collect();
        let chains: HashSet<String> = meta
            .images
            .values()
            .flat_map(|r| {
                r.layers
                    .iter()
                    .filter_map(|l| digest_hex(&l.chain_id).ok().map(str::to_string))
            })
            .collect();
        let blobs_dir = self.blobs_dir();
        for entry in fs::read_dir(&blobs_dir).ctx(|| format!("reading {}", blobs_dir.display()))? {
            let entry = entry.ctx(|| format!("reading {}", blobs_dir.display()))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let stale_tmp =
                name.starts_with('.') && name.contains(".tmp-") && !pid_alive(tmp_pid(&name));
            if (crate::digest::is_sha256_hex(&name) && !blobs.contains(&name)) || stale_tmp {
                tracing::debug!(blob = %name, "deleting unreferenced blob");
                fs::remove_file(entry.path())
                    .ctx(|| format!("removing {}", entry.path().display()))?;
            }
        }
        let layers_dir = self.layers_dir();
        // Containers of the built-in runtime mount their root in their own mount
        // namespace: every namespace's table is looked at, and only when needed.
        let mountinfo = std::cell::OnceCell::new();
        let mountinfo = || {
            mountinfo
                .get_or_init(crate::mount::all_mount_tables)
                .as_str()
        };
        for entry in
            fs::read_dir(&layers_dir).ctx(|| format!("reading {}", layers_dir.display()))?
        {
            let entry = entry.ctx(|| format!("reading {}", layers_dir.display()))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if crate::digest::is_sha256_hex(&name) && !chains.contains(&name) {
                // Never pull a layer from under a mounted container, even one whose
                // image was removed without being marked in use.
                if mountinfo().contains(&format!("{}/{name}/fs", layers_dir.display())) {
                    tracing::warn!(chain_id = %name, "unreferenced layer is still mounted; keeping it for now");
                    continue;
                }
                tracing::debug!(chain_id = %name, "deleting unreferenced unpacked layer");
                // Rename first so a crash never leaves a half-deleted layer under its name.
                let trash = layers_dir.join(format!(
                    ".trash-{name}-{}-{}",
                    std::process::id(),
                    TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
                ));
                fs::rename(entry.path(), &trash)
                    .ctx(|| format!("renaming {}", entry.path().display()))?;
                fs::remove_dir_all(&trash).ctx(|| format!("removing {}", trash.display()))?;
            }
        }
        // Init layers go with the top layer they were made over; half-made ones with
        // the process that made them.
        let init_dir = self.init_dir();
        for entry in fs::read_dir(&init_dir).ctx(|| format!("reading {}", init_dir.display()))? {
            let entry = entry.ctx(|| format!("reading {}", init_dir.display()))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let stale = if name.starts_with(".tmp-") {
                !pid_alive(tmp_pid(&name))
            } else {
                name.split('-').next().is_none_or(|c| !chains.contains(c))
            };
            if !stale || mountinfo().contains(&format!("{}/{name}/", init_dir.display())) {
                continue;
            }
            tracing::debug!(init = %name, "deleting unreferenced init layer");
            let path = entry.path();
            // A leftover temporary may still have its layers mounted.
            let _ = nix::mount::umount2(&path.join("mnt"), nix::mount::MntFlags::MNT_DETACH);
            fs::remove_dir_all(&path).ctx(|| format!("removing {}", path.display()))?;
        }
        Ok(())
    }

    /// Deletes staging and unpack directories left by processes that no longer run.
    fn remove_stale_temporaries(&self) {
        let remove = |p: &Path| {
            let r = if p.is_dir() {
                fs::remove_dir_all(p)
            } else {
                fs::remove_file(p)
            };
            if let Err(e) = r {
                tracing::warn!(path = %p.display(), error = %e, "removing stale temporary");
            }
        };
        if let Ok(entries) = fs::read_dir(self.tmp_dir()) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if !pid_alive(name.split('-').next().unwrap_or("")) {
                    remove(&e.path());
                }
            }
        }
        if let Ok(entries) = fs::read_dir(&self.root) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.starts_with(".meta.json.tmp-") && !pid_alive(tmp_pid(&name)) {
                    remove(&e.path());
                }
            }
        }
        if let Ok(entries) = fs::read_dir(self.layers_dir()) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                let stale = (name.starts_with(".tmp-") || name.starts_with(".trash-"))
                    && !pid_alive(tmp_pid(&name));
                if stale {
                    remove(&e.path());
                }
            }
        }
    }
}

/// Pid embedded in `.tmp-<hex>-<pid>-<n>`, `.trash-<hex>-<pid>-<n>` or
/// `.<name>.tmp-<pid>-<n>` names.
fn tmp_pid(name: &str) -> &str {
    let parts: Vec<&str> = name.rsplitn(3, '-').collect();
    parts.get(1).copied().unwrap_or("")
}

/// Looks a reference up: full id, then name, then id prefix (as containerd's CRI does).
fn find(meta: &Meta, reference: &str) -> Result<Option<Found>, Error> {
    if is_sha256_digest(reference) {
        return Ok(meta
            .images
            .contains_key(reference)
            .then(|| Found::Id(reference.to_string())));
    }
    let parsed = parse_reference(reference);
    if let Ok(r) = &parsed {
        if let Some(d) = &r.digest {
            let dn = format!("{}@{d}", r.name());
            for rec in meta.images.values() {
                let same_repo = rec.repo_digests.contains(&dn)
                    || (rec.target_digests.contains(d)
                        && rec
                            .repo_tags
                            .iter()
                            .any(|t| t.rsplit_once(':').is_some_and(|(n, _)| n == r.name())));
                if same_repo {
                    return Ok(Some(Found::Digest(rec.id.clone(), dn)));
                }
            }
        } else {
            let tagged = format!(
                "{}:{}",
                r.name(),
                r.tag.as_deref().unwrap_or(crate::reference::DEFAULT_TAG)
            );
            for rec in meta.images.values() {
                if rec.repo_tags.contains(&tagged) {
                    return Ok(Some(Found::Tag(rec.id.clone(), tagged)));
                }
            }
        }
    }
    let hex = reference.strip_prefix("sha256:").unwrap_or(reference);
    let hexlike = (12..=64).contains(&hex.len())
        && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if hexlike {
        let matches: Vec<&String> = meta
            .images
            .keys()
            .filter(|id| {
                id.strip_prefix("sha256:")
                    .is_some_and(|h| h.starts_with(hex))
            })
            .collect();
        return match matches.len() {
            0 => Ok(None),
            1 => Ok(Some(Found::Id(matches[0].clone()))),
            n => Err(Error::AmbiguousId {
                prefix: reference.to_string(),
                count: n,
            }),
        };
    }
    match parsed {
        Ok(_) => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tmp_pids() {
        assert_eq!(tmp_pid(".tmp-abc-123-4"), "123");
        assert_eq!(tmp_pid(".trash-abc-77-0"), "77");
        assert_eq!(tmp_pid(".meta.json.tmp-55-9"), "55");
    }
}
