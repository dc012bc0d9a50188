//! Validation of pod specs and pod templates as upstream's `ValidatePodSpec`,
//! `ValidatePodTemplateSpec` and their helpers (containers, init and
//! ephemeral containers, ports, env, mounts, probes, lifecycle, security
//! contexts, scheduling constraints, DNS), with the validation options that
//! Kubernetes 1.33's default feature gates imply.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

use apimachinery::validation as av;
use apimachinery::{ErrorKind, FieldError, Path};
use k8s_openapi::api::core::v1 as core;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::core::resources::{
    parse_q, validate_container_resource_name, validate_container_resources,
    validate_quantity_value,
};
use crate::core::volumes::{
    validate_container_resource_field_selector, validate_local_descending_path,
    validate_node_selector, validate_node_selector_term, validate_object_field_selector,
    validate_path_no_backsteps, validate_volumes, VolumeMap,
};
use crate::util::{
    b, empty, go_err, go_str_slice, i32v, list, msgs_invalid, s, to_json, validate_annotations,
    validate_dns1123_label, validate_dns1123_subdomain, validate_label_name,
    validate_label_selector, validate_labels, validate_qualified_name, IS_NOT_POSITIVE_ERROR_MSG,
};

/// Pod validation options that vary with the object being validated.
#[derive(Clone, Copy, Debug, Default)]
pub struct PodOpts {
    /// The top-level object is a Pod (not a template embedded in a workload).
    pub resource_is_pod: bool,
}

const ENV_FIELD_PATHS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "spec.nodeName",
    "spec.serviceAccountName",
    "status.hostIP",
    "status.hostIPs",
    "status.podIP",
    "status.podIPs",
];

/// Upstream `validatePullPolicy`.
pub fn validate_pull_policy(policy: &Option<String>, path: &Path) -> Vec<FieldError> {
    match s(policy) {
        "Always" | "IfNotPresent" | "Never" => Vec::new(),
        "" => vec![FieldError::required(path, "")],
        other => vec![FieldError::not_supported(
            path,
            other,
            &["Always", "IfNotPresent", "Never"],
        )],
    }
}

/// Upstream `ValidatePortNumOrName`.
pub fn validate_port_num_or_name(port: &IntOrString, path: &Path) -> Vec<FieldError> {
    match port {
        IntOrString::Int(i) => av::is_valid_port_num(i64::from(*i))
            .into_iter()
            .map(|m| FieldError::invalid(path, *i, m))
            .collect(),
        IntOrString::String(v) => msgs_invalid(path, v, av::is_valid_port_name(v)),
    }
}

/// Whether [`validate_port_num_or_name`] finds nothing to report.
fn port_num_or_name_ok(port: &IntOrString) -> bool {
    match port {
        IntOrString::Int(i) => av::is_valid_port_num(i64::from(*i)).is_empty(),
        IntOrString::String(v) => av::is_valid_port_name(v).is_empty(),
    }
}

fn validate_container_ports(ports: &[core::ContainerPort], path: &Path) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let mut names = BTreeSet::new();
    for (i, port) in ports.iter().enumerate() {
        let ip = path.index(i);
        let name = s(&port.name);
        if !name.is_empty() {
            let msgs = av::is_valid_port_name(name);
            if !msgs.is_empty() {
                errs.extend(msgs_invalid(&ip.child("name"), name, msgs));
            } else if !names.insert(name) {
                errs.push(FieldError::duplicate(&ip.child("name"), name));
            }
        }
        if port.container_port == 0 {
            errs.push(FieldError::required(&ip.child("containerPort"), ""));
        } else {
            for m in av::is_valid_port_num(i64::from(port.container_port)) {
                errs.push(FieldError::invalid(
                    &ip.child("containerPort"),
                    port.container_port,
                    m,
                ));
            }
        }
        let hp = port.host_port.unwrap_or(0);
        if hp != 0 {
            for m in av::is_valid_port_num(i64::from(hp)) {
                errs.push(FieldError::invalid(&ip.child("hostPort"), hp, m));
            }
        }
        match s(&port.protocol) {
            "" => errs.push(FieldError::required(&ip.child("protocol"), "")),
            "TCP" | "UDP" | "SCTP" => {}
            other => errs.push(FieldError::not_supported(
                &ip.child("protocol"),
                other,
                &["SCTP", "TCP", "UDP"],
            )),
        }
    }
    errs
}

fn validate_env(vars: &[core::EnvVar], path: &Path) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for (i, ev) in vars.iter().enumerate() {
        let ip = || path.index(i);
        if ev.name.is_empty() {
            errs.push(FieldError::required(&ip().child("name"), ""));
        } else {
            let msgs = av::is_relaxed_env_var_name(&ev.name);
            if !msgs.is_empty() {
                errs.extend(msgs_invalid(&ip().child("name"), &ev.name, msgs));
            }
        }
        if let Some(vf) = &ev.value_from {
            // The common case, a single well-formed field reference, has
            // nothing to report.
            let plain_field_ref = vf.field_ref.as_ref().is_some_and(field_ref_ok)
                && vf.resource_field_ref.is_none()
                && vf.config_map_key_ref.is_none()
                && vf.secret_key_ref.is_none()
                && empty(&ev.value);
            if !plain_field_ref {
                errs.extend(validate_env_value_from(ev, &ip().child("valueFrom")));
            }
        }
    }
    errs
}

/// Whether an env var's field reference is one that
/// `validate_object_field_selector` accepts without conversion: API version
/// `v1` and a supported, unsubscripted field path.
fn field_ref_ok(fr: &core::ObjectFieldSelector) -> bool {
    s(&fr.api_version) == "v1" && ENV_FIELD_PATHS.contains(&fr.field_path.as_str())
}

fn validate_env_value_from(ev: &core::EnvVar, path: &Path) -> Vec<FieldError> {
    let Some(vf) = &ev.value_from else {
        return Vec::new();
    };
    let mut errs = Vec::new();
    let mut n = 0;
    if let Some(fr) = &vf.field_ref {
        n += 1;
        errs.extend(validate_object_field_selector(
            fr,
            ENV_FIELD_PATHS,
            &path.child("fieldRef"),
        ));
    }
    if let Some(rf) = &vf.resource_field_ref {
        n += 1;
        errs.extend(validate_container_resource_field_selector(
            rf,
            &path.child("resourceFieldRef"),
            false,
        ));
    }
    if let Some(c) = &vf.config_map_key_ref {
        n += 1;
        errs.extend(validate_key_selector(
            &c.name,
            &c.key,
            &path.child("configMapKeyRef"),
        ));
    }
    if let Some(c) = &vf.secret_key_ref {
        n += 1;
        errs.extend(validate_key_selector(
            &c.name,
            &c.key,
            &path.child("secretKeyRef"),
        ));
    }
    if n == 0 {
        errs.push(FieldError::invalid(path, "", "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`"));
    } else if !empty(&ev.value) {
        errs.push(FieldError::invalid(
            path,
            "",
            "may not be specified when `value` is not empty",
        ));
    } else if n > 1 {
        errs.push(FieldError::invalid(
            path,
            "",
            "may not have more than one field specified at a time",
        ));
    }
    errs
}

fn validate_key_selector(name: &str, key: &str, path: &Path) -> Vec<FieldError> {
    let mut errs = msgs_invalid(
        &path.child("name"),
        name,
        av::name_is_dns_subdomain(name, false),
    );
    if key.is_empty() {
        errs.push(FieldError::required(&path.child("key"), ""));
    } else {
        errs.extend(msgs_invalid(
            &path.child("key"),
            key,
            av::is_config_map_key(key),
        ));
    }
    errs
}

fn validate_env_from(vars: &[core::EnvFromSource], path: &Path) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for (i, ev) in vars.iter().enumerate() {
        let ip = path.index(i);
        let prefix = s(&ev.prefix);
        if !prefix.is_empty() {
            errs.extend(msgs_invalid(
                &ip.child("prefix"),
                prefix,
                av::is_relaxed_env_var_name(prefix),
            ));
        }
        let mut n = 0;
        if let Some(c) = &ev.config_map_ref {
            n += 1;
            errs.extend(validate_env_source_name(&c.name, &ip.child("configMapRef")));
        }
        if let Some(c) = &ev.secret_ref {
            n += 1;
            errs.extend(validate_env_source_name(&c.name, &ip.child("secretRef")));
        }
        if n == 0 {
            errs.push(FieldError::invalid(
                path,
                "",
                "must specify one of: `configMapRef` or `secretRef`",
            ));
        } else if n > 1 {
            errs.push(FieldError::invalid(
                path,
                "",
                "may not have more than one field specified at a time",
            ));
        }
    }
    errs
}

fn validate_env_source_name(name: &str, path: &Path) -> Vec<FieldError> {
    if name.is_empty() {
        return vec![FieldError::required(&path.child("name"), "")];
    }
    msgs_invalid(
        &path.child("name"),
        name,
        av::name_is_dns_subdomain(name, true),
    )
}

fn validate_volume_mounts(
    c: &core::Container,
    volumes: &VolumeMap,
    path: &Path,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let mut mount_points = BTreeSet::new();
    let devices: BTreeMap<&str, &str> = list(&c.volume_devices)
        .iter()
        .map(|d| (d.name.as_str(), d.device_path.as_str()))
        .collect();
    let privileged = c
        .security_context
        .as_ref()
        .and_then(|sc| sc.privileged)
        .unwrap_or(false);
    for (i, m) in list(&c.volume_mounts).iter().enumerate() {
        let ip = path.index(i);
        if m.name.is_empty() {
            errs.push(FieldError::required(&ip.child("name"), ""));
        }
        if !volumes.contains_key(m.name.as_str()) {
            errs.push(FieldError::not_found(&ip.child("name"), m.name.as_str()));
        }
        if m.mount_path.is_empty() {
            errs.push(FieldError::required(&ip.child("mountPath"), ""));
        }
        if !mount_points.insert(m.mount_path.as_str()) {
            errs.push(FieldError::invalid(
                &ip.child("mountPath"),
                m.mount_path.as_str(),
                "must be unique",
            ));
        }
        if devices.contains_key(m.name.as_str()) {
            errs.push(FieldError::invalid(
                &ip.child("name"),
                m.name.as_str(),
                "must not already exist in volumeDevices",
            ));
        }
        if devices.values().any(|p| *p == m.mount_path) {
            errs.push(FieldError::invalid(
                &ip.child("mountPath"),
                m.mount_path.as_str(),
                "must not already exist as a path in volumeDevices",
            ));
        }
        if volumes
            .get(m.name.as_str())
            .is_some_and(|v| v.image.is_some())
        {
            if !empty(&m.sub_path) {
                errs.push(FieldError::invalid(
                    &ip.child("subPath"),
                    s(&m.sub_path),
                    "not allowed in image volume sources",
                ));
            }
            if !empty(&m.sub_path_expr) {
                errs.push(FieldError::invalid(
                    &ip.child("subPathExpr"),
                    s(&m.sub_path_expr),
                    "not allowed in image volume sources",
                ));
            }
        }
        if !empty(&m.sub_path) {
            errs.extend(validate_local_descending_path(
                s(&m.sub_path),
                &path.child("subPath"),
            ));
        }
        if !empty(&m.sub_path_expr) {
            if !empty(&m.sub_path) {
                errs.push(FieldError::invalid(
                    &ip.child("subPathExpr"),
                    s(&m.sub_path_expr),
                    "subPathExpr and subPath are mutually exclusive",
                ));
            }
            errs.extend(validate_local_descending_path(
                s(&m.sub_path_expr),
                &path.child("subPathExpr"),
            ));
        }
        if let Some(mp) = &m.mount_propagation {
            let pp = path.child("mountPropagation");
            let supported = ["Bidirectional", "HostToContainer", "None"];
            if !supported.contains(&mp.as_str()) {
                errs.push(FieldError::not_supported(&pp, mp.as_str(), &supported));
            }
            if mp == "Bidirectional" && !privileged {
                errs.push(FieldError::forbidden(
                    &pp,
                    "Bidirectional mount propagation is available only to privileged containers",
                ));
            }
        }
        if let Some(rro) = &m.recursive_read_only {
            let rp = path.child("recursiveReadOnly");
            match rro.as_str() {
                "Disabled" => {}
                "Enabled" | "IfPossible" => {
                    if !b(m.read_only) {
                        errs.push(FieldError::forbidden(
                            &rp,
                            "may only be specified when readOnly is true",
                        ));
                    }
                    if m.mount_propagation.as_deref().is_some_and(|p| p != "None") {
                        errs.push(FieldError::forbidden(
                            &rp,
                            "may only be specified when mountPropagation is None or not specified",
                        ));
                    }
                }
                other => errs.push(FieldError::not_supported(
                    &rp,
                    other,
                    &["Disabled", "Enabled", "IfPossible"],
                )),
            }
        }
    }
    errs
}

fn validate_volume_devices(
    c: &core::Container,
    volumes: &VolumeMap,
    path: &Path,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let mounts: BTreeMap<&str, &str> = list(&c.volume_mounts)
        .iter()
        .map(|m| (m.name.as_str(), m.mount_path.as_str()))
        .collect();
    let mut paths = BTreeSet::new();
    let mut names = BTreeSet::new();
    for (i, d) in list(&c.volume_devices).iter().enumerate() {
        let ip = path.index(i);
        let matched = volumes.get(d.name.as_str());
        let is_pvc =
            matched.is_some_and(|v| v.persistent_volume_claim.is_some() || v.ephemeral.is_some());
        if d.name.is_empty() {
            errs.push(FieldError::required(&ip.child("name"), ""));
        }
        if names.contains(&d.name) {
            errs.push(FieldError::invalid(
                &ip.child("name"),
                d.name.as_str(),
                "must be unique",
            ));
        }
        if matched.is_some() && !is_pvc {
            errs.push(FieldError::invalid(&ip.child("name"), d.name.as_str(), "can only use volume source type of PersistentVolumeClaim or Ephemeral for block mode"));
        }
        if matched.is_none() {
            errs.push(FieldError::not_found(&ip.child("name"), d.name.as_str()));
        }
        if d.device_path.is_empty() {
            errs.push(FieldError::required(&ip.child("devicePath"), ""));
        }
        if paths.contains(&d.device_path) {
            errs.push(FieldError::invalid(
                &ip.child("devicePath"),
                d.device_path.as_str(),
                "must be unique",
            ));
        }
        if !d.device_path.is_empty()
            && !validate_path_no_backsteps(&d.device_path, &path.child("devicePath")).is_empty()
        {
            errs.push(FieldError::invalid(
                &ip.child("devicePath"),
                d.device_path.as_str(),
                "can not contain backsteps ('..')",
            ));
        } else {
            paths.insert(d.device_path.clone());
        }
        if mounts.contains_key(d.name.as_str()) {
            errs.push(FieldError::invalid(
                &ip.child("name"),
                d.name.as_str(),
                "must not already exist in volumeMounts",
            ));
        }
        if mounts.values().any(|p| *p == d.device_path) {
            errs.push(FieldError::invalid(
                &ip.child("devicePath"),
                d.device_path.as_str(),
                "must not already exist as a path in volumeMounts",
            ));
        }
        if !d.name.is_empty() {
            names.insert(d.name.clone());
        }
    }
    errs
}

fn validate_resize_policy(
    policies: &[core::ContainerResizePolicy],
    path: &Path,
    restart_policy: &str,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let mut seen = BTreeSet::new();
    for (i, p) in policies.iter().enumerate() {
        if !seen.insert(p.resource_name.clone()) {
            errs.push(FieldError::duplicate(
                &path.index(i),
                p.resource_name.as_str(),
            ));
        }
        match p.resource_name.as_str() {
            "cpu" | "memory" => {}
            "" => errs.push(FieldError::required(path, "")),
            other => errs.push(FieldError::not_supported(path, other, &["cpu", "memory"])),
        }
        match p.restart_policy.as_str() {
            "NotRequired" | "RestartContainer" => {}
            "" => errs.push(FieldError::required(path, "")),
            other => errs.push(FieldError::not_supported(
                path,
                other,
                &["NotRequired", "RestartContainer"],
            )),
        }
        if restart_policy == "Never" && p.restart_policy != "NotRequired" {
            errs.push(FieldError::invalid(
                path,
                p.restart_policy.as_str(),
                "must be 'NotRequired' when `restartPolicy` is 'Never'",
            ));
        }
    }
    errs
}

fn validate_seccomp_profile(sp: &Option<core::SeccompProfile>, path: &Path) -> Vec<FieldError> {
    let Some(sp) = sp else {
        return Vec::new();
    };
    let mut errs = Vec::new();
    match sp.type_.as_str() {
        "Localhost" | "RuntimeDefault" | "Unconfined" => {}
        "" => errs.push(FieldError::required(
            &path.child("type"),
            "type is required when seccompProfile is set",
        )),
        other => errs.push(FieldError::not_supported(
            &path.child("type"),
            other,
            &["Localhost", "RuntimeDefault", "Unconfined"],
        )),
    }
    if sp.type_ == "Localhost" {
        match &sp.localhost_profile {
            None => errs.push(FieldError::required(
                &path.child("localhostProfile"),
                "must be set when seccomp type is Localhost",
            )),
            Some(p) => errs.extend(validate_local_descending_path(
                p,
                &path.child("localhostProfile"),
            )),
        }
    } else if sp.localhost_profile.is_some() {
        errs.push(FieldError::invalid(
            &path.child("localhostProfile"),
            to_json(sp),
            "can only be set when seccomp type is Localhost",
        ));
    }
    errs
}

/// Upstream `ValidateAppArmorProfileField`.
pub fn validate_app_armor_profile(
    p: &Option<core::AppArmorProfile>,
    path: &Path,
) -> Vec<FieldError> {
    let Some(p) = p else {
        return Vec::new();
    };
    let mut errs = Vec::new();
    match p.type_.as_str() {
        "Localhost" => match &p.localhost_profile {
            None => errs.push(FieldError::required(
                &path.child("localhostProfile"),
                "must be set when AppArmor type is Localhost",
            )),
            Some(lp) => {
                let trimmed = lp.trim();
                if trimmed != lp {
                    errs.push(FieldError::invalid(
                        &path.child("localhostProfile"),
                        lp.as_str(),
                        "must not be padded with whitespace",
                    ));
                } else if trimmed.is_empty() {
                    errs.push(FieldError::required(
                        &path.child("localhostProfile"),
                        "must be set when AppArmor type is Localhost",
                    ));
                }
                if lp.len() > 4095 {
                    errs.push(FieldError::too_long(
                        &path.child("localhostProfile"),
                        "",
                        4095,
                    ));
                }
            }
        },
        "RuntimeDefault" | "Unconfined" => {
            if let Some(lp) = &p.localhost_profile {
                errs.push(FieldError::invalid(
                    &path.child("localhostProfile"),
                    lp.as_str(),
                    "can only be set when AppArmor type is Localhost",
                ));
            }
        }
        "" => errs.push(FieldError::required(
            &path.child("type"),
            "type is required when appArmorProfile is set",
        )),
        other => errs.push(FieldError::not_supported(
            &path.child("type"),
            other,
            &["Localhost", "RuntimeDefault", "Unconfined"],
        )),
    }
    errs
}

fn validate_windows_options(
    w: &Option<core::WindowsSecurityContextOptions>,
    path: &Path,
) -> Vec<FieldError> {
    let Some(w) = w else {
        return Vec::new();
    };
    let mut errs = Vec::new();
    if let Some(n) = &w.gmsa_credential_spec_name {
        errs.extend(msgs_invalid(
            &path.child("gmsaCredentialSpecName"),
            n,
            av::is_dns1123_subdomain(n),
        ));
    }
    if let Some(spec) = &w.gmsa_credential_spec {
        if spec.is_empty() {
            errs.push(FieldError::invalid(
                &path.child("gmsaCredentialSpec"),
                spec.as_str(),
                "gmsaCredentialSpec cannot be an empty string",
            ));
        } else if spec.len() > 64 * 1024 {
            errs.push(FieldError::invalid(
                &path.child("gmsaCredentialSpec"),
                spec.as_str(),
                "gmsaCredentialSpec size must be under 64 KiB",
            ));
        }
    }
    if let Some(u) = &w.run_as_user_name {
        let p = path.child("runAsUserName");
        let parts: Vec<&str> = u.split('\\').collect();
        if u.is_empty() {
            errs.push(FieldError::invalid(
                &p,
                u.as_str(),
                "runAsUserName cannot be an empty string",
            ));
        } else if u.chars().any(|c| c.is_ascii_control()) {
            errs.push(FieldError::invalid(
                &p,
                u.as_str(),
                "runAsUserName cannot contain control characters",
            ));
        } else if parts.len() > 2 {
            errs.push(FieldError::invalid(
                &p,
                u.as_str(),
                "runAsUserName cannot contain more than one backslash",
            ));
        } else {
            let (has_domain, domain, user) = if parts.len() == 1 {
                (false, "", parts[0])
            } else {
                (true, parts[0], parts[1])
            };
            if domain.len() >= 256 {
                errs.push(FieldError::invalid(
                    &p,
                    u.as_str(),
                    "runAsUserName's Domain length must be under 256 characters",
                ));
            }
            if has_domain && !(netbios_ok(domain) || windows_dns_ok(domain)) {
                errs.push(FieldError::invalid(
                    &p,
                    u.as_str(),
                    "runAsUserName's Domain doesn't match the NetBios nor the DNS format",
                ));
            }
            if user.is_empty() {
                errs.push(FieldError::invalid(
                    &p,
                    u.as_str(),
                    "runAsUserName's User cannot be empty",
                ));
            } else if user.len() > 104 {
                errs.push(FieldError::invalid(
                    &p,
                    u.as_str(),
                    "runAsUserName's User length must not be longer than 104 characters",
                ));
            }
            if !user.is_empty() && user.chars().all(|c| c == '.' || c == ' ') {
                errs.push(FieldError::invalid(
                    &p,
                    u.as_str(),
                    "runAsUserName's User cannot contain only periods or spaces",
                ));
            }
            if user.chars().any(|c| "\"/\\:;|=,+*?<>@[]".contains(c)) {
                errs.push(FieldError::invalid(&p, u.as_str(), r#"runAsUserName's User cannot contain the following characters: "/\:;|=,+*?<>@[]"#));
            }
        }
    }
    errs
}

fn netbios_ok(d: &str) -> bool {
    let bad = |c: char| "\\/:*?\"<>|".contains(c);
    let mut chars = d.chars();
    match chars.next() {
        Some(f) if !bad(f) && f != '.' => {}
        _ => return false,
    }
    let rest: Vec<char> = chars.collect();
    rest.len() <= 14 && rest.iter().all(|c| !bad(*c))
}

fn windows_dns_ok(d: &str) -> bool {
    d.split('.').all(|l| {
        let b = l.as_bytes();
        !b.is_empty()
            && b.len() <= 63
            && b[0].is_ascii_alphanumeric()
            && b[b.len() - 1].is_ascii_alphanumeric()
            && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
    })
}

/// Upstream `ValidateSecurityContext` (privileged containers allowed, as
/// with `--allow-privileged=true`).
fn validate_security_context(
    sc: &Option<core::SecurityContext>,
    path: &Path,
    host_users: bool,
) -> Vec<FieldError> {
    let Some(sc) = sc else {
        return Vec::new();
    };
    let mut errs = Vec::new();
    if let Some(u) = sc.run_as_user {
        for m in av::is_valid_user_id(u) {
            errs.push(FieldError::invalid(&path.child("runAsUser"), u, m));
        }
    }
    if let Some(g) = sc.run_as_group {
        for m in av::is_valid_group_id(g) {
            errs.push(FieldError::invalid(&path.child("runAsGroup"), g, m));
        }
    }
    if let Some(pm) = &sc.proc_mount {
        if pm != "Default" && pm != "Unmasked" {
            errs.push(FieldError::not_supported(
                &path.child("procMount"),
                pm.as_str(),
                &["Default", "Unmasked"],
            ));
        }
        if host_users && pm == "Unmasked" {
            errs.push(FieldError::invalid(
                &path.child("procMount"),
                pm.as_str(),
                "`hostUsers` must be false to use `Unmasked`",
            ));
        }
    }
    errs.extend(validate_seccomp_profile(
        &sc.seccomp_profile,
        &path.child("seccompProfile"),
    ));
    if sc.allow_privilege_escalation == Some(false) {
        if sc.privileged == Some(true) {
            errs.push(FieldError::invalid(
                path,
                to_json(sc),
                "cannot set `allowPrivilegeEscalation` to false and `privileged` to true",
            ));
        }
        if let Some(caps) = &sc.capabilities {
            for c in list(&caps.add) {
                if c == "CAP_SYS_ADMIN" {
                    errs.push(FieldError::invalid(path, to_json(sc), "cannot set `allowPrivilegeEscalation` to false and `capabilities.Add` CAP_SYS_ADMIN"));
                }
            }
        }
    }
    errs.extend(validate_windows_options(
        &sc.windows_options,
        &path.child("windowsOptions"),
    ));
    errs.extend(validate_app_armor_profile(
        &sc.app_armor_profile,
        &path.child("appArmorProfile"),
    ));
    errs
}

/// Converts an ephemeral container into a container (same fields).
pub fn ephemeral_as_container(ec: &core::EphemeralContainer) -> core::Container {
    core::Container {
        args: ec.args.clone(),
        command: ec.command.clone(),
        env: ec.env.clone(),
        env_from: ec.env_from.clone(),
        image: ec.image.clone(),
        image_pull_policy: ec.image_pull_policy.clone(),
        lifecycle: ec.lifecycle.clone(),
        liveness_probe: ec.liveness_probe.clone(),
        name: ec.name.clone(),
        ports: ec.ports.clone(),
        readiness_probe: ec.readiness_probe.clone(),
        resize_policy: ec.resize_policy.clone(),
        resources: ec.resources.clone(),
        restart_policy: ec.restart_policy.clone(),
        security_context: ec.security_context.clone(),
        startup_probe: ec.startup_probe.clone(),
        stdin: ec.stdin,
        stdin_once: ec.stdin_once,
        termination_message_path: ec.termination_message_path.clone(),
        termination_message_policy: ec.termination_message_policy.clone(),
        tty: ec.tty,
        volume_devices: ec.volume_devices.clone(),
        volume_mounts: ec.volume_mounts.clone(),
        working_dir: ec.working_dir.clone(),
    }
}

fn validate_container_common(
    c: &core::Container,
    volumes: &VolumeMap,
    claim_names: &BTreeSet<String>,
    path: &Path,
    restart_policy: &str,
    host_users: bool,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if c.name.is_empty() {
        errs.push(FieldError::required(&path.child("name"), ""));
    } else {
        let msgs = av::is_dns1123_label(&c.name);
        if !msgs.is_empty() {
            errs.extend(msgs_invalid(&path.child("name"), &c.name, msgs));
        }
    }
    if empty(&c.image) {
        errs.push(FieldError::required(&path.child("image"), ""));
    }
    match s(&c.termination_message_policy) {
        "File" | "FallbackToLogsOnError" => {}
        "" => errs.push(FieldError::required(
            &path.child("terminationMessagePolicy"),
            "",
        )),
        other => errs.push(FieldError::not_supported(
            &path.child("terminationMessagePolicy"),
            other,
            &["File", "FallbackToLogsOnError"],
        )),
    }
    // Sub-paths are built only for the parts that are set: empty parts
    // have nothing to report.
    if !list(&c.ports).is_empty() {
        errs.extend(validate_container_ports(
            list(&c.ports),
            &path.child("ports"),
        ));
    }
    if !list(&c.env).is_empty() {
        errs.extend(validate_env(list(&c.env), &path.child("env")));
    }
    if !list(&c.env_from).is_empty() {
        errs.extend(validate_env_from(list(&c.env_from), &path.child("envFrom")));
    }
    if !list(&c.volume_mounts).is_empty() {
        errs.extend(validate_volume_mounts(
            c,
            volumes,
            &path.child("volumeMounts"),
        ));
    }
    if !list(&c.volume_devices).is_empty() {
        errs.extend(validate_volume_devices(
            c,
            volumes,
            &path.child("volumeDevices"),
        ));
    }
    if !matches!(s(&c.image_pull_policy), "Always" | "IfNotPresent" | "Never") {
        errs.extend(validate_pull_policy(
            &c.image_pull_policy,
            &path.child("imagePullPolicy"),
        ));
    }
    if c.resources.is_some() {
        errs.extend(validate_container_resources(
            &c.resources,
            claim_names,
            &path.child("resources"),
        ));
    }
    if !list(&c.resize_policy).is_empty() {
        errs.extend(validate_resize_policy(
            list(&c.resize_policy),
            &path.child("resizePolicy"),
            restart_policy,
        ));
    }
    if c.security_context.is_some() {
        errs.extend(validate_security_context(
            &c.security_context,
            &path.child("securityContext"),
            host_users,
        ));
    }
    errs
}

fn validate_handler(
    exec: &Option<core::ExecAction>,
    http: &Option<core::HTTPGetAction>,
    tcp: &Option<core::TCPSocketAction>,
    grpc: &Option<core::GRPCAction>,
    sleep: &Option<core::SleepAction>,
    grace: Option<i64>,
    path: &Path,
) -> Vec<FieldError> {
    let mut n = 0;
    let mut errs = Vec::new();
    let mut handler =
        |set: bool, name: &str, check: &dyn Fn() -> Vec<FieldError>, errs: &mut Vec<FieldError>| {
            if !set {
                return;
            }
            if n > 0 {
                errs.push(FieldError::forbidden(
                    &path.child(name),
                    "may not specify more than 1 handler type",
                ));
            } else {
                n += 1;
                errs.extend(check());
            }
        };
    handler(
        exec.is_some(),
        "exec",
        &|| match exec {
            Some(e) if list(&e.command).is_empty() => vec![FieldError::required(
                &path.child("exec").child("command"),
                "",
            )],
            _ => Vec::new(),
        },
        &mut errs,
    );
    handler(
        http.is_some(),
        "httpGet",
        &|| match http {
            Some(h) => {
                let p = path.child("httpGet");
                let mut e = Vec::new();
                if empty(&h.path) {
                    e.push(FieldError::required(&p.child("path"), ""));
                }
                if !port_num_or_name_ok(&h.port) {
                    e.extend(validate_port_num_or_name(&h.port, &p.child("port")));
                }
                let scheme = s(&h.scheme);
                if scheme != "HTTP" && scheme != "HTTPS" {
                    e.push(FieldError::not_supported(
                        &p.child("scheme"),
                        scheme,
                        &["HTTP", "HTTPS"],
                    ));
                }
                for hdr in list(&h.http_headers) {
                    e.extend(msgs_invalid(
                        &p.child("httpHeaders"),
                        &hdr.name,
                        av::is_http_header_name(&hdr.name),
                    ));
                }
                e
            }
            None => Vec::new(),
        },
        &mut errs,
    );
    handler(
        tcp.is_some(),
        "tcpSocket",
        &|| match tcp {
            Some(t) => validate_port_num_or_name(&t.port, &path.child("tcpSocket").child("port")),
            None => Vec::new(),
        },
        &mut errs,
    );
    handler(
        grpc.is_some(),
        "grpc",
        &|| match grpc {
            Some(g) => validate_port_num_or_name(
                &IntOrString::Int(g.port),
                &path.child("grpc").child("port"),
            ),
            None => Vec::new(),
        },
        &mut errs,
    );
    handler(
        sleep.is_some(),
        "sleep",
        &|| match (sleep, grace) {
            (Some(sl), Some(g)) if sl.seconds < 0 || sl.seconds > g => vec![FieldError::invalid(
                &path.child("sleep"),
                sl.seconds,
                format!("must be non-negative and less than terminationGracePeriodSeconds ({g})"),
            )],
            _ => Vec::new(),
        },
        &mut errs,
    );
    if n == 0 {
        errs.push(FieldError::required(path, "must specify a handler type"));
    }
    errs
}

fn validate_lifecycle(l: &core::Lifecycle, grace: Option<i64>, path: &Path) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if let Some(h) = &l.post_start {
        errs.extend(validate_handler(
            &h.exec,
            &h.http_get,
            &h.tcp_socket,
            &None,
            &h.sleep,
            grace,
            &path.child("postStart"),
        ));
    }
    if let Some(h) = &l.pre_stop {
        errs.extend(validate_handler(
            &h.exec,
            &h.http_get,
            &h.tcp_socket,
            &None,
            &h.sleep,
            grace,
            &path.child("preStop"),
        ));
    }
    errs
}

fn validate_probe(p: &core::Probe, grace: Option<i64>, path: &Path) -> Vec<FieldError> {
    let mut errs = validate_handler(
        &p.exec,
        &p.http_get,
        &p.tcp_socket,
        &p.grpc,
        &None,
        grace,
        path,
    );
    for (v, name) in [
        (p.initial_delay_seconds, "initialDelaySeconds"),
        (p.timeout_seconds, "timeoutSeconds"),
        (p.period_seconds, "periodSeconds"),
        (p.success_threshold, "successThreshold"),
        (p.failure_threshold, "failureThreshold"),
    ] {
        if i32v(v) < 0 {
            errs.extend(av::validate_nonnegative_field(
                i64::from(i32v(v)),
                &path.child(name),
            ));
        }
    }
    if let Some(t) = p.termination_grace_period_seconds {
        if t <= 0 {
            errs.push(FieldError::invalid(
                &path.child("terminationGracePeriodSeconds"),
                t,
                "must be greater than 0",
            ));
        }
    }
    errs
}

fn validate_liveness_or_startup(
    p: &Option<core::Probe>,
    grace: Option<i64>,
    path: &Path,
) -> Vec<FieldError> {
    let Some(p) = p else {
        return Vec::new();
    };
    let mut errs = validate_probe(p, grace, path);
    let st = i32v(p.success_threshold);
    if st != 1 {
        errs.push(FieldError::invalid(
            &path.child("successThreshold"),
            st,
            "must be 1",
        ));
    }
    errs
}

fn validate_readiness(p: &Option<core::Probe>, grace: Option<i64>, path: &Path) -> Vec<FieldError> {
    let Some(p) = p else {
        return Vec::new();
    };
    let mut errs = validate_probe(p, grace, path);
    if let Some(t) = p.termination_grace_period_seconds {
        errs.push(FieldError::invalid(
            &path.child("terminationGracePeriodSeconds"),
            t,
            "must not be set for readinessProbes",
        ));
    }
    errs
}

fn check_host_port_conflicts<'a>(
    containers: impl IntoIterator<Item = &'a core::Container>,
    path: &Path,
    seen: &mut BTreeSet<String>,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for (ci, c) in containers.into_iter().enumerate() {
        for (pi, p) in list(&c.ports).iter().enumerate() {
            let hp = p.host_port.unwrap_or(0);
            if hp == 0 {
                continue;
            }
            let key = format!("{}/{}/{}", s(&p.protocol), s(&p.host_ip), hp);
            if !seen.insert(key.clone()) {
                errs.push(FieldError::duplicate(
                    &path.index(ci).child("ports").index(pi).child("hostPort"),
                    key,
                ));
            }
        }
    }
    errs
}

fn validate_containers(
    containers: &[core::Container],
    volumes: &VolumeMap,
    claim_names: &BTreeSet<String>,
    grace: Option<i64>,
    path: &Path,
    restart_policy: &str,
    host_users: bool,
) -> Vec<FieldError> {
    if containers.is_empty() {
        return vec![FieldError::required(path, "")];
    }
    let mut errs = Vec::new();
    let mut names = BTreeSet::new();
    for (i, c) in containers.iter().enumerate() {
        let p = path.index(i);
        errs.extend(validate_container_common(
            c,
            volumes,
            claim_names,
            &p,
            restart_policy,
            host_users,
        ));
        if !names.insert(c.name.as_str()) {
            errs.push(FieldError::duplicate(&p.child("name"), c.name.as_str()));
        }
        if let Some(l) = &c.lifecycle {
            errs.extend(validate_lifecycle(l, grace, &p.child("lifecycle")));
        }
        if c.liveness_probe.is_some() {
            errs.extend(validate_liveness_or_startup(
                &c.liveness_probe,
                grace,
                &p.child("livenessProbe"),
            ));
        }
        if c.readiness_probe.is_some() {
            errs.extend(validate_readiness(
                &c.readiness_probe,
                grace,
                &p.child("readinessProbe"),
            ));
        }
        if c.startup_probe.is_some() {
            errs.extend(validate_liveness_or_startup(
                &c.startup_probe,
                grace,
                &p.child("startupProbe"),
            ));
        }
        if c.restart_policy.is_some() {
            errs.push(FieldError::forbidden(
                &p.child("restartPolicy"),
                "may not be set for non-init containers",
            ));
        }
    }
    errs.extend(check_host_port_conflicts(
        containers,
        path,
        &mut BTreeSet::new(),
    ));
    errs
}

#[allow(clippy::too_many_arguments)]
fn validate_init_containers(
    containers: &[core::Container],
    regular: &[core::Container],
    volumes: &VolumeMap,
    claim_names: &BTreeSet<String>,
    grace: Option<i64>,
    path: &Path,
    restart_policy: &str,
    host_users: bool,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let mut names: BTreeSet<&str> = regular.iter().map(|c| c.name.as_str()).collect();
    for (i, c) in containers.iter().enumerate() {
        let ip = path.index(i);
        errs.extend(validate_container_common(
            c,
            volumes,
            claim_names,
            &ip,
            restart_policy,
            host_users,
        ));
        let mut restart_always = false;
        if let Some(rp) = &c.restart_policy {
            if rp != "Always" {
                errs.push(FieldError::not_supported(
                    &ip.child("restartPolicy"),
                    rp.as_str(),
                    &["Always"],
                ));
            }
            restart_always = rp == "Always";
        }
        if names.contains(c.name.as_str()) {
            errs.push(FieldError::duplicate(&ip.child("name"), c.name.as_str()));
        } else if !c.name.is_empty() {
            names.insert(c.name.as_str());
        }
        errs.extend(check_host_port_conflicts([c], path, &mut BTreeSet::new()));
        if restart_always {
            if let Some(l) = &c.lifecycle {
                errs.extend(validate_lifecycle(l, grace, &ip.child("lifecycle")));
            }
            errs.extend(validate_liveness_or_startup(
                &c.liveness_probe,
                grace,
                &ip.child("livenessProbe"),
            ));
            errs.extend(validate_readiness(
                &c.readiness_probe,
                grace,
                &ip.child("readinessProbe"),
            ));
            errs.extend(validate_liveness_or_startup(
                &c.startup_probe,
                grace,
                &ip.child("startupProbe"),
            ));
        } else {
            let msg = "may not be set for init containers without restartPolicy=Always";
            if c.lifecycle.is_some() {
                errs.push(FieldError::forbidden(&ip.child("lifecycle"), msg));
            }
            if c.liveness_probe.is_some() {
                errs.push(FieldError::forbidden(&ip.child("livenessProbe"), msg));
            }
            if c.readiness_probe.is_some() {
                errs.push(FieldError::forbidden(&ip.child("readinessProbe"), msg));
            }
            if c.startup_probe.is_some() {
                errs.push(FieldError::forbidden(&ip.child("startupProbe"), msg));
            }
        }
    }
    errs
}

/// Upstream `validateContainerOnlyForPod`: no leading or trailing
/// whitespace in the image.
/// `path` (the container's) is only built when reporting.
fn validate_container_only_for_pod(
    image: &Option<String>,
    path: impl FnOnce() -> Path,
) -> Vec<FieldError> {
    let img = s(image);
    if img.len() != img.trim().len() {
        return vec![FieldError::invalid(
            &path().child("image"),
            img,
            "must not have leading or trailing whitespace",
        )];
    }
    Vec::new()
}

#[allow(clippy::too_many_arguments)]
fn validate_ephemeral_containers(
    ecs: &[core::EphemeralContainer],
    containers: &[core::Container],
    init: &[core::Container],
    volumes: &VolumeMap,
    claim_names: &BTreeSet<String>,
    path: &Path,
    restart_policy: &str,
    host_users: bool,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if ecs.is_empty() {
        return errs;
    }
    let other: BTreeSet<&str> = containers
        .iter()
        .chain(init)
        .map(|c| c.name.as_str())
        .collect();
    let mut all: BTreeSet<String> = other.iter().map(|n| n.to_string()).collect();
    for (i, ec) in ecs.iter().enumerate() {
        let ip = path.index(i);
        let c = ephemeral_as_container(ec);
        errs.extend(validate_container_common(
            &c,
            volumes,
            claim_names,
            &ip,
            restart_policy,
            host_users,
        ));
        errs.extend(validate_container_only_for_pod(&c.image, || ip.clone()));
        if !all.insert(ec.name.clone()) {
            errs.push(FieldError::duplicate(&ip.child("name"), ec.name.as_str()));
        }
        let target = s(&ec.target_container_name);
        if !target.is_empty() && !other.contains(target) {
            errs.push(FieldError::not_found(
                &ip.child("targetContainerName"),
                target,
            ));
        }
        let msg = "cannot be set for an Ephemeral Container";
        let resources_set = ec.resources.as_ref().is_some_and(|r| {
            r.limits.as_ref().is_some_and(|m| !m.is_empty())
                || r.requests.as_ref().is_some_and(|m| !m.is_empty())
                || r.claims.as_ref().is_some_and(|m| !m.is_empty())
        });
        for (set, name) in [
            (ec.ports.as_ref().is_some_and(|v| !v.is_empty()), "ports"),
            (resources_set, "resources"),
            (
                ec.resize_policy.as_ref().is_some_and(|v| !v.is_empty()),
                "resizePolicy",
            ),
            (ec.restart_policy.is_some(), "restartPolicy"),
            (ec.liveness_probe.is_some(), "livenessProbe"),
            (ec.readiness_probe.is_some(), "readinessProbe"),
            (ec.startup_probe.is_some(), "startupProbe"),
            (ec.lifecycle.is_some(), "lifecycle"),
        ] {
            if set {
                errs.push(FieldError::forbidden(&ip.child(name), msg));
            }
        }
        for (j, vm) in list(&ec.volume_mounts).iter().enumerate() {
            if !empty(&vm.sub_path) {
                errs.push(FieldError::forbidden(
                    &ip.child("volumeMounts").index(j).child("subPath"),
                    msg,
                ));
            }
            if !empty(&vm.sub_path_expr) {
                errs.push(FieldError::forbidden(
                    &ip.child("volumeMounts").index(j).child("subPathExpr"),
                    msg,
                ));
            }
        }
    }
    errs
}

fn validate_pod_resource_claims(claims: &[core::PodResourceClaim], path: &Path) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let mut names = BTreeSet::new();
    for (i, c) in claims.iter().enumerate() {
        let p = path.index(i);
        if c.name.is_empty() {
            errs.push(FieldError::required(&p.child("name"), ""));
        } else if names.contains(&c.name) {
            errs.push(FieldError::duplicate(&p.child("name"), c.name.as_str()));
        } else {
            errs.extend(validate_dns1123_label(&c.name, &p.child("name")));
            names.insert(c.name.clone());
        }
        match (&c.resource_claim_name, &c.resource_claim_template_name) {
            (Some(_), Some(_)) => errs.push(FieldError::invalid(&p, to_json(c), "at most one of `resourceClaimName` or `resourceClaimTemplateName` may be specified")),
            (None, None) => errs.push(FieldError::invalid(&p, to_json(c), "must specify one of: `resourceClaimName`, `resourceClaimTemplateName`")),
            _ => {}
        }
        if let Some(n) = &c.resource_claim_name {
            errs.extend(msgs_invalid(
                &p.child("resourceClaimName"),
                n,
                av::name_is_dns_subdomain(n, false),
            ));
        }
        if let Some(n) = &c.resource_claim_template_name {
            errs.extend(msgs_invalid(
                &p.child("resourceClaimTemplateName"),
                n,
                av::name_is_dns_subdomain(n, false),
            ));
        }
    }
    errs
}

fn validate_taint_effect(effect: &str, allow_empty: bool, path: &Path) -> Vec<FieldError> {
    if !allow_empty && effect.is_empty() {
        return vec![FieldError::required(path, "")];
    }
    match effect {
        "NoSchedule" | "PreferNoSchedule" | "NoExecute" => Vec::new(),
        other => vec![FieldError::not_supported(
            path,
            other,
            &["NoSchedule", "PreferNoSchedule", "NoExecute"],
        )],
    }
}

/// Upstream `ValidateTolerations`.
pub fn validate_tolerations(tolerations: &[core::Toleration], path: &Path) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for (i, t) in tolerations.iter().enumerate() {
        let ip = path.index(i);
        let key = s(&t.key);
        let op = s(&t.operator);
        let effect = s(&t.effect);
        let value = s(&t.value);
        if !key.is_empty() {
            let msgs = av::is_qualified_name(key);
            if !msgs.is_empty() {
                errs.extend(msgs_invalid(&ip.child("key"), key, msgs));
            }
        }
        if key.is_empty() && op != "Exists" {
            errs.push(FieldError::invalid(&ip.child("operator"), op, "operator must be Exists when `key` is empty, which means \"match all values and all keys\""));
        }
        if t.toleration_seconds.is_some() && effect != "NoExecute" {
            errs.push(FieldError::invalid(
                &ip.child("effect"),
                effect,
                "effect must be 'NoExecute' when `tolerationSeconds` is set",
            ));
        }
        match op {
            "Equal" | "" => {
                let msgs = av::is_valid_label_value(value);
                if !msgs.is_empty() {
                    errs.push(FieldError::invalid(
                        &ip.child("operator"),
                        value,
                        msgs.join(";"),
                    ));
                }
            }
            "Exists" => {
                if !value.is_empty() {
                    errs.push(FieldError::invalid(
                        &ip.child("operator"),
                        value,
                        "value must be empty when `operator` is 'Exists'",
                    ));
                }
            }
            other => errs.push(FieldError::not_supported(
                &ip.child("operator"),
                other,
                &["Equal", "Exists"],
            )),
        }
        if !effect.is_empty() {
            errs.extend(validate_taint_effect(effect, true, &ip.child("effect")));
        }
    }
    errs
}

/// Upstream `validateNodeTaints`.
pub fn validate_node_taints(taints: &[core::Taint], path: &Path) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let mut unique: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (i, t) in taints.iter().enumerate() {
        let ip = path.index(i);
        errs.extend(validate_label_name(&t.key, &ip.child("key")));
        let value = s(&t.value);
        let msgs = av::is_valid_label_value(value);
        if !msgs.is_empty() {
            errs.push(FieldError::invalid(
                &ip.child("value"),
                value,
                msgs.join(";"),
            ));
        }
        errs.extend(validate_taint_effect(&t.effect, false, &ip.child("effect")));
        let keys = unique.entry(t.effect.clone()).or_default();
        if keys.contains(&t.key) {
            let rendered = format!(
                "core.Taint{{Key:{}, Value:{}, Effect:{}, TimeAdded:<nil>}}",
                apimachinery::gofmt::quote(&t.key),
                apimachinery::gofmt::quote(value),
                apimachinery::gofmt::quote(&t.effect)
            );
            errs.push(go_err(
                ErrorKind::Duplicate,
                &ip,
                &rendered,
                "taints must be unique by key and effect pair",
            ));
            continue;
        }
        keys.insert(t.key.clone());
    }
    errs
}

fn validate_pod_affinity_term(t: &core::PodAffinityTerm, path: &Path) -> Vec<FieldError> {
    let mut errs = validate_label_selector(&t.label_selector, false, &path.child("labelSelector"));
    errs.extend(validate_label_selector(
        &t.namespace_selector,
        false,
        &path.child("namespaceSelector"),
    ));
    for ns in list(&t.namespaces) {
        errs.extend(msgs_invalid(
            &path.child("namespace"),
            ns,
            av::validate_namespace_name(ns, false),
        ));
    }
    errs.extend(validate_match_label_keys_and_mismatch(
        path,
        list(&t.match_label_keys),
        list(&t.mismatch_label_keys),
        &t.label_selector,
    ));
    if t.topology_key.is_empty() {
        errs.push(FieldError::required(
            &path.child("topologyKey"),
            "can not be empty",
        ));
    }
    errs.extend(validate_label_name(
        &t.topology_key,
        &path.child("topologyKey"),
    ));
    errs
}

fn validate_label_keys(
    path: &Path,
    keys: &[String],
    sel: &Option<LabelSelector>,
) -> Vec<FieldError> {
    if keys.is_empty() {
        return Vec::new();
    }
    if sel.is_none() {
        return vec![FieldError::forbidden(
            path,
            "must not be specified when labelSelector is not set",
        )];
    }
    keys.iter()
        .enumerate()
        .flat_map(|(i, k)| validate_label_name(k, &path.index(i)))
        .collect()
}

fn validate_match_label_keys_and_mismatch(
    path: &Path,
    matching: &[String],
    mismatching: &[String],
    sel: &Option<LabelSelector>,
) -> Vec<FieldError> {
    let mut errs = validate_label_keys(&path.child("matchLabelKeys"), matching, sel);
    errs.extend(validate_label_keys(
        &path.child("mismatchLabelKeys"),
        mismatching,
        sel,
    ));
    if let Some(sel) = sel {
        let idx: BTreeMap<&str, usize> = matching
            .iter()
            .enumerate()
            .map(|(i, k)| (k.as_str(), i))
            .collect();
        let mut keys: BTreeSet<&str> = sel
            .match_labels
            .iter()
            .flat_map(|m| m.keys())
            .map(String::as_str)
            .collect();
        for e in list(&sel.match_expressions) {
            if let Some(i) = idx.get(e.key.as_str()) {
                if keys.contains(e.key.as_str()) {
                    errs.push(FieldError::invalid(
                        &path.index(*i),
                        e.key.as_str(),
                        "exists in both matchLabelKeys and labelSelector",
                    ));
                }
            }
            keys.insert(e.key.as_str());
        }
    }
    let mm: BTreeSet<&str> = mismatching.iter().map(String::as_str).collect();
    for (i, k) in matching.iter().enumerate() {
        if mm.contains(k.as_str()) {
            errs.push(FieldError::invalid(
                &path.child("matchLabelKeys").index(i),
                k.as_str(),
                "exists in both matchLabelKeys and mismatchLabelKeys",
            ));
        }
    }
    errs
}

fn validate_weighted_terms(
    terms: &[core::WeightedPodAffinityTerm],
    path: &Path,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for (j, t) in terms.iter().enumerate() {
        if t.weight <= 0 || t.weight > 100 {
            errs.push(FieldError::invalid(
                &path.index(j).child("weight"),
                t.weight,
                "must be in the range 1-100",
            ));
        }
        errs.extend(validate_pod_affinity_term(
            &t.pod_affinity_term,
            &path.index(j).child("podAffinityTerm"),
        ));
    }
    errs
}

fn validate_affinity(a: &Option<core::Affinity>, path: &Path) -> Vec<FieldError> {
    let Some(a) = a else {
        return Vec::new();
    };
    let mut errs = Vec::new();
    if let Some(na) = &a.node_affinity {
        let p = path.child("nodeAffinity");
        if let Some(req) = &na.required_during_scheduling_ignored_during_execution {
            errs.extend(validate_node_selector(
                req,
                false,
                &p.child("requiredDuringSchedulingIgnoredDuringExecution"),
            ));
        }
        let pref = list(&na.preferred_during_scheduling_ignored_during_execution);
        let pp = p.child("preferredDuringSchedulingIgnoredDuringExecution");
        for (i, t) in pref.iter().enumerate() {
            if t.weight <= 0 || t.weight > 100 {
                errs.push(FieldError::invalid(
                    &pp.index(i).child("weight"),
                    t.weight,
                    "must be in the range 1-100",
                ));
            }
            errs.extend(validate_node_selector_term(
                &t.preference,
                true,
                &pp.index(i).child("preference"),
            ));
        }
    }
    for (aff, name) in [
        (
            a.pod_affinity.as_ref().map(|x| {
                (
                    &x.required_during_scheduling_ignored_during_execution,
                    &x.preferred_during_scheduling_ignored_during_execution,
                )
            }),
            "podAffinity",
        ),
        (
            a.pod_anti_affinity.as_ref().map(|x| {
                (
                    &x.required_during_scheduling_ignored_during_execution,
                    &x.preferred_during_scheduling_ignored_during_execution,
                )
            }),
            "podAntiAffinity",
        ),
    ] {
        if let Some((req, pref)) = aff {
            let p = path.child(name);
            if let Some(req) = req {
                for (i, t) in req.iter().enumerate() {
                    errs.extend(validate_pod_affinity_term(
                        t,
                        &p.child("requiredDuringSchedulingIgnoredDuringExecution")
                            .index(i),
                    ));
                }
            }
            if let Some(pref) = pref {
                errs.extend(validate_weighted_terms(
                    pref,
                    &p.child("preferredDuringSchedulingIgnoredDuringExecution"),
                ));
            }
        }
    }
    errs
}

fn dns1123_label_with_underscore(l: &str) -> bool {
    let l = l.strip_prefix('_').unwrap_or(l);
    let b = l.as_bytes();
    let ok_end = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    match (b.first(), b.last()) {
        (Some(&f), Some(&e)) => {
            ok_end(f) && ok_end(e) && b.iter().all(|&c| ok_end(c) || c == b'-' || c == b'_')
        }
        _ => false,
    }
}

fn validate_dns1123_subdomain_with_underscore(v: &str, path: &Path) -> Vec<FieldError> {
    let mut msgs = Vec::new();
    if v.len() > 253 {
        msgs.push(av::max_len_error(253));
    }
    if !v.split('.').all(dns1123_label_with_underscore) {
        msgs.push(av::regex_error(
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '_', '-' or '.', and must start and end with an alphanumeric character",
            "[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*",
            &["example.com"],
        ));
    }
    msgs_invalid(path, v, msgs)
}

fn validate_dns_config(
    cfg: &Option<core::PodDNSConfig>,
    policy: &str,
    path: &Path,
) -> Vec<FieldError> {
    if policy == "None" {
        match cfg {
            None => {
                return vec![FieldError::required(
                    path,
                    "must provide `dnsConfig` when `dnsPolicy` is None",
                )]
            }
            Some(c) if list(&c.nameservers).is_empty() => {
                return vec![FieldError::required(
                    &path.child("nameservers"),
                    "must provide at least one DNS nameserver when `dnsPolicy` is None",
                )]
            }
            _ => {}
        }
    }
    let Some(cfg) = cfg else {
        return Vec::new();
    };
    let mut errs = Vec::new();
    let ns = list(&cfg.nameservers);
    if ns.len() > 3 {
        errs.push(crate::util::invalid_go(
            &path.child("nameservers"),
            &go_str_slice(&cfg.nameservers),
            "must not have more than 3 nameservers",
        ));
    }
    for (i, n) in ns.iter().enumerate() {
        errs.extend(av::is_valid_ip(&path.child("nameservers").index(i), n));
    }
    let searches = list(&cfg.searches);
    if searches.len() > 32 {
        errs.push(crate::util::invalid_go(
            &path.child("searches"),
            &go_str_slice(&cfg.searches),
            "must not have more than 32 search paths",
        ));
    }
    if searches.join(" ").len() > 2048 {
        errs.push(crate::util::invalid_go(
            &path.child("searches"),
            &go_str_slice(&cfg.searches),
            "must not have more than 2048 characters (including spaces) in the search list",
        ));
    }
    for (i, sr) in searches.iter().enumerate() {
        if sr != "." {
            let t = sr.strip_suffix('.').unwrap_or(sr);
            errs.extend(validate_dns1123_subdomain_with_underscore(
                t,
                &path.child("searches").index(i),
            ));
        }
    }
    for (i, o) in list(&cfg.options).iter().enumerate() {
        if empty(&o.name) {
            errs.push(FieldError::required(
                &path.child("options").index(i),
                "must not be empty",
            ));
        }
    }
    errs
}

fn sysctl_name_ok(name: &str) -> bool {
    if name.len() > 253 {
        return false;
    }
    let seg_ok = |seg: &str| {
        let b = seg.as_bytes();
        let alnum = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
        match (b.first(), b.last()) {
            (Some(&f), Some(&l)) => {
                alnum(f) && alnum(l) && b.iter().all(|&c| alnum(c) || c == b'-' || c == b'_')
            }
            _ => false,
        }
    };
    name.split(['.', '/']).all(seg_ok)
}

fn sysctl_namespace(name: &str) -> &'static str {
    let n = name.replace('/', ".");
    if n.starts_with("net.") {
        "net"
    } else if n == "kernel.sem"
        || n.starts_with("kernel.shm")
        || n.starts_with("kernel.msg")
        || n.starts_with("fs.mqueue.")
    {
        "ipc"
    } else {
        ""
    }
}

fn validate_pod_security_context(spec: &core::PodSpec, path: &Path) -> Vec<FieldError> {
    let Some(sc) = &spec.security_context else {
        return Vec::new();
    };
    let mut errs = Vec::new();
    if let Some(g) = sc.fs_group {
        for m in av::is_valid_group_id(g) {
            errs.push(FieldError::invalid(&path.child("fsGroup"), g, m));
        }
    }
    if let Some(u) = sc.run_as_user {
        for m in av::is_valid_user_id(u) {
            errs.push(FieldError::invalid(&path.child("runAsUser"), u, m));
        }
    }
    if let Some(g) = sc.run_as_group {
        for m in av::is_valid_group_id(g) {
            errs.push(FieldError::invalid(&path.child("runAsGroup"), g, m));
        }
    }
    for (i, g) in list(&sc.supplemental_groups).iter().enumerate() {
        for m in av::is_valid_group_id(*g) {
            errs.push(FieldError::invalid(
                &path.child("supplementalGroups").index(i),
                *g,
                m,
            ));
        }
    }
    if spec.share_process_namespace == Some(true) && b(spec.host_pid) {
        errs.push(FieldError::invalid(
            &path.child("shareProcessNamespace"),
            true,
            "ShareProcessNamespace and HostPID cannot both be enabled",
        ));
    }
    let sysctls = list(&sc.sysctls);
    if !sysctls.is_empty() {
        let sp = path.child("sysctls");
        let mut names = BTreeSet::new();
        for (i, sy) in sysctls.iter().enumerate() {
            let np = sp.index(i).child("name");
            if sy.name.is_empty() {
                errs.push(FieldError::required(&np, ""));
            } else if !sysctl_name_ok(&sy.name) {
                errs.push(FieldError::invalid(&np, sy.name.as_str(), "must have at most 253 characters and match regex ^([a-z0-9]([-_a-z0-9]*[a-z0-9])?[\\./])*[a-z0-9]([-_a-z0-9]*[a-z0-9])?$"));
            } else if names.contains(&sy.name) {
                errs.push(FieldError::duplicate(&np, sy.name.as_str()));
            }
            let ns = sysctl_namespace(&sy.name);
            if b(spec.host_network) && ns == "net" {
                errs.push(FieldError::invalid(
                    &np,
                    sy.name.as_str(),
                    "may not be specified when 'hostNetwork' is true",
                ));
            } else if b(spec.host_ipc) && ns == "ipc" {
                errs.push(FieldError::invalid(
                    &np,
                    sy.name.as_str(),
                    "may not be specified when 'hostIPC' is true",
                ));
            }
            names.insert(sy.name.clone());
        }
    }
    if let Some(p) = &sc.fs_group_change_policy {
        if p != "Always" && p != "OnRootMismatch" {
            errs.push(FieldError::not_supported(
                &path.child("fsGroupChangePolicy"),
                p.as_str(),
                &["Always", "OnRootMismatch"],
            ));
        }
    }
    errs.extend(validate_seccomp_profile(
        &sc.seccomp_profile,
        &path.child("seccompProfile"),
    ));
    errs.extend(validate_windows_options(
        &sc.windows_options,
        &path.child("windowsOptions"),
    ));
    errs.extend(validate_app_armor_profile(
        &sc.app_armor_profile,
        &path.child("appArmorProfile"),
    ));
    if let Some(p) = &sc.supplemental_groups_policy {
        if p != "Merge" && p != "Strict" {
            errs.push(FieldError::not_supported(
                &path.child("supplementalGroupsPolicy"),
                p.as_str(),
                &["Merge", "Strict"],
            ));
        }
    }
    if let Some(p) = &sc.se_linux_change_policy {
        // SELinuxMount is disabled in 1.33, so only Recursive is accepted.
        if p != "Recursive" {
            errs.push(FieldError::not_supported(
                &path.child("seLinuxChangePolicy"),
                p.as_str(),
                &["Recursive"],
            ));
        }
    }
    errs
}

fn validate_topology_spread_constraints(
    tscs: &[core::TopologySpreadConstraint],
    path: &Path,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for (i, c) in tscs.iter().enumerate() {
        let p = path.index(i);
        if c.max_skew <= 0 {
            errs.push(FieldError::invalid(
                &p.child("maxSkew"),
                c.max_skew,
                IS_NOT_POSITIVE_ERROR_MSG,
            ));
        }
        if c.topology_key.is_empty() {
            errs.push(FieldError::required(
                &p.child("topologyKey"),
                "can not be empty",
            ));
        }
        if c.when_unsatisfiable != "DoNotSchedule" && c.when_unsatisfiable != "ScheduleAnyway" {
            errs.push(FieldError::not_supported(
                &p.child("whenUnsatisfiable"),
                c.when_unsatisfiable.as_str(),
                &["DoNotSchedule", "ScheduleAnyway"],
            ));
        }
        if tscs[i + 1..].iter().any(|o| {
            o.topology_key == c.topology_key && o.when_unsatisfiable == c.when_unsatisfiable
        }) {
            errs.push(FieldError::duplicate(
                &p.child("{topologyKey, whenUnsatisfiable}"),
                format!("{{{}, {}}}", c.topology_key, c.when_unsatisfiable),
            ));
        }
        if let Some(md) = c.min_domains {
            if md <= 0 {
                errs.push(FieldError::invalid(
                    &p.child("minDomains"),
                    md,
                    IS_NOT_POSITIVE_ERROR_MSG,
                ));
            }
            if c.when_unsatisfiable != "DoNotSchedule" {
                errs.push(FieldError::invalid(
                    &p.child("minDomains"),
                    md,
                    format!(
                        "can only use minDomains if whenUnsatisfiable=DoNotSchedule, not {}",
                        c.when_unsatisfiable
                    ),
                ));
            }
        }
        for (v, name) in [
            (&c.node_affinity_policy, "nodeAffinityPolicy"),
            (&c.node_taints_policy, "nodeTaintsPolicy"),
        ] {
            if let Some(v) = v {
                if v != "Honor" && v != "Ignore" {
                    errs.push(FieldError::not_supported(
                        &p.child(name),
                        v.as_str(),
                        &["Honor", "Ignore"],
                    ));
                }
            }
        }
        let keys = list(&c.match_label_keys);
        if !keys.is_empty() {
            let kp = p.child("matchLabelKeys");
            let mut sel_keys = BTreeSet::new();
            match &c.label_selector {
                Some(sel) => {
                    sel_keys.extend(sel.match_labels.iter().flat_map(|m| m.keys()).cloned());
                    sel_keys.extend(list(&sel.match_expressions).iter().map(|e| e.key.clone()));
                }
                None => errs.push(FieldError::forbidden(
                    &kp,
                    "must not be specified when labelSelector is not set",
                )),
            }
            for (j, k) in keys.iter().enumerate() {
                errs.extend(validate_label_name(k, &kp.index(j)));
                if sel_keys.contains(k) {
                    errs.push(FieldError::invalid(
                        &kp.index(j),
                        k.as_str(),
                        "exists in both matchLabelKeys and labelSelector",
                    ));
                }
            }
        }
        errs.extend(validate_label_selector(
            &c.label_selector,
            false,
            &p.child("labelSelector"),
        ));
    }
    errs
}

/// What the cross-container checks read of a container, init container or
/// ephemeral container, borrowed from the spec.
struct ContainerRef<'a> {
    name: &'a str,
    security_context: Option<&'a core::SecurityContext>,
    /// The spec field holding the container (`containers`, ...).
    field: &'static str,
    index: usize,
}

impl ContainerRef<'_> {
    /// The container's path under `spec_path`, built only when reported.
    fn path(&self, spec_path: &Path) -> Path {
        spec_path.child(self.field).index(self.index)
    }
}

/// Every container of a spec in upstream's visiting order (init,
/// regular, ephemeral), without copying them.
fn all_containers(spec: &core::PodSpec) -> impl Iterator<Item = ContainerRef<'_>> {
    let init = list(&spec.init_containers)
        .iter()
        .enumerate()
        .map(|(index, c)| ContainerRef {
            name: &c.name,
            security_context: c.security_context.as_ref(),
            field: "initContainers",
            index,
        });
    let regular = spec
        .containers
        .iter()
        .enumerate()
        .map(|(index, c)| ContainerRef {
            name: &c.name,
            security_context: c.security_context.as_ref(),
            field: "containers",
            index,
        });
    let ephemeral = list(&spec.ephemeral_containers)
        .iter()
        .enumerate()
        .map(|(index, c)| ContainerRef {
            name: &c.name,
            security_context: c.security_context.as_ref(),
            field: "ephemeralContainers",
            index,
        });
    init.chain(regular).chain(ephemeral)
}

/// Re-roots a `spec...` path under `spec_path` (for templates).
#[cfg(test)]
fn rebase(p: &Path, spec_path: &Path) -> Path {
    let rendered = p.to_string();
    let rest = rendered.strip_prefix("spec").unwrap_or(&rendered);
    let mut out = spec_path.clone();
    let mut cur = String::new();
    let mut in_idx = false;
    for ch in rest.chars() {
        match ch {
            '.' if !in_idx => {
                if !cur.is_empty() {
                    out = out.child(&cur);
                    cur.clear();
                }
            }
            '[' => {
                if !cur.is_empty() {
                    out = out.child(&cur);
                    cur.clear();
                }
                in_idx = true;
            }
            ']' => {
                match cur.parse::<usize>() {
                    Ok(n) => out = out.index(n),
                    Err(_) => out = out.key(&cur),
                }
                cur.clear();
                in_idx = false;
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out = out.child(&cur);
    }
    out
}

fn validate_windows_host_process(spec: &core::PodSpec, path: &Path) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let pod_hp = spec
        .security_context
        .as_ref()
        .and_then(|sc| sc.windows_options.as_ref())
        .and_then(|w| w.host_process);
    let mut count = 0;
    let mut hp_count = 0;
    for c in all_containers(spec) {
        count += 1;
        let chp = c
            .security_context
            .and_then(|sc| sc.windows_options.as_ref())
            .and_then(|w| w.host_process);
        if let (Some(p), Some(cv)) = (pod_hp, chp) {
            if p != cv {
                let cp = c.path(path);
                errs.push(FieldError::invalid(
                    &cp.child("securityContext")
                        .child("windowsOptions")
                        .child("hostProcess"),
                    cv,
                    format!(
                        "pod hostProcess value must be identical if both are specified, was {p}"
                    ),
                ));
            }
        }
        if chp == Some(true) || (chp.is_none() && pod_hp == Some(true)) {
            hp_count += 1;
        }
    }
    if hp_count > 0 {
        if hp_count != count {
            errs.push(FieldError::invalid(path, "", "If pod contains any hostProcess containers then all containers must be HostProcess containers"));
        }
        if !b(spec.host_network) {
            errs.push(FieldError::invalid(
                &path.child("hostNetwork"),
                false,
                "hostNetwork must be true if pod contains any hostProcess containers",
            ));
        }
    }
    errs
}

fn validate_os(spec: &core::PodSpec, path: &Path) -> Vec<FieldError> {
    let Some(os) = &spec.os else {
        return Vec::new();
    };
    let op = path.child("os");
    if os.name.is_empty() {
        return vec![FieldError::required(&op.child("name"), "cannot be empty")];
    }
    if os.name != "linux" && os.name != "windows" {
        return vec![FieldError::not_supported(
            &op,
            os.name.as_str(),
            &["linux", "windows"],
        )];
    }
    let mut errs = Vec::new();
    let sc = spec.security_context.as_ref();
    let forbid =
        |p: Path, msg: &str, errs: &mut Vec<FieldError>| errs.push(FieldError::forbidden(&p, msg));
    if os.name == "linux" {
        let msg = "windows options cannot be set for a linux pod";
        if sc.is_some_and(|sc| sc.windows_options.is_some()) {
            forbid(
                path.child("securityContext").child("windowsOptions"),
                msg,
                &mut errs,
            );
        }
        for c in all_containers(spec) {
            if c.security_context
                .is_some_and(|sc| sc.windows_options.is_some())
            {
                forbid(
                    c.path(path)
                        .child("securityContext")
                        .child("windowsOptions"),
                    msg,
                    &mut errs,
                );
            }
        }
        return errs;
    }
    let msg = "cannot be set for a windows pod";
    let scp = path.child("securityContext");
    if let Some(sc) = sc {
        if sc.app_armor_profile.is_some() {
            forbid(scp.child("appArmorProfile"), msg, &mut errs);
        }
        if sc.se_linux_options.is_some() {
            forbid(scp.child("seLinuxOptions"), msg, &mut errs);
        }
    }
    if spec.host_users.is_some() {
        forbid(path.child("hostUsers"), msg, &mut errs);
    }
    if b(spec.host_pid) {
        forbid(path.child("hostPID"), msg, &mut errs);
    }
    if b(spec.host_ipc) {
        forbid(path.child("hostIPC"), msg, &mut errs);
    }
    if let Some(sc) = sc {
        for (set, name) in [
            (sc.seccomp_profile.is_some(), "seccompProfile"),
            (sc.fs_group.is_some(), "fsGroup"),
            (sc.fs_group_change_policy.is_some(), "fsGroupChangePolicy"),
            (!list(&sc.sysctls).is_empty(), "sysctls"),
        ] {
            if set {
                forbid(scp.child(name), msg, &mut errs);
            }
        }
    }
    if spec.share_process_namespace.is_some() {
        forbid(path.child("shareProcessNamespace"), msg, &mut errs);
    }
    if let Some(sc) = sc {
        for (set, name) in [
            (sc.run_as_user.is_some(), "runAsUser"),
            (sc.run_as_group.is_some(), "runAsGroup"),
            (sc.supplemental_groups.is_some(), "supplementalGroups"),
            (
                sc.supplemental_groups_policy.is_some(),
                "supplementalGroupsPolicy",
            ),
            (sc.se_linux_change_policy.is_some(), "seLinuxChangePolicy"),
        ] {
            if set {
                forbid(scp.child(name), msg, &mut errs);
            }
        }
    }
    for c in all_containers(spec) {
        let Some(csc) = c.security_context else {
            continue;
        };
        let p = c.path(path).child("securityContext");
        for (set, name) in [
            (csc.app_armor_profile.is_some(), "appArmorProfile"),
            (csc.se_linux_options.is_some(), "seLinuxOptions"),
            (csc.seccomp_profile.is_some(), "seccompProfile"),
            (csc.capabilities.is_some(), "capabilities"),
            (
                csc.read_only_root_filesystem.is_some(),
                "readOnlyRootFilesystem",
            ),
            (csc.privileged.is_some(), "privileged"),
            (
                csc.allow_privilege_escalation.is_some(),
                "allowPrivilegeEscalation",
            ),
            (csc.proc_mount.is_some(), "procMount"),
            (csc.run_as_user.is_some(), "runAsUser"),
            (csc.run_as_group.is_some(), "runAsGroup"),
        ] {
            if set {
                forbid(p.child(name), msg, &mut errs);
            }
        }
    }
    errs
}

/// Upstream `ValidatePodSpec`. `pod_meta` is the metadata of a real pod
/// (for generic ephemeral volume names), `None` for templates.
pub fn validate_pod_spec(
    spec: &core::PodSpec,
    pod_meta: Option<&ObjectMeta>,
    path: &Path,
    opts: PodOpts,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if spec.termination_grace_period_seconds.is_none() {
        errs.push(FieldError::required(
            &path.child("terminationGracePeriodSeconds"),
            "",
        ));
    }
    let grace = spec.termination_grace_period_seconds;
    let host_users = spec.host_users.unwrap_or(true);
    let restart_policy = s(&spec.restart_policy);
    let (vols, verrs) = validate_volumes(
        list(&spec.volumes),
        pod_meta,
        &path.child("volumes"),
        opts.resource_is_pod,
    );
    errs.extend(verrs);
    let claim_names: BTreeSet<String> = list(&spec.resource_claims)
        .iter()
        .filter(|c| !c.name.is_empty())
        .map(|c| c.name.clone())
        .collect();
    if !list(&spec.resource_claims).is_empty() {
        errs.extend(validate_pod_resource_claims(
            list(&spec.resource_claims),
            &path.child("resourceClaims"),
        ));
    }
    errs.extend(validate_containers(
        &spec.containers,
        &vols,
        &claim_names,
        grace,
        &path.child("containers"),
        restart_policy,
        host_users,
    ));
    if !list(&spec.init_containers).is_empty() {
        errs.extend(validate_init_containers(
            list(&spec.init_containers),
            &spec.containers,
            &vols,
            &claim_names,
            grace,
            &path.child("initContainers"),
            restart_policy,
            host_users,
        ));
    }
    if !list(&spec.ephemeral_containers).is_empty() {
        errs.extend(validate_ephemeral_containers(
            list(&spec.ephemeral_containers),
            &spec.containers,
            list(&spec.init_containers),
            &vols,
            &claim_names,
            &path.child("ephemeralContainers"),
            restart_policy,
            host_users,
        ));
    }
    // Host-network dependencies.
    if b(spec.host_network) {
        for (i, c) in spec.containers.iter().enumerate() {
            for (j, p) in list(&c.ports).iter().enumerate() {
                let hp = p.host_port.unwrap_or(0);
                if (opts.resource_is_pod || hp != 0) && hp != p.container_port {
                    errs.push(FieldError::invalid(
                        &path
                            .child("containers")
                            .index(i)
                            .child("ports")
                            .index(j)
                            .child("hostPort"),
                        hp,
                        "must match `containerPort` when `hostNetwork` is true",
                    ));
                }
            }
        }
    }
    match restart_policy {
        "Always" | "OnFailure" | "Never" => {}
        "" => errs.push(FieldError::required(&path.child("restartPolicy"), "")),
        other => errs.push(FieldError::not_supported(
            &path.child("restartPolicy"),
            other,
            &["Always", "OnFailure", "Never"],
        )),
    }
    let dns_policy = s(&spec.dns_policy);
    match dns_policy {
        "ClusterFirstWithHostNet" | "ClusterFirst" | "Default" | "None" => {}
        "" => errs.push(FieldError::required(&path.child("dnsPolicy"), "")),
        other => errs.push(FieldError::not_supported(
            &path.child("dnsPolicy"),
            other,
            &["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"],
        )),
    }
    if spec.node_selector.is_some() {
        errs.extend(validate_labels(
            &spec.node_selector,
            &path.child("nodeSelector"),
        ));
    }
    if spec.security_context.is_some() {
        errs.extend(validate_pod_security_context(
            spec,
            &path.child("securityContext"),
        ));
    }
    // imagePullSecrets only carry a name; nothing else can be set.
    if spec.affinity.is_some() {
        errs.extend(validate_affinity(&spec.affinity, &path.child("affinity")));
    }
    errs.extend(validate_dns_config(
        &spec.dns_config,
        dns_policy,
        &path.child("dnsConfig"),
    ));
    for (i, g) in list(&spec.readiness_gates).iter().enumerate() {
        errs.extend(validate_qualified_name(
            &g.condition_type,
            &path.child("readinessGates").index(i).child("conditionType"),
        ));
    }
    let mut seen_gates = BTreeSet::new();
    for (i, g) in list(&spec.scheduling_gates).iter().enumerate() {
        let p = path.child("schedulingGates").index(i);
        errs.extend(validate_qualified_name(&g.name, &p));
        if !seen_gates.insert(g.name.clone()) {
            errs.push(FieldError::duplicate(&p, g.name.as_str()));
        }
    }
    if !list(&spec.topology_spread_constraints).is_empty() {
        errs.extend(validate_topology_spread_constraints(
            list(&spec.topology_spread_constraints),
            &path.child("topologySpreadConstraints"),
        ));
    }
    errs.extend(validate_windows_host_process(spec, path));
    if spec.host_users == Some(false) {
        let msg = "when `pod.Spec.HostUsers` is false";
        if b(spec.host_network) {
            errs.push(FieldError::forbidden(&path.child("hostNetwork"), msg));
        }
        if b(spec.host_pid) {
            errs.push(FieldError::forbidden(&path.child("HostPID"), msg));
        }
        if b(spec.host_ipc) {
            errs.push(FieldError::forbidden(&path.child("HostIPC"), msg));
        }
    }
    let sa = s(&spec.service_account_name);
    if !sa.is_empty() {
        errs.extend(msgs_invalid(
            &path.child("serviceAccountName"),
            sa,
            av::name_is_dns_subdomain(sa, false),
        ));
    }
    let node = s(&spec.node_name);
    if !node.is_empty() {
        errs.extend(msgs_invalid(
            &path.child("nodeName"),
            node,
            av::name_is_dns_subdomain(node, false),
        ));
    }
    if let Some(ads) = spec.active_deadline_seconds {
        if !(1..=i64::from(i32::MAX)).contains(&ads) {
            errs.push(FieldError::invalid(
                &path.child("activeDeadlineSeconds"),
                ads,
                av::inclusive_range_error(1, i64::from(i32::MAX)),
            ));
        }
    }
    if !empty(&spec.hostname) {
        errs.extend(validate_dns1123_label(
            s(&spec.hostname),
            &path.child("hostname"),
        ));
    }
    if !empty(&spec.subdomain) {
        errs.extend(validate_dns1123_label(
            s(&spec.subdomain),
            &path.child("subdomain"),
        ));
    }
    if !list(&spec.tolerations).is_empty() {
        errs.extend(validate_tolerations(
            list(&spec.tolerations),
            &path.child("tolerations"),
        ));
    }
    for (i, ha) in list(&spec.host_aliases).iter().enumerate() {
        let p = path.child("hostAliases").index(i);
        errs.extend(av::is_valid_ip(&p.child("ip"), &ha.ip));
        for (j, h) in list(&ha.hostnames).iter().enumerate() {
            errs.extend(validate_dns1123_subdomain(
                h,
                &p.child("hostnames").index(j),
            ));
        }
    }
    let pc = s(&spec.priority_class_name);
    if !pc.is_empty() {
        errs.extend(msgs_invalid(
            &path.child("priorityClassName"),
            pc,
            av::name_is_dns_subdomain(pc, false),
        ));
    }
    if let Some(rc) = &spec.runtime_class_name {
        errs.extend(msgs_invalid(
            &path.child("runtimeClassName"),
            rc,
            av::name_is_dns_subdomain(rc, false),
        ));
    }
    if let Some(pp) = &spec.preemption_policy {
        match pp.as_str() {
            "PreemptLowerPriority" | "Never" => {}
            "" => errs.push(FieldError::required(&path.child("preemptionPolicy"), "")),
            other => errs.push(FieldError::not_supported(
                &path.child("preemptionPolicy"),
                other,
                &["PreemptLowerPriority", "Never"],
            )),
        }
    }
    if let Some(o) = &spec.overhead {
        let op = path.child("overhead");
        for (name, q) in o {
            let p = op.child("limits").key(name);
            errs.extend(validate_container_resource_name(name, &p));
            match parse_q(q, &p) {
                Ok(v) => errs.extend(validate_quantity_value(name, &v, &p)),
                Err(e) => errs.push(e),
            }
        }
    }
    errs.extend(validate_os(spec, path));
    errs
}

fn valid_first_digit(v: &str) -> bool {
    match v.as_bytes().first() {
        None => false,
        Some(b'-') => true,
        Some(b'0') => v == "0",
        Some(c) => c.is_ascii_digit(),
    }
}

/// Upstream `ValidateSeccompProfile` for the deprecated annotations.
fn validate_seccomp_annotation(p: &str, path: &Path) -> Vec<FieldError> {
    if p == "runtime/default" || p == "docker/default" || p == "unconfined" {
        return Vec::new();
    }
    if let Some(rest) = p.strip_prefix("localhost/") {
        return validate_local_descending_path(rest, path);
    }
    vec![FieldError::invalid(
        path,
        p,
        "must be a valid seccomp profile",
    )]
}

fn pod_spec_has_container(spec: &core::PodSpec, name: &str) -> bool {
    spec.containers.iter().any(|c| c.name == name)
        || list(&spec.init_containers).iter().any(|c| c.name == name)
        || list(&spec.ephemeral_containers)
            .iter()
            .any(|c| c.name == name)
}

/// Upstream `ValidatePodSpecificAnnotations`.
pub fn validate_pod_specific_annotations(
    annotations: &Option<BTreeMap<String, String>>,
    spec: &core::PodSpec,
    path: &Path,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let Some(ann) = annotations else {
        return errs;
    };
    if let Some(v) = ann.get("kubernetes.io/config.mirror") {
        if empty(&spec.node_name) {
            errs.push(FieldError::invalid(
                &path.key("kubernetes.io/config.mirror"),
                v.as_str(),
                "must set spec.nodeName if mirror pod annotation is set",
            ));
        }
    }
    if let Some(v) = ann.get("scheduler.alpha.kubernetes.io/tolerations") {
        if !v.is_empty() {
            match serde_json::from_str::<Vec<core::Toleration>>(v) {
                Ok(ts) => {
                    if !ts.is_empty() {
                        errs.extend(validate_tolerations(
                            &ts,
                            &path.child("scheduler.alpha.kubernetes.io/tolerations"),
                        ));
                    }
                }
                Err(e) => errs.push(FieldError::invalid(
                    path,
                    "scheduler.alpha.kubernetes.io/tolerations",
                    e.to_string(),
                )),
            }
        }
    }
    if let Some(v) = ann.get("controller.kubernetes.io/pod-deletion-cost") {
        if !valid_first_digit(v) || v.parse::<i32>().is_err() {
            errs.push(FieldError::invalid(
                &path.key("controller.kubernetes.io/pod-deletion-cost"),
                v.as_str(),
                "must be a 32bit integer",
            ));
        }
    }
    if let Some(p) = ann.get("seccomp.security.alpha.kubernetes.io/pod") {
        errs.extend(validate_seccomp_annotation(
            p,
            &path.child("seccomp.security.alpha.kubernetes.io/pod"),
        ));
    }
    for (k, p) in ann {
        if k.starts_with("container.seccomp.security.alpha.kubernetes.io/") {
            errs.extend(validate_seccomp_annotation(p, &path.child(k)));
        }
    }
    for (k, p) in ann {
        let Some(container) = k.strip_prefix("container.apparmor.security.beta.kubernetes.io/")
        else {
            continue;
        };
        if !pod_spec_has_container(spec, container) {
            errs.push(FieldError::invalid(
                &path.key(k),
                container,
                "container not found",
            ));
        }
        if !(p.is_empty()
            || p == "runtime/default"
            || p == "unconfined"
            || p.starts_with("localhost/"))
        {
            errs.push(FieldError::invalid(
                &path.key(k),
                p.as_str(),
                format!(
                    "invalid AppArmor profile name: {}",
                    apimachinery::gofmt::quote(p)
                ),
            ));
        }
    }
    errs
}

fn seccomp_match(
    annotation: &str,
    field: &core::SeccompProfile,
    path: &Path,
) -> Option<FieldError> {
    let msg_type = "seccomp type in annotation and field must match";
    match field.type_.as_str() {
        "Unconfined" if annotation != "unconfined" => {
            Some(FieldError::forbidden(&path.child("type"), msg_type))
        }
        "RuntimeDefault" if annotation != "runtime/default" && annotation != "docker/default" => {
            Some(FieldError::forbidden(&path.child("type"), msg_type))
        }
        "Localhost" => match annotation.strip_prefix("localhost/") {
            None => Some(FieldError::forbidden(&path.child("type"), msg_type)),
            Some(p) if field.localhost_profile.as_deref() != Some(p) => {
                Some(FieldError::forbidden(
                    &path.child("localhostProfile"),
                    "seccomp profile in annotation and field must match",
                ))
            }
            _ => None,
        },
        _ => None,
    }
}

/// Upstream `validateSeccompAnnotationsAndFields`.
fn validate_seccomp_annotations_and_fields(
    meta_ann: &Option<BTreeMap<String, String>>,
    spec: &core::PodSpec,
    spec_path: &Path,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let empty_map = BTreeMap::new();
    let ann = meta_ann.as_ref().unwrap_or(&empty_map);
    if let Some(sp) = spec
        .security_context
        .as_ref()
        .and_then(|sc| sc.seccomp_profile.as_ref())
    {
        if let Some(a) = ann.get("seccomp.security.alpha.kubernetes.io/pod") {
            errs.extend(seccomp_match(
                a,
                sp,
                &spec_path.child("securityContext").child("seccompProfile"),
            ));
        }
    }
    for c in all_containers(spec) {
        let Some(f) = c
            .security_context
            .and_then(|sc| sc.seccomp_profile.as_ref())
        else {
            continue;
        };
        if let Some(a) = ann.get(&format!(
            "container.seccomp.security.alpha.kubernetes.io/{}",
            c.name
        )) {
            errs.extend(seccomp_match(
                a,
                f,
                &c.path(spec_path)
                    .child("securityContext")
                    .child("seccompProfile"),
            ));
        }
    }
    errs
}

/// Upstream `validateAppArmorAnnotationsAndFieldsMatchOnCreate`.
fn validate_app_armor_annotations_and_fields(
    meta_ann: &Option<BTreeMap<String, String>>,
    spec: &core::PodSpec,
    spec_path: &Path,
) -> Vec<FieldError> {
    if spec.os.as_ref().is_some_and(|o| o.name == "windows") {
        return Vec::new();
    }
    let mut errs = Vec::new();
    let empty_map = BTreeMap::new();
    let ann = meta_ann.as_ref().unwrap_or(&empty_map);
    let pod_profile = spec
        .security_context
        .as_ref()
        .and_then(|sc| sc.app_armor_profile.as_ref());
    for c in all_containers(spec) {
        let profile = c
            .security_context
            .and_then(|sc| sc.app_armor_profile.as_ref())
            .or(pod_profile);
        let Some(profile) = profile else {
            continue;
        };
        let Some(a) = ann.get(&format!(
            "container.apparmor.security.beta.kubernetes.io/{}",
            c.name
        )) else {
            continue;
        };
        let ap = c
            .path(spec_path)
            .child("securityContext")
            .child("appArmorProfile");
        let msg = "apparmor type in annotation and field must match";
        match profile.type_.as_str() {
            "Unconfined" if a != "unconfined" => {
                errs.push(FieldError::forbidden(&ap.child("type"), msg))
            }
            "RuntimeDefault" if a != "runtime/default" => {
                errs.push(FieldError::forbidden(&ap.child("type"), msg))
            }
            "Localhost" => match a.strip_prefix("localhost/") {
                None => errs.push(FieldError::forbidden(&ap.child("type"), msg)),
                Some(p) if profile.localhost_profile.as_deref() != Some(p) => {
                    errs.push(FieldError::forbidden(
                        &ap.child("localhostProfile"),
                        "apparmor profile in annotation and field must match",
                    ))
                }
                _ => {}
            },
            _ => {}
        }
    }
    errs
}

/// The value of an optional field, or its default when absent, borrowed
/// when present.
pub fn or_default<T: Clone + Default>(v: &Option<T>) -> Cow<'_, T> {
    match v {
        Some(v) => Cow::Borrowed(v),
        None => Cow::Owned(T::default()),
    }
}

/// Upstream `ValidatePodTemplateSpec`.
pub fn validate_pod_template_spec(
    t: &core::PodTemplateSpec,
    path: &Path,
    opts: PodOpts,
) -> Vec<FieldError> {
    let meta = or_default(&t.metadata);
    let spec = or_default(&t.spec);
    let mut errs = validate_labels(&meta.labels, &path.child("metadata").child("labels"));
    errs.extend(validate_annotations(
        &meta.annotations,
        &path.child("metadata").child("annotations"),
    ));
    errs.extend(validate_pod_specific_annotations(
        &meta.annotations,
        &spec,
        &path.child("metadata").child("annotations"),
    ));
    errs.extend(validate_pod_spec(&spec, None, &path.child("spec"), opts));
    errs.extend(validate_seccomp_annotations_and_fields(
        &meta.annotations,
        &spec,
        &path.child("spec"),
    ));
    errs.extend(validate_app_armor_annotations_and_fields(
        &meta.annotations,
        &spec,
        &path.child("spec"),
    ));
    if !list(&spec.ephemeral_containers).is_empty() {
        errs.push(FieldError::forbidden(
            &path.child("spec").child("ephemeralContainers"),
            "ephemeral containers not allowed in pod template",
        ));
    }
    errs
}

/// The metadata-and-spec part of pod validation shared by create and
/// update (upstream `validatePodMetadataAndSpec` without the generic
/// ObjectMeta checks).
pub fn validate_pod_metadata_and_spec(pod: &core::Pod) -> Vec<FieldError> {
    let meta = &pod.metadata;
    let spec = or_default(&pod.spec);
    let sp = Path::new("spec");
    let mut errs = crate::util::validate_kube_finalizers(meta);
    errs.extend(validate_pod_specific_annotations(
        &meta.annotations,
        &spec,
        &Path::new("metadata").child("annotations"),
    ));
    errs.extend(validate_pod_spec(
        &spec,
        Some(meta),
        &sp,
        PodOpts {
            resource_is_pod: true,
        },
    ));
    if empty(&spec.service_account_name) {
        for (vi, v) in list(&spec.volumes).iter().enumerate() {
            if let Some(p) = &v.projected {
                for (si, src) in list(&p.sources).iter().enumerate() {
                    if src.service_account_token.is_some() {
                        errs.push(FieldError::forbidden(
                            &sp.child("volumes")
                                .index(vi)
                                .child("projected")
                                .child("sources")
                                .index(si)
                                .child("serviceAccountToken"),
                            "must not be specified when serviceAccountName is not set",
                        ));
                    }
                }
            }
        }
    }
    for (i, c) in spec.containers.iter().enumerate() {
        errs.extend(validate_container_only_for_pod(&c.image, || {
            sp.child("containers").index(i)
        }));
    }
    for (i, c) in list(&spec.init_containers).iter().enumerate() {
        errs.extend(validate_container_only_for_pod(&c.image, || {
            sp.child("initContainers").index(i)
        }));
    }
    errs
}

/// Upstream `ValidatePodCreate` without the generic ObjectMeta checks.
pub fn validate_pod_create(pod: &core::Pod) -> Vec<FieldError> {
    let spec = or_default(&pod.spec);
    let sp = Path::new("spec");
    let mut errs = validate_pod_metadata_and_spec(pod);
    if !list(&spec.ephemeral_containers).is_empty() {
        errs.push(FieldError::forbidden(
            &sp.child("ephemeralContainers"),
            "cannot be set on create",
        ));
    }
    if !empty(&spec.node_name) && !list(&spec.scheduling_gates).is_empty() {
        errs.push(FieldError::forbidden(
            &sp.child("nodeName"),
            "cannot be set until all schedulingGates have been cleared",
        ));
    }
    errs.extend(validate_seccomp_annotations_and_fields(
        &pod.metadata.annotations,
        &spec,
        &sp,
    ));
    errs.extend(validate_app_armor_annotations_and_fields(
        &pod.metadata.annotations,
        &spec,
        &sp,
    ));
    errs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rebase_paths() {
        let p = Path::new("spec").child("containers").index(2);
        let base = Path::new("spec").child("template").child("spec");
        assert_eq!(
            rebase(&p, &base).to_string(),
            "spec.template.spec.containers[2]"
        );
    }

    #[test]
    fn accepted_field_refs_have_nothing_to_report() {
        for fp in ENV_FIELD_PATHS {
            let fr = core::ObjectFieldSelector {
                api_version: Some("v1".into()),
                field_path: fp.to_string(),
            };
            assert!(field_ref_ok(&fr), "{fp}");
            assert!(
                validate_object_field_selector(&fr, ENV_FIELD_PATHS, &Path::new("f")).is_empty(),
                "{fp}"
            );
        }
        for (api_version, fp) in [
            (None, "metadata.name"),
            (Some("v2"), "metadata.name"),
            (Some("v1"), "spec.host"),
            (Some("v1"), "metadata.labels['a']"),
            (Some("v1"), "status.phase"),
        ] {
            let fr = core::ObjectFieldSelector {
                api_version: api_version.map(str::to_string),
                field_path: fp.to_string(),
            };
            assert!(!field_ref_ok(&fr), "{fp}");
        }
    }

    #[test]
    fn sysctl_names() {
        assert!(sysctl_name_ok("net.ipv4.ip_forward"));
        assert!(sysctl_name_ok("kernel.shm_rmid_forced"));
        assert!(sysctl_name_ok("net/ipv4/conf/eno2.100/rp_filter"));
        assert!(!sysctl_name_ok("Net.foo"));
        assert!(!sysctl_name_ok("net..foo"));
        assert_eq!(sysctl_namespace("net.core.somaxconn"), "net");
        assert_eq!(sysctl_namespace("kernel.shmmax"), "ipc");
    }
}
