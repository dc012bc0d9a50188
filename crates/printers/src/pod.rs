//! Pod and PodTemplate tables, including upstream's pod STATUS/READY/RESTARTS
//! derivation (init containers, sidecars, waiting/terminated reasons,
//! Terminating, node-lost pods, readiness gates).

use jiff::Timestamp;
use serde_json::{json, Value};

use crate::docs;
use crate::duration::since;
use crate::json::{arr_at, bool_at, get, int_at, is_deleting, name, opt_bool, s, str_at, time_at};
use crate::labels::format_labels;
use crate::{age, containers_cells, Column, Printer, AGE, NAME};

/// `kubectl get pods`.
pub static POD: Printer = Printer {
    columns: &[
        NAME,
        Column::new(
            "Ready",
            "string",
            "The aggregate readiness state of this pod for accepting traffic.",
        ),
        Column::new(
            "Status",
            "string",
            "The aggregate status of the containers in this pod.",
        ),
        Column::new(
            "Restarts",
            "string",
            "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.",
        ),
        AGE,
        Column::wide(
            "IP",
            "string",
            "The IP address allocated to the pod; routable at least within the cluster. Empty if not yet allocated.",
        ),
        Column::wide(
            "Node",
            "string",
            "NodeName is the node this pod is scheduled onto; set by the scheduler once it binds the pod.",
        ),
        Column::wide(
            "Nominated Node",
            "string",
            "nominatedNodeName is set only when this pod preempts other pods on a node and cannot be scheduled right away.",
        ),
        Column::wide(
            "Readiness Gates",
            "string",
            "Conditions that must all be true, in addition to container readiness, for the pod to be ready.",
        ),
    ],
    row: pod_row,
};

/// `kubectl get podtemplates`.
pub static POD_TEMPLATE: Printer = Printer {
    columns: &[
        NAME,
        Column::new("Containers", "string", docs::CONTAINERS),
        Column::new("Images", "string", docs::IMAGES),
        Column::new("Pod Labels", "string", "The labels for the pod template."),
    ],
    row: pod_template_row,
};

fn pod_template_row(obj: &Value, _now: Timestamp) -> Vec<Value> {
    let (names, images) = containers_cells(obj, &["template", "spec", "containers"]);
    vec![
        s(name(obj)),
        s(names),
        s(images),
        s(format_labels(get(obj, &["template", "metadata", "labels"]))),
    ]
}

/// Row conditions upstream attaches to pods that have run to completion.
pub(crate) fn pod_conditions(pod: &Value) -> Option<Value> {
    match str_at(pod, &["status", "phase"]) {
        "Succeeded" => Some(json!([{
            "type": "Completed",
            "status": "True",
            "reason": "Succeeded",
            "message": "The pod has completed successfully."
        }])),
        "Failed" => Some(json!([{
            "type": "Completed",
            "status": "True",
            "reason": "Failed",
            "message": "The pod failed."
        }])),
        _ => None,
    }
}

fn later(cur: Option<Timestamp>, t: Option<Timestamp>) -> Option<Timestamp> {
    match (cur, t) {
        (Some(c), Some(t)) if t > c => Some(t),
        (None, Some(t)) => Some(t),
        (c, _) => c,
    }
}

fn condition_true(pod: &Value, type_: &str) -> bool {
    arr_at(pod, &["status", "conditions"])
        .iter()
        .find(|c| str_at(c, &["type"]) == type_)
        .is_some_and(|c| str_at(c, &["status"]) == "True")
}

fn has_ready_condition(pod: &Value) -> bool {
    arr_at(pod, &["status", "conditions"])
        .iter()
        .any(|c| str_at(c, &["type"]) == "Ready" && str_at(c, &["status"]) == "True")
}

fn terminated_reason(term: &Value, prefix: &str) -> String {
    let reason = str_at(term, &["reason"]);
    if !reason.is_empty() {
        return format!("{prefix}{reason}");
    }
    let signal = int_at(term, &["signal"]);
    if signal != 0 {
        format!("{prefix}Signal:{signal}")
    } else {
        format!("{prefix}ExitCode:{}", int_at(term, &["exitCode"]))
    }
}

fn pod_row(pod: &Value, now: Timestamp) -> Vec<Value> {
    let containers = arr_at(pod, &["spec", "containers"]);
    let init_containers = arr_at(pod, &["spec", "initContainers"]);
    let mut restarts: i64 = 0;
    let mut sidecar_restarts: i64 = 0;
    let mut total = containers.len();
    let mut ready = 0usize;
    let mut last_restart: Option<Timestamp> = None;
    let mut last_sidecar_restart: Option<Timestamp> = None;

    let phase = str_at(pod, &["status", "phase"]);
    let status_reason = str_at(pod, &["status", "reason"]);
    let mut reason = if status_reason.is_empty() {
        phase.to_string()
    } else {
        status_reason.to_string()
    };
    for c in arr_at(pod, &["status", "conditions"]) {
        if str_at(c, &["type"]) == "PodScheduled" && str_at(c, &["reason"]) == "SchedulingGated" {
            reason = "SchedulingGated".to_string();
        }
    }

    let is_sidecar = |container_name: &str| {
        init_containers.iter().any(|c| {
            str_at(c, &["name"]) == container_name && str_at(c, &["restartPolicy"]) == "Always"
        })
    };
    total += init_containers
        .iter()
        .filter(|c| str_at(c, &["restartPolicy"]) == "Always")
        .count();

    let mut initializing = false;
    for (i, cs) in arr_at(pod, &["status", "initContainerStatuses"])
        .iter()
        .enumerate()
    {
        let rc = int_at(cs, &["restartCount"]);
        restarts += rc;
        let finished = time_at(cs, &["lastState", "terminated", "finishedAt"]);
        if get(cs, &["lastState", "terminated"]).is_some() {
            last_restart = later(last_restart, finished);
        }
        let sidecar = is_sidecar(str_at(cs, &["name"]));
        if sidecar {
            sidecar_restarts += rc;
            if get(cs, &["lastState", "terminated"]).is_some() {
                last_sidecar_restart = later(last_sidecar_restart, finished);
            }
        }
        let terminated = get(cs, &["state", "terminated"]);
        let waiting = get(cs, &["state", "waiting"]);
        if terminated.is_some_and(|t| int_at(t, &["exitCode"]) == 0) {
            continue;
        }
        if sidecar && opt_bool(cs, &["started"]) == Some(true) {
            if bool_at(cs, &["ready"]) {
                ready += 1;
            }
            continue;
        }
        if let Some(t) = terminated {
            reason = terminated_reason(t, "Init:");
        } else if let Some(w) = waiting.filter(|w| {
            let r = str_at(w, &["reason"]);
            !r.is_empty() && r != "PodInitializing"
        }) {
            reason = format!("Init:{}", str_at(w, &["reason"]));
        } else {
            reason = format!("Init:{}/{}", i, init_containers.len());
        }
        initializing = true;
        break;
    }

    if !initializing || condition_true(pod, "Initialized") {
        restarts = sidecar_restarts;
        last_restart = last_sidecar_restart;
        let mut has_running = false;
        for cs in arr_at(pod, &["status", "containerStatuses"]).iter().rev() {
            restarts += int_at(cs, &["restartCount"]);
            if get(cs, &["lastState", "terminated"]).is_some() {
                last_restart = later(
                    last_restart,
                    time_at(cs, &["lastState", "terminated", "finishedAt"]),
                );
            }
            let waiting_reason = get(cs, &["state", "waiting"])
                .map(|w| str_at(w, &["reason"]))
                .unwrap_or("");
            let terminated = get(cs, &["state", "terminated"]);
            if !waiting_reason.is_empty() {
                reason = waiting_reason.to_string();
            } else if let Some(t) = terminated {
                reason = terminated_reason(t, "");
            } else if bool_at(cs, &["ready"]) && get(cs, &["state", "running"]).is_some() {
                has_running = true;
                ready += 1;
            }
        }
        if reason == "Completed" && has_running {
            reason = if has_ready_condition(pod) {
                "Running".to_string()
            } else {
                "NotReady".to_string()
            };
        }
    }

    if is_deleting(pod) && status_reason == "NodeLost" {
        reason = "Unknown".to_string();
    } else if is_deleting(pod) && phase != "Failed" && phase != "Succeeded" {
        reason = "Terminating".to_string();
    }

    let restarts_cell = match last_restart {
        Some(t) if restarts != 0 => format!("{restarts} ({} ago)", since(Some(t), now)),
        _ => restarts.to_string(),
    };

    let mut pod_ip = arr_at(pod, &["status", "podIPs"])
        .first()
        .map(|p| str_at(p, &["ip"]))
        .unwrap_or_else(|| str_at(pod, &["status", "podIP"]));
    if pod_ip.is_empty() {
        pod_ip = "<none>";
    }
    let node = non_empty(str_at(pod, &["spec", "nodeName"]), "<none>");
    let nominated = non_empty(str_at(pod, &["status", "nominatedNodeName"]), "<none>");
    let gates = arr_at(pod, &["spec", "readinessGates"]);
    let readiness_gates = if gates.is_empty() {
        "<none>".to_string()
    } else {
        let conditions = arr_at(pod, &["status", "conditions"]);
        let true_count = gates
            .iter()
            .filter(|g| {
                let ct = str_at(g, &["conditionType"]);
                conditions
                    .iter()
                    .find(|c| str_at(c, &["type"]) == ct)
                    .is_some_and(|c| str_at(c, &["status"]) == "True")
            })
            .count();
        format!("{}/{}", true_count, gates.len())
    };

    vec![
        s(name(pod)),
        s(format!("{ready}/{total}")),
        s(reason),
        s(restarts_cell),
        s(age(pod, now)),
        s(pod_ip),
        s(node),
        s(nominated),
        s(readiness_gates),
    ]
}

fn non_empty<'a>(v: &'a str, fallback: &'a str) -> &'a str {
    if v.is_empty() {
        fallback
    } else {
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> Timestamp {
        "2024-05-01T12:00:00Z".parse().unwrap()
    }

    fn cells(pod: Value) -> Vec<Value> {
        pod_row(&pod, now())
    }

    fn status_of(pod: Value) -> String {
        cells(pod)[2].as_str().unwrap().to_string()
    }

    #[test]
    fn running_pod_full_row() {
        let pod = json!({
            "metadata": {"name": "web-7d4b9c7f8-x2x9z", "creationTimestamp": "2024-05-01T09:00:00Z"},
            "spec": {"nodeName": "node-1", "containers": [{"name": "web"}, {"name": "proxy"}]},
            "status": {
                "phase": "Running",
                "podIP": "10.244.1.5",
                "podIPs": [{"ip": "10.244.1.5"}, {"ip": "fd00::5"}],
                "conditions": [{"type": "Ready", "status": "True"}],
                "containerStatuses": [
                    {"name": "web", "ready": true, "restartCount": 2, "state": {"running": {}},
                     "lastState": {"terminated": {"exitCode": 1, "finishedAt": "2024-05-01T11:55:00Z"}}},
                    {"name": "proxy", "ready": true, "restartCount": 0, "state": {"running": {}}}
                ]
            }
        });
        assert_eq!(
            cells(pod),
            vec![
                json!("web-7d4b9c7f8-x2x9z"),
                json!("2/2"),
                json!("Running"),
                json!("2 (5m ago)"),
                json!("3h"),
                json!("10.244.1.5"),
                json!("node-1"),
                json!("<none>"),
                json!("<none>"),
            ]
        );
    }

    #[test]
    fn pending_pod_defaults() {
        let pod = json!({
            "metadata": {"name": "p", "creationTimestamp": "2024-05-01T11:59:30Z"},
            "spec": {"containers": [{"name": "c"}]},
            "status": {"phase": "Pending"}
        });
        assert_eq!(
            cells(pod),
            vec![
                json!("p"),
                json!("0/1"),
                json!("Pending"),
                json!("0"),
                json!("30s"),
                json!("<none>"),
                json!("<none>"),
                json!("<none>"),
                json!("<none>"),
            ]
        );
    }

    #[test]
    fn container_creating_and_crashloop() {
        let pod = json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c"}]},
            "status": {"phase": "Pending", "containerStatuses": [
                {"name": "c", "ready": false, "restartCount": 0, "state": {"waiting": {"reason": "ContainerCreating"}}}
            ]}
        });
        assert_eq!(status_of(pod), "ContainerCreating");
        let pod = json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c"}]},
            "status": {"phase": "Running", "containerStatuses": [
                {"name": "c", "ready": false, "restartCount": 7,
                 "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                 "lastState": {"terminated": {"exitCode": 1, "reason": "Error", "finishedAt": "2024-05-01T11:58:00Z"}}}
            ]}
        });
        let c = cells(pod);
        assert_eq!(c[1], json!("0/1"));
        assert_eq!(c[2], json!("CrashLoopBackOff"));
        assert_eq!(c[3], json!("7 (2m ago)"));
    }

    #[test]
    fn terminated_reasons() {
        let mk = |term: Value| {
            json!({
                "metadata": {"name": "p"},
                "spec": {"containers": [{"name": "c"}]},
                "status": {"phase": "Failed", "containerStatuses": [
                    {"name": "c", "ready": false, "restartCount": 0, "state": {"terminated": term}}
                ]}
            })
        };
        assert_eq!(
            status_of(mk(json!({"exitCode": 0, "reason": "Completed"}))),
            "Completed"
        );
        assert_eq!(
            status_of(mk(json!({"exitCode": 1, "reason": "Error"}))),
            "Error"
        );
        assert_eq!(
            status_of(mk(json!({"exitCode": 137, "reason": "OOMKilled"}))),
            "OOMKilled"
        );
        assert_eq!(status_of(mk(json!({"exitCode": 2}))), "ExitCode:2");
        assert_eq!(
            status_of(mk(json!({"exitCode": 0, "signal": 9}))),
            "Signal:9"
        );
    }

    #[test]
    fn completed_with_running_sibling() {
        let mk = |ready_cond: &str| {
            json!({
                "metadata": {"name": "p"},
                "spec": {"containers": [{"name": "a"}, {"name": "b"}]},
                "status": {"phase": "Running",
                    "conditions": [{"type": "Ready", "status": ready_cond}],
                    "containerStatuses": [
                        {"name": "a", "ready": false, "restartCount": 0, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
                        {"name": "b", "ready": true, "restartCount": 0, "state": {"running": {}}}
                ]}
            })
        };
        // Statuses are walked last to first, so "a" (Completed) wins the reason.
        assert_eq!(status_of(mk("True")), "Running");
        assert_eq!(status_of(mk("False")), "NotReady");
    }

    #[test]
    fn init_container_progress() {
        let pod = json!({
            "metadata": {"name": "p"},
            "spec": {"initContainers": [{"name": "i1"}, {"name": "i2"}], "containers": [{"name": "c"}]},
            "status": {"phase": "Pending",
                "initContainerStatuses": [
                    {"name": "i1", "ready": true, "restartCount": 0, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
                    {"name": "i2", "ready": false, "restartCount": 0, "state": {"running": {}}}
                ],
                "containerStatuses": [
                    {"name": "c", "ready": false, "restartCount": 0, "state": {"waiting": {"reason": "PodInitializing"}}}
                ]}
        });
        let c = cells(pod);
        assert_eq!(c[1], json!("0/1"));
        assert_eq!(c[2], json!("Init:1/2"));
        assert_eq!(c[3], json!("0"));
    }

    #[test]
    fn init_container_waiting_and_failures() {
        let mk = |state: Value, restarts: i64| {
            json!({
                "metadata": {"name": "p"},
                "spec": {"initContainers": [{"name": "i1"}], "containers": [{"name": "c"}]},
                "status": {"phase": "Pending",
                    "initContainerStatuses": [
                        {"name": "i1", "ready": false, "restartCount": restarts, "state": state,
                         "lastState": {"terminated": {"exitCode": 1, "finishedAt": "2024-05-01T11:00:00Z"}}}
                    ],
                    "containerStatuses": [
                        {"name": "c", "ready": false, "restartCount": 0, "state": {"waiting": {"reason": "PodInitializing"}}}
                    ]}
            })
        };
        let c = cells(mk(json!({"waiting": {"reason": "CrashLoopBackOff"}}), 4));
        assert_eq!(c[2], json!("Init:CrashLoopBackOff"));
        assert_eq!(c[3], json!("4 (60m ago)"));
        assert_eq!(
            status_of(mk(
                json!({"terminated": {"exitCode": 1, "reason": "Error"}}),
                0
            )),
            "Init:Error"
        );
        assert_eq!(
            status_of(mk(json!({"terminated": {"exitCode": 3}}), 0)),
            "Init:ExitCode:3"
        );
        assert_eq!(
            status_of(mk(json!({"terminated": {"exitCode": 3, "signal": 15}}), 0)),
            "Init:Signal:15"
        );
        assert_eq!(
            status_of(mk(json!({"waiting": {"reason": "PodInitializing"}}), 0)),
            "Init:0/1"
        );
        assert_eq!(status_of(mk(json!({"waiting": {}}), 0)), "Init:0/1");
    }

    #[test]
    fn pod_initializing_after_init_done() {
        let pod = json!({
            "metadata": {"name": "p"},
            "spec": {"initContainers": [{"name": "i1"}], "containers": [{"name": "c"}]},
            "status": {"phase": "Pending",
                "conditions": [{"type": "Initialized", "status": "True"}],
                "initContainerStatuses": [
                    {"name": "i1", "ready": true, "restartCount": 1, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}
                ],
                "containerStatuses": [
                    {"name": "c", "ready": false, "restartCount": 0, "state": {"waiting": {"reason": "PodInitializing"}}}
                ]}
        });
        let c = cells(pod);
        assert_eq!(c[2], json!("PodInitializing"));
        // Restarts of ordinary init containers are dropped once initialized.
        assert_eq!(c[3], json!("0"));
    }

    #[test]
    fn sidecar_containers_count_toward_ready() {
        let pod = json!({
            "metadata": {"name": "p"},
            "spec": {
                "initContainers": [{"name": "log", "restartPolicy": "Always"}, {"name": "setup"}],
                "containers": [{"name": "app"}]
            },
            "status": {"phase": "Running",
                "conditions": [{"type": "Initialized", "status": "True"}, {"type": "Ready", "status": "True"}],
                "initContainerStatuses": [
                    {"name": "log", "ready": true, "started": true, "restartCount": 3, "state": {"running": {}},
                     "lastState": {"terminated": {"exitCode": 1, "finishedAt": "2024-05-01T11:50:00Z"}}},
                    {"name": "setup", "ready": false, "restartCount": 1, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}},
                     "lastState": {"terminated": {"exitCode": 1, "finishedAt": "2024-05-01T11:59:00Z"}}}
                ],
                "containerStatuses": [
                    {"name": "app", "ready": true, "restartCount": 1, "state": {"running": {}},
                     "lastState": {"terminated": {"exitCode": 1, "finishedAt": "2024-05-01T11:30:00Z"}}}
                ]}
        });
        let c = cells(pod);
        assert_eq!(c[1], json!("2/2"));
        assert_eq!(c[2], json!("Running"));
        // sidecar restarts (3) + app restarts (1); latest of their restarts (11:50).
        assert_eq!(c[3], json!("4 (10m ago)"));
    }

    #[test]
    fn sidecar_not_started_blocks_init() {
        let pod = json!({
            "metadata": {"name": "p"},
            "spec": {
                "initContainers": [{"name": "log", "restartPolicy": "Always"}],
                "containers": [{"name": "app"}]
            },
            "status": {"phase": "Pending",
                "initContainerStatuses": [
                    {"name": "log", "ready": false, "started": false, "restartCount": 0, "state": {"running": {}}}
                ]}
        });
        let c = cells(pod);
        assert_eq!(c[1], json!("0/2"));
        assert_eq!(c[2], json!("Init:0/1"));
    }

    #[test]
    fn terminating_and_node_lost() {
        let pod = json!({
            "metadata": {"name": "p", "deletionTimestamp": "2024-05-01T11:59:00Z"},
            "spec": {"containers": [{"name": "c"}]},
            "status": {"phase": "Running", "containerStatuses": [
                {"name": "c", "ready": true, "restartCount": 0, "state": {"running": {}}}
            ]}
        });
        assert_eq!(status_of(pod), "Terminating");
        let pod = json!({
            "metadata": {"name": "p", "deletionTimestamp": "2024-05-01T11:59:00Z"},
            "spec": {"containers": [{"name": "c"}]},
            "status": {"phase": "Running", "reason": "NodeLost"}
        });
        assert_eq!(status_of(pod), "Unknown");
        let pod = json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c"}]},
            "status": {"phase": "Running", "reason": "NodeLost"}
        });
        assert_eq!(status_of(pod), "NodeLost");
        // Terminal pods keep their phase even while being deleted.
        let pod = json!({
            "metadata": {"name": "p", "deletionTimestamp": "2024-05-01T11:59:00Z"},
            "spec": {"containers": [{"name": "c"}]},
            "status": {"phase": "Succeeded"}
        });
        assert_eq!(status_of(pod), "Succeeded");
    }

    #[test]
    fn evicted_and_scheduling_gated() {
        let pod = json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c"}]},
            "status": {"phase": "Failed", "reason": "Evicted"}
        });
        assert_eq!(status_of(pod), "Evicted");
        let pod = json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c"}], "schedulingGates": [{"name": "g"}]},
            "status": {"phase": "Pending", "conditions": [
                {"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}
            ]}
        });
        assert_eq!(status_of(pod), "SchedulingGated");
    }

    #[test]
    fn readiness_gates_and_nominated_node() {
        let pod = json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c"}], "readinessGates": [
                {"conditionType": "example.com/lb-ready"}, {"conditionType": "example.com/other"}
            ]},
            "status": {"phase": "Pending", "nominatedNodeName": "node-2", "conditions": [
                {"type": "example.com/lb-ready", "status": "True"},
                {"type": "example.com/other", "status": "False"}
            ]}
        });
        let c = cells(pod);
        assert_eq!(c[7], json!("node-2"));
        assert_eq!(c[8], json!("1/2"));
    }

    #[test]
    fn completed_pod_conditions() {
        let pod = json!({"status": {"phase": "Succeeded"}});
        assert_eq!(
            pod_conditions(&pod).unwrap()[0]["reason"],
            json!("Succeeded")
        );
        assert!(pod_conditions(&json!({"status": {"phase": "Running"}})).is_none());
    }

    #[test]
    fn pod_template_row_cells() {
        let pt = json!({
            "metadata": {"name": "tmpl"},
            "template": {"metadata": {"labels": {"app": "x"}}, "spec": {"containers": [
                {"name": "a", "image": "nginx:1.25"}, {"name": "b", "image": "busybox"}
            ]}}
        });
        assert_eq!(
            pod_template_row(&pt, now()),
            vec![
                json!("tmpl"),
                json!("a,b"),
                json!("nginx:1.25,busybox"),
                json!("app=x")
            ]
        );
    }
}
