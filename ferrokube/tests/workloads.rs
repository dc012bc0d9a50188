//! End-to-end: the workload and cleanup controllers of `ferrokube server`, with
//! `ferrokube sim-nodes` playing the kubelets, driven by the real kubectl: a DaemonSet
//! follows nodes joining and leaving, a Job runs to completion after a failed pod is
//! retried, a CronJob fires, a namespace gets its ServiceAccount, CA and Service
//! endpoints and deleting it empties it, cascading delete in the
//! three propagation modes, the pods of a node that stops heartbeating are evicted
//! and rescheduled elsewhere, a StatefulSet starts in order with its claims, a quota
//! refuses a pod, `kubectl drain` respects a disruption budget, and `ferrokube
//! controller-manager` runs alone under leader election.

mod support;

use std::time::Duration;
use support::{eventually, Cluster, Kubectl};

/// Names and nodes of the pods matching `selector` that run and are not being deleted.
fn running(k: &Kubectl, ns: &str, selector: &str) -> Vec<(String, String)> {
    let v = k.json(&["get", "pods", "-n", ns, "-l", selector, "-o", "json"]);
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
            )
        })
        .collect()
}

fn ready_nodes(k: &Kubectl) -> usize {
    k.ok(&["get", "nodes", "--no-headers"])
        .lines()
        .filter(|l| l.contains(" Ready "))
        .count()
}

/// Names of the objects of `kind` in `ns` (empty when none).
fn names(k: &Kubectl, ns: &str, kind: &str) -> Vec<String> {
    let v = k.json(&["get", kind, "-n", ns, "-o", "json"]);
    v["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|o| o["metadata"]["name"].as_str().map(str::to_string))
        .collect()
}

const DAEMONSET: &str = r#"
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: agent
spec:
  selector:
    matchLabels: {app: agent}
  template:
    metadata:
      labels: {app: agent}
    spec:
      containers:
      - name: c
        image: busybox:1.36
"#;

#[test]
fn daemonset_follows_nodes_joining_and_leaving() {
    let c = Cluster::start();
    let _nodes = c.sim_nodes(&["--count", "2", "--lease-seconds", "2"]);
    let k = c.kubectl("1.33");
    assert!(eventually(Duration::from_secs(30), || ready_nodes(&k) == 2));
    k.apply(&[], DAEMONSET);
    let out = k.ok(&["rollout", "status", "ds/agent", "--timeout=60s"]);
    assert!(out.contains("successfully rolled out"), "{out}");
    let mut on: Vec<String> = running(&k, "default", "app=agent")
        .into_iter()
        .map(|(_, n)| n)
        .collect();
    on.sort();
    assert_eq!(on, ["sim-node-0", "sim-node-1"]);

    // A node joins: it gets its pod.
    let extra = c.sim_nodes(&[
        "--count",
        "1",
        "--name-prefix",
        "extra-",
        "--lease-seconds",
        "2",
    ]);
    assert!(
        eventually(Duration::from_secs(30), || running(
            &k,
            "default",
            "app=agent"
        )
        .iter()
        .any(|(_, n)| n == "extra-0")),
        "a pod on the new node: {}",
        k.ok(&["get", "pods", "-o", "wide"])
    );
    assert_eq!(running(&k, "default", "app=agent").len(), 3);

    // It leaves: its pod goes with it (the pod garbage collector removes pods of
    // deleted nodes after a 40 s quarantine, checked every 20 s, as upstream).
    drop(extra);
    k.ok(&["delete", "node", "extra-0"]);
    let v = k.json(&["get", "ds", "agent", "-o", "json"]);
    assert!(
        eventually(Duration::from_secs(10), || {
            let v = k.json(&["get", "ds", "agent", "-o", "json"]);
            v["status"]["desiredNumberScheduled"] == 2
        }),
        "{v}"
    );
    assert!(
        eventually(Duration::from_secs(90), || {
            let pods = k.json(&["get", "pods", "-l", "app=agent", "-o", "json"]);
            pods["items"].as_array().is_some_and(|items| {
                items.len() == 2 && items.iter().all(|p| p["spec"]["nodeName"] != "extra-0")
            })
        }),
        "the pod of the removed node is gone: {}",
        k.ok(&["get", "pods", "-o", "wide"])
    );

    // A rolling update replaces every pod.
    k.ok(&["set", "image", "ds/agent", "c=busybox:1.37"]);
    let out = k.ok(&["rollout", "status", "ds/agent", "--timeout=60s"]);
    assert!(out.contains("successfully rolled out"), "{out}");
    let pods = k.json(&["get", "pods", "-l", "app=agent", "-o", "json"]);
    let images: Vec<&str> = pods["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .filter_map(|p| p["spec"]["containers"][0]["image"].as_str())
        .collect();
    assert_eq!(images, ["busybox:1.37", "busybox:1.37"], "{pods}");
}

const JOB: &str = r#"
apiVersion: batch/v1
kind: Job
metadata:
  name: work
spec:
  completions: 2
  parallelism: 1
  backoffLimit: 3
  template:
    metadata:
      annotations:
        sim.ferrokube.io/exit-after: 3s
    spec:
      restartPolicy: Never
      containers:
      - name: c
        image: busybox:1.36
"#;

#[test]
fn job_runs_to_completion_with_a_retry() {
    let c = Cluster::start();
    let _nodes = c.sim_nodes(&["--count", "2", "--lease-seconds", "2"]);
    let k = c.kubectl("1.33");
    assert!(eventually(Duration::from_secs(30), || ready_nodes(&k) == 2));
    k.apply(&[], JOB);
    // Fail the first pod while it runs, as a crashing container would.
    let mut first = String::new();
    assert!(eventually(Duration::from_secs(30), || {
        match running(&k, "default", "job-name=work").first() {
            Some((name, _)) => {
                first = name.clone();
                true
            }
            None => false,
        }
    }));
    k.ok(&["annotate", "pod", &first, "sim.ferrokube.io/fail=1"]);
    let out = k.ok(&[
        "wait",
        "--for=condition=Complete",
        "job/work",
        "--timeout=90s",
    ]);
    assert!(out.contains("condition met"), "{out}");
    let v = k.json(&["get", "job", "work", "-o", "json"]);
    assert_eq!(v["status"]["succeeded"], 2, "{v}");
    assert_eq!(v["status"]["failed"], 1, "{v}");
    assert!(v["status"]["completionTime"].is_string(), "{v}");
    let failed = k.json(&["get", "pod", &first, "-o", "json"]);
    assert_eq!(failed["status"]["phase"], "Failed");
    let described = k.ok(&["describe", "job", "work"]);
    assert!(described.contains("SuccessfulCreate"), "{described}");
    assert!(described.contains("Completed"), "{described}");
}

const CRONJOB: &str = r#"
apiVersion: batch/v1
kind: CronJob
metadata:
  name: tick
spec:
  schedule: "* * * * *"
  jobTemplate:
    spec:
      template:
        metadata:
          annotations:
            sim.ferrokube.io/exit-after: 1s
        spec:
          restartPolicy: OnFailure
          containers:
          - name: c
            image: busybox:1.36
"#;

#[test]
fn cronjob_fires_on_schedule() {
    let c = Cluster::start();
    let _nodes = c.sim_nodes(&["--count", "1", "--lease-seconds", "2"]);
    let k = c.kubectl("1.33");
    k.apply(&[], CRONJOB);
    // The next minute boundary is at most 60 s away.
    assert!(
        eventually(Duration::from_secs(100), || {
            let v = k.json(&["get", "cronjob", "tick", "-o", "json"]);
            v["status"]["lastSuccessfulTime"].is_string()
        }),
        "the CronJob ran a Job to completion: {}",
        k.ok(&["get", "cronjob,jobs,pods", "-o", "wide"])
    );
    let jobs = k.json(&["get", "jobs", "-o", "json"]);
    let job = &jobs["items"][0];
    assert!(
        job["metadata"]["name"]
            .as_str()
            .is_some_and(|n| n.starts_with("tick-")),
        "{job}"
    );
    assert_eq!(job["metadata"]["ownerReferences"][0]["kind"], "CronJob");
    let v = k.json(&["get", "cronjob", "tick", "-o", "json"]);
    assert!(v["status"]["lastScheduleTime"].is_string(), "{v}");
}

const NAMESPACED_STUFF: &str = r#"
apiVersion: v1
kind: Namespace
metadata:
  name: doomed
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: app
  namespace: doomed
spec:
  replicas: 2
  selector:
    matchLabels: {app: app}
  template:
    metadata:
      labels: {app: app}
    spec:
      containers:
      - name: c
        image: busybox:1.36
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: doomed
data: {a: b}
---
apiVersion: v1
kind: Service
metadata:
  name: app
  namespace: doomed
spec:
  selector: {app: app}
  ports:
  - port: 80
"#;

#[test]
fn deleting_a_namespace_empties_it() {
    let c = Cluster::start();
    let _nodes = c.sim_nodes(&["--count", "1", "--lease-seconds", "2"]);
    let k = c.kubectl("1.33");
    k.apply(&[], NAMESPACED_STUFF);
    assert!(eventually(Duration::from_secs(30), || running(
        &k, "doomed", "app=app"
    )
    .len()
        == 2));
    // The namespace got its default ServiceAccount and the cluster CA, and the
    // Service's Endpoints and EndpointSlice follow the two ready pods.
    assert!(eventually(Duration::from_secs(30), || {
        k.run(&["get", "serviceaccount", "default", "-n", "doomed"])
            .status
            .success()
            && k.run(&["get", "configmap", "kube-root-ca.crt", "-n", "doomed"])
                .status
                .success()
    }));
    let ca = k.json(&[
        "get",
        "configmap",
        "kube-root-ca.crt",
        "-n",
        "doomed",
        "-o",
        "json",
    ]);
    assert!(ca["data"]["ca.crt"]
        .as_str()
        .is_some_and(|c| c.starts_with("-----BEGIN CERTIFICATE-----")));
    assert!(
        eventually(Duration::from_secs(30), || {
            let ep = k.json(&["get", "endpoints", "app", "-n", "doomed", "-o", "json"]);
            let slices = k.json(&[
                "get",
                "endpointslices",
                "-n",
                "doomed",
                "-l",
                "kubernetes.io/service-name=app",
                "-o",
                "json",
            ]);
            ep["subsets"][0]["addresses"].as_array().map(Vec::len) == Some(2)
                && slices["items"][0]["endpoints"].as_array().map(Vec::len) == Some(2)
        }),
        "{}",
        k.ok(&[
            "get",
            "endpoints,endpointslices",
            "-n",
            "doomed",
            "-o",
            "yaml"
        ])
    );
    // kubectl waits for the namespace to be gone.
    k.ok(&["delete", "namespace", "doomed", "--timeout=90s"]);
    let out = k.fails(&["get", "namespace", "doomed"]);
    assert!(out.contains("NotFound"), "{out}");
    for kind in [
        "pods",
        "deployments",
        "replicasets",
        "configmaps",
        "services",
    ] {
        assert!(names(&k, "doomed", kind).is_empty(), "{kind} left behind");
    }
}

const OWNED: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: NAME
spec:
  replicas: 2
  selector:
    matchLabels: {app: NAME}
  template:
    metadata:
      labels: {app: NAME}
    spec:
      containers:
      - name: c
        image: busybox:1.36
"#;

#[test]
fn cascading_delete_in_all_three_modes() {
    let c = Cluster::start();
    let _nodes = c.sim_nodes(&["--count", "2", "--lease-seconds", "2"]);
    let k = c.kubectl("1.33");
    for name in ["bg", "fg", "orph"] {
        k.apply(&[], &OWNED.replace("NAME", name));
    }
    for name in ["bg", "fg", "orph"] {
        let sel = format!("app={name}");
        assert!(
            eventually(Duration::from_secs(30), || running(&k, "default", &sel)
                .len()
                == 2),
            "{name} running"
        );
    }
    let left = |app: &str| -> (usize, usize) {
        let rs = k.json(&["get", "rs", "-l", &format!("app={app}"), "-o", "json"]);
        let pods = k.json(&["get", "pods", "-l", &format!("app={app}"), "-o", "json"]);
        let count = |v: &serde_json::Value| v["items"].as_array().map_or(0, |a| a.len());
        (count(&rs), count(&pods))
    };

    // Background: the Deployment goes at once, the collector removes the rest.
    k.ok(&["delete", "deploy", "bg", "--cascade=background"]);
    assert!(
        eventually(Duration::from_secs(60), || left("bg") == (0, 0)),
        "background: {:?}",
        left("bg")
    );

    // Foreground: kubectl waits until the dependents are gone, then the owner.
    k.ok(&[
        "delete",
        "deploy",
        "fg",
        "--cascade=foreground",
        "--timeout=90s",
    ]);
    assert!(k.fails(&["get", "deploy", "fg"]).contains("NotFound"));
    assert!(
        eventually(Duration::from_secs(30), || left("fg") == (0, 0)),
        "foreground: {:?}",
        left("fg")
    );

    // Orphan: the ReplicaSet and pods stay, without an owner.
    k.ok(&["delete", "deploy", "orph", "--cascade=orphan"]);
    assert!(k.fails(&["get", "deploy", "orph"]).contains("NotFound"));
    assert!(
        eventually(Duration::from_secs(30), || {
            let rs = k.json(&["get", "rs", "-l", "app=orph", "-o", "json"]);
            rs["items"].as_array().is_some_and(|items| {
                items.len() == 1 && items[0]["metadata"]["ownerReferences"].is_null()
            })
        }),
        "orphaned ReplicaSet: {}",
        k.ok(&["get", "rs", "-o", "yaml"])
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(running(&k, "default", "app=orph").len(), 2);
}

const TOLERANT: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: svc
spec:
  replicas: 4
  selector:
    matchLabels: {app: svc}
  template:
    metadata:
      labels: {app: svc}
    spec:
      tolerations:
      - {key: node.kubernetes.io/unreachable, operator: Exists, effect: NoExecute, tolerationSeconds: 2}
      - {key: node.kubernetes.io/not-ready, operator: Exists, effect: NoExecute, tolerationSeconds: 2}
      containers:
      - name: c
        image: busybox:1.36
"#;

#[test]
fn pods_of_a_node_that_stops_heartbeating_are_rescheduled() {
    let c = Cluster::start_with(&[
        "--kube-controller-manager-arg=node-monitor-grace-period=4s",
        "--kube-controller-manager-arg=node-monitor-period=500ms",
    ]);
    let _nodes = c.sim_nodes(&["--count", "2", "--lease-seconds", "1"]);
    let k = c.kubectl("1.33");
    assert!(eventually(Duration::from_secs(30), || ready_nodes(&k) == 2));
    // Each node gets a podCIDR from --cluster-cidr. The node IPAM controller
    // assigns it after the Node registers, as upstream, so Ready may come first.
    let cidrs = || -> Vec<String> {
        let nodes = k.json(&["get", "nodes", "-o", "json"]);
        nodes["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|n| n["spec"]["podCIDR"].as_str().map(str::to_owned))
            .collect()
    };
    assert!(
        eventually(Duration::from_secs(30), || cidrs().len() == 2),
        "{}",
        k.ok(&["get", "nodes", "-o", "yaml"])
    );
    for cidr in cidrs() {
        assert!(
            cidr.starts_with("10.42.") && cidr.ends_with("/24"),
            "{cidr}"
        );
    }
    k.apply(&[], TOLERANT);
    assert!(eventually(Duration::from_secs(30), || running(
        &k, "default", "app=svc"
    )
    .len()
        == 4));
    let on_node0 = running(&k, "default", "app=svc")
        .iter()
        .filter(|(_, n)| n == "sim-node-0")
        .count();
    assert!(on_node0 > 0, "spread over both nodes");

    k.ok(&[
        "annotate",
        "node",
        "sim-node-0",
        "sim.ferrokube.io/heartbeat=stopped",
    ]);
    assert!(
        eventually(Duration::from_secs(30), || {
            let n = k.json(&["get", "node", "sim-node-0", "-o", "json"]);
            let ready = n["status"]["conditions"]
                .as_array()
                .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready").cloned());
            let tainted = n["spec"]["taints"].as_array().is_some_and(|ts| {
                ts.iter().any(|t| {
                    t["key"] == "node.kubernetes.io/unreachable" && t["effect"] == "NoExecute"
                })
            });
            ready.is_some_and(|r| r["status"] == "Unknown") && tainted
        }),
        "node marked Unknown and tainted: {}",
        k.ok(&["get", "node", "sim-node-0", "-o", "yaml"])
    );
    // Its pods are evicted after their 2 s toleration and replaced on the live node.
    assert!(
        eventually(Duration::from_secs(60), || {
            let pods = running(&k, "default", "app=svc");
            pods.len() == 4 && pods.iter().all(|(_, n)| n == "sim-node-1")
        }),
        "all replicas on sim-node-1: {}",
        k.ok(&["get", "pods", "-o", "wide"])
    );
    let events = k.ok(&["get", "events", "-A"]);
    assert!(events.contains("TaintManagerEviction"), "{events}");
}

const STATEFULSET: &str = r#"
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: web
spec:
  serviceName: web
  replicas: 3
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: c
        image: busybox:1.36
  volumeClaimTemplates:
  - metadata:
      name: www
    spec:
      accessModes: [ReadWriteOnce]
      resources:
        requests: {storage: 1Gi}
"#;

#[test]
fn statefulset_starts_in_order_with_its_claims() {
    let c = Cluster::start();
    let _nodes = c.sim_nodes(&["--count", "2", "--lease-seconds", "2"]);
    let k = c.kubectl("1.33");
    k.apply(&[], STATEFULSET);
    let out = k.ok(&["rollout", "status", "sts/web", "--timeout=90s"]);
    assert!(
        out.contains("roll out complete") || out.contains("rolling update complete"),
        "{out}"
    );
    let mut pods: Vec<String> = running(&k, "default", "app=web")
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    pods.sort();
    assert_eq!(pods, ["web-0", "web-1", "web-2"]);
    let mut claims = names(&k, "default", "pvc");
    claims.sort();
    assert_eq!(claims, ["www-web-0", "www-web-1", "www-web-2"]);
    // Ordered start: each pod was created after the one before it was ready.
    let created = |name: &str| {
        k.json(&["get", "pod", name, "-o", "json"])["metadata"]["creationTimestamp"]
            .as_str()
            .unwrap_or("")
            .to_string()
    };
    assert!(created("web-0") <= created("web-1") && created("web-1") <= created("web-2"));
    // Scaling down removes the highest ordinal.
    k.ok(&["scale", "sts/web", "--replicas=2"]);
    assert!(eventually(Duration::from_secs(30), || {
        let mut now: Vec<String> = running(&k, "default", "app=web")
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        now.sort();
        now == ["web-0", "web-1"]
    }));
}

#[test]
fn resource_quota_refuses_pods_beyond_it() {
    let c = Cluster::start();
    let k = c.kubectl("1.33");
    k.ok(&["create", "quota", "small", "--hard=pods=1"]);
    assert!(eventually(Duration::from_secs(30), || {
        let q = k.json(&["get", "quota", "small", "-o", "json"]);
        q["status"]["hard"]["pods"] == "1" && q["status"]["used"]["pods"] == "0"
    }));
    k.ok(&["run", "one", "--image=busybox:1.36", "--restart=Never"]);
    let err = k.fails(&["run", "two", "--image=busybox:1.36", "--restart=Never"]);
    assert!(
        err.contains(
            "pods \"two\" is forbidden: exceeded quota: small, requested: pods=1, used: pods=1, limited: pods=1"
        ),
        "{err}"
    );
    let described = k.ok(&["describe", "quota", "small"]);
    assert!(described.contains("pods"), "{described}");
}

const GUARDED: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: guarded
spec:
  replicas: 2
  selector:
    matchLabels: {app: guarded}
  template:
    metadata:
      labels: {app: guarded}
    spec:
      containers:
      - name: c
        image: busybox:1.36
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: guarded
spec:
  minAvailable: 2
  selector:
    matchLabels: {app: guarded}
"#;

#[test]
fn drain_respects_a_disruption_budget() {
    let c = Cluster::start();
    let _nodes = c.sim_nodes(&["--count", "2", "--lease-seconds", "2"]);
    let k = c.kubectl("1.33");
    assert!(eventually(Duration::from_secs(30), || ready_nodes(&k) == 2));
    k.apply(&[], GUARDED);
    assert!(eventually(Duration::from_secs(30), || {
        let pdb = k.json(&["get", "pdb", "guarded", "-o", "json"]);
        pdb["status"]["currentHealthy"] == 2 && pdb["status"]["disruptionsAllowed"] == 0
    }));
    let node = running(&k, "default", "app=guarded")[0].1.clone();
    // No disruption allowed: the eviction is refused and drain gives up.
    let out = k.fails(&["drain", &node, "--timeout=5s"]);
    assert!(
        out.contains("Cannot evict pod as it would violate the pod's disruption budget"),
        "{out}"
    );
    assert_eq!(running(&k, "default", "app=guarded").len(), 2);

    // One disruption allowed: drain evicts, the budget records it, and the pod comes
    // back on the other node.
    k.ok(&[
        "patch",
        "pdb",
        "guarded",
        "--type=merge",
        "-p",
        r#"{"spec":{"minAvailable":1}}"#,
    ]);
    assert!(eventually(Duration::from_secs(30), || {
        let pdb = k.json(&["get", "pdb", "guarded", "-o", "json"]);
        pdb["status"]["disruptionsAllowed"] == 1
    }));
    let out = k.ok(&["drain", &node, "--timeout=60s"]);
    assert!(out.contains("evicted") || out.contains("drained"), "{out}");
    assert!(
        eventually(Duration::from_secs(60), || {
            let pods = running(&k, "default", "app=guarded");
            pods.len() == 2 && pods.iter().all(|(_, n)| *n != node)
        }),
        "{}",
        k.ok(&["get", "pods", "-o", "wide"])
    );
}

#[test]
fn standalone_controller_manager_with_leader_election() {
    let c = Cluster::start_with(&["--disable-controller-manager"]);
    let _nodes = c.sim_nodes(&["--count", "1", "--lease-seconds", "2"]);
    // Two managers: one holds the lease and works, the other waits.
    let _first = c.component("controller-manager", &[]);
    let _second = c.component("controller-manager", &[]);
    let k = c.kubectl("1.33");
    k.apply(&[], &OWNED.replace("NAME", "solo"));
    assert!(
        eventually(Duration::from_secs(60), || running(
            &k, "default", "app=solo"
        )
        .len()
            == 2),
        "{}",
        k.ok(&["get", "all", "-o", "wide"])
    );
    let lease = k.json(&[
        "get",
        "lease",
        "kube-controller-manager",
        "-n",
        "kube-system",
        "-o",
        "json",
    ]);
    assert!(
        lease["spec"]["holderIdentity"]
            .as_str()
            .is_some_and(|h| !h.is_empty()),
        "{lease}"
    );
    // Without --root-ca-file the CA of the manager's kubeconfig is published.
    assert!(eventually(Duration::from_secs(30), || {
        let cm = k.json(&["get", "configmap", "kube-root-ca.crt", "-o", "json"]);
        cm["data"]["ca.crt"]
            .as_str()
            .is_some_and(|c| c.starts_with("-----BEGIN CERTIFICATE-----"))
    }));
}
