//! Service: defaulting (`SetDefaults_Service`), the service strategy and
//! REST preparation (status reset, clusterIP/clusterIPs normalization,
//! patching of allocated values, dropping type-dependent fields) and
//! validation (types, ports, cluster IPs and IP families, node ports,
//! session affinity, traffic policies, load balancer fields and status).

use std::collections::BTreeSet;

use apimachinery::validation as av;
use apimachinery::{ErrorKind, FieldError, Path};
use k8s_openapi::api::core::v1::{
    ClientIPConfig, LoadBalancerStatus, Service, ServiceSpec, ServiceStatus, SessionAffinityConfig,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::Value;

use crate::core::podspec::validate_port_num_or_name;
use crate::util::{
    empty, go_err, go_intstr, go_str_slice, invalid_go, list, s, validate_dns1123_label,
    validate_dns1123_subdomain, validate_labels, validate_qualified_name,
};
use crate::KindRules;

/// Default ClientIP session affinity timeout (3 hours).
pub const DEFAULT_CLIENT_IP_TIMEOUT_SECONDS: i32 = 10800;
/// Maximum ClientIP session affinity timeout (1 day).
pub const MAX_CLIENT_IP_TIMEOUT_SECONDS: i32 = 86400;

fn spec_type(spec: &ServiceSpec) -> &str {
    s(&spec.type_)
}

/// Upstream `ExternallyAccessible`.
pub fn externally_accessible(spec: &ServiceSpec) -> bool {
    let t = spec_type(spec);
    t == "LoadBalancer"
        || t == "NodePort"
        || (t == "ClusterIP" && !list(&spec.external_ips).is_empty())
}

/// Upstream `NeedsHealthCheck`.
pub fn needs_health_check(spec: &ServiceSpec) -> bool {
    spec_type(spec) == "LoadBalancer" && s(&spec.external_traffic_policy) == "Local"
}

fn needs_cluster_ip(spec: &ServiceSpec) -> bool {
    spec_type(spec) != "ExternalName"
}

fn needs_node_port(spec: &ServiceSpec) -> bool {
    let t = spec_type(spec);
    t == "NodePort"
        || (t == "LoadBalancer" && spec.allocate_load_balancer_node_ports.unwrap_or(false))
}

fn is_headless(spec: &ServiceSpec) -> bool {
    let ips = list(&spec.cluster_ips);
    ips.len() == 1 && ips[0] == "None"
}

impl KindRules for Service {
    fn default(&mut self) {
        let spec = self.spec.get_or_insert_with(Default::default);
        if empty(&spec.session_affinity) {
            spec.session_affinity = Some("None".into());
        }
        if s(&spec.session_affinity) == "None" {
            spec.session_affinity_config = None;
        }
        if s(&spec.session_affinity) == "ClientIP" {
            let has_timeout = spec
                .session_affinity_config
                .as_ref()
                .and_then(|c| c.client_ip.as_ref())
                .and_then(|c| c.timeout_seconds)
                .is_some();
            if !has_timeout {
                spec.session_affinity_config = Some(SessionAffinityConfig {
                    client_ip: Some(ClientIPConfig {
                        timeout_seconds: Some(DEFAULT_CLIENT_IP_TIMEOUT_SECONDS),
                    }),
                });
            }
        }
        if empty(&spec.type_) {
            spec.type_ = Some("ClusterIP".into());
        }
        for p in spec.ports.iter_mut().flatten() {
            if empty(&p.protocol) {
                p.protocol = Some("TCP".into());
            }
            let unset = match &p.target_port {
                None => true,
                Some(IntOrString::Int(0)) => true,
                Some(IntOrString::String(v)) => v.is_empty(),
                _ => false,
            };
            if unset {
                p.target_port = Some(IntOrString::Int(p.port));
            }
        }
        if externally_accessible(spec) && empty(&spec.external_traffic_policy) {
            spec.external_traffic_policy = Some("Cluster".into());
        }
        let t = spec_type(spec).to_string();
        if spec.internal_traffic_policy.is_none()
            && (t == "NodePort" || t == "LoadBalancer" || t == "ClusterIP")
        {
            spec.internal_traffic_policy = Some("Cluster".into());
        }
        if t == "LoadBalancer" {
            spec.allocate_load_balancer_node_ports.get_or_insert(true);
            if let Some(st) = &mut self.status {
                for ing in st
                    .load_balancer
                    .iter_mut()
                    .flat_map(|lb| lb.ingress.iter_mut().flatten())
                {
                    if !empty(&ing.ip) && ing.ip_mode.is_none() {
                        ing.ip_mode = Some("VIP".into());
                    }
                }
            }
        }
    }

    fn prepare_for_create(&mut self) {
        self.status = Some(ServiceStatus {
            load_balancer: Some(LoadBalancerStatus::default()),
            conditions: None,
        });
        if let Some(spec) = &mut self.spec {
            // REST beginCreate: an old client set only the singular field.
            if !empty(&spec.cluster_ip) && list(&spec.cluster_ips).is_empty() {
                spec.cluster_ips = Some(vec![s(&spec.cluster_ip).to_string()]);
            }
        }
    }

    fn prepare_for_update(&mut self, old: &Self) {
        self.status = old.status.clone();
        let ospec = old.spec.clone().unwrap_or_default();
        let spec = self.spec.get_or_insert_with(Default::default);
        patch_allocated_values(spec, &ospec);
        normalize_cluster_ips_update(spec, &ospec);
        drop_type_dependent_fields(spec, &ospec);
        if spec_type(spec) != "LoadBalancer" {
            if let Some(st) = &mut self.status {
                st.load_balancer = Some(LoadBalancerStatus::default());
            }
        }
    }

    fn prepare_for_status_update(&mut self, old: &Self) {
        self.spec = old.spec.clone();
    }

    fn validate(&self) -> Vec<FieldError> {
        validate_service(self)
    }

    fn validate_update(&self, old: &Self) -> Vec<FieldError> {
        let spec = self.spec.clone().unwrap_or_default();
        let ospec = old.spec.clone().unwrap_or_default();
        let mut errs = validate_upgrade_downgrade_cluster_ips(&ospec, &spec);
        errs.extend(validate_upgrade_downgrade_ip_families(&ospec, &spec));
        errs.extend(validate_load_balancer_class(Some(&ospec), &spec));
        if needs_health_check(&ospec)
            && needs_health_check(&spec)
            && spec.health_check_node_port != ospec.health_check_node_port
        {
            errs.push(FieldError::forbidden(
                &Path::new("spec").child("healthCheckNodePort"),
                "field is immutable",
            ));
        }
        errs.extend(validate_service(self));
        errs
    }

    fn validate_status_update(&self, _old: &Self) -> Vec<FieldError> {
        let spec = self.spec.clone().unwrap_or_default();
        let lb = self
            .status
            .as_ref()
            .and_then(|st| st.load_balancer.clone())
            .unwrap_or_default();
        validate_load_balancer_status(&lb, &Path::new("status").child("loadBalancer"), &spec)
    }
}

fn patch_allocated_values(spec: &mut ServiceSpec, old: &ServiceSpec) {
    if needs_cluster_ip(old) && needs_cluster_ip(spec) {
        if empty(&spec.cluster_ip) {
            spec.cluster_ip = old.cluster_ip.clone();
        }
        if list(&spec.cluster_ips).is_empty() && !list(&old.cluster_ips).is_empty() {
            spec.cluster_ips = old.cluster_ips.clone();
        }
    }
    if needs_node_port(old) && needs_node_port(spec) {
        let used_by = |sp: &ServiceSpec| -> BTreeSet<i32> {
            list(&sp.ports)
                .iter()
                .filter_map(|p| p.node_port)
                .filter(|n| *n != 0)
                .collect()
        };
        let used: BTreeSet<i32> = used_by(old).intersection(&used_by(spec)).cloned().collect();
        let by_name: std::collections::BTreeMap<String, i32> = list(&old.ports)
            .iter()
            .map(|p| (s(&p.name).to_string(), p.node_port.unwrap_or(0)))
            .collect();
        for p in spec.ports.iter_mut().flatten() {
            if p.node_port.unwrap_or(0) == 0 {
                let old_val = by_name.get(s(&p.name)).copied().unwrap_or(0);
                if !used.contains(&old_val) && old_val != 0 {
                    p.node_port = Some(old_val);
                }
            }
        }
    }
    if needs_health_check(old)
        && needs_health_check(spec)
        && spec.health_check_node_port.unwrap_or(0) == 0
    {
        spec.health_check_node_port = old.health_check_node_port;
    }
}

fn normalize_cluster_ips_update(spec: &mut ServiceSpec, old: &ServiceSpec) {
    if !list(&old.cluster_ips).is_empty()
        && list(&spec.cluster_ips).is_empty()
        && s(&old.cluster_ip) == s(&spec.cluster_ip)
    {
        spec.cluster_ips = old.cluster_ips.clone();
    }
    if s(&old.cluster_ip) != s(&spec.cluster_ip) {
        if !empty(&old.cluster_ip) && empty(&spec.cluster_ip) {
            let new_ips = list(&spec.cluster_ips);
            if !new_ips.is_empty() && list(&old.cluster_ips).first() == new_ips.first() {
                spec.cluster_ips = None;
            }
            return;
        }
        if empty(&old.cluster_ip) && !empty(&spec.cluster_ip) {
            if list(&spec.cluster_ips).is_empty() {
                spec.cluster_ips = Some(vec![s(&spec.cluster_ip).to_string()]);
            }
            return;
        }
        let ip = s(&spec.cluster_ip).to_string();
        if let Some(ips) = &mut spec.cluster_ips {
            if let Some(first) = ips.first_mut() {
                if *first != ip {
                    *first = ip;
                }
            }
        }
    }
}

fn drop_type_dependent_fields(spec: &mut ServiceSpec, old: &ServiceSpec) {
    if needs_cluster_ip(old) && !needs_cluster_ip(spec) {
        if s(&old.cluster_ip) == s(&spec.cluster_ip)
            && list(&old.cluster_ips) == list(&spec.cluster_ips)
        {
            spec.cluster_ip = None;
            spec.cluster_ips = None;
        }
        if list(&old.ip_families) == list(&spec.ip_families) {
            spec.ip_families = None;
        }
        if old.ip_family_policy == spec.ip_family_policy {
            spec.ip_family_policy = None;
        }
    }
    let node_ports = |sp: &ServiceSpec| -> Vec<i32> {
        list(&sp.ports)
            .iter()
            .map(|p| p.node_port.unwrap_or(0))
            .collect()
    };
    if needs_node_port(old) && !needs_node_port(spec) && node_ports(old) == node_ports(spec) {
        for p in spec.ports.iter_mut().flatten() {
            p.node_port = None;
        }
    }
    if needs_health_check(old)
        && !needs_health_check(spec)
        && old.health_check_node_port == spec.health_check_node_port
    {
        spec.health_check_node_port = None;
    }
    if spec_type(old) == "LoadBalancer" && spec_type(spec) != "LoadBalancer" {
        if let (Some(a), Some(b)) = (
            old.allocate_load_balancer_node_ports,
            spec.allocate_load_balancer_node_ports,
        ) {
            if a == b {
                spec.allocate_load_balancer_node_ports = None;
            }
        }
    }
    if spec_type(old) == "LoadBalancer"
        && spec_type(spec) != "LoadBalancer"
        && old.load_balancer_class == spec.load_balancer_class
    {
        spec.load_balancer_class = None;
    }
    if externally_accessible(old)
        && !externally_accessible(spec)
        && old.external_traffic_policy == spec.external_traffic_policy
    {
        spec.external_traffic_policy = None;
    }
}

/// Initializes `ipFamilyPolicy` and `ipFamilies` on create for a
/// single-stack cluster of the given primary family (`IPv4` or `IPv6`), as
/// the service REST storage does before allocating IPs.
pub fn init_ip_family_fields(svc: &mut Service, cluster_family: &str) {
    let Some(spec) = &mut svc.spec else {
        return;
    };
    if !needs_cluster_ip(spec) {
        return;
    }
    if spec.ip_family_policy.is_none() {
        spec.ip_family_policy = Some("SingleStack".into());
    }
    if list(&spec.ip_families).is_empty() {
        let fam = list(&spec.cluster_ips)
            .first()
            .filter(|ip| ip.as_str() != "None")
            .and_then(|ip| av::parse_ip_sloppy(ip))
            .map(|ip| if ip.to_v4().is_some() { "IPv4" } else { "IPv6" })
            .unwrap_or(cluster_family);
        spec.ip_families = Some(vec![fam.to_string()]);
    }
}

/// Renders a service port key as upstream's duplicate error does.
fn go_service_port_key(protocol: &str, port: i32) -> String {
    format!(
        "core.ServicePort{{Name:\"\", Protocol:{}, AppProtocol:(*string)(nil), Port:{port}, TargetPort:{}, NodePort:0}}",
        apimachinery::gofmt::quote(protocol),
        go_intstr(&IntOrString::Int(0))
    )
}

fn go_ip_families(v: &Option<Vec<String>>) -> String {
    match v {
        None => "[]core.IPFamily(nil)".into(),
        Some(v) => {
            let items: Vec<String> = v.iter().map(|x| apimachinery::gofmt::quote(x)).collect();
            format!("[]core.IPFamily{{{}}}", items.join(", "))
        }
    }
}

fn opt_str_value(v: &Option<String>) -> Value {
    v.as_ref()
        .map(|x| Value::from(x.as_str()))
        .unwrap_or(Value::Null)
}

/// Upstream `ValidateNonSpecialIP`.
pub fn validate_non_special_ip(ip: &str, path: &Path) -> Vec<FieldError> {
    let Some(parsed) = av::parse_ip_sloppy(ip) else {
        return vec![FieldError::invalid(path, ip, "must be a valid IP address")];
    };
    let mut errs = Vec::new();
    let (unspecified, loopback, ll_unicast, ll_multicast) = match parsed.to_v4() {
        Some(a) => (
            a == [0, 0, 0, 0],
            a[0] == 127,
            a[0] == 169 && a[1] == 254,
            a[0] == 224 && a[1] == 0 && a[2] == 0,
        ),
        None => {
            let b = match parsed {
                av::IpAddr::V6(b) => b,
                av::IpAddr::V4(_) => [0; 16],
            };
            let zero = b.iter().all(|x| *x == 0);
            let one = b[..15].iter().all(|x| *x == 0) && b[15] == 1;
            (
                zero,
                one,
                b[0] == 0xfe && (b[1] & 0xc0) == 0x80,
                b[0] == 0xff && (b[1] & 0x0f) == 0x02,
            )
        }
    };
    if unspecified {
        errs.push(FieldError::invalid(
            path,
            ip,
            format!("may not be unspecified ({ip})"),
        ));
    }
    if loopback {
        errs.push(FieldError::invalid(
            path,
            ip,
            "may not be in the loopback range (127.0.0.0/8, ::1/128)",
        ));
    }
    if ll_unicast {
        errs.push(FieldError::invalid(
            path,
            ip,
            "may not be in the link-local range (169.254.0.0/16, fe80::/10)",
        ));
    }
    if ll_multicast {
        errs.push(FieldError::invalid(
            path,
            ip,
            "may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)",
        ));
    }
    errs
}

fn is_ipv6_string(ip: &str) -> bool {
    av::parse_ip_sloppy(ip).is_some_and(|p| p.to_v4().is_none())
}

fn validate_cluster_ips_related(spec: &ServiceSpec) -> Vec<FieldError> {
    if spec_type(spec) == "ExternalName" {
        return Vec::new();
    }
    let mut errs = Vec::new();
    let sp = Path::new("spec");
    let cips_path = sp.child("clusterIPs");
    let fam_path = sp.child("ipFamilies");
    let ips = list(&spec.cluster_ips);
    if !empty(&spec.cluster_ip) {
        if ips.is_empty() {
            errs.push(FieldError::required(&cips_path, ""));
        } else if ips[0] != s(&spec.cluster_ip) {
            errs.push(invalid_go(
                &cips_path,
                &go_str_slice(&spec.cluster_ips),
                "first value must match `clusterIP`",
            ));
        }
    } else if !ips.is_empty() {
        errs.push(invalid_go(
            &cips_path,
            &go_str_slice(&spec.cluster_ips),
            "must be empty when `clusterIP` is not specified",
        ));
    }
    let mut seen = BTreeSet::new();
    for (i, f) in list(&spec.ip_families).iter().enumerate() {
        if f != "IPv4" && f != "IPv6" {
            errs.push(FieldError::not_supported(
                &fam_path.index(i),
                f.as_str(),
                &["IPv4", "IPv6"],
            ));
        }
        if !seen.insert(f.clone()) {
            errs.push(FieldError::duplicate(&fam_path.index(i), f.as_str()));
        }
    }
    if let Some(p) = &spec.ip_family_policy {
        if !["PreferDualStack", "RequireDualStack", "SingleStack"].contains(&p.as_str()) {
            errs.push(FieldError::not_supported(
                &sp.child("ipFamilyPolicy"),
                p.as_str(),
                &["PreferDualStack", "RequireDualStack", "SingleStack"],
            ));
        }
    }
    let mut invalid = false;
    for (i, ip) in ips.iter().enumerate() {
        if i == 0 && ip == "None" {
            if ips.len() > 1 {
                invalid = true;
                errs.push(invalid_go(
                    &cips_path,
                    &go_str_slice(&spec.cluster_ips),
                    "'None' must be the first and only value",
                ));
            }
            continue;
        }
        let e = av::is_valid_ip(&cips_path.index(i), ip);
        invalid = invalid || !e.is_empty();
        errs.extend(e);
    }
    if ips.len() > 2 {
        errs.push(invalid_go(
            &cips_path,
            &go_str_slice(&spec.cluster_ips),
            "may only hold up to 2 values",
        ));
    }
    if invalid {
        return errs;
    }
    if ips.len() > 1 {
        let v4 = ips.iter().any(|ip| !is_ipv6_string(ip));
        let v6 = ips.iter().any(|ip| is_ipv6_string(ip));
        if !(v4 && v6) {
            errs.push(invalid_go(
                &cips_path,
                &go_str_slice(&spec.cluster_ips),
                "may specify no more than one IP for each IP family",
            ));
        }
    }
    let fams = list(&spec.ip_families);
    if !is_headless(spec) && !ips.is_empty() && !fams.is_empty() {
        for (i, ip) in ips.iter().enumerate() {
            if i > fams.len() - 1 {
                break;
            }
            if fams[i] == "IPv4" && is_ipv6_string(ip) {
                errs.push(FieldError::invalid(
                    &cips_path.index(i),
                    ip.as_str(),
                    format!("expected an IPv4 value as indicated by `ipFamilies[{i}]`"),
                ));
            }
            if fams[i] == "IPv6" && !is_ipv6_string(ip) {
                errs.push(FieldError::invalid(
                    &cips_path.index(i),
                    ip.as_str(),
                    format!("expected an IPv6 value as indicated by `ipFamilies[{i}]`"),
                ));
            }
        }
    }
    errs
}

fn validate_load_balancer_class(old: Option<&ServiceSpec>, spec: &ServiceSpec) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let p = Path::new("spec").child("loadBalancerClass");
    if let Some(old) = old {
        if spec_type(old) == "LoadBalancer"
            && spec_type(spec) == "LoadBalancer"
            && old.load_balancer_class != spec.load_balancer_class
        {
            errs.push(FieldError::invalid(
                &p,
                opt_str_value(&spec.load_balancer_class),
                "may not change once set",
            ));
        }
    }
    if spec_type(spec) == "LoadBalancer" {
        if let Some(c) = &spec.load_balancer_class {
            errs.extend(validate_qualified_name(c, &p));
        }
    } else if spec.load_balancer_class.is_some() {
        errs.push(FieldError::forbidden(
            &p,
            "may only be used when `type` is 'LoadBalancer'",
        ));
    }
    errs
}

/// Upstream `ValidateService` without the generic ObjectMeta checks.
pub fn validate_service(svc: &Service) -> Vec<FieldError> {
    let spec = svc.spec.clone().unwrap_or_default();
    let mut errs = crate::util::validate_kube_finalizers(&svc.metadata);
    let mp = Path::new("metadata");
    let sp = Path::new("spec");
    let empty_map = std::collections::BTreeMap::new();
    let ann = svc.metadata.annotations.as_ref().unwrap_or(&empty_map);
    if let (Some(mode), Some(hints)) = (
        ann.get("service.kubernetes.io/topology-mode"),
        ann.get("service.kubernetes.io/topology-aware-hints"),
    ) {
        if mode != hints {
            errs.push(FieldError::invalid(
                &mp.child("annotations").key("service.kubernetes.io/topology-mode"),
                mode.as_str(),
                "must match annotations[service.kubernetes.io/topology-aware-hints] when both are specified",
            ));
        }
    }
    let ty = spec_type(&spec);
    let headless = is_headless(&spec);
    let ports = list(&spec.ports);
    if ports.is_empty() && !headless && ty != "ExternalName" {
        errs.push(FieldError::required(&sp.child("ports"), ""));
    }
    match ty {
        "LoadBalancer" if headless => errs.push(FieldError::invalid(
            &sp.child("clusterIPs").index(0),
            "None",
            "may not be set to 'None' for LoadBalancer services",
        )),
        "NodePort" if headless => errs.push(FieldError::invalid(
            &sp.child("clusterIPs").index(0),
            "None",
            "may not be set to 'None' for NodePort services",
        )),
        "ExternalName" => {
            if !list(&spec.cluster_ips).is_empty() {
                errs.push(FieldError::forbidden(
                    &sp.child("clusterIPs"),
                    "may not be set for ExternalName services",
                ));
            }
            if !list(&spec.ip_families).is_empty() {
                errs.push(FieldError::forbidden(
                    &sp.child("ipFamilies"),
                    "may not be set for ExternalName services",
                ));
            }
            if spec.ip_family_policy.is_some() {
                errs.push(FieldError::forbidden(
                    &sp.child("ipFamilyPolicy"),
                    "may not be set for ExternalName services",
                ));
            }
            let cname = s(&spec.external_name);
            let cname = cname.strip_suffix('.').unwrap_or(cname);
            if !cname.is_empty() {
                errs.extend(validate_dns1123_subdomain(cname, &sp.child("externalName")));
            } else {
                errs.push(FieldError::required(&sp.child("externalName"), ""));
            }
        }
        _ => {}
    }
    let mut names = BTreeSet::new();
    for (i, port) in ports.iter().enumerate() {
        let pp = sp.child("ports").index(i);
        let name = s(&port.name);
        if ports.len() > 1 && name.is_empty() {
            errs.push(FieldError::required(&pp.child("name"), ""));
        } else if !name.is_empty() {
            errs.extend(validate_dns1123_label(name, &pp.child("name")));
            if !names.insert(name.to_string()) {
                errs.push(FieldError::duplicate(&pp.child("name"), name));
            }
        }
        for m in av::is_valid_port_num(i64::from(port.port)) {
            errs.push(FieldError::invalid(&pp.child("port"), port.port, m));
        }
        match s(&port.protocol) {
            "" => errs.push(FieldError::required(&pp.child("protocol"), "")),
            "TCP" | "UDP" | "SCTP" => {}
            other => errs.push(FieldError::not_supported(
                &pp.child("protocol"),
                other,
                &["SCTP", "TCP", "UDP"],
            )),
        }
        errs.extend(validate_port_num_or_name(
            &port.target_port.clone().unwrap_or(IntOrString::Int(0)),
            &pp.child("targetPort"),
        ));
        if let Some(ap) = &port.app_protocol {
            errs.extend(validate_qualified_name(ap, &pp.child("appProtocol")));
        }
    }
    if spec.selector.is_some() {
        errs.extend(validate_labels(&spec.selector, &sp.child("selector")));
    }
    let affinity = s(&spec.session_affinity);
    match affinity {
        "" => errs.push(FieldError::required(&sp.child("sessionAffinity"), "")),
        "ClientIP" | "None" => {}
        other => errs.push(FieldError::not_supported(
            &sp.child("sessionAffinity"),
            other,
            &["ClientIP", "None"],
        )),
    }
    let sac = sp.child("sessionAffinityConfig");
    if affinity == "ClientIP" {
        match &spec.session_affinity_config {
            None => errs.push(FieldError::required(&sac, "when session affinity type is ClientIP")),
            Some(c) => match &c.client_ip {
                None => errs.push(FieldError::required(&sac.child("clientIP"), "when session affinity type is ClientIP")),
                Some(ci) => match ci.timeout_seconds {
                    None => errs.push(FieldError::required(&sac.child("clientIP").child("timeoutSeconds"), "when session affinity type is ClientIP")),
                    Some(t) if t <= 0 || t > MAX_CLIENT_IP_TIMEOUT_SECONDS => errs.push(FieldError::invalid(
                        &sac.child("clientIP").child("timeoutSeconds"),
                        t,
                        format!("must be greater than 0 and less than {MAX_CLIENT_IP_TIMEOUT_SECONDS}"),
                    )),
                    _ => {}
                },
            },
        }
    } else if affinity == "None" && spec.session_affinity_config.is_some() {
        errs.push(FieldError::forbidden(
            &sac,
            "must not be set when session affinity is None",
        ));
    }
    errs.extend(validate_cluster_ips_related(&spec));
    for (i, ip) in list(&spec.external_ips).iter().enumerate() {
        let p = sp.child("externalIPs").index(i);
        let e = av::is_valid_ip(&p, ip);
        if !e.is_empty() {
            errs.extend(e);
        } else {
            errs.extend(validate_non_special_ip(ip, &p));
        }
    }
    match ty {
        "" => errs.push(FieldError::required(&sp.child("type"), "")),
        "ClusterIP" | "ExternalName" | "LoadBalancer" | "NodePort" => {}
        other => errs.push(FieldError::not_supported(
            &sp.child("type"),
            other,
            &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"],
        )),
    }
    if ty == "ClusterIP" {
        for (i, p) in ports.iter().enumerate() {
            if p.node_port.unwrap_or(0) != 0 {
                errs.push(FieldError::forbidden(
                    &sp.child("ports").index(i).child("nodePort"),
                    "may not be used when `type` is 'ClusterIP'",
                ));
            }
        }
    }
    let mut node_ports = BTreeSet::new();
    for (i, p) in ports.iter().enumerate() {
        let np = p.node_port.unwrap_or(0);
        if np == 0 {
            continue;
        }
        if !node_ports.insert((s(&p.protocol).to_string(), np)) {
            errs.push(FieldError::duplicate(
                &sp.child("ports").index(i).child("nodePort"),
                np,
            ));
        }
    }
    let mut seen_ports = BTreeSet::new();
    for (i, p) in ports.iter().enumerate() {
        let key = (s(&p.protocol).to_string(), p.port);
        if !seen_ports.insert(key) {
            errs.push(go_err(
                ErrorKind::Duplicate,
                &sp.child("ports").index(i),
                &go_service_port_key(s(&p.protocol), p.port),
                "",
            ));
        }
    }
    let ranges = list(&spec.load_balancer_source_ranges);
    if !ranges.is_empty() {
        let fp = sp.child("LoadBalancerSourceRanges");
        if ty != "LoadBalancer" {
            errs.push(FieldError::forbidden(
                &fp,
                "may only be used when `type` is 'LoadBalancer'",
            ));
        }
        for (i, v) in ranges.iter().enumerate() {
            errs.extend(av::is_valid_cidr(&fp.index(i), v.trim()));
        }
    } else if let Some(val) = ann.get("service.beta.kubernetes.io/load-balancer-source-ranges") {
        let fp = mp
            .child("annotations")
            .key("service.beta.kubernetes.io/load-balancer-source-ranges");
        if ty != "LoadBalancer" {
            errs.push(FieldError::forbidden(
                &fp,
                "may only be used when `type` is 'LoadBalancer'",
            ));
        }
        let val = val.trim();
        if !val.is_empty() {
            for c in val.split(',') {
                errs.extend(av::is_valid_cidr(&fp, c.trim()));
            }
        }
    }
    if spec.allocate_load_balancer_node_ports.is_some() && ty != "LoadBalancer" {
        errs.push(FieldError::forbidden(
            &sp.child("allocateLoadBalancerNodePorts"),
            "may only be used when `type` is 'LoadBalancer'",
        ));
    }
    if ty == "LoadBalancer" && spec.allocate_load_balancer_node_ports.is_none() {
        errs.push(FieldError::required(
            &Path::new("allocateLoadBalancerNodePorts"),
            "",
        ));
    }
    errs.extend(validate_load_balancer_class(None, &spec));
    // External traffic policy.
    let etp = s(&spec.external_traffic_policy);
    if !externally_accessible(&spec) {
        if !etp.is_empty() {
            errs.push(FieldError::invalid(
                &sp.child("externalTrafficPolicy"),
                etp,
                "may only be set for externally-accessible services",
            ));
        }
    } else if etp.is_empty() {
        errs.push(FieldError::required(&sp.child("externalTrafficPolicy"), ""));
    } else if etp != "Cluster" && etp != "Local" {
        errs.push(FieldError::not_supported(
            &sp.child("externalTrafficPolicy"),
            etp,
            &["Cluster", "Local"],
        ));
    }
    let hc = spec.health_check_node_port.unwrap_or(0);
    if !needs_health_check(&spec) {
        if hc != 0 {
            errs.push(FieldError::invalid(&sp.child("healthCheckNodePort"), hc, "may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'"));
        }
    } else if hc != 0 {
        // Unset is fine: validation runs before the apiserver allocates the port
        // (upstream allocates first and then requires it).
        for m in av::is_valid_port_num(i64::from(hc)) {
            errs.push(FieldError::invalid(&sp.child("healthCheckNodePort"), hc, m));
        }
    }
    match &spec.internal_traffic_policy {
        None if ty == "NodePort" || ty == "LoadBalancer" || ty == "ClusterIP" => {
            errs.push(FieldError::required(&sp.child("internalTrafficPolicy"), ""));
        }
        Some(p) if p != "Cluster" && p != "Local" => {
            errs.push(FieldError::not_supported(
                &sp.child("internalTrafficPolicy"),
                p.as_str(),
                &["Cluster", "Local"],
            ));
        }
        _ => {}
    }
    if let Some(td) = &spec.traffic_distribution {
        if td != "PreferClose" {
            errs.push(FieldError::not_supported(
                &sp.child("trafficDistribution"),
                td.as_str(),
                &["PreferClose"],
            ));
        }
    }
    errs
}

fn validate_upgrade_downgrade_cluster_ips(old: &ServiceSpec, new: &ServiceSpec) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if spec_type(new) == "ExternalName" || spec_type(old) == "ExternalName" {
        return errs;
    }
    if is_headless(old) && is_headless(new) {
        return errs;
    }
    let o = list(&old.cluster_ips);
    let n = list(&new.cluster_ips);
    let p = Path::new("spec").child("clusterIPs");
    let rendered = go_str_slice(&new.cluster_ips);
    if o.len() == n.len() {
        for (i, ip) in o.iter().enumerate() {
            if *ip != n[i] {
                errs.push(invalid_go(
                    &p.index(i),
                    &rendered,
                    "may not change once set",
                ));
            }
        }
    } else if o.len() > n.len() {
        if n.is_empty() {
            errs.push(invalid_go(
                &p.index(0),
                &rendered,
                "primary clusterIP can not be unset",
            ));
        }
        if !o.is_empty() && !n.is_empty() && n[0] != o[0] {
            errs.push(invalid_go(
                &p.index(0),
                &rendered,
                "may not change once set",
            ));
        }
        if n.len() == 1 && s(&new.ip_family_policy) != "SingleStack" {
            errs.push(FieldError::invalid(
                &Path::new("spec").child("ipFamilyPolicy"),
                opt_str_value(&new.ip_family_policy),
                "must be set to 'SingleStack' when releasing the secondary clusterIP",
            ));
        }
    } else if !o.is_empty() && n[0] != o[0] {
        errs.push(invalid_go(
            &p.index(0),
            &rendered,
            "may not change once set",
        ));
    }
    errs
}

fn validate_upgrade_downgrade_ip_families(old: &ServiceSpec, new: &ServiceSpec) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if spec_type(new) == "ExternalName" || spec_type(old) == "ExternalName" {
        return errs;
    }
    if is_headless(old) != is_headless(new) || is_headless(new) {
        return errs;
    }
    let o = list(&old.ip_families);
    let n = list(&new.ip_families);
    let p = Path::new("spec").child("ipFamilies").index(0);
    if o.len() == n.len() {
        for (i, f) in o.iter().enumerate() {
            if *f != n[i] {
                errs.push(invalid_go(
                    &p,
                    &go_ip_families(&new.ip_families),
                    "may not change once set",
                ));
            }
        }
    } else if o.len() > n.len() {
        if list(&new.cluster_ips).is_empty() {
            errs.push(invalid_go(
                &p,
                &go_ip_families(&new.ip_families),
                "primary ipFamily can not be unset",
            ));
        }
        if !n.is_empty() && n[0] != o[0] {
            errs.push(invalid_go(
                &p,
                &go_str_slice(&new.cluster_ips),
                "may not change once set",
            ));
        }
        if n.len() == 1 && s(&new.ip_family_policy) != "SingleStack" {
            errs.push(FieldError::invalid(
                &Path::new("spec").child("ipFamilyPolicy"),
                opt_str_value(&new.ip_family_policy),
                "must be set to 'SingleStack' when releasing the secondary ipFamily",
            ));
        }
    } else if !o.is_empty() && !n.is_empty() && n[0] != o[0] {
        errs.push(invalid_go(
            &p,
            &go_str_slice(&new.cluster_ips),
            "may not change once set",
        ));
    }
    errs
}

/// Upstream `ValidateLoadBalancerStatus`.
pub fn validate_load_balancer_status(
    status: &LoadBalancerStatus,
    path: &Path,
    spec: &ServiceSpec,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let ip = path.child("ingress");
    let ingress = list(&status.ingress);
    if spec_type(spec) != "LoadBalancer" && !ingress.is_empty() {
        errs.push(FieldError::forbidden(
            &ip,
            "may only be used when `spec.type` is 'LoadBalancer'",
        ));
        return errs;
    }
    for (i, ing) in ingress.iter().enumerate() {
        let p = ip.index(i);
        let addr = s(&ing.ip);
        if !addr.is_empty() {
            errs.extend(av::is_valid_ip(&p.child("ip"), addr));
        }
        match &ing.ip_mode {
            None if !addr.is_empty() => errs.push(FieldError::required(
                &p.child("ipMode"),
                "must be specified when `ip` is set",
            )),
            Some(_) if addr.is_empty() => errs.push(FieldError::forbidden(
                &p.child("ipMode"),
                "may not be specified when `ip` is not set",
            )),
            Some(m) if m != "Proxy" && m != "VIP" => errs.push(FieldError::not_supported(
                &p.child("ipMode"),
                m.as_str(),
                &["Proxy", "VIP"],
            )),
            _ => {}
        }
        let host = s(&ing.hostname);
        if !host.is_empty() {
            errs.extend(validate_dns1123_subdomain(host, &p.child("hostname")));
            if av::parse_ip_sloppy(host).is_some() {
                errs.push(FieldError::invalid(
                    &p.child("hostname"),
                    host,
                    "must be a DNS name, not an IP address",
                ));
            }
        }
    }
    errs
}
