//! A container's environment as the kubelet builds it: the Service variables of
//! the pod's namespace (`{SVC}_SERVICE_HOST`, `{SVC}_SERVICE_PORT` and the docker
//! link variables, when `enableServiceLinks`), then `envFrom`, then `env` with
//! values, fieldRef, resourceFieldRef, configMapKeyRef and secretKeyRef, each
//! value expanded with `$(VAR)` over what came before. Also the command line:
//! image ENTRYPOINT/CMD against the container's command/args.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret, Service};

/// What an env source refers to that could not be resolved; the kubelet reports
/// it as `CreateContainerConfigError` with this message.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("{0}")]
pub struct EnvError(pub String);

/// Objects the environment may read, fetched by the caller.
#[derive(Default)]
pub struct EnvSources {
    /// Services of the pod's namespace (and `default`'s master service).
    pub services: Vec<Service>,
    /// ConfigMaps by name that the container refers to (absent: not found).
    pub config_maps: BTreeMap<String, ConfigMap>,
    /// Secrets by name that the container refers to.
    pub secrets: BTreeMap<String, Secret>,
}

/// Names of the ConfigMaps and Secrets a container's env refers to.
pub fn referenced_objects(c: &Container) -> (Vec<String>, Vec<String>) {
    let mut cms = Vec::new();
    let mut secrets = Vec::new();
    for from in c.env_from.iter().flatten() {
        if let Some(r) = &from.config_map_ref {
            cms.push(r.name.clone());
        }
        if let Some(r) = &from.secret_ref {
            secrets.push(r.name.clone());
        }
    }
    for e in c.env.iter().flatten() {
        let Some(from) = &e.value_from else { continue };
        if let Some(r) = &from.config_map_key_ref {
            cms.push(r.name.clone());
        }
        if let Some(r) = &from.secret_key_ref {
            secrets.push(r.name.clone());
        }
    }
    cms.sort();
    cms.dedup();
    secrets.sort();
    secrets.dedup();
    (cms, secrets)
}

/// Environment variable names as Services give them: upper case, `-` as `_`.
fn service_var_prefix(name: &str) -> String {
    name.to_uppercase().replace('-', "_")
}

/// Whether a Service feeds the variables of containers in `namespace`: the master
/// Service is visible everywhere, others only in their namespace.
pub fn feeds_env(s: &Service, namespace: &str) -> bool {
    let ns = s.metadata.namespace.as_deref().unwrap_or_default();
    ns == namespace || (ns == "default" && s.metadata.name.as_deref() == Some("kubernetes"))
}

/// The Service variables: for each Service with a cluster IP, as docker links.
pub fn service_env(services: &[Service], namespace: &str, links: bool) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut sorted: Vec<&Service> = services
        .iter()
        .filter(|s| feeds_env(s, namespace))
        .collect();
    // By name, and of two Services of one name (a `kubernetes` of the pod's own
    // namespace and the master), the namespace's first: with links it wins, as
    // upstream's, whatever order the Services came in.
    sorted.sort_by_key(|s| {
        let in_ns = s.metadata.namespace.as_deref() == Some(namespace);
        (s.metadata.name.clone(), !in_ns)
    });
    let mut seen = std::collections::BTreeSet::new();
    for svc in sorted {
        let Some(spec) = &svc.spec else { continue };
        let ip = match spec.cluster_ip.as_deref() {
            Some(ip) if !ip.is_empty() && ip != "None" => ip,
            _ => continue,
        };
        let name = svc.metadata.name.clone().unwrap_or_default();
        let master = svc.metadata.namespace.as_deref() == Some("default") && name == "kubernetes";
        if !(links || master) || !seen.insert(name.clone()) {
            continue;
        }
        let prefix = service_var_prefix(&name);
        let ports = spec.ports.clone().unwrap_or_default();
        let Some(first) = ports.first() else { continue };
        out.push((format!("{prefix}_SERVICE_HOST"), ip.to_string()));
        out.push((format!("{prefix}_SERVICE_PORT"), first.port.to_string()));
        for p in &ports {
            if let Some(n) = p.name.as_deref().filter(|n| !n.is_empty()) {
                out.push((
                    format!("{prefix}_SERVICE_PORT_{}", service_var_prefix(n)),
                    p.port.to_string(),
                ));
            }
        }
        let proto = |p: &k8s_openapi::api::core::v1::ServicePort| {
            p.protocol.clone().unwrap_or_else(|| "TCP".into())
        };
        out.push((
            format!("{prefix}_PORT"),
            format!("{}://{ip}:{}", proto(first).to_lowercase(), first.port),
        ));
        for p in &ports {
            let pr = proto(p);
            let base = format!("{prefix}_PORT_{}_{}", p.port, pr.to_uppercase());
            out.push((
                base.clone(),
                format!("{}://{ip}:{}", pr.to_lowercase(), p.port),
            ));
            out.push((format!("{base}_PROTO"), pr.to_lowercase()));
            out.push((format!("{base}_PORT"), p.port.to_string()));
            out.push((format!("{base}_ADDR"), ip.to_string()));
        }
    }
    out
}

/// Expands `$(VAR)` references against `vars`; `$$` escapes; unknown references
/// stay as written (upstream's `expansion.Expand`).
pub fn expand(input: &str, vars: &dyn Fn(&str) -> Option<String>) -> String {
    let bytes = input.as_bytes();
    let mut out = String::with_capacity(input.len());
    let mut i = 0;
    let mut last = 0;
    while i < bytes.len() {
        if bytes[i] == b'$' && i + 1 < bytes.len() {
            out.push_str(&input[last..i]);
            match bytes[i + 1] {
                b'$' => {
                    out.push('$');
                    i += 2;
                }
                b'(' => match input[i + 2..].find(')') {
                    Some(end) => {
                        let name = &input[i + 2..i + 2 + end];
                        match vars(name) {
                            Some(v) => out.push_str(&v),
                            None => out.push_str(&input[i..i + 3 + end]),
                        }
                        i += 3 + end;
                    }
                    None => {
                        out.push_str(&input[i..]);
                        i = bytes.len();
                    }
                },
                _ => {
                    out.push_str(&input[i..i + 2]);
                    i += 2;
                }
            }
            last = i;
        } else {
            i += 1;
        }
    }
    if last < input.len() {
        out.push_str(&input[last..]);
    }
    out
}

/// Value of a downward API field path of the pod.
pub fn pod_field(
    pod: &Pod,
    path: &str,
    node_name: &str,
    host_ip: &str,
) -> Result<String, EnvError> {
    let meta = &pod.metadata;
    let status = pod.status.as_ref();
    let spec = pod.spec.as_ref();
    let map_entry = |m: &Option<BTreeMap<String, String>>, key: &str| {
        m.as_ref()
            .and_then(|m| m.get(key))
            .cloned()
            .unwrap_or_default()
    };
    let v = match path {
        "metadata.name" => meta.name.clone().unwrap_or_default(),
        "metadata.namespace" => meta.namespace.clone().unwrap_or_default(),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        "metadata.labels" => format_map(meta.labels.as_ref()),
        "metadata.annotations" => format_map(meta.annotations.as_ref()),
        "spec.nodeName" => spec
            .and_then(|s| s.node_name.clone())
            .unwrap_or_else(|| node_name.to_string()),
        "spec.serviceAccountName" => spec
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_default(),
        "status.hostIP" => host_ip.to_string(),
        "status.hostIPs" => host_ip.to_string(),
        "status.podIP" => status.and_then(|s| s.pod_ip.clone()).unwrap_or_default(),
        "status.podIPs" => status
            .and_then(|s| s.pod_ips.as_ref())
            .map(|ips| {
                ips.iter()
                    .map(|i| i.ip.clone())
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default(),
        p => {
            if let Some(key) = p
                .strip_prefix("metadata.labels['")
                .and_then(|k| k.strip_suffix("']"))
            {
                map_entry(&meta.labels, key)
            } else if let Some(key) = p
                .strip_prefix("metadata.annotations['")
                .and_then(|k| k.strip_suffix("']"))
            {
                map_entry(&meta.annotations, key)
            } else {
                return Err(EnvError(format!("unsupported fieldPath: {p}")));
            }
        }
    };
    Ok(v)
}

/// Labels or annotations as the downward API writes them: `key="value"` lines,
/// sorted, values quoted as Go's `%q`.
pub fn format_map(m: Option<&BTreeMap<String, String>>) -> String {
    m.map(|m| {
        m.iter()
            .map(|(k, v)| format!("{k}={}", apimachinery::gofmt::quote(v)))
            .collect::<Vec<_>>()
            .join("\n")
    })
    .unwrap_or_default()
}

/// A container's resourceFieldRef value (`limits.cpu`, `requests.memory`, …) with
/// its divisor; limits fall back to the node's allocatable when unset.
pub fn resource_field(
    c: &Container,
    resource: &str,
    divisor: Option<&str>,
    allocatable: &BTreeMap<String, apimachinery::Quantity>,
) -> Result<String, EnvError> {
    use apimachinery::Quantity;
    let (kind, name) = resource
        .split_once('.')
        .ok_or_else(|| EnvError(format!("unsupported container resource : {resource}")))?;
    let res = c.resources.as_ref();
    let from =
        |m: Option<&BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>>| {
            m.and_then(|m| m.get(name))
                .and_then(|q| q.0.parse::<Quantity>().ok())
        };
    let q = match kind {
        "limits" => {
            from(res.and_then(|r| r.limits.as_ref())).or_else(|| allocatable.get(name).cloned())
        }
        "requests" => from(res.and_then(|r| r.requests.as_ref())).or_else(|| {
            if name == "cpu" || name == "memory" {
                Some(Quantity::new(0, apimachinery::Format::DecimalSI))
            } else {
                None
            }
        }),
        _ => None,
    }
    .ok_or_else(|| EnvError(format!("unsupported container resource : {resource}")))?;
    let divisor: Quantity = divisor
        .filter(|d| !d.is_empty())
        .unwrap_or("1")
        .parse()
        .map_err(|_| EnvError(format!("invalid divisor for {resource}")))?;
    let d = divisor.milli_value().max(1) as i128;
    let v = q.milli_value() as i128;
    // Round up, as upstream does (cpu 250m with divisor 1 is 1).
    Ok(((v + d - 1) / d).to_string())
}

/// Resolves the container's environment in upstream's order.
pub fn container_env(
    pod: &Pod,
    c: &Container,
    sources: &EnvSources,
    node_name: &str,
    host_ip: &str,
    allocatable: &BTreeMap<String, apimachinery::Quantity>,
) -> Result<Vec<(String, String)>, EnvError> {
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let links = pod
        .spec
        .as_ref()
        .and_then(|s| s.enable_service_links)
        .unwrap_or(true);
    let mut env: Vec<(String, String)> = Vec::new();
    let set = |env: &mut Vec<(String, String)>, k: String, v: String| {
        if let Some(e) = env.iter_mut().find(|(n, _)| *n == k) {
            e.1 = v;
        } else {
            env.push((k, v));
        }
    };
    for from in c.env_from.iter().flatten() {
        let prefix = from.prefix.clone().unwrap_or_default();
        if let Some(r) = &from.config_map_ref {
            match sources.config_maps.get(&r.name) {
                Some(cm) => {
                    for (k, v) in cm.data.iter().flatten() {
                        set(&mut env, format!("{prefix}{k}"), v.clone());
                    }
                }
                None if r.optional == Some(true) => {}
                None => return Err(EnvError(format!("configmap \"{}\" not found", r.name))),
            }
        }
        if let Some(r) = &from.secret_ref {
            match sources.secrets.get(&r.name) {
                Some(s) => {
                    for (k, v) in s.data.iter().flatten() {
                        set(
                            &mut env,
                            format!("{prefix}{k}"),
                            String::from_utf8_lossy(&v.0).into_owned(),
                        );
                    }
                }
                None if r.optional == Some(true) => {}
                None => return Err(EnvError(format!("secret \"{}\" not found", r.name))),
            }
        }
    }
    // Service variables sit under everything the pod names itself.
    let mut out: Vec<(String, String)> = Vec::new();
    for (k, v) in service_env(&sources.services, &namespace, links) {
        set(&mut out, k, v);
    }
    for (k, v) in env {
        set(&mut out, k, v);
    }
    for e in c.env.iter().flatten() {
        let value = if let Some(from) = &e.value_from {
            if let Some(f) = &from.field_ref {
                pod_field(pod, &f.field_path, node_name, host_ip)?
            } else if let Some(r) = &from.resource_field_ref {
                resource_field(
                    c,
                    &r.resource,
                    r.divisor.as_ref().map(|d| d.0.as_str()),
                    allocatable,
                )?
            } else if let Some(r) = &from.config_map_key_ref {
                match sources.config_maps.get(&r.name) {
                    Some(cm) => match cm.data.as_ref().and_then(|d| d.get(&r.key)) {
                        Some(v) => v.clone(),
                        None if r.optional == Some(true) => continue,
                        None => {
                            return Err(EnvError(format!(
                                "couldn't find key {} in ConfigMap {}/{}",
                                r.key, namespace, r.name
                            )))
                        }
                    },
                    None if r.optional == Some(true) => continue,
                    None => return Err(EnvError(format!("configmap \"{}\" not found", r.name))),
                }
            } else if let Some(r) = &from.secret_key_ref {
                match sources.secrets.get(&r.name) {
                    Some(s) => match s.data.as_ref().and_then(|d| d.get(&r.key)) {
                        Some(v) => String::from_utf8_lossy(&v.0).into_owned(),
                        None if r.optional == Some(true) => continue,
                        None => {
                            return Err(EnvError(format!(
                                "couldn't find key {} in Secret {}/{}",
                                r.key, namespace, r.name
                            )))
                        }
                    },
                    None if r.optional == Some(true) => continue,
                    None => return Err(EnvError(format!("secret \"{}\" not found", r.name))),
                }
            } else {
                String::new()
            }
        } else {
            let raw = e.value.clone().unwrap_or_default();
            let snapshot = out.clone();
            expand(&raw, &|name| {
                snapshot
                    .iter()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.clone())
            })
        };
        set(&mut out, e.name.clone(), value);
    }
    Ok(out)
}

/// The process arguments: the container's command/args against the image's
/// ENTRYPOINT/CMD, with `$(VAR)` expanded over the environment.
pub fn command_line(
    c: &Container,
    image_entrypoint: &[String],
    image_cmd: &[String],
    env: &[(String, String)],
) -> Vec<String> {
    let lookup = |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let exp = |v: &Vec<String>| v.iter().map(|a| expand(a, &lookup)).collect::<Vec<_>>();
    match (&c.command, &c.args) {
        (Some(cmd), args) if !cmd.is_empty() => {
            let mut out = exp(cmd);
            out.extend(args.as_ref().map(exp).unwrap_or_default());
            out
        }
        (_, Some(args)) if !args.is_empty() => {
            let mut out = image_entrypoint.to_vec();
            out.extend(exp(args));
            out
        }
        _ => {
            let mut out = image_entrypoint.to_vec();
            out.extend(image_cmd.iter().cloned());
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn vars<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |n| {
            pairs
                .iter()
                .find(|(k, _)| *k == n)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn expansion_like_upstream() {
        let v = vars(&[("A", "1"), ("B", "two")]);
        assert_eq!(expand("$(A)-$(B)", &v), "1-two");
        assert_eq!(expand("$$(A)", &v), "$(A)");
        assert_eq!(expand("$(C)", &v), "$(C)");
        assert_eq!(expand("$(A", &v), "$(A");
        assert_eq!(expand("a$b$", &v), "a$b$");
        assert_eq!(expand("plain", &v), "plain");
    }

    fn svc(ns: &str, name: &str, ip: &str, ports: serde_json::Value) -> Service {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": ns},
            "spec": {"clusterIP": ip, "ports": ports}
        }))
        .unwrap()
    }

    #[test]
    fn service_variables_as_docker_links() {
        let services = vec![
            svc(
                "web",
                "redis-primary",
                "10.43.0.11",
                json!([{"name": "redis", "port": 6379, "protocol": "TCP"}]),
            ),
            svc(
                "default",
                "kubernetes",
                "10.43.0.1",
                json!([{"name": "https", "port": 443}]),
            ),
            svc("other", "hidden", "10.43.0.12", json!([{"port": 80}])),
            svc("web", "headless", "None", json!([{"port": 80}])),
        ];
        let env: BTreeMap<_, _> = service_env(&services, "web", true).into_iter().collect();
        assert_eq!(env["REDIS_PRIMARY_SERVICE_HOST"], "10.43.0.11");
        assert_eq!(env["REDIS_PRIMARY_SERVICE_PORT"], "6379");
        assert_eq!(env["REDIS_PRIMARY_SERVICE_PORT_REDIS"], "6379");
        assert_eq!(env["REDIS_PRIMARY_PORT"], "tcp://10.43.0.11:6379");
        assert_eq!(env["REDIS_PRIMARY_PORT_6379_TCP_ADDR"], "10.43.0.11");
        assert_eq!(env["REDIS_PRIMARY_PORT_6379_TCP_PROTO"], "tcp");
        assert_eq!(env["KUBERNETES_SERVICE_HOST"], "10.43.0.1");
        assert_eq!(env["KUBERNETES_SERVICE_PORT_HTTPS"], "443");
        assert!(!env.contains_key("HIDDEN_SERVICE_HOST"));
        assert!(!env.keys().any(|k| k.starts_with("HEADLESS")));
        // Without links only the master service's variables remain.
        let env: BTreeMap<_, _> = service_env(&services, "web", false).into_iter().collect();
        assert!(env.contains_key("KUBERNETES_SERVICE_HOST"));
        assert!(!env.contains_key("REDIS_PRIMARY_SERVICE_HOST"));
    }

    #[test]
    fn a_namespaces_own_kubernetes_service_wins_over_the_master_with_links() {
        let own = svc("web", "kubernetes", "10.43.0.20", json!([{"port": 8080}]));
        let master = svc("default", "kubernetes", "10.43.0.1", json!([{"port": 443}]));
        for services in [vec![own.clone(), master.clone()], vec![master, own]] {
            let env: BTreeMap<_, _> = service_env(&services, "web", true).into_iter().collect();
            assert_eq!(env["KUBERNETES_SERVICE_HOST"], "10.43.0.20");
            assert_eq!(env["KUBERNETES_SERVICE_PORT"], "8080");
            assert!(!env.contains_key("KUBERNETES_PORT_443_TCP"), "{env:?}");
            let env: BTreeMap<_, _> = service_env(&services, "web", false).into_iter().collect();
            assert_eq!(env["KUBERNETES_SERVICE_HOST"], "10.43.0.1");
        }
    }

    #[test]
    fn env_in_upstream_order() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "ns", "uid": "u-1", "labels": {"app": "x"}},
            "spec": {"nodeName": "n1", "containers": [{
                "name": "c",
                "resources": {"limits": {"memory": "64Mi"}, "requests": {"cpu": "250m"}},
                "envFrom": [{"configMapRef": {"name": "cm"}, "prefix": "CM_"}],
                "env": [
                    {"name": "A", "value": "a"},
                    {"name": "B", "value": "$(A)-b"},
                    {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                    {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
                    {"name": "MEM", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}}},
                    {"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "requests.cpu"}}},
                    {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "s", "key": "pw"}}},
                    {"name": "CM_k", "value": "overridden"}
                ]}]}
        }))
        .unwrap();
        let c = pod.spec.as_ref().unwrap().containers[0].clone();
        let (cms, secrets) = referenced_objects(&c);
        assert_eq!(
            (cms, secrets),
            (vec!["cm".to_string()], vec!["s".to_string()])
        );
        let mut sources = EnvSources::default();
        sources.config_maps.insert(
            "cm".into(),
            serde_json::from_value(json!({"data": {"k": "v", "j": "w"}})).unwrap(),
        );
        sources.secrets.insert(
            "s".into(),
            serde_json::from_value(json!({"data": {"pw": "aHVudGVyMg=="}})).unwrap(),
        );
        let env = container_env(&pod, &c, &sources, "n1", "192.0.2.1", &BTreeMap::new()).unwrap();
        let m: BTreeMap<_, _> = env.iter().cloned().collect();
        assert_eq!(m["B"], "a-b");
        assert_eq!(m["POD"], "p");
        assert_eq!(m["APP"], "x");
        assert_eq!(m["MEM"], "64");
        assert_eq!(m["CPU"], "1");
        assert_eq!(m["PW"], "hunter2");
        assert_eq!(m["CM_j"], "w");
        assert_eq!(m["CM_k"], "overridden");
        // A missing key is a config error with upstream's message.
        sources.secrets.clear();
        let err =
            container_env(&pod, &c, &sources, "n1", "192.0.2.1", &BTreeMap::new()).unwrap_err();
        assert_eq!(err.0, "secret \"s\" not found");
    }

    #[test]
    fn command_and_args_against_the_image() {
        let ep = vec!["/entry".to_string()];
        let cmd = vec!["default".to_string()];
        let c = |v: serde_json::Value| -> Container { serde_json::from_value(v).unwrap() };
        let env = vec![("X".to_string(), "1".to_string())];
        assert_eq!(
            command_line(&c(json!({"name": "c"})), &ep, &cmd, &env),
            ["/entry", "default"]
        );
        assert_eq!(
            command_line(&c(json!({"name": "c", "args": ["$(X)"]})), &ep, &cmd, &env),
            ["/entry", "1"]
        );
        assert_eq!(
            command_line(
                &c(json!({"name": "c", "command": ["sh"], "args": ["-c", "echo $(X)"]})),
                &ep,
                &cmd,
                &env
            ),
            ["sh", "-c", "echo 1"]
        );
        assert_eq!(
            command_line(&c(json!({"name": "c", "command": ["sh"]})), &ep, &cmd, &env),
            ["sh"]
        );
    }
}
