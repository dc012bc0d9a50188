//! Networking printers: services, endpoints, endpointslices, ingresses,
//! ingressclasses, networkpolicies, servicecidrs, ipaddresses.

use std::collections::BTreeSet;

use jiff::Timestamp;
use serde_json::Value;

use crate::json::{arr_at, get, int_at, name, opt_int, opt_str, s, str_at};
use crate::labels::{format_label_selector, format_labels};
use crate::{age, Column, Printer, AGE, NAME};

/// `kubectl get services`.
pub static SERVICE: Printer = Printer {
    columns: &[
        NAME,
        Column::new(
            "Type",
            "string",
            "type determines how the Service is exposed: ClusterIP (default), NodePort, LoadBalancer or ExternalName.",
        ),
        Column::new(
            "Cluster-IP",
            "string",
            "clusterIP is the IP address of the service, usually assigned randomly; \"None\" for headless services.",
        ),
        Column::new(
            "External-IP",
            "string",
            "externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service.",
        ),
        Column::new(
            "Port(s)",
            "string",
            "The list of ports that are exposed by this service.",
        ),
        AGE,
        Column::wide(
            "Selector",
            "string",
            "Route service traffic to pods with label keys and values matching this selector.",
        ),
    ],
    row: service_row,
};

/// Sorted, de-duplicated load-balancer ingress points (IP, else hostname).
/// The server renders the wide form, so nothing is truncated.
fn load_balancer_ingress(ingress: &[Value]) -> String {
    let mut set: BTreeSet<&str> = BTreeSet::new();
    for i in ingress {
        let ip = str_at(i, &["ip"]);
        let host = str_at(i, &["hostname"]);
        if !ip.is_empty() {
            set.insert(ip);
        } else if !host.is_empty() {
            set.insert(host);
        }
    }
    set.into_iter().collect::<Vec<_>>().join(",")
}

fn external_ip(svc: &Value) -> String {
    let external_ips: Vec<&str> = arr_at(svc, &["spec", "externalIPs"])
        .iter()
        .map(|v| v.as_str().unwrap_or(""))
        .collect();
    match str_at(svc, &["spec", "type"]) {
        "ClusterIP" | "NodePort" => {
            if external_ips.is_empty() {
                "<none>".to_string()
            } else {
                external_ips.join(",")
            }
        }
        "LoadBalancer" => {
            let lb = load_balancer_ingress(arr_at(svc, &["status", "loadBalancer", "ingress"]));
            if !external_ips.is_empty() {
                let mut results: Vec<&str> = Vec::new();
                if !lb.is_empty() {
                    results.extend(lb.split(','));
                }
                results.extend(external_ips.iter().copied());
                return results.join(",");
            }
            if lb.is_empty() {
                "<pending>".to_string()
            } else {
                lb
            }
        }
        "ExternalName" => str_at(svc, &["spec", "externalName"]).to_string(),
        _ => "<unknown>".to_string(),
    }
}

fn service_ports(svc: &Value) -> String {
    let ports: Vec<String> = arr_at(svc, &["spec", "ports"])
        .iter()
        .map(|p| {
            let port = int_at(p, &["port"]);
            let protocol = opt_str(p, &["protocol"]).unwrap_or("TCP");
            let node_port = int_at(p, &["nodePort"]);
            if node_port > 0 {
                format!("{port}:{node_port}/{protocol}")
            } else {
                format!("{port}/{protocol}")
            }
        })
        .collect();
    if ports.is_empty() {
        "<none>".to_string()
    } else {
        ports.join(",")
    }
}

fn service_row(svc: &Value, now: Timestamp) -> Vec<Value> {
    let cluster_ip = arr_at(svc, &["spec", "clusterIPs"])
        .first()
        .and_then(Value::as_str)
        .or_else(|| opt_str(svc, &["spec", "clusterIP"]).filter(|ip| !ip.is_empty()))
        .unwrap_or("<none>");
    vec![
        s(name(svc)),
        s(str_at(svc, &["spec", "type"])),
        s(cluster_ip),
        s(external_ip(svc)),
        s(service_ports(svc)),
        s(age(svc, now)),
        s(format_labels(get(svc, &["spec", "selector"]))),
    ]
}

/// `kubectl get endpoints`.
pub static ENDPOINTS: Printer = Printer {
    columns: &[
        NAME,
        Column::new(
            "Endpoints",
            "string",
            "The set of all endpoints is the union of all subsets.",
        ),
        AGE,
    ],
    row: endpoints_row,
};

/// `host:port`, bracketing IPv6 hosts like Go's `net.JoinHostPort`.
fn join_host_port(host: &str, port: i64) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

fn format_endpoints(obj: &Value) -> String {
    let subsets = arr_at(obj, &["subsets"]);
    if subsets.is_empty() {
        return "<none>".to_string();
    }
    const MAX: usize = 3;
    let mut list: Vec<String> = Vec::new();
    let mut more = false;
    let mut count = 0usize;
    for ss in subsets {
        let addresses = arr_at(ss, &["addresses"]);
        let ports = arr_at(ss, &["ports"]);
        if ports.is_empty() {
            count += addresses.len();
            for a in addresses {
                if list.len() == MAX {
                    more = true;
                    break;
                }
                list.push(str_at(a, &["ip"]).to_string());
            }
            continue;
        }
        for p in ports {
            count += addresses.len();
            for a in addresses {
                if list.len() == MAX {
                    more = true;
                    break;
                }
                list.push(join_host_port(str_at(a, &["ip"]), int_at(p, &["port"])));
            }
        }
    }
    let ret = list.join(",");
    if more {
        format!("{ret} + {} more...", count - MAX)
    } else {
        ret
    }
}

fn endpoints_row(obj: &Value, now: Timestamp) -> Vec<Value> {
    vec![s(name(obj)), s(format_endpoints(obj)), s(age(obj, now))]
}

/// Joins at most three items, then `+ N more...`; `<unset>` when empty.
fn list_with_more(list: &[String], count: usize) -> String {
    const MAX: usize = 3;
    let shown: Vec<&str> = list.iter().take(MAX).map(String::as_str).collect();
    let ret = shown.join(",");
    if count > MAX {
        return format!("{ret} + {} more...", count - MAX);
    }
    if ret.is_empty() {
        "<unset>".to_string()
    } else {
        ret
    }
}

/// `kubectl get endpointslices`.
pub static ENDPOINT_SLICE: Printer = Printer {
    columns: &[
        NAME,
        Column::new(
            "AddressType",
            "string",
            "addressType specifies the type of address carried by this EndpointSlice (IPv4, IPv6, FQDN).",
        ),
        Column::new(
            "Ports",
            "string",
            "ports specifies the list of network ports exposed by each endpoint in this slice.",
        ),
        Column::new(
            "Endpoints",
            "string",
            "endpoints is a list of unique endpoints in this slice. Each slice may include a maximum of 1000 endpoints.",
        ),
        AGE,
    ],
    row: endpoint_slice_row,
};

fn endpoint_slice_row(obj: &Value, now: Timestamp) -> Vec<Value> {
    let ports: Vec<String> = arr_at(obj, &["ports"])
        .iter()
        .map(|p| match opt_int(p, &["port"]) {
            Some(port) => port.to_string(),
            None => opt_str(p, &["name"]).unwrap_or("*").to_string(),
        })
        .collect();
    let addresses: Vec<String> = arr_at(obj, &["endpoints"])
        .iter()
        .flat_map(|e| arr_at(e, &["addresses"]).iter())
        .map(|a| a.as_str().unwrap_or("").to_string())
        .collect();
    vec![
        s(name(obj)),
        s(str_at(obj, &["addressType"])),
        s(list_with_more(&ports, ports.len())),
        s(list_with_more(&addresses, addresses.len())),
        s(age(obj, now)),
    ]
}

/// `kubectl get ingresses`.
pub static INGRESS: Printer = Printer {
    columns: &[
        NAME,
        Column::new(
            "Class",
            "string",
            "The name of the IngressClass resource that should be used for additional configuration",
        ),
        Column::new(
            "Hosts",
            "string",
            "Hosts that incoming requests are matched against before the ingress rule",
        ),
        Column::new(
            "Address",
            "string",
            "Address is a list containing ingress points for the load-balancer",
        ),
        Column::new("Ports", "string", "Ports of TLS configurations that open"),
        AGE,
    ],
    row: ingress_row,
};

fn ingress_hosts(rules: &[Value]) -> String {
    const MAX: usize = 3;
    let mut list: Vec<&str> = Vec::new();
    let mut more = false;
    for rule in rules {
        if list.len() == MAX {
            more = true;
        }
        let host = str_at(rule, &["host"]);
        if !more && !host.is_empty() {
            list.push(host);
        }
    }
    if list.is_empty() {
        return "*".to_string();
    }
    let ret = list.join(",");
    if more {
        format!("{ret} + {} more...", rules.len() - MAX)
    } else {
        ret
    }
}

fn ingress_row(obj: &Value, now: Timestamp) -> Vec<Value> {
    let ports = if arr_at(obj, &["spec", "tls"]).is_empty() {
        "80"
    } else {
        "80, 443"
    };
    vec![
        s(name(obj)),
        s(opt_str(obj, &["spec", "ingressClassName"]).unwrap_or("<none>")),
        s(ingress_hosts(arr_at(obj, &["spec", "rules"]))),
        s(load_balancer_ingress(arr_at(
            obj,
            &["status", "loadBalancer", "ingress"],
        ))),
        s(ports),
        s(age(obj, now)),
    ]
}

/// `kubectl get ingressclasses`.
pub static INGRESS_CLASS: Printer = Printer {
    columns: &[
        NAME,
        Column::new(
            "Controller",
            "string",
            "Controller that is responsible for handling this class",
        ),
        Column::new(
            "Parameters",
            "string",
            "A reference to a resource with additional parameters",
        ),
        AGE,
    ],
    row: ingress_class_row,
};

fn ingress_class_row(obj: &Value, now: Timestamp) -> Vec<Value> {
    let parameters = match get(obj, &["spec", "parameters"]) {
        Some(p) => {
            let mut out = str_at(p, &["kind"]).to_string();
            if let Some(group) = opt_str(p, &["apiGroup"]) {
                out = format!("{out}.{group}");
            }
            format!("{out}/{}", str_at(p, &["name"]))
        }
        None => "<none>".to_string(),
    };
    vec![
        s(name(obj)),
        s(str_at(obj, &["spec", "controller"])),
        s(parameters),
        s(age(obj, now)),
    ]
}

/// `kubectl get networkpolicies`.
pub static NETWORK_POLICY: Printer = Printer {
    columns: &[
        NAME,
        Column::new(
            "Pod-Selector",
            "string",
            "Selects the pods to which this NetworkPolicy object applies; an empty selector selects all pods in the namespace.",
        ),
        AGE,
    ],
    row: network_policy_row,
};

fn network_policy_row(obj: &Value, now: Timestamp) -> Vec<Value> {
    // podSelector is a required (non-pointer) field: absent means empty.
    let empty = Value::Object(Default::default());
    let selector = get(obj, &["spec", "podSelector"]).unwrap_or(&empty);
    vec![
        s(name(obj)),
        s(format_label_selector(Some(selector))),
        s(age(obj, now)),
    ]
}

/// `kubectl get servicecidrs`.
pub static SERVICE_CIDR: Printer = Printer {
    columns: &[
        NAME,
        Column::new(
            "CIDRs",
            "string",
            "CIDRs defines the IP blocks in CIDR notation from which to assign service cluster IPs.",
        ),
        AGE,
    ],
    row: service_cidr_row,
};

fn service_cidr_row(obj: &Value, now: Timestamp) -> Vec<Value> {
    let cidrs: Vec<&str> = arr_at(obj, &["spec", "cidrs"])
        .iter()
        .map(|c| c.as_str().unwrap_or(""))
        .collect();
    vec![s(name(obj)), s(cidrs.join(",")), s(age(obj, now))]
}

/// `kubectl get ipaddresses`.
pub static IP_ADDRESS: Printer = Printer {
    columns: &[
        NAME,
        Column::new(
            "ParentRef",
            "string",
            "ParentRef references the resource that an IPAddress is attached to.",
        ),
    ],
    row: ip_address_row,
};

fn ip_address_row(obj: &Value, _now: Timestamp) -> Vec<Value> {
    let parent = match get(obj, &["spec", "parentRef"]) {
        Some(p) => {
            let group = str_at(p, &["group"]);
            let resource = str_at(p, &["resource"]);
            let gr = if group.is_empty() {
                resource.to_string()
            } else {
                format!("{resource}.{group}")
            };
            let mut out = gr.to_lowercase();
            let ns = str_at(p, &["namespace"]);
            if !ns.is_empty() {
                out = format!("{out}/{ns}");
            }
            format!("{out}/{}", str_at(p, &["name"]))
        }
        None => "<none>".to_string(),
    };
    // Upstream declares two columns but also appends the age; only the
    // declared columns are rendered here so rows match the definitions.
    vec![s(name(obj)), s(parent)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> Timestamp {
        "2024-05-01T12:00:00Z".parse().unwrap()
    }

    #[test]
    fn cluster_ip_service() {
        let svc = json!({
            "metadata": {"name": "kubernetes", "creationTimestamp": "2024-04-01T12:00:00Z"},
            "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.1", "clusterIPs": ["10.96.0.1"],
                "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}]}
        });
        assert_eq!(
            service_row(&svc, now()),
            vec![
                json!("kubernetes"),
                json!("ClusterIP"),
                json!("10.96.0.1"),
                json!("<none>"),
                json!("443/TCP"),
                json!("30d"),
                json!("<none>"),
            ]
        );
    }

    #[test]
    fn node_port_and_headless_services() {
        let svc = json!({
            "metadata": {"name": "web"},
            "spec": {"type": "NodePort", "clusterIPs": ["10.96.5.5", "fd00::5"], "externalIPs": ["1.2.3.4"],
                "selector": {"app": "web"},
                "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}]}
        });
        let c = service_row(&svc, now());
        assert_eq!(c[2], json!("10.96.5.5"));
        assert_eq!(c[3], json!("1.2.3.4"));
        assert_eq!(c[4], json!("80:30080/TCP,53/UDP"));
        assert_eq!(c[6], json!("app=web"));
        let headless = json!({"metadata": {"name": "db"}, "spec": {"type": "ClusterIP", "clusterIP": "None", "clusterIPs": ["None"]}});
        let c = service_row(&headless, now());
        assert_eq!(c[2], json!("None"));
        assert_eq!(c[4], json!("<none>"));
    }

    #[test]
    fn load_balancer_service() {
        let pending = json!({"metadata": {"name": "lb"}, "spec": {"type": "LoadBalancer", "clusterIPs": ["10.96.1.1"],
            "ports": [{"port": 80, "nodePort": 31000, "protocol": "TCP"}]}});
        assert_eq!(service_row(&pending, now())[3], json!("<pending>"));
        let ready = json!({"metadata": {"name": "lb"}, "spec": {"type": "LoadBalancer"},
        "status": {"loadBalancer": {"ingress": [
            {"ip": "203.0.113.9"}, {"hostname": "a1b2c3d4e5f6g7h8.elb.amazonaws.com"}, {"ip": "203.0.113.10"}, {"ip": "203.0.113.9"}
        ]}}});
        // The server renders the wide form: no truncation to 16 characters.
        assert_eq!(
            service_row(&ready, now())[3],
            json!("203.0.113.10,203.0.113.9,a1b2c3d4e5f6g7h8.elb.amazonaws.com")
        );
        let with_external = json!({"metadata": {"name": "lb"}, "spec": {"type": "LoadBalancer", "externalIPs": ["198.51.100.1"]},
            "status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.9"}]}}});
        assert_eq!(
            service_row(&with_external, now())[3],
            json!("203.0.113.9,198.51.100.1")
        );
        let c = service_row(
            &json!({"metadata": {"name": "x"}, "spec": {"type": "LoadBalancer"}}),
            now(),
        );
        assert_eq!(c[2], json!("<none>"));
    }

    #[test]
    fn external_name_and_unknown_services() {
        let svc = json!({"metadata": {"name": "ext"}, "spec": {"type": "ExternalName", "externalName": "example.com"}});
        let c = service_row(&svc, now());
        assert_eq!(c[2], json!("<none>"));
        assert_eq!(c[3], json!("example.com"));
        let c = service_row(&json!({"metadata": {"name": "x"}}), now());
        assert_eq!(c[1], json!(""));
        assert_eq!(c[3], json!("<unknown>"));
    }

    #[test]
    fn endpoints_cells() {
        let ep = json!({
            "metadata": {"name": "web", "creationTimestamp": "2024-05-01T11:00:00Z"},
            "subsets": [{"addresses": [{"ip": "10.244.1.5"}, {"ip": "10.244.2.7"}], "ports": [{"port": 8080}, {"port": 9090, "name": "m"}]}]
        });
        assert_eq!(
            endpoints_row(&ep, now()),
            vec![
                json!("web"),
                json!("10.244.1.5:8080,10.244.2.7:8080,10.244.1.5:9090 + 1 more..."),
                json!("60m"),
            ]
        );
        let v6 = json!({"metadata": {"name": "x"}, "subsets": [{"addresses": [{"ip": "fd00::1"}], "ports": [{"port": 53}]}]});
        assert_eq!(endpoints_row(&v6, now())[1], json!("[fd00::1]:53"));
        let headless =
            json!({"metadata": {"name": "x"}, "subsets": [{"addresses": [{"ip": "10.0.0.1"}]}]});
        assert_eq!(endpoints_row(&headless, now())[1], json!("10.0.0.1"));
        let empty = json!({"metadata": {"name": "x"}});
        assert_eq!(endpoints_row(&empty, now())[1], json!("<none>"));
        let only_not_ready = json!({"metadata": {"name": "x"}, "subsets": [{"notReadyAddresses": [{"ip": "10.0.0.1"}], "ports": [{"port": 80}]}]});
        assert_eq!(endpoints_row(&only_not_ready, now())[1], json!(""));
    }

    #[test]
    fn endpoint_slice_cells() {
        let es = json!({
            "metadata": {"name": "web-abc12", "creationTimestamp": "2024-05-01T11:00:00Z"},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "endpoints": [
                {"addresses": ["10.244.1.5"]}, {"addresses": ["10.244.2.7"]},
                {"addresses": ["10.244.3.9"]}, {"addresses": ["10.244.4.2"]}
            ]
        });
        assert_eq!(
            endpoint_slice_row(&es, now()),
            vec![
                json!("web-abc12"),
                json!("IPv4"),
                json!("8080"),
                json!("10.244.1.5,10.244.2.7,10.244.3.9 + 1 more..."),
                json!("60m"),
            ]
        );
        let es = json!({"metadata": {"name": "x"}, "addressType": "IPv4", "ports": [{"name": "dns"}, {}]});
        let c = endpoint_slice_row(&es, now());
        assert_eq!(c[2], json!("dns,*"));
        assert_eq!(c[3], json!("<unset>"));
    }

    #[test]
    fn ingress_cells() {
        let ing = json!({
            "metadata": {"name": "web", "creationTimestamp": "2024-05-01T11:00:00Z"},
            "spec": {"ingressClassName": "nginx", "tls": [{"hosts": ["a.example.com"]}],
                "rules": [{"host": "a.example.com"}, {"host": "b.example.com"}, {}, {"host": "c.example.com"}, {"host": "d.example.com"}]},
            "status": {"loadBalancer": {"ingress": [{"ip": "172.18.0.5"}]}}
        });
        assert_eq!(
            ingress_row(&ing, now()),
            vec![
                json!("web"),
                json!("nginx"),
                json!("a.example.com,b.example.com,c.example.com + 2 more..."),
                json!("172.18.0.5"),
                json!("80, 443"),
                json!("60m"),
            ]
        );
        let bare = json!({"metadata": {"name": "x"}, "spec": {"rules": [{}]}});
        let c = ingress_row(&bare, now());
        assert_eq!(c[1], json!("<none>"));
        assert_eq!(c[2], json!("*"));
        assert_eq!(c[3], json!(""));
        assert_eq!(c[4], json!("80"));
    }

    #[test]
    fn ingress_class_cells() {
        let ic = json!({
            "metadata": {"name": "nginx", "creationTimestamp": "2024-05-01T11:00:00Z"},
            "spec": {"controller": "k8s.io/ingress-nginx",
                "parameters": {"apiGroup": "k8s.example.com", "kind": "IngressParameters", "name": "external-lb"}}
        });
        assert_eq!(
            ingress_class_row(&ic, now()),
            vec![
                json!("nginx"),
                json!("k8s.io/ingress-nginx"),
                json!("IngressParameters.k8s.example.com/external-lb"),
                json!("60m"),
            ]
        );
        let ic = json!({"metadata": {"name": "x"}, "spec": {"controller": "c"}});
        assert_eq!(ingress_class_row(&ic, now())[2], json!("<none>"));
    }

    #[test]
    fn network_policy_cells() {
        let np = json!({
            "metadata": {"name": "deny-all", "creationTimestamp": "2024-05-01T11:00:00Z"},
            "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}
        });
        assert_eq!(
            network_policy_row(&np, now()),
            vec![json!("deny-all"), json!("<none>"), json!("60m")]
        );
        let np = json!({"metadata": {"name": "x"}, "spec": {"podSelector": {"matchLabels": {"role": "db"}}}});
        assert_eq!(network_policy_row(&np, now())[1], json!("role=db"));
    }

    #[test]
    fn service_cidr_and_ip_address_cells() {
        let sc = json!({"metadata": {"name": "kubernetes", "creationTimestamp": "2024-05-01T11:00:00Z"},
            "spec": {"cidrs": ["10.96.0.0/16", "fd00:10:96::/112"]}});
        assert_eq!(
            service_cidr_row(&sc, now()),
            vec![
                json!("kubernetes"),
                json!("10.96.0.0/16,fd00:10:96::/112"),
                json!("60m")
            ]
        );
        let ip = json!({"metadata": {"name": "10.96.0.1"},
            "spec": {"parentRef": {"group": "", "resource": "services", "namespace": "default", "name": "kubernetes"}}});
        assert_eq!(
            ip_address_row(&ip, now()),
            vec![json!("10.96.0.1"), json!("services/default/kubernetes")]
        );
    }
}
