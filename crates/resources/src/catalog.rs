//! The catalog of served resources: what discovery says about each one (names, scope,
//! verbs, short names, categories, subresources) and how the apiserver backs it.

use crate::strategy::{GenericStrategy, NameRule, Strategy};
use crate::typed::TypedStrategy;
use k8s_openapi::api;

/// Namespaced or cluster scoped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Objects live in a namespace.
    Namespaced,
    /// Objects are global.
    Cluster,
}

/// How a resource is backed.
#[derive(Clone, Copy)]
pub enum Backing {
    /// Objects are stored under `/registry/<storage>/`, in the version
    /// `storage_version` of the group (objects of other versions are converted).
    Stored {
        /// Storage key segment.
        storage: &'static str,
        /// The group/version objects are stored in.
        storage_version: (&'static str, &'static str),
        /// The per-kind rules.
        strategy: &'static dyn Strategy,
    },
    /// Create-only review resources answered on the spot (access reviews, ...).
    Virtual,
    /// Read-only resources computed on request (componentstatuses).
    Computed,
}

/// A subresource (`pods/status`, `deployments/scale`, ...).
#[derive(Clone, Copy, Debug)]
pub struct SubresourceInfo {
    /// The subresource name (`status`).
    pub name: &'static str,
    /// Kind exchanged at this endpoint.
    pub kind: &'static str,
    /// Group of that kind ("" for core) when it differs from the resource's.
    pub group: Option<&'static str>,
    /// Version of that kind when it differs.
    pub version: Option<&'static str>,
    /// Verbs allowed.
    pub verbs: &'static [&'static str],
}

/// One served resource in one group version.
#[derive(Clone, Copy)]
pub struct ResourceInfo {
    /// API group ("" for core).
    pub group: &'static str,
    /// API version.
    pub version: &'static str,
    /// Kind.
    pub kind: &'static str,
    /// Plural resource name (the URL segment).
    pub plural: &'static str,
    /// Singular name.
    pub singular: &'static str,
    /// Scope.
    pub scope: Scope,
    /// Verbs allowed on the resource.
    pub verbs: &'static [&'static str],
    /// Short names (`po`).
    pub short_names: &'static [&'static str],
    /// Categories (`all`).
    pub categories: &'static [&'static str],
    /// Subresources.
    pub subresources: &'static [SubresourceInfo],
    /// How the resource is backed.
    pub backing: Backing,
}

impl ResourceInfo {
    /// `apiVersion` of this resource's objects.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// Whether objects live in namespaces.
    pub fn namespaced(&self) -> bool {
        self.scope == Scope::Namespaced
    }

    /// The subresource called `name`.
    pub fn subresource(&self, name: &str) -> Option<&'static SubresourceInfo> {
        self.subresources.iter().find(|s| s.name == name)
    }

    /// Whether the verb is allowed on the resource itself.
    pub fn allows(&self, verb: &str) -> bool {
        self.verbs.contains(&verb)
    }

    /// `group/resource` as upstream names it in messages (`deployments.apps`, `pods`).
    pub fn group_resource(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_string()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// The strategy of a stored resource.
    pub fn strategy(&self) -> Option<&'static dyn Strategy> {
        match self.backing {
            Backing::Stored { strategy, .. } => Some(strategy),
            _ => None,
        }
    }
}

const CRUD: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];
const NO_DELETECOLLECTION: &[&str] = &[
    "create", "delete", "get", "list", "patch", "update", "watch",
];
const CREATE: &[&str] = &["create"];
const GET_PATCH_UPDATE: &[&str] = &["get", "patch", "update"];
const GET_LIST: &[&str] = &["get", "list"];

const fn sub(
    name: &'static str,
    kind: &'static str,
    verbs: &'static [&'static str],
) -> SubresourceInfo {
    SubresourceInfo {
        name,
        kind,
        group: None,
        version: None,
        verbs,
    }
}

const STATUS_ONLY: &[SubresourceInfo] = &[sub("status", "", GET_PATCH_UPDATE)];
const SCALE: SubresourceInfo = SubresourceInfo {
    name: "scale",
    kind: "Scale",
    group: Some("autoscaling"),
    version: Some("v1"),
    verbs: GET_PATCH_UPDATE,
};
const SCALE_STATUS: &[SubresourceInfo] = &[SCALE, sub("status", "", GET_PATCH_UPDATE)];

const POD_SUBRESOURCES: &[SubresourceInfo] = &[
    sub("attach", "PodAttachOptions", &["create", "get"]),
    sub("binding", "Binding", CREATE),
    sub("ephemeralcontainers", "", GET_PATCH_UPDATE),
    SubresourceInfo {
        name: "eviction",
        kind: "Eviction",
        group: Some("policy"),
        version: Some("v1"),
        verbs: CREATE,
    },
    sub("exec", "PodExecOptions", &["create", "get"]),
    sub("log", "Pod", &["get"]),
    sub("portforward", "PodPortForwardOptions", &["create", "get"]),
    sub(
        "proxy",
        "PodProxyOptions",
        &["create", "delete", "get", "patch", "update"],
    ),
    sub("resize", "", GET_PATCH_UPDATE),
    sub("status", "", GET_PATCH_UPDATE),
];

/// Shorthand for a stored resource whose strategy adds typed rules of `$ty`.
macro_rules! typed {
    (
        $ty:ty, meta: $meta:expr;
        group: $group:expr, version: $version:expr, kind: $kind:expr, plural: $plural:expr,
        singular: $singular:expr, scope: $scope:ident, verbs: $verbs:expr,
        short: $short:expr, categories: $cats:expr, subresources: $subs:expr,
        storage: $storage:expr, storage_version: $sv:expr,
        names: $names:ident, status: $status:expr, generation: $gen:expr,
        create_on_update: $cou:expr, fields: $fields:expr
    ) => {
        ResourceInfo {
            group: $group,
            version: $version,
            kind: $kind,
            plural: $plural,
            singular: $singular,
            scope: Scope::$scope,
            verbs: $verbs,
            short_names: $short,
            categories: $cats,
            subresources: $subs,
            backing: Backing::Stored {
                storage: $storage,
                storage_version: $sv,
                strategy: &TypedStrategy::<$ty>::new(
                    GenericStrategy {
                        kind: $kind,
                        namespaced: matches!(Scope::$scope, Scope::Namespaced),
                        names: NameRule::$names,
                        has_status: $status,
                        generation: $gen,
                        create_on_update: $cou,
                        fields: $fields,
                        field_labels: &[],
                    },
                    $meta,
                ),
            },
        }
    };
}

type Fields = &'static [(&'static str, &'static [&'static str])];

const POD_FIELDS: Fields = &[
    ("spec.nodeName", &["spec", "nodeName"]),
    ("spec.restartPolicy", &["spec", "restartPolicy"]),
    ("spec.schedulerName", &["spec", "schedulerName"]),
    ("spec.serviceAccountName", &["spec", "serviceAccountName"]),
    ("spec.hostNetwork", &["spec", "hostNetwork"]),
    ("status.phase", &["status", "phase"]),
    ("status.podIP", &["status", "podIP"]),
    ("status.nominatedNodeName", &["status", "nominatedNodeName"]),
];
const EVENT_FIELDS: Fields = &[
    ("involvedObject.kind", &["involvedObject", "kind"]),
    ("involvedObject.namespace", &["involvedObject", "namespace"]),
    ("involvedObject.name", &["involvedObject", "name"]),
    ("involvedObject.uid", &["involvedObject", "uid"]),
    (
        "involvedObject.apiVersion",
        &["involvedObject", "apiVersion"],
    ),
    (
        "involvedObject.resourceVersion",
        &["involvedObject", "resourceVersion"],
    ),
    ("involvedObject.fieldPath", &["involvedObject", "fieldPath"]),
    ("reason", &["reason"]),
    ("reportingComponent", &["reportingComponent"]),
    ("source", &["source", "component"]),
    ("type", &["type"]),
];

static CATALOG: &[ResourceInfo] = &[
    // ---- core/v1 ----
    ResourceInfo {
        group: "",
        version: "v1",
        kind: "Binding",
        plural: "bindings",
        singular: "binding",
        scope: Scope::Namespaced,
        verbs: CREATE,
        short_names: &[],
        categories: &[],
        subresources: &[],
        backing: Backing::Virtual,
    },
    ResourceInfo {
        group: "",
        version: "v1",
        kind: "ComponentStatus",
        plural: "componentstatuses",
        singular: "componentstatus",
        scope: Scope::Cluster,
        verbs: GET_LIST,
        short_names: &["cs"],
        categories: &[],
        subresources: &[],
        backing: Backing::Computed,
    },
    typed!(api::core::v1::ConfigMap, meta: true;
        group: "", version: "v1", kind: "ConfigMap", plural: "configmaps", singular: "configmap",
        scope: Namespaced, verbs: CRUD, short: &["cm"], categories: &[], subresources: &[],
        storage: "configmaps", storage_version: ("", "v1"), names: Subdomain, status: false,
        generation: false, create_on_update: false, fields: &[]),
    typed!(api::core::v1::Endpoints, meta: true;
        group: "", version: "v1", kind: "Endpoints", plural: "endpoints", singular: "endpoints",
        scope: Namespaced, verbs: CRUD, short: &["ep"], categories: &[], subresources: &[],
        storage: "endpoints", storage_version: ("", "v1"), names: Subdomain, status: false,
        generation: false, create_on_update: true, fields: &[]),
    typed!(api::core::v1::Event, meta: false;
        group: "", version: "v1", kind: "Event", plural: "events", singular: "event",
        scope: Namespaced, verbs: CRUD, short: &["ev"], categories: &[], subresources: &[],
        storage: "events", storage_version: ("", "v1"), names: PathSegment, status: false,
        generation: false, create_on_update: true, fields: EVENT_FIELDS),
    typed!(api::core::v1::LimitRange, meta: true;
        group: "", version: "v1", kind: "LimitRange", plural: "limitranges", singular: "limitrange",
        scope: Namespaced, verbs: CRUD, short: &["limits"], categories: &[], subresources: &[],
        storage: "limitranges", storage_version: ("", "v1"), names: Subdomain, status: false,
        generation: false, create_on_update: false, fields: &[]),
    typed!(api::core::v1::Namespace, meta: true;
        group: "", version: "v1", kind: "Namespace", plural: "namespaces", singular: "namespace",
        scope: Cluster, verbs: NO_DELETECOLLECTION, short: &["ns"], categories: &[],
        subresources: &[sub("finalize", "", &["update"]), sub("status", "", GET_PATCH_UPDATE)],
        storage: "namespaces", storage_version: ("", "v1"), names: Label, status: true,
        generation: false, create_on_update: false, fields: &[("status.phase", &["status", "phase"])]),
    typed!(api::core::v1::Node, meta: true;
        group: "", version: "v1", kind: "Node", plural: "nodes", singular: "node",
        scope: Cluster, verbs: CRUD, short: &["no"], categories: &[],
        subresources: &[sub("proxy", "NodeProxyOptions", &["create", "delete", "get", "patch", "update"]),
            sub("status", "", GET_PATCH_UPDATE)],
        storage: "nodes", storage_version: ("", "v1"), names: Subdomain, status: true,
        generation: false, create_on_update: false,
        fields: &[("spec.unschedulable", &["spec", "unschedulable"])]),
    typed!(api::core::v1::PersistentVolumeClaim, meta: true;
        group: "", version: "v1", kind: "PersistentVolumeClaim", plural: "persistentvolumeclaims",
        singular: "persistentvolumeclaim", scope: Namespaced, verbs: CRUD, short: &["pvc"],
        categories: &[], subresources: STATUS_ONLY, storage: "persistentvolumeclaims",
        storage_version: ("", "v1"), names: Subdomain, status: true, generation: false,
        create_on_update: false, fields: &[]),
    typed!(api::core::v1::PersistentVolume, meta: true;
        group: "", version: "v1", kind: "PersistentVolume", plural: "persistentvolumes",
        singular: "persistentvolume", scope: Cluster, verbs: CRUD, short: &["pv"],
        categories: &[], subresources: STATUS_ONLY, storage: "persistentvolumes",
        storage_version: ("", "v1"), names: Subdomain, status: true, generation: false,
        create_on_update: false, fields: &[]),
    typed!(api::core::v1::Pod, meta: true;
        group: "", version: "v1", kind: "Pod", plural: "pods", singular: "pod",
        scope: Namespaced, verbs: CRUD, short: &["po"], categories: &["all"],
        subresources: POD_SUBRESOURCES, storage: "pods", storage_version: ("", "v1"),
        names: Subdomain, status: true, generation: false, create_on_update: false,
        fields: POD_FIELDS),
    typed!(api::core::v1::PodTemplate, meta: true;
        group: "", version: "v1", kind: "PodTemplate", plural: "podtemplates", singular: "podtemplate",
        scope: Namespaced, verbs: CRUD, short: &[], categories: &[], subresources: &[],
        storage: "podtemplates", storage_version: ("", "v1"), names: Subdomain, status: false,
        generation: false, create_on_update: false, fields: &[]),
    typed!(api::core::v1::ReplicationController, meta: true;
        group: "", version: "v1", kind: "ReplicationController", plural: "replicationcontrollers",
        singular: "replicationcontroller", scope: Namespaced, verbs: CRUD, short: &["rc"],
        categories: &["all"], subresources: SCALE_STATUS, storage: "replicationcontrollers",
        storage_version: ("", "v1"), names: Subdomain, status: true, generation: true,
        create_on_update: false, fields: &[("status.replicas", &["status", "replicas"])]),
    typed!(api::core::v1::ResourceQuota, meta: true;
        group: "", version: "v1", kind: "ResourceQuota", plural: "resourcequotas",
        singular: "resourcequota", scope: Namespaced, verbs: CRUD, short: &["quota"],
        categories: &[], subresources: STATUS_ONLY, storage: "resourcequotas",
        storage_version: ("", "v1"), names: Subdomain, status: true, generation: false,
        create_on_update: false, fields: &[]),
    typed!(api::core::v1::Secret, meta: true;
        group: "", version: "v1", kind: "Secret", plural: "secrets", singular: "secret",
        scope: Namespaced, verbs: CRUD, short: &[], categories: &[], subresources: &[],
        storage: "secrets", storage_version: ("", "v1"), names: Subdomain, status: false,
        generation: false, create_on_update: false, fields: &[("type", &["type"])]),
    typed!(api::core::v1::ServiceAccount, meta: true;
        group: "", version: "v1", kind: "ServiceAccount", plural: "serviceaccounts",
        singular: "serviceaccount", scope: Namespaced, verbs: CRUD, short: &["sa"],
        categories: &[], subresources: &[SubresourceInfo { name: "token", kind: "TokenRequest",
            group: Some("authentication.k8s.io"), version: Some("v1"), verbs: CREATE }],
        storage: "serviceaccounts", storage_version: ("", "v1"), names: Subdomain, status: false,
        generation: false, create_on_update: false, fields: &[]),
    typed!(api::core::v1::Service, meta: true;
        group: "", version: "v1", kind: "Service", plural: "services", singular: "service",
        scope: Namespaced, verbs: CRUD, short: &["svc"], categories: &["all"],
        subresources: &[sub("proxy", "ServiceProxyOptions", &["create", "delete", "get", "patch", "update"]),
            sub("status", "", GET_PATCH_UPDATE)],
        storage: "services", storage_version: ("", "v1"), names: Dns1035Label, status: true,
        generation: false, create_on_update: false,
        fields: &[("spec.clusterIP", &["spec", "clusterIP"]), ("spec.type", &["spec", "type"])]),
    // ---- apps/v1 ----
    typed!(api::apps::v1::ControllerRevision, meta: true;
        group: "apps", version: "v1", kind: "ControllerRevision", plural: "controllerrevisions",
        singular: "controllerrevision", scope: Namespaced, verbs: CRUD, short: &[], categories: &[],
        subresources: &[], storage: "controllerrevisions", storage_version: ("apps", "v1"),
        names: Subdomain, status: false, generation: false, create_on_update: false, fields: &[]),
    typed!(api::apps::v1::DaemonSet, meta: true;
        group: "apps", version: "v1", kind: "DaemonSet", plural: "daemonsets", singular: "daemonset",
        scope: Namespaced, verbs: CRUD, short: &["ds"], categories: &["all"], subresources: STATUS_ONLY,
        storage: "daemonsets", storage_version: ("apps", "v1"), names: Subdomain, status: true,
        generation: true, create_on_update: false, fields: &[]),
    typed!(api::apps::v1::Deployment, meta: true;
        group: "apps", version: "v1", kind: "Deployment", plural: "deployments", singular: "deployment",
        scope: Namespaced, verbs: CRUD, short: &["deploy"], categories: &["all"], subresources: SCALE_STATUS,
        storage: "deployments", storage_version: ("apps", "v1"), names: Subdomain, status: true,
        generation: true, create_on_update: false, fields: &[]),
    typed!(api::apps::v1::ReplicaSet, meta: true;
        group: "apps", version: "v1", kind: "ReplicaSet", plural: "replicasets", singular: "replicaset",
        scope: Namespaced, verbs: CRUD, short: &["rs"], categories: &["all"], subresources: SCALE_STATUS,
        storage: "replicasets", storage_version: ("apps", "v1"), names: Subdomain, status: true,
        generation: true, create_on_update: false,
        fields: &[("status.replicas", &["status", "replicas"])]),
    typed!(api::apps::v1::StatefulSet, meta: true;
        group: "apps", version: "v1", kind: "StatefulSet", plural: "statefulsets", singular: "statefulset",
        scope: Namespaced, verbs: CRUD, short: &["sts"], categories: &["all"], subresources: SCALE_STATUS,
        storage: "statefulsets", storage_version: ("apps", "v1"), names: Subdomain, status: true,
        generation: true, create_on_update: false, fields: &[]),
    // ---- batch/v1 ----
    typed!(api::batch::v1::CronJob, meta: true;
        group: "batch", version: "v1", kind: "CronJob", plural: "cronjobs", singular: "cronjob",
        scope: Namespaced, verbs: CRUD, short: &["cj"], categories: &["all"], subresources: STATUS_ONLY,
        storage: "cronjobs", storage_version: ("batch", "v1"), names: Subdomain, status: true,
        generation: true, create_on_update: false, fields: &[]),
    typed!(api::batch::v1::Job, meta: true;
        group: "batch", version: "v1", kind: "Job", plural: "jobs", singular: "job",
        scope: Namespaced, verbs: CRUD, short: &[], categories: &["all"], subresources: STATUS_ONLY,
        storage: "jobs", storage_version: ("batch", "v1"), names: Subdomain, status: true,
        generation: true, create_on_update: false,
        fields: &[("status.successful", &["status", "succeeded"])]),
    // ---- autoscaling ----
    typed!(api::autoscaling::v2::HorizontalPodAutoscaler, meta: true;
        group: "autoscaling", version: "v2", kind: "HorizontalPodAutoscaler",
        plural: "horizontalpodautoscalers", singular: "horizontalpodautoscaler", scope: Namespaced,
        verbs: CRUD, short: &["hpa"], categories: &["all"], subresources: STATUS_ONLY,
        storage: "horizontalpodautoscalers", storage_version: ("autoscaling", "v2"), names: Subdomain,
        status: true, generation: false, create_on_update: false, fields: &[]),
    // Served by conversion: writes use the storage version's (v2) strategy.
    typed!(api::autoscaling::v2::HorizontalPodAutoscaler, meta: true;
        group: "autoscaling", version: "v1", kind: "HorizontalPodAutoscaler",
        plural: "horizontalpodautoscalers", singular: "horizontalpodautoscaler", scope: Namespaced,
        verbs: CRUD, short: &["hpa"], categories: &["all"], subresources: STATUS_ONLY,
        storage: "horizontalpodautoscalers", storage_version: ("autoscaling", "v2"), names: Subdomain,
        status: true, generation: false, create_on_update: false, fields: &[]),
    // ---- certificates.k8s.io/v1 ----
    typed!(api::certificates::v1::CertificateSigningRequest, meta: true;
        group: "certificates.k8s.io", version: "v1", kind: "CertificateSigningRequest",
        plural: "certificatesigningrequests", singular: "certificatesigningrequest", scope: Cluster,
        verbs: CRUD, short: &["csr"], categories: &[],
        subresources: &[sub("approval", "", GET_PATCH_UPDATE), sub("status", "", GET_PATCH_UPDATE)],
        storage: "certificatesigningrequests", storage_version: ("certificates.k8s.io", "v1"),
        names: PathSegment, status: true, generation: false, create_on_update: false,
        fields: &[("spec.signerName", &["spec", "signerName"])]),
    // ---- coordination.k8s.io/v1 ----
    typed!(api::coordination::v1::Lease, meta: true;
        group: "coordination.k8s.io", version: "v1", kind: "Lease", plural: "leases", singular: "lease",
        scope: Namespaced, verbs: CRUD, short: &[], categories: &[], subresources: &[],
        storage: "leases", storage_version: ("coordination.k8s.io", "v1"), names: Subdomain,
        status: false, generation: false, create_on_update: true, fields: &[]),
    // ---- discovery.k8s.io/v1 ----
    typed!(api::discovery::v1::EndpointSlice, meta: true;
        group: "discovery.k8s.io", version: "v1", kind: "EndpointSlice", plural: "endpointslices",
        singular: "endpointslice", scope: Namespaced, verbs: CRUD, short: &[], categories: &[],
        subresources: &[], storage: "endpointslices", storage_version: ("discovery.k8s.io", "v1"),
        names: Subdomain, status: false, generation: true, create_on_update: false, fields: &[]),
    // ---- events.k8s.io/v1 (the same objects as core events) ----
    // Served by conversion: writes use the storage version's (core Event) strategy.
    typed!(api::core::v1::Event, meta: false;
        group: "events.k8s.io", version: "v1", kind: "Event", plural: "events", singular: "event",
        scope: Namespaced, verbs: CRUD, short: &["ev"], categories: &[], subresources: &[],
        storage: "events", storage_version: ("", "v1"), names: PathSegment, status: false,
        generation: false, create_on_update: true, fields: &[]),
    // ---- policy/v1 ----
    typed!(api::policy::v1::PodDisruptionBudget, meta: true;
        group: "policy", version: "v1", kind: "PodDisruptionBudget", plural: "poddisruptionbudgets",
        singular: "poddisruptionbudget", scope: Namespaced, verbs: CRUD, short: &["pdb"],
        categories: &[], subresources: STATUS_ONLY, storage: "poddisruptionbudgets",
        storage_version: ("policy", "v1"), names: Subdomain, status: true, generation: true,
        create_on_update: false, fields: &[]),
    // ---- networking.k8s.io/v1 ----
    typed!(api::networking::v1::IngressClass, meta: true;
        group: "networking.k8s.io", version: "v1", kind: "IngressClass", plural: "ingressclasses",
        singular: "ingressclass", scope: Cluster, verbs: CRUD, short: &[], categories: &[],
        subresources: &[], storage: "ingressclasses", storage_version: ("networking.k8s.io", "v1"),
        names: Subdomain, status: false, generation: false, create_on_update: false, fields: &[]),
    typed!(api::networking::v1::Ingress, meta: true;
        group: "networking.k8s.io", version: "v1", kind: "Ingress", plural: "ingresses",
        singular: "ingress", scope: Namespaced, verbs: CRUD, short: &["ing"], categories: &[],
        subresources: STATUS_ONLY, storage: "ingresses", storage_version: ("networking.k8s.io", "v1"),
        names: Subdomain, status: true, generation: true, create_on_update: false, fields: &[]),
    typed!(api::networking::v1::NetworkPolicy, meta: true;
        group: "networking.k8s.io", version: "v1", kind: "NetworkPolicy", plural: "networkpolicies",
        singular: "networkpolicy", scope: Namespaced, verbs: CRUD, short: &["netpol"], categories: &[],
        subresources: &[], storage: "networkpolicies", storage_version: ("networking.k8s.io", "v1"),
        names: Subdomain, status: false, generation: true, create_on_update: false, fields: &[]),
    // ---- storage.k8s.io/v1 ----
    typed!(api::storage::v1::StorageClass, meta: true;
        group: "storage.k8s.io", version: "v1", kind: "StorageClass", plural: "storageclasses",
        singular: "storageclass", scope: Cluster, verbs: CRUD, short: &["sc"], categories: &[],
        subresources: &[], storage: "storageclasses", storage_version: ("storage.k8s.io", "v1"),
        names: Subdomain, status: false, generation: false, create_on_update: false, fields: &[]),
    // ---- scheduling.k8s.io/v1 ----
    typed!(api::scheduling::v1::PriorityClass, meta: true;
        group: "scheduling.k8s.io", version: "v1", kind: "PriorityClass", plural: "priorityclasses",
        singular: "priorityclass", scope: Cluster, verbs: CRUD, short: &["pc"], categories: &[],
        subresources: &[], storage: "priorityclasses", storage_version: ("scheduling.k8s.io", "v1"),
        names: Subdomain, status: false, generation: false, create_on_update: false, fields: &[]),
    // ---- authorization.k8s.io/v1 ----
    virtual_create(
        "authorization.k8s.io",
        "LocalSubjectAccessReview",
        "localsubjectaccessreviews",
        "localsubjectaccessreview",
        Scope::Namespaced,
    ),
    virtual_create(
        "authorization.k8s.io",
        "SelfSubjectAccessReview",
        "selfsubjectaccessreviews",
        "selfsubjectaccessreview",
        Scope::Cluster,
    ),
    virtual_create(
        "authorization.k8s.io",
        "SelfSubjectRulesReview",
        "selfsubjectrulesreviews",
        "selfsubjectrulesreview",
        Scope::Cluster,
    ),
    virtual_create(
        "authorization.k8s.io",
        "SubjectAccessReview",
        "subjectaccessreviews",
        "subjectaccessreview",
        Scope::Cluster,
    ),
    // ---- authentication.k8s.io/v1 ----
    virtual_create(
        "authentication.k8s.io",
        "SelfSubjectReview",
        "selfsubjectreviews",
        "selfsubjectreview",
        Scope::Cluster,
    ),
    virtual_create(
        "authentication.k8s.io",
        "TokenReview",
        "tokenreviews",
        "tokenreview",
        Scope::Cluster,
    ),
];

const fn virtual_create(
    group: &'static str,
    kind: &'static str,
    plural: &'static str,
    singular: &'static str,
    scope: Scope,
) -> ResourceInfo {
    ResourceInfo {
        group,
        version: "v1",
        kind,
        plural,
        singular,
        scope,
        verbs: CREATE,
        short_names: &[],
        categories: &[],
        subresources: &[],
        backing: Backing::Virtual,
    }
}

/// Every served resource, grouped by group version in discovery order.
pub fn catalog() -> &'static [ResourceInfo] {
    CATALOG
}

/// The resource `plural` in `group`/`version`.
pub fn find(group: &str, version: &str, plural: &str) -> Option<&'static ResourceInfo> {
    CATALOG
        .iter()
        .find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// The resource serving `kind` in `group`/`version`.
pub fn find_by_kind(group: &str, version: &str, kind: &str) -> Option<&'static ResourceInfo> {
    CATALOG
        .iter()
        .find(|r| r.group == group && r.version == version && r.kind == kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups() {
        let pods = find("", "v1", "pods").unwrap();
        assert_eq!(pods.kind, "Pod");
        assert!(pods.namespaced());
        assert_eq!(pods.short_names, &["po"]);
        assert!(pods.subresource("status").is_some());
        assert_eq!(
            find_by_kind("apps", "v1", "Deployment").unwrap().plural,
            "deployments"
        );
        assert_eq!(
            find("apps", "v1", "deployments").unwrap().group_resource(),
            "deployments.apps"
        );
        assert!(find("", "v1", "nope").is_none());
    }

    #[test]
    fn plural_names_unique_per_group_version() {
        let mut seen = std::collections::HashSet::new();
        for r in catalog() {
            assert!(
                seen.insert((r.group, r.version, r.plural)),
                "{} twice",
                r.plural
            );
        }
    }
}
