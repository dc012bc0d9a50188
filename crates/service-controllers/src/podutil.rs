//! Pod and service helpers shared by the Endpoints and EndpointSlice controllers:
//! which pods belong in a service's endpoints, target port resolution, hostnames,
//! IP families, which services a pod change concerns (and the service/pod handler
//! wiring built on it), and the tracker behind the
//! `endpoints.kubernetes.io/last-change-trigger-time` annotation.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

use controllers::informer::{object_key, HandlerRegistration, Informer, Notification, Store};
use controllers::util::{is_pod_ready, is_pod_terminal, pod_ready_condition, LabelMatcher};
use controllers::workqueue::WorkQueue;
use k8s_openapi::api::core::v1::{ObjectReference, Pod, Service, ServicePort};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use parking_lot::Mutex;

/// The `clusterIP` of a headless service.
pub const CLUSTER_IP_NONE: &str = "None";
/// The label set on the endpoints of headless services.
pub const IS_HEADLESS_SERVICE_LABEL: &str = "service.kubernetes.io/headless";
/// The annotation holding the time of the last change that triggered a write.
pub const LAST_CHANGE_TRIGGER_TIME_ANNOTATION: &str =
    "endpoints.kubernetes.io/last-change-trigger-time";
/// The `NamespaceTerminating` status cause of creates refused in a terminating
/// namespace.
pub const NAMESPACE_TERMINATING_CAUSE: &str = "NamespaceTerminating";

/// Whether a pod's addresses belong in its services' endpoints: not finished, with
/// an IP, and (unless `include_terminating`) not being deleted.
pub fn should_pod_be_in_endpoints(pod: &Pod, include_terminating: bool) -> bool {
    if is_pod_terminal(pod) {
        return false;
    }
    if pod_ips(pod).is_empty() {
        return false;
    }
    include_terminating || pod.metadata.deletion_timestamp.is_none()
}

/// Whether the pod's `hostname` is published: it has one and its `subdomain` names
/// this service in the same namespace.
pub fn should_set_hostname(pod: &Pod, svc: &Service) -> bool {
    let Some(spec) = pod.spec.as_ref() else {
        return false;
    };
    let hostname = spec.hostname.as_deref().unwrap_or("");
    !hostname.is_empty()
        && spec.subdomain.as_deref().unwrap_or("") == svc.metadata.name.as_deref().unwrap_or("")
        && svc.metadata.namespace == pod.metadata.namespace
}

/// The pod's IPs (`status.podIPs`, or `status.podIP` when the list is absent).
pub fn pod_ips(pod: &Pod) -> Vec<String> {
    let Some(status) = pod.status.as_ref() else {
        return Vec::new();
    };
    let listed: Vec<String> = status
        .pod_ips
        .iter()
        .flatten()
        .map(|p| p.ip.clone())
        .filter(|ip| !ip.is_empty())
        .collect();
    if !listed.is_empty() {
        return listed;
    }
    status
        .pod_ip
        .iter()
        .filter(|ip| !ip.is_empty())
        .cloned()
        .collect()
}

/// Whether `ip` parses as an IPv6 address.
pub fn is_ipv6(ip: &str) -> bool {
    matches!(ip.parse::<IpAddr>(), Ok(IpAddr::V6(_)))
}

/// Whether the service has a cluster IP (neither headless nor unset).
pub fn is_service_ip_set(svc: &Service) -> bool {
    let ip = svc
        .spec
        .as_ref()
        .and_then(|s| s.cluster_ip.as_deref())
        .unwrap_or("");
    !ip.is_empty() && ip != CLUSTER_IP_NONE
}

/// The service's `clusterIP` ("" when unset).
pub fn cluster_ip(svc: &Service) -> &str {
    svc.spec
        .as_ref()
        .and_then(|s| s.cluster_ip.as_deref())
        .unwrap_or("")
}

/// A service port's protocol, `TCP` when unset (the API default).
pub fn service_port_protocol(port: &ServicePort) -> &str {
    port.protocol.as_deref().unwrap_or("TCP")
}

/// Why a service port has no port on a pod.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no suitable port for manifest: {uid}")]
pub struct NoSuitablePort {
    /// The pod's UID.
    pub uid: String,
}

/// Resolves a service port's `targetPort` on a pod: a number is taken as is (the
/// service port itself when unset); a name is looked up among the named ports of
/// the pod's containers, then of its sidecars (init containers with
/// `restartPolicy: Always`), with the service port's protocol.
pub fn find_port(pod: &Pod, port: &ServicePort) -> Result<i32, NoSuitablePort> {
    let not_found = || NoSuitablePort {
        uid: pod.metadata.uid.clone().unwrap_or_default(),
    };
    let name = match port.target_port.as_ref() {
        None => return Ok(port.port),
        Some(IntOrString::Int(n)) => return Ok(*n),
        Some(IntOrString::String(s)) => match s.parse::<i32>() {
            // An all-digit string is the number itself, as intstr's IntValue.
            Ok(n) => return Ok(n),
            Err(_) => s.as_str(),
        },
    };
    let protocol = service_port_protocol(port);
    let Some(spec) = pod.spec.as_ref() else {
        return Err(not_found());
    };
    let sidecars = spec
        .init_containers
        .iter()
        .flatten()
        .filter(|c| c.restart_policy.as_deref() == Some("Always"));
    for container in spec.containers.iter().chain(sidecars) {
        for p in container.ports.iter().flatten() {
            if p.name.as_deref() == Some(name) && p.protocol.as_deref().unwrap_or("TCP") == protocol
            {
                return Ok(p.container_port);
            }
        }
    }
    Err(not_found())
}

/// The service's selector as a matcher; `None` for services without a selector
/// (they match nothing; an empty selector matches every pod).
pub fn service_selector(svc: &Service) -> Option<LabelMatcher> {
    let selector = svc.spec.as_ref()?.selector.as_ref()?;
    Some(LabelMatcher::from_map(Some(selector)))
}

/// The pods of the service's namespace its selector matches.
pub fn pods_for_service(pods: &Store<Pod>, svc: &Service) -> Vec<Arc<Pod>> {
    let Some(matcher) = service_selector(svc) else {
        return Vec::new();
    };
    let ns = svc.metadata.namespace.as_deref().unwrap_or("");
    let mut out: Vec<Arc<Pod>> = pods
        .list_namespace(ns)
        .into_iter()
        .filter(|p| matcher.matches(p.metadata.labels.as_ref()))
        .collect();
    out.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    out
}

/// The keys of the services (with a selector) in the pod's namespace that select it.
pub fn pod_service_memberships(services: &Store<Service>, pod: &Pod) -> BTreeSet<String> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("");
    services
        .list_namespace(ns)
        .into_iter()
        .filter(|svc| {
            service_selector(svc).is_some_and(|m| m.matches(pod.metadata.labels.as_ref()))
        })
        .map(|svc| object_key(svc.as_ref()))
        .collect()
}

fn hostname_and_subdomain(pod: &Pod) -> (Option<&str>, Option<&str>) {
    let spec = pod.spec.as_ref();
    (
        spec.and_then(|s| s.hostname.as_deref()),
        spec.and_then(|s| s.subdomain.as_deref()),
    )
}

/// Whether a pod update may change endpoints: `(pod_changed, labels_changed)`, where
/// the first covers deletion, readiness, terminal phase and IP changes, and the
/// second label, hostname and subdomain changes (service membership).
pub fn pod_endpoints_changed(old: &Pod, new: &Pod) -> (bool, bool) {
    let labels_changed = old.metadata.labels != new.metadata.labels
        || hostname_and_subdomain(old) != hostname_and_subdomain(new);
    let pod_changed = old.metadata.deletion_timestamp != new.metadata.deletion_timestamp
        || is_pod_ready(old) != is_pod_ready(new)
        || is_pod_terminal(old) != is_pod_terminal(new)
        || pod_ips(old) != pod_ips(new);
    (pod_changed, labels_changed)
}

/// The services to sync after a pod update: none for a resync (same
/// resourceVersion) or an irrelevant change; the current memberships when the pod
/// changed; after a label change, the services it joined or left too (and, when the
/// pod itself changed as well, all old and new ones).
pub fn services_to_update_on_pod_change(
    services: &Store<Service>,
    old: &Pod,
    new: &Pod,
) -> BTreeSet<String> {
    if old.metadata.resource_version == new.metadata.resource_version {
        return BTreeSet::new();
    }
    let (pod_changed, labels_changed) = pod_endpoints_changed(old, new);
    if !pod_changed && !labels_changed {
        return BTreeSet::new();
    }
    let current = pod_service_memberships(services, new);
    if !labels_changed {
        return current;
    }
    let previous = pod_service_memberships(services, old);
    if pod_changed {
        current.union(&previous).cloned().collect()
    } else {
        current.symmetric_difference(&previous).cloned().collect()
    }
}

/// The `targetRef` of an endpoint backed by `pod`.
pub fn pod_reference(pod: &Pod) -> ObjectReference {
    ObjectReference {
        kind: Some("Pod".into()),
        namespace: pod.metadata.namespace.clone(),
        name: pod.metadata.name.clone(),
        uid: pod.metadata.uid.clone(),
        ..Default::default()
    }
}

/// Subscribes `queue` (keyed by service `namespace/name`) to service and pod changes,
/// as both endpoint controllers do: any service notification queues that service; a
/// pod added or deleted queues the services selecting it, a pod update those
/// [`services_to_update_on_pod_change`] names. Returns the service and pod handler
/// registrations, in that order.
pub fn queue_services_on_changes(
    service_informer: &Informer<Service>,
    pod_informer: &Informer<Pod>,
    queue: &WorkQueue<String>,
) -> [HandlerRegistration; 2] {
    let q = queue.clone();
    let svc_reg = service_informer.add_handler(move |n: &Notification<Service>| {
        q.add(object_key(n.object().as_ref()));
    });
    let services = service_informer.store();
    let q = queue.clone();
    let pod_reg = pod_informer.add_handler(move |n: &Notification<Pod>| {
        let keys = match n {
            Notification::Added(p) | Notification::Deleted(p) => {
                pod_service_memberships(&services, p)
            }
            Notification::Updated { old, new } => {
                services_to_update_on_pod_change(&services, old, new)
            }
        };
        for key in keys {
            q.add(key);
        }
    });
    [svc_reg, pod_reg]
}

/// Formats a time as Go's RFC3339Nano in UTC (fraction without trailing zeros).
pub fn format_rfc3339_nano(t: jiff::Timestamp) -> String {
    t.to_string()
}

#[derive(Default)]
struct ServiceTriggerState {
    last_pod_trigger_times: HashMap<String, jiff::Timestamp>,
    last_service_trigger_time: Option<jiff::Timestamp>,
}

/// Computes the `last-change-trigger-time` of a service's endpoints: the service's
/// creation time on its first sync, afterwards the earliest of the pod Ready
/// transitions (and service creation) that are newer than those seen at the
/// previous sync; `None` when nothing new happened.
#[derive(Default)]
pub struct TriggerTimeTracker {
    states: Mutex<HashMap<String, ServiceTriggerState>>,
}

impl TriggerTimeTracker {
    /// An empty tracker.
    pub fn new() -> Self {
        Self::default()
    }

    /// The trigger time for a sync of `svc` over `pods`; records their times.
    pub fn compute(&self, svc: &Service, pods: &[Arc<Pod>]) -> Option<jiff::Timestamp> {
        let key = object_key(svc);
        let mut states = self.states.lock();
        let was_known = states.contains_key(&key);
        let state = states.entry(key).or_default();
        let mut min_changed: Option<jiff::Timestamp> = None;
        let mut pod_times = HashMap::new();
        for pod in pods {
            let Some(t) = pod_ready_condition(pod)
                .and_then(|c| c.last_transition_time.as_ref())
                .map(|t| t.0)
            else {
                continue;
            };
            let name = pod.metadata.name.clone().unwrap_or_default();
            let newer = state
                .last_pod_trigger_times
                .get(&name)
                .is_none_or(|last| t > *last);
            if newer {
                min_changed = Some(min_changed.map_or(t, |m| m.min(t)));
            }
            pod_times.insert(name, t);
        }
        let svc_time = svc.metadata.creation_timestamp.as_ref().map(|t| t.0);
        if let Some(t) = svc_time {
            if state.last_service_trigger_time.is_none_or(|last| t > last) {
                min_changed = Some(min_changed.map_or(t, |m| m.min(t)));
            }
        }
        state.last_pod_trigger_times = pod_times;
        state.last_service_trigger_time = svc_time;
        if !was_known {
            return svc_time;
        }
        min_changed
    }

    /// Forgets a deleted service.
    pub fn delete_service(&self, namespace: &str, name: &str) {
        self.states.lock().remove(&format!("{namespace}/{name}"));
    }
}

/// The labels of `labels` without `key` (`None` stays `None`).
pub fn without_label(
    labels: Option<&BTreeMap<String, String>>,
    key: &str,
) -> Option<BTreeMap<String, String>> {
    labels.map(|l| {
        let mut l = l.clone();
        l.remove(key);
        l
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        Container, ContainerPort, PodCondition, PodIP, PodSpec, PodStatus, ServiceSpec,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

    fn pod_with_ports(ports: Vec<ContainerPort>, sidecar: Vec<ContainerPort>) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some("p".into()),
                uid: Some("uid-1".into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "c".into(),
                    ports: Some(ports),
                    ..Default::default()
                }],
                init_containers: Some(vec![Container {
                    name: "side".into(),
                    restart_policy: Some("Always".into()),
                    ports: Some(sidecar),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn cport(name: &str, port: i32, proto: &str) -> ContainerPort {
        ContainerPort {
            name: Some(name.into()),
            container_port: port,
            protocol: Some(proto.into()),
            ..Default::default()
        }
    }

    fn sport(port: i32, target: Option<IntOrString>, proto: &str) -> ServicePort {
        ServicePort {
            port,
            target_port: target,
            protocol: Some(proto.into()),
            ..Default::default()
        }
    }

    #[test]
    fn resolves_target_ports() {
        let pod = pod_with_ports(
            vec![cport("http", 8080, "TCP"), cport("dns", 5353, "UDP")],
            vec![cport("metrics", 9090, "TCP")],
        );
        assert_eq!(
            find_port(&pod, &sport(80, Some(IntOrString::Int(81)), "TCP")),
            Ok(81)
        );
        assert_eq!(find_port(&pod, &sport(80, None, "TCP")), Ok(80));
        let named = |n: &str| Some(IntOrString::String(n.into()));
        assert_eq!(find_port(&pod, &sport(80, named("http"), "TCP")), Ok(8080));
        assert_eq!(find_port(&pod, &sport(53, named("dns"), "UDP")), Ok(5353));
        assert_eq!(
            find_port(&pod, &sport(90, named("metrics"), "TCP")),
            Ok(9090)
        );
        // Protocol must match too.
        let err = find_port(&pod, &sport(53, named("dns"), "TCP")).unwrap_err();
        assert_eq!(err.to_string(), "no suitable port for manifest: uid-1");
        assert!(find_port(&pod, &sport(80, named("nope"), "TCP")).is_err());
    }

    fn ready_pod(name: &str, ready_at: i64) -> Arc<Pod> {
        Arc::new(Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            status: Some(PodStatus {
                pod_ip: Some("10.0.0.1".into()),
                pod_ips: Some(vec![PodIP {
                    ip: "10.0.0.1".into(),
                }]),
                conditions: Some(vec![PodCondition {
                    type_: "Ready".into(),
                    status: "True".into(),
                    last_transition_time: Some(Time(ts(ready_at))),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        })
    }

    fn ts(s: i64) -> jiff::Timestamp {
        jiff::Timestamp::from_second(1_700_000_000 + s).unwrap()
    }

    #[test]
    fn trigger_times() {
        let svc = Service {
            metadata: ObjectMeta {
                namespace: Some("ns".into()),
                name: Some("s".into()),
                creation_timestamp: Some(Time(ts(0))),
                ..Default::default()
            },
            spec: Some(ServiceSpec::default()),
            status: None,
        };
        let t = TriggerTimeTracker::new();
        let a = ready_pod("a", 5);
        assert_eq!(
            t.compute(&svc, std::slice::from_ref(&a)),
            Some(ts(0)),
            "first sync"
        );
        assert_eq!(
            t.compute(&svc, std::slice::from_ref(&a)),
            None,
            "nothing new"
        );
        let b = ready_pod("b", 9);
        let c = ready_pod("c", 7);
        assert_eq!(t.compute(&svc, &[a.clone(), b, c]), Some(ts(7)));
        t.delete_service("ns", "s");
        assert_eq!(t.compute(&svc, &[a]), Some(ts(0)));
        assert_eq!(format_rfc3339_nano(ts(0)), "2023-11-14T22:13:20Z");
    }

    #[test]
    fn pod_inclusion() {
        let p = ready_pod("a", 0);
        assert!(should_pod_be_in_endpoints(&p, false));
        let mut terminating = (*p).clone();
        terminating.metadata.deletion_timestamp = Some(Time(ts(1)));
        assert!(!should_pod_be_in_endpoints(&terminating, false));
        assert!(should_pod_be_in_endpoints(&terminating, true));
        let mut done = (*p).clone();
        done.status.as_mut().unwrap().phase = Some("Succeeded".into());
        assert!(!should_pod_be_in_endpoints(&done, true));
        let mut no_ip = (*p).clone();
        no_ip.status.as_mut().unwrap().pod_ip = None;
        no_ip.status.as_mut().unwrap().pod_ips = None;
        assert!(!should_pod_be_in_endpoints(&no_ip, true));
        assert!(is_ipv6("fd00::1") && !is_ipv6("10.0.0.1") && !is_ipv6("junk"));
    }
}
