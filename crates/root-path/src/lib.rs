//! Paths inside a root directory (a container's root filesystem, an image's layers
//! mounted together): opened and made with `openat2`'s `RESOLVE_IN_ROOT`, so an
//! absolute symlink or `..` in the tree resolves inside the root, never out of it.
//! Shared by the built-in runtime, which makes mount points in a container's root,
//! and the image store, which makes the standard ones once per image.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path};

/// What to make when a path is missing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Create {
    /// Nothing: a missing path is an error (`ENOENT`).
    Nothing,
    /// Directories, for the path and every missing parent.
    Dir,
    /// An empty file (mode 0755, as runc makes bind-mount targets) for the last
    /// component, directories for the missing parents.
    File,
}

#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
const RESOLVE_IN_ROOT: u64 = 0x10;

/// `openat2(2)` of `path` relative to `dir`, resolved as if `dir` were `/`
/// (`RESOLVE_IN_ROOT`) and without magic links; `flags` as for open(2), `O_CLOEXEC` added.
pub fn openat2(dir: BorrowedFd<'_>, path: &CStr, flags: i32) -> io::Result<OwnedFd> {
    let how = OpenHow {
        flags: (flags | libc::O_CLOEXEC) as u64,
        mode: 0,
        resolve: RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
    };
    // SAFETY: openat2 reads the path and the open_how structure, both alive for the call.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dir.as_raw_fd(),
            path.as_ptr(),
            &how as *const OpenHow,
            std::mem::size_of::<OpenHow>(),
        )
    };
    if fd < 0 {
        Err(io::Error::last_os_error())
    } else {
        // SAFETY: the kernel returned a new descriptor.
        Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
    }
}

/// The path relative to the root, as openat2 wants it (`.` for the root itself).
fn relative(path: &Path) -> CString {
    let mut rel = Vec::new();
    for c in path.components() {
        if let Component::Normal(p) = c {
            if !rel.is_empty() {
                rel.push(b'/');
            }
            rel.extend_from_slice(p.as_bytes());
        }
    }
    if rel.is_empty() {
        rel.push(b'.');
    }
    CString::new(rel).unwrap_or_else(|_| c".".to_owned())
}

/// Opens `path` inside the root `root` (an `O_PATH` descriptor), making what is missing.
pub fn open_in_root(root: BorrowedFd<'_>, path: &Path, create: Create) -> io::Result<OwnedFd> {
    match openat2(root, &relative(path), libc::O_PATH) {
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) && create != Create::Nothing => {}
        other => return other,
    }
    let parts: Vec<&std::ffi::OsStr> = path
        .components()
        .filter_map(|c| match c {
            Component::Normal(p) => Some(p),
            _ => None,
        })
        .collect();
    let mut dir = openat2(root, c".", libc::O_PATH)?;
    for (i, part) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        let prefix: std::path::PathBuf = parts[..=i].iter().collect();
        match openat2(root, &relative(&prefix), libc::O_PATH) {
            Ok(fd) => {
                dir = fd;
                continue;
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            Err(e) => return Err(e),
        }
        let name = CString::new(part.as_bytes()).map_err(io::Error::other)?;
        // SAFETY: *at calls on a directory descriptor with a NUL-terminated name.
        let r = unsafe {
            if last && create == Create::File {
                let fd = libc::openat(
                    dir.as_raw_fd(),
                    name.as_ptr(),
                    libc::O_CREAT | libc::O_WRONLY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                    0o755,
                );
                if fd >= 0 {
                    libc::close(fd);
                }
                fd
            } else {
                libc::mkdirat(dir.as_raw_fd(), name.as_ptr(), 0o755)
            }
        };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EEXIST) {
                return Err(e);
            }
        }
        dir = openat2(root, &relative(&prefix), libc::O_PATH)?;
    }
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::fd::AsFd;

    fn root(dir: &Path) -> OwnedFd {
        OwnedFd::from(fs::File::open(dir).unwrap())
    }

    #[test]
    fn makes_missing_parents_and_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let r = root(dir.path());
        open_in_root(r.as_fd(), Path::new("/a/b/c"), Create::File).unwrap();
        assert!(dir.path().join("a/b").is_dir());
        assert!(dir.path().join("a/b/c").is_file());
        open_in_root(r.as_fd(), Path::new("/d/e"), Create::Dir).unwrap();
        assert!(dir.path().join("d/e").is_dir());
        let missing = open_in_root(r.as_fd(), Path::new("/x"), Create::Nothing).unwrap_err();
        assert_eq!(missing.raw_os_error(), Some(libc::ENOENT));
    }

    #[test]
    fn symlinks_resolve_inside_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("run")).unwrap();
        std::os::unix::fs::symlink("../run", dir.path().join("var-run")).unwrap();
        // An absolute link names the root's own directory, not the host's.
        std::os::unix::fs::symlink(outside.path(), dir.path().join("escape")).unwrap();
        let r = root(dir.path());
        open_in_root(r.as_fd(), Path::new("/var-run/secrets/x"), Create::Dir).unwrap();
        assert!(dir.path().join("run/secrets/x").is_dir());
        assert!(fs::symlink_metadata(dir.path().join("var-run"))
            .unwrap()
            .file_type()
            .is_symlink());
        let inside = dir.path().join(outside.path().strip_prefix("/").unwrap());
        fs::create_dir_all(&inside).unwrap();
        open_in_root(r.as_fd(), Path::new("/escape/f"), Create::File).unwrap();
        assert_eq!(fs::read_dir(outside.path()).unwrap().count(), 0);
        assert!(inside.join("f").is_file());
        // A link to nowhere inside the root is an error, not a way out.
        std::os::unix::fs::symlink("/nowhere", dir.path().join("dangling")).unwrap();
        let e = open_in_root(r.as_fd(), Path::new("/dangling/f"), Create::File).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOENT));
    }
}
