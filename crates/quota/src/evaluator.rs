//! The evaluators: for one kind of object, which quota resource names it is charged
//! against, what it charges ([`Evaluator::usage`]), which quota scopes it falls in,
//! which operations admission must check, and the constraints an object must meet
//! when a quota tracks certain resources (pods must then state requests or limits).
//!
//! Pods, services and persistentvolumeclaims have their own evaluators; every other
//! resource is charged one `count/<resource>.<group>` per object (configmaps, secrets,
//! replicationcontrollers and resourcequotas also under their legacy names).

use std::fmt;

use serde_json::Value;

use crate::pods;
use crate::resources::{count, ResourceList};
use crate::scopes::{QuotaView, ScopeSelectorRequirement};
use crate::QuotaError;

/// A group and resource (`deployments.apps`, `pods`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupResource {
    /// The API group (empty for core).
    pub group: String,
    /// The plural resource name.
    pub resource: String,
}

impl GroupResource {
    /// A group resource.
    pub fn new(group: &str, resource: &str) -> GroupResource {
        GroupResource {
            group: group.to_string(),
            resource: resource.to_string(),
        }
    }
}

impl fmt::Display for GroupResource {
    /// `resource` for the core group, `resource.group` otherwise.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.group.is_empty() {
            f.write_str(&self.resource)
        } else {
            write!(f, "{}.{}", self.resource, self.group)
        }
    }
}

/// The object count resource name of a group resource: `count/<resource>[.<group>]`.
pub fn object_count_name(gr: &GroupResource) -> String {
    format!("count/{gr}")
}

/// The group resource an object count name (`count/deployments.apps`) counts.
pub fn object_count_group_resource(name: &str) -> Option<GroupResource> {
    let rest = name.strip_prefix("count/")?;
    if rest.is_empty() {
        return None;
    }
    Some(match rest.split_once('.') {
        Some((resource, group)) => GroupResource::new(group, resource),
        None => GroupResource::new("", rest),
    })
}

/// An admission operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    /// A create.
    Create,
    /// An update.
    Update,
}

/// Names of the service resources.
pub const SERVICE_RESOURCES: &[&str] = &[
    "count/services",
    "services",
    "services.nodeports",
    "services.loadbalancers",
];

/// Names of the claim resources (also per storage class).
pub const PVC_RESOURCES: &[&str] = &["persistentvolumeclaims", "requests.storage"];

/// The infix of per-storage-class claim resources:
/// `<class>.storageclass.storage.k8s.io/<resource>`.
pub const STORAGE_CLASS_SUFFIX: &str = ".storageclass.storage.k8s.io/";

/// How usage of one resource is evaluated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Evaluator {
    /// Pods: compute resources, `pods`, `count/pods`, scopes.
    Pods,
    /// Services: `services`, `services.nodeports`, `services.loadbalancers`.
    Services,
    /// PersistentVolumeClaims: count and storage, also per storage class.
    PersistentVolumeClaims,
    /// One `count/<gr>` (and the legacy alias, if any) per object.
    ObjectCount {
        /// What is counted.
        group_resource: GroupResource,
        /// The legacy name also charged (`configmaps`, `secrets`, ...).
        alias: Option<&'static str>,
    },
}

const LEGACY_ALIASES: &[&str] = &[
    "configmaps",
    "resourcequotas",
    "replicationcontrollers",
    "secrets",
];

impl Evaluator {
    /// The evaluator of a resource: a dedicated one for pods, services and claims, an
    /// object count otherwise.
    pub fn for_resource(group: &str, resource: &str) -> Evaluator {
        match (group, resource) {
            ("", "pods") => Evaluator::Pods,
            ("", "services") => Evaluator::Services,
            ("", "persistentvolumeclaims") => Evaluator::PersistentVolumeClaims,
            _ => Evaluator::ObjectCount {
                group_resource: GroupResource::new(group, resource),
                alias: if group.is_empty() {
                    LEGACY_ALIASES.iter().copied().find(|a| *a == resource)
                } else {
                    None
                },
            },
        }
    }

    /// The evaluators the quota system always has (upstream's core registry): pods,
    /// services, claims, configmaps, resourcequotas, replicationcontrollers, secrets.
    pub fn core() -> Vec<Evaluator> {
        let mut v = vec![
            Evaluator::Pods,
            Evaluator::Services,
            Evaluator::PersistentVolumeClaims,
        ];
        v.extend(
            LEGACY_ALIASES
                .iter()
                .map(|r| Evaluator::for_resource("", r)),
        );
        v
    }

    /// What it evaluates.
    pub fn group_resource(&self) -> GroupResource {
        match self {
            Evaluator::Pods => GroupResource::new("", "pods"),
            Evaluator::Services => GroupResource::new("", "services"),
            Evaluator::PersistentVolumeClaims => GroupResource::new("", "persistentvolumeclaims"),
            Evaluator::ObjectCount { group_resource, .. } => group_resource.clone(),
        }
    }

    /// Whether admission must check the operation: creates always; updates of
    /// services (type changes) and claims (expansion).
    pub fn handles(&self, op: Operation) -> bool {
        match self {
            Evaluator::Services | Evaluator::PersistentVolumeClaims => true,
            Evaluator::Pods | Evaluator::ObjectCount { .. } => op == Operation::Create,
        }
    }

    /// The names among `input` this evaluator charges.
    pub fn matching_resources<S: AsRef<str>>(&self, input: &[S]) -> Vec<String> {
        let input = input.iter().map(AsRef::as_ref);
        match self {
            Evaluator::Pods => input
                .filter(|n| pods::is_pod_resource(n))
                .map(str::to_string)
                .collect(),
            Evaluator::Services => input
                .filter(|n| SERVICE_RESOURCES.contains(n))
                .map(str::to_string)
                .collect(),
            Evaluator::PersistentVolumeClaims => input
                .filter(|n| {
                    *n == "count/persistentvolumeclaims"
                        || PVC_RESOURCES.contains(n)
                        || PVC_RESOURCES
                            .iter()
                            .any(|r| n.ends_with(&format!("{STORAGE_CLASS_SUFFIX}{r}")))
                })
                .map(str::to_string)
                .collect(),
            Evaluator::ObjectCount {
                group_resource,
                alias,
            } => {
                let count_name = object_count_name(group_resource);
                input
                    .filter(|n| *n == count_name || Some(*n) == *alias)
                    .map(str::to_string)
                    .collect()
            }
        }
    }

    /// Whether `obj` falls in one scope requirement. Only pods have scopes: other
    /// objects match none.
    pub fn matches_scope(
        &self,
        req: &ScopeSelectorRequirement,
        obj: &Value,
    ) -> Result<bool, QuotaError> {
        match self {
            Evaluator::Pods => pods::matches_scope(req, obj),
            _ => Ok(false),
        }
    }

    /// Whether `obj` falls in every scope requirement.
    pub fn matches_scopes(
        &self,
        reqs: &[ScopeSelectorRequirement],
        obj: &Value,
    ) -> Result<bool, QuotaError> {
        for r in reqs {
            if !self.matches_scope(r, obj)? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Whether the quota constrains `obj`: it tracks (in `status.hard`) a resource this
    /// evaluator charges, and `obj` is in all its scopes.
    pub fn matches(&self, quota: &QuotaView, obj: &Value) -> Result<bool, QuotaError> {
        let hard: Vec<&String> = quota.hard.keys().collect();
        if self.matching_resources(&hard).is_empty() {
            return Ok(false);
        }
        self.matches_scopes(&quota.scope_selectors(), obj)
    }

    /// Checks what a quota tracking `required` demands of the object (for pods:
    /// explicit requests or limits of the tracked compute resources). The error is the
    /// reason, as upstream words it.
    pub fn constraints<S: AsRef<str>>(&self, required: &[S], obj: &Value) -> Result<(), String> {
        match self {
            Evaluator::Pods => pods::constraints(required, obj),
            _ => Ok(()),
        }
    }

    /// What `obj` charges at `now` (the time matters for pods being deleted).
    pub fn usage(&self, obj: &Value, now: jiff::Timestamp) -> ResourceList {
        match self {
            Evaluator::Pods => pods::usage(obj, now),
            Evaluator::Services => service_usage(obj),
            Evaluator::PersistentVolumeClaims => pvc_usage(obj),
            Evaluator::ObjectCount {
                group_resource,
                alias,
            } => {
                let mut out = ResourceList::new();
                out.insert(object_count_name(group_resource), count(1));
                if let Some(a) = alias {
                    out.insert(a.to_string(), count(1));
                }
                out
            }
        }
    }
}

/// Usage of a service: one service, its ports as node ports for NodePort services and
/// for LoadBalancer services that allocate node ports, one load balancer for
/// LoadBalancer services.
pub fn service_usage(svc: &Value) -> ResourceList {
    let ports = svc["spec"]["ports"].as_array().map_or(0, Vec::len) as i64;
    let mut out = ResourceList::new();
    out.insert("count/services".into(), count(1));
    out.insert("services".into(), count(1));
    out.insert("services.loadbalancers".into(), count(0));
    out.insert("services.nodeports".into(), count(0));
    match svc["spec"]["type"].as_str() {
        Some("NodePort") => {
            out.insert("services.nodeports".into(), count(ports));
        }
        Some("LoadBalancer") => {
            if svc["spec"]["allocateLoadBalancerNodePorts"] != Value::Bool(false) {
                out.insert("services.nodeports".into(), count(ports));
            }
            out.insert("services.loadbalancers".into(), count(1));
        }
        _ => {}
    }
    out
}

/// The storage class of a claim: the beta annotation first, then
/// `spec.storageClassName`.
pub fn claim_class(pvc: &Value) -> String {
    if let Some(c) =
        pvc["metadata"]["annotations"]["volume.beta.kubernetes.io/storage-class"].as_str()
    {
        return c.to_string();
    }
    pvc["spec"]["storageClassName"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

/// Usage of a claim: one claim (also under its class), its storage request rounded
/// up to whole bytes (also under its class).
pub fn pvc_usage(pvc: &Value) -> ResourceList {
    let mut out = ResourceList::new();
    out.insert("persistentvolumeclaims".into(), count(1));
    out.insert("count/persistentvolumeclaims".into(), count(1));
    let class = claim_class(pvc);
    if !class.is_empty() {
        out.insert(
            format!("{class}{STORAGE_CLASS_SUFFIX}persistentvolumeclaims"),
            count(1),
        );
    }
    let requests = crate::resources::parse_list(&pvc["spec"]["resources"]["requests"]);
    if let Some(storage) = requests.get("storage") {
        let mut storage = storage.clone();
        storage.round_up(0);
        if !class.is_empty() {
            out.insert(
                format!("{class}{STORAGE_CLASS_SUFFIX}requests.storage"),
                storage.clone(),
            );
        }
        out.insert("requests.storage".into(), storage);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::pretty_print;
    use serde_json::json;

    #[test]
    fn object_count_names() {
        let gr = GroupResource::new("apps", "deployments");
        assert_eq!(object_count_name(&gr), "count/deployments.apps");
        assert_eq!(
            object_count_group_resource("count/deployments.apps"),
            Some(gr)
        );
        assert_eq!(
            object_count_group_resource("count/pods"),
            Some(GroupResource::new("", "pods"))
        );
        assert_eq!(object_count_group_resource("pods"), None);
        let cm = Evaluator::for_resource("", "configmaps");
        assert_eq!(
            pretty_print(&cm.usage(&json!({}), jiff::Timestamp::UNIX_EPOCH)),
            "configmaps=1,count/configmaps=1"
        );
        assert_eq!(
            cm.matching_resources(&["configmaps", "count/configmaps", "pods"]),
            ["configmaps", "count/configmaps"]
        );
        assert!(cm.handles(Operation::Create) && !cm.handles(Operation::Update));
        assert_eq!(Evaluator::core().len(), 7);
    }

    #[test]
    fn services() {
        let lb = json!({"spec": {"type": "LoadBalancer", "ports": [{"port": 80}, {"port": 443}]}});
        assert_eq!(
            pretty_print(&service_usage(&lb)),
            "count/services=1,services=1,services.loadbalancers=1,services.nodeports=2"
        );
        let lb_no_np = json!({"spec": {"type": "LoadBalancer", "allocateLoadBalancerNodePorts": false, "ports": [{"port": 80}]}});
        assert_eq!(
            pretty_print(&service_usage(&lb_no_np)),
            "count/services=1,services=1,services.loadbalancers=1,services.nodeports=0"
        );
        let np = json!({"spec": {"type": "NodePort", "ports": [{"port": 80}]}});
        assert_eq!(service_usage(&np)["services.nodeports"].to_string(), "1");
        assert!(Evaluator::Services.handles(Operation::Update));
    }

    #[test]
    fn claims() {
        let pvc = json!({"spec": {"storageClassName": "gold", "resources": {"requests": {"storage": "1.5Gi"}}}});
        assert_eq!(
            pretty_print(&pvc_usage(&pvc)),
            "count/persistentvolumeclaims=1,gold.storageclass.storage.k8s.io/persistentvolumeclaims=1,gold.storageclass.storage.k8s.io/requests.storage=1536Mi,persistentvolumeclaims=1,requests.storage=1536Mi"
        );
        let frac = json!({"spec": {"resources": {"requests": {"storage": "1500m"}}}});
        assert_eq!(pvc_usage(&frac)["requests.storage"].to_string(), "2");
        assert_eq!(
            Evaluator::PersistentVolumeClaims.matching_resources(&[
                "gold.storageclass.storage.k8s.io/requests.storage",
                "requests.storage",
                "requests.cpu"
            ]),
            [
                "gold.storageclass.storage.k8s.io/requests.storage",
                "requests.storage"
            ]
        );
    }
}
