//! The remaining kinds: coordination/v1 Lease, discovery/v1 EndpointSlice,
//! policy/v1 PodDisruptionBudget, autoscaling/v2 HorizontalPodAutoscaler,
//! networking/v1 Ingress, IngressClass and NetworkPolicy, and storage/v1
//! StorageClass, scheduling/v1 PriorityClass (defaulting, strategies and the main
//! validation rules).

use std::collections::BTreeSet;

use apimachinery::validation as av;
use apimachinery::{FieldError, Path};
use k8s_openapi::api::autoscaling::v2::{
    HPAScalingPolicy, HPAScalingRules, HorizontalPodAutoscaler, HorizontalPodAutoscalerStatus,
    MetricSpec, MetricTarget, ResourceMetricSource,
};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{
    Ingress, IngressBackend, IngressClass, IngressStatus, NetworkPolicy, NetworkPolicyPeer,
    NetworkPolicyPort,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetStatus};
use k8s_openapi::api::scheduling::v1::PriorityClass;
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::apps::{is_not_more_than_100_percent, validate_positive_int_or_percent};
use crate::core::podspec::validate_port_num_or_name;
use crate::util::{
    empty, invalid_go, list, msgs_invalid, nonneg, s, semantic_eq, to_json, validate_dns1123_label,
    validate_kube_finalizers, validate_label_selector, validate_labels, validate_qualified_name,
};
use crate::KindRules;

// -------------------------------------------------------------------- Lease

impl KindRules for Lease {
    fn validate(&self) -> Vec<FieldError> {
        let mut errs = validate_kube_finalizers(&self.metadata);
        let Some(spec) = &self.spec else {
            return errs;
        };
        let p = Path::new("spec");
        if let Some(d) = spec.lease_duration_seconds {
            if d <= 0 {
                errs.push(FieldError::invalid(
                    &p.child("leaseDurationSeconds"),
                    d,
                    "must be greater than 0",
                ));
            }
        }
        if let Some(t) = spec.lease_transitions {
            if t < 0 {
                errs.push(FieldError::invalid(
                    &p.child("leaseTransitions"),
                    t,
                    "must be greater than or equal to 0",
                ));
            }
        }
        if let Some(st) = &spec.strategy {
            if st != "OldestEmulationVersion" {
                errs.push(FieldError::not_supported(
                    &p.child("strategy"),
                    st.as_str(),
                    &["OldestEmulationVersion"],
                ));
            }
        }
        if !empty(&spec.preferred_holder) && empty(&spec.strategy) {
            errs.push(FieldError::forbidden(
                &p.child("preferredHolder"),
                "may only be specified if `strategy` is defined",
            ));
        }
        errs
    }

    fn validate_update(&self, _old: &Self) -> Vec<FieldError> {
        self.validate()
    }

    fn validate_status_update(&self, _old: &Self) -> Vec<FieldError> {
        Vec::new()
    }
}

// ------------------------------------------------------------ EndpointSlice

impl KindRules for EndpointSlice {
    fn default(&mut self) {
        for p in self.ports.iter_mut().flatten() {
            if p.name.is_none() {
                p.name = Some(String::new());
            }
            if p.protocol.is_none() {
                p.protocol = Some("TCP".into());
            }
        }
    }

    fn validate(&self) -> Vec<FieldError> {
        let mut errs = validate_kube_finalizers(&self.metadata);
        let at = self.address_type.as_str();
        let ap = Path::new("addressType");
        if at.is_empty() {
            errs.push(FieldError::required(&ap, ""));
        } else if !["FQDN", "IPv4", "IPv6"].contains(&at) {
            errs.push(FieldError::not_supported(
                &ap,
                at,
                &["FQDN", "IPv4", "IPv6"],
            ));
        }
        let ep = Path::new("endpoints");
        if self.endpoints.len() > 1000 {
            errs.push(FieldError::too_many(&ep, self.endpoints.len() as i64, 1000));
        }
        for (i, e) in self.endpoints.iter().enumerate() {
            let ip = ep.index(i);
            let adp = ip.child("addresses");
            if e.addresses.is_empty() {
                errs.push(FieldError::required(
                    &adp,
                    "must contain at least 1 address",
                ));
            } else if e.addresses.len() > 100 {
                errs.push(FieldError::too_many(&adp, e.addresses.len() as i64, 100));
            }
            for (j, a) in e.addresses.iter().enumerate() {
                let p = adp.index(j);
                match at {
                    "IPv4" => {
                        let ee = av::is_valid_ipv4_address(&p, a);
                        if ee.is_empty() {
                            errs.extend(crate::core::service::validate_non_special_ip(a, &p));
                        } else {
                            errs.extend(ee);
                        }
                    }
                    "IPv6" => {
                        let ee = av::is_valid_ipv6_address(&p, a);
                        if ee.is_empty() {
                            errs.extend(crate::core::service::validate_non_special_ip(a, &p));
                        } else {
                            errs.extend(ee);
                        }
                    }
                    "FQDN" => errs.extend(av::is_fully_qualified_domain_name(&p, a)),
                    _ => {}
                }
            }
            if let Some(n) = &e.node_name {
                errs.extend(msgs_invalid(
                    &ip.child("nodeName"),
                    n,
                    av::name_is_dns_subdomain(n, false),
                ));
            }
            let tp = ip.child("deprecatedTopology");
            let topo_len = e.deprecated_topology.as_ref().map(|m| m.len()).unwrap_or(0);
            if topo_len > 16 {
                errs.push(FieldError::too_many(&tp, topo_len as i64, 16));
            }
            errs.extend(validate_labels(&e.deprecated_topology, &tp));
            if let Some(h) = &e.hostname {
                errs.extend(validate_dns1123_label(h, &ip.child("hostname")));
            }
        }
        let pp = Path::new("ports");
        let ports = list(&self.ports);
        if ports.len() > 20000 {
            errs.push(FieldError::too_many(&pp, ports.len() as i64, 20000));
            return errs;
        }
        let mut names = BTreeSet::new();
        for (i, p) in ports.iter().enumerate() {
            let ip = pp.index(i);
            let name = s(&p.name);
            if !name.is_empty() {
                errs.extend(validate_dns1123_label(name, &ip.child("name")));
            }
            if !names.insert(name.to_string()) {
                errs.push(FieldError::duplicate(&ip.child("name"), name));
            }
            match &p.protocol {
                None => errs.push(FieldError::required(&ip.child("protocol"), "")),
                Some(pr) if !["SCTP", "TCP", "UDP"].contains(&pr.as_str()) => {
                    errs.push(FieldError::not_supported(
                        &ip.child("protocol"),
                        pr.as_str(),
                        &["SCTP", "TCP", "UDP"],
                    ))
                }
                _ => {}
            }
            if let Some(a) = &p.app_protocol {
                errs.extend(validate_qualified_name(a, &ip.child("appProtocol")));
            }
        }
        errs
    }

    fn validate_update(&self, old: &Self) -> Vec<FieldError> {
        let mut errs = self.validate();
        errs.extend(crate::util::immutable(
            to_json(&self.address_type),
            to_json(&old.address_type),
            &Path::new("addressType"),
        ));
        errs
    }

    fn validate_status_update(&self, _old: &Self) -> Vec<FieldError> {
        Vec::new()
    }
}

// ----------------------------------------------------- PodDisruptionBudget

impl KindRules for PodDisruptionBudget {
    fn prepare_for_create(&mut self) {
        self.status = Some(PodDisruptionBudgetStatus::default());
        self.metadata.generation = Some(1);
    }

    fn prepare_for_update(&mut self, old: &Self) {
        self.status = old.status.clone();
        self.metadata.generation = old.metadata.generation;
        if !semantic_eq(&self.spec, &old.spec) {
            self.metadata.generation = Some(old.metadata.generation.unwrap_or(0) + 1);
        }
    }

    fn prepare_for_status_update(&mut self, old: &Self) {
        self.spec = old.spec.clone();
    }

    fn validate(&self) -> Vec<FieldError> {
        let mut errs = validate_kube_finalizers(&self.metadata);
        let spec = self.spec.clone().unwrap_or_default();
        let p = Path::new("spec");
        if spec.min_available.is_some() && spec.max_unavailable.is_some() {
            errs.push(FieldError::invalid(
                &p,
                to_json(&spec),
                "minAvailable and maxUnavailable cannot be both set",
            ));
        }
        for (v, name) in [
            (&spec.min_available, "minAvailable"),
            (&spec.max_unavailable, "maxUnavailable"),
        ] {
            if let Some(v) = v {
                errs.extend(validate_positive_int_or_percent(v, &p.child(name)));
                errs.extend(is_not_more_than_100_percent(v, &p.child(name)));
            }
        }
        errs.extend(validate_label_selector(
            &spec.selector,
            false,
            &p.child("selector"),
        ));
        if let Some(u) = &spec.unhealthy_pod_eviction_policy {
            if u != "AlwaysAllow" && u != "IfHealthyBudget" {
                errs.push(FieldError::not_supported(
                    &p.child("unhealthyPodEvictionPolicy"),
                    u.as_str(),
                    &["AlwaysAllow", "IfHealthyBudget"],
                ));
            }
        }
        errs
    }

    fn validate_update(&self, _old: &Self) -> Vec<FieldError> {
        self.validate()
    }

    fn validate_status_update(&self, _old: &Self) -> Vec<FieldError> {
        let mut errs = validate_kube_finalizers(&self.metadata);
        let st = self.status.clone().unwrap_or_default();
        let p = Path::new("status");
        errs.extend(nonneg(
            i64::from(st.disruptions_allowed),
            &p.child("disruptionsAllowed"),
        ));
        errs.extend(nonneg(
            i64::from(st.current_healthy),
            &p.child("currentHealthy"),
        ));
        errs.extend(nonneg(
            i64::from(st.desired_healthy),
            &p.child("desiredHealthy"),
        ));
        errs.extend(nonneg(
            i64::from(st.expected_pods),
            &p.child("expectedPods"),
        ));
        errs
    }
}

// ------------------------------------------------- HorizontalPodAutoscaler

fn scaling_rules(user: Option<HPAScalingRules>, default: HPAScalingRules) -> HPAScalingRules {
    let Some(mut u) = user else {
        return default;
    };
    if u.stabilization_window_seconds.is_none() {
        u.stabilization_window_seconds = default.stabilization_window_seconds;
    }
    if u.select_policy.is_none() {
        u.select_policy = default.select_policy;
    }
    if u.policies.is_none() {
        u.policies = default.policies;
    }
    u
}

fn policy(t: &str, value: i32, period: i32) -> HPAScalingPolicy {
    HPAScalingPolicy {
        type_: t.into(),
        value,
        period_seconds: period,
    }
}

fn validate_metric_target(mt: &MetricTarget, path: &Path) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if mt.type_.is_empty() {
        errs.push(FieldError::required(
            &path.child("type"),
            "must specify a metric target type",
        ));
    }
    if !["Utilization", "Value", "AverageValue"].contains(&mt.type_.as_str()) {
        errs.push(FieldError::invalid(
            &path.child("type"),
            mt.type_.as_str(),
            "must be either Utilization, Value, or AverageValue",
        ));
    }
    for (q, name) in [(&mt.value, "value"), (&mt.average_value, "averageValue")] {
        if let Some(q) = q {
            if apimachinery::Quantity::parse(&q.0)
                .map(|v| v.sign())
                .unwrap_or(0)
                != 1
            {
                errs.push(invalid_go(
                    &path.child(name),
                    &crate::core::resources::q_str(q),
                    "must be positive",
                ));
            }
        }
    }
    if let Some(u) = mt.average_utilization {
        if u < 1 {
            errs.push(FieldError::invalid(
                &path.child("averageUtilization"),
                u,
                "must be greater than 0",
            ));
        }
    }
    errs
}

fn validate_resource_source(name: &str, target: &MetricTarget, path: &Path) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if name.is_empty() {
        errs.push(FieldError::required(
            &path.child("name"),
            "must specify a resource name",
        ));
    }
    errs.extend(validate_metric_target(target, &path.child("target")));
    if target.average_utilization.is_none() && target.average_value.is_none() {
        errs.push(FieldError::required(
            &path.child("target").child("averageUtilization"),
            "must set either a target raw value or a target utilization",
        ));
    }
    if target.average_utilization.is_some() && target.average_value.is_some() {
        errs.push(FieldError::forbidden(
            &path.child("target").child("averageValue"),
            "may not set both a target raw value and a target utilization",
        ));
    }
    errs
}

const METRIC_TYPES: &[&str] = &[
    "ContainerResource",
    "External",
    "Object",
    "Pods",
    "Resource",
];

fn validate_metric_spec(m: &MetricSpec, path: &Path) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if m.type_.is_empty() {
        errs.push(FieldError::required(
            &path.child("type"),
            "must specify a metric source type",
        ));
    }
    if !METRIC_TYPES.contains(&m.type_.as_str()) {
        errs.push(FieldError::not_supported(
            &path.child("type"),
            m.type_.as_str(),
            METRIC_TYPES,
        ));
    }
    let mut present: Vec<&str> = Vec::new();
    if let Some(o) = &m.object {
        present.push("object");
        if present.len() == 1 {
            let p = path.child("object");
            if o.metric.name.is_empty() {
                errs.push(FieldError::required(
                    &p.child("metric").child("name"),
                    "must specify a metric name",
                ));
            }
            errs.extend(validate_metric_target(&o.target, &p.child("target")));
            if o.target.value.is_none() && o.target.average_value.is_none() {
                errs.push(FieldError::required(
                    &p.child("target").child("averageValue"),
                    "must set either a target value or averageValue",
                ));
            }
        }
    }
    if let Some(pm) = &m.pods {
        present.push("pods");
        if present.len() == 1 {
            let p = path.child("pods");
            if pm.metric.name.is_empty() {
                errs.push(FieldError::required(
                    &p.child("metric").child("name"),
                    "must specify a metric name",
                ));
            }
            errs.extend(validate_metric_target(&pm.target, &p.child("target")));
            if pm.target.average_value.is_none() {
                errs.push(FieldError::required(
                    &p.child("target").child("averageValue"),
                    "must specify a positive target averageValue",
                ));
            }
        }
    }
    if let Some(r) = &m.resource {
        present.push("resource");
        if present.len() == 1 {
            let ResourceMetricSource { name, target } = r;
            errs.extend(validate_resource_source(
                name,
                target,
                &path.child("resource"),
            ));
        }
    }
    if let Some(e) = &m.external {
        present.push("external");
        if present.len() == 1 {
            let p = path.child("external");
            if e.metric.name.is_empty() {
                errs.push(FieldError::required(
                    &p.child("metric").child("name"),
                    "must specify a metric name",
                ));
            }
            errs.extend(validate_metric_target(&e.target, &p.child("target")));
            if e.target.value.is_none() && e.target.average_value.is_none() {
                errs.push(FieldError::required(
                    &p.child("target").child("averageValue"),
                    "must set either a target value for metric or a per-pod target",
                ));
            }
        }
    }
    if let Some(c) = &m.container_resource {
        present.push("containerResource");
        if present.len() == 1 {
            let p = path.child("containerResource");
            if c.container.is_empty() {
                errs.push(FieldError::required(
                    &p.child("container"),
                    "must specify a container",
                ));
            } else {
                errs.extend(validate_dns1123_label(&c.container, &p.child("container")));
            }
            errs.extend(validate_resource_source(&c.name, &c.target, &p));
        }
    }
    let expected = match m.type_.as_str() {
        "Object" => ("object", m.object.is_none()),
        "Pods" => ("pods", m.pods.is_none()),
        "Resource" => ("resource", m.resource.is_none()),
        "External" => ("external", m.external.is_none()),
        "ContainerResource" => ("containerResource", m.container_resource.is_none()),
        other => {
            errs.push(FieldError::not_supported(
                &path.child("type"),
                other,
                METRIC_TYPES,
            ));
            ("", false)
        }
    };
    if expected.1 {
        errs.push(FieldError::required(
            &path.child(expected.0),
            "must populate information for the given metric source",
        ));
    }
    if present.len() != 1 {
        for t in present.iter().filter(|t| **t != expected.0) {
            errs.push(FieldError::forbidden(
                &path.child(t),
                "must populate the given metric source only",
            ));
        }
    }
    errs
}

fn validate_scaling_rules(r: &Option<HPAScalingRules>, path: &Path) -> Vec<FieldError> {
    let Some(r) = r else {
        return Vec::new();
    };
    let mut errs = Vec::new();
    if let Some(w) = r.stabilization_window_seconds {
        let p = path.child("stabilizationWindowSeconds");
        if w < 0 {
            errs.push(FieldError::invalid(
                &p,
                w,
                "must be greater than or equal to zero",
            ));
        }
        if w > 3600 {
            errs.push(FieldError::invalid(
                &p,
                w,
                "must be less than or equal to 3600",
            ));
        }
    }
    if let Some(sp) = &r.select_policy {
        if !["Disabled", "Max", "Min"].contains(&sp.as_str()) {
            errs.push(FieldError::not_supported(
                &path.child("selectPolicy"),
                sp.as_str(),
                &["Disabled", "Max", "Min"],
            ));
        }
    }
    let pp = path.child("policies");
    let policies = list(&r.policies);
    if policies.is_empty() {
        errs.push(FieldError::required(
            &pp,
            "must specify at least one Policy",
        ));
    }
    for (i, p) in policies.iter().enumerate() {
        let ip = pp.index(i);
        if p.type_ != "Pods" && p.type_ != "Percent" {
            errs.push(FieldError::invalid(
                &ip.child("type"),
                p.type_.as_str(),
                "must be either Pods or Percent",
            ));
        }
        if p.value <= 0 {
            errs.push(FieldError::invalid(
                &ip.child("value"),
                p.value,
                "must be greater than zero",
            ));
        }
        if p.period_seconds <= 0 {
            errs.push(FieldError::invalid(
                &ip.child("periodSeconds"),
                p.period_seconds,
                "must be greater than zero",
            ));
        }
        if p.period_seconds > 1800 {
            errs.push(FieldError::invalid(
                &ip.child("periodSeconds"),
                p.period_seconds,
                "must be less than or equal to 1800",
            ));
        }
    }
    errs
}

impl KindRules for HorizontalPodAutoscaler {
    fn default(&mut self) {
        let spec = self.spec.get_or_insert_with(Default::default);
        spec.min_replicas.get_or_insert(1);
        if list(&spec.metrics).is_empty() {
            spec.metrics = Some(vec![MetricSpec {
                type_: "Resource".into(),
                resource: Some(ResourceMetricSource {
                    name: "cpu".into(),
                    target: MetricTarget {
                        type_: "Utilization".into(),
                        average_utilization: Some(80),
                        ..Default::default()
                    },
                }),
                ..Default::default()
            }]);
        }
        if let Some(b) = &mut spec.behavior {
            b.scale_up = Some(scaling_rules(
                b.scale_up.take(),
                HPAScalingRules {
                    stabilization_window_seconds: Some(0),
                    select_policy: Some("Max".into()),
                    policies: Some(vec![policy("Pods", 4, 15), policy("Percent", 100, 15)]),
                    tolerance: None,
                },
            ));
            b.scale_down = Some(scaling_rules(
                b.scale_down.take(),
                HPAScalingRules {
                    stabilization_window_seconds: Some(300),
                    select_policy: Some("Max".into()),
                    policies: Some(vec![policy("Percent", 100, 15)]),
                    tolerance: None,
                },
            ));
        }
    }

    fn prepare_for_create(&mut self) {
        self.status = Some(HorizontalPodAutoscalerStatus::default());
    }

    fn prepare_for_update(&mut self, old: &Self) {
        self.status = old.status.clone();
    }

    fn prepare_for_status_update(&mut self, old: &Self) {
        self.spec = old.spec.clone();
    }

    fn validate(&self) -> Vec<FieldError> {
        let mut errs = validate_kube_finalizers(&self.metadata);
        let spec = self.spec.clone().unwrap_or_default();
        let p = Path::new("spec");
        if let Some(m) = spec.min_replicas {
            if m < 1 {
                errs.push(FieldError::invalid(
                    &p.child("minReplicas"),
                    m,
                    "must be greater than or equal to 1",
                ));
            }
        }
        if spec.max_replicas < 1 {
            errs.push(FieldError::invalid(
                &p.child("maxReplicas"),
                spec.max_replicas,
                "must be greater than 0",
            ));
        }
        if let Some(m) = spec.min_replicas {
            if spec.max_replicas < m {
                errs.push(FieldError::invalid(
                    &p.child("maxReplicas"),
                    spec.max_replicas,
                    "must be greater than or equal to `minReplicas`",
                ));
            }
        }
        let rp = p.child("scaleTargetRef");
        let r = &spec.scale_target_ref;
        if r.kind.is_empty() {
            errs.push(FieldError::required(&rp.child("kind"), ""));
        } else {
            errs.extend(msgs_invalid(
                &rp.child("kind"),
                &r.kind,
                av::is_valid_path_segment_name(&r.kind),
            ));
        }
        if r.name.is_empty() {
            errs.push(FieldError::required(&rp.child("name"), ""));
        } else {
            errs.extend(msgs_invalid(
                &rp.child("name"),
                &r.name,
                av::is_valid_path_segment_name(&r.name),
            ));
        }
        for (i, m) in list(&spec.metrics).iter().enumerate() {
            errs.extend(validate_metric_spec(m, &p.child("metrics").index(i)));
        }
        if let Some(b) = &spec.behavior {
            errs.extend(validate_scaling_rules(
                &b.scale_up,
                &p.child("behavior").child("scaleUp"),
            ));
            errs.extend(validate_scaling_rules(
                &b.scale_down,
                &p.child("behavior").child("scaleDown"),
            ));
        }
        errs
    }

    fn validate_update(&self, _old: &Self) -> Vec<FieldError> {
        self.validate()
    }

    fn validate_status_update(&self, _old: &Self) -> Vec<FieldError> {
        let mut errs = validate_kube_finalizers(&self.metadata);
        let st = self.status.clone().unwrap_or_default();
        let p = Path::new("status");
        errs.extend(nonneg(
            i64::from(st.current_replicas.unwrap_or(0)),
            &p.child("currentReplicas"),
        ));
        errs.extend(nonneg(
            i64::from(st.desired_replicas),
            &p.child("desiredReplicas"),
        ));
        errs
    }
}

// ------------------------------------------------------------------ Ingress

fn validate_ingress_backend(b: &IngressBackend, path: &Path) -> Vec<FieldError> {
    let mut errs = Vec::new();
    match (&b.service, &b.resource) {
        (Some(_), Some(_)) => errs.push(FieldError::invalid(
            path,
            "",
            "cannot set both resource and service backends",
        )),
        (None, None) => errs.push(FieldError::invalid(
            path,
            "",
            "resource or service backend is required",
        )),
        (None, Some(r)) => {
            let rp = path.child("resource");
            if r.kind.is_empty() {
                errs.push(FieldError::required(&rp.child("kind"), ""));
            }
            if r.name.is_empty() {
                errs.push(FieldError::required(&rp.child("name"), ""));
            }
            if let Some(g) = &r.api_group {
                if !g.is_empty() {
                    errs.extend(crate::util::validate_dns1123_subdomain(
                        g,
                        &rp.child("apiGroup"),
                    ));
                }
            }
        }
        (Some(svc), None) => {
            let sp = path.child("service");
            if svc.name.is_empty() {
                errs.push(FieldError::required(&sp.child("name"), ""));
            } else {
                errs.extend(msgs_invalid(
                    &sp.child("name"),
                    &svc.name,
                    av::name_is_dns1035_label(&svc.name, false),
                ));
            }
            let pp = sp.child("port");
            let port = svc.port.clone().unwrap_or_default();
            let has_name = !empty(&port.name);
            let has_num = port.number.unwrap_or(0) != 0;
            if has_name && has_num {
                errs.push(FieldError::invalid(
                    &pp,
                    "",
                    "cannot specify both port name and port number",
                ));
            } else if has_name {
                errs.extend(msgs_invalid(
                    &pp.child("name"),
                    s(&port.name),
                    av::is_valid_port_name(s(&port.name)),
                ));
            } else if has_num {
                let n = port.number.unwrap_or(0);
                for m in av::is_valid_port_num(i64::from(n)) {
                    errs.push(FieldError::invalid(&pp.child("number"), n, m));
                }
            } else {
                errs.push(FieldError::required(&pp, "port name or number is required"));
            }
        }
    }
    errs
}

fn validate_ingress_host(host: &str, path: &Path) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if av::parse_ip_sloppy(host).is_some() {
        errs.push(FieldError::invalid(
            path,
            host,
            "must be a DNS name, not an IP address",
        ));
    }
    if host.contains('*') {
        errs.extend(msgs_invalid(
            path,
            host,
            av::is_wildcard_dns1123_subdomain(host),
        ));
    } else {
        errs.extend(msgs_invalid(path, host, av::is_dns1123_subdomain(host)));
    }
    errs
}

impl KindRules for Ingress {
    fn prepare_for_create(&mut self) {
        self.status = Some(IngressStatus::default());
        self.metadata.generation = Some(1);
    }

    fn prepare_for_update(&mut self, old: &Self) {
        self.status = old.status.clone();
        self.metadata.generation = old.metadata.generation;
        if !semantic_eq(&self.spec, &old.spec) {
            self.metadata.generation = Some(old.metadata.generation.unwrap_or(0) + 1);
        }
    }

    fn prepare_for_status_update(&mut self, old: &Self) {
        self.spec = old.spec.clone();
    }

    fn validate(&self) -> Vec<FieldError> {
        let mut errs = validate_kube_finalizers(&self.metadata);
        let spec = self.spec.clone().unwrap_or_default();
        let p = Path::new("spec");
        let rules = list(&spec.rules);
        if rules.is_empty() && spec.default_backend.is_none() {
            let rendered = if spec.rules.is_none() {
                "[]networking.IngressRule(nil)"
            } else {
                "[]networking.IngressRule{}"
            };
            errs.push(invalid_go(
                &p,
                rendered,
                "either `defaultBackend` or `rules` must be specified",
            ));
        }
        if let Some(b) = &spec.default_backend {
            errs.extend(validate_ingress_backend(b, &p.child("defaultBackend")));
        }
        for (i, r) in rules.iter().enumerate() {
            let rp = p.child("rules").index(i);
            let host = s(&r.host);
            if !host.is_empty() {
                errs.extend(validate_ingress_host(host, &rp.child("host")));
            }
            if let Some(http) = &r.http {
                let hp = rp.child("http").child("paths");
                if http.paths.is_empty() {
                    errs.push(FieldError::required(&hp, ""));
                }
                for (j, path) in http.paths.iter().enumerate() {
                    let pp = hp.index(j);
                    let pt = path.path_type.as_str();
                    let pv = s(&path.path);
                    match pt {
                        "Exact" | "Prefix" => {
                            if !pv.starts_with('/') {
                                errs.push(FieldError::invalid(
                                    &pp.child("path"),
                                    pv,
                                    "must be an absolute path",
                                ));
                            }
                            if pv.contains("//") {
                                errs.push(FieldError::invalid(
                                    &pp.child("path"),
                                    pv,
                                    "must not contain '//'",
                                ));
                            }
                        }
                        "ImplementationSpecific" => {
                            if !pv.is_empty() && !pv.starts_with('/') {
                                errs.push(FieldError::invalid(
                                    &pp.child("path"),
                                    pv,
                                    "must be an absolute path",
                                ));
                            }
                        }
                        other => errs.push(FieldError::not_supported(
                            &pp.child("pathType"),
                            other,
                            &["Exact", "ImplementationSpecific", "Prefix"],
                        )),
                    }
                    errs.extend(validate_ingress_backend(
                        &path.backend,
                        &pp.child("backend"),
                    ));
                }
            }
        }
        for (i, tls) in list(&spec.tls).iter().enumerate() {
            for (j, h) in list(&tls.hosts).iter().enumerate() {
                let hp = p.child("tls").index(i).child("hosts").index(j);
                if h.contains('*') {
                    errs.extend(msgs_invalid(&hp, h, av::is_wildcard_dns1123_subdomain(h)));
                } else {
                    errs.extend(msgs_invalid(&hp, h, av::is_dns1123_subdomain(h)));
                }
            }
            if let Some(sn) = &tls.secret_name {
                if !sn.is_empty() {
                    errs.extend(msgs_invalid(
                        &p.child("tls").index(i).child("secretName"),
                        sn,
                        av::name_is_dns_subdomain(sn, false),
                    ));
                }
            }
        }
        if let Some(c) = &spec.ingress_class_name {
            errs.extend(msgs_invalid(
                &p.child("ingressClassName"),
                c,
                av::name_is_dns_subdomain(c, false),
            ));
        }
        errs
    }

    fn validate_update(&self, _old: &Self) -> Vec<FieldError> {
        self.validate()
    }

    fn validate_status_update(&self, _old: &Self) -> Vec<FieldError> {
        let mut errs = validate_kube_finalizers(&self.metadata);
        let ing = self
            .status
            .as_ref()
            .and_then(|s| s.load_balancer.as_ref())
            .map(|lb| list(&lb.ingress).to_vec())
            .unwrap_or_default();
        let p = Path::new("status").child("loadBalancer").child("ingress");
        for (i, x) in ing.iter().enumerate() {
            let ip = p.index(i);
            if !empty(&x.ip) {
                errs.extend(av::is_valid_ip(&ip.child("ip"), s(&x.ip)));
            }
            if !empty(&x.hostname) {
                errs.extend(crate::util::validate_dns1123_subdomain(
                    s(&x.hostname),
                    &ip.child("hostname"),
                ));
                if av::parse_ip_sloppy(s(&x.hostname)).is_some() {
                    errs.push(FieldError::invalid(
                        &ip.child("hostname"),
                        s(&x.hostname),
                        "must be a DNS name, not an IP address",
                    ));
                }
            }
        }
        errs
    }
}

// ------------------------------------------------------------- IngressClass

impl KindRules for IngressClass {
    fn default(&mut self) {
        if let Some(p) = self.spec.as_mut().and_then(|s| s.parameters.as_mut()) {
            if p.scope.is_none() {
                p.scope = Some("Cluster".into());
            }
        }
    }

    fn prepare_for_create(&mut self) {
        self.metadata.generation = Some(1);
    }

    fn prepare_for_update(&mut self, old: &Self) {
        self.metadata.generation = old.metadata.generation;
        if !semantic_eq(&self.spec, &old.spec) {
            self.metadata.generation = Some(old.metadata.generation.unwrap_or(0) + 1);
        }
    }

    fn validate(&self) -> Vec<FieldError> {
        let mut errs = validate_kube_finalizers(&self.metadata);
        let spec = self.spec.clone().unwrap_or_default();
        let p = Path::new("spec");
        let c = s(&spec.controller);
        if c.len() > 250 {
            errs.push(FieldError::too_long(&p.child("controller"), "", 250));
        }
        errs.extend(av::is_domain_prefixed_path(&p.child("controller"), c));
        if let Some(par) = &spec.parameters {
            let pp = p.child("parameters");
            if let Some(g) = &par.api_group {
                errs.extend(msgs_invalid(
                    &pp.child("apiGroup"),
                    g,
                    av::is_dns1123_subdomain(g),
                ));
            }
            if par.kind.is_empty() {
                errs.push(FieldError::required(&pp.child("kind"), ""));
            } else {
                errs.extend(msgs_invalid(
                    &pp.child("kind"),
                    &par.kind,
                    av::is_valid_path_segment_name(&par.kind),
                ));
            }
            if par.name.is_empty() {
                errs.push(FieldError::required(&pp.child("name"), ""));
            } else {
                errs.extend(msgs_invalid(
                    &pp.child("name"),
                    &par.name,
                    av::is_valid_path_segment_name(&par.name),
                ));
            }
            match par.scope.as_deref() {
                None => errs.push(FieldError::required(&pp.child("scope"), "")),
                Some("Cluster") => {
                    if par.namespace.is_some() {
                        errs.push(FieldError::forbidden(
                            &pp.child("namespace"),
                            "`parameters.scope` is set to 'Cluster'",
                        ));
                    }
                }
                Some("Namespace") => match &par.namespace {
                    None => errs.push(FieldError::required(
                        &pp.child("namespace"),
                        "`parameters.scope` is set to 'Namespace'",
                    )),
                    Some(ns) => errs.extend(msgs_invalid(
                        &pp.child("namespace"),
                        ns,
                        av::validate_namespace_name(ns, false),
                    )),
                },
                Some(other) => errs.push(FieldError::not_supported(
                    &pp.child("scope"),
                    other,
                    &["Cluster", "Namespace"],
                )),
            }
        }
        errs
    }

    fn validate_update(&self, old: &Self) -> Vec<FieldError> {
        let mut errs = self.validate();
        let n = self.spec.as_ref().and_then(|s| s.controller.clone());
        let o = old.spec.as_ref().and_then(|s| s.controller.clone());
        errs.extend(crate::util::immutable(
            to_json(&n.unwrap_or_default()),
            to_json(&o.unwrap_or_default()),
            &Path::new("spec").child("controller"),
        ));
        errs
    }

    fn validate_status_update(&self, _old: &Self) -> Vec<FieldError> {
        Vec::new()
    }
}

// ------------------------------------------------------------ NetworkPolicy

fn validate_np_port(port: &NetworkPolicyPort, path: &Path) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if let Some(pr) = &port.protocol {
        if !["SCTP", "TCP", "UDP"].contains(&pr.as_str()) {
            errs.push(FieldError::not_supported(
                &path.child("protocol"),
                pr.as_str(),
                &["SCTP", "TCP", "UDP"],
            ));
        }
    }
    match &port.port {
        None => {
            if port.end_port.is_some() {
                errs.push(FieldError::required(
                    &path.child("port"),
                    "must be specified when endPort is specified",
                ));
            }
        }
        Some(IntOrString::Int(p)) => {
            for m in av::is_valid_port_num(i64::from(*p)) {
                errs.push(FieldError::invalid(&path.child("port"), *p, m));
            }
            if let Some(e) = port.end_port {
                if *p > e {
                    errs.push(FieldError::invalid(
                        &path.child("endPort"),
                        e,
                        "must be greater than or equal to `port`",
                    ));
                }
                for m in av::is_valid_port_num(i64::from(e)) {
                    errs.push(FieldError::invalid(&path.child("endPort"), e, m));
                }
            }
        }
        Some(IntOrString::String(n)) => {
            if port.end_port.is_some() {
                errs.push(FieldError::invalid(
                    &path.child("endPort"),
                    port.end_port.unwrap_or(0),
                    "may not be specified when `port` is non-numeric",
                ));
            }
            errs.extend(validate_port_num_or_name(
                &IntOrString::String(n.clone()),
                &path.child("port"),
            ));
        }
    }
    errs
}

fn validate_np_peer(peer: &NetworkPolicyPeer, path: &Path) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let mut n = 0;
    if peer.pod_selector.is_some() {
        n += 1;
        errs.extend(validate_label_selector(
            &peer.pod_selector,
            false,
            &path.child("podSelector"),
        ));
    }
    if peer.namespace_selector.is_some() {
        n += 1;
        errs.extend(validate_label_selector(
            &peer.namespace_selector,
            false,
            &path.child("namespaceSelector"),
        ));
    }
    if let Some(ip) = &peer.ip_block {
        n += 1;
        let bp = path.child("ipBlock");
        if ip.cidr.is_empty() {
            errs.push(FieldError::required(&bp.child("cidr"), ""));
        } else {
            let ce = av::is_valid_cidr(&bp.child("cidr"), &ip.cidr);
            let cidr_ok = ce.is_empty();
            errs.extend(ce);
            for (i, e) in list(&ip.except).iter().enumerate() {
                let ep = bp.child("except").index(i);
                let ee = av::is_valid_cidr(&ep, e);
                if !ee.is_empty() {
                    errs.extend(ee);
                    continue;
                }
                if cidr_ok {
                    if let (Some((cip, cbits)), Some((eip, ebits))) =
                        (av::parse_cidr_sloppy(&ip.cidr), av::parse_cidr_sloppy(e))
                    {
                        let contained = ebits >= cbits && cidr_contains(&cip, cbits, &eip);
                        if !contained {
                            errs.push(FieldError::invalid(
                                &ep,
                                e.as_str(),
                                "must be a strict subset of `cidr`",
                            ));
                        }
                    }
                }
            }
        }
    }
    if n == 0 {
        errs.push(FieldError::required(path, "must specify a peer"));
    } else if n > 1 && peer.ip_block.is_some() {
        errs.push(FieldError::forbidden(
            path,
            "may not specify both ipBlock and another peer",
        ));
    }
    errs
}

fn ip_bytes(ip: &av::IpAddr) -> Vec<u8> {
    match (ip.to_v4(), ip) {
        (Some(v4), _) => v4.to_vec(),
        (None, av::IpAddr::V6(b)) => b.to_vec(),
        (None, av::IpAddr::V4(a)) => a.to_vec(),
    }
}

fn cidr_contains(net: &av::IpAddr, bits: u32, ip: &av::IpAddr) -> bool {
    let a = ip_bytes(net);
    let b = ip_bytes(ip);
    if a.len() != b.len() {
        return false;
    }
    let full = (bits / 8) as usize;
    if a[..full.min(a.len())] != b[..full.min(b.len())] {
        return false;
    }
    let rem = bits % 8;
    if rem == 0 || full >= a.len() {
        return true;
    }
    let mask = 0xffu8 << (8 - rem);
    a[full] & mask == b[full] & mask
}

impl KindRules for NetworkPolicy {
    fn default(&mut self) {
        let spec = self.spec.get_or_insert_with(Default::default);
        for r in spec.ingress.iter_mut().flatten() {
            for p in r.ports.iter_mut().flatten() {
                if p.protocol.is_none() {
                    p.protocol = Some("TCP".into());
                }
            }
        }
        for r in spec.egress.iter_mut().flatten() {
            for p in r.ports.iter_mut().flatten() {
                if p.protocol.is_none() {
                    p.protocol = Some("TCP".into());
                }
            }
        }
        if list(&spec.policy_types).is_empty() {
            let mut types = vec!["Ingress".to_string()];
            if !list(&spec.egress).is_empty() {
                types.push("Egress".into());
            }
            spec.policy_types = Some(types);
        }
    }

    fn prepare_for_create(&mut self) {
        self.metadata.generation = Some(1);
    }

    fn prepare_for_update(&mut self, old: &Self) {
        self.metadata.generation = old.metadata.generation;
        if !semantic_eq(&self.spec, &old.spec) {
            self.metadata.generation = Some(old.metadata.generation.unwrap_or(0) + 1);
        }
    }

    fn validate(&self) -> Vec<FieldError> {
        let mut errs = validate_kube_finalizers(&self.metadata);
        let spec = self.spec.clone().unwrap_or_default();
        let p = Path::new("spec");
        errs.extend(validate_label_selector(
            &spec.pod_selector,
            false,
            &p.child("podSelector"),
        ));
        for (i, r) in list(&spec.ingress).iter().enumerate() {
            let rp = p.child("ingress").index(i);
            for (j, port) in list(&r.ports).iter().enumerate() {
                errs.extend(validate_np_port(port, &rp.child("ports").index(j)));
            }
            for (j, peer) in list(&r.from).iter().enumerate() {
                errs.extend(validate_np_peer(peer, &rp.child("from").index(j)));
            }
        }
        for (i, r) in list(&spec.egress).iter().enumerate() {
            let rp = p.child("egress").index(i);
            for (j, port) in list(&r.ports).iter().enumerate() {
                errs.extend(validate_np_port(port, &rp.child("ports").index(j)));
            }
            for (j, peer) in list(&r.to).iter().enumerate() {
                errs.extend(validate_np_peer(peer, &rp.child("to").index(j)));
            }
        }
        let types = list(&spec.policy_types);
        for (i, t) in types.iter().enumerate() {
            if t != "Ingress" && t != "Egress" {
                errs.push(FieldError::not_supported(
                    &p.child("policyTypes").index(i),
                    t.as_str(),
                    &["Egress", "Ingress"],
                ));
            }
        }
        if types.len() > 2 {
            errs.push(invalid_go(
                &p.child("policyTypes"),
                &crate::util::go_str_slice(&spec.policy_types)
                    .replace("[]string", "[]networking.PolicyType"),
                "may not specify more than two policyTypes",
            ));
        }
        errs
    }

    fn validate_update(&self, _old: &Self) -> Vec<FieldError> {
        self.validate()
    }

    fn validate_status_update(&self, _old: &Self) -> Vec<FieldError> {
        Vec::new()
    }
}

// ------------------------------------------------------------- StorageClass

impl KindRules for StorageClass {
    fn default(&mut self) {
        if self.reclaim_policy.is_none() {
            self.reclaim_policy = Some("Delete".into());
        }
        if self.volume_binding_mode.is_none() {
            self.volume_binding_mode = Some("Immediate".into());
        }
    }

    fn validate(&self) -> Vec<FieldError> {
        let mut errs = validate_kube_finalizers(&self.metadata);
        let pp = Path::new("provisioner");
        if self.provisioner.is_empty() {
            errs.push(FieldError::required(&pp, ""));
        } else {
            errs.extend(validate_qualified_name(
                &self.provisioner.to_lowercase(),
                &pp,
            ));
        }
        let params = Path::new("parameters");
        if let Some(m) = &self.parameters {
            if m.len() > 512 {
                errs.push(FieldError::too_long(&params, "", 512));
            } else {
                let mut total = 0usize;
                for (k, v) in m {
                    if k.is_empty() {
                        errs.push(FieldError::invalid(&params, "", "field can not be empty."));
                    }
                    total += k.len() + v.len();
                }
                if total > 256 * 1024 {
                    errs.push(FieldError::too_long(&params, "", 256 * 1024));
                }
            }
        }
        if let Some(rp) = &self.reclaim_policy {
            if !rp.is_empty() && rp != "Delete" && rp != "Retain" {
                errs.push(FieldError::not_supported(
                    &Path::new("reclaimPolicy"),
                    rp.as_str(),
                    &["Delete", "Retain"],
                ));
            }
        }
        match &self.volume_binding_mode {
            None => errs.push(FieldError::required(&Path::new("volumeBindingMode"), "")),
            Some(m) if m != "Immediate" && m != "WaitForFirstConsumer" => {
                errs.push(FieldError::not_supported(
                    &Path::new("volumeBindingMode"),
                    m.as_str(),
                    &["Immediate", "WaitForFirstConsumer"],
                ))
            }
            _ => {}
        }
        let tp = Path::new("allowedTopologies");
        for (i, term) in list(&self.allowed_topologies).iter().enumerate() {
            let ip = tp.index(i);
            let exprs = list(&term.match_label_expressions);
            if exprs.is_empty() {
                errs.push(FieldError::required(
                    &ip.child("matchLabelExpressions"),
                    "must contain at least one key/value pair",
                ));
            }
            let mut keys = BTreeSet::new();
            for (j, e) in exprs.iter().enumerate() {
                let ep = ip.child("matchLabelExpressions").index(j);
                if e.values.is_empty() {
                    errs.push(FieldError::required(&ep.child("values"), ""));
                }
                let mut seen = BTreeSet::new();
                for (k, v) in e.values.iter().enumerate() {
                    if !seen.insert(v) {
                        errs.push(FieldError::duplicate(
                            &ep.child("values").index(k),
                            v.as_str(),
                        ));
                    }
                }
                errs.extend(crate::util::validate_label_name(&e.key, &ep.child("key")));
                if !keys.insert(e.key.clone()) {
                    errs.push(FieldError::duplicate(&ep.child("key"), e.key.as_str()));
                }
            }
        }
        errs
    }

    fn validate_update(&self, old: &Self) -> Vec<FieldError> {
        let mut errs = validate_kube_finalizers(&self.metadata);
        if !semantic_eq(&self.parameters, &old.parameters) {
            errs.push(FieldError::forbidden(
                &Path::new("parameters"),
                "updates to parameters are forbidden.",
            ));
        }
        if self.provisioner != old.provisioner {
            errs.push(FieldError::forbidden(
                &Path::new("provisioner"),
                "updates to provisioner are forbidden.",
            ));
        }
        if s(&self.reclaim_policy) != s(&old.reclaim_policy) {
            errs.push(FieldError::forbidden(
                &Path::new("reclaimPolicy"),
                "updates to reclaimPolicy are forbidden.",
            ));
        }
        errs.extend(crate::util::immutable(
            to_json(&self.volume_binding_mode),
            to_json(&old.volume_binding_mode),
            &Path::new("volumeBindingMode"),
        ));
        errs
    }

    fn validate_status_update(&self, _old: &Self) -> Vec<FieldError> {
        Vec::new()
    }
}

// ------------------------------------------------------------ PriorityClass

/// Highest priority a user-defined PriorityClass may have.
pub const HIGHEST_USER_DEFINABLE_PRIORITY: i32 = 1_000_000_000;

/// The built-in PriorityClasses: name, value and description.
pub const SYSTEM_PRIORITY_CLASSES: &[(&str, i32, &str)] = &[
    (
        "system-node-critical",
        2_000_001_000,
        "Used for system critical pods that must not be moved from their current node.",
    ),
    (
        "system-cluster-critical",
        2_000_000_000,
        "Used for system critical pods that must run in the cluster, but can be moved to another node if necessary.",
    ),
];

fn validate_preemption_policy(policy: Option<&String>, path: &Path) -> Vec<FieldError> {
    match policy.map(String::as_str) {
        None | Some("PreemptLowerPriority") | Some("Never") => Vec::new(),
        Some(other) => vec![FieldError::not_supported(
            path,
            other,
            &["Never", "PreemptLowerPriority"],
        )],
    }
}

impl KindRules for PriorityClass {
    fn default(&mut self) {
        if self.preemption_policy.is_none() {
            self.preemption_policy = Some("PreemptLowerPriority".into());
        }
    }

    fn validate(&self) -> Vec<FieldError> {
        let mut errs = validate_kube_finalizers(&self.metadata);
        let name = s(&self.metadata.name);
        if name.starts_with("system-") {
            let known = SYSTEM_PRIORITY_CLASSES.iter().find(|(n, _, _)| *n == name);
            let problem = match known {
                None => Some(format!("{name} is not a known system priority class")),
                Some((_, value, _)) if *value != self.value => {
                    Some(format!("value of {name} PriorityClass must be {value}"))
                }
                Some(_) if self.global_default == Some(true) => Some(format!(
                    "globalDefault of {name} PriorityClass must be false"
                )),
                Some(_) => None,
            };
            if let Some(problem) = problem {
                errs.push(FieldError::forbidden(
                    &Path::new("metadata").child("name"),
                    format!(
                        "priority class names with 'system-' prefix are reserved for system use only. error: {problem}"
                    ),
                ));
            }
        } else if self.value > HIGHEST_USER_DEFINABLE_PRIORITY {
            errs.push(FieldError::forbidden(
                &Path::new("value"),
                format!(
                    "maximum allowed value of a user defined priority is {HIGHEST_USER_DEFINABLE_PRIORITY}"
                ),
            ));
        }
        errs.extend(validate_preemption_policy(
            self.preemption_policy.as_ref(),
            &Path::new("preemptionPolicy"),
        ));
        errs
    }

    fn validate_update(&self, old: &Self) -> Vec<FieldError> {
        let mut errs = self.validate();
        errs.extend(crate::util::immutable(
            to_json(&self.value),
            to_json(&old.value),
            &Path::new("value"),
        ));
        errs.extend(crate::util::immutable(
            to_json(&self.preemption_policy),
            to_json(&old.preemption_policy),
            &Path::new("preemptionPolicy"),
        ));
        errs
    }

    fn validate_status_update(&self, _old: &Self) -> Vec<FieldError> {
        Vec::new()
    }
}
