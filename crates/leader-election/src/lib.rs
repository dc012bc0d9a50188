//! Leader election on a coordination.k8s.io/v1 Lease, as client-go's leaderelection
//! does it: take the lease when it is free or its holder stopped renewing it within
//! leaseDurationSeconds, renew it every retry period, and give up leadership when a
//! renewal has not succeeded within the renew deadline. Updates are compare-and-swap
//! on resourceVersion, so two candidates can never both hold it.
//!
//! [`run_as_leader`] wraps a component's run future: wait for the lease, then run the
//! component while renewing, and stop it when leadership is lost.

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, PostParams};
use std::future::Future;
use std::time::Duration;

/// Timing of an election (upstream kube-scheduler defaults: 15 s, 10 s, 2 s).
#[derive(Clone, Debug)]
pub struct LeaseConfig {
    /// Lease namespace.
    pub namespace: String,
    /// Lease name.
    pub name: String,
    /// This candidate's identity (holderIdentity).
    pub identity: String,
    /// How long a lease stays valid without renewal.
    pub lease_duration: Duration,
    /// How long the leader keeps trying to renew before giving up.
    pub renew_deadline: Duration,
    /// Pause between attempts.
    pub retry_period: Duration,
}

impl LeaseConfig {
    /// The defaults for a lease `namespace/name` held by `identity`.
    pub fn new(namespace: &str, name: &str, identity: &str) -> LeaseConfig {
        LeaseConfig {
            namespace: namespace.into(),
            name: name.into(),
            identity: identity.into(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

/// One attempt to take or renew the lease; true if this candidate holds it now.
async fn try_acquire(api: &Api<Lease>, cfg: &LeaseConfig) -> Result<bool, kube::Error> {
    let now = Timestamp::now();
    let spec = |transitions: i32, acquire: Option<MicroTime>| LeaseSpec {
        holder_identity: Some(cfg.identity.clone()),
        lease_duration_seconds: Some(cfg.lease_duration.as_secs() as i32),
        acquire_time: acquire,
        renew_time: Some(MicroTime(now)),
        lease_transitions: Some(transitions),
        ..Default::default()
    };
    let existing = match api.get_opt(&cfg.name).await? {
        Some(l) => l,
        None => {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(cfg.name.clone()),
                    namespace: Some(cfg.namespace.clone()),
                    ..Default::default()
                },
                spec: Some(spec(0, Some(MicroTime(now)))),
            };
            return match api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
                Err(e) => Err(e),
            };
        }
    };
    let current = existing.spec.clone().unwrap_or_default();
    let holder = current.holder_identity.clone().unwrap_or_default();
    let duration = SignedDuration::from_secs(current.lease_duration_seconds.unwrap_or(15) as i64);
    let expired = current
        .renew_time
        .as_ref()
        .is_none_or(|t| t.0 + duration < now);
    let ours = holder == cfg.identity;
    if !ours && !holder.is_empty() && !expired {
        return Ok(false);
    }
    let transitions = current.lease_transitions.unwrap_or(0) + if ours { 0 } else { 1 };
    let acquire = if ours {
        current.acquire_time.clone()
    } else {
        Some(MicroTime(now))
    };
    let mut lease = existing;
    lease.spec = Some(spec(transitions, acquire));
    match api.replace(&cfg.name, &PostParams::default(), &lease).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
        Err(e) => Err(e),
    }
}

/// Waits until this candidate holds the lease.
pub async fn acquire(client: kube::Client, cfg: &LeaseConfig) {
    let api: Api<Lease> = Api::namespaced(client, &cfg.namespace);
    loop {
        match try_acquire(&api, cfg).await {
            Ok(true) => {
                tracing::info!(lease = %cfg.name, identity = %cfg.identity, "became leader");
                return;
            }
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(lease = %cfg.name, error = %e, "leader election attempt failed")
            }
        }
        tokio::time::sleep(cfg.retry_period).await;
    }
}

/// Keeps renewing the lease; returns when leadership is lost.
pub async fn hold(client: kube::Client, cfg: &LeaseConfig) {
    let api: Api<Lease> = Api::namespaced(client, &cfg.namespace);
    let mut last_ok = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(cfg.retry_period).await;
        match try_acquire(&api, cfg).await {
            Ok(true) => last_ok = tokio::time::Instant::now(),
            Ok(false) => {
                tracing::warn!(lease = %cfg.name, "lease taken by another candidate");
                return;
            }
            Err(e) => tracing::warn!(lease = %cfg.name, error = %e, "renewing the lease failed"),
        }
        if last_ok.elapsed() > cfg.renew_deadline {
            tracing::warn!(lease = %cfg.name, "could not renew the lease in time");
            return;
        }
    }
}

/// The identity a candidate uses when none is given: the host name plus a
/// per-process suffix, as upstream's components do.
pub fn default_identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "ferrokube".into());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{host}_{:08x}{:04x}", nanos, std::process::id() & 0xffff)
}

/// Leadership was lost while the component ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeadershipLost;

impl std::fmt::Display for LeadershipLost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("leader election lost")
    }
}

impl std::error::Error for LeadershipLost {}

/// Waits until this candidate holds the lease, then runs `work` while renewing it.
/// Returns `work`'s output, or [`LeadershipLost`] (dropping `work`) when a renewal
/// fails past the deadline or another candidate takes the lease.
pub async fn run_as_leader<F: Future>(
    client: kube::Client,
    cfg: &LeaseConfig,
    work: F,
) -> Result<F::Output, LeadershipLost> {
    acquire(client.clone(), cfg).await;
    tokio::select! {
        out = work => Ok(out),
        _ = hold(client, cfg) => Err(LeadershipLost),
    }
}
