//! Defaulting of core/v1 pod specs and their parts, as upstream's
//! `SetDefaults_PodSpec`, `SetDefaults_Pod`, `SetDefaults_Container`,
//! `SetDefaults_Volume`, the volume-source defaulters, the declarative
//! `+default` markers and the generated defaulters that walk them; plus
//! resource-list normalization (rounding up to milli-units and re-emitting
//! each quantity in canonical form, as a decode/encode round trip does).

use std::collections::BTreeMap;

use apimachinery::Quantity as Q;
use k8s_openapi::api::core::v1::{
    Container, EphemeralContainer, HTTPGetAction, Lifecycle, PodSecurityContext, PodSpec, Probe,
    ResourceRequirements, Volume,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use crate::util::{default_str, empty, s};

/// Default termination grace period (`DefaultTerminationGracePeriodSeconds`).
pub const DEFAULT_TERMINATION_GRACE_PERIOD_SECONDS: i64 = 30;
/// Default scheduler name.
pub const DEFAULT_SCHEDULER_NAME: &str = "default-scheduler";
/// Default file mode of secret, configMap, downwardAPI and projected volumes (0644).
pub const DEFAULT_VOLUME_MODE: i32 = 0o644;

/// Re-emits a quantity in canonical form, first rounding it up to
/// milli-units when `round_milli` is set (upstream `SetDefaults_ResourceList`).
/// Unparseable values are left alone for validation to report.
pub fn canonical_quantity(q: &mut Quantity, round_milli: bool) {
    if let Ok(mut parsed) = Q::parse(&q.0) {
        if round_milli {
            parsed.round_up(-3);
        }
        if !renders_as(&parsed, &q.0) {
            q.0 = parsed.to_string();
        }
    }
}

/// Whether `q` renders exactly as `text` (checked without rendering it
/// into a new string).
fn renders_as(q: &Q, text: &str) -> bool {
    struct Compare<'a> {
        rest: &'a str,
        same: bool,
    }
    impl std::fmt::Write for Compare<'_> {
        fn write_str(&mut self, s: &str) -> std::fmt::Result {
            match self.rest.strip_prefix(s) {
                Some(rest) if self.same => self.rest = rest,
                _ => self.same = false,
            }
            Ok(())
        }
    }
    let mut cmp = Compare {
        rest: text,
        same: true,
    };
    let _ = std::fmt::Write::write_fmt(&mut cmp, format_args!("{q}"));
    cmp.same && cmp.rest.is_empty()
}

/// Upstream `SetDefaults_ResourceList` on an optional list.
pub fn default_resource_list(list: &mut Option<BTreeMap<String, Quantity>>) {
    if let Some(list) = list {
        for q in list.values_mut() {
            canonical_quantity(q, true);
        }
    }
}

fn default_resources(r: &mut Option<ResourceRequirements>) {
    if let Some(r) = r {
        default_resource_list(&mut r.limits);
        default_resource_list(&mut r.requests);
    }
}

/// The tag of an image reference as upstream's `parsers.ParseImageName`
/// reports it: `latest` when neither tag nor digest is given, "" when the
/// reference cannot be parsed or only has a digest.
pub fn image_tag(image: &str) -> String {
    image_tag_str(image).to_string()
}

/// [`image_tag`] without copying: the tag is a slice of `image`.
fn image_tag_str(image: &str) -> &str {
    let (name, digest) = match image.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (image, None),
    };
    if let Some(d) = digest {
        if !valid_digest(d) {
            return "";
        }
    }
    let last_slash = name.rfind('/').map(|i| i + 1).unwrap_or(0);
    let (repo, tag) = match name[last_slash..].rfind(':') {
        Some(i) => (&name[..last_slash + i], Some(&name[last_slash + i + 1..])),
        None => (name, None),
    };
    if let Some(t) = tag {
        if !valid_tag(t) {
            return "";
        }
    }
    if !valid_repository(repo) {
        return "";
    }
    match (tag, digest) {
        (Some(t), _) => t,
        (None, Some(_)) => "",
        (None, None) => "latest",
    }
}

fn valid_tag(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

fn valid_digest(d: &str) -> bool {
    let Some((algo, hex)) = d.split_once(':') else {
        return false;
    };
    let algo_ok = !algo.is_empty()
        && algo.as_bytes()[0].is_ascii_alphabetic()
        && algo
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'+' | b'.'));
    algo_ok && hex.len() >= 32 && hex.bytes().all(|c| c.is_ascii_hexdigit())
}

fn valid_path_component(c: &str) -> bool {
    // [a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*
    let b = c.as_bytes();
    if b.is_empty() || !is_lower_alnum(b[0]) || !is_lower_alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if is_lower_alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !is_lower_alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

fn is_lower_alnum(c: u8) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

fn valid_domain(d: &str) -> bool {
    let (host, port) = match d.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (d, None),
    };
    if let Some(p) = port {
        if p.is_empty() || !p.bytes().all(|c| c.is_ascii_digit()) {
            return false;
        }
    }
    if host.starts_with('[') && host.ends_with(']') {
        return true;
    }
    !host.is_empty()
        && host.split('.').all(|l| {
            let b = l.as_bytes();
            !b.is_empty()
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
        })
}

fn valid_repository(repo: &str) -> bool {
    if repo.is_empty() || repo.len() > 255 {
        return false;
    }
    let mut path = repo;
    if let Some((first, rest)) = repo.split_once('/') {
        let is_domain = first.contains('.') || first.contains(':') || first == "localhost";
        if is_domain || first.bytes().any(|c| c.is_ascii_uppercase()) {
            if !valid_domain(first) {
                return false;
            }
            path = rest;
        }
    }
    path.split('/').all(valid_path_component)
}

/// The default image pull policy for an image: `Always` for `:latest` (or
/// no tag), `IfNotPresent` otherwise.
pub fn default_pull_policy(image: &str) -> &'static str {
    if image_tag_str(image) == "latest" {
        "Always"
    } else {
        "IfNotPresent"
    }
}

fn default_http_get(h: &mut Option<HTTPGetAction>) {
    if let Some(h) = h {
        default_str(&mut h.path, "/");
        default_str(&mut h.scheme, "HTTP");
    }
}

fn default_probe(p: &mut Option<Probe>) {
    if let Some(p) = p {
        if p.timeout_seconds.unwrap_or(0) == 0 {
            p.timeout_seconds = Some(1);
        }
        if p.period_seconds.unwrap_or(0) == 0 {
            p.period_seconds = Some(10);
        }
        if p.success_threshold.unwrap_or(0) == 0 {
            p.success_threshold = Some(1);
        }
        if p.failure_threshold.unwrap_or(0) == 0 {
            p.failure_threshold = Some(3);
        }
        default_http_get(&mut p.http_get);
    }
}

fn default_lifecycle(l: &mut Option<Lifecycle>) {
    if let Some(l) = l {
        if let Some(h) = &mut l.post_start {
            default_http_get(&mut h.http_get);
        }
        if let Some(h) = &mut l.pre_stop {
            default_http_get(&mut h.http_get);
        }
    }
}

/// Upstream `SetDefaults_Container` plus the generated nested defaulters
/// (ports, env field refs, resources, probes, lifecycle handlers).
pub fn default_container(c: &mut Container) {
    if empty(&c.image_pull_policy) {
        c.image_pull_policy = Some(default_pull_policy(s(&c.image)).to_string());
    }
    default_str(&mut c.termination_message_path, "/dev/termination-log");
    default_str(&mut c.termination_message_policy, "File");
    for p in c.ports.iter_mut().flatten() {
        default_str(&mut p.protocol, "TCP");
    }
    for e in c.env.iter_mut().flatten() {
        if let Some(f) = e.value_from.as_mut().and_then(|v| v.field_ref.as_mut()) {
            if f.api_version.as_deref().unwrap_or("").is_empty() {
                f.api_version = Some("v1".to_string());
            }
        }
    }
    if c.resources.is_none() {
        c.resources = Some(Default::default());
    }
    default_resources(&mut c.resources);
    default_probe(&mut c.liveness_probe);
    default_probe(&mut c.readiness_probe);
    default_probe(&mut c.startup_probe);
    default_lifecycle(&mut c.lifecycle);
}

/// Defaulting of an ephemeral container (same as a container).
pub fn default_ephemeral_container(c: &mut EphemeralContainer) {
    if empty(&c.image_pull_policy) {
        c.image_pull_policy = Some(default_pull_policy(s(&c.image)).to_string());
    }
    default_str(&mut c.termination_message_path, "/dev/termination-log");
    default_str(&mut c.termination_message_policy, "File");
    for p in c.ports.iter_mut().flatten() {
        default_str(&mut p.protocol, "TCP");
    }
    for e in c.env.iter_mut().flatten() {
        if let Some(f) = e.value_from.as_mut().and_then(|v| v.field_ref.as_mut()) {
            if f.api_version.as_deref().unwrap_or("").is_empty() {
                f.api_version = Some("v1".to_string());
            }
        }
    }
    if c.resources.is_none() {
        c.resources = Some(Default::default());
    }
    default_resources(&mut c.resources);
    default_probe(&mut c.liveness_probe);
    default_probe(&mut c.readiness_probe);
    default_probe(&mut c.startup_probe);
    default_lifecycle(&mut c.lifecycle);
}

/// Whether no volume source is set on a volume.
pub fn volume_has_no_source(v: &Volume) -> bool {
    v.aws_elastic_block_store.is_none()
        && v.azure_disk.is_none()
        && v.azure_file.is_none()
        && v.cephfs.is_none()
        && v.cinder.is_none()
        && v.config_map.is_none()
        && v.csi.is_none()
        && v.downward_api.is_none()
        && v.empty_dir.is_none()
        && v.ephemeral.is_none()
        && v.fc.is_none()
        && v.flex_volume.is_none()
        && v.flocker.is_none()
        && v.gce_persistent_disk.is_none()
        && v.git_repo.is_none()
        && v.glusterfs.is_none()
        && v.host_path.is_none()
        && v.image.is_none()
        && v.iscsi.is_none()
        && v.nfs.is_none()
        && v.persistent_volume_claim.is_none()
        && v.photon_persistent_disk.is_none()
        && v.portworx_volume.is_none()
        && v.projected.is_none()
        && v.quobyte.is_none()
        && v.rbd.is_none()
        && v.scale_io.is_none()
        && v.secret.is_none()
        && v.storageos.is_none()
        && v.vsphere_volume.is_none()
}

/// Upstream `SetDefaults_Volume` and the defaulters of each volume source.
pub fn default_volume(v: &mut Volume) {
    if volume_has_no_source(v) {
        v.empty_dir = Some(Default::default());
    }
    if let Some(e) = &mut v.empty_dir {
        if let Some(q) = &mut e.size_limit {
            canonical_quantity(q, false);
        }
    }
    if let Some(i) = &mut v.image {
        if empty(&i.pull_policy) {
            i.pull_policy = Some(default_pull_policy(s(&i.reference)).to_string());
        }
    }
    if let Some(h) = &mut v.host_path {
        if h.type_.is_none() {
            h.type_ = Some(String::new());
        }
    }
    if let Some(sec) = &mut v.secret {
        sec.default_mode.get_or_insert(DEFAULT_VOLUME_MODE);
    }
    if let Some(i) = &mut v.iscsi {
        default_str(&mut i.iscsi_interface, "default");
    }
    if let Some(r) = &mut v.rbd {
        default_str(&mut r.pool, "rbd");
        default_str(&mut r.user, "admin");
        default_str(&mut r.keyring, "/etc/ceph/keyring");
    }
    if let Some(d) = &mut v.downward_api {
        d.default_mode.get_or_insert(DEFAULT_VOLUME_MODE);
        for item in d.items.iter_mut().flatten() {
            if let Some(f) = &mut item.field_ref {
                default_str(&mut f.api_version, "v1");
            }
        }
    }
    if let Some(c) = &mut v.config_map {
        c.default_mode.get_or_insert(DEFAULT_VOLUME_MODE);
    }
    if let Some(a) = &mut v.azure_disk {
        default_str(&mut a.caching_mode, "ReadWrite");
        default_str(&mut a.fs_type, "ext4");
        a.read_only.get_or_insert(false);
        default_str(&mut a.kind, "Shared");
    }
    if let Some(p) = &mut v.projected {
        p.default_mode.get_or_insert(DEFAULT_VOLUME_MODE);
        for src in p.sources.iter_mut().flatten() {
            if let Some(d) = &mut src.downward_api {
                for item in d.items.iter_mut().flatten() {
                    if let Some(f) = &mut item.field_ref {
                        default_str(&mut f.api_version, "v1");
                    }
                }
            }
            if let Some(t) = &mut src.service_account_token {
                t.expiration_seconds.get_or_insert(3600);
            }
        }
    }
    if let Some(sio) = &mut v.scale_io {
        default_str(&mut sio.storage_mode, "ThinProvisioned");
        default_str(&mut sio.fs_type, "xfs");
    }
    if let Some(e) = &mut v.ephemeral {
        if let Some(t) = &mut e.volume_claim_template {
            if t.spec.volume_mode.is_none() {
                t.spec.volume_mode = Some("Filesystem".to_string());
            }
            if let Some(r) = &mut t.spec.resources {
                default_resource_list(&mut r.limits);
                default_resource_list(&mut r.requests);
            }
        }
    }
}

/// Upstream `SetDefaults_PodSpec` plus the generated nested defaulters, as
/// applied to every pod spec (pods and pod templates of workloads).
pub fn default_pod_spec(spec: &mut PodSpec) {
    default_str(&mut spec.dns_policy, "ClusterFirst");
    default_str(&mut spec.restart_policy, "Always");
    if spec.security_context.is_none() {
        spec.security_context = Some(PodSecurityContext::default());
    }
    spec.termination_grace_period_seconds
        .get_or_insert(DEFAULT_TERMINATION_GRACE_PERIOD_SECONDS);
    default_str(&mut spec.scheduler_name, DEFAULT_SCHEDULER_NAME);
    for v in spec.volumes.iter_mut().flatten() {
        default_volume(v);
    }
    for c in spec.init_containers.iter_mut().flatten() {
        default_container(c);
    }
    for c in &mut spec.containers {
        default_container(c);
    }
    for c in spec.ephemeral_containers.iter_mut().flatten() {
        default_ephemeral_container(c);
    }
    default_resource_list(&mut spec.overhead);
    if let Some(r) = &mut spec.resources {
        default_resource_list(&mut r.limits);
        default_resource_list(&mut r.requests);
    }
    // The internal type has a single service account field: the deprecated
    // `serviceAccount` fills an empty `serviceAccountName` on decode and is
    // rewritten from it on encode.
    if empty(&spec.service_account_name) && !empty(&spec.service_account) {
        spec.service_account_name = spec.service_account.clone();
    }
    spec.service_account = if empty(&spec.service_account_name) {
        None
    } else {
        spec.service_account_name.clone()
    };
}

fn requests_from_limits(c: &mut Container) {
    let Some(r) = &mut c.resources else {
        return;
    };
    let Some(limits) = &r.limits else {
        return;
    };
    let requests = r.requests.get_or_insert_with(BTreeMap::new);
    for (k, v) in limits {
        requests.entry(k.clone()).or_insert_with(|| v.clone());
    }
}

/// Upstream `SetDefaults_Pod` (requests from limits, enableServiceLinks,
/// host-network host ports) followed by the pod-spec defaults.
pub fn default_pod_only(spec: &mut PodSpec) {
    for c in &mut spec.containers {
        requests_from_limits(c);
    }
    for c in spec.init_containers.iter_mut().flatten() {
        requests_from_limits(c);
    }
    spec.enable_service_links.get_or_insert(true);
    if spec.host_network.unwrap_or(false) {
        for c in spec
            .containers
            .iter_mut()
            .chain(spec.init_containers.iter_mut().flatten())
        {
            for p in c.ports.iter_mut().flatten() {
                if p.host_port.unwrap_or(0) == 0 {
                    p.host_port = Some(p.container_port);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_quantities() {
        for (input, milli, want) in [
            ("128Mi", true, "128Mi"),
            ("100m", true, "100m"),
            ("0.5", true, "500m"),
            ("1000m", true, "1"),
            ("1.5Gi", false, "1536Mi"),
            ("1n", true, "1m"),
            ("1n", false, "1n"),
            ("junk", true, "junk"),
        ] {
            let mut q = Quantity(input.to_string());
            canonical_quantity(&mut q, milli);
            assert_eq!(q.0, want, "{input}");
        }
        let one = Q::parse("1").unwrap();
        assert!(renders_as(&one, "1"));
        assert!(!renders_as(&one, "1k"));
        assert!(!renders_as(&one, ""));
        assert!(!renders_as(&Q::parse("128Mi").unwrap(), "128M"));
    }

    #[test]
    fn image_tags() {
        assert_eq!(image_tag("nginx"), "latest");
        assert_eq!(image_tag("nginx:latest"), "latest");
        assert_eq!(image_tag("nginx:1.25"), "1.25");
        assert_eq!(image_tag("registry.k8s.io/pause:3.9"), "3.9");
        assert_eq!(image_tag("localhost:5000/app"), "latest");
        assert_eq!(image_tag("localhost:5000/app:v1"), "v1");
        assert_eq!(
            image_tag(
                "busybox@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
            ),
            ""
        );
        assert_eq!(image_tag("Nginx"), "");
        assert_eq!(image_tag(""), "");
        assert_eq!(default_pull_policy("nginx"), "Always");
        assert_eq!(default_pull_policy("nginx:1.25"), "IfNotPresent");
        assert_eq!(default_pull_policy(""), "IfNotPresent");
    }
}
