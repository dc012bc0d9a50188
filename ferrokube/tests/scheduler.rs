//! End-to-end: `ferrokube scheduler` as separate processes against `ferrokube server
//! --disable-scheduler`: leader election on a Lease (only the leader binds; another
//! replica takes over when it dies) and a configuration file with several profiles
//! (pods are scheduled only by the profile their schedulerName names).

mod support;

use std::time::Duration;
use support::{eventually, Cluster, Kubectl};

fn node_of(k: &Kubectl, pod: &str) -> String {
    let v = k.json(&["get", "pod", pod, "-o", "json"]);
    v["spec"]["nodeName"].as_str().unwrap_or("").to_string()
}

fn pod_yaml(name: &str, scheduler: &str) -> String {
    format!(
        r#"
apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  schedulerName: {scheduler}
  containers:
  - name: c
    image: busybox
"#
    )
}

fn lease_holder(k: &Kubectl) -> String {
    let out = k.run(&[
        "get",
        "lease",
        "-n",
        "kube-system",
        "kube-scheduler",
        "-o",
        "json",
    ]);
    if !out.status.success() {
        return String::new();
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    v["spec"]["holderIdentity"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

#[test]
fn leader_election_hands_over_to_a_standby() {
    let c = Cluster::start_with(&["--disable-scheduler"]);
    let _nodes = c.sim_nodes(&["--count", "2"]);
    let k = c.kubectl("1.33");
    let a = c.component(
        "scheduler",
        &["--leader-elect=true", "--leader-elect-identity", "sched-a"],
    );
    let b = c.component(
        "scheduler",
        &["--leader-elect=true", "--leader-elect-identity", "sched-b"],
    );
    assert!(eventually(Duration::from_secs(30), || !lease_holder(&k).is_empty()));
    let leader = lease_holder(&k);
    assert!(leader == "sched-a" || leader == "sched-b", "{leader}");
    k.apply(&[], &pod_yaml("first", "default-scheduler"));
    assert!(eventually(Duration::from_secs(30), || !node_of(
        &k, "first"
    )
    .is_empty()));
    // Only the leader binds: exactly one Scheduled event for the pod.
    std::thread::sleep(Duration::from_secs(1));
    let events = k.ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=first,reason=Scheduled",
        "-o",
        "name",
    ]);
    assert_eq!(events.lines().count(), 1, "{events}");

    // The leader dies; the standby takes the lease once it expires and schedules.
    let (dead, standby) = if leader == "sched-a" { (a, b) } else { (b, a) };
    drop(dead);
    assert!(
        eventually(Duration::from_secs(40), || {
            let h = lease_holder(&k);
            !h.is_empty() && h != leader
        }),
        "lease taken over"
    );
    k.apply(&[], &pod_yaml("second", "default-scheduler"));
    assert!(eventually(Duration::from_secs(30), || !node_of(
        &k, "second"
    )
    .is_empty()));
    drop(standby);
}

#[test]
fn profiles_schedule_only_their_pods() {
    let c = Cluster::start_with(&["--disable-scheduler"]);
    let _nodes = c.sim_nodes(&["--count", "2"]);
    let k = c.kubectl("1.33");
    let config = c.dir.path().join("scheduler.yaml");
    std::fs::write(
        &config,
        r#"
apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
profiles:
- schedulerName: default-scheduler
- schedulerName: bin-packer
  plugins:
    score:
      disabled:
      - name: NodeResourcesBalancedAllocation
"#,
    )
    .unwrap();
    let _s = c.component("scheduler", &["--config", config.to_str().unwrap()]);
    k.apply(&[], &pod_yaml("packed", "bin-packer"));
    k.apply(&[], &pod_yaml("plain", "default-scheduler"));
    k.apply(&[], &pod_yaml("other", "someone-else"));
    assert!(eventually(Duration::from_secs(30), || {
        !node_of(&k, "packed").is_empty() && !node_of(&k, "plain").is_empty()
    }));
    // A pod for a scheduler that does not run is left alone.
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(node_of(&k, "other"), "");
    let v = k.json(&["get", "pod", "other", "-o", "json"]);
    assert!(v["status"]["conditions"].is_null(), "{}", v["status"]);
}
