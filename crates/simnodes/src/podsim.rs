//! The simulated life of one pod on a simulated node, free of any I/O: containers
//! that start, exit (on the knobs' cue), restart by the pod's restartPolicy and are
//! stopped for deletion, the resulting phase, and the `PodStatus` a kubelet would
//! report for it (conditions with their transition times, container statuses,
//! addresses, QoS class).

use std::net::Ipv4Addr;
use std::time::Duration;

use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStatus, HostIP, Pod,
    PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use crate::knobs::PodKnobs;
use podspec::pod_qos_class;

/// What part a container plays in the pod.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A regular init container: runs to completion before the others.
    Init,
    /// An init container with `restartPolicy: Always`: runs beside the others.
    Sidecar,
    /// A regular container.
    Regular,
}

/// A finished run of a container.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Exit {
    pub exit_code: i32,
    pub started_at: Timestamp,
    pub finished_at: Timestamp,
    pub container_id: String,
}

impl Exit {
    fn reason(&self) -> &'static str {
        if self.exit_code == 0 {
            "Completed"
        } else {
            "Error"
        }
    }

    fn to_api(&self) -> ContainerState {
        ContainerState {
            terminated: Some(ContainerStateTerminated {
                container_id: Some(self.container_id.clone()),
                exit_code: self.exit_code,
                reason: Some(self.reason().to_string()),
                started_at: Some(Time(self.started_at)),
                finished_at: Some(Time(self.finished_at)),
                ..Default::default()
            }),
            ..Default::default()
        }
    }
}

/// The state of a container.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum State {
    Running { started_at: Timestamp },
    Exited(Exit),
}

/// One simulated container.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Ctr {
    pub name: String,
    pub image: String,
    pub kind: Kind,
    pub restart_count: i32,
    pub container_id: String,
    pub state: State,
    pub last: Option<Exit>,
}

impl Ctr {
    fn running(&self) -> bool {
        matches!(self.state, State::Running { .. })
    }

    fn stop(&mut self, exit_code: i32, finished_at: Timestamp) -> Option<Exit> {
        let State::Running { started_at } = self.state else {
            return None;
        };
        let exit = Exit {
            exit_code,
            started_at,
            finished_at,
            container_id: self.container_id.clone(),
        };
        self.state = State::Exited(exit.clone());
        Some(exit)
    }
}

/// The phase of a started pod.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    Running,
    Succeeded,
    Failed,
}

impl Phase {
    fn as_str(self) -> &'static str {
        match self {
            Phase::Running => "Running",
            Phase::Succeeded => "Succeeded",
            Phase::Failed => "Failed",
        }
    }
}

/// A pod condition as last computed, with the time its status last changed.
#[derive(Clone, Debug, PartialEq)]
struct Cond {
    status: &'static str,
    reason: Option<&'static str>,
    message: Option<String>,
    since: Timestamp,
}

/// The kubelet-owned condition types, in the order the kubelet lists them.
const CONDITION_TYPES: [&str; 5] = [
    "PodReadyToStartContainers",
    "Initialized",
    "Ready",
    "ContainersReady",
    "PodScheduled",
];

/// A pod that has been started on a simulated node.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct PodRun {
    uid: String,
    restart_policy: String,
    start_time: Timestamp,
    host_ip: String,
    pod_ip: String,
    /// The address taken from the node's pool, while the pod holds it.
    pub allocated: Option<Ipv4Addr>,
    /// Init containers in spec order, then regular containers in spec order.
    ctrs: Vec<Ctr>,
    phase: Phase,
    /// The value of the `fail` knob already acted on.
    fail_seen: Option<String>,
    conds: Vec<(&'static str, Cond)>,
    qos_class: String,
}

/// A made-up but stable 64-hex-digit digest of `parts`.
pub(crate) fn digest(parts: &[&str]) -> String {
    let mut out = String::with_capacity(64);
    for round in 0u64..4 {
        // FNV-1a, seeded differently for each 16-digit block.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ round.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        for p in parts {
            for b in p.bytes().chain(std::iter::once(0)) {
                h ^= u64::from(b);
                h = h.wrapping_mul(0x0000_0100_0000_01b3);
            }
        }
        out.push_str(&format!("{h:016x}"));
    }
    out
}

/// The image ID a runtime would report for `image`: the repository with a digest.
pub(crate) fn image_id(image: &str) -> String {
    if image.contains("@sha256:") {
        return image.to_string();
    }
    // Drop a tag: a ':' after the last '/'.
    let slash = image.rfind('/').map_or(0, |i| i + 1);
    let repo = match image[slash..].rfind(':') {
        Some(i) => &image[..slash + i],
        None => image,
    };
    format!("{repo}@sha256:{}", digest(&["image", image]))
}

fn container_id(uid: &str, name: &str, restart_count: i32) -> String {
    format!(
        "sim://{}",
        digest(&["container", uid, name, &restart_count.to_string()])
    )
}

fn after(t: Timestamp, d: Duration) -> Timestamp {
    t.checked_add(d).unwrap_or(Timestamp::MAX)
}

/// The pod's restartPolicy (`Always` when unset, as the apiserver defaults it).
fn restart_policy(pod: &Pod) -> String {
    pod.spec
        .as_ref()
        .and_then(|s| s.restart_policy.clone())
        .unwrap_or_else(|| "Always".to_string())
}

/// Whether an init container is a sidecar (`restartPolicy: Always`).
fn is_sidecar(c: &k8s_openapi::api::core::v1::Container) -> bool {
    c.restart_policy.as_deref() == Some("Always")
}

/// The spec's containers: (name, image, kind), init containers first.
fn spec_containers(pod: &Pod) -> Vec<(String, String, Kind)> {
    let Some(spec) = &pod.spec else {
        return Vec::new();
    };
    let init = spec.init_containers.iter().flatten().map(|c| {
        let kind = if is_sidecar(c) {
            Kind::Sidecar
        } else {
            Kind::Init
        };
        (c.name.clone(), c.image.clone().unwrap_or_default(), kind)
    });
    let regular = spec.containers.iter().map(|c| {
        (
            c.name.clone(),
            c.image.clone().unwrap_or_default(),
            Kind::Regular,
        )
    });
    init.chain(regular).collect()
}

fn qos_of(pod: &Pod) -> String {
    if let Some(q) = pod.status.as_ref().and_then(|s| s.qos_class.clone()) {
        return q;
    }
    pod.spec
        .as_ref()
        .map_or("BestEffort", pod_qos_class)
        .to_string()
}

fn observed_conditions(pod: &Pod) -> &[PodCondition] {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or(&[])
}

impl PodRun {
    /// Starts a pod at `now`: its init containers have completed, its sidecars and
    /// containers are running.
    pub fn start(
        pod: &Pod,
        uid: &str,
        now: Timestamp,
        host_ip: String,
        pod_ip: String,
        allocated: Option<Ipv4Addr>,
    ) -> PodRun {
        let ctrs = spec_containers(pod)
            .into_iter()
            .map(|(name, image, kind)| {
                let container_id = container_id(uid, &name, 0);
                let state = if kind == Kind::Init {
                    State::Exited(Exit {
                        exit_code: 0,
                        started_at: now,
                        finished_at: now,
                        container_id: container_id.clone(),
                    })
                } else {
                    State::Running { started_at: now }
                };
                Ctr {
                    name,
                    image,
                    kind,
                    restart_count: 0,
                    container_id,
                    state,
                    last: None,
                }
            })
            .collect();
        let mut run = PodRun {
            uid: uid.to_string(),
            restart_policy: restart_policy(pod),
            start_time: now,
            host_ip,
            pod_ip,
            allocated,
            ctrs,
            phase: Phase::Running,
            fail_seen: None,
            conds: Vec::new(),
            qos_class: qos_of(pod),
        };
        // A pod without regular containers (not valid, but be safe) is done at once.
        run.settle_phase(now);
        run
    }

    /// Takes over a pod that a previous run already reported Running: keeps its
    /// addresses, start time, container runs and condition times. `None` when the
    /// reported status is not one to continue from.
    pub fn adopt(pod: &Pod, uid: &str, now: Timestamp) -> Option<PodRun> {
        let status = pod.status.as_ref()?;
        if status.phase.as_deref() != Some("Running") {
            return None;
        }
        let pod_ip = status.pod_ip.clone().filter(|s| !s.is_empty())?;
        let host_ip = status.host_ip.clone().filter(|s| !s.is_empty())?;
        let reported: Vec<&ContainerStatus> = status
            .init_container_statuses
            .iter()
            .flatten()
            .chain(status.container_statuses.iter().flatten())
            .collect();
        let mut ctrs = Vec::new();
        for (name, image, kind) in spec_containers(pod) {
            let cs = reported.iter().find(|c| c.name == name)?;
            let container_id = cs
                .container_id
                .clone()
                .unwrap_or_else(|| container_id(uid, &name, cs.restart_count));
            let exit_of = |t: &ContainerStateTerminated| Exit {
                exit_code: t.exit_code,
                started_at: t.started_at.as_ref().map_or(now, |t| t.0),
                finished_at: t.finished_at.as_ref().map_or(now, |t| t.0),
                container_id: t
                    .container_id
                    .clone()
                    .unwrap_or_else(|| container_id.clone()),
            };
            let state = match cs.state.as_ref() {
                Some(ContainerState {
                    terminated: Some(t),
                    ..
                }) => State::Exited(exit_of(t)),
                Some(ContainerState {
                    running: Some(r), ..
                }) => State::Running {
                    started_at: r.started_at.as_ref().map_or(now, |t| t.0),
                },
                _ => State::Running { started_at: now },
            };
            let last = cs
                .last_state
                .as_ref()
                .and_then(|s| s.terminated.as_ref())
                .map(exit_of);
            ctrs.push(Ctr {
                name,
                image,
                kind,
                restart_count: cs.restart_count,
                container_id,
                state,
                last,
            });
        }
        let conds = observed_conditions(pod)
            .iter()
            .filter_map(|c| {
                let ty = CONDITION_TYPES.iter().find(|t| **t == c.type_)?;
                let status = match c.status.as_str() {
                    "True" => "True",
                    "False" => "False",
                    _ => return None,
                };
                Some((
                    *ty,
                    Cond {
                        status,
                        reason: None,
                        message: None,
                        since: c.last_transition_time.as_ref().map_or(now, |t| t.0),
                    },
                ))
            })
            .collect();
        Some(PodRun {
            uid: uid.to_string(),
            restart_policy: restart_policy(pod),
            start_time: status.start_time.as_ref().map_or(now, |t| t.0),
            host_ip,
            pod_ip,
            allocated: None,
            ctrs,
            phase: Phase::Running,
            fail_seen: None,
            conds,
            qos_class: qos_of(pod),
        })
    }

    /// The pod's address.
    pub fn pod_ip(&self) -> &str {
        &self.pod_ip
    }

    /// Whether the pod has reached Succeeded or Failed.
    pub fn is_terminal(&self) -> bool {
        self.phase != Phase::Running
    }

    /// Ends the current run of a container with `exit_code` at `finished_at`; the
    /// container starts again at `now` when the restart policy says so.
    fn exit(&mut self, i: usize, exit_code: i32, finished_at: Timestamp, now: Timestamp) {
        let restart = match self.restart_policy.as_str() {
            "Always" => true,
            "OnFailure" => exit_code != 0,
            _ => false,
        };
        let uid = self.uid.clone();
        let c = &mut self.ctrs[i];
        let Some(exit) = c.stop(exit_code, finished_at) else {
            return;
        };
        if restart {
            c.last = Some(exit);
            c.restart_count += 1;
            c.container_id = container_id(&uid, &c.name, c.restart_count);
            c.state = State::Running { started_at: now };
        }
    }

    /// Moves to Succeeded or Failed once every regular container has exited for
    /// good; the sidecars are then stopped too.
    fn settle_phase(&mut self, now: Timestamp) {
        if self.is_terminal() {
            return;
        }
        let mut regular = self.ctrs.iter().filter(|c| c.kind == Kind::Regular);
        if regular.clone().any(Ctr::running) {
            return;
        }
        let all_zero = regular.all(|c| matches!(&c.state, State::Exited(e) if e.exit_code == 0));
        self.phase = if all_zero {
            Phase::Succeeded
        } else {
            Phase::Failed
        };
        for c in &mut self.ctrs {
            c.stop(0, now);
        }
    }

    /// Advances the pod to `now` under the given knobs. Returns when it next needs
    /// a look (a container due to exit), if ever.
    pub fn step(&mut self, knobs: &PodKnobs, now: Timestamp) -> Option<Timestamp> {
        if self.is_terminal() {
            return None;
        }
        match &knobs.fail {
            Some((raw, code)) if self.fail_seen.as_ref() != Some(raw) => {
                self.fail_seen = Some(raw.clone());
                for i in 0..self.ctrs.len() {
                    if self.ctrs[i].kind == Kind::Regular {
                        self.exit(i, *code, now, now);
                    }
                }
            }
            None => self.fail_seen = None,
            Some(_) => {}
        }
        if let Some(d) = knobs.exit_after {
            for i in 0..self.ctrs.len() {
                let c = &self.ctrs[i];
                if c.kind != Kind::Regular {
                    continue;
                }
                if let State::Running { started_at } = c.state {
                    let due = after(started_at, d);
                    if due <= now {
                        self.exit(i, knobs.exit_code, due, now);
                    }
                }
            }
        }
        self.settle_phase(now);
        if self.is_terminal() {
            return None;
        }
        let d = knobs.exit_after?;
        self.ctrs
            .iter()
            .filter(|c| c.kind == Kind::Regular)
            .filter_map(|c| match c.state {
                State::Running { started_at } => Some(after(started_at, d)),
                State::Exited(_) => None,
            })
            .min()
    }

    /// Stops every container for the pod's deletion (as after a graceful
    /// termination: exit code 0) and settles the phase.
    pub fn stop_for_deletion(&mut self, now: Timestamp) {
        for c in &mut self.ctrs {
            c.stop(0, now);
        }
        self.settle_phase(now);
    }

    /// Records a condition, keeping its transition time unless its status changed.
    fn set_cond(
        &mut self,
        ty: &'static str,
        status: &'static str,
        reason: Option<&'static str>,
        message: Option<String>,
        now: Timestamp,
    ) {
        match self.conds.iter_mut().find(|(t, _)| *t == ty) {
            Some((_, c)) => {
                if c.status != status {
                    c.since = now;
                }
                c.status = status;
                c.reason = reason;
                c.message = message;
            }
            None => self.conds.push((
                ty,
                Cond {
                    status,
                    reason,
                    message,
                    since: now,
                },
            )),
        }
    }

    /// Whether container `c` counts as ready.
    fn ready(&self, c: &Ctr, knobs: &PodKnobs) -> bool {
        match (&c.state, c.kind) {
            (State::Exited(e), Kind::Init) => e.exit_code == 0,
            (State::Exited(_), _) => false,
            (State::Running { .. }, _) => !knobs.not_ready,
        }
    }

    /// Recomputes the kubelet-owned conditions as of `now`.
    fn update_conditions(&mut self, pod: &Pod, knobs: &PodKnobs, now: Timestamp) {
        // PodScheduled keeps the time the scheduler gave it.
        if !self.conds.iter().any(|(t, _)| *t == "PodScheduled") {
            let since = observed_conditions(pod)
                .iter()
                .find(|c| c.type_ == "PodScheduled" && c.status == "True")
                .and_then(|c| c.last_transition_time.as_ref())
                .map_or(now, |t| t.0);
            self.set_cond("PodScheduled", "True", None, None, since);
        }
        let terminal = self.is_terminal();
        self.set_cond(
            "PodReadyToStartContainers",
            if terminal { "False" } else { "True" },
            None,
            None,
            now,
        );
        let initialized_reason = (self.phase == Phase::Succeeded).then_some("PodCompleted");
        self.set_cond("Initialized", "True", initialized_reason, None, now);

        let (status, reason, message) = match self.phase {
            Phase::Succeeded => ("False", Some("PodCompleted"), None),
            Phase::Failed => ("False", Some("PodFailed"), None),
            Phase::Running => {
                let unready: Vec<&str> = self
                    .ctrs
                    .iter()
                    .filter(|c| c.kind != Kind::Init && !self.ready(c, knobs))
                    .map(|c| c.name.as_str())
                    .collect();
                if unready.is_empty() {
                    ("True", None, None)
                } else {
                    (
                        "False",
                        Some("ContainersNotReady"),
                        Some(format!(
                            "containers with unready status: [{}]",
                            unready.join(" ")
                        )),
                    )
                }
            }
        };
        self.set_cond("ContainersReady", status, reason, message.clone(), now);
        if status != "True" {
            self.set_cond("Ready", status, reason, message, now);
            return;
        }
        // Readiness gates: conditions that others set on the pod.
        let observed = observed_conditions(pod);
        let gates = pod
            .spec
            .as_ref()
            .and_then(|s| s.readiness_gates.as_deref())
            .unwrap_or(&[]);
        let unmet: Vec<String> = gates
            .iter()
            .filter_map(|g| {
                let ty = &g.condition_type;
                match observed.iter().find(|c| &c.type_ == ty) {
                    None => Some(format!(
                        "corresponding condition of pod readiness gate \"{ty}\" does not exist."
                    )),
                    Some(c) if c.status != "True" => Some(format!(
                        "the status of pod readiness gate \"{ty}\" is not \"True\", but {}",
                        c.status
                    )),
                    Some(_) => None,
                }
            })
            .collect();
        if unmet.is_empty() {
            self.set_cond("Ready", "True", None, None, now);
        } else {
            self.set_cond(
                "Ready",
                "False",
                Some("ReadinessGatesNotReady"),
                Some(unmet.join(", ")),
                now,
            );
        }
    }

    fn container_status(&self, c: &Ctr, knobs: &PodKnobs) -> ContainerStatus {
        let state = match &c.state {
            State::Running { started_at } => ContainerState {
                running: Some(ContainerStateRunning {
                    started_at: Some(Time(*started_at)),
                }),
                ..Default::default()
            },
            State::Exited(e) => e.to_api(),
        };
        ContainerStatus {
            name: c.name.clone(),
            image: c.image.clone(),
            image_id: image_id(&c.image),
            container_id: Some(c.container_id.clone()),
            ready: self.ready(c, knobs),
            started: Some(c.running()),
            restart_count: c.restart_count,
            state: Some(state),
            last_state: Some(c.last.as_ref().map(Exit::to_api).unwrap_or_default()),
            ..Default::default()
        }
    }

    /// The status the kubelet would report now.
    pub fn status(&mut self, pod: &Pod, knobs: &PodKnobs, now: Timestamp) -> PodStatus {
        self.update_conditions(pod, knobs, now);
        let conditions = CONDITION_TYPES
            .iter()
            .filter_map(|ty| {
                let (_, c) = self.conds.iter().find(|(t, _)| t == ty)?;
                Some(PodCondition {
                    type_: ty.to_string(),
                    status: c.status.to_string(),
                    reason: c.reason.map(str::to_string),
                    message: c.message.clone(),
                    last_transition_time: Some(Time(c.since)),
                    ..Default::default()
                })
            })
            .collect();
        let init: Vec<ContainerStatus> = self
            .ctrs
            .iter()
            .filter(|c| c.kind != Kind::Regular)
            .map(|c| self.container_status(c, knobs))
            .collect();
        let mut regular: Vec<ContainerStatus> = self
            .ctrs
            .iter()
            .filter(|c| c.kind == Kind::Regular)
            .map(|c| self.container_status(c, knobs))
            .collect();
        // The kubelet lists regular containers by name, init containers in spec order.
        regular.sort_by(|a, b| a.name.cmp(&b.name));
        PodStatus {
            phase: Some(self.phase.as_str().to_string()),
            conditions: Some(conditions),
            host_ip: Some(self.host_ip.clone()),
            host_ips: Some(vec![HostIP {
                ip: self.host_ip.clone(),
            }]),
            pod_ip: Some(self.pod_ip.clone()),
            pod_ips: Some(vec![PodIP {
                ip: self.pod_ip.clone(),
            }]),
            start_time: Some(Time(self.start_time)),
            container_statuses: Some(regular),
            init_container_statuses: (!init.is_empty()).then_some(init),
            qos_class: Some(self.qos_class.clone()),
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{last_exit, running_since, terminated};
    use k8s_openapi::api::core::v1::{Container, PodReadinessGate, PodSpec};
    use std::collections::BTreeMap;

    fn ts(secs: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + secs).unwrap()
    }

    fn ts_ms(ms: i64) -> Timestamp {
        Timestamp::from_millisecond(1_700_000_000_000 + ms).unwrap()
    }

    fn pod(policy: &str, containers: &[&str], init: &[(&str, bool)]) -> Pod {
        Pod {
            spec: Some(PodSpec {
                restart_policy: Some(policy.to_string()),
                containers: containers
                    .iter()
                    .map(|n| Container {
                        name: n.to_string(),
                        image: Some("nginx:1.27".into()),
                        ..Default::default()
                    })
                    .collect(),
                init_containers: (!init.is_empty()).then(|| {
                    init.iter()
                        .map(|(n, sidecar)| Container {
                            name: n.to_string(),
                            image: Some("busybox".into()),
                            restart_policy: sidecar.then(|| "Always".to_string()),
                            ..Default::default()
                        })
                        .collect()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn knobs(pairs: &[(&str, &str)]) -> PodKnobs {
        let a: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        PodKnobs::from_annotations(Some(&a))
    }

    fn start(p: &Pod) -> PodRun {
        PodRun::start(
            p,
            "uid-1",
            ts(0),
            "172.30.0.1".into(),
            "10.244.0.2".into(),
            None,
        )
    }

    fn cond<'a>(s: &'a PodStatus, ty: &str) -> &'a PodCondition {
        s.conditions
            .as_ref()
            .unwrap()
            .iter()
            .find(|c| c.type_ == ty)
            .unwrap()
    }

    fn ctr_status<'a>(s: &'a PodStatus, name: &str) -> &'a ContainerStatus {
        s.container_statuses
            .iter()
            .flatten()
            .chain(s.init_container_statuses.iter().flatten())
            .find(|c| c.name == name)
            .unwrap()
    }

    /// What `name` gives for each item of a list that must be present, in order.
    fn names<T>(list: &Option<Vec<T>>, name: fn(&T) -> &str) -> Vec<&str> {
        list.as_ref().unwrap().iter().map(name).collect()
    }

    fn status_reason(c: &PodCondition) -> (&str, Option<&str>) {
        (c.status.as_str(), c.reason.as_deref())
    }

    #[test]
    fn started_pod_is_running_and_ready() {
        let p = pod("Always", &["web", "app"], &[("setup", false)]);
        let mut run = start(&p);
        let k = PodKnobs::default();
        assert_eq!(run.step(&k, ts(0)), None);
        let s = run.status(&p, &k, ts(0));
        assert_eq!(s.phase.as_deref(), Some("Running"));
        assert_eq!(names(&s.conditions, |c| c.type_.as_str()), CONDITION_TYPES);
        for c in s.conditions.as_ref().unwrap() {
            assert_eq!(c.status, "True", "{}", c.type_);
            assert_eq!(c.reason, None);
            assert_eq!(c.last_transition_time, Some(Time(ts(0))));
        }
        // Regular containers sorted by name.
        assert_eq!(
            names(&s.container_statuses, |c| c.name.as_str()),
            ["app", "web"]
        );
        let web = ctr_status(&s, "web");
        assert!(web.ready);
        assert_eq!(web.started, Some(true));
        assert_eq!(web.restart_count, 0);
        assert_eq!(web.image, "nginx:1.27");
        assert!(web.image_id.starts_with("nginx@sha256:"));
        assert_eq!(web.image_id.len(), "nginx@sha256:".len() + 64);
        assert!(web.container_id.as_deref().unwrap().starts_with("sim://"));
        assert_eq!(running_since(web), Some(&Time(ts(0))));
        assert_eq!(web.last_state, Some(ContainerState::default()));
        let setup = ctr_status(&s, "setup");
        let t = terminated(setup);
        assert_eq!(t.exit_code, 0);
        assert_eq!(t.reason.as_deref(), Some("Completed"));
        assert!(setup.ready);
        assert_eq!(setup.started, Some(false));
        assert_eq!(s.pod_ip.as_deref(), Some("10.244.0.2"));
        assert_eq!(s.pod_ips.as_ref().unwrap()[0].ip, "10.244.0.2");
        assert_eq!(s.host_ip.as_deref(), Some("172.30.0.1"));
        assert_eq!(s.host_ips.as_ref().unwrap()[0].ip, "172.30.0.1");
        assert_eq!(s.start_time, Some(Time(ts(0))));
        assert_eq!(s.qos_class.as_deref(), Some("BestEffort"));
        // Computing again changes nothing.
        assert_eq!(run.status(&p, &k, ts(5)), s);
    }

    #[test]
    fn exit_after_with_never() {
        let p = pod("Never", &["c"], &[]);
        let mut run = start(&p);
        let k = knobs(&[(crate::knobs::EXIT_AFTER, "500ms")]);
        assert_eq!(run.step(&k, ts(0)), Some(ts_ms(500)));
        assert_eq!(run.step(&k, ts_ms(499)), Some(ts_ms(500)));
        assert_eq!(run.step(&k, ts_ms(600)), None);
        assert!(run.is_terminal());
        let s = run.status(&p, &k, ts_ms(600));
        assert_eq!(s.phase.as_deref(), Some("Succeeded"));
        let c = ctr_status(&s, "c");
        let t = terminated(c);
        assert_eq!(t.exit_code, 0);
        assert_eq!(t.reason.as_deref(), Some("Completed"));
        assert_eq!(t.finished_at, Some(Time(ts_ms(500))));
        assert!(!c.ready);
        assert_eq!(c.started, Some(false));
        let ready = cond(&s, "Ready");
        assert_eq!(status_reason(ready), ("False", Some("PodCompleted")));
        assert_eq!(ready.last_transition_time, Some(Time(ts_ms(600))));
        let cr = cond(&s, "ContainersReady");
        assert_eq!(cr.reason.as_deref(), Some("PodCompleted"));
        assert_eq!(
            status_reason(cond(&s, "Initialized")),
            ("True", Some("PodCompleted"))
        );
        assert_eq!(cond(&s, "PodReadyToStartContainers").status, "False");
        // Terminal pods stay put.
        assert_eq!(run.step(&knobs(&[(crate::knobs::FAIL, "1")]), ts(9)), None);
        assert_eq!(
            run.status(&p, &k, ts(9)).phase.as_deref(),
            Some("Succeeded")
        );
    }

    #[test]
    fn exit_code_fails_never_pod() {
        let p = pod("Never", &["c"], &[]);
        let mut run = start(&p);
        let k = knobs(&[
            (crate::knobs::EXIT_AFTER, "1s"),
            (crate::knobs::EXIT_CODE, "1"),
        ]);
        run.step(&k, ts(2));
        let s = run.status(&p, &k, ts(2));
        assert_eq!(s.phase.as_deref(), Some("Failed"));
        let t = terminated(ctr_status(&s, "c"));
        assert_eq!((t.exit_code, t.reason.as_deref()), (1, Some("Error")));
        assert_eq!(cond(&s, "Ready").reason.as_deref(), Some("PodFailed"));
        assert_eq!(
            cond(&s, "ContainersReady").reason.as_deref(),
            Some("PodFailed")
        );
        assert_eq!(cond(&s, "Initialized").reason, None);
    }

    #[test]
    fn always_restarts() {
        let p = pod("Always", &["c"], &[]);
        let mut run = start(&p);
        let k = knobs(&[(crate::knobs::EXIT_AFTER, "1s")]);
        let first_id = ctr_status(&run.status(&p, &k, ts(0)), "c")
            .container_id
            .clone();
        assert_eq!(run.step(&k, ts(1)), Some(ts(2)));
        assert_eq!(run.step(&k, ts(2)), Some(ts(3)));
        let s = run.status(&p, &k, ts(2));
        assert_eq!(s.phase.as_deref(), Some("Running"));
        let c = ctr_status(&s, "c");
        assert_eq!(c.restart_count, 2);
        assert!(c.ready);
        assert_ne!(c.container_id, first_id);
        assert_eq!(running_since(c), Some(&Time(ts(2))));
        let last = last_exit(c);
        assert_eq!(last.exit_code, 0);
        assert_eq!(last.reason.as_deref(), Some("Completed"));
        assert_eq!(last.started_at, Some(Time(ts(1))));
        assert_eq!(last.finished_at, Some(Time(ts(2))));
        assert_eq!(cond(&s, "Ready").status, "True");
    }

    #[test]
    fn on_failure_restarts_only_failures() {
        let p = pod("OnFailure", &["c"], &[]);
        let mut run = start(&p);
        run.step(
            &knobs(&[
                (crate::knobs::EXIT_AFTER, "1s"),
                (crate::knobs::EXIT_CODE, "2"),
            ]),
            ts(1),
        );
        assert!(!run.is_terminal());
        let k = knobs(&[(crate::knobs::EXIT_AFTER, "1s")]);
        run.step(&k, ts(2));
        let s = run.status(&p, &k, ts(2));
        assert_eq!(s.phase.as_deref(), Some("Succeeded"));
        let c = ctr_status(&s, "c");
        assert_eq!(c.restart_count, 1);
        let last = last_exit(c);
        assert_eq!((last.exit_code, last.reason.as_deref()), (2, Some("Error")));
    }

    #[test]
    fn fail_knob_acts_once_per_value() {
        let p = pod("Always", &["c"], &[]);
        let mut run = start(&p);
        let k = knobs(&[(crate::knobs::FAIL, "3")]);
        run.step(&k, ts(1));
        run.step(&k, ts(2));
        let s = run.status(&p, &k, ts(2));
        let c = ctr_status(&s, "c");
        assert_eq!(c.restart_count, 1);
        let last = last_exit(c);
        assert_eq!((last.exit_code, last.reason.as_deref()), (3, Some("Error")));
        run.step(&knobs(&[(crate::knobs::FAIL, "4")]), ts(3));
        assert_eq!(ctr_status(&run.status(&p, &k, ts(3)), "c").restart_count, 2);

        let p = pod("Never", &["c"], &[]);
        let mut run = start(&p);
        run.step(&knobs(&[(crate::knobs::FAIL, "0")]), ts(1));
        assert_eq!(run.phase, Phase::Succeeded);
    }

    #[test]
    fn not_ready_knob() {
        let p = pod("Always", &["b", "a"], &[]);
        let mut run = start(&p);
        let k = knobs(&[(crate::knobs::NOT_READY, "true")]);
        run.step(&k, ts(1));
        let s = run.status(&p, &k, ts(1));
        assert_eq!(s.phase.as_deref(), Some("Running"));
        for ty in ["Ready", "ContainersReady"] {
            let c = cond(&s, ty);
            assert_eq!(c.status, "False");
            assert_eq!(c.reason.as_deref(), Some("ContainersNotReady"));
            assert_eq!(
                c.message.as_deref(),
                Some("containers with unready status: [b a]")
            );
            assert_eq!(c.last_transition_time, Some(Time(ts(1))));
        }
        assert!(!ctr_status(&s, "a").ready);
        assert_eq!(ctr_status(&s, "a").started, Some(true));
        let k = PodKnobs::default();
        let s = run.status(&p, &k, ts(4));
        let ready = cond(&s, "Ready");
        assert_eq!(status_reason(ready), ("True", None));
        assert_eq!(ready.last_transition_time, Some(Time(ts(4))));
        // Unchanged conditions keep the time they were first reported.
        assert_eq!(
            cond(&s, "Initialized").last_transition_time,
            Some(Time(ts(1)))
        );
    }

    #[test]
    fn sidecars_run_and_stop_with_the_pod() {
        let p = pod("Never", &["main"], &[("init", false), ("proxy", true)]);
        let mut run = start(&p);
        let k = knobs(&[(crate::knobs::EXIT_AFTER, "1s")]);
        let s = run.status(&p, &k, ts(0));
        assert_eq!(
            names(&s.init_container_statuses, |c| c.name.as_str()),
            ["init", "proxy"]
        );
        let proxy = ctr_status(&s, "proxy");
        assert!(proxy.ready && proxy.state.as_ref().unwrap().running.is_some());
        run.step(&k, ts(1));
        let s = run.status(&p, &k, ts(1));
        assert_eq!(s.phase.as_deref(), Some("Succeeded"));
        let proxy = ctr_status(&s, "proxy");
        assert_eq!(terminated(proxy).exit_code, 0);
    }

    #[test]
    fn deletion_stops_everything() {
        let p = pod("Always", &["c"], &[]);
        let mut run = start(&p);
        run.stop_for_deletion(ts(3));
        let s = run.status(&p, &PodKnobs::default(), ts(3));
        assert_eq!(s.phase.as_deref(), Some("Succeeded"));
        let t = terminated(ctr_status(&s, "c"));
        assert_eq!(t.finished_at, Some(Time(ts(3))));
    }

    #[test]
    fn readiness_gates() {
        let mut p = pod("Always", &["c"], &[]);
        p.spec.as_mut().unwrap().readiness_gates = Some(vec![PodReadinessGate {
            condition_type: "example.com/lb".into(),
        }]);
        let mut run = start(&p);
        let k = PodKnobs::default();
        let s = run.status(&p, &k, ts(0));
        let ready = cond(&s, "Ready");
        assert_eq!(ready.reason.as_deref(), Some("ReadinessGatesNotReady"));
        assert_eq!(
            ready.message.as_deref(),
            Some(
                "corresponding condition of pod readiness gate \"example.com/lb\" does not exist."
            )
        );
        assert_eq!(cond(&s, "ContainersReady").status, "True");
        p.status = Some(PodStatus {
            conditions: Some(vec![PodCondition {
                type_: "example.com/lb".into(),
                status: "True".into(),
                ..Default::default()
            }]),
            ..Default::default()
        });
        assert_eq!(cond(&run.status(&p, &k, ts(1)), "Ready").status, "True");
    }

    #[test]
    fn adopt_continues_a_reported_pod() {
        let p = pod("Always", &["c"], &[]);
        let mut run = start(&p);
        let k = knobs(&[(crate::knobs::EXIT_AFTER, "10s")]);
        run.step(&k, ts(10));
        let mut reported = p.clone();
        reported.status = Some(run.status(&p, &k, ts(10)));
        let mut adopted = PodRun::adopt(&reported, "uid-1", ts(12)).unwrap();
        assert_eq!(adopted.pod_ip(), "10.244.0.2");
        assert_eq!(adopted.step(&k, ts(12)), Some(ts(20)));
        assert_eq!(
            adopted.status(&reported, &k, ts(12)),
            reported.status.clone().unwrap()
        );
        // Nothing to continue from.
        assert!(PodRun::adopt(&p, "uid-1", ts(0)).is_none());
    }

    #[test]
    fn image_ids() {
        assert!(image_id("registry:5000/app:v1").starts_with("registry:5000/app@sha256:"));
        assert!(image_id("busybox").starts_with("busybox@sha256:"));
        let pinned = format!("nginx@sha256:{}", "0".repeat(64));
        assert_eq!(image_id(&pinned), pinned);
        assert_eq!(digest(&["a"]), digest(&["a"]));
        assert_ne!(digest(&["a", "b"]), digest(&["ab"]));
    }
}
