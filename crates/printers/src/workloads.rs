//! Workload controller printers: replicationcontrollers, deployments,
//! replicasets, statefulsets, daemonsets, controllerrevisions, jobs, cronjobs.

use jiff::Timestamp;
use serde_json::Value;

use crate::docs;
use crate::duration::{human_duration, since};
use crate::json::{
    arr_at, get, int_at, is_deleting, n, name, opt_bool, opt_int, opt_str, s, str_at, time_at,
};
use crate::labels::{format_label_selector, format_labels, selector_string};
use crate::{age, containers_cells, Column, Printer, AGE, NAME};

const CONTAINERS: Column = Column::wide("Containers", "string", docs::CONTAINERS);
const IMAGES: Column = Column::wide("Images", "string", docs::IMAGES);
const SELECTOR: Column = Column::wide("Selector", "string", docs::SELECTOR);

/// `spec.replicas`, which upstream defaulting sets to 1 when omitted.
fn desired_replicas(obj: &Value) -> i64 {
    opt_int(obj, &["spec", "replicas"]).unwrap_or(1)
}

/// `kubectl get replicationcontrollers`.
pub static REPLICATION_CONTROLLER: Printer = Printer {
    columns: &[
        NAME,
        Column::new("Desired", "integer", docs::DESIRED_REPLICAS),
        Column::new("Current", "integer", docs::CURRENT_REPLICAS),
        Column::new("Ready", "integer", docs::READY_REPLICAS),
        AGE,
        CONTAINERS,
        IMAGES,
        SELECTOR,
    ],
    row: replication_controller_row,
};

fn replication_controller_row(obj: &Value, now: Timestamp) -> Vec<Value> {
    let (names, images) = containers_cells(obj, &["spec", "template", "spec", "containers"]);
    vec![
        s(name(obj)),
        n(desired_replicas(obj)),
        n(int_at(obj, &["status", "replicas"])),
        n(int_at(obj, &["status", "readyReplicas"])),
        s(age(obj, now)),
        s(names),
        s(images),
        s(format_labels(get(obj, &["spec", "selector"]))),
    ]
}

/// `kubectl get replicasets`.
pub static REPLICA_SET: Printer = Printer {
    columns: &[
        NAME,
        Column::new("Desired", "integer", docs::DESIRED_REPLICAS),
        Column::new("Current", "integer", docs::CURRENT_REPLICAS),
        Column::new("Ready", "integer", docs::READY_REPLICAS),
        AGE,
        CONTAINERS,
        IMAGES,
        SELECTOR,
    ],
    row: replica_set_row,
};

fn replica_set_row(obj: &Value, now: Timestamp) -> Vec<Value> {
    let (names, images) = containers_cells(obj, &["spec", "template", "spec", "containers"]);
    vec![
        s(name(obj)),
        n(desired_replicas(obj)),
        n(int_at(obj, &["status", "replicas"])),
        n(int_at(obj, &["status", "readyReplicas"])),
        s(age(obj, now)),
        s(names),
        s(images),
        s(format_label_selector(get(obj, &["spec", "selector"]))),
    ]
}

/// `kubectl get deployments`.
pub static DEPLOYMENT: Printer = Printer {
    columns: &[
        NAME,
        Column::new("Ready", "string", docs::READY_OF_DESIRED),
        Column::new(
            "Up-to-date",
            "string",
            "Total number of non-terminated pods targeted by this deployment that have the desired template spec.",
        ),
        Column::new(
            "Available",
            "string",
            "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment.",
        ),
        AGE,
        CONTAINERS,
        IMAGES,
        Column::wide(
            "Selector",
            "string",
            "Label selector for pods. Existing ReplicaSets whose pods are selected by this will be the ones affected by this deployment.",
        ),
    ],
    row: deployment_row,
};

fn deployment_row(obj: &Value, now: Timestamp) -> Vec<Value> {
    let (names, images) = containers_cells(obj, &["spec", "template", "spec", "containers"]);
    let selector = selector_string(get(obj, &["spec", "selector"]))
        .unwrap_or_else(|_| "<invalid>".to_string());
    vec![
        s(name(obj)),
        s(format!(
            "{}/{}",
            int_at(obj, &["status", "readyReplicas"]),
            desired_replicas(obj)
        )),
        n(int_at(obj, &["status", "updatedReplicas"])),
        n(int_at(obj, &["status", "availableReplicas"])),
        s(age(obj, now)),
        s(names),
        s(images),
        s(selector),
    ]
}

/// `kubectl get statefulsets`.
pub static STATEFUL_SET: Printer = Printer {
    columns: &[
        NAME,
        Column::new("Ready", "string", docs::READY_OF_DESIRED),
        AGE,
        CONTAINERS,
        IMAGES,
    ],
    row: stateful_set_row,
};

fn stateful_set_row(obj: &Value, now: Timestamp) -> Vec<Value> {
    let (names, images) = containers_cells(obj, &["spec", "template", "spec", "containers"]);
    vec![
        s(name(obj)),
        s(format!(
            "{}/{}",
            int_at(obj, &["status", "readyReplicas"]),
            desired_replicas(obj)
        )),
        s(age(obj, now)),
        s(names),
        s(images),
    ]
}

/// `kubectl get daemonsets`.
pub static DAEMON_SET: Printer = Printer {
    columns: &[
        NAME,
        Column::new(
            "Desired",
            "integer",
            "The total number of nodes that should be running the daemon pod (including nodes correctly running the daemon pod).",
        ),
        Column::new(
            "Current",
            "integer",
            "The number of nodes that are running at least 1 daemon pod and are supposed to run the daemon pod.",
        ),
        Column::new(
            "Ready",
            "integer",
            "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running with a Ready Condition.",
        ),
        Column::new(
            "Up-to-date",
            "integer",
            "The total number of nodes that are running updated daemon pod",
        ),
        Column::new(
            "Available",
            "integer",
            "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and available (ready for at least spec.minReadySeconds)",
        ),
        Column::new(
            "Node Selector",
            "string",
            "NodeSelector is a selector which must be true for the pod to fit on a node.",
        ),
        AGE,
        CONTAINERS,
        IMAGES,
        Column::wide(
            "Selector",
            "string",
            "A label query over pods that are managed by the daemon set.",
        ),
    ],
    row: daemon_set_row,
};

fn daemon_set_row(obj: &Value, now: Timestamp) -> Vec<Value> {
    let (names, images) = containers_cells(obj, &["spec", "template", "spec", "containers"]);
    vec![
        s(name(obj)),
        n(int_at(obj, &["status", "desiredNumberScheduled"])),
        n(int_at(obj, &["status", "currentNumberScheduled"])),
        n(int_at(obj, &["status", "numberReady"])),
        n(int_at(obj, &["status", "updatedNumberScheduled"])),
        n(int_at(obj, &["status", "numberAvailable"])),
        s(format_labels(get(
            obj,
            &["spec", "template", "spec", "nodeSelector"],
        ))),
        s(age(obj, now)),
        s(names),
        s(images),
        s(format_label_selector(get(obj, &["spec", "selector"]))),
    ]
}

/// `kubectl get controllerrevisions`.
pub static CONTROLLER_REVISION: Printer = Printer {
    columns: &[
        NAME,
        Column::new("Controller", "string", "Controller of the object"),
        Column::new(
            "Revision",
            "string",
            "Revision indicates the revision of the state represented by Data.",
        ),
        AGE,
    ],
    row: controller_revision_row,
};

fn controller_revision_row(obj: &Value, now: Timestamp) -> Vec<Value> {
    let controller = arr_at(obj, &["metadata", "ownerReferences"])
        .iter()
        .find(|r| opt_bool(r, &["controller"]) == Some(true))
        .map(|r| {
            let api_version = str_at(r, &["apiVersion"]);
            let group = match api_version.split_once('/') {
                Some((g, _)) => g,
                None => "",
            };
            let kind = str_at(r, &["kind"]);
            let ref_name = str_at(r, &["name"]);
            if group.is_empty() && kind.is_empty() {
                ref_name.to_string()
            } else if group.is_empty() {
                format!("{}/{}", kind.to_lowercase(), ref_name)
            } else {
                format!("{}/{}", format!("{kind}.{group}").to_lowercase(), ref_name)
            }
        })
        .unwrap_or_else(|| "<none>".to_string());
    vec![
        s(name(obj)),
        s(controller),
        n(int_at(obj, &["revision"])),
        s(age(obj, now)),
    ]
}

/// `kubectl get jobs`.
pub static JOB: Printer = Printer {
    columns: &[
        NAME,
        Column::new("Status", "string", "Status of the job."),
        Column::new(
            "Completions",
            "string",
            "The number of pods which reached phase Succeeded.",
        ),
        Column::new("Duration", "string", "Time required to complete the job."),
        AGE,
        CONTAINERS,
        IMAGES,
        Column::wide(
            "Selector",
            "string",
            "A label query over pods that should match the pod count.",
        ),
    ],
    row: job_row,
};

/// Status of the first job condition of `type_`, as upstream's lookup does.
fn job_condition(obj: &Value, type_: &str) -> bool {
    arr_at(obj, &["status", "conditions"])
        .iter()
        .find(|c| str_at(c, &["type"]) == type_)
        .is_some_and(|c| str_at(c, &["status"]) == "True")
}

fn job_row(obj: &Value, now: Timestamp) -> Vec<Value> {
    let succeeded = int_at(obj, &["status", "succeeded"]);
    let completions = match opt_int(obj, &["spec", "completions"]) {
        Some(c) => format!("{succeeded}/{c}"),
        None => {
            let parallelism = opt_int(obj, &["spec", "parallelism"]).unwrap_or(0);
            if parallelism > 1 {
                format!("{succeeded}/1 of {parallelism}")
            } else {
                format!("{succeeded}/1")
            }
        }
    };
    let start = time_at(obj, &["status", "startTime"]);
    let completion = time_at(obj, &["status", "completionTime"]);
    let duration = match (start, completion) {
        (None, _) => String::new(),
        (Some(st), None) => human_duration(now.duration_since(st)),
        (Some(st), Some(done)) => human_duration(done.duration_since(st)),
    };
    let status = if job_condition(obj, "Complete") {
        "Complete"
    } else if job_condition(obj, "Failed") {
        "Failed"
    } else if is_deleting(obj) {
        "Terminating"
    } else if job_condition(obj, "Suspended") {
        "Suspended"
    } else if job_condition(obj, "FailureTarget") {
        "FailureTarget"
    } else {
        "Running"
    };
    let (names, images) = containers_cells(obj, &["spec", "template", "spec", "containers"]);
    vec![
        s(name(obj)),
        s(status),
        s(completions),
        s(duration),
        s(age(obj, now)),
        s(names),
        s(images),
        s(format_label_selector(get(obj, &["spec", "selector"]))),
    ]
}

/// `kubectl get cronjobs`.
pub static CRON_JOB: Printer = Printer {
    columns: &[
        NAME,
        Column::new(
            "Schedule",
            "string",
            "The schedule in Cron format, see https://en.wikipedia.org/wiki/Cron.",
        ),
        Column::new(
            "Timezone",
            "string",
            "The time zone name for the given schedule; defaults to the time zone of the kube-controller-manager process.",
        ),
        Column::new(
            "Suspend",
            "boolean",
            "This flag tells the controller to suspend subsequent executions; it does not apply to already started executions. Defaults to false.",
        ),
        Column::new(
            "Active",
            "integer",
            "A list of pointers to currently running jobs.",
        ),
        Column::new(
            "Last Schedule",
            "string",
            "Information when was the last time the job was successfully scheduled.",
        ),
        AGE,
        CONTAINERS,
        IMAGES,
        Column::wide(
            "Selector",
            "string",
            "A label query over pods that should match the pod count.",
        ),
    ],
    row: cron_job_row,
};

fn cron_job_row(obj: &Value, now: Timestamp) -> Vec<Value> {
    let last_schedule = match get(obj, &["status", "lastScheduleTime"]) {
        Some(_) => since(time_at(obj, &["status", "lastScheduleTime"]), now),
        None => "<none>".to_string(),
    };
    let suspend = match opt_bool(obj, &["spec", "suspend"]) {
        Some(true) => "True",
        Some(false) => "False",
        None => "<unset>",
    };
    let template = &[
        "spec",
        "jobTemplate",
        "spec",
        "template",
        "spec",
        "containers",
    ];
    let (names, images) = containers_cells(obj, template);
    vec![
        s(name(obj)),
        s(str_at(obj, &["spec", "schedule"])),
        s(opt_str(obj, &["spec", "timeZone"]).unwrap_or("<none>")),
        s(suspend),
        n(arr_at(obj, &["status", "active"]).len() as i64),
        s(last_schedule),
        s(age(obj, now)),
        s(names),
        s(images),
        s(format_label_selector(get(
            obj,
            &["spec", "jobTemplate", "spec", "selector"],
        ))),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> Timestamp {
        "2024-05-01T12:00:00Z".parse().unwrap()
    }

    fn template() -> Value {
        json!({"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [
            {"name": "nginx", "image": "nginx:1.25"}, {"name": "sidecar", "image": "busybox:1.36"}
        ]}})
    }

    #[test]
    fn deployment_cells() {
        let d = json!({
            "metadata": {"name": "web", "creationTimestamp": "2024-04-29T12:00:00Z"},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}}, "template": template()},
            "status": {"replicas": 3, "updatedReplicas": 3, "readyReplicas": 2, "availableReplicas": 2}
        });
        assert_eq!(
            deployment_row(&d, now()),
            vec![
                json!("web"),
                json!("2/3"),
                json!(3),
                json!(2),
                json!("2d"),
                json!("nginx,sidecar"),
                json!("nginx:1.25,busybox:1.36"),
                json!("app=web"),
            ]
        );
        let empty = json!({"metadata": {"name": "x"}, "spec": {"selector": {}}});
        let c = deployment_row(&empty, now());
        assert_eq!(c[1], json!("0/1"));
        assert_eq!(c[7], json!(""));
        let bad = json!({"metadata": {"name": "x"}, "spec": {"selector": {"matchExpressions": [
            {"key": "a", "operator": "Bogus"}
        ]}}});
        assert_eq!(deployment_row(&bad, now())[7], json!("<invalid>"));
    }

    #[test]
    fn replica_set_cells() {
        let rs = json!({
            "metadata": {"name": "web-5d8f", "creationTimestamp": "2024-05-01T11:45:00Z"},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web", "pod-template-hash": "5d8f"}}, "template": template()},
            "status": {"replicas": 2, "readyReplicas": 1}
        });
        assert_eq!(
            replica_set_row(&rs, now()),
            vec![
                json!("web-5d8f"),
                json!(2),
                json!(2),
                json!(1),
                json!("15m"),
                json!("nginx,sidecar"),
                json!("nginx:1.25,busybox:1.36"),
                json!("app=web,pod-template-hash=5d8f"),
            ]
        );
    }

    #[test]
    fn replication_controller_cells() {
        let rc = json!({
            "metadata": {"name": "legacy", "creationTimestamp": "2024-05-01T11:00:00Z"},
            "spec": {"replicas": 1, "selector": {"app": "legacy"}, "template": template()},
            "status": {"replicas": 1, "readyReplicas": 1}
        });
        assert_eq!(
            replication_controller_row(&rc, now()),
            vec![
                json!("legacy"),
                json!(1),
                json!(1),
                json!(1),
                json!("60m"),
                json!("nginx,sidecar"),
                json!("nginx:1.25,busybox:1.36"),
                json!("app=legacy"),
            ]
        );
    }

    #[test]
    fn stateful_set_cells() {
        let ss = json!({
            "metadata": {"name": "db", "creationTimestamp": "2024-05-01T11:52:00Z"},
            "spec": {"replicas": 3, "template": template()},
            "status": {"replicas": 3, "readyReplicas": 3}
        });
        assert_eq!(
            stateful_set_row(&ss, now()),
            vec![
                json!("db"),
                json!("3/3"),
                json!("8m"),
                json!("nginx,sidecar"),
                json!("nginx:1.25,busybox:1.36"),
            ]
        );
    }

    #[test]
    fn daemon_set_cells() {
        let mut tpl = template();
        tpl["spec"]["nodeSelector"] = json!({"kubernetes.io/os": "linux"});
        let ds = json!({
            "metadata": {"name": "kube-proxy", "creationTimestamp": "2024-04-21T12:00:00Z"},
            "spec": {"selector": {"matchLabels": {"k8s-app": "kube-proxy"}}, "template": tpl},
            "status": {"desiredNumberScheduled": 3, "currentNumberScheduled": 3, "numberReady": 2,
                "updatedNumberScheduled": 3, "numberAvailable": 2}
        });
        assert_eq!(
            daemon_set_row(&ds, now()),
            vec![
                json!("kube-proxy"),
                json!(3),
                json!(3),
                json!(2),
                json!(3),
                json!(2),
                json!("kubernetes.io/os=linux"),
                json!("10d"),
                json!("nginx,sidecar"),
                json!("nginx:1.25,busybox:1.36"),
                json!("k8s-app=kube-proxy"),
            ]
        );
    }

    #[test]
    fn controller_revision_cells() {
        let cr = json!({
            "metadata": {"name": "web-6b7f9c", "creationTimestamp": "2024-05-01T11:00:00Z",
                "ownerReferences": [
                    {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "Web-DB", "controller": true}
                ]},
            "revision": 2
        });
        assert_eq!(
            controller_revision_row(&cr, now()),
            vec![
                json!("web-6b7f9c"),
                json!("statefulset.apps/Web-DB"),
                json!(2),
                json!("60m")
            ]
        );
        let core_owner = json!({"metadata": {"name": "x", "ownerReferences": [
            {"apiVersion": "v1", "kind": "Pod", "name": "p", "controller": false},
            {"apiVersion": "v1", "kind": "ReplicationController", "name": "rc", "controller": true}
        ]}, "revision": 1});
        assert_eq!(
            controller_revision_row(&core_owner, now())[1],
            json!("replicationcontroller/rc")
        );
        let orphan = json!({"metadata": {"name": "x"}, "revision": 1});
        assert_eq!(controller_revision_row(&orphan, now())[1], json!("<none>"));
    }

    #[test]
    fn job_cells() {
        let job = json!({
            "metadata": {"name": "pi", "creationTimestamp": "2024-05-01T11:00:00Z"},
            "spec": {"completions": 1, "parallelism": 1,
                "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "abc"}},
                "template": template()},
            "status": {"succeeded": 1, "startTime": "2024-05-01T11:00:00Z", "completionTime": "2024-05-01T11:00:42Z",
                "conditions": [{"type": "SuccessCriteriaMet", "status": "True"}, {"type": "Complete", "status": "True"}]}
        });
        assert_eq!(
            job_row(&job, now()),
            vec![
                json!("pi"),
                json!("Complete"),
                json!("1/1"),
                json!("42s"),
                json!("60m"),
                json!("nginx,sidecar"),
                json!("nginx:1.25,busybox:1.36"),
                json!("batch.kubernetes.io/controller-uid=abc"),
            ]
        );
    }

    #[test]
    fn job_status_and_completions_variants() {
        let running = json!({"metadata": {"name": "w"},
            "spec": {"parallelism": 3},
            "status": {"succeeded": 1, "startTime": "2024-05-01T11:55:00Z"}});
        let c = job_row(&running, now());
        assert_eq!(c[1], json!("Running"));
        assert_eq!(c[2], json!("1/1 of 3"));
        assert_eq!(c[3], json!("5m"));
        assert_eq!(c[7], json!("<none>"));

        let not_started = json!({"metadata": {"name": "w"}, "spec": {}});
        let c = job_row(&not_started, now());
        assert_eq!(c[2], json!("0/1"));
        assert_eq!(c[3], json!(""));

        let failed = json!({"metadata": {"name": "w", "deletionTimestamp": "2024-05-01T11:00:00Z"}, "spec": {"completions": 5},
            "status": {"conditions": [{"type": "Failed", "status": "True"}]}});
        let c = job_row(&failed, now());
        assert_eq!(c[1], json!("Failed"));
        assert_eq!(c[2], json!("0/5"));

        let deleting = json!({"metadata": {"name": "w", "deletionTimestamp": "2024-05-01T11:00:00Z"},
            "status": {"conditions": [{"type": "Suspended", "status": "True"}]}});
        assert_eq!(job_row(&deleting, now())[1], json!("Terminating"));
        let suspended = json!({"metadata": {"name": "w"},
            "status": {"conditions": [{"type": "Suspended", "status": "True"}]}});
        assert_eq!(job_row(&suspended, now())[1], json!("Suspended"));
        let target = json!({"metadata": {"name": "w"},
            "status": {"conditions": [{"type": "FailureTarget", "status": "True"}, {"type": "Complete", "status": "False"}]}});
        assert_eq!(job_row(&target, now())[1], json!("FailureTarget"));
    }

    #[test]
    fn cron_job_cells() {
        let cj = json!({
            "metadata": {"name": "backup", "creationTimestamp": "2024-04-24T12:00:00Z"},
            "spec": {"schedule": "*/5 * * * *", "suspend": false, "jobTemplate": {"spec": {"template": template()}}},
            "status": {"active": [{"name": "backup-1"}], "lastScheduleTime": "2024-05-01T11:55:00Z"}
        });
        assert_eq!(
            cron_job_row(&cj, now()),
            vec![
                json!("backup"),
                json!("*/5 * * * *"),
                json!("<none>"),
                json!("False"),
                json!(1),
                json!("5m"),
                json!("7d"),
                json!("nginx,sidecar"),
                json!("nginx:1.25,busybox:1.36"),
                json!("<none>"),
            ]
        );
        let cj = json!({"metadata": {"name": "x"}, "spec": {"schedule": "@daily", "timeZone": "Etc/UTC", "suspend": true}});
        let c = cron_job_row(&cj, now());
        assert_eq!(c[2], json!("Etc/UTC"));
        assert_eq!(c[3], json!("True"));
        assert_eq!(c[4], json!(0));
        assert_eq!(c[5], json!("<none>"));
        let unset = json!({"metadata": {"name": "x"}, "spec": {}});
        assert_eq!(cron_job_row(&unset, now())[3], json!("<unset>"));
    }
}
