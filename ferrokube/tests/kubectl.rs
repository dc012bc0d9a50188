//! End-to-end: the real kubectl (1.27 and 1.33) against `ferrokube server`, used as a
//! person would use it. Every scenario runs once per kubectl version, each against its
//! own freshly started server.

mod support;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;
use support::{Cluster, Kubectl};

const APP_V1: &str = r#"
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  labels: {app: demo}
data:
  mode: fast
  retired: "yes"
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: nginx
        image: nginx:1.25
        ports:
        - containerPort: 80
        - containerPort: 443
      - name: sidecar
        image: busybox:1.36
"#;

// Edited: data value changed and a key removed, replicas changed, a port removed,
// the sidecar's image changed.
const APP_V2: &str = r#"
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  labels: {app: demo}
data:
  mode: careful
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  replicas: 3
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: nginx
        image: nginx:1.25
        ports:
        - containerPort: 80
      - name: sidecar
        image: busybox:1.37
"#;

fn api_resources(_c: &Cluster, k: &Kubectl) {
    let out = k.ok(&["api-resources"]);
    for want in [
        "pods",
        "po",
        "deployments",
        "deploy",
        "apps/v1",
        "horizontalpodautoscalers",
        "leases",
    ] {
        assert!(out.contains(want), "api-resources lacks {want}:\n{out}");
    }
    let cluster = k.ok(&["api-resources", "--namespaced=false", "-o", "name"]);
    assert!(cluster.lines().any(|l| l == "nodes"));
    assert!(cluster.lines().any(|l| l == "namespaces"));
    assert!(!cluster.lines().any(|l| l == "pods"));
    let all = k.ok(&["api-resources", "--api-group=apps", "-o", "name"]);
    assert!(all.contains("deployments.apps"));
}

fn explain(_c: &Cluster, k: &Kubectl) {
    let out = k.ok(&["explain", "deployment.spec.replicas"]);
    assert!(out.contains("replicas"), "{out}");
    assert!(out.contains("integer"), "{out}");
    let out = k.ok(&["explain", "pods.spec.containers"]);
    assert!(out.contains("image"), "{out}");
    k.fails(&["explain", "pods.spec.nosuchfield"]);
}

fn apply_and_reapply(_c: &Cluster, k: &Kubectl) {
    let out = k.apply(&[], APP_V1);
    assert!(out.contains("configmap/settings created"), "{out}");
    assert!(out.contains("deployment.apps/web created"), "{out}");
    let out = k.apply(&[], APP_V1);
    assert!(out.contains("configmap/settings unchanged"), "{out}");
    let out = k.apply(&[], APP_V2);
    assert!(out.contains("configured"), "{out}");
    let cm = k.json(&["get", "cm", "settings"]);
    assert_eq!(cm["data"], serde_json::json!({"mode": "careful"}));
    let d = k.json(&["get", "deploy", "web"]);
    assert_eq!(d["spec"]["replicas"], 3);
    let containers = d["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap();
    assert_eq!(containers.len(), 2);
    assert_eq!(
        containers[0]["ports"].as_array().unwrap().len(),
        1,
        "removed port is still there"
    );
    assert_eq!(containers[1]["image"], "busybox:1.37");
    assert_eq!(d["metadata"]["generation"], 2);
    // Defaults were applied as upstream does.
    assert_eq!(d["spec"]["strategy"]["type"], "RollingUpdate");
    assert_eq!(containers[0]["imagePullPolicy"], "IfNotPresent");
}

fn server_side_apply_conflict(_c: &Cluster, k: &Kubectl) {
    let out = k.apply(&["--server-side"], APP_V1);
    assert!(out.contains("serverside-applied"), "{out}");
    k.ok(&["scale", "deploy", "web", "--replicas=5"]);
    let out = k.run_stdin(&["apply", "--server-side", "-f", "-"], APP_V2);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("conflict"), "{err}");
    assert!(err.contains(".spec.replicas"), "{err}");
    k.apply(&["--server-side", "--force-conflicts"], APP_V2);
    let d = k.json(&["get", "deploy", "web", "--show-managed-fields"]);
    assert_eq!(d["spec"]["replicas"], 3);
    let managers: Vec<&str> = d["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["manager"].as_str().unwrap())
        .collect();
    assert!(managers.contains(&"kubectl"), "{managers:?}");
    // The removed ConfigMap key is gone: the applier stopped owning it.
    let cm = k.json(&["get", "cm", "settings"]);
    assert_eq!(cm["data"], serde_json::json!({"mode": "careful"}));
}

fn create_and_get_outputs(_c: &Cluster, k: &Kubectl) {
    k.ok(&[
        "create",
        "deployment",
        "shop",
        "--image=nginx:1.25",
        "--replicas=2",
    ]);
    k.ok(&[
        "create",
        "configmap",
        "cfg",
        "--from-literal=a=1",
        "--from-literal=b=2",
    ]);
    k.ok(&[
        "create",
        "secret",
        "generic",
        "s",
        "--from-literal=password=hunter2",
    ]);
    let wide = k.ok(&["get", "deploy", "-o", "wide"]);
    let header = wide.lines().next().unwrap();
    for col in [
        "NAME",
        "READY",
        "UP-TO-DATE",
        "AVAILABLE",
        "AGE",
        "CONTAINERS",
        "IMAGES",
        "SELECTOR",
    ] {
        assert!(header.contains(col), "{header}");
    }
    assert!(wide.contains("app=shop"), "{wide}");
    let yaml = k.ok(&["get", "deploy", "shop", "-o", "yaml"]);
    assert!(
        yaml.contains("kind: Deployment") && yaml.contains("replicas: 2"),
        "{yaml}"
    );
    let json = k.json(&["get", "cm", "cfg"]);
    assert_eq!(json["data"]["b"], "2");
    let jp = k.ok(&[
        "get",
        "deploy",
        "shop",
        "-o",
        "jsonpath={.spec.template.spec.containers[0].image}",
    ]);
    assert_eq!(jp, "nginx:1.25");
    let cc = k.ok(&[
        "get",
        "cm",
        "cfg",
        "-o",
        "custom-columns=NAME:.metadata.name,A:.data.a",
    ]);
    assert_eq!(
        cc.lines()
            .nth(1)
            .unwrap()
            .split_whitespace()
            .collect::<Vec<_>>(),
        vec!["cfg", "1"]
    );
    let s = k.json(&["get", "secret", "s"]);
    assert_eq!(s["data"]["password"], "aHVudGVyMg==");
    let name = k.ok(&["get", "deploy", "-o", "name"]);
    assert_eq!(name.trim(), "deployment.apps/shop");
    let all = k.ok(&["get", "all"]);
    assert!(
        all.contains("deployment.apps/shop") && all.contains("service/kubernetes"),
        "{all}"
    );
}

fn watch(_c: &Cluster, k: &Kubectl) {
    let mut child = k
        .cmd(&[
            "get",
            "configmaps",
            "-w",
            "--output-watch-events",
            "--request-timeout=0",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    // Wait until the watch is established (its header line arrives with the first event
    // or immediately for an empty list).
    std::thread::sleep(Duration::from_millis(800));
    k.ok(&["create", "configmap", "watched"]);
    k.ok(&["label", "configmap", "watched", "touched=yes"]);
    k.ok(&["delete", "configmap", "watched"]);
    let mut seen = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while std::time::Instant::now() < deadline
        && !seen.iter().any(|l: &String| l.starts_with("DELETED"))
    {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            if line.contains("watched") {
                seen.push(line);
            }
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let kinds: Vec<&str> = seen
        .iter()
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(kinds, vec!["ADDED", "MODIFIED", "DELETED"], "{seen:?}");
}

fn label_and_annotate(_c: &Cluster, k: &Kubectl) {
    k.ok(&["create", "configmap", "c"]);
    k.ok(&["label", "configmap", "c", "tier=front", "team=a"]);
    k.ok(&["annotate", "configmap", "c", "note=hello"]);
    k.fails(&["label", "configmap", "c", "tier=back"]);
    k.ok(&["label", "configmap", "c", "tier=back", "--overwrite"]);
    k.ok(&["label", "configmap", "c", "team-"]);
    let c = k.json(&["get", "cm", "c"]);
    assert_eq!(c["metadata"]["labels"], serde_json::json!({"tier": "back"}));
    assert_eq!(c["metadata"]["annotations"]["note"], "hello");
    let l = k.ok(&["get", "cm", "-l", "tier=back", "-o", "name"]);
    assert_eq!(l.trim(), "configmap/c");
    assert!(k
        .ok(&["get", "cm", "-l", "tier in (front,side)", "-o", "name"])
        .trim()
        .is_empty());
    let shown = k.ok(&["get", "cm", "c", "--show-labels"]);
    assert!(shown.contains("tier=back"), "{shown}");
}

fn patch_three_types(_c: &Cluster, k: &Kubectl) {
    k.apply(&[], APP_V1);
    // Strategic: containers merge by name; only nginx's image changes.
    k.ok(&[
        "patch",
        "deploy",
        "web",
        "-p",
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"nginx","image":"nginx:1.26"}]}}}}"#,
    ]);
    let d = k.json(&["get", "deploy", "web"]);
    let cs = d["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap();
    assert_eq!(cs.len(), 2);
    assert_eq!(cs[0]["image"], "nginx:1.26");
    assert_eq!(cs[1]["image"], "busybox:1.36");
    // Merge: lists are replaced.
    k.ok(&[
        "patch",
        "cm",
        "settings",
        "--type=merge",
        "-p",
        r#"{"data":{"mode":"slow","retired":null}}"#,
    ]);
    assert_eq!(
        k.json(&["get", "cm", "settings"])["data"],
        serde_json::json!({"mode": "slow"})
    );
    // JSON patch.
    k.ok(&["patch", "cm", "settings", "--type=json", "-p", r#"[{"op":"add","path":"/data/extra","value":"1"},{"op":"replace","path":"/data/mode","value":"x"}]"#]);
    assert_eq!(
        k.json(&["get", "cm", "settings"])["data"],
        serde_json::json!({"mode": "x", "extra": "1"})
    );
    // A failing test operation refuses the whole patch.
    k.fails(&["patch", "cm", "settings", "--type=json", "-p", r#"[{"op":"remove","path":"/data/extra"},{"op":"test","path":"/data/mode","value":"nope"}]"#]);
    assert_eq!(
        k.json(&["get", "cm", "settings"])["data"],
        serde_json::json!({"mode": "x", "extra": "1"})
    );
}

fn scale(_c: &Cluster, k: &Kubectl) {
    k.apply(&[], APP_V1);
    k.ok(&["scale", "deploy", "web", "--replicas=7"]);
    let d = k.json(&["get", "deploy", "web"]);
    assert_eq!(d["spec"]["replicas"], 7);
    assert_eq!(d["metadata"]["generation"], 2);
    let err = k.fails(&[
        "scale",
        "deploy",
        "web",
        "--current-replicas=3",
        "--replicas=1",
    ]);
    assert!(err.contains("Expected replicas to be 3, was 7"), "{err}");
    assert_eq!(k.json(&["get", "deploy", "web"])["spec"]["replicas"], 7);
}

fn delete_by_selector(_c: &Cluster, k: &Kubectl) {
    for (n, l) in [("a", "x"), ("b", "x"), ("c", "y")] {
        k.ok(&["create", "configmap", n]);
        k.ok(&["label", "configmap", n, &format!("grp={l}")]);
    }
    let out = k.ok(&["delete", "configmap", "-l", "grp=x"]);
    assert!(
        out.contains("\"a\" deleted") && out.contains("\"b\" deleted"),
        "{out}"
    );
    let left = k.ok(&["get", "cm", "-l", "grp", "-o", "name"]);
    assert_eq!(left.trim(), "configmap/c");
}

fn wait_for_delete(_c: &Cluster, k: &Kubectl) {
    k.apply(&[], "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: held\n  finalizers: [example.com/hold]\n");
    k.ok(&["delete", "configmap", "held", "--wait=false"]);
    let held = k.json(&["get", "cm", "held"]);
    assert!(held["metadata"]["deletionTimestamp"].is_string());
    let mut waiter = k
        .cmd(&["wait", "--for=delete", "configmap/held", "--timeout=30s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    k.ok(&[
        "patch",
        "configmap",
        "held",
        "--type=merge",
        "-p",
        r#"{"metadata":{"finalizers":null}}"#,
    ]);
    let status = waiter.wait().unwrap();
    assert!(status.success(), "kubectl wait --for=delete failed");
    k.fails(&["get", "cm", "held"]);
}

fn diff(_c: &Cluster, k: &Kubectl) {
    k.apply(&[], APP_V1);
    let same = k.run_stdin(&["diff", "-f", "-"], APP_V1);
    assert_eq!(
        same.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&same.stderr)
    );
    let changed = k.run_stdin(&["diff", "-f", "-"], APP_V2);
    assert_eq!(
        changed.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&changed.stderr)
    );
    let text = String::from_utf8_lossy(&changed.stdout);
    assert!(
        text.contains("-  replicas: 2") && text.contains("+  replicas: 3"),
        "{text}"
    );
    // diff changed nothing.
    assert_eq!(k.json(&["get", "deploy", "web"])["spec"]["replicas"], 2);
}

fn dry_run_server(_c: &Cluster, k: &Kubectl) {
    let out = k.ok(&[
        "create",
        "configmap",
        "ghost",
        "--dry-run=server",
        "-o",
        "yaml",
    ]);
    assert!(out.contains("name: ghost"), "{out}");
    k.fails(&["get", "cm", "ghost"]);
    k.apply(&[], APP_V1);
    k.apply(&["--dry-run=server"], APP_V2);
    assert_eq!(k.json(&["get", "deploy", "web"])["spec"]["replicas"], 2);
    k.ok(&["delete", "deploy", "web", "--dry-run=server"]);
    k.ok(&["get", "deploy", "web"]);
    k.ok(&[
        "create",
        "service",
        "clusterip",
        "dry",
        "--tcp=80:80",
        "--dry-run=server",
    ]);
    k.fails(&["get", "svc", "dry"]);
}

fn errors(_c: &Cluster, k: &Kubectl) {
    let bad =
        "apiVersion: v1\nkind: Pod\nmetadata: {name: Bad_Name}\nspec:\n  containers: [{name: c}]\n";
    let out = k.run_stdin(&["create", "-f", "-"], bad);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is invalid"), "{err}");
    assert!(
        err.contains("spec.containers[0].image: Required value"),
        "{err}"
    );
    let unknown = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: u}\ndatta: {a: b}\n";
    let out = k.run_stdin(&["create", "-f", "-"], unknown);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown field \"datta\""), "{err}");
    let err = k.fails(&["create", "configmap", "x", "-n", "no-such-namespace"]);
    assert!(
        err.contains("namespaces \"no-such-namespace\" not found"),
        "{err}"
    );
    k.ok(&["create", "configmap", "dup"]);
    let err = k.fails(&["create", "configmap", "dup"]);
    assert!(err.contains("already exists"), "{err}");
    let err = k.fails(&["get", "pod", "nothere"]);
    assert!(err.contains("pods \"nothere\" not found"), "{err}");
    let err = k.fails(&["delete", "namespace", "kube-system"]);
    assert!(err.contains("forbidden"), "{err}");
}

fn services_and_namespaces(_c: &Cluster, k: &Kubectl) {
    k.ok(&["create", "namespace", "team"]);
    k.ok(&[
        "create",
        "service",
        "clusterip",
        "api",
        "--tcp=80:8080",
        "-n",
        "team",
    ]);
    k.ok(&[
        "create",
        "service",
        "nodeport",
        "np",
        "--tcp=80:8080",
        "-n",
        "team",
    ]);
    let api = k.json(&["get", "svc", "api", "-n", "team"]);
    let ip = api["spec"]["clusterIP"].as_str().unwrap();
    assert!(ip.starts_with("10.43."), "{ip}");
    assert_ne!(ip, "10.43.0.1");
    let np = k.json(&["get", "svc", "np", "-n", "team"]);
    let port = np["spec"]["ports"][0]["nodePort"].as_i64().unwrap();
    assert!((30000..=32767).contains(&port), "{port}");
    // A LoadBalancer with the Local external policy gets a health-check node port
    // of its own; it goes back to the range when the policy no longer needs it.
    let lb = |name: &str, extra: &str| {
        format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: team}}\nspec:\n  type: LoadBalancer\n  externalTrafficPolicy: Local\n{extra}  ports: [{{port: 80}}]\n"
        )
    };
    k.apply(&[], &lb("lb", ""));
    let svc = k.json(&["get", "svc", "lb", "-n", "team"]);
    let hc = svc["spec"]["healthCheckNodePort"].as_i64().unwrap();
    assert!((30000..=32767).contains(&hc), "{svc:#}");
    assert_ne!(hc, svc["spec"]["ports"][0]["nodePort"].as_i64().unwrap());
    let taken = lb("lb2", &format!("  healthCheckNodePort: {hc}\n"));
    let err =
        String::from_utf8_lossy(&k.run_stdin(&["create", "-f", "-"], &taken).stderr).to_string();
    assert!(
        err.contains(&format!(
            "spec.healthCheckNodePort: Invalid value: {hc}: provided port is already allocated"
        )),
        "{err}"
    );
    k.ok(&[
        "patch",
        "svc",
        "lb",
        "-n",
        "team",
        "-p",
        r#"{"spec":{"externalTrafficPolicy":"Cluster"}}"#,
    ]);
    let svc = k.json(&["get", "svc", "lb", "-n", "team"]);
    assert!(svc["spec"]["healthCheckNodePort"].is_null(), "{svc:#}");
    k.apply(&[], &taken);
    let svc = k.json(&["get", "svc", "lb2", "-n", "team"]);
    assert_eq!(svc["spec"]["healthCheckNodePort"], hc);
    let ns = k.json(&["get", "ns", "team"]);
    assert_eq!(ns["status"]["phase"], "Active");
    let k8s = k.json(&["get", "svc", "kubernetes", "-n", "default"]);
    assert_eq!(k8s["spec"]["clusterIP"], "10.43.0.1");
    assert_eq!(k.ok(&["auth", "can-i", "create", "pods"]).trim(), "yes");
}

macro_rules! for_versions {
    ($($scenario:ident),* $(,)?) => {
        mod v1_27 {
            $(
                #[test]
                fn $scenario() {
                    let c = super::Cluster::start();
                    let k = c.kubectl("1.27");
                    super::$scenario(&c, &k);
                }
            )*
        }
        mod v1_33 {
            $(
                #[test]
                fn $scenario() {
                    let c = super::Cluster::start();
                    let k = c.kubectl("1.33");
                    super::$scenario(&c, &k);
                }
            )*
        }
        /// The same scenarios with the apiserver storing in etcd.
        mod etcd_v1_33 {
            $(
                #[test]
                fn $scenario() {
                    let c = super::Cluster::start_on_etcd();
                    let k = c.kubectl("1.33");
                    super::$scenario(&c, &k);
                }
            )*
        }
    };
}

for_versions!(
    api_resources,
    explain,
    apply_and_reapply,
    server_side_apply_conflict,
    create_and_get_outputs,
    watch,
    label_and_annotate,
    patch_three_types,
    scale,
    delete_by_selector,
    wait_for_delete,
    diff,
    dry_run_server,
    errors,
    services_and_namespaces,
);
