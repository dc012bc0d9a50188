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
    /// OCI runtime: `builtin` (youki's libcontainer inside ferrokube), `runc` or `crun`.
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
    /// Labels added to the Node at registration (`key=value`, repeatable).
    #[arg(long = "node-labels", value_delimiter = ',')]
    pub node_labels: Vec<String>,
    /// Taints the Node registers with (`key=value:Effect`, repeatable).
    #[arg(long = "register-with-taints", value_delimiter = ',')]
    pub register_with_taints: Vec<String>,
    /// Most pods this node runs.
    #[arg(long, default_value_t = 110)]
    pub max_pods: u32,
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
    /// How often the static pod manifests are read again.
    #[arg(long, value_parser = parse_duration, default_value = "20s")]
    pub file_check_frequency: Duration,
    /// Pull images from registries over plain HTTP for these hosts (`127.0.0.1:5000`).
    #[arg(long = "insecure-registry")]
    pub insecure_registries: Vec<String>,
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
            node_labels: Vec::new(),
            register_with_taints: Vec::new(),
            max_pods: 110,
            system_reserved: Vec::new(),
            kube_reserved: Vec::new(),
            node_status_update_frequency: Duration::from_secs(10),
            pod_manifest_path: None,
            file_check_frequency: Duration::from_secs(20),
            insecure_registries: Vec::new(),
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
