//! PersistentVolume and PersistentVolumeClaim: defaulting, strategies and
//! validation (volume sources, access modes, capacity, reclaim policy,
//! node affinity, claim immutability and resizing rules).

use apimachinery::validation as av;
use apimachinery::{FieldError, Path};
use k8s_openapi::api::core::v1::{
    PersistentVolume, PersistentVolumeClaim, PersistentVolumeClaimStatus, PersistentVolumeSpec,
    PersistentVolumeStatus, SecretReference,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::Value;

use crate::core::defaults::default_resource_list;
use crate::core::resources::{
    parse_q, validate_basic_resource, validate_positive_quantity, validate_quantity_value,
};
use crate::core::volumes::{
    validate_access_modes, validate_csi_driver_name, validate_fc, validate_flex_options,
    validate_flocker, validate_host_path, validate_iscsi_target, validate_nfs,
    validate_node_selector, validate_path_no_backsteps, validate_pvc_spec, validate_quobyte,
};
use crate::util::{
    default_str, empty, list, msgs_invalid, normalize, s, semantic_eq, simple_diff, to_json,
    validate_dns1123_label, validate_dns1123_subdomain, validate_kube_finalizers,
};
use crate::KindRules;

fn now() -> Time {
    Time(
        jiff::Timestamp::now()
            .round(jiff::Unit::Second)
            .unwrap_or_else(|_| jiff::Timestamp::now()),
    )
}

fn validate_pv_secret_ref(r: &SecretReference, path: &Path) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let name = s(&r.name);
    if name.is_empty() {
        errs.push(FieldError::required(&path.child("name"), ""));
    } else {
        errs.extend(validate_dns1123_subdomain(name, &path.child("name")));
    }
    let ns = s(&r.namespace);
    if ns.is_empty() {
        errs.push(FieldError::required(&path.child("namespace"), ""));
    } else {
        errs.extend(validate_dns1123_label(ns, &path.child("namespace")));
    }
    errs
}

fn req(v: &str, path: &Path, name: &str, errs: &mut Vec<FieldError>) {
    if v.is_empty() {
        errs.push(FieldError::required(&path.child(name), ""));
    }
}

/// Upstream `ValidatePersistentVolumeSpec` for a standalone volume.
pub fn validate_pv_spec(
    spec: &PersistentVolumeSpec,
    pv_name: &str,
    path: &Path,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let modes = list(&spec.access_modes);
    if modes.is_empty() {
        errs.push(FieldError::required(&path.child("accessModes"), ""));
    }
    errs.extend(validate_access_modes(modes, &path.child("accessModes")));
    let cap = spec.capacity.clone().unwrap_or_default();
    if cap.is_empty() {
        errs.push(FieldError::required(&path.child("capacity"), ""));
    }
    if !cap.contains_key("storage") || cap.len() > 1 {
        let rendered: Vec<String> = cap
            .iter()
            .map(|(k, v)| {
                format!(
                    "{}:{}",
                    apimachinery::gofmt::quote(k),
                    crate::core::resources::q_str(v)
                )
            })
            .collect();
        errs.push(FieldError::new(
            apimachinery::ErrorKind::NotSupported,
            &path.child("capacity"),
            None,
            format!(
                "core.ResourceList{{{}}}: supported values: \"storage\"",
                rendered.join(", ")
            ),
        ));
    }
    for (k, q) in &cap {
        let p = path.child("capacity").key(k);
        match parse_q(q, &p) {
            Ok(v) => {
                errs.extend(validate_basic_resource(&v, &p));
                errs.extend(validate_positive_quantity(&v, &p));
            }
            Err(e) => errs.push(e),
        }
    }
    let rp = s(&spec.persistent_volume_reclaim_policy);
    if !rp.is_empty() && !["Delete", "Recycle", "Retain"].contains(&rp) {
        errs.push(FieldError::not_supported(
            &path.child("persistentVolumeReclaimPolicy"),
            rp,
            &["Delete", "Recycle", "Retain"],
        ));
    }
    let mut node_affinity_specified = false;
    if let Some(na) = &spec.node_affinity {
        node_affinity_specified = true;
        match &na.required {
            Some(r) => errs.extend(validate_node_selector(
                r,
                false,
                &path.child("nodeAffinity").child("required"),
            )),
            None => errs.push(FieldError::required(
                &path.child("nodeAffinity").child("required"),
                "must specify required node constraints",
            )),
        }
    }
    let mut n = 0;
    let mut one =
        |set: bool, name: &str, errs: &mut Vec<FieldError>, check: &dyn Fn() -> Vec<FieldError>| {
            if !set {
                return;
            }
            if n > 0 {
                errs.push(FieldError::forbidden(
                    &path.child(name),
                    "may not specify more than 1 volume type",
                ));
            } else {
                n += 1;
                errs.extend(check());
            }
        };
    one(spec.host_path.is_some(), "hostPath", &mut errs, &|| {
        spec.host_path
            .as_ref()
            .map(|h| validate_host_path(h, &path.child("hostPath")))
            .unwrap_or_default()
    });
    one(
        spec.gce_persistent_disk.is_some(),
        "gcePersistentDisk",
        &mut errs,
        &|| {
            let mut e = Vec::new();
            if let Some(g) = &spec.gce_persistent_disk {
                let p = path.child("persistentDisk");
                req(&g.pd_name, &p, "pdName", &mut e);
                let part = g.partition.unwrap_or(0);
                if !(0..=255).contains(&part) {
                    e.push(FieldError::invalid(
                        &p.child("partition"),
                        part,
                        av::inclusive_range_error(1, 255),
                    ));
                }
            }
            e
        },
    );
    one(
        spec.aws_elastic_block_store.is_some(),
        "awsElasticBlockStore",
        &mut errs,
        &|| {
            let mut e = Vec::new();
            if let Some(a) = &spec.aws_elastic_block_store {
                let p = path.child("awsElasticBlockStore");
                req(&a.volume_id, &p, "volumeID", &mut e);
                let part = a.partition.unwrap_or(0);
                if !(0..=255).contains(&part) {
                    e.push(FieldError::invalid(
                        &p.child("partition"),
                        part,
                        av::inclusive_range_error(1, 255),
                    ));
                }
            }
            e
        },
    );
    one(spec.glusterfs.is_some(), "glusterfs", &mut errs, &|| {
        let mut e = Vec::new();
        if let Some(g) = &spec.glusterfs {
            let p = path.child("glusterfs");
            req(&g.endpoints, &p, "endpoints", &mut e);
            req(&g.path, &p, "path", &mut e);
            if let Some(ns) = &g.endpoints_namespace {
                if ns.is_empty() {
                    e.push(FieldError::invalid(
                        &p.child("endpointsNamespace"),
                        "",
                        "if the endpointnamespace is set, it must be a valid namespace name",
                    ));
                } else {
                    e.extend(msgs_invalid(
                        &p.child("endpointsNamespace"),
                        ns,
                        av::validate_namespace_name(ns, false),
                    ));
                }
            }
        }
        e
    });
    one(spec.flocker.is_some(), "flocker", &mut errs, &|| {
        spec.flocker
            .as_ref()
            .map(|f| validate_flocker(f, &path.child("flocker")))
            .unwrap_or_default()
    });
    one(spec.nfs.is_some(), "nfs", &mut errs, &|| {
        spec.nfs
            .as_ref()
            .map(|f| validate_nfs(f, &path.child("nfs")))
            .unwrap_or_default()
    });
    one(spec.rbd.is_some(), "rbd", &mut errs, &|| {
        let mut e = Vec::new();
        if let Some(r) = &spec.rbd {
            if r.monitors.is_empty() {
                e.push(FieldError::required(
                    &path.child("rbd").child("monitors"),
                    "",
                ));
            }
            req(&r.image, &path.child("rbd"), "image", &mut e);
        }
        e
    });
    one(spec.quobyte.is_some(), "quobyte", &mut errs, &|| {
        spec.quobyte
            .as_ref()
            .map(|q| validate_quobyte(q, &path.child("quobyte")))
            .unwrap_or_default()
    });
    one(spec.cephfs.is_some(), "cephFS", &mut errs, &|| {
        let mut e = Vec::new();
        if spec.cephfs.as_ref().is_some_and(|c| c.monitors.is_empty()) {
            e.push(FieldError::required(
                &path.child("cephfs").child("monitors"),
                "",
            ));
        }
        e
    });
    one(spec.iscsi.is_some(), "iscsi", &mut errs, &|| {
        let mut e = Vec::new();
        if let Some(i) = &spec.iscsi {
            let p = path.child("iscsi");
            req(&i.target_portal, &p, "targetPortal", &mut e);
            if i.initiator_name.is_some() && pv_name.len() + 1 + i.target_portal.len() > 64 {
                e.push(FieldError::invalid(&p.child("targetportal"), i.target_portal.as_str(), "Total length of <volume name>:<iscsi.targetPortal> must be under 64 characters if iscsi.initiatorName is specified."));
            }
            e.extend(validate_iscsi_target(
                &i.iqn,
                i.lun,
                i.chap_auth_discovery.unwrap_or(false) || i.chap_auth_session.unwrap_or(false),
                i.secret_ref.is_some(),
                &i.initiator_name,
                &p,
                "must be valid format",
            ));
            if let Some(r) = &i.secret_ref {
                if empty(&r.name) {
                    e.push(FieldError::required(
                        &p.child("secretRef").child("name"),
                        "",
                    ));
                }
            }
        }
        e
    });
    one(spec.cinder.is_some(), "cinder", &mut errs, &|| {
        let mut e = Vec::new();
        if let Some(c) = &spec.cinder {
            let p = path.child("cinder");
            req(&c.volume_id, &p, "volumeID", &mut e);
            if let Some(r) = &c.secret_ref {
                if empty(&r.name) {
                    e.push(FieldError::required(
                        &p.child("secretRef").child("name"),
                        "",
                    ));
                }
                if empty(&r.namespace) {
                    e.push(FieldError::required(
                        &p.child("secretRef").child("namespace"),
                        "",
                    ));
                }
            }
        }
        e
    });
    one(spec.fc.is_some(), "fc", &mut errs, &|| {
        spec.fc
            .as_ref()
            .map(|f| validate_fc(f, &path.child("fc")))
            .unwrap_or_default()
    });
    if let Some(f) = &spec.flex_volume {
        n += 1;
        errs.extend(validate_flex_options(
            &f.driver,
            &f.options,
            &path.child("flexVolume"),
        ));
    }
    let mut n2 = n;
    let mut one2 =
        |set: bool, name: &str, errs: &mut Vec<FieldError>, check: &dyn Fn() -> Vec<FieldError>| {
            if !set {
                return;
            }
            if n2 > 0 {
                errs.push(FieldError::forbidden(
                    &path.child(name),
                    "may not specify more than 1 volume type",
                ));
            } else {
                n2 += 1;
                errs.extend(check());
            }
        };
    one2(spec.azure_file.is_some(), "azureFile", &mut errs, &|| {
        let mut e = Vec::new();
        if let Some(a) = &spec.azure_file {
            let p = path.child("azureFile");
            req(&a.secret_name, &p, "secretName", &mut e);
            req(&a.share_name, &p, "shareName", &mut e);
            if a.secret_namespace.as_ref().is_some_and(|n| n.is_empty()) {
                e.push(FieldError::required(&p.child("secretNamespace"), ""));
            }
        }
        e
    });
    one2(
        spec.vsphere_volume.is_some(),
        "vsphereVolume",
        &mut errs,
        &|| {
            let mut e = Vec::new();
            if let Some(v) = &spec.vsphere_volume {
                req(
                    &v.volume_path,
                    &path.child("vsphereVolume"),
                    "volumePath",
                    &mut e,
                );
            }
            e
        },
    );
    one2(
        spec.photon_persistent_disk.is_some(),
        "photonPersistentDisk",
        &mut errs,
        &|| {
            let mut e = Vec::new();
            if let Some(v) = &spec.photon_persistent_disk {
                req(
                    &v.pd_id,
                    &path.child("photonPersistentDisk"),
                    "pdID",
                    &mut e,
                );
            }
            e
        },
    );
    one2(
        spec.portworx_volume.is_some(),
        "portworxVolume",
        &mut errs,
        &|| {
            let mut e = Vec::new();
            if let Some(v) = &spec.portworx_volume {
                req(
                    &v.volume_id,
                    &path.child("portworxVolume"),
                    "volumeID",
                    &mut e,
                );
            }
            e
        },
    );
    one2(spec.azure_disk.is_some(), "azureDisk", &mut errs, &|| {
        spec.azure_disk
            .as_ref()
            .map(|a| crate::core::volumes::validate_azure_disk(a, &path.child("azureDisk")))
            .unwrap_or_default()
    });
    one2(spec.scale_io.is_some(), "scaleIO", &mut errs, &|| {
        let mut e = Vec::new();
        if let Some(v) = &spec.scale_io {
            let p = path.child("scaleIO");
            req(&v.gateway, &p, "gateway", &mut e);
            req(&v.system, &p, "system", &mut e);
            if empty(&v.volume_name) {
                e.push(FieldError::required(&p.child("volumeName"), ""));
            }
        }
        e
    });
    one2(spec.local.is_some(), "local", &mut errs, &|| {
        let mut e = Vec::new();
        if let Some(l) = &spec.local {
            let p = path.child("local");
            if l.path.is_empty() {
                e.push(FieldError::required(&p.child("path"), ""));
            } else {
                e.extend(validate_path_no_backsteps(&l.path, &p.child("path")));
            }
            if !node_affinity_specified {
                e.push(FieldError::required(
                    &path.child("nodeAffinity"),
                    "Local volume requires node affinity",
                ));
            }
        }
        e
    });
    one2(spec.storageos.is_some(), "storageos", &mut errs, &|| {
        let mut e = Vec::new();
        if let Some(so) = &spec.storageos {
            let p = path.child("storageos");
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
                if empty(&r.name) {
                    e.push(FieldError::required(
                        &p.child("secretRef").child("name"),
                        "",
                    ));
                }
                if empty(&r.namespace) {
                    e.push(FieldError::required(
                        &p.child("secretRef").child("namespace"),
                        "",
                    ));
                }
            }
        }
        e
    });
    one2(spec.csi.is_some(), "csi", &mut errs, &|| {
        let mut e = Vec::new();
        if let Some(c) = &spec.csi {
            let p = path.child("csi");
            e.extend(validate_csi_driver_name(&c.driver, &p.child("driver")));
            req(&c.volume_handle, &p, "volumeHandle", &mut e);
            for (r, name) in [
                (
                    &c.controller_publish_secret_ref,
                    "controllerPublishSecretRef",
                ),
                (&c.controller_expand_secret_ref, "controllerExpandSecretRef"),
                (&c.node_publish_secret_ref, "nodePublishSecretRef"),
                (&c.node_expand_secret_ref, "nodeExpandSecretRef"),
            ] {
                if let Some(r) = r {
                    e.extend(validate_pv_secret_ref(r, &p.child(name)));
                }
            }
        }
        e
    });
    if n2 == 0 {
        errs.push(FieldError::required(path, "must specify a volume type"));
    }
    if let Some(h) = &spec.host_path {
        let cleaned = h.path.trim_end_matches('/');
        if (cleaned.is_empty() && h.path.starts_with('/')) && rp == "Recycle" {
            errs.push(FieldError::forbidden(
                &path.child("persistentVolumeReclaimPolicy"),
                "may not be 'recycle' for a hostPath mount of '/'",
            ));
        }
    }
    let sc = s(&spec.storage_class_name);
    if !sc.is_empty() {
        errs.extend(msgs_invalid(
            &path.child("storageClassName"),
            sc,
            av::name_is_dns_subdomain(sc, false),
        ));
    }
    if let Some(m) = &spec.volume_mode {
        if m != "Block" && m != "Filesystem" {
            errs.push(FieldError::not_supported(
                &path.child("volumeMode"),
                m.as_str(),
                &["Block", "Filesystem"],
            ));
        }
    }
    errs
}

fn default_pv_sources(spec: &mut PersistentVolumeSpec) {
    if let Some(h) = &mut spec.host_path {
        if h.type_.is_none() {
            h.type_ = Some(String::new());
        }
    }
    if let Some(r) = &mut spec.rbd {
        default_str(&mut r.pool, "rbd");
        default_str(&mut r.user, "admin");
        default_str(&mut r.keyring, "/etc/ceph/keyring");
    }
    if let Some(i) = &mut spec.iscsi {
        default_str(&mut i.iscsi_interface, "default");
    }
    if let Some(a) = &mut spec.azure_disk {
        default_str(&mut a.caching_mode, "ReadWrite");
        default_str(&mut a.fs_type, "ext4");
        a.read_only.get_or_insert(false);
        default_str(&mut a.kind, "Shared");
    }
    if let Some(sio) = &mut spec.scale_io {
        default_str(&mut sio.storage_mode, "ThinProvisioned");
        default_str(&mut sio.fs_type, "xfs");
    }
}

/// The persistent volume source fields of a PV spec, as a JSON object.
fn pv_source(spec: &PersistentVolumeSpec) -> Value {
    let mut v = normalize(to_json(spec));
    if let Value::Object(m) = &mut v {
        for k in [
            "accessModes",
            "capacity",
            "claimRef",
            "mountOptions",
            "nodeAffinity",
            "persistentVolumeReclaimPolicy",
            "storageClassName",
            "volumeAttributesClassName",
            "volumeMode",
        ] {
            m.remove(k);
        }
    }
    v
}

impl KindRules for PersistentVolume {
    fn default(&mut self) {
        let st = self.status.get_or_insert_with(Default::default);
        default_str(&mut st.phase, "Pending");
        let spec = self.spec.get_or_insert_with(Default::default);
        default_str(&mut spec.persistent_volume_reclaim_policy, "Retain");
        if spec.volume_mode.is_none() {
            spec.volume_mode = Some("Filesystem".into());
        }
        default_resource_list(&mut spec.capacity);
        default_pv_sources(spec);
    }

    fn prepare_for_create(&mut self) {
        self.status = Some(PersistentVolumeStatus {
            phase: Some("Pending".into()),
            last_phase_transition_time: Some(now()),
            ..Default::default()
        });
    }

    fn prepare_for_update(&mut self, old: &Self) {
        self.status = old.status.clone();
    }

    fn prepare_for_status_update(&mut self, old: &Self) {
        self.spec = old.spec.clone();
        let nphase = self.status.as_ref().and_then(|s| s.phase.clone());
        let ophase = old.status.as_ref().and_then(|s| s.phase.clone());
        if nphase != ophase {
            let old_time = old
                .status
                .as_ref()
                .and_then(|s| s.last_phase_transition_time.clone());
            if let Some(st) = &mut self.status {
                if st.last_phase_transition_time.is_none()
                    || st.last_phase_transition_time == old_time
                {
                    st.last_phase_transition_time = Some(now());
                }
            }
        }
    }

    fn validate(&self) -> Vec<FieldError> {
        let mut errs = validate_kube_finalizers(&self.metadata);
        errs.extend(validate_pv_spec(
            &self.spec.clone().unwrap_or_default(),
            s(&self.metadata.name),
            &Path::new("spec"),
        ));
        errs
    }

    fn validate_update(&self, old: &Self) -> Vec<FieldError> {
        let mut errs = self.validate();
        let mut new_spec = self.spec.clone().unwrap_or_default();
        let old_spec = old.spec.clone().unwrap_or_default();
        if let (Some(oc), Some(nc)) = (&old_spec.csi, &mut new_spec.csi) {
            if oc.controller_expand_secret_ref.is_none()
                && nc.controller_expand_secret_ref.is_some()
            {
                nc.controller_expand_secret_ref = None;
            }
        }
        if pv_source(&new_spec) != pv_source(&old_spec) {
            let diff = simple_diff(
                "core.PersistentVolumeSource",
                &pv_source(&old_spec),
                &pv_source(&new_spec),
            );
            errs.push(FieldError::forbidden(
                &Path::new("spec").child("persistentvolumesource"),
                format!("spec.persistentvolumesource is immutable after creation\n{diff}"),
            ));
        }
        errs.extend(crate::util::immutable(
            to_json(&new_spec.volume_mode),
            to_json(&old_spec.volume_mode),
            &Path::new("volumeMode"),
        ));
        if old_spec.node_affinity.is_some()
            && !semantic_eq(&new_spec.node_affinity, &old_spec.node_affinity)
        {
            errs.push(FieldError::invalid(
                &Path::new("nodeAffinity"),
                to_json(&new_spec.node_affinity),
                "field is immutable, except for updating from beta label to GA",
            ));
        }
        errs
    }

    fn validate_status_update(&self, _old: &Self) -> Vec<FieldError> {
        let mut errs = validate_kube_finalizers(&self.metadata);
        if empty(&self.metadata.resource_version) {
            errs.push(FieldError::required(&Path::new("resourceVersion"), ""));
        }
        errs
    }
}

impl KindRules for PersistentVolumeClaim {
    fn default(&mut self) {
        let st = self.status.get_or_insert_with(Default::default);
        default_str(&mut st.phase, "Pending");
        default_resource_list(&mut st.capacity);
        default_resource_list(&mut st.allocated_resources);
        let spec = self.spec.get_or_insert_with(Default::default);
        if spec.volume_mode.is_none() {
            spec.volume_mode = Some("Filesystem".into());
        }
        if let Some(r) = &mut spec.resources {
            default_resource_list(&mut r.limits);
            default_resource_list(&mut r.requests);
        }
    }

    fn prepare_for_create(&mut self) {
        // The strategy resets the status; the phase reads back as Pending
        // because defaulting runs again on every decode.
        self.status = Some(PersistentVolumeClaimStatus {
            phase: Some("Pending".into()),
            ..Default::default()
        });
    }

    fn prepare_for_update(&mut self, old: &Self) {
        self.status = old.status.clone();
    }

    fn prepare_for_status_update(&mut self, old: &Self) {
        self.spec = old.spec.clone();
    }

    fn validate(&self) -> Vec<FieldError> {
        let mut errs = validate_kube_finalizers(&self.metadata);
        errs.extend(validate_pvc_spec(
            &self.spec.clone().unwrap_or_default(),
            &Path::new("spec"),
            false,
        ));
        errs
    }

    fn validate_update(&self, old: &Self) -> Vec<FieldError> {
        let mut errs = self.validate();
        let mut new_spec = self.spec.clone().unwrap_or_default();
        let mut old_spec = old.spec.clone().unwrap_or_default();
        if empty(&old_spec.volume_name) {
            old_spec.volume_name = new_spec.volume_name.clone();
        }
        let beta = "volume.beta.kubernetes.io/storage-class";
        let old_ann = old.metadata.annotations.clone().unwrap_or_default();
        let new_ann = self.metadata.annotations.clone().unwrap_or_default();
        let upgrade_from_annotation = old_ann.contains_key(beta)
            && old_spec.storage_class_name.is_none()
            && new_spec.storage_class_name.as_ref() == old_ann.get(beta)
            && new_ann
                .get(beta)
                .is_none_or(|v| Some(v) == old_ann.get(beta));
        if upgrade_from_annotation {
            new_spec.storage_class_name = None;
        } else {
            let nv = new_ann.get(beta).cloned().unwrap_or_default();
            let ov = old_ann.get(beta).cloned().unwrap_or_default();
            if nv != ov {
                errs.push(FieldError::invalid(
                    &Path::new("metadata").child("annotations").child(beta),
                    nv.as_str(),
                    av::FIELD_IMMUTABLE_ERROR_MSG,
                ));
            }
            let from_nil = new_spec.storage_class_name.is_some()
                && old_spec.storage_class_name.is_none()
                && old_ann
                    .get(beta)
                    .is_none_or(|v| Some(v) == new_spec.storage_class_name.as_ref());
            if from_nil {
                new_spec.storage_class_name = old_spec.storage_class_name.clone();
            }
        }
        let bound = self.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound");
        if bound {
            let old_storage = old_spec
                .resources
                .as_ref()
                .and_then(|r| r.requests.as_ref())
                .and_then(|r| r.get("storage"))
                .cloned();
            if let Some(reqs) = new_spec
                .resources
                .as_mut()
                .and_then(|r| r.requests.as_mut())
            {
                match old_storage {
                    Some(q) => {
                        reqs.insert("storage".into(), q);
                    }
                    None => {
                        reqs.remove("storage");
                    }
                }
            }
        }
        if !semantic_eq(&new_spec, &old_spec) {
            let diff = simple_diff("core.PersistentVolumeClaimSpec", &old_spec, &new_spec);
            errs.push(FieldError::forbidden(
                &Path::new("spec"),
                format!("spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims\n{diff}"),
            ));
        }
        let storage = |pvc: &PersistentVolumeClaim| {
            pvc.spec
                .as_ref()
                .and_then(|s| s.resources.as_ref())
                .and_then(|r| r.requests.as_ref())
                .and_then(|r| r.get("storage"))
                .and_then(|q| apimachinery::Quantity::parse(&q.0).ok())
                .unwrap_or_else(|| apimachinery::Quantity::new(0, apimachinery::Format::DecimalSI))
        };
        let new_size = storage(self);
        let old_size = storage(old);
        if new_size < old_size {
            let status_size = old
                .status
                .as_ref()
                .and_then(|s| s.capacity.as_ref())
                .and_then(|c| c.get("storage"))
                .and_then(|q| apimachinery::Quantity::parse(&q.0).ok())
                .unwrap_or_else(|| apimachinery::Quantity::new(0, apimachinery::Format::DecimalSI));
            if new_size <= status_size {
                errs.push(FieldError::forbidden(
                    &Path::new("spec")
                        .child("resources")
                        .child("requests")
                        .child("storage"),
                    "field can not be less than status.capacity",
                ));
            }
        }
        let nm = self.spec.as_ref().and_then(|s| s.volume_mode.clone());
        let om = old.spec.as_ref().and_then(|s| s.volume_mode.clone());
        errs.extend(crate::util::immutable(
            to_json(&nm),
            to_json(&om),
            &Path::new("volumeMode"),
        ));
        errs
    }

    fn validate_status_update(&self, _old: &Self) -> Vec<FieldError> {
        let mut errs = validate_kube_finalizers(&self.metadata);
        if empty(&self.metadata.resource_version) {
            errs.push(FieldError::required(&Path::new("resourceVersion"), ""));
        }
        if self
            .spec
            .as_ref()
            .is_none_or(|s| list(&s.access_modes).is_empty())
        {
            errs.push(FieldError::required(
                &Path::new("Spec").child("accessModes"),
                "",
            ));
        }
        let st = self.status.clone().unwrap_or_default();
        for (k, q) in st.capacity.iter().flatten() {
            let p = Path::new("status").child("capacity").key(k);
            if let Ok(v) = parse_q(q, &p) {
                errs.extend(validate_basic_resource(&v, &p));
            }
        }
        let ap = Path::new("status").child("allocatedResources");
        for (k, q) in st.allocated_resources.iter().flatten() {
            let p = ap.key(k);
            let key_errs = msgs_invalid(&ap, k, av::is_qualified_name(k));
            if !key_errs.is_empty() {
                errs.extend(key_errs);
                continue;
            }
            if crate::core::resources::is_native(k) && k != "storage" {
                errs.push(FieldError::not_supported(&ap, k.as_str(), &["storage"]));
                continue;
            }
            if let Ok(v) = parse_q(q, &p) {
                let basic = validate_basic_resource(&v, &p);
                if basic.is_empty() {
                    errs.extend(validate_quantity_value("storage", &v, &p));
                } else {
                    errs.extend(basic);
                }
            }
        }
        errs
    }
}
