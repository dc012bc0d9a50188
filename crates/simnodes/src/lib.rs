//! Simulated nodes for tests and benchmarks, in the manner of kubemark or kwok:
//! registers N Nodes, keeps their Leases and NodeStatus fresh, and plays the
//! kubelet for the pods bound to them, talking to the apiserver only through a
//! `kube::Client`.
//!
//! - [`config`]: the command-line flags ([`SimNodesConfig`]).
//! - `node`: node registration, Lease renewals, status reports, the Node watch.
//! - `pods`: the pod watch and the writes of pod status and final deletion.
//! - `podsim`: the simulated life of one pod and the status it reports.
//! - [`knobs`]: the annotations that steer pods and nodes from tests.
//! - [`cidr`]: pod address pools.
//!
//! Pods and nodes are steered by annotations, so tests drive them through the API:
//! `sim.ferrokube.io/exit-after`, `exit-code`, `fail` and `not-ready` on pods,
//! `sim.ferrokube.io/heartbeat: stopped` on nodes (see [`knobs`]).

pub mod cidr;
pub mod config;
pub mod knobs;
mod node;
mod pods;
mod podsim;
#[cfg(test)]
#[path = "../tests/support/mod.rs"]
mod test_support;

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::task::JoinSet;

pub use config::{SimNodesConfig, TaintEffect, TaintSpec};
pub use node::{KUBELET_VERSION, LEASE_DURATION_SECONDS, LEASE_NAMESPACE, RUNTIME_VERSION};

/// Why the simulated nodes stopped.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The configuration is not usable.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The apiserver refused a write the nodes cannot do without.
    #[error("{what}: {source}")]
    Api {
        /// What was being done.
        what: String,
        /// The client's error.
        #[source]
        source: kube::Error,
    },
    /// An internal task ended abnormally.
    #[error("simulated nodes task failed: {0}")]
    Task(String),
}

/// Registers the nodes and simulates them until the returned future is dropped.
///
/// Registration comes first (existing Nodes of the same names are taken over);
/// a configuration error or a registration the apiserver rejects ends the run
/// with an error, while passing failures are retried. Dropping the future stops
/// every background task; the Node objects stay, as when a kubelet dies.
pub async fn run(client: kube::Client, config: SimNodesConfig) -> Result<(), SimError> {
    let settings = config::Settings::new(&config)?;
    let sim = Arc::new(node::Sim::new(client, settings));
    node::register_all(&sim).await?;
    let (node_tx, node_rx) = mpsc::unbounded_channel();
    let mut tasks = JoinSet::new();
    tasks.spawn(node::watch_nodes(sim.clone(), node_tx));
    tasks.spawn(node::spread_loop(sim.clone(), node::Job::Lease));
    tasks.spawn(node::spread_loop(sim.clone(), node::Job::Status));
    tasks.spawn(pods::run_pods(sim.clone(), node_rx));
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e),
            Err(e) => return Err(SimError::Task(e.to_string())),
        }
    }
    Ok(())
}
