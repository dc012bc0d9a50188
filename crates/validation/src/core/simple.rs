//! The smaller core kinds: Namespace, Node, ConfigMap, Secret,
//! ServiceAccount, Endpoints, Event, ReplicationController, LimitRange and
//! ResourceQuota (defaulting, strategy preparation and validation).

use std::collections::{BTreeMap, BTreeSet};

use apimachinery::validation as av;
use apimachinery::{FieldError, Path};
use k8s_openapi::api::core::v1::{
    ConfigMap, Endpoints, Event, LimitRange, Namespace, NamespaceSpec, NamespaceStatus, Node,
    ReplicationController, ReplicationControllerStatus, ResourceQuota, ResourceQuotaSpec,
    ResourceQuotaStatus, Secret, ServiceAccount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::ByteString;

use crate::core::defaults::default_resource_list;
use crate::core::pod::default_pod_template;
use crate::core::podspec::{validate_node_taints, validate_pod_template_spec, PodOpts};
use crate::core::resources::{
    parse_q, q_str, validate_container_resource_name, validate_quantity_value,
    validate_quota_resource_name, validate_resource_name,
};
use crate::util::{
    empty, go_str_map, invalid_go, list, msgs_invalid, nonneg, s, semantic_eq, to_json,
    validate_dns1123_label, validate_kube_finalizer_name, validate_kube_finalizers,
    validate_qualified_name,
};
use crate::KindRules;

/// Maximum total size of a Secret's or ConfigMap's data (1 MiB).
pub const MAX_SECRET_SIZE: usize = 1024 * 1024;

// ---------------------------------------------------------------- Namespace

impl KindRules for Namespace {
    fn default(&mut self) {
        if let Some(name) = self.metadata.name.clone().filter(|n| !n.is_empty()) {
            self.metadata
                .labels
                .get_or_insert_with(BTreeMap::new)
                .insert("kubernetes.io/metadata.name".into(), name);
        }
        let st = self.status.get_or_insert_with(Default::default);
        if empty(&st.phase) {
            st.phase = Some("Active".into());
        }
    }

    fn prepare_for_create(&mut self) {
        self.status = Some(NamespaceStatus {
            phase: Some("Active".into()),
            conditions: None,
        });
        let spec = self.spec.get_or_insert_with(NamespaceSpec::default);
        let fins = spec.finalizers.get_or_insert_with(Vec::new);
        if !fins.iter().any(|f| f == "kubernetes") {
            fins.push("kubernetes".into());
        }
    }

    fn prepare_for_update(&mut self, old: &Self) {
        let fins = old.spec.as_ref().and_then(|s| s.finalizers.clone());
        self.spec.get_or_insert_with(Default::default).finalizers = fins;
        self.status = old.status.clone();
    }

    fn prepare_for_status_update(&mut self, old: &Self) {
        self.spec = old.spec.clone();
    }

    fn validate(&self) -> Vec<FieldError> {
        let mut errs = validate_kube_finalizers(&self.metadata);
        let p = Path::new("spec").child("finalizers");
        for f in self.spec.iter().flat_map(|s| list(&s.finalizers)) {
            errs.extend(av::validate_finalizer_name(f, &p));
            errs.extend(validate_kube_finalizer_name(f, &p));
        }
        errs
    }

    fn validate_update(&self, _old: &Self) -> Vec<FieldError> {
        validate_kube_finalizers(&self.metadata)
    }

    fn validate_status_update(&self, _old: &Self) -> Vec<FieldError> {
        let mut errs = validate_kube_finalizers(&self.metadata);
        let phase = self
            .status
            .as_ref()
            .map(|s| s.phase.clone())
            .unwrap_or_default();
        let p = Path::new("status").child("Phase");
        if self.metadata.deletion_timestamp.is_none() {
            if s(&phase) != "Active" {
                errs.push(FieldError::invalid(
                    &p,
                    s(&phase),
                    "may only be 'Active' if `deletionTimestamp` is empty",
                ));
            }
        } else if s(&phase) != "Terminating" {
            errs.push(FieldError::invalid(
                &p,
                s(&phase),
                "may only be 'Terminating' if `deletionTimestamp` is not empty",
            ));
        }
        errs
    }
}

/// Validation of an update through the `namespaces/finalize` subresource
/// (upstream `ValidateNamespaceFinalizeUpdate`).
pub fn validate_namespace_finalize_update(ns: &Namespace) -> Vec<FieldError> {
    let mut errs = validate_kube_finalizers(&ns.metadata);
    let p = Path::new("spec").child("finalizers");
    for (i, f) in ns.spec.iter().flat_map(|s| list(&s.finalizers)).enumerate() {
        errs.extend(av::validate_finalizer_name(f, &p.index(i)));
        errs.extend(validate_kube_finalizer_name(f, &p.index(i)));
    }
    errs
}

// --------------------------------------------------------------------- Node

fn validate_node_resources(node: &Node) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let st = node.status.clone().unwrap_or_default();
    for (field, m) in [("capacity", &st.capacity), ("allocatable", &st.allocatable)] {
        for (k, q) in m.iter().flatten() {
            let p = Path::new("status").child(field).child(k);
            match parse_q(q, &p) {
                Ok(v) => errs.extend(validate_quantity_value(k, &v, &p)),
                Err(e) => errs.push(e),
            }
        }
    }
    errs
}

fn validate_node_common(node: &Node) -> Vec<FieldError> {
    let mut errs = validate_kube_finalizers(&node.metadata);
    let taints = node.spec.as_ref().map(|s| list(&s.taints)).unwrap_or(&[]);
    if !taints.is_empty() {
        errs.extend(validate_node_taints(
            taints,
            &Path::new("metadata").child("taints"),
        ));
    }
    errs.extend(validate_node_resources(node));
    errs
}

impl KindRules for Node {
    fn default(&mut self) {
        if let Some(st) = &mut self.status {
            if st.allocatable.is_none() && st.capacity.is_some() {
                st.allocatable = st.capacity.clone();
            }
            default_resource_list(&mut st.capacity);
            default_resource_list(&mut st.allocatable);
        }
    }

    fn prepare_for_create(&mut self) {
        if let Some(spec) = &mut self.spec {
            spec.config_source = None;
        }
    }

    fn prepare_for_update(&mut self, old: &Self) {
        self.status = old.status.clone();
        if old.spec.as_ref().is_none_or(|s| s.config_source.is_none()) {
            if let Some(spec) = &mut self.spec {
                spec.config_source = None;
            }
        }
    }

    fn prepare_for_status_update(&mut self, old: &Self) {
        self.spec = old.spec.clone();
    }

    fn validate(&self) -> Vec<FieldError> {
        let mut errs = validate_node_common(self);
        let cidrs = self
            .spec
            .as_ref()
            .map(|s| list(&s.pod_cidrs))
            .unwrap_or(&[]);
        let p = Path::new("spec").child("podCIDRs");
        for (i, c) in cidrs.iter().enumerate() {
            errs.extend(av::is_valid_cidr(&p.index(i), c));
        }
        if cidrs.len() > 1 {
            let fams: BTreeSet<bool> = cidrs
                .iter()
                .filter_map(|c| av::parse_cidr_sloppy(c))
                .map(|(ip, _)| ip.to_v4().is_some())
                .collect();
            if fams.len() != 2 || cidrs.len() > 2 {
                errs.push(invalid_go(
                    &p,
                    &crate::util::go_str_slice(&Some(cidrs.to_vec())),
                    "may specify no more than one CIDR for each IP family",
                ));
            }
            let mut seen = BTreeSet::new();
            for (i, c) in cidrs.iter().enumerate() {
                if !seen.insert(c) {
                    errs.push(FieldError::duplicate(&p.index(i), c.as_str()));
                }
            }
        }
        errs
    }

    fn validate_update(&self, old: &Self) -> Vec<FieldError> {
        let mut errs = validate_node_common(self);
        let st = self.status.clone().unwrap_or_default();
        let mut seen = BTreeSet::new();
        for (i, a) in list(&st.addresses).iter().enumerate() {
            if !seen.insert((a.type_.clone(), a.address.clone())) {
                errs.push(FieldError::duplicate(
                    &Path::new("status").child("addresses").index(i),
                    to_json(a),
                ));
            }
        }
        let spec = self.spec.clone().unwrap_or_default();
        let ospec = old.spec.clone().unwrap_or_default();
        let old_cidrs = list(&ospec.pod_cidrs);
        if !old_cidrs.is_empty() {
            let msg = "node updates may not change podCIDR except from \"\" to valid";
            let p = Path::new("spec").child("podCIDRs");
            let new_cidrs = list(&spec.pod_cidrs);
            if old_cidrs.len() != new_cidrs.len() {
                errs.push(FieldError::forbidden(&p, msg));
            } else {
                for (o, n) in old_cidrs.iter().zip(new_cidrs) {
                    if o != n {
                        errs.push(FieldError::forbidden(&p, msg));
                    }
                }
            }
        }
        if !empty(&ospec.provider_id) && ospec.provider_id != spec.provider_id {
            errs.push(FieldError::forbidden(
                &Path::new("spec").child("providerID"),
                "node updates may not change providerID except from \"\" to valid",
            ));
        }
        if s(&spec.external_id) != s(&ospec.external_id) {
            errs.push(FieldError::forbidden(
                &Path::new("spec").child("externalID"),
                "may not be updated",
            ));
        }
        errs
    }

    fn validate_status_update(&self, old: &Self) -> Vec<FieldError> {
        self.validate_update(old)
    }
}

// ---------------------------------------------------------------- ConfigMap

impl KindRules for ConfigMap {
    fn validate(&self) -> Vec<FieldError> {
        let mut errs = validate_kube_finalizers(&self.metadata);
        let mut total = 0usize;
        let dp = Path::new("data");
        for (k, v) in self.data.iter().flatten() {
            errs.extend(msgs_invalid(&dp.key(k), k, av::is_config_map_key(k)));
            if self.binary_data.as_ref().is_some_and(|b| b.contains_key(k)) {
                errs.push(FieldError::invalid(
                    &dp.key(k),
                    k.as_str(),
                    "duplicate of key present in binaryData",
                ));
            }
            total += v.len();
        }
        let bp = Path::new("binaryData");
        for (k, v) in self.binary_data.iter().flatten() {
            errs.extend(msgs_invalid(&bp.key(k), k, av::is_config_map_key(k)));
            total += v.0.len();
        }
        if total > MAX_SECRET_SIZE {
            errs.push(FieldError::too_long(
                &Path::new(""),
                "",
                MAX_SECRET_SIZE as i64,
            ));
        }
        errs
    }

    fn validate_update(&self, old: &Self) -> Vec<FieldError> {
        let mut errs = Vec::new();
        if old.immutable == Some(true) {
            let msg = "field is immutable when `immutable` is set";
            if self.immutable != Some(true) {
                errs.push(FieldError::forbidden(&Path::new("immutable"), msg));
            }
            if !semantic_eq(&self.data, &old.data) {
                errs.push(FieldError::forbidden(&Path::new("data"), msg));
            }
            if !semantic_eq(&self.binary_data, &old.binary_data) {
                errs.push(FieldError::forbidden(&Path::new("binaryData"), msg));
            }
        }
        errs.extend(self.validate());
        errs
    }

    fn validate_status_update(&self, _old: &Self) -> Vec<FieldError> {
        Vec::new()
    }
}

// ------------------------------------------------------------------- Secret

/// Go's `encoding/json` error for a value that does not decode into a map.
fn json_map_error(data: &[u8]) -> Option<String> {
    match serde_json::from_slice::<serde_json::Value>(data) {
        Ok(serde_json::Value::Object(_)) | Ok(serde_json::Value::Null) => None,
        Ok(v) => {
            let kind = match v {
                serde_json::Value::Array(_) => "array",
                serde_json::Value::String(_) => "string",
                serde_json::Value::Number(_) => "number",
                _ => "bool",
            };
            Some(format!(
                "json: cannot unmarshal {kind} into Go value of type map[string]interface {{}}"
            ))
        }
        Err(_) => {
            let first = data.iter().copied().find(|c| !c.is_ascii_whitespace());
            match first {
                None => Some("unexpected end of JSON input".into()),
                Some(c)
                    if !matches!(
                        c,
                        b'{' | b'[' | b'"' | b'-' | b'0'..=b'9' | b't' | b'f' | b'n'
                    ) =>
                {
                    Some(format!(
                        "invalid character '{}' looking for beginning of value",
                        c as char
                    ))
                }
                Some(c @ (b't' | b'f' | b'n')) => {
                    let lit: &[u8] = match c {
                        b't' => b"true",
                        b'f' => b"false",
                        _ => b"null",
                    };
                    let start = data
                        .iter()
                        .position(|x| !x.is_ascii_whitespace())
                        .unwrap_or(0);
                    for (i, want) in lit.iter().enumerate() {
                        match data.get(start + i) {
                            Some(got) if got == want => {}
                            Some(got) => {
                                return Some(format!(
                                    "invalid character '{}' in literal {} (expecting '{}')",
                                    *got as char,
                                    String::from_utf8_lossy(lit),
                                    *want as char
                                ))
                            }
                            None => return Some("unexpected end of JSON input".into()),
                        }
                    }
                    Some("unexpected end of JSON input".into())
                }
                _ => Some("unexpected end of JSON input".into()),
            }
        }
    }
}

impl KindRules for Secret {
    fn default(&mut self) {
        if empty(&self.type_) {
            self.type_ = Some("Opaque".into());
        }
        // stringData is merged into data when decoding into the internal type.
        if let Some(sd) = self.string_data.take() {
            let data = self.data.get_or_insert_with(BTreeMap::new);
            for (k, v) in sd {
                data.insert(k, ByteString(v.into_bytes()));
            }
        }
    }

    fn validate(&self) -> Vec<FieldError> {
        let mut errs = validate_kube_finalizers(&self.metadata);
        let dp = Path::new("data");
        let mut total = 0usize;
        let empty_map = BTreeMap::new();
        let data = self.data.as_ref().unwrap_or(&empty_map);
        for (k, v) in data {
            errs.extend(msgs_invalid(&dp.key(k), k, av::is_config_map_key(k)));
            total += v.0.len();
        }
        if total > MAX_SECRET_SIZE {
            errs.push(FieldError::too_long(&dp, "", MAX_SECRET_SIZE as i64));
        }
        match s(&self.type_) {
            "kubernetes.io/service-account-token" => {
                let name = self
                    .metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get("kubernetes.io/service-account.name"))
                    .map(String::as_str)
                    .unwrap_or("");
                if name.is_empty() {
                    errs.push(FieldError::required(
                        &Path::new("metadata")
                            .child("annotations")
                            .key("kubernetes.io/service-account.name"),
                        "",
                    ));
                }
            }
            "kubernetes.io/dockercfg" | "kubernetes.io/dockerconfigjson" => {
                let key = if s(&self.type_) == "kubernetes.io/dockercfg" {
                    ".dockercfg"
                } else {
                    ".dockerconfigjson"
                };
                match data.get(key) {
                    None => errs.push(FieldError::required(&dp.key(key), "")),
                    Some(v) => {
                        if let Some(msg) = json_map_error(&v.0) {
                            errs.push(FieldError::invalid(
                                &dp.key(key),
                                "<secret contents redacted>",
                                msg,
                            ));
                        }
                    }
                }
            }
            "kubernetes.io/basic-auth"
                if !data.contains_key("username") && !data.contains_key("password") =>
            {
                errs.push(FieldError::required(&dp.key("username"), ""));
                errs.push(FieldError::required(&dp.key("password"), ""));
            }
            "kubernetes.io/ssh-auth"
                if data.get("ssh-privatekey").is_none_or(|v| v.0.is_empty()) =>
            {
                errs.push(FieldError::required(&dp.key("ssh-privatekey"), ""));
            }
            "kubernetes.io/tls" => {
                if !data.contains_key("tls.crt") {
                    errs.push(FieldError::required(&dp.key("tls.crt"), ""));
                }
                if !data.contains_key("tls.key") {
                    errs.push(FieldError::required(&dp.key("tls.key"), ""));
                }
            }
            _ => {}
        }
        errs
    }

    fn validate_update(&self, old: &Self) -> Vec<FieldError> {
        let mut errs = crate::util::immutable(
            to_json(s(&self.type_)),
            to_json(s(&old.type_)),
            &Path::new("type"),
        );
        if old.immutable == Some(true) {
            let msg = "field is immutable when `immutable` is set";
            if self.immutable != Some(true) {
                errs.push(FieldError::forbidden(&Path::new("immutable"), msg));
            }
            if !semantic_eq(&self.data, &old.data) {
                errs.push(FieldError::forbidden(&Path::new("data"), msg));
            }
        }
        errs.extend(self.validate());
        errs
    }

    fn validate_status_update(&self, _old: &Self) -> Vec<FieldError> {
        Vec::new()
    }
}

// ----------------------------------------------------------- ServiceAccount

impl KindRules for ServiceAccount {
    fn validate(&self) -> Vec<FieldError> {
        validate_kube_finalizers(&self.metadata)
    }

    fn validate_update(&self, _old: &Self) -> Vec<FieldError> {
        self.validate()
    }

    fn validate_status_update(&self, _old: &Self) -> Vec<FieldError> {
        Vec::new()
    }
}

// ---------------------------------------------------------------- Endpoints

impl KindRules for Endpoints {
    fn default(&mut self) {
        for ss in self.subsets.iter_mut().flatten() {
            for p in ss.ports.iter_mut().flatten() {
                if empty(&p.protocol) {
                    p.protocol = Some("TCP".into());
                }
            }
        }
    }

    fn validate(&self) -> Vec<FieldError> {
        let mut errs = validate_kube_finalizers(&self.metadata);
        let base = Path::new("subsets");
        for (i, ss) in list(&self.subsets).iter().enumerate() {
            let ip = base.index(i);
            if list(&ss.addresses).is_empty() && list(&ss.not_ready_addresses).is_empty() {
                errs.push(FieldError::required(
                    &ip,
                    "must specify `addresses` or `notReadyAddresses`",
                ));
            }
            for (field, addrs) in [
                ("addresses", &ss.addresses),
                ("notReadyAddresses", &ss.not_ready_addresses),
            ] {
                for (j, a) in list(addrs).iter().enumerate() {
                    let p = ip.child(field).index(j);
                    errs.extend(av::is_valid_ip(&p.child("ip"), &a.ip));
                    if !empty(&a.hostname) {
                        errs.extend(validate_dns1123_label(s(&a.hostname), &p.child("hostname")));
                    }
                    if let Some(n) = &a.node_name {
                        errs.extend(msgs_invalid(
                            &p.child("nodeName"),
                            n,
                            av::name_is_dns_subdomain(n, false),
                        ));
                    }
                    errs.extend(crate::core::service::validate_non_special_ip(
                        &a.ip,
                        &p.child("ip"),
                    ));
                }
            }
            let ports = list(&ss.ports);
            for (j, port) in ports.iter().enumerate() {
                let p = ip.child("ports").index(j);
                let name = s(&port.name);
                if ports.len() > 1 && name.is_empty() {
                    errs.push(FieldError::required(&p.child("name"), ""));
                } else if !name.is_empty() {
                    errs.extend(validate_dns1123_label(name, &p.child("name")));
                }
                for m in av::is_valid_port_num(i64::from(port.port)) {
                    errs.push(FieldError::invalid(&p.child("port"), port.port, m));
                }
                match s(&port.protocol) {
                    "" => errs.push(FieldError::required(&p.child("protocol"), "")),
                    "TCP" | "UDP" | "SCTP" => {}
                    other => errs.push(FieldError::not_supported(
                        &p.child("protocol"),
                        other,
                        &["SCTP", "TCP", "UDP"],
                    )),
                }
                if let Some(ap) = &port.app_protocol {
                    errs.extend(validate_qualified_name(ap, &p.child("appProtocol")));
                }
            }
        }
        errs
    }

    fn validate_update(&self, _old: &Self) -> Vec<FieldError> {
        self.validate()
    }

    fn validate_status_update(&self, _old: &Self) -> Vec<FieldError> {
        Vec::new()
    }
}

// -------------------------------------------------------------------- Event

impl KindRules for Event {
    fn validate(&self) -> Vec<FieldError> {
        validate_event_v1(self)
    }

    fn validate_update(&self, _old: &Self) -> Vec<FieldError> {
        validate_event_v1(self)
    }

    fn validate_status_update(&self, _old: &Self) -> Vec<FieldError> {
        Vec::new()
    }
}

/// Upstream's legacy event validation as applied to `v1` events.
fn validate_event_v1(e: &Event) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let ns = s(&e.metadata.namespace);
    let ins = s(&e.involved_object.namespace);
    let ip = Path::new("involvedObject").child("namespace");
    if e.event_time.is_none() {
        if ins.is_empty() {
            if !ns.is_empty() && ns != "default" {
                errs.push(FieldError::invalid(
                    &ip,
                    ins,
                    "does not match event.namespace",
                ));
            }
        } else if ns != ins {
            errs.push(FieldError::invalid(
                &ip,
                ins,
                "does not match event.namespace",
            ));
        }
    } else {
        if ins.is_empty() && ns != "default" && ns != "kube-system" {
            errs.push(FieldError::invalid(
                &ip,
                ins,
                "does not match event.namespace",
            ));
        }
        let rc = s(&e.reporting_component);
        if rc.is_empty() {
            errs.push(FieldError::required(&Path::new("source"), ""));
        }
        errs.extend(validate_qualified_name(rc, &Path::new("source")));
        let ri = s(&e.reporting_instance);
        if ri.is_empty() {
            errs.push(FieldError::required(&Path::new("reportingInstance"), ""));
        }
        if ri.len() > 128 {
            errs.push(FieldError::invalid(
                &Path::new("reportingInstance"),
                "",
                "can have at most 128 characters",
            ));
        }
        let action = s(&e.action);
        if action.is_empty() {
            errs.push(FieldError::required(&Path::new("action"), ""));
        }
        if action.len() > 128 {
            errs.push(FieldError::invalid(
                &Path::new("action"),
                "",
                "can have at most 128 characters",
            ));
        }
        let reason = s(&e.reason);
        if reason.is_empty() {
            errs.push(FieldError::required(&Path::new("reason"), ""));
        }
        if reason.len() > 128 {
            errs.push(FieldError::invalid(
                &Path::new("reason"),
                "",
                "can have at most 128 characters",
            ));
        }
        if s(&e.message).len() > 1024 {
            errs.push(FieldError::invalid(
                &Path::new("message"),
                "",
                "can have at most 1024 characters",
            ));
        }
    }
    errs.extend(msgs_invalid(
        &Path::new("namespace"),
        ns,
        av::is_dns1123_subdomain(ns),
    ));
    errs
}

// ----------------------------------------------------- ReplicationController

impl KindRules for ReplicationController {
    fn default(&mut self) {
        let spec = self.spec.get_or_insert_with(Default::default);
        let labels = spec
            .template
            .as_ref()
            .and_then(|t| t.metadata.as_ref())
            .and_then(|m| m.labels.clone());
        if let Some(labels) = labels {
            if spec.selector.as_ref().is_none_or(|s| s.is_empty()) {
                spec.selector = Some(labels.clone());
            }
            if self.metadata.labels.as_ref().is_none_or(|l| l.is_empty()) {
                self.metadata.labels = Some(labels);
            }
        }
        spec.replicas.get_or_insert(1);
        if let Some(t) = &mut spec.template {
            default_pod_template(t);
        }
    }

    fn prepare_for_create(&mut self) {
        self.status = Some(ReplicationControllerStatus::default());
        self.metadata.generation = Some(1);
    }

    fn prepare_for_update(&mut self, old: &Self) {
        self.status = old.status.clone();
        self.metadata.generation = old.metadata.generation;
        if !semantic_eq(&self.spec, &old.spec) {
            self.metadata.generation = Some(old.metadata.generation.unwrap_or(0) + 1);
        }
    }

    fn prepare_for_status_update(&mut self, old: &Self) {
        self.spec = old.spec.clone();
    }

    fn validate(&self) -> Vec<FieldError> {
        let mut errs = validate_kube_finalizers(&self.metadata);
        let spec = self.spec.clone().unwrap_or_default();
        let sp = Path::new("spec");
        errs.extend(nonneg(
            i64::from(spec.min_ready_seconds.unwrap_or(0)),
            &sp.child("minReadySeconds"),
        ));
        if spec.selector.as_ref().is_none_or(|s| s.is_empty()) {
            errs.push(FieldError::required(&sp.child("selector"), ""));
        }
        errs.extend(nonneg(
            i64::from(spec.replicas.unwrap_or(0)),
            &sp.child("replicas"),
        ));
        let tp = sp.child("template");
        match &spec.template {
            None => errs.push(FieldError::required(&tp, "")),
            Some(t) => {
                let sel = spec.selector.clone().unwrap_or_default();
                let labels = t.metadata.as_ref().and_then(|m| m.labels.clone());
                if !sel.is_empty() {
                    let lm = labels.clone().unwrap_or_default();
                    if !sel.iter().all(|(k, v)| lm.get(k) == Some(v)) {
                        errs.push(invalid_go(
                            &tp.child("metadata").child("labels"),
                            &go_str_map(&labels),
                            "`selector` does not match template `labels`",
                        ));
                    }
                }
                errs.extend(validate_pod_template_spec(t, &tp, PodOpts::default()));
                let ps = t.spec.clone().unwrap_or_default();
                if s(&ps.restart_policy) != "Always" {
                    errs.push(FieldError::not_supported(
                        &tp.child("spec").child("restartPolicy"),
                        s(&ps.restart_policy),
                        &["Always"],
                    ));
                }
                if ps.active_deadline_seconds.is_some() {
                    errs.push(FieldError::forbidden(
                        &tp.child("spec").child("activeDeadlineSeconds"),
                        "activeDeadlineSeconds in ReplicationController is not Supported",
                    ));
                }
            }
        }
        errs
    }

    fn validate_update(&self, _old: &Self) -> Vec<FieldError> {
        self.validate()
    }

    fn validate_status_update(&self, _old: &Self) -> Vec<FieldError> {
        let st = self.status.clone().unwrap_or_default();
        let p = Path::new("status");
        let replicas = st.replicas;
        let fully = st.fully_labeled_replicas.unwrap_or(0);
        let ready = st.ready_replicas.unwrap_or(0);
        let avail = st.available_replicas.unwrap_or(0);
        let mut errs = validate_kube_finalizers(&self.metadata);
        errs.extend(nonneg(i64::from(replicas), &p.child("replicas")));
        errs.extend(nonneg(i64::from(fully), &p.child("fullyLabeledReplicas")));
        errs.extend(nonneg(i64::from(ready), &p.child("readyReplicas")));
        errs.extend(nonneg(i64::from(avail), &p.child("availableReplicas")));
        errs.extend(nonneg(
            st.observed_generation.unwrap_or(0),
            &p.child("observedGeneration"),
        ));
        let msg = "cannot be greater than status.replicas";
        if fully > replicas {
            errs.push(FieldError::invalid(
                &p.child("fullyLabeledReplicas"),
                fully,
                msg,
            ));
        }
        if ready > replicas {
            errs.push(FieldError::invalid(&p.child("readyReplicas"), ready, msg));
        }
        if avail > replicas {
            errs.push(FieldError::invalid(
                &p.child("availableReplicas"),
                avail,
                msg,
            ));
        }
        if avail > ready {
            errs.push(FieldError::invalid(
                &p.child("availableReplicas"),
                avail,
                "cannot be greater than readyReplicas",
            ));
        }
        errs
    }
}

// --------------------------------------------------------------- LimitRange

type QMap = Option<BTreeMap<String, Quantity>>;

fn limit_range_resource_name(limit_type: &str, name: &str, path: &Path) -> Vec<FieldError> {
    if limit_type == "Pod" || limit_type == "Container" {
        validate_container_resource_name(name, path)
    } else {
        validate_resource_name(name, path)
    }
}

impl KindRules for LimitRange {
    fn default(&mut self) {
        for item in self.spec.iter_mut().flat_map(|s| s.limits.iter_mut()) {
            if item.type_ == "Container" {
                let default = item.default.get_or_insert_with(BTreeMap::new);
                for (k, v) in item.max.iter().flatten() {
                    default.entry(k.clone()).or_insert_with(|| v.clone());
                }
                let default = default.clone();
                let dr = item.default_request.get_or_insert_with(BTreeMap::new);
                for (k, v) in &default {
                    dr.entry(k.clone()).or_insert_with(|| v.clone());
                }
                for (k, v) in item.min.iter().flatten() {
                    dr.entry(k.clone()).or_insert_with(|| v.clone());
                }
                if item.default.as_ref().is_some_and(|m| m.is_empty()) {
                    item.default = None;
                }
                if item.default_request.as_ref().is_some_and(|m| m.is_empty()) {
                    item.default_request = None;
                }
            }
            for m in [
                &mut item.max,
                &mut item.min,
                &mut item.default,
                &mut item.default_request,
                &mut item.max_limit_request_ratio,
            ] {
                default_resource_list(m);
            }
        }
    }

    fn validate(&self) -> Vec<FieldError> {
        let mut errs = validate_kube_finalizers(&self.metadata);
        let fp = Path::new("spec").child("limits");
        let mut types = BTreeSet::new();
        for (i, limit) in self.spec.iter().flat_map(|s| s.limits.iter()).enumerate() {
            let ip = fp.index(i);
            let t = limit.type_.as_str();
            let tmsgs = av::is_qualified_name(t);
            if !tmsgs.is_empty() {
                errs.extend(msgs_invalid(&ip.child("type"), t, tmsgs));
            } else if !t.contains('/')
                && !["Pod", "Container", "PersistentVolumeClaim"].contains(&t)
            {
                errs.push(FieldError::invalid(
                    &ip.child("type"),
                    t,
                    "must be a standard limit type or fully qualified",
                ));
            }
            if !types.insert(t.to_string()) {
                errs.push(FieldError::duplicate(&ip.child("type"), t));
            }
            let mut keys = BTreeSet::new();
            let mut collect = |m: &QMap,
                               name: &str,
                               errs: &mut Vec<FieldError>|
             -> BTreeMap<String, apimachinery::Quantity> {
                let mut out = BTreeMap::new();
                for (k, q) in m.iter().flatten() {
                    errs.extend(limit_range_resource_name(t, k, &ip.child(name).key(k)));
                    keys.insert(k.clone());
                    if let Ok(v) = apimachinery::Quantity::parse(&q.0) {
                        out.insert(k.clone(), v);
                    }
                }
                out
            };
            let max = collect(&limit.max, "max", &mut errs);
            let min = collect(&limit.min, "min", &mut errs);
            let (defaults, default_requests) = if t == "Pod" {
                if limit.default.as_ref().is_some_and(|m| !m.is_empty()) {
                    errs.push(FieldError::forbidden(
                        &ip.child("default"),
                        "may not be specified when `type` is 'Pod'",
                    ));
                }
                if limit
                    .default_request
                    .as_ref()
                    .is_some_and(|m| !m.is_empty())
                {
                    errs.push(FieldError::forbidden(
                        &ip.child("defaultRequest"),
                        "may not be specified when `type` is 'Pod'",
                    ));
                }
                (BTreeMap::new(), BTreeMap::new())
            } else {
                let d = collect(&limit.default, "default", &mut errs);
                let dr = collect(&limit.default_request, "defaultRequest", &mut errs);
                (d, dr)
            };
            if t == "PersistentVolumeClaim" {
                let has_min = limit
                    .min
                    .as_ref()
                    .is_some_and(|m| m.contains_key("storage"));
                let has_max = limit
                    .max
                    .as_ref()
                    .is_some_and(|m| m.contains_key("storage"));
                if !has_min && !has_max {
                    errs.push(FieldError::required(&ip.child("limits"), "either minimum or maximum storage value is required, but neither was provided"));
                }
            }
            let ratios = collect(
                &limit.max_limit_request_ratio,
                "maxLimitRequestRatio",
                &mut errs,
            );
            for k in &keys {
                let mn = min.get(k);
                let mx = max.get(k);
                let d = defaults.get(k);
                let dr = default_requests.get(k);
                let ratio = ratios.get(k);
                if let (Some(mn), Some(mx)) = (mn, mx) {
                    if mn > mx {
                        errs.push(invalid_go(
                            &ip.child("min").key(k),
                            &mn.to_string(),
                            &format!("min value {mn} is greater than max value {mx}"),
                        ));
                    }
                }
                if let (Some(dr), Some(mn)) = (dr, mn) {
                    if mn > dr {
                        errs.push(invalid_go(
                            &ip.child("defaultRequest").key(k),
                            &dr.to_string(),
                            &format!("min value {mn} is greater than default request value {dr}"),
                        ));
                    }
                }
                if let (Some(dr), Some(mx)) = (dr, mx) {
                    if dr > mx {
                        errs.push(invalid_go(
                            &ip.child("defaultRequest").key(k),
                            &dr.to_string(),
                            &format!("default request value {dr} is greater than max value {mx}"),
                        ));
                    }
                }
                if let (Some(dr), Some(d)) = (dr, d) {
                    if dr > d {
                        errs.push(invalid_go(&ip.child("defaultRequest").key(k), &dr.to_string(), &format!("default request value {dr} is greater than default limit value {d}")));
                    }
                }
                if let (Some(d), Some(mn)) = (d, mn) {
                    if mn > d {
                        errs.push(invalid_go(
                            &ip.child("default").key(k),
                            &mn.to_string(),
                            &format!("min value {mn} is greater than default value {d}"),
                        ));
                    }
                }
                if let (Some(d), Some(mx)) = (d, mx) {
                    if d > mx {
                        errs.push(invalid_go(
                            &ip.child("default").key(k),
                            &mx.to_string(),
                            &format!("default value {d} is greater than max value {mx}"),
                        ));
                    }
                }
                if let Some(r) = ratio {
                    if r.cmp_i64(1) == std::cmp::Ordering::Less {
                        errs.push(invalid_go(
                            &ip.child("maxLimitRequestRatio").key(k),
                            &r.to_string(),
                            &format!("ratio {r} is less than 1"),
                        ));
                    }
                    if let (Some(mn), Some(mx)) = (mn, mx) {
                        let (rval, minv, maxv) = if r.value() < i64::MAX / 1000
                            && mn.value() < i64::MAX / 1000
                            && mx.value() < i64::MAX / 1000
                        {
                            (
                                r.milli_value() as f64 / 1000.0,
                                mn.milli_value(),
                                mx.milli_value(),
                            )
                        } else {
                            (r.value() as f64, mn.value(), mx.value())
                        };
                        let limit_ratio = maxv as f64 / minv as f64;
                        if rval > limit_ratio {
                            errs.push(invalid_go(
                                &ip.child("maxLimitRequestRatio").key(k),
                                &r.to_string(),
                                &format!("ratio {r} is greater than max/min = {limit_ratio:.6}"),
                            ));
                        }
                    }
                }
                if !crate::core::resources::is_overcommit_allowed(k) {
                    if let (Some(d), Some(dr)) = (d, dr) {
                        if d != dr {
                            errs.push(invalid_go(&ip.child("defaultRequest").key(k), &dr.to_string(), &format!("default value {d} must equal to defaultRequest value {dr} in {k}")));
                        }
                    }
                }
            }
        }
        errs
    }

    fn validate_update(&self, _old: &Self) -> Vec<FieldError> {
        self.validate()
    }

    fn validate_status_update(&self, _old: &Self) -> Vec<FieldError> {
        Vec::new()
    }
}

// ------------------------------------------------------------ ResourceQuota

const QUOTA_SCOPES: &[&str] = &[
    "Terminating",
    "NotTerminating",
    "BestEffort",
    "NotBestEffort",
    "PriorityClass",
    "CrossNamespacePodAffinity",
    "VolumeAttributesClass",
];

fn scope_valid_for_resource(scope: &str, resource: &str) -> bool {
    let pod_object_count = ["pods", "count/pods"];
    let pod_compute = [
        "cpu",
        "limits.cpu",
        "limits.memory",
        "memory",
        "requests.cpu",
        "requests.memory",
    ];
    let pod_objects: Vec<&str> = pod_object_count
        .iter()
        .chain(pod_compute.iter())
        .copied()
        .collect();
    match scope {
        "Terminating"
        | "NotTerminating"
        | "NotBestEffort"
        | "PriorityClass"
        | "CrossNamespacePodAffinity" => pod_objects.contains(&resource),
        "BestEffort" => pod_object_count.contains(&resource),
        "VolumeAttributesClass" => {
            ["persistentvolumeclaims", "requests.storage"].contains(&resource)
        }
        _ => true,
    }
}

fn validate_quota_map(m: &QMap, path: &Path) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for (k, q) in m.iter().flatten() {
        let p = path.key(k);
        errs.extend(validate_quota_resource_name(k, &p));
        match parse_q(q, &p) {
            Ok(v) => errs.extend(validate_quantity_value(k, &v, &p)),
            Err(e) => errs.push(e),
        }
    }
    errs
}

fn validate_quota_spec(spec: &ResourceQuotaSpec, path: &Path) -> Vec<FieldError> {
    let mut errs = validate_quota_map(&spec.hard, &path.child("hard"));
    let hard: Vec<&String> = spec.hard.iter().flat_map(|m| m.keys()).collect();
    let scopes = list(&spec.scopes);
    if !scopes.is_empty() {
        let sp = path.child("scopes");
        let rendered = crate::util::go_str_slice(&spec.scopes)
            .replace("[]string", "[]core.ResourceQuotaScope");
        for sc in scopes {
            if !QUOTA_SCOPES.contains(&sc.as_str()) {
                errs.push(invalid_go(&sp, &rendered, "unsupported scope"));
            }
            for k in &hard {
                if crate::core::resources::is_standard_quota_resource(k)
                    && !scope_valid_for_resource(sc, k)
                {
                    errs.push(invalid_go(
                        &sp,
                        &rendered,
                        "unsupported scope applied to resource",
                    ));
                }
            }
        }
        let set: BTreeSet<&str> = scopes.iter().map(String::as_str).collect();
        for (a, b2) in [
            ("BestEffort", "NotBestEffort"),
            ("Terminating", "NotTerminating"),
        ] {
            if set.contains(a) && set.contains(b2) {
                errs.push(invalid_go(&sp, &rendered, "conflicting scopes"));
            }
        }
    }
    if let Some(sel) = &spec.scope_selector {
        let fp = path.child("scopeSelector").child("matchExpressions");
        let mut set = BTreeSet::new();
        for req in list(&sel.match_expressions) {
            if !QUOTA_SCOPES.contains(&req.scope_name.as_str()) {
                errs.push(FieldError::invalid(
                    &fp.child("scopeName"),
                    req.scope_name.as_str(),
                    "unsupported scope",
                ));
            }
            for k in &hard {
                if crate::core::resources::is_standard_quota_resource(k)
                    && !scope_valid_for_resource(&req.scope_name, k)
                {
                    errs.push(FieldError::invalid(
                        &fp,
                        to_json(sel),
                        "unsupported scope applied to resource",
                    ));
                }
            }
            if [
                "BestEffort",
                "NotBestEffort",
                "Terminating",
                "NotTerminating",
                "CrossNamespacePodAffinity",
            ]
            .contains(&req.scope_name.as_str())
                && req.operator != "Exists"
            {
                errs.push(FieldError::invalid(&fp.child("operator"), req.operator.as_str(), "must be 'Exists' when scope is any of ResourceQuotaScopeTerminating, ResourceQuotaScopeNotTerminating, ResourceQuotaScopeBestEffort, ResourceQuotaScopeNotBestEffort or ResourceQuotaScopeCrossNamespacePodAffinity"));
            }
            match req.operator.as_str() {
                "In" | "NotIn" => {
                    if list(&req.values).is_empty() {
                        errs.push(FieldError::required(&fp.child("values"), "must be at least one value when `operator` is 'In' or 'NotIn' for scope selector"));
                    }
                }
                "Exists" | "DoesNotExist" => {
                    if !list(&req.values).is_empty() {
                        errs.push(invalid_go(&fp.child("values"), &crate::util::go_str_slice(&req.values), "must be no value when `operator` is 'Exist' or 'DoesNotExist' for scope selector"));
                    }
                }
                other => errs.push(FieldError::invalid(
                    &fp.child("operator"),
                    other,
                    "not a valid selector operator",
                )),
            }
            set.insert(req.scope_name.clone());
        }
        for (a, b2) in [
            ("BestEffort", "NotBestEffort"),
            ("Terminating", "NotTerminating"),
        ] {
            if set.contains(a) && set.contains(b2) {
                errs.push(invalid_go(
                    &fp,
                    &crate::util::go_str_slice(&spec.scopes)
                        .replace("[]string", "[]core.ResourceQuotaScope"),
                    "conflicting scopes",
                ));
            }
        }
    }
    errs
}

fn validate_quota_status(st: &ResourceQuotaStatus, path: &Path) -> Vec<FieldError> {
    let mut errs = validate_quota_map(&st.hard, &path.child("hard"));
    errs.extend(validate_quota_map(&st.used, &path.child("used")));
    errs
}

impl KindRules for ResourceQuota {
    fn default(&mut self) {
        if let Some(spec) = &mut self.spec {
            default_resource_list(&mut spec.hard);
        }
        if let Some(st) = &mut self.status {
            default_resource_list(&mut st.hard);
            default_resource_list(&mut st.used);
        }
    }

    fn prepare_for_create(&mut self) {
        self.status = Some(ResourceQuotaStatus::default());
    }

    fn prepare_for_update(&mut self, old: &Self) {
        self.status = old.status.clone();
    }

    fn prepare_for_status_update(&mut self, old: &Self) {
        self.spec = old.spec.clone();
    }

    fn validate(&self) -> Vec<FieldError> {
        let mut errs = validate_kube_finalizers(&self.metadata);
        errs.extend(validate_quota_spec(
            &self.spec.clone().unwrap_or_default(),
            &Path::new("spec"),
        ));
        errs.extend(validate_quota_status(
            &self.status.clone().unwrap_or_default(),
            &Path::new("status"),
        ));
        errs
    }

    fn validate_update(&self, old: &Self) -> Vec<FieldError> {
        let mut errs = validate_kube_finalizers(&self.metadata);
        let spec = self.spec.clone().unwrap_or_default();
        errs.extend(validate_quota_spec(&spec, &Path::new("spec")));
        let ns: BTreeSet<&String> = list(&spec.scopes).iter().collect();
        let ospec = old.spec.clone().unwrap_or_default();
        let os: BTreeSet<&String> = list(&ospec.scopes).iter().collect();
        if ns != os {
            errs.push(invalid_go(
                &Path::new("spec").child("scopes"),
                &crate::util::go_str_slice(&spec.scopes)
                    .replace("[]string", "[]core.ResourceQuotaScope"),
                av::FIELD_IMMUTABLE_ERROR_MSG,
            ));
        }
        errs
    }

    fn validate_status_update(&self, _old: &Self) -> Vec<FieldError> {
        let mut errs = validate_kube_finalizers(&self.metadata);
        if empty(&self.metadata.resource_version) {
            errs.push(FieldError::required(&Path::new("resourceVersion"), ""));
        }
        errs.extend(validate_quota_status(
            &self.status.clone().unwrap_or_default(),
            &Path::new("status"),
        ));
        errs
    }
}

/// The canonical string of a quantity (helper for callers printing limits).
pub fn canonical(q: &Quantity) -> String {
    q_str(q)
}
