//! apps/v1 kinds: Deployment, ReplicaSet, StatefulSet, DaemonSet and
//! ControllerRevision (defaulting, strategies, validation).

use std::collections::BTreeMap;

use apimachinery::{FieldError, Path};
use k8s_openapi::api::apps::v1::{
    ControllerRevision, DaemonSet, DaemonSetStatus, DaemonSetUpdateStrategy, Deployment,
    DeploymentStatus, DeploymentStrategy, ReplicaSet, ReplicaSetStatus, RollingUpdateDaemonSet,
    RollingUpdateDeployment, RollingUpdateStatefulSetStrategy, StatefulSet,
    StatefulSetPersistentVolumeClaimRetentionPolicy, StatefulSetStatus, StatefulSetUpdateStrategy,
};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::core::pod::default_pod_template;
use crate::core::podspec::{
    validate_pod_specific_annotations, validate_pod_template_spec, PodOpts,
};
use crate::util::{
    empty, go_label_selector, go_str_map, intstr_int_value, intstr_string, invalid_go, nonneg, s,
    selector_matches, selector_of, semantic_eq, to_json, validate_annotations,
    validate_kube_finalizers, validate_label_selector, validate_labels,
};
use crate::KindRules;

/// The annotation carrying a DaemonSet's template generation in apps/v1.
pub const DEPRECATED_TEMPLATE_GENERATION: &str = "deprecated.daemonset.template.generation";

fn percent_value(v: &IntOrString) -> Option<i64> {
    match v {
        IntOrString::String(s) if apimachinery::validation::is_valid_percent(s).is_empty() => {
            s[..s.len() - 1].parse::<i64>().ok().or(Some(0))
        }
        _ => None,
    }
}

fn int_or_percent_value(v: &IntOrString) -> i64 {
    percent_value(v).unwrap_or_else(|| intstr_int_value(v))
}

/// Upstream `ValidatePositiveIntOrPercent`.
pub fn validate_positive_int_or_percent(v: &IntOrString, path: &Path) -> Vec<FieldError> {
    match v {
        IntOrString::String(sv) => apimachinery::validation::is_valid_percent(sv)
            .into_iter()
            .map(|m| invalid_go(path, sv, &m))
            .collect(),
        IntOrString::Int(i) => nonneg(i64::from(*i), path),
    }
}

/// Upstream `IsNotMoreThan100Percent`.
pub fn is_not_more_than_100_percent(v: &IntOrString, path: &Path) -> Vec<FieldError> {
    match percent_value(v) {
        Some(p) if p > 100 => vec![invalid_go(
            path,
            &intstr_string(v),
            "must not be greater than 100%",
        )],
        _ => Vec::new(),
    }
}

/// The selector/template check shared by ReplicaSets, Deployments and
/// ReplicationControllers (upstream `ValidatePodTemplateSpecForReplicaSet`).
fn validate_template_for_replica_set(
    sel: &LabelSelector,
    t: &PodTemplateSpec,
    path: &Path,
    kind: &str,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let labels = t.metadata.as_ref().and_then(|m| m.labels.clone());
    if let Ok(selector) = selector_of(&Some(sel.clone())) {
        if !selector.is_empty() && !selector_matches(&selector, &labels) {
            errs.push(invalid_go(
                &path.child("metadata").child("labels"),
                &go_str_map(&labels),
                "`selector` does not match template `labels`",
            ));
        }
    }
    errs.extend(validate_pod_template_spec(t, path, PodOpts::default()));
    let ps = t.spec.clone().unwrap_or_default();
    if s(&ps.restart_policy) != "Always" {
        errs.push(FieldError::not_supported(
            &path.child("spec").child("restartPolicy"),
            s(&ps.restart_policy),
            &["Always"],
        ));
    }
    if ps.active_deadline_seconds.is_some() {
        errs.push(FieldError::forbidden(
            &path.child("spec").child("activeDeadlineSeconds"),
            format!("activeDeadlineSeconds in {kind} is not Supported"),
        ));
    }
    errs
}

fn validate_selector_required(sel: &LabelSelector, path: &Path, kind: &str) -> Vec<FieldError> {
    let mut errs = validate_label_selector(&Some(sel.clone()), false, path);
    let n = sel.match_labels.as_ref().map(|m| m.len()).unwrap_or(0)
        + sel.match_expressions.as_ref().map(|m| m.len()).unwrap_or(0);
    if n == 0 {
        errs.push(invalid_go(
            path,
            &go_label_selector(sel),
            &format!("empty selector is invalid for {kind}"),
        ));
    }
    errs
}

fn bump_generation(
    meta: &mut k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    old: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    changed: bool,
) {
    meta.generation = old.generation;
    if changed {
        meta.generation = Some(old.generation.unwrap_or(0) + 1);
    }
}

// --------------------------------------------------------------- Deployment

impl KindRules for Deployment {
    fn default(&mut self) {
        let spec = self.spec.get_or_insert_with(Default::default);
        spec.replicas.get_or_insert(1);
        let strategy = spec
            .strategy
            .get_or_insert_with(DeploymentStrategy::default);
        if empty(&strategy.type_) {
            strategy.type_ = Some("RollingUpdate".into());
        }
        if s(&strategy.type_) == "RollingUpdate" {
            let ru = strategy
                .rolling_update
                .get_or_insert_with(RollingUpdateDeployment::default);
            ru.max_unavailable
                .get_or_insert(IntOrString::String("25%".into()));
            ru.max_surge
                .get_or_insert(IntOrString::String("25%".into()));
        }
        spec.revision_history_limit.get_or_insert(10);
        spec.progress_deadline_seconds.get_or_insert(600);
        default_pod_template(&mut spec.template);
    }

    fn prepare_for_create(&mut self) {
        self.status = Some(DeploymentStatus::default());
        self.metadata.generation = Some(1);
    }

    fn prepare_for_update(&mut self, old: &Self) {
        self.status = old.status.clone();
        let changed = !semantic_eq(&self.spec, &old.spec)
            || !semantic_eq(&self.metadata.annotations, &old.metadata.annotations);
        bump_generation(&mut self.metadata, &old.metadata, changed);
    }

    fn prepare_for_status_update(&mut self, old: &Self) {
        self.spec = old.spec.clone();
        self.metadata.labels = old.metadata.labels.clone();
    }

    fn validate(&self) -> Vec<FieldError> {
        let mut errs = validate_kube_finalizers(&self.metadata);
        errs.extend(validate_deployment_spec(self));
        errs
    }

    fn validate_update(&self, _old: &Self) -> Vec<FieldError> {
        self.validate()
    }

    fn validate_status_update(&self, old: &Self) -> Vec<FieldError> {
        let mut errs = validate_kube_finalizers(&self.metadata);
        let st = self.status.clone().unwrap_or_default();
        let p = Path::new("status");
        let r = st.replicas.unwrap_or(0);
        let up = st.updated_replicas.unwrap_or(0);
        let ready = st.ready_replicas.unwrap_or(0);
        let avail = st.available_replicas.unwrap_or(0);
        errs.extend(nonneg(
            st.observed_generation.unwrap_or(0),
            &p.child("observedGeneration"),
        ));
        errs.extend(nonneg(i64::from(r), &p.child("replicas")));
        errs.extend(nonneg(i64::from(up), &p.child("updatedReplicas")));
        errs.extend(nonneg(i64::from(ready), &p.child("readyReplicas")));
        errs.extend(nonneg(i64::from(avail), &p.child("availableReplicas")));
        errs.extend(nonneg(
            i64::from(st.unavailable_replicas.unwrap_or(0)),
            &p.child("unavailableReplicas"),
        ));
        if let Some(t) = st.terminating_replicas {
            errs.extend(nonneg(i64::from(t), &p.child("terminatingReplicas")));
        }
        if let Some(c) = st.collision_count {
            errs.extend(nonneg(i64::from(c), &p.child("collisionCount")));
        }
        let msg = "cannot be greater than status.replicas";
        if up > r {
            errs.push(FieldError::invalid(&p.child("updatedReplicas"), up, msg));
        }
        if ready > r {
            errs.push(FieldError::invalid(&p.child("readyReplicas"), ready, msg));
        }
        if avail > r {
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
        let oc = old.status.as_ref().and_then(|s| s.collision_count);
        if is_decremented(st.collision_count, oc) {
            errs.push(FieldError::invalid(
                &p.child("collisionCount"),
                st.collision_count.unwrap_or(0),
                "cannot be decremented",
            ));
        }
        errs
    }
}

fn is_decremented(new: Option<i32>, old: Option<i32>) -> bool {
    match (new, old) {
        (None, Some(_)) => true,
        (Some(n), Some(o)) => n < o,
        _ => false,
    }
}

fn validate_deployment_spec(d: &Deployment) -> Vec<FieldError> {
    let spec = d.spec.clone().unwrap_or_default();
    let sp = Path::new("spec");
    let mut errs = nonneg(i64::from(spec.replicas.unwrap_or(0)), &sp.child("replicas"));
    errs.extend(validate_selector_required(
        &spec.selector,
        &sp.child("selector"),
        "deployment",
    ));
    match selector_of(&Some(spec.selector.clone())) {
        Ok(_) => errs.extend(validate_template_for_replica_set(
            &spec.selector,
            &spec.template,
            &sp.child("template"),
            "ReplicaSet",
        )),
        Err(_) => errs.push(invalid_go(
            &sp.child("selector"),
            &go_label_selector(&spec.selector),
            "invalid label selector",
        )),
    }
    let strategy = spec.strategy.clone().unwrap_or_default();
    let stp = sp.child("strategy");
    match s(&strategy.type_) {
        "Recreate" => {
            if strategy.rolling_update.is_some() {
                errs.push(FieldError::forbidden(&stp.child("rollingUpdate"), "may not be specified when strategy `type` is 'Recreate'"));
            }
        }
        "RollingUpdate" => match &strategy.rolling_update {
            None => errs.push(FieldError::required(&stp.child("rollingUpdate"), "this should be defaulted and never be nil")),
            Some(ru) => {
                let rp = stp.child("rollingUpdate");
                let mu = ru.max_unavailable.clone().unwrap_or(IntOrString::Int(0));
                let ms = ru.max_surge.clone().unwrap_or(IntOrString::Int(0));
                errs.extend(validate_positive_int_or_percent(&mu, &rp.child("maxUnavailable")));
                errs.extend(validate_positive_int_or_percent(&ms, &rp.child("maxSurge")));
                if int_or_percent_value(&mu) == 0 && int_or_percent_value(&ms) == 0 {
                    errs.push(invalid_go(&rp.child("maxUnavailable"), &intstr_string(&mu), "may not be 0 when `maxSurge` is 0"));
                }
                errs.extend(is_not_more_than_100_percent(&mu, &rp.child("maxUnavailable")));
            }
        },
        other => errs.push(FieldError::new(
            apimachinery::ErrorKind::NotSupported,
            &stp,
            None,
            format!(
                "apps.DeploymentStrategy{{Type:{}, RollingUpdate:{}}}: supported values: \"Recreate\", \"RollingUpdate\"",
                apimachinery::gofmt::quote(other),
                if strategy.rolling_update.is_some() { "(*apps.RollingUpdateDeployment)(...)" } else { "(*apps.RollingUpdateDeployment)(nil)" }
            ),
        )),
    }
    let mrs = spec.min_ready_seconds.unwrap_or(0);
    errs.extend(nonneg(i64::from(mrs), &sp.child("minReadySeconds")));
    if let Some(r) = spec.revision_history_limit {
        errs.extend(nonneg(i64::from(r), &sp.child("revisionHistoryLimit")));
    }
    if let Some(p) = spec.progress_deadline_seconds {
        errs.extend(nonneg(i64::from(p), &sp.child("progressDeadlineSeconds")));
        if p <= mrs {
            errs.push(FieldError::invalid(
                &sp.child("progressDeadlineSeconds"),
                p,
                "must be greater than minReadySeconds",
            ));
        }
    }
    errs
}

// --------------------------------------------------------------- ReplicaSet

impl KindRules for ReplicaSet {
    fn default(&mut self) {
        let spec = self.spec.get_or_insert_with(Default::default);
        spec.replicas.get_or_insert(1);
        if let Some(t) = &mut spec.template {
            default_pod_template(t);
        }
    }

    fn prepare_for_create(&mut self) {
        self.status = Some(ReplicaSetStatus::default());
        self.metadata.generation = Some(1);
    }

    fn prepare_for_update(&mut self, old: &Self) {
        self.status = old.status.clone();
        bump_generation(
            &mut self.metadata,
            &old.metadata,
            !semantic_eq(&self.spec, &old.spec),
        );
    }

    fn prepare_for_status_update(&mut self, old: &Self) {
        self.spec = old.spec.clone();
        self.metadata.labels = old.metadata.labels.clone();
    }

    fn validate(&self) -> Vec<FieldError> {
        let mut errs = validate_kube_finalizers(&self.metadata);
        let spec = self.spec.clone().unwrap_or_default();
        let sp = Path::new("spec");
        errs.extend(nonneg(
            i64::from(spec.replicas.unwrap_or(0)),
            &sp.child("replicas"),
        ));
        errs.extend(nonneg(
            i64::from(spec.min_ready_seconds.unwrap_or(0)),
            &sp.child("minReadySeconds"),
        ));
        errs.extend(validate_selector_required(
            &spec.selector,
            &sp.child("selector"),
            "deployment",
        ));
        match selector_of(&Some(spec.selector.clone())) {
            Ok(_) => match &spec.template {
                Some(t) => errs.extend(validate_template_for_replica_set(
                    &spec.selector,
                    t,
                    &sp.child("template"),
                    "ReplicaSet",
                )),
                None => errs.extend(validate_template_for_replica_set(
                    &spec.selector,
                    &PodTemplateSpec::default(),
                    &sp.child("template"),
                    "ReplicaSet",
                )),
            },
            Err(_) => errs.push(invalid_go(
                &sp.child("selector"),
                &go_label_selector(&spec.selector),
                "invalid label selector",
            )),
        }
        errs
    }

    fn validate_update(&self, _old: &Self) -> Vec<FieldError> {
        self.validate()
    }

    fn validate_status_update(&self, _old: &Self) -> Vec<FieldError> {
        let mut errs = validate_kube_finalizers(&self.metadata);
        let st = self.status.clone().unwrap_or_default();
        let p = Path::new("status");
        let r = st.replicas;
        let fully = st.fully_labeled_replicas.unwrap_or(0);
        let ready = st.ready_replicas.unwrap_or(0);
        let avail = st.available_replicas.unwrap_or(0);
        errs.extend(nonneg(i64::from(r), &p.child("replicas")));
        errs.extend(nonneg(i64::from(fully), &p.child("fullyLabeledReplicas")));
        errs.extend(nonneg(i64::from(ready), &p.child("readyReplicas")));
        errs.extend(nonneg(i64::from(avail), &p.child("availableReplicas")));
        errs.extend(nonneg(
            st.observed_generation.unwrap_or(0),
            &p.child("observedGeneration"),
        ));
        let msg = "cannot be greater than status.replicas";
        if fully > r {
            errs.push(FieldError::invalid(
                &p.child("fullyLabeledReplicas"),
                fully,
                msg,
            ));
        }
        if ready > r {
            errs.push(FieldError::invalid(&p.child("readyReplicas"), ready, msg));
        }
        if avail > r {
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

// -------------------------------------------------------------- StatefulSet

impl KindRules for StatefulSet {
    fn default(&mut self) {
        let spec = self.spec.get_or_insert_with(Default::default);
        if empty(&spec.pod_management_policy) {
            spec.pod_management_policy = Some("OrderedReady".into());
        }
        let us = spec
            .update_strategy
            .get_or_insert_with(StatefulSetUpdateStrategy::default);
        if empty(&us.type_) {
            us.type_ = Some("RollingUpdate".into());
            us.rolling_update
                .get_or_insert_with(RollingUpdateStatefulSetStrategy::default);
        }
        if s(&us.type_) == "RollingUpdate" {
            if let Some(ru) = &mut us.rolling_update {
                ru.partition.get_or_insert(0);
            }
        }
        let p = spec
            .persistent_volume_claim_retention_policy
            .get_or_insert_with(StatefulSetPersistentVolumeClaimRetentionPolicy::default);
        if empty(&p.when_deleted) {
            p.when_deleted = Some("Retain".into());
        }
        if empty(&p.when_scaled) {
            p.when_scaled = Some("Retain".into());
        }
        spec.replicas.get_or_insert(1);
        spec.revision_history_limit.get_or_insert(10);
        default_pod_template(&mut spec.template);
        for t in spec.volume_claim_templates.iter_mut().flatten() {
            let ts = t.spec.get_or_insert_with(Default::default);
            if ts.volume_mode.is_none() {
                ts.volume_mode = Some("Filesystem".into());
            }
            if let Some(r) = &mut ts.resources {
                crate::core::defaults::default_resource_list(&mut r.limits);
                crate::core::defaults::default_resource_list(&mut r.requests);
            }
            let st = t.status.get_or_insert_with(Default::default);
            if empty(&st.phase) {
                st.phase = Some("Pending".into());
            }
        }
    }

    fn prepare_for_create(&mut self) {
        self.status = Some(StatefulSetStatus {
            available_replicas: Some(0),
            ..Default::default()
        });
        self.metadata.generation = Some(1);
    }

    fn prepare_for_update(&mut self, old: &Self) {
        self.status = old.status.clone();
        bump_generation(
            &mut self.metadata,
            &old.metadata,
            !semantic_eq(&self.spec, &old.spec),
        );
    }

    fn prepare_for_status_update(&mut self, old: &Self) {
        self.spec = old.spec.clone();
        self.metadata.labels = old.metadata.labels.clone();
    }

    fn validate(&self) -> Vec<FieldError> {
        let mut errs = validate_kube_finalizers(&self.metadata);
        errs.extend(validate_statefulset_spec(self));
        errs
    }

    fn validate_update(&self, old: &Self) -> Vec<FieldError> {
        let mut errs = self.validate();
        let mut clone = self.spec.clone().unwrap_or_default();
        let ospec = old.spec.clone().unwrap_or_default();
        clone.replicas = ospec.replicas;
        clone.template = ospec.template.clone();
        clone.update_strategy = ospec.update_strategy.clone();
        clone.min_ready_seconds = ospec.min_ready_seconds;
        clone.ordinals = ospec.ordinals.clone();
        clone.persistent_volume_claim_retention_policy =
            ospec.persistent_volume_claim_retention_policy.clone();
        if !semantic_eq(&clone, &ospec) {
            errs.push(FieldError::forbidden(&Path::new("spec"), "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden"));
        }
        errs
    }

    fn validate_status_update(&self, old: &Self) -> Vec<FieldError> {
        let st = self.status.clone().unwrap_or_default();
        let p = Path::new("status");
        let r = st.replicas;
        let ready = st.ready_replicas.unwrap_or(0);
        let cur = st.current_replicas.unwrap_or(0);
        let up = st.updated_replicas.unwrap_or(0);
        let avail = st.available_replicas.unwrap_or(0);
        let mut errs = nonneg(i64::from(r), &p.child("replicas"));
        errs.extend(nonneg(i64::from(ready), &p.child("readyReplicas")));
        errs.extend(nonneg(i64::from(cur), &p.child("currentReplicas")));
        errs.extend(nonneg(i64::from(up), &p.child("updatedReplicas")));
        errs.extend(nonneg(i64::from(avail), &p.child("availableReplicas")));
        if let Some(g) = st.observed_generation {
            errs.extend(nonneg(g, &p.child("observedGeneration")));
        }
        if let Some(c) = st.collision_count {
            errs.extend(nonneg(i64::from(c), &p.child("collisionCount")));
        }
        let msg = "cannot be greater than status.replicas";
        for (v, name) in [
            (ready, "readyReplicas"),
            (cur, "currentReplicas"),
            (up, "updatedReplicas"),
            (avail, "availableReplicas"),
        ] {
            if v > r {
                errs.push(FieldError::invalid(&p.child(name), v, msg));
            }
        }
        if avail > ready {
            errs.push(FieldError::invalid(
                &p.child("availableReplicas"),
                avail,
                "cannot be greater than status.readyReplicas",
            ));
        }
        errs.extend(validate_kube_finalizers(&self.metadata));
        let oc = old.status.as_ref().and_then(|s| s.collision_count);
        if is_decremented(st.collision_count, oc) {
            errs.push(FieldError::invalid(
                &p.child("collisionCount"),
                st.collision_count.unwrap_or(0),
                "cannot be decremented",
            ));
        }
        errs
    }
}

fn validate_statefulset_spec(ss: &StatefulSet) -> Vec<FieldError> {
    let spec = ss.spec.clone().unwrap_or_default();
    let sp = Path::new("spec");
    let mut errs = Vec::new();
    match s(&spec.pod_management_policy) {
        "" => errs.push(FieldError::required(&sp.child("podManagementPolicy"), "")),
        "OrderedReady" | "Parallel" => {}
        other => errs.push(FieldError::invalid(
            &sp.child("podManagementPolicy"),
            other,
            "must be 'OrderedReady' or 'Parallel'",
        )),
    }
    let us = spec.update_strategy.clone().unwrap_or_default();
    let usp = sp.child("updateStrategy");
    match s(&us.type_) {
        "" => errs.push(FieldError::required(&usp, "")),
        "OnDelete" => {
            if let Some(ru) = &us.rolling_update {
                errs.push(FieldError::invalid(
                    &usp.child("rollingUpdate"),
                    to_json(ru),
                    "only allowed for updateStrategy 'RollingUpdate'",
                ));
            }
        }
        "RollingUpdate" => {
            if let Some(ru) = &us.rolling_update {
                let rp = usp.child("rollingUpdate");
                errs.extend(nonneg(
                    i64::from(ru.partition.unwrap_or(0)),
                    &rp.child("partition"),
                ));
                if let Some(mu) = &ru.max_unavailable {
                    let mp = rp.child("maxUnavailable");
                    errs.extend(validate_positive_int_or_percent(mu, &mp));
                    if int_or_percent_value(mu) == 0 {
                        errs.push(invalid_go(&mp, &intstr_string(mu), "cannot be 0"));
                    }
                    errs.extend(is_not_more_than_100_percent(mu, &mp));
                }
            }
        }
        _ => errs.push(FieldError::invalid(
            &usp,
            to_json(&us),
            "must be 'RollingUpdate' or 'OnDelete'",
        )),
    }
    if let Some(p) = &spec.persistent_volume_claim_retention_policy {
        for (v, name) in [
            (&p.when_deleted, "whenDeleted"),
            (&p.when_scaled, "whenScaled"),
        ] {
            let val = s(v);
            if val != "Retain" && val != "Delete" {
                errs.push(FieldError::not_supported(
                    &sp.child("persistentVolumeClaimRetentionPolicy").child(name),
                    val,
                    &["Retain", "Delete"],
                ));
            }
        }
    }
    errs.extend(nonneg(
        i64::from(spec.replicas.unwrap_or(0)),
        &sp.child("replicas"),
    ));
    errs.extend(nonneg(
        i64::from(spec.min_ready_seconds.unwrap_or(0)),
        &sp.child("minReadySeconds"),
    ));
    if let Some(o) = &spec.ordinals {
        errs.extend(nonneg(
            i64::from(o.start.unwrap_or(0)),
            &sp.child("ordinals.start"),
        ));
    }
    errs.extend(validate_selector_required(
        &spec.selector,
        &sp.child("selector"),
        "statefulset",
    ));
    match selector_of(&Some(spec.selector.clone())) {
        Err(_) => errs.push(invalid_go(
            &sp.child("selector"),
            &go_label_selector(&spec.selector),
            "",
        )),
        Ok(selector) => {
            let tp = sp.child("template");
            let meta = spec.template.metadata.clone().unwrap_or_default();
            if !selector.is_empty() && !selector_matches(&selector, &meta.labels) {
                errs.push(invalid_go(
                    &tp.child("metadata").child("labels"),
                    &go_str_map(&meta.labels),
                    "`selector` does not match template `labels`",
                ));
            }
            errs.extend(validate_labels(&meta.labels, &tp.child("labels")));
            errs.extend(validate_annotations(
                &meta.annotations,
                &tp.child("annotations"),
            ));
            errs.extend(validate_pod_specific_annotations(
                &meta.annotations,
                &spec.template.spec.clone().unwrap_or_default(),
                &tp.child("annotations"),
            ));
        }
    }
    let ps = spec.template.spec.clone().unwrap_or_default();
    if s(&ps.restart_policy) != "Always" {
        errs.push(FieldError::not_supported(
            &sp.child("template").child("spec").child("restartPolicy"),
            s(&ps.restart_policy),
            &["Always"],
        ));
    }
    if ps.active_deadline_seconds.is_some() {
        errs.push(FieldError::forbidden(
            &sp.child("template")
                .child("spec")
                .child("activeDeadlineSeconds"),
            "activeDeadlineSeconds in StatefulSet is not Supported",
        ));
    }
    errs
}

// ---------------------------------------------------------------- DaemonSet

fn template_generation(ds: &DaemonSet) -> i64 {
    ds.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(DEPRECATED_TEMPLATE_GENERATION))
        .and_then(|v| v.parse::<i64>().ok())
        .unwrap_or(0)
}

fn set_template_generation(ds: &mut DaemonSet, g: i64) {
    if g != 0 {
        ds.metadata
            .annotations
            .get_or_insert_with(BTreeMap::new)
            .insert(DEPRECATED_TEMPLATE_GENERATION.into(), g.to_string());
    }
}

impl KindRules for DaemonSet {
    fn default(&mut self) {
        let spec = self.spec.get_or_insert_with(Default::default);
        let us = spec
            .update_strategy
            .get_or_insert_with(DaemonSetUpdateStrategy::default);
        if empty(&us.type_) {
            us.type_ = Some("RollingUpdate".into());
        }
        if s(&us.type_) == "RollingUpdate" {
            let ru = us
                .rolling_update
                .get_or_insert_with(RollingUpdateDaemonSet::default);
            ru.max_unavailable.get_or_insert(IntOrString::Int(1));
            ru.max_surge.get_or_insert(IntOrString::Int(0));
        }
        spec.revision_history_limit.get_or_insert(10);
        default_pod_template(&mut spec.template);
    }

    fn prepare_for_create(&mut self) {
        self.status = Some(DaemonSetStatus::default());
        self.metadata.generation = Some(1);
        if template_generation(self) < 1 {
            set_template_generation(self, 1);
        }
    }

    fn prepare_for_update(&mut self, old: &Self) {
        self.status = old.status.clone();
        let og = template_generation(old);
        set_template_generation(self, og);
        let template_changed = !semantic_eq(
            &self.spec.as_ref().map(|s| &s.template),
            &old.spec.as_ref().map(|s| &s.template),
        );
        if template_changed {
            set_template_generation(self, og + 1);
        }
        bump_generation(
            &mut self.metadata,
            &old.metadata,
            !semantic_eq(&self.spec, &old.spec),
        );
    }

    fn prepare_for_status_update(&mut self, old: &Self) {
        self.spec = old.spec.clone();
    }

    fn validate(&self) -> Vec<FieldError> {
        let mut errs = validate_kube_finalizers(&self.metadata);
        errs.extend(validate_daemonset_spec(self));
        errs
    }

    fn validate_update(&self, _old: &Self) -> Vec<FieldError> {
        self.validate()
    }

    fn validate_status_update(&self, old: &Self) -> Vec<FieldError> {
        let mut errs = validate_kube_finalizers(&self.metadata);
        let st = self.status.clone().unwrap_or_default();
        let p = Path::new("status");
        for (v, name) in [
            (
                i64::from(st.current_number_scheduled),
                "currentNumberScheduled",
            ),
            (i64::from(st.number_misscheduled), "numberMisscheduled"),
            (
                i64::from(st.desired_number_scheduled),
                "desiredNumberScheduled",
            ),
            (i64::from(st.number_ready), "numberReady"),
            (st.observed_generation.unwrap_or(0), "observedGeneration"),
            (
                i64::from(st.updated_number_scheduled.unwrap_or(0)),
                "updatedNumberScheduled",
            ),
            (
                i64::from(st.number_available.unwrap_or(0)),
                "numberAvailable",
            ),
            (
                i64::from(st.number_unavailable.unwrap_or(0)),
                "numberUnavailable",
            ),
        ] {
            errs.extend(nonneg(v, &p.child(name)));
        }
        if let Some(c) = st.collision_count {
            errs.extend(nonneg(i64::from(c), &p.child("collisionCount")));
        }
        let oc = old.status.as_ref().and_then(|s| s.collision_count);
        if is_decremented(st.collision_count, oc) {
            errs.push(FieldError::invalid(
                &p.child("collisionCount"),
                st.collision_count.unwrap_or(0),
                "cannot be decremented",
            ));
        }
        errs
    }
}

fn validate_daemonset_spec(ds: &DaemonSet) -> Vec<FieldError> {
    let spec = ds.spec.clone().unwrap_or_default();
    let sp = Path::new("spec");
    let mut errs =
        validate_label_selector(&Some(spec.selector.clone()), false, &sp.child("selector"));
    let labels = spec
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone());
    if let Ok(selector) = selector_of(&Some(spec.selector.clone())) {
        if !selector_matches(&selector, &labels) {
            errs.push(invalid_go(
                &sp.child("template").child("metadata").child("labels"),
                &go_str_map(&labels),
                "`selector` does not match template `labels`",
            ));
        }
    }
    let n = spec
        .selector
        .match_labels
        .as_ref()
        .map(|m| m.len())
        .unwrap_or(0)
        + spec
            .selector
            .match_expressions
            .as_ref()
            .map(|m| m.len())
            .unwrap_or(0);
    if n == 0 {
        errs.push(invalid_go(
            &sp.child("selector"),
            &go_label_selector(&spec.selector),
            "empty selector is invalid for daemonset",
        ));
    }
    errs.extend(validate_pod_template_spec(
        &spec.template,
        &sp.child("template"),
        PodOpts::default(),
    ));
    let ps = spec.template.spec.clone().unwrap_or_default();
    if s(&ps.restart_policy) != "Always" {
        errs.push(FieldError::not_supported(
            &sp.child("template").child("spec").child("restartPolicy"),
            s(&ps.restart_policy),
            &["Always"],
        ));
    }
    if ps.active_deadline_seconds.is_some() {
        errs.push(FieldError::forbidden(
            &sp.child("template")
                .child("spec")
                .child("activeDeadlineSeconds"),
            "activeDeadlineSeconds in DaemonSet is not Supported",
        ));
    }
    errs.extend(nonneg(
        i64::from(spec.min_ready_seconds.unwrap_or(0)),
        &sp.child("minReadySeconds"),
    ));
    errs.extend(nonneg(
        template_generation(ds),
        &sp.child("templateGeneration"),
    ));
    let us = spec.update_strategy.clone().unwrap_or_default();
    let up = sp.child("updateStrategy");
    match s(&us.type_) {
        "OnDelete" => {}
        "RollingUpdate" => match &us.rolling_update {
            None => errs.push(FieldError::required(&up.child("rollingUpdate"), "")),
            Some(ru) => {
                let rp = up.child("rollingUpdate");
                let mu = ru.max_unavailable.clone().unwrap_or(IntOrString::Int(0));
                let ms = ru.max_surge.clone().unwrap_or(IntOrString::Int(0));
                errs.extend(validate_positive_int_or_percent(&mu, &rp.child("maxUnavailable")));
                errs.extend(validate_positive_int_or_percent(&ms, &rp.child("maxSurge")));
                errs.extend(is_not_more_than_100_percent(&mu, &rp.child("maxUnavailable")));
                errs.extend(is_not_more_than_100_percent(&ms, &rp.child("maxSurge")));
                let hu = int_or_percent_value(&mu) != 0;
                let hs = int_or_percent_value(&ms) != 0;
                if hu && hs {
                    errs.push(invalid_go(&rp.child("maxSurge"), &intstr_string(&ms), "may not be set when maxUnavailable is non-zero"));
                } else if !hu && !hs {
                    errs.push(FieldError::required(&rp.child("maxUnavailable"), "cannot be 0 when maxSurge is 0"));
                }
            }
        },
        other => errs.push(FieldError::new(
            apimachinery::ErrorKind::NotSupported,
            &up,
            None,
            format!(
                "apps.DaemonSetUpdateStrategy{{Type:{}, RollingUpdate:{}}}: supported values: \"RollingUpdate\", \"OnDelete\"",
                apimachinery::gofmt::quote(other),
                if us.rolling_update.is_some() { "(*apps.RollingUpdateDaemonSet)(...)" } else { "(*apps.RollingUpdateDaemonSet)(nil)" }
            ),
        )),
    }
    if let Some(r) = spec.revision_history_limit {
        errs.extend(nonneg(i64::from(r), &sp.child("revisionHistoryLimit")));
    }
    errs
}

// ------------------------------------------------------- ControllerRevision

impl KindRules for ControllerRevision {
    fn validate(&self) -> Vec<FieldError> {
        let mut errs = validate_kube_finalizers(&self.metadata);
        if self.data.is_none() {
            errs.push(FieldError::required(
                &Path::new("data"),
                "data is mandatory",
            ));
        }
        errs.extend(nonneg(self.revision, &Path::new("revision")));
        errs
    }

    fn validate_update(&self, old: &Self) -> Vec<FieldError> {
        let mut errs = self.validate();
        errs.extend(crate::util::immutable(
            to_json(&self.data),
            to_json(&old.data),
            &Path::new("data"),
        ));
        errs
    }

    fn validate_status_update(&self, _old: &Self) -> Vec<FieldError> {
        Vec::new()
    }
}
