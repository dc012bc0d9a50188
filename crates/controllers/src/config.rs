//! The controller manager's configuration: [`ControllerManagerConfig`], the flags of
//! upstream's kube-controller-manager that ferrokube's controllers read, with the same
//! names and defaults, and [`parse_go_duration`] for their duration values.

use std::time::Duration;

/// Parses a Go duration (`"40s"`, `"5m0s"`, `"1h30m"`, `"1.5s"`, `"0"`); `None` for
/// anything else (negative durations included).
pub fn parse_go_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    if s == "0" {
        return Some(Duration::ZERO);
    }
    let mut rest = s.strip_prefix('+').unwrap_or(s);
    if rest.is_empty() {
        return None;
    }
    let mut nanos: f64 = 0.0;
    while !rest.is_empty() {
        let end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number = &rest[..end];
        if number.is_empty() || number == "." || number.matches('.').count() > 1 {
            return None;
        }
        rest = &rest[end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit: f64 = match &rest[..unit_end] {
            "ns" => 1.0,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        rest = &rest[unit_end..];
        nanos += number.parse::<f64>().ok()? * unit;
    }
    Some(Duration::from_nanos(nanos.round() as u64))
}

fn duration_arg(s: &str) -> Result<Duration, String> {
    parse_go_duration(s).ok_or_else(|| format!("invalid duration {s:?}"))
}

/// Leader election of the controller manager (flags as upstream's).
#[derive(clap::Args, Clone, Debug, PartialEq)]
pub struct LeaderElectionConfig {
    /// Start a leader election client and gain leadership before executing the main
    /// loop. Enable this when running replicated components for high availability.
    #[arg(long = "leader-elect", default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub leader_elect: bool,
    /// The duration that non-leader candidates will wait after observing a leadership
    /// renewal until attempting to acquire leadership of a led but unrenewed leader slot.
    #[arg(long = "leader-elect-lease-duration", default_value = "15s", value_parser = duration_arg)]
    pub lease_duration: Duration,
    /// The interval between attempts by the acting master to renew a leadership slot
    /// before it stops leading.
    #[arg(long = "leader-elect-renew-deadline", default_value = "10s", value_parser = duration_arg)]
    pub renew_deadline: Duration,
    /// The duration the clients should wait between attempting acquisition and renewal
    /// of a leadership.
    #[arg(long = "leader-elect-retry-period", default_value = "2s", value_parser = duration_arg)]
    pub retry_period: Duration,
    /// The name of resource object that is used for locking during leader election.
    #[arg(
        long = "leader-elect-resource-name",
        default_value = "kube-controller-manager"
    )]
    pub resource_name: String,
    /// The namespace of resource object that is used for locking during leader election.
    #[arg(
        long = "leader-elect-resource-namespace",
        default_value = "kube-system"
    )]
    pub resource_namespace: String,
}

impl Default for LeaderElectionConfig {
    fn default() -> Self {
        LeaderElectionConfig {
            leader_elect: true,
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
            resource_name: "kube-controller-manager".into(),
            resource_namespace: "kube-system".into(),
        }
    }
}

/// Command-line configuration of the controller manager (flags as upstream's
/// kube-controller-manager; every controller reads its own from here).
#[derive(clap::Args, Clone, Debug, PartialEq)]
pub struct ControllerManagerConfig {
    /// A list of controllers to enable. '*' enables all on-by-default controllers, 'foo'
    /// enables the controller named 'foo', '-foo' disables the controller named 'foo'.
    #[arg(long = "controllers", value_delimiter = ',', default_value = "*")]
    pub controllers: Vec<String>,

    /// Leader election.
    #[command(flatten)]
    pub leader_election: LeaderElectionConfig,

    /// The number of replica sets that are allowed to sync concurrently.
    #[arg(long = "concurrent-replicaset-syncs", default_value_t = 5)]
    pub concurrent_replicaset_syncs: i32,
    /// The number of replication controllers that are allowed to sync concurrently.
    #[arg(long = "concurrent-rc-syncs", default_value_t = 5)]
    pub concurrent_rc_syncs: i32,
    /// The number of deployment objects that are allowed to sync concurrently.
    #[arg(long = "concurrent-deployment-syncs", default_value_t = 5)]
    pub concurrent_deployment_syncs: i32,
    /// The number of daemonset objects that are allowed to sync concurrently.
    #[arg(long = "concurrent-daemonset-syncs", default_value_t = 2)]
    pub concurrent_daemonset_syncs: i32,
    /// The number of statefulset objects that are allowed to sync concurrently.
    #[arg(long = "concurrent-statefulset-syncs", default_value_t = 5)]
    pub concurrent_statefulset_syncs: i32,
    /// The number of job objects that are allowed to sync concurrently.
    #[arg(long = "concurrent-job-syncs", default_value_t = 5)]
    pub concurrent_job_syncs: i32,
    /// The number of cron job objects that are allowed to sync concurrently.
    #[arg(long = "concurrent-cron-job-syncs", default_value_t = 5)]
    pub concurrent_cron_job_syncs: i32,
    /// The number of ttl-after-finished-controller workers that are allowed to sync
    /// concurrently.
    #[arg(long = "concurrent-ttl-after-finished-syncs", default_value_t = 5)]
    pub concurrent_ttl_after_finished_syncs: i32,

    /// The number of endpoint syncing operations that will be done concurrently.
    #[arg(long = "concurrent-endpoint-syncs", default_value_t = 5)]
    pub concurrent_endpoint_syncs: i32,
    /// The number of service endpoint (EndpointSlice) syncing operations that will be
    /// done concurrently.
    #[arg(long = "concurrent-service-endpoint-syncs", default_value_t = 5)]
    pub concurrent_service_endpoint_syncs: i32,
    /// The maximum number of endpoints that will be added to an EndpointSlice.
    #[arg(long = "max-endpoints-per-slice", default_value_t = 100)]
    pub max_endpoints_per_slice: i32,

    /// The number of namespace objects that are allowed to sync concurrently.
    #[arg(long = "concurrent-namespace-syncs", default_value_t = 10)]
    pub concurrent_namespace_syncs: i32,
    /// The period for syncing namespace life-cycle updates.
    #[arg(long = "namespace-sync-period", default_value = "5m0s", value_parser = duration_arg)]
    pub namespace_sync_period: Duration,
    /// Enables the generic garbage collector.
    #[arg(long = "enable-garbage-collector", default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub enable_garbage_collector: bool,
    /// The number of garbage collector workers that are allowed to sync concurrently.
    #[arg(long = "concurrent-gc-syncs", default_value_t = 20)]
    pub concurrent_gc_syncs: i32,
    /// Number of terminated pods that can exist before the terminated pod garbage
    /// collector starts deleting terminated pods. If <= 0, it is disabled.
    #[arg(long = "terminated-pod-gc-threshold", default_value_t = 12500)]
    pub terminated_pod_gc_threshold: i32,

    /// The number of resource quotas that are allowed to sync concurrently.
    #[arg(long = "concurrent-resource-quota-syncs", default_value_t = 5)]
    pub concurrent_resource_quota_syncs: i32,
    /// The period for syncing quota usage status in the system.
    #[arg(long = "resource-quota-sync-period", default_value = "5m0s", value_parser = duration_arg)]
    pub resource_quota_sync_period: Duration,

    /// The number of horizontal pod autoscaler objects that are allowed to sync
    /// concurrently.
    #[arg(
        long = "concurrent-horizontal-pod-autoscaler-syncs",
        default_value_t = 5
    )]
    pub concurrent_horizontal_pod_autoscaler_syncs: i32,
    /// The period for syncing the number of pods in horizontal pod autoscaler.
    #[arg(long = "horizontal-pod-autoscaler-sync-period", default_value = "15s", value_parser = duration_arg)]
    pub hpa_sync_period: Duration,
    /// The minimum change (from 1.0) in the desired-to-actual metrics ratio for the
    /// horizontal pod autoscaler to consider scaling.
    #[arg(long = "horizontal-pod-autoscaler-tolerance", default_value_t = 0.1)]
    pub hpa_tolerance: f64,
    /// The period for which autoscaler will look backwards and not scale down below
    /// any recommendation it made during that period.
    #[arg(long = "horizontal-pod-autoscaler-downscale-stabilization", default_value = "5m0s", value_parser = duration_arg)]
    pub hpa_downscale_stabilization: Duration,
    /// The period after pod start when readiness changes will be treated as initial
    /// readiness.
    #[arg(long = "horizontal-pod-autoscaler-initial-readiness-delay", default_value = "30s", value_parser = duration_arg)]
    pub hpa_initial_readiness_delay: Duration,
    /// The period after pod start when CPU samples might be skipped.
    #[arg(long = "horizontal-pod-autoscaler-cpu-initialization-period", default_value = "5m0s", value_parser = duration_arg)]
    pub hpa_cpu_initialization_period: Duration,

    /// The period for syncing NodeStatus in cloud-node-lifecycle-controller.
    #[arg(long = "node-monitor-period", default_value = "5s", value_parser = duration_arg)]
    pub node_monitor_period: Duration,
    /// Amount of time which we allow running Node to be unresponsive before marking it
    /// unhealthy.
    #[arg(long = "node-monitor-grace-period", default_value = "50s", value_parser = duration_arg)]
    pub node_monitor_grace_period: Duration,
    /// Amount of time which we allow starting Node to be unresponsive before marking it
    /// unhealthy.
    #[arg(long = "node-startup-grace-period", default_value = "1m0s", value_parser = duration_arg)]
    pub node_startup_grace_period: Duration,
    /// Number of nodes per second on which pods are deleted in case of node failure
    /// when a zone is healthy.
    #[arg(long = "node-eviction-rate", default_value_t = 0.1)]
    pub node_eviction_rate: f64,
    /// Number of nodes per second on which pods are deleted in case of node failure
    /// when a zone is unhealthy.
    #[arg(long = "secondary-node-eviction-rate", default_value_t = 0.01)]
    pub secondary_node_eviction_rate: f64,
    /// Number of nodes from which node-lifecycle-controller treats the cluster as large
    /// for the eviction logic purposes.
    #[arg(long = "large-cluster-size-threshold", default_value_t = 50)]
    pub large_cluster_size_threshold: i32,
    /// Fraction of Nodes in a zone which needs to be not Ready (minimum 3) for zone to
    /// be treated as unhealthy.
    #[arg(long = "unhealthy-zone-threshold", default_value_t = 0.55)]
    pub unhealthy_zone_threshold: f64,

    /// Should CIDRs for Pods be allocated and set on the cloud provider.
    #[arg(long = "allocate-node-cidrs", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub allocate_node_cidrs: bool,
    /// CIDR Range for Pods in cluster (comma-separated, at most one per IP family).
    #[arg(long = "cluster-cidr", default_value = "")]
    pub cluster_cidr: String,
    /// Mask size for IPv4 node cidr in dual-stack cluster.
    #[arg(long = "node-cidr-mask-size-ipv4", default_value_t = 24)]
    pub node_cidr_mask_size_ipv4: u8,
    /// Mask size for IPv6 node cidr in dual-stack cluster.
    #[arg(long = "node-cidr-mask-size-ipv6", default_value_t = 64)]
    pub node_cidr_mask_size_ipv6: u8,
    /// CIDR Range for Services in cluster.
    #[arg(long = "service-cluster-ip-range", default_value = "")]
    pub service_cluster_ip_range: String,

    /// If set, this root certificate authority will be included in service account's
    /// token secret and published as `kube-root-ca.crt` in every namespace.
    #[arg(long = "root-ca-file")]
    pub root_ca_file: Option<std::path::PathBuf>,

    /// The cluster CA (PEM) from the manager's own kubeconfig, used where
    /// `--root-ca-file` is not given (as upstream falls back to its client's CA).
    #[arg(skip)]
    pub client_ca_bundle: Option<String>,

    /// Filename containing a PEM-encoded X509 CA certificate used to issue
    /// cluster-scoped certificates. Without it (or the key) the CSR signing
    /// controller does not run.
    #[arg(long = "cluster-signing-cert-file")]
    pub cluster_signing_cert_file: Option<std::path::PathBuf>,
    /// Filename containing a PEM-encoded RSA or ECDSA private key used to sign
    /// cluster-scoped certificates.
    #[arg(long = "cluster-signing-key-file")]
    pub cluster_signing_key_file: Option<std::path::PathBuf>,
    /// The max length of duration signed certificates will be given. Individual CSRs
    /// may request shorter certs by setting spec.expirationSeconds.
    #[arg(long = "cluster-signing-duration", default_value = "8760h0m0s", value_parser = duration_arg)]
    pub cluster_signing_duration: Duration,
}

impl Default for ControllerManagerConfig {
    fn default() -> Self {
        ControllerManagerConfig {
            controllers: vec!["*".to_string()],
            leader_election: LeaderElectionConfig::default(),
            concurrent_replicaset_syncs: 5,
            concurrent_rc_syncs: 5,
            concurrent_deployment_syncs: 5,
            concurrent_daemonset_syncs: 2,
            concurrent_statefulset_syncs: 5,
            concurrent_job_syncs: 5,
            concurrent_cron_job_syncs: 5,
            concurrent_ttl_after_finished_syncs: 5,
            concurrent_endpoint_syncs: 5,
            concurrent_service_endpoint_syncs: 5,
            max_endpoints_per_slice: 100,
            concurrent_namespace_syncs: 10,
            namespace_sync_period: Duration::from_secs(300),
            enable_garbage_collector: true,
            concurrent_gc_syncs: 20,
            terminated_pod_gc_threshold: 12500,
            concurrent_resource_quota_syncs: 5,
            resource_quota_sync_period: Duration::from_secs(300),
            concurrent_horizontal_pod_autoscaler_syncs: 5,
            hpa_sync_period: Duration::from_secs(15),
            hpa_tolerance: 0.1,
            hpa_downscale_stabilization: Duration::from_secs(300),
            hpa_initial_readiness_delay: Duration::from_secs(30),
            hpa_cpu_initialization_period: Duration::from_secs(300),
            node_monitor_period: Duration::from_secs(5),
            node_monitor_grace_period: Duration::from_secs(50),
            node_startup_grace_period: Duration::from_secs(60),
            node_eviction_rate: 0.1,
            secondary_node_eviction_rate: 0.01,
            large_cluster_size_threshold: 50,
            unhealthy_zone_threshold: 0.55,
            allocate_node_cidrs: false,
            cluster_cidr: String::new(),
            node_cidr_mask_size_ipv4: 24,
            node_cidr_mask_size_ipv6: 64,
            service_cluster_ip_range: String::new(),
            root_ca_file: None,
            client_ca_bundle: None,
            cluster_signing_cert_file: None,
            cluster_signing_key_file: None,
            cluster_signing_duration: Duration::from_secs(8760 * 3600),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        config: ControllerManagerConfig,
    }

    fn parse(args: &[&str]) -> ControllerManagerConfig {
        let mut all = vec!["kcm"];
        all.extend_from_slice(args);
        Cli::try_parse_from(all).unwrap().config
    }

    #[test]
    fn defaults_match_upstream() {
        assert_eq!(parse(&[]), ControllerManagerConfig::default());
        let c = parse(&[
            "--concurrent-deployment-syncs=3",
            "--node-monitor-grace-period=40s",
            "--leader-elect=false",
            "--allocate-node-cidrs",
            "--cluster-cidr=10.42.0.0/16",
            "--horizontal-pod-autoscaler-tolerance=0.2",
            "--cluster-signing-cert-file=/pki/ca.crt",
            "--cluster-signing-duration=24h",
        ]);
        assert_eq!(
            c.cluster_signing_cert_file.as_deref(),
            Some(std::path::Path::new("/pki/ca.crt"))
        );
        assert_eq!(c.cluster_signing_key_file, None);
        assert_eq!(c.cluster_signing_duration, Duration::from_secs(24 * 3600));
        assert_eq!(c.concurrent_deployment_syncs, 3);
        assert_eq!(c.node_monitor_grace_period, Duration::from_secs(40));
        assert!(!c.leader_election.leader_elect);
        assert!(c.allocate_node_cidrs);
        assert_eq!(c.cluster_cidr, "10.42.0.0/16");
        assert_eq!(c.hpa_tolerance, 0.2);
        assert!(parse(&["--leader-elect"]).leader_election.leader_elect);
        let bad = Cli::try_parse_from(["kcm", "--namespace-sync-period=5 minutes"]);
        assert!(bad.is_err());
    }

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("0"), Some(Duration::ZERO));
        assert_eq!(parse_go_duration("5m0s"), Some(Duration::from_secs(300)));
        assert_eq!(parse_go_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_go_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_go_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_go_duration("-1s"), None);
        assert_eq!(parse_go_duration("10"), None);
        assert_eq!(parse_go_duration("1.2.3s"), None);
        assert_eq!(parse_go_duration(""), None);
    }
}
