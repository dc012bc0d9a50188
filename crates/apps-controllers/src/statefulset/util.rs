//! StatefulSet helpers without I/O: pod identity (`<set>-<ordinal>`, the pod-name and
//! pod-index labels, hostname and subdomain), the ordinal range (`spec.ordinals.start`
//! and replicas), claims from volumeClaimTemplates (`<template>-<set>-<ordinal>`) and
//! the owner references the PVC retention policy asks for, which revision a new pod
//! gets, pod states, and status counting.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetStatus};
use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, PersistentVolumeClaimVolumeSource, Pod, PodSpec, PodTemplateSpec, Volume,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

use controllers::podcontrol::pod_from_template;
use controllers::util::{is_pod_available, is_pod_ready, new_controller_ref};

use crate::history::CONTROLLER_REVISION_HASH_LABEL;

/// The label carrying a StatefulSet pod's name.
pub const POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";
/// The label carrying a StatefulSet pod's ordinal.
pub const POD_INDEX_LABEL: &str = "apps.kubernetes.io/pod-index";

/// The parent name and ordinal encoded in a pod name `<parent>-<ordinal>`; the
/// ordinal is -1 when it does not parse as a 32-bit integer, and the parent is empty
/// when the name has no `-<digits>` suffix.
pub fn parent_and_ordinal(name: &str) -> (&str, i64) {
    let Some((parent, digits)) = name.rsplit_once('-') else {
        return ("", -1);
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return ("", -1);
    }
    match digits.parse::<i32>() {
        Ok(n) => (parent, i64::from(n)),
        Err(_) => (parent, -1),
    }
}

/// The ordinal of a pod (-1 when it has none).
pub fn ordinal(pod: &Pod) -> i64 {
    parent_and_ordinal(pod.metadata.name.as_deref().unwrap_or("")).1
}

/// Whether the pod's name makes it a member of the set.
pub fn is_member_of(set: &StatefulSet, pod: &Pod) -> bool {
    let (parent, _) = parent_and_ordinal(pod.metadata.name.as_deref().unwrap_or(""));
    !parent.is_empty() && Some(parent) == set.metadata.name.as_deref()
}

/// `spec.replicas` (default 1).
pub fn replicas(set: &StatefulSet) -> i32 {
    set.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

/// The first ordinal (`spec.ordinals.start`, default 0).
pub fn start_ordinal(set: &StatefulSet) -> i64 {
    set.spec
        .as_ref()
        .and_then(|s| s.ordinals.as_ref())
        .and_then(|o| o.start)
        .map_or(0, i64::from)
}

/// The last ordinal in range (start + replicas - 1).
pub fn end_ordinal(set: &StatefulSet) -> i64 {
    start_ordinal(set) + i64::from(replicas(set)) - 1
}

/// Whether the pod's ordinal is one the set keeps.
pub fn pod_in_ordinal_range(pod: &Pod, set: &StatefulSet) -> bool {
    let o = ordinal(pod);
    o >= start_ordinal(set) && o <= end_ordinal(set)
}

/// `<set>-<ordinal>`.
pub fn pod_name(set: &StatefulSet, ordinal: i64) -> String {
    format!("{}-{ordinal}", set.metadata.name.as_deref().unwrap_or(""))
}

/// `<template>-<set>-<ordinal>`.
pub fn claim_name(set: &StatefulSet, template: &PersistentVolumeClaim, ordinal: i64) -> String {
    format!(
        "{}-{}-{ordinal}",
        template.metadata.name.as_deref().unwrap_or(""),
        set.metadata.name.as_deref().unwrap_or("")
    )
}

fn claim_templates(set: &StatefulSet) -> &[PersistentVolumeClaim] {
    set.spec
        .as_ref()
        .and_then(|s| s.volume_claim_templates.as_deref())
        .unwrap_or(&[])
}

/// `spec.serviceName`.
pub fn service_name(set: &StatefulSet) -> String {
    set.spec
        .as_ref()
        .and_then(|s| s.service_name.clone())
        .unwrap_or_default()
}

/// The claims of a pod, by template name: each template renamed for the pod's
/// ordinal, in the set's namespace, with the selector's matchLabels added.
pub fn persistent_volume_claims(
    set: &StatefulSet,
    pod: &Pod,
) -> Vec<(String, PersistentVolumeClaim)> {
    let ord = ordinal(pod);
    let match_labels = set
        .spec
        .as_ref()
        .and_then(|s| s.selector.match_labels.clone())
        .unwrap_or_default();
    claim_templates(set)
        .iter()
        .map(|t| {
            let mut claim = t.clone();
            claim.metadata.name = Some(claim_name(set, t, ord));
            claim.metadata.namespace = set.metadata.namespace.clone();
            let labels = claim.metadata.labels.get_or_insert_with(BTreeMap::new);
            labels.extend(match_labels.clone());
            claim.status = None;
            (t.metadata.name.clone().unwrap_or_default(), claim)
        })
        .collect()
}

/// Whether the pod has a volume for every claim template, pointing at its claim.
pub fn storage_matches(set: &StatefulSet, pod: &Pod) -> bool {
    let ord = ordinal(pod);
    if ord < 0 {
        return false;
    }
    let volumes = pod
        .spec
        .as_ref()
        .and_then(|s| s.volumes.as_deref())
        .unwrap_or(&[]);
    claim_templates(set).iter().all(|t| {
        volumes
            .iter()
            .find(|v| Some(&v.name) == t.metadata.name.as_ref())
            .and_then(|v| v.persistent_volume_claim.as_ref())
            .is_some_and(|c| c.claim_name == claim_name(set, t, ord))
    })
}

/// Points the pod's volumes at its claims (replacing volumes of the same names).
pub fn update_storage(set: &StatefulSet, pod: &mut Pod) {
    let claims = persistent_volume_claims(set, pod);
    if claims.is_empty() {
        return;
    }
    let spec = pod.spec.get_or_insert_with(PodSpec::default);
    let current = spec.volumes.take().unwrap_or_default();
    let mut volumes: Vec<Volume> = claims
        .iter()
        .map(|(name, claim)| Volume {
            name: name.clone(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: claim.metadata.name.clone().unwrap_or_default(),
                read_only: None,
            }),
            ..Default::default()
        })
        .collect();
    volumes.extend(
        current
            .into_iter()
            .filter(|v| !claims.iter().any(|(n, _)| *n == v.name)),
    );
    spec.volumes = Some(volumes);
}

/// Whether the pod's name, namespace and identity labels are the set's for its
/// ordinal.
pub fn identity_matches(set: &StatefulSet, pod: &Pod) -> bool {
    let name = pod.metadata.name.as_deref().unwrap_or("");
    let (parent, ord) = parent_and_ordinal(name);
    let labels = pod.metadata.labels.as_ref();
    ord >= 0
        && Some(parent) == set.metadata.name.as_deref()
        && name == pod_name(set, ord)
        && pod.metadata.namespace == set.metadata.namespace
        && labels
            .and_then(|l| l.get(POD_NAME_LABEL))
            .map(String::as_str)
            == Some(name)
        && labels.and_then(|l| l.get(POD_INDEX_LABEL)) == Some(&ord.to_string())
}

/// Sets the pod's name, namespace and identity labels for its ordinal.
pub fn update_identity(set: &StatefulSet, pod: &mut Pod) {
    let ord = ordinal(pod);
    let name = pod_name(set, ord);
    pod.metadata.name = Some(name.clone());
    pod.metadata.namespace = set.metadata.namespace.clone();
    let labels = pod.metadata.labels.get_or_insert_with(BTreeMap::new);
    labels.insert(POD_NAME_LABEL.into(), name);
    labels.insert(POD_INDEX_LABEL.into(), ord.to_string());
}

/// A new pod of the set at `ordinal` from `template`: controller reference, name,
/// identity labels, hostname and subdomain, and claim volumes.
pub fn new_stateful_set_pod(set: &StatefulSet, template: &PodTemplateSpec, ordinal: i64) -> Pod {
    let mut pod = pod_from_template(
        template,
        set.metadata.name.as_deref().unwrap_or(""),
        Some(new_controller_ref(set)),
    );
    pod.metadata.generate_name = None;
    pod.metadata.name = Some(pod_name(set, ordinal));
    update_identity(set, &mut pod);
    let service = service_name(set);
    let spec = pod.spec.get_or_insert_with(PodSpec::default);
    spec.hostname = pod.metadata.name.clone();
    spec.subdomain = (!service.is_empty()).then_some(service);
    update_storage(set, &mut pod);
    pod
}

/// Whether the pod at `ordinal` is created at the current revision rather than the
/// update revision: under RollingUpdate, ordinals below the partition (or, without
/// rollingUpdate parameters, below start + currentReplicas).
pub fn uses_current_revision(set: &StatefulSet, ordinal: i64) -> bool {
    let strategy = set.spec.as_ref().and_then(|s| s.update_strategy.as_ref());
    let is_rolling = strategy
        .and_then(|u| u.type_.as_deref())
        .unwrap_or("RollingUpdate")
        == "RollingUpdate";
    let rolling = strategy.and_then(|u| u.rolling_update.as_ref());
    let start = start_ordinal(set);
    match rolling {
        None => {
            let current = set
                .status
                .as_ref()
                .and_then(|s| s.current_replicas)
                .unwrap_or(0);
            is_rolling && ordinal < start + i64::from(current)
        }
        Some(r) => ordinal < start + i64::from(r.partition.unwrap_or(0)),
    }
}

/// Sets the pod's `controller-revision-hash` label.
pub fn set_pod_revision(pod: &mut Pod, revision: &str) {
    pod.metadata
        .labels
        .get_or_insert_with(BTreeMap::new)
        .insert(CONTROLLER_REVISION_HASH_LABEL.into(), revision.to_string());
}

/// The pod's `controller-revision-hash` label ("" when unset).
pub fn pod_revision(pod: &Pod) -> &str {
    pod.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(CONTROLLER_REVISION_HASH_LABEL))
        .map_or("", String::as_str)
}

fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

/// Running and Ready.
pub fn is_running_and_ready(pod: &Pod) -> bool {
    phase(pod) == "Running" && is_pod_ready(pod)
}

/// Running and available for `min_ready_seconds`.
pub fn is_running_and_available(pod: &Pod, min_ready_seconds: i32, now: jiff::Timestamp) -> bool {
    phase(pod) == "Running" && is_pod_available(pod, min_ready_seconds, now)
}

/// Phase Failed.
pub fn is_failed(pod: &Pod) -> bool {
    phase(pod) == "Failed"
}

/// Phase Succeeded.
pub fn is_succeeded(pod: &Pod) -> bool {
    phase(pod) == "Succeeded"
}

/// Phase Pending.
pub fn is_pending(pod: &Pod) -> bool {
    phase(pod) == "Pending"
}

/// Being deleted.
pub fn is_terminating(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
}

/// Running, Ready and not being deleted.
pub fn is_healthy(pod: &Pod) -> bool {
    is_running_and_ready(pod) && !is_terminating(pod)
}

/// Whether pods may be created and deleted in parallel (`podManagementPolicy:
/// Parallel`).
pub fn allows_burst(set: &StatefulSet) -> bool {
    set.spec
        .as_ref()
        .and_then(|s| s.pod_management_policy.as_deref())
        == Some("Parallel")
}

/// `spec.minReadySeconds`.
pub fn min_ready_seconds(set: &StatefulSet) -> i32 {
    set.spec
        .as_ref()
        .and_then(|s| s.min_ready_seconds)
        .unwrap_or(0)
}

/// The partition of a RollingUpdate (0 when unset).
pub fn partition(set: &StatefulSet) -> i64 {
    set.spec
        .as_ref()
        .and_then(|s| s.update_strategy.as_ref())
        .and_then(|u| u.rolling_update.as_ref())
        .and_then(|r| r.partition)
        .map_or(0, i64::from)
}

/// The update strategy type (default RollingUpdate).
pub fn strategy_type(set: &StatefulSet) -> &str {
    set.spec
        .as_ref()
        .and_then(|s| s.update_strategy.as_ref())
        .and_then(|u| u.type_.as_deref())
        .unwrap_or("RollingUpdate")
}

/// One pod slot: a pod seen in the cache (`created`) or one still to create.
#[derive(Clone, Debug)]
pub struct Replica {
    /// The pod.
    pub pod: Arc<Pod>,
    /// Whether it exists in the API.
    pub created: bool,
}

/// The replica, ready, available, current and updated counts over `pods`.
pub fn count_status(
    status: &mut StatefulSetStatus,
    min_ready_seconds: i32,
    current_revision: &str,
    update_revision: &str,
    pods: &[&Replica],
    now: jiff::Timestamp,
) {
    let (mut replicas, mut ready, mut available, mut current, mut updated) = (0, 0, 0, 0, 0);
    for r in pods {
        if r.created {
            replicas += 1;
        }
        if is_running_and_ready(&r.pod) {
            ready += 1;
            if is_running_and_available(&r.pod, min_ready_seconds, now) {
                available += 1;
            }
        }
        if r.created && !is_terminating(&r.pod) {
            let rev = pod_revision(&r.pod);
            if rev == current_revision {
                current += 1;
            }
            if rev == update_revision {
                updated += 1;
            }
        }
    }
    status.replicas = replicas;
    status.ready_replicas = Some(ready);
    status.available_replicas = Some(available);
    status.current_replicas = Some(current);
    status.updated_replicas = Some(updated);
}

/// The PVC retention policy as (whenDeleted, whenScaled), Retain by default.
pub fn retention_policy(set: &StatefulSet) -> (&str, &str) {
    let p = set
        .spec
        .as_ref()
        .and_then(|s| s.persistent_volume_claim_retention_policy.as_ref());
    (
        p.and_then(|p| p.when_deleted.as_deref())
            .unwrap_or("Retain"),
        p.and_then(|p| p.when_scaled.as_deref()).unwrap_or("Retain"),
    )
}

fn matches_ref(r: &OwnerReference, api_version: &str, kind: &str, name: Option<&str>) -> bool {
    r.api_version == api_version && r.kind == kind && Some(r.name.as_str()) == name
}

fn matches_set(r: &OwnerReference, set: &StatefulSet) -> bool {
    matches_ref(r, "apps/v1", "StatefulSet", set.metadata.name.as_deref())
}

fn matches_pod(r: &OwnerReference, pod: &Pod) -> bool {
    matches_ref(r, "v1", "Pod", pod.metadata.name.as_deref())
}

fn refs(claim: &PersistentVolumeClaim) -> &[OwnerReference] {
    claim.metadata.owner_references.as_deref().unwrap_or(&[])
}

fn has_owner_ref(claim: &PersistentVolumeClaim, uid: Option<&str>) -> bool {
    refs(claim).iter().any(|r| Some(r.uid.as_str()) == uid)
}

fn has_stale_ref(
    claim: &PersistentVolumeClaim,
    matches: impl Fn(&OwnerReference) -> bool,
    uid: Option<&str>,
) -> bool {
    refs(claim)
        .iter()
        .find(|r| matches(r))
        .is_some_and(|r| Some(r.uid.as_str()) != uid)
}

/// Whether the claim has a controller other than the set and the pod (only under a
/// non-Retain policy), or a reference to a set or pod of the same name but another
/// UID.
pub fn has_unexpected_controller(
    claim: &PersistentVolumeClaim,
    set: &StatefulSet,
    pod: &Pod,
) -> bool {
    if retention_policy(set) == ("Retain", "Retain") {
        return false;
    }
    for r in refs(claim) {
        if matches_set(r, set) {
            if Some(r.uid.as_str()) != set.metadata.uid.as_deref() {
                return true;
            }
            continue;
        }
        if matches_pod(r, pod) {
            if Some(r.uid.as_str()) != pod.metadata.uid.as_deref() {
                return true;
            }
            continue;
        }
        if r.controller == Some(true) {
            return true;
        }
    }
    false
}

/// Whether the claim's owner references already follow the retention policy:
/// Retain/Retain none; WhenDeleted=Delete the set; WhenScaled=Delete the pod once it
/// is scaled away (and, with both Delete, the set while it is in range).
pub fn claim_owner_up_to_date(claim: &PersistentVolumeClaim, set: &StatefulSet, pod: &Pod) -> bool {
    let set_uid = set.metadata.uid.as_deref();
    let pod_uid = pod.metadata.uid.as_deref();
    if has_stale_ref(claim, |r| matches_set(r, set), set_uid)
        || has_stale_ref(claim, |r| matches_pod(r, pod), pod_uid)
    {
        return true;
    }
    if has_unexpected_controller(claim, set, pod) {
        return !(has_owner_ref(claim, set_uid) || has_owner_ref(claim, pod_uid));
    }
    let non_controller_owner = refs(claim).iter().any(|r| {
        (Some(r.uid.as_str()) == set_uid || Some(r.uid.as_str()) == pod_uid)
            && r.controller != Some(true)
    });
    if non_controller_owner {
        return false;
    }
    let has_set = has_owner_ref(claim, set_uid);
    let has_pod = has_owner_ref(claim, pod_uid);
    let scaled_down = !pod_in_ordinal_range(pod, set);
    match retention_policy(set) {
        ("Delete", "Retain") => has_set && !has_pod,
        ("Retain", "Delete") => !has_set && scaled_down == has_pod,
        ("Delete", "Delete") => scaled_down != has_set && scaled_down == has_pod,
        _ => !has_set && !has_pod,
    }
}

fn pod_controller_ref(pod: &Pod) -> OwnerReference {
    new_controller_ref(pod)
}

/// Rewrites the claim's owner references to follow the retention policy (see
/// [`claim_owner_up_to_date`]).
pub fn update_claim_owner_refs(claim: &mut PersistentVolumeClaim, set: &StatefulSet, pod: &Pod) {
    let unexpected = has_unexpected_controller(claim, set, pod);
    let mut list: Vec<OwnerReference> = refs(claim)
        .iter()
        .filter(|r| !matches_set(r, set) && !matches_pod(r, pod))
        .cloned()
        .collect();
    if !unexpected {
        let scaled_down = !pod_in_ordinal_range(pod, set);
        let mut add = |r: OwnerReference| {
            if !list.iter().any(|x| x.uid == r.uid) {
                list.push(r);
            }
        };
        match retention_policy(set) {
            ("Delete", "Retain") => add(new_controller_ref(set)),
            ("Retain", "Delete") if scaled_down => add(pod_controller_ref(pod)),
            ("Delete", "Delete") => {
                if scaled_down {
                    add(pod_controller_ref(pod));
                } else {
                    add(new_controller_ref(set));
                }
            }
            _ => {}
        }
    }
    claim.metadata.owner_references = (!list.is_empty()).then_some(list);
}

/// Whether a claim still references an earlier pod of the same name (so the new pod
/// must wait for it to be deleted). Only under WhenScaled=Delete.
pub fn claim_is_stale(claim: &PersistentVolumeClaim, set: &StatefulSet, pod: &Pod) -> bool {
    if retention_policy(set).1 == "Retain" {
        return false;
    }
    has_stale_ref(claim, |r| matches_pod(r, pod), pod.metadata.uid.as_deref())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::{
        RollingUpdateStatefulSetStrategy, StatefulSetOrdinals,
        StatefulSetPersistentVolumeClaimRetentionPolicy, StatefulSetSpec,
        StatefulSetUpdateStrategy,
    };
    use k8s_openapi::api::core::v1::{Container, PodCondition, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

    fn set(replicas: i32, start: Option<i32>, partition: Option<i32>) -> StatefulSet {
        StatefulSet {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("default".into()),
                uid: Some("set-uid".into()),
                ..Default::default()
            },
            spec: Some(StatefulSetSpec {
                replicas: Some(replicas),
                ordinals: start.map(|s| StatefulSetOrdinals { start: Some(s) }),
                service_name: Some("nginx".into()),
                selector: LabelSelector {
                    match_labels: Some([("app".to_string(), "web".to_string())].into()),
                    ..Default::default()
                },
                template: PodTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels: Some([("app".to_string(), "web".to_string())].into()),
                        ..Default::default()
                    }),
                    spec: Some(PodSpec {
                        containers: vec![Container {
                            name: "c".into(),
                            ..Default::default()
                        }],
                        ..Default::default()
                    }),
                },
                update_strategy: Some(StatefulSetUpdateStrategy {
                    type_: Some("RollingUpdate".into()),
                    rolling_update: partition.map(|p| RollingUpdateStatefulSetStrategy {
                        partition: Some(p),
                        max_unavailable: None,
                    }),
                }),
                volume_claim_templates: Some(vec![PersistentVolumeClaim {
                    metadata: ObjectMeta {
                        name: Some("www".into()),
                        ..Default::default()
                    },
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            status: None,
        }
    }

    #[test]
    fn names_and_ordinals() {
        assert_eq!(parent_and_ordinal("web-0"), ("web", 0));
        assert_eq!(parent_and_ordinal("my-web-12"), ("my-web", 12));
        assert_eq!(parent_and_ordinal("web"), ("", -1));
        assert_eq!(parent_and_ordinal("web-x"), ("", -1));
        assert_eq!(parent_and_ordinal("web-99999999999"), ("web", -1));
        let s = set(3, Some(5), None);
        assert_eq!((start_ordinal(&s), end_ordinal(&s)), (5, 7));
        assert_eq!(pod_name(&s, 5), "web-5");
    }

    #[test]
    fn new_pod_identity_and_storage() {
        let s = set(3, None, None);
        let t = s.spec.as_ref().unwrap().template.clone();
        let pod = new_stateful_set_pod(&s, &t, 2);
        assert_eq!(pod.metadata.name.as_deref(), Some("web-2"));
        assert_eq!(pod.metadata.generate_name, None);
        let labels = pod.metadata.labels.as_ref().unwrap();
        assert_eq!(labels[POD_NAME_LABEL], "web-2");
        assert_eq!(labels[POD_INDEX_LABEL], "2");
        assert_eq!(labels["app"], "web");
        let spec = pod.spec.as_ref().unwrap();
        assert_eq!(spec.hostname.as_deref(), Some("web-2"));
        assert_eq!(spec.subdomain.as_deref(), Some("nginx"));
        let vols = spec.volumes.as_ref().unwrap();
        assert_eq!(vols[0].name, "www");
        assert_eq!(
            vols[0].persistent_volume_claim.as_ref().unwrap().claim_name,
            "www-web-2"
        );
        assert!(identity_matches(&s, &pod));
        assert!(storage_matches(&s, &pod));
        assert_eq!(
            pod.metadata.owner_references.as_ref().unwrap()[0].kind,
            "StatefulSet"
        );
        let claims = persistent_volume_claims(&s, &pod);
        assert_eq!(claims[0].0, "www");
        assert_eq!(claims[0].1.metadata.name.as_deref(), Some("www-web-2"));
        assert_eq!(claims[0].1.metadata.labels.as_ref().unwrap()["app"], "web");
    }

    #[test]
    fn revision_choice_follows_partition() {
        let s = set(5, None, Some(3));
        assert!(uses_current_revision(&s, 2));
        assert!(!uses_current_revision(&s, 3));
        let s = set(5, Some(10), Some(3));
        assert!(uses_current_revision(&s, 12));
        assert!(!uses_current_revision(&s, 13));
        let s = set(5, None, None);
        assert!(!uses_current_revision(&s, 0), "no current replicas yet");
    }

    fn pod(name: &str, rev: &str, phase: &str, ready: bool) -> Replica {
        let mut p = Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            spec: None,
            status: Some(PodStatus {
                phase: Some(phase.into()),
                conditions: Some(vec![PodCondition {
                    type_: "Ready".into(),
                    status: if ready { "True" } else { "False" }.into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
        };
        set_pod_revision(&mut p, rev);
        Replica {
            pod: Arc::new(p),
            created: true,
        }
    }

    #[test]
    fn status_counting() {
        let a = pod("web-0", "r1", "Running", true);
        let b = pod("web-1", "r2", "Running", false);
        let mut c = pod("web-2", "r2", "", false);
        c.created = false;
        let mut st = StatefulSetStatus::default();
        count_status(
            &mut st,
            0,
            "r1",
            "r2",
            &[&a, &b, &c],
            jiff::Timestamp::now(),
        );
        assert_eq!(st.replicas, 2);
        assert_eq!(st.ready_replicas, Some(1));
        assert_eq!(st.available_replicas, Some(1));
        assert_eq!(st.current_replicas, Some(1));
        assert_eq!(st.updated_replicas, Some(1));
    }

    #[test]
    fn claim_owner_refs_follow_policy() {
        let mut s = set(1, None, None);
        let mut p = new_stateful_set_pod(&s, &s.spec.as_ref().unwrap().template, 3);
        p.metadata.uid = Some("pod-uid".into());
        let mut claim = persistent_volume_claims(&s, &p).remove(0).1;
        assert!(
            claim_owner_up_to_date(&claim, &s, &p),
            "Retain/Retain: no refs"
        );
        s.spec
            .as_mut()
            .unwrap()
            .persistent_volume_claim_retention_policy =
            Some(StatefulSetPersistentVolumeClaimRetentionPolicy {
                when_deleted: Some("Delete".into()),
                when_scaled: Some("Delete".into()),
            });
        assert!(!claim_owner_up_to_date(&claim, &s, &p));
        update_claim_owner_refs(&mut claim, &s, &p);
        // Ordinal 3 is out of range for one replica: the pod owns the claim.
        let refs = claim.metadata.owner_references.clone().unwrap();
        assert_eq!(refs.len(), 1);
        assert_eq!(
            (refs[0].kind.as_str(), refs[0].uid.as_str()),
            ("Pod", "pod-uid")
        );
        assert!(claim_owner_up_to_date(&claim, &s, &p));
        s.spec.as_mut().unwrap().replicas = Some(4);
        assert!(!claim_owner_up_to_date(&claim, &s, &p));
        update_claim_owner_refs(&mut claim, &s, &p);
        let refs = claim.metadata.owner_references.clone().unwrap();
        assert_eq!(
            (refs[0].kind.as_str(), refs[0].uid.as_str()),
            ("StatefulSet", "set-uid")
        );
        assert_eq!(refs.len(), 1);
        // A claim left by an earlier pod of the same name is stale.
        let mut other = p.clone();
        other.metadata.uid = Some("new-pod".into());
        s.spec.as_mut().unwrap().replicas = Some(1);
        update_claim_owner_refs(&mut claim, &s, &p);
        assert!(claim_is_stale(&claim, &s, &other));
        assert!(!claim_is_stale(&claim, &s, &p));
    }
}
