//! Overlayfs mounts for container root filesystems and the mount table queries around
//! them (`/proc/self/mountinfo`).

use std::ffi::CString;
use std::fs;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};

use crate::Error;

/// Mount data longer than this does not fit the single page `mount(2)` accepts.
const MAX_MOUNT_DATA: usize = 4000;

/// Mount points listed in `/proc/self/mountinfo`, in table order.
pub fn mount_points() -> io::Result<Vec<PathBuf>> {
    let text = fs::read_to_string("/proc/self/mountinfo")?;
    Ok(text
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|field| {
            PathBuf::from(<std::ffi::OsString as OsStringExt>::from_vec(
                unescape_mountinfo(field),
            ))
        })
        .collect())
}

/// The mount tables of every mount namespace with a process in it, concatenated
/// (`/proc/<pid>/mountinfo` of one process per namespace): a mount made inside a
/// container's own namespace shows up here and nowhere on the host.
pub fn all_mount_tables() -> String {
    use std::os::unix::fs::MetadataExt;
    let mut seen = std::collections::HashSet::new();
    let mut out = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    if let Ok(m) = fs::metadata("/proc/self/ns/mnt") {
        seen.insert(m.ino());
    }
    let Ok(procs) = fs::read_dir("/proc") else {
        return out;
    };
    for p in procs.flatten() {
        let name = p.file_name();
        if !name.as_bytes().iter().all(u8::is_ascii_digit) {
            continue;
        }
        let Ok(ns) = fs::metadata(p.path().join("ns/mnt")) else {
            continue;
        };
        if seen.insert(ns.ino()) {
            out.push_str(&fs::read_to_string(p.path().join("mountinfo")).unwrap_or_default());
        }
    }
    out
}

/// Undoes the octal escapes (`\040` for space, ...) of mountinfo fields.
fn unescape_mountinfo(field: &str) -> Vec<u8> {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') as u32 * 64
                + (b[i + 2] - b'0') as u32 * 8
                + (b[i + 3] - b'0') as u32;
            out.push(v as u8);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

/// True when `path` (absolute, canonical) is a mount point in this mount namespace.
///
/// Asks the kernel about the one path (`statx`'s mount-root attribute, Linux 5.8+)
/// rather than reading the whole mount table, whose rendering grows with every
/// pod's mounts; falls back to the table when the attribute is not reported.
pub fn is_mount_point(path: &Path) -> io::Result<bool> {
    match statx_mount_root(path)? {
        Some(root) => Ok(root),
        None => Ok(mount_points()?.iter().any(|m| m == path)),
    }
}

/// Whether `path` is the root of a mount, if the kernel says (`None` when it does
/// not report the attribute). A missing path is not a mount point.
fn statx_mount_root(path: &Path) -> io::Result<Option<bool>> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains NUL"))?;
    // SAFETY: statx only writes into `buf`, which is a plain C struct.
    let mut buf: libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated path and `buf` outlives the call.
    let rc = unsafe {
        libc::statx(
            libc::AT_FDCWD,
            c.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW | libc::AT_NO_AUTOMOUNT,
            0,
            &mut buf,
        )
    };
    if rc != 0 {
        let e = io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::ENOENT) | Some(libc::ENOTDIR) => Ok(Some(false)),
            Some(libc::ENOSYS) => Ok(None),
            _ => Err(e),
        };
    }
    let bit = libc::STATX_ATTR_MOUNT_ROOT as u64;
    if buf.stx_attributes_mask & bit == 0 {
        return Ok(None);
    }
    Ok(Some(buf.stx_attributes & bit != 0))
}

/// Mount points at or below `dir` (absolute, canonical), deepest first.
pub fn mount_points_under(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = mount_points()?
        .into_iter()
        .filter(|m| m.starts_with(dir))
        .collect();
    v.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    v.dedup();
    Ok(v)
}

fn check_path(p: &Path) -> Result<(), Error> {
    if p.as_os_str()
        .as_bytes()
        .iter()
        .any(|b| matches!(b, b',' | b':'))
    {
        return Err(Error::UnsupportedPath {
            path: p.to_path_buf(),
        });
    }
    Ok(())
}

/// Whether the overlay module has an `index` feature that should be turned off so
/// that layers can be shared by many mounts (as containerd does).
fn overlay_has_index() -> bool {
    Path::new("/sys/module/overlay/parameters/index").exists()
}

/// The options of an overlayfs mount of `lowers` (top first), `upper` and `work`, as
/// `mount(2)` takes them joined with commas; `None` when they do not fit its one
/// page, an error when a path cannot be given this way.
pub fn overlay_options(
    lowers: &[PathBuf],
    upper: &Path,
    work: &Path,
) -> Result<Option<Vec<String>>, Error> {
    for p in lowers.iter().map(PathBuf::as_path).chain([upper, work]) {
        check_path(p)?;
    }
    let lower = lowers
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(":");
    let mut opts = vec![
        format!("lowerdir={lower}"),
        format!("upperdir={}", upper.display()),
        format!("workdir={}", work.display()),
    ];
    if overlay_has_index() {
        opts.push("index=off".to_string());
    }
    let len = opts.iter().map(|o| o.len() + 1).sum::<usize>();
    Ok((len <= MAX_MOUNT_DATA).then_some(opts))
}

/// Mounts overlayfs at `target` with `lowers` (top first), `upper` and `work`.
pub fn mount_overlay(
    lowers: &[PathBuf],
    upper: &Path,
    work: &Path,
    target: &Path,
) -> Result<(), Error> {
    check_path(target)?;
    let mount_err = |source: io::Error| Error::Mount {
        path: target.to_path_buf(),
        source,
    };
    match overlay_options(lowers, upper, work)? {
        Some(opts) => mount(
            Some("overlay"),
            target,
            Some("overlay"),
            MsFlags::empty(),
            Some(opts.join(",").as_str()),
        )
        .map_err(|e| mount_err(e.into())),
        // Too many layers for one page of options: the new mount API accepts the
        // lower directories one at a time (`lowerdir+`, Linux 6.8+).
        None => mount_overlay_fsconfig(lowers, upper, work, target, overlay_has_index())
            .map_err(mount_err),
    }
}

fn cstr(s: &[u8]) -> io::Result<CString> {
    CString::new(s).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains NUL"))
}

fn mount_overlay_fsconfig(
    lowers: &[PathBuf],
    upper: &Path,
    work: &Path,
    target: &Path,
    index: bool,
) -> io::Result<()> {
    const FSOPEN_CLOEXEC: libc::c_uint = 1;
    const FSCONFIG_SET_STRING: libc::c_uint = 1;
    const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
    const FSMOUNT_CLOEXEC: libc::c_uint = 1;
    const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 4;

    fn check(rc: libc::c_long) -> io::Result<libc::c_long> {
        if rc < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(rc)
        }
    }
    fn set(fd: &OwnedFd, key: &str, value: &[u8]) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        let k = cstr(key.as_bytes())?;
        let v = cstr(value)?;
        // SAFETY: fsconfig reads the two NUL-terminated strings; fd is open.
        check(unsafe {
            libc::syscall(
                libc::SYS_fsconfig,
                fd.as_raw_fd(),
                FSCONFIG_SET_STRING,
                k.as_ptr(),
                v.as_ptr(),
                0,
            )
        })
        .map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("fsconfig {key}={}: {e}", String::from_utf8_lossy(value)),
            )
        })?;
        Ok(())
    }

    use std::os::fd::AsRawFd;
    let fstype = cstr(b"overlay")?;
    // SAFETY: fsopen takes a NUL-terminated filesystem name and returns a new fd.
    let fd = check(unsafe { libc::syscall(libc::SYS_fsopen, fstype.as_ptr(), FSOPEN_CLOEXEC) })?;
    // SAFETY: fd was just returned by fsopen and is owned by nobody else.
    let fs_fd = unsafe { OwnedFd::from_raw_fd(fd as RawFd) };
    set(&fs_fd, "source", b"overlay")?;
    for l in lowers {
        set(&fs_fd, "lowerdir+", l.as_os_str().as_bytes())?;
    }
    set(&fs_fd, "upperdir", upper.as_os_str().as_bytes())?;
    set(&fs_fd, "workdir", work.as_os_str().as_bytes())?;
    if index {
        set(&fs_fd, "index", b"off")?;
    }
    // SAFETY: plain syscalls on the fd we own; null key/value are what CMD_CREATE expects.
    check(unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs_fd.as_raw_fd(),
            FSCONFIG_CMD_CREATE,
            std::ptr::null::<libc::c_char>(),
            std::ptr::null::<libc::c_void>(),
            0,
        )
    })?;
    // SAFETY: as above.
    let mfd =
        check(unsafe { libc::syscall(libc::SYS_fsmount, fs_fd.as_raw_fd(), FSMOUNT_CLOEXEC, 0) })?;
    // SAFETY: mfd was just returned by fsmount.
    let mnt_fd = unsafe { OwnedFd::from_raw_fd(mfd as RawFd) };
    let empty = cstr(b"")?;
    let to = cstr(target.as_os_str().as_bytes())?;
    // SAFETY: NUL-terminated strings, valid fds.
    check(unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            mnt_fd.as_raw_fd(),
            empty.as_ptr(),
            libc::AT_FDCWD,
            to.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    })?;
    Ok(())
}

/// Unmounts everything at or below `dir` (deepest first), detaching lazily what is
/// busy, and checks nothing is left.
pub fn unmount_all_under(dir: &Path) -> Result<(), Error> {
    for _ in 0..8 {
        let points =
            mount_points_under(dir).map_err(|e| Error::io("reading /proc/self/mountinfo", e))?;
        if points.is_empty() {
            return Ok(());
        }
        for p in points {
            match umount2(&p, MntFlags::empty()) {
                Ok(()) => {}
                Err(nix::errno::Errno::EBUSY) => {
                    tracing::debug!(path = %p.display(), "mount busy, detaching lazily");
                    if let Err(e) = umount2(&p, MntFlags::MNT_DETACH) {
                        if e != nix::errno::Errno::EINVAL {
                            return Err(Error::Mount {
                                path: p,
                                source: e.into(),
                            });
                        }
                    }
                }
                // Not a mount point any more (raced with another unmount).
                Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
                Err(e) => {
                    return Err(Error::Mount {
                        path: p,
                        source: e.into(),
                    })
                }
            }
        }
    }
    match mount_points_under(dir)
        .map_err(|e| Error::io("reading /proc/self/mountinfo", e))?
        .into_iter()
        .next()
    {
        Some(path) => Err(Error::StillMounted { path }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unescapes() {
        assert_eq!(unescape_mountinfo(r"/a\040b\134c"), b"/a b\\c");
        assert_eq!(unescape_mountinfo(r"/x\04"), b"/x\\04");
    }

    #[test]
    fn root_is_a_mount_point() {
        assert!(is_mount_point(Path::new("/")).unwrap());
        assert!(!mount_points_under(Path::new("/")).unwrap().is_empty());
    }

    #[test]
    fn statx_agrees_with_the_mount_table() {
        // Every listed mount point is one, a plain directory under one is not, and
        // a missing path is not.
        let table = mount_points().unwrap();
        for m in table
            .iter()
            .filter(|m| m.starts_with("/proc") || m == &Path::new("/"))
        {
            assert!(is_mount_point(m).unwrap(), "{}", m.display());
        }
        let dir = tempfile::tempdir().unwrap();
        let plain = fs::canonicalize(dir.path()).unwrap();
        if !table.contains(&plain) {
            assert!(!is_mount_point(&plain).unwrap());
        }
        assert!(!is_mount_point(&plain.join("missing")).unwrap());
    }

    #[test]
    fn rejects_separators() {
        let r = mount_overlay(
            &[PathBuf::from("/a:b")],
            Path::new("/u"),
            Path::new("/w"),
            Path::new("/t"),
        );
        assert!(matches!(r, Err(Error::UnsupportedPath { .. })));
    }
}
