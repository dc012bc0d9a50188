//! Helpers shared by the integration tests: small test images, archive rewriting and
//! store inspection.

#![allow(dead_code)]

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use images::{ImageStore, TestImage};

/// A small one-layer image with a few files and a config.
pub fn small_image(name: &str) -> TestImage {
    TestImage::new(name)
        .bytes("/etc/hello", "hello\n", 0o644)
        .dir_mode("/tmp", 0o1777)
        .symlink("/etc/link", "hello")
        .cmd(["/bin/sh"])
        .env(["A=1"])
        .workdir("/work")
        .user("1000:1000")
        .expose("8080/tcp")
        .label("org.example", "yes")
        .stop_signal("SIGQUIT")
}

/// Opens a store in `dir/store`.
pub fn open_store(dir: &Path) -> ImageStore {
    ImageStore::open(dir.join("store")).unwrap()
}

/// Files in `store/blobs/sha256`.
pub fn blob_names(store: &ImageStore) -> Vec<String> {
    names_in(&store.root().join("blobs/sha256"))
}

/// Entries of `store/layers`.
pub fn layer_names(store: &ImageStore) -> Vec<String> {
    names_in(&store.root().join("layers"))
}

/// Entries of `store/tmp`.
pub fn tmp_names(store: &ImageStore) -> Vec<String> {
    names_in(&store.root().join("tmp"))
}

pub fn names_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .map(|rd| {
            rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Members of a (plain) tar archive as (name, content).
pub fn read_tar(path: &Path) -> Vec<(String, Vec<u8>)> {
    let data = fs::read(path).unwrap();
    let mut ar = tar::Archive::new(&data[..]);
    ar.entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let name = e.path().unwrap().to_string_lossy().into_owned();
            let mut content = Vec::new();
            e.read_to_end(&mut content).unwrap();
            (name, content)
        })
        .collect()
}

/// Writes members as a plain tar archive.
pub fn write_tar(path: &Path, members: &[(String, Vec<u8>)]) {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in members {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(0);
        b.append_data(&mut h, name, &data[..]).unwrap();
    }
    fs::write(path, b.into_inner().unwrap()).unwrap();
}

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Mount points at or below `dir` in /proc/self/mountinfo.
pub fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    images::mount::mount_points_under(&fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf()))
        .unwrap()
}

/// Number of times exactly `path` appears as a mount point.
pub fn mount_count(path: &Path) -> usize {
    let p = fs::canonicalize(path).unwrap();
    images::mount::mount_points()
        .unwrap()
        .iter()
        .filter(|m| **m == p)
        .count()
}

/// Detaches every mount below a directory when dropped, so a failing test leaves no
/// mounts behind. Declare it after the temporary directory it guards.
pub struct MountGuard(pub PathBuf);

impl Drop for MountGuard {
    fn drop(&mut self) {
        for m in mounts_under(&self.0) {
            let _ = nix::mount::umount2(&m, nix::mount::MntFlags::MNT_DETACH);
        }
    }
}
