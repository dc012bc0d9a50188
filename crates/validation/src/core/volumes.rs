//! Validation of pod volumes and of the volume sources shared with
//! persistent volumes, of persistent volume claim specs and templates, and
//! of node selectors (upstream `ValidateVolumes`, `validateVolumeSource`,
//! `ValidatePersistentVolumeClaimSpec`, `ValidateNodeSelector`, ...).

use std::collections::{BTreeMap, BTreeSet};

use apimachinery::validation as av;
use apimachinery::{FieldError, Path};
use k8s_openapi::api::core::v1 as core;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::core::resources::{parse_q, validate_positive_quantity, validate_quantity_value};
use crate::util::{
    empty, go_label_selector, invalid_go, list, msgs_invalid, s, validate_annotations,
    validate_dns1123_label, validate_label_name, validate_label_selector, validate_labels,
    validate_qualified_name,
};

/// Upstream's `fileModeErrorMsg`.
pub const FILE_MODE_ERROR_MSG: &str = "must be a number between 0 and 0777 (octal), both inclusive";

const SUPPORTED_ACCESS_MODES: &[&str] = &[
    "ReadOnlyMany",
    "ReadWriteMany",
    "ReadWriteOnce",
    "ReadWriteOncePod",
];
const SUPPORTED_VOLUME_MODES: &[&str] = &["Block", "Filesystem"];

fn more_than_one(path: &Path, name: &str) -> FieldError {
    FieldError::forbidden(&path.child(name), "may not specify more than 1 volume type")
}

/// Upstream `validatePathNoBacksteps`.
pub fn validate_path_no_backsteps(target: &str, path: &Path) -> Vec<FieldError> {
    if target.split('/').any(|p| p == "..") {
        return vec![FieldError::invalid(path, target, "must not contain '..'")];
    }
    Vec::new()
}

/// Upstream `validateLocalDescendingPath`.
pub fn validate_local_descending_path(target: &str, path: &Path) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if target.starts_with('/') {
        errs.push(FieldError::invalid(path, target, "must be a relative path"));
    }
    errs.extend(validate_path_no_backsteps(target, path));
    errs
}

/// Upstream `ValidateLocalNonReservedPath`.
pub fn validate_local_non_reserved_path(target: &str, path: &Path) -> Vec<FieldError> {
    let mut errs = validate_local_descending_path(target, path);
    if target.starts_with("..") && !target.starts_with("../") {
        errs.push(FieldError::invalid(
            path,
            target,
            "must not start with '..'",
        ));
    }
    errs
}

fn mode_ok(mode: Option<i32>) -> bool {
    mode.is_none_or(|m| (0..=0o777).contains(&m))
}

/// Checks a file mode; `path` (the mode's own path) is only built when
/// the mode is invalid.
fn validate_mode(mode: Option<i32>, path: impl FnOnce() -> Path) -> Vec<FieldError> {
    match mode {
        Some(m) if !mode_ok(Some(m)) => vec![FieldError::invalid(&path(), m, FILE_MODE_ERROR_MSG)],
        _ => Vec::new(),
    }
}

fn validate_key_to_path(kp: &core::KeyToPath, path: &Path) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if kp.key.is_empty() {
        errs.push(FieldError::required(&path.child("key"), ""));
    }
    if kp.path.is_empty() {
        errs.push(FieldError::required(&path.child("path"), ""));
    }
    errs.extend(validate_local_non_reserved_path(
        &kp.path,
        &path.child("path"),
    ));
    errs.extend(validate_mode(kp.mode, || path.child("mode")));
    errs
}

const VOLUME_FIELD_PATHS: &[&str] = &[
    "metadata.annotations",
    "metadata.labels",
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
];

/// Splits `a['b']` into (`a`, `b`) like upstream `SplitMaybeSubscriptedPath`.
fn split_subscript(fp: &str) -> Option<(&str, &str)> {
    let s = fp.strip_suffix("']")?;
    let (a, b) = s.split_once("['")?;
    if a.is_empty() {
        return None;
    }
    Some((a, b))
}

const DOWNWARD_API_LABELS: &[&str] = &[
    "metadata.annotations",
    "metadata.labels",
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "spec.nodeName",
    "spec.restartPolicy",
    "spec.serviceAccountName",
    "spec.schedulerName",
    "status.phase",
    "status.hostIP",
    "status.hostIPs",
    "status.podIP",
    "status.podIPs",
];

/// Upstream `validateObjectFieldSelector` (with the v1 downward API field
/// label conversion).
pub fn validate_object_field_selector(
    fs: &core::ObjectFieldSelector,
    expressions: &[&str],
    path: &Path,
) -> Vec<FieldError> {
    let api_version = s(&fs.api_version);
    if api_version.is_empty() {
        return vec![FieldError::required(&path.child("apiVersion"), "")];
    }
    if fs.field_path.is_empty() {
        return vec![FieldError::required(&path.child("fieldPath"), "")];
    }
    let fp = fs.field_path.as_str();
    let conv_err = |msg: String| {
        vec![FieldError::invalid(
            &path.child("fieldPath"),
            fp,
            format!("error converting fieldPath: {msg}"),
        )]
    };
    if api_version != "v1" {
        return conv_err(format!("unsupported pod version: {api_version}"));
    }
    let internal: &str = if let Some((base, _)) = split_subscript(fp) {
        if base != "metadata.annotations" && base != "metadata.labels" {
            return conv_err(format!("field label does not support subscript: {fp}"));
        }
        fp
    } else if fp == "spec.host" {
        "spec.nodeName"
    } else if DOWNWARD_API_LABELS.contains(&fp) {
        fp
    } else {
        return conv_err(format!("field label not supported: {fp}"));
    };
    if let Some((base, sub)) = split_subscript(internal) {
        return match base {
            "metadata.annotations" => validate_qualified_name(&sub.to_lowercase(), path),
            "metadata.labels" => validate_qualified_name(sub, path),
            _ => vec![FieldError::invalid(
                path,
                base,
                "does not support subscript",
            )],
        };
    }
    if !expressions.contains(&internal) {
        return vec![FieldError::not_supported(
            &path.child("fieldPath"),
            internal,
            expressions,
        )];
    }
    Vec::new()
}

/// Valid `resource` values of a container resource field selector.
pub const CONTAINER_RESOURCE_FIELD_PATHS: &[&str] = &[
    "limits.cpu",
    "limits.ephemeral-storage",
    "limits.memory",
    "requests.cpu",
    "requests.ephemeral-storage",
    "requests.memory",
];

/// Upstream `validateContainerResourceFieldSelector`.
pub fn validate_container_resource_field_selector(
    fs: &core::ResourceFieldSelector,
    path: &Path,
    volume: bool,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if volume && empty(&fs.container_name) {
        errs.push(FieldError::required(&path.child("containerName"), ""));
    } else if fs.resource.is_empty() {
        errs.push(FieldError::required(&path.child("resource"), ""));
    } else if !CONTAINER_RESOURCE_FIELD_PATHS.contains(&fs.resource.as_str())
        && !fs.resource.starts_with("limits.hugepages-")
        && !fs.resource.starts_with("requests.hugepages-")
    {
        errs.push(FieldError::not_supported(
            &path.child("resource"),
            fs.resource.as_str(),
            CONTAINER_RESOURCE_FIELD_PATHS,
        ));
    }
    errs.extend(validate_container_resource_divisor(fs, path));
    errs
}

fn validate_container_resource_divisor(
    fs: &core::ResourceFieldSelector,
    path: &Path,
) -> Vec<FieldError> {
    let Some(d) = &fs.divisor else {
        return Vec::new();
    };
    let Ok(q) = apimachinery::Quantity::parse(&d.0) else {
        return vec![FieldError::invalid(
            &path.child("divisor"),
            d.0.as_str(),
            "invalid quantity",
        )];
    };
    if q.is_zero() {
        return Vec::new();
    }
    let ds = q.to_string();
    let r = fs.resource.as_str();
    let mem_like = [
        "1", "1k", "1M", "1G", "1T", "1P", "1E", "1Ki", "1Mi", "1Gi", "1Ti", "1Pi", "1Ei",
    ];
    let mut errs = Vec::new();
    let p = path.child("divisor");
    let msg = match r {
        "limits.cpu" | "requests.cpu" if ds != "1m" && ds != "1" => {
            Some("only divisor's values 1m and 1 are supported with the cpu resource")
        }
        "limits.memory" | "requests.memory" if !mem_like.contains(&ds.as_str()) => {
            Some("only divisor's values 1, 1k, 1M, 1G, 1T, 1P, 1E, 1Ki, 1Mi, 1Gi, 1Ti, 1Pi, 1Ei are supported with the memory resource")
        }
        "limits.ephemeral-storage" | "requests.ephemeral-storage" if !mem_like.contains(&ds.as_str()) => {
            Some("only divisor's values 1, 1k, 1M, 1G, 1T, 1P, 1E, 1Ki, 1Mi, 1Gi, 1Ti, 1Pi, 1Ei are supported with the local ephemeral storage resource")
        }
        _ => None,
    };
    if let Some(msg) = msg {
        errs.push(FieldError::invalid(&p, r, msg));
    }
    if (r.starts_with("requests.hugepages-") || r.starts_with("limits.hugepages-"))
        && !mem_like.contains(&ds.as_str())
    {
        errs.push(FieldError::invalid(&p, r, "only divisor's values 1, 1k, 1M, 1G, 1T, 1P, 1E, 1Ki, 1Mi, 1Gi, 1Ti, 1Pi, 1Ei are supported with the hugepages resource"));
    }
    errs
}

fn validate_downward_api_file(file: &core::DownwardAPIVolumeFile, path: &Path) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if file.path.is_empty() {
        errs.push(FieldError::required(&path.child("path"), ""));
    }
    errs.extend(validate_local_non_reserved_path(
        &file.path,
        &path.child("path"),
    ));
    if let Some(fr) = &file.field_ref {
        errs.extend(validate_object_field_selector(
            fr,
            VOLUME_FIELD_PATHS,
            &path.child("fieldRef"),
        ));
        if file.resource_field_ref.is_some() {
            errs.push(FieldError::invalid(
                path,
                "resource",
                "fieldRef and resourceFieldRef can not be specified simultaneously",
            ));
        }
    } else if let Some(rf) = &file.resource_field_ref {
        errs.extend(validate_container_resource_field_selector(
            rf,
            &path.child("resourceFieldRef"),
            true,
        ));
    } else {
        errs.push(FieldError::required(
            path,
            "one of fieldRef and resourceFieldRef is required",
        ));
    }
    errs.extend(validate_mode(file.mode, || path.child("mode")));
    errs
}

fn validate_projected(p: &core::ProjectedVolumeSource, path: &Path) -> Vec<FieldError> {
    let mut errs = validate_mode(p.default_mode, || path.child("defaultMode"));
    let mut all_paths: BTreeSet<String> = BTreeSet::new();
    for (i, src) in list(&p.sources).iter().enumerate() {
        let mut n = 0;
        let sp = path.child("sources").index(i);
        if let Some(sec) = &src.secret {
            n += 1;
            let pp = sp.child("secret");
            if sec.name.is_empty() {
                errs.push(FieldError::required(&pp.child("name"), ""));
            }
            for (j, kp) in list(&sec.items).iter().enumerate() {
                errs.extend(validate_key_to_path(kp, &pp.child("items").index(j)));
                if !kp.path.is_empty() && !all_paths.insert(kp.path.clone()) {
                    errs.push(FieldError::invalid(
                        path,
                        sec.name.as_str(),
                        "conflicting duplicate paths",
                    ));
                }
            }
        }
        if let Some(cm) = &src.config_map {
            n += 1;
            let pp = sp.child("configMap");
            if cm.name.is_empty() {
                errs.push(FieldError::required(&pp.child("name"), ""));
            }
            for (j, kp) in list(&cm.items).iter().enumerate() {
                errs.extend(validate_key_to_path(kp, &pp.child("items").index(j)));
                if !kp.path.is_empty() && !all_paths.insert(kp.path.clone()) {
                    errs.push(FieldError::invalid(
                        path,
                        cm.name.as_str(),
                        "conflicting duplicate paths",
                    ));
                }
            }
        }
        if let Some(d) = &src.downward_api {
            n += 1;
            let pp = sp.child("downwardAPI");
            for file in list(&d.items) {
                errs.extend(validate_downward_api_file(file, &pp));
                if !file.path.is_empty() && !all_paths.insert(file.path.clone()) {
                    errs.push(FieldError::invalid(
                        path,
                        file.path.as_str(),
                        "conflicting duplicate paths",
                    ));
                }
            }
        }
        if let Some(t) = &src.service_account_token {
            n += 1;
            let pp = sp.child("serviceAccountToken");
            let exp = t.expiration_seconds.unwrap_or(0);
            if exp < 600 {
                errs.push(FieldError::invalid(
                    &pp.child("expirationSeconds"),
                    exp,
                    "may not specify a duration less than 10 minutes",
                ));
            }
            if exp > 1 << 32 {
                errs.push(FieldError::invalid(
                    &pp.child("expirationSeconds"),
                    exp,
                    "may not specify a duration larger than 2^32 seconds",
                ));
            }
            if t.path.is_empty() {
                errs.push(FieldError::required(&path.child("path"), ""));
            } else {
                errs.extend(validate_local_non_reserved_path(
                    &t.path,
                    &path.child("path"),
                ));
            }
        }
        if let Some(ctb) = &src.cluster_trust_bundle {
            n += 1;
            let pp = sp.child("clusterTrustBundle");
            match (&ctb.name, &ctb.signer_name) {
                (Some(_), Some(_)) => errs.push(FieldError::invalid(
                    &pp,
                    crate::util::to_json(ctb),
                    "only one of name and signerName may be used",
                )),
                (Some(name), None) => {
                    if name.is_empty() {
                        errs.push(FieldError::required(
                            &pp.child("name"),
                            "must be a valid object name",
                        ));
                    }
                    if ctb.label_selector.is_some() {
                        errs.push(FieldError::invalid(
                            &pp.child("labelSelector"),
                            crate::util::to_json(&ctb.label_selector),
                            "labelSelector must be unset if name is specified",
                        ));
                    }
                }
                (None, Some(signer)) => {
                    if signer.is_empty() {
                        errs.push(FieldError::required(
                            &pp.child("signerName"),
                            "must be a valid signer name",
                        ));
                    }
                    errs.extend(validate_label_selector(
                        &ctb.label_selector,
                        false,
                        &pp.child("labelSelector"),
                    ));
                }
                (None, None) => errs.push(FieldError::required(
                    &pp,
                    "either name or signerName must be specified",
                )),
            }
            if ctb.path.is_empty() {
                errs.push(FieldError::required(&pp.child("path"), ""));
            }
            errs.extend(validate_local_non_reserved_path(
                &ctb.path,
                &pp.child("path"),
            ));
            if !all_paths.insert(ctb.path.clone()) {
                errs.push(FieldError::invalid(
                    path,
                    ctb.path.as_str(),
                    "conflicting duplicate paths",
                ));
            }
        }
        if n > 1 {
            errs.push(FieldError::forbidden(
                &sp,
                "may not specify more than 1 volume type per source",
            ));
        }
    }
    errs
}

pub(crate) fn validate_iscsi_target(
    iqn: &str,
    lun: i32,
    chap: bool,
    has_secret: bool,
    initiator: &Option<String>,
    path: &Path,
    strict_prefix_msg: &str,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if iqn.is_empty() {
        errs.push(FieldError::required(&path.child("iqn"), ""));
    } else if !iqn.starts_with("iqn") && !iqn.starts_with("eui") && !iqn.starts_with("naa") {
        errs.push(FieldError::invalid(
            &path.child("iqn"),
            iqn,
            strict_prefix_msg,
        ));
    } else if !iscsi_name_ok(iqn) {
        errs.push(FieldError::invalid(
            &path.child("iqn"),
            iqn,
            "must be valid format",
        ));
    }
    if !(0..=255).contains(&lun) {
        errs.push(FieldError::invalid(
            &path.child("lun"),
            lun,
            av::inclusive_range_error(0, 255),
        ));
    }
    if chap && !has_secret {
        errs.push(FieldError::required(&path.child("secretRef"), ""));
    }
    if let Some(init) = initiator {
        if !init.starts_with("iqn") && !init.starts_with("eui") && !init.starts_with("naa") {
            errs.push(FieldError::invalid(
                &path.child("initiatorname"),
                init.as_str(),
                strict_prefix_msg,
            ));
        }
        if (init.starts_with("iqn") || init.starts_with("eui") || init.starts_with("naa"))
            && !iscsi_name_ok(init)
        {
            errs.push(FieldError::invalid(
                &path.child("initiatorname"),
                init.as_str(),
                "must be valid format",
            ));
        }
    }
    errs
}

/// The iqn/eui/naa formats upstream checks with regular expressions.
fn iscsi_name_ok(v: &str) -> bool {
    if let Some(rest) = v.strip_prefix("eui") {
        let b = rest.as_bytes();
        return b.len() == 17 && b[1..].iter().all(u8::is_ascii_alphanumeric);
    }
    if let Some(rest) = v.strip_prefix("naa") {
        let b = rest.as_bytes();
        return b.len() == 33 && b[1..].iter().all(u8::is_ascii_alphanumeric);
    }
    // iqn\.\d{4}-\d{2}\.([[:alnum:]-.]+)(:[^,;*&$|\s]+)$  (unanchored start)
    let b = v.as_bytes();
    for start in 0..b.len() {
        if v[start..].starts_with("iqn.") && iqn_tail_ok(&v[start + 4..]) {
            return true;
        }
    }
    false
}

fn iqn_tail_ok(t: &str) -> bool {
    let b = t.as_bytes();
    if b.len() < 8
        || !b[..4].iter().all(u8::is_ascii_digit)
        || b[4] != b'-'
        || !b[5..7].iter().all(u8::is_ascii_digit)
        || b[7] != b'.'
    {
        return false;
    }
    let rest = &t[8..];
    // ([[:alnum:]-.]+)(:[^,;*&$|\s]+)$ : find a ':' such that the prefix is alnum/-/. and the suffix valid.
    for (i, c) in rest.char_indices() {
        if c == ':' {
            let name = &rest[..i];
            let tail = &rest[i + 1..];
            let name_ok = !name.is_empty()
                && name
                    .bytes()
                    .all(|x| x.is_ascii_alphanumeric() || x == b'-' || x == b'.');
            let tail_ok = !tail.is_empty()
                && tail
                    .chars()
                    .all(|x| !matches!(x, ',' | ';' | '*' | '&' | '$' | '|') && !x.is_whitespace());
            if name_ok && tail_ok {
                return true;
            }
        }
    }
    false
}

pub(crate) fn validate_fc(fc: &core::FCVolumeSource, path: &Path) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let wwns = list(&fc.target_wwns);
    let wwids = list(&fc.wwids);
    if wwns.is_empty() && wwids.is_empty() {
        errs.push(FieldError::required(
            &path.child("targetWWNs"),
            "must specify either targetWWNs or wwids, but not both",
        ));
    }
    if !wwns.is_empty() && !wwids.is_empty() {
        errs.push(invalid_go(
            &path.child("targetWWNs"),
            &crate::util::go_str_slice(&fc.target_wwns),
            "targetWWNs and wwids can not be specified simultaneously",
        ));
    }
    if !wwns.is_empty() {
        match fc.lun {
            None => errs.push(FieldError::required(
                &path.child("lun"),
                "lun is required if targetWWNs is specified",
            )),
            Some(l) if !(0..=255).contains(&l) => errs.push(FieldError::invalid(
                &path.child("lun"),
                l,
                av::inclusive_range_error(0, 255),
            )),
            _ => {}
        }
    }
    errs
}

pub(crate) fn validate_flex_options(
    driver: &str,
    options: &Option<BTreeMap<String, String>>,
    path: &Path,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if driver.is_empty() {
        errs.push(FieldError::required(&path.child("driver"), ""));
    }
    for k in options.iter().flat_map(|m| m.keys()) {
        let ns = k.split_once('/').map(|(a, _)| a).unwrap_or(k);
        let normalized = format!(".{}", ns.to_lowercase());
        if normalized.ends_with(".kubernetes.io") || normalized.ends_with(".k8s.io") {
            errs.push(FieldError::invalid(
                &path.child("options").key(k),
                k.as_str(),
                "kubernetes.io and k8s.io namespaces are reserved",
            ));
        }
    }
    errs
}

pub(crate) fn validate_azure_disk(a: &core::AzureDiskVolumeSource, path: &Path) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if a.disk_name.is_empty() {
        errs.push(FieldError::required(&path.child("diskName"), ""));
    }
    if a.disk_uri.is_empty() {
        errs.push(FieldError::required(&path.child("diskURI"), ""));
    }
    if let Some(c) = &a.caching_mode {
        if !["None", "ReadOnly", "ReadWrite"].contains(&c.as_str()) {
            errs.push(FieldError::not_supported(
                &path.child("cachingMode"),
                c.as_str(),
                &["None", "ReadOnly", "ReadWrite"],
            ));
        }
    }
    if let Some(k) = &a.kind {
        if !["Dedicated", "Managed", "Shared"].contains(&k.as_str()) {
            errs.push(FieldError::not_supported(
                &path.child("kind"),
                k.as_str(),
                &["Dedicated", "Managed", "Shared"],
            ));
        }
        if k == "Managed" && !a.disk_uri.starts_with("/subscriptions/") {
            errs.push(FieldError::not_supported(&path.child("diskURI"), a.disk_uri.as_str(), &["/subscriptions/{sub-id}/resourcegroups/{group-name}/providers/microsoft.compute/disks/{disk-id}"]));
        }
        if k != "Managed" && !a.disk_uri.starts_with("https://") {
            errs.push(FieldError::not_supported(
                &path.child("diskURI"),
                a.disk_uri.as_str(),
                &["https://{account-name}.blob.core.windows.net/{container-name}/{disk-name}.vhd"],
            ));
        }
    }
    errs
}

fn req_if_empty(v: &str, path: &Path, name: &str, errs: &mut Vec<FieldError>) {
    if v.is_empty() {
        errs.push(FieldError::required(&path.child(name), ""));
    }
}

pub(crate) fn validate_quobyte(q: &core::QuobyteVolumeSource, path: &Path) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if q.registry.is_empty() {
        errs.push(FieldError::required(
            &path.child("registry"),
            "must be a host:port pair or multiple pairs separated by commas",
        ));
    } else if s(&q.tenant).len() >= 65 {
        errs.push(FieldError::required(
            &path.child("tenant"),
            "must be a UUID and may not exceed a length of 64 characters",
        ));
    } else {
        for pair in q.registry.split(',') {
            if !host_port_ok(pair) {
                errs.push(FieldError::invalid(
                    &path.child("registry"),
                    q.registry.as_str(),
                    "must be a host:port pair or multiple pairs separated by commas",
                ));
            }
        }
    }
    req_if_empty(&q.volume, path, "volume", &mut errs);
    errs
}

/// Whether Go's `net.SplitHostPort` accepts the string.
fn host_port_ok(v: &str) -> bool {
    if let Some(rest) = v.strip_prefix('[') {
        return match rest.split_once(']') {
            Some((_, after)) => after.starts_with(':') && !after[1..].contains(':'),
            None => false,
        };
    }
    match v.rfind(':') {
        Some(i) => !v[..i].contains(':') && !v[..i].contains('[') && !v[..i].contains(']'),
        None => false,
    }
}

/// Upstream `ValidateCSIDriverName`.
pub fn validate_csi_driver_name(driver: &str, path: &Path) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if driver.is_empty() {
        errs.push(FieldError::required(path, ""));
    }
    if driver.len() > 63 {
        errs.push(FieldError::too_long(path, "", 63));
    }
    errs.extend(msgs_invalid(
        path,
        driver,
        av::is_dns1123_subdomain(&driver.to_lowercase()),
    ));
    errs
}

fn validate_ephemeral(e: &core::EphemeralVolumeSource, path: &Path) -> Vec<FieldError> {
    match &e.volume_claim_template {
        None => vec![FieldError::required(&path.child("volumeClaimTemplate"), "")],
        Some(t) => validate_pvc_template(t, &path.child("volumeClaimTemplate")),
    }
}

/// Upstream `ValidatePersistentVolumeClaimTemplate`.
pub fn validate_pvc_template(
    t: &core::PersistentVolumeClaimTemplate,
    path: &Path,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if let Some(m) = &t.metadata {
        errs.extend(validate_template_object_meta(m, &path.child("metadata")));
    }
    errs.extend(validate_pvc_spec(&t.spec, &path.child("spec"), false));
    errs
}

/// Upstream `ValidateTemplateObjectMeta`: only labels and annotations may
/// be set.
pub fn validate_template_object_meta(m: &ObjectMeta, path: &Path) -> Vec<FieldError> {
    let mut errs = validate_annotations(&m.annotations, &path.child("annotations"));
    errs.extend(validate_labels(&m.labels, &path.child("labels")));
    let forbidden = |set: bool, name: &str, errs: &mut Vec<FieldError>| {
        if set {
            errs.push(FieldError::forbidden(&path.child(name), "cannot be set"));
        }
    };
    forbidden(!empty(&m.name), "name", &mut errs);
    forbidden(!empty(&m.generate_name), "generateName", &mut errs);
    forbidden(!empty(&m.namespace), "namespace", &mut errs);
    forbidden(!empty(&m.self_link), "selfLink", &mut errs);
    forbidden(!empty(&m.uid), "uid", &mut errs);
    forbidden(!empty(&m.resource_version), "resourceVersion", &mut errs);
    forbidden(m.generation.unwrap_or(0) != 0, "generation", &mut errs);
    forbidden(
        m.creation_timestamp.is_some(),
        "creationTimestamp",
        &mut errs,
    );
    forbidden(
        m.deletion_timestamp.is_some(),
        "deletionTimestamp",
        &mut errs,
    );
    forbidden(
        m.deletion_grace_period_seconds.is_some(),
        "deletionGracePeriodSeconds",
        &mut errs,
    );
    forbidden(m.owner_references.is_some(), "ownerReferences", &mut errs);
    forbidden(m.finalizers.is_some(), "finalizers", &mut errs);
    forbidden(m.managed_fields.is_some(), "managedFields", &mut errs);
    errs
}

/// Upstream `ValidatePersistentVolumeClaimSpec` (with the VolumeAttributesClass
/// feature disabled, as in 1.33 by default).
pub fn validate_pvc_spec(
    spec: &core::PersistentVolumeClaimSpec,
    path: &Path,
    allow_invalid_selector_values: bool,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let modes = list(&spec.access_modes);
    if modes.is_empty() {
        errs.push(FieldError::required(
            &path.child("accessModes"),
            "at least 1 access mode is required",
        ));
    }
    if spec.selector.is_some() {
        errs.extend(validate_label_selector(
            &spec.selector,
            allow_invalid_selector_values,
            &path.child("selector"),
        ));
    }
    errs.extend(validate_access_modes(modes, &path.child("accessModes")));
    let storage_path = path.child("resources").key("storage");
    match spec
        .resources
        .as_ref()
        .and_then(|r| r.requests.as_ref())
        .and_then(|r| r.get("storage"))
    {
        None => errs.push(FieldError::required(&storage_path, "")),
        Some(q) => match parse_q(q, &storage_path) {
            Err(e) => errs.push(e),
            Ok(q) => {
                let pos = validate_positive_quantity(&q, &storage_path);
                if !pos.is_empty() {
                    errs.extend(pos);
                } else {
                    errs.extend(validate_quantity_value("storage", &q, &storage_path));
                }
            }
        },
    }
    if let Some(sc) = &spec.storage_class_name {
        if !sc.is_empty() {
            errs.extend(msgs_invalid(
                &path.child("storageClassName"),
                sc,
                av::name_is_dns_subdomain(sc, false),
            ));
        }
    }
    if let Some(m) = &spec.volume_mode {
        if !SUPPORTED_VOLUME_MODES.contains(&m.as_str()) {
            errs.push(FieldError::not_supported(
                &path.child("volumeMode"),
                m.as_str(),
                SUPPORTED_VOLUME_MODES,
            ));
        }
    }
    if let Some(ds) = &spec.data_source {
        errs.extend(validate_data_source(
            &ds.name,
            &ds.kind,
            &ds.api_group,
            &None,
            &path.child("dataSource"),
        ));
    }
    if let Some(dr) = &spec.data_source_ref {
        errs.extend(validate_data_source(
            &dr.name,
            &dr.kind,
            &dr.api_group,
            &dr.namespace,
            &path.child("dataSourceRef"),
        ));
    }
    let ref_ns = spec
        .data_source_ref
        .as_ref()
        .map(|r| s(&r.namespace))
        .unwrap_or("");
    if !ref_ns.is_empty() {
        if spec.data_source.is_some() {
            errs.push(FieldError::invalid(
                path,
                path.child("dataSource").to_string(),
                "may not be specified when dataSourceRef.namespace is specified",
            ));
        }
    } else if let (Some(ds), Some(dr)) = (&spec.data_source, &spec.data_source_ref) {
        if ds.api_group != dr.api_group || ds.kind != dr.kind || ds.name != dr.name {
            errs.push(FieldError::invalid(
                path,
                path.child("dataSource").to_string(),
                "must match dataSourceRef",
            ));
        }
    }
    errs
}

fn validate_data_source(
    name: &str,
    kind: &str,
    api_group: &Option<String>,
    namespace: &Option<String>,
    path: &Path,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if name.is_empty() {
        errs.push(FieldError::required(&path.child("name"), ""));
    }
    if kind.is_empty() {
        errs.push(FieldError::required(&path.child("kind"), ""));
    }
    let group = s(api_group);
    if group.is_empty() && kind != "PersistentVolumeClaim" {
        errs.push(FieldError::invalid(
            path,
            kind,
            "must be 'PersistentVolumeClaim' when referencing the default apiGroup",
        ));
    }
    if !group.is_empty() {
        errs.extend(msgs_invalid(
            &path.child("apiGroup"),
            group,
            av::is_dns1123_subdomain(group),
        ));
    }
    let ns = s(namespace);
    if !ns.is_empty() {
        errs.extend(msgs_invalid(
            &path.child("namespace"),
            ns,
            av::validate_namespace_name(ns, false),
        ));
    }
    errs
}

/// Access-mode checks shared by PVs and PVCs.
pub fn validate_access_modes(modes: &[String], path: &Path) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let mut rwop = false;
    let mut other = false;
    for m in modes {
        if !SUPPORTED_ACCESS_MODES.contains(&m.as_str()) {
            errs.push(FieldError::not_supported(
                path,
                m.as_str(),
                SUPPORTED_ACCESS_MODES,
            ));
        }
        if m == "ReadWriteOncePod" {
            rwop = true;
        } else if SUPPORTED_ACCESS_MODES.contains(&m.as_str()) {
            other = true;
        }
    }
    if rwop && other {
        errs.push(FieldError::forbidden(
            path,
            "may not use ReadWriteOncePod with other access modes",
        ));
    }
    errs
}

/// The volumes of a pod spec that passed validation, by name.
pub type VolumeMap<'a> = BTreeMap<&'a str, &'a core::Volume>;

/// Upstream `ValidateVolumes`: returns the valid volumes by name and the
/// errors.
pub fn validate_volumes<'a>(
    volumes: &'a [core::Volume],
    pod_meta: Option<&ObjectMeta>,
    path: &Path,
    resource_is_pod: bool,
) -> (VolumeMap<'a>, Vec<FieldError>) {
    let mut errs = Vec::new();
    let mut names = BTreeSet::new();
    let mut created_pvcs = BTreeSet::new();
    let pod_name = pod_meta.map(|m| s(&m.name)).unwrap_or("");
    if !pod_name.is_empty() {
        for v in volumes {
            if v.ephemeral.is_some() {
                created_pvcs.insert(format!("{pod_name}-{}", v.name));
            }
        }
    }
    let mut vols = BTreeMap::new();
    for (i, v) in volumes.iter().enumerate() {
        let ip = path.index(i);
        let np = || ip.child("name");
        let mut el = validate_volume_source(v, &ip, pod_name, resource_is_pod);
        if v.name.is_empty() {
            el.push(FieldError::required(&np(), ""));
        } else {
            let msgs = av::is_dns1123_label(&v.name);
            if !msgs.is_empty() {
                el.extend(msgs_invalid(&np(), &v.name, msgs));
            }
        }
        if names.contains(v.name.as_str()) {
            el.push(FieldError::duplicate(&np(), v.name.as_str()));
        }
        if el.is_empty() {
            names.insert(v.name.as_str());
            vols.insert(v.name.as_str(), v);
        } else {
            errs.extend(el);
        }
        if let Some(pvc) = &v.persistent_volume_claim {
            if created_pvcs.contains(&pvc.claim_name) {
                errs.push(FieldError::invalid(
                    &ip.child("persistentVolumeClaim").child("claimName"),
                    pvc.claim_name.as_str(),
                    "must not reference a PVC that gets created for an ephemeral volume",
                ));
            }
        }
    }
    (vols, errs)
}

/// Upstream `validateVolumeSource` for one pod volume.
pub fn validate_volume_source(
    v: &core::Volume,
    path: &Path,
    pod_name: &str,
    resource_is_pod: bool,
) -> Vec<FieldError> {
    let mut n = 0;
    let mut errs = Vec::new();
    macro_rules! source {
        ($field:expr, $name:expr, $check:expr) => {
            if let Some(src) = &$field {
                if n > 0 {
                    errs.push(more_than_one(path, $name));
                } else {
                    n += 1;
                    errs.extend(($check)(src));
                }
            }
        };
    }
    if let Some(e) = &v.empty_dir {
        n += 1;
        if let Some(q) = &e.size_limit {
            if let Ok(q) = apimachinery::Quantity::parse(&q.0) {
                if q.sign() < 0 {
                    errs.push(FieldError::forbidden(
                        &path.child("emptyDir").child("sizeLimit"),
                        "SizeLimit field must be a valid resource quantity",
                    ));
                }
            }
        }
    }
    source!(v.host_path, "hostPath", |h: &core::HostPathVolumeSource| {
        validate_host_path(h, &path.child("hostPath"))
    });
    source!(v.git_repo, "gitRepo", |g: &core::GitRepoVolumeSource| {
        let p = path.child("gitRepo");
        let mut e = Vec::new();
        req_if_empty(&g.repository, &p, "repository", &mut e);
        e.extend(validate_local_descending_path(
            s(&g.directory),
            &p.child("directory"),
        ));
        e
    });
    source!(
        v.gce_persistent_disk,
        "gcePersistentDisk",
        |g: &core::GCEPersistentDiskVolumeSource| {
            let p = path.child("persistentDisk");
            let mut e = Vec::new();
            req_if_empty(&g.pd_name, &p, "pdName", &mut e);
            let part = g.partition.unwrap_or(0);
            if !(0..=255).contains(&part) {
                e.push(FieldError::invalid(
                    &p.child("partition"),
                    part,
                    av::inclusive_range_error(1, 255),
                ));
            }
            e
        }
    );
    source!(
        v.aws_elastic_block_store,
        "awsElasticBlockStore",
        |a: &core::AWSElasticBlockStoreVolumeSource| {
            let p = path.child("awsElasticBlockStore");
            let mut e = Vec::new();
            req_if_empty(&a.volume_id, &p, "volumeID", &mut e);
            let part = a.partition.unwrap_or(0);
            if !(0..=255).contains(&part) {
                e.push(FieldError::invalid(
                    &p.child("partition"),
                    part,
                    av::inclusive_range_error(1, 255),
                ));
            }
            e
        }
    );
    source!(v.secret, "secret", |sec: &core::SecretVolumeSource| {
        let p = path.child("secret");
        let mut e = Vec::new();
        if empty(&sec.secret_name) {
            e.push(FieldError::required(&p.child("secretName"), ""));
        }
        e.extend(validate_mode(sec.default_mode, || p.child("defaultMode")));
        for (j, kp) in list(&sec.items).iter().enumerate() {
            e.extend(validate_key_to_path(kp, &p.child("items").index(j)));
        }
        e
    });
    source!(v.nfs, "nfs", |nfs: &core::NFSVolumeSource| validate_nfs(
        nfs,
        &path.child("nfs")
    ));
    if let Some(iscsi) = &v.iscsi {
        if n > 0 {
            errs.push(more_than_one(path, "iscsi"));
        } else {
            n += 1;
            let p = path.child("iscsi");
            req_if_empty(&iscsi.target_portal, &p, "targetPortal", &mut errs);
            errs.extend(validate_iscsi_target(
                &iscsi.iqn,
                iscsi.lun,
                iscsi.chap_auth_discovery.unwrap_or(false)
                    || iscsi.chap_auth_session.unwrap_or(false),
                iscsi.secret_ref.is_some(),
                &iscsi.initiator_name,
                &p,
                "must be valid format starting with iqn, eui, or naa",
            ));
        }
        if iscsi.initiator_name.is_some() && v.name.len() + 1 + iscsi.target_portal.len() > 64 {
            errs.push(FieldError::invalid(&path.child("name"), v.name.as_str(), "Total length of <volume name>:<iscsi.targetPortal> must be under 64 characters if iscsi.initiatorName is specified."));
        }
    }
    source!(
        v.glusterfs,
        "glusterfs",
        |g: &core::GlusterfsVolumeSource| {
            let p = path.child("glusterfs");
            let mut e = Vec::new();
            req_if_empty(&g.endpoints, &p, "endpoints", &mut e);
            req_if_empty(&g.path, &p, "path", &mut e);
            e
        }
    );
    source!(v.flocker, "flocker", |f: &core::FlockerVolumeSource| {
        validate_flocker(f, &path.child("flocker"))
    });
    source!(
        v.persistent_volume_claim,
        "persistentVolumeClaim",
        |c: &core::PersistentVolumeClaimVolumeSource| {
            let mut e = Vec::new();
            req_if_empty(
                &c.claim_name,
                &path.child("persistentVolumeClaim"),
                "claimName",
                &mut e,
            );
            e
        }
    );
    source!(v.rbd, "rbd", |r: &core::RBDVolumeSource| {
        let p = path.child("rbd");
        let mut e = Vec::new();
        if r.monitors.is_empty() {
            e.push(FieldError::required(&p.child("monitors"), ""));
        }
        req_if_empty(&r.image, &p, "image", &mut e);
        e
    });
    source!(v.cinder, "cinder", |c: &core::CinderVolumeSource| {
        let p = path.child("cinder");
        let mut e = Vec::new();
        req_if_empty(&c.volume_id, &p, "volumeID", &mut e);
        if let Some(r) = &c.secret_ref {
            if r.name.is_empty() {
                e.push(FieldError::required(
                    &p.child("secretRef").child("name"),
                    "",
                ));
            }
        }
        e
    });
    source!(v.cephfs, "cephFS", |c: &core::CephFSVolumeSource| {
        let mut e = Vec::new();
        if c.monitors.is_empty() {
            e.push(FieldError::required(
                &path.child("cephfs").child("monitors"),
                "",
            ));
        }
        e
    });
    source!(v.quobyte, "quobyte", |q: &core::QuobyteVolumeSource| {
        validate_quobyte(q, &path.child("quobyte"))
    });
    source!(
        v.downward_api,
        "downwarAPI",
        |d: &core::DownwardAPIVolumeSource| {
            let p = path.child("downwardAPI");
            let mut e = validate_mode(d.default_mode, || p.child("defaultMode"));
            for f in list(&d.items) {
                e.extend(validate_downward_api_file(f, &p));
            }
            e
        }
    );
    source!(v.fc, "fc", |f: &core::FCVolumeSource| validate_fc(
        f,
        &path.child("fc")
    ));
    source!(v.flex_volume, "flexVolume", |f: &core::FlexVolumeSource| {
        validate_flex_options(&f.driver, &f.options, &path.child("flexVolume"))
    });
    source!(
        v.config_map,
        "configMap",
        |c: &core::ConfigMapVolumeSource| {
            let p = path.child("configMap");
            let mut e = Vec::new();
            req_if_empty(&c.name, &p, "name", &mut e);
            e.extend(validate_mode(c.default_mode, || p.child("defaultMode")));
            for (j, kp) in list(&c.items).iter().enumerate() {
                e.extend(validate_key_to_path(kp, &p.child("items").index(j)));
            }
            e
        }
    );
    source!(
        v.azure_file,
        "azureFile",
        |a: &core::AzureFileVolumeSource| {
            let p = path.child("azureFile");
            let mut e = Vec::new();
            req_if_empty(&a.secret_name, &p, "secretName", &mut e);
            req_if_empty(&a.share_name, &p, "shareName", &mut e);
            e
        }
    );
    source!(
        v.vsphere_volume,
        "vsphereVolume",
        |vs: &core::VsphereVirtualDiskVolumeSource| {
            let mut e = Vec::new();
            req_if_empty(
                &vs.volume_path,
                &path.child("vsphereVolume"),
                "volumePath",
                &mut e,
            );
            e
        }
    );
    source!(
        v.photon_persistent_disk,
        "photonPersistentDisk",
        |ph: &core::PhotonPersistentDiskVolumeSource| {
            let mut e = Vec::new();
            req_if_empty(
                &ph.pd_id,
                &path.child("photonPersistentDisk"),
                "pdID",
                &mut e,
            );
            e
        }
    );
    source!(
        v.portworx_volume,
        "portworxVolume",
        |px: &core::PortworxVolumeSource| {
            let mut e = Vec::new();
            req_if_empty(
                &px.volume_id,
                &path.child("portworxVolume"),
                "volumeID",
                &mut e,
            );
            e
        }
    );
    source!(
        v.azure_disk,
        "azureDisk",
        |a: &core::AzureDiskVolumeSource| validate_azure_disk(a, &path.child("azureDisk"))
    );
    source!(
        v.storageos,
        "storageos",
        |so: &core::StorageOSVolumeSource| {
            let p = path.child("storageos");
            let mut e = Vec::new();
            if empty(&so.volume_name) {
                e.push(FieldError::required(&p.child("volumeName"), ""));
            } else {
                e.extend(validate_dns1123_label(
                    s(&so.volume_name),
                    &p.child("volumeName"),
                ));
            }
            if !empty(&so.volume_namespace) {
                e.extend(validate_dns1123_label(
                    s(&so.volume_namespace),
                    &p.child("volumeNamespace"),
                ));
            }
            if let Some(r) = &so.secret_ref {
                if r.name.is_empty() {
                    e.push(FieldError::required(
                        &p.child("secretRef").child("name"),
                        "",
                    ));
                }
            }
            e
        }
    );
    source!(
        v.projected,
        "projected",
        |p: &core::ProjectedVolumeSource| validate_projected(p, &path.child("projected"))
    );
    source!(v.scale_io, "scaleIO", |sio: &core::ScaleIOVolumeSource| {
        let p = path.child("scaleIO");
        let mut e = Vec::new();
        req_if_empty(&sio.gateway, &p, "gateway", &mut e);
        req_if_empty(&sio.system, &p, "system", &mut e);
        if empty(&sio.volume_name) {
            e.push(FieldError::required(&p.child("volumeName"), ""));
        }
        e
    });
    source!(v.csi, "csi", |c: &core::CSIVolumeSource| {
        let p = path.child("csi");
        let mut e = validate_csi_driver_name(&c.driver, &p.child("driver"));
        if let Some(r) = &c.node_publish_secret_ref {
            if r.name.is_empty() {
                e.push(FieldError::required(
                    &p.child("nodePublishSecretRef").child("name"),
                    "",
                ));
            } else {
                e.extend(msgs_invalid(
                    &p.child("name"),
                    &r.name,
                    av::name_is_dns_subdomain(&r.name, false),
                ));
            }
        }
        e
    });
    if let Some(eph) = &v.ephemeral {
        if n > 0 {
            errs.push(more_than_one(path, "ephemeral"));
        } else {
            n += 1;
            errs.extend(validate_ephemeral(eph, &path.child("ephemeral")));
            if !pod_name.is_empty() && !v.name.is_empty() {
                let pvc = format!("{pod_name}-{}", v.name);
                for msg in av::name_is_dns_subdomain(&pvc, false) {
                    errs.push(FieldError::invalid(
                        &path.child("name"),
                        v.name.as_str(),
                        format!("PVC name {}: {msg}", apimachinery::gofmt::quote(&pvc)),
                    ));
                }
            }
        }
    }
    if let Some(img) = &v.image {
        if n > 0 {
            errs.push(more_than_one(path, "image"));
        } else {
            n += 1;
            let p = path.child("image");
            if resource_is_pod && empty(&img.reference) {
                errs.push(FieldError::required(&p.child("reference"), ""));
            }
            errs.extend(crate::core::podspec::validate_pull_policy(
                &img.pull_policy,
                &p.child("pullPolicy"),
            ));
        }
    }
    if n == 0 {
        errs.push(FieldError::required(path, "must specify a volume type"));
    }
    errs
}

const HOST_PATH_TYPES: &[&str] = &[
    "",
    "BlockDevice",
    "CharDevice",
    "Directory",
    "DirectoryOrCreate",
    "File",
    "FileOrCreate",
    "Socket",
];

/// Upstream `validateHostPathVolumeSource`.
pub fn validate_host_path(h: &core::HostPathVolumeSource, path: &Path) -> Vec<FieldError> {
    if h.path.is_empty() {
        return vec![FieldError::required(&path.child("path"), "")];
    }
    let mut errs = validate_path_no_backsteps(&h.path, &path.child("path"));
    if let Some(t) = &h.type_ {
        if !HOST_PATH_TYPES.contains(&t.as_str()) {
            errs.push(FieldError::not_supported(
                &path.child("type"),
                t.as_str(),
                HOST_PATH_TYPES,
            ));
        }
    }
    errs
}

/// Upstream `validateNFSVolumeSource`.
pub fn validate_nfs(nfs: &core::NFSVolumeSource, path: &Path) -> Vec<FieldError> {
    let mut errs = Vec::new();
    req_if_empty(&nfs.server, path, "server", &mut errs);
    req_if_empty(&nfs.path, path, "path", &mut errs);
    if !nfs.path.starts_with('/') {
        errs.push(FieldError::invalid(
            &path.child("path"),
            nfs.path.as_str(),
            "must be an absolute path",
        ));
    }
    errs
}

/// Upstream `validateFlockerVolumeSource`.
pub fn validate_flocker(f: &core::FlockerVolumeSource, path: &Path) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let name = s(&f.dataset_name);
    let uuid = s(&f.dataset_uuid);
    if name.is_empty() && uuid.is_empty() {
        errs.push(FieldError::required(
            path,
            "one of datasetName and datasetUUID is required",
        ));
    }
    if !name.is_empty() && !uuid.is_empty() {
        errs.push(FieldError::invalid(
            path,
            "resource",
            "datasetName and datasetUUID can not be specified simultaneously",
        ));
    }
    if name.contains('/') {
        errs.push(FieldError::invalid(
            &path.child("datasetName"),
            name,
            "must not contain '/'",
        ));
    }
    errs
}

/// Upstream `ValidateNodeSelectorRequirement`.
pub fn validate_node_selector_requirement(
    rq: &core::NodeSelectorRequirement,
    allow_invalid_values: bool,
    path: &Path,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let values = list(&rq.values);
    match rq.operator.as_str() {
        "In" | "NotIn" => {
            if values.is_empty() {
                errs.push(FieldError::required(
                    &path.child("values"),
                    "must be specified when `operator` is 'In' or 'NotIn'",
                ));
            }
        }
        "Exists" | "DoesNotExist" => {
            if !values.is_empty() {
                errs.push(FieldError::forbidden(
                    &path.child("values"),
                    "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                ));
            }
        }
        "Gt" | "Lt" => {
            if values.len() != 1 {
                errs.push(FieldError::required(
                    &path.child("values"),
                    "must be specified single value when `operator` is 'Lt' or 'Gt'",
                ));
            }
        }
        _ => errs.push(FieldError::invalid(
            &path.child("operator"),
            rq.operator.as_str(),
            "not a valid selector operator",
        )),
    }
    errs.extend(validate_label_name(&rq.key, &path.child("key")));
    if !allow_invalid_values {
        for (i, v) in values.iter().enumerate() {
            errs.extend(msgs_invalid(
                &path.child("values").index(i),
                v,
                av::is_valid_label_value(v),
            ));
        }
    }
    errs
}

/// Upstream `ValidateNodeFieldSelectorRequirement`.
pub fn validate_node_field_selector_requirement(
    rq: &core::NodeSelectorRequirement,
    path: &Path,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let values = list(&rq.values);
    match rq.operator.as_str() {
        "In" | "NotIn" => {
            if values.len() != 1 {
                errs.push(FieldError::required(&path.child("values"), "must be only one value when `operator` is 'In' or 'NotIn' for node field selector"));
            }
        }
        _ => errs.push(FieldError::invalid(
            &path.child("operator"),
            rq.operator.as_str(),
            "not a valid selector operator",
        )),
    }
    if rq.key != "metadata.name" {
        errs.push(FieldError::invalid(
            &path.child("key"),
            rq.key.as_str(),
            "not a valid field selector key",
        ));
    } else {
        for (i, v) in values.iter().enumerate() {
            errs.extend(msgs_invalid(
                &path.child("values").index(i),
                v,
                av::name_is_dns_subdomain(v, false),
            ));
        }
    }
    errs
}

/// Upstream `ValidateNodeSelectorTerm`.
pub fn validate_node_selector_term(
    term: &core::NodeSelectorTerm,
    allow_invalid_values: bool,
    path: &Path,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for (j, r) in list(&term.match_expressions).iter().enumerate() {
        errs.extend(validate_node_selector_requirement(
            r,
            allow_invalid_values,
            &path.child("matchExpressions").index(j),
        ));
    }
    for (j, r) in list(&term.match_fields).iter().enumerate() {
        errs.extend(validate_node_field_selector_requirement(
            r,
            &path.child("matchFields").index(j),
        ));
    }
    errs
}

/// Upstream `ValidateNodeSelector`.
pub fn validate_node_selector(
    ns: &core::NodeSelector,
    allow_invalid_values: bool,
    path: &Path,
) -> Vec<FieldError> {
    let tp = path.child("nodeSelectorTerms");
    if ns.node_selector_terms.is_empty() {
        return vec![FieldError::required(
            &tp,
            "must have at least one node selector term",
        )];
    }
    ns.node_selector_terms
        .iter()
        .enumerate()
        .flat_map(|(i, t)| validate_node_selector_term(t, allow_invalid_values, &tp.index(i)))
        .collect()
}

/// Renders a label selector for an error whose bad value is the selector.
pub fn selector_value(
    sel: &k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector,
) -> String {
    go_label_selector(sel)
}
