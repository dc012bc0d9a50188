//! Reading import archives: every regular file of a (possibly gzip- or
//! zstd-compressed) tar is copied into a private staging directory of the store while
//! being hashed, so that documents can be looked up by name afterwards in any order and
//! blobs can be verified and then moved into the content store without a second copy.
//! Archive member names are only ever used as lookup keys, never as filesystem paths.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use tar::EntryType;

use crate::compress;
use crate::digest::HashingWriter;
use crate::error::IoContext;
use crate::Error;

/// Largest JSON document (index, manifest, config) read into memory.
pub(crate) const MAX_DOCUMENT: u64 = 64 << 20;

static STAGING_COUNTER: AtomicU64 = AtomicU64::new(0);

/// One staged file.
#[derive(Clone, Debug)]
pub(crate) struct StagedFile {
    /// Where its content is.
    pub path: PathBuf,
    /// `sha256:<hex>` of its content.
    pub digest: String,
    /// Its size in bytes.
    pub size: u64,
}

/// A private directory under the store's `tmp/` holding the files of one import; deleted
/// on drop.
pub(crate) struct Staging {
    dir: PathBuf,
    files: HashMap<String, StagedFile>,
    links: HashMap<String, String>,
    next: u64,
}

impl Staging {
    /// Creates `<tmp_root>/<pid>-<n>`.
    pub(crate) fn new(tmp_root: &Path) -> Result<Staging, Error> {
        let n = STAGING_COUNTER.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let dir = tmp_root.join(format!("{}-{n}-{nanos}", std::process::id()));
        fs::create_dir_all(&dir).ctx(|| format!("creating staging directory {}", dir.display()))?;
        Ok(Staging {
            dir,
            files: HashMap::new(),
            links: HashMap::new(),
            next: 0,
        })
    }

    /// Copies `r` into a new staged file (fsynced), registering it under `name` if given.
    pub(crate) fn stage(
        &mut self,
        r: &mut dyn Read,
        name: Option<&str>,
    ) -> Result<StagedFile, Error> {
        let (path, file) = self.create_file()?;
        let mut w = HashingWriter::new(io::BufWriter::with_capacity(256 << 10, file));
        io::copy(r, &mut w)
            .map_err(|e| Error::io(format!("copying into {}", path.display()), e))?;
        let (buf, digest, size) = w.finish();
        let file = buf
            .into_inner()
            .map_err(|e| Error::io(format!("writing {}", path.display()), e.into_error()))?;
        file.sync_all()
            .ctx(|| format!("syncing {}", path.display()))?;
        let staged = StagedFile { path, digest, size };
        if let Some(n) = name {
            self.files.insert(n.to_string(), staged.clone());
        }
        Ok(staged)
    }

    /// Creates a new empty file in the staging directory for the caller to fill.
    pub(crate) fn create_file(&mut self) -> Result<(PathBuf, File), Error> {
        let path = self.dir.join(format!("{}", self.next));
        self.next += 1;
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .ctx(|| format!("creating {}", path.display()))?;
        Ok((path, file))
    }

    /// The staged file for archive member `name`, following symlinks and hardlinks
    /// recorded in the archive.
    pub(crate) fn get(&self, name: &str) -> Option<&StagedFile> {
        let mut key = normalize_member(name)?;
        for _ in 0..16 {
            if let Some(f) = self.files.get(&key) {
                return Some(f);
            }
            key = self.links.get(&key)?.clone();
        }
        None
    }

    /// All staged files by archive name.
    pub(crate) fn files(&self) -> impl Iterator<Item = &StagedFile> {
        self.files.values()
    }

    /// Reads a staged document into memory (at most [`MAX_DOCUMENT`] bytes).
    pub(crate) fn read(&self, name: &str) -> Result<Option<Vec<u8>>, Error> {
        match self.get(name) {
            None => Ok(None),
            Some(f) => read_document(&f.path).map(Some),
        }
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if let Err(e) = fs::remove_dir_all(&self.dir) {
            if e.kind() != io::ErrorKind::NotFound {
                tracing::warn!(dir = %self.dir.display(), error = %e, "removing staging directory");
            }
        }
    }
}

/// Reads a file expected to be a small JSON document.
pub(crate) fn read_document(path: &Path) -> Result<Vec<u8>, Error> {
    let f = File::open(path).ctx(|| format!("opening {}", path.display()))?;
    let mut out = Vec::new();
    f.take(MAX_DOCUMENT + 1)
        .read_to_end(&mut out)
        .ctx(|| format!("reading {}", path.display()))?;
    if out.len() as u64 > MAX_DOCUMENT {
        return Err(Error::InvalidDocument {
            what: path.display().to_string(),
            reason: format!("larger than {MAX_DOCUMENT} bytes"),
        });
    }
    Ok(out)
}

/// Canonical form of an archive member name: no leading `/` or `./`, `..` resolved
/// lexically. `None` for the archive root.
fn normalize_member(name: &str) -> Option<String> {
    let mut parts: Vec<String> = Vec::new();
    for c in Path::new(name).components() {
        match c {
            Component::Normal(n) => parts.push(n.to_string_lossy().into_owned()),
            Component::ParentDir => {
                parts.pop();
            }
            _ => {}
        }
    }
    if parts.is_empty() {
        None
    } else {
        Some(parts.join("/"))
    }
}

/// Stages every regular file of the archive at `path`.
pub(crate) fn read_archive(path: &Path, staging: &mut Staging) -> Result<(), Error> {
    let bad = |reason: String| Error::InvalidArchive {
        path: path.to_path_buf(),
        reason,
    };
    let file = File::open(path).ctx(|| format!("opening {}", path.display()))?;
    let reader = compress::decompress(BufReader::with_capacity(256 << 10, file))
        .ctx(|| format!("reading {}", path.display()))?;
    let mut archive = tar::Archive::new(reader);
    let entries = archive.entries().map_err(|e| bad(e.to_string()))?;
    let mut seen_any = false;
    for entry in entries {
        let mut entry = entry.map_err(|e| bad(e.to_string()))?;
        seen_any = true;
        let raw = entry
            .path()
            .map_err(|e| bad(e.to_string()))?
            .to_string_lossy()
            .into_owned();
        let Some(name) = normalize_member(&raw) else {
            continue;
        };
        match entry.header().entry_type() {
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                staging
                    .stage(&mut entry, Some(&name))
                    .map_err(|e| match e {
                        Error::Io { source, .. }
                            if source.kind() == io::ErrorKind::UnexpectedEof =>
                        {
                            bad(format!("member {name}: {source}"))
                        }
                        other => other,
                    })?;
            }
            EntryType::Symlink | EntryType::Link => {
                let Some(target) = entry.link_name().map_err(|e| bad(e.to_string()))? else {
                    continue;
                };
                let target = target.to_string_lossy().into_owned();
                let resolved = if entry.header().entry_type() == EntryType::Symlink
                    && !target.starts_with('/')
                {
                    let parent = Path::new(&name).parent().unwrap_or(Path::new(""));
                    parent.join(&target).to_string_lossy().into_owned()
                } else {
                    target
                };
                if let Some(t) = normalize_member(&resolved) {
                    staging.links.insert(name, t);
                }
            }
            _ => {}
        }
    }
    if !seen_any {
        return Err(bad("archive is empty".to_string()));
    }
    Ok(())
}

/// Writes `data` to `path` atomically: temp file, fsync, rename, fsync of the directory.
pub(crate) fn write_atomic(path: &Path, data: &[u8]) -> Result<(), Error> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp-{}-{}",
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        std::process::id(),
        STAGING_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&tmp)
            .ctx(|| format!("creating {}", tmp.display()))?;
        f.write_all(data)
            .ctx(|| format!("writing {}", tmp.display()))?;
        f.sync_all().ctx(|| format!("syncing {}", tmp.display()))?;
        fs::rename(&tmp, path)
            .ctx(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
        sync_dir(dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// fsyncs a directory so that renames into it are durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), Error> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .ctx(|| format!("syncing directory {}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_names() {
        assert_eq!(
            normalize_member("./index.json").as_deref(),
            Some("index.json")
        );
        assert_eq!(
            normalize_member("/blobs/sha256/ab").as_deref(),
            Some("blobs/sha256/ab")
        );
        assert_eq!(normalize_member("a/../b").as_deref(), Some("b"));
        assert_eq!(normalize_member("./"), None);
    }

    #[test]
    fn staging_follows_links_and_cleans_up() {
        let tmp = tempfile::tempdir().unwrap();
        let mut tar = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(3);
        h.set_mode(0o644);
        tar.append_data(&mut h, "a/layer.tar", &b"abc"[..]).unwrap();
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(EntryType::Symlink);
        h.set_size(0);
        tar.append_link(&mut h, "b/layer.tar", "../a/layer.tar")
            .unwrap();
        let archive = tmp.path().join("x.tar");
        fs::write(&archive, tar.into_inner().unwrap()).unwrap();

        let store_tmp = tmp.path().join("tmp");
        let dir;
        {
            let mut st = Staging::new(&store_tmp).unwrap();
            read_archive(&archive, &mut st).unwrap();
            let f = st.get("./b/layer.tar").unwrap();
            assert_eq!(f.size, 3);
            assert_eq!(f.digest, crate::digest::sha256_digest(b"abc"));
            assert_eq!(st.read("a/layer.tar").unwrap().unwrap(), b"abc");
            assert!(st.get("c").is_none());
            dir = st.dir.clone();
            assert!(dir.exists());
        }
        assert!(!dir.exists());
    }

    #[test]
    fn garbage_is_not_an_archive() {
        let tmp = tempfile::tempdir().unwrap();
        let archive = tmp.path().join("x.tar");
        fs::write(&archive, vec![0x42u8; 100]).unwrap();
        let mut st = Staging::new(&tmp.path().join("tmp")).unwrap();
        assert!(matches!(
            read_archive(&archive, &mut st),
            Err(Error::InvalidArchive { .. })
        ));
    }
}
