//! kube-proxy: watches Services and EndpointSlices and programs the node's data path
//! so that cluster IPs, external IPs, load-balancer IPs and node ports reach the
//! ready endpoints behind them. [`model`] says what to program; [`nftables`] does it
//! in the kernel (the default mode), [`iptables`] the same with iptables chains,
//! both with [`conntrack`] ending UDP flows to endpoints that left; [`userspace`]
//! does it with no packet filter, relaying connections itself. [`run`] keeps the data path in step with the API, at most
//! once per `--min-sync-period`, and changes only what changed.

pub mod conntrack;
#[cfg(test)]
mod fixtures;
pub mod healthcheck;
pub mod iptables;
pub mod model;
pub mod nftables;
mod tool;
pub mod userspace;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use controllers::servicecache::{ServiceCache, Snapshot};
use ipnet::Ipv4Net;
use kube::Client;
use tracing::{debug, info, warn};

use crate::conntrack::Conntrack;
use crate::healthcheck::{HealthServers, ProxyHealth};
use crate::iptables::Iptables;
use crate::nftables::{Networks, Nftables, Ruleset, SyncKind};
use crate::userspace::Userspace;

/// Services carrying either label are not this proxy's: one names another proxy,
/// the other marks a headless Service. Slices carry their Service's labels.
const PROXIED: &str = "!service.kubernetes.io/service-proxy-name,!service.kubernetes.io/headless";

/// How the data path is built.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProxyMode {
    /// nftables, one `ip kube-proxy` table, changed incrementally.
    Nftables,
    /// iptables chains in the `nat` and `filter` tables, as upstream's iptables
    /// mode makes them, through `iptables-restore`.
    Iptables,
    /// The proxy itself relays connections, round robin, on Service addresses it
    /// makes local; needs no packet filter.
    Userspace,
}

/// kube-proxy's flags.
#[derive(clap::Args, Clone, Debug)]
pub struct ProxyConfig {
    /// The name of this node (for endpoints of Local traffic policies); the host
    /// name when empty.
    #[arg(long = "hostname-override", default_value = "")]
    pub hostname_override: String,
    /// The pods' address range: traffic to a cluster IP from outside it is
    /// masqueraded.
    #[arg(long = "cluster-cidr")]
    pub cluster_cidr: Option<Ipv4Net>,
    /// The Service address range: traffic to an address of it no Service holds is
    /// dropped.
    #[arg(long = "service-cluster-ip-range")]
    pub service_cluster_ip_range: Option<Ipv4Net>,
    /// Masquerade all traffic to cluster IPs.
    #[arg(long = "masquerade-all", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub masquerade_all: bool,
    /// How the data path is built. Unset: nftables where this node can use it
    /// (the kernel and the `nft` command), else iptables, else userspace.
    #[arg(long = "proxy-mode", value_enum)]
    pub proxy_mode: Option<ProxyMode>,
    /// The shortest time between two syncs of the data path (a Go duration).
    #[arg(long = "min-sync-period", default_value = "1s", value_parser = parse_duration)]
    pub min_sync_period: Duration,
    /// The `nft` command.
    #[arg(long = "nft-path", default_value = "nft")]
    pub nft_path: String,
    /// The `iptables` command of the iptables mode; its `-save` and `-restore`
    /// siblings are used (e.g. `iptables-legacy` for `iptables-legacy-restore`).
    #[arg(long = "iptables-path", default_value = "iptables")]
    pub iptables_path: String,
    /// The `conntrack` command (deletes UDP flows to endpoints that left).
    #[arg(long = "conntrack-path", default_value = "conntrack")]
    pub conntrack_path: String,
    /// How long a UDP flow of the userspace mode lasts without traffic (upstream's
    /// userspace `--udp-timeout`).
    #[arg(long = "udp-timeout", default_value = "250ms", value_parser = parse_duration)]
    pub udp_timeout: Duration,
    /// Where the proxy serves its own `/healthz` and `/livez`; empty for nowhere.
    #[arg(long = "healthz-bind-address", default_value = "0.0.0.0:10256")]
    pub healthz_bind_address: String,
    /// Remove the rules this proxy made and exit.
    #[arg(long = "cleanup", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub cleanup: bool,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    controllers::config::parse_go_duration(s).ok_or_else(|| format!("invalid duration {s:?}"))
}

/// Why the proxy stopped.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error(transparent)]
    Nft(#[from] nftables::NftError),
    #[error(transparent)]
    Iptables(#[from] iptables::IptablesError),
    #[error(transparent)]
    Userspace(#[from] userspace::UserspaceError),
    #[error("the {0} watch ended")]
    WatchEnded(&'static str),
}

/// The node's name: `--hostname-override`, else the host name, lower-cased as the
/// kubelet registers it.
pub fn node_name(config: &ProxyConfig) -> String {
    if !config.hostname_override.is_empty() {
        return config.hostname_override.to_lowercase();
    }
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_lowercase())
        .unwrap_or_default()
}

/// Removes the rules a proxy made in any mode (`--cleanup`): every mode is tried
/// (a mode whose tool or kernel support is missing left nothing); the first
/// failure is returned.
pub async fn cleanup(config: &ProxyConfig) -> Result<(), ProxyError> {
    let mut failed: Option<ProxyError> = None;
    let mut nft = Nftables::new(&config.nft_path, Networks::default());
    if nft.available().await.is_ok() {
        if let Err(e) = nft.cleanup().await {
            failed.get_or_insert(e.into());
        }
    }
    if let Err(e) = Iptables::new(&config.iptables_path).cleanup().await {
        failed.get_or_insert(e.into());
    }
    if let Err(e) = userspace::cleanup().await {
        failed.get_or_insert(e.into());
    }
    failed.map_or(Ok(()), Err)
}

/// The mode to run: the configured one, else the first of nftables, iptables and
/// userspace that works on this node (its command runs and the kernel answers).
pub async fn choose_mode(config: &ProxyConfig) -> ProxyMode {
    if let Some(mode) = config.proxy_mode {
        return mode;
    }
    let nft = Nftables::new(&config.nft_path, Networks::default());
    if let Err(e) = nft.available().await {
        info!(error = %e, "nftables cannot be used here; trying iptables");
    } else {
        return ProxyMode::Nftables;
    }
    if let Err(e) = Iptables::new(&config.iptables_path).existing().await {
        info!(error = %e, "iptables cannot be used here; using the userspace mode");
        return ProxyMode::Userspace;
    }
    ProxyMode::Iptables
}

/// Removes what the other modes may have left (a proxy that ran in another mode
/// before), so that two data paths never answer for the same Service. A missing
/// tool means that mode left nothing.
async fn cleanup_other_modes(config: &ProxyConfig, mode: ProxyMode) {
    if mode != ProxyMode::Nftables {
        let mut nft = Nftables::new(&config.nft_path, Networks::default());
        if let Err(e) = nft.cleanup().await {
            debug!(error = %e, "no nftables rules of another mode removed");
        }
    }
    if mode != ProxyMode::Iptables {
        if let Err(e) = Iptables::new(&config.iptables_path).cleanup().await {
            warn!(error = %e, "removing the iptables mode's rules failed");
        }
    }
    if mode != ProxyMode::Userspace {
        if let Err(e) = userspace::cleanup().await {
            warn!(error = %e, "removing the userspace mode's addresses failed");
        }
    }
}

/// Runs the proxy until `shutdown` completes. The rules stay in place when it
/// stops, so traffic keeps flowing while it restarts.
pub async fn run(
    client: Client,
    config: ProxyConfig,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), ProxyError> {
    if config.cleanup {
        return cleanup(&config).await;
    }
    let node = node_name(&config);
    let masq = Networks {
        cluster_cidr: config.cluster_cidr,
        service_cidr: config.service_cluster_ip_range,
        all: config.masquerade_all,
    };
    let mode = choose_mode(&config).await;
    let mut path = match mode {
        ProxyMode::Nftables => DataPath::Nft(Nftables::new(&config.nft_path, masq.clone())),
        ProxyMode::Iptables => DataPath::Ipt(Iptables::new(&config.iptables_path)),
        ProxyMode::Userspace => DataPath::Userspace(Userspace::new(config.udp_timeout)),
    };
    info!(node, ?mode, "kube-proxy starting");
    cleanup_other_modes(&config, mode).await;
    let health = Arc::new(ProxyHealth::default());
    // Kept while the proxy runs; a port another process holds is only reported,
    // as upstream does.
    let _healthz = match config.healthz_bind_address.as_str() {
        "" => None,
        a => match a.parse::<SocketAddr>() {
            Ok(addr) => healthcheck::serve_proxy_healthz(addr, health.clone())
                .await
                .map_err(|e| warn!(address = a, error = %e, "cannot serve the proxy's healthz"))
                .ok()
                .map(AbortOnDrop),
            Err(e) => {
                warn!(address = a, error = %e, "invalid --healthz-bind-address");
                None
            }
        },
    };
    let mut health_servers = HealthServers::new(health.clone());
    let mut conntrack = Conntrack::new(&config.conntrack_path);
    let mut programmed: Vec<model::ServicePort> = Vec::new();
    let mut cache = ServiceCache::watch(client, Some(PROXIED));
    // The Services and slices last programmed, for the periodic full sync.
    let mut last: Option<Snapshot> = None;
    let mut full_due = tokio::time::Instant::now() + FULL_SYNC_PERIOD;
    tokio::pin!(shutdown);
    loop {
        let (svcs, eps) = tokio::select! {
            s = cache.changed(config.min_sync_period) => match s {
                Some(s) => {
                    health.queued();
                    s
                }
                None => return Err(ProxyError::WatchEnded("service")),
            },
            // Rules changed behind the proxy's back (a flushed table, a deleted
            // jump) are put back by rewriting everything now and then, as
            // upstream does every hour.
            _ = tokio::time::sleep_until(full_due), if last.is_some() => {
                full_due = tokio::time::Instant::now() + FULL_SYNC_PERIOD;
                path.force_full();
                match &last {
                    Some(s) => s.clone(),
                    None => continue,
                }
            }
            _ = &mut shutdown => return Ok(()),
        };
        let ports = model::service_ports(&svcs, &eps, &node);
        let synced = match &mut path {
            DataPath::Nft(nft) => sync(nft, &ports, &masq).await.map_err(ProxyError::from),
            DataPath::Ipt(ipt) => sync_iptables(ipt, &ports, &masq)
                .await
                .map_err(ProxyError::from),
            DataPath::Userspace(u) => u.sync(&ports).await.map_err(ProxyError::from),
        };
        match synced {
            Ok(()) => {
                cache.succeeded();
                health.synced();
                health_servers
                    .sync(model::health_checks(&svcs, &ports))
                    .await;
                last = Some((svcs, eps));
                if !matches!(path, DataPath::Userspace(_)) {
                    // Only once the rules no longer send new packets to them.
                    let stale = model::stale_udp_flows(&programmed, &ports);
                    conntrack.clear(&stale).await;
                }
                programmed = ports;
            }
            Err(e) => {
                warn!(error = %e, "syncing the data path failed; retrying");
                cache.failed();
                health.failed();
            }
        }
    }
}

/// Stops a task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The data path of the chosen mode.
enum DataPath {
    Nft(Nftables),
    Ipt(Iptables),
    Userspace(Userspace),
}

impl DataPath {
    /// Makes the next sync rewrite everything rather than only what changed.
    fn force_full(&mut self) {
        match self {
            DataPath::Nft(nft) => nft.force_full(),
            DataPath::Ipt(ipt) => ipt.force_full(),
            DataPath::Userspace(u) => u.force_full(),
        }
    }
}

/// How often the whole data path is rewritten even if nothing changed.
const FULL_SYNC_PERIOD: Duration = Duration::from_secs(3600);

async fn sync(
    nft: &mut Nftables,
    ports: &[model::ServicePort],
    masq: &Networks,
) -> Result<(), nftables::NftError> {
    let started = Instant::now();
    let rs = Ruleset::build(ports, masq);
    let kind = nft.sync(rs).await?;
    log_sync(kind, ports.len(), started);
    Ok(())
}

async fn sync_iptables(
    ipt: &mut Iptables,
    ports: &[model::ServicePort],
    masq: &Networks,
) -> Result<(), iptables::IptablesError> {
    let started = Instant::now();
    let kind = ipt.sync(iptables::Rules::build(ports, masq)).await?;
    log_sync(kind, ports.len(), started);
    Ok(())
}

fn log_sync(kind: SyncKind, service_ports: usize, started: Instant) {
    let ms = started.elapsed().as_millis() as u64;
    match kind {
        SyncKind::Full => info!(service_ports, ms, "wrote the whole data path"),
        SyncKind::Partial => debug!(service_ports, ms, "updated the data path"),
        SyncKind::Unchanged => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Flags {
        #[command(flatten)]
        config: ProxyConfig,
    }

    fn config(args: &[&str]) -> ProxyConfig {
        let argv = std::iter::once("kube-proxy").chain(args.iter().copied());
        Flags::try_parse_from(argv).unwrap().config
    }

    /// Without `--proxy-mode`, the first mode whose tools work is chosen (reading
    /// only: `nft list tables`, `iptables-save`).
    #[tokio::test]
    async fn unset_mode_falls_back_to_what_works() {
        assert_eq!(
            choose_mode(&config(&["--proxy-mode", "userspace"])).await,
            ProxyMode::Userspace
        );
        assert_eq!(choose_mode(&config(&[])).await, ProxyMode::Nftables);
        let no_nft = config(&["--nft-path", "/nonexistent/nft"]);
        assert_eq!(choose_mode(&no_nft).await, ProxyMode::Iptables);
        let neither = config(&[
            "--nft-path",
            "/nonexistent/nft",
            "--iptables-path",
            "/nonexistent/iptables",
        ]);
        assert_eq!(choose_mode(&neither).await, ProxyMode::Userspace);
    }
}
