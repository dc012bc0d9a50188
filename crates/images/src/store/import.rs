//! Getting images into the store: archive import (OCI layout, docker save), the
//! verification of manifests, configs and layers, and the commit that moves verified
//! blobs into place and records the image; `add_image` shares the same path.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fs::{self, File};
use std::io::{self, BufReader, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::{
    now_nanos, ImageRecord, ImageStore, ImportRecord, LayerRecord, Located, Meta, PendingImage,
    PendingLayer,
};
use crate::archive::{self, read_document, Staging};
use crate::digest::{chain_ids, digest_hex, sha256_digest, HashingReader};
use crate::error::IoContext;
use crate::oci::{self, ConfigDoc, DescriptorDoc, DockerSaveEntry, IndexDoc, ManifestDoc};
use crate::reference::{normalize_reference, Reference};
use crate::{compress, unpack, Error, Image};

/// File name suffixes `import_dir` picks up.
pub const ARCHIVE_SUFFIXES: &[&str] = &[".tar", ".tar.gz", ".tgz", ".tar.zst", ".oci"];

impl ImageStore {
    /// Imports every image in an archive: an OCI image layout tarball (names from the
    /// `io.containerd.image.name` annotation, else `org.opencontainers.image.ref.name`
    /// when it is a full reference) or a `docker save` archive (manifest.json), plain,
    /// gzip- or zstd-compressed. All blobs are verified against their digests (layers
    /// also against the config's diff ids) before anything is stored; on any error
    /// nothing is.
    pub fn import(&self, archive_path: &Path) -> Result<Vec<Image>, Error> {
        let mut staging = Staging::new(&self.tmp_dir())?;
        archive::read_archive(archive_path, &mut staging)?;
        let pending = if staging.get("index.json").is_some() {
            self.oci_layout_images(archive_path, &staging)?
        } else if staging.get("manifest.json").is_some() {
            self.docker_archive_images(archive_path, &staging)?
        } else {
            return Err(Error::UnrecognizedArchive {
                path: archive_path.to_path_buf(),
            });
        };
        if pending.is_empty() {
            let (os, arch, _) = oci::host_platform();
            return Err(Error::NoMatchingPlatform {
                path: archive_path.to_path_buf(),
                platform: format!("{os}/{arch}"),
            });
        }
        let images = self.commit(pending)?;
        for image in &images {
            tracing::info!(archive = %archive_path.display(), id = %image.id, tags = ?image.repo_tags, "imported image");
        }
        Ok(images)
    }

    fn oci_layout_images(
        &self,
        archive_path: &Path,
        staging: &Staging,
    ) -> Result<Vec<PendingImage>, Error> {
        let index_bytes = staging.read("index.json")?.unwrap_or_default();
        let index: IndexDoc = oci::parse(
            &index_bytes,
            &format!("index.json of {}", archive_path.display()),
        )?;
        let locate = |desc: &DescriptorDoc, needed_by: &str| -> Result<Located, Error> {
            let hex = digest_hex(&desc.digest)?;
            let name = format!("blobs/sha256/{hex}");
            match staging.get(&name) {
                Some(f) => {
                    if f.digest != desc.digest {
                        return Err(Error::DigestMismatch {
                            what: format!("{name} in {}", archive_path.display()),
                            expected: desc.digest.clone(),
                            actual: f.digest.clone(),
                        });
                    }
                    if f.size != desc.size {
                        return Err(Error::SizeMismatch {
                            what: format!("{name} in {}", archive_path.display()),
                            expected: desc.size,
                            actual: f.size,
                        });
                    }
                    Ok(Located {
                        path: f.path.clone(),
                        stored: false,
                    })
                }
                None => self.locate_stored(desc, needed_by),
            }
        };
        let mut out = Vec::new();
        for desc in &index.manifests {
            let names = names_from_annotations(desc.annotations.as_ref());
            let mut extra = Vec::new();
            let Some((mdesc, mbytes)) = self.select_manifest(desc, &locate, &mut extra, 0)? else {
                tracing::info!(archive = %archive_path.display(), digest = %desc.digest, "skipping index entry: no manifest for this platform");
                continue;
            };
            let mut p = self.prepare_image(mbytes, mdesc.digest.clone(), &locate)?;
            p.extra_blobs = extra;
            p.target_digest = desc.digest.clone();
            p.names = names;
            out.push(p);
        }
        Ok(out)
    }

    /// Follows an index entry down to the image manifest for this platform.
    #[allow(clippy::type_complexity)]
    fn select_manifest(
        &self,
        desc: &DescriptorDoc,
        locate: &dyn Fn(&DescriptorDoc, &str) -> Result<Located, Error>,
        extra: &mut Vec<(String, Vec<u8>)>,
        depth: usize,
    ) -> Result<Option<(DescriptorDoc, Vec<u8>)>, Error> {
        if depth > 4 {
            return Err(Error::InvalidDocument {
                what: format!("index {}", desc.digest),
                reason: "indexes nested too deeply".to_string(),
            });
        }
        if !oci::platform_matches(desc.platform.as_ref()) {
            return Ok(None);
        }
        let mt = desc.media_type.as_str();
        if !mt.is_empty() && !oci::is_index_media_type(mt) && !oci::is_manifest_media_type(mt) {
            tracing::debug!(digest = %desc.digest, media_type = mt, "skipping non-image index entry");
            return Ok(None);
        }
        let located = match locate(desc, "index") {
            Ok(l) => l,
            // Archives of multi-platform images usually hold only one platform's content.
            Err(Error::MissingBlob { .. }) if depth > 0 => return Ok(None),
            Err(e) => return Err(e),
        };
        let bytes = read_document(&located.path)?;
        let is_index = if mt.is_empty() {
            serde_json::from_slice::<serde_json::Value>(&bytes)
                .ok()
                .is_some_and(|v| v.get("manifests").is_some())
        } else {
            oci::is_index_media_type(mt)
        };
        if !is_index {
            return Ok(Some((desc.clone(), bytes)));
        }
        let index: IndexDoc = oci::parse(&bytes, &format!("index {}", desc.digest))?;
        extra.push((desc.digest.clone(), bytes));
        for child in &index.manifests {
            let attestation = child
                .annotations
                .as_ref()
                .is_some_and(|a| a.contains_key("vnd.docker.reference.type"));
            if attestation {
                continue;
            }
            if let Some(found) = self.select_manifest(child, locate, extra, depth + 1)? {
                return Ok(Some(found));
            }
        }
        extra.pop();
        Ok(None)
    }

    fn docker_archive_images(
        &self,
        archive_path: &Path,
        staging: &Staging,
    ) -> Result<Vec<PendingImage>, Error> {
        let what = format!("manifest.json of {}", archive_path.display());
        let bytes = staging.read("manifest.json")?.unwrap_or_default();
        let entries: Vec<DockerSaveEntry> = oci::parse(&bytes, &what)?;
        let by_digest: HashMap<&str, &archive::StagedFile> =
            staging.files().map(|f| (f.digest.as_str(), f)).collect();
        let locate = |desc: &DescriptorDoc, needed_by: &str| -> Result<Located, Error> {
            match by_digest.get(desc.digest.as_str()) {
                Some(f) => Ok(Located {
                    path: f.path.clone(),
                    stored: false,
                }),
                None => self.locate_stored(desc, needed_by),
            }
        };
        let mut out = Vec::new();
        for entry in entries {
            let missing = |name: &str| Error::MissingBlob {
                digest: name.to_string(),
                needed_by: what.clone(),
            };
            let config = staging
                .get(&entry.config)
                .ok_or_else(|| missing(&entry.config))?;
            let mut layers = Vec::new();
            let mut any_zstd = false;
            for name in &entry.layers {
                let f = staging.get(name).ok_or_else(|| missing(name))?;
                let mut r = BufReader::new(
                    File::open(&f.path).ctx(|| format!("opening {}", f.path.display()))?,
                );
                let media_type = match compress::sniff(&mut r)
                    .ctx(|| format!("reading {}", f.path.display()))?
                {
                    compress::Compression::None => oci::MEDIA_DOCKER_LAYER,
                    compress::Compression::Gzip => oci::MEDIA_DOCKER_LAYER_GZIP,
                    compress::Compression::Zstd => {
                        any_zstd = true;
                        oci::MEDIA_OCI_LAYER_ZSTD
                    }
                };
                layers.push(DescriptorDoc {
                    media_type: media_type.to_string(),
                    digest: f.digest.clone(),
                    size: f.size,
                    ..DescriptorDoc::default()
                });
            }
            // docker save has no manifest: make the one a registry would serve.
            let manifest = if any_zstd {
                ManifestDoc {
                    schema_version: 2,
                    media_type: Some(oci::MEDIA_OCI_MANIFEST.to_string()),
                    config: DescriptorDoc {
                        media_type: oci::MEDIA_OCI_CONFIG.to_string(),
                        digest: config.digest.clone(),
                        size: config.size,
                        ..DescriptorDoc::default()
                    },
                    layers: layers
                        .into_iter()
                        .map(|mut l| {
                            l.media_type = match l.media_type.as_str() {
                                oci::MEDIA_DOCKER_LAYER => oci::MEDIA_OCI_LAYER.to_string(),
                                oci::MEDIA_DOCKER_LAYER_GZIP => {
                                    oci::MEDIA_OCI_LAYER_GZIP.to_string()
                                }
                                other => other.to_string(),
                            };
                            l
                        })
                        .collect(),
                }
            } else {
                ManifestDoc {
                    schema_version: 2,
                    media_type: Some(oci::MEDIA_DOCKER_MANIFEST.to_string()),
                    config: DescriptorDoc {
                        media_type: oci::MEDIA_DOCKER_CONFIG.to_string(),
                        digest: config.digest.clone(),
                        size: config.size,
                        ..DescriptorDoc::default()
                    },
                    layers,
                }
            };
            let mbytes = serde_json::to_vec(&manifest)
                .map_err(|e| Error::io("encoding manifest", io::Error::other(e)))?;
            let mdigest = sha256_digest(&mbytes);
            let mut p = self.prepare_image(mbytes, mdigest.clone(), &locate)?;
            p.target_digest = mdigest;
            for tag in entry.repo_tags.unwrap_or_default() {
                match normalize_reference(&tag) {
                    Ok(r) => p.names.push(r),
                    Err(e) => {
                        tracing::warn!(archive = %archive_path.display(), tag, error = %e, "ignoring invalid RepoTag")
                    }
                }
            }
            out.push(p);
        }
        Ok(out)
    }

    fn locate_stored(&self, desc: &DescriptorDoc, needed_by: &str) -> Result<Located, Error> {
        let path = self.blob_path(&desc.digest)?;
        if path.is_file() {
            Ok(Located { path, stored: true })
        } else {
            Err(Error::MissingBlob {
                digest: desc.digest.clone(),
                needed_by: needed_by.to_string(),
            })
        }
    }

    /// Parses and verifies a manifest, its config and its layers (digests, sizes, diff
    /// ids) without storing anything.
    fn prepare_image(
        &self,
        manifest_bytes: Vec<u8>,
        manifest_digest: String,
        locate: &dyn Fn(&DescriptorDoc, &str) -> Result<Located, Error>,
    ) -> Result<PendingImage, Error> {
        let mwhat = format!("manifest {manifest_digest}");
        let manifest: ManifestDoc = oci::parse(&manifest_bytes, &mwhat)?;
        if let Some(mt) = &manifest.media_type {
            if !oci::is_manifest_media_type(mt) {
                return Err(Error::UnsupportedMediaType {
                    what: mwhat,
                    media_type: mt.clone(),
                });
            }
        }
        if !oci::is_config_media_type(&manifest.config.media_type) {
            return Err(Error::UnsupportedMediaType {
                what: format!("config of {mwhat}"),
                media_type: manifest.config.media_type.clone(),
            });
        }
        digest_hex(&manifest.config.digest)?;
        let cloc = locate(&manifest.config, &mwhat)?;
        let config_bytes = read_document(&cloc.path)?;
        let actual = sha256_digest(&config_bytes);
        if actual != manifest.config.digest {
            return Err(Error::DigestMismatch {
                what: format!("config of {mwhat}"),
                expected: manifest.config.digest.clone(),
                actual,
            });
        }
        let cwhat = format!("image config {}", manifest.config.digest);
        let config: ConfigDoc = oci::parse(&config_bytes, &cwhat)?;
        if !config.os.is_empty() && config.os != "linux" {
            return Err(Error::InvalidDocument {
                what: cwhat,
                reason: format!(
                    "image is built for os {:?}, this node runs linux",
                    config.os
                ),
            });
        }
        let host_arch = oci::host_platform().1;
        if !config.architecture.is_empty() && config.architecture != host_arch {
            tracing::warn!(config = %manifest.config.digest, architecture = %config.architecture, node = %host_arch, "image is built for another architecture");
        }
        let rootfs = config
            .rootfs
            .as_ref()
            .ok_or_else(|| Error::InvalidDocument {
                what: cwhat.clone(),
                reason: "no rootfs".to_string(),
            })?;
        if !rootfs.kind.is_empty() && rootfs.kind != "layers" {
            return Err(Error::InvalidDocument {
                what: cwhat,
                reason: format!("rootfs type {:?} is not \"layers\"", rootfs.kind),
            });
        }
        let diff_ids = rootfs.diff_ids.clone();
        if diff_ids.len() != manifest.layers.len() {
            return Err(Error::InvalidDocument {
                what: cwhat,
                reason: format!(
                    "config lists {} diff ids but the manifest has {} layers",
                    diff_ids.len(),
                    manifest.layers.len()
                ),
            });
        }
        for d in &diff_ids {
            digest_hex(d)?;
        }
        let chains = chain_ids(&diff_ids);
        let known = self
            .load_meta()
            .map(|m| known_diff_ids(&m))
            .unwrap_or_default();
        let mut layers = Vec::new();
        for ((desc, diff_id), chain_id) in manifest.layers.iter().zip(&diff_ids).zip(chains) {
            if !oci::is_layer_media_type(&desc.media_type) {
                return Err(Error::UnsupportedMediaType {
                    what: format!("layer {} of {mwhat}", desc.digest),
                    media_type: desc.media_type.clone(),
                });
            }
            digest_hex(&desc.digest)?;
            let loc = locate(desc, &mwhat)?;
            let already_verified = loc.stored && known.get(&desc.digest) == Some(diff_id);
            if !already_verified {
                let file =
                    File::open(&loc.path).ctx(|| format!("opening {}", loc.path.display()))?;
                let reader = compress::decompress(BufReader::with_capacity(256 << 10, file))
                    .ctx(|| format!("reading layer {}", desc.digest))?;
                let mut hashing = HashingReader::new(reader);
                unpack::scan_layer(&mut hashing, &desc.digest)?;
                let (actual, _) = hashing.finish().map_err(|e| Error::InvalidLayer {
                    layer: desc.digest.clone(),
                    reason: format!("decompressing: {e}"),
                })?;
                if &actual != diff_id {
                    return Err(Error::DigestMismatch {
                        what: format!("uncompressed content (diff id) of layer {}", desc.digest),
                        expected: diff_id.clone(),
                        actual,
                    });
                }
            }
            layers.push(PendingLayer {
                record: LayerRecord {
                    digest: desc.digest.clone(),
                    media_type: desc.media_type.clone(),
                    size: desc.size,
                    diff_id: diff_id.clone(),
                    chain_id,
                },
                source: (!loc.stored).then_some(loc.path),
            });
        }
        Ok(PendingImage {
            config: config.image_config(),
            manifest_digest: manifest_digest.clone(),
            manifest_bytes,
            config_digest: manifest.config.digest.clone(),
            config_bytes,
            layers,
            extra_blobs: Vec::new(),
            target_digest: manifest_digest,
            names: Vec::new(),
        })
    }

    /// Adds one image whose manifest, config and layer contents come from elsewhere (a
    /// registry pull): the same verification and recording path as `import`. `layers`
    /// must provide every layer of the manifest that is not already stored (see
    /// [`has_blob`](Self::has_blob)); `names` are references such as
    /// `docker.io/library/busybox:1.36` and `docker.io/library/busybox@sha256:<index digest>`.
    pub fn add_image(
        &self,
        manifest: &[u8],
        config: &[u8],
        layers: Vec<(oci_spec::image::Descriptor, Box<dyn Read + Send>)>,
        names: &[String],
    ) -> Result<Image, Error> {
        let refs = names
            .iter()
            .map(|n| normalize_reference(n))
            .collect::<Result<Vec<_>, _>>()?;
        let mut staging = Staging::new(&self.tmp_dir())?;
        let config_staged = staging.stage(&mut &config[..], None)?;
        let mut staged: HashMap<String, PathBuf> = HashMap::new();
        staged.insert(config_staged.digest.clone(), config_staged.path.clone());
        for (desc, mut reader) in layers {
            let digest = desc.digest().to_string();
            digest_hex(&digest)?;
            let f = staging.stage(&mut reader, None).map_err(|e| match e {
                Error::Io { context, source } => {
                    Error::io(format!("{context} (layer {digest})"), source)
                }
                other => other,
            })?;
            if f.digest != digest {
                return Err(Error::DigestMismatch {
                    what: format!("layer {digest}"),
                    expected: digest,
                    actual: f.digest,
                });
            }
            if f.size != desc.size() {
                return Err(Error::SizeMismatch {
                    what: format!("layer {digest}"),
                    expected: desc.size(),
                    actual: f.size,
                });
            }
            staged.insert(digest, f.path);
        }
        let image = self.add_staged(manifest.to_vec(), &staged, Vec::new(), None, refs)?;
        drop(staging);
        Ok(image)
    }

    /// Verifies and records one image whose blobs not yet in the store are in `staged`
    /// (digest -> file already checked against the digest). `extra_blobs` are documents
    /// that led to the manifest (an index), `target` the digest the names resolve to
    /// (the index's when there is one; the manifest's by default).
    pub(crate) fn add_staged(
        &self,
        manifest: Vec<u8>,
        staged: &HashMap<String, PathBuf>,
        extra_blobs: Vec<(String, Vec<u8>)>,
        target: Option<String>,
        names: Vec<Reference>,
    ) -> Result<Image, Error> {
        let locate = |desc: &DescriptorDoc, needed_by: &str| -> Result<Located, Error> {
            match staged.get(&desc.digest) {
                Some(p) => Ok(Located {
                    path: p.clone(),
                    stored: false,
                }),
                None => self.locate_stored(desc, needed_by),
            }
        };
        let manifest_digest = sha256_digest(&manifest);
        let mut p = self.prepare_image(manifest, manifest_digest, &locate)?;
        if let Some(t) = target {
            p.target_digest = t;
        }
        p.extra_blobs = extra_blobs;
        p.names = names;
        self.commit(vec![p])?
            .pop()
            .ok_or_else(|| Error::NotFound("added image".to_string()))
    }

    /// Moves verified content into the store and records the images.
    fn commit(&self, pending: Vec<PendingImage>) -> Result<Vec<Image>, Error> {
        let _lock = self.lock()?;
        let mut meta = self.load_meta()?;
        let now = now_nanos();
        let mut ids: Vec<String> = Vec::new();
        for p in pending {
            self.store_bytes(&p.config_digest, &p.config_bytes)?;
            self.store_bytes(&p.manifest_digest, &p.manifest_bytes)?;
            for (d, b) in &p.extra_blobs {
                self.store_bytes(d, b)?;
            }
            let exists = meta.images.contains_key(&p.config_digest);
            if !exists {
                for l in &p.layers {
                    if let Some(src) = &l.source {
                        self.store_file(&l.record.digest, src)?;
                    }
                }
            }
            archive::sync_dir(&self.blobs_dir())?;
            let id = p.config_digest.clone();
            let rec = meta
                .images
                .entry(id.clone())
                .or_insert_with(|| ImageRecord {
                    id: id.clone(),
                    repo_tags: BTreeSet::new(),
                    repo_digests: BTreeSet::new(),
                    manifest_digest: p.manifest_digest.clone(),
                    target_digests: BTreeSet::new(),
                    extra_blobs: BTreeSet::new(),
                    config_size: p.config_bytes.len() as u64,
                    size: p.config_bytes.len() as u64
                        + p.layers.iter().map(|l| l.record.size).sum::<u64>(),
                    layers: p.layers.iter().map(|l| l.record.clone()).collect(),
                    config: p.config.clone(),
                    first_seen: now,
                    last_used: None,
                });
            rec.target_digests.insert(p.manifest_digest.clone());
            rec.target_digests.insert(p.target_digest.clone());
            if rec.manifest_digest != p.manifest_digest {
                rec.extra_blobs.insert(p.manifest_digest.clone());
            }
            rec.extra_blobs
                .extend(p.extra_blobs.iter().map(|(d, _)| d.clone()));
            apply_names(&mut meta, &id, &p.names, &p.target_digest);
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        self.save_meta(&meta)?;
        Ok(ids
            .iter()
            .filter_map(|id| meta.images.get(id))
            .map(ImageRecord::image)
            .collect())
    }

    fn store_bytes(&self, digest: &str, data: &[u8]) -> Result<(), Error> {
        let path = self.blob_path(digest)?;
        if path.is_file() {
            return Ok(());
        }
        archive::write_atomic(&path, data)
    }

    fn store_file(&self, digest: &str, src: &Path) -> Result<(), Error> {
        let path = self.blob_path(digest)?;
        if path.is_file() {
            return Ok(());
        }
        match fs::rename(src, &path) {
            Ok(()) => Ok(()),
            // The same staged file was already moved for another image of this import.
            Err(e) if e.kind() == io::ErrorKind::NotFound && path.is_file() => Ok(()),
            Err(e) => Err(Error::io(
                format!("moving {} to {}", src.display(), path.display()),
                e,
            )),
        }
    }

    /// Imports each archive in `dir` (`*.tar`, `*.tar.gz`, `*.tgz`, `*.tar.zst`, `*.oci`)
    /// in name order, skipping archives whose size and mtime are unchanged since they
    /// were imported, as long as the images they held are still present. Returns the
    /// images imported by this call. An archive that fails to import is logged and
    /// skipped (and retried next time); a missing `dir` imports nothing.
    pub fn import_dir(&self, dir: &Path) -> Result<Vec<Image>, Error> {
        let entries = match fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io(format!("reading directory {}", dir.display()), e)),
        };
        let mut archives: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                let name = p
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                ARCHIVE_SUFFIXES.iter().any(|s| name.ends_with(s)) && p.is_file()
            })
            .collect();
        archives.sort();
        let mut out = Vec::new();
        for path in archives {
            let md = fs::metadata(&path).ctx(|| format!("inspecting {}", path.display()))?;
            let key = fs::canonicalize(&path)
                .unwrap_or_else(|_| path.clone())
                .to_string_lossy()
                .into_owned();
            let mtime_ns = md
                .mtime()
                .saturating_mul(1_000_000_000)
                .saturating_add(md.mtime_nsec());
            let unchanged = {
                let meta = self.load_meta()?;
                meta.imports.get(&key).is_some_and(|r| {
                    r.size == md.len()
                        && r.mtime_ns == mtime_ns
                        && r.ids.iter().all(|id| meta.images.contains_key(id))
                })
            };
            if unchanged {
                tracing::debug!(archive = %path.display(), "archive unchanged since last import; skipping");
                continue;
            }
            match self.import(&path) {
                Ok(images) => {
                    let _lock = self.lock()?;
                    let mut meta = self.load_meta()?;
                    meta.imports.insert(
                        key,
                        ImportRecord {
                            size: md.len(),
                            mtime_ns,
                            ids: images.iter().map(|i| i.id.clone()).collect(),
                        },
                    );
                    self.save_meta(&meta)?;
                    out.extend(images);
                }
                Err(e) => {
                    tracing::warn!(archive = %path.display(), error = %e, "failed to import image archive");
                }
            }
        }
        Ok(out)
    }
}

/// Layer digest -> diff id of every layer already recorded (and so verified).
fn known_diff_ids(meta: &Meta) -> HashMap<String, String> {
    meta.images
        .values()
        .flat_map(|r| {
            r.layers
                .iter()
                .map(|l| (l.digest.clone(), l.diff_id.clone()))
        })
        .collect()
}

/// Image names from an OCI index entry: containerd's full-name annotation, else the
/// OCI ref name when it is a full reference (contains `/`, `:` or `@`; a bare tag gives
/// no repository, as in containerd).
fn names_from_annotations(ann: Option<&BTreeMap<String, String>>) -> Vec<Reference> {
    let Some(ann) = ann else { return Vec::new() };
    let candidate = ann.get(oci::ANNOTATION_CONTAINERD_NAME).or_else(|| {
        ann.get(oci::ANNOTATION_REF_NAME)
            .filter(|r| r.contains(['/', ':', '@']))
    });
    match candidate.map(|n| normalize_reference(n)) {
        Some(Ok(r)) => vec![r],
        Some(Err(e)) => {
            tracing::warn!(error = %e, "ignoring invalid image name annotation");
            Vec::new()
        }
        None => Vec::new(),
    }
}

/// Gives image `id` the names `names` (moving tags from other images). Tags also get a
/// repo digest `<repo>@<target>` unless a digest name for the same repository is given.
fn apply_names(meta: &mut Meta, id: &str, names: &[Reference], target: &str) {
    let digest_repos: HashSet<String> = names
        .iter()
        .filter(|r| r.digest.is_some())
        .map(Reference::name)
        .collect();
    for r in names {
        if let Some(tagged) = r.tagged_name() {
            for (other_id, other) in meta.images.iter_mut() {
                if other_id != id && other.repo_tags.remove(&tagged) {
                    tracing::info!(tag = %tagged, from = %other_id, to = %id, "moved tag");
                }
            }
        }
    }
    let Some(rec) = meta.images.get_mut(id) else {
        return;
    };
    for r in names {
        if let Some(d) = &r.digest {
            rec.repo_digests.insert(format!("{}@{d}", r.name()));
            rec.target_digests.insert(d.clone());
        }
        if let Some(tagged) = r.tagged_name() {
            rec.repo_tags.insert(tagged);
            if !digest_repos.contains(&r.name()) {
                rec.repo_digests.insert(format!("{}@{target}", r.name()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_from_index_annotations() {
        let mut a = BTreeMap::new();
        a.insert(oci::ANNOTATION_REF_NAME.to_string(), "latest".to_string());
        assert!(names_from_annotations(Some(&a)).is_empty());
        a.insert(
            oci::ANNOTATION_REF_NAME.to_string(),
            "busybox:1".to_string(),
        );
        assert_eq!(
            names_from_annotations(Some(&a))[0].to_string(),
            "docker.io/library/busybox:1"
        );
        a.insert(
            oci::ANNOTATION_CONTAINERD_NAME.to_string(),
            "quay.io/x/y:2".to_string(),
        );
        assert_eq!(
            names_from_annotations(Some(&a))[0].to_string(),
            "quay.io/x/y:2"
        );
        assert!(names_from_annotations(None).is_empty());
    }
}
