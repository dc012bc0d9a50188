//! End-to-end: `ferrokube server` with its own kubelet runs pods as real
//! containers from an image imported at start (a busybox image made from Debian's
//! static busybox), driven by the real kubectl: a Deployment reaches Running and
//! Ready, a crashing container backs off, a memory hog is OOMKilled, a configMap
//! update reaches the mounted file, the kubelet killed with -9 leaves containers
//! running and adopts them, what a pod deleted while the kubelet was down (or while
//! its watch was broken) left is removed, and deleting pods leaves no process, mount
//! or cgroup behind. The Deployment test runs on each OCI runtime (built-in, runc, crun).

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;
use support::{eventually, Cluster, Kubectl};

const IMAGE: &str = "ferrokube.test/busybox:1";

/// A data directory whose import folder holds the busybox image.
fn data_dir_with_image() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    put_image(&dir.path().join("agent/images"));
    dir
}

/// Writes the busybox image's archive into a kubelet's import folder.
fn put_image(import: &Path) {
    std::fs::create_dir_all(import).unwrap();
    images::testimage::busybox_image(IMAGE)
        .write_oci_archive(&import.join("busybox.tar"))
        .unwrap();
}

fn start(runtime: &str) -> Cluster {
    start_with(runtime, &[])
}

/// A cluster whose kubelet also gets `kubelet_args` (`name=value` each).
fn start_with(runtime: &str, kubelet_args: &[&str]) -> Cluster {
    start_on(data_dir_with_image(), runtime, kubelet_args)
}

/// kill -9 of the cluster's server, then a new one on the same data directory with
/// the same node, as [`start_with`] starts it.
fn restart_with(c: Cluster, runtime: &str, kubelet_args: &[&str]) -> Cluster {
    start_on(c.kill9(), runtime, kubelet_args)
}

fn start_on(dir: tempfile::TempDir, runtime: &str, kubelet_args: &[&str]) -> Cluster {
    let node = format!("kubelet-e2e-{}", std::process::id());
    let runtime = format!("oci-runtime={runtime}");
    let mut args = vec!["--node-name", &node, "--kubelet-arg", &runtime];
    for a in kubelet_args {
        args.extend(["--kubelet-arg", a]);
    }
    Cluster::start_agent_in(dir, &args)
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

/// Patches the pod's status as a controller would (`kubectl patch --subresource=status`,
/// strategic merge: conditions merge by type).
fn patch_status(k: &Kubectl, name: &str, patch: serde_json::Value) {
    k.ok(&[
        "patch",
        "pod",
        name,
        "--subresource=status",
        "-p",
        &patch.to_string(),
    ]);
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
        command: ["sh", "-c", "echo started as $(id -u):$(id -g) in $(hostname) ns=$(cat /var/run/secrets/kubernetes.io/serviceaccount/namespace); exec sleep 3600"]
        # The group comes from the image's /etc/passwd.
        securityContext: {runAsUser: 65534}
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
                .is_ok_and(|l| l.contains(&format!(
                    "stdout F started as 65534:65534 in {name}"
                )))),
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
    // The last run's output, through the kubelet API.
    assert_eq!(k.ok(&["logs", "crasher", "--previous"]), "bye\n");
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

const FORKER: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: forker
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: ferrokube.test/busybox:1
    command: ["sh", "-c", "(n=0; while [ $n -lt 12 ]; do sleep 300 & n=$((n+1)); done); echo forked; exec sleep 3600"]
"#;

#[test]
fn pod_max_pids_caps_the_processes_of_a_pod() {
    let c = start_with("builtin", &["pod-max-pids=6"]);
    let k = c.kubectl("1.33");
    let _cleanup = Cleanup(&k, c.dir.path().to_path_buf());
    k.apply(&[], FORKER);
    let ok = eventually(Duration::from_secs(60), || {
        String::from_utf8_lossy(&k.run(&["logs", "forker"]).stdout).contains("forked")
    });
    let logs = String::from_utf8_lossy(&k.run(&["logs", "forker"]).stdout).to_string();
    assert!(ok, "{logs}");
    // sh, its subshell and four sleeps make six: the next fork fails and ends the
    // subshell, whose sleeps live on.
    assert!(
        logs.contains("can't fork"),
        "the seventh fork should fail: {logs}"
    );
    let uid = pod_json(&k, "forker")["metadata"]["uid"]
        .as_str()
        .unwrap()
        .to_string();
    let pids = cgroups_of(&uid)
        .into_iter()
        .find(|p| p.starts_with("/sys/fs/cgroup/pids/"))
        .expect("the pod has a pids cgroup");
    assert_eq!(
        std::fs::read_to_string(format!("{pids}/pids.max"))
            .unwrap()
            .trim(),
        "6"
    );
    assert_eq!(processes_of(&uid).len(), 5, "sleep 3600 and four sleep 300");
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

/// Creates the `sleeper` pod from `manifest` and waits until it runs; returns it.
fn run_sleeper(k: &Kubectl, manifest: &str) -> serde_json::Value {
    k.apply(&[], manifest);
    assert!(eventually(Duration::from_secs(60), || pod_json(
        k, "sleeper"
    )["status"]["phase"]
        == "Running"));
    pod_json(k, "sleeper")
}

#[test]
fn kill_9_of_the_kubelet_leaves_containers_running_and_they_are_adopted() {
    let c = start("builtin");
    let k = c.kubectl("1.33");
    let _cleanup = Cleanup(&k, c.dir.path().to_path_buf());
    let before = run_sleeper(&k, SLEEPER);
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

/// The pid of the process holding the pod's namespaces, from its sandbox record.
fn sandbox_holder(dir: &Path, uid: &str) -> Option<i32> {
    let rec = dir
        .join("agent/pods")
        .join(uid)
        .join("sandbox/sandbox.json");
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(rec).ok()?).ok()?;
    v["holder"]["pid"].as_i64().map(|p| p as i32)
}

/// The namespace `kind` of process `pid` (`net:[4026532...]`).
fn ns_of(pid: impl std::fmt::Display, kind: &str) -> String {
    std::fs::read_link(format!("/proc/{pid}/ns/{kind}"))
        .map(|l| l.display().to_string())
        .unwrap_or_default()
}

/// The sleeper with an init container that counts its runs in an emptyDir.
const SLEEPER_WITH_INIT: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: sleeper
spec:
  terminationGracePeriodSeconds: 2
  volumes:
  - {name: work, emptyDir: {}}
  initContainers:
  - name: setup
    image: ferrokube.test/busybox:1
    command: ["sh", "-c", "echo run >> /work/runs"]
    volumeMounts: [{name: work, mountPath: /work}]
  containers:
  - name: main
    image: ferrokube.test/busybox:1
    command: ["sleep", "3600"]
    volumeMounts: [{name: work, mountPath: /work}]
"#;

#[test]
fn a_pod_whose_sandbox_holder_dies_gets_a_new_sandbox() {
    let c = start("builtin");
    let k = c.kubectl("1.33");
    let _cleanup = Cleanup(&k, c.dir.path().to_path_buf());
    let uid = run_sleeper(&k, SLEEPER_WITH_INIT)["metadata"]["uid"]
        .as_str()
        .unwrap()
        .to_string();
    let holder = sandbox_holder(c.dir.path(), &uid).expect("the sandbox names its holder");
    // The container lives in the holder's namespaces, not the host's.
    let procs = processes_of(&uid);
    assert_eq!(procs.len(), 1, "{procs:?}");
    for kind in ["net", "ipc", "uts"] {
        assert_eq!(ns_of(procs[0], kind), ns_of(holder, kind), "{kind}");
        assert_ne!(ns_of(holder, kind), ns_of("self", kind), "{kind}");
    }
    // No mounts pin the namespaces.
    assert!(mounts_under(&c.dir.path().join("agent/pods").join(&uid).join("sandbox")).is_empty());

    let killed = std::process::Command::new("kill")
        .args(["-9", &holder.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    // The kubelet notices, stops the container and starts it again in a new sandbox.
    let renewed = eventually(Duration::from_secs(60), || {
        let p = pod_json(&k, "sleeper");
        let st = &p["status"]["containerStatuses"][0];
        st["restartCount"] == 1
            && st["state"]["running"].is_object()
            && sandbox_holder(c.dir.path(), &uid).is_some_and(|h| h != holder)
    });
    assert!(renewed, "{:#}", pod_json(&k, "sleeper"));
    let events = k.ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=sleeper",
    ]);
    assert!(events.contains("SandboxChanged"), "{events}");
    let new_holder = sandbox_holder(c.dir.path(), &uid).unwrap();
    let procs = processes_of(&uid);
    assert_eq!(procs.len(), 1, "{procs:?}");
    for kind in ["net", "ipc", "uts"] {
        assert_eq!(ns_of(procs[0], kind), ns_of(new_holder, kind), "{kind}");
    }
    assert_eq!(
        k.ok(&["exec", "sleeper", "--", "hostname"]).trim(),
        "sleeper"
    );
    // The init container ran again for the new sandbox, as upstream's kubelet does.
    let runs = k.ok(&["exec", "sleeper", "-c", "main", "--", "cat", "/work/runs"]);
    assert_eq!(runs.lines().count(), 2, "{runs}");

    k.ok(&["delete", "pod", "sleeper"]);
    assert!(eventually(Duration::from_secs(20), || processes_of(&uid)
        .is_empty()
        && cgroups_of(&uid).is_empty()
        && ns_of(new_holder, "net").is_empty()));
}

/// A pod whose container cannot start (its image is absent and must not be pulled):
/// it has a sandbox, volumes and a cgroup, but no container.
const WAITER: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: waiter
spec:
  terminationGracePeriodSeconds: 2
  containers:
  - name: main
    image: ferrokube.test/absent:1
    imagePullPolicy: Never
"#;

/// What a pod may leave behind, removed when the test ends should the kubelet have
/// failed to: its sandbox holder (if still the same process), mounts under its
/// directory and its cgroups.
struct Leftovers {
    pod_dir: std::path::PathBuf,
    uid: String,
    /// The holder's pid and network namespace when the test saw it.
    holder: Option<(i32, String)>,
}

impl Drop for Leftovers {
    fn drop(&mut self) {
        if let Some((pid, net)) = &self.holder {
            if ns_of(pid, "net") == *net {
                let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            }
        }
        for m in mounts_under(&self.pod_dir).iter().rev() {
            let _ = Command::new("umount").args(["-l", m]).status();
        }
        for cg in cgroups_of(&self.uid) {
            let _ = std::fs::remove_dir(cg);
        }
    }
}

/// The pod's container ID and restart count.
fn container_of(k: &Kubectl, pod: &str) -> (serde_json::Value, serde_json::Value) {
    let st = &pod_json(k, pod)["status"]["containerStatuses"][0];
    (st["containerID"].clone(), st["restartCount"].clone())
}

/// Log directories of the pod under the kubelet's `logs_dir`.
fn log_dirs_of(logs_dir: &Path, uid: &str) -> Vec<String> {
    std::fs::read_dir(logs_dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(uid))
        .collect()
}

#[test]
fn what_a_pod_deleted_while_the_kubelet_was_down_left_is_removed() {
    let c = start("builtin");
    let k = c.kubectl("1.33");
    // Removes the pods should the test fail before the restarts.
    let first_cleanup = Cleanup(&k, c.dir.path().to_path_buf());
    // A pod that stays, and must be adopted rather than swept.
    let survivor = run_sleeper(&k, SLEEPER);
    let survivor_uid = survivor["metadata"]["uid"].as_str().unwrap().to_string();
    let survivor_container = container_of(&k, "sleeper");
    k.apply(&[], WAITER);
    let uid = eventually(Duration::from_secs(30), || {
        pod_json(&k, "waiter")["metadata"]["uid"].is_string()
    })
    .then(|| {
        pod_json(&k, "waiter")["metadata"]["uid"]
            .as_str()
            .unwrap()
            .to_string()
    })
    .expect("the waiter pod exists");
    let pod_dir = c.dir.path().join("agent/pods").join(&uid);
    let mut leftovers = Leftovers {
        pod_dir: pod_dir.clone(),
        uid: uid.clone(),
        holder: None,
    };
    let waiting = eventually(Duration::from_secs(60), || {
        pod_json(&k, "waiter")["status"]["containerStatuses"][0]["state"]["waiting"]["reason"]
            == "ErrImageNeverPull"
    });
    assert!(waiting, "{:#}", pod_json(&k, "waiter"));
    let holder = sandbox_holder(c.dir.path(), &uid).expect("the pod has a sandbox");
    leftovers.holder = Some((holder, ns_of(holder, "net")));
    assert!(!mounts_under(&pod_dir).is_empty(), "no volume mounted");
    assert!(!cgroups_of(&uid).is_empty());

    // The pod is deleted while no kubelet runs: the server and its kubelet are
    // killed, and a server without a kubelet takes the deletion.
    std::mem::forget(first_cleanup);
    let c = c.restart_in_place(&[]);
    c.kubectl("1.33")
        .ok(&["delete", "pod", "waiter", "--grace-period=0", "--force"]);
    let c = start_on(c.kill9(), "builtin", &[]);
    let k = c.kubectl("1.33");
    let _cleanup = Cleanup(&k, c.dir.path().to_path_buf());
    let swept = eventually(Duration::from_secs(30), || {
        ns_of(holder, "net").is_empty()
            && !pod_dir.exists()
            && mounts_under(&pod_dir).is_empty()
            && cgroups_of(&uid).is_empty()
    });
    assert!(
        swept,
        "holder alive: {}, pod directory: {}, mounts {:?}, cgroups {:?}",
        !ns_of(holder, "net").is_empty(),
        pod_dir.exists(),
        mounts_under(&pod_dir),
        cgroups_of(&uid)
    );
    assert!(log_dirs_of(&c.dir.path().join("agent/logs"), &uid).is_empty());
    // The pod the API still has was adopted, not swept: same container, no restart.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(container_of(&k, "sleeper"), survivor_container);
    assert!(!processes_of(&survivor_uid).is_empty());
    assert!(c.dir.path().join("agent/pods").join(&survivor_uid).exists());
}

fn signal(pid: u32, sig: &str) {
    let sent = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
}

/// Resumes a stopped process when the test ends, pass or fail.
struct Resume(u32);

impl Drop for Resume {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-CONT", &self.0.to_string()])
            .status();
    }
}

/// A `ferrokube kubelet` process of its own for `node`, started in `cwd` with
/// `dirs` (where it keeps its data), serving on a free loopback port.
fn own_kubelet(c: &Cluster, cwd: &Path, node: &str, dirs: &[&str]) -> support::Component {
    let port = support::free_port().to_string();
    let mut args = dirs.to_vec();
    args.extend([
        "--hostname-override",
        node,
        "--oci-runtime",
        "builtin",
        "--port",
        &port,
        "--healthz-port",
        "0",
        "--address",
        "127.0.0.1",
        "--node-ip",
        "127.0.0.1",
        "--eviction-hard",
        "memory.available<1Mi",
    ]);
    c.component_in("kubelet", cwd, &args)
}

#[test]
fn a_pod_deleted_while_the_kubelets_watch_was_down_is_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("node");
    put_image(&root.join("images"));
    let mut c = Cluster::start_in(dir, &[]);
    let node = format!("watch-gap-{}", std::process::id());
    let root_arg = root.display().to_string();
    let kubelet = own_kubelet(&c, Path::new("."), &node, &["--root-dir", &root_arg]);
    let k = c.kubectl("1.33");
    let _cleanup = Cleanup(&k, root.clone());
    let survivor = SLEEPER.replace("name: sleeper", "name: survivor");
    k.apply(&[], &survivor);
    let uid = run_sleeper(&k, SLEEPER)["metadata"]["uid"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(eventually(Duration::from_secs(60), || pod_json(
        &k, "survivor"
    )["status"]["phase"]
        == "Running"));
    let survivor_container = container_of(&k, "survivor");
    assert!(!processes_of(&uid).is_empty());

    // The kubelet is stopped while the API server restarts, the pod is deleted and
    // the store's history compacted past what the kubelet saw, so its watch breaks
    // and cannot resume (410 Gone): it must see the pod missing from its next list.
    signal(kubelet.pid(), "-STOP");
    let resume = Resume(kubelet.pid());
    // A write the kubelet never sees: its last revision is older than this one, and
    // than the restarted server's watch cache.
    k.ok(&["create", "configmap", "before-the-restart"]);
    let unseen: u64 = k
        .ok(&[
            "get",
            "configmap",
            "before-the-restart",
            "-o",
            "jsonpath={.metadata.resourceVersion}",
        ])
        .trim()
        .parse()
        .unwrap();
    c = c.restart_in_place(&["--compaction-interval", "1"]);
    let k2 = c.kubectl("1.33");
    k2.ok(&["delete", "pod", "sleeper", "--grace-period=0", "--force"]);
    // Compaction goes up to the revision seen one interval earlier: wait until a
    // watch from before the unseen write is refused.
    let old = format!(
        "/api/v1/configmaps?watch=1&timeoutSeconds=1&resourceVersion={}",
        unseen - 1
    );
    let compacted = eventually(Duration::from_secs(20), || {
        let out = k2.run(&["get", "--raw", &old]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        text.contains("too old resource version")
    });
    assert!(
        compacted,
        "the store was not compacted past the kubelet's revision"
    );
    drop(resume);
    let stopped = eventually(Duration::from_secs(30), || {
        processes_of(&uid).is_empty()
            && cgroups_of(&uid).is_empty()
            && !root.join("pods").join(&uid).exists()
            && mounts_under(&root.join("pods").join(&uid)).is_empty()
    });
    assert!(
        stopped,
        "processes {:?}, cgroups {:?}, mounts {:?}",
        processes_of(&uid),
        cgroups_of(&uid),
        mounts_under(&root)
    );
    // The pod still in the API kept running through the re-list.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(container_of(&k2, "survivor"), survivor_container);
}

#[test]
fn a_kubelet_given_relative_directories_runs_pods_in_them() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().to_path_buf();
    let root = work.join("node");
    put_image(&root.join("images"));
    let c = Cluster::start_in(dir, &[]);
    let node = format!("relative-{}", std::process::id());
    let _kubelet = own_kubelet(
        &c,
        &work,
        &node,
        &[
            "--root-dir",
            "node",
            "--runtime-state-dir",
            "node/run",
            "--pod-logs-dir",
            "node/logs",
        ],
    );
    let k = c.kubectl("1.33");
    let _cleanup = Cleanup(&k, root.clone());
    let pod = run_sleeper(&k, SLEEPER);
    let uid = pod["metadata"]["uid"].as_str().unwrap();
    assert_eq!(pod["spec"]["nodeName"], node.as_str());
    assert!(!processes_of(uid).is_empty());
    assert!(root.join("pods").join(uid).is_dir());
    assert_eq!(log_dirs_of(&root.join("logs"), uid).len(), 1);
}

/// A pod that prints its environment at start, with or without Service links.
fn env_printer(name: &str, links: bool) -> String {
    format!(
        r#"
apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  terminationGracePeriodSeconds: 1
  enableServiceLinks: {links}
  containers:
  - name: main
    image: ferrokube.test/busybox:1
    command: ["sh", "-c", "env; exec sleep 3600"]
"#
    )
}

/// The environment `name` printed at its start.
fn printed_env(k: &Kubectl, name: &str) -> std::collections::BTreeMap<String, String> {
    assert!(eventually(Duration::from_secs(60), || {
        String::from_utf8_lossy(&k.run(&["logs", name]).stdout).contains("HOSTNAME=")
    }));
    k.ok(&["logs", name])
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn containers_get_the_variables_of_services_that_existed_when_they_started() {
    let c = start("builtin");
    let k = c.kubectl("1.33");
    let _cleanup = Cleanup(&k, c.dir.path().to_path_buf());
    k.ok(&["create", "service", "clusterip", "web", "--tcp=8080:80"]);
    let ip = k.ok(&["get", "service", "web", "-o", "jsonpath={.spec.clusterIP}"]);
    let master = k.ok(&[
        "get",
        "service",
        "kubernetes",
        "-o",
        "jsonpath={.spec.clusterIP}",
    ]);
    k.apply(&[], &env_printer("linked", true));
    k.apply(&[], &env_printer("unlinked", false));
    let env = printed_env(&k, "linked");
    assert_eq!(env.get("WEB_SERVICE_HOST"), Some(&ip), "{env:?}");
    assert_eq!(env["WEB_SERVICE_PORT"], "8080");
    assert_eq!(env["WEB_SERVICE_PORT_8080_80"], "8080");
    assert_eq!(env["WEB_PORT"], format!("tcp://{ip}:8080"));
    assert_eq!(env["WEB_PORT_8080_TCP_ADDR"], ip);
    assert_eq!(env["WEB_PORT_8080_TCP_PROTO"], "tcp");
    assert_eq!(env["KUBERNETES_SERVICE_HOST"], master);
    assert_eq!(env["KUBERNETES_SERVICE_PORT"], "443");
    // Without links only the master Service's variables are given.
    let env = printed_env(&k, "unlinked");
    assert_eq!(env["KUBERNETES_SERVICE_HOST"], master);
    assert_eq!(env["KUBERNETES_PORT"], format!("tcp://{master}:443"));
    assert!(!env.contains_key("WEB_SERVICE_HOST"), "{env:?}");
    // A Service made later is not in a running container's environment, and is in
    // the next container's.
    k.ok(&["create", "service", "clusterip", "later", "--tcp=9090:90"]);
    let later = k.ok(&[
        "get",
        "service",
        "later",
        "-o",
        "jsonpath={.spec.clusterIP}",
    ]);
    let env = printed_env(&k, "linked");
    assert!(!env.contains_key("LATER_SERVICE_HOST"), "{env:?}");
    k.apply(&[], &env_printer("next", true));
    assert!(eventually(Duration::from_secs(30), || printed_env(
        &k, "next"
    )
    .get("LATER_SERVICE_HOST")
        == Some(&later)));
}

const SECRETIVE: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: secretive
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: ferrokube.test/busybox:1
    command: ["sh", "-c", "echo token=$(cat /etc/creds/token) password=$PASSWORD user=$USERNAME mode=$MODE; exec sleep 3600"]
    env:
    - name: PASSWORD
      valueFrom:
        secretKeyRef: {name: creds, key: password}
    envFrom:
    - secretRef: {name: creds}
    - configMapRef: {name: knobs}
    volumeMounts:
    - {name: creds, mountPath: /etc/creds}
  volumes:
  - name: creds
    secret: {secretName: creds}
"#;

#[test]
fn secrets_and_config_maps_made_after_the_pod_reach_its_volume_and_environment() {
    let c = start("builtin");
    let k = c.kubectl("1.33");
    let _cleanup = Cleanup(&k, c.dir.path().to_path_buf());
    k.apply(&[], SECRETIVE);
    // Nothing it needs exists yet: the volume cannot be set up.
    assert!(eventually(Duration::from_secs(30), || {
        k.ok(&["get", "events", "-o", "jsonpath={.items[*].reason}"])
            .contains("FailedMount")
    }));
    assert_eq!(pod_json(&k, "secretive")["status"]["phase"], "Pending");
    k.ok(&[
        "create",
        "secret",
        "generic",
        "creds",
        "--from-literal=token=t0k3n",
        "--from-literal=password=s3cret",
        "--from-literal=USERNAME=alice",
    ]);
    k.ok(&["create", "configmap", "knobs", "--from-literal=MODE=fast"]);
    assert!(eventually(Duration::from_secs(60), || {
        String::from_utf8_lossy(&k.run(&["logs", "secretive"]).stdout)
            == "token=t0k3n password=s3cret user=alice mode=fast\n"
    }));
}

const GATED: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: gated
spec:
  terminationGracePeriodSeconds: 2
  readinessGates:
  - conditionType: example.com/load-balancer
  containers:
  - name: main
    image: ferrokube.test/busybox:1
    command: ["sleep", "3600"]
"#;

/// The pod's condition of the given type.
fn condition(pod: &serde_json::Value, type_: &str) -> serde_json::Value {
    pod["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == type_).cloned())
        .unwrap_or_default()
}

#[test]
fn a_readiness_gate_holds_ready_back_until_its_condition_is_true() {
    let c = start("builtin");
    let k = c.kubectl("1.33");
    let _cleanup = Cleanup(&k, c.dir.path().to_path_buf());
    k.apply(&[], GATED);
    assert!(eventually(Duration::from_secs(60), || condition(
        &pod_json(&k, "gated"),
        "ContainersReady"
    )["status"]
        == "True"));
    let ready = condition(&pod_json(&k, "gated"), "Ready");
    assert_eq!(ready["status"], "False", "{ready}");
    assert_eq!(ready["reason"], "ReadinessGatesNotReady");
    assert_eq!(
        ready["message"],
        "corresponding condition of pod readiness gate \"example.com/load-balancer\" does not exist."
    );
    // What a controller writes into the status reaches the kubelet through its watch,
    // well before its periodic resync (10 s after its last sync).
    let set = |status: &str| {
        let patch = serde_json::json!({"status": {"conditions": [
            {"type": "example.com/load-balancer", "status": status}
        ]}});
        patch_status(&k, "gated", patch);
    };
    set("False");
    assert!(eventually(Duration::from_secs(8), || {
        condition(
        &pod_json(&k, "gated"),
        "Ready"
    )["message"]
        == "the status of pod readiness gate \"example.com/load-balancer\" is not \"True\", but False"
    }));
    set("True");
    assert!(eventually(Duration::from_secs(8), || condition(
        &pod_json(&k, "gated"),
        "Ready"
    )["status"]
        == "True"));
    let ready = condition(&pod_json(&k, "gated"), "Ready");
    assert!(ready.get("reason").is_none_or(|r| r.is_null()), "{ready}");
}

const PLAIN: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: plain
spec:
  terminationGracePeriodSeconds: 2
  containers:
  - name: main
    image: ferrokube.test/busybox:1
    command: ["sleep", "3600"]
"#;

/// As upstream's status manager does, the kubelet writes back what it reports when
/// someone else rewrote it (here the Ready condition and the container's ready flag),
/// at its next periodic sync, and leaves conditions others own as they are.
#[test]
fn a_status_rewritten_by_others_is_written_back() {
    let c = start("builtin");
    let k = c.kubectl("1.33");
    let _cleanup = Cleanup(&k, c.dir.path().to_path_buf());
    k.apply(&[], PLAIN);
    let ready = || condition(&pod_json(&k, "plain"), "Ready")["status"] == "True";
    assert!(eventually(Duration::from_secs(60), ready));
    patch_status(
        &k,
        "plain",
        serde_json::json!({"status": {
            "conditions": [{"type": "Ready", "status": "False", "reason": "Rewritten"}],
            "containerStatuses": [{"name": "main", "ready": false}]
        }}),
    );
    let pod = pod_json(&k, "plain");
    assert_eq!(condition(&pod, "Ready")["status"], "False", "{pod:#}");
    assert!(
        eventually(Duration::from_secs(30), ready),
        "{:#}",
        pod_json(&k, "plain")
    );
    let pod = pod_json(&k, "plain");
    assert!(condition(&pod, "Ready")["reason"].is_null(), "{pod:#}");
    assert_eq!(pod["status"]["containerStatuses"][0]["ready"], true);
    // A condition of someone else's stays through the kubelet's next syncs.
    patch_status(
        &k,
        "plain",
        serde_json::json!({"status": {
            "conditions": [{"type": "example.com/other", "status": "True"}]
        }}),
    );
    std::thread::sleep(Duration::from_secs(12));
    let pod = pod_json(&k, "plain");
    assert_eq!(
        condition(&pod, "example.com/other")["status"],
        "True",
        "{pod:#}"
    );
    assert_eq!(condition(&pod, "Ready")["status"], "True", "{pod:#}");
}

const PROBED: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: probed
spec:
  terminationGracePeriodSeconds: 2
  containers:
  - name: main
    image: ferrokube.test/busybox:1
    command: ["sh", "-c", "mkdir -p /www && echo ok > /www/index.html && httpd -p 8080 -h /www && touch /tmp/healthy && sleep 6 && rm /tmp/healthy && exec sleep 3600"]
    ports:
    - {name: http, containerPort: 8080}
    livenessProbe:
      exec: {command: ["cat", "/tmp/healthy"]}
      periodSeconds: 1
      failureThreshold: 2
    readinessProbe:
      httpGet: {path: /index.html, port: http}
      periodSeconds: 1
"#;

#[test]
fn probes_gate_readiness_and_restart_unhealthy_containers() {
    let c = start("builtin");
    let k = c.kubectl("1.33");
    let _cleanup = Cleanup(&k, c.dir.path().to_path_buf());
    k.apply(&[], PROBED);
    // Ready once the HTTP readiness probe, made inside the pod's network namespace, passes.
    let ok = eventually(Duration::from_secs(60), || {
        pod_json(&k, "probed")["status"]["containerStatuses"][0]["ready"] == true
    });
    assert!(ok, "{:#}", pod_json(&k, "probed"));
    // The liveness probe fails once /tmp/healthy is gone: the container restarts.
    let ok = eventually(Duration::from_secs(60), || {
        pod_json(&k, "probed")["status"]["containerStatuses"][0]["restartCount"]
            .as_i64()
            .unwrap_or(0)
            >= 1
    });
    assert!(ok, "{:#}", pod_json(&k, "probed"));
    let p = pod_json(&k, "probed");
    let last = &p["status"]["containerStatuses"][0]["lastState"]["terminated"];
    assert_eq!(last["exitCode"], 137, "{p:#}");
    let events = k.ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=probed",
    ]);
    assert!(
        events.contains("Liveness probe failed: cat: can't open '/tmp/healthy'"),
        "{events}"
    );
    assert!(
        events.contains("Container main failed liveness probe, will be restarted"),
        "{events}"
    );
}

const HOOKED: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: hooked
spec:
  terminationGracePeriodSeconds: 10
  containers:
  - name: main
    image: ferrokube.test/busybox:1
    command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]
    lifecycle:
      postStart:
        exec: {command: ["sh", "-c", "echo started > /host/poststart"]}
      preStop:
        exec: {command: ["sh", "-c", "echo stopping > /host/prestop"]}
    volumeMounts:
    - {name: host, mountPath: /host}
  volumes:
  - name: host
    hostPath: {path: HOSTDIR, type: DirectoryOrCreate}
"#;

#[test]
fn lifecycle_hooks_run_at_start_and_stop() {
    let c = start("builtin");
    let k = c.kubectl("1.33");
    let _cleanup = Cleanup(&k, c.dir.path().to_path_buf());
    let host = c.dir.path().join("hooks");
    k.apply(&[], &HOOKED.replace("HOSTDIR", &host.display().to_string()));
    assert!(eventually(Duration::from_secs(60), || pod_json(
        &k, "hooked"
    )["status"]["phase"]
        == "Running"));
    assert_eq!(
        std::fs::read_to_string(host.join("poststart")).unwrap(),
        "started\n"
    );
    assert!(!host.join("prestop").exists());
    k.ok(&["delete", "pod", "hooked"]);
    assert_eq!(
        std::fs::read_to_string(host.join("prestop")).unwrap(),
        "stopping\n"
    );
}

const STATIC: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: static-web
  namespace: kube-system
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: ferrokube.test/busybox:1
    command: ["sleep", "3600"]
"#;

#[test]
fn static_pods_run_from_manifests_with_mirror_pods() {
    let dir = data_dir_with_image();
    let manifests = dir.path().join("manifests");
    std::fs::create_dir_all(&manifests).unwrap();
    std::fs::write(manifests.join("web.yaml"), STATIC).unwrap();
    let node = format!("kubelet-e2e-{}", std::process::id());
    // A manifest URL serving one more static pod.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/pods", listener.local_addr().unwrap());
    let served = std::sync::Arc::new(std::sync::Mutex::new(
        STATIC.replace("static-web", "url-web"),
    ));
    let body_of = served.clone();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for mut s in listener.incoming().flatten() {
            let body = body_of.lock().unwrap().clone();
            let mut buf = [0u8; 2048];
            let _ = s.read(&mut buf);
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    let c = Cluster::start_agent_in(
        dir,
        &[
            "--node-name",
            &node,
            "--kubelet-arg",
            &format!("pod-manifest-path={}", manifests.display()),
            "--kubelet-arg",
            "file-check-frequency=1s",
            "--kubelet-arg",
            &format!("manifest-url={url}"),
            "--kubelet-arg",
            "http-check-frequency=1s",
        ],
    );
    let k = c.kubectl("1.33");
    let _cleanup = Cleanup(&k, c.dir.path().to_path_buf());
    let name = format!("static-web-{node}");
    let mirror = |k: &Kubectl| k.json(&["get", "pod", "-n", "kube-system", &name]);
    assert!(
        eventually(Duration::from_secs(60), || {
            let out = k.run(&["get", "pod", "-n", "kube-system", &name, "-o", "json"]);
            out.status.success() && mirror(&k)["status"]["phase"] == "Running"
        }),
        "no running mirror pod"
    );
    let m = mirror(&k);
    let hash = m["metadata"]["annotations"]["kubernetes.io/config.mirror"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        m["metadata"]["annotations"]["kubernetes.io/config.source"],
        "file"
    );
    assert_eq!(m["metadata"]["ownerReferences"][0]["kind"], "Node");
    assert_eq!(m["spec"]["nodeName"], node.as_str());
    assert!(
        !processes_of(&hash).is_empty(),
        "the static pod does not run"
    );
    // The URL's pod runs too, with source http.
    let url_pod = format!("url-web-{node}");
    assert!(eventually(Duration::from_secs(30), || {
        let out = k.run(&["get", "pod", "-n", "kube-system", &url_pod, "-o", "json"]);
        out.status.success()
            && k.json(&["get", "pod", "-n", "kube-system", &url_pod])["status"]["phase"]
                == "Running"
    }));
    assert_eq!(
        k.json(&["get", "pod", "-n", "kube-system", &url_pod])["metadata"]["annotations"]
            ["kubernetes.io/config.source"],
        "http"
    );
    // Deleting the mirror does not stop the pod; the kubelet makes a new mirror.
    let first_uid = m["metadata"]["uid"].as_str().unwrap().to_string();
    k.ok(&["delete", "pod", "-n", "kube-system", &name, "--wait=false"]);
    assert!(eventually(Duration::from_secs(30), || {
        let out = k.run(&["get", "pod", "-n", "kube-system", &name, "-o", "json"]);
        out.status.success() && mirror(&k)["metadata"]["uid"].as_str() != Some(first_uid.as_str())
    }));
    assert!(
        !processes_of(&hash).is_empty(),
        "deleting the mirror stopped the pod"
    );
    // Removing the manifests stops the pods and removes their mirrors.
    *served.lock().unwrap() = r#"{"kind": "PodList", "apiVersion": "v1", "items": []}"#.into();
    assert!(eventually(Duration::from_secs(30), || !k
        .run(&["get", "pod", "-n", "kube-system", &url_pod])
        .status
        .success()));
    std::fs::remove_file(manifests.join("web.yaml")).unwrap();
    assert!(
        eventually(Duration::from_secs(30), || !k
            .run(&["get", "pod", "-n", "kube-system", &name])
            .status
            .success()
            && processes_of(&hash).is_empty()
            && cgroups_of(&hash).is_empty()),
        "the static pod was not removed"
    );
}

/// Debian's docker-registry on a loopback port, killed by PID on drop.
struct Registry {
    child: std::process::Child,
    host: String,
    _dir: tempfile::TempDir,
}

impl Registry {
    fn start() -> Registry {
        let dir = tempfile::tempdir().unwrap();
        let port = support::free_port();
        let host = format!("127.0.0.1:{port}");
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {host}\n  secret: ferrokube-test\n",
                dir.path().join("data").display()
            ),
        )
        .unwrap();
        let mut cmd = std::process::Command::new("docker-registry");
        cmd.arg("serve")
            .arg(&config)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        support::die_with_parent(&mut cmd);
        let child = cmd.spawn().expect("starting docker-registry");
        assert!(eventually(Duration::from_secs(10), || {
            std::net::TcpStream::connect(&host).is_ok()
        }));
        Registry {
            child,
            host,
            _dir: dir,
        }
    }

    /// Pushes an OCI archive as `repo:tag` with skopeo.
    fn push(&self, archive: &Path, repo_tag: &str) -> String {
        let reference = format!("{}/{repo_tag}", self.host);
        let out = std::process::Command::new("skopeo")
            .args(["copy", "--dest-tls-verify=false"])
            .arg(format!("oci-archive:{}", archive.display()))
            .arg(format!("docker://{reference}"))
            .output()
            .expect("running skopeo");
        assert!(
            out.status.success(),
            "skopeo: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        reference
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn images_are_pulled_from_a_registry() {
    let registry = Registry::start();
    let archive = tempfile::tempdir().unwrap();
    let tar = archive.path().join("busybox.tar");
    images::testimage::busybox_image("pushed/busybox:1")
        .write_oci_archive(&tar)
        .unwrap();
    let image = registry.push(&tar, "team/busybox:2");
    // A cluster whose node has no image: it must pull.
    let c = Cluster::start_agent_in(
        tempfile::tempdir().unwrap(),
        &[
            "--node-name",
            &format!("kubelet-e2e-{}", std::process::id()),
        ],
    );
    let k = c.kubectl("1.33");
    let _cleanup = Cleanup(&k, c.dir.path().to_path_buf());
    let pod = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: pulled\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: main\n    image: {image}\n    command: [\"sleep\", \"3600\"]\n  - name: missing\n    image: {}/team/nothing:1\n",
        registry.host
    );
    k.apply(&[], &pod);
    let ok = eventually(Duration::from_secs(60), || {
        let p = pod_json(&k, "pulled");
        let cs = p["status"]["containerStatuses"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let main = cs.iter().find(|c| c["name"] == "main");
        let missing = cs.iter().find(|c| c["name"] == "missing");
        main.is_some_and(|m| m["state"]["running"].is_object())
            && missing.is_some_and(|m| m["state"]["waiting"]["reason"] == "ImagePullBackOff")
    });
    assert!(ok, "{:#}", pod_json(&k, "pulled"));
    let p = pod_json(&k, "pulled");
    let missing = p["status"]["containerStatuses"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "missing")
        .unwrap()
        .clone();
    let msg = missing["state"]["waiting"]["message"].as_str().unwrap();
    assert!(msg.contains("not found"), "{msg}");
    let events = k.ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=pulled",
    ]);
    assert!(
        events.contains(&format!("Successfully pulled image \"{image}\"")),
        "{events}"
    );
    assert!(events.contains("Back-off pulling image"), "{events}");
    let main = p["status"]["containerStatuses"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "main")
        .unwrap()
        .clone();
    assert!(
        main["imageID"]
            .as_str()
            .unwrap()
            .contains("team/busybox@sha256:"),
        "{main:#}"
    );
}

/// The node name [`start_with`] gives the kubelet.
fn node_name() -> String {
    format!("kubelet-e2e-{}", std::process::id())
}

/// The node's condition of type `ty` (null when absent).
fn node_condition(k: &Kubectl, node: &str, ty: &str) -> serde_json::Value {
    let out = k.run(&["get", "node", node, "-o", "json"]);
    serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap_or_default()["status"]
        ["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == ty).cloned())
        .unwrap_or_default()
}

/// Whether the node reports MemoryPressure.
fn under_memory_pressure(k: &Kubectl, node: &str) -> bool {
    node_condition(k, node, "MemoryPressure")["status"] == "True"
}

#[test]
fn memory_pressure_evicts_pods_and_admission_turns_pods_away() {
    // A threshold no machine meets: the node is under memory pressure at once.
    let c = start_with(
        "builtin",
        &[
            "eviction-hard=memory.available<100Ti",
            "eviction-monitoring-interval=1s",
        ],
    );
    let node = node_name();
    let k = c.kubectl("1.33");
    let _cleanup = Cleanup(&k, c.dir.path().to_path_buf());
    assert!(eventually(Duration::from_secs(30), || {
        under_memory_pressure(&k, &node)
    }));
    // Pods placed by name, past the scheduler. Under MemoryPressure alone the kubelet
    // admits pods that are not BestEffort and turns BestEffort ones away; requests the
    // node cannot hold are turned away whatever the pressure.
    k.apply(&[], &pinned_pod("turned-away", &node, None));
    k.apply(&[], &pinned_pod("too-big", &node, Some("1000")));
    k.apply(&[], &pinned_pod("victim", &node, Some("10m")));
    for (name, reason, message) in [
        (
            "turned-away",
            "Evicted",
            "Pod was rejected: The node had condition: [MemoryPressure]. ".to_string(),
        ),
        (
            "too-big",
            "OutOfcpu",
            "Pod was rejected: Node didn't have enough resource: cpu, requested: 1000000, used: "
                .to_string(),
        ),
    ] {
        assert!(
            eventually(Duration::from_secs(30), || pod_json(&k, name)["status"]
                ["phase"]
                == "Failed"),
            "{:#}",
            pod_json(&k, name)
        );
        let p = pod_json(&k, name);
        assert_eq!(p["status"]["reason"], reason, "{p:#}");
        let msg = p["status"]["message"].as_str().unwrap_or_default();
        assert!(msg.starts_with(&message), "{msg}");
        // Nothing of it ever ran.
        assert!(p["status"]["containerStatuses"].is_null(), "{p:#}");
        let uid = p["metadata"]["uid"].as_str().unwrap().to_string();
        assert!(processes_of(&uid).is_empty() && cgroups_of(&uid).is_empty());
        assert!(k
            .ok(&[
                "get",
                "events",
                "--field-selector",
                &format!("involvedObject.name={name}")
            ])
            .contains(reason));
    }
    let ok = eventually(Duration::from_secs(60), || {
        pod_json(&k, "victim")["status"]["reason"] == "Evicted"
    });
    assert!(ok, "{:#}", pod_json(&k, "victim"));
    let p = pod_json(&k, "victim");
    assert_eq!(p["status"]["phase"], "Failed");
    let msg = p["status"]["message"].as_str().unwrap();
    assert!(
        msg.starts_with(
            "The node was low on resource: memory. Threshold quantity: 100Ti, available: "
        ),
        "{msg}"
    );
    let conds = p["status"]["conditions"].as_array().unwrap();
    assert!(conds
        .iter()
        .any(|c| c["type"] == "DisruptionTarget" && c["reason"] == "TerminationByKubelet"));
    let uid = p["metadata"]["uid"].as_str().unwrap().to_string();
    assert!(eventually(Duration::from_secs(20), || processes_of(&uid)
        .is_empty()
        && cgroups_of(&uid).is_empty()));
    assert!(k
        .ok(&[
            "get",
            "events",
            "--field-selector",
            "involvedObject.name=victim"
        ])
        .contains("Evicted"));
}

/// pid.available below its threshold raises PIDPressure, and then the kubelet turns
/// away every pod that is not critical.
#[test]
fn pid_pressure_turns_pods_away() {
    // More pids than any kernel allows: the node is under PID pressure at once.
    let c = start_with(
        "builtin",
        &[
            "eviction-hard=pid.available<100000000",
            "eviction-monitoring-interval=1s",
        ],
    );
    let node = node_name();
    let k = c.kubectl("1.33");
    let _cleanup = Cleanup(&k, c.dir.path().to_path_buf());
    let condition = |ty: &str| node_condition(&k, &node, ty);
    assert!(eventually(Duration::from_secs(30), || condition(
        "PIDPressure"
    )["status"]
        == "True"));
    assert_eq!(
        condition("PIDPressure")["reason"],
        "KubeletHasInsufficientPID"
    );
    assert_eq!(condition("MemoryPressure")["status"], "False");
    k.apply(&[], &pinned_pod("late", &node, Some("10m")));
    assert!(
        eventually(Duration::from_secs(30), || pod_json(&k, "late")["status"]
            ["phase"]
            == "Failed"),
        "{:#}",
        pod_json(&k, "late")
    );
    let p = pod_json(&k, "late");
    assert_eq!(p["status"]["reason"], "Evicted");
    assert_eq!(
        p["status"]["message"],
        "Pod was rejected: The node had condition: [PIDPressure]. "
    );
}

/// A busybox pod sleeping on `node`, placed by name past the scheduler, with a cpu
/// request if given (BestEffort without).
fn pinned_pod(name: &str, node: &str, cpu_request: Option<&str>) -> String {
    let requests = cpu_request
        .map(|cpu| format!("    resources:\n      requests:\n        cpu: {cpu}\n"))
        .unwrap_or_default();
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  nodeName: {node}\n  containers:\n  - name: main\n    image: ferrokube.test/busybox:1\n    command: [\"sleep\", \"3600\"]\n{requests}"
    )
}

/// A soft threshold raises pressure at once but evicts only after its grace period:
/// the pod runs first, then goes with the soft threshold's message.
#[test]
fn soft_eviction_waits_for_the_grace_period() {
    let c = start_with(
        "builtin",
        &[
            "eviction-hard=memory.available<1Mi",
            "eviction-soft=memory.available<100Ti",
            "eviction-soft-grace-period=memory.available=6s",
            "eviction-monitoring-interval=1s",
        ],
    );
    let node = node_name();
    let k = c.kubectl("1.33");
    let _cleanup = Cleanup(&k, c.dir.path().to_path_buf());
    assert!(eventually(Duration::from_secs(30), || {
        under_memory_pressure(&k, &node)
    }));
    k.apply(&[], &pinned_pod("soft", &node, Some("10m")));
    // Under the grace period the pod starts and runs.
    assert!(
        eventually(Duration::from_secs(30), || pod_json(&k, "soft")["status"]
            ["phase"]
            == "Running"),
        "{:#}",
        pod_json(&k, "soft")
    );
    assert!(
        eventually(Duration::from_secs(60), || pod_json(&k, "soft")["status"]
            ["reason"]
            == "Evicted"),
        "{:#}",
        pod_json(&k, "soft")
    );
    let p = pod_json(&k, "soft");
    assert_eq!(p["status"]["phase"], "Failed");
    let msg = p["status"]["message"].as_str().unwrap_or_default();
    assert!(
        msg.starts_with("The node was low on resource: memory. Threshold quantity: 100Ti"),
        "{msg}"
    );
}

const SHUTDOWN_PODS: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: ordinary
  namespace: kube-system
spec:
  containers:
  - name: main
    image: ferrokube.test/busybox:1
    command: ["sh", "-c", "trap '' TERM; while true; do sleep 1; done"]
---
apiVersion: v1
kind: Pod
metadata:
  name: critical
  namespace: kube-system
spec:
  priorityClassName: system-node-critical
  containers:
  - name: main
    image: ferrokube.test/busybox:1
    command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]
"#;

#[test]
fn node_shutdown_stops_ordinary_pods_before_critical_ones() {
    let dir = data_dir_with_image();
    let node = format!("kubelet-e2e-{}", std::process::id());
    let c = Cluster::start_agent_in(
        dir,
        &[
            "--node-name",
            &node,
            "--kubelet-arg",
            "shutdown-grace-period=8s",
            "--kubelet-arg",
            "shutdown-grace-period-critical-pods=4s",
        ],
    );
    let k = c.kubectl("1.33");
    k.apply(&[], SHUTDOWN_PODS);
    let running = |k: &Kubectl, name: &str| {
        k.json(&["get", "pod", "-n", "kube-system", name])["status"]["phase"] == "Running"
    };
    assert!(eventually(Duration::from_secs(60), || running(
        &k, "ordinary"
    ) && running(
        &k, "critical"
    )));
    let uids: Vec<String> = ["ordinary", "critical"]
        .iter()
        .map(|n| {
            k.json(&["get", "pod", "-n", "kube-system", n])["metadata"]["uid"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    // SIGTERM to the server: its kubelet stops the pods before it exits.
    let dir = c.terminate(Duration::from_secs(30));
    for uid in &uids {
        assert!(
            processes_of(uid).is_empty() && cgroups_of(uid).is_empty(),
            "pod {uid} outlived the shutdown"
        );
    }
    // What the kubelet reported, read back from a server without a kubelet.
    let c = Cluster::start_in(dir, &[]);
    let k = c.kubectl("1.33");
    let status = |name: &str| k.json(&["get", "pod", "-n", "kube-system", name])["status"].clone();
    let (ordinary, critical) = (status("ordinary"), status("critical"));
    for s in [&ordinary, &critical] {
        assert_eq!(s["phase"], "Failed", "{s:#}");
        assert_eq!(s["reason"], "Terminated");
        assert_eq!(
            s["message"],
            "Pod was terminated in response to imminent node shutdown."
        );
    }
    // The ordinary pod ignored SIGTERM and was killed after its 4 s share; only
    // then was the critical pod asked to stop.
    let finished = |s: &serde_json::Value| {
        s["containerStatuses"][0]["state"]["terminated"]["finishedAt"]
            .as_str()
            .unwrap_or("")
            .to_string()
    };
    assert_eq!(
        ordinary["containerStatuses"][0]["state"]["terminated"]["exitCode"],
        137
    );
    assert_eq!(
        critical["containerStatuses"][0]["state"]["terminated"]["exitCode"],
        0
    );
    assert!(
        finished(&critical) >= finished(&ordinary),
        "{ordinary:#} {critical:#}"
    );
    let node_ready = k.json(&["get", "node", &node])["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Ready")
        .cloned()
        .unwrap();
    assert_eq!(node_ready["status"], "False");
    assert_eq!(node_ready["message"], "node is shutting down");
}

const WEB: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: web
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: ferrokube.test/busybox:1
    command: ["sh", "-c", "mkdir -p /www && echo hello from the pod > /www/index.html && httpd -p 8080 -h /www; for i in 1 2 3; do echo line $i; done; exec sleep 3600"]
  - name: side
    image: ferrokube.test/busybox:1
    command: ["sh", "-c", "echo side car; exec sleep 3600"]
"#;

/// kubectl logs, exec, cp and port-forward reach the container through the
/// apiserver and the kubelet API.
fn streaming_with(version: &str) {
    let c = start("builtin");
    let k = c.kubectl(version);
    let _cleanup = Cleanup(&k, c.dir.path().to_path_buf());
    k.apply(&[], WEB);
    assert!(eventually(Duration::from_secs(60), || pod_json(&k, "web")
        ["status"]["phase"]
        == "Running"));
    // Logs: a container named, tail, and both containers.
    assert!(eventually(Duration::from_secs(10), || {
        k.run(&["logs", "web", "-c", "main"]).stdout == b"line 1\nline 2\nline 3\n"
    }));
    assert_eq!(k.ok(&["logs", "web", "-c", "main", "--tail=1"]), "line 3\n");
    assert_eq!(k.ok(&["logs", "web", "-c", "side"]), "side car\n");
    // Without -c, kubectl picks the first container and says so.
    let out = k.run(&["logs", "web"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "line 1\nline 2\nline 3\n"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("Defaulted container \"main\""));
    // Exec: output, exit codes, stdin.
    assert_eq!(
        k.ok(&["exec", "web", "-c", "main", "--", "cat", "/www/index.html"]),
        "hello from the pod\n"
    );
    let out = k.run(&["exec", "web", "-c", "main", "--", "sh", "-c", "exit 3"]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let out = k.run_stdin(
        &["exec", "-i", "web", "-c", "main", "--", "tr", "a-z", "A-Z"],
        "shout\n",
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "SHOUT\n");
    // run -i --rm: kubectl attaches to the new pod's stdin (stdinOnce), the end of its
    // input reaches the container, and the pod is deleted afterwards.
    let out = k.run_stdin(
        &[
            "run",
            "once",
            "--image=ferrokube.test/busybox:1",
            "--restart=Never",
            "-i",
            "--rm",
            "--",
            "sh",
            "-c",
            "while read x; do echo got:$x; done; echo done",
        ],
        "hello\nagain\n",
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("got:hello\ngot:again\ndone\n"), "{text:?}");
    assert!(eventually(Duration::from_secs(30), || !k
        .run(&["get", "pod", "once"])
        .status
        .success()));
    // exec -it: a terminal inside the container (`script` gives kubectl one).
    let cmd = format!(
        "{} --kubeconfig {} exec -it web -c main -- sh -c 'tty; stty size'",
        k.bin.display(),
        k.kubeconfig.display()
    );
    let out = std::process::Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .env("HOME", c.dir.path())
        .stdin(std::process::Stdio::piped())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("/dev/pts/"), "{text:?}");
    // cp out of the pod (tar over exec).
    let local = c.dir.path().join("copied.html");
    k.ok(&[
        "cp",
        "-c",
        "main",
        "web:/www/index.html",
        local.to_str().unwrap(),
    ]);
    assert_eq!(
        std::fs::read_to_string(&local).unwrap(),
        "hello from the pod\n"
    );
    // Port-forward to the pod's loopback-only httpd.
    let port = support::free_port();
    let mut pf = k
        .cmd(&["port-forward", "pod/web", &format!("{port}:8080")])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let got = eventually(Duration::from_secs(20), || {
        use std::io::{Read, Write};
        let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
        let _ = s.write_all(b"GET /index.html HTTP/1.0\r\n\r\n");
        let mut body = String::new();
        let _ = s.read_to_string(&mut body);
        body.contains("hello from the pod")
    });
    let _ = pf.kill();
    let _ = pf.wait();
    assert!(got, "port-forward did not reach the pod");
}

#[test]
fn logs_exec_cp_and_port_forward_with_kubectl_1_27() {
    streaming_with("1.27");
}

#[test]
fn logs_exec_cp_and_port_forward_with_kubectl_1_33() {
    streaming_with("1.33");
}

/// A network namespace this test makes (loopback up) and enters with its calling
/// thread, so the server, the kubelet and kubectl started from that thread live in
/// it; removed on drop, after the cluster it holds has stopped.
struct TestNetns(String);

impl TestNetns {
    fn enter(role: &str) -> TestNetns {
        let ns = TestNetns::make(role);
        let file = std::fs::File::open(format!("/run/netns/{}", ns.0)).unwrap();
        nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        ns
    }

    /// Makes the namespace without entering it.
    fn make(role: &str) -> TestNetns {
        let name = format!("fke2e-{}-{role}", std::process::id());
        let _ = Command::new("ip").args(["netns", "del", &name]).status();
        let ok = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .unwrap()
            .success()
            && Command::new("ip")
                .args(["-n", &name, "link", "set", "lo", "up"])
                .status()
                .unwrap()
                .success();
        assert!(ok, "making network namespace {name}");
        TestNetns(name)
    }

    /// Runs `argv` inside the namespace (its network only: mounts stay the
    /// caller's).
    fn exec(&self, argv: &[&str]) -> std::process::Output {
        Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", self.0))
            .args(argv)
            .output()
            .unwrap()
    }
}

/// Runs `ip` with these arguments, which must succeed.
fn ip(args: &str) {
    let args: Vec<&str> = args.split(' ').collect();
    let out = Command::new("ip").args(&args).output().unwrap();
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Drop for TestNetns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

const CLIENT_POD: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: client
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: ferrokube.test/busybox:1
    command: ["sleep", "3600"]
"#;

/// What the client pod's wget fetches from `url`.
fn client_get(k: &Kubectl, url: &str) -> String {
    k.ok(&["exec", "client", "--", "wget", "-qO-", url])
}

/// [`client_get`] right after a kubelet restart: the new kubelet answers exec with
/// "pod does not exist" until it has adopted the pod, so this retries for a while.
fn client_get_after_restart(k: &Kubectl, url: &str) -> String {
    let args = ["exec", "client", "--", "wget", "-qO-", url];
    let mut out = None;
    eventually(Duration::from_secs(20), || {
        let o = k.run(&args);
        if o.status.success() {
            out = Some(String::from_utf8_lossy(&o.stdout).into_owned());
        }
        out.is_some()
    });
    out.unwrap_or_else(|| client_get(k, url))
}

/// Waits until these pods are Ready.
fn wait_ready(k: &Kubectl, names: &[&str]) {
    let ready = eventually(Duration::from_secs(60), || {
        names.iter().all(|n| {
            pod_json(k, n)["status"]["conditions"]
                .as_array()
                .is_some_and(|cs| {
                    cs.iter()
                        .any(|c| c["type"] == "Ready" && c["status"] == "True")
                })
        })
    });
    assert!(ready, "{:#}", k.json(&["get", "pods"]));
}

/// The pod's address as its status reports it (podIP and podIPs agree, and it is not
/// the node's).
fn pod_ip(k: &Kubectl, name: &str) -> String {
    let p = pod_json(k, name);
    let ip = p["status"]["podIP"].as_str().unwrap().to_string();
    assert_eq!(p["status"]["podIPs"][0]["ip"], ip.as_str());
    assert_ne!(p["status"]["hostIP"], ip.as_str());
    ip
}

/// `--pod-network=bridge`, with the whole cluster inside a network namespace this
/// test makes (no pod address exists outside it): pods get distinct addresses from
/// the node's podCIDR (assigned by the node IPAM controller), reach each other over
/// the bridge, see the address as their own on eth0, keep it when the kubelet is
/// killed and adopts them, and a deleted pod's address goes back to the pool.
#[test]
fn bridge_network_connects_pods() {
    let _netns = TestNetns::enter("bridge");
    let c = start_with("builtin", &["pod-network=bridge"]);
    let k = c.kubectl("1.33");
    let _cleanup = Cleanup(&k, c.dir.path().to_path_buf());
    k.apply(&[], &web_pod("web", None));
    k.apply(&[], CLIENT_POD);
    wait_ready(&k, &["web", "client"]);

    let node = k.json(&["get", "nodes"])["items"][0].clone();
    let cidr = node["spec"]["podCIDR"].as_str().unwrap().to_string();
    assert_eq!(cidr, "10.42.0.0/24");
    let (web, client) = (pod_ip(&k, "web"), pod_ip(&k, "client"));
    assert!(web.starts_with("10.42.0.") && client.starts_with("10.42.0."));
    assert_ne!(web, client);

    // Pod to pod, across the bridge.
    let url = format!("http://{web}:8080/");
    assert_eq!(client_get(&k, &url), "web\n");
    // The pod's own view: eth0 holds its address, the default route goes to the
    // bridge.
    let addr = k.ok(&["exec", "web", "--", "ip", "-o", "addr", "show", "eth0"]);
    assert!(addr.contains(&format!("inet {web}/24")), "{addr}");
    let route = k.ok(&["exec", "web", "--", "ip", "route"]);
    assert!(route.contains("default via 10.42.0.1 dev eth0"), "{route}");
    // Its hosts file names it at its address, as upstream's kubelet writes it.
    let hosts = k.ok(&["exec", "web", "--", "cat", "/etc/hosts"]);
    assert!(hosts.contains(&format!("\n{web}\tweb\n")), "{hosts}");

    // kill -9 of the server: the restarted kubelet adopts the pods with their
    // addresses and links as they were, and releases the address of a pod that went
    // while it was down (recorded here by hand).
    let leaked = c.dir.path().join("agent/networks/cni0/10.42.0.200");
    std::fs::write(&leaked, "0d7c3a8e-gone\r\neth0").unwrap();
    let c = restart_with(c, "builtin", &["pod-network=bridge"]);
    let k = c.kubectl("1.33");
    let _cleanup = Cleanup(&k, c.dir.path().to_path_buf());
    // Every version of the pod the restarted kubelet posts keeps the address.
    let mut watch = k
        .cmd(&[
            "get",
            "pod",
            "web",
            "--watch",
            "-o",
            "jsonpath={.metadata.resourceVersion} {.status.podIP}{\"\\n\"}",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(3));
    let _ = watch.kill();
    let seen = String::from_utf8(watch.wait_with_output().unwrap().stdout).unwrap();
    assert!(seen.lines().count() >= 1, "{seen}");
    for line in seen.lines() {
        assert!(line.ends_with(&format!(" {web}")), "{seen}");
    }
    assert_eq!(pod_ip(&k, "web"), web);
    assert_eq!(pod_ip(&k, "client"), client);
    assert_eq!(client_get_after_restart(&k, &url), "web\n");
    assert!(
        !leaked.exists(),
        "the address of a pod that is gone stayed taken"
    );

    // A deleted pod's address is released.
    let record = c.dir.path().join("agent/networks/cni0").join(&web);
    assert!(record.exists());
    k.ok(&["delete", "pod", "web", "--wait=true"]);
    assert!(
        eventually(Duration::from_secs(20), || !record.exists()),
        "{} still recorded",
        record.display()
    );
}

const WEB_SERVICE: &str = r#"
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  type: NodePort
  selector: {app: web}
  ports:
  - {name: http, port: 80, targetPort: 8080}
---
apiVersion: v1
kind: Service
metadata:
  name: nobody
spec:
  selector: {app: nobody}
  ports:
  - {port: 80}
"#;

/// LoadBalancers over the web pods with `loadBalancerSourceRanges`: one open to
/// the three-host test's outside client, one only to pods and the server's node.
const LB_SOURCE_RANGES: &str = r#"
apiVersion: v1
kind: Service
metadata:
  name: web-open
spec:
  type: LoadBalancer
  loadBalancerSourceRanges: [192.0.2.4/32]
  selector: {app: web}
  ports:
  - {name: http, port: 8090, targetPort: 8080}
---
apiVersion: v1
kind: Service
metadata:
  name: web-closed
spec:
  type: LoadBalancer
  loadBalancerSourceRanges: [10.42.0.0/16, 192.0.2.1/32]
  selector: {app: web}
  ports:
  - {name: http, port: 8091, targetPort: 8080}
"#;

/// LoadBalancers with the Local external traffic policy, one over the web pods
/// and one with no endpoints: each gets a health check node port.
const LOCAL_LB_SERVICES: &str = r#"
apiVersion: v1
kind: Service
metadata:
  name: web-local
spec:
  type: LoadBalancer
  externalTrafficPolicy: Local
  selector: {app: web}
  ports:
  - {name: http, port: 8088, targetPort: 8080}
---
apiVersion: v1
kind: Service
metadata:
  name: nobody-local
spec:
  type: LoadBalancer
  externalTrafficPolicy: Local
  selector: {app: nobody}
  ports:
  - {port: 8089}
"#;

/// A pod (of the `web` Service) answering HTTP on 8080 with its name, ready while
/// /tmp/ready exists; with `host_port`, the port is also the node's.
fn web_pod(name: &str, host_port: Option<u16>) -> String {
    let host_port = host_port.map_or(String::new(), |p| format!(", hostPort: {p}"));
    format!(
        r#"
apiVersion: v1
kind: Pod
metadata:
  name: {name}
  labels: {{app: web}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: ferrokube.test/busybox:1
    command: ["sh", "-c", "touch /tmp/ready && mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 8080 -h /www"]
    ports:
    - {{containerPort: 8080, name: http{host_port}}}
    readinessProbe:
      exec: {{command: ["test", "-f", "/tmp/ready"]}}
      periodSeconds: 1
"#
    )
}

/// The distinct answers of 30 requests to `url`, made from the client pod.
fn answers_from_pod(k: &Kubectl, url: &str) -> std::collections::BTreeSet<String> {
    // (busybox 1.35's wget crashes on -T: timeouts come from `timeout`.)
    // Failed requests answer nothing (the Service may not be programmed yet).
    let script = format!("for i in $(seq 30); do timeout 2 wget -qO- {url}; done; true");
    k.ok(&["exec", "client", "--", "sh", "-c", &script])
        .lines()
        .map(str::to_string)
        .collect()
}

fn set(items: &[&str]) -> std::collections::BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// Waits (up to 30 s) until requests from the client pod to `url` are answered by
/// exactly `want`.
fn assert_pod_answers(k: &Kubectl, url: &str, want: &[&str]) {
    let want = set(want);
    assert!(
        eventually(Duration::from_secs(30), || answers_from_pod(k, url) == want),
        "{url}: {:?}",
        answers_from_pod(k, url)
    );
}

/// The distinct answers of 30 requests to `url`, made from the namespace `ns`.
fn answers_from_netns(ns: &TestNetns, url: &str) -> std::collections::BTreeSet<String> {
    (0..30)
        .filter_map(|_| {
            let out = ns.exec(&["timeout", "2", "busybox", "wget", "-qO-", url]);
            out.status
                .success()
                .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
        })
        .collect()
}

/// kube-proxy (nftables mode) and cluster DNS in a cluster inside a network
/// namespace this test makes, with a second namespace as a client outside the
/// cluster: a Service's cluster IP balances over its ready endpoints from a pod and
/// from the node itself, its node port does the same for the outside client, pods
/// resolve it by name (dig checks A, SRV, PTR, pod and missing names), a pod's host
/// port reaches it from outside, from the node and from itself, an endpoint that
/// stops being ready leaves the rotation, a Service without endpoints refuses
/// connections, and LoadBalancers with the Local policy report this node's ready
/// endpoints on their health check node ports.
#[test]
fn services_reach_ready_endpoints() {
    services_reach_ready_endpoints_in("nftables");
}

/// The same Service checks with kube-proxy in userspace mode (no packet filter:
/// the proxy relays connections on Service addresses it makes local).
#[test]
fn services_reach_ready_endpoints_userspace() {
    services_reach_ready_endpoints_in("userspace");
}

/// The same Service checks with kube-proxy in iptables mode (upstream's chains,
/// through Debian's default iptables, the nf_tables backend), chosen by kube-proxy
/// itself because it finds no `nft` command.
#[test]
fn services_reach_ready_endpoints_iptables() {
    services_reach_ready_endpoints_in("iptables");
}

fn services_reach_ready_endpoints_in(mode: &str) {
    let _netns = TestNetns::enter(&format!("svc-{mode}"));
    // The outside client, on a link of its own: 192.0.2.1 is the node, .2 the
    // client; the node's default route leads there and nowhere else.
    let outside = TestNetns::make("out");
    ip("link add fkout0 type veth peer name fkout1");
    ip(&format!("link set fkout1 netns {}", outside.0));
    ip("addr add 192.0.2.1/24 dev fkout0");
    ip("link set fkout0 up");
    ip("route add default via 192.0.2.2");
    ip(&format!(
        "-n {} addr add 192.0.2.2/24 dev fkout1",
        outside.0
    ));
    ip(&format!("-n {} link set fkout1 up", outside.0));

    let node = format!("kubelet-e2e-{}", std::process::id());
    // The iptables mode is reached the way a node without nftables reaches it:
    // no --proxy-mode, and no working `nft` for kube-proxy.
    let proxy_mode = if mode == "iptables" {
        "nft-path=/nonexistent/nft".to_string()
    } else {
        format!("proxy-mode={mode}")
    };
    let c = Cluster::start_agent_in(
        data_dir_with_image(),
        &[
            "--node-name",
            &node,
            "--kubelet-arg",
            "oci-runtime=builtin",
            "--kubelet-arg",
            "pod-network=bridge",
            "--kube-proxy-arg",
            &proxy_mode,
        ],
    );
    let k = c.kubectl("1.33");
    let _cleanup = Cleanup(&k, c.dir.path().to_path_buf());
    k.apply(&[], WEB_SERVICE);
    k.apply(&[], &web_pod("web-a", Some(8081)));
    k.apply(&[], &web_pod("web-b", None));
    k.apply(&[], CLIENT_POD);
    wait_ready(&k, &["web-a", "web-b", "client"]);
    let svc = k.json(&["get", "service", "web"]);
    let cluster_ip = svc["spec"]["clusterIP"].as_str().unwrap().to_string();
    let node_port = svc["spec"]["ports"][0]["nodePort"].as_u64().unwrap();
    let nobody = k.ok(&[
        "get",
        "service",
        "nobody",
        "-o",
        "jsonpath={.spec.clusterIP}",
    ]);

    // From a pod, by cluster IP: both endpoints answer.
    let both = set(&["web-a", "web-b"]);
    let url = format!("http://{cluster_ip}/");
    assert_pod_answers(&k, &url, &["web-a", "web-b"]);
    // From the node itself (its own packets, through the output hook).
    let from_node = || -> std::collections::BTreeSet<String> {
        (0..30)
            .filter_map(|_| {
                let out = Command::new("timeout")
                    .args(["2", "busybox", "wget", "-qO-", &url])
                    .output()
                    .unwrap();
                out.status
                    .success()
                    .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
            })
            .collect()
    };
    assert_eq!(from_node(), both);
    // From outside the cluster, by node port.
    let node_url = format!("http://192.0.2.1:{node_port}/");
    assert_eq!(answers_from_netns(&outside, &node_url), both);

    // Cluster DNS: the pod's resolver points at it, and it answers for Services by
    // full name and, through the search path, by short name.
    let resolv = k.ok(&["exec", "client", "--", "cat", "/etc/resolv.conf"]);
    assert!(
        resolv.contains("nameserver 10.43.0.10\n")
            && resolv.contains("search default.svc.cluster.local svc.cluster.local cluster.local")
            && resolv.contains("options ndots:5"),
        "{resolv}"
    );
    let looked_up = || {
        k.run(&[
            "exec",
            "client",
            "--",
            "nslookup",
            "web.default.svc.cluster.local",
        ])
    };
    assert!(
        eventually(Duration::from_secs(20), || String::from_utf8_lossy(
            &looked_up().stdout
        )
        .contains(&cluster_ip)),
        "{:?}",
        looked_up()
    );
    let by_name = k.ok(&["exec", "client", "--", "wget", "-qO-", "http://web/"]);
    assert!(both.contains(by_name.trim()), "{by_name}");
    // The records, as dig sees them from the node.
    let dig = |args: &[&str]| -> String {
        let out = Command::new("dig")
            .args(["@10.43.0.10", "+time=2", "+tries=1"])
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    assert_eq!(
        dig(&["+short", "web.default.svc.cluster.local"]).trim(),
        cluster_ip
    );
    assert_eq!(
        dig(&["+short", "SRV", "_http._tcp.web.default.svc.cluster.local"]).trim(),
        "0 100 80 web.default.svc.cluster.local."
    );
    assert_eq!(
        dig(&["+short", "-x", &cluster_ip]).trim(),
        "web.default.svc.cluster.local."
    );
    let web_a = pod_ip(&k, "web-a");
    assert_eq!(
        dig(&[
            "+short",
            &format!("{}.default.pod.cluster.local", web_a.replace('.', "-"))
        ])
        .trim(),
        web_a
    );
    let missing = dig(&["nobody-here.default.svc.cluster.local"]);
    assert!(missing.contains("status: NXDOMAIN"), "{missing}");

    // web-a's host port, from outside, from the node, and from web-a itself.
    let host_url = "http://192.0.2.1:8081/";
    let out = outside.exec(&["timeout", "2", "busybox", "wget", "-qO-", host_url]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "web-a\n", "{out:?}");
    let out = Command::new("timeout")
        .args(["2", "busybox", "wget", "-qO-", host_url])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "web-a\n", "{out:?}");
    assert_eq!(
        k.ok(&["exec", "web-a", "--", "timeout", "2", "wget", "-qO-", host_url]),
        "web-a\n"
    );

    // A Service without endpoints refuses at once rather than timing out.
    let out = k.run(&[
        "exec",
        "client",
        "--",
        "timeout",
        "5",
        "wget",
        "-qO-",
        &format!("http://{nobody}/"),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("refused"), "{err}");

    // LoadBalancers with the Local policy: their health check node ports tell
    // load balancers (the outside client here) how many ready endpoints this node
    // has, 503 when none; the proxy's own healthz answers too.
    k.apply(&[], LOCAL_LB_SERVICES);
    let hc_url = |svc: &str| {
        let hc = k.json(&["get", "service", svc])["spec"]["healthCheckNodePort"]
            .as_u64()
            .unwrap();
        format!("http://192.0.2.1:{hc}/")
    };
    let (web_hc, nobody_hc) = (hc_url("web-local"), hc_url("nobody-local"));
    let health = |url: &str| outside.exec(&["timeout", "2", "busybox", "wget", "-qO-", url]);
    let local_endpoints = |n: usize| {
        let out = health(&web_hc);
        out.status.success()
            && String::from_utf8_lossy(&out.stdout).contains(&format!("\"localEndpoints\": {n}"))
    };
    assert!(
        eventually(Duration::from_secs(20), || local_endpoints(2)),
        "{:?}",
        health(&web_hc)
    );
    let out = health(&nobody_hc);
    assert!(
        !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("503"),
        "{out:?}"
    );
    let out = health("http://192.0.2.1:10256/healthz");
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("lastUpdated"),
        "{out:?}"
    );

    // web-b stops being ready: it leaves the rotation everywhere.
    k.ok(&["exec", "web-b", "--", "rm", "/tmp/ready"]);
    assert_pod_answers(&k, &url, &["web-a"]);
    assert_eq!(answers_from_netns(&outside, &node_url), set(&["web-a"]));
    assert!(
        eventually(Duration::from_secs(20), || local_endpoints(1)),
        "{:?}",
        health(&web_hc)
    );

    let table = Command::new("nft")
        .args(["list", "table", "ip", "kube-proxy"])
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&table.stdout);
    let saved = Command::new("iptables-save").output().unwrap();
    let saved = String::from_utf8_lossy(&saved.stdout);
    if mode == "nftables" {
        // The rules are the upstream layout, in this namespace only.
        assert!(table.contains("chain services"), "{table}");
        assert!(table.contains("default/web/tcp/http"), "{table}");
    } else if mode == "iptables" {
        // Upstream's chains, and nothing of the nftables mode.
        assert!(table.is_empty(), "{table}");
        assert!(
            saved.contains(&format!(
                "-A KUBE-SERVICES -d {cluster_ip}/32 -p tcp -m comment --comment \"default/web:http cluster IP\""
            )),
            "{saved}"
        );
        assert!(
            saved.contains("-A KUBE-NODEPORTS -p tcp -m comment --comment \"default/web:http\""),
            "{saved}"
        );
        assert!(saved.contains("default/nobody has no endpoints"), "{saved}");
    } else {
        // No packet filter: the Service addresses are the node's own.
        assert!(table.is_empty(), "{table}");
        let out = Command::new("ip")
            .args(["addr", "show", "kube-proxy0"])
            .output()
            .unwrap();
        let addrs = String::from_utf8_lossy(&out.stdout);
        assert!(addrs.contains(&format!("inet {cluster_ip}/32")), "{addrs}");
    }
    if mode != "iptables" {
        assert!(!saved.contains("KUBE-SERVICES"), "{saved}");
    }
}

/// `--cni-conf-dir`: pods are networked by Debian's standard CNI plugins (bridge
/// with host-local IPAM) instead of the built-in network, inside a network
/// namespace this test makes: they get addresses of the configured range, reach
/// each other, keep their addresses when the kubelet is killed and adopts them, and
/// a deleted pod's address goes back to the plugin's IPAM.
#[test]
fn cni_plugins_network_pods() {
    let _netns = TestNetns::enter("cni");
    let conf = tempfile::tempdir().unwrap();
    let ipam = conf.path().join("ipam");
    let list = serde_json::json!({
        "cniVersion": "1.0.0",
        "name": "fk-test",
        "plugins": [{
            "type": "bridge", "bridge": "fkcni0", "isGateway": true, "hairpinMode": true,
            "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.88.0.0/24"}]],
                     "dataDir": ipam.display().to_string()}
        }]
    });
    std::fs::write(conf.path().join("10-test.conflist"), list.to_string()).unwrap();
    let conf_arg = format!("cni-conf-dir={}", conf.path().display());
    let c = start_with("builtin", &[&conf_arg, "cni-bin-dir=/usr/lib/cni"]);
    let k = c.kubectl("1.33");
    let _cleanup = Cleanup(&k, c.dir.path().to_path_buf());
    k.apply(&[], &web_pod("web", None));
    k.apply(&[], CLIENT_POD);
    wait_ready(&k, &["web", "client"]);
    let (web, client) = (pod_ip(&k, "web"), pod_ip(&k, "client"));
    assert!(web.starts_with("10.88.0.") && client.starts_with("10.88.0."));
    assert_ne!(web, client);
    assert_eq!(client_get(&k, &format!("http://{web}:8080/")), "web\n");
    let record = ipam.join("fk-test").join(&web);
    assert!(record.exists(), "{} missing", record.display());

    // kill -9: the restarted kubelet adopts the pods with the addresses their ADD
    // gave them, without adding them again.
    let c = restart_with(c, "builtin", &[&conf_arg, "cni-bin-dir=/usr/lib/cni"]);
    let k = c.kubectl("1.33");
    let _cleanup = Cleanup(&k, c.dir.path().to_path_buf());
    assert!(
        eventually(Duration::from_secs(20), || pod_json(&k, "web")["status"]
            ["podIP"]
            == web.as_str()),
        "{:#}",
        pod_json(&k, "web")
    );
    assert_eq!(
        client_get_after_restart(&k, &format!("http://{web}:8080/")),
        "web\n"
    );
    k.ok(&["delete", "pod", "web", "--wait=true"]);
    assert!(
        eventually(Duration::from_secs(20), || !record.exists()),
        "{} still recorded",
        record.display()
    );
}

/// A host of a multi-node test: a network namespace on a shared test LAN (a bridge
/// in a namespace of its own), with its address.
struct LanHost {
    ns: TestNetns,
    ip: String,
}

/// The test LAN 192.0.2.0/24: a bridge in namespace `lan` and, for each role, a
/// namespace joined to it as 192.0.2.<n> whose default route leads to the last
/// host (the outside client), which has no other link: nothing leaves the machine.
fn test_lan(lan: &TestNetns, roles: &[&str]) -> Vec<LanHost> {
    ip(&format!("-n {} link add br0 type bridge", lan.0));
    ip(&format!("-n {} link set br0 up", lan.0));
    let outside = format!("192.0.2.{}", roles.len());
    roles
        .iter()
        .enumerate()
        .map(|(i, role)| {
            let ns = TestNetns::make(role);
            let addr = format!("192.0.2.{}", i + 1);
            let port = format!("p{}", i + 1);
            ip(&format!(
                "-n {} link add {port} type veth peer name eth0 netns {}",
                lan.0, ns.0
            ));
            ip(&format!("-n {} link set {port} master br0 up", lan.0));
            ip(&format!("-n {} addr add {addr}/24 dev eth0", ns.0));
            ip(&format!("-n {} link set eth0 up", ns.0));
            if addr != outside {
                ip(&format!("-n {} route add default via {outside}", ns.0));
            }
            LanHost { ns, ip: addr }
        })
        .collect()
}

/// The kubelet flags of every node of a multi-node test: the built-in runtime, no
/// healthz port, and no eviction for the host's disk fill level.
const NODE_KUBELET_ARGS: &[&str] = &[
    "--kubelet-arg",
    "oci-runtime=builtin",
    "--kubelet-arg",
    "healthz-port=0",
    "--kubelet-arg",
    "eviction-hard=memory.available<1Mi",
];

/// `ferrokube agent` joining from inside a test host's namespace; killed by PID
/// when dropped.
struct Agent(std::process::Child);

impl Agent {
    /// `proxy_mode`: the mode of the agent's kube-proxy.
    fn start(
        host: &LanHost,
        server: &str,
        token: &str,
        name: &str,
        dir: &Path,
        proxy_mode: &str,
    ) -> Agent {
        use std::os::unix::process::CommandExt;
        put_image(&dir.join("images"));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferrokube"));
        cmd.args([
            "agent",
            "--server",
            server,
            "--token",
            token,
            "--node-name",
            name,
        ])
        .args(["--node-ip", &host.ip])
        .arg("--data-dir")
        .arg(dir)
        .args(NODE_KUBELET_ARGS)
        .args(["--kube-proxy-arg", &format!("proxy-mode={proxy_mode}")])
        .stdout(std::process::Stdio::null());
        support::die_with_parent(&mut cmd);
        let netns = std::fs::File::open(format!("/run/netns/{}", host.ns.0)).unwrap();
        // SAFETY: setns is async-signal-safe; the file stays open until spawn returns.
        unsafe {
            cmd.pre_exec(move || {
                nix::sched::setns(&netns, nix::sched::CloneFlags::CLONE_NEWNET)
                    .map_err(std::io::Error::from)
            });
        }
        Agent(cmd.spawn().expect("starting an agent"))
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// An HTTP server on `addr` in the namespace `ns`, answering every request with
/// the caller's address; it lives as long as the test process.
fn serve_caller_address(ns: &TestNetns, addr: &str) {
    use std::io::{Read, Write};
    let file = std::fs::File::open(format!("/run/netns/{}", ns.0)).unwrap();
    let addr = addr.to_string();
    let (ready, bound) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        let listener = std::net::TcpListener::bind(&addr).unwrap();
        ready.send(()).unwrap();
        for mut s in listener.incoming().flatten() {
            let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
            let mut req = Vec::new();
            let mut buf = [0u8; 512];
            while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut buf) {
                    Ok(n) if n > 0 => req.extend_from_slice(&buf[..n]),
                    _ => break,
                }
            }
            let peer = s
                .peer_addr()
                .map(|a| a.ip().to_string())
                .unwrap_or_default();
            let body = format!("{peer}\n");
            let _ = write!(
                s,
                "HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
        }
    });
    bound.recv().unwrap();
}

/// Pins a pod manifest to a node.
fn on_node(manifest: &str, node: &str) -> String {
    manifest.replacen("spec:\n", &format!("spec:\n  nodeName: {node}\n"), 1)
}

/// Three hosts made of network namespaces on a test LAN, plus an outside client:
/// a server on the first, and two agents that join it with the server's token
/// (their certificates issued through CertificateSigningRequests). Pods on
/// different nodes reach each other over the VXLAN overlay; a Service balances
/// across backends on the two agents from a pod on the server, by cluster IP and
/// by DNS name; its node port on the server (which has no backend) answers the
/// outside client, which pods reach as their node (egress is masqueraded), and
/// load balancers admit only clients of their source ranges; a
/// backend that stops being ready leaves the rotation; `dig`
/// from an agent checks the records; logs and exec reach pods on the agents; and
/// the guestbook example (examples/guestbook.yaml) works through any node's port.
/// Each node runs another kube-proxy mode: nftables on the server, iptables on
/// the first agent, userspace on the second.
#[test]
fn nodes_join_and_pods_reach_each_other_across_them() {
    let lan = TestNetns::make("lan");
    let hosts = test_lan(&lan, &["h1", "h2", "h3", "out"]);
    let (h1, h2, h3, outside) = (&hosts[0], &hosts[1], &hosts[2], &hosts[3]);
    // This test process (and kubectl) lives on the server's host.
    let file = std::fs::File::open(format!("/run/netns/{}", h1.ns.0)).unwrap();
    nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();

    let pid = std::process::id();
    let names: Vec<String> = (1..=3).map(|i| format!("fk-{pid}-h{i}")).collect();
    let c = Cluster::start_server(
        data_dir_with_image(),
        "0.0.0.0",
        &[
            "--advertise-address",
            &h1.ip,
            "--node-name",
            &names[0],
            "--node-ip",
            &h1.ip,
        ]
        .into_iter()
        .chain(NODE_KUBELET_ARGS.iter().copied())
        .collect::<Vec<_>>(),
    );
    let k = c.kubectl("1.33");
    let token = std::fs::read_to_string(c.dir.path().join("token")).unwrap();
    let token = token.trim();
    assert!(token.starts_with("K10"), "{token}");
    let server = format!("https://{}:{}", h1.ip, c.port);
    let dirs: Vec<tempfile::TempDir> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut agents: Vec<Agent> = [
        (h2, &names[1], &dirs[0], "iptables"),
        (h3, &names[2], &dirs[1], "userspace"),
    ]
    .into_iter()
    .map(|(h, n, d, mode)| Agent::start(h, &server, token, n, d.path(), mode))
    .collect();
    let _cleanup = Cleanup(&k, c.dir.path().to_path_buf());

    // All three nodes register and become Ready, each with its own podCIDR and
    // overlay endpoint.
    let ready_nodes = || -> Vec<serde_json::Value> {
        k.json(&["get", "nodes"])["items"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|n| {
                n["status"]["conditions"].as_array().is_some_and(|cs| {
                    cs.iter()
                        .any(|c| c["type"] == "Ready" && c["status"] == "True")
                }) && n["metadata"]["annotations"]["flannel.alpha.coreos.com/backend-data"]
                    .is_string()
            })
            .collect()
    };
    assert!(
        eventually(Duration::from_secs(90), || ready_nodes().len() == 3),
        "{:#}",
        k.json(&["get", "nodes"])
    );
    let nodes = ready_nodes();
    let cidrs: std::collections::BTreeSet<&str> = nodes
        .iter()
        .map(|n| n["spec"]["podCIDR"].as_str().unwrap())
        .collect();
    assert_eq!(cidrs.len(), 3, "{cidrs:?}");
    for n in &nodes {
        let ann = &n["metadata"]["annotations"];
        assert_eq!(ann["flannel.alpha.coreos.com/backend-type"], "vxlan");
        let ip = n["status"]["addresses"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["type"] == "InternalIP")
            .unwrap()["address"]
            .clone();
        assert_eq!(ann["flannel.alpha.coreos.com/public-ip"], ip);
    }
    // The agents' certificates came through approved and issued CSRs.
    let csrs = k.json(&["get", "csr"])["items"]
        .as_array()
        .cloned()
        .unwrap();
    assert_eq!(csrs.len(), 2, "{csrs:#?}");
    for csr in &csrs {
        assert_eq!(
            csr["spec"]["signerName"],
            "kubernetes.io/kube-apiserver-client-kubelet"
        );
        assert!(csr["spec"]["username"]
            .as_str()
            .unwrap()
            .starts_with("system:bootstrap:"));
        assert!(csr["status"]["certificate"].is_string(), "{csr:#}");
    }

    k.apply(&[], WEB_SERVICE);
    k.apply(&[], &on_node(&web_pod("web-a", None), &names[1]));
    k.apply(&[], &on_node(&web_pod("web-b", None), &names[2]));
    k.apply(&[], &on_node(CLIENT_POD, &names[0]));
    wait_ready(&k, &["web-a", "web-b", "client"]);

    // Pod to pod across nodes, by pod address.
    for (pod, name) in [("web-a", "web-a"), ("web-b", "web-b")] {
        let url = format!("http://{}:8080/", pod_ip(&k, pod));
        assert_eq!(client_get(&k, &url), format!("{name}\n"));
    }
    // Pods reach addresses outside the cluster (the outside client, which has no
    // route to pod addresses) as their node: egress is masqueraded.
    serve_caller_address(&outside.ns, &format!("{}:8099", outside.ip));
    let outside_url = format!("http://{}:8099/", outside.ip);
    for (pod, node) in [("client", h1), ("web-a", h2)] {
        let seen = k.ok(&[
            "exec",
            pod,
            "--",
            "timeout",
            "5",
            "wget",
            "-qO-",
            &outside_url,
        ]);
        assert_eq!(seen.trim(), node.ip, "{pod}");
    }
    // The Service from a pod on another node, by cluster IP and by name.
    let svc = k.json(&["get", "service", "web"]);
    let cluster_ip = svc["spec"]["clusterIP"].as_str().unwrap().to_string();
    let node_port = svc["spec"]["ports"][0]["nodePort"].as_u64().unwrap();
    let url = format!("http://{cluster_ip}/");
    assert_pod_answers(&k, &url, &["web-a", "web-b"]);
    assert_pod_answers(
        &k,
        "http://web.default.svc.cluster.local/",
        &["web-a", "web-b"],
    );
    // The node port of the server's node, from outside the cluster.
    let node_url = format!("http://{}:{node_port}/", h1.ip);
    assert_eq!(
        answers_from_netns(&outside.ns, &node_url),
        set(&["web-a", "web-b"])
    );
    // loadBalancerSourceRanges, on each node's address (servicelb's ingress) and
    // so in each kube-proxy mode: the open load balancer admits the outside
    // client; the other admits pods and the server's node (pods' traffic to other
    // nodes leaves as their node) but not the outside client.
    k.apply(&[], LB_SOURCE_RANGES);
    let ingress = |svc: &str| {
        k.json(&["get", "service", svc])["status"]["loadBalancer"]["ingress"]
            .as_array()
            .map_or(0, Vec::len)
    };
    assert!(
        eventually(Duration::from_secs(30), || ingress("web-open") == 3
            && ingress("web-closed") == 3),
        "{:#}",
        k.json(&["get", "service", "web-open", "web-closed"])
    );
    for host in [h1, h2, h3] {
        let open = format!("http://{}:8090/", host.ip);
        let answered = || !answers_from_netns(&outside.ns, &open).is_empty();
        assert!(eventually(Duration::from_secs(20), answered), "{open}");
        let closed = format!("http://{}:8091/", host.ip);
        let from_pod = || {
            let out = k.run(&[
                "exec", "client", "--", "timeout", "2", "wget", "-qO-", &closed,
            ]);
            out.status.success()
        };
        assert!(
            eventually(Duration::from_secs(20), from_pod),
            "{closed} from a pod: {:?}\n{}",
            k.run(&["exec", "client", "--", "timeout", "2", "wget", "-qO-", &closed]),
            String::from_utf8_lossy(
                &Command::new("nft")
                    .args(["list", "table", "ip", "kube-proxy"])
                    .output()
                    .unwrap()
                    .stdout
            )
        );
        let out = outside
            .ns
            .exec(&["timeout", "2", "busybox", "wget", "-qO-", &closed]);
        assert!(!out.status.success(), "{closed} from outside: {out:?}");
    }
    // DNS records, asked from an agent's host (its cluster DNS follows Services
    // through a watch of its own, and a query may time out on a loaded machine).
    let dig = || {
        let out = h2.ns.exec(&[
            "dig",
            "@10.43.0.10",
            "+time=2",
            "+tries=2",
            "+short",
            "web.default.svc.cluster.local",
        ]);
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    assert!(
        eventually(Duration::from_secs(30), || dig() == cluster_ip),
        "dig: {:?}, want {cluster_ip}",
        dig()
    );
    // The apiserver reaches the agents' kubelets: exec and logs.
    assert_eq!(k.ok(&["exec", "web-b", "--", "hostname"]).trim(), "web-b");
    k.ok(&["logs", "web-a"]);

    // web-b stops being ready: only web-a answers.
    k.ok(&["exec", "web-b", "--", "rm", "/tmp/ready"]);
    assert_pod_answers(&k, &url, &["web-a"]);

    // The guestbook example, end to end: an entry written through one node's port
    // is read back through another's.
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/guestbook.yaml");
    let guestbook = std::fs::read_to_string(example)
        .unwrap()
        .replace("image: busybox:stable", &format!("image: {IMAGE}"));
    k.apply(&[], &guestbook);
    for d in ["guestbook-store", "guestbook"] {
        k.ok(&[
            "rollout",
            "status",
            &format!("deployment/{d}"),
            "--timeout=90s",
        ]);
    }
    let gb_port = k.ok(&[
        "get",
        "service",
        "guestbook",
        "-o",
        "jsonpath={.spec.ports[0].nodePort}",
    ]);
    let visit = |host: &LanHost, msg: &str| -> String {
        let url = format!("http://{}:{gb_port}/cgi-bin/guestbook?msg={msg}", host.ip);
        let out = outside
            .ns
            .exec(&["timeout", "5", "busybox", "wget", "-qO-", &url]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(
        eventually(Duration::from_secs(30), || visit(h2, "hello")
            .contains("hello")),
        "{}",
        visit(h2, "hello")
    );
    let page = visit(h3, "world");
    assert!(
        page.starts_with("guestbook (front end guestbook-")
            && page.contains("\nhello\n")
            && page.ends_with("world\n"),
        "{page}"
    );

    // Each agent's data path is its own mode's.
    let saved = h2.ns.exec(&["iptables-save"]);
    let saved = String::from_utf8_lossy(&saved.stdout);
    assert!(
        saved.contains("-A KUBE-NODEPORTS -p tcp -m comment --comment \"default/guestbook"),
        "{saved}"
    );
    let addrs = h3.ns.exec(&["ip", "-4", "addr", "show", "kube-proxy0"]);
    let addrs = String::from_utf8_lossy(&addrs.stdout);
    assert!(addrs.contains("inet 10.43.0.10/32"), "{addrs}");

    // An agent killed with -9 and started again joins with the credentials it
    // kept (no new CSR), adopts its pods, and the guestbook still works through it.
    drop(agents.pop());
    agents.push(Agent::start(
        h3,
        &server,
        token,
        &names[2],
        dirs[1].path(),
        "userspace",
    ));
    assert!(
        eventually(Duration::from_secs(30), || visit(h3, "again")
            .contains("again")),
        "{}",
        visit(h3, "again")
    );
    assert_eq!(
        k.json(&["get", "csr"])["items"].as_array().unwrap().len(),
        2
    );

    // Nothing of the agents' pods stays mounted once they are gone.
    k.ok(&["delete", "deployments", "--all"]);
    k.ok(&["delete", "pods", "--all", "--grace-period=1"]);
    assert!(
        eventually(Duration::from_secs(30), || dirs
            .iter()
            .all(|d| mounts_under(d.path()).is_empty())),
        "{:?}",
        dirs.iter()
            .map(|d| mounts_under(d.path()))
            .collect::<Vec<_>>()
    );
}
