//! Printers for the remaining API groups: coordination (leases), policy
//! (poddisruptionbudgets), autoscaling (horizontalpodautoscalers, v2 and v1
//! shapes), storage, rbac bindings, certificates, scheduling, node,
//! admissionregistration, apiregistration and flowcontrol.

use jiff::{SignedDuration, Timestamp};
use serde_json::{Map, Value};

use crate::core::quantity_cell;
use crate::duration::human_duration;
use crate::json::{
    annotation, arr_at, bool_at, get, int_at, int_or_string, len_at, n, name, obj_at, opt_bool,
    opt_int, opt_str, s, str_at,
};
use crate::{age, Column, Printer, AGE, NAME};

/// `kubectl get leases`.
pub static LEASE: Printer = Printer {
    columns: &[
        NAME,
        Column::new(
            "Holder",
            "string",
            "holderIdentity contains the identity of the holder of a current lease.",
        ),
        AGE,
    ],
    row: lease_row,
};

fn lease_row(obj: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        s(name(obj)),
        s(str_at(obj, &["spec", "holderIdentity"])),
        s(age(obj, now)),
    ]
}

/// `kubectl get poddisruptionbudgets`.
pub static POD_DISRUPTION_BUDGET: Printer = Printer {
    columns: &[
        NAME,
        Column::new(
            "Min Available",
            "string",
            "The minimum number of pods that must be available.",
        ),
        Column::new(
            "Max Unavailable",
            "string",
            "The maximum number of pods that may be unavailable.",
        ),
        Column::new(
            "Allowed Disruptions",
            "integer",
            "Calculated number of pods that may be disrupted at this time.",
        ),
        AGE,
    ],
    row: pdb_row,
};

fn pdb_row(obj: &Value, now: Timestamp) -> Vec<Value> {
    let ios = |field: &str| {
        get(obj, &["spec", field])
            .map(int_or_string)
            .unwrap_or_else(|| "N/A".to_string())
    };
    vec![
        s(name(obj)),
        s(ios("minAvailable")),
        s(ios("maxUnavailable")),
        n(int_at(obj, &["status", "disruptionsAllowed"])),
        s(age(obj, now)),
    ]
}

/// `kubectl get horizontalpodautoscalers`.
pub static HORIZONTAL_POD_AUTOSCALER: Printer = Printer {
    columns: &[
        NAME,
        Column::new(
            "Reference",
            "string",
            "scaleTargetRef points to the target resource to scale.",
        ),
        Column::new(
            "Targets",
            "string",
            "metrics contains the specifications used to calculate the desired replica count.",
        ),
        Column::new(
            "MinPods",
            "string",
            "minReplicas is the lower limit for the number of replicas to which the autoscaler can scale down.",
        ),
        Column::new(
            "MaxPods",
            "string",
            "maxReplicas is the upper limit for the number of replicas to which the autoscaler can scale up.",
        ),
        Column::new(
            "Replicas",
            "string",
            "currentReplicas is current number of replicas of pods managed by this autoscaler.",
        ),
        AGE,
    ],
    row: hpa_row,
};

/// A quantity as upstream's `(*Quantity).String()` prints it (`<nil>` if unset).
fn quantity_or_nil(v: Option<&Value>) -> String {
    match v {
        Some(_) => quantity_cell(v),
        None => "<nil>".to_string(),
    }
}

/// The v2 `metrics` and `currentMetrics` lists; v1 objects (with
/// `targetCPUUtilizationPercentage`) are mapped onto one CPU resource metric,
/// as upstream's v1 conversion does.
fn hpa_metrics(obj: &Value) -> (Vec<Value>, Vec<Value>) {
    if get(obj, &["spec", "metrics"]).is_some()
        || get(obj, &["spec", "targetCPUUtilizationPercentage"]).is_none()
    {
        return (
            arr_at(obj, &["spec", "metrics"]).to_vec(),
            arr_at(obj, &["status", "currentMetrics"]).to_vec(),
        );
    }
    let target = int_at(obj, &["spec", "targetCPUUtilizationPercentage"]);
    let specs = vec![serde_json::json!({
        "type": "Resource",
        "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": target}}
    })];
    let statuses = match opt_int(obj, &["status", "currentCPUUtilizationPercentage"]) {
        Some(cur) => vec![serde_json::json!({
            "type": "Resource",
            "resource": {"name": "cpu", "current": {"averageUtilization": cur}}
        })],
        None => Vec::new(),
    };
    (specs, statuses)
}

fn format_hpa_metrics(specs: &[Value], statuses: &[Value]) -> String {
    if specs.is_empty() {
        return "<none>".to_string();
    }
    const MAX: usize = 2;
    let mut list: Vec<String> = Vec::new();
    for (i, spec) in specs.iter().enumerate() {
        let status = statuses.get(i);
        // The status entry of this metric kind, if reported.
        let st = |key: &str| status.and_then(|s| get(s, &[key]));
        let entry = match str_at(spec, &["type"]) {
            "External" => {
                let target = get(spec, &["external", "target"]);
                let avg = target.and_then(|t| get(t, &["averageValue"]));
                if avg.is_some() {
                    let current = st("external")
                        .and_then(|e| get(e, &["current", "averageValue"]))
                        .map(|q| quantity_cell(Some(q)))
                        .unwrap_or_else(|| "<unknown>".to_string());
                    format!("{current}/{} (avg)", quantity_cell(avg))
                } else {
                    let current = st("external")
                        .map(|e| quantity_or_nil(get(e, &["current", "value"])))
                        .unwrap_or_else(|| "<unknown>".to_string());
                    let value = target.and_then(|t| get(t, &["value"]));
                    format!("{current}/{}", quantity_or_nil(value))
                }
            }
            "Pods" => {
                let current = st("pods")
                    .map(|p| quantity_or_nil(get(p, &["current", "averageValue"])))
                    .unwrap_or_else(|| "<unknown>".to_string());
                let target = get(spec, &["pods", "target", "averageValue"]);
                format!("{current}/{}", quantity_or_nil(target))
            }
            "Object" => {
                let target = get(spec, &["object", "target"]);
                let avg = target.and_then(|t| get(t, &["averageValue"]));
                if avg.is_some() {
                    let current = st("object")
                        .and_then(|o| get(o, &["current", "averageValue"]))
                        .map(|q| quantity_cell(Some(q)))
                        .unwrap_or_else(|| "<unknown>".to_string());
                    format!("{current}/{} (avg)", quantity_cell(avg))
                } else {
                    let current = st("object")
                        .map(|o| quantity_or_nil(get(o, &["current", "value"])))
                        .unwrap_or_else(|| "<unknown>".to_string());
                    let value = target.and_then(|t| get(t, &["value"]));
                    format!("{current}/{}", quantity_or_nil(value))
                }
            }
            kind @ ("Resource" | "ContainerResource") => {
                let key = if kind == "Resource" {
                    "resource"
                } else {
                    "containerResource"
                };
                let metric_name = str_at(spec, &[key, "name"]);
                let target = get(spec, &[key, "target"]);
                let avg = target.and_then(|t| get(t, &["averageValue"]));
                if avg.is_some() {
                    let current = st(key)
                        .map(|r| quantity_or_nil(get(r, &["current", "averageValue"])))
                        .unwrap_or_else(|| "<unknown>".to_string());
                    format!("{metric_name}: {current}/{}", quantity_cell(avg))
                } else {
                    let current = st(key)
                        .and_then(|r| opt_int(r, &["current", "averageUtilization"]))
                        .map(|u| format!("{u}%"))
                        .unwrap_or_else(|| "<unknown>".to_string());
                    let target = target
                        .and_then(|t| opt_int(t, &["averageUtilization"]))
                        .map(|u| format!("{u}%"))
                        .unwrap_or_else(|| "<auto>".to_string());
                    format!("{metric_name}: {current}/{target}")
                }
            }
            _ => "<unknown type>".to_string(),
        };
        list.push(entry);
    }
    let count = list.len();
    if count > MAX {
        list.truncate(MAX);
        return format!("{} + {} more...", list.join(", "), count - MAX);
    }
    list.join(", ")
}

fn hpa_row(obj: &Value, now: Timestamp) -> Vec<Value> {
    let reference = format!(
        "{}/{}",
        str_at(obj, &["spec", "scaleTargetRef", "kind"]),
        str_at(obj, &["spec", "scaleTargetRef", "name"])
    );
    let (specs, statuses) = hpa_metrics(obj);
    let min_pods = opt_int(obj, &["spec", "minReplicas"])
        .map(|m| m.to_string())
        .unwrap_or_else(|| "<unset>".to_string());
    vec![
        s(name(obj)),
        s(reference),
        s(format_hpa_metrics(&specs, &statuses)),
        s(min_pods),
        n(int_at(obj, &["spec", "maxReplicas"])),
        n(int_at(obj, &["status", "currentReplicas"])),
        s(age(obj, now)),
    ]
}

/// `kubectl get storageclasses`.
pub static STORAGE_CLASS: Printer = Printer {
    columns: &[
        NAME,
        Column::new(
            "Provisioner",
            "string",
            "provisioner indicates the type of the provisioner.",
        ),
        Column::new(
            "ReclaimPolicy",
            "string",
            "reclaimPolicy controls the reclaimPolicy for dynamically provisioned PersistentVolumes of this storage class. Defaults to Delete.",
        ),
        Column::new(
            "VolumeBindingMode",
            "string",
            "volumeBindingMode indicates how PersistentVolumeClaims should be provisioned and bound. Defaults to Immediate.",
        ),
        Column::new(
            "AllowVolumeExpansion",
            "string",
            "allowVolumeExpansion shows whether the storage class allow volume expand.",
        ),
        AGE,
    ],
    row: storage_class_row,
};

fn storage_class_row(obj: &Value, now: Timestamp) -> Vec<Value> {
    let is_default = annotation(obj, "storageclass.kubernetes.io/is-default-class") == Some("true")
        || annotation(obj, "storageclass.beta.kubernetes.io/is-default-class") == Some("true");
    let mut display = name(obj).to_string();
    if is_default {
        display.push_str(" (default)");
    }
    vec![
        s(display),
        s(str_at(obj, &["provisioner"])),
        s(opt_str(obj, &["reclaimPolicy"]).unwrap_or("Delete")),
        s(opt_str(obj, &["volumeBindingMode"]).unwrap_or("Immediate")),
        Value::Bool(bool_at(obj, &["allowVolumeExpansion"])),
        s(age(obj, now)),
    ]
}

/// `kubectl get volumeattributesclasses`.
pub static VOLUME_ATTRIBUTES_CLASS: Printer = Printer {
    columns: &[
        NAME,
        Column::new(
            "DriverName",
            "string",
            "Name of the CSI driver; this field is immutable.",
        ),
        AGE,
    ],
    row: volume_attributes_class_row,
};

fn volume_attributes_class_row(obj: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        s(name(obj)),
        s(str_at(obj, &["driverName"])),
        s(age(obj, now)),
    ]
}

/// `kubectl get volumeattachments`.
pub static VOLUME_ATTACHMENT: Printer = Printer {
    columns: &[
        NAME,
        Column {
            name: "Attacher",
            type_: "string",
            format: "name",
            description:
                "attacher indicates the name of the volume driver that MUST handle this request.",
            priority: 0,
        },
        Column::new(
            "PV",
            "string",
            "persistentVolumeName represents the name of the persistent volume to attach.",
        ),
        Column::new(
            "Node",
            "string",
            "nodeName represents the node that the volume should be attached to.",
        ),
        Column::new(
            "Attached",
            "boolean",
            "attached indicates the volume is successfully attached.",
        ),
        AGE,
    ],
    row: volume_attachment_row,
};

fn volume_attachment_row(obj: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        s(name(obj)),
        s(str_at(obj, &["spec", "attacher"])),
        s(str_at(obj, &["spec", "source", "persistentVolumeName"])),
        s(str_at(obj, &["spec", "nodeName"])),
        Value::Bool(bool_at(obj, &["status", "attached"])),
        s(age(obj, now)),
    ]
}

/// `kubectl get csidrivers`.
pub static CSI_DRIVER: Printer = Printer {
    columns: &[
        NAME,
        Column::new(
            "AttachRequired",
            "boolean",
            "attachRequired indicates this CSI volume driver requires an attach operation.",
        ),
        Column::new(
            "PodInfoOnMount",
            "boolean",
            "podInfoOnMount indicates this CSI volume driver requires additional pod information during mount operations.",
        ),
        Column::new(
            "StorageCapacity",
            "boolean",
            "storageCapacity indicates that the CSI volume driver wants pod scheduling to consider the storage capacity it reports.",
        ),
        Column::new(
            "TokenRequests",
            "string",
            "tokenRequests indicates the CSI driver needs pods' service account tokens it is mounting volume for.",
        ),
        Column::new(
            "RequiresRepublish",
            "boolean",
            "requiresRepublish indicates the CSI driver wants NodePublishVolume periodically called to reflect changes in the mounted volume.",
        ),
        Column::new(
            "Modes",
            "string",
            "volumeLifecycleModes defines what kind of volumes this CSI volume driver supports.",
        ),
        AGE,
    ],
    row: csi_driver_row,
};

fn csi_driver_row(obj: &Value, now: Timestamp) -> Vec<Value> {
    let modes: Vec<&str> = arr_at(obj, &["spec", "volumeLifecycleModes"])
        .iter()
        .map(|m| m.as_str().unwrap_or(""))
        .collect();
    let modes = if modes.is_empty() {
        "<none>".to_string()
    } else {
        modes.join(",")
    };
    let token_requests = match get(obj, &["spec", "tokenRequests"]).and_then(Value::as_array) {
        Some(list) => list
            .iter()
            .map(|t| str_at(t, &["audience"]))
            .collect::<Vec<_>>()
            .join(","),
        None => "<unset>".to_string(),
    };
    vec![
        s(name(obj)),
        Value::Bool(opt_bool(obj, &["spec", "attachRequired"]).unwrap_or(true)),
        Value::Bool(bool_at(obj, &["spec", "podInfoOnMount"])),
        Value::Bool(bool_at(obj, &["spec", "storageCapacity"])),
        s(token_requests),
        Value::Bool(bool_at(obj, &["spec", "requiresRepublish"])),
        s(modes),
        s(age(obj, now)),
    ]
}

/// `kubectl get csinodes`.
pub static CSI_NODE: Printer = Printer {
    columns: &[
        NAME,
        Column::new(
            "Drivers",
            "integer",
            "Drivers indicates the number of CSI drivers registered on the node",
        ),
        AGE,
    ],
    row: csi_node_row,
};

fn csi_node_row(obj: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        s(name(obj)),
        n(arr_at(obj, &["spec", "drivers"]).len() as i64),
        s(age(obj, now)),
    ]
}

/// `kubectl get csistoragecapacities`.
pub static CSI_STORAGE_CAPACITY: Printer = Printer {
    columns: &[
        NAME,
        Column::new(
            "StorageClassName",
            "string",
            "storageClassName represents the name of the StorageClass that the reported capacity applies to.",
        ),
        Column::new(
            "Capacity",
            "string",
            "capacity is the value reported by the CSI driver in its GetCapacityResponse for a GetCapacityRequest with topology and parameters that match the previous fields.",
        ),
    ],
    row: csi_storage_capacity_row,
};

fn csi_storage_capacity_row(obj: &Value, _now: Timestamp) -> Vec<Value> {
    let capacity = match get(obj, &["capacity"]) {
        Some(q) => quantity_cell(Some(q)),
        None => "<unset>".to_string(),
    };
    vec![
        s(name(obj)),
        s(str_at(obj, &["storageClassName"])),
        s(capacity),
    ]
}

/// Users, groups and service accounts named by a binding's subjects.
fn subjects(obj: &Value) -> (String, String, String) {
    let mut users = Vec::new();
    let mut groups = Vec::new();
    let mut sas = Vec::new();
    for subj in arr_at(obj, &["subjects"]) {
        let subject_name = str_at(subj, &["name"]);
        match str_at(subj, &["kind"]) {
            "ServiceAccount" => {
                sas.push(format!("{}/{}", str_at(subj, &["namespace"]), subject_name))
            }
            "User" => users.push(subject_name.to_string()),
            "Group" => groups.push(subject_name.to_string()),
            _ => {}
        }
    }
    (users.join(", "), groups.join(", "), sas.join(", "))
}

fn binding_row(obj: &Value, now: Timestamp) -> Vec<Value> {
    let role = format!(
        "{}/{}",
        str_at(obj, &["roleRef", "kind"]),
        str_at(obj, &["roleRef", "name"])
    );
    let (users, groups, sas) = subjects(obj);
    vec![
        s(name(obj)),
        s(role),
        s(age(obj, now)),
        s(users),
        s(groups),
        s(sas),
    ]
}

const ROLE_REF: &str = "RoleRef can only reference a role in the current namespace, or a ClusterRole in the global namespace.";

/// `kubectl get rolebindings`.
pub static ROLE_BINDING: Printer = Printer {
    columns: &[
        NAME,
        Column::new("Role", "string", ROLE_REF),
        AGE,
        Column::wide("Users", "string", "Users in the roleBinding"),
        Column::wide("Groups", "string", "Groups in the roleBinding"),
        Column::wide(
            "ServiceAccounts",
            "string",
            "ServiceAccounts in the roleBinding",
        ),
    ],
    row: binding_row,
};

/// `kubectl get clusterrolebindings`.
pub static CLUSTER_ROLE_BINDING: Printer = Printer {
    columns: &[
        NAME,
        Column::new(
            "Role",
            "string",
            "RoleRef can only reference a ClusterRole in the global namespace.",
        ),
        AGE,
        Column::wide("Users", "string", "Users in the clusterRoleBinding"),
        Column::wide("Groups", "string", "Groups in the clusterRoleBinding"),
        Column::wide(
            "ServiceAccounts",
            "string",
            "ServiceAccounts in the clusterRoleBinding",
        ),
    ],
    row: binding_row,
};

/// `kubectl get certificatesigningrequests`.
pub static CSR: Printer = Printer {
    columns: &[
        NAME,
        AGE,
        Column::new(
            "SignerName",
            "string",
            "signerName indicates the requested signer, as a qualified name.",
        ),
        Column::new(
            "Requestor",
            "string",
            "The user that created the request (populated by the API server).",
        ),
        Column::new(
            "RequestedDuration",
            "string",
            "expirationSeconds is the requested duration of validity of the issued certificate.",
        ),
        Column::new(
            "Condition",
            "string",
            "Conditions applied to the request. Known conditions are Approved, Denied, and Failed.",
        ),
    ],
    row: csr_row,
};

fn csr_row(obj: &Value, now: Timestamp) -> Vec<Value> {
    let mut approved = false;
    let mut denied = false;
    let mut failed = false;
    for c in arr_at(obj, &["status", "conditions"]) {
        match str_at(c, &["type"]) {
            "Approved" => approved = true,
            "Denied" => denied = true,
            "Failed" => failed = true,
            _ => {}
        }
    }
    let mut status = if denied {
        "Denied".to_string()
    } else if approved {
        "Approved".to_string()
    } else {
        "Pending".to_string()
    };
    if failed {
        status.push_str(",Failed");
    }
    if !str_at(obj, &["status", "certificate"]).is_empty() {
        status.push_str(",Issued");
    }
    let signer = match str_at(obj, &["spec", "signerName"]) {
        "" => "<none>",
        other => other,
    };
    let requested = match opt_int(obj, &["spec", "expirationSeconds"]) {
        Some(secs) => human_duration(SignedDuration::from_secs(secs)),
        None => "<none>".to_string(),
    };
    vec![
        s(name(obj)),
        s(age(obj, now)),
        s(signer),
        s(str_at(obj, &["spec", "username"])),
        s(requested),
        s(status),
    ]
}

/// `kubectl get priorityclasses`.
pub static PRIORITY_CLASS: Printer = Printer {
    columns: &[
        NAME,
        Column::new(
            "Value",
            "integer",
            "The value of this priority class; the actual priority that pods receive when they have this class in their spec.",
        ),
        Column::new(
            "Global-Default",
            "boolean",
            "globalDefault specifies whether this PriorityClass should be considered as the default priority for pods without a priorityClassName.",
        ),
        AGE,
        Column::new(
            "PreemptionPolicy",
            "string",
            "preemptionPolicy is the Policy for preempting pods with lower priority: Never or PreemptLowerPriority (default).",
        ),
    ],
    row: priority_class_row,
};

fn priority_class_row(obj: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        s(name(obj)),
        n(int_at(obj, &["value"])),
        Value::Bool(bool_at(obj, &["globalDefault"])),
        s(age(obj, now)),
        s(str_at(obj, &["preemptionPolicy"])),
    ]
}

/// `kubectl get runtimeclasses`.
pub static RUNTIME_CLASS: Printer = Printer {
    columns: &[
        NAME,
        Column::new(
            "Handler",
            "string",
            "handler specifies the underlying runtime and configuration that the CRI implementation will use.",
        ),
        AGE,
    ],
    row: runtime_class_row,
};

fn runtime_class_row(obj: &Value, now: Timestamp) -> Vec<Value> {
    vec![s(name(obj)), s(str_at(obj, &["handler"])), s(age(obj, now))]
}

/// `kubectl get mutatingwebhookconfigurations` / `validatingwebhookconfigurations`.
pub static WEBHOOK_CONFIGURATION: Printer = Printer {
    columns: &[
        NAME,
        Column::new(
            "Webhooks",
            "integer",
            "Webhooks indicates the number of webhooks registered in this configuration",
        ),
        AGE,
    ],
    row: webhook_configuration_row,
};

fn webhook_configuration_row(obj: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        s(name(obj)),
        n(len_at(obj, &["webhooks"]) as i64),
        s(age(obj, now)),
    ]
}

/// `kubectl get validatingadmissionpolicies`.
pub static VALIDATING_ADMISSION_POLICY: Printer = Printer {
    columns: &[
        NAME,
        Column::new(
            "Validations",
            "integer",
            "Validations indicates the number of validation rules defined in this configuration",
        ),
        Column::new(
            "ParamKind",
            "string",
            "ParamKind specifies the kind of resources used to parameterize this policy",
        ),
        AGE,
    ],
    row: validating_admission_policy_row,
};

fn validating_admission_policy_row(obj: &Value, now: Timestamp) -> Vec<Value> {
    let param_kind = match get(obj, &["spec", "paramKind"]) {
        Some(p) => format!("{}/{}", str_at(p, &["apiVersion"]), str_at(p, &["kind"])),
        None => "<unset>".to_string(),
    };
    vec![
        s(name(obj)),
        n(len_at(obj, &["spec", "validations"]) as i64),
        s(param_kind),
        s(age(obj, now)),
    ]
}

/// `kubectl get validatingadmissionpolicybindings`.
pub static VALIDATING_ADMISSION_POLICY_BINDING: Printer = Printer {
    columns: &[
        NAME,
        Column::new(
            "PolicyName",
            "string",
            "PolicyName indicates the policy definition which the policy binding binded to",
        ),
        Column::new(
            "ParamRef",
            "string",
            "ParamRef indicates the param resource which sets the configration param",
        ),
        AGE,
    ],
    row: validating_admission_policy_binding_row,
};

/// Go's generated `String()` of a `LabelSelector`, which upstream uses for
/// selector-based param references.
fn go_label_selector_string(sel: &Map<String, Value>) -> String {
    let mut labels: Vec<(&String, &str)> = sel
        .get("matchLabels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k, v.as_str().unwrap_or("")))
                .collect()
        })
        .unwrap_or_default();
    labels.sort();
    let mut out = String::from("&LabelSelector{MatchLabels:map[string]string{");
    for (k, v) in labels {
        out.push_str(&format!("{k}: {v},"));
    }
    out.push_str("},MatchExpressions:[]LabelSelectorRequirement{");
    for e in sel
        .get("matchExpressions")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
    {
        let values: Vec<&str> = arr_at(e, &["values"])
            .iter()
            .map(|v| v.as_str().unwrap_or(""))
            .collect();
        out.push_str(&format!(
            "LabelSelectorRequirement{{Key:{},Operator:{},Values:[{}],}},",
            str_at(e, &["key"]),
            str_at(e, &["operator"]),
            values.join(" ")
        ));
    }
    out.push_str("},}");
    out
}

fn validating_admission_policy_binding_row(obj: &Value, now: Timestamp) -> Vec<Value> {
    let param = match get(obj, &["spec", "paramRef"]) {
        Some(pr) => {
            let pr_name = str_at(pr, &["name"]);
            let ns = str_at(pr, &["namespace"]);
            if !pr_name.is_empty() {
                if ns.is_empty() {
                    format!("*/{pr_name}")
                } else {
                    format!("{ns}/{pr_name}")
                }
            } else if let Some(sel) = obj_at(pr, &["selector"]) {
                go_label_selector_string(sel)
            } else {
                "<unset>".to_string()
            }
        }
        None => "<unset>".to_string(),
    };
    vec![
        s(name(obj)),
        s(str_at(obj, &["spec", "policyName"])),
        s(param),
        s(age(obj, now)),
    ]
}

/// `kubectl get apiservices` (kube-aggregator's table).
pub static API_SERVICE: Printer = Printer {
    columns: &[
        NAME,
        Column::new(
            "Service",
            "string",
            "The reference to the service that hosts this API endpoint.",
        ),
        Column::new("Available", "string", "Whether this service is available."),
        AGE,
    ],
    row: api_service_row,
};

fn api_service_row(obj: &Value, now: Timestamp) -> Vec<Value> {
    let service = match get(obj, &["spec", "service"]) {
        Some(svc) => format!("{}/{}", str_at(svc, &["namespace"]), str_at(svc, &["name"])),
        None => "Local".to_string(),
    };
    let available = match arr_at(obj, &["status", "conditions"])
        .iter()
        .find(|c| str_at(c, &["type"]) == "Available")
    {
        Some(c) => {
            let status = str_at(c, &["status"]);
            let reason = str_at(c, &["reason"]);
            if status == "True" || reason.is_empty() {
                status.to_string()
            } else {
                format!("{status} ({reason})")
            }
        }
        None => "Unknown".to_string(),
    };
    vec![s(name(obj)), s(service), s(available), s(age(obj, now))]
}

/// `kubectl get flowschemas`.
pub static FLOW_SCHEMA: Printer = Printer {
    columns: &[
        NAME,
        Column::new(
            "PriorityLevel",
            "string",
            "name is the name of the priority level configuration being referenced.",
        ),
        Column::new(
            "MatchingPrecedence",
            "string",
            "matchingPrecedence is used to choose among the FlowSchemas that match a given request; lower values win.",
        ),
        Column::new(
            "DistinguisherMethod",
            "string",
            "distinguisherMethod defines how to compute the flow distinguisher for requests that match this schema.",
        ),
        AGE,
        Column::new(
            "MissingPL",
            "string",
            "references a broken or non-existent PriorityLevelConfiguration",
        ),
    ],
    row: flow_schema_row,
};

fn flow_schema_row(obj: &Value, now: Timestamp) -> Vec<Value> {
    let distinguisher = if get(obj, &["spec", "distinguisherMethod"]).is_some() {
        str_at(obj, &["spec", "distinguisherMethod", "type"])
    } else {
        "<none>"
    };
    let missing = arr_at(obj, &["status", "conditions"])
        .iter()
        .find(|c| str_at(c, &["type"]) == "Dangling")
        .map(|c| str_at(c, &["status"]))
        .unwrap_or("?");
    vec![
        s(name(obj)),
        s(str_at(obj, &["spec", "priorityLevelConfiguration", "name"])),
        n(int_at(obj, &["spec", "matchingPrecedence"])),
        s(distinguisher),
        s(age(obj, now)),
        s(missing),
    ]
}

/// `kubectl get prioritylevelconfigurations`.
pub static PRIORITY_LEVEL_CONFIGURATION: Printer = Printer {
    columns: &[
        NAME,
        Column::new(
            "Type",
            "string",
            "type indicates whether this priority level is subject to limitation on request execution (Exempt or Limited).",
        ),
        Column::new(
            "NominalConcurrencyShares",
            "string",
            "nominalConcurrencyShares contributes to the computation of the NominalConcurrencyLimit of this level.",
        ),
        Column::new(
            "Queues",
            "string",
            "queues is the number of queues for this priority level.",
        ),
        Column::new(
            "HandSize",
            "string",
            "handSize is a small positive number that configures the shuffle sharding of requests into queues.",
        ),
        Column::new(
            "QueueLengthLimit",
            "string",
            "queueLengthLimit is the maximum number of requests allowed to be waiting in a given queue of this priority level at a time.",
        ),
        AGE,
    ],
    row: priority_level_row,
};

fn priority_level_row(obj: &Value, now: Timestamp) -> Vec<Value> {
    let none = || s("<none>");
    let (ncs, queues, hand, qll) = match get(obj, &["spec", "limited"]) {
        Some(limited) => {
            let ncs = n(int_at(limited, &["nominalConcurrencyShares"]));
            match get(limited, &["limitResponse", "queuing"]) {
                Some(q) => (
                    ncs,
                    n(int_at(q, &["queues"])),
                    n(int_at(q, &["handSize"])),
                    n(int_at(q, &["queueLengthLimit"])),
                ),
                None => (ncs, none(), none(), none()),
            }
        }
        None => (none(), none(), none(), none()),
    };
    vec![
        s(name(obj)),
        s(str_at(obj, &["spec", "type"])),
        ncs,
        queues,
        hand,
        qll,
        s(age(obj, now)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> Timestamp {
        "2024-05-01T12:00:00Z".parse().unwrap()
    }

    #[test]
    fn lease_cells() {
        let l = json!({"metadata": {"name": "kube-scheduler", "creationTimestamp": "2024-05-01T11:00:00Z"},
            "spec": {"holderIdentity": "cp-1_6f1c", "leaseDurationSeconds": 15}});
        assert_eq!(
            lease_row(&l, now()),
            vec![json!("kube-scheduler"), json!("cp-1_6f1c"), json!("60m")]
        );
        let l = json!({"metadata": {"name": "x"}, "spec": {}});
        assert_eq!(lease_row(&l, now())[1], json!(""));
    }

    #[test]
    fn pdb_cells() {
        let pdb = json!({"metadata": {"name": "web", "creationTimestamp": "2024-05-01T11:00:00Z"},
            "spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": "web"}}},
            "status": {"disruptionsAllowed": 1}});
        assert_eq!(
            pdb_row(&pdb, now()),
            vec![
                json!("web"),
                json!("2"),
                json!("N/A"),
                json!(1),
                json!("60m")
            ]
        );
        let pdb = json!({"metadata": {"name": "db"}, "spec": {"maxUnavailable": "25%"}});
        let c = pdb_row(&pdb, now());
        assert_eq!(c[1], json!("N/A"));
        assert_eq!(c[2], json!("25%"));
        assert_eq!(c[3], json!(0));
    }

    #[test]
    fn hpa_v2_cells() {
        let hpa = json!({
            "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "web", "creationTimestamp": "2024-05-01T11:00:00Z"},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                "minReplicas": 1, "maxReplicas": 10,
                "metrics": [
                    {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}},
                    {"type": "Resource", "resource": {"name": "memory", "target": {"type": "AverageValue", "averageValue": "1024Mi"}}}
                ]
            },
            "status": {"currentReplicas": 2, "desiredReplicas": 2, "currentMetrics": [
                {"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 35, "averageValue": "70m"}}},
                {"type": "Resource", "resource": {"name": "memory", "current": {"averageValue": "300Mi"}}}
            ]}
        });
        assert_eq!(
            hpa_row(&hpa, now()),
            vec![
                json!("web"),
                json!("Deployment/web"),
                json!("cpu: 35%/80%, memory: 300Mi/1Gi"),
                json!("1"),
                json!(10),
                json!(2),
                json!("60m"),
            ]
        );
    }

    #[test]
    fn hpa_metric_variants() {
        let specs = vec![
            json!({"type": "Pods", "pods": {"metric": {"name": "qps"}, "target": {"type": "AverageValue", "averageValue": "1k"}}}),
            json!({"type": "Object", "object": {"target": {"type": "Value", "value": "10"}}}),
            json!({"type": "External", "external": {"target": {"type": "AverageValue", "averageValue": "30"}}}),
        ];
        assert_eq!(
            format_hpa_metrics(&specs, &[]),
            "<unknown>/1k, <unknown>/10 + 1 more..."
        );
        let statuses = vec![
            json!({"type": "Pods", "pods": {"current": {"averageValue": "250"}}}),
            json!({"type": "Object", "object": {"current": {"value": "4"}}}),
        ];
        assert_eq!(format_hpa_metrics(&specs[..2], &statuses), "250/1k, 4/10");
        let ext = vec![
            json!({"type": "External", "external": {"target": {"type": "AverageValue", "averageValue": "30"}}}),
        ];
        assert_eq!(format_hpa_metrics(&ext, &[]), "<unknown>/30 (avg)");
        let cr = vec![
            json!({"type": "ContainerResource", "containerResource": {"name": "cpu", "container": "app",
            "target": {"type": "Utilization"}}}),
        ];
        assert_eq!(format_hpa_metrics(&cr, &[]), "cpu: <unknown>/<auto>");
        assert_eq!(format_hpa_metrics(&[], &[]), "<none>");
        assert_eq!(
            format_hpa_metrics(&[json!({"type": "Weird"})], &[]),
            "<unknown type>"
        );
    }

    #[test]
    fn hpa_v1_cells() {
        let hpa = json!({
            "apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "php-apache"},
            "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "php-apache"}, "maxReplicas": 10,
                "targetCPUUtilizationPercentage": 50},
            "status": {"currentReplicas": 1, "currentCPUUtilizationPercentage": 0}
        });
        let c = hpa_row(&hpa, now());
        assert_eq!(c[2], json!("cpu: 0%/50%"));
        assert_eq!(c[3], json!("<unset>"));
        let hpa = json!({"metadata": {"name": "x"},
            "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "x"}, "targetCPUUtilizationPercentage": 50}});
        assert_eq!(hpa_row(&hpa, now())[2], json!("cpu: <unknown>/50%"));
    }

    #[test]
    fn storage_class_cells() {
        let sc = json!({"metadata": {"name": "standard", "creationTimestamp": "2024-05-01T11:00:00Z",
            "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
            "provisioner": "rancher.io/local-path", "volumeBindingMode": "WaitForFirstConsumer", "reclaimPolicy": "Delete"});
        assert_eq!(
            storage_class_row(&sc, now()),
            vec![
                json!("standard (default)"),
                json!("rancher.io/local-path"),
                json!("Delete"),
                json!("WaitForFirstConsumer"),
                json!(false),
                json!("60m"),
            ]
        );
        let sc = json!({"metadata": {"name": "fast"}, "provisioner": "p", "allowVolumeExpansion": true, "reclaimPolicy": "Retain"});
        let c = storage_class_row(&sc, now());
        assert_eq!(c[0], json!("fast"));
        assert_eq!(c[2], json!("Retain"));
        assert_eq!(c[3], json!("Immediate"));
        assert_eq!(c[4], json!(true));
    }

    #[test]
    fn storage_misc_cells() {
        let va = json!({"metadata": {"name": "csi-123"}, "spec": {"attacher": "ebs.csi.aws.com", "nodeName": "n1",
            "source": {"persistentVolumeName": "pv-1"}}, "status": {"attached": true}});
        assert_eq!(
            volume_attachment_row(&va, now()),
            vec![
                json!("csi-123"),
                json!("ebs.csi.aws.com"),
                json!("pv-1"),
                json!("n1"),
                json!(true),
                json!("<unknown>")
            ]
        );
        let d = json!({"metadata": {"name": "ebs.csi.aws.com"}, "spec": {"volumeLifecycleModes": ["Persistent"],
            "tokenRequests": [{"audience": "a"}, {"audience": "b"}]}});
        assert_eq!(
            csi_driver_row(&d, now()),
            vec![
                json!("ebs.csi.aws.com"),
                json!(true),
                json!(false),
                json!(false),
                json!("a,b"),
                json!(false),
                json!("Persistent"),
                json!("<unknown>")
            ]
        );
        let d = json!({"metadata": {"name": "x"}, "spec": {"attachRequired": false}});
        let c = csi_driver_row(&d, now());
        assert_eq!(c[1], json!(false));
        assert_eq!(c[4], json!("<unset>"));
        assert_eq!(c[6], json!("<none>"));
        let node = json!({"metadata": {"name": "n1"}, "spec": {"drivers": [{"name": "a"}]}});
        assert_eq!(csi_node_row(&node, now())[1], json!(1));
        let cap = json!({"metadata": {"name": "c"}, "storageClassName": "standard", "capacity": "1000Mi"});
        assert_eq!(
            csi_storage_capacity_row(&cap, now()),
            vec![json!("c"), json!("standard"), json!("1000Mi")]
        );
        let cap = json!({"metadata": {"name": "c"}, "storageClassName": "standard"});
        assert_eq!(csi_storage_capacity_row(&cap, now())[2], json!("<unset>"));
        let vac = json!({"metadata": {"name": "gold"}, "driverName": "pd.csi.storage.gke.io"});
        assert_eq!(
            volume_attributes_class_row(&vac, now())[1],
            json!("pd.csi.storage.gke.io")
        );
    }

    #[test]
    fn binding_cells() {
        let rb = json!({
            "metadata": {"name": "read-pods", "creationTimestamp": "2024-05-01T11:00:00Z"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "pod-reader"},
            "subjects": [
                {"kind": "User", "name": "jane"}, {"kind": "User", "name": "bob"},
                {"kind": "Group", "name": "devs"},
                {"kind": "ServiceAccount", "name": "default", "namespace": "kube-system"}
            ]
        });
        assert_eq!(
            binding_row(&rb, now()),
            vec![
                json!("read-pods"),
                json!("Role/pod-reader"),
                json!("60m"),
                json!("jane, bob"),
                json!("devs"),
                json!("kube-system/default"),
            ]
        );
    }

    #[test]
    fn csr_cells() {
        let csr = json!({
            "metadata": {"name": "csr-abc", "creationTimestamp": "2024-05-01T11:59:00Z"},
            "spec": {"signerName": "kubernetes.io/kube-apiserver-client-kubelet", "username": "system:node:n1",
                "expirationSeconds": 86400},
            "status": {"conditions": [{"type": "Approved", "status": "True"}], "certificate": "LS0t"}
        });
        assert_eq!(
            csr_row(&csr, now()),
            vec![
                json!("csr-abc"),
                json!("60s"),
                json!("kubernetes.io/kube-apiserver-client-kubelet"),
                json!("system:node:n1"),
                json!("24h"),
                json!("Approved,Issued"),
            ]
        );
        let csr = json!({"metadata": {"name": "x"}, "spec": {"username": "u"},
            "status": {"conditions": [{"type": "Approved"}, {"type": "Denied"}, {"type": "Failed"}]}});
        let c = csr_row(&csr, now());
        assert_eq!(c[2], json!("<none>"));
        assert_eq!(c[4], json!("<none>"));
        assert_eq!(c[5], json!("Denied,Failed"));
        let pending = json!({"metadata": {"name": "x"}});
        assert_eq!(csr_row(&pending, now())[5], json!("Pending"));
    }

    #[test]
    fn priority_and_runtime_class_cells() {
        let pc = json!({"metadata": {"name": "system-node-critical", "creationTimestamp": "2024-05-01T11:00:00Z"},
            "value": 2000001000, "preemptionPolicy": "PreemptLowerPriority"});
        assert_eq!(
            priority_class_row(&pc, now()),
            vec![
                json!("system-node-critical"),
                json!(2000001000),
                json!(false),
                json!("60m"),
                json!("PreemptLowerPriority")
            ]
        );
        let rc = json!({"metadata": {"name": "gvisor"}, "handler": "runsc"});
        assert_eq!(
            runtime_class_row(&rc, now()),
            vec![json!("gvisor"), json!("runsc"), json!("<unknown>")]
        );
    }

    #[test]
    fn admission_cells() {
        let wh = json!({"metadata": {"name": "cert-manager-webhook", "creationTimestamp": "2024-05-01T11:00:00Z"},
            "webhooks": [{"name": "a"}, {"name": "b"}]});
        assert_eq!(
            webhook_configuration_row(&wh, now()),
            vec![json!("cert-manager-webhook"), json!(2), json!("60m")]
        );
        let vap = json!({"metadata": {"name": "demo"}, "spec": {"validations": [{"expression": "true"}],
            "paramKind": {"apiVersion": "v1", "kind": "ConfigMap"}}});
        assert_eq!(
            validating_admission_policy_row(&vap, now()),
            vec![
                json!("demo"),
                json!(1),
                json!("v1/ConfigMap"),
                json!("<unknown>")
            ]
        );
        let b = json!({"metadata": {"name": "b"}, "spec": {"policyName": "demo", "paramRef": {"name": "cfg"}}});
        assert_eq!(
            validating_admission_policy_binding_row(&b, now())[2],
            json!("*/cfg")
        );
        let b = json!({"metadata": {"name": "b"}, "spec": {"policyName": "demo", "paramRef": {"name": "cfg", "namespace": "ns"}}});
        assert_eq!(
            validating_admission_policy_binding_row(&b, now())[2],
            json!("ns/cfg")
        );
        let b = json!({"metadata": {"name": "b"}, "spec": {"policyName": "demo", "paramRef": {"selector": {
            "matchLabels": {"app": "x"}, "matchExpressions": [{"key": "k", "operator": "In", "values": ["a", "b"]}]}}}});
        assert_eq!(
            validating_admission_policy_binding_row(&b, now())[2],
            json!("&LabelSelector{MatchLabels:map[string]string{app: x,},MatchExpressions:[]LabelSelectorRequirement{LabelSelectorRequirement{Key:k,Operator:In,Values:[a b],},},}")
        );
        let b = json!({"metadata": {"name": "b"}, "spec": {"policyName": "demo"}});
        assert_eq!(
            validating_admission_policy_binding_row(&b, now())[2],
            json!("<unset>")
        );
    }

    #[test]
    fn api_service_cells() {
        let local = json!({"metadata": {"name": "v1.apps", "creationTimestamp": "2024-05-01T11:00:00Z"},
            "spec": {"group": "apps", "version": "v1"},
            "status": {"conditions": [{"type": "Available", "status": "True", "reason": "Local"}]}});
        assert_eq!(
            api_service_row(&local, now()),
            vec![
                json!("v1.apps"),
                json!("Local"),
                json!("True"),
                json!("60m")
            ]
        );
        let remote = json!({"metadata": {"name": "v1beta1.metrics.k8s.io"},
            "spec": {"service": {"namespace": "kube-system", "name": "metrics-server"}},
            "status": {"conditions": [{"type": "Available", "status": "False", "reason": "MissingEndpoints"}]}});
        let c = api_service_row(&remote, now());
        assert_eq!(c[1], json!("kube-system/metrics-server"));
        assert_eq!(c[2], json!("False (MissingEndpoints)"));
        let unknown = json!({"metadata": {"name": "x"}, "spec": {}});
        assert_eq!(api_service_row(&unknown, now())[2], json!("Unknown"));
    }

    #[test]
    fn flowcontrol_cells() {
        let fs = json!({"metadata": {"name": "exempt", "creationTimestamp": "2024-05-01T11:00:00Z"},
            "spec": {"priorityLevelConfiguration": {"name": "exempt"}, "matchingPrecedence": 1},
            "status": {"conditions": [{"type": "Dangling", "status": "False"}]}});
        assert_eq!(
            flow_schema_row(&fs, now()),
            vec![
                json!("exempt"),
                json!("exempt"),
                json!(1),
                json!("<none>"),
                json!("60m"),
                json!("False")
            ]
        );
        let fs = json!({"metadata": {"name": "x"}, "spec": {"priorityLevelConfiguration": {"name": "workload-low"},
            "matchingPrecedence": 9000, "distinguisherMethod": {"type": "ByUser"}}});
        let c = flow_schema_row(&fs, now());
        assert_eq!(c[3], json!("ByUser"));
        assert_eq!(c[5], json!("?"));
        let pl = json!({"metadata": {"name": "workload-low"}, "spec": {"type": "Limited", "limited": {
            "nominalConcurrencyShares": 100, "limitResponse": {"type": "Queue", "queuing": {"queues": 128, "handSize": 6, "queueLengthLimit": 50}}}}});
        assert_eq!(
            priority_level_row(&pl, now()),
            vec![
                json!("workload-low"),
                json!("Limited"),
                json!(100),
                json!(128),
                json!(6),
                json!(50),
                json!("<unknown>")
            ]
        );
        let pl = json!({"metadata": {"name": "exempt"}, "spec": {"type": "Exempt", "exempt": {}}});
        assert_eq!(
            priority_level_row(&pl, now()),
            vec![
                json!("exempt"),
                json!("Exempt"),
                json!("<none>"),
                json!("<none>"),
                json!("<none>"),
                json!("<none>"),
                json!("<unknown>")
            ]
        );
    }
}
