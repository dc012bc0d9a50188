//! A node's components, as `ferrokube server` runs them for its own machine and
//! `ferrokube agent` for a machine that joins: the kubelet, kube-proxy, the node's
//! cluster DNS server and the VXLAN overlay to other nodes. [`NodeArgs`] are their
//! shared flags, [`plan`] turns them into each component's configuration and
//! [`start`] runs them with one kubeconfig.

use anyhow::{Context, Result};
use clap::{Args, Parser};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Flags of the node's components.
#[derive(Args, Clone)]
pub struct NodeArgs {
    /// Name of this machine's Node; defaults to the hostname.
    #[arg(long)]
    pub node_name: Option<String>,
    /// This node's address (its InternalIP, and where other nodes send its pods'
    /// traffic); defaults to the address of the interface holding the default route.
    #[arg(long)]
    pub node_ip: Option<IpAddr>,
    /// An extra flag for the kubelet, as `name=value` (repeatable; e.g.
    /// `oci-runtime=runc`).
    #[arg(long = "kubelet-arg", value_name = "NAME=VALUE")]
    pub kubelet_args: Vec<String>,
    /// Do not run kube-proxy for this machine.
    #[arg(long)]
    pub disable_kube_proxy: bool,
    /// An extra flag for kube-proxy, as `name=value` (repeatable; e.g.
    /// `min-sync-period=100ms`).
    #[arg(long = "kube-proxy-arg", value_name = "NAME=VALUE")]
    pub kube_proxy_args: Vec<String>,
    /// Do not serve cluster DNS on this node (it runs only with kube-proxy).
    #[arg(long)]
    pub disable_cluster_dns: bool,
    /// The cluster DNS Service's address, which pods use as their nameserver.
    #[arg(long, default_value = "10.43.0.10")]
    pub cluster_dns: IpAddr,
    /// The cluster's DNS domain.
    #[arg(long, default_value = "cluster.local")]
    pub cluster_domain: String,
    /// How pods reach pods of other nodes: `vxlan` (flannel's overlay, published in
    /// the Node's flannel annotations) or `none`.
    #[arg(long, default_value = "vxlan", value_parser = ["vxlan", "none"])]
    pub flannel_backend: String,
}

/// The kubelet's flags alone, to parse `--kubelet-arg`s.
#[derive(Parser)]
#[command(args_override_self = true)]
struct KubeletFlags {
    #[command(flatten)]
    config: kubelet::KubeletConfig,
}

/// kube-proxy's flags alone, to parse `--kube-proxy-arg`s.
#[derive(Parser)]
#[command(args_override_self = true)]
struct KubeProxyFlags {
    #[command(flatten)]
    config: service_proxy::ProxyConfig,
}

/// What runs on the node.
pub struct NodePlan {
    /// The Node's name.
    pub name: String,
    /// The kubelet's configuration.
    pub kubelet: Box<kubelet::KubeletConfig>,
    /// kube-proxy's, unless disabled.
    pub kube_proxy: Option<Box<service_proxy::ProxyConfig>>,
    /// Cluster DNS: the Service address and the server's flags.
    pub cluster_dns: Option<(IpAddr, cluster_dns::DnsConfig)>,
    /// The overlay, unless disabled or the node has no bridge network.
    pub overlay: Option<overlay_network::OverlayConfig>,
}

/// The cluster's address ranges, which kube-proxy needs.
pub struct ClusterRanges<'a> {
    /// Pods' addresses (`--cluster-cidr`).
    pub cluster_cidr: &'a str,
    /// Services' addresses (`--service-cluster-ip-range`).
    pub service_range: &'a str,
}

/// The node's name: `--node-name`, else the hostname.
pub fn node_name(args: &NodeArgs) -> String {
    args.node_name
        .clone()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(kubelet::machine::hostname)
}

/// Works out every component's configuration. `root` holds the kubelet's state,
/// `ca_file` the CA the kubelet checks the apiserver's client certificate against.
pub async fn plan(
    args: &NodeArgs,
    root: &Path,
    ca_file: &Path,
    ranges: &ClusterRanges<'_>,
) -> Result<NodePlan> {
    let name = node_name(args);
    let mut defaults = vec![
        format!("--root-dir={}", root.display()),
        format!("--runtime-state-dir={}", root.join("run").display()),
        format!("--pod-logs-dir={}", root.join("logs").display()),
        // A node of ours has a pod network, as a k3s node has flannel's.
        "--pod-network=bridge".to_string(),
        format!("--client-ca-file={}", ca_file.display()),
        format!("--hostname-override={name}"),
    ];
    if let Some(ip) = args.node_ip {
        defaults.push(format!("--node-ip={ip}"));
    }
    let dns = !args.disable_kube_proxy && !args.disable_cluster_dns;
    if dns {
        defaults.push(format!("--cluster-dns={}", args.cluster_dns));
        defaults.push(format!("--cluster-domain={}", args.cluster_domain));
    }
    let argv = crate::as_flags("kubelet", defaults, &args.kubelet_args);
    let mut kubelet = KubeletFlags::try_parse_from(argv)
        .context("--kubelet-arg")?
        .config;
    // The name the kubelet registers, which every other component serves.
    let name = kubelet
        .hostname_override
        .clone()
        .filter(|n| !n.is_empty())
        .unwrap_or(name);

    let overlay = if args.flannel_backend == "vxlan"
        && kubelet.pod_network == "bridge"
        && kubelet.cni_conf_dir.is_none()
    {
        match kubelet.node_ip.unwrap_or_else(kubelet::default_address) {
            IpAddr::V4(public_ip) if !public_ip.is_loopback() => {
                if kubelet.pod_mtu.is_none() {
                    let vtep = pod_network::Vtep::new(public_ip);
                    match vtep.pod_mtu().await {
                        Ok(mtu) => kubelet.pod_mtu = Some(mtu),
                        Err(e) => tracing::warn!(error = %e, "finding the overlay's MTU"),
                    }
                }
                Some(overlay_network::OverlayConfig {
                    node_name: name.clone(),
                    public_ip,
                    // Always, as flannel in k3s masquerades pods' IPv4 egress.
                    masquerade: ranges.cluster_cidr.parse().ok(),
                })
            }
            other => {
                tracing::warn!(address = %other, "no overlay: it needs the node's IPv4 address (--node-ip)");
                None
            }
        }
    } else {
        None
    };

    let kube_proxy = if args.disable_kube_proxy {
        None
    } else {
        let defaults = vec![
            format!("--cluster-cidr={}", ranges.cluster_cidr),
            format!("--service-cluster-ip-range={}", ranges.service_range),
            format!("--hostname-override={name}"),
        ];
        let argv = crate::as_flags("kube-proxy", defaults, &args.kube_proxy_args);
        let proxy = KubeProxyFlags::try_parse_from(argv).context("--kube-proxy-arg")?;
        Some(Box::new(proxy.config))
    };
    let cluster_dns = dns.then(|| {
        (
            args.cluster_dns,
            cluster_dns::DnsConfig {
                cluster_domain: args.cluster_domain.clone(),
                // Replaced by the node's pod gateway.
                dns_bind_address: SocketAddr::new(args.cluster_dns, 53),
                upstream_resolv_conf: kubelet.resolv_conf.clone(),
            },
        )
    });
    Ok(NodePlan {
        name,
        kubelet: Box::new(kubelet),
        kube_proxy,
        cluster_dns,
        overlay,
    })
}

/// The running kubelet: stopping it may stop its pods first.
pub struct RunningKubelet {
    task: tokio::task::JoinHandle<()>,
    stop: Arc<tokio::sync::Notify>,
    grace: Duration,
}

impl RunningKubelet {
    /// Asks the kubelet to stop and waits for it (its shutdown grace period, and a
    /// little more).
    pub async fn stop(self) {
        self.stop.notify_one();
        let _ = tokio::time::timeout(self.grace + Duration::from_secs(5), self.task).await;
    }
}

/// Starts the node's components with clients from `kubeconfig`; their tasks go to
/// `tasks`, except the kubelet's, which is returned.
pub async fn start(
    plan: NodePlan,
    kubeconfig: &Path,
    tasks: &mut Vec<tokio::task::JoinHandle<()>>,
) -> Result<RunningKubelet> {
    let forever = std::future::pending::<()>;
    if let Some(config) = plan.overlay {
        let client = crate::client_from(kubeconfig, "flannel").await?;
        tasks.push(tokio::spawn(async move {
            if let Err(e) = overlay_network::run(client, config, forever()).await {
                tracing::error!(error = %e, "overlay stopped");
            }
        }));
    } else {
        // No overlay, so no masquerade of pods' egress: rules an earlier run with
        // the overlay left go (another network plugin decides now).
        tasks.push(tokio::task::spawn_blocking(|| {
            if let Err(e) = pod_network::egress::remove(Path::new("nft")) {
                tracing::debug!(error = %e, "no egress masquerade rules removed");
            }
        }));
    }
    if let Some(config) = plan.kube_proxy {
        let client = crate::client_from(kubeconfig, "kube-proxy").await?;
        tasks.push(tokio::spawn(async move {
            if let Err(e) = service_proxy::run(client, *config, forever()).await {
                tracing::error!(error = %e, "kube-proxy stopped");
            }
        }));
    }
    if let Some((ip, config)) = plan.cluster_dns {
        let client = crate::client_from(kubeconfig, "cluster-dns").await?;
        let node = plan.name.clone();
        tasks.push(tokio::spawn(async move {
            if let Err(e) = cluster_dns::run_for_node(client, &node, ip, config, forever()).await {
                tracing::error!(error = %e, "cluster DNS stopped");
            }
        }));
    }
    let client = crate::client_from(kubeconfig, "kubelet").await?;
    let shim = crate::shim_command()?;
    let stop = Arc::new(tokio::sync::Notify::new());
    let grace = plan.kubelet.shutdown_grace_period;
    let config = plan.kubelet;
    let notified = stop.clone();
    let task = tokio::spawn(async move {
        let shutdown = async move { notified.notified().await };
        if let Err(e) = kubelet::run(client, *config, shim, shutdown).await {
            tracing::error!(error = %e, "kubelet stopped");
        }
    });
    Ok(RunningKubelet { task, stop, grace })
}

/// `ferrokube agent`: joins this machine to a cluster and runs its node.
#[derive(Args, Clone)]
pub struct AgentArgs {
    /// The server to join (`https://host:6443`).
    #[arg(long, env = "FERROKUBE_URL")]
    pub server: String,
    /// The join token (`K10<hash>::<id>.<secret>`, from the server's
    /// `<data-dir>/token`).
    #[arg(long, env = "FERROKUBE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// A file holding the join token.
    #[arg(long)]
    pub token_file: Option<PathBuf>,
    /// Where the node keeps its credentials, images, pods and network state.
    #[arg(long, default_value = "/var/lib/ferrokube/agent")]
    pub data_dir: PathBuf,
    /// The cluster's pod address range (the server's `--cluster-cidr`).
    #[arg(long, default_value = "10.42.0.0/16")]
    pub cluster_cidr: String,
    /// The cluster's Service address range (the server's
    /// `--service-cluster-ip-range`).
    #[arg(long, default_value = "10.43.0.0/16")]
    pub service_cluster_ip_range: String,
    #[command(flatten)]
    pub node: NodeArgs,
}

/// Joins the cluster (or reuses the credentials of an earlier join) and runs the
/// node until a signal.
pub async fn run_agent(args: AgentArgs) -> Result<()> {
    let token_text = match (&args.token, &args.token_file) {
        (Some(t), _) => t.clone(),
        (None, Some(f)) => {
            std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?
        }
        (None, None) => anyhow::bail!("--token or --token-file is required to join"),
    };
    let token = pki::join::JoinToken::parse(&token_text)
        .context("the join token is not of the form K10<hash>::<id>.<secret> or <id>.<secret>")?;
    let name = node_name(&args.node);
    let join = node_join::Join {
        server: args.server.trim_end_matches('/').to_string(),
        token,
        node_name: name.clone(),
        dir: args.data_dir.clone(),
    };
    let creds = node_join::credentials(&join).await.context("joining")?;
    println!(
        "ferrokube: node {name} joined {} (kubeconfig at {})",
        join.server,
        creds.kubeconfig.display()
    );
    let mut node_args = args.node.clone();
    node_args.node_name = Some(name);
    let ranges = ClusterRanges {
        cluster_cidr: &args.cluster_cidr,
        service_range: &args.service_cluster_ip_range,
    };
    let plan = plan(&node_args, &args.data_dir, &creds.ca_file, &ranges).await?;
    let mut tasks = Vec::new();
    let kubelet = start(plan, &creds.kubeconfig, &mut tasks).await?;
    crate::shutdown_signal().await;
    kubelet.stop().await;
    for t in &tasks {
        t.abort();
    }
    Ok(())
}
