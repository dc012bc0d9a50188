//! The kubelet's per-pod parent directories (pods, container layers, logs, runtime
//! records), created at start and marked as tops of unrelated trees for ext2/3/4.
//!
//! Each pod's files belong to that pod alone. With the `T` attribute (`chattr +T`,
//! `FS_TOPDIR_FL`) on their parents, ext4's Orlov allocator puts each new pod's
//! directory in a lightly used block group instead of next to its siblings, and the
//! pod's files follow their directory. Without it every pod's inodes share the
//! parents' group, and on ext4 without a journal, which will not reuse an inode freed
//! in the last minute (five while its table block is dirty), every new inode is found
//! by walking past all the inodes the pods deleted before it. Other file systems
//! ignore the hint; setting it is best effort.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::Path;

/// `FS_TOPDIR_FL` from `linux/fs.h`: a directory's subdirectories are unrelated.
const FS_TOPDIR_FL: libc::c_int = 0x0002_0000;

/// Creates `dir` (and its parents) and marks it as a top directory where the file
/// system supports that.
pub fn create(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    if let Err(e) = mark(dir) {
        tracing::debug!(dir = %dir.display(), error = %e, "not marked as a top directory");
    }
    Ok(())
}

/// Sets `FS_TOPDIR_FL` on `dir`, keeping its other flags.
fn mark(dir: &Path) -> std::io::Result<()> {
    let f = File::open(dir)?;
    let mut flags: libc::c_int = 0;
    // SAFETY: both ioctls read or write one int through a pointer to a live local;
    // the descriptor is open for the duration of the calls.
    if unsafe {
        libc::ioctl(
            f.as_raw_fd(),
            libc::FS_IOC_GETFLAGS,
            &mut flags as *mut libc::c_int,
        )
    } != 0
    {
        return Err(std::io::Error::last_os_error());
    }
    if flags & FS_TOPDIR_FL != 0 {
        return Ok(());
    }
    flags |= FS_TOPDIR_FL;
    // SAFETY: as above.
    if unsafe {
        libc::ioctl(
            f.as_raw_fd(),
            libc::FS_IOC_SETFLAGS,
            &flags as *const libc::c_int,
        )
    } != 0
    {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_the_directory_and_marks_it_where_supported() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/pods");
        create(&dir).unwrap();
        assert!(dir.is_dir());
        // Again: an existing, already marked directory is fine.
        create(&dir).unwrap();
        let f = File::open(&dir).unwrap();
        let mut flags: libc::c_int = 0;
        // SAFETY: reads one int into a live local.
        let r = unsafe {
            libc::ioctl(
                f.as_raw_fd(),
                libc::FS_IOC_GETFLAGS,
                &mut flags as *mut libc::c_int,
            )
        };
        if r == 0
            && nix::sys::statfs::statfs(&dir).unwrap().filesystem_type()
                == nix::sys::statfs::EXT4_SUPER_MAGIC
        {
            assert_ne!(flags & FS_TOPDIR_FL, 0, "ext4 directory not marked");
        }
    }
}
