//! batch/v1 kinds: Job (defaulting, selector generation, indexed mode,
//! pod failure and replacement policies) and CronJob (schedule syntax,
//! time zones, concurrency policy, job template).

use std::collections::{BTreeMap, BTreeSet};

use apimachinery::{FieldError, Path};
use k8s_openapi::api::batch::v1::{CronJob, CronJobStatus, Job, JobSpec, JobStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

use crate::core::pod::default_pod_template;
use crate::core::podspec::{validate_pod_template_spec, PodOpts};
use crate::util::{
    b, go_label_selector, go_str_map, invalid_go, list, nonneg, opt_i32, s, selector_matches,
    selector_of, semantic_eq, to_json, validate_kube_finalizers, validate_label_selector,
    validate_qualified_name,
};
use crate::KindRules;

/// Legacy job-name label.
pub const LEGACY_JOB_NAME_LABEL: &str = "job-name";
/// Job-name label.
pub const JOB_NAME_LABEL: &str = "batch.kubernetes.io/job-name";
/// Legacy controller-uid label.
pub const LEGACY_CONTROLLER_UID_LABEL: &str = "controller-uid";
/// Controller-uid label.
pub const CONTROLLER_UID_LABEL: &str = "batch.kubernetes.io/controller-uid";

const MAX_PARALLELISM_FOR_INDEXED_JOB: i32 = 100_000;
const MAX_FAILED_INDEXES_FOR_INDEXED_JOB: i32 = 100_000;

fn default_job_spec(
    spec: &mut JobSpec,
    meta_labels: Option<&mut Option<BTreeMap<String, String>>>,
) {
    if spec.completions.is_none() && spec.parallelism.is_none() {
        spec.completions = Some(1);
        spec.parallelism = Some(1);
    }
    spec.parallelism.get_or_insert(1);
    if spec.backoff_limit.is_none() {
        spec.backoff_limit = Some(if spec.backoff_limit_per_index.is_some() {
            i32::MAX
        } else {
            6
        });
    }
    if let Some(ml) = meta_labels {
        let tl = spec
            .template
            .metadata
            .as_ref()
            .and_then(|m| m.labels.clone());
        if tl.is_some() && ml.as_ref().is_none_or(|l| l.is_empty()) {
            *ml = tl;
        }
    }
    if spec.completion_mode.is_none() {
        spec.completion_mode = Some("NonIndexed".into());
    }
    spec.suspend.get_or_insert(false);
    if let Some(pfp) = &mut spec.pod_failure_policy {
        for rule in &mut pfp.rules {
            for c in rule.on_pod_conditions.iter_mut().flatten() {
                if c.status.is_empty() {
                    c.status = "True".into();
                }
            }
        }
    }
    if spec.pod_replacement_policy.is_none() {
        spec.pod_replacement_policy = Some(
            if spec.pod_failure_policy.is_some() {
                "Failed"
            } else {
                "TerminatingOrFailed"
            }
            .into(),
        );
    }
    spec.manual_selector.get_or_insert(false);
    default_pod_template(&mut spec.template);
}

/// Upstream `generateSelector`: adds the job-name and controller-uid labels
/// to the pod template and selects on the controller uid.
pub fn generate_selector(meta: &ObjectMeta, spec: &mut JobSpec) {
    let name = s(&meta.name).to_string();
    let uid = s(&meta.uid).to_string();
    let tm = spec.template.metadata.get_or_insert_with(Default::default);
    let labels = tm.labels.get_or_insert_with(BTreeMap::new);
    for k in [LEGACY_JOB_NAME_LABEL, JOB_NAME_LABEL] {
        labels.entry(k.into()).or_insert_with(|| name.clone());
    }
    for k in [LEGACY_CONTROLLER_UID_LABEL, CONTROLLER_UID_LABEL] {
        labels.entry(k.into()).or_insert_with(|| uid.clone());
    }
    let sel = spec.selector.get_or_insert_with(LabelSelector::default);
    sel.match_labels
        .get_or_insert_with(BTreeMap::new)
        .entry(CONTROLLER_UID_LABEL.into())
        .or_insert(uid);
}

fn validate_has_label(
    meta: &ObjectMeta,
    path: &Path,
    key: &str,
    expected: &str,
) -> Vec<FieldError> {
    let lp = path.child("labels").key(key);
    match meta.labels.as_ref().and_then(|l| l.get(key)) {
        None => vec![FieldError::required(&lp, format!("must be '{expected}'"))],
        Some(v) if v != expected => vec![invalid_go(
            &lp,
            &go_str_map(&meta.labels),
            &format!("must be '{expected}'"),
        )],
        _ => Vec::new(),
    }
}

fn validate_generated_selector(job: &Job) -> Vec<FieldError> {
    let spec = job.spec.clone().unwrap_or_default();
    if b(spec.manual_selector) || spec.selector.is_none() {
        return Vec::new();
    }
    let mut errs = Vec::new();
    let uid = s(&job.metadata.uid);
    let name = s(&job.metadata.name);
    if uid.is_empty() {
        errs.push(FieldError::required(
            &Path::new("metadata").child("uid"),
            "",
        ));
    }
    let tm = spec.template.metadata.clone().unwrap_or_default();
    let tp = Path::new("spec").child("template").child("metadata");
    errs.extend(validate_has_label(
        &tm,
        &tp,
        LEGACY_CONTROLLER_UID_LABEL,
        uid,
    ));
    errs.extend(validate_has_label(&tm, &tp, LEGACY_JOB_NAME_LABEL, name));
    errs.extend(validate_has_label(&tm, &tp, CONTROLLER_UID_LABEL, uid));
    errs.extend(validate_has_label(&tm, &tp, JOB_NAME_LABEL, name));
    let expected: BTreeMap<String, String> = [
        (CONTROLLER_UID_LABEL, uid),
        (JOB_NAME_LABEL, name),
        (LEGACY_CONTROLLER_UID_LABEL, uid),
        (LEGACY_JOB_NAME_LABEL, name),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    if let Ok(sel) = selector_of(&spec.selector) {
        if !selector_matches(&sel, &Some(expected)) {
            let rendered = spec
                .selector
                .as_ref()
                .map(go_label_selector)
                .unwrap_or_default();
            errs.push(invalid_go(
                &Path::new("spec").child("selector"),
                &rendered,
                "`selector` not auto-generated",
            ));
        }
    }
    errs
}

fn validate_pod_failure_policy(spec: &JobSpec, path: &Path) -> Vec<FieldError> {
    let Some(pfp) = &spec.pod_failure_policy else {
        return Vec::new();
    };
    let mut errs = Vec::new();
    let rp = path.child("rules");
    if pfp.rules.len() > 20 {
        errs.push(FieldError::too_many(&rp, pfp.rules.len() as i64, 20));
    }
    let ps = spec.template.spec.clone().unwrap_or_default();
    let names: BTreeSet<&str> = ps
        .containers
        .iter()
        .chain(list(&ps.init_containers))
        .map(|c| c.name.as_str())
        .collect();
    for (i, rule) in pfp.rules.iter().enumerate() {
        let p = rp.index(i);
        let ap = p.child("action");
        if rule.action == "FailIndex" {
            if spec.backoff_limit_per_index.is_none() {
                errs.push(FieldError::invalid(
                    &ap,
                    rule.action.as_str(),
                    "requires the backoffLimitPerIndex to be set",
                ));
            }
        } else if !["Count", "FailJob", "Ignore"].contains(&rule.action.as_str()) {
            errs.push(FieldError::not_supported(
                &ap,
                rule.action.as_str(),
                &["Count", "FailIndex", "FailJob", "Ignore"],
            ));
        }
        if let Some(oe) = &rule.on_exit_codes {
            let ep = p.child("onExitCodes");
            if let Some(cn) = &oe.container_name {
                if !names.contains(cn.as_str()) {
                    errs.push(FieldError::invalid(
                        &ep.child("containerName"),
                        cn.as_str(),
                        "must be one of the container or initContainer names in the pod template",
                    ));
                }
            }
            if oe.operator != "In" && oe.operator != "NotIn" {
                errs.push(FieldError::not_supported(
                    &ep.child("operator"),
                    oe.operator.as_str(),
                    &["In", "NotIn"],
                ));
            }
            let vp = ep.child("values");
            if oe.values.is_empty() {
                errs.push(FieldError::required(&vp, "at least one value is required"));
            } else if oe.values.len() > 255 {
                errs.push(FieldError::too_many(&vp, oe.values.len() as i64, 255));
            } else {
                let mut seen = BTreeSet::new();
                for (j, v) in oe.values.iter().enumerate() {
                    if oe.operator == "In" && *v == 0 {
                        errs.push(FieldError::invalid(
                            &vp.index(j),
                            *v,
                            "must not be 0 for the In operator",
                        ));
                    }
                    if !seen.insert(*v) {
                        errs.push(FieldError::duplicate(&vp.index(j), *v));
                    }
                    if j > 0 && oe.values[j - 1] > *v {
                        errs.push(FieldError::invalid(&vp.index(j), *v, "must be ordered"));
                    }
                }
            }
        }
        let conds = list(&rule.on_pod_conditions);
        for (j, c) in conds.iter().enumerate() {
            let cp = p.child("onPodConditions").index(j);
            let st = c.status.as_str();
            if !["True", "False", "Unknown"].contains(&st) {
                errs.push(FieldError::not_supported(
                    &cp.child("status"),
                    st,
                    &["False", "True", "Unknown"],
                ));
            }
            errs.extend(validate_qualified_name(&c.type_, &cp.child("type")));
        }
        if rule.on_exit_codes.is_some() && !conds.is_empty() {
            errs.push(FieldError::new(
                apimachinery::ErrorKind::Invalid,
                &p,
                None,
                "specifying both OnExitCodes and OnPodConditions is not supported",
            ));
        }
        if rule.on_exit_codes.is_none() && conds.is_empty() {
            errs.push(FieldError::new(
                apimachinery::ErrorKind::Invalid,
                &p,
                None,
                "specifying one of OnExitCodes and OnPodConditions is required",
            ));
        }
    }
    errs
}

/// Upstream `validateJobSpec` (without the selector checks).
fn validate_job_spec_common(spec: &JobSpec, path: &Path) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for (v, name) in [
        (spec.parallelism.map(i64::from), "parallelism"),
        (spec.completions.map(i64::from), "completions"),
        (spec.active_deadline_seconds, "activeDeadlineSeconds"),
        (spec.backoff_limit.map(i64::from), "backoffLimit"),
        (
            spec.ttl_seconds_after_finished.map(i64::from),
            "ttlSecondsAfterFinished",
        ),
    ] {
        if let Some(v) = v {
            errs.extend(nonneg(v, &path.child(name)));
        }
    }
    let indexed = spec.completion_mode.as_deref() == Some("Indexed");
    if let Some(v) = spec.backoff_limit_per_index {
        errs.extend(nonneg(i64::from(v), &path.child("backoffLimitPerIndex")));
        if !indexed {
            errs.push(FieldError::forbidden(
                &path.child("backoffLimitPerIndex"),
                "requires indexed completion mode",
            ));
        }
    }
    if let Some(v) = spec.max_failed_indexes {
        errs.extend(nonneg(i64::from(v), &path.child("maxFailedIndexes")));
        if spec.backoff_limit_per_index.is_none() {
            errs.push(FieldError::required(
                &path.child("backoffLimitPerIndex"),
                "when maxFailedIndexes is specified",
            ));
        }
        if !indexed {
            errs.push(FieldError::forbidden(
                &path.child("maxFailedIndexes"),
                "requires indexed completion mode",
            ));
        }
    }
    if let Some(mb) = &spec.managed_by {
        let mp = path.child("managedBy");
        errs.extend(apimachinery::validation::is_domain_prefixed_path(&mp, mb));
        if mb.len() > 63 {
            errs.push(FieldError::too_long(&mp, "", 63));
        }
    }
    if let Some(cm) = &spec.completion_mode {
        if cm != "NonIndexed" && cm != "Indexed" {
            errs.push(FieldError::not_supported(
                &path.child("completionMode"),
                cm.as_str(),
                &["NonIndexed", "Indexed"],
            ));
        }
        if cm == "Indexed" {
            if spec.completions.is_none() {
                errs.push(FieldError::required(
                    &path.child("completions"),
                    "when completion mode is Indexed",
                ));
            }
            if let Some(p) = spec.parallelism {
                if p > MAX_PARALLELISM_FOR_INDEXED_JOB {
                    errs.push(FieldError::invalid(&path.child("parallelism"), p, format!("must be less than or equal to {MAX_PARALLELISM_FOR_INDEXED_JOB} when completion mode is Indexed")));
                }
            }
            if let (Some(c), Some(m)) = (spec.completions, spec.max_failed_indexes) {
                if m > c {
                    errs.push(FieldError::invalid(
                        &path.child("maxFailedIndexes"),
                        m,
                        "must be less than or equal to completions",
                    ));
                }
            }
            if let Some(m) = spec.max_failed_indexes {
                if m > MAX_FAILED_INDEXES_FOR_INDEXED_JOB {
                    errs.push(FieldError::invalid(
                        &path.child("maxFailedIndexes"),
                        m,
                        format!(
                            "must be less than or equal to {MAX_FAILED_INDEXES_FOR_INDEXED_JOB}"
                        ),
                    ));
                }
            }
        }
    }
    if spec.success_policy.is_some() && !indexed {
        errs.push(FieldError::invalid(
            &path.child("completionMode"),
            to_json(&spec.completion_mode),
            "requires indexed completion mode",
        ));
    }
    errs.extend(validate_pod_failure_policy(
        spec,
        &path.child("podFailurePolicy"),
    ));
    if let Some(prp) = &spec.pod_replacement_policy {
        let pp = path.child("podReplacementPolicy");
        if spec.pod_failure_policy.is_some() {
            if prp != "Failed" {
                errs.push(FieldError::not_supported(&pp, prp.as_str(), &["Failed"]));
            }
        } else if prp != "Failed" && prp != "TerminatingOrFailed" {
            errs.push(FieldError::not_supported(
                &pp,
                prp.as_str(),
                &["Failed", "TerminatingOrFailed"],
            ));
        }
    }
    errs.extend(validate_pod_template_spec(
        &spec.template,
        &path.child("template"),
        PodOpts::default(),
    ));
    let rp = path.child("template").child("spec").child("restartPolicy");
    let restart = spec
        .template
        .spec
        .as_ref()
        .map(|s| s.restart_policy.clone())
        .unwrap_or_default();
    let restart = s(&restart);
    if restart == "Always" || restart.is_empty() {
        errs.push(FieldError::required(
            &rp,
            "valid values: \"OnFailure\", \"Never\"",
        ));
    } else if restart != "OnFailure" && restart != "Never" {
        errs.push(FieldError::not_supported(
            &rp,
            restart,
            &["OnFailure", "Never"],
        ));
    } else if spec.pod_failure_policy.is_some() && restart != "Never" {
        errs.push(FieldError::invalid(
            &rp,
            restart,
            "only \"Never\" is supported when podFailurePolicy is specified",
        ));
    }
    errs
}

fn validate_job_spec(spec: &JobSpec, path: &Path) -> Vec<FieldError> {
    let mut errs = validate_job_spec_common(spec, path);
    match &spec.selector {
        None => errs.push(FieldError::required(&path.child("selector"), "")),
        Some(_) => errs.extend(validate_label_selector(
            &spec.selector,
            false,
            &path.child("selector"),
        )),
    }
    if let Ok(sel) = selector_of(&spec.selector) {
        if sel.is_empty() {
            errs.push(FieldError::required(&path.child("selector"), ""));
        }
        let labels = spec
            .template
            .metadata
            .as_ref()
            .and_then(|m| m.labels.clone());
        if !selector_matches(&sel, &labels) {
            errs.push(invalid_go(
                &path.child("template").child("metadata").child("labels"),
                &go_str_map(&labels),
                "`selector` does not match template `labels`",
            ));
        }
    }
    errs
}

impl KindRules for Job {
    fn default(&mut self) {
        let spec = self.spec.get_or_insert_with(Default::default);
        default_job_spec(spec, Some(&mut self.metadata.labels));
    }

    fn prepare_for_create(&mut self) {
        let meta = self.metadata.clone();
        let spec = self.spec.get_or_insert_with(Default::default);
        if !b(spec.manual_selector) {
            generate_selector(&meta, spec);
        }
        // Defaulting runs again whenever the object is read back, copying
        // the (now generated) template labels onto an unlabelled job.
        let tl = spec
            .template
            .metadata
            .as_ref()
            .and_then(|m| m.labels.clone());
        if tl.is_some() && self.metadata.labels.as_ref().is_none_or(|l| l.is_empty()) {
            self.metadata.labels = tl;
        }
        self.status = Some(JobStatus::default());
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
        errs.extend(validate_generated_selector(self));
        let spec = self.spec.clone().unwrap_or_default();
        errs.extend(validate_job_spec(&spec, &Path::new("spec")));
        if spec.completion_mode.as_deref() == Some("Indexed") {
            if let Some(c) = spec.completions.filter(|c| *c > 0) {
                let host = format!("{}-{}", s(&self.metadata.name), c - 1);
                if !apimachinery::validation::is_dns1123_label(&host).is_empty() {
                    errs.push(FieldError::invalid(
                        &Path::new("metadata").child("name"),
                        s(&self.metadata.name),
                        format!("will not able to create pod with invalid DNS label: {host}"),
                    ));
                }
            }
        }
        errs
    }

    fn validate_update(&self, old: &Self) -> Vec<FieldError> {
        let mut errs = validate_kube_finalizers(&self.metadata);
        let spec = self.spec.clone().unwrap_or_default();
        let ospec = old.spec.clone().unwrap_or_default();
        let sp = Path::new("spec");
        errs.extend(validate_job_spec(&spec, &sp));
        if spec.completions != ospec.completions {
            let indexed = spec.completion_mode.as_deref() == Some("Indexed");
            if !indexed {
                errs.push(FieldError::invalid(
                    &sp.child("completions"),
                    opt_i32(spec.completions),
                    apimachinery::validation::FIELD_IMMUTABLE_ERROR_MSG,
                ));
            } else if spec.completions != spec.parallelism {
                errs.push(FieldError::invalid(
                    &sp.child("completions"),
                    opt_i32(spec.completions),
                    "can only be modified in tandem with spec.parallelism",
                ));
            }
        }
        errs.extend(crate::util::immutable(
            to_json(&spec.selector),
            to_json(&ospec.selector),
            &sp.child("selector"),
        ));
        let suspended = b(ospec.suspend) && b(spec.suspend);
        let mut nt = spec.template.clone();
        let ot = ospec.template.clone();
        if suspended {
            // Scheduling directives are mutable for suspended jobs.
            let (nspec, ospec_t) = (
                nt.spec.get_or_insert_with(Default::default),
                ot.spec.clone().unwrap_or_default(),
            );
            nspec.node_selector = ospec_t.node_selector.clone();
            nspec.tolerations = ospec_t.tolerations.clone();
            nspec.scheduling_gates = ospec_t.scheduling_gates.clone();
            if let Some(a) = &mut nspec.affinity {
                a.node_affinity = ospec_t
                    .affinity
                    .as_ref()
                    .and_then(|x| x.node_affinity.clone());
            }
            let nm = nt.metadata.get_or_insert_with(Default::default);
            let om = ot.metadata.clone().unwrap_or_default();
            nm.labels = om.labels.clone();
            nm.annotations = om.annotations.clone();
        }
        if !semantic_eq(&nt, &ot) {
            errs.push(FieldError::invalid(
                &sp.child("template"),
                to_json(&spec.template),
                apimachinery::validation::FIELD_IMMUTABLE_ERROR_MSG,
            ));
        }
        for (n, o, name) in [
            (
                to_json(&spec.completion_mode),
                to_json(&ospec.completion_mode),
                "completionMode",
            ),
            (
                to_json(&spec.pod_failure_policy),
                to_json(&ospec.pod_failure_policy),
                "podFailurePolicy",
            ),
            (
                to_json(&spec.backoff_limit_per_index),
                to_json(&ospec.backoff_limit_per_index),
                "backoffLimitPerIndex",
            ),
            (
                to_json(&spec.managed_by),
                to_json(&ospec.managed_by),
                "managedBy",
            ),
            (
                to_json(&spec.success_policy),
                to_json(&ospec.success_policy),
                "successPolicy",
            ),
        ] {
            errs.extend(crate::util::immutable(n, o, &sp.child(name)));
        }
        errs
    }

    fn validate_status_update(&self, _old: &Self) -> Vec<FieldError> {
        let mut errs = validate_kube_finalizers(&self.metadata);
        let st = self.status.clone().unwrap_or_default();
        let p = Path::new("status");
        for (v, name) in [
            (st.active, "active"),
            (st.succeeded, "succeeded"),
            (st.failed, "failed"),
            (st.ready, "ready"),
            (st.terminating, "terminating"),
        ] {
            if let Some(v) = v {
                errs.extend(nonneg(i64::from(v), &p.child(name)));
            }
        }
        errs
    }
}

fn validate_time_zone(tz: &Option<String>, path: &Path) -> Vec<FieldError> {
    let Some(tz) = tz else {
        return Vec::new();
    };
    if tz.is_empty() {
        return vec![FieldError::invalid(
            path,
            "",
            "timeZone must be nil or non-empty string",
        )];
    }
    for part in tz.split('/') {
        let ok_chars = !part.is_empty()
            && part.len() <= 14
            && part
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || b".-_+".contains(&c));
        if part == "." || part == ".." || part.starts_with('-') || !ok_chars {
            return vec![FieldError::invalid(
                path,
                tz.as_str(),
                format!("unknown time zone {tz}"),
            )];
        }
    }
    let mut errs = Vec::new();
    if tz.eq_ignore_ascii_case("Local") {
        errs.push(FieldError::invalid(
            path,
            tz.as_str(),
            "timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones",
        ));
    }
    if let Err(e) = crate::cron::load_location(tz) {
        errs.push(FieldError::invalid(path, tz.as_str(), e));
    }
    errs
}

fn validate_cron_job_spec(cj: &CronJob, old: Option<&CronJob>) -> Vec<FieldError> {
    let spec = cj.spec.clone().unwrap_or_default();
    let ospec = old.and_then(|o| o.spec.clone());
    let sp = Path::new("spec");
    let mut errs = Vec::new();
    let sch = sp.child("schedule");
    if spec.schedule.is_empty() {
        errs.push(FieldError::required(&sch, ""));
    } else {
        let allow_tz = ospec.as_ref().is_some_and(|o| o.schedule.contains("TZ"));
        if let Err(e) = crate::cron::parse_standard(&spec.schedule) {
            errs.push(FieldError::invalid(&sch, spec.schedule.as_str(), e));
        }
        if allow_tz && spec.schedule.contains("TZ") && spec.time_zone.is_some() {
            errs.push(FieldError::invalid(
                &sch,
                spec.schedule.as_str(),
                "cannot use both timeZone field and TZ or CRON_TZ in schedule",
            ));
        } else if !allow_tz && spec.schedule.contains("TZ") {
            errs.push(FieldError::invalid(
                &sch,
                spec.schedule.as_str(),
                "cannot use TZ or CRON_TZ in schedule, use timeZone field instead",
            ));
        }
    }
    if let Some(v) = spec.starting_deadline_seconds {
        errs.extend(nonneg(v, &sp.child("startingDeadlineSeconds")));
    }
    if ospec.as_ref().is_none_or(|o| o.time_zone != spec.time_zone) {
        errs.extend(validate_time_zone(&spec.time_zone, &sp.child("timeZone")));
    }
    let cp = sp.child("concurrencyPolicy");
    match s(&spec.concurrency_policy) {
        "Allow" | "Forbid" | "Replace" => {}
        "" => errs.push(FieldError::required(&cp, "")),
        other => errs.push(FieldError::not_supported(
            &cp,
            other,
            &["Allow", "Forbid", "Replace"],
        )),
    }
    let jp = sp.child("jobTemplate");
    let jspec = spec.job_template.spec.clone().unwrap_or_default();
    errs.extend(validate_job_spec_common(&jspec, &jp.child("spec")));
    if let Some(sel) = &jspec.selector {
        errs.push(invalid_go(
            &jp.child("spec").child("selector"),
            &go_label_selector(sel),
            "`selector` will be auto-generated",
        ));
    }
    if jspec.manual_selector == Some(true) {
        errs.push(FieldError::not_supported(
            &jp.child("spec").child("manualSelector"),
            true,
            &["nil", "false"],
        ));
    }
    if let Some(v) = spec.successful_jobs_history_limit {
        errs.extend(nonneg(
            i64::from(v),
            &sp.child("successfulJobsHistoryLimit"),
        ));
    }
    if let Some(v) = spec.failed_jobs_history_limit {
        errs.extend(nonneg(i64::from(v), &sp.child("failedJobsHistoryLimit")));
    }
    errs
}

impl KindRules for CronJob {
    fn default(&mut self) {
        let spec = self.spec.get_or_insert_with(Default::default);
        if s(&spec.concurrency_policy).is_empty() {
            spec.concurrency_policy = Some("Allow".into());
        }
        spec.suspend.get_or_insert(false);
        spec.successful_jobs_history_limit.get_or_insert(3);
        spec.failed_jobs_history_limit.get_or_insert(1);
        let jspec = spec.job_template.spec.get_or_insert_with(Default::default);
        default_pod_template(&mut jspec.template);
    }

    fn prepare_for_create(&mut self) {
        self.status = Some(CronJobStatus::default());
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
        let name = s(&self.metadata.name);
        if name.len() > 52 {
            errs.push(FieldError::invalid(
                &Path::new("metadata").child("name"),
                name,
                "must be no more than 52 characters",
            ));
        }
        errs.extend(validate_cron_job_spec(self, None));
        errs
    }

    fn validate_update(&self, old: &Self) -> Vec<FieldError> {
        let mut errs = validate_kube_finalizers(&self.metadata);
        errs.extend(validate_cron_job_spec(self, Some(old)));
        errs
    }

    fn validate_status_update(&self, _old: &Self) -> Vec<FieldError> {
        validate_kube_finalizers(&self.metadata)
    }
}

/// The defaulted template labels of a job (helper for callers building
/// jobs from a CronJob template, as the CronJob controller does).
pub fn template_labels(job: &Job) -> Option<BTreeMap<String, String>> {
    job.spec
        .as_ref()
        .and_then(|s| s.template.metadata.as_ref())
        .and_then(|m| m.labels.clone())
}

/// Shorthand used by tests and callers: the selector rendered as upstream
/// renders it in messages.
pub fn selector_string(sel: &LabelSelector) -> String {
    go_label_selector(sel)
}
