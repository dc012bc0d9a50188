//! Command-line configuration of the simulated nodes (`SimNodesConfig`), the parsers
//! for its structured flags (`--label`, `--taint`, `--pod-cidr-base`) and the checked
//! form the rest of the crate works from (`Settings`).

use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;
use std::time::Duration;

use apimachinery::quantity::Quantity;

use crate::cidr::Ipv4Cidr;
use crate::SimError;

const DEFAULT_NAME_PREFIX: &str = "sim-node-";
const DEFAULT_CPU: &str = "4";
const DEFAULT_MEMORY: &str = "16Gi";
const DEFAULT_PODS: u32 = 110;
const DEFAULT_EPHEMERAL_STORAGE: &str = "100Gi";
const DEFAULT_LEASE_SECONDS: u64 = 10;
const DEFAULT_STATUS_SECONDS: u64 = 60;
const DEFAULT_POD_CIDR_BASE: &str = "10.244.0.0/16";
const DEFAULT_CONCURRENCY: usize = 32;

/// The most nodes one run can simulate: their InternalIPs are numbered inside
/// 172.30.0.0/16.
pub const MAX_NODES: usize = 65_534;

/// Flags of `ferrokube sim-nodes`.
#[derive(clap::Args, Clone, Debug, PartialEq)]
pub struct SimNodesConfig {
    /// How many nodes to simulate.
    #[arg(long, default_value_t = 1)]
    pub count: usize,

    /// Node names are this prefix followed by the zero-based node index.
    #[arg(long, default_value = DEFAULT_NAME_PREFIX)]
    pub name_prefix: String,

    /// CPU capacity (and allocatable) of each node, as a resource quantity.
    #[arg(long, default_value = DEFAULT_CPU)]
    pub cpu: String,

    /// Memory capacity (and allocatable) of each node, as a resource quantity.
    #[arg(long, default_value = DEFAULT_MEMORY)]
    pub memory: String,

    /// Pod capacity (and allocatable) of each node.
    #[arg(long, default_value_t = DEFAULT_PODS)]
    pub pods: u32,

    /// Ephemeral-storage capacity (and allocatable) of each node, as a resource
    /// quantity.
    #[arg(long, default_value = DEFAULT_EPHEMERAL_STORAGE)]
    pub ephemeral_storage: String,

    /// Extra node label `key=value`; repeatable.
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = parse_label)]
    pub labels: Vec<(String, String)>,

    /// Node taint `key=value:Effect` or `key:Effect`; repeatable.
    #[arg(long = "taint", value_name = "KEY=VALUE:EFFECT", value_parser = TaintSpec::from_str)]
    pub taints: Vec<TaintSpec>,

    /// Seconds between two renewals of a node's Lease.
    #[arg(long, default_value_t = DEFAULT_LEASE_SECONDS)]
    pub lease_seconds: u64,

    /// Seconds between two periodic NodeStatus reports (a changed status is
    /// reported at once).
    #[arg(long, default_value_t = DEFAULT_STATUS_SECONDS)]
    pub status_seconds: u64,

    /// Pod addresses of node N come from the N-th /24 counted from this network
    /// when the Node has no spec.podCIDR.
    #[arg(long, default_value = DEFAULT_POD_CIDR_BASE)]
    pub pod_cidr_base: Ipv4Cidr,

    /// API writes in flight at most.
    #[arg(long, default_value_t = DEFAULT_CONCURRENCY)]
    pub concurrency: usize,
}

impl Default for SimNodesConfig {
    fn default() -> Self {
        SimNodesConfig {
            count: 1,
            name_prefix: DEFAULT_NAME_PREFIX.to_string(),
            cpu: DEFAULT_CPU.to_string(),
            memory: DEFAULT_MEMORY.to_string(),
            pods: DEFAULT_PODS,
            ephemeral_storage: DEFAULT_EPHEMERAL_STORAGE.to_string(),
            labels: Vec::new(),
            taints: Vec::new(),
            lease_seconds: DEFAULT_LEASE_SECONDS,
            status_seconds: DEFAULT_STATUS_SECONDS,
            pod_cidr_base: Ipv4Cidr::new(Ipv4Addr::new(10, 244, 0, 0), 16),
            concurrency: DEFAULT_CONCURRENCY,
        }
    }
}

/// Parses a `--label` value: `key=value` (the value may be empty).
pub fn parse_label(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("invalid label {s:?}: expected key=value")),
    }
}

/// The effect of a taint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaintEffect {
    /// `NoSchedule`
    NoSchedule,
    /// `PreferNoSchedule`
    PreferNoSchedule,
    /// `NoExecute`
    NoExecute,
}

impl TaintEffect {
    /// The API spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            TaintEffect::NoSchedule => "NoSchedule",
            TaintEffect::PreferNoSchedule => "PreferNoSchedule",
            TaintEffect::NoExecute => "NoExecute",
        }
    }
}

/// A taint given on the command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaintSpec {
    /// Taint key.
    pub key: String,
    /// Taint value (may be empty).
    pub value: String,
    /// Taint effect.
    pub effect: TaintEffect,
}

impl FromStr for TaintSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("invalid taint {s:?}: expected key=value:Effect or key:Effect");
        let (kv, effect) = s.rsplit_once(':').ok_or_else(bad)?;
        let effect = match effect {
            "NoSchedule" => TaintEffect::NoSchedule,
            "PreferNoSchedule" => TaintEffect::PreferNoSchedule,
            "NoExecute" => TaintEffect::NoExecute,
            other => {
                return Err(format!(
                "invalid taint effect {other:?}: must be NoSchedule, PreferNoSchedule or NoExecute"
            ))
            }
        };
        let (key, value) = kv.split_once('=').unwrap_or((kv, ""));
        if key.is_empty() {
            return Err(bad());
        }
        Ok(TaintSpec {
            key: key.to_string(),
            value: value.to_string(),
            effect,
        })
    }
}

impl fmt::Display for TaintSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.value.is_empty() {
            write!(f, "{}:{}", self.key, self.effect.as_str())
        } else {
            write!(f, "{}={}:{}", self.key, self.value, self.effect.as_str())
        }
    }
}

/// A checked configuration.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    pub count: usize,
    pub name_prefix: String,
    /// Canonical quantities: cpu, memory, pods, ephemeral-storage.
    pub capacity: BTreeMap<String, String>,
    pub labels: Vec<(String, String)>,
    pub taints: Vec<TaintSpec>,
    pub lease_every: Duration,
    pub status_every: Duration,
    pub pod_cidr_base: Ipv4Cidr,
    pub concurrency: usize,
}

fn quantity(flag: &str, s: &str) -> Result<String, SimError> {
    let q = Quantity::parse(s).map_err(|e| SimError::Config(format!("--{flag} {s:?}: {e}")))?;
    if q.sign() < 0 {
        return Err(SimError::Config(format!(
            "--{flag} {s:?}: must not be negative"
        )));
    }
    Ok(q.to_string())
}

/// Whether `name` is a DNS-1123 subdomain (what a Node name must be).
fn is_dns_subdomain(name: &str) -> bool {
    if name.is_empty() || name.len() > 253 {
        return false;
    }
    name.split('.').all(|label| {
        let b = label.as_bytes();
        !b.is_empty()
            && b.iter()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
            && b[0] != b'-'
            && b[b.len() - 1] != b'-'
    })
}

impl Settings {
    /// Checks a configuration.
    pub fn new(c: &SimNodesConfig) -> Result<Settings, SimError> {
        if c.count > MAX_NODES {
            return Err(SimError::Config(format!(
                "--count {}: at most {MAX_NODES} nodes",
                c.count
            )));
        }
        if c.count > 0 {
            let last = format!("{}{}", c.name_prefix, c.count - 1);
            if !is_dns_subdomain(&last) {
                return Err(SimError::Config(format!(
                    "--name-prefix {:?}: {last:?} is not a valid node name (lowercase letters, digits, '-' and '.')",
                    c.name_prefix
                )));
            }
        }
        if c.lease_seconds == 0 || c.status_seconds == 0 {
            return Err(SimError::Config(
                "--lease-seconds and --status-seconds must be at least 1".into(),
            ));
        }
        if c.concurrency == 0 {
            return Err(SimError::Config("--concurrency must be at least 1".into()));
        }
        if c.pod_cidr_base.prefix() > 24 {
            return Err(SimError::Config(format!(
                "--pod-cidr-base {}: the prefix must be /24 or shorter",
                c.pod_cidr_base
            )));
        }
        let mut capacity = BTreeMap::new();
        capacity.insert("cpu".to_string(), quantity("cpu", &c.cpu)?);
        capacity.insert("memory".to_string(), quantity("memory", &c.memory)?);
        capacity.insert("pods".to_string(), c.pods.to_string());
        capacity.insert(
            "ephemeral-storage".to_string(),
            quantity("ephemeral-storage", &c.ephemeral_storage)?,
        );
        Ok(Settings {
            count: c.count,
            name_prefix: c.name_prefix.clone(),
            capacity,
            labels: c.labels.clone(),
            taints: c.taints.clone(),
            lease_every: Duration::from_secs(c.lease_seconds),
            status_every: Duration::from_secs(c.status_seconds),
            pod_cidr_base: c.pod_cidr_base,
            concurrency: c.concurrency,
        })
    }

    /// The name of node `index`.
    pub fn node_name(&self, index: usize) -> String {
        format!("{}{index}", self.name_prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        config: SimNodesConfig,
    }

    #[test]
    fn defaults_match_flag_defaults() {
        let cli = Cli::try_parse_from(["sim-nodes"]).unwrap();
        assert_eq!(cli.config, SimNodesConfig::default());
    }

    #[test]
    fn flags_parse() {
        let cli = Cli::try_parse_from([
            "sim-nodes",
            "--count",
            "3",
            "--name-prefix",
            "n-",
            "--label",
            "zone=a",
            "--label",
            "gpu=",
            "--taint",
            "dedicated=infra:NoSchedule",
            "--taint",
            "spot:PreferNoSchedule",
            "--pod-cidr-base",
            "10.1.0.0/16",
            "--lease-seconds",
            "2",
        ])
        .unwrap();
        let c = cli.config;
        assert_eq!(c.count, 3);
        assert_eq!(
            c.labels,
            vec![("zone".into(), "a".into()), ("gpu".into(), "".into())]
        );
        assert_eq!(
            c.taints,
            vec![
                TaintSpec {
                    key: "dedicated".into(),
                    value: "infra".into(),
                    effect: TaintEffect::NoSchedule
                },
                TaintSpec {
                    key: "spot".into(),
                    value: "".into(),
                    effect: TaintEffect::PreferNoSchedule
                }
            ]
        );
        assert_eq!(c.pod_cidr_base.to_string(), "10.1.0.0/16");
        assert_eq!(c.lease_seconds, 2);
        assert_eq!(Settings::new(&c).unwrap().node_name(2), "n-2");
    }

    #[test]
    fn bad_flags_are_rejected() {
        assert!(Cli::try_parse_from(["sim-nodes", "--taint", "a=b:Sometimes"]).is_err());
        assert!(Cli::try_parse_from(["sim-nodes", "--taint", "a=b"]).is_err());
        assert!(Cli::try_parse_from(["sim-nodes", "--label", "=b"]).is_err());
        assert!(Cli::try_parse_from(["sim-nodes", "--pod-cidr-base", "10.0.0.0/33"]).is_err());
        let bad = |f: fn(&mut SimNodesConfig)| {
            let mut c = SimNodesConfig::default();
            f(&mut c);
            Settings::new(&c).is_err()
        };
        assert!(bad(|c| c.cpu = "four".into()));
        assert!(bad(|c| c.memory = "-1Gi".into()));
        assert!(bad(|c| c.name_prefix = "Upper-".into()));
        assert!(bad(|c| c.lease_seconds = 0));
        assert!(bad(|c| c.concurrency = 0));
        assert!(bad(|c| c.pod_cidr_base = "10.0.0.0/25".parse().unwrap()));
        assert!(bad(|c| c.count = MAX_NODES + 1));
    }

    #[test]
    fn capacity_is_canonical() {
        let c = SimNodesConfig {
            memory: "16384Mi".into(),
            cpu: "4000m".into(),
            ..Default::default()
        };
        let s = Settings::new(&c).unwrap();
        assert_eq!(s.capacity["memory"], "16Gi");
        assert_eq!(s.capacity["cpu"], "4");
        assert_eq!(s.capacity["pods"], "110");
        assert_eq!(s.capacity["ephemeral-storage"], "100Gi");
    }

    #[test]
    fn taint_display_round_trips() {
        for s in ["a=b:NoExecute", "a:NoSchedule"] {
            assert_eq!(s.parse::<TaintSpec>().unwrap().to_string(), s);
        }
    }
}
