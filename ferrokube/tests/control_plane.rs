//! End-to-end: `ferrokube server` (apiserver, scheduler and controller manager in one
//! process) with `ferrokube sim-nodes` playing three kubelets, driven by the real
//! kubectl as a user would: a ReplicaSet's pods are scheduled and run, a pod deleted
//! by hand comes back, a pod that fits nowhere says why, and preemption makes room
//! for a high-priority pod.

mod support;

use std::time::Duration;
use support::{eventually, Cluster, Kubectl};

const RS: &str = r#"
apiVersion: apps/v1
kind: ReplicaSet
metadata:
  name: web
spec:
  replicas: 3
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: c
        image: busybox
        resources:
          requests: {cpu: 500m, memory: 64Mi}
"#;

fn running_pods(k: &Kubectl, selector: &str) -> Vec<(String, String, String)> {
    let v = k.json(&["get", "pods", "-l", selector, "-o", "json"]);
    v["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| {
            p["status"]["phase"] == "Running" && p["metadata"]["deletionTimestamp"].is_null()
        })
        .map(|p| {
            (
                p["metadata"]["name"].as_str().unwrap_or("").to_string(),
                p["spec"]["nodeName"].as_str().unwrap_or("").to_string(),
                p["status"]["podIP"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

#[test]
fn replicaset_scheduling_and_preemption_with_kubectl() {
    let c = Cluster::start();
    let _nodes = c.sim_nodes(&["--count", "3", "--cpu", "2", "--lease-seconds", "2"]);
    let k = c.kubectl("1.33");
    assert!(
        eventually(Duration::from_secs(30), || {
            let out = k.ok(&["get", "nodes", "--no-headers"]);
            out.lines().filter(|l| l.contains(" Ready ")).count() == 3
        }),
        "three Ready nodes"
    );

    // The ReplicaSet's pods are created, scheduled and running with pod IPs.
    k.apply(&[], RS);
    assert!(
        eventually(Duration::from_secs(30), || running_pods(&k, "app=web")
            .len()
            == 3),
        "three running pods: {}",
        k.ok(&["get", "pods", "-o", "wide"])
    );
    let pods = running_pods(&k, "app=web");
    assert!(pods
        .iter()
        .all(|(_, node, ip)| node.starts_with("sim-node-") && !ip.is_empty()));
    assert!(eventually(Duration::from_secs(30), || {
        let v = k.json(&["get", "rs", "web", "-o", "json"]);
        v["status"]["readyReplicas"] == 3 && v["status"]["availableReplicas"] == 3
    }));
    let events = k.ok(&[
        "get",
        "events",
        "--field-selector",
        &format!("involvedObject.name={}", pods[0].0),
    ]);
    assert!(events.contains("Scheduled"), "{events}");
    assert!(
        events.contains(&format!(
            "Successfully assigned default/{} to {}",
            pods[0].0, pods[0].1
        )),
        "{events}"
    );

    // A pod deleted by hand comes back.
    k.ok(&["delete", "pod", &pods[0].0, "--wait=true"]);
    assert!(
        eventually(Duration::from_secs(30), || {
            let now = running_pods(&k, "app=web");
            now.len() == 3 && now.iter().all(|(n, _, _)| n != &pods[0].0)
        }),
        "replacement pod: {}",
        k.ok(&["get", "pods", "-o", "wide"])
    );

    // Nodes have 2 cpus: a 3-cpu pod fits nowhere, and says why.
    k.apply(
        &[],
        r#"
apiVersion: v1
kind: Pod
metadata: {name: big}
spec:
  containers:
  - name: c
    image: busybox
    resources: {requests: {cpu: "3"}}
"#,
    );
    let mut message = String::new();
    let unschedulable = eventually(Duration::from_secs(30), || {
        let v = k.json(&["get", "pod", "big", "-o", "json"]);
        let conds = v["status"]["conditions"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        match conds.iter().find(|c| c["type"] == "PodScheduled") {
            Some(c) if c["reason"] == "Unschedulable" => {
                message = c["message"].as_str().unwrap_or("").to_string();
                true
            }
            _ => false,
        }
    });
    assert!(
        unschedulable,
        "big should not fit: {}",
        k.ok(&["get", "pods", "-o", "wide"])
    );
    assert!(
        message.starts_with("0/3 nodes are available: 3 Insufficient cpu."),
        "{message}"
    );
    let describe = k.ok(&["describe", "pod", "big"]);
    assert!(describe.contains("FailedScheduling"), "{describe}");
    assert!(describe.contains("3 Insufficient cpu"), "{describe}");
    k.ok(&["delete", "pod", "big"]);

    // A high-priority pod that needs a whole node which runs a ReplicaSet pod
    // preempts that pod.
    let (victim, node, _) = running_pods(&k, "app=web")[0].clone();
    k.apply(
        &[],
        &format!(
            r#"
apiVersion: scheduling.k8s.io/v1
kind: PriorityClass
metadata: {{name: urgent}}
value: 100000
---
apiVersion: v1
kind: Pod
metadata: {{name: urgent}}
spec:
  priorityClassName: urgent
  nodeSelector: {{kubernetes.io/hostname: {node}}}
  containers:
  - name: c
    image: busybox
    resources: {{requests: {{cpu: "2"}}}}
"#
        ),
    );
    assert!(
        eventually(Duration::from_secs(60), || {
            let v = k.json(&["get", "pod", "urgent", "-o", "json"]);
            v["status"]["phase"] == "Running" && v["spec"]["nodeName"] == node.as_str()
        }),
        "urgent runs on {node}: {}",
        k.ok(&["get", "pods", "-o", "wide"])
    );
    let v = k.json(&["get", "pod", "urgent", "-o", "json"]);
    assert_eq!(v["spec"]["priority"], 100000);
    let events = k.ok(&[
        "get",
        "events",
        "--field-selector",
        &format!("involvedObject.name={victim}"),
    ]);
    assert!(events.contains("Preempted"), "{events}");
    // The ReplicaSet replaced its victim.
    assert!(eventually(Duration::from_secs(30), || running_pods(
        &k, "app=web"
    )
    .len()
        == 3));
}

const DEPLOYMENT: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: app
spec:
  replicas: 3
  selector:
    matchLabels: {app: app}
  strategy:
    rollingUpdate: {maxSurge: 1, maxUnavailable: 0}
  template:
    metadata:
      labels: {app: app}
    spec:
      containers:
      - name: c
        image: busybox:1.36
"#;

fn deployment_image(k: &Kubectl) -> String {
    let v = k.json(&["get", "deploy", "app", "-o", "json"]);
    v["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

#[test]
fn deployment_rollout_history_and_undo_with_kubectl() {
    for version in ["1.33", "1.27"] {
        let c = Cluster::start();
        let _nodes = c.sim_nodes(&["--count", "3", "--lease-seconds", "2"]);
        let k = c.kubectl(version);
        k.apply(&[], DEPLOYMENT);
        let out = k.ok(&["rollout", "status", "deploy/app", "--timeout=60s"]);
        assert!(out.contains("successfully rolled out"), "{version}: {out}");
        assert_eq!(running_pods(&k, "app=app").len(), 3);

        k.ok(&["set", "image", "deploy/app", "c=busybox:1.37"]);
        let out = k.ok(&["rollout", "status", "deploy/app", "--timeout=60s"]);
        assert!(out.contains("successfully rolled out"), "{version}: {out}");
        let history = k.ok(&["rollout", "history", "deploy/app"]);
        assert!(history.contains("REVISION"), "{history}");
        assert!(history.lines().any(|l| l.starts_with("1 ")), "{history}");
        assert!(history.lines().any(|l| l.starts_with("2 ")), "{history}");
        let rs = k.ok(&["get", "rs", "-l", "app=app", "--no-headers"]);
        assert_eq!(rs.lines().count(), 2, "{rs}");

        k.ok(&["rollout", "undo", "deploy/app"]);
        let out = k.ok(&["rollout", "status", "deploy/app", "--timeout=60s"]);
        assert!(out.contains("successfully rolled out"), "{version}: {out}");
        assert_eq!(deployment_image(&k), "busybox:1.36");

        k.ok(&["scale", "deploy/app", "--replicas=5"]);
        assert!(
            eventually(Duration::from_secs(30), || running_pods(&k, "app=app")
                .len()
                == 5),
            "{version}: five pods: {}",
            k.ok(&["get", "pods", "-o", "wide"])
        );
        // The status follows the pods: wait for the Available condition.
        let available = || {
            let v = k.json(&["get", "deploy", "app", "-o", "json"]);
            v["status"]["conditions"]
                .as_array()
                .and_then(|c| c.iter().find(|c| c["type"] == "Available").cloned())
                .is_some_and(|c| c["status"] == "True")
        };
        assert!(
            eventually(Duration::from_secs(30), available),
            "{version}: {}",
            k.ok(&["get", "deploy", "app", "-o", "json"])
        );
    }
}
