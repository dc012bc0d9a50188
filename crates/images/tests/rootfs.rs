//! Root filesystem tests: unpacking and overlay mounts. They need root and overlayfs
//! and are skipped with a message otherwise.

mod common;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use common::*;
use images::{busybox_image, Error, ImageStore, MountPoint, TestImage};

/// True when overlay mounts can be tested here; prints why not otherwise.
fn can_mount() -> bool {
    if !is_root() {
        eprintln!("skipping: overlay mounts need root");
        return false;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = |n: &str| {
        let p = dir.path().join(n);
        fs::create_dir(&p).unwrap();
        p
    };
    let (l, u, w, m) = (d("l"), d("u"), d("w"), d("m"));
    match images::mount::mount_overlay(&[l], &u, &w, &m) {
        Ok(()) => {
            nix::mount::umount2(&m, nix::mount::MntFlags::MNT_DETACH).unwrap();
            true
        }
        Err(e) => {
            eprintln!("skipping: overlayfs not available: {e}");
            false
        }
    }
}

fn import(store: &ImageStore, img: &TestImage, dir: &Path) -> images::Image {
    let archive = dir.join(format!("{}.tar", img.name().replace(['/', ':'], "_")));
    img.write_oci_archive(&archive).unwrap();
    store.import(&archive).unwrap().remove(0)
}

#[test]
fn busybox_rootfs_runs_sh() {
    if !can_mount() {
        return;
    }
    if !Path::new("/bin/busybox").exists() {
        eprintln!("skipping: /bin/busybox (busybox-static) not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let _guard = MountGuard(dir.path().to_path_buf());
    let store = open_store(dir.path());
    let image = import(
        &store,
        &busybox_image("ferrokube.test/busybox:1"),
        dir.path(),
    );
    assert_eq!(image.config.cmd, vec!["sh"]);
    let cdir = dir.path().join("containers/c1");
    let rootfs = store.mount_rootfs(&image, &cdir).unwrap();
    assert_eq!(rootfs, cdir.join("rootfs"));
    assert_eq!(mount_count(&rootfs), 1);

    let sh = fs::metadata(rootfs.join("bin/sh")).unwrap();
    assert!(sh.is_file());
    assert_ne!(sh.mode() & 0o111, 0, "/bin/sh is executable");
    assert_eq!(
        fs::read_link(rootfs.join("bin/sh")).unwrap(),
        Path::new("busybox")
    );
    assert_eq!(
        fs::metadata(rootfs.join("tmp")).unwrap().mode() & 0o7777,
        0o1777
    );
    assert!(fs::read_to_string(rootfs.join("etc/passwd"))
        .unwrap()
        .starts_with("root:x:0:0:"));

    // The static busybox really runs inside the root filesystem.
    let root = std::ffi::CString::new(rootfs.as_os_str().as_encoded_bytes()).unwrap();
    let mut cmd = Command::new("/bin/sh");
    cmd.args([
        "-c",
        "echo hello from $(cat /etc/hostname 2>/dev/null || echo rootfs) > /tmp/out; ls /bin/sleep",
    ]);
    // SAFETY: chroot and chdir are async-signal-safe; the path was prepared before fork.
    unsafe {
        cmd.pre_exec(move || {
            if libc::chroot(root.as_ptr()) != 0 || libc::chdir(c"/".as_ptr()) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "/bin/sleep");
    // Writes land in the container's upper directory, not in the shared layer.
    assert_eq!(
        fs::read_to_string(cdir.join("upper/tmp/out")).unwrap(),
        "hello from rootfs\n"
    );
    let layers = layer_names(&store);
    assert_eq!(layers.len(), 1);
    assert!(!store
        .root()
        .join("layers")
        .join(&layers[0])
        .join("fs/tmp/out")
        .exists());

    ImageStore::unmount_rootfs(&cdir).unwrap();
    assert!(mounts_under(dir.path()).is_empty());
    assert!(!cdir.exists());
}

#[test]
fn init_layer_holds_the_mount_points() {
    if !can_mount() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let _guard = MountGuard(dir.path().to_path_buf());
    let store = open_store(dir.path());
    // As in Debian's images, /var/run is a link to /run, and /etc has no hosts file.
    let img = TestImage::new("ferrokube.test/links:1")
        .dir("/etc")
        .bytes("/etc/passwd", "root:x:0:0:root:/root:/bin/sh\n", 0o644)
        .dir_mode("/run", 0o710)
        .dir("/var")
        .symlink("/var/run", "../run");
    let image = import(&store, &img, dir.path());
    let points = [
        MountPoint::File("/etc/hosts".into()),
        MountPoint::Dir("/var/run/secrets/kubernetes.io/serviceaccount".into()),
        MountPoint::Dir("/proc".into()),
    ];
    let c1 = dir.path().join("containers/c1");
    let rootfs = store.mount_rootfs_with(&image, &c1, &points).unwrap();
    assert!(rootfs.join("etc/hosts").is_file());
    assert!(rootfs.join("etc/passwd").is_file());
    assert!(rootfs.join("proc").is_dir());
    assert!(fs::symlink_metadata(rootfs.join("var/run"))
        .unwrap()
        .file_type()
        .is_symlink());
    assert!(rootfs
        .join("run/secrets/kubernetes.io/serviceaccount")
        .is_dir());
    // Parents made over the image keep its owners and modes.
    assert_eq!(
        fs::metadata(rootfs.join("run")).unwrap().mode() & 0o7777,
        0o710
    );
    // The container's writable layer holds nothing of it.
    assert_eq!(names_in(&c1.join("upper")), Vec::<String>::new());

    // A second container shares the init layer; other points get their own.
    let c2 = dir.path().join("containers/c2");
    store.mount_rootfs_with(&image, &c2, &points).unwrap();
    let init = store.root().join("init");
    assert_eq!(names_in(&init).len(), 1, "{:?}", names_in(&init));
    let c3 = dir.path().join("containers/c3");
    let r3 = store.mount_rootfs_with(&image, &c3, &points[..1]).unwrap();
    assert!(!r3.join("proc").exists());
    assert_eq!(names_in(&init).len(), 2);

    // Removing the image removes its init layers once no container uses them.
    for c in [&c1, &c2, &c3] {
        ImageStore::unmount_rootfs(c).unwrap();
    }
    store.remove("ferrokube.test/links:1").unwrap();
    assert_eq!(names_in(&init), Vec::<String>::new());
    assert!(mounts_under(dir.path()).is_empty());
}

#[test]
fn whiteouts_and_opaque_directories() {
    if !can_mount() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let _guard = MountGuard(dir.path().to_path_buf());
    let store = open_store(dir.path());
    let img = TestImage::new("ferrokube.test/wh:1")
        .bytes("/etc/a", "a", 0o644)
        .bytes("/etc/b", "b", 0o644)
        .bytes("/data/old1", "1", 0o644)
        .bytes("/data/sub/old2", "2", 0o644)
        .layer()
        .whiteout("/etc/a")
        .opaque("/data")
        .bytes("/data/new", "new", 0o600)
        .bytes("/etc/c", "c", 0o644);
    let image = import(&store, &img, dir.path());
    let cdir = dir.path().join("c");
    let rootfs = store.mount_rootfs(&image, &cdir).unwrap();
    assert!(
        !rootfs.join("etc/a").exists(),
        "whiteout hides the lower file"
    );
    assert_eq!(fs::read_to_string(rootfs.join("etc/b")).unwrap(), "b");
    assert_eq!(fs::read_to_string(rootfs.join("etc/c")).unwrap(), "c");
    assert_eq!(names_in(&rootfs.join("etc")), vec!["b", "c"]);
    assert_eq!(
        names_in(&rootfs.join("data")),
        vec!["new"],
        "opaque directory shows only the upper layer"
    );
    assert_eq!(
        fs::metadata(rootfs.join("data/new")).unwrap().mode() & 0o777,
        0o600
    );
    // Removing the image while mounted keeps its layers until the mount is gone.
    store.remove(&image.id).unwrap();
    assert_eq!(layer_names(&store).len(), 2);
    assert_eq!(fs::read_to_string(rootfs.join("etc/b")).unwrap(), "b");
    ImageStore::unmount_rootfs(&cdir).unwrap();
    assert!(mounts_under(&cdir).is_empty());
    drop(store);
    assert!(layer_names(&open_store(dir.path())).is_empty());
}

#[test]
fn layers_tell_files_as_the_mounted_overlay_shows_them() {
    if !can_mount() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let _guard = MountGuard(dir.path().to_path_buf());
    let store = open_store(dir.path());
    let img = TestImage::new("ferrokube.test/files:1")
        .bytes("/etc/passwd", "one", 0o644)
        .bytes("/etc/group", "g", 0o644)
        .bytes("/data/old", "old", 0o644)
        .bytes("/keep/f", "kept", 0o644)
        .bytes("/gone/f", "gone", 0o644)
        .layer()
        .bytes("/etc/passwd", "two", 0o644)
        .whiteout("/etc/group")
        .opaque("/data")
        .bytes("/data/new", "new", 0o644)
        .whiteout("/gone")
        .symlink("/s", "etc")
        .bytes("/keep/other", "o", 0o644);
    let image = import(&store, &img, dir.path());
    let cdir = dir.path().join("c");
    let layers = store
        .prepare_rootfs_with(&image, &cdir, &[MountPoint::File("/etc/hosts".into())])
        .unwrap();
    assert!(!layers.mounted);
    assert!(layers.overlay_options().is_some());
    assert_eq!(mount_count(&layers.rootfs), 0, "prepared, not mounted");
    let paths = [
        "etc/passwd",
        "etc/group",
        "etc/hosts",
        "data/old",
        "data/new",
        "keep/f",
        "gone/f",
        "etc",
        "missing/x",
    ];
    let from_layers: Vec<_> = paths
        .iter()
        .map(|p| layers.read_file(Path::new(p)).unwrap())
        .collect();
    assert_eq!(
        layers.read_file(Path::new("s/passwd")),
        Err(images::Unresolved),
        "a symlink on the way is left to the mounted root"
    );
    layers.mount().unwrap();
    let rootfs = &layers.rootfs;
    for (p, got) in paths.iter().zip(&from_layers) {
        let mounted = fs::metadata(rootfs.join(p))
            .ok()
            .filter(|m| m.is_file())
            .map(|_| fs::read(rootfs.join(p)).unwrap());
        assert_eq!(got, &mounted, "{p}");
    }
    assert_eq!(from_layers[0].as_deref(), Some(&b"two"[..]));
    assert_eq!(from_layers[1], None, "whiteout");
    assert_eq!(from_layers[3], None, "opaque directory");
    assert_eq!(from_layers[5].as_deref(), Some(&b"kept"[..]));
    ImageStore::unmount_rootfs(&cdir).unwrap();
}

#[test]
fn mount_is_idempotent_and_unmount_leaves_nothing() {
    if !can_mount() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let _guard = MountGuard(dir.path().to_path_buf());
    let store = open_store(dir.path());
    let image = import(&store, &small_image("ferrokube.test/idem:1"), dir.path());
    let cdir = dir.path().join("pods/p/c");
    let r1 = store.mount_rootfs(&image, &cdir).unwrap();
    fs::write(r1.join("written"), "x").unwrap();
    // A restarted kubelet adopting the container gets the same mount back.
    let reopened = open_store(dir.path());
    let r2 = reopened.mount_rootfs(&image, &cdir).unwrap();
    assert_eq!(r1, r2);
    assert_eq!(mount_count(&r1), 1);
    assert_eq!(fs::read_to_string(r2.join("written")).unwrap(), "x");
    assert_eq!(fs::read_to_string(r2.join("etc/hello")).unwrap(), "hello\n");

    // A submount inside the rootfs (like a volume) goes too.
    let vol = dir.path().join("vol");
    fs::create_dir(&vol).unwrap();
    fs::create_dir(r1.join("mnt")).unwrap();
    nix::mount::mount(
        Some(&vol),
        &r1.join("mnt"),
        None::<&str>,
        nix::mount::MsFlags::MS_BIND,
        None::<&str>,
    )
    .unwrap();
    assert_eq!(mounts_under(&cdir).len(), 2);

    ImageStore::unmount_rootfs(&cdir).unwrap();
    assert!(
        mounts_under(dir.path()).is_empty(),
        "{:?}",
        mounts_under(dir.path())
    );
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mountinfo.contains(cdir.to_str().unwrap()));
    assert!(!cdir.exists());
    // Unmounting again is fine.
    ImageStore::unmount_rootfs(&cdir).unwrap();

    // Remounting after unmount starts from a fresh upper directory.
    let r3 = store.mount_rootfs(&image, &cdir).unwrap();
    assert!(!r3.join("written").exists());
    ImageStore::unmount_rootfs(&cdir).unwrap();

    // Once the image is removed its unpacked layer goes as well.
    assert_eq!(layer_names(&store).len(), 1);
    store.remove(&image.id).unwrap();
    assert!(layer_names(&store).is_empty());
    assert!(blob_names(&store).is_empty());
    assert!(matches!(
        store.mount_rootfs(&image, &cdir),
        Err(Error::NotFound(_))
    ));
    let _ = fs::remove_dir_all(&cdir);
}

#[test]
fn concurrent_mounts_of_one_image() {
    if !can_mount() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let _guard = MountGuard(dir.path().to_path_buf());
    let store = Arc::new(open_store(dir.path()));
    // A second instance on the same root stands for another process: its unpacks are
    // not serialised with the first one's and race on the final rename.
    let other = Arc::new(open_store(dir.path()));
    let img = small_image("ferrokube.test/conc:1")
        .layer()
        .bytes("/second", "2", 0o644)
        .layer()
        .bytes("/third", "3", 0o644);
    let image = import(&store, &img, dir.path());
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let store = if i % 2 == 0 {
                store.clone()
            } else {
                other.clone()
            };
            let image = image.clone();
            let cdir = dir.path().join(format!("c{i}"));
            std::thread::spawn(move || store.mount_rootfs(&image, &cdir).map(|r| (cdir, r)))
        })
        .collect();
    let mut dirs = Vec::new();
    for h in handles {
        let (cdir, rootfs) = h.join().unwrap().unwrap();
        assert_eq!(fs::read_to_string(rootfs.join("third")).unwrap(), "3");
        assert_eq!(
            fs::read_to_string(rootfs.join("etc/hello")).unwrap(),
            "hello\n"
        );
        dirs.push(cdir);
    }
    // Each layer unpacked exactly once, no temporaries left.
    let layers = layer_names(&store);
    assert_eq!(layers.len(), 3, "{layers:?}");
    assert!(layers.iter().all(|l| !l.starts_with('.')));
    for d in dirs {
        ImageStore::unmount_rootfs(&d).unwrap();
    }
    assert!(mounts_under(dir.path()).is_empty());
}

#[test]
fn layers_are_shared_between_images_by_chain_id() {
    if !can_mount() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let _guard = MountGuard(dir.path().to_path_buf());
    let store = open_store(dir.path());
    let base = TestImage::new("")
        .bytes("/base", "base", 0o644)
        .layer_tars()
        .unwrap()
        .remove(0);
    let top = |s: &str| {
        TestImage::new("")
            .bytes(format!("/{s}"), s, 0o644)
            .layer_tars()
            .unwrap()
            .remove(0)
    };
    let a = import(
        &store,
        &TestImage::new("ferrokube.test/a:1")
            .raw_layer(base.clone())
            .raw_layer(top("a")),
        dir.path(),
    );
    let b = import(
        &store,
        &TestImage::new("ferrokube.test/b:1")
            .raw_layer(base)
            .raw_layer(top("b")),
        dir.path(),
    );
    store.mount_rootfs(&a, &dir.path().join("ca")).unwrap();
    store.mount_rootfs(&b, &dir.path().join("cb")).unwrap();
    assert_eq!(layer_names(&store).len(), 3, "base layer unpacked once");
    ImageStore::unmount_rootfs(&dir.path().join("ca")).unwrap();
    ImageStore::unmount_rootfs(&dir.path().join("cb")).unwrap();
    store.remove(&a.id).unwrap();
    assert_eq!(layer_names(&store).len(), 2, "b still uses the base layer");
}

#[test]
fn many_layers_exceed_one_page_of_mount_options() {
    if !can_mount() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let _guard = MountGuard(dir.path().to_path_buf());
    // A long store path makes each lowerdir about 150 bytes: 40 layers need ~6 KiB.
    let long = dir
        .path()
        .join("a-rather-long-directory-name-for-the-image-store-root-to-make-paths-long");
    let store = ImageStore::open(&long).unwrap();
    let mut img = TestImage::new("ferrokube.test/many:1");
    for i in 0..40 {
        if i > 0 {
            img = img.layer();
        }
        img = img
            .bytes(format!("/layer{i}"), format!("{i}"), 0o644)
            .bytes("/top", format!("{i}"), 0o644);
    }
    let image = import(&store, &img, dir.path());
    let cdir = dir.path().join("c");
    match store.mount_rootfs(&image, &cdir) {
        Ok(rootfs) => {
            assert_eq!(fs::read_to_string(rootfs.join("top")).unwrap(), "39");
            assert_eq!(fs::read_to_string(rootfs.join("layer0")).unwrap(), "0");
            // Removing the (not in use) image keeps the layers while they are mounted.
            store.remove(&image.id).unwrap();
            assert_eq!(layer_names(&store).len(), 40);
            assert_eq!(fs::read_to_string(rootfs.join("layer0")).unwrap(), "0");
            ImageStore::unmount_rootfs(&cdir).unwrap();
            drop(store);
            let store = ImageStore::open(&long).unwrap();
            assert!(layer_names(&store).is_empty());
        }
        // lowerdir+ needs Linux 6.8.
        Err(Error::Mount { source, .. }) if source.raw_os_error() == Some(libc::EINVAL) => {
            eprintln!("skipping: kernel lacks overlay lowerdir+ ({source})");
        }
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn corrupt_layer_blob_never_leaves_a_half_layer() {
    if !can_mount() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let _guard = MountGuard(dir.path().to_path_buf());
    let store = open_store(dir.path());
    let img = small_image("ferrokube.test/corrupt:1");
    let image = import(&store, &img, dir.path());
    // Replace the stored layer blob with another valid gzip tar.
    let blobs = store.root().join("blobs/sha256");
    let other = TestImage::new("")
        .bytes("/x", "x", 0o644)
        .layer_tars()
        .unwrap()
        .remove(0);
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut e, &other).unwrap();
    let gz = e.finish().unwrap();
    for name in blob_names(&store) {
        let p = blobs.join(&name);
        if fs::read(&p).unwrap().starts_with(&[0x1f, 0x8b]) {
            fs::write(&p, &gz).unwrap();
        }
    }
    let r = store.mount_rootfs(&image, &dir.path().join("c"));
    assert!(matches!(r, Err(Error::DigestMismatch { .. })), "{r:?}");
    assert!(layer_names(&store).is_empty(), "{:?}", layer_names(&store));
    assert!(mounts_under(dir.path()).is_empty());
}

#[test]
fn layer_directories_keep_modes_and_the_store_is_private() {
    if !can_mount() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let _guard = MountGuard(dir.path().to_path_buf());
    let store = open_store(dir.path());
    let img = TestImage::new("ferrokube.test/modes:1")
        .bytes("/usr/bin/suid", "x", 0o4755)
        .hardlink("/usr/bin/again", "/usr/bin/suid");
    let image = import(&store, &img, dir.path());
    let cdir = dir.path().join("c");
    let rootfs = store.mount_rootfs(&image, &cdir).unwrap();
    let m = fs::metadata(rootfs.join("usr/bin/suid")).unwrap();
    assert_eq!(m.mode() & 0o7777, 0o4755);
    assert_eq!(m.mtime(), images::testimage::TEST_MTIME as i64);
    assert_eq!(
        fs::metadata(rootfs.join("usr/bin/again")).unwrap().ino(),
        m.ino()
    );
    assert_eq!(
        fs::metadata(store.root()).unwrap().permissions().mode() & 0o777,
        0o700
    );
    ImageStore::unmount_rootfs(&cdir).unwrap();
}
