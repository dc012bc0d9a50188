//! End-to-end: `ferrokube server` with its own kubelet runs pods as real
//! containers from an image imported at start (a busybox image made from Debian's
//! static busybox), driven by the real kubectl: a Deployment reaches Running and
//! Ready, a crashing container backs off, a memory hog is OOMKilled, a configMap
//! update reaches the mounted file, the kubelet killed with -9 leaves containers
//! running and adopts them, and deleting pods leaves no process, mount or cgroup
//! behind. The Deployment test runs on each OCI runtime (built-in, runc, crun).

mod support;

use std::path::Path;
use std::time::Duration;
use support::{eventually, Cluster, Kubectl};

const IMAGE: &str = "ferrokube.test/busybox:1";

/// A data directory whose import folder holds the busybox image.
fn data_dir_with_image() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let import = dir.path().join("agent/images");
    std::fs::create_dir_all(&import).unwrap();
    images::testimage::busybox_image(IMAGE)
        .write_oci_archive(&import.join("busybox.tar"))
        .unwrap();
    dir
}

fn start(runtime: &str) -> Cluster {
    let dir = data_dir_with_image();
    let node = format!("kubelet-e2e-{}", std::process::id());
    Cluster::start_agent_in(
        dir,
        &[
            "--node-name",
            &node,
            "--kubelet-arg",
            &format!("oci-runtime={runtime}"),
        ],
    )
}

/// Deletes every workload and pod when the test ends, pass or fail, and waits
/// until the kubelet has removed their processes, cgroups and mounts, so nothing
/// outlives the test (the server's exit leaves containers running by design).
struct Cleanup<'a>(&'a Kubectl, std::path::PathBuf);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        let uids: Vec<String> = self
            .0
            .run(&["get", "pods", "-o", "jsonpath={.items[*].metadata.uid}"])
            .stdout
            .split(|b| *b == b' ')
            .map(|u| String::from_utf8_lossy(u).trim().to_string())
            .filter(|u| !u.is_empty())
            .collect();
        let _ = self
            .0
            .run(&["delete", "deployments", "--all", "--wait=false"]);
        let _ = self.0.run(&[
            "delete",
            "pods",
            "--all",
            "--grace-period=1",
            "--timeout=60s",
        ]);
        let clean = eventually(Duration::from_secs(30), || {
            uids.iter()
                .all(|u| processes_of(u).is_empty() && cgroups_of(u).is_empty())
                && mounts_under(&self.1).is_empty()
        });
        if !clean && !std::thread::panicking() {
            panic!("pods {uids:?} left processes, cgroups or mounts behind");
        }
    }
}

fn pod_json(k: &Kubectl, name: &str) -> serde_json::Value {
    k.json(&["get", "pod", name])
}

fn pods(k: &Kubectl, selector: &str) -> Vec<serde_json::Value> {
    k.json(&["get", "pods", "-l", selector])["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Mount points under `dir`.
fn mounts_under(dir: &Path) -> Vec<String> {
    let prefix = dir.to_string_lossy().into_owned();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(str::to_string))
        .filter(|m| m.starts_with(&prefix))
        .collect()
}

/// Processes whose cgroup names the pod.
fn processes_of(uid: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if let Ok(cg) = std::fs::read_to_string(format!("/proc/{pid}/cgroup")) {
            if cg.contains(uid) {
                out.push(pid);
            }
        }
    }
    out
}

/// Cgroup directories of the pod in any hierarchy.
fn cgroups_of(uid: &str) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(hierarchies) = std::fs::read_dir("/sys/fs/cgroup") else {
        return out;
    };
    for h in hierarchies.flatten() {
        for qos in ["kubepods", "kubepods/burstable", "kubepods/besteffort"] {
            let p = h.path().join(qos).join(format!("pod{uid}"));
            if p.exists() {
                out.push(p.display().to_string());
            }
        }
    }
    out
}

const DEPLOYMENT: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      terminationGracePeriodSeconds: 5
      containers:
      - name: main
        image: ferrokube.test/busybox:1
        command: ["sh", "-c", "echo started as $(id -u) in $(hostname); exec sleep 3600"]
        resources:
          limits: {memory: 64Mi, cpu: 200m}
"#;

fn deployment_runs_and_cleans_up(runtime: &str) {
    let c = start(runtime);
    let k = c.kubectl("1.33");
    let _cleanup = Cleanup(&k, c.dir.path().to_path_buf());
    assert!(eventually(Duration::from_secs(30), || {
        k.ok(&["get", "nodes", "--no-headers"]).contains(" Ready ")
    }));
    k.apply(&[], DEPLOYMENT);
    let ok = eventually(Duration::from_secs(60), || {
        let ps = pods(&k, "app=web");
        ps.len() == 2
            && ps.iter().all(|p| {
                p["status"]["phase"] == "Running"
                    && p["status"]["containerStatuses"][0]["ready"] == true
            })
    });
    assert!(ok, "pods did not run: {:#}", k.json(&["get", "pods"]));
    let ps = pods(&k, "app=web");
    let uids: Vec<String> = ps
        .iter()
        .map(|p| p["metadata"]["uid"].as_str().unwrap().to_string())
        .collect();
    for (p, uid) in ps.iter().zip(&uids) {
        let name = p["metadata"]["name"].as_str().unwrap();
        let st = &p["status"];
        // Limits alone default the requests to them: Guaranteed.
        assert_eq!(st["qosClass"], "Guaranteed");
        assert!(st["containerStatuses"][0]["containerID"]
            .as_str()
            .unwrap()
            .starts_with("ferrokube://"));
        assert_eq!(st["containerStatuses"][0]["restartCount"], 0);
        let conds = st["conditions"].as_array().unwrap();
        for ty in ["Initialized", "Ready", "ContainersReady", "PodScheduled"] {
            assert!(
                conds
                    .iter()
                    .any(|c| c["type"] == ty && c["status"] == "True"),
                "{ty} not True: {conds:?}"
            );
        }
        // The container's output reached its log file.
        let log = c
            .dir
            .path()
            .join(format!("agent/logs/default_{name}_{uid}/main/0.log"));
        assert!(
            eventually(Duration::from_secs(10), || std::fs::read_to_string(&log)
                .is_ok_and(
                    |l| l.contains(&format!("stdout F started as 0 in {name}"))
                )),
            "log: {:?}",
            std::fs::read_to_string(&log)
        );
        assert!(
            !processes_of(uid).is_empty(),
            "no process in the pod's cgroup"
        );
        assert!(!cgroups_of(uid).is_empty());
    }
    // Events tell the story.
    let events = k.ok(&["get", "events"]);
    for reason in ["Pulled", "Created", "Started"] {
        assert!(events.contains(reason), "{events}");
    }
    // Deleting the Deployment stops everything the pods had.
    k.ok(&["delete", "deployment", "web"]);
    assert!(
        eventually(Duration::from_secs(60), || pods(&k, "app=web").is_empty()),
        "pods were not deleted"
    );
    for uid in &uids {
        assert!(
            eventually(Duration::from_secs(10), || processes_of(uid).is_empty()
                && cgroups_of(uid).is_empty()),
            "pod {uid} left processes {:?} or cgroups {:?}",
            processes_of(uid),
            cgroups_of(uid)
        );
    }
    assert!(
        eventually(Duration::from_secs(10), || mounts_under(c.dir.path())
            .is_empty()),
        "mounts left: {:?}",
        mounts_under(c.dir.path())
    );
}

#[test]
fn deployment_runs_with_the_builtin_runtime() {
    deployment_runs_and_cleans_up("builtin");
}

#[test]
fn deployment_runs_with_runc() {
    deployment_runs_and_cleans_up("runc");
}

#[test]
fn deployment_runs_with_crun() {
    deployment_runs_and_cleans_up("crun");
}

const CRASHER: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: crasher
spec:
  containers:
  - name: main
    image: ferrokube.test/busybox:1
    command: ["sh", "-c", "echo bye; exit 3"]
"#;

#[test]
fn crashing_container_backs_off() {
    let c = start("builtin");
    let k = c.kubectl("1.33");
    let _cleanup = Cleanup(&k, c.dir.path().to_path_buf());
    k.apply(&[], CRASHER);
    let ok = eventually(Duration::from_secs(60), || {
        let p = pod_json(&k, "crasher");
        let cs = &p["status"]["containerStatuses"][0];
        cs["state"]["waiting"]["reason"] == "CrashLoopBackOff"
            && cs["lastState"]["terminated"]["exitCode"] == 3
            && cs["restartCount"].as_i64().unwrap_or(0) >= 1
    });
    assert!(ok, "{:#}", pod_json(&k, "crasher"));
    let p = pod_json(&k, "crasher");
    let cs = &p["status"]["containerStatuses"][0];
    let msg = cs["state"]["waiting"]["message"].as_str().unwrap();
    assert!(
        msg.starts_with("back-off 10s restarting failed container=main pod=crasher_default("),
        "{msg}"
    );
    assert_eq!(cs["lastState"]["terminated"]["reason"], "Error");
    assert_eq!(p["status"]["phase"], "Running");
    assert!(k.ok(&["get", "events"]).contains("BackOff"));
    // The back-off grows: after the 10 s delay it restarts and waits 20 s.
    let ok = eventually(Duration::from_secs(40), || {
        let p = pod_json(&k, "crasher");
        p["status"]["containerStatuses"][0]["state"]["waiting"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("back-off 20s"))
    });
    assert!(ok, "{:#}", pod_json(&k, "crasher"));
    k.ok(&["delete", "pod", "crasher", "--wait=true"]);
}

const HOG: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: hog
spec:
  restartPolicy: Never
  containers:
  - name: main
    image: ferrokube.test/busybox:1
    command: ["sh", "-c", "head -c 200m /dev/zero | tail > /dev/null"]
    resources:
      limits: {memory: 16Mi}
"#;

#[test]
fn memory_hog_is_oom_killed() {
    let c = start("builtin");
    let k = c.kubectl("1.33");
    let _cleanup = Cleanup(&k, c.dir.path().to_path_buf());
    k.apply(&[], HOG);
    let ok = eventually(Duration::from_secs(60), || {
        let p = pod_json(&k, "hog");
        p["status"]["phase"] == "Failed"
            && p["status"]["containerStatuses"][0]["state"]["terminated"]["reason"] == "OOMKilled"
    });
    assert!(ok, "{:#}", pod_json(&k, "hog"));
    let p = pod_json(&k, "hog");
    assert_eq!(
        p["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"],
        137
    );
    assert_eq!(p["status"]["qosClass"], "Burstable");
}

const WATCHER: &str = r#"
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
data:
  greeting: hello
---
apiVersion: v1
kind: Pod
metadata:
  name: reader
spec:
  containers:
  - name: main
    image: ferrokube.test/busybox:1
    command: ["sh", "-c", "while true; do echo \"greeting=$(cat /etc/settings/greeting) env=$GREETING\"; sleep 1; done"]
    env:
    - name: GREETING
      valueFrom:
        configMapKeyRef: {name: settings, key: greeting}
    volumeMounts:
    - {name: settings, mountPath: /etc/settings}
  volumes:
  - name: settings
    configMap: {name: settings}
"#;

#[test]
fn config_map_updates_reach_the_mounted_file() {
    let c = start("builtin");
    let k = c.kubectl("1.33");
    let _cleanup = Cleanup(&k, c.dir.path().to_path_buf());
    k.apply(&[], WATCHER);
    assert!(
        eventually(Duration::from_secs(60), || pod_json(&k, "reader")["status"]
            ["phase"]
            == "Running"),
        "{:#}",
        pod_json(&k, "reader")
    );
    let p = pod_json(&k, "reader");
    let uid = p["metadata"]["uid"].as_str().unwrap().to_string();
    let log = c
        .dir
        .path()
        .join(format!("agent/logs/default_reader_{uid}/main/0.log"));
    let seen = |s: &str| std::fs::read_to_string(&log).is_ok_and(|l| l.contains(s));
    assert!(eventually(Duration::from_secs(10), || seen(
        "greeting=hello env=hello"
    )));
    k.ok(&[
        "patch",
        "configmap",
        "settings",
        "-p",
        r#"{"data":{"greeting":"bonjour"}}"#,
    ]);
    // The file follows; the environment keeps the value the container started with.
    assert!(
        eventually(Duration::from_secs(40), || seen(
            "greeting=bonjour env=hello"
        )),
        "{:?}",
        std::fs::read_to_string(&log)
    );
}

const SLEEPER: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: sleeper
spec:
  terminationGracePeriodSeconds: 2
  containers:
  - name: main
    image: ferrokube.test/busybox:1
    command: ["sleep", "3600"]
"#;

#[test]
fn kill_9_of_the_kubelet_leaves_containers_running_and_they_are_adopted() {
    let c = start("builtin");
    let k = c.kubectl("1.33");
    let _cleanup = Cleanup(&k, c.dir.path().to_path_buf());
    k.apply(&[], SLEEPER);
    assert!(eventually(Duration::from_secs(60), || pod_json(
        &k, "sleeper"
    )["status"]["phase"]
        == "Running"));
    let before = pod_json(&k, "sleeper");
    let uid = before["metadata"]["uid"].as_str().unwrap().to_string();
    let id = before["status"]["containerStatuses"][0]["containerID"].clone();
    let procs = processes_of(&uid);
    assert!(!procs.is_empty());
    // kill -9 of the whole server: the containers keep running.
    let node = format!("kubelet-e2e-{}", std::process::id());
    let dir = c.kill9();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        processes_of(&uid),
        procs,
        "containers died with the kubelet"
    );
    let c = Cluster::start_agent_in(dir, &["--node-name", &node]);
    let k = c.kubectl("1.33");
    let _cleanup = Cleanup(&k, c.dir.path().to_path_buf());
    // Adopted: same container, no restart.
    std::thread::sleep(Duration::from_secs(3));
    let after = pod_json(&k, "sleeper");
    assert_eq!(after["status"]["containerStatuses"][0]["containerID"], id);
    assert_eq!(after["status"]["containerStatuses"][0]["restartCount"], 0);
    assert_eq!(processes_of(&uid), procs);
    k.ok(&["delete", "pod", "sleeper"]);
    assert!(eventually(Duration::from_secs(20), || processes_of(&uid)
        .is_empty()
        && cgroups_of(&uid).is_empty()));
}
