//! Server-side table printers: the columns and cells kube-apiserver returns for
//! `GET ...?as=Table` (meta.k8s.io/v1 `Table`), per built-in resource.
//!
//! Objects are taken as the JSON the server serves. Rows always carry every
//! column, including the `priority: 1` ones that `kubectl get` shows only
//! with `-o wide`, because the server always renders the wide form and lets
//! the client hide columns.
//!
//! Entry points: [`printer_for`] (by API group and plural resource),
//! [`default_printer`] (NAME + AGE, for custom resources without printer
//! columns), [`created_at_printer`] (NAME + CREATED AT, upstream's generic
//! table for built-ins without a printer), [`row_conditions`].

mod cluster;
mod core;
mod docs;
pub mod duration;
mod json;
pub mod labels;
mod network;
mod pod;
pub mod quantity;
mod workloads;

use jiff::Timestamp;
use serde_json::{json, Value};

pub use duration::human_duration;

/// One entry of a Table's `columnDefinitions`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Column {
    /// Column header as sent (kubectl upper-cases it).
    pub name: &'static str,
    /// OpenAPI type: `"string"`, `"integer"`, `"boolean"`, `"date"`, ...
    pub type_: &'static str,
    /// `"name"` for the object-name column, `""` otherwise.
    pub format: &'static str,
    /// Human description of the column.
    pub description: &'static str,
    /// 0 = always shown; 1 = shown only with `-o wide`.
    pub priority: i32,
}

impl Column {
    /// A column shown by default.
    pub const fn new(name: &'static str, type_: &'static str, description: &'static str) -> Column {
        Column {
            name,
            type_,
            format: "",
            description,
            priority: 0,
        }
    }

    /// A column shown only with `-o wide` (priority 1).
    pub const fn wide(
        name: &'static str,
        type_: &'static str,
        description: &'static str,
    ) -> Column {
        Column {
            name,
            type_,
            format: "",
            description,
            priority: 1,
        }
    }

    /// The column as a `TableColumnDefinition` JSON object.
    pub fn to_json(&self) -> Value {
        json!({
            "name": self.name,
            "type": self.type_,
            "format": self.format,
            "description": self.description,
            "priority": self.priority,
        })
    }
}

/// Column layout and row renderer for one resource.
#[derive(Debug, Clone, Copy)]
pub struct Printer {
    /// Column definitions, in order.
    pub columns: &'static [Column],
    /// Renders one object's cells (one per column) at time `now`.
    pub row: fn(&Value, now: Timestamp) -> Vec<Value>,
}

impl Printer {
    /// The `columnDefinitions` array for a Table response.
    pub fn columns_json(&self) -> Value {
        Value::Array(self.columns.iter().map(Column::to_json).collect())
    }

    /// Cells for `obj`, rendered at `now`.
    pub fn cells(&self, obj: &Value, now: Timestamp) -> Vec<Value> {
        (self.row)(obj, now)
    }
}

/// The `Name` column every printer starts with (except events).
pub(crate) const NAME: Column = Column {
    name: "Name",
    type_: "string",
    format: "name",
    description: docs::NAME,
    priority: 0,
};

/// The usual `Age` column.
pub(crate) const AGE: Column = Column::new("Age", "string", docs::CREATION_TIMESTAMP);

/// AGE cell: time since `metadata.creationTimestamp`.
pub(crate) fn age(obj: &Value, now: Timestamp) -> String {
    duration::since(json::time_at(obj, &["metadata", "creationTimestamp"]), now)
}

/// Comma-joined container names and images of the container list at `path`.
pub(crate) fn containers_cells(obj: &Value, path: &[&str]) -> (String, String) {
    let containers = json::arr_at(obj, path);
    let names: Vec<&str> = containers
        .iter()
        .map(|c| json::str_at(c, &["name"]))
        .collect();
    let images: Vec<&str> = containers
        .iter()
        .map(|c| json::str_at(c, &["image"]))
        .collect();
    (names.join(","), images.join(","))
}

static DEFAULT: Printer = Printer {
    columns: &[NAME, Column::new("Age", "date", docs::CREATION_TIMESTAMP)],
    row: default_row,
};

fn default_row(obj: &Value, now: Timestamp) -> Vec<Value> {
    vec![json::s(json::name(obj)), json::s(age(obj, now))]
}

static CREATED_AT: Printer = Printer {
    columns: &[
        NAME,
        Column::new("Created At", "date", docs::CREATION_TIMESTAMP),
    ],
    row: created_at_row,
};

fn created_at_row(obj: &Value, _now: Timestamp) -> Vec<Value> {
    let created = json::get(obj, &["metadata", "creationTimestamp"])
        .and_then(Value::as_str)
        .and_then(|s| s.parse::<Timestamp>().ok())
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|| "0001-01-01T00:00:00Z".to_string());
    vec![json::s(json::name(obj)), json::s(created)]
}

/// The table used for custom resources whose CRD declares no
/// `additionalPrinterColumns`: `Name` and `Age` (type `date`).
pub fn default_printer() -> &'static Printer {
    &DEFAULT
}

/// Upstream's generic table for built-in resources that have no dedicated
/// printer (roles, clusterroles, limitranges, customresourcedefinitions, ...):
/// `Name` and `Created At` (RFC 3339, UTC).
pub fn created_at_printer() -> &'static Printer {
    &CREATED_AT
}

/// The printer for a resource, by API group (`""` for core) and plural
/// resource name. `None` means the resource has no known printer: use
/// [`default_printer`] for custom resources and [`created_at_printer`] for
/// other built-in resources.
pub fn printer_for(group: &str, resource: &str) -> Option<&'static Printer> {
    let p: &'static Printer = match (group, resource) {
        ("", "pods") => &pod::POD,
        ("", "podtemplates") => &pod::POD_TEMPLATE,
        ("", "namespaces") => &core::NAMESPACE,
        ("", "services") => &network::SERVICE,
        ("", "endpoints") => &network::ENDPOINTS,
        ("", "configmaps") => &core::CONFIG_MAP,
        ("", "secrets") => &core::SECRET,
        ("", "serviceaccounts") => &core::SERVICE_ACCOUNT,
        ("", "nodes") => &core::NODE,
        ("", "events") | ("events.k8s.io", "events") => &core::EVENT,
        ("", "replicationcontrollers") => &workloads::REPLICATION_CONTROLLER,
        ("", "resourcequotas") => &core::RESOURCE_QUOTA,
        ("", "persistentvolumes") => &core::PERSISTENT_VOLUME,
        ("", "persistentvolumeclaims") => &core::PERSISTENT_VOLUME_CLAIM,
        ("", "componentstatuses") => &core::COMPONENT_STATUS,
        ("", "limitranges") => &CREATED_AT,
        ("apps", "deployments") => &workloads::DEPLOYMENT,
        ("apps", "replicasets") => &workloads::REPLICA_SET,
        ("apps", "statefulsets") => &workloads::STATEFUL_SET,
        ("apps", "daemonsets") => &workloads::DAEMON_SET,
        ("apps", "controllerrevisions") => &workloads::CONTROLLER_REVISION,
        ("batch", "jobs") => &workloads::JOB,
        ("batch", "cronjobs") => &workloads::CRON_JOB,
        ("coordination.k8s.io", "leases") => &cluster::LEASE,
        ("discovery.k8s.io", "endpointslices") => &network::ENDPOINT_SLICE,
        ("policy", "poddisruptionbudgets") => &cluster::POD_DISRUPTION_BUDGET,
        ("autoscaling", "horizontalpodautoscalers") => &cluster::HORIZONTAL_POD_AUTOSCALER,
        ("networking.k8s.io", "ingresses") => &network::INGRESS,
        ("networking.k8s.io", "ingressclasses") => &network::INGRESS_CLASS,
        ("networking.k8s.io", "networkpolicies") => &network::NETWORK_POLICY,
        ("networking.k8s.io", "servicecidrs") => &network::SERVICE_CIDR,
        ("networking.k8s.io", "ipaddresses") => &network::IP_ADDRESS,
        ("storage.k8s.io", "storageclasses") => &cluster::STORAGE_CLASS,
        ("storage.k8s.io", "volumeattachments") => &cluster::VOLUME_ATTACHMENT,
        ("storage.k8s.io", "csidrivers") => &cluster::CSI_DRIVER,
        ("storage.k8s.io", "csinodes") => &cluster::CSI_NODE,
        ("storage.k8s.io", "csistoragecapacities") => &cluster::CSI_STORAGE_CAPACITY,
        ("storage.k8s.io", "volumeattributesclasses") => &cluster::VOLUME_ATTRIBUTES_CLASS,
        ("rbac.authorization.k8s.io", "roles" | "clusterroles") => &CREATED_AT,
        ("rbac.authorization.k8s.io", "rolebindings") => &cluster::ROLE_BINDING,
        ("rbac.authorization.k8s.io", "clusterrolebindings") => &cluster::CLUSTER_ROLE_BINDING,
        ("certificates.k8s.io", "certificatesigningrequests") => &cluster::CSR,
        ("scheduling.k8s.io", "priorityclasses") => &cluster::PRIORITY_CLASS,
        ("node.k8s.io", "runtimeclasses") => &cluster::RUNTIME_CLASS,
        ("apiextensions.k8s.io", "customresourcedefinitions") => &CREATED_AT,
        (
            "admissionregistration.k8s.io",
            "mutatingwebhookconfigurations" | "validatingwebhookconfigurations",
        ) => &cluster::WEBHOOK_CONFIGURATION,
        ("admissionregistration.k8s.io", "validatingadmissionpolicies") => {
            &cluster::VALIDATING_ADMISSION_POLICY
        }
        ("admissionregistration.k8s.io", "validatingadmissionpolicybindings") => {
            &cluster::VALIDATING_ADMISSION_POLICY_BINDING
        }
        ("apiregistration.k8s.io", "apiservices") => &cluster::API_SERVICE,
        ("flowcontrol.apiserver.k8s.io", "flowschemas") => &cluster::FLOW_SCHEMA,
        ("flowcontrol.apiserver.k8s.io", "prioritylevelconfigurations") => {
            &cluster::PRIORITY_LEVEL_CONFIGURATION
        }
        _ => return None,
    };
    Some(p)
}

/// `rows[].conditions` upstream attaches to a row, if any. Only pods carry
/// them: a `Completed` condition for pods in phase `Succeeded` or `Failed`.
pub fn row_conditions(group: &str, resource: &str, obj: &Value) -> Option<Value> {
    match (group, resource) {
        ("", "pods") => pod::pod_conditions(obj),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const GROUPS: &[(&str, &str)] = &[
        ("", "pods"),
        ("", "podtemplates"),
        ("", "namespaces"),
        ("", "services"),
        ("", "endpoints"),
        ("", "configmaps"),
        ("", "secrets"),
        ("", "serviceaccounts"),
        ("", "nodes"),
        ("", "events"),
        ("events.k8s.io", "events"),
        ("", "replicationcontrollers"),
        ("", "limitranges"),
        ("", "resourcequotas"),
        ("", "persistentvolumes"),
        ("", "persistentvolumeclaims"),
        ("", "componentstatuses"),
        ("apps", "deployments"),
        ("apps", "replicasets"),
        ("apps", "statefulsets"),
        ("apps", "daemonsets"),
        ("apps", "controllerrevisions"),
        ("batch", "jobs"),
        ("batch", "cronjobs"),
        ("coordination.k8s.io", "leases"),
        ("discovery.k8s.io", "endpointslices"),
        ("policy", "poddisruptionbudgets"),
        ("autoscaling", "horizontalpodautoscalers"),
        ("networking.k8s.io", "ingresses"),
        ("networking.k8s.io", "ingressclasses"),
        ("networking.k8s.io", "networkpolicies"),
        ("networking.k8s.io", "servicecidrs"),
        ("networking.k8s.io", "ipaddresses"),
        ("storage.k8s.io", "storageclasses"),
        ("storage.k8s.io", "volumeattachments"),
        ("storage.k8s.io", "csidrivers"),
        ("storage.k8s.io", "csinodes"),
        ("storage.k8s.io", "csistoragecapacities"),
        ("storage.k8s.io", "volumeattributesclasses"),
        ("rbac.authorization.k8s.io", "roles"),
        ("rbac.authorization.k8s.io", "rolebindings"),
        ("rbac.authorization.k8s.io", "clusterroles"),
        ("rbac.authorization.k8s.io", "clusterrolebindings"),
        ("certificates.k8s.io", "certificatesigningrequests"),
        ("scheduling.k8s.io", "priorityclasses"),
        ("node.k8s.io", "runtimeclasses"),
        ("apiextensions.k8s.io", "customresourcedefinitions"),
        (
            "admissionregistration.k8s.io",
            "mutatingwebhookconfigurations",
        ),
        (
            "admissionregistration.k8s.io",
            "validatingwebhookconfigurations",
        ),
        (
            "admissionregistration.k8s.io",
            "validatingadmissionpolicies",
        ),
        (
            "admissionregistration.k8s.io",
            "validatingadmissionpolicybindings",
        ),
        ("apiregistration.k8s.io", "apiservices"),
        ("flowcontrol.apiserver.k8s.io", "flowschemas"),
        (
            "flowcontrol.apiserver.k8s.io",
            "prioritylevelconfigurations",
        ),
    ];

    #[test]
    fn every_printer_renders_one_cell_per_column_even_for_empty_objects() {
        let now: Timestamp = "2024-05-01T12:00:00Z".parse().unwrap();
        for (g, r) in GROUPS {
            let p = printer_for(g, r).unwrap_or_else(|| panic!("no printer for {g}/{r}"));
            let cells = p.cells(&json!({}), now);
            assert_eq!(cells.len(), p.columns.len(), "{g}/{r}");
            let cells = p.cells(&json!({"metadata": {"name": "x"}, "spec": null}), now);
            assert_eq!(cells.len(), p.columns.len(), "{g}/{r}");
        }
    }

    #[test]
    fn name_column_has_name_format() {
        for (g, r) in GROUPS {
            let p = printer_for(g, r).unwrap();
            let names: Vec<_> = p.columns.iter().filter(|c| c.name == "Name").collect();
            assert_eq!(names.len(), 1, "{g}/{r}");
            assert_eq!(names[0].format, "name", "{g}/{r}");
        }
    }

    #[test]
    fn unknown_resources_have_no_printer() {
        assert!(printer_for("example.com", "widgets").is_none());
        assert!(printer_for("", "bindings").is_none());
    }

    #[test]
    fn default_printer_is_name_and_age() {
        let now: Timestamp = "2024-05-01T12:00:00Z".parse().unwrap();
        let p = default_printer();
        let names: Vec<_> = p.columns.iter().map(|c| (c.name, c.type_)).collect();
        assert_eq!(names, vec![("Name", "string"), ("Age", "date")]);
        let obj = json!({"metadata": {"name": "w1", "creationTimestamp": "2024-04-28T08:00:00Z"}});
        assert_eq!(p.cells(&obj, now), vec![json!("w1"), json!("3d4h")]);
        assert_eq!(
            p.cells(&json!({"metadata": {"name": "w2"}}), now),
            vec![json!("w2"), json!("<unknown>")]
        );
    }

    #[test]
    fn created_at_printer_uses_rfc3339_utc() {
        let now: Timestamp = "2024-05-01T12:00:00Z".parse().unwrap();
        let p = printer_for("rbac.authorization.k8s.io", "clusterroles").unwrap();
        let names: Vec<_> = p.columns.iter().map(|c| c.name).collect();
        assert_eq!(names, vec!["Name", "Created At"]);
        let obj = json!({"metadata": {"name": "admin", "creationTimestamp": "2024-04-01T10:20:30+02:00"}});
        assert_eq!(
            p.cells(&obj, now),
            vec![json!("admin"), json!("2024-04-01T08:20:30Z")]
        );
        assert_eq!(
            p.cells(&json!({"metadata": {"name": "x"}}), now),
            vec![json!("x"), json!("0001-01-01T00:00:00Z")]
        );
    }

    #[test]
    fn columns_json_shape() {
        let cols = printer_for("", "namespaces").unwrap().columns_json();
        assert_eq!(cols[0]["name"], json!("Name"));
        assert_eq!(cols[0]["format"], json!("name"));
        assert_eq!(cols[1]["name"], json!("Status"));
        assert_eq!(cols[1]["priority"], json!(0));
    }

    #[test]
    fn row_conditions_only_for_pods() {
        let done = json!({"status": {"phase": "Failed"}});
        assert!(row_conditions("", "pods", &done).is_some());
        assert!(row_conditions("batch", "jobs", &done).is_none());
    }
}
