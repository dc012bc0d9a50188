//! A pod's `/etc/hosts` (localhost, its own address and name, its hostAliases) and
//! its `/etc/resolv.conf`, by its `dnsPolicy` and `dnsConfig` as upstream's
//! kubelet writes it: the cluster's DNS with the pod's search path and `ndots:5`
//! (ClusterFirst, and ClusterFirstWithHostNet for hostNetwork pods), the node's own
//! resolver configuration (Default, and ClusterFirst for hostNetwork pods), or only
//! what `dnsConfig` says (None); `dnsConfig` is then merged in, and the result held
//! to the resolver's limits (3 nameservers, 32 search domains of 2048 characters).

use std::net::IpAddr;

use k8s_openapi::api::core::v1::PodSpec;

/// At most this many nameservers are used (glibc's MAXNS).
const MAX_NAMESERVERS: usize = 3;
/// At most this many search domains, of this many characters together.
const MAX_SEARCHES: usize = 32;
const MAX_SEARCH_CHARS: usize = 2048;

/// A resolver configuration: what resolv.conf says.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResolvConf {
    pub nameservers: Vec<String>,
    pub searches: Vec<String>,
    pub options: Vec<String>,
}

impl ResolvConf {
    /// Reads resolv.conf text: `nameserver`, `search` (and the older `domain`) and
    /// `options` lines; comments and anything else are skipped.
    pub fn parse(text: &str) -> ResolvConf {
        let mut rc = ResolvConf::default();
        for line in text.lines() {
            let line = line.split(['#', ';']).next().unwrap_or("");
            let mut words = line.split_whitespace();
            match words.next() {
                Some("nameserver") => rc.nameservers.extend(words.next().map(str::to_string)),
                // The last search or domain line wins, as in the resolver.
                Some("search") | Some("domain") => {
                    rc.searches = words.filter(|w| *w != ".").map(str::to_string).collect()
                }
                Some("options") => rc.options.extend(words.map(str::to_string)),
                _ => {}
            }
        }
        rc
    }

    /// The file's text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for ns in &self.nameservers {
            out.push_str(&format!("nameserver {ns}\n"));
        }
        if !self.searches.is_empty() {
            out.push_str(&format!("search {}\n", self.searches.join(" ")));
        }
        if !self.options.is_empty() {
            out.push_str(&format!("options {}\n", self.options.join(" ")));
        }
        out
    }
}

/// The node's DNS settings, from the kubelet's flags.
pub struct ClusterDns<'a> {
    /// `--cluster-dns`.
    pub servers: &'a [IpAddr],
    /// `--cluster-domain`.
    pub domain: &'a str,
    /// `--resolv-conf`, read.
    pub host: &'a ResolvConf,
}

/// Warnings the pod's owner should hear about (as events).
pub type Warnings = Vec<(&'static str, String)>;

/// The resolver configuration of a pod in `namespace` with `spec`, and what had to
/// be changed to produce it.
pub fn pod_resolv_conf(
    spec: &PodSpec,
    namespace: &str,
    dns: &ClusterDns,
) -> (ResolvConf, Warnings) {
    let mut warnings = Warnings::new();
    let host_network = spec.host_network == Some(true);
    let policy = spec.dns_policy.as_deref().unwrap_or("ClusterFirst");
    let mut cluster = match policy {
        "None" => None,
        "ClusterFirstWithHostNet" => Some(true),
        "Default" => Some(false),
        // ClusterFirst: a hostNetwork pod uses the node's settings.
        _ => Some(!host_network),
    };
    if cluster == Some(true) && dns.servers.is_empty() {
        warnings.push((
            "MissingClusterDNS",
            format!(
                "kubelet does not have ClusterDNS IP configured and cannot create Pod using \"{policy}\" policy. Falling back to \"Default\" policy."
            ),
        ));
        cluster = Some(false);
    }
    let mut rc = match cluster {
        None => ResolvConf::default(),
        Some(false) => dns.host.clone(),
        Some(true) => {
            let mut searches = Vec::new();
            if !dns.domain.is_empty() {
                searches.push(format!("{namespace}.svc.{}", dns.domain));
                searches.push(format!("svc.{}", dns.domain));
                searches.push(dns.domain.to_string());
            }
            searches.extend(dns.host.searches.iter().cloned());
            ResolvConf {
                nameservers: dns.servers.iter().map(|s| s.to_string()).collect(),
                searches,
                options: vec!["ndots:5".into()],
            }
        }
    };
    if let Some(cfg) = &spec.dns_config {
        rc.nameservers
            .extend(cfg.nameservers.iter().flatten().cloned());
        rc.searches.extend(cfg.searches.iter().flatten().cloned());
        for o in cfg.options.iter().flatten() {
            let Some(name) = o.name.as_deref() else {
                continue;
            };
            let text = match &o.value {
                Some(v) => format!("{name}:{v}"),
                None => name.to_string(),
            };
            let same = |existing: &String| existing.split(':').next() == Some(name);
            match rc.options.iter_mut().find(|e| same(e)) {
                Some(existing) => *existing = text,
                None => rc.options.push(text),
            }
        }
    }
    dedup(&mut rc.nameservers);
    dedup(&mut rc.searches);
    if rc.nameservers.len() > MAX_NAMESERVERS {
        rc.nameservers.truncate(MAX_NAMESERVERS);
        warnings.push((
            "DNSConfigForming",
            format!(
                "Nameserver limits were exceeded, some nameservers have been omitted, the applied nameserver line is: {}",
                rc.nameservers.join(" ")
            ),
        ));
    }
    let mut chars = 0;
    let fits = rc
        .searches
        .iter()
        .take(MAX_SEARCHES)
        .take_while(|s| {
            chars += s.len() + 1;
            chars <= MAX_SEARCH_CHARS + 1
        })
        .count();
    if fits < rc.searches.len() {
        rc.searches.truncate(fits);
        warnings.push((
            "DNSConfigForming",
            format!(
                "Search Line limits were exceeded, some search paths have been omitted, the applied search line is: {}",
                rc.searches.join(" ")
            ),
        ));
    }
    (rc, warnings)
}

/// The hosts file of a pod with its own network: localhost, the pod's address
/// with its hostname (the fully qualified `<hostname>.<subdomain>.<ns>.svc.<domain>`
/// first when it has a subdomain), then its hostAliases.
pub fn hosts_file(
    spec: &PodSpec,
    hostname: &str,
    pod_ip: Option<IpAddr>,
    namespace: &str,
    domain: &str,
) -> String {
    let mut h = String::from(
        "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n",
    );
    if let Some(ip) = pod_ip {
        match spec.subdomain.as_deref().filter(|s| !s.is_empty()) {
            Some(sub) if !domain.is_empty() => h.push_str(&format!(
                "{ip}\t{hostname}.{sub}.{namespace}.svc.{domain}\t{hostname}\n"
            )),
            _ => h.push_str(&format!("{ip}\t{hostname}\n")),
        }
    }
    for ha in spec.host_aliases.iter().flatten() {
        h.push_str(&format!(
            "\n# Entries added by HostAliases.\n{}\t{}\n",
            ha.ip,
            ha.hostnames.clone().unwrap_or_default().join("\t")
        ));
    }
    h
}

/// Drops later copies, keeping the first of each.
fn dedup(v: &mut Vec<String>) {
    let mut seen = std::collections::HashSet::new();
    v.retain(|s| seen.insert(s.clone()));
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(v: serde_json::Value) -> PodSpec {
        serde_json::from_value(v).unwrap()
    }

    fn host() -> ResolvConf {
        ResolvConf::parse(
            "# generated\nnameserver 192.0.2.53\nnameserver 192.0.2.54 # second\nsearch corp.example lab.example\noptions edns0 ndots:2\n",
        )
    }

    fn with(servers: &[IpAddr], spec_: PodSpec) -> (ResolvConf, Warnings) {
        let host = host();
        let dns = ClusterDns {
            servers,
            domain: "cluster.local",
            host: &host,
        };
        pod_resolv_conf(&spec_, "shop", &dns)
    }

    const DNS: &[IpAddr] = &[IpAddr::V4(std::net::Ipv4Addr::new(10, 43, 0, 10))];

    #[test]
    fn parses_resolv_conf() {
        let h = host();
        assert_eq!(h.nameservers, ["192.0.2.53", "192.0.2.54"]);
        assert_eq!(h.searches, ["corp.example", "lab.example"]);
        assert_eq!(h.options, ["edns0", "ndots:2"]);
    }

    #[test]
    fn cluster_first_uses_the_cluster_dns_and_search_path() {
        let (rc, w) = with(DNS, spec(json!({"containers": []})));
        assert!(w.is_empty());
        assert_eq!(
            rc.render(),
            "nameserver 10.43.0.10\nsearch shop.svc.cluster.local svc.cluster.local cluster.local corp.example lab.example\noptions ndots:5\n"
        );
    }

    #[test]
    fn host_network_pods_use_the_nodes_resolver_unless_told() {
        let (rc, _) = with(DNS, spec(json!({"containers": [], "hostNetwork": true})));
        assert_eq!(rc, host());
        let (rc, _) = with(
            DNS,
            spec(
                json!({"containers": [], "hostNetwork": true, "dnsPolicy": "ClusterFirstWithHostNet"}),
            ),
        );
        assert_eq!(rc.nameservers, ["10.43.0.10"]);
        let (rc, _) = with(DNS, spec(json!({"containers": [], "dnsPolicy": "Default"})));
        assert_eq!(rc, host());
    }

    #[test]
    fn without_cluster_dns_cluster_first_falls_back_with_a_warning() {
        let (rc, w) = with(&[], spec(json!({"containers": []})));
        assert_eq!(rc, host());
        assert_eq!(w[0].0, "MissingClusterDNS");
    }

    #[test]
    fn dns_config_is_merged_and_none_takes_it_alone() {
        let (rc, _) = with(
            DNS,
            spec(json!({"containers": [], "dnsConfig": {
                "nameservers": ["192.0.2.99", "10.43.0.10"],
                "searches": ["extra.example", "svc.cluster.local"],
                "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}]
            }})),
        );
        assert_eq!(rc.nameservers, ["10.43.0.10", "192.0.2.99"]);
        assert_eq!(rc.searches.last().unwrap(), "extra.example");
        assert_eq!(rc.searches.len(), 6, "duplicates dropped");
        assert_eq!(rc.options, ["ndots:2", "edns0"]);

        let (rc, _) = with(
            DNS,
            spec(json!({"containers": [], "dnsPolicy": "None", "dnsConfig": {
                "nameservers": ["192.0.2.1"], "searches": ["a.example"]
            }})),
        );
        assert_eq!(rc.render(), "nameserver 192.0.2.1\nsearch a.example\n");
    }

    #[test]
    fn limits_are_kept_with_warnings() {
        let many: Vec<String> = (0..40).map(|i| format!("d{i}.example")).collect();
        let (rc, w) = with(
            DNS,
            spec(json!({"containers": [], "dnsConfig": {
                "nameservers": ["192.0.2.1", "192.0.2.2", "192.0.2.3"],
                "searches": many
            }})),
        );
        assert_eq!(rc.nameservers.len(), 3);
        assert_eq!(rc.searches.len(), 32);
        assert_eq!(w.len(), 2);
        assert!(w.iter().all(|(r, _)| *r == "DNSConfigForming"));
    }

    #[test]
    fn hosts_file_names_the_pod() {
        let ip: IpAddr = "10.42.0.5".parse().unwrap();
        let h = hosts_file(
            &spec(json!({"containers": []})),
            "web",
            Some(ip),
            "shop",
            "cluster.local",
        );
        assert!(h.starts_with("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n"));
        assert!(
            h.ends_with("fe00::2\tip6-allrouters\n10.42.0.5\tweb\n"),
            "{h}"
        );
        let h = hosts_file(
            &spec(json!({"containers": [], "subdomain": "db",
                         "hostAliases": [{"ip": "192.0.2.7", "hostnames": ["a.example", "b.example"]}]})),
            "web-0",
            Some(ip),
            "shop",
            "cluster.local",
        );
        assert!(
            h.contains("10.42.0.5\tweb-0.db.shop.svc.cluster.local\tweb-0\n"),
            "{h}"
        );
        assert!(h.ends_with("\n# Entries added by HostAliases.\n192.0.2.7\ta.example\tb.example\n"));
        let h = hosts_file(
            &spec(json!({"containers": []})),
            "web",
            None,
            "shop",
            "cluster.local",
        );
        assert!(h.ends_with("ip6-allrouters\n"));
    }
}
