//! The JSON documents of OCI and Docker images (index, manifest, config, docker-save
//! manifest.json), parsed leniently into the fields the store uses, plus media types and
//! this node's platform.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{Error, ImageConfig};

/// OCI image index.
pub const MEDIA_OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image manifest.
pub const MEDIA_OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image config.
pub const MEDIA_OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// OCI layer, plain tar.
pub const MEDIA_OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
/// OCI layer, gzip.
pub const MEDIA_OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// OCI layer, zstd.
pub const MEDIA_OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
/// Docker manifest list.
pub const MEDIA_DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker image manifest, schema 2.
pub const MEDIA_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker image config.
pub const MEDIA_DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// Docker layer, gzip.
pub const MEDIA_DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
/// Docker layer, plain tar.
pub const MEDIA_DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar";

/// Annotation with the full image name, written by containerd and docker.
pub const ANNOTATION_CONTAINERD_NAME: &str = "io.containerd.image.name";
/// OCI annotation with the reference name (a tag, or by convention a full name).
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";

/// A content descriptor.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub(crate) struct DescriptorDoc {
    #[serde(default)]
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<PlatformDoc>,
}

/// A platform in an index entry.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub(crate) struct PlatformDoc {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

/// An image index / manifest list.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct IndexDoc {
    #[serde(default)]
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(default)]
    pub manifests: Vec<DescriptorDoc>,
}

/// An image manifest.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ManifestDoc {
    #[serde(default)]
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub config: DescriptorDoc,
    #[serde(default)]
    pub layers: Vec<DescriptorDoc>,
}

/// An image config (the parts the store reads).
#[derive(Clone, Debug, Default, Deserialize)]
pub(crate) struct ConfigDoc {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub config: Option<RunConfigDoc>,
    pub rootfs: Option<RootFsDoc>,
}

/// The `config` object of an image config.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct RunConfigDoc {
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub exposed_ports: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(default)]
    pub env: Option<Vec<String>>,
    #[serde(default)]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default)]
    pub cmd: Option<Vec<String>>,
    #[serde(default)]
    pub working_dir: Option<String>,
    #[serde(default)]
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub stop_signal: Option<String>,
}

/// `rootfs` of an image config.
#[derive(Clone, Debug, Default, Deserialize)]
pub(crate) struct RootFsDoc {
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub diff_ids: Vec<String>,
}

/// One entry of docker save's manifest.json.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct DockerSaveEntry {
    pub config: String,
    #[serde(default)]
    pub repo_tags: Option<Vec<String>>,
    #[serde(default)]
    pub layers: Vec<String>,
}

impl ConfigDoc {
    /// The runtime defaults the kubelet needs.
    pub(crate) fn image_config(&self) -> ImageConfig {
        let c = self.config.clone().unwrap_or_default();
        ImageConfig {
            entrypoint: c.entrypoint.unwrap_or_default(),
            cmd: c.cmd.unwrap_or_default(),
            env: c.env.unwrap_or_default(),
            working_dir: c.working_dir.unwrap_or_default(),
            user: c.user.unwrap_or_default(),
            exposed_ports: c.exposed_ports.unwrap_or_default().into_keys().collect(),
            labels: c.labels.unwrap_or_default(),
            stop_signal: c.stop_signal.filter(|s| !s.is_empty()),
        }
    }
}

/// Parses a JSON document, naming it in errors.
pub(crate) fn parse<'a, T: Deserialize<'a>>(bytes: &'a [u8], what: &str) -> Result<T, Error> {
    serde_json::from_slice(bytes).map_err(|e| Error::InvalidDocument {
        what: what.to_string(),
        reason: e.to_string(),
    })
}

/// True for media types of indexes (OCI index, Docker manifest list).
pub(crate) fn is_index_media_type(mt: &str) -> bool {
    mt == MEDIA_OCI_INDEX || mt == MEDIA_DOCKER_LIST
}

/// True for media types of image manifests.
pub(crate) fn is_manifest_media_type(mt: &str) -> bool {
    mt == MEDIA_OCI_MANIFEST || mt == MEDIA_DOCKER_MANIFEST
}

/// True for media types of image configs (empty means unspecified, accepted).
pub(crate) fn is_config_media_type(mt: &str) -> bool {
    mt.is_empty() || mt == MEDIA_OCI_CONFIG || mt == MEDIA_DOCKER_CONFIG
}

/// True for layer media types this store can unpack (plain, gzip or zstd tar, including
/// the non-distributable / foreign variants); encrypted layers are not.
pub(crate) fn is_layer_media_type(mt: &str) -> bool {
    let known_family = mt.starts_with("application/vnd.oci.image.layer.")
        || mt.starts_with("application/vnd.docker.image.rootfs.");
    known_family && !mt.contains("encrypted")
}

/// This node's platform as Go names it (`os`, `architecture`, `variant`).
pub fn host_platform() -> (String, String, Option<String>) {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "x86" => "386",
        "aarch64" => "arm64",
        "arm" => "arm",
        "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
        "powerpc64" => "ppc64",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        "loongarch64" => "loong64",
        "mips64" => "mips64",
        other => other,
    };
    let variant = match arch {
        "arm64" => Some("v8".to_string()),
        _ => None,
    };
    ("linux".to_string(), arch.to_string(), variant)
}

/// Whether an index entry's platform can run here. Entries without a platform are
/// accepted (single-image layouts often omit it).
pub(crate) fn platform_matches(p: Option<&PlatformDoc>) -> bool {
    let Some(p) = p else { return true };
    let (os, arch, variant) = host_platform();
    if p.os != os || p.architecture != arch {
        return false;
    }
    match (arch.as_str(), p.variant.as_deref(), variant.as_deref()) {
        // arm64 images are v8 whether or not they say so.
        ("arm64", Some(v), _) => v == "v8",
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_with_nulls() {
        let doc: ConfigDoc = parse(
            br#"{"architecture":"amd64","os":"linux","config":{"Entrypoint":null,"Cmd":["sh"],
            "ExposedPorts":{"80/tcp":{},"53/udp":{}},"Labels":null,"Env":["A=1"],"StopSignal":"SIGQUIT"},
            "rootfs":{"type":"layers","diff_ids":[]}}"#,
            "config",
        )
        .unwrap();
        let c = doc.image_config();
        assert_eq!(c.entrypoint, Vec::<String>::new());
        assert_eq!(c.cmd, vec!["sh"]);
        assert_eq!(c.exposed_ports, vec!["53/udp", "80/tcp"]);
        assert_eq!(c.stop_signal.as_deref(), Some("SIGQUIT"));
        assert_eq!(c.env, vec!["A=1"]);
    }

    #[test]
    fn media_types() {
        assert!(is_layer_media_type(MEDIA_OCI_LAYER_GZIP));
        assert!(is_layer_media_type(MEDIA_DOCKER_LAYER_GZIP));
        assert!(is_layer_media_type(
            "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
        ));
        assert!(!is_layer_media_type(
            "application/vnd.oci.image.layer.v1.tar+gzip+encrypted"
        ));
        assert!(!is_layer_media_type(
            "application/vnd.cncf.helm.chart.content.v1.tar+gzip"
        ));
    }

    #[test]
    fn platforms() {
        let (os, arch, _) = host_platform();
        assert!(platform_matches(None));
        assert!(platform_matches(Some(&PlatformDoc {
            architecture: arch.clone(),
            os: os.clone(),
            variant: None
        })));
        assert!(!platform_matches(Some(&PlatformDoc {
            architecture: "nonexistent".into(),
            os,
            variant: None
        })));
        assert!(!platform_matches(Some(&PlatformDoc {
            architecture: arch,
            os: "windows".into(),
            variant: None
        })));
    }
}
