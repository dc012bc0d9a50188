//! The ferrokube scheduler. It reaches the cluster only through a Kubernetes client
//! (watches of nodes, pods and namespaces; `pods/binding`, `pods/status`, events), so
//! it runs in-process in `ferrokube server` or alone against any apiserver.
//!
//! - [`config`]: the KubeSchedulerConfiguration file (profiles, plugins, weights).
//! - [`plugins`]: filters and scores as upstream's default plugins.
//! - [`algorithm`]: one decision (filter, score, pick) and the failure message.
//! - [`defaultspread`]: default topology spread constraints for pods without their own.
//! - [`preemption`]: making room for a pod by evicting lower-priority ones.
//! - [`queue`]: active, backoff and unschedulable pods.
//! - [`scheduler`]: the running loop. Leader election lives in the `leader-election`
//!   crate.

pub mod algorithm;
pub mod config;
pub mod defaultspread;
pub mod nodeinfo;
pub mod plugins;
pub mod podinfo;
pub mod preemption;
pub mod queue;
/// Resource amounts as the scheduler counts them (shared with the kubelet's admission).
pub use podspec::resources;
pub mod scheduler;

pub use config::{ConfigError, Profile, SchedulerConfiguration};

/// Command-line options of `ferrokube scheduler`.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct SchedulerArgs {
    /// A KubeSchedulerConfiguration file (profiles, plugins and weights,
    /// percentageOfNodesToScore, leaderElection).
    #[arg(long)]
    pub config: Option<std::path::PathBuf>,
    /// Elect a leader on a Lease before scheduling, so that only one of several
    /// replicas binds pods.
    #[arg(long)]
    pub leader_elect: Option<bool>,
    /// This replica's identity in the election (default: hostname and a random suffix).
    #[arg(long)]
    pub leader_elect_identity: Option<String>,
}

/// Why the scheduler stopped.
#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    /// The configuration was refused.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Leadership was lost (the process should exit, as upstream's does).
    #[error("leader election lost")]
    LeadershipLost,
}

/// Loads the configuration named by the arguments.
pub fn load_config(args: &SchedulerArgs) -> Result<SchedulerConfiguration, ConfigError> {
    match &args.config {
        Some(path) => SchedulerConfiguration::load(path),
        None => Ok(SchedulerConfiguration::default()),
    }
}

/// Runs the scheduler until the future is dropped or leadership is lost.
pub async fn run(client: kube::Client, args: SchedulerArgs) -> Result<(), SchedulerError> {
    let config = load_config(&args)?;
    let elect = args.leader_elect.or(config.leader_elect).unwrap_or(false);
    if !elect {
        scheduler::run_loop(client, config).await;
        return Ok(());
    }
    let lease = leader_election::LeaseConfig::new(
        &config.lease_namespace,
        &config.lease_name,
        &args
            .leader_elect_identity
            .clone()
            .unwrap_or_else(leader_election::default_identity),
    );
    leader_election::run_as_leader(client.clone(), &lease, scheduler::run_loop(client, config))
        .await
        .map_err(|_| SchedulerError::LeadershipLost)
}
