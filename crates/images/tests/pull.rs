//! Registry pull tests against Debian's `docker-registry` (the CNCF distribution
//! registry) run as a child process on a free loopback port, optionally with htpasswd
//! authentication. Test images are pushed with oci-client. Skipped with a message when
//! the binary is missing.

mod common;

use std::collections::HashMap;
use std::fs;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::*;
use images::digest::sha256_digest;
use images::{
    auths_from_docker_config, busybox_image, Error, ImageStore, PullErrorKind, PullOptions,
    TestImage,
};
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth as ClientAuth;

const USER: &str = "alice";
const PASSWORD: &str = "s3cret";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// A `docker-registry serve` child process; killed (by its pid) and its data removed on
/// drop.
struct Registry {
    child: Child,
    dir: tempfile::TempDir,
    host: String,
    log: PathBuf,
    protected: bool,
}

fn find_binary(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    })
}

impl Registry {
    /// Starts a registry; `None` (with a message) when docker-registry is not installed.
    fn start(protected: bool) -> Option<Registry> {
        let Some(bin) = find_binary("docker-registry") else {
            eprintln!("skipping: docker-registry not installed (Debian package docker-registry)");
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let host = format!("127.0.0.1:{port}");
        let mut config = format!(
            "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: false\n\
             storage:\n  filesystem:\n    rootdirectory: {}\n\
             http:\n  addr: {host}\n  secret: ferrokube-test\n",
            dir.path().join("data").display()
        );
        if protected {
            let hash = bcrypt::hash(PASSWORD, 4).unwrap();
            let htpasswd = dir.path().join("htpasswd");
            fs::write(&htpasswd, format!("{USER}:{hash}\n")).unwrap();
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: ferrokube-test\n    path: {}\n",
                htpasswd.display()
            ));
        }
        let config_path = dir.path().join("config.yml");
        fs::write(&config_path, config).unwrap();
        let log = dir.path().join("registry.log");
        let out = fs::File::create(&log).unwrap();
        let child = Command::new(bin)
            .arg("serve")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        let reg = Registry {
            child,
            dir,
            host,
            log,
            protected,
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        while TcpStream::connect(&reg.host).is_err() {
            assert!(
                Instant::now() < deadline,
                "registry did not start: {}",
                fs::read_to_string(&reg.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(reg)
    }

    fn image(&self, repo_tag: &str) -> String {
        format!("{}/{repo_tag}", self.host)
    }

    /// Options reaching this registry over plain HTTP.
    fn opts(&self) -> PullOptions {
        PullOptions {
            insecure_registries: vec![self.host.clone()],
            platform: ("linux".into(), "amd64".into()),
            ..PullOptions::default()
        }
    }

    fn client(&self) -> oci_client::Client {
        oci_client::Client::new(ClientConfig {
            protocol: ClientProtocol::Http,
            ..ClientConfig::default()
        })
    }

    async fn client_for(&self, r: &oci_client::Reference) -> oci_client::Client {
        let c = self.client();
        let auth = if self.protected {
            ClientAuth::Basic(USER.into(), PASSWORD.into())
        } else {
            ClientAuth::Anonymous
        };
        c.store_auth_if_needed(r.resolve_registry(), &auth).await;
        c
    }

    fn reference(&self, repo: &str, tag_or_digest: &str) -> oci_client::Reference {
        if tag_or_digest.starts_with("sha256:") {
            oci_client::Reference::with_digest(self.host.clone(), repo.into(), tag_or_digest.into())
        } else {
            oci_client::Reference::with_tag(self.host.clone(), repo.into(), tag_or_digest.into())
        }
    }

    /// Pushes a built image's blobs and manifest to `repo:tag_or_digest`.
    async fn push(&self, repo: &str, tag_or_digest: &str, img: &Built) {
        let r = self.reference(repo, tag_or_digest);
        let c = self.client_for(&r).await;
        for digest in std::iter::once(&img.config).chain(&img.layers) {
            c.push_blob(&r, img.blobs[digest].clone(), digest)
                .await
                .unwrap();
        }
        c.push_manifest_raw(
            &r,
            img.manifest.clone(),
            http::HeaderValue::from_static(OCI_MANIFEST),
        )
        .await
        .unwrap();
    }

    /// Pushes images by digest and an index of them (with the given platforms) as `tag`;
    /// returns the index digest.
    async fn push_index(&self, repo: &str, tag: &str, entries: &[(&Built, &str)]) -> String {
        let mut manifests = Vec::new();
        for (img, arch) in entries {
            self.push(repo, &img.manifest_digest, img).await;
            manifests.push(serde_json::json!({
                "mediaType": OCI_MANIFEST,
                "digest": img.manifest_digest,
                "size": img.manifest.len(),
                "platform": {"os": "linux", "architecture": arch},
            }));
        }
        let index = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": manifests,
        })
        .to_string()
        .into_bytes();
        let digest = sha256_digest(&index);
        let r = self.reference(repo, tag);
        self.client_for(&r)
            .await
            .push_manifest_raw(&r, index, http::HeaderValue::from_static(OCI_INDEX))
            .await
            .unwrap();
        digest
    }

    /// Access-log lines of GET requests made by the puller for `/v2/<repo>/<kind>/<what>`.
    fn gets(&self, repo: &str, kind: &str, what: &str) -> usize {
        // The access log line is written just after the response completes.
        std::thread::sleep(Duration::from_millis(150));
        let needle = format!("\"GET /v2/{repo}/{kind}/{what} ");
        fs::read_to_string(&self.log)
            .unwrap()
            .lines()
            .filter(|l| l.contains(&needle) && l.contains("ferrokube-kubelet"))
            .count()
    }

    /// The registry's file holding a blob.
    fn blob_file(&self, digest: &str) -> PathBuf {
        let hex = &digest[7..];
        self.dir
            .path()
            .join("data/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An image written as an OCI archive, with its blobs in memory.
struct Built {
    archive: PathBuf,
    manifest: Vec<u8>,
    manifest_digest: String,
    config: String,
    layers: Vec<String>,
    blobs: HashMap<String, Vec<u8>>,
}

fn build(img: &TestImage, dir: &Path) -> Built {
    let archive = dir.join(format!(
        "{}.oci.tar",
        img.name().replace(['/', ':', '.'], "_")
    ));
    img.write_oci_archive(&archive).unwrap();
    let files: HashMap<String, Vec<u8>> = read_tar(&archive).into_iter().collect();
    let index: serde_json::Value = serde_json::from_slice(&files["index.json"]).unwrap();
    let manifest_digest = index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let blobs: HashMap<String, Vec<u8>> = files
        .iter()
        .filter_map(|(name, data)| {
            name.strip_prefix("blobs/sha256/")
                .map(|hex| (format!("sha256:{hex}"), data.clone()))
        })
        .collect();
    let manifest = blobs[&manifest_digest].clone();
    let m: serde_json::Value = serde_json::from_slice(&manifest).unwrap();
    let config = m["config"]["digest"].as_str().unwrap().to_string();
    let layers = m["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap().to_string())
        .collect();
    Built {
        archive,
        manifest,
        manifest_digest,
        config,
        layers,
        blobs,
    }
}

fn two_layer_image(name: &str, top: &str) -> TestImage {
    TestImage::new(name)
        .dir("/etc")
        .bytes("/etc/base", "shared base layer\n", 0o644)
        .layer()
        .bytes("/etc/top", top.to_string(), 0o644)
        .cmd(["/bin/sh"])
}

fn have_busybox() -> bool {
    let ok = Path::new("/bin/busybox").exists();
    if !ok {
        eprintln!("skipping: /bin/busybox (busybox-static) not installed");
    }
    ok
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_by_tag_and_digest_matches_import() {
    if !have_busybox() {
        return;
    }
    let Some(reg) = Registry::start(false) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let img = build(&busybox_image("ferrokube.test/busybox:1"), dir.path());
    reg.push("test/busybox", "1", &img).await;

    let imported = ImageStore::open(dir.path().join("imported")).unwrap();
    let want = imported.import(&img.archive).unwrap().remove(0);

    let store = ImageStore::open(dir.path().join("s1")).unwrap();
    let name = reg.image("test/busybox:1");
    let got = store.pull(&name, &reg.opts()).await.unwrap();
    assert_eq!(got.id, want.id);
    assert_eq!(got.id, img.config);
    assert_eq!(got.size, want.size);
    assert_eq!(got.config, want.config);
    assert_eq!(got.repo_tags, vec![name.clone()]);
    assert_eq!(
        got.repo_digests,
        vec![format!("{}/test/busybox@{}", reg.host, img.manifest_digest)]
    );
    assert_eq!(store.resolve(&name).unwrap().unwrap(), got);
    assert!(tmp_names(&store).is_empty());
    // The layer blobs are stored as the registry served them.
    for l in &img.layers {
        assert!(store.has_blob(l));
    }

    // By digest, into another store: no tag, the digest as repo digest.
    let store2 = ImageStore::open(dir.path().join("s2")).unwrap();
    let by_digest = format!("{}/test/busybox@{}", reg.host, img.manifest_digest);
    let got2 = store2.pull(&by_digest, &reg.opts()).await.unwrap();
    assert_eq!(got2.id, want.id);
    assert!(got2.repo_tags.is_empty());
    assert_eq!(got2.repo_digests, vec![by_digest.clone()]);
    assert_eq!(store2.resolve(&by_digest).unwrap().unwrap().id, want.id);

    // The same pull again downloads nothing but the manifest.
    let before = reg.gets("test/busybox", "blobs", &img.layers[0]);
    store.pull(&name, &reg.opts()).await.unwrap();
    assert_eq!(reg.gets("test/busybox", "blobs", &img.layers[0]), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pulled_busybox_mounts() {
    if !have_busybox() {
        return;
    }
    if !is_root() {
        eprintln!("skipping: overlay mounts need root");
        return;
    }
    let Some(reg) = Registry::start(false) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let img = build(&busybox_image("ferrokube.test/busybox:1"), dir.path());
    reg.push("test/busybox", "1", &img).await;
    let store = open_store(dir.path());
    let got = store
        .pull(&reg.image("test/busybox:1"), &reg.opts())
        .await
        .unwrap();

    let containers = tempfile::tempdir().unwrap();
    let _guard = MountGuard(containers.path().to_path_buf());
    let cdir = containers.path().join("c1");
    match store.mount_rootfs(&got, &cdir) {
        Ok(rootfs) => {
            let meta = fs::metadata(rootfs.join("bin/busybox")).unwrap();
            assert_eq!(meta.len(), fs::metadata("/bin/busybox").unwrap().len());
            assert!(rootfs.join("bin/sh").symlink_metadata().is_ok());
            ImageStore::unmount_rootfs(&cdir).unwrap();
        }
        Err(Error::Mount { source, .. }) => {
            eprintln!("skipping: overlayfs not available: {source}");
        }
        Err(e) => panic!("mount_rootfs: {e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_layers_are_not_downloaded_again() {
    let Some(reg) = Registry::start(false) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let a = build(&two_layer_image("ferrokube.test/a:1", "a\n"), dir.path());
    let b = build(&two_layer_image("ferrokube.test/b:1", "b\n"), dir.path());
    assert_eq!(a.layers[0], b.layers[0]);
    assert_ne!(a.layers[1], b.layers[1]);
    reg.push("test/layers", "a", &a).await;
    reg.push("test/layers", "b", &b).await;

    let store = open_store(dir.path());
    // Everything of `a` is stored by an import: pulling it fetches only the manifest.
    store.import(&a.archive).unwrap();
    let got = store
        .pull(&reg.image("test/layers:a"), &reg.opts())
        .await
        .unwrap();
    assert_eq!(got.id, a.config);
    assert_eq!(reg.gets("test/layers", "manifests", "a"), 1);
    for d in std::iter::once(&a.config).chain(&a.layers) {
        assert_eq!(reg.gets("test/layers", "blobs", d), 0, "{d} downloaded");
    }
    // `b` shares its base layer with `a`: only its config and top layer are fetched.
    let got = store
        .pull(&reg.image("test/layers:b"), &reg.opts())
        .await
        .unwrap();
    assert_eq!(got.id, b.config);
    assert_eq!(reg.gets("test/layers", "blobs", &b.layers[0]), 0);
    assert_eq!(reg.gets("test/layers", "blobs", &b.layers[1]), 1);
    assert_eq!(reg.gets("test/layers", "blobs", &b.config), 1);
    assert_eq!(store.list().unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_platform_index_resolves_to_the_platform() {
    let Some(reg) = Registry::start(false) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let amd = build(
        &TestImage::new("ferrokube.test/multi:amd64").bytes("/arch", "amd64\n", 0o644),
        dir.path(),
    );
    let arm = build(
        &TestImage::new("ferrokube.test/multi:arm64")
            .bytes("/arch", "arm64\n", 0o644)
            .architecture("arm64"),
        dir.path(),
    );
    let index = reg
        .push_index("test/multi", "1", &[(&arm, "arm64"), (&amd, "amd64")])
        .await;

    let store = open_store(dir.path());
    let name = reg.image("test/multi:1");
    let got = store.pull(&name, &reg.opts()).await.unwrap();
    assert_eq!(got.id, amd.config);
    assert_eq!(got.repo_tags, vec![name.clone()]);
    // The repo digest is the index's: what the registry serves for the tag.
    assert_eq!(
        got.repo_digests,
        vec![format!("{}/test/multi@{index}", reg.host)]
    );
    assert_eq!(reg.gets("test/multi", "blobs", &arm.layers[0]), 0);
    assert_eq!(reg.gets("test/multi", "manifests", &arm.manifest_digest), 0);
    // The index is kept: the image resolves by the index digest and the manifest digest.
    assert!(store.has_blob(&index));
    for d in [&index, &amd.manifest_digest] {
        let r = format!("{}/test/multi@{d}", reg.host);
        assert_eq!(store.resolve(&r).unwrap().unwrap().id, amd.config, "{r}");
    }

    // Another platform picks the other manifest.
    let arm_opts = PullOptions {
        platform: ("linux".into(), "arm64".into()),
        ..reg.opts()
    };
    let got = store.pull(&name, &arm_opts).await.unwrap();
    assert_eq!(got.id, arm.config);

    // No manifest for the platform: not found.
    let s390 = PullOptions {
        platform: ("linux".into(), "s390x".into()),
        ..reg.opts()
    };
    let e = store.pull(&name, &s390).await.unwrap_err();
    assert!(e.is_not_found(), "{e}");
    assert_eq!(
        e.to_string(),
        format!("failed to pull and unpack image \"{name}\": no match for platform in manifest: not found")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_tag_or_digest_is_not_found() {
    let Some(reg) = Registry::start(false) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let img = build(&small_image("ferrokube.test/small:1"), dir.path());
    reg.push("test/small", "1", &img).await;
    let store = open_store(dir.path());

    for name in [
        reg.image("test/small:nope"),
        reg.image("test/absent:1"),
        format!(
            "{}/test/small@{}",
            reg.host,
            sha256_digest(b"no such manifest")
        ),
    ] {
        let e = store.pull(&name, &reg.opts()).await.unwrap_err();
        assert!(e.is_not_found(), "{e}");
        assert!(!e.is_unauthorized());
        assert_eq!(
            e.to_string(),
            format!("failed to pull and unpack image \"{name}\": failed to resolve reference \"{name}\": {name}: not found")
        );
    }
    assert!(store.list().unwrap().is_empty());

    // Unreachable registry: a network error.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let e = store
        .pull(&format!("127.0.0.1:{port}/x/y:1"), &PullOptions::default())
        .await
        .unwrap_err();
    assert_eq!(e.pull_error_kind(), Some(PullErrorKind::Network), "{e}");
    assert!(
        e.to_string().starts_with(&format!(
            "failed to pull and unpack image \"127.0.0.1:{port}/x/y:1\": failed to resolve reference \"127.0.0.1:{port}/x/y:1\": failed to do request: Get \"http://127.0.0.1:{port}/v2/"
        )),
        "{e}"
    );
    // Invalid references fail before any request.
    assert!(matches!(
        store.pull("Bad:ref", &reg.opts()).await,
        Err(Error::InvalidReference { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protected_registry_needs_credentials() {
    let Some(reg) = Registry::start(true) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let img = build(&small_image("ferrokube.test/private:1"), dir.path());
    reg.push("team/private", "1", &img).await;
    let store = open_store(dir.path());
    let name = reg.image("team/private:1");

    let unauthorized = format!(
        "failed to pull and unpack image \"{name}\": failed to resolve reference \"{name}\": pulling from host {} failed with status code [manifests 1]: 401 Unauthorized",
        reg.host
    );
    // Anonymous, and with credentials for another registry only.
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let elsewhere = format!(
        r#"{{"auths":{{"registry.example":{{"auth":"{}"}}}}}}"#,
        b64("alice:s3cret")
    );
    for auth in [
        vec![],
        auths_from_docker_config(elsewhere.as_bytes()).unwrap(),
    ] {
        let opts = PullOptions { auth, ..reg.opts() };
        let e = store.pull(&name, &opts).await.unwrap_err();
        assert!(e.is_unauthorized(), "{e}");
        assert!(!e.is_not_found());
        assert_eq!(e.to_string(), unauthorized);
    }
    // A wrong password.
    let wrong = format!(
        r#"{{"auths":{{"http://{}/v2/":{{"username":"alice","password":"nope"}}}}}}"#,
        reg.host
    );
    let opts = PullOptions {
        auth: auths_from_docker_config(wrong.as_bytes()).unwrap(),
        ..reg.opts()
    };
    let e = store.pull(&name, &opts).await.unwrap_err();
    assert!(e.is_unauthorized(), "{e}");
    assert!(store.list().unwrap().is_empty());

    // The right credentials from a dockerconfigjson, after a wrong candidate.
    let config = format!(
        r#"{{"auths":{{"{host}/team":{{"auth":"{good}"}},"{host}":{{"auth":"{bad}"}}}}}}"#,
        host = reg.host,
        good = b64("alice:s3cret"),
        bad = b64("alice:wrong"),
    );
    let opts = PullOptions {
        auth: auths_from_docker_config(config.as_bytes()).unwrap(),
        ..reg.opts()
    };
    let got = store.pull(&name, &opts).await.unwrap();
    assert_eq!(got.id, img.config);
    assert_eq!(got.repo_tags, vec![name]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_blob_is_refused() {
    let Some(reg) = Registry::start(false) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let img = build(&two_layer_image("ferrokube.test/t:1", "t\n"), dir.path());
    reg.push("test/tampered", "1", &img).await;
    let store = open_store(dir.path());
    let name = reg.image("test/tampered:1");

    // Same length, other content.
    let layer = &img.layers[1];
    let path = reg.blob_file(layer);
    let len = fs::metadata(&path).unwrap().len() as usize;
    fs::write(&path, vec![b'x'; len]).unwrap();
    let e = store.pull(&name, &reg.opts()).await.unwrap_err();
    assert_eq!(e.pull_error_kind(), Some(PullErrorKind::Other), "{e}");
    let url = format!("http://{}/v2/test/tampered/blobs/{layer}", reg.host);
    assert_eq!(
        e.to_string(),
        format!(
            "failed to pull and unpack image \"{name}\": failed to copy: blob from {url}: content has digest {} but {layer} was expected; the data is corrupt or was modified",
            sha256_digest(&vec![b'x'; len])
        )
    );
    // Longer than announced.
    fs::write(&path, vec![b'x'; len + 10]).unwrap();
    let e = store.pull(&name, &reg.opts()).await.unwrap_err();
    assert!(
        e.to_string().contains(&format!(
            "failed to copy: blob {layer} from {url}: content is"
        )),
        "{e}"
    );

    // Nothing was stored, nothing is left in staging.
    assert!(store.list().unwrap().is_empty());
    assert!(blob_names(&store).is_empty(), "{:?}", blob_names(&store));
    assert!(tmp_names(&store).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_pulls_download_once() {
    let Some(reg) = Registry::start(false) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let img = build(&two_layer_image("ferrokube.test/c:1", "c\n"), dir.path());
    reg.push("test/concurrent", "1", &img).await;
    let store = Arc::new(open_store(dir.path()));
    let name = reg.image("test/concurrent:1");
    let opts = reg.opts();

    let pulls = (0..4).map(|_| {
        let store = store.clone();
        let name = name.clone();
        let opts = opts.clone();
        tokio::spawn(async move { store.pull(&name, &opts).await })
    });
    let results = futures::future::join_all(pulls).await;
    for r in results {
        assert_eq!(r.unwrap().unwrap().id, img.config);
    }
    assert_eq!(reg.gets("test/concurrent", "manifests", "1"), 1);
    for d in std::iter::once(&img.config).chain(&img.layers) {
        assert_eq!(reg.gets("test/concurrent", "blobs", d), 1, "{d}");
    }
    assert_eq!(store.list().unwrap().len(), 1);
}
