//! Pulling images from OCI / Docker registries (distribution API v2) as containerd does
//! for the kubelet: the reference is resolved to a manifest (an index or manifest list
//! is narrowed to the node's platform), blobs the store lacks are downloaded into
//! staging while their size and digest are checked, and the image is then verified and
//! recorded through the same path as archive imports. Failures carry containerd's
//! message shapes and a kind (not found, unauthorized, network, other). Concurrent pulls
//! of one reference with the same options share a single download.

use std::collections::{HashMap, HashSet};
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::{DigestError, OciDistributionError, OciEnvelope, OciErrorCode};
use oci_client::manifest::OciDescriptor;
use oci_client::secrets::RegistryAuth as ClientAuth;
use tokio::sync::OnceCell;

use super::ImageStore;
use crate::archive::{Staging, MAX_DOCUMENT};
use crate::auth::{credentials_for, RegistryAuth};
use crate::digest::{digest_hex, sha256_digest, HashingWriter};
use crate::error::{PullError, PullErrorKind};
use crate::oci::{self, DescriptorDoc, IndexDoc, ManifestDoc, PlatformDoc};
use crate::reference::{normalize_reference, Reference, DEFAULT_REGISTRY};
use crate::{Error, Image};

/// Host serving the registry API for `docker.io` references.
const DOCKER_HUB_HOST: &str = "registry-1.docker.io";
/// Manifest media types asked for, in containerd's order of preference.
const MANIFEST_TYPES: &[&str] = &[
    oci::MEDIA_DOCKER_MANIFEST,
    oci::MEDIA_DOCKER_LIST,
    oci::MEDIA_OCI_MANIFEST,
    oci::MEDIA_OCI_INDEX,
];
/// Blobs downloaded at once (containerd's default max_concurrent_downloads).
const MAX_CONCURRENT_DOWNLOADS: usize = 3;
/// Indexes nested deeper than this are refused.
const MAX_INDEX_DEPTH: usize = 4;
const USER_AGENT: &str = "ferrokube-kubelet";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// A transfer making no progress for this long fails (kubelet's former
/// image-pull-progress-deadline).
const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// How to pull: credentials, registries reached over plain HTTP, and the platform to
/// pick from multi-platform images.
#[derive(Clone, Debug)]
pub struct PullOptions {
    /// Candidate credentials, e.g. from [`auths_from_docker_config`](crate::auths_from_docker_config)
    /// of the pod's pull secrets. Those whose key matches the image's repository (as the
    /// kubelet's keyring matches) are tried in the given order; the pull is anonymous
    /// only when none matches.
    pub auth: Vec<RegistryAuth>,
    /// Registry hosts (`127.0.0.1:5000`, `registry.local`) reached over plain HTTP.
    /// Loopback hosts (`localhost`, `127.0.0.0/8`, `[::1]`) always are, as in containerd's
    /// CRI plugin.
    pub insecure_registries: Vec<String>,
    /// `(os, architecture)` to select from an index, e.g. `("linux", "amd64")`; an
    /// architecture may carry a variant (`arm/v7`). Defaults to this node's platform.
    pub platform: (String, String),
}

impl Default for PullOptions {
    fn default() -> Self {
        let (os, arch, _) = oci::host_platform();
        PullOptions {
            auth: Vec::new(),
            insecure_registries: Vec::new(),
            platform: (os, arch),
        }
    }
}

type Outcome = Result<Image, PullError>;

/// Pulls in progress, by reference and options.
#[derive(Default)]
pub(crate) struct InFlight(Mutex<HashMap<String, Arc<OnceCell<Outcome>>>>);

impl ImageStore {
    /// Pulls `reference` (`busybox`, `registry:5000/x/y:tag`, `name@sha256:...`) from its
    /// registry: resolves it to a manifest (choosing the `opts.platform` manifest of an
    /// index or manifest list), downloads the config and layers the store does not hold
    /// yet while checking each blob's size and digest, then verifies and records the image
    /// like an import (layers against the config's diff ids; nothing is stored when any
    /// check fails). The image is named by the normalised reference, and gets the repo
    /// digest `<repository>@<digest the registry served for the reference>`.
    ///
    /// Concurrent calls for the same reference and options share one download and its
    /// outcome. Errors are [`Error::InvalidReference`] or [`Error::Pull`] (see
    /// [`Error::is_not_found`] and [`Error::is_unauthorized`]).
    pub async fn pull(&self, reference: &str, opts: &PullOptions) -> Result<Image, Error> {
        let r = normalize_reference(reference)?;
        let plain_http = uses_plain_http(&r.registry, &opts.insecure_registries);
        let creds = credentials_for(&opts.auth, &r.name());
        let key = dedupe_key(&r, opts, plain_http, &creds);
        let cell = {
            let mut map = self.pulls.0.lock().unwrap_or_else(PoisonError::into_inner);
            map.entry(key.clone()).or_default().clone()
        };
        let outcome = cell
            .get_or_init(|| self.pull_with_credentials(&r, opts, plain_http, &creds))
            .await
            .clone();
        {
            let mut map = self.pulls.0.lock().unwrap_or_else(PoisonError::into_inner);
            if map.get(&key).is_some_and(|c| Arc::ptr_eq(c, &cell)) {
                map.remove(&key);
            }
        }
        outcome.map_err(Error::Pull)
    }

    /// Tries each matching credential in turn (anonymous when there is none), as the
    /// kubelet does; the errors of all attempts are reported together.
    async fn pull_with_credentials(
        &self,
        r: &Reference,
        opts: &PullOptions,
        plain_http: bool,
        creds: &[&RegistryAuth],
    ) -> Outcome {
        if creds.is_empty() {
            return self.pull_once(r, opts, plain_http, None).await;
        }
        let mut errors = Vec::new();
        for cred in creds {
            match self.pull_once(r, opts, plain_http, Some(cred)).await {
                Ok(image) => return Ok(image),
                Err(e) => {
                    tracing::info!(image = %r, registry_key = %cred.registry, error = %e, "pull with credentials failed");
                    errors.push(e);
                }
            }
        }
        Err(aggregate(errors))
    }

    async fn pull_once(
        &self,
        r: &Reference,
        opts: &PullOptions,
        plain_http: bool,
        cred: Option<&RegistryAuth>,
    ) -> Outcome {
        let session = Session::new(r, plain_http, cred)?;
        let started = std::time::Instant::now();

        // Resolve the reference.
        let top = session
            .fetch_manifest(&session.oref)
            .await
            .map_err(|e| session.resolve_error(&e))?;
        let top_digest = sha256_digest(&top);
        if let Some(want) = &r.digest {
            if *want != top_digest {
                return Err(session.fail(
                    PullErrorKind::Other,
                    format!(
                        "failed to resolve reference \"{}\": {}",
                        session.image,
                        Error::DigestMismatch {
                            what: format!("manifest {want}"),
                            expected: want.clone(),
                            actual: top_digest,
                        }
                    ),
                ));
            }
        }

        // Narrow indexes down to the platform's manifest.
        let mut extra_blobs = Vec::new();
        let mut doc = top;
        let mut doc_digest = top_digest.clone();
        let mut depth = 0;
        let manifest = loop {
            match document_kind(&doc).map_err(|m| session.fail(PullErrorKind::Other, m))? {
                DocKind::Manifest => break doc,
                DocKind::Index => {
                    depth += 1;
                    if depth > MAX_INDEX_DEPTH {
                        return Err(session.fail(
                            PullErrorKind::Other,
                            format!("index {doc_digest}: indexes nested too deeply"),
                        ));
                    }
                    let index: IndexDoc = oci::parse(&doc, &format!("index {doc_digest}"))
                        .map_err(|e| session.fail(PullErrorKind::Other, e.to_string()))?;
                    let (os, arch) = &opts.platform;
                    let Some(child) = select_platform(&index, os, arch).cloned() else {
                        return Err(session.fail(
                            PullErrorKind::NotFound,
                            "no match for platform in manifest: not found".to_string(),
                        ));
                    };
                    extra_blobs.push((doc_digest, doc));
                    doc = session.fetch_child_manifest(&child).await?;
                    doc_digest = child.digest;
                }
            }
        };

        // Download what the store lacks.
        let parsed: ManifestDoc = oci::parse(&manifest, &format!("manifest {doc_digest}"))
            .map_err(|e| session.fail(PullErrorKind::Other, e.to_string()))?;
        let mut wanted: Vec<DescriptorDoc> = Vec::new();
        let mut seen = HashSet::new();
        for desc in std::iter::once(&parsed.config).chain(&parsed.layers) {
            digest_hex(&desc.digest)
                .map_err(|e| session.fail(PullErrorKind::Other, e.to_string()))?;
            if seen.insert(desc.digest.clone()) && !self.has_blob(&desc.digest) {
                wanted.push(desc.clone());
            }
        }
        let mut staging = Staging::new(&self.tmp_dir())
            .map_err(|e| session.fail(PullErrorKind::Other, e.to_string()))?;
        let mut jobs = Vec::with_capacity(wanted.len());
        for desc in wanted {
            let (path, file) = staging
                .create_file()
                .map_err(|e| session.fail(PullErrorKind::Other, e.to_string()))?;
            jobs.push((desc, path, file));
        }
        let downloaded: Vec<(String, PathBuf, u64)> = futures::stream::iter(jobs)
            .map(|(desc, path, file)| {
                let session = &session;
                async move {
                    session.download_blob(&desc, file).await?;
                    Ok::<_, PullError>((desc.digest.clone(), path, desc.size))
                }
            })
            .buffer_unordered(MAX_CONCURRENT_DOWNLOADS)
            .try_collect()
            .await?;
        let bytes: u64 = downloaded.iter().map(|(_, _, size)| size).sum();
        let staged: HashMap<String, PathBuf> = downloaded
            .into_iter()
            .map(|(digest, path, _)| (digest, path))
            .collect();

        // Verify (diff ids, layer contents) and record, like an import.
        let image = blocking(|| {
            self.add_staged(
                manifest,
                &staged,
                extra_blobs,
                Some(top_digest),
                vec![r.clone()],
            )
        })
        .map_err(|e| session.fail(PullErrorKind::Other, e.to_string()))?;
        drop(staging);
        tracing::info!(image = %r, id = %image.id, downloaded_bytes = bytes, blobs = staged.len(), elapsed = ?started.elapsed(), "pulled image");
        Ok(image)
    }
}

/// One attempt at pulling one reference with one set of credentials.
struct Session {
    client: oci_client::Client,
    auth: ClientAuth,
    oref: oci_client::Reference,
    /// Host contacted, e.g. `registry-1.docker.io` for docker.io.
    host: String,
    scheme: &'static str,
    repository: String,
    /// The normalised reference, as messages name it.
    image: String,
}

impl Session {
    fn new(
        r: &Reference,
        plain_http: bool,
        cred: Option<&RegistryAuth>,
    ) -> Result<Session, PullError> {
        let image = r.to_string();
        let host = if r.registry == DEFAULT_REGISTRY {
            DOCKER_HUB_HOST.to_string()
        } else {
            r.registry.clone()
        };
        let oref = match (&r.digest, &r.tag) {
            (Some(d), _) => {
                oci_client::Reference::with_digest(host.clone(), r.repository.clone(), d.clone())
            }
            (None, tag) => oci_client::Reference::with_tag(
                host.clone(),
                r.repository.clone(),
                tag.clone()
                    .unwrap_or_else(|| crate::reference::DEFAULT_TAG.to_string()),
            ),
        };
        let config = ClientConfig {
            protocol: if plain_http {
                ClientProtocol::Http
            } else {
                ClientProtocol::Https
            },
            platform_resolver: None,
            connect_timeout: Some(CONNECT_TIMEOUT),
            read_timeout: Some(READ_TIMEOUT),
            user_agent: USER_AGENT,
            ..ClientConfig::default()
        };
        let client = oci_client::Client::try_from(config).map_err(|e| PullError {
            kind: PullErrorKind::Other,
            message: format!(
                "failed to pull and unpack image \"{image}\": creating registry client: {e}"
            ),
        })?;
        let auth = match cred {
            Some(c) if !c.username.is_empty() || !c.password.is_empty() => {
                ClientAuth::Basic(c.username.clone(), c.password.clone())
            }
            _ => ClientAuth::Anonymous,
        };
        Ok(Session {
            client,
            auth,
            oref,
            host,
            scheme: if plain_http { "http" } else { "https" },
            repository: r.repository.clone(),
            image,
        })
    }

    /// `failed to pull and unpack image "<image>": <detail>`.
    fn fail(&self, kind: PullErrorKind, detail: String) -> PullError {
        PullError {
            kind,
            message: format!(
                "failed to pull and unpack image \"{}\": {detail}",
                self.image
            ),
        }
    }

    fn url(&self, kind: &str, digest: &str) -> String {
        format!(
            "{}://{}/v2/{}/{kind}/{digest}",
            self.scheme, self.host, self.repository
        )
    }

    async fn fetch_manifest(
        &self,
        oref: &oci_client::Reference,
    ) -> Result<Vec<u8>, OciDistributionError> {
        let (body, _) = self
            .client
            .pull_manifest_raw(oref, &self.auth, MANIFEST_TYPES)
            .await?;
        Ok(body.to_vec())
    }

    /// Error for a failed manifest request for the reference itself.
    fn resolve_error(&self, e: &OciDistributionError) -> PullError {
        let object = self
            .oref
            .digest()
            .or(self.oref.tag())
            .unwrap_or(crate::reference::DEFAULT_TAG);
        let (kind, detail) = match classify(e) {
            Failure::Status(404) => (
                PullErrorKind::NotFound,
                format!("{}: not found", self.image),
            ),
            Failure::Status(code) => (
                status_kind(code),
                format!(
                    "pulling from host {} failed with status code [manifests {object}]: {}",
                    self.host,
                    status_text(code)
                ),
            ),
            Failure::Message(kind, m) => (kind, m),
        };
        self.fail(
            kind,
            format!("failed to resolve reference \"{}\": {detail}", self.image),
        )
    }

    /// Error for a failed download of a blob or a platform manifest.
    fn copy_error(&self, url: &str, e: &OciDistributionError) -> PullError {
        match classify(e) {
            Failure::Status(404) => self.fail(
                PullErrorKind::NotFound,
                format!("failed to copy: httpReadSeeker: failed open: content at {url} not found: not found"),
            ),
            Failure::Status(code) => self.fail(
                status_kind(code),
                format!(
                    "failed to copy: httpReadSeeker: failed open: unexpected status code {url}: {}",
                    status_text(code)
                ),
            ),
            Failure::Message(kind, m) => self.fail(kind, format!("failed to copy: {m}")),
        }
    }

    /// Fetches the manifest an index entry points to, checking its size and digest.
    async fn fetch_child_manifest(&self, desc: &DescriptorDoc) -> Result<Vec<u8>, PullError> {
        digest_hex(&desc.digest).map_err(|e| self.fail(PullErrorKind::Other, e.to_string()))?;
        let url = self.url("manifests", &desc.digest);
        if desc.size > MAX_DOCUMENT {
            return Err(self.fail(
                PullErrorKind::Other,
                format!(
                    "manifest {} is larger than {MAX_DOCUMENT} bytes",
                    desc.digest
                ),
            ));
        }
        let body = self
            .fetch_manifest(&self.oref.clone_with_digest(desc.digest.clone()))
            .await
            .map_err(|e| self.copy_error(&url, &e))?;
        check_content(&body, desc)
            .map_err(|e| self.fail(PullErrorKind::Other, format!("failed to copy: {e}")))?;
        Ok(body)
    }

    /// Streams one blob into `file`, refusing more bytes than its descriptor announces
    /// and content with another digest.
    async fn download_blob(
        &self,
        desc: &DescriptorDoc,
        file: std::fs::File,
    ) -> Result<(), PullError> {
        let url = self.url("blobs", &desc.digest);
        let local = |e: Error| self.fail(PullErrorKind::Other, format!("failed to copy: {e}"));
        let request = OciDescriptor {
            media_type: desc.media_type.clone(),
            digest: desc.digest.clone(),
            size: i64::try_from(desc.size).unwrap_or(i64::MAX),
            ..OciDescriptor::default()
        };
        let mut stream = self
            .client
            .pull_blob_stream(&self.oref, &request)
            .await
            .map_err(|e| self.copy_error(&url, &e))?;
        let mut w = HashingWriter::new(BufWriter::with_capacity(256 << 10, file));
        let mut received: u64 = 0;
        while let Some(chunk) = stream.next().await {
            let chunk = match chunk {
                Ok(c) => c,
                // The client's own digest check at the end of the stream: report the
                // mismatch from our hash below instead.
                Err(e) if e.get_ref().is_some_and(|i| i.is::<DigestError>()) => break,
                Err(e) => {
                    return Err(self.fail(
                        PullErrorKind::Network,
                        format!("failed to copy: read {url}: {}", error_chain(&e)),
                    ))
                }
            };
            received += chunk.len() as u64;
            if received > desc.size {
                return Err(local(Error::SizeMismatch {
                    what: format!("blob {} from {url}", desc.digest),
                    expected: desc.size,
                    actual: received,
                }));
            }
            w.write_all(&chunk)
                .map_err(|e| local(Error::io(format!("writing blob {}", desc.digest), e)))?;
        }
        let (buf, digest, size) = w.finish();
        let file = buf.into_inner().map_err(|e| {
            local(Error::io(
                format!("writing blob {}", desc.digest),
                e.into_error(),
            ))
        })?;
        blocking(|| file.sync_all())
            .map_err(|e| local(Error::io(format!("syncing blob {}", desc.digest), e)))?;
        if size != desc.size {
            return Err(local(Error::SizeMismatch {
                what: format!("blob {} from {url}", desc.digest),
                expected: desc.size,
                actual: size,
            }));
        }
        if digest != desc.digest {
            return Err(local(Error::DigestMismatch {
                what: format!("blob from {url}"),
                expected: desc.digest.clone(),
                actual: digest,
            }));
        }
        Ok(())
    }
}

/// Checks a fetched document against its descriptor.
fn check_content(body: &[u8], desc: &DescriptorDoc) -> Result<(), Error> {
    if body.len() as u64 != desc.size {
        return Err(Error::SizeMismatch {
            what: format!("manifest {}", desc.digest),
            expected: desc.size,
            actual: body.len() as u64,
        });
    }
    let actual = sha256_digest(body);
    if actual != desc.digest {
        return Err(Error::DigestMismatch {
            what: format!("manifest {}", desc.digest),
            expected: desc.digest.clone(),
            actual,
        });
    }
    Ok(())
}

enum DocKind {
    Index,
    Manifest,
}

/// Whether a fetched document is an index or an image manifest.
fn document_kind(doc: &[u8]) -> Result<DocKind, String> {
    let v: serde_json::Value =
        serde_json::from_slice(doc).map_err(|e| format!("invalid manifest: {e}"))?;
    if v.get("schemaVersion").and_then(|s| s.as_u64()) == Some(1) {
        return Err(
            "Docker image manifest schema 1 is not supported; push the image again with a current client"
                .to_string(),
        );
    }
    match v.get("mediaType").and_then(|m| m.as_str()) {
        Some(mt) if oci::is_index_media_type(mt) => Ok(DocKind::Index),
        Some(mt) if oci::is_manifest_media_type(mt) => Ok(DocKind::Manifest),
        Some(mt) => Err(format!("unsupported manifest media type {mt:?}")),
        None if v.get("manifests").is_some() => Ok(DocKind::Index),
        None if v.get("config").is_some() => Ok(DocKind::Manifest),
        None => Err("invalid manifest: neither an index nor an image manifest".to_string()),
    }
}

/// The first index entry for `os`/`arch` (arch optionally `arch/variant`), skipping
/// attestation manifests and entries of other kinds. Entries without a platform match.
fn select_platform<'a>(index: &'a IndexDoc, os: &str, arch: &str) -> Option<&'a DescriptorDoc> {
    index.manifests.iter().find(|d| {
        let attestation = d
            .annotations
            .as_ref()
            .is_some_and(|a| a.contains_key("vnd.docker.reference.type"));
        let mt = d.media_type.as_str();
        let image_kind =
            mt.is_empty() || oci::is_manifest_media_type(mt) || oci::is_index_media_type(mt);
        !attestation && image_kind && platform_fits(d.platform.as_ref(), os, arch)
    })
}

fn platform_fits(p: Option<&PlatformDoc>, os: &str, arch: &str) -> bool {
    let Some(p) = p else { return true };
    let (arch, want_variant) = match arch.split_once('/') {
        Some((a, v)) => (a, Some(v)),
        None => (arch, None),
    };
    if p.os != os || p.architecture != arch {
        return false;
    }
    let have = p.variant.as_deref().filter(|v| !v.is_empty());
    match (want_variant, have) {
        (Some(w), Some(h)) => w == h,
        // arm64 images are v8 whether or not they say so.
        (Some(w), None) => arch == "arm64" && w == "v8",
        (None, Some(h)) => arch != "arm64" || h == "v8",
        (None, None) => true,
    }
}

/// What a registry error amounts to.
enum Failure {
    /// An HTTP status (from the response or inferred from the error code in the body).
    Status(u16),
    /// No usable status: a message and its kind.
    Message(PullErrorKind, String),
}

fn classify(e: &OciDistributionError) -> Failure {
    match e {
        OciDistributionError::UnauthorizedError { .. } => Failure::Status(401),
        OciDistributionError::ServerError { code, .. } => Failure::Status(*code),
        OciDistributionError::RegistryError { envelope, .. } => {
            Failure::Status(envelope_status(envelope))
        }
        OciDistributionError::RequestError(re) => match re.status() {
            Some(s) => Failure::Status(s.as_u16()),
            None => {
                let url = re.url().map(|u| u.to_string()).unwrap_or_default();
                Failure::Message(
                    PullErrorKind::Network,
                    format!("failed to do request: Get \"{url}\": {}", error_chain(re)),
                )
            }
        },
        OciDistributionError::AuthenticationFailure(reason) => Failure::Message(
            PullErrorKind::Unauthorized,
            format!("failed to fetch oauth token: {reason}"),
        ),
        OciDistributionError::IoError(io) => {
            Failure::Message(PullErrorKind::Network, io.to_string())
        }
        other => Failure::Message(PullErrorKind::Other, other.to_string()),
    }
}

/// The HTTP status a registry error code stands for (the client keeps only the body of
/// 4xx answers that carry one).
fn envelope_status(envelope: &OciEnvelope) -> u16 {
    let code = envelope.errors.first().map(|e| &e.code);
    match code {
        Some(
            OciErrorCode::ManifestUnknown
            | OciErrorCode::NameUnknown
            | OciErrorCode::BlobUnknown
            | OciErrorCode::NotFound,
        ) => 404,
        Some(OciErrorCode::Unauthorized) => 401,
        Some(OciErrorCode::Denied) => 403,
        Some(OciErrorCode::Toomanyrequests) => 429,
        Some(OciErrorCode::Unsupported) => 405,
        _ => 400,
    }
}

fn status_kind(code: u16) -> PullErrorKind {
    match code {
        401 | 403 => PullErrorKind::Unauthorized,
        404 => PullErrorKind::NotFound,
        _ => PullErrorKind::Other,
    }
}

/// `401 Unauthorized`, as Go prints a response status.
fn status_text(code: u16) -> String {
    match http::StatusCode::from_u16(code)
        .ok()
        .and_then(|s| s.canonical_reason())
    {
        Some(reason) => format!("{code} {reason}"),
        None => code.to_string(),
    }
}

/// The causes below an error, joined with `: ` (the error itself when it has none).
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = Vec::new();
    let mut cur = e.source();
    while let Some(s) = cur {
        parts.push(s.to_string());
        cur = s.source();
    }
    if parts.is_empty() {
        e.to_string()
    } else {
        parts.join(": ")
    }
}

/// The errors of several attempts as one, the way the kubelet aggregates them:
/// duplicates dropped, several messages bracketed.
fn aggregate(errors: Vec<PullError>) -> PullError {
    let mut messages: Vec<&str> = Vec::new();
    for e in &errors {
        if !messages.contains(&e.message.as_str()) {
            messages.push(&e.message);
        }
    }
    let kind = match errors.first() {
        Some(first) if errors.iter().all(|e| e.kind == first.kind) => first.kind,
        _ => PullErrorKind::Other,
    };
    let message = if messages.len() == 1 {
        messages[0].to_string()
    } else {
        format!("[{}]", messages.join(", "))
    };
    PullError { kind, message }
}

/// Whether `registry` is reached over plain HTTP: listed as insecure, or a loopback host.
fn uses_plain_http(registry: &str, insecure: &[String]) -> bool {
    let listed = insecure.iter().any(|h| {
        let h = h
            .trim_start_matches("http://")
            .trim_start_matches("https://")
            .trim_end_matches('/');
        h == registry
    });
    listed || is_loopback(registry)
}

fn is_loopback(registry: &str) -> bool {
    let host = if let Some(rest) = registry.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        registry.split(':').next().unwrap_or("")
    };
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Pulls share a download when reference, platform, transport and credentials agree.
fn dedupe_key(
    r: &Reference,
    opts: &PullOptions,
    plain_http: bool,
    creds: &[&RegistryAuth],
) -> String {
    let mut secret = Vec::new();
    for c in creds {
        secret.extend_from_slice(c.username.as_bytes());
        secret.push(0);
        secret.extend_from_slice(c.password.as_bytes());
        secret.push(0);
    }
    format!(
        "{r}|{}/{}|{plain_http}|{}",
        opts.platform.0,
        opts.platform.1,
        sha256_digest(&secret)
    )
}

/// Runs blocking work (hashing, decompression, fsync) without stalling other tasks of a
/// multi-threaded runtime.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
        _ => f(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(kind: PullErrorKind, m: &str) -> PullError {
        PullError {
            kind,
            message: m.to_string(),
        }
    }

    #[test]
    fn docker_hub_is_reached_at_registry_1() {
        let r = normalize_reference("busybox").unwrap();
        let s = Session::new(&r, false, None).unwrap();
        assert_eq!(s.host, "registry-1.docker.io");
        assert_eq!(s.oref.resolve_registry(), "registry-1.docker.io");
        assert_eq!(s.oref.repository(), "library/busybox");
        assert_eq!(
            s.url("blobs", "sha256:00"),
            "https://registry-1.docker.io/v2/library/busybox/blobs/sha256:00"
        );
        let e = s.resolve_error(&OciDistributionError::UnauthorizedError { url: String::new() });
        assert_eq!(e.kind, PullErrorKind::Unauthorized);
        assert_eq!(
            e.message,
            "failed to pull and unpack image \"docker.io/library/busybox:latest\": failed to resolve reference \"docker.io/library/busybox:latest\": pulling from host registry-1.docker.io failed with status code [manifests latest]: 401 Unauthorized"
        );
        let envelope: OciEnvelope = serde_json::from_str(
            r#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#,
        )
        .unwrap();
        let e = s.resolve_error(&OciDistributionError::RegistryError {
            envelope,
            url: String::new(),
        });
        assert_eq!(e.kind, PullErrorKind::NotFound);
        assert_eq!(
            e.message,
            "failed to pull and unpack image \"docker.io/library/busybox:latest\": failed to resolve reference \"docker.io/library/busybox:latest\": docker.io/library/busybox:latest: not found"
        );
        let e = s.resolve_error(&OciDistributionError::ServerError {
            code: 403,
            url: String::new(),
            message: String::new(),
        });
        assert_eq!(e.kind, PullErrorKind::Unauthorized);
        assert!(
            e.message.ends_with("[manifests latest]: 403 Forbidden"),
            "{}",
            e.message
        );
        let e = s.copy_error(
            "https://registry-1.docker.io/v2/library/busybox/blobs/sha256:00",
            &OciDistributionError::ServerError {
                code: 404,
                url: String::new(),
                message: String::new(),
            },
        );
        assert_eq!(e.kind, PullErrorKind::NotFound);
        assert!(e.message.ends_with("failed to copy: httpReadSeeker: failed open: content at https://registry-1.docker.io/v2/library/busybox/blobs/sha256:00 not found: not found"), "{}", e.message);

        let pinned = normalize_reference(&format!("quay.io/a/b:1@{}", sha256_digest(b""))).unwrap();
        let s = Session::new(&pinned, true, None).unwrap();
        assert_eq!(s.oref.digest(), Some(sha256_digest(b"").as_str()));
        assert_eq!(s.url("manifests", "x"), "http://quay.io/v2/a/b/manifests/x");
    }

    #[test]
    fn plain_http_hosts() {
        let insecure = vec![
            "registry.local:5000".to_string(),
            "http://other/".to_string(),
        ];
        assert!(uses_plain_http("registry.local:5000", &insecure));
        assert!(uses_plain_http("other", &insecure));
        assert!(!uses_plain_http("registry.local", &insecure));
        assert!(uses_plain_http("localhost:5000", &[]));
        assert!(uses_plain_http("127.0.0.2:5000", &[]));
        assert!(uses_plain_http("[::1]:5000", &[]));
        assert!(!uses_plain_http("docker.io", &[]));
        assert!(!uses_plain_http("10.0.0.1:5000", &[]));
    }

    #[test]
    fn aggregates_like_the_kubelet() {
        let a = err(PullErrorKind::Unauthorized, "a");
        let b = err(PullErrorKind::NotFound, "b");
        assert_eq!(aggregate(vec![a.clone()]), a);
        assert_eq!(aggregate(vec![a.clone(), a.clone()]), a);
        assert_eq!(
            aggregate(vec![a.clone(), b]),
            err(PullErrorKind::Other, "[a, b]")
        );
    }

    #[test]
    fn platforms() {
        let p = |arch: &str, variant: Option<&str>| PlatformDoc {
            architecture: arch.into(),
            os: "linux".into(),
            variant: variant.map(str::to_string),
        };
        assert!(platform_fits(Some(&p("amd64", None)), "linux", "amd64"));
        assert!(!platform_fits(Some(&p("arm64", None)), "linux", "amd64"));
        assert!(!platform_fits(Some(&p("amd64", None)), "windows", "amd64"));
        assert!(platform_fits(
            Some(&p("arm64", Some("v8"))),
            "linux",
            "arm64"
        ));
        assert!(platform_fits(Some(&p("arm64", None)), "linux", "arm64/v8"));
        assert!(platform_fits(
            Some(&p("arm", Some("v7"))),
            "linux",
            "arm/v7"
        ));
        assert!(!platform_fits(
            Some(&p("arm", Some("v6"))),
            "linux",
            "arm/v7"
        ));
        assert!(platform_fits(None, "linux", "amd64"));
    }

    #[test]
    fn statuses() {
        assert_eq!(status_text(401), "401 Unauthorized");
        assert_eq!(status_text(403), "403 Forbidden");
        assert_eq!(status_text(599), "599");
        assert_eq!(status_kind(403), PullErrorKind::Unauthorized);
        assert_eq!(status_kind(500), PullErrorKind::Other);
    }

    #[test]
    fn document_kinds() {
        assert!(matches!(
            document_kind(br#"{"schemaVersion":2,"manifests":[]}"#),
            Ok(DocKind::Index)
        ));
        assert!(matches!(
            document_kind(
                format!(
                    r#"{{"schemaVersion":2,"mediaType":"{}"}}"#,
                    oci::MEDIA_DOCKER_MANIFEST
                )
                .as_bytes()
            ),
            Ok(DocKind::Manifest)
        ));
        assert!(document_kind(br#"{"schemaVersion":1,"fsLayers":[]}"#).is_err());
        assert!(document_kind(br#"{"schemaVersion":2,"mediaType":"text/plain"}"#).is_err());
    }
}
