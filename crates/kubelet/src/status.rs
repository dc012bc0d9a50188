//! The pod status the kubelet reports, computed from what runs: container
//! statuses (state, lastState, restartCount, ready, started, image, imageID,
//! containerID), the phase by upstream's rules, the conditions
//! (PodReadyToStartContainers, Initialized, ContainersReady, Ready), QoS class,
//! host and pod IPs, start time.

use std::collections::BTreeMap;
use std::time::SystemTime;

use container_runtime::{ContainerInfo, ContainerState};
use k8s_openapi::api::core::v1::{
    ContainerState as ApiState, ContainerStateRunning, ContainerStateTerminated,
    ContainerStateWaiting, ContainerStatus, HostIP, Pod, PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

/// Labels the kubelet stores with each container.
pub mod labels {
    /// Pod UID.
    pub const POD_UID: &str = "io.kubernetes.pod.uid";
    /// Pod name.
    pub const POD_NAME: &str = "io.kubernetes.pod.name";
    /// Pod namespace.
    pub const POD_NAMESPACE: &str = "io.kubernetes.pod.namespace";
    /// Container name.
    pub const CONTAINER_NAME: &str = "io.kubernetes.container.name";
    /// Restart count of this instance.
    pub const ATTEMPT: &str = "io.kubernetes.container.restartCount";
    /// `init` for init containers.
    pub const KIND: &str = "ferrokube.io/container-kind";
    /// The image as the spec names it.
    pub const IMAGE: &str = "ferrokube.io/image";
    /// The image's repo digest or id.
    pub const IMAGE_ID: &str = "ferrokube.io/image-id";
}

/// One container instance the runtime knows, with the kubelet's labels parsed.
#[derive(Clone, Debug)]
pub struct Instance {
    /// Runtime information.
    pub info: ContainerInfo,
    /// Container name in the pod spec.
    pub name: String,
    /// Restart count of this instance.
    pub attempt: u32,
    /// An init container.
    pub init: bool,
}

impl Instance {
    /// Parses the labels; `None` when the container is not the kubelet's.
    pub fn from_info(info: ContainerInfo) -> Option<Instance> {
        let name = info.labels.get(labels::CONTAINER_NAME)?.clone();
        let attempt = info.labels.get(labels::ATTEMPT)?.parse().ok()?;
        let init = info.labels.get(labels::KIND).is_some_and(|k| k == "init");
        Some(Instance {
            info,
            name,
            attempt,
            init,
        })
    }

    /// Still running (or created).
    pub fn is_running(&self) -> bool {
        !matches!(self.info.state, ContainerState::Exited { .. })
    }

    /// Exit code when exited.
    pub fn exit_code(&self) -> Option<i32> {
        match &self.info.state {
            ContainerState::Exited { exit_code, .. } => Some(*exit_code),
            _ => None,
        }
    }
}

/// Why a container is waiting when the kubelet holds it back.
#[derive(Clone, Debug, PartialEq)]
pub struct Waiting {
    /// Reason (`ContainerCreating`, `CrashLoopBackOff`, `ErrImagePull`, …).
    pub reason: String,
    /// Message, if any.
    pub message: Option<String>,
}

fn time(t: SystemTime) -> Time {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    Time(Timestamp::from_second(d.as_secs() as i64).unwrap_or(Timestamp::UNIX_EPOCH))
}

/// The API state of an instance.
pub fn api_state(i: &Instance) -> ApiState {
    match &i.info.state {
        ContainerState::Created => ApiState {
            waiting: Some(ContainerStateWaiting {
                reason: Some("ContainerCreating".into()),
                message: None,
            }),
            ..Default::default()
        },
        ContainerState::Running { started_at, .. } => ApiState {
            running: Some(ContainerStateRunning {
                started_at: Some(time(*started_at)),
            }),
            ..Default::default()
        },
        ContainerState::Exited {
            exit_code,
            signal,
            started_at,
            finished_at,
            reason,
            message,
            ..
        } => ApiState {
            terminated: Some(ContainerStateTerminated {
                exit_code: *exit_code,
                signal: *signal,
                reason: Some(reason.clone().unwrap_or_else(|| {
                    if *exit_code == 0 {
                        "Completed"
                    } else {
                        "Error"
                    }
                    .into()
                })),
                message: message.clone(),
                started_at: started_at.map(time),
                finished_at: Some(time(*finished_at)),
                container_id: Some(container_id(&i.info.id)),
            }),
            ..Default::default()
        },
    }
}

/// How container IDs are shown (`<runtime>://<id>`).
pub fn container_id(id: &str) -> String {
    format!("ferrokube://{id}")
}

/// What the status is computed from.
pub struct Observed<'a> {
    /// The pod as last seen.
    pub pod: &'a Pod,
    /// Instances by container name, newest first (at most two kept).
    pub instances: &'a BTreeMap<String, Vec<Instance>>,
    /// Containers held back, by name.
    pub waiting: &'a BTreeMap<String, Waiting>,
    /// Readiness by container name (from probes; running containers without a
    /// readiness probe are ready).
    pub ready: &'a BTreeMap<String, bool>,
    /// Whether each container passed its startup probe (running ones without one
    /// count as started).
    pub started: &'a BTreeMap<String, bool>,
    /// The sandbox exists.
    pub sandbox_ready: bool,
    /// The node's address.
    pub host_ip: String,
    /// The pod's address, if it has one.
    pub pod_ip: Option<String>,
    /// When the kubelet first saw the pod.
    pub start_time: Timestamp,
    /// Pod reason/message when the kubelet rejects or ends it.
    pub pod_reason: Option<(String, String)>,
    /// The status this kubelet last posted for the pod: its own conditions keep their
    /// transition times from it rather than from `pod`, which may be an older copy
    /// arriving through the watch after a newer update (upstream's status manager
    /// likewise starts from its own cache).
    pub last_reported: Option<&'a PodStatus>,
}

fn container_status(
    o: &Observed<'_>,
    c: &k8s_openapi::api::core::v1::Container,
) -> ContainerStatus {
    let list = o.instances.get(&c.name);
    let latest = list.and_then(|l| l.first());
    let previous = list.and_then(|l| l.get(1));
    let mut state = latest.map(api_state).unwrap_or(ApiState {
        waiting: Some(ContainerStateWaiting {
            reason: Some("ContainerCreating".into()),
            message: None,
        }),
        ..Default::default()
    });
    let mut last_state = previous.map(api_state);
    if let Some(w) = o.waiting.get(&c.name) {
        // A held-back container waits; what last ran becomes its lastState.
        if let Some(l) = latest.filter(|l| !l.is_running()) {
            last_state = Some(api_state(l));
        }
        state = ApiState {
            waiting: Some(ContainerStateWaiting {
                reason: Some(w.reason.clone()),
                message: w.message.clone(),
            }),
            ..Default::default()
        };
    }
    let running = latest.is_some_and(|l| matches!(l.info.state, ContainerState::Running { .. }))
        && state.running.is_some();
    let image_id = latest
        .and_then(|l| l.info.labels.get(labels::IMAGE_ID).cloned())
        .unwrap_or_default();
    ContainerStatus {
        name: c.name.clone(),
        image: c.image.clone().unwrap_or_default(),
        image_id,
        container_id: latest.map(|l| container_id(&l.info.id)),
        ready: running && o.ready.get(&c.name).copied().unwrap_or(true),
        started: Some(running && o.started.get(&c.name).copied().unwrap_or(true)),
        restart_count: latest.map_or(0, |l| l.attempt as i32),
        state: Some(state),
        last_state: Some(last_state.unwrap_or_default()),
        ..Default::default()
    }
}

/// Whether an init container has done its part: exited 0, or (a sidecar with
/// restartPolicy Always) started.
fn init_done(o: &Observed<'_>, c: &k8s_openapi::api::core::v1::Container) -> bool {
    let latest = o.instances.get(&c.name).and_then(|l| l.first());
    if c.restart_policy.as_deref() == Some("Always") {
        return latest.is_some_and(|l| l.is_running()) || latest.is_some_and(|l| l.attempt > 0);
    }
    latest.is_some_and(|l| l.exit_code() == Some(0))
        || o.instances
            .get(&c.name)
            .is_some_and(|l| l.iter().any(|i| i.exit_code() == Some(0)))
}

/// The pod phase by upstream's rules.
pub fn phase(
    o: &Observed<'_>,
    statuses: &[ContainerStatus],
    init_statuses: &[ContainerStatus],
) -> &'static str {
    let spec = o.pod.spec.as_ref();
    let policy = spec
        .and_then(|s| s.restart_policy.as_deref())
        .unwrap_or("Always");
    let inits = spec
        .and_then(|s| s.init_containers.clone())
        .unwrap_or_default();
    let init_failed = policy == "Never"
        && init_statuses.iter().any(|s| {
            s.state
                .as_ref()
                .and_then(|st| st.terminated.as_ref())
                .is_some_and(|t| t.exit_code != 0)
        });
    if init_failed {
        return "Failed";
    }
    let pending_init = inits.iter().any(|c| !init_done(o, c));
    if pending_init {
        return "Pending";
    }
    let (mut unknown, mut running, mut waiting, mut stopped, mut succeeded) = (0, 0, 0, 0, 0);
    for s in statuses {
        let Some(st) = &s.state else {
            unknown += 1;
            continue;
        };
        if st.running.is_some() {
            running += 1;
        } else if let Some(t) = &st.terminated {
            stopped += 1;
            if t.exit_code == 0 {
                succeeded += 1;
            }
        } else if s
            .last_state
            .as_ref()
            .is_some_and(|l| l.terminated.is_some())
        {
            stopped += 1;
        } else {
            waiting += 1;
        }
    }
    if waiting > 0 {
        return "Pending";
    }
    if running > 0 && unknown == 0 {
        return "Running";
    }
    if running == 0 && stopped > 0 && unknown == 0 {
        if policy == "Always" {
            return "Running";
        }
        if stopped == succeeded {
            return "Succeeded";
        }
        if policy == "Never" {
            return "Failed";
        }
        return "Running";
    }
    "Pending"
}

fn condition(
    ty: &str,
    ok: bool,
    reason: Option<String>,
    message: Option<String>,
    previous: Option<&PodStatus>,
) -> PodCondition {
    let status = if ok { "True" } else { "False" };
    let since = previous
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == ty && c.status == status))
        .and_then(|c| c.last_transition_time.clone())
        .unwrap_or(Time(Timestamp::now()));
    PodCondition {
        type_: ty.into(),
        status: status.into(),
        reason,
        message,
        last_transition_time: Some(since),
        last_probe_time: None,
        ..Default::default()
    }
}

/// The pod conditions the kubelet sets (as upstream's `PodStatus` owners: the rest
/// belong to the scheduler, controllers, or readiness-gate writers).
const OWN_CONDITIONS: [&str; 4] = [
    "PodReadyToStartContainers",
    "Initialized",
    "ContainersReady",
    "Ready",
];

/// Whether two statuses agree on everything the kubelet reports: phase, reason and
/// message, addresses, start time, QoS class, container statuses and its own
/// conditions. Upstream's status manager compares the API's copy with its own this
/// way, so a status someone else rewrote is written back, and changes others may
/// make (their own conditions, `nominatedNodeName`) are left alone.
pub fn same_by_kubelet(a: &PodStatus, b: &PodStatus) -> bool {
    let own = |s: &PodStatus| {
        let mut cs: Vec<PodCondition> = s
            .conditions
            .iter()
            .flatten()
            .filter(|c| OWN_CONDITIONS.contains(&c.type_.as_str()))
            .cloned()
            .collect();
        cs.sort_by(|x, y| x.type_.cmp(&y.type_));
        cs
    };
    a.phase == b.phase
        && a.reason == b.reason
        && a.message == b.message
        && a.host_ip == b.host_ip
        && a.host_ips == b.host_ips
        && a.pod_ip == b.pod_ip
        && a.pod_ips == b.pod_ips
        && a.start_time == b.start_time
        && a.qos_class == b.qos_class
        && a.container_statuses == b.container_statuses
        && a.init_container_statuses == b.init_container_statuses
        && a.ephemeral_container_statuses == b.ephemeral_container_statuses
        && own(a) == own(b)
}

/// The whole status; conditions the kubelet does not own are kept from `pod`.
pub fn pod_status(o: &Observed<'_>) -> PodStatus {
    let spec = o.pod.spec.clone().unwrap_or_default();
    let previous = o.pod.status.as_ref();
    // The kubelet's own conditions and start time continue from what it last posted.
    let own = o.last_reported.or(previous);
    let statuses: Vec<ContainerStatus> = spec
        .containers
        .iter()
        .map(|c| container_status(o, c))
        .collect();
    let inits = spec.init_containers.clone().unwrap_or_default();
    let mut init_statuses: Vec<ContainerStatus> =
        inits.iter().map(|c| container_status(o, c)).collect();
    // Init containers not yet reached wait with PodInitializing's sibling reason.
    let mut blocked = false;
    for (c, s) in inits.iter().zip(init_statuses.iter_mut()) {
        if blocked && !o.instances.contains_key(&c.name) {
            s.state = Some(ApiState {
                waiting: Some(ContainerStateWaiting {
                    reason: Some("PodInitializing".into()),
                    message: None,
                }),
                ..Default::default()
            });
        }
        if !init_done(o, c) {
            blocked = true;
        }
    }
    let mut statuses = statuses;
    let pending_init = inits.iter().any(|c| !init_done(o, c));
    if pending_init {
        for s in statuses.iter_mut().filter(|s| s.container_id.is_none()) {
            s.state = Some(ApiState {
                waiting: Some(ContainerStateWaiting {
                    reason: Some("PodInitializing".into()),
                    message: None,
                }),
                ..Default::default()
            });
        }
    }
    let mut phase = phase(o, &statuses, &init_statuses).to_string();
    if o.pod_reason.is_some() {
        phase = "Failed".into();
    }
    // Conditions.
    let unready: Vec<String> = statuses
        .iter()
        .filter(|s| !s.ready)
        .map(|s| s.name.clone())
        .collect();
    let incomplete: Vec<String> = inits
        .iter()
        .filter(|c| !init_done(o, c))
        .map(|c| c.name.clone())
        .collect();
    let terminal = phase == "Succeeded" || phase == "Failed";
    let initialized = incomplete.is_empty() || terminal && inits.is_empty();
    let containers_ready = unready.is_empty() && !terminal;
    let unready_msg =
        |names: &[String]| format!("containers with unready status: [{}]", names.join(" "));
    let mut conditions = vec![
        condition(
            "PodReadyToStartContainers",
            o.sandbox_ready && !terminal,
            None,
            None,
            own,
        ),
        if initialized {
            condition("Initialized", true, None, None, own)
        } else {
            condition(
                "Initialized",
                false,
                Some("ContainersNotInitialized".into()),
                Some(format!(
                    "containers with incomplete status: [{}]",
                    incomplete.join(" ")
                )),
                own,
            )
        },
    ];
    let (ready_reason, ready_msg) = if containers_ready {
        (None, None)
    } else if terminal {
        (Some("PodCompleted".to_string()), None)
    } else {
        (
            Some("ContainersNotReady".to_string()),
            Some(unready_msg(&unready)),
        )
    };
    conditions.push(condition(
        "ContainersReady",
        containers_ready,
        ready_reason.clone(),
        ready_msg.clone(),
        own,
    ));
    // Readiness gates hold Ready back until their conditions are True; the message
    // names each gate that is not, as upstream's does.
    let unready_gates: Vec<String> = spec
        .readiness_gates
        .iter()
        .flatten()
        .filter_map(|g| {
            let found = previous
                .and_then(|s| s.conditions.as_ref())
                .and_then(|cs| cs.iter().find(|c| c.type_ == g.condition_type));
            match found {
                None => Some(format!(
                    "corresponding condition of pod readiness gate {:?} does not exist.",
                    g.condition_type
                )),
                Some(c) if c.status != "True" => Some(format!(
                    "the status of pod readiness gate {:?} is not \"True\", but {}",
                    g.condition_type, c.status
                )),
                Some(_) => None,
            }
        })
        .collect();
    if containers_ready && !unready_gates.is_empty() {
        conditions.push(condition(
            "Ready",
            false,
            Some("ReadinessGatesNotReady".into()),
            Some(unready_gates.join(", ")),
            own,
        ));
    } else {
        conditions.push(condition(
            "Ready",
            containers_ready,
            ready_reason,
            ready_msg,
            own,
        ));
    }
    // The kubelet's own evictions say so with DisruptionTarget.
    let evicted = o
        .pod_reason
        .as_ref()
        .filter(|(r, _)| r == "Evicted" || r == "Terminated");
    if let Some((_, message)) = evicted {
        conditions.push(condition(
            "DisruptionTarget",
            true,
            Some("TerminationByKubelet".into()),
            Some(message.clone()),
            own,
        ));
    }
    for c in previous
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default()
    {
        let ours = OWN_CONDITIONS.contains(&c.type_.as_str())
            || (evicted.is_some() && c.type_ == "DisruptionTarget");
        if !ours {
            conditions.push(c);
        }
    }
    let pod_ip = if spec.host_network == Some(true) {
        Some(o.host_ip.clone())
    } else {
        o.pod_ip.clone()
    };
    PodStatus {
        phase: Some(phase),
        conditions: Some(conditions),
        host_ip: Some(o.host_ip.clone()),
        host_ips: Some(vec![HostIP {
            ip: o.host_ip.clone(),
        }]),
        pod_ip: pod_ip.clone(),
        pod_ips: pod_ip.map(|ip| vec![PodIP { ip }]),
        start_time: Some(
            own.and_then(|s| s.start_time.clone())
                .unwrap_or(Time(o.start_time)),
        ),
        container_statuses: Some(statuses),
        init_container_statuses: (!init_statuses.is_empty()).then_some(init_statuses),
        qos_class: Some(podspec::pod_qos_class(&spec).to_string()),
        reason: o.pod_reason.as_ref().map(|r| r.0.clone()),
        message: o.pod_reason.as_ref().map(|r| r.1.clone()),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::time::Duration;

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).unwrap()
    }

    fn instance(name: &str, attempt: u32, state: ContainerState) -> Instance {
        Instance {
            info: ContainerInfo {
                id: format!("{name}-{attempt}"),
                labels: BTreeMap::new(),
                state,
                created_at: SystemTime::UNIX_EPOCH,
                log_path: "/dev/null".into(),
            },
            name: name.into(),
            attempt,
            init: false,
        }
    }

    fn running() -> ContainerState {
        ContainerState::Running {
            pid: 1,
            started_at: SystemTime::UNIX_EPOCH + Duration::from_secs(100),
        }
    }

    fn exited(code: i32) -> ContainerState {
        ContainerState::Exited {
            exit_code: code,
            signal: None,
            started_at: Some(SystemTime::UNIX_EPOCH),
            finished_at: SystemTime::UNIX_EPOCH + Duration::from_secs(5),
            oom_killed: false,
            reason: None,
            message: None,
        }
    }

    fn status_of(p: &Pod, instances: &[Instance], waiting: &[(&str, &str)]) -> PodStatus {
        let mut map: BTreeMap<String, Vec<Instance>> = BTreeMap::new();
        for i in instances {
            map.entry(i.name.clone()).or_default().push(i.clone());
        }
        let waiting: BTreeMap<String, Waiting> = waiting
            .iter()
            .map(|(n, r)| {
                (
                    n.to_string(),
                    Waiting {
                        reason: r.to_string(),
                        message: None,
                    },
                )
            })
            .collect();
        let ready = BTreeMap::new();
        pod_status(&Observed {
            pod: p,
            instances: &map,
            waiting: &waiting,
            ready: &ready,
            started: &ready,
            sandbox_ready: true,
            host_ip: "192.0.2.10".into(),
            pod_ip: None,
            start_time: Timestamp::UNIX_EPOCH,
            pod_reason: None,
            last_reported: None,
        })
    }

    /// A copy of the pod arriving late through the watch (still Ready=False) does not
    /// reset the transition time of what the kubelet already posted (Ready=True), so the
    /// same state gives the same status and no new update; conditions of others still
    /// come from the pod.
    #[test]
    fn only_what_the_kubelet_reports_counts_as_a_difference() {
        let p = pod(json!({"spec": {"containers": [{"name": "c", "image": "i"}]}}));
        let base = status_of(&p, &[instance("c", 0, running())], &[]);
        // Others' conditions and fields are theirs.
        let mut theirs = base.clone();
        theirs
            .conditions
            .get_or_insert_with(Vec::new)
            .push(PodCondition {
                type_: "example.com/Gate".into(),
                status: "True".into(),
                ..Default::default()
            });
        theirs.nominated_node_name = Some("n2".into());
        assert!(same_by_kubelet(&base, &theirs));
        // The same own conditions in another order are the same.
        let mut reordered = base.clone();
        reordered.conditions.as_mut().unwrap().reverse();
        assert!(same_by_kubelet(&base, &reordered));
        // A rewritten Ready condition, phase or container status is not.
        let mut not_ready = base.clone();
        for c in not_ready.conditions.iter_mut().flatten() {
            if c.type_ == "Ready" {
                c.status = "False".into();
            }
        }
        assert!(!same_by_kubelet(&base, &not_ready));
        let mut failed = base.clone();
        failed.phase = Some("Failed".into());
        assert!(!same_by_kubelet(&base, &failed));
        let mut cs = base.clone();
        let first = &mut cs.container_statuses.as_mut().unwrap()[0];
        first.ready = !first.ready;
        assert!(!same_by_kubelet(&base, &cs));
    }

    #[test]
    fn own_conditions_continue_from_the_last_posted_status() {
        let posted_at = Time(Timestamp::UNIX_EPOCH + Duration::from_secs(1000));
        let stale = pod(json!({
            "metadata": {"name": "p", "namespace": "default", "uid": "u"},
            "spec": {"containers": [{"name": "c", "image": "i"}]},
            "status": {
                "startTime": "1970-01-01T00:00:10Z",
                "conditions": [
                    {"type": "Ready", "status": "False", "lastTransitionTime": "1970-01-01T00:00:10Z"},
                    {"type": "example.com/Gate", "status": "True", "lastTransitionTime": "1970-01-01T00:00:10Z"}
                ]
            }
        }));
        let last = PodStatus {
            start_time: Some(Time(Timestamp::UNIX_EPOCH + Duration::from_secs(10))),
            conditions: Some(vec![PodCondition {
                type_: "Ready".into(),
                status: "True".into(),
                last_transition_time: Some(posted_at.clone()),
                ..Default::default()
            }]),
            ..Default::default()
        };
        let mut map: BTreeMap<String, Vec<Instance>> = BTreeMap::new();
        map.insert("c".into(), vec![instance("c", 0, running())]);
        let ready = BTreeMap::from([("c".to_string(), true)]);
        let observe = |last_reported| {
            pod_status(&Observed {
                pod: &stale,
                instances: &map,
                waiting: &BTreeMap::new(),
                ready: &ready,
                started: &ready,
                sandbox_ready: true,
                host_ip: "192.0.2.10".into(),
                pod_ip: None,
                start_time: Timestamp::UNIX_EPOCH,
                pod_reason: None,
                last_reported,
            })
        };
        let cond = |s: &PodStatus, ty: &str| {
            s.conditions
                .iter()
                .flatten()
                .find(|c| c.type_ == ty)
                .cloned()
                .unwrap()
        };
        let status = observe(Some(&last));
        let ready_cond = cond(&status, "Ready");
        assert_eq!(ready_cond.status, "True");
        assert_eq!(ready_cond.last_transition_time, Some(posted_at));
        assert_eq!(cond(&status, "example.com/Gate").status, "True");
        // Without a posted status the stale copy is all there is: the transition is new.
        let fresh = observe(None);
        assert_ne!(
            cond(&fresh, "Ready").last_transition_time,
            cond(&status, "Ready").last_transition_time
        );
    }

    /// The reason a container is waiting (panics if it is not waiting).
    fn waiting_reason(cs: &ContainerStatus) -> Option<&str> {
        cs.state
            .as_ref()
            .unwrap()
            .waiting
            .as_ref()
            .unwrap()
            .reason
            .as_deref()
    }

    fn cond<'a>(s: &'a PodStatus, ty: &str) -> &'a PodCondition {
        s.conditions
            .as_ref()
            .unwrap()
            .iter()
            .find(|c| c.type_ == ty)
            .unwrap()
    }

    #[test]
    fn running_pod_is_ready() {
        let p = pod(
            json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a", "image": "busybox"}]}}),
        );
        let s = status_of(&p, &[instance("a", 0, running())], &[]);
        assert_eq!(s.phase.as_deref(), Some("Running"));
        assert_eq!(cond(&s, "Ready").status, "True");
        assert_eq!(s.qos_class.as_deref(), Some("BestEffort"));
        let cs = &s.container_statuses.as_ref().unwrap()[0];
        assert!(cs.ready);
        assert_eq!(cs.container_id.as_deref(), Some("ferrokube://a-0"));
        assert_eq!(cs.image, "busybox");
    }

    #[test]
    fn phases_by_restart_policy() {
        let spec = |policy: &str| {
            pod(
                json!({"metadata": {"name": "p"}, "spec": {"restartPolicy": policy,
                "containers": [{"name": "a"}, {"name": "b"}]}}),
            )
        };
        let done = [instance("a", 0, exited(0)), instance("b", 0, exited(0))];
        assert_eq!(
            status_of(&spec("Never"), &done, &[]).phase.as_deref(),
            Some("Succeeded")
        );
        assert_eq!(
            status_of(&spec("OnFailure"), &done, &[]).phase.as_deref(),
            Some("Succeeded")
        );
        assert_eq!(
            status_of(&spec("Always"), &done, &[]).phase.as_deref(),
            Some("Running")
        );
        let failed = [instance("a", 0, exited(0)), instance("b", 0, exited(1))];
        let s = status_of(&spec("Never"), &failed, &[]);
        assert_eq!(s.phase.as_deref(), Some("Failed"));
        assert_eq!(cond(&s, "Ready").reason.as_deref(), Some("PodCompleted"));
        assert_eq!(
            status_of(&spec("OnFailure"), &failed, &[]).phase.as_deref(),
            Some("Running")
        );
        // Not started yet: Pending, ContainerCreating.
        let s = status_of(&spec("Always"), &[], &[]);
        assert_eq!(s.phase.as_deref(), Some("Pending"));
        assert_eq!(
            waiting_reason(&s.container_statuses.as_ref().unwrap()[0]),
            Some("ContainerCreating")
        );
        assert_eq!(
            cond(&s, "Ready").message.as_deref(),
            Some("containers with unready status: [a b]")
        );
    }

    #[test]
    fn crash_loop_keeps_the_last_exit() {
        let p = pod(json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}]}}));
        let s = status_of(
            &p,
            &[instance("a", 1, exited(3)), instance("a", 0, exited(3))],
            &[("a", "CrashLoopBackOff")],
        );
        let cs = &s.container_statuses.as_ref().unwrap()[0];
        assert_eq!(cs.restart_count, 1);
        assert_eq!(waiting_reason(cs), Some("CrashLoopBackOff"));
        let last = cs.last_state.as_ref().unwrap().terminated.as_ref().unwrap();
        assert_eq!((last.exit_code, last.reason.as_deref()), (3, Some("Error")));
        // Waiting after having run counts as stopped: the pod is Running.
        assert_eq!(s.phase.as_deref(), Some("Running"));
    }

    #[test]
    fn init_containers_gate_the_pod() {
        let p = pod(json!({"metadata": {"name": "p"}, "spec": {
            "initContainers": [{"name": "i1"}, {"name": "i2"}],
            "containers": [{"name": "a"}]}}));
        let s = status_of(&p, &[instance("i1", 0, running())], &[]);
        assert_eq!(s.phase.as_deref(), Some("Pending"));
        let init = cond(&s, "Initialized");
        assert_eq!(init.status, "False");
        assert_eq!(init.reason.as_deref(), Some("ContainersNotInitialized"));
        assert_eq!(
            init.message.as_deref(),
            Some("containers with incomplete status: [i1 i2]")
        );
        let inits = s.init_container_statuses.as_ref().unwrap();
        assert_eq!(waiting_reason(&inits[1]), Some("PodInitializing"));
        assert_eq!(
            waiting_reason(&s.container_statuses.as_ref().unwrap()[0]),
            Some("PodInitializing")
        );
        let s = status_of(
            &p,
            &[
                instance("i1", 0, exited(0)),
                instance("i2", 0, exited(0)),
                instance("a", 0, running()),
            ],
            &[],
        );
        assert_eq!(cond(&s, "Initialized").status, "True");
        assert_eq!(s.phase.as_deref(), Some("Running"));
        // A failed init container with restartPolicy Never fails the pod.
        let never = pod(
            json!({"metadata": {"name": "p"}, "spec": {"restartPolicy": "Never",
            "initContainers": [{"name": "i1"}], "containers": [{"name": "a"}]}}),
        );
        assert_eq!(
            status_of(&never, &[instance("i1", 0, exited(1))], &[])
                .phase
                .as_deref(),
            Some("Failed")
        );
    }

    #[test]
    fn foreign_conditions_are_kept() {
        let p = pod(
            json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}]},
            "status": {"conditions": [
                {"type": "PodScheduled", "status": "True"},
                {"type": "DisruptionTarget", "status": "True", "reason": "EvictionByEvictionAPI"}]}}),
        );
        let s = status_of(&p, &[instance("a", 0, running())], &[]);
        assert_eq!(cond(&s, "PodScheduled").status, "True");
        assert_eq!(
            cond(&s, "DisruptionTarget").reason.as_deref(),
            Some("EvictionByEvictionAPI")
        );
    }
}
