//! The controller manager: the registry of every controller crate's controllers
//! ([`controller_descriptors`]), upstream's controller names, `--controllers`
//! selection ([`validate`], [`is_enabled`]), and [`run`] (with leader election).
//!
//! Controllers live in their own crates (`apps-controllers`, ...), built on the
//! `controllers` framework; each crate lists its [`ControllerDescriptor`]s and this
//! crate gathers them. Flags live in [`ControllerManagerConfig`].

use futures::future::BoxFuture;

pub use controllers::{
    ControllerContext, ControllerDescriptor, ControllerError, ControllerFuture,
    ControllerManagerConfig,
};

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

/// The controllers this manager can run, from every controller crate.
pub fn controller_descriptors() -> Vec<ControllerDescriptor> {
    let mut all = Vec::new();
    all.extend(apps_controllers::descriptors());
    all.extend(batch_controllers::descriptors());
    all.extend(certificate_controllers::descriptors());
    all.extend(gc_controllers::descriptors());
    all.extend(node_controllers::descriptors());
    all.extend(policy_controllers::descriptors());
    all.extend(service_controllers::descriptors());
    all
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

/// Checks the flags: every `--controllers` entry must name a known controller.
pub fn validate(config: &ControllerManagerConfig) -> Result<(), ControllerError> {
    let mut errs = Vec::new();
    for entry in &config.controllers {
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
pub fn is_enabled(config: &ControllerManagerConfig, name: &str, disabled_by_default: bool) -> bool {
    let mut star = false;
    for entry in &config.controllers {
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

/// Runs the enabled controllers against `client` until the returned future is dropped.
/// With `--leader-elect` (upstream's default) it first takes the
/// `kube-system/kube-controller-manager` Lease and stops with an error when it loses
/// it; otherwise it only returns early with a configuration or startup error.
pub async fn run(
    client: kube::Client,
    config: ControllerManagerConfig,
) -> Result<(), ControllerError> {
    validate(&config)?;
    let le = &config.leader_election;
    if !le.leader_elect {
        return run_controllers(client, config).await;
    }
    let lease = leader_election::LeaseConfig {
        namespace: le.resource_namespace.clone(),
        name: le.resource_name.clone(),
        identity: leader_election::default_identity(),
        lease_duration: le.lease_duration,
        renew_deadline: le.renew_deadline,
        retry_period: le.retry_period,
    };
    let work = run_controllers(client.clone(), config.clone());
    match leader_election::run_as_leader(client, &lease, work).await {
        Ok(result) => result,
        Err(lost) => Err(ControllerError::Other(lost.to_string())),
    }
}

/// Starts the enabled controllers (no leader election) and runs them until dropped.
async fn run_controllers(
    client: kube::Client,
    config: ControllerManagerConfig,
) -> Result<(), ControllerError> {
    validate(&config)?;
    let ctx = ControllerContext::new(client, config.clone());
    let ours = controller_descriptors();
    for (name, _, disabled) in UPSTREAM_CONTROLLERS {
        if is_enabled(&config, name, *disabled) && !ours.iter().any(|d| d.name == *name) {
            tracing::info!(controller = name, "controller is not implemented; skipping");
        }
    }
    let mut running: Vec<BoxFuture<'static, ()>> = Vec::new();
    for d in &ours {
        if !is_enabled(&config, d.name, d.disabled_by_default) {
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
    fn controllers_flag() {
        let c = parse(&[
            "--controllers=*,-replicaset",
            "--concurrent-replicaset-syncs",
            "10",
        ]);
        assert_eq!(c.controllers, ["*", "-replicaset"]);
        assert_eq!(c.concurrent_replicaset_syncs, 10);
        assert!(!is_enabled(&c, "replicaset-controller", false));
        assert!(is_enabled(&c, "replicationcontroller-controller", false));
        assert!(!is_enabled(&c, "bootstrap-signer-controller", true));
        validate(&c).unwrap();

        let only = parse(&[
            "--controllers",
            "replicationcontroller",
            "--controllers",
            "bootstrapsigner",
        ]);
        assert!(is_enabled(&only, "replicationcontroller-controller", false));
        assert!(is_enabled(&only, "bootstrap-signer-controller", true));
        assert!(!is_enabled(&only, "replicaset-controller", false));

        let first_wins = parse(&["--controllers=-replicaset-controller,replicaset,*"]);
        assert!(!is_enabled(&first_wins, "replicaset-controller", false));

        let bad = parse(&["--controllers=*,-nosuch,bogus"]);
        assert_eq!(
            validate(&bad).unwrap_err().to_string(),
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
        for (alias, name) in [
            (
                "csrapproving",
                "certificatesigningrequest-approving-controller",
            ),
            ("csrsigning", "certificatesigningrequest-signing-controller"),
            ("csrcleaner", "certificatesigningrequest-cleaner-controller"),
        ] {
            assert_eq!(canonical_name(alias), Some(name));
            assert!(controller_descriptors()
                .iter()
                .any(|d| d.name == name && !d.disabled_by_default));
        }
    }
}
