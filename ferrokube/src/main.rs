//! The `ferrokube` binary: argument parsing and wiring of the component crates.
//!
//! Subcommands name the components (`server` runs the all-in-one cluster,
//! `apiserver` the API server alone, `scheduler` and `controller-manager` those
//! components against any apiserver, `kubelet` the node agent, `kube-proxy` the
//! node's Service data path, `cluster-dns` the cluster's DNS server, `images` the
//! node's image store, `sim-nodes` simulated nodes for tests and benchmarks). Like
//! hyperkube, the binary also dispatches on the name it was started as: a symlink
//! called `kube-apiserver` runs the apiserver, `kube-scheduler` the scheduler,
//! `kube-controller-manager` the controller manager, `kubelet` the kubelet,
//! `kube-proxy` kube-proxy. The hidden `container-shim` subcommand is the
//! per-container shim the kubelet's runtime starts.

mod apiclient;
mod node;

use anyhow::{Context, Result};

/// mimalloc: the apiserver allocates and frees many small JSON values per request;
/// glibc malloc spent about a third of the CPU time on that.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use clap::{Args, Parser, Subcommand};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

#[derive(Parser)]
#[command(name = "ferrokube", version, about = "Kubernetes, written in Rust")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run an all-in-one cluster: the API server with the embedded store, the scheduler, the controller manager and a kubelet for this machine.
    Server(Box<ServerArgs>),
    /// Run the API server alone.
    #[command(alias = "kube-apiserver")]
    Apiserver(ApiserverArgs),
    /// Run the scheduler against an API server.
    #[command(alias = "kube-scheduler")]
    Scheduler(SchedulerCmd),
    /// Run the controller manager against an API server.
    #[command(alias = "kube-controller-manager")]
    ControllerManager(Box<ControllerManagerCmd>),
    /// Register simulated nodes that play the kubelet for their pods (a testing and
    /// scale tool; never part of a real cluster).
    SimNodes(SimNodesCmd),
    /// Run the kubelet: register this machine as a Node and run its pods as containers.
    Kubelet(Box<KubeletCmd>),
    /// Join this machine to a cluster (`--server`, `--token`) and run its node: the
    /// kubelet, kube-proxy, cluster DNS and the overlay.
    Agent(Box<node::AgentArgs>),
    /// Manage the node's images: import archives, list, remove.
    Images(ImagesCmd),
    /// Run kube-proxy: program this node's data path for Services.
    #[command(name = "kube-proxy", alias = "proxy")]
    KubeProxy(Box<KubeProxyCmd>),
    /// Serve cluster DNS (Services, endpoints and pods under the cluster domain).
    ClusterDns(Box<ClusterDnsCmd>),
}

#[derive(Args, Clone)]
struct ClusterDnsCmd {
    /// Kubeconfig with the API server's address and credentials.
    #[arg(long, default_value = "/var/lib/ferrokube/admin.kubeconfig")]
    kubeconfig: PathBuf,
    #[command(flatten)]
    config: cluster_dns::DnsConfig,
}

#[derive(Args, Clone)]
struct KubeProxyCmd {
    /// Kubeconfig with the API server's address and credentials.
    #[arg(long, default_value = "/var/lib/ferrokube/admin.kubeconfig")]
    kubeconfig: PathBuf,
    #[command(flatten)]
    config: service_proxy::ProxyConfig,
}

#[derive(Args, Clone)]
struct KubeletCmd {
    /// Kubeconfig with the API server's address and credentials.
    #[arg(long, default_value = "/var/lib/ferrokube/admin.kubeconfig")]
    kubeconfig: PathBuf,
    #[command(flatten)]
    config: kubelet::KubeletConfig,
}

#[derive(Args, Clone)]
struct ImagesCmd {
    /// The kubelet's root directory (its image store is `<root-dir>/image-store`).
    #[arg(long, global = true, default_value = "/var/lib/ferrokube/agent")]
    root_dir: PathBuf,
    #[command(subcommand)]
    action: ImagesAction,
}

#[derive(Subcommand, Clone)]
enum ImagesAction {
    /// Import OCI-layout or docker-archive tarballs (plain or gzip).
    Import {
        /// Archives to import.
        #[arg(required = true)]
        archives: Vec<PathBuf>,
    },
    /// List the images.
    #[command(alias = "list")]
    Ls,
    /// Remove images by name or ID.
    Rm {
        /// Names (`busybox:1.36`) or IDs.
        #[arg(required = true)]
        references: Vec<String>,
    },
}

#[derive(Args, Clone)]
struct ControllerManagerCmd {
    /// Kubeconfig with the API server's address and credentials.
    #[arg(long, default_value = "/var/lib/ferrokube/admin.kubeconfig")]
    kubeconfig: PathBuf,
    #[command(flatten)]
    config: controller_manager::ControllerManagerConfig,
}

#[derive(Args, Clone)]
struct SimNodesCmd {
    /// Kubeconfig with the API server's address and credentials.
    #[arg(long, default_value = "/var/lib/ferrokube/admin.kubeconfig")]
    kubeconfig: PathBuf,
    #[command(flatten)]
    config: simnodes::SimNodesConfig,
}

#[derive(Args, Clone)]
struct ServerArgs {
    #[command(flatten)]
    api: ApiserverArgs,
    /// Do not run the scheduler in-process.
    #[arg(long)]
    disable_scheduler: bool,
    /// Do not run the controller manager in-process.
    #[arg(long)]
    disable_controller_manager: bool,
    /// Pod address range: each node gets a /24 of it as its podCIDR.
    #[arg(long, default_value = "10.42.0.0/16")]
    cluster_cidr: String,
    /// An extra flag for the in-process controller manager, as `name=value` (repeatable;
    /// e.g. `node-monitor-grace-period=20s`).
    #[arg(long = "kube-controller-manager-arg", value_name = "NAME=VALUE")]
    controller_manager_args: Vec<String>,
    /// An extra flag for the in-process scheduler, as `name=value` (repeatable).
    #[arg(long = "kube-scheduler-arg", value_name = "NAME=VALUE")]
    scheduler_args: Vec<String>,
    /// Do not run a kubelet for this machine in-process (the server then has no node).
    #[arg(long)]
    disable_agent: bool,
    /// The join token (`K10<hash>::<id>.<secret>` or `<id>.<secret>`); made on first
    /// start and kept in `<data-dir>/token` when not given.
    #[arg(long, env = "FERROKUBE_TOKEN", hide_env_values = true)]
    token: Option<String>,
    #[command(flatten)]
    node: node::NodeArgs,
}

/// The controller manager's flags alone, to parse `--kube-controller-manager-arg`s.
#[derive(clap::Parser)]
#[command(args_override_self = true)]
struct ControllerManagerFlags {
    #[command(flatten)]
    config: controller_manager::ControllerManagerConfig,
}

/// The scheduler's flags alone, to parse `--kube-scheduler-arg`s.
#[derive(clap::Parser)]
#[command(args_override_self = true)]
struct SchedulerFlags {
    #[command(flatten)]
    args: scheduler::SchedulerArgs,
}

/// `name=value` pairs as `--name=value` arguments after a program name.
fn as_flags(program: &str, defaults: Vec<String>, pairs: &[String]) -> Vec<String> {
    let mut out = vec![program.to_string()];
    out.extend(defaults);
    out.extend(
        pairs
            .iter()
            .map(|p| format!("--{}", p.trim_start_matches('-'))),
    );
    out
}

#[derive(Args, Clone)]
struct SchedulerCmd {
    /// Kubeconfig with the API server's address and credentials.
    #[arg(long, default_value = "/var/lib/ferrokube/admin.kubeconfig")]
    kubeconfig: PathBuf,
    #[command(flatten)]
    args: scheduler::SchedulerArgs,
}

/// A Kubernetes client from a kubeconfig file.
/// The user agent of a component, as upstream's (`kube-scheduler/v1.33.0 (linux/amd64)
/// ferrokube`): its first segment names the field manager of the component's writes.
fn user_agent(component: &str) -> String {
    format!(
        "{component}/v1.33.0 (linux/amd64) ferrokube/{}",
        env!("CARGO_PKG_VERSION")
    )
}

async fn client_from(kubeconfig: &std::path::Path, component: &str) -> Result<kube::Client> {
    let kc = kube::config::Kubeconfig::read_from(kubeconfig)
        .with_context(|| format!("reading {}", kubeconfig.display()))?;
    let mut cfg =
        kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
            .await
            .context("loading the kubeconfig")?;
    let ua = http::HeaderValue::from_str(&user_agent(component)).context("user agent")?;
    cfg.headers.push((http::header::USER_AGENT, ua));
    apiclient::client(cfg).context("building the API client")
}

async fn run_controller_manager(mut cmd: ControllerManagerCmd) -> Result<()> {
    let client = client_from(&cmd.kubeconfig, "kube-controller-manager").await?;
    if cmd.config.root_ca_file.is_none() {
        cmd.config.client_ca_bundle = kubeconfig_ca(&cmd.kubeconfig).await;
    }
    tokio::select! {
        r = controller_manager::run(client, cmd.config) => r.context("controller manager"),
        _ = shutdown_signal() => Ok(()),
    }
}

/// The cluster CA of a kubeconfig's current context, as PEM.
async fn kubeconfig_ca(kubeconfig: &std::path::Path) -> Option<String> {
    use base64::Engine;
    let kc = kube::config::Kubeconfig::read_from(kubeconfig).ok()?;
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .ok()?;
    let certs = cfg.root_cert?;
    let mut pem = String::new();
    for der in certs {
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        pem.push_str("-----BEGIN CERTIFICATE-----\n");
        for chunk in b64.as_bytes().chunks(64) {
            pem.push_str(std::str::from_utf8(chunk).ok()?);
            pem.push('\n');
        }
        pem.push_str("-----END CERTIFICATE-----\n");
    }
    (!pem.is_empty()).then_some(pem)
}

async fn run_sim_nodes(cmd: SimNodesCmd) -> Result<()> {
    let client = client_from(&cmd.kubeconfig, "ferrokube-sim-nodes").await?;
    tokio::select! {
        r = simnodes::run(client, cmd.config) => r.context("simulated nodes"),
        _ = shutdown_signal() => Ok(()),
    }
}

async fn run_scheduler(cmd: SchedulerCmd) -> Result<()> {
    let client = client_from(&cmd.kubeconfig, "kube-scheduler").await?;
    tokio::select! {
        r = scheduler::run(client, cmd.args) => r.context("scheduler"),
        _ = shutdown_signal() => Ok(()),
    }
}

async fn shutdown_signal() {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[derive(Args, Clone)]
struct ApiserverArgs {
    /// Directory for the embedded store, the cluster CA and the admin kubeconfig.
    #[arg(long, default_value = "/var/lib/ferrokube")]
    data_dir: PathBuf,
    /// Address to serve HTTPS on.
    #[arg(long, default_value = "0.0.0.0")]
    bind_address: IpAddr,
    /// HTTPS port.
    #[arg(long, default_value_t = 6443)]
    secure_port: u16,
    /// Address advertised to the cluster (the `kubernetes` Service endpoints);
    /// defaults to the address of the interface holding the default route.
    #[arg(long)]
    advertise_address: Option<IpAddr>,
    /// etcd endpoints (comma separated); without them the embedded store is used.
    #[arg(long, value_delimiter = ',')]
    etcd_servers: Vec<String>,
    /// ClusterIP range of Services.
    #[arg(long, default_value = "10.43.0.0/16")]
    service_cluster_ip_range: String,
    /// NodePort range of Services.
    #[arg(long, default_value = "30000-32767")]
    service_node_port_range: String,
    /// Extra names or IPs for the serving certificate.
    #[arg(long = "tls-san")]
    tls_sans: Vec<String>,
    /// Admission plugins to turn off (e.g. `ServiceAccount`), comma separated.
    #[arg(long, value_delimiter = ',')]
    disable_admission_plugins: Vec<String>,
    /// Seconds between compactions of old store revisions.
    #[arg(long, default_value_t = 300)]
    compaction_interval: u64,
}

fn parse_port_range(s: &str) -> Result<(u16, u16)> {
    let (a, b) = s
        .split_once('-')
        .with_context(|| format!("port range {s:?} is not of the form low-high"))?;
    let (a, b): (u16, u16) = (a.trim().parse()?, b.trim().parse()?);
    anyhow::ensure!(a <= b, "port range {s:?} is empty");
    Ok((a, b))
}

async fn open_store(args: &ApiserverArgs) -> Result<Arc<dyn store::Storage>> {
    if args.etcd_servers.is_empty() {
        let s = store::EmbeddedStore::open(
            &args.data_dir.join("db"),
            store::EmbeddedOptions::default(),
        )
        .with_context(|| format!("opening the embedded store in {}", args.data_dir.display()))?;
        Ok(Arc::new(s))
    } else {
        let s = store::EtcdStore::connect(&args.etcd_servers)
            .await
            .context("connecting to etcd")?;
        Ok(Arc::new(s))
    }
}

/// Which components run inside the API server's process.
#[derive(Default)]
struct InProcess {
    scheduler: Option<scheduler::SchedulerArgs>,
    controller_manager: Option<Box<controller_manager::ControllerManagerConfig>>,
    /// The server's own node.
    node: Option<node::NodePlan>,
    /// The token nodes join with.
    join_token: Option<pki::join::JoinToken>,
}

/// How the kubelet's runtime starts container shims: this binary, `container-shim`.
fn shim_command() -> Result<kubelet::ShimCommand> {
    Ok(kubelet::ShimCommand {
        program: std::env::current_exe().context("locating the ferrokube binary")?,
        args: vec!["container-shim".into()],
    })
}

async fn run_kubelet(mut cmd: KubeletCmd) -> Result<()> {
    let client = client_from(&cmd.kubeconfig, "kubelet").await?;
    if cmd.config.client_ca_file.is_none() {
        // The apiserver's client certificate is signed by the cluster CA.
        cmd.config.client_ca = kubeconfig_ca(&cmd.kubeconfig).await;
    }
    let shim = shim_command()?;
    // The kubelet decides what shutting down means (with --shutdown-grace-period
    // it stops the pods first).
    kubelet::run(client, cmd.config, shim, shutdown_signal())
        .await
        .context("kubelet")
}

async fn run_kube_proxy(cmd: KubeProxyCmd) -> Result<()> {
    if cmd.config.cleanup {
        // Removing the rules needs no API server.
        return service_proxy::cleanup(&cmd.config)
            .await
            .context("kube-proxy --cleanup");
    }
    let client = client_from(&cmd.kubeconfig, "kube-proxy").await?;
    service_proxy::run(client, cmd.config, shutdown_signal())
        .await
        .context("kube-proxy")
}

async fn run_cluster_dns(cmd: ClusterDnsCmd) -> Result<()> {
    let client = client_from(&cmd.kubeconfig, "cluster-dns").await?;
    cluster_dns::run(client, cmd.config, shutdown_signal())
        .await
        .context("cluster DNS")
}

fn run_images(cmd: ImagesCmd) -> Result<()> {
    let store = images::ImageStore::open(cmd.root_dir.join("image-store"))
        .context("opening the image store")?;
    match cmd.action {
        ImagesAction::Import { archives } => {
            for a in archives {
                let imported = store
                    .import(&a)
                    .with_context(|| format!("importing {}", a.display()))?;
                for i in imported {
                    let names = if i.repo_tags.is_empty() {
                        "<none>".to_string()
                    } else {
                        i.repo_tags.join(", ")
                    };
                    println!("imported {names} ({})", i.id);
                }
            }
        }
        ImagesAction::Ls => {
            println!("{:<60} {:<15} {:>10}", "IMAGE", "IMAGE ID", "SIZE");
            for i in store.list().context("listing images")? {
                let id = i.id.trim_start_matches("sha256:");
                let short = &id[..id.len().min(13)];
                let names = if i.repo_tags.is_empty() {
                    vec!["<none>".to_string()]
                } else {
                    i.repo_tags.clone()
                };
                for n in names {
                    println!("{n:<60} {short:<15} {:>10}", human_size(i.size));
                }
            }
        }
        ImagesAction::Rm { references } => {
            for r in references {
                store.remove(&r).with_context(|| format!("removing {r}"))?;
                println!("Deleted: {r}");
            }
        }
    }
    Ok(())
}

/// Sizes as crictl prints them (`1.2MB`).
fn human_size(bytes: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1000.0 && u + 1 < units.len() {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes}B")
    } else {
        format!("{v:.3}{}", units[u])
    }
}

async fn run_server(args: ServerArgs) -> Result<()> {
    use clap::Parser;
    let mut components = InProcess::default();
    if !args.disable_scheduler {
        let argv = as_flags("kube-scheduler", Vec::new(), &args.scheduler_args);
        let flags = SchedulerFlags::try_parse_from(argv).context("--kube-scheduler-arg")?;
        components.scheduler = Some(flags.args);
    }
    if !args.disable_controller_manager {
        // One in-process manager per server: no election needed. Nodes get podCIDRs
        // from --cluster-cidr; namespaces get the cluster CA, which also signs
        // approved certificate signing requests.
        let pki = args.api.data_dir.join("pki");
        let defaults = vec![
            "--leader-elect=false".to_string(),
            "--allocate-node-cidrs=true".to_string(),
            format!("--cluster-cidr={}", args.cluster_cidr),
            format!(
                "--service-cluster-ip-range={}",
                args.api.service_cluster_ip_range
            ),
            format!("--root-ca-file={}", pki.join("ca.crt").display()),
            format!(
                "--cluster-signing-cert-file={}",
                pki.join("ca.crt").display()
            ),
            format!(
                "--cluster-signing-key-file={}",
                pki.join("ca.key").display()
            ),
        ];
        let argv = as_flags(
            "kube-controller-manager",
            defaults,
            &args.controller_manager_args,
        );
        let flags = ControllerManagerFlags::try_parse_from(argv)
            .context("--kube-controller-manager-arg")?;
        controller_manager::validate(&flags.config)?;
        components.controller_manager = Some(Box::new(flags.config));
    }
    if !args.disable_agent {
        // The server's own node: state under the data directory.
        let pki_dir = args.api.data_dir.join("pki");
        let ranges = node::ClusterRanges {
            cluster_cidr: &args.cluster_cidr,
            service_range: &args.api.service_cluster_ip_range,
        };
        let plan = node::plan(
            &args.node,
            &args.api.data_dir.join("agent"),
            &pki_dir.join("ca.crt"),
            &ranges,
        )
        .await?;
        components.node = Some(plan);
    }
    // The token other nodes join with, for this cluster's CA.
    let ca = pki::ClusterCa::load_or_create(&args.api.data_dir.join("pki"))
        .context("loading the cluster CA")?;
    let given = match &args.token {
        Some(t) => Some(
            pki::join::JoinToken::parse(t)
                .context("--token is not of the form K10<hash>::<id>.<secret> or <id>.<secret>")?,
        ),
        None => None,
    };
    let token_path = args.api.data_dir.join("token");
    let token = pki::join::JoinToken::load_or_create(&token_path, ca.cert_pem(), given.as_ref())
        .context("making the join token")?;
    println!("ferrokube: join token at {}", token_path.display());
    components.join_token = Some(token);
    run_apiserver(args.api, components).await
}

async fn run_apiserver(args: ApiserverArgs, in_process: InProcess) -> Result<()> {
    let started = Instant::now();
    let store = open_store(&args).await?;
    let mut config = apiserver::Config::new(args.data_dir.clone());
    config.bind_address = args.bind_address;
    config.secure_port = args.secure_port;
    config.advertise_address = args
        .advertise_address
        .unwrap_or_else(kubelet::default_address);
    config.service_cluster_ip_range = args.service_cluster_ip_range.clone();
    config.service_node_port_range = parse_port_range(&args.service_node_port_range)?;
    config.extra_sans = args.tls_sans.clone();
    config.disable_admission_plugins = args.disable_admission_plugins.clone();
    config.compaction_interval = std::time::Duration::from_secs(args.compaction_interval.max(1));
    config.join_token = in_process.join_token.clone();
    let running = apiserver::start(config, store).await?;
    println!(
        "ferrokube: API server listening on https://{}",
        running.addr
    );
    println!(
        "ferrokube: admin kubeconfig at {}",
        running.kubeconfig.display()
    );
    if running.wait_ready(std::time::Duration::from_secs(60)).await {
        println!("ferrokube: ready in {} ms", started.elapsed().as_millis());
    }
    // The in-process components talk to the API over HTTPS like any client.
    let mut components = Vec::new();
    // Each component has its own client, so its writes carry its own field manager.
    if let Some(args) = in_process.scheduler {
        let client = client_from(&running.kubeconfig, "kube-scheduler").await?;
        components.push(tokio::spawn(async move {
            if let Err(e) = scheduler::run(client, args).await {
                tracing::error!(error = %e, "scheduler stopped");
            }
        }));
    }
    if let Some(config) = in_process.controller_manager {
        let client = client_from(&running.kubeconfig, "kube-controller-manager").await?;
        components.push(tokio::spawn(async move {
            if let Err(e) = controller_manager::run(client, *config).await {
                tracing::error!(error = %e, "controller manager stopped");
            }
        }));
    }
    let kubelet = match in_process.node {
        Some(plan) => Some(node::start(plan, &running.kubeconfig, &mut components).await?),
        None => None,
    };
    shutdown_signal().await;
    // The kubelet may stop its pods first (--shutdown-grace-period), while the
    // API is still up to hear about it.
    if let Some(k) = kubelet {
        k.stop().await;
    }
    for c in &components {
        c.abort();
    }
    running.stop();
    Ok(())
}

/// mimalloc's option number of `arena_eager_commit` (mimalloc.h, v3).
const MI_OPTION_ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;

/// Runs as an ELF constructor, before the Rust runtime makes its first allocation:
/// mimalloc must not commit whole arenas up front, or idle memory grows by ~12 MB.
extern "C" fn configure_allocator() {
    // SAFETY: setting an option is always allowed; it affects allocations made after it.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_ARENA_EAGER_COMMIT, 0) };
}

#[used]
#[unsafe(link_section = ".init_array")]
static CONFIGURE_ALLOCATOR: extern "C" fn() = configure_allocator;

fn main() -> Result<()> {
    // A container's shim runs before (and without) the async runtime, and logs
    // nothing: its stderr may be a container's or an exec's.
    if std::env::args_os()
        .nth(1)
        .is_some_and(|a| a == "container-shim")
    {
        let args = std::env::args_os().skip(2).collect();
        std::process::exit(container_runtime::shim_main(args));
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    // Hyperkube style: a symlink named after a component runs that component.
    let mut argv: Vec<String> = std::env::args().collect();
    let invoked = argv
        .first()
        .and_then(|a| std::path::Path::new(a).file_name())
        .and_then(|n| n.to_str())
        .unwrap_or("ferrokube")
        .to_string();
    match invoked.as_str() {
        "kube-apiserver" | "apiserver" => argv.insert(1, "apiserver".into()),
        "kube-scheduler" | "scheduler" => argv.insert(1, "scheduler".into()),
        "kube-controller-manager" | "controller-manager" => {
            argv.insert(1, "controller-manager".into())
        }
        "kubelet" => argv.insert(1, "kubelet".into()),
        "kube-proxy" => argv.insert(1, "kube-proxy".into()),
        _ => {}
    }
    let cli = Cli::parse_from(argv);
    if let Command::Images(cmd) = cli.command {
        return run_images(cmd);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(async move {
        match cli.command {
            Command::Server(args) => run_server(*args).await,
            Command::Apiserver(args) => run_apiserver(args, InProcess::default()).await,
            Command::Scheduler(cmd) => run_scheduler(cmd).await,
            Command::ControllerManager(cmd) => run_controller_manager(*cmd).await,
            Command::SimNodes(cmd) => run_sim_nodes(cmd).await,
            Command::Kubelet(cmd) => run_kubelet(*cmd).await,
            Command::Agent(args) => node::run_agent(*args).await,
            Command::KubeProxy(cmd) => run_kube_proxy(*cmd).await,
            Command::ClusterDns(cmd) => run_cluster_dns(*cmd).await,
            Command::Images(_) => Ok(()),
        }
    })
}
