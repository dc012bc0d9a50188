//! A builder of small image archives for tests: one or more layers of files copied
//! from the host, inline bytes, directories, symlinks, hardlinks and whiteouts, plus a
//! config, written as an OCI layout tarball or a `docker save` archive. Output is
//! deterministic (fixed times and owners), so both formats of one `TestImage` give the
//! same image id.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use serde_json::json;

use crate::compress::Compression;
use crate::digest::sha256_digest;
use crate::error::IoContext;
use crate::oci;
use crate::Error;

/// Modification time of every entry in test images (2020-09-13T12:26:40Z).
pub const TEST_MTIME: u64 = 1_600_000_000;
const TEST_CREATED: &str = "2020-09-13T12:26:40Z";

#[derive(Clone, Debug)]
enum Entry {
    File { src: PathBuf, mode: u32 },
    Bytes { data: Vec<u8>, mode: u32 },
    Dir { mode: u32 },
    Symlink { target: String },
    Hardlink { target: String },
    Whiteout,
    Opaque,
}

#[derive(Clone, Debug)]
enum Layer {
    Entries(Vec<(String, Entry)>),
    Raw(Vec<u8>),
}

/// An image to write as an archive; see the module docs.
#[derive(Clone, Debug)]
pub struct TestImage {
    name: String,
    layers: Vec<Layer>,
    entrypoint: Option<Vec<String>>,
    cmd: Option<Vec<String>>,
    env: Vec<String>,
    workdir: String,
    user: String,
    labels: BTreeMap<String, String>,
    exposed_ports: Vec<String>,
    stop_signal: Option<String>,
    compression: Compression,
    architecture: Option<String>,
}

impl TestImage {
    /// An empty image named `name` (e.g. `ferrokube.test/busybox:1`) with one layer.
    pub fn new(name: impl Into<String>) -> TestImage {
        TestImage {
            name: name.into(),
            layers: vec![Layer::Entries(Vec::new())],
            entrypoint: None,
            cmd: None,
            env: Vec::new(),
            workdir: String::new(),
            user: String::new(),
            labels: BTreeMap::new(),
            exposed_ports: Vec::new(),
            stop_signal: None,
            compression: Compression::Gzip,
            architecture: None,
        }
    }

    fn push(mut self, dest: impl Into<String>, entry: Entry) -> TestImage {
        if !matches!(self.layers.last(), Some(Layer::Entries(_))) {
            self.layers.push(Layer::Entries(Vec::new()));
        }
        if let Some(Layer::Entries(v)) = self.layers.last_mut() {
            v.push((clean(&dest.into()), entry));
        }
        self
    }

    /// Copies host file `src` to `dest` in the image with permission bits `mode`.
    pub fn file(self, dest: impl Into<String>, src: impl Into<PathBuf>, mode: u32) -> TestImage {
        self.push(
            dest,
            Entry::File {
                src: src.into(),
                mode,
            },
        )
    }

    /// A file with the given content.
    pub fn bytes(self, dest: impl Into<String>, data: impl Into<Vec<u8>>, mode: u32) -> TestImage {
        self.push(
            dest,
            Entry::Bytes {
                data: data.into(),
                mode,
            },
        )
    }

    /// A directory (mode 0755).
    pub fn dir(self, dest: impl Into<String>) -> TestImage {
        self.dir_mode(dest, 0o755)
    }

    /// A directory with the given mode (e.g. 0o1777 for /tmp).
    pub fn dir_mode(self, dest: impl Into<String>, mode: u32) -> TestImage {
        self.push(dest, Entry::Dir { mode })
    }

    /// A symlink at `dest` pointing to `target` (stored as given).
    pub fn symlink(self, dest: impl Into<String>, target: impl Into<String>) -> TestImage {
        self.push(
            dest,
            Entry::Symlink {
                target: target.into(),
            },
        )
    }

    /// A hardlink at `dest` to `target`, a file of the same layer.
    pub fn hardlink(self, dest: impl Into<String>, target: impl Into<String>) -> TestImage {
        let target = clean(&target.into());
        self.push(dest, Entry::Hardlink { target })
    }

    /// An OCI whiteout deleting `path` of lower layers.
    pub fn whiteout(self, path: impl Into<String>) -> TestImage {
        self.push(path, Entry::Whiteout)
    }

    /// An opaque marker: lower layers' content of directory `dir` is hidden.
    pub fn opaque(self, dir: impl Into<String>) -> TestImage {
        self.push(dir, Entry::Opaque)
    }

    /// Starts a new layer; later entries go into it.
    pub fn layer(mut self) -> TestImage {
        self.layers.push(Layer::Entries(Vec::new()));
        self
    }

    /// Adds a layer given as ready-made (uncompressed) tar bytes, e.g. a hostile one.
    pub fn raw_layer(mut self, tar: Vec<u8>) -> TestImage {
        if matches!(self.layers.last(), Some(Layer::Entries(v)) if v.is_empty()) {
            self.layers.pop();
        }
        self.layers.push(Layer::Raw(tar));
        self
    }

    /// Config entrypoint.
    pub fn entrypoint<S: Into<String>>(mut self, v: impl IntoIterator<Item = S>) -> TestImage {
        self.entrypoint = Some(v.into_iter().map(Into::into).collect());
        self
    }

    /// Config cmd.
    pub fn cmd<S: Into<String>>(mut self, v: impl IntoIterator<Item = S>) -> TestImage {
        self.cmd = Some(v.into_iter().map(Into::into).collect());
        self
    }

    /// Config environment (`NAME=value`).
    pub fn env<S: Into<String>>(mut self, v: impl IntoIterator<Item = S>) -> TestImage {
        self.env = v.into_iter().map(Into::into).collect();
        self
    }

    /// Config working directory.
    pub fn workdir(mut self, dir: impl Into<String>) -> TestImage {
        self.workdir = dir.into();
        self
    }

    /// Config user.
    pub fn user(mut self, user: impl Into<String>) -> TestImage {
        self.user = user.into();
        self
    }

    /// A config label.
    pub fn label(mut self, key: impl Into<String>, value: impl Into<String>) -> TestImage {
        self.labels.insert(key.into(), value.into());
        self
    }

    /// An exposed port such as `8080/tcp`.
    pub fn expose(mut self, port: impl Into<String>) -> TestImage {
        self.exposed_ports.push(port.into());
        self
    }

    /// Config stop signal.
    pub fn stop_signal(mut self, signal: impl Into<String>) -> TestImage {
        self.stop_signal = Some(signal.into());
        self
    }

    /// Compression of layers in OCI archives (gzip by default; docker archives always
    /// hold plain tars, as `docker save` writes them).
    pub fn compression(mut self, c: Compression) -> TestImage {
        self.compression = c;
        self
    }

    /// Overrides the config architecture (the host's by default).
    pub fn architecture(mut self, arch: impl Into<String>) -> TestImage {
        self.architecture = Some(arch.into());
        self
    }

    /// The image name as given.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Uncompressed layer tars, bottom first.
    pub fn layer_tars(&self) -> Result<Vec<Vec<u8>>, Error> {
        self.layers
            .iter()
            .map(|l| match l {
                Layer::Entries(e) => layer_tar(e),
                Layer::Raw(t) => Ok(t.clone()),
            })
            .collect()
    }

    /// The config JSON for the given layer tars.
    fn config_json(&self, tars: &[Vec<u8>]) -> Vec<u8> {
        let diff_ids: Vec<String> = tars.iter().map(|t| sha256_digest(t)).collect();
        let mut config = serde_json::Map::new();
        if let Some(e) = &self.entrypoint {
            config.insert("Entrypoint".into(), json!(e));
        }
        if let Some(c) = &self.cmd {
            config.insert("Cmd".into(), json!(c));
        }
        if !self.env.is_empty() {
            config.insert("Env".into(), json!(self.env));
        }
        if !self.workdir.is_empty() {
            config.insert("WorkingDir".into(), json!(self.workdir));
        }
        if !self.user.is_empty() {
            config.insert("User".into(), json!(self.user));
        }
        if !self.labels.is_empty() {
            config.insert("Labels".into(), json!(self.labels));
        }
        if !self.exposed_ports.is_empty() {
            let ports: BTreeMap<&String, serde_json::Value> =
                self.exposed_ports.iter().map(|p| (p, json!({}))).collect();
            config.insert("ExposedPorts".into(), json!(ports));
        }
        if let Some(s) = &self.stop_signal {
            config.insert("StopSignal".into(), json!(s));
        }
        let arch = self
            .architecture
            .clone()
            .unwrap_or_else(|| oci::host_platform().1);
        let history: Vec<serde_json::Value> = tars
            .iter()
            .map(|_| json!({"created": TEST_CREATED, "created_by": "ferrokube testimage"}))
            .collect();
        let doc = json!({
            "architecture": arch,
            "os": "linux",
            "created": TEST_CREATED,
            "config": config,
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": history,
        });
        // serde_json maps are sorted: the bytes are deterministic.
        doc.to_string().into_bytes()
    }

    /// Writes an OCI image layout tarball holding this image, named by the
    /// `io.containerd.image.name` (full name) and `org.opencontainers.image.ref.name`
    /// (tag) annotations, as `docker save` does since Docker 25.
    pub fn write_oci_archive(&self, out: &Path) -> Result<(), Error> {
        let tars = self.layer_tars()?;
        let config = self.config_json(&tars);
        let mut blobs: Vec<(String, Vec<u8>)> = Vec::new();
        let mut layer_descs = Vec::new();
        for t in &tars {
            let (data, media_type) = match self.compression {
                Compression::None => (t.clone(), oci::MEDIA_OCI_LAYER),
                Compression::Gzip => (gzip(t)?, oci::MEDIA_OCI_LAYER_GZIP),
                Compression::Zstd => (
                    ruzstd::encoding::compress_to_vec(
                        &t[..],
                        ruzstd::encoding::CompressionLevel::Fastest,
                    ),
                    oci::MEDIA_OCI_LAYER_ZSTD,
                ),
            };
            let digest = sha256_digest(&data);
            layer_descs
                .push(json!({"mediaType": media_type, "digest": digest, "size": data.len()}));
            blobs.push((digest, data));
        }
        let config_digest = sha256_digest(&config);
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": oci::MEDIA_OCI_MANIFEST,
            "config": {"mediaType": oci::MEDIA_OCI_CONFIG, "digest": config_digest, "size": config.len()},
            "layers": layer_descs,
        })
        .to_string()
        .into_bytes();
        let manifest_digest = sha256_digest(&manifest);
        let mut annotations = BTreeMap::new();
        if !self.name.is_empty() {
            let tag = crate::reference::normalize_reference(&self.name)
                .ok()
                .and_then(|r| r.tag)
                .unwrap_or_else(|| "latest".to_string());
            annotations.insert(oci::ANNOTATION_CONTAINERD_NAME, self.name.clone());
            annotations.insert(oci::ANNOTATION_REF_NAME, tag);
        }
        let mut entry = json!({"mediaType": oci::MEDIA_OCI_MANIFEST, "digest": manifest_digest, "size": manifest.len()});
        if !annotations.is_empty() {
            entry["annotations"] = json!(annotations);
        }
        let index =
            json!({"schemaVersion": 2, "mediaType": oci::MEDIA_OCI_INDEX, "manifests": [entry]})
                .to_string()
                .into_bytes();
        blobs.push((config_digest, config));
        blobs.push((manifest_digest, manifest));

        let mut files: Vec<(String, Vec<u8>)> = vec![
            (
                "oci-layout".to_string(),
                br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
            ),
            ("index.json".to_string(), index),
        ];
        for (digest, data) in blobs {
            files.push((format!("blobs/sha256/{}", &digest[7..]), data));
        }
        write_tar(out, &files)
    }

    /// Writes a `docker save` archive (manifest.json with Config, RepoTags, Layers;
    /// `<hex>.json` config; `<diff id hex>/layer.tar` plain layers).
    pub fn write_docker_archive(&self, out: &Path) -> Result<(), Error> {
        let tars = self.layer_tars()?;
        let config = self.config_json(&tars);
        let config_name = format!("{}.json", &sha256_digest(&config)[7..]);
        let mut files: Vec<(String, Vec<u8>)> = Vec::new();
        let mut layer_names = Vec::new();
        for t in tars {
            let name = format!("{}/layer.tar", &sha256_digest(&t)[7..]);
            if !layer_names.contains(&name) {
                files.push((name.clone(), t));
            }
            layer_names.push(name);
        }
        let tags: Vec<&str> = if self.name.is_empty() {
            vec![]
        } else {
            vec![self.name.as_str()]
        };
        let manifest = json!([{"Config": config_name, "RepoTags": tags, "Layers": layer_names}])
            .to_string()
            .into_bytes();
        files.push((config_name, config));
        files.push(("manifest.json".to_string(), manifest));
        write_tar(out, &files)
    }
}

/// A busybox image from the host's static `/bin/busybox` (Debian's busybox-static):
/// `/bin/busybox` with every applet symlinked next to it, `/etc/passwd` and
/// `/etc/group` with root and nobody, `/tmp` (1777), PATH set and `sh` as the command.
pub fn busybox_image(name: &str) -> TestImage {
    let mut img = TestImage::new(name)
        .dir("/bin")
        .file("/bin/busybox", "/bin/busybox", 0o755);
    for applet in busybox_applets() {
        if applet != "busybox" && !applet.contains('/') {
            img = img.symlink(format!("/bin/{applet}"), "busybox");
        }
    }
    img.dir("/etc")
        .bytes(
            "/etc/passwd",
            "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n",
            0o644,
        )
        .bytes("/etc/group", "root:x:0:\nnobody:x:65534:\n", 0o644)
        .dir_mode("/root", 0o700)
        .dir_mode("/tmp", 0o1777)
        .dir("/home")
        .dir("/var")
        .env(["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"])
        .cmd(["sh"])
}

/// Applets of the host busybox (`busybox --list`), or a common subset if it cannot run.
fn busybox_applets() -> Vec<String> {
    let listed = std::process::Command::new("/bin/busybox")
        .arg("--list")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    if !listed.is_empty() {
        return listed;
    }
    [
        "sh", "ash", "cat", "cp", "echo", "env", "false", "grep", "head", "hostname", "id", "kill",
        "ln", "ls", "mkdir", "mv", "nc", "ping", "ps", "pwd", "rm", "sed", "sleep", "sort", "tail",
        "test", "touch", "true", "uname", "wc", "wget", "whoami",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// Strips leading `/` and `./` and trailing `/`.
fn clean(p: &str) -> String {
    p.trim_start_matches("./").trim_matches('/').to_string()
}

fn gzip(data: &[u8]) -> Result<Vec<u8>, Error> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).ctx(|| "gzip".to_string())?;
    e.finish().ctx(|| "gzip".to_string())
}

fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(TEST_MTIME);
    h
}

/// One layer tar: entries sorted by path, missing parent directories added (0755).
fn layer_tar(entries: &[(String, Entry)]) -> Result<Vec<u8>, Error> {
    let mut map: BTreeMap<String, Entry> = BTreeMap::new();
    for (path, entry) in entries {
        if path.is_empty() {
            continue;
        }
        let name = match entry {
            Entry::Whiteout => {
                let p = Path::new(path);
                let base = p
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                match p
                    .parent()
                    .map(|d| d.to_string_lossy().into_owned())
                    .filter(|d| !d.is_empty())
                {
                    Some(dir) => format!("{dir}/.wh.{base}"),
                    None => format!(".wh.{base}"),
                }
            }
            Entry::Opaque => format!("{path}/.wh..wh..opq"),
            _ => path.clone(),
        };
        let mut parent = Path::new(&name).parent();
        while let Some(p) = parent.filter(|p| !p.as_os_str().is_empty()) {
            map.entry(p.to_string_lossy().into_owned())
                .or_insert(Entry::Dir { mode: 0o755 });
            parent = p.parent();
        }
        map.insert(name, entry.clone());
    }
    let mut b = tar::Builder::new(Vec::new());
    let io_err = |e: io::Error| Error::io("building layer tar", e);
    // Hardlinks last: their targets must come first in the archive.
    let ordered = map
        .iter()
        .filter(|(_, e)| !matches!(e, Entry::Hardlink { .. }))
        .chain(
            map.iter()
                .filter(|(_, e)| matches!(e, Entry::Hardlink { .. })),
        );
    for (path, entry) in ordered {
        match entry {
            Entry::File { src, mode } => {
                let data =
                    fs::read(src).ctx(|| format!("reading {} for test image", src.display()))?;
                let mut h = header(tar::EntryType::Regular, *mode, data.len() as u64);
                b.append_data(&mut h, path, &data[..]).map_err(io_err)?;
            }
            Entry::Bytes { data, mode } => {
                let mut h = header(tar::EntryType::Regular, *mode, data.len() as u64);
                b.append_data(&mut h, path, &data[..]).map_err(io_err)?;
            }
            Entry::Dir { mode } => {
                let mut h = header(tar::EntryType::Directory, *mode, 0);
                b.append_data(&mut h, format!("{path}/"), io::empty())
                    .map_err(io_err)?;
            }
            Entry::Symlink { target } => {
                let mut h = header(tar::EntryType::Symlink, 0o777, 0);
                b.append_link(&mut h, path, target).map_err(io_err)?;
            }
            Entry::Hardlink { target } => {
                let mut h = header(tar::EntryType::Link, 0o644, 0);
                b.append_link(&mut h, path, target).map_err(io_err)?;
            }
            Entry::Whiteout | Entry::Opaque => {
                let mut h = header(tar::EntryType::Regular, 0o644, 0);
                b.append_data(&mut h, path, io::empty()).map_err(io_err)?;
            }
        }
    }
    b.into_inner().map_err(io_err)
}

/// Writes a tar of `files` (regular, 0644, fixed mtime) to `out`.
fn write_tar(out: &Path, files: &[(String, Vec<u8>)]) -> Result<(), Error> {
    let f = File::create(out).ctx(|| format!("creating {}", out.display()))?;
    let mut b = tar::Builder::new(BufWriter::new(f));
    let ctx = || format!("writing {}", out.display());
    for (name, data) in files {
        let mut h = header(tar::EntryType::Regular, 0o644, data.len() as u64);
        b.append_data(&mut h, name, &data[..]).ctx(ctx)?;
    }
    let w = b.into_inner().ctx(ctx)?;
    w.into_inner()
        .map_err(|e| Error::io(ctx(), e.into_error()))?
        .sync_all()
        .ctx(ctx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_get_parents_and_are_deterministic() {
        let img = TestImage::new("x:1")
            .bytes("/a/b/c", "hi", 0o600)
            .symlink("/l", "a")
            .layer()
            .whiteout("/a/b/c")
            .opaque("/a");
        let tars = img.layer_tars().unwrap();
        assert_eq!(tars.len(), 2);
        assert_eq!(tars, img.layer_tars().unwrap());
        let names = |t: &Vec<u8>| -> Vec<String> {
            tar::Archive::new(&t[..])
                .entries()
                .unwrap()
                .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
                .collect()
        };
        assert_eq!(names(&tars[0]), vec!["a/", "a/b/", "a/b/c", "l"]);
        assert_eq!(
            names(&tars[1]),
            vec!["a/", "a/.wh..wh..opq", "a/b/", "a/b/.wh.c"]
        );
    }

    #[test]
    fn config_has_fields() {
        let img = TestImage::new("x:1")
            .entrypoint(["/bin/sh", "-c"])
            .cmd(["echo hi"])
            .env(["A=1"])
            .workdir("/w")
            .user("1000")
            .expose("80/tcp")
            .label("k", "v");
        let tars = img.layer_tars().unwrap();
        let c: crate::oci::ConfigDoc =
            crate::oci::parse(&img.config_json(&tars), "config").unwrap();
        let ic = c.image_config();
        assert_eq!(ic.entrypoint, vec!["/bin/sh", "-c"]);
        assert_eq!(ic.cmd, vec!["echo hi"]);
        assert_eq!(ic.env, vec!["A=1"]);
        assert_eq!(ic.working_dir, "/w");
        assert_eq!(ic.user, "1000");
        assert_eq!(ic.exposed_ports, vec!["80/tcp"]);
        assert_eq!(ic.labels.get("k").map(String::as_str), Some("v"));
        assert_eq!(c.rootfs.unwrap().diff_ids, vec![sha256_digest(&tars[0])]);
    }
}
