//! Pod and PodTemplate: defaulting, the pod registry strategy (status reset,
//! QoS class, scheduling-gated condition, matchLabelKeys merging, AppArmor
//! annotation sync, generation tracking) and create/update/status
//! validation, including upstream's "pod updates may not change fields
//! other than ..." rule.

use std::collections::{BTreeMap, BTreeSet};

use apimachinery::validation as av;
use apimachinery::{FieldError, Path, Quantity as Q};
use k8s_openapi::api::core::v1::{
    AppArmorProfile, Container, ContainerStatus, Pod, PodCondition, PodSpec, PodStatus,
    PodTemplate, PodTemplateSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};

use crate::core::defaults::{default_pod_only, default_pod_spec};
use crate::core::podspec::{
    or_default, validate_pod_create, validate_pod_metadata_and_spec, validate_pod_template_spec,
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
    // Sums per QoS resource, indexed by `qos_index`: cpu, then memory.
    let mut requests: [Option<Q>; 2] = [None, None];
    let mut limits: [Option<Q>; 2] = [None, None];
    let qos_index = |name: &str| match name {
        "cpu" => Some(0),
        "memory" => Some(1),
        _ => None,
    };
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
            let Some(i) = qos_index(name) else {
                continue;
            };
            if let Ok(q) = Q::parse(&q.0) {
                if q > zero {
                    requests[i].get_or_insert_with(|| zero.clone()).add(&q);
                }
            }
        }
        let mut found = [false; 2];
        for (name, q) in r.limits.iter().flatten() {
            let Some(i) = qos_index(name) else {
                continue;
            };
            if let Ok(q) = Q::parse(&q.0) {
                if q > zero {
                    found[i] = true;
                    limits[i].get_or_insert_with(|| zero.clone()).add(&q);
                }
            }
        }
        if !(found[0] && found[1]) {
            guaranteed = false;
        }
    }
    let count = |sums: &[Option<Q>; 2]| sums.iter().filter(|q| q.is_some()).count();
    if count(&requests) == 0 && count(&limits) == 0 {
        return "BestEffort";
    }
    if guaranteed {
        for (req, limit) in requests.iter().zip(&limits) {
            if let Some(req) = req {
                if limit.as_ref() != Some(req) {
                    guaranteed = false;
                    break;
                }
            }
        }
    }
    if guaranteed && count(&requests) == count(&limits) {
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
    let Pod { metadata, spec, .. } = pod;
    let Some(aff) = spec.as_mut().and_then(|s| s.affinity.as_mut()) else {
        return;
    };
    let no_labels = BTreeMap::new();
    let labels = metadata.labels.as_ref().unwrap_or(&no_labels);
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
        let mk = list(&t.match_label_keys);
        let mmk = list(&t.mismatch_label_keys);
        if (mk.is_empty() && mmk.is_empty()) || t.label_selector.is_none() {
            continue;
        }
        apply_label_keys(&mut t.label_selector, mk, "In", labels);
        apply_label_keys(&mut t.label_selector, mmk, "NotIn", labels);
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

/// The prefix of the deprecated per-container AppArmor annotations.
const APPARMOR_ANNOTATION_PREFIX: &str = "container.apparmor.security.beta.kubernetes.io/";

fn apply_app_armor_version_skew(pod: &mut Pod) {
    let Pod { metadata, spec, .. } = pod;
    let Some(ann) = metadata.annotations.as_ref() else {
        return;
    };
    if !ann
        .keys()
        .any(|k| k.starts_with(APPARMOR_ANNOTATION_PREFIX))
    {
        return;
    }
    let Some(spec) = spec.as_mut() else {
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
        let key = format!("{APPARMOR_ANNOTATION_PREFIX}{}", c.name);
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

/// Whether two containers are equal but for their images.
fn container_equal_but_image(new: &Container, old: &Container) -> bool {
    // Exhaustive on purpose: a field added to `Container` must be
    // considered here (and is not updatable unless listed as ignored).
    let Container {
        args,
        command,
        env,
        env_from,
        image: _,
        image_pull_policy,
        lifecycle,
        liveness_probe,
        name,
        ports,
        readiness_probe,
        resize_policy,
        resources,
        restart_policy,
        security_context,
        startup_probe,
        stdin,
        stdin_once,
        termination_message_path,
        termination_message_policy,
        tty,
        volume_devices,
        volume_mounts,
        working_dir,
    } = new;
    *name == old.name
        && *args == old.args
        && *command == old.command
        && *env == old.env
        && *env_from == old.env_from
        && *image_pull_policy == old.image_pull_policy
        && *lifecycle == old.lifecycle
        && *liveness_probe == old.liveness_probe
        && *ports == old.ports
        && *readiness_probe == old.readiness_probe
        && *resize_policy == old.resize_policy
        && *resources == old.resources
        && *restart_policy == old.restart_policy
        && *security_context == old.security_context
        && *startup_probe == old.startup_probe
        && *stdin == old.stdin
        && *stdin_once == old.stdin_once
        && *termination_message_path == old.termination_message_path
        && *termination_message_policy == old.termination_message_policy
        && *tty == old.tty
        && *volume_devices == old.volume_devices
        && *volume_mounts == old.volume_mounts
        && *working_dir == old.working_dir
}

/// Whether two container lists are equal but for images.
fn containers_equal_but_images(new: &[Container], old: &[Container]) -> bool {
    new.len() == old.len()
        && new
            .iter()
            .zip(old)
            .all(|(n, o)| container_equal_but_image(n, o))
}

/// Whether the specs of an update are exactly equal but for the fields an
/// update may change, so that the "may not change fields other than" check
/// passes. `false` when they differ otherwise (possibly only as nil versus
/// empty, which the caller's full semantic check accepts) or when the old
/// pod is scheduling-gated (whose extra allowances the full check handles).
fn equal_but_updatable(new: &PodSpec, old: &PodSpec) -> bool {
    if !list(&old.scheduling_gates).is_empty() {
        return false;
    }
    let grace_to_one = old.termination_grace_period_seconds.is_some_and(|g| g < 0)
        && new.termination_grace_period_seconds == Some(1);
    // Exhaustive on purpose, like `container_equal_but_image`.
    let PodSpec {
        active_deadline_seconds: _,
        affinity,
        automount_service_account_token,
        containers,
        dns_config,
        dns_policy,
        enable_service_links,
        ephemeral_containers,
        host_aliases,
        host_ipc,
        host_network,
        host_pid,
        host_users,
        hostname,
        image_pull_secrets,
        init_containers,
        node_name,
        node_selector,
        os,
        overhead,
        preemption_policy,
        priority,
        priority_class_name,
        readiness_gates,
        resource_claims,
        resources,
        restart_policy,
        runtime_class_name,
        scheduler_name,
        scheduling_gates: _,
        security_context,
        service_account,
        service_account_name,
        set_hostname_as_fqdn,
        share_process_namespace,
        subdomain,
        termination_grace_period_seconds,
        tolerations: _,
        topology_spread_constraints,
        volumes,
    } = new;
    (grace_to_one || *termination_grace_period_seconds == old.termination_grace_period_seconds)
        && containers_equal_but_images(containers, &old.containers)
        && init_containers.is_some() == old.init_containers.is_some()
        && containers_equal_but_images(list(init_containers), list(&old.init_containers))
        && *affinity == old.affinity
        && *automount_service_account_token == old.automount_service_account_token
        && *dns_config == old.dns_config
        && *dns_policy == old.dns_policy
        && *enable_service_links == old.enable_service_links
        && *ephemeral_containers == old.ephemeral_containers
        && *host_aliases == old.host_aliases
        && *host_ipc == old.host_ipc
        && *host_network == old.host_network
        && *host_pid == old.host_pid
        && *host_users == old.host_users
        && *hostname == old.hostname
        && *image_pull_secrets == old.image_pull_secrets
        && *node_name == old.node_name
        && *node_selector == old.node_selector
        && *os == old.os
        && *overhead == old.overhead
        && *preemption_policy == old.preemption_policy
        && *priority == old.priority
        && *priority_class_name == old.priority_class_name
        && *readiness_gates == old.readiness_gates
        && *resource_claims == old.resource_claims
        && *resources == old.resources
        && *restart_policy == old.restart_policy
        && *runtime_class_name == old.runtime_class_name
        && *scheduler_name == old.scheduler_name
        && *security_context == old.security_context
        && *service_account == old.service_account
        && *service_account_name == old.service_account_name
        && *set_hostname_as_fqdn == old.set_hostname_as_fqdn
        && *share_process_namespace == old.share_process_namespace
        && *subdomain == old.subdomain
        && *topology_spread_constraints == old.topology_spread_constraints
        && *volumes == old.volumes
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
    let (new_spec, old_spec) = (or_default(&new.spec), or_default(&old.spec));
    let (ns, os) = (&*new_spec, &*old_spec);
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
    // Exactly equal specs are semantically equal, and specs exactly equal
    // but for the updatable fields pass the check below without error.
    if ns == os || equal_but_updatable(ns, os) {
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
    if !semantic_eq(&munged, os) {
        let diff = simple_diff("core.PodSpec", os, &munged);
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

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;

    /// The reference "may not change fields other than" check of an ungated
    /// pod: copy the updatable fields from the old spec, then compare.
    fn munged_equal(ns: &PodSpec, os: &PodSpec) -> bool {
        let mut munged = ns.clone();
        for (c, oc) in munged.containers.iter_mut().zip(&os.containers) {
            c.image = oc.image.clone();
        }
        for (c, oc) in munged
            .init_containers
            .iter_mut()
            .flatten()
            .zip(list(&os.init_containers))
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
        semantic_eq(&munged, os)
    }

    fn spec(extra: Value) -> PodSpec {
        let mut v = json!({
            "containers": [
                {"name": "a", "image": "nginx:1", "env": [{"name": "X", "value": "1"}]},
                {"name": "b", "image": "busybox", "resources": {"limits": {"cpu": "1"}}}
            ],
            "initContainers": [{"name": "i", "image": "init:1"}],
            "terminationGracePeriodSeconds": 30,
            "schedulingGates": [],
        });
        if let (Some(base), Value::Object(extra)) = (v.as_object_mut(), extra) {
            for (k, val) in extra {
                base.insert(k, val);
            }
        }
        serde_json::from_value(v).unwrap()
    }

    fn with_container(field: &str, value: Value) -> PodSpec {
        let mut s = spec(json!({}));
        let mut c = serde_json::to_value(&s.containers[0]).unwrap();
        c[field] = value;
        s.containers[0] = serde_json::from_value(c).unwrap();
        s
    }

    /// Cases of (name, new spec, old spec, whether the full check passes);
    /// the last ones differ only semantically, which the exact shortcut
    /// leaves to the full check.
    #[test]
    fn updatable_fields_match_the_munged_comparison() {
        let base = spec(json!({}));
        let cases: Vec<(&str, PodSpec, PodSpec, bool)> = vec![
            ("same", base.clone(), base.clone(), true),
            (
                "image",
                with_container("image", json!("nginx:2")),
                base.clone(),
                true,
            ),
            (
                "init image",
                spec(json!({"initContainers": [{"name": "i", "image": "init:2"}]})),
                base.clone(),
                true,
            ),
            (
                "deadline",
                spec(json!({"activeDeadlineSeconds": 5})),
                base.clone(),
                true,
            ),
            (
                "tolerations",
                spec(json!({"tolerations": [{"key": "k", "operator": "Exists"}]})),
                base.clone(),
                true,
            ),
            (
                "grace -1 to 1",
                spec(json!({"terminationGracePeriodSeconds": 1})),
                spec(json!({"terminationGracePeriodSeconds": -1})),
                true,
            ),
            (
                "grace 30 to 1",
                spec(json!({"terminationGracePeriodSeconds": 1})),
                base.clone(),
                false,
            ),
            (
                "grace -1 to 2",
                spec(json!({"terminationGracePeriodSeconds": 2})),
                spec(json!({"terminationGracePeriodSeconds": -1})),
                false,
            ),
            (
                "hostname",
                spec(json!({"hostname": "h"})),
                base.clone(),
                false,
            ),
            (
                "env",
                with_container("env", json!([{"name": "X", "value": "2"}])),
                base.clone(),
                false,
            ),
            (
                "node selector",
                spec(json!({"nodeSelector": {"a": "b"}})),
                base.clone(),
                false,
            ),
            (
                "name",
                with_container("name", json!("z")),
                base.clone(),
                false,
            ),
            (
                "image and name",
                {
                    let mut s = with_container("name", json!("z"));
                    s.containers[0].image = Some("other".into());
                    s
                },
                base.clone(),
                false,
            ),
            (
                "no gates",
                spec(json!({"schedulingGates": null})),
                base.clone(),
                true,
            ),
            (
                "no init containers",
                spec(json!({"initContainers": null})),
                spec(json!({"initContainers": null})),
                true,
            ),
            (
                "init containers dropped",
                spec(json!({"initContainers": null})),
                base.clone(),
                false,
            ),
        ];
        for (name, new, old, want) in cases {
            assert_eq!(munged_equal(&new, &old), want, "{name}: reference");
            assert_eq!(equal_but_updatable(&new, &old), want, "{name}");
        }
        // Nil versus empty is only semantically equal: the shortcut says no
        // and leaves the verdict to the full check.
        for (name, new) in [
            ("empty args", with_container("args", json!([]))),
            ("empty resources", with_container("resources", json!({}))),
            ("empty node selector", spec(json!({"nodeSelector": {}}))),
            ("empty init containers", spec(json!({"initContainers": []}))),
        ] {
            let old = if name == "empty init containers" {
                spec(json!({"initContainers": null}))
            } else {
                base.clone()
            };
            assert!(munged_equal(&new, &old), "{name}: reference");
            assert!(!equal_but_updatable(&new, &old), "{name}");
        }
    }

    #[test]
    fn semantically_equal_updates_pass() {
        let pod = |spec: PodSpec| Pod {
            metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                name: Some("p".into()),
                namespace: Some("default".into()),
                ..Default::default()
            },
            spec: Some(spec),
            status: None,
        };
        let old = pod(spec(
            json!({"restartPolicy": "Always", "dnsPolicy": "ClusterFirst"}),
        ));
        let mut new = old.clone();
        if let Some(s) = new.spec.as_mut() {
            s.containers[0].args = Some(Vec::new());
            s.containers[0].image = Some("nginx:2".into());
            s.node_selector = Some(BTreeMap::new());
        }
        let errs: Vec<String> = validate_pod_update(&new, &old)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert!(
            !errs.iter().any(|e| e.starts_with("spec: Forbidden")),
            "{errs:?}"
        );
        if let Some(s) = new.spec.as_mut() {
            s.containers[0].args = Some(vec!["x".into()]);
        }
        let errs: Vec<String> = validate_pod_update(&new, &old)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert!(
            errs.iter().any(|e| e
                .starts_with("spec: Forbidden: pod updates may not change fields other than")
                && e.contains("containers")),
            "{errs:?}"
        );
    }

    #[test]
    fn gated_pods_take_the_full_check() {
        let old = PodSpec {
            scheduling_gates: Some(vec![k8s_openapi::api::core::v1::PodSchedulingGate {
                name: "g".into(),
            }]),
            ..Default::default()
        };
        assert!(!equal_but_updatable(&old, &old));
    }
}
