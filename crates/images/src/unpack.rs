//! Unpacking one layer tar into its own directory, ready to be an overlayfs lower
//! directory: OCI whiteouts become overlay whiteouts (0/0 character devices) and opaque
//! markers become the `trusted.overlay.opaque` xattr; ownership, modes, symlinks,
//! hardlinks, device nodes, xattrs and mtimes are kept; paths that would leave the
//! layer directory (`..`, or a parent that is a symlink) are refused.

use std::ffi::{CString, OsStr};
use std::fs::{self, OpenOptions};
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{
    lchown, symlink, FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt,
};
use std::path::{Component, Path, PathBuf};

use nix::sys::stat::{makedev, mknod, utimensat, Mode, SFlag, UtimensatFlags};
use nix::sys::time::TimeSpec;
use tar::EntryType;

use crate::error::IoContext;
use crate::Error;

/// OCI whiteout file name prefix.
const WHITEOUT_PREFIX: &str = ".wh.";
/// OCI opaque directory marker.
const WHITEOUT_OPAQUE: &str = ".wh..wh..opq";
/// Prefix of aufs bookkeeping entries, which carry no content.
const WHITEOUT_META_PREFIX: &str = ".wh..wh.";
/// Overlayfs xattr marking a directory opaque.
const OVERLAY_OPAQUE_XATTR: &str = "trusted.overlay.opaque";

/// Ownership, permissions, times and xattrs of one tar entry.
struct EntryMeta {
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: (i64, i64),
    xattrs: Vec<(String, Vec<u8>)>,
}

/// Unpacks the tar stream `reader` into the directory `root` (which must exist and be
/// empty). `layer` names the layer in errors. Reads the archive up to its end marker;
/// the caller drains any trailing bytes.
pub(crate) fn unpack_layer<R: Read>(reader: R, root: &Path, layer: &str) -> Result<(), Error> {
    let bad = |reason: String| Error::InvalidLayer {
        layer: layer.to_string(),
        reason,
    };
    let mut archive = tar::Archive::new(reader);
    let mut dir_times: Vec<(PathBuf, (i64, i64))> = Vec::new();
    let entries = archive
        .entries()
        .map_err(|e| bad(format!("reading tar: {e}")))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| bad(format!("reading tar: {e}")))?;
        let etype = entry.header().entry_type();
        if matches!(
            etype,
            EntryType::XGlobalHeader
                | EntryType::XHeader
                | EntryType::GNULongName
                | EntryType::GNULongLink
        ) {
            continue;
        }
        let raw_path = entry
            .path()
            .map_err(|e| bad(format!("entry with unreadable path: {e}")))?
            .into_owned();
        let shown = raw_path.display().to_string();
        let traversal = |reason: &str| Error::PathTraversal {
            layer: layer.to_string(),
            entry: shown.clone(),
            reason: reason.to_string(),
        };
        let rel = clean_path(&raw_path).map_err(traversal)?;
        let meta = entry_meta(&mut entry).map_err(|e| bad(format!("entry {shown}: {e}")))?;

        let Some(rel) = rel else {
            // The layer root itself ("./").
            if etype != EntryType::Directory {
                return Err(bad(format!(
                    "entry {shown} replaces the root with a non-directory"
                )));
            }
            apply_meta(root, &meta, false)?;
            dir_times.push((root.to_path_buf(), meta.mtime));
            continue;
        };
        let base = rel.file_name().unwrap_or_default().to_os_string();
        let parent_rel = rel.parent().unwrap_or(Path::new(""));
        let base_bytes = base.as_bytes();

        if base_bytes == WHITEOUT_OPAQUE.as_bytes() {
            let dir =
                ensure_dirs(root, parent_rel, true).map_err(|r| resolve_err(layer, &shown, r))?;
            set_xattr(&dir, OVERLAY_OPAQUE_XATTR, b"y")?;
            continue;
        }
        if base_bytes.starts_with(WHITEOUT_META_PREFIX.as_bytes()) {
            continue;
        }
        if let Some(name) = base_bytes.strip_prefix(WHITEOUT_PREFIX.as_bytes()) {
            if name.is_empty() || name == b"." || name == b".." {
                return Err(traversal("whiteout of an invalid name"));
            }
            let dir =
                ensure_dirs(root, parent_rel, true).map_err(|r| resolve_err(layer, &shown, r))?;
            let target = dir.join(OsStr::from_bytes(name));
            remove_existing(&target)?;
            mknod(&target, SFlag::S_IFCHR, Mode::empty(), makedev(0, 0))
                .ctx(|| format!("creating whiteout {}", target.display()))?;
            lchown(&target, Some(meta.uid), Some(meta.gid))
                .ctx(|| format!("chown {}", target.display()))?;
            continue;
        }

        let dir = ensure_dirs(root, parent_rel, true).map_err(|r| resolve_err(layer, &shown, r))?;
        let target = dir.join(&base);
        match etype {
            EntryType::Directory => {
                let existing_dir = fs::symlink_metadata(&target).is_ok_and(|m| m.is_dir());
                if !existing_dir {
                    remove_existing(&target)?;
                    fs::create_dir(&target)
                        .ctx(|| format!("creating directory {}", target.display()))?;
                }
                apply_meta(&target, &meta, false)?;
                dir_times.push((target, meta.mtime));
            }
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                remove_existing(&target)?;
                let mut file = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .custom_flags(libc::O_NOFOLLOW)
                    .open(&target)
                    .ctx(|| format!("creating {}", target.display()))?;
                io::copy(&mut entry, &mut file).map_err(|e| {
                    if e.kind() == io::ErrorKind::UnexpectedEof
                        || e.kind() == io::ErrorKind::InvalidData
                    {
                        bad(format!("entry {shown}: {e}"))
                    } else {
                        Error::io(format!("writing {}", target.display()), e)
                    }
                })?;
                drop(file);
                apply_meta(&target, &meta, false)?;
                set_times(&target, meta.mtime)?;
            }
            EntryType::Symlink => {
                let link = entry
                    .link_name()
                    .map_err(|e| bad(format!("entry {shown}: {e}")))?
                    .ok_or_else(|| bad(format!("symlink {shown} has no target")))?
                    .into_owned();
                remove_existing(&target)?;
                symlink(&link, &target).ctx(|| format!("creating symlink {}", target.display()))?;
                apply_meta(&target, &meta, true)?;
                set_times(&target, meta.mtime)?;
            }
            EntryType::Link => {
                let link = entry
                    .link_name()
                    .map_err(|e| bad(format!("entry {shown}: {e}")))?
                    .ok_or_else(|| bad(format!("hardlink {shown} has no target")))?
                    .into_owned();
                let link_rel = clean_path(&link)
                    .map_err(traversal)?
                    .ok_or_else(|| traversal("hardlink to the layer root"))?;
                let link_dir = ensure_dirs(root, link_rel.parent().unwrap_or(Path::new("")), false)
                    .map_err(|r| resolve_err(layer, &shown, r))?;
                let source = link_dir.join(link_rel.file_name().unwrap_or_default());
                let source_meta = fs::symlink_metadata(&source).map_err(|_| {
                    bad(format!(
                        "hardlink {shown} points to {}, which is not in this layer",
                        link.display()
                    ))
                })?;
                if source_meta.is_dir() {
                    return Err(bad(format!("hardlink {shown} points to a directory")));
                }
                if source == target {
                    continue;
                }
                remove_existing(&target)?;
                fs::hard_link(&source, &target)
                    .ctx(|| format!("linking {} to {}", target.display(), source.display()))?;
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                let kind = match etype {
                    EntryType::Char => SFlag::S_IFCHR,
                    EntryType::Block => SFlag::S_IFBLK,
                    _ => SFlag::S_IFIFO,
                };
                let header = entry.header();
                let major = header.device_major().ok().flatten().unwrap_or(0);
                let minor = header.device_minor().ok().flatten().unwrap_or(0);
                remove_existing(&target)?;
                mknod(
                    &target,
                    kind,
                    Mode::from_bits_truncate(meta.mode),
                    makedev(u64::from(major), u64::from(minor)),
                )
                .ctx(|| format!("creating device node {}", target.display()))?;
                apply_meta(&target, &meta, false)?;
                set_times(&target, meta.mtime)?;
            }
            other => {
                tracing::warn!(layer, entry = %shown, kind = ?other, "skipping unsupported tar entry type");
            }
        }
    }
    // Directory times last: creating entries inside a directory changes its mtime.
    for (dir, mtime) in dir_times.iter().rev() {
        set_times(dir, *mtime)?;
    }
    Ok(())
}

/// Checks a layer tar without writing anything: every path must stay inside the layer
/// (no `..`, no entry below a symlink of the same layer, hardlinks to paths inside it).
/// Used at import so that hostile layers are refused before anything is stored.
pub(crate) fn scan_layer<R: Read>(reader: R, layer: &str) -> Result<(), Error> {
    let bad = |reason: String| Error::InvalidLayer {
        layer: layer.to_string(),
        reason,
    };
    let mut archive = tar::Archive::new(reader);
    let mut symlinks: std::collections::HashSet<PathBuf> = std::collections::HashSet::new();
    let entries = archive
        .entries()
        .map_err(|e| bad(format!("reading tar: {e}")))?;
    for entry in entries {
        let entry = entry.map_err(|e| bad(format!("reading tar: {e}")))?;
        let etype = entry.header().entry_type();
        let raw_path = entry
            .path()
            .map_err(|e| bad(format!("entry with unreadable path: {e}")))?
            .into_owned();
        let shown = raw_path.display().to_string();
        let traversal = |reason: String| Error::PathTraversal {
            layer: layer.to_string(),
            entry: shown.clone(),
            reason,
        };
        let Some(rel) = clean_path(&raw_path).map_err(|r| traversal(r.to_string()))? else {
            continue;
        };
        let check_parents = |p: &Path| -> Result<(), Error> {
            for ancestor in p.ancestors().skip(1) {
                if symlinks.contains(ancestor) {
                    return Err(traversal(format!(
                        "parent {} is a symlink",
                        ancestor.display()
                    )));
                }
            }
            Ok(())
        };
        check_parents(&rel)?;
        if etype == EntryType::Link {
            let link = entry
                .link_name()
                .map_err(|e| bad(format!("entry {shown}: {e}")))?
                .ok_or_else(|| bad(format!("hardlink {shown} has no target")))?;
            let target = clean_path(&link)
                .map_err(|r| traversal(r.to_string()))?
                .ok_or_else(|| traversal("hardlink to the layer root".to_string()))?;
            check_parents(&target)?;
        }
        let is_whiteout = rel
            .file_name()
            .is_some_and(|n| n.as_bytes().starts_with(WHITEOUT_PREFIX.as_bytes()));
        if etype == EntryType::Symlink {
            symlinks.insert(rel);
        } else if !is_whiteout {
            symlinks.remove(&rel);
        }
    }
    Ok(())
}

/// Why a path inside the layer cannot be resolved.
enum ResolveError {
    /// A parent component is a symlink: following it could leave the layer.
    Symlink(PathBuf),
    /// A parent component is not a directory.
    NotDir(PathBuf),
    /// A parent component does not exist (only when not creating).
    Missing(PathBuf),
    /// Creating a parent failed.
    Io(Error),
}

fn resolve_err(layer: &str, entry: &str, r: ResolveError) -> Error {
    match r {
        ResolveError::Symlink(p) => Error::PathTraversal {
            layer: layer.to_string(),
            entry: entry.to_string(),
            reason: format!("parent {} is a symlink", p.display()),
        },
        ResolveError::NotDir(p) => Error::InvalidLayer {
            layer: layer.to_string(),
            reason: format!("entry {entry}: parent {} is not a directory", p.display()),
        },
        ResolveError::Missing(p) => Error::InvalidLayer {
            layer: layer.to_string(),
            reason: format!(
                "entry {entry}: {} does not exist in this layer",
                p.display()
            ),
        },
        ResolveError::Io(e) => e,
    }
}

/// Normalises a tar path: drops `/` and `.` components, refuses `..`. `None` is the
/// layer root.
fn clean_path(p: &Path) -> Result<Option<PathBuf>, &'static str> {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir => return Err("path contains '..'"),
            Component::Prefix(_) => return Err("path has a prefix"),
            Component::Normal(n) => out.push(n),
        }
    }
    Ok(if out.as_os_str().is_empty() {
        None
    } else {
        Some(out)
    })
}

/// Walks `rel` below `root` one component at a time, refusing symlinks, creating
/// missing directories (mode 0755, owned by root) when `create`.
fn ensure_dirs(root: &Path, rel: &Path, create: bool) -> Result<PathBuf, ResolveError> {
    let mut cur = root.to_path_buf();
    for c in rel.components() {
        let Component::Normal(name) = c else {
            continue;
        };
        cur.push(name);
        match fs::symlink_metadata(&cur) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(ResolveError::Symlink(
                    cur.strip_prefix(root).unwrap_or(&cur).to_path_buf(),
                ))
            }
            Ok(m) if m.is_dir() => {}
            // A whiteout made earlier in this layer, for a directory recreated after it.
            Ok(m) if create && m.file_type().is_char_device() && m.rdev() == 0 => {
                fs::remove_file(&cur)
                    .and_then(|()| fs::create_dir(&cur))
                    .and_then(|()| fs::set_permissions(&cur, fs::Permissions::from_mode(0o755)))
                    .map_err(|e| {
                        ResolveError::Io(Error::io(
                            format!("replacing whiteout {}", cur.display()),
                            e,
                        ))
                    })?;
            }
            Ok(_) => {
                return Err(ResolveError::NotDir(
                    cur.strip_prefix(root).unwrap_or(&cur).to_path_buf(),
                ))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound && create => {
                fs::create_dir(&cur)
                    .and_then(|()| fs::set_permissions(&cur, fs::Permissions::from_mode(0o755)))
                    .map_err(|e| {
                        ResolveError::Io(Error::io(
                            format!("creating directory {}", cur.display()),
                            e,
                        ))
                    })?;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(ResolveError::Missing(
                    cur.strip_prefix(root).unwrap_or(&cur).to_path_buf(),
                ))
            }
            Err(e) => {
                return Err(ResolveError::Io(Error::io(
                    format!("inspecting {}", cur.display()),
                    e,
                )))
            }
        }
    }
    Ok(cur)
}

/// Deletes whatever is at `path` (without following symlinks), if anything.
fn remove_existing(path: &Path) -> Result<(), Error> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => {
            fs::remove_dir_all(path).ctx(|| format!("removing {}", path.display()))
        }
        Ok(_) => fs::remove_file(path).ctx(|| format!("removing {}", path.display())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(format!("inspecting {}", path.display()), e)),
    }
}

/// Owner, then mode (chown clears set-id bits), then xattrs.
fn apply_meta(path: &Path, meta: &EntryMeta, is_symlink: bool) -> Result<(), Error> {
    lchown(path, Some(meta.uid), Some(meta.gid)).ctx(|| format!("chown {}", path.display()))?;
    if !is_symlink {
        fs::set_permissions(path, fs::Permissions::from_mode(meta.mode))
            .ctx(|| format!("chmod {}", path.display()))?;
    }
    for (name, value) in &meta.xattrs {
        if name.starts_with("trusted.overlay.") || name.starts_with("user.overlay.") {
            tracing::debug!(path = %path.display(), xattr = %name, "ignoring overlay xattr from layer");
            continue;
        }
        match set_xattr(path, name, value) {
            Ok(()) => {}
            Err(Error::Io { source, .. }) if source.raw_os_error() == Some(libc::EOPNOTSUPP) => {
                tracing::warn!(path = %path.display(), xattr = %name, "filesystem does not support xattr; skipped");
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Whether a directory of an unpacked layer is opaque (hides the layers below it):
/// it has the marker [`unpack`](self) gives directories with a `.wh..wh..opq` entry.
pub(crate) fn is_opaque_dir(path: &Path) -> bool {
    let (Ok(c), Ok(name)) = (
        CString::new(path.as_os_str().as_bytes()),
        CString::new(OVERLAY_OPAQUE_XATTR),
    ) else {
        return false;
    };
    let mut buf = [0u8; 4];
    // SAFETY: lgetxattr writes at most `buf.len()` bytes into `buf`; both strings are
    // NUL-terminated.
    let n = unsafe {
        libc::lgetxattr(
            c.as_ptr(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    n == 1 && buf[0] == b'y'
}

fn set_xattr(path: &Path, name: &str, value: &[u8]) -> Result<(), Error> {
    let cpath = CString::new(path.as_os_str().as_bytes()).map_err(|_| {
        Error::io(
            format!("path {} contains NUL", path.display()),
            io::ErrorKind::InvalidInput.into(),
        )
    })?;
    let cname = CString::new(name).map_err(|_| {
        Error::io(
            format!("xattr name {name:?} contains NUL"),
            io::ErrorKind::InvalidInput.into(),
        )
    })?;
    // SAFETY: both strings are NUL-terminated and outlive the call; value points to
    // value.len() readable bytes.
    let rc = unsafe {
        libc::lsetxattr(
            cpath.as_ptr(),
            cname.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    if rc != 0 {
        return Err(Error::io(
            format!("setting xattr {name} on {}", path.display()),
            io::Error::last_os_error(),
        ));
    }
    Ok(())
}

fn set_times(path: &Path, (secs, nanos): (i64, i64)) -> Result<(), Error> {
    let ts = TimeSpec::new(secs, nanos);
    utimensat(None, path, &ts, &ts, UtimensatFlags::NoFollowSymlink)
        .ctx(|| format!("setting times of {}", path.display()))
}

fn entry_meta<R: Read>(entry: &mut tar::Entry<'_, R>) -> io::Result<EntryMeta> {
    let header = entry.header();
    let old = header.as_old();
    let mut meta = EntryMeta {
        mode: numeric(header.mode(), &old.mode)? & 0o7777,
        uid: u32::try_from(numeric(header.uid(), &old.uid)?)
            .map_err(|_| io::Error::other("uid out of range"))?,
        gid: u32::try_from(numeric(header.gid(), &old.gid)?)
            .map_err(|_| io::Error::other("gid out of range"))?,
        mtime: (
            i64::try_from(numeric(header.mtime(), &old.mtime)?).unwrap_or(0),
            0,
        ),
        xattrs: Vec::new(),
    };
    if let Some(exts) = entry.pax_extensions()? {
        for ext in exts {
            let ext = ext?;
            let Ok(key) = ext.key() else { continue };
            let value = ext.value_bytes();
            if let Some(name) = key.strip_prefix("SCHILY.xattr.") {
                meta.xattrs.push((name.to_string(), value.to_vec()));
                continue;
            }
            let text = std::str::from_utf8(value).unwrap_or("");
            match key {
                "uid" => meta.uid = text.parse().map_err(|_| io::Error::other("bad PAX uid"))?,
                "gid" => meta.gid = text.parse().map_err(|_| io::Error::other("bad PAX gid"))?,
                "mtime" => {
                    if let Some(t) = parse_pax_time(text) {
                        meta.mtime = t;
                    }
                }
                _ => {}
            }
        }
    }
    Ok(meta)
}

/// A numeric header field; empty fields (all NUL or spaces) count as 0, as Go's tar
/// reader treats them.
fn numeric<T: Default>(parsed: io::Result<T>, raw: &[u8]) -> io::Result<T> {
    match parsed {
        Ok(v) => Ok(v),
        Err(_) if raw.iter().all(|b| *b == 0 || *b == b' ') => Ok(T::default()),
        Err(e) => Err(e),
    }
}

/// Parses a PAX time (`1234567890.123456789`, possibly negative) into seconds and
/// nanoseconds.
fn parse_pax_time(s: &str) -> Option<(i64, i64)> {
    let (int, frac) = match s.split_once('.') {
        Some((i, f)) => (i, f),
        None => (s, ""),
    };
    let secs: i64 = int.parse().ok()?;
    let mut digits: String = frac.chars().take(9).collect();
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    while digits.len() < 9 {
        digits.push('0');
    }
    let nanos: i64 = digits.parse().ok()?;
    if int.starts_with('-') && nanos > 0 {
        Some((secs - 1, 1_000_000_000 - nanos))
    } else {
        Some((secs, nanos))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_root() -> bool {
        nix::unistd::geteuid().is_root()
    }

    /// Appends an entry whose name is written verbatim into the header (bypassing the
    /// tar crate's own path checks) so that hostile names can be tested.
    fn raw_entry(
        b: &mut tar::Builder<Vec<u8>>,
        name: &str,
        kind: EntryType,
        link: &str,
        data: &[u8],
    ) {
        let mut h = tar::Header::new_old();
        {
            let old = h.as_old_mut();
            old.name[..name.len()].copy_from_slice(name.as_bytes());
            old.linkname[..link.len()].copy_from_slice(link.as_bytes());
        }
        h.set_entry_type(kind);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_size(data.len() as u64);
        h.set_cksum();
        b.append(&h, data).unwrap();
    }

    fn unpack(tar: Vec<u8>) -> (tempfile::TempDir, Result<(), Error>) {
        let dir = tempfile::tempdir().unwrap();
        let r = unpack_layer(&tar[..], dir.path(), "sha256:test");
        (dir, r)
    }

    #[test]
    fn clean_paths() {
        assert_eq!(
            clean_path(Path::new("./a/b")).unwrap(),
            Some(PathBuf::from("a/b"))
        );
        assert_eq!(
            clean_path(Path::new("/a//b/")).unwrap(),
            Some(PathBuf::from("a/b"))
        );
        assert_eq!(clean_path(Path::new("./")).unwrap(), None);
        assert!(clean_path(Path::new("a/../../b")).is_err());
        assert!(clean_path(Path::new("..")).is_err());
    }

    #[test]
    fn pax_times() {
        assert_eq!(parse_pax_time("12.5"), Some((12, 500_000_000)));
        assert_eq!(parse_pax_time("12"), Some((12, 0)));
        assert_eq!(parse_pax_time("-1.25"), Some((-2, 750_000_000)));
        assert_eq!(parse_pax_time("x"), None);
    }

    #[test]
    fn refuses_dotdot() {
        if !is_root() {
            eprintln!("skipping: needs root");
            return;
        }
        let mut b = tar::Builder::new(Vec::new());
        raw_entry(&mut b, "../escape", EntryType::Regular, "", b"x");
        let (dir, r) = unpack(b.into_inner().unwrap());
        assert!(matches!(r, Err(Error::PathTraversal { .. })), "{r:?}");
        assert!(!dir.path().parent().unwrap().join("escape").exists());
    }

    #[test]
    fn refuses_write_through_symlink() {
        if !is_root() {
            eprintln!("skipping: needs root");
            return;
        }
        let outside = tempfile::tempdir().unwrap();
        let mut b = tar::Builder::new(Vec::new());
        raw_entry(
            &mut b,
            "evil",
            EntryType::Symlink,
            outside.path().to_str().unwrap(),
            b"",
        );
        raw_entry(&mut b, "evil/pwned", EntryType::Regular, "", b"x");
        let (_dir, r) = unpack(b.into_inner().unwrap());
        match r {
            Err(Error::PathTraversal { reason, .. }) => {
                assert_eq!(reason, "parent evil is a symlink")
            }
            other => panic!("{other:?}"),
        }
        assert!(!outside.path().join("pwned").exists());

        // A hardlink whose target goes through a symlink is refused as well.
        let mut b = tar::Builder::new(Vec::new());
        raw_entry(&mut b, "evil", EntryType::Symlink, "/etc", b"");
        raw_entry(&mut b, "passwd", EntryType::Link, "evil/passwd", b"");
        let (_dir, r) = unpack(b.into_inner().unwrap());
        assert!(matches!(r, Err(Error::PathTraversal { .. })), "{r:?}");

        let mut b = tar::Builder::new(Vec::new());
        raw_entry(&mut b, "x", EntryType::Link, "../../etc/passwd", b"");
        let (_dir, r) = unpack(b.into_inner().unwrap());
        assert!(matches!(r, Err(Error::PathTraversal { .. })), "{r:?}");
    }

    #[test]
    fn keeps_metadata_and_converts_whiteouts() {
        if !is_root() {
            eprintln!("skipping: needs root");
            return;
        }
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(EntryType::Directory);
        h.set_mode(0o1777);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_000_000);
        h.set_size(0);
        b.append_data(&mut h, "tmp/", &b""[..]).unwrap();

        let mut h = tar::Header::new_gnu();
        h.set_entry_type(EntryType::Regular);
        h.set_mode(0o4755);
        h.set_uid(1234);
        h.set_gid(5678);
        h.set_mtime(2_000_000);
        h.set_size(5);
        b.append_pax_extensions([
            ("SCHILY.xattr.user.test", &b"v"[..]),
            ("SCHILY.xattr.trusted.overlay.redirect", &b"/x"[..]),
        ])
        .unwrap();
        b.append_data(&mut h, "usr/bin/prog", &b"hello"[..])
            .unwrap();

        let mut h = tar::Header::new_gnu();
        h.set_entry_type(EntryType::Link);
        h.set_size(0);
        h.set_mode(0o4755);
        b.append_link(&mut h, "usr/bin/prog2", "usr/bin/prog")
            .unwrap();

        let mut h = tar::Header::new_gnu();
        h.set_entry_type(EntryType::Symlink);
        h.set_size(0);
        h.set_mode(0o777);
        h.set_mtime(3_000_000);
        b.append_link(&mut h, "bin", "usr/bin").unwrap();

        let mut h = tar::Header::new_gnu();
        h.set_entry_type(EntryType::Char);
        h.set_mode(0o666);
        h.set_size(0);
        h.set_device_major(1).unwrap();
        h.set_device_minor(3).unwrap();
        b.append_data(&mut h, "dev/null", &b""[..]).unwrap();

        let mut h = tar::Header::new_gnu();
        h.set_entry_type(EntryType::Fifo);
        h.set_mode(0o600);
        h.set_size(0);
        b.append_data(&mut h, "run/fifo", &b""[..]).unwrap();

        for name in ["etc/.wh.gone", "var/.wh..wh..opq", ".wh..wh.plnk"] {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(EntryType::Regular);
            h.set_mode(0o644);
            h.set_size(0);
            b.append_data(&mut h, name, &b""[..]).unwrap();
        }

        let (dir, r) = unpack(b.into_inner().unwrap());
        r.unwrap();
        let root = dir.path();
        let m = fs::metadata(root.join("tmp")).unwrap();
        assert_eq!(m.mode() & 0o7777, 0o1777);
        assert_eq!(m.mtime(), 1_000_000);
        let m = fs::metadata(root.join("usr/bin/prog")).unwrap();
        assert_eq!(m.mode() & 0o7777, 0o4755);
        assert_eq!((m.uid(), m.gid()), (1234, 5678));
        assert_eq!(m.mtime(), 2_000_000);
        assert_eq!(m.nlink(), 2);
        assert_eq!(fs::read(root.join("usr/bin/prog2")).unwrap(), b"hello");
        let mut buf = [0u8; 8];
        let path = CString::new(root.join("usr/bin/prog").as_os_str().as_bytes()).unwrap();
        let n = unsafe {
            libc::lgetxattr(
                path.as_ptr(),
                c"user.test".as_ptr(),
                buf.as_mut_ptr().cast(),
                buf.len(),
            )
        };
        assert_eq!(n, 1);
        assert_eq!(buf[0], b'v');
        let n = unsafe {
            libc::lgetxattr(
                path.as_ptr(),
                c"trusted.overlay.redirect".as_ptr(),
                buf.as_mut_ptr().cast(),
                buf.len(),
            )
        };
        assert_eq!(n, -1, "overlay xattrs from the layer must be dropped");
        assert_eq!(
            fs::read_link(root.join("bin")).unwrap(),
            PathBuf::from("usr/bin")
        );
        assert_eq!(
            fs::symlink_metadata(root.join("bin")).unwrap().mtime(),
            3_000_000
        );
        let m = fs::metadata(root.join("dev/null")).unwrap();
        assert!(m.file_type().is_char_device());
        assert_eq!(m.rdev(), makedev(1, 3));
        assert!(fs::metadata(root.join("run/fifo"))
            .unwrap()
            .file_type()
            .is_fifo());
        let m = fs::symlink_metadata(root.join("etc/gone")).unwrap();
        assert!(m.file_type().is_char_device());
        assert_eq!(m.rdev(), 0);
        assert!(!root.join("etc/.wh.gone").exists());
        let vpath = CString::new(root.join("var").as_os_str().as_bytes()).unwrap();
        let n = unsafe {
            libc::lgetxattr(
                vpath.as_ptr(),
                c"trusted.overlay.opaque".as_ptr(),
                buf.as_mut_ptr().cast(),
                buf.len(),
            )
        };
        assert_eq!(n, 1);
        assert_eq!(buf[0], b'y');
        assert!(!root.join(".wh..wh.plnk").exists());
        let m = fs::metadata(root.join("usr")).unwrap();
        assert_eq!(m.mode() & 0o7777, 0o755, "implicit parents are 0755");
    }

    #[test]
    fn scan_finds_traversal_without_writing() {
        let scan = |t: Vec<u8>| scan_layer(&t[..], "sha256:test");
        let mut b = tar::Builder::new(Vec::new());
        raw_entry(&mut b, "ok/file", EntryType::Regular, "", b"x");
        raw_entry(&mut b, "ok/link", EntryType::Symlink, "/etc", b"");
        raw_entry(&mut b, "ok/hard", EntryType::Link, "ok/file", b"");
        scan(b.into_inner().unwrap()).unwrap();

        let mut b = tar::Builder::new(Vec::new());
        raw_entry(&mut b, "a/../../x", EntryType::Regular, "", b"x");
        assert!(matches!(
            scan(b.into_inner().unwrap()),
            Err(Error::PathTraversal { .. })
        ));

        let mut b = tar::Builder::new(Vec::new());
        raw_entry(&mut b, "l", EntryType::Symlink, "/", b"");
        raw_entry(&mut b, "l/etc/x", EntryType::Regular, "", b"x");
        assert!(matches!(
            scan(b.into_inner().unwrap()),
            Err(Error::PathTraversal { .. })
        ));

        let mut b = tar::Builder::new(Vec::new());
        raw_entry(&mut b, "h", EntryType::Link, "../outside", b"");
        assert!(matches!(
            scan(b.into_inner().unwrap()),
            Err(Error::PathTraversal { .. })
        ));

        // A symlink replaced by a directory is no longer a symlink.
        let mut b = tar::Builder::new(Vec::new());
        raw_entry(&mut b, "d", EntryType::Symlink, "/", b"");
        raw_entry(&mut b, "d", EntryType::Directory, "", b"");
        raw_entry(&mut b, "d/x", EntryType::Regular, "", b"x");
        scan(b.into_inner().unwrap()).unwrap();
    }

    #[test]
    fn later_entries_replace_earlier_ones() {
        if !is_root() {
            eprintln!("skipping: needs root");
            return;
        }
        let mut b = tar::Builder::new(Vec::new());
        raw_entry(&mut b, "a", EntryType::Regular, "", b"old");
        raw_entry(&mut b, "a", EntryType::Regular, "", b"new");
        raw_entry(&mut b, "d/x", EntryType::Regular, "", b"x");
        raw_entry(&mut b, "d", EntryType::Regular, "", b"file now");
        raw_entry(&mut b, ".wh.w", EntryType::Regular, "", b"");
        raw_entry(&mut b, "w/x", EntryType::Regular, "", b"recreated");
        let (dir, r) = unpack(b.into_inner().unwrap());
        r.unwrap();
        assert_eq!(fs::read(dir.path().join("a")).unwrap(), b"new");
        assert_eq!(fs::read(dir.path().join("d")).unwrap(), b"file now");
        assert_eq!(fs::read(dir.path().join("w/x")).unwrap(), b"recreated");
    }

    #[test]
    fn truncated_tar_is_invalid_layer() {
        let mut b = tar::Builder::new(Vec::new());
        raw_entry(&mut b, "a", EntryType::Regular, "", &[7u8; 4096]);
        let mut t = b.into_inner().unwrap();
        t.truncate(1024);
        let (_dir, r) = unpack(t);
        assert!(matches!(r, Err(Error::InvalidLayer { .. })), "{r:?}");
    }
}
