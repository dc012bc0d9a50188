//! Store tests that need no mounts: import of both archive formats, reference
//! resolution, removal and blob cleanup, import_dir, verification failures and image
//! garbage collection.

mod common;

use std::collections::HashSet;
use std::fs;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use images::compress::Compression;
use images::digest::sha256_digest;
use images::{DiskUsage, Error, ImageConfig, ImageStore, TestImage};

#[test]
fn oci_and_docker_archives_of_one_image_have_one_id() {
    let dir = tempfile::tempdir().unwrap();
    let img = small_image("ferrokube.test/small:1");
    let oci = dir.path().join("small.oci");
    let docker = dir.path().join("small-docker.tar");
    img.write_oci_archive(&oci).unwrap();
    img.write_docker_archive(&docker).unwrap();

    let s1 = ImageStore::open(dir.path().join("s1")).unwrap();
    let s2 = ImageStore::open(dir.path().join("s2")).unwrap();
    let a = s1.import(&oci).unwrap();
    let b = s2.import(&docker).unwrap();
    assert_eq!(a.len(), 1);
    assert_eq!(b.len(), 1);
    assert_eq!(a[0].id, b[0].id);
    assert!(a[0].id.starts_with("sha256:"));
    assert_eq!(a[0].repo_tags, vec!["ferrokube.test/small:1"]);
    assert_eq!(b[0].repo_tags, vec!["ferrokube.test/small:1"]);
    assert_eq!(a[0].config, b[0].config);
    assert_eq!(
        a[0].config,
        ImageConfig {
            entrypoint: vec![],
            cmd: vec!["/bin/sh".into()],
            env: vec!["A=1".into()],
            working_dir: "/work".into(),
            user: "1000:1000".into(),
            exposed_ports: vec!["8080/tcp".into()],
            labels: [("org.example".to_string(), "yes".to_string())].into(),
            stop_signal: Some("SIGQUIT".into()),
        }
    );
    // The id is the digest of the config blob, which is stored.
    assert!(s1.has_blob(&a[0].id));
    // Docker archives hold uncompressed layers, so the sizes differ.
    assert!(b[0].size > a[0].size);
    let digest = &a[0].repo_digests[0];
    assert!(
        digest.starts_with("ferrokube.test/small@sha256:"),
        "{digest}"
    );

    // Both into one store: one image, with both manifests' digests.
    s1.import(&docker).unwrap();
    let all = s1.list().unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].repo_digests.len(), 2);
    assert_eq!(all[0].size, a[0].size, "first import's layers are kept");
    assert!(tmp_names(&s1).is_empty());
}

#[test]
fn compressed_archives_and_zstd_layers() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let img = small_image("ferrokube.test/zstd:1").compression(Compression::Zstd);
    let plain = dir.path().join("z.tar");
    img.write_oci_archive(&plain).unwrap();
    let gz = dir.path().join("z.tar.gz");
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(&fs::read(&plain).unwrap()).unwrap();
    fs::write(&gz, e.finish().unwrap()).unwrap();
    let a = store.import(&gz).unwrap();
    assert_eq!(a[0].repo_tags, vec!["ferrokube.test/zstd:1"]);

    // Same content, plain layers: same id.
    let other = dir.path().join("p.tar");
    small_image("ferrokube.test/plain:1")
        .compression(Compression::None)
        .write_oci_archive(&other)
        .unwrap();
    let b = store.import(&other).unwrap();
    assert_eq!(a[0].id, b[0].id);
    let imgs = store.list().unwrap();
    assert_eq!(imgs.len(), 1);
    assert_eq!(
        imgs[0].repo_tags,
        vec!["ferrokube.test/plain:1", "ferrokube.test/zstd:1"]
    );
}

#[test]
fn resolves_every_reference_form() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let hub = dir.path().join("hub.tar");
    small_image("busybox").write_oci_archive(&hub).unwrap();
    let local = dir.path().join("local.tar");
    small_image("127.0.0.1:5000/x/y:tag")
        .bytes("/other", "x", 0o600)
        .write_docker_archive(&local)
        .unwrap();
    let hub_img = store.import(&hub).unwrap().remove(0);
    let local_img = store.import(&local).unwrap().remove(0);
    assert_ne!(hub_img.id, local_img.id);
    assert_eq!(hub_img.repo_tags, vec!["docker.io/library/busybox:latest"]);
    let manifest_digest = hub_img.repo_digests[0]
        .split_once('@')
        .unwrap()
        .1
        .to_string();
    assert_eq!(
        hub_img.repo_digests,
        vec![format!("docker.io/library/busybox@{manifest_digest}")]
    );

    let hex = hub_img.id.strip_prefix("sha256:").unwrap();
    let id_of = |r: &str| store.resolve(r).unwrap().map(|i| i.id);
    for r in [
        "busybox".to_string(),
        "busybox:latest".to_string(),
        "library/busybox".to_string(),
        "docker.io/busybox".to_string(),
        "docker.io/library/busybox".to_string(),
        "docker.io/library/busybox:latest".to_string(),
        "index.docker.io/library/busybox:latest".to_string(),
        format!("busybox@{manifest_digest}"),
        format!("docker.io/library/busybox@{manifest_digest}"),
        hub_img.id.clone(),
        hex.to_string(),
        hex[..12].to_string(),
        format!("sha256:{}", &hex[..12]),
    ] {
        assert_eq!(id_of(&r), Some(hub_img.id.clone()), "resolving {r:?}");
    }
    assert_eq!(local_img.repo_tags, vec!["127.0.0.1:5000/x/y:tag"]);
    assert_eq!(id_of("127.0.0.1:5000/x/y:tag"), Some(local_img.id.clone()));
    let local_digest = local_img.repo_digests[0].split_once('@').unwrap().1;
    assert_eq!(
        id_of(&format!("127.0.0.1:5000/x/y@{local_digest}")),
        Some(local_img.id.clone())
    );

    // Not found.
    for r in [
        "busybox:1.36".to_string(),
        "127.0.0.1:5000/x/y".to_string(),
        "other/busybox".to_string(),
        format!("other@{manifest_digest}"),
        format!("sha256:{}", "0".repeat(64)),
        hex[..11].to_string(),
    ] {
        assert_eq!(id_of(&r), None, "resolving {r:?}");
    }
    // Invalid.
    match store.resolve("Busybox") {
        Err(Error::InvalidReference { reason, .. }) => {
            assert_eq!(
                reason,
                "invalid reference format: repository name (library/Busybox) must be lowercase"
            )
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        store.resolve("busybox:"),
        Err(Error::InvalidReference { .. })
    ));
}

#[test]
fn remove_tags_ids_and_blobs() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    // Two tags on one image, and a second image sharing its first layer.
    let tar_of = |path: &str| {
        TestImage::new("")
            .bytes(path, path, 0o644)
            .layer_tars()
            .unwrap()
            .remove(0)
    };
    let (shared, only_a, only_b) = (tar_of("/shared"), tar_of("/a"), tar_of("/b"));
    let a1 = dir.path().join("a1.tar");
    let a2 = dir.path().join("a2.tar");
    let b = dir.path().join("b.tar");
    for (name, path, second) in [
        ("ferrokube.test/a:1", &a1, &only_a),
        ("ferrokube.test/a:2", &a2, &only_a),
        ("ferrokube.test/b:1", &b, &only_b),
    ] {
        TestImage::new(name)
            .raw_layer(shared.clone())
            .raw_layer(second.clone())
            .write_oci_archive(path)
            .unwrap();
    }

    let ia = store.import(&a1).unwrap().remove(0);
    let ia2 = store.import(&a2).unwrap().remove(0);
    assert_eq!(ia.id, ia2.id);
    let ib = store.import(&b).unwrap().remove(0);
    let a_tagged = store.resolve("ferrokube.test/a:1").unwrap().unwrap();
    assert_eq!(
        a_tagged.repo_tags,
        vec!["ferrokube.test/a:1", "ferrokube.test/a:2"]
    );
    let blobs_with_all = blob_names(&store);

    // Untagging keeps the image while a tag is left.
    store.remove("ferrokube.test/a:1").unwrap();
    let left = store.resolve(&ia.id).unwrap().unwrap();
    assert_eq!(left.repo_tags, vec!["ferrokube.test/a:2"]);
    assert_eq!(blob_names(&store), blobs_with_all);
    assert!(matches!(
        store.remove("ferrokube.test/a:1"),
        Err(Error::NotFound(_))
    ));

    // In use: removing the last tag would delete the image, which is refused.
    store.set_in_use(&HashSet::from([ia.id.clone()]));
    assert!(matches!(
        store.remove("ferrokube.test/a:2"),
        Err(Error::InUse { .. })
    ));
    assert!(matches!(store.remove(&ia.id), Err(Error::InUse { .. })));
    store.set_in_use(&HashSet::new());

    // Removing the last tag deletes the image; the shared layer stays for b.
    store.remove("ferrokube.test/a:2").unwrap();
    assert!(store.resolve(&ia.id).unwrap().is_none());
    let blobs = blob_names(&store);
    assert!(blobs.len() < blobs_with_all.len());
    let shared = sha256_digest(&compressed_first_layer(&b));
    assert!(
        blobs.contains(&shared[7..].to_string()),
        "shared layer blob kept"
    );
    assert!(store.has_blob(&ib.id));

    // Removing by id removes all names and, with no image left, every blob.
    store.remove(&ib.id[7..19]).unwrap();
    assert!(store.list().unwrap().is_empty());
    assert!(blob_names(&store).is_empty(), "{:?}", blob_names(&store));
    assert!(matches!(
        store.remove("ferrokube.test/b:1"),
        Err(Error::NotFound(_))
    ));

    // Metadata survives reopening.
    store.import(&b).unwrap();
    drop(store);
    let store = open_store(dir.path());
    assert_eq!(store.list().unwrap().len(), 1);
    assert_eq!(
        store.resolve("ferrokube.test/b:1").unwrap().unwrap().id,
        ib.id
    );
}

/// Digest of the first layer blob in an OCI archive written by TestImage (gzip).
fn compressed_first_layer(archive: &std::path::Path) -> Vec<u8> {
    let members = read_tar(archive);
    let index: serde_json::Value =
        serde_json::from_slice(&members.iter().find(|(n, _)| n == "index.json").unwrap().1)
            .unwrap();
    let mdigest = index["manifests"][0]["digest"].as_str().unwrap();
    let blob = |d: &str| {
        members
            .iter()
            .find(|(n, _)| *n == format!("blobs/sha256/{}", &d[7..]))
            .unwrap()
            .1
            .clone()
    };
    let manifest: serde_json::Value = serde_json::from_slice(&blob(mdigest)).unwrap();
    blob(manifest["layers"][0]["digest"].as_str().unwrap())
}

#[test]
fn retagging_moves_the_tag() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let v1 = dir.path().join("v1.tar");
    let v2 = dir.path().join("v2.tar");
    small_image("ferrokube.test/app:latest")
        .write_oci_archive(&v1)
        .unwrap();
    small_image("ferrokube.test/app:latest")
        .bytes("/v2", "2", 0o644)
        .write_oci_archive(&v2)
        .unwrap();
    let i1 = store.import(&v1).unwrap().remove(0);
    let i2 = store.import(&v2).unwrap().remove(0);
    assert_eq!(
        store.resolve("ferrokube.test/app").unwrap().unwrap().id,
        i2.id
    );
    // The old image stays, untagged but still known by its repo digest.
    let old = store.resolve(&i1.id).unwrap().unwrap();
    assert!(old.repo_tags.is_empty());
    assert_eq!(old.repo_digests.len(), 1);
    store.remove(&old.repo_digests[0]).unwrap();
    assert!(store.resolve(&i1.id).unwrap().is_none());
}

#[test]
fn import_dir_skips_unchanged_archives() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let preload = dir.path().join("preload");
    fs::create_dir(&preload).unwrap();
    small_image("ferrokube.test/one:1")
        .write_oci_archive(&preload.join("one.tar"))
        .unwrap();
    small_image("ferrokube.test/two:1")
        .bytes("/two", "2", 0o644)
        .write_docker_archive(&preload.join("two.oci"))
        .unwrap();
    fs::write(preload.join("junk.tar"), b"not an archive at all").unwrap();
    fs::write(preload.join("notes.txt"), b"ignored").unwrap();

    let first = store.import_dir(&preload).unwrap();
    let mut tags: Vec<String> = first.iter().flat_map(|i| i.repo_tags.clone()).collect();
    tags.sort();
    assert_eq!(tags, vec!["ferrokube.test/one:1", "ferrokube.test/two:1"]);
    assert!(
        store.import_dir(&preload).unwrap().is_empty(),
        "nothing changed"
    );

    // A rewritten archive is imported again.
    std::thread::sleep(Duration::from_millis(20));
    small_image("ferrokube.test/one:2")
        .write_oci_archive(&preload.join("one.tar"))
        .unwrap();
    let again = store.import_dir(&preload).unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(
        again[0].repo_tags,
        vec!["ferrokube.test/one:1", "ferrokube.test/one:2"]
    );

    // An image removed since is brought back even though its archive is unchanged.
    let two = store.resolve("ferrokube.test/two:1").unwrap().unwrap();
    store.remove(&two.id).unwrap();
    let back = store.import_dir(&preload).unwrap();
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].id, two.id);
    assert!(store.import_dir(&preload).unwrap().is_empty());

    // A missing directory is not an error.
    assert!(store
        .import_dir(&dir.path().join("nope"))
        .unwrap()
        .is_empty());
}

#[test]
fn corrupt_blob_is_refused_and_nothing_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let good = dir.path().join("good.tar");
    small_image("ferrokube.test/c:1")
        .write_oci_archive(&good)
        .unwrap();
    let mut members = read_tar(&good);
    let layer = compressed_first_layer(&good);
    let name = format!("blobs/sha256/{}", &sha256_digest(&layer)[7..]);
    for (n, data) in members.iter_mut() {
        if *n == name {
            let last = data.len() - 1;
            data[last] ^= 0xff;
        }
    }
    let bad = dir.path().join("bad.tar");
    write_tar(&bad, &members);
    match store.import(&bad) {
        Err(Error::DigestMismatch { what, expected, .. }) => {
            assert_eq!(expected, sha256_digest(&layer));
            assert!(what.contains(&name), "{what}");
        }
        other => panic!("{other:?}"),
    }
    assert!(store.list().unwrap().is_empty());
    assert!(blob_names(&store).is_empty());
    assert!(tmp_names(&store).is_empty());

    // A docker archive whose layer does not match the config's diff id.
    let docker = dir.path().join("d.tar");
    small_image("ferrokube.test/d:1")
        .write_docker_archive(&docker)
        .unwrap();
    let mut members = read_tar(&docker);
    for (n, data) in members.iter_mut() {
        if n.ends_with("/layer.tar") {
            // Still a valid tar, different content.
            *data = TestImage::new("")
                .bytes("/evil", "x", 0o644)
                .layer_tars()
                .unwrap()
                .remove(0);
        }
    }
    write_tar(&docker, &members);
    match store.import(&docker) {
        Err(Error::DigestMismatch { what, .. }) => assert!(what.contains("diff id"), "{what}"),
        other => panic!("{other:?}"),
    }
    assert!(store.list().unwrap().is_empty());
    assert!(blob_names(&store).is_empty());

    // Missing blob.
    let mut members = read_tar(&good);
    members.retain(|(n, _)| *n != name);
    write_tar(&bad, &members);
    assert!(matches!(store.import(&bad), Err(Error::MissingBlob { .. })));

    // Not an image archive.
    write_tar(&bad, &[("hello.txt".to_string(), b"hi".to_vec())]);
    assert!(matches!(
        store.import(&bad),
        Err(Error::UnrecognizedArchive { .. })
    ));
    assert!(blob_names(&store).is_empty());
}

#[test]
fn hostile_layers_are_refused_at_import() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let hostile = |name: &str, link: &str, kind: tar::EntryType| {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_old();
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        h.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
        h.set_entry_type(kind);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_size(0);
        h.set_cksum();
        b.append(&h, &b""[..]).unwrap();
        b.into_inner().unwrap()
    };
    let cases = [
        vec![hostile("../../etc/evil", "", tar::EntryType::Regular)],
        vec![
            hostile("x", "/etc", tar::EntryType::Symlink),
            hostile("x/passwd", "", tar::EntryType::Regular),
        ],
        vec![hostile("h", "../../etc/shadow", tar::EntryType::Link)],
    ];
    for (i, layers) in cases.into_iter().enumerate() {
        let mut tar = Vec::new();
        for l in layers {
            tar.extend_from_slice(&l[..l.len() - 1024]);
        }
        tar.extend_from_slice(&[0u8; 1024]);
        let archive = dir.path().join(format!("h{i}.tar"));
        TestImage::new("ferrokube.test/hostile:1")
            .raw_layer(tar)
            .write_oci_archive(&archive)
            .unwrap();
        let r = store.import(&archive);
        assert!(
            matches!(r, Err(Error::PathTraversal { .. })),
            "case {i}: {r:?}"
        );
        assert!(store.list().unwrap().is_empty());
        assert!(blob_names(&store).is_empty());
    }
}

#[test]
fn other_platforms_are_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    // An index entry with a foreign platform only.
    let archive = dir.path().join("arm.tar");
    small_image("ferrokube.test/p:1")
        .write_oci_archive(&archive)
        .unwrap();
    let mut members = read_tar(&archive);
    for (n, data) in members.iter_mut() {
        if n == "index.json" {
            let mut index: serde_json::Value = serde_json::from_slice(data).unwrap();
            index["manifests"][0]["platform"] =
                serde_json::json!({"architecture": "nonexistent", "os": "linux"});
            *data = serde_json::to_vec(&index).unwrap();
        }
    }
    write_tar(&archive, &members);
    assert!(matches!(
        store.import(&archive),
        Err(Error::NoMatchingPlatform { .. })
    ));
}

#[test]
fn add_image_records_a_pulled_image() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let img = small_image("ignored");
    let tar = img.layer_tars().unwrap().remove(0);
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(&tar).unwrap();
    let layer = e.finish().unwrap();
    let layer_digest = sha256_digest(&layer);
    let config = serde_json::json!({
        "architecture": images::oci::host_platform().1, "os": "linux",
        "config": {"Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": [sha256_digest(&tar)]},
    })
    .to_string();
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "digest": sha256_digest(config.as_bytes()), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "digest": layer_digest, "size": layer.len()}],
    })
    .to_string();
    let index_digest = sha256_digest(b"some index");
    let desc = oci_spec::image::Descriptor::new(
        oci_spec::image::MediaType::ImageLayerGzip,
        layer.len() as u64,
        layer_digest.parse::<oci_spec::image::Digest>().unwrap(),
    );
    let image = store
        .add_image(
            manifest.as_bytes(),
            config.as_bytes(),
            vec![(desc.clone(), Box::new(std::io::Cursor::new(layer.clone())))],
            &[
                "busybox:1.36".to_string(),
                format!("busybox@{index_digest}"),
            ],
        )
        .unwrap();
    assert_eq!(image.id, sha256_digest(config.as_bytes()));
    assert_eq!(image.repo_tags, vec!["docker.io/library/busybox:1.36"]);
    assert_eq!(
        image.repo_digests,
        vec![format!("docker.io/library/busybox@{index_digest}")]
    );
    assert_eq!(image.size, (config.len() + layer.len()) as u64);
    assert_eq!(
        store
            .resolve(&format!("busybox@{index_digest}"))
            .unwrap()
            .unwrap()
            .id,
        image.id
    );
    assert!(store.has_blob(&layer_digest));

    // A layer whose bytes do not match its descriptor is refused.
    let mut wrong = layer.clone();
    wrong[10] ^= 1;
    let r = store.add_image(
        manifest.as_bytes(),
        config.as_bytes(),
        vec![(desc, Box::new(std::io::Cursor::new(wrong)))],
        &[],
    );
    assert!(matches!(r, Err(Error::DigestMismatch { .. })), "{r:?}");

    // Layers already stored need not be given again.
    let again = store
        .add_image(
            manifest.as_bytes(),
            config.as_bytes(),
            vec![],
            &["busybox:stable".to_string()],
        )
        .unwrap();
    assert_eq!(
        again.repo_tags,
        vec![
            "docker.io/library/busybox:1.36",
            "docker.io/library/busybox:stable"
        ]
    );
}

#[test]
fn gc_follows_kubelet_thresholds() {
    let dir = tempfile::tempdir().unwrap();
    let usage = Arc::new(Mutex::new(DiskUsage {
        capacity: 1_000_000,
        available: 900_000,
    }));
    let u = usage.clone();
    let store = ImageStore::open(dir.path().join("store"))
        .unwrap()
        .with_disk_usage(move |_| Ok(*u.lock().unwrap()))
        .with_gc_min_age(Duration::ZERO);
    let mut ids = Vec::new();
    for n in ["a", "b", "c"] {
        let archive = dir.path().join(format!("{n}.tar"));
        small_image(&format!("ferrokube.test/{n}:1"))
            .bytes(format!("/{n}"), n, 0o644)
            .write_oci_archive(&archive)
            .unwrap();
        ids.push(store.import(&archive).unwrap().remove(0));
        std::thread::sleep(Duration::from_millis(2));
    }
    let (a, b, c) = (&ids[0], &ids[1], &ids[2]);

    // Below the high threshold: nothing happens.
    let r = store.gc_report(85, 84).unwrap();
    assert_eq!(
        (r.usage_percent, r.amount_to_free, r.removed.len()),
        (10, 0, 0)
    );

    // 85% used: free enough to get to 84%, i.e. 160000 - available bytes.
    let set_need = |need: u64| {
        usage.lock().unwrap().available = 160_000 - need;
    };
    set_need(a.size + 1);
    store.set_in_use(&HashSet::from([a.id.clone()]));
    let r = store.gc_report(85, 84).unwrap();
    assert_eq!(r.usage_percent, 85);
    assert_eq!(r.amount_to_free, a.size + 1);
    // a is in use; b is the oldest unused, then c.
    let removed: Vec<&str> = r.removed.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(removed, vec![b.id.as_str(), c.id.as_str()]);
    assert!(r.satisfied());
    assert_eq!(store.list().unwrap().len(), 1);

    // Only in-use images left: nothing can be freed.
    let r = store.gc_report(85, 84).unwrap();
    assert!(r.removed.is_empty());
    assert!(!r.satisfied());
    assert!(store.gc(85, 84).unwrap().is_empty());

    // Re-import b and c. Never-used images go first, oldest detection first; a was
    // last used (touched while in use) and goes last.
    for n in ["b", "c"] {
        store.import(&dir.path().join(format!("{n}.tar"))).unwrap();
        std::thread::sleep(Duration::from_millis(2));
    }
    store.set_in_use(&HashSet::new());
    set_need(1);
    let removed: Vec<String> = store
        .gc(85, 84)
        .unwrap()
        .into_iter()
        .map(|i| i.id)
        .collect();
    assert_eq!(removed, vec![b.id.clone()]);
    set_need(1);
    let removed: Vec<String> = store
        .gc(85, 84)
        .unwrap()
        .into_iter()
        .map(|i| i.id)
        .collect();
    assert_eq!(removed, vec![c.id.clone()]);
    let removed: Vec<String> = store
        .gc(85, 84)
        .unwrap()
        .into_iter()
        .map(|i| i.id)
        .collect();
    assert_eq!(removed, vec![a.id.clone()]);
    assert!(blob_names(&store).is_empty());

    // 100 disables GC, even on a full disk.
    usage.lock().unwrap().available = 0;
    assert_eq!(store.gc_report(100, 90).unwrap().amount_to_free, 0);
    // Invalid thresholds and capacity.
    assert!(matches!(
        store.gc(80, 80),
        Err(Error::InvalidGcThresholds { high: 80, low: 80 })
    ));
    assert!(matches!(
        store.gc(101, 50),
        Err(Error::InvalidGcThresholds { .. })
    ));
    usage.lock().unwrap().capacity = 0;
    assert!(matches!(store.gc(85, 80), Err(Error::InvalidCapacity)));
}

#[test]
fn gc_respects_minimum_age() {
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path().join("store"))
        .unwrap()
        .with_disk_usage(|_| {
            Ok(DiskUsage {
                capacity: 100,
                available: 1,
            })
        });
    let archive = dir.path().join("a.tar");
    small_image("ferrokube.test/a:1")
        .write_oci_archive(&archive)
        .unwrap();
    store.import(&archive).unwrap();
    let r = store.gc_report(85, 80).unwrap();
    assert_eq!(r.usage_percent, 99);
    assert!(
        r.removed.is_empty(),
        "images younger than 2 minutes are kept"
    );
    assert_eq!(store.list().unwrap().len(), 1);
}

#[test]
fn corrupt_metadata_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let archive = dir.path().join("a.tar");
    small_image("ferrokube.test/a:1")
        .write_oci_archive(&archive)
        .unwrap();
    store.import(&archive).unwrap();
    fs::write(store.root().join("meta.json"), b"{not json").unwrap();
    assert!(matches!(store.list(), Err(Error::CorruptMetadata { .. })));
}
