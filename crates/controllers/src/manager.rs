//! The controller manager: its flags ([`ControllerManagerConfig`]), the registry of
//! controllers ([`controller_descriptors`]), `--controllers` selection, and [`run`].
//!
//! To add a controller, write a [`StartFn`](crate::controller::StartFn) that builds it
//! from the [`ControllerContext`] and returns its future, and list a
//! [`ControllerDescriptor`] for it in [`controller_descriptors`]; put its worker count
//! flag in [`ControllerManagerConfig`].

use futures::future::BoxFuture;

use crate::controller::{ControllerContext, ControllerDescriptor, ControllerFuture};
use crate::error::ControllerError;
use crate::{deployment, replicaset};

/// Command-line configuration of the controller manager (flags as upstream's
/// kube-controller-manager).
#[derive(clap::Args, Clone, Debug, PartialEq, Eq)]
pub struct ControllerManagerConfig {
    /// A list of controllers to enable. '*' enables all on-by-default controllers, 'foo'
    /// enables the controller named 'foo', '-foo' disables the controller named 'foo'.
    #[arg(long = "controllers", value_delimiter = ',', default_value = "*")]
    pub controllers: Vec<String>,

    /// The number of replica sets that are allowed to sync concurrently. Larger number =
    /// more responsive replica management, but more CPU (and network) load
    #[arg(long = "concurrent-replicaset-syncs", default_value_t = 5)]
    pub concurrent_replicaset_syncs: i32,

    /// The number of replication controllers that are allowed to sync concurrently.
    /// Larger number = more responsive replica management, but more CPU (and network)
    /// load
    #[arg(long = "concurrent-rc-syncs", default_value_t = 5)]
    pub concurrent_rc_syncs: i32,

    /// The number of deployment objects that are allowed to sync concurrently. Larger
    /// number = more responsive deployments, but more CPU (and network) load
    #[arg(long = "concurrent-deployment-syncs", default_value_t = 5)]
    pub concurrent_deployment_syncs: i32,
}

impl Default for ControllerManagerConfig {
    fn default() -> Self {
        ControllerManagerConfig {
            controllers: vec!["*".to_string()],
            concurrent_replicaset_syncs: 5,
            concurrent_rc_syncs: 5,
            concurrent_deployment_syncs: 5,
        }
    }
}

/// Canonical names of upstream's kube-controller-manager (1.33) controllers, with
/// their aliases and whether `*` leaves them off. `--controllers` accepts all of them;
/// those not implemented here are ignored with a log line.
pub const UPSTREAM_CONTROLLERS: &[(&str, &[&str], bool)] = &[
    (
        "serviceaccount-token-controller",
        &["serviceaccount-token"],
        false,
    ),
    ("endpoints-controller", &["endpoint"], false),
    ("endpointslice-controller", &["endpointslice"], false),
    (
        "endpointslice-mirroring-controller",
        &["endpointslicemirroring"],
        false,
    ),
    (
        "replicationcontroller-controller",
        &["replicationcontroller"],
        false,
    ),
    ("pod-garbage-collector-controller", &["podgc"], false),
    ("resourcequota-controller", &["resourcequota"], false),
    ("namespace-controller", &["namespace"], false),
    ("serviceaccount-controller", &["serviceaccount"], false),
    ("garbage-collector-controller", &["garbagecollector"], false),
    ("daemonset-controller", &["daemonset"], false),
    ("job-controller", &["job"], false),
    ("deployment-controller", &["deployment"], false),
    ("replicaset-controller", &["replicaset"], false),
    (
        "horizontal-pod-autoscaler-controller",
        &["horizontalpodautoscaling"],
        false,
    ),
    ("disruption-controller", &["disruption"], false),
    ("statefulset-controller", &["statefulset"], false),
    ("cronjob-controller", &["cronjob"], false),
    (
        "certificatesigningrequest-signing-controller",
        &["csrsigning"],
        false,
    ),
    (
        "certificatesigningrequest-approving-controller",
        &["csrapproving"],
        false,
    ),
    (
        "certificatesigningrequest-cleaner-controller",
        &["csrcleaner"],
        false,
    ),
    ("ttl-controller", &["ttl"], false),
    ("bootstrap-signer-controller", &["bootstrapsigner"], true),
    ("token-cleaner-controller", &["tokencleaner"], true),
    ("node-ipam-controller", &["nodeipam"], false),
    ("node-lifecycle-controller", &["nodelifecycle"], false),
    ("taint-eviction-controller", &[], false),
    (
        "persistentvolume-binder-controller",
        &["persistentvolume-binder"],
        false,
    ),
    (
        "persistentvolume-attach-detach-controller",
        &["attachdetach"],
        false,
    ),
    (
        "persistentvolume-expander-controller",
        &["persistentvolume-expander"],
        false,
    ),
    (
        "clusterrole-aggregation-controller",
        &["clusterrole-aggregation"],
        false,
    ),
    (
        "persistentvolumeclaim-protection-controller",
        &["pvc-protection"],
        false,
    ),
    (
        "persistentvolume-protection-controller",
        &["pv-protection"],
        false,
    ),
    (
        "ttl-after-finished-controller",
        &["ttl-after-finished"],
        false,
    ),
    (
        "root-ca-certificate-publisher-controller",
        &["root-ca-cert-publisher"],
        false,
    ),
    ("ephemeral-volume-controller", &["ephemeral-volume"], false),
    (
        "storageversion-garbage-collector-controller",
        &["storage-version-gc"],
        false,
    ),
    (
        "resourceclaim-controller",
        &["resource-claim-controller"],
        false,
    ),
    (
        "legacy-serviceaccount-token-cleaner-controller",
        &["legacy-service-account-token-cleaner"],
        false,
    ),
    ("validatingadmissionpolicy-status-controller", &[], false),
    ("service-cidr-controller", &[], false),
    ("storage-version-migrator-controller", &[], false),
    (
        "cloud-node-lifecycle-controller",
        &["cloud-node-lifecycle"],
        false,
    ),
    ("node-route-controller", &["route"], false),
    ("service-lb-controller", &["service"], false),
];

/// The controllers this manager can run.
pub fn controller_descriptors() -> Vec<ControllerDescriptor> {
    vec![
        ControllerDescriptor {
            name: replicaset::REPLICASET_CONTROLLER_NAME,
            aliases: &["replicaset"],
            disabled_by_default: false,
            start: replicaset::start_replicaset_controller,
        },
        ControllerDescriptor {
            name: replicaset::REPLICATION_CONTROLLER_NAME,
            aliases: &["replicationcontroller"],
            disabled_by_default: false,
            start: replicaset::start_replication_controller,
        },
        ControllerDescriptor {
            name: deployment::DEPLOYMENT_CONTROLLER_NAME,
            aliases: &["deployment"],
            disabled_by_default: false,
            start: deployment::start_deployment_controller,
        },
    ]
}

/// The canonical name for `name` (itself or an alias), among upstream's controllers
/// and ours.
pub fn canonical_name(name: &str) -> Option<&'static str> {
    for d in controller_descriptors() {
        if d.name == name || d.aliases.contains(&name) {
            return Some(d.name);
        }
    }
    UPSTREAM_CONTROLLERS
        .iter()
        .find(|(canonical, aliases, _)| *canonical == name || aliases.contains(&name))
        .map(|(canonical, _, _)| *canonical)
}

impl ControllerManagerConfig {
    /// Checks the flags: every `--controllers` entry must name a known controller.
    pub fn validate(&self) -> Result<(), ControllerError> {
        let mut errs = Vec::new();
        for entry in &self.controllers {
            if entry == "*" {
                continue;
            }
            let bare = entry.strip_prefix('-').unwrap_or(entry);
            if canonical_name(bare).is_none() {
                errs.push(ControllerError::Config(format!(
                    "{bare:?} is not in the list of known controllers"
                )));
            }
        }
        match ControllerError::aggregate(errs) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Whether the controller `name` (canonical) is enabled by `--controllers`: the
    /// first explicit `name` or `-name` wins (aliases count), otherwise `*` enables it
    /// unless it is disabled by default.
    pub fn is_enabled(&self, name: &str, disabled_by_default: bool) -> bool {
        let mut star = false;
        for entry in &self.controllers {
            if entry == "*" {
                star = true;
                continue;
            }
            let (negated, bare) = match entry.strip_prefix('-') {
                Some(b) => (true, b),
                None => (false, entry.as_str()),
            };
            if canonical_name(bare) == Some(name) {
                return !negated;
            }
        }
        star && !disabled_by_default
    }
}

/// Starts the controller `name` (canonical name or alias) on `ctx` and returns the
/// future that runs it. The informers it needs start with it.
pub fn start_controller(
    ctx: &ControllerContext,
    name: &str,
) -> Result<ControllerFuture, ControllerError> {
    let canonical = canonical_name(name);
    let descriptor = controller_descriptors()
        .into_iter()
        .find(|d| Some(d.name) == canonical)
        .ok_or_else(|| {
            ControllerError::Config(format!("{name:?} is not in the list of known controllers"))
        })?;
    (descriptor.start)(ctx)
}

/// Runs the enabled controllers against `client` until the returned future is dropped
/// (it only returns early with a configuration or startup error).
pub async fn run(
    client: kube::Client,
    config: ControllerManagerConfig,
) -> Result<(), ControllerError> {
    config.validate()?;
    let ctx = ControllerContext::new(client, config.clone());
    let ours = controller_descriptors();
    for (name, _, disabled) in UPSTREAM_CONTROLLERS {
        if config.is_enabled(name, *disabled) && !ours.iter().any(|d| d.name == *name) {
            tracing::info!(controller = name, "controller is not implemented; skipping");
        }
    }
    let mut running: Vec<BoxFuture<'static, ()>> = Vec::new();
    for d in &ours {
        if !config.is_enabled(d.name, d.disabled_by_default) {
            tracing::info!(controller = d.name, "controller is disabled");
            continue;
        }
        tracing::info!(controller = d.name, "starting controller");
        running.push((d.start)(&ctx)?);
    }
    ctx.informers.start();
    futures::future::join_all(running).await;
    Ok(())
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
        let d = ControllerManagerConfig::default();
        assert_eq!(d.controllers, ["*"]);
        assert_eq!(d.concurrent_replicaset_syncs, 5);
        assert_eq!(d.concurrent_rc_syncs, 5);
        assert_eq!(d.concurrent_deployment_syncs, 5);
        let c = parse(&["--concurrent-deployment-syncs=3"]);
        assert_eq!(c.concurrent_deployment_syncs, 3);
    }

    #[test]
    fn controllers_flag() {
        let c = parse(&[
            "--controllers=*,-replicaset",
            "--concurrent-replicaset-syncs",
            "10",
        ]);
        assert_eq!(c.controllers, ["*", "-replicaset"]);
        assert_eq!(c.concurrent_replicaset_syncs, 10);
        assert!(!c.is_enabled("replicaset-controller", false));
        assert!(c.is_enabled("replicationcontroller-controller", false));
        assert!(!c.is_enabled("bootstrap-signer-controller", true));
        c.validate().unwrap();

        let only = parse(&[
            "--controllers",
            "replicationcontroller",
            "--controllers",
            "bootstrapsigner",
        ]);
        assert!(only.is_enabled("replicationcontroller-controller", false));
        assert!(only.is_enabled("bootstrap-signer-controller", true));
        assert!(!only.is_enabled("replicaset-controller", false));

        let first_wins = parse(&["--controllers=-replicaset-controller,replicaset,*"]);
        assert!(!first_wins.is_enabled("replicaset-controller", false));

        let bad = parse(&["--controllers=*,-nosuch,bogus"]);
        assert_eq!(
            bad.validate().unwrap_err().to_string(),
            "[\"nosuch\" is not in the list of known controllers, \"bogus\" is not in the list of known controllers]"
        );
    }

    #[test]
    fn names_resolve() {
        assert_eq!(canonical_name("replicaset"), Some("replicaset-controller"));
        assert_eq!(
            canonical_name("replicationcontroller-controller"),
            Some("replicationcontroller-controller")
        );
        assert_eq!(
            canonical_name("podgc"),
            Some("pod-garbage-collector-controller")
        );
        assert_eq!(canonical_name("nope"), None);
        assert_eq!(canonical_name("deployment"), Some("deployment-controller"));
        assert!(controller_descriptors()
            .iter()
            .any(|d| d.name == "deployment-controller" && !d.disabled_by_default));
    }
}
