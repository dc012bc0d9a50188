//! Pod and PodTemplate: defaulting, the pod registry strategy (status reset,
//! QoS class, scheduling-gated condition, matchLabelKeys merging, AppArmor
//! annotation sync, generation tracking) and create/update/status
//! validation, including upstream's "pod updates may not change fields
//! other than ..." rule.

use std::collections::{BTreeMap, BTreeSet};

use apimachinery::validation as av;
use apimachinery::{FieldError, Path, Quantity as Q};
use k8s_openapi::api::core::v1::{
    AppArmorProfile, ContainerStatus, Pod, PodCondition, PodSpec, PodStatus, PodTemplate,
    PodTemplateSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};

use crate::core::defaults::{default_pod_only, default_pod_spec};
use crate::core::podspec::{
    validate_pod_create, validate_pod_metadata_and_spec, validate_pod_template_spec,
    validate_tolerations, PodOpts,
};
use crate::util::{
    empty, list, msgs_invalid, s, semantic_eq, simple_diff, to_json, validate_qualified_name,
};
use crate::KindRules;

/// Defaulting of a pod template embedded in a workload (pod-spec defaults
/// only; pod-only defaults such as `enableServiceLinks` are not applied).
pub fn default_pod_template(t: &mut PodTemplateSpec) {
    default_pod_spec(t.spec.get_or_insert_with(Default::default));
}

/// Upstream's QoS class computation (`qos.ComputePodQOS`).
pub fn compute_qos(spec: &PodSpec) -> &'static str {
    let mut requests: BTreeMap<&str, Q> = BTreeMap::new();
    let mut limits: BTreeMap<&str, Q> = BTreeMap::new();
    let mut guaranteed = true;
    let zero = Q::new(0, apimachinery::Format::DecimalSI);
    for c in list(&spec.init_containers)
        .iter()
        .chain(spec.containers.iter())
    {
        let Some(r) = &c.resources else {
            guaranteed = false;
            continue;
        };
        for (name, q) in r.requests.iter().flatten() {
            if name != "cpu" && name != "memory" {
                continue;
            }
            if let Ok(q) = Q::parse(&q.0) {
                if q > zero {
                    let key = if name == "cpu" { "cpu" } else { "memory" };
                    requests.entry(key).or_insert_with(|| zero.clone()).add(&q);
                }
            }
        }
        let mut found = BTreeSet::new();
        for (name, q) in r.limits.iter().flatten() {
            if name != "cpu" && name != "memory" {
                continue;
            }
            if let Ok(q) = Q::parse(&q.0) {
                if q > zero {
                    let key = if name == "cpu" { "cpu" } else { "memory" };
                    found.insert(key);
                    limits.entry(key).or_insert_with(|| zero.clone()).add(&q);
                }
            }
        }
        if !(found.contains("cpu") && found.contains("memory")) {
            guaranteed = false;
        }
    }
    if requests.is_empty() && limits.is_empty() {
        return "BestEffort";
    }
    if guaranteed {
        for (name, req) in &requests {
            if limits.get(name) != Some(req) {
                guaranteed = false;
                break;
            }
        }
    }
    if guaranteed && requests.len() == limits.len() {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

fn apply_label_keys(
    sel: &mut Option<LabelSelector>,
    keys: &[String],
    op: &str,
    labels: &BTreeMap<String, String>,
) {
    let Some(sel) = sel else {
        return;
    };
    for k in keys {
        if let Some(v) = labels.get(k) {
            sel.match_expressions
                .get_or_insert_with(Vec::new)
                .push(LabelSelectorRequirement {
                    key: k.clone(),
                    operator: op.to_string(),
                    values: Some(vec![v.clone()]),
                });
        }
    }
}

fn mutate_pod_affinity(pod: &mut Pod) {
    let labels = pod.metadata.labels.clone().unwrap_or_default();
    let Some(aff) = pod.spec.as_mut().and_then(|s| s.affinity.as_mut()) else {
        return;
    };
    let mut terms: Vec<&mut k8s_openapi::api::core::v1::PodAffinityTerm> = Vec::new();
    if let Some(pa) = &mut aff.pod_affinity {
        terms.extend(
            pa.preferred_during_scheduling_ignored_during_execution
                .iter_mut()
                .flatten()
                .map(|w| &mut w.pod_affinity_term),
        );
        terms.extend(
            pa.required_during_scheduling_ignored_during_execution
                .iter_mut()
                .flatten(),
        );
    }
    if let Some(pa) = &mut aff.pod_anti_affinity {
        terms.extend(
            pa.preferred_during_scheduling_ignored_during_execution
                .iter_mut()
                .flatten()
                .map(|w| &mut w.pod_affinity_term),
        );
        terms.extend(
            pa.required_during_scheduling_ignored_during_execution
                .iter_mut()
                .flatten(),
        );
    }
    for t in terms {
        let mk = t.match_label_keys.clone().unwrap_or_default();
        let mmk = t.mismatch_label_keys.clone().unwrap_or_default();
        if (mk.is_empty() && mmk.is_empty()) || t.label_selector.is_none() {
            continue;
        }
        apply_label_keys(&mut t.label_selector, &mk, "In", &labels);
        apply_label_keys(&mut t.label_selector, &mmk, "NotIn", &labels);
    }
}

fn apparmor_field_for_annotation(a: &str) -> Option<AppArmorProfile> {
    if a == "runtime/default" {
        return Some(AppArmorProfile {
            type_: "RuntimeDefault".into(),
            localhost_profile: None,
        });
    }
    if a == "unconfined" {
        return Some(AppArmorProfile {
            type_: "Unconfined".into(),
            localhost_profile: None,
        });
    }
    let p = a.strip_prefix("localhost/")?;
    if p.is_empty() || p.trim() != p {
        return None;
    }
    Some(AppArmorProfile {
        type_: "Localhost".into(),
        localhost_profile: Some(p.to_string()),
    })
}

fn apply_app_armor_version_skew(pod: &mut Pod) {
    let ann = pod.metadata.annotations.clone().unwrap_or_default();
    let Some(spec) = pod.spec.as_mut() else {
        return;
    };
    if spec.os.as_ref().is_some_and(|o| o.name == "windows") {
        return;
    }
    let pod_profile = spec
        .security_context
        .as_ref()
        .and_then(|sc| sc.app_armor_profile.clone());
    let containers = spec
        .init_containers
        .iter_mut()
        .flatten()
        .chain(spec.containers.iter_mut());
    for c in containers {
        let key = format!("container.apparmor.security.beta.kubernetes.io/{}", c.name);
        let Some(a) = ann.get(&key) else {
            continue;
        };
        if c.security_context
            .as_ref()
            .and_then(|sc| sc.app_armor_profile.as_ref())
            .is_some()
        {
            continue;
        }
        if let Some(f) = apparmor_field_for_annotation(a) {
            if Some(&f) != pod_profile.as_ref() {
                c.security_context
                    .get_or_insert_with(Default::default)
                    .app_armor_profile = Some(f);
            }
        }
    }
}

/// Drops fields whose feature gates are off by default in 1.33 (pod-level
/// resources, image volumes, container stop signals) unless the old object
/// already used them.
fn drop_disabled_fields(spec: &mut PodSpec, old: Option<&PodSpec>) {
    if old.is_none_or(|o| o.resources.is_none()) {
        spec.resources = None;
    }
    let old_images = old.is_some_and(|o| list(&o.volumes).iter().any(|v| v.image.is_some()));
    if !old_images {
        for v in spec.volumes.iter_mut().flatten() {
            v.image = None;
        }
    }
    let old_stop = old.is_some_and(|o| {
        o.containers
            .iter()
            .chain(list(&o.init_containers))
            .any(|c| {
                c.lifecycle
                    .as_ref()
                    .is_some_and(|l| l.stop_signal.is_some())
            })
    });
    if !old_stop {
        for c in spec
            .containers
            .iter_mut()
            .chain(spec.init_containers.iter_mut().flatten())
        {
            if let Some(l) = &mut c.lifecycle {
                l.stop_signal = None;
            }
        }
    }
}

impl KindRules for Pod {
    fn default(&mut self) {
        let spec = self.spec.get_or_insert_with(Default::default);
        default_pod_only(spec);
        default_pod_spec(spec);
    }

    fn prepare_for_create(&mut self) {
        self.metadata.generation = Some(1);
        let qos = compute_qos(self.spec.as_ref().unwrap_or(&PodSpec::default()));
        self.status = Some(PodStatus {
            phase: Some("Pending".into()),
            qos_class: Some(qos.into()),
            ..Default::default()
        });
        if let Some(spec) = &mut self.spec {
            drop_disabled_fields(spec, None);
        }
        let gated = self
            .spec
            .as_ref()
            .is_some_and(|s| !list(&s.scheduling_gates).is_empty());
        if gated {
            if let Some(st) = &mut self.status {
                st.conditions = Some(vec![PodCondition {
                    type_: "PodScheduled".into(),
                    status: "False".into(),
                    reason: Some("SchedulingGated".into()),
                    message: Some("Scheduling is blocked due to non-empty scheduling gates".into()),
                    ..Default::default()
                }]);
            }
        }
        mutate_pod_affinity(self);
        apply_app_armor_version_skew(self);
    }

    fn prepare_for_update(&mut self, old: &Self) {
        self.status = old.status.clone();
        if let Some(spec) = &mut self.spec {
            drop_disabled_fields(spec, old.spec.as_ref());
        }
        self.metadata.generation = old.metadata.generation;
        if !semantic_eq(&self.spec, &old.spec) {
            self.metadata.generation = Some(old.metadata.generation.unwrap_or(0) + 1);
        }
    }

    fn prepare_for_status_update(&mut self, old: &Self) {
        self.spec = old.spec.clone();
        self.metadata.deletion_timestamp = old.metadata.deletion_timestamp.clone();
        self.metadata.owner_references = old.metadata.owner_references.clone();
        let old_status = old.status.clone().unwrap_or_default();
        let st = self.status.get_or_insert_with(Default::default);
        if empty(&st.qos_class) {
            st.qos_class = old_status.qos_class.clone();
        }
        if st.observed_generation.unwrap_or(0) == 0 {
            st.observed_generation = old_status.observed_generation;
        }
        let mut old_gens: BTreeMap<String, Vec<Option<i64>>> = BTreeMap::new();
        for c in list(&old_status.conditions) {
            old_gens
                .entry(c.type_.clone())
                .or_default()
                .push(c.observed_generation);
        }
        for c in st.conditions.iter_mut().flatten() {
            let og = old_gens
                .get_mut(&c.type_)
                .and_then(|v| {
                    if v.is_empty() {
                        None
                    } else {
                        Some(v.remove(0))
                    }
                })
                .flatten();
            if c.observed_generation.unwrap_or(0) == 0 {
                c.observed_generation = og;
            }
        }
    }

    fn validate(&self) -> Vec<FieldError> {
        validate_pod_create(self)
    }

    fn validate_update(&self, old: &Self) -> Vec<FieldError> {
        validate_pod_update(self, old)
    }

    fn validate_status_update(&self, old: &Self) -> Vec<FieldError> {
        validate_pod_status_update(self, old)
    }
}

/// The fields a pod update may change, in upstream's message.
pub const UPDATABLE_POD_SPEC_FIELDS: &str = "`spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)";

fn validate_pod_annotation_updates(new: &Pod, old: &Pod, path: &Path) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let empty_map = BTreeMap::new();
    let na = new.metadata.annotations.as_ref().unwrap_or(&empty_map);
    let oa = old.metadata.annotations.as_ref().unwrap_or(&empty_map);
    for (k, ov) in oa {
        if na.get(k) == Some(ov) {
            continue;
        }
        if k.starts_with("container.apparmor.security.beta.kubernetes.io/") {
            errs.push(FieldError::forbidden(
                &path.key(k),
                "may not remove or update AppArmor annotations",
            ));
        }
        if k == "kubernetes.io/config.mirror" {
            errs.push(FieldError::forbidden(
                &path.key(k),
                "may not remove or update mirror pod annotation",
            ));
        }
    }
    for k in na.keys() {
        if oa.contains_key(k) {
            continue;
        }
        if k.starts_with("container.apparmor.security.beta.kubernetes.io/") {
            errs.push(FieldError::forbidden(
                &path.key(k),
                "may not add AppArmor annotations",
            ));
        }
        if k == "kubernetes.io/config.mirror" {
            errs.push(FieldError::forbidden(
                &path.key(k),
                "may not add mirror pod annotation",
            ));
        }
    }
    errs.extend(crate::core::podspec::validate_pod_specific_annotations(
        &new.metadata.annotations,
        new.spec.as_ref().unwrap_or(&PodSpec::default()),
        path,
    ));
    errs
}

fn container_updates(
    new: &[k8s_openapi::api::core::v1::Container],
    old: &[k8s_openapi::api::core::v1::Container],
    path: &Path,
) -> (Vec<FieldError>, bool) {
    if new.len() != old.len() {
        return (
            vec![FieldError::forbidden(
                path,
                "pod updates may not add or remove containers",
            )],
            true,
        );
    }
    let mut errs = Vec::new();
    for (i, c) in new.iter().enumerate() {
        let img = s(&c.image);
        if img.is_empty() {
            errs.push(FieldError::required(&path.index(i).child("image"), ""));
        }
        if img.trim().len() != img.len() {
            errs.push(FieldError::invalid(
                &path.index(i).child("image"),
                img,
                "must not have leading or trailing whitespace",
            ));
        }
    }
    (errs, false)
}

/// Upstream `ValidatePodUpdate` without the generic ObjectMeta update checks.
pub fn validate_pod_update(new: &Pod, old: &Pod) -> Vec<FieldError> {
    let mp = Path::new("metadata");
    let sp = Path::new("spec");
    let mut errs = validate_pod_metadata_and_spec(new);
    errs.extend(validate_pod_annotation_updates(
        new,
        old,
        &mp.child("annotations"),
    ));
    let ns = new.spec.clone().unwrap_or_default();
    let os = old.spec.clone().unwrap_or_default();
    let (e, stop) = container_updates(&ns.containers, &os.containers, &sp.child("containers"));
    errs.extend(e);
    if stop {
        return errs;
    }
    let (e, stop) = container_updates(
        list(&ns.init_containers),
        list(&os.init_containers),
        &sp.child("initContainers"),
    );
    errs.extend(e);
    if stop {
        return errs;
    }
    if let Some(nads) = ns.active_deadline_seconds {
        if !(0..=i64::from(i32::MAX)).contains(&nads) {
            errs.push(FieldError::invalid(
                &sp.child("activeDeadlineSeconds"),
                nads,
                av::inclusive_range_error(0, i64::from(i32::MAX)),
            ));
            return errs;
        }
        if let Some(oads) = os.active_deadline_seconds {
            if oads < nads {
                errs.push(FieldError::invalid(
                    &sp.child("activeDeadlineSeconds"),
                    nads,
                    "must be less than or equal to previous value",
                ));
                return errs;
            }
        }
    } else if os.active_deadline_seconds.is_some() {
        errs.push(FieldError::invalid(
            &sp.child("activeDeadlineSeconds"),
            serde_json::Value::Null,
            "must not update from a positive integer to nil value",
        ));
    }
    // Only additions to tolerations.
    let tp = sp.child("tolerations");
    let mut tol_ok = true;
    for ot in list(&os.tolerations) {
        let found = list(&ns.tolerations).iter().any(|nt| {
            let mut c = ot.clone();
            c.toleration_seconds = nt.toleration_seconds;
            &c == nt
        });
        if !found {
            errs.push(FieldError::forbidden(
                &tp,
                "existing toleration can not be modified except its tolerationSeconds",
            ));
            tol_ok = false;
            break;
        }
    }
    if tol_ok {
        errs.extend(validate_tolerations(list(&ns.tolerations), &tp));
    }
    // Only deletions of scheduling gates.
    if !list(&ns.scheduling_gates).is_empty() {
        let old_gates: BTreeSet<&str> = list(&os.scheduling_gates)
            .iter()
            .map(|g| g.name.as_str())
            .collect();
        for (i, g) in list(&ns.scheduling_gates).iter().enumerate() {
            if !old_gates.contains(g.name.as_str()) {
                errs.push(FieldError::forbidden(
                    &sp.child("schedulingGates").index(i).child("name"),
                    format!(
                        "only deletion is allowed, but found new scheduling gate '{}'",
                        g.name
                    ),
                ));
            }
        }
    }
    if semantic_eq(&ns, &os) {
        return errs;
    }
    let mut munged = ns.clone();
    for (c, oc) in munged.containers.iter_mut().zip(os.containers.iter()) {
        c.image = oc.image.clone();
    }
    for (c, oc) in munged
        .init_containers
        .iter_mut()
        .flatten()
        .zip(list(&os.init_containers).iter())
    {
        c.image = oc.image.clone();
    }
    munged.active_deadline_seconds = os.active_deadline_seconds;
    munged.scheduling_gates = os.scheduling_gates.clone();
    munged.tolerations = os.tolerations.clone();
    if os.termination_grace_period_seconds.is_some_and(|g| g < 0)
        && munged.termination_grace_period_seconds == Some(1)
    {
        munged.termination_grace_period_seconds = os.termination_grace_period_seconds;
    }
    if !list(&os.scheduling_gates).is_empty() {
        // Gated pods may add node selectors and node affinity terms.
        if !semantic_eq(&munged.node_selector, &os.node_selector) {
            let empty_map = BTreeMap::new();
            let nsel = munged.node_selector.as_ref().unwrap_or(&empty_map);
            for (k, v) in os.node_selector.iter().flatten() {
                if nsel.get(k) != Some(v) {
                    errs.push(crate::util::invalid_go(
                        &sp.child("nodeSelector"),
                        &crate::util::go_str_map(&munged.node_selector),
                        "only additions to spec.nodeSelector are allowed (no mutations or deletions)",
                    ));
                    break;
                }
            }
            munged.node_selector = os.node_selector.clone();
        }
        let old_na = os.affinity.as_ref().and_then(|a| a.node_affinity.clone());
        let new_na = munged
            .affinity
            .as_ref()
            .and_then(|a| a.node_affinity.clone());
        if !semantic_eq(&old_na, &new_na) {
            match (&mut munged.affinity, &os.affinity) {
                (None, _) if old_na.is_none() => {}
                (None, _) => {
                    munged.affinity = Some(k8s_openapi::api::core::v1::Affinity {
                        node_affinity: old_na.clone(),
                        ..Default::default()
                    })
                }
                (Some(a), None) if a.pod_affinity.is_none() && a.pod_anti_affinity.is_none() => {
                    munged.affinity = None
                }
                (Some(a), _) => a.node_affinity = old_na.clone(),
            }
        }
    }
    if !semantic_eq(&munged, &os) {
        let diff = simple_diff("core.PodSpec", &os, &munged);
        errs.push(FieldError::forbidden(
            &sp,
            format!(
                "pod updates may not change fields other than {UPDATABLE_POD_SPEC_FIELDS}\n{diff}"
            ),
        ));
    }
    errs
}

fn validate_state_transitions(
    new: &[ContainerStatus],
    old: &[ContainerStatus],
    path: &Path,
    restart_policy: &str,
    restartable: &BTreeSet<String>,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if restart_policy == "Always" {
        return errs;
    }
    for (i, os) in old.iter().enumerate() {
        let Some(term) = os.state.as_ref().and_then(|s| s.terminated.as_ref()) else {
            continue;
        };
        if term.exit_code != 0 && restart_policy == "OnFailure" {
            continue;
        }
        if restartable.contains(&os.name) {
            continue;
        }
        for ns in new {
            if ns.name == os.name
                && ns
                    .state
                    .as_ref()
                    .and_then(|s| s.terminated.as_ref())
                    .is_none()
            {
                errs.push(FieldError::forbidden(
                    &path.index(i).child("state"),
                    "may not be transitioned to non-terminated state",
                ));
            }
        }
    }
    errs
}

fn is_dual_stack(ips: &[&str]) -> bool {
    let mut v4 = false;
    let mut v6 = false;
    for ip in ips {
        match av::parse_ip_sloppy(ip) {
            Some(p) if p.to_v4().is_some() => v4 = true,
            Some(_) => v6 = true,
            None => return false,
        }
    }
    v4 && v6
}

/// Upstream `ValidatePodStatusUpdate` without the generic ObjectMeta update checks.
pub fn validate_pod_status_update(new: &Pod, old: &Pod) -> Vec<FieldError> {
    let mp = Path::new("metadata");
    let stp = Path::new("status");
    let mut errs = validate_pod_annotation_updates(new, old, &mp.child("annotations"));
    let ns = new.status.clone().unwrap_or_default();
    let os = old.status.clone().unwrap_or_default();
    for (i, c) in list(&ns.conditions).iter().enumerate() {
        if ["PodScheduled", "Ready", "Initialized"].contains(&c.type_.as_str()) {
            continue;
        }
        errs.extend(validate_qualified_name(
            &c.type_,
            &mp.child("conditions").index(i).child("Type"),
        ));
    }
    let nspec = new.spec.clone().unwrap_or_default();
    let ospec = old.spec.clone().unwrap_or_default();
    if s(&nspec.node_name) != s(&ospec.node_name) {
        errs.push(FieldError::forbidden(
            &stp.child("nodeName"),
            "may not be changed directly",
        ));
    }
    let nnn = s(&ns.nominated_node_name);
    if nnn != s(&os.nominated_node_name) && !nnn.is_empty() {
        errs.extend(msgs_invalid(
            &stp.child("nominatedNodeName"),
            nnn,
            av::name_is_dns_subdomain(nnn, false),
        ));
    }
    errs.extend(crate::util::immutable(
        to_json(s(&ns.qos_class)),
        to_json(s(&os.qos_class)),
        &stp.child("qosClass"),
    ));
    let rp = s(&ospec.restart_policy);
    errs.extend(validate_state_transitions(
        list(&ns.container_statuses),
        list(&os.container_statuses),
        &stp.child("containerStatuses"),
        rp,
        &BTreeSet::new(),
    ));
    let restartable: BTreeSet<String> = list(&ospec.init_containers)
        .iter()
        .filter(|c| c.restart_policy.as_deref() == Some("Always"))
        .map(|c| c.name.clone())
        .collect();
    errs.extend(validate_state_transitions(
        list(&ns.init_container_statuses),
        list(&os.init_container_statuses),
        &stp.child("initContainerStatuses"),
        rp,
        &restartable,
    ));
    errs.extend(validate_state_transitions(
        list(&ns.ephemeral_container_statuses),
        list(&os.ephemeral_container_statuses),
        &stp.child("ephemeralContainerStatuses"),
        "Never",
        &BTreeSet::new(),
    ));
    // Resource claim statuses.
    let claims: BTreeSet<&str> = list(&nspec.resource_claims)
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    let mut seen = BTreeSet::new();
    for (i, c) in list(&ns.resource_claim_statuses).iter().enumerate() {
        let p = stp.child("resourceClaimStatuses").index(i).child("name");
        if !claims.contains(c.name.as_str()) {
            errs.push(FieldError::invalid(
                &p,
                c.name.as_str(),
                "must match the name of an entry in `spec.resourceClaims`",
            ));
        }
        if !seen.insert(c.name.clone()) {
            errs.push(FieldError::duplicate(&p, c.name.as_str()));
        }
        if let Some(n) = &c.resource_claim_name {
            errs.extend(msgs_invalid(&p, n, av::name_is_dns_subdomain(n, false)));
        }
    }
    // Pod IPs.
    let pip = stp.child("podIPs");
    let pod_ips: Vec<&str> = list(&ns.pod_ips).iter().map(|p| p.ip.as_str()).collect();
    for (i, ip) in pod_ips.iter().enumerate() {
        errs.extend(av::is_valid_ip(&pip.index(i), ip));
    }
    if pod_ips.len() > 1 {
        if !is_dual_stack(&pod_ips) || pod_ips.len() > 2 {
            errs.push(FieldError::invalid(
                &pip,
                to_json(&ns.pod_ips),
                "may specify no more than one IP for each IP family",
            ));
        }
        let mut seen = BTreeSet::new();
        for (i, ip) in pod_ips.iter().enumerate() {
            if !seen.insert(*ip) {
                errs.push(FieldError::duplicate(
                    &pip.index(i),
                    to_json(&list(&ns.pod_ips)[i]),
                ));
            }
        }
    }
    let hip = stp.child("hostIPs");
    let host_ips: Vec<&str> = list(&ns.host_ips).iter().map(|p| p.ip.as_str()).collect();
    if !host_ips.is_empty() {
        if s(&ns.host_ip) != host_ips[0] {
            errs.push(FieldError::invalid(
                &hip.index(0).child("ip"),
                host_ips[0],
                "must be equal to `hostIP`",
            ));
        }
        for (i, ip) in host_ips.iter().enumerate() {
            errs.extend(av::is_valid_ip(&hip.index(i), ip));
        }
        if host_ips.len() > 1 {
            let mut seen = BTreeSet::new();
            for (i, ip) in host_ips.iter().enumerate() {
                if !seen.insert(*ip) {
                    errs.push(FieldError::duplicate(
                        &hip.index(i),
                        to_json(&list(&ns.host_ips)[i]),
                    ));
                }
            }
            if !is_dual_stack(&host_ips) || host_ips.len() > 2 {
                errs.push(FieldError::invalid(
                    &hip,
                    to_json(&ns.host_ips),
                    "may specify no more than one IP for each IP family",
                ));
            }
        }
    }
    errs
}

impl KindRules for PodTemplate {
    fn default(&mut self) {
        default_pod_template(self.template.get_or_insert_with(Default::default));
    }

    fn prepare_for_create(&mut self) {
        self.metadata.generation = Some(1);
    }

    fn prepare_for_update(&mut self, old: &Self) {
        self.metadata.generation = old.metadata.generation;
        if !semantic_eq(&self.template, &old.template) {
            self.metadata.generation = Some(old.metadata.generation.unwrap_or(0) + 1);
        }
    }

    fn validate(&self) -> Vec<FieldError> {
        let mut errs = crate::util::validate_kube_finalizers(&self.metadata);
        let t = self.template.clone().unwrap_or_default();
        errs.extend(validate_pod_template_spec(
            &t,
            &Path::new("template"),
            PodOpts::default(),
        ));
        errs
    }

    fn validate_update(&self, _old: &Self) -> Vec<FieldError> {
        self.validate()
    }

    fn validate_status_update(&self, _old: &Self) -> Vec<FieldError> {
        Vec::new()
    }
}
