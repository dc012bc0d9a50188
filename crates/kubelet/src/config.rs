//! The kubelet's flags, named as upstream's where upstream has the same knob, and
//! the directory layout derived from `--root-dir`.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

/// Flags of `ferrokube kubelet` (and of the kubelet inside `ferrokube server`).
#[derive(Args, Clone, Debug)]
pub struct KubeletConfig {
    /// Name of the Node to register; defaults to the machine's hostname, lowercased.
    #[arg(long = "hostname-override")]
    pub hostname_override: Option<String>,
    /// Where the kubelet keeps pod directories, volumes and images.
    #[arg(long, default_value = "/var/lib/ferrokube/agent")]
    pub root_dir: PathBuf,
    /// Where container state lives while the machine is up (a tmpfs such as /run).
    #[arg(long, default_value = "/run/ferrokube/containers")]
    pub runtime_state_dir: PathBuf,
    /// Container logs, as `<dir>/<namespace>_<pod>_<uid>/<container>/<restart>.log`.
    #[arg(long, default_value = "/var/log/pods")]
    pub pod_logs_dir: PathBuf,
    /// OCI runtime: `builtin` (ferrokube's own, inside the shim), `runc` or `crun`.
    #[arg(long, default_value = "builtin")]
    pub oci_runtime: String,
    /// The cgroup under which the `kubepods` tree is made (upstream's `--cgroup-root`).
    #[arg(long, default_value = "/")]
    pub cgroup_root: String,
    /// Image archives imported at start (air-gapped nodes); unchanged ones are skipped.
    /// Defaults to `<root-dir>/images`.
    #[arg(long)]
    pub image_import_dir: Option<PathBuf>,
    /// Address reported as the node's InternalIP; defaults to the primary address.
    #[arg(long)]
    pub node_ip: Option<std::net::IpAddr>,
    /// Address the kubelet API listens on.
    #[arg(long, default_value = "0.0.0.0")]
    pub address: std::net::IpAddr,
    /// Port of the kubelet API (HTTPS; logs, exec, attach, port-forward, stats).
    #[arg(long, default_value_t = 10250)]
    pub port: u16,
    /// Port of the plain-HTTP `/healthz` on 127.0.0.1 (0 turns it off).
    #[arg(long, default_value_t = 10248)]
    pub healthz_port: u16,
    /// CA bundle (PEM file) that signs the client certificates the kubelet API
    /// accepts (the apiserver's); defaults to the kubeconfig's CA.
    #[arg(long)]
    pub client_ca_file: Option<PathBuf>,
    /// The client CA's PEM, read from `--client-ca-file` or the kubeconfig.
    #[arg(skip)]
    pub client_ca: Option<String>,
    /// Labels added to the Node at registration (`key=value`, repeatable).
    #[arg(long = "node-labels", value_delimiter = ',')]
    pub node_labels: Vec<String>,
    /// Taints the Node registers with (`key=value:Effect`, repeatable).
    #[arg(long = "register-with-taints", value_delimiter = ',')]
    pub register_with_taints: Vec<String>,
    /// Most pods this node runs.
    #[arg(long, default_value_t = 110)]
    pub max_pods: u32,
    /// Most processes each pod may run (its cgroup's `pids.max`); -1 or 0 for no
    /// limit, as upstream's default.
    #[arg(long, default_value_t = -1, allow_hyphen_values = true)]
    pub pod_max_pids: i64,
    /// Resources held back for the system (`cpu=100m,memory=100Mi`).
    #[arg(long, value_delimiter = ',')]
    pub system_reserved: Vec<String>,
    /// Resources held back for Kubernetes daemons.
    #[arg(long, value_delimiter = ',')]
    pub kube_reserved: Vec<String>,
    /// How often the kubelet posts node status when nothing changes.
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    pub node_status_update_frequency: Duration,
    /// Static pod manifests; checked every `--file-check-frequency`.
    #[arg(long)]
    pub pod_manifest_path: Option<PathBuf>,
    /// A URL serving static pods (one Pod or a PodList), fetched every
    /// `--http-check-frequency`.
    #[arg(long)]
    pub manifest_url: Option<String>,
    /// How often `--manifest-url` is fetched again.
    #[arg(long, value_parser = parse_duration, default_value = "20s")]
    pub http_check_frequency: Duration,
    /// How often the static pod manifests are read again.
    #[arg(long, value_parser = parse_duration, default_value = "20s")]
    pub file_check_frequency: Duration,
    /// Most event writes per second (upstream's default 50); 0 means client-go's
    /// default client rate, 5 (and `--event-burst 0` its burst, 10).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(i32).range(0..))]
    pub event_qps: i32,
    /// Event writes allowed at once before `--event-qps` paces them.
    #[arg(long, default_value_t = 100)]
    pub event_burst: u32,
    /// Hard eviction thresholds (`memory.available<100Mi,nodefs.available<10%`).
    #[arg(long, default_value = crate::eviction::DEFAULT_EVICTION_HARD)]
    pub eviction_hard: String,
    /// Soft eviction thresholds (`memory.available<1.5Gi`): pressure at once, pods
    /// evicted only after the threshold stayed crossed for its grace period.
    #[arg(long, default_value = "")]
    pub eviction_soft: String,
    /// Grace period of each soft threshold (`memory.available=1m30s`).
    #[arg(long, default_value = "")]
    pub eviction_soft_grace_period: String,
    /// Most seconds a pod evicted for a soft threshold gets to terminate (less when
    /// its own terminationGracePeriodSeconds is shorter).
    #[arg(long, default_value_t = 0)]
    pub eviction_max_pod_grace_period: i64,
    /// How long a pressure condition stays raised after it was last observed.
    #[arg(long, value_parser = parse_duration, default_value = "5m")]
    pub eviction_pressure_transition_period: Duration,
    /// How often the eviction manager measures the node (ferrokube's knob;
    /// upstream's is fixed at 10 s).
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    pub eviction_monitoring_interval: Duration,
    /// On shutdown (the kubelet told to stop), the time pods get to terminate
    /// before the kubelet exits; 0 leaves containers running, as a kubelet restart
    /// needs (upstream's graceful node shutdown, which it starts from logind).
    #[arg(long, value_parser = parse_duration, default_value = "0s")]
    pub shutdown_grace_period: Duration,
    /// The part of `--shutdown-grace-period` kept for critical pods, which stop
    /// after all others.
    #[arg(long, value_parser = parse_duration, default_value = "0s")]
    pub shutdown_grace_period_critical_pods: Duration,
    /// Disk usage percent of the image filesystem above which image garbage
    /// collection runs.
    #[arg(long, default_value_t = 85)]
    pub image_gc_high_threshold: u8,
    /// Disk usage percent image garbage collection frees down to.
    #[arg(long, default_value_t = 80)]
    pub image_gc_low_threshold: u8,
    /// Pull images from registries over plain HTTP for these hosts (`127.0.0.1:5000`).
    #[arg(long = "insecure-registry")]
    pub insecure_registries: Vec<String>,
    /// The pod network: `bridge` connects every pod that is not hostNetwork to a
    /// bridge on the node's podCIDR through a veth pair and reports its address;
    /// `none` gives pods only their loopback. A standalone kubelet has none by default
    /// (as upstream's without a CNI configuration); `ferrokube server` gives its own
    /// kubelet `bridge`.
    #[arg(long, default_value = "none", value_parser = ["none", "bridge"])]
    pub pod_network: String,
    /// The node bridge's name with `--pod-network=bridge`.
    #[arg(long, default_value = "cni0")]
    pub pod_bridge_name: String,
    /// The node's pod CIDR; by default the Node's `spec.podCIDR` (from the node IPAM
    /// controller).
    #[arg(long)]
    pub pod_cidr: Option<ipnet::IpNet>,
    /// The MTU of pods' interfaces with `--pod-network=bridge` (the overlay's, when
    /// nodes are joined by one: the node interface's less 50 for VXLAN); the kernel's
    /// default when unset.
    #[arg(long)]
    pub pod_mtu: Option<u32>,
    /// Network configurations of CNI plugins: with it, pods are networked by the
    /// first configuration of this directory instead of `--pod-network`.
    #[arg(long)]
    pub cni_conf_dir: Option<PathBuf>,
    /// Where the CNI plugins are (comma-separated directories).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "/opt/cni/bin,/usr/lib/cni"
    )]
    pub cni_bin_dir: Vec<PathBuf>,
    /// The cluster DNS servers pods with `dnsPolicy: ClusterFirst` use (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub cluster_dns: Vec<std::net::IpAddr>,
    /// The cluster's DNS domain, searched by pods after their namespace's.
    #[arg(long, default_value = "")]
    pub cluster_domain: String,
    /// The node's resolver configuration, for `dnsPolicy: Default` and as the
    /// base of the others' search path.
    #[arg(long, default_value = "/etc/resolv.conf")]
    pub resolv_conf: PathBuf,
}

impl KubeletConfig {
    /// Defaults as the flags give them, with everything kept under `root` (for
    /// the server's own kubelet and for tests).
    pub fn under(root: impl Into<PathBuf>) -> KubeletConfig {
        let root = root.into();
        KubeletConfig {
            hostname_override: None,
            runtime_state_dir: root.join("run"),
            pod_logs_dir: root.join("logs"),
            root_dir: root,
            oci_runtime: "builtin".into(),
            cgroup_root: "/".into(),
            image_import_dir: None,
            node_ip: None,
            address: std::net::IpAddr::from([0, 0, 0, 0]),
            port: 10250,
            healthz_port: 10248,
            client_ca_file: None,
            client_ca: None,
            node_labels: Vec::new(),
            register_with_taints: Vec::new(),
            max_pods: 110,
            pod_max_pids: -1,
            system_reserved: Vec::new(),
            kube_reserved: Vec::new(),
            node_status_update_frequency: Duration::from_secs(10),
            pod_manifest_path: None,
            file_check_frequency: Duration::from_secs(20),
            manifest_url: None,
            http_check_frequency: Duration::from_secs(20),
            event_qps: 50,
            event_burst: 100,
            eviction_hard: crate::eviction::DEFAULT_EVICTION_HARD.into(),
            eviction_monitoring_interval: Duration::from_secs(10),
            eviction_soft: String::new(),
            eviction_soft_grace_period: String::new(),
            eviction_max_pod_grace_period: 0,
            eviction_pressure_transition_period: Duration::from_secs(300),
            shutdown_grace_period: Duration::ZERO,
            shutdown_grace_period_critical_pods: Duration::ZERO,
            image_gc_high_threshold: 85,
            image_gc_low_threshold: 80,
            insecure_registries: Vec::new(),
            pod_network: "none".into(),
            pod_bridge_name: "cni0".into(),
            pod_cidr: None,
            pod_mtu: None,
            cni_conf_dir: None,
            cni_bin_dir: vec!["/opt/cni/bin".into(), "/usr/lib/cni".into()],
            cluster_dns: Vec::new(),
            cluster_domain: String::new(),
            resolv_conf: "/etc/resolv.conf".into(),
        }
    }

    /// Pod directories: `<root>/pods/<uid>`.
    pub fn pods_dir(&self) -> PathBuf {
        self.root_dir.join("pods")
    }

    /// The content-addressed image store.
    pub fn image_store_dir(&self) -> PathBuf {
        self.root_dir.join("image-store")
    }

    /// Archives imported at start.
    pub fn import_dir(&self) -> PathBuf {
        self.image_import_dir
            .clone()
            .unwrap_or_else(|| self.root_dir.join("images"))
    }
}

/// A Go duration flag value (`10s`, `1m30s`).
fn parse_duration(s: &str) -> Result<Duration, String> {
    controllers::config::parse_go_duration(s).ok_or_else(|| format!("invalid duration {s:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        kubelet: KubeletConfig,
    }

    #[test]
    fn event_limits_default_and_bounds_as_upstream() {
        let c = Cli::try_parse_from(["kubelet"]).unwrap().kubelet;
        assert_eq!((c.event_qps, c.event_burst), (50, 100));
        let default = KubeletConfig::under("/tmp/k");
        assert_eq!((default.event_qps, default.event_burst), (50, 100));
        let c = Cli::try_parse_from(["kubelet", "--event-qps", "0", "--event-burst", "7"])
            .unwrap()
            .kubelet;
        assert_eq!((c.event_qps, c.event_burst), (0, 7));
        for bad in [
            ["--event-qps", "-1"],
            ["--event-qps", "1.5"],
            ["--event-burst", "-1"],
        ] {
            assert!(
                Cli::try_parse_from(["kubelet", bad[0], bad[1]]).is_err(),
                "{bad:?} accepted"
            );
        }
    }
}
