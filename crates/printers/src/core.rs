//! Core (`v1`) printers other than pods and networking: namespaces,
//! configmaps, secrets, serviceaccounts, nodes, events, resourcequotas,
//! persistentvolumes, persistentvolumeclaims, componentstatuses.

use jiff::Timestamp;
use serde_json::Value;

use crate::duration::since;
use crate::json::{
    annotation, arr_at, bool_at, get, int_at, is_deleting, len_at, n, name, obj_at, opt_str,
    parse_time, s, str_at, time_at,
};
use crate::quantity::canonical;
use crate::{age, Column, Printer, AGE, NAME};

/// `kubectl get namespaces`.
pub static NAMESPACE: Printer = Printer {
    columns: &[
        NAME,
        Column::new("Status", "string", "The status of the namespace"),
        AGE,
    ],
    row: namespace_row,
};

fn namespace_row(obj: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        s(name(obj)),
        s(str_at(obj, &["status", "phase"])),
        s(age(obj, now)),
    ]
}

/// `kubectl get configmaps`.
pub static CONFIG_MAP: Printer = Printer {
    columns: &[
        NAME,
        Column::new(
            "Data",
            "string",
            "Data contains the configuration data; keys must be valid config keys.",
        ),
        AGE,
    ],
    row: config_map_row,
};

fn config_map_row(obj: &Value, now: Timestamp) -> Vec<Value> {
    let count = len_at(obj, &["data"]) + len_at(obj, &["binaryData"]);
    vec![s(name(obj)), n(count as i64), s(age(obj, now))]
}

/// `kubectl get secrets`.
pub static SECRET: Printer = Printer {
    columns: &[
        NAME,
        Column::new(
            "Type",
            "string",
            "Used to facilitate programmatic handling of secret data.",
        ),
        Column::new(
            "Data",
            "string",
            "Data contains the secret data; values are base64 encoded bytes.",
        ),
        AGE,
    ],
    row: secret_row,
};

fn secret_row(obj: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        s(name(obj)),
        s(str_at(obj, &["type"])),
        n(len_at(obj, &["data"]) as i64),
        s(age(obj, now)),
    ]
}

/// `kubectl get serviceaccounts`.
pub static SERVICE_ACCOUNT: Printer = Printer {
    columns: &[
        NAME,
        Column::new(
            "Secrets",
            "string",
            "Secrets is a list of secrets in the same namespace that pods running as this service account may use.",
        ),
        AGE,
    ],
    row: service_account_row,
};

fn service_account_row(obj: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        s(name(obj)),
        n(arr_at(obj, &["secrets"]).len() as i64),
        s(age(obj, now)),
    ]
}

const NODE_ADDRESSES: &str =
    "List of addresses reachable to the node, queried from the cloud provider if available.";

/// `kubectl get nodes`.
pub static NODE: Printer = Printer {
    columns: &[
        NAME,
        Column::new("Status", "string", "The status of the node"),
        Column::new("Roles", "string", "The roles of the node"),
        AGE,
        Column::new("Version", "string", "Kubelet Version reported by the node."),
        Column::wide("Internal-IP", "string", NODE_ADDRESSES),
        Column::wide("External-IP", "string", NODE_ADDRESSES),
        Column::wide(
            "OS-Image",
            "string",
            "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 12 (bookworm)).",
        ),
        Column::wide(
            "Kernel-Version",
            "string",
            "Kernel Version reported by the node from 'uname -r'.",
        ),
        Column::wide(
            "Container-Runtime",
            "string",
            "ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.7.0).",
        ),
    ],
    row: node_row,
};

fn node_row(obj: &Value, now: Timestamp) -> Vec<Value> {
    let mut status: Vec<String> = Vec::new();
    // Only the Ready condition is summarized; the last one of that type wins.
    if let Some(c) = arr_at(obj, &["status", "conditions"])
        .iter()
        .rev()
        .find(|c| str_at(c, &["type"]) == "Ready")
    {
        if str_at(c, &["status"]) == "True" {
            status.push("Ready".to_string());
        } else {
            status.push("NotReady".to_string());
        }
    }
    if status.is_empty() {
        status.push("Unknown".to_string());
    }
    if bool_at(obj, &["spec", "unschedulable"]) {
        status.push("SchedulingDisabled".to_string());
    }

    let mut roles: Vec<&str> = Vec::new();
    if let Some(labels) = obj_at(obj, &["metadata", "labels"]) {
        for (k, v) in labels {
            if let Some(role) = k.strip_prefix("node-role.kubernetes.io/") {
                if !role.is_empty() {
                    roles.push(role);
                }
            } else if k == "kubernetes.io/role" {
                let v = v.as_str().unwrap_or("");
                if !v.is_empty() {
                    roles.push(v);
                }
            }
        }
    }
    roles.sort_unstable();
    roles.dedup();
    let roles = if roles.is_empty() {
        "<none>".to_string()
    } else {
        roles.join(",")
    };

    let address = |kind: &str| {
        arr_at(obj, &["status", "addresses"])
            .iter()
            .find(|a| str_at(a, &["type"]) == kind)
            .map(|a| str_at(a, &["address"]).to_string())
            .unwrap_or_else(|| "<none>".to_string())
    };
    let info = |field: &str| {
        let v = str_at(obj, &["status", "nodeInfo", field]);
        if v.is_empty() {
            "<unknown>".to_string()
        } else {
            v.to_string()
        }
    };

    vec![
        s(name(obj)),
        s(status.join(",")),
        s(roles),
        s(age(obj, now)),
        s(str_at(obj, &["status", "nodeInfo", "kubeletVersion"])),
        s(address("InternalIP")),
        s(address("ExternalIP")),
        s(info("osImage")),
        s(info("kernelVersion")),
        s(info("containerRuntimeVersion")),
    ]
}

/// `kubectl get events` (core/v1 and events.k8s.io/v1 share this table).
pub static EVENT: Printer = Printer {
    columns: &[
        Column::new(
            "Last Seen",
            "string",
            "The time at which the most recent occurrence of this event was recorded.",
        ),
        Column::new(
            "Type",
            "string",
            "Type of this event (Normal, Warning); new types could be added in the future.",
        ),
        Column::new(
            "Reason",
            "string",
            "A short, machine understandable string giving the reason for the transition into the object's current status.",
        ),
        Column::new("Object", "string", "The object that this event is about."),
        Column::wide(
            "Subobject",
            "string",
            "If referring to a piece of an object instead of an entire object, this string identifies that piece (e.g. spec.containers{name}).",
        ),
        Column::wide(
            "Source",
            "string",
            "The component reporting this event. Should be a short machine understandable string.",
        ),
        Column::new(
            "Message",
            "string",
            "A human-readable description of the status of this operation.",
        ),
        Column::wide(
            "First Seen",
            "string",
            "The time at which the event was first recorded. (Time of server receipt is in TypeMeta.)",
        ),
        Column::wide(
            "Count",
            "string",
            "The number of times this event has occurred.",
        ),
        crate::Column {
            name: "Name",
            type_: "string",
            format: "name",
            description: crate::docs::NAME,
            priority: 1,
        },
    ],
    row: event_row,
};

/// Event fields under their core/v1 names, read from either API shape.
struct EventView<'a> {
    obj: &'a Value,
    /// events.k8s.io/v1 shape (`regarding`, `note`, `deprecated*`).
    new_api: bool,
}

impl<'a> EventView<'a> {
    fn new(obj: &'a Value) -> Self {
        let new_api = str_at(obj, &["apiVersion"]).starts_with("events.k8s.io/")
            || (get(obj, &["involvedObject"]).is_none()
                && (get(obj, &["regarding"]).is_some() || get(obj, &["note"]).is_some()));
        EventView { obj, new_api }
    }

    fn field(&self, core: &'static str, new: &'static str) -> Option<&'a Value> {
        get(self.obj, &[if self.new_api { new } else { core }])
    }

    fn str(&self, core: &'static str, new: &'static str) -> &'a str {
        self.field(core, new).and_then(Value::as_str).unwrap_or("")
    }
}

fn event_row(obj: &Value, now: Timestamp) -> Vec<Value> {
    let ev = EventView::new(obj);
    let time = |core: &'static str, new: &'static str| {
        ev.field(core, new)
            .and_then(Value::as_str)
            .and_then(parse_time)
    };
    let first_ts = time("firstTimestamp", "deprecatedFirstTimestamp");
    let first = if first_ts.is_some() {
        since(first_ts, now)
    } else {
        since(time_at(obj, &["eventTime"]), now)
    };
    let last_ts = time("lastTimestamp", "deprecatedLastTimestamp");
    let mut last = if last_ts.is_some() {
        since(last_ts, now)
    } else {
        first.clone()
    };
    let mut count = ev
        .field("count", "deprecatedCount")
        .and_then(|v| v.as_i64())
        .unwrap_or(0);
    if let Some(series) = get(obj, &["series"]) {
        last = since(time_at(series, &["lastObservedTime"]), now);
        count = int_at(series, &["count"]);
    } else if count == 0 {
        count = 1;
    }

    let involved = ev.field("involvedObject", "regarding");
    let kind = involved.map(|o| str_at(o, &["kind"])).unwrap_or("");
    let inv_name = involved.map(|o| str_at(o, &["name"])).unwrap_or("");
    let target = if inv_name.is_empty() {
        kind.to_lowercase()
    } else {
        format!("{}/{}", kind.to_lowercase(), inv_name)
    };
    let field_path = involved.map(|o| str_at(o, &["fieldPath"])).unwrap_or("");

    let source = ev.field("source", "deprecatedSource");
    let component = source.map(|o| str_at(o, &["component"])).unwrap_or("");
    let host = source.map(|o| str_at(o, &["host"])).unwrap_or("");
    let component = if component.is_empty() {
        str_at(obj, &["reportingController"])
    } else {
        component
    };
    let host = if host.is_empty() {
        str_at(obj, &["reportingInstance"])
    } else {
        host
    };
    let source = if host.is_empty() {
        component.to_string()
    } else {
        format!("{component}, {host}")
    };

    vec![
        s(last),
        s(str_at(obj, &["type"])),
        s(str_at(obj, &["reason"])),
        s(target),
        s(field_path),
        s(source),
        s(ev.str("message", "note").trim()),
        s(first),
        n(count),
        s(name(obj)),
    ]
}

/// `kubectl get resourcequotas`.
pub static RESOURCE_QUOTA: Printer = Printer {
    columns: &[
        NAME,
        Column::new(
            "Request",
            "string",
            "Request represents a minimum amount of cpu/memory that a container may consume.",
        ),
        Column::new(
            "Limit",
            "string",
            "Limits control the maximum amount of cpu/memory that a container may use independent of contention on the node.",
        ),
        AGE,
    ],
    row: resource_quota_row,
};

fn resource_quota_row(obj: &Value, now: Timestamp) -> Vec<Value> {
    let mut resources: Vec<&String> = obj_at(obj, &["status", "hard"])
        .map(|m| m.keys().collect())
        .unwrap_or_default();
    resources.sort();
    let mut requests: Vec<String> = Vec::new();
    let mut limits: Vec<String> = Vec::new();
    for r in resources {
        let used = quantity_cell(get(obj, &["status", "used", r.as_str()]));
        let hard = quantity_cell(get(obj, &["status", "hard", r.as_str()]));
        let entry = format!("{r}: {used}/{hard}");
        let mut pieces = r.split('.');
        let first = pieces.next().unwrap_or("");
        if pieces.next().is_some() && first == "limits" {
            limits.push(entry);
        } else {
            requests.push(entry);
        }
    }
    vec![
        s(name(obj)),
        s(requests.join(", ")),
        s(limits.join(", ")),
        s(age(obj, now)),
    ]
}

/// Canonical quantity text; a missing quantity prints as Go's zero value, "0".
pub(crate) fn quantity_cell(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(q)) => canonical(q),
        Some(Value::Number(num)) => canonical(&num.to_string()),
        _ => "0".to_string(),
    }
}

/// Access modes as `RWO,ROX,RWX,RWOP` (fixed order, duplicates removed).
fn access_modes(modes: &[Value]) -> String {
    let has = |m: &str| modes.iter().any(|v| v.as_str() == Some(m));
    let mut out = Vec::new();
    for (mode, short) in [
        ("ReadWriteOnce", "RWO"),
        ("ReadOnlyMany", "ROX"),
        ("ReadWriteMany", "RWX"),
        ("ReadWriteOncePod", "RWOP"),
    ] {
        if has(mode) {
            out.push(short);
        }
    }
    out.join(",")
}

const BETA_STORAGE_CLASS_ANNOTATION: &str = "volume.beta.kubernetes.io/storage-class";

/// `kubectl get persistentvolumes`.
pub static PERSISTENT_VOLUME: Printer = Printer {
    columns: &[
        NAME,
        Column::new(
            "Capacity",
            "string",
            "capacity is the description of the persistent volume's resources and capacity.",
        ),
        Column::new(
            "Access Modes",
            "string",
            "accessModes contains all ways the volume can be mounted.",
        ),
        Column::new(
            "Reclaim Policy",
            "string",
            "persistentVolumeReclaimPolicy defines what happens to a persistent volume when released from its claim (Retain, Delete, Recycle).",
        ),
        Column::new(
            "Status",
            "string",
            "phase indicates if a volume is available, bound to a claim, or released by a claim.",
        ),
        Column::new(
            "Claim",
            "string",
            "claimRef is part of a bi-directional binding between PersistentVolume and PersistentVolumeClaim.",
        ),
        Column::new("StorageClass", "string", "StorageClass of the pv"),
        Column::new(
            "VolumeAttributesClass",
            "string",
            "VolumeAttributesClass of the pv",
        ),
        Column::new(
            "Reason",
            "string",
            "reason is a brief CamelCase string that describes any failure and is meant for machine parsing and tidy display in the CLI.",
        ),
        AGE,
        Column::wide(
            "VolumeMode",
            "string",
            "volumeMode defines if a volume is intended to be used with a formatted filesystem or to remain in raw block state.",
        ),
    ],
    row: persistent_volume_row,
};

fn persistent_volume_row(obj: &Value, now: Timestamp) -> Vec<Value> {
    let claim = match get(obj, &["spec", "claimRef"]) {
        Some(c) => format!("{}/{}", str_at(c, &["namespace"]), str_at(c, &["name"])),
        None => String::new(),
    };
    let phase = if is_deleting(obj) {
        "Terminating"
    } else {
        str_at(obj, &["status", "phase"])
    };
    let class = annotation(obj, BETA_STORAGE_CLASS_ANNOTATION)
        .unwrap_or_else(|| str_at(obj, &["spec", "storageClassName"]));
    vec![
        s(name(obj)),
        s(quantity_cell(get(obj, &["spec", "capacity", "storage"]))),
        s(access_modes(arr_at(obj, &["spec", "accessModes"]))),
        s(str_at(obj, &["spec", "persistentVolumeReclaimPolicy"])),
        s(phase),
        s(claim),
        s(class),
        s(opt_str(obj, &["spec", "volumeAttributesClassName"]).unwrap_or("<unset>")),
        s(str_at(obj, &["status", "reason"])),
        s(age(obj, now)),
        s(opt_str(obj, &["spec", "volumeMode"]).unwrap_or("<unset>")),
    ]
}

/// `kubectl get persistentvolumeclaims`.
pub static PERSISTENT_VOLUME_CLAIM: Printer = Printer {
    columns: &[
        NAME,
        Column::new(
            "Status",
            "string",
            "phase represents the current phase of PersistentVolumeClaim.",
        ),
        Column::new(
            "Volume",
            "string",
            "volumeName is the binding reference to the PersistentVolume backing this claim.",
        ),
        Column::new(
            "Capacity",
            "string",
            "capacity represents the actual resources of the underlying volume.",
        ),
        Column::new(
            "Access Modes",
            "string",
            "accessModes contains the actual access modes the volume backing the PVC has.",
        ),
        Column::new("StorageClass", "string", "StorageClass of the pvc"),
        Column::new(
            "VolumeAttributesClass",
            "string",
            "VolumeAttributesClass of the pvc",
        ),
        AGE,
        Column::wide(
            "VolumeMode",
            "string",
            "volumeMode defines what type of volume is required by the claim. Value of Filesystem is implied when not included in claim spec.",
        ),
    ],
    row: persistent_volume_claim_row,
};

fn persistent_volume_claim_row(obj: &Value, now: Timestamp) -> Vec<Value> {
    let phase = if is_deleting(obj) {
        "Terminating"
    } else {
        str_at(obj, &["status", "phase"])
    };
    let volume = str_at(obj, &["spec", "volumeName"]);
    let (capacity, modes) = if volume.is_empty() {
        (String::new(), String::new())
    } else {
        (
            quantity_cell(get(obj, &["status", "capacity", "storage"])),
            access_modes(arr_at(obj, &["status", "accessModes"])),
        )
    };
    let class = annotation(obj, BETA_STORAGE_CLASS_ANNOTATION)
        .or_else(|| opt_str(obj, &["spec", "storageClassName"]))
        .unwrap_or("");
    vec![
        s(name(obj)),
        s(phase),
        s(volume),
        s(capacity),
        s(modes),
        s(class),
        s(opt_str(obj, &["spec", "volumeAttributesClassName"]).unwrap_or("<unset>")),
        s(age(obj, now)),
        s(opt_str(obj, &["spec", "volumeMode"]).unwrap_or("<unset>")),
    ]
}

/// `kubectl get componentstatuses`.
pub static COMPONENT_STATUS: Printer = Printer {
    columns: &[
        NAME,
        Column::new("Status", "string", "Status of the component conditions"),
        Column::new("Message", "string", "Message of the component conditions"),
        Column::new("Error", "string", "Error of the component conditions"),
    ],
    row: component_status_row,
};

fn component_status_row(obj: &Value, _now: Timestamp) -> Vec<Value> {
    let mut status = "Unknown";
    let mut message = "";
    let mut error = "";
    if let Some(c) = arr_at(obj, &["conditions"])
        .iter()
        .find(|c| str_at(c, &["type"]) == "Healthy")
    {
        status = if str_at(c, &["status"]) == "True" {
            "Healthy"
        } else {
            "Unhealthy"
        };
        message = str_at(c, &["message"]);
        error = str_at(c, &["error"]);
    }
    vec![s(name(obj)), s(status), s(message), s(error)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> Timestamp {
        "2024-05-01T12:00:00Z".parse().unwrap()
    }

    #[test]
    fn namespace_cells() {
        let ns = json!({"metadata": {"name": "default", "creationTimestamp": "2024-04-01T12:00:00Z"}, "status": {"phase": "Active"}});
        assert_eq!(
            namespace_row(&ns, now()),
            vec![json!("default"), json!("Active"), json!("30d")]
        );
    }

    #[test]
    fn configmap_and_secret_cells() {
        let cm = json!({"metadata": {"name": "kube-root-ca.crt", "creationTimestamp": "2024-05-01T11:00:00Z"},
            "data": {"ca.crt": "x"}, "binaryData": {"b": "AA=="}});
        assert_eq!(
            config_map_row(&cm, now()),
            vec![json!("kube-root-ca.crt"), json!(2), json!("60m")]
        );
        let sec = json!({"metadata": {"name": "tls", "creationTimestamp": "2024-05-01T11:58:30Z"},
            "type": "kubernetes.io/tls", "data": {"tls.crt": "", "tls.key": ""}});
        assert_eq!(
            secret_row(&sec, now()),
            vec![
                json!("tls"),
                json!("kubernetes.io/tls"),
                json!(2),
                json!("90s")
            ]
        );
    }

    #[test]
    fn serviceaccount_cells() {
        let sa =
            json!({"metadata": {"name": "default", "creationTimestamp": "2024-05-01T08:00:00Z"}});
        assert_eq!(
            service_account_row(&sa, now()),
            vec![json!("default"), json!(0), json!("4h")]
        );
    }

    #[test]
    fn node_cells() {
        let node = json!({
            "metadata": {"name": "cp-1", "creationTimestamp": "2024-04-20T12:00:00Z", "labels": {
                "node-role.kubernetes.io/control-plane": "",
                "node-role.kubernetes.io/": "",
                "kubernetes.io/role": "master",
                "kubernetes.io/hostname": "cp-1"
            }},
            "spec": {"unschedulable": true},
            "status": {
                "conditions": [
                    {"type": "MemoryPressure", "status": "False"},
                    {"type": "Ready", "status": "True"}
                ],
                "addresses": [
                    {"type": "Hostname", "address": "cp-1"},
                    {"type": "InternalIP", "address": "172.18.0.2"}
                ],
                "nodeInfo": {"kubeletVersion": "v1.33.1", "osImage": "Debian GNU/Linux 12 (bookworm)",
                    "kernelVersion": "6.1.0-18-amd64", "containerRuntimeVersion": "containerd://1.7.13"}
            }
        });
        assert_eq!(
            node_row(&node, now()),
            vec![
                json!("cp-1"),
                json!("Ready,SchedulingDisabled"),
                json!("control-plane,master"),
                json!("11d"),
                json!("v1.33.1"),
                json!("172.18.0.2"),
                json!("<none>"),
                json!("Debian GNU/Linux 12 (bookworm)"),
                json!("6.1.0-18-amd64"),
                json!("containerd://1.7.13"),
            ]
        );
        let bare = json!({"metadata": {"name": "n"}, "status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}});
        let c = node_row(&bare, now());
        assert_eq!(c[1], json!("NotReady"));
        assert_eq!(c[2], json!("<none>"));
        assert_eq!(c[3], json!("<unknown>"));
        assert_eq!(c[4], json!(""));
        assert_eq!(c[7], json!("<unknown>"));
        let none = json!({"metadata": {"name": "n"}});
        assert_eq!(node_row(&none, now())[1], json!("Unknown"));
    }

    #[test]
    fn core_event_cells() {
        let ev = json!({
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": "web.17c1", "creationTimestamp": "2024-05-01T11:50:00Z"},
            "involvedObject": {"kind": "Pod", "name": "web", "fieldPath": "spec.containers{web}"},
            "reason": "Pulled", "type": "Normal",
            "message": "Successfully pulled image \"nginx\"\n",
            "source": {"component": "kubelet", "host": "node-1"},
            "firstTimestamp": "2024-05-01T11:50:00Z",
            "lastTimestamp": "2024-05-01T11:57:00Z",
            "count": 3
        });
        assert_eq!(
            event_row(&ev, now()),
            vec![
                json!("3m"),
                json!("Normal"),
                json!("Pulled"),
                json!("pod/web"),
                json!("spec.containers{web}"),
                json!("kubelet, node-1"),
                json!("Successfully pulled image \"nginx\""),
                json!("10m"),
                json!(3),
                json!("web.17c1"),
            ]
        );
    }

    #[test]
    fn event_with_event_time_and_series() {
        let ev = json!({
            "metadata": {"name": "e"},
            "involvedObject": {"kind": "Node"},
            "reason": "Starting", "type": "Normal", "message": "m",
            "eventTime": "2024-05-01T11:00:00.123456Z",
            "reportingController": "kube-proxy", "reportingInstance": "kube-proxy-node-1",
            "series": {"count": 5, "lastObservedTime": "2024-05-01T11:59:00.000001Z"}
        });
        let c = event_row(&ev, now());
        assert_eq!(c[0], json!("59s"));
        assert_eq!(c[3], json!("node"));
        assert_eq!(c[5], json!("kube-proxy, kube-proxy-node-1"));
        // 59m59.877s since the micro-precision eventTime.
        assert_eq!(c[7], json!("59m"));
        assert_eq!(c[8], json!(5));
        let single =
            json!({"metadata": {"name": "e"}, "involvedObject": {"kind": "Pod", "name": "p"}});
        let c = event_row(&single, now());
        assert_eq!(c[0], json!("<unknown>"));
        assert_eq!(c[7], json!("<unknown>"));
        assert_eq!(c[8], json!(1));
    }

    #[test]
    fn events_k8s_io_shape() {
        let ev = json!({
            "apiVersion": "events.k8s.io/v1", "kind": "Event",
            "metadata": {"name": "web.17c1"},
            "regarding": {"kind": "Pod", "name": "web", "fieldPath": "spec.containers{web}"},
            "reason": "Killing", "type": "Normal", "note": "Stopping container web",
            "eventTime": null,
            "deprecatedSource": {"component": "kubelet", "host": "node-1"},
            "deprecatedFirstTimestamp": "2024-05-01T11:40:00Z",
            "deprecatedLastTimestamp": "2024-05-01T11:55:00Z",
            "deprecatedCount": 2
        });
        assert_eq!(
            event_row(&ev, now()),
            vec![
                json!("5m"),
                json!("Normal"),
                json!("Killing"),
                json!("pod/web"),
                json!("spec.containers{web}"),
                json!("kubelet, node-1"),
                json!("Stopping container web"),
                json!("20m"),
                json!(2),
                json!("web.17c1"),
            ]
        );
    }

    #[test]
    fn resource_quota_cells() {
        let rq = json!({
            "metadata": {"name": "compute", "creationTimestamp": "2024-05-01T11:00:00Z"},
            "status": {
                "hard": {"requests.cpu": "1", "requests.memory": "1Gi", "limits.cpu": "2", "limits.memory": "2048Mi", "pods": "10"},
                "used": {"requests.cpu": "500m", "requests.memory": "512Mi", "limits.cpu": "1", "pods": "3"}
            }
        });
        assert_eq!(
            resource_quota_row(&rq, now()),
            vec![
                json!("compute"),
                json!("pods: 3/10, requests.cpu: 500m/1, requests.memory: 512Mi/1Gi"),
                json!("limits.cpu: 1/2, limits.memory: 0/2Gi"),
                json!("60m"),
            ]
        );
    }

    #[test]
    fn persistent_volume_cells() {
        let pv = json!({
            "metadata": {"name": "pv-1", "creationTimestamp": "2024-05-01T10:00:00Z"},
            "spec": {
                "capacity": {"storage": "10Gi"},
                "accessModes": ["ReadWriteMany", "ReadWriteOnce", "ReadWriteOnce"],
                "persistentVolumeReclaimPolicy": "Retain",
                "storageClassName": "standard",
                "volumeMode": "Filesystem",
                "claimRef": {"namespace": "default", "name": "data"}
            },
            "status": {"phase": "Bound"}
        });
        assert_eq!(
            persistent_volume_row(&pv, now()),
            vec![
                json!("pv-1"),
                json!("10Gi"),
                json!("RWO,RWX"),
                json!("Retain"),
                json!("Bound"),
                json!("default/data"),
                json!("standard"),
                json!("<unset>"),
                json!(""),
                json!("120m"),
                json!("Filesystem"),
            ]
        );
        let pv = json!({
            "metadata": {"name": "pv-2", "deletionTimestamp": "2024-05-01T11:00:00Z",
                "annotations": {"volume.beta.kubernetes.io/storage-class": "legacy"}},
            "spec": {"storageClassName": "standard"},
            "status": {"phase": "Released", "reason": "Failed"}
        });
        let c = persistent_volume_row(&pv, now());
        assert_eq!(c[1], json!("0"));
        assert_eq!(c[4], json!("Terminating"));
        assert_eq!(c[6], json!("legacy"));
        assert_eq!(c[8], json!("Failed"));
        assert_eq!(c[10], json!("<unset>"));
    }

    #[test]
    fn persistent_volume_claim_cells() {
        let pvc = json!({
            "metadata": {"name": "data", "creationTimestamp": "2024-05-01T11:30:00Z"},
            "spec": {"volumeName": "pvc-123", "storageClassName": "standard", "volumeMode": "Filesystem",
                "resources": {"requests": {"storage": "1Gi"}}},
            "status": {"phase": "Bound", "capacity": {"storage": "1024Mi"}, "accessModes": ["ReadWriteOnce"]}
        });
        assert_eq!(
            persistent_volume_claim_row(&pvc, now()),
            vec![
                json!("data"),
                json!("Bound"),
                json!("pvc-123"),
                json!("1Gi"),
                json!("RWO"),
                json!("standard"),
                json!("<unset>"),
                json!("30m"),
                json!("Filesystem"),
            ]
        );
        let pending = json!({
            "metadata": {"name": "p"},
            "spec": {"resources": {"requests": {"storage": "1Gi"}}, "volumeAttributesClassName": "gold"},
            "status": {"phase": "Pending"}
        });
        assert_eq!(
            persistent_volume_claim_row(&pending, now()),
            vec![
                json!("p"),
                json!("Pending"),
                json!(""),
                json!(""),
                json!(""),
                json!(""),
                json!("gold"),
                json!("<unknown>"),
                json!("<unset>"),
            ]
        );
    }

    #[test]
    fn component_status_cells() {
        let cs = json!({"metadata": {"name": "etcd-0"}, "conditions": [
            {"type": "Healthy", "status": "True", "message": "ok"}
        ]});
        assert_eq!(
            component_status_row(&cs, now()),
            vec![json!("etcd-0"), json!("Healthy"), json!("ok"), json!("")]
        );
        let cs = json!({"metadata": {"name": "scheduler"}, "conditions": [
            {"type": "Healthy", "status": "False", "error": "connection refused"}
        ]});
        assert_eq!(
            component_status_row(&cs, now()),
            vec![
                json!("scheduler"),
                json!("Unhealthy"),
                json!(""),
                json!("connection refused")
            ]
        );
    }
}
