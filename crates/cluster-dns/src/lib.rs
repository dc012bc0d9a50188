//! Cluster DNS, the part CoreDNS's `kubernetes` plugin plays: names for Services, their
//! endpoints and pods under the cluster domain, by the Kubernetes DNS specification,
//! and every other name forwarded to the nameservers of the host's resolv.conf.
//!
//! [`records`] is the pure model (objects in, answers out), [`server`] the UDP/TCP
//! server around it, [`forward`] the upstream side; [`run`] watches Services and
//! EndpointSlices and rebuilds the records as they change, at most every
//! [`REBUILD_PERIOD`]. [`run_for_node`] is how a node serves it: on its pod
//! gateway, published as an endpoint of the `kube-dns` Service ([`publish`]).

pub mod forward;
pub mod publish;
pub mod records;
pub mod server;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use controllers::servicecache::ServiceCache;
use kube::Client;
use parking_lot::RwLock;
use tracing::{info, warn};

pub use crate::records::{Answer, Outcome, Records};
pub use crate::server::{serve_records, DnsServer};

/// The shortest time between two rebuilds of the records.
pub const REBUILD_PERIOD: Duration = Duration::from_millis(100);

/// The cluster DNS server's flags.
#[derive(clap::Args, Clone, Debug)]
pub struct DnsConfig {
    /// The domain the cluster's names live under.
    #[arg(long = "cluster-domain", default_value = "cluster.local")]
    pub cluster_domain: String,
    /// The address to serve DNS on, UDP and TCP. It need not be assigned to an
    /// interface yet.
    #[arg(long = "dns-bind-address", default_value = "0.0.0.0:53")]
    pub dns_bind_address: SocketAddr,
    /// The resolv.conf whose nameservers answer names outside the cluster domain.
    #[arg(long = "upstream-resolv-conf", default_value = "/etc/resolv.conf")]
    pub upstream_resolv_conf: PathBuf,
}

/// Why the DNS server stopped, or could not start.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    #[error("binding the {protocol} socket on {addr}")]
    Bind {
        protocol: &'static str,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("the DNS server failed")]
    Server(#[source] hickory_server::net::NetError),
    #[error("the {0} watch ended")]
    WatchEnded(&'static str),
    #[error(transparent)]
    Publish(#[from] publish::PublishError),
}

/// Serves cluster DNS until `shutdown` completes.
///
/// Names under the cluster domain get SERVFAIL until both watches have listed
/// everything once; names outside it are forwarded from the start.
pub async fn run(
    client: Client,
    config: DnsConfig,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), DnsError> {
    let upstreams = upstreams(&config);
    let records = Arc::new(RwLock::new(Records::pending(&config.cluster_domain)));
    let mut server =
        serve_records(records.clone(), config.dns_bind_address, upstreams.clone()).await?;
    info!(
        addr = %server.local_addr(),
        domain = %config.cluster_domain,
        ?upstreams,
        "cluster DNS serving"
    );
    tokio::pin!(shutdown);
    let outcome = tokio::select! {
        r = server.wait() => r,
        r = keep_records(client, records, &config.cluster_domain) => r,
        _ = &mut shutdown => Ok(()),
    };
    let stopped = server.shutdown().await;
    outcome.and(stopped)
}

/// Serves cluster DNS for the node `node` until `shutdown` completes: on port 53 of
/// the node's pod gateway (once the node has a podCIDR), published as this node's
/// endpoint of the `kube-dns` Service at `cluster_ip`.
pub async fn run_for_node(
    client: Client,
    node: &str,
    cluster_ip: std::net::IpAddr,
    mut config: DnsConfig,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), DnsError> {
    tokio::pin!(shutdown);
    let (gateway, node_obj) = tokio::select! {
        r = publish::node_gateway(&client, node) => r.map_err(DnsError::Publish)?,
        _ = &mut shutdown => return Ok(()),
    };
    config.dns_bind_address = SocketAddr::new(gateway.into(), 53);
    let mut retry = Duration::from_secs(1);
    loop {
        match publish::publish(&client, &node_obj, cluster_ip, gateway).await {
            Ok(()) => break,
            Err(e) => {
                warn!(error = %e, "publishing the node's DNS endpoint failed; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(retry) => {}
                    _ = &mut shutdown => return Ok(()),
                }
                retry = (retry * 2).min(Duration::from_secs(30));
            }
        }
    }
    run(client, config, shutdown).await
}

/// The upstream nameservers: those of `--upstream-resolv-conf`, less this server.
fn upstreams(config: &DnsConfig) -> Vec<SocketAddr> {
    let all = match forward::read_resolv_conf(&config.upstream_resolv_conf) {
        Ok(all) => all,
        Err(error) => {
            warn!(
                path = %config.upstream_resolv_conf.display(),
                %error,
                "reading the upstream resolv.conf failed"
            );
            Vec::new()
        }
    };
    let upstreams: Vec<SocketAddr> = all
        .into_iter()
        .filter(|u| *u != config.dns_bind_address)
        .collect();
    if upstreams.is_empty() {
        warn!("no upstream nameservers: names outside the cluster domain will fail");
    }
    upstreams
}

/// Watches Services and EndpointSlices and rebuilds `records` after changes, at
/// most every [`REBUILD_PERIOD`]. Returns only when a watch ends.
async fn keep_records(
    client: Client,
    records: Arc<RwLock<Records>>,
    domain: &str,
) -> Result<(), DnsError> {
    let mut cache = ServiceCache::watch(client, None);
    let mut first = true;
    while let Some((svcs, eps)) = cache.changed(REBUILD_PERIOD).await {
        let started = Instant::now();
        let built = Records::build(&svcs, &eps, domain);
        let names = built.len();
        *records.write() = built;
        let ms = started.elapsed().as_millis() as u64;
        if first {
            info!(
                services = svcs.len(),
                names, ms, "cluster DNS records loaded"
            );
            first = false;
        } else {
            tracing::debug!(
                services = svcs.len(),
                names,
                ms,
                "cluster DNS records rebuilt"
            );
        }
    }
    Err(DnsError::WatchEnded("service"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        dns: DnsConfig,
    }

    #[test]
    fn flag_defaults() {
        let cli = Cli::try_parse_from(["dns"]).unwrap();
        assert_eq!(cli.dns.cluster_domain, "cluster.local");
        assert_eq!(
            cli.dns.dns_bind_address,
            "0.0.0.0:53".parse::<SocketAddr>().unwrap()
        );
        assert_eq!(
            cli.dns.upstream_resolv_conf,
            PathBuf::from("/etc/resolv.conf")
        );
    }

    #[test]
    fn flags() {
        let cli = Cli::try_parse_from([
            "dns",
            "--cluster-domain=corp.internal",
            "--dns-bind-address",
            "10.43.0.10:53",
            "--upstream-resolv-conf=/run/resolv.conf",
        ])
        .unwrap();
        assert_eq!(cli.dns.cluster_domain, "corp.internal");
        assert_eq!(
            cli.dns.dns_bind_address,
            "10.43.0.10:53".parse::<SocketAddr>().unwrap()
        );
        assert_eq!(
            cli.dns.upstream_resolv_conf,
            PathBuf::from("/run/resolv.conf")
        );
    }

    #[test]
    fn own_address_is_not_an_upstream() {
        let dir = std::env::temp_dir().join(format!("cluster-dns-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("resolv.conf");
        std::fs::write(&path, "nameserver 10.43.0.10\nnameserver 192.0.2.53\n").unwrap();
        let config = DnsConfig {
            cluster_domain: "cluster.local".into(),
            dns_bind_address: "10.43.0.10:53".parse().unwrap(),
            upstream_resolv_conf: path,
        };
        assert_eq!(
            upstreams(&config),
            vec!["192.0.2.53:53".parse::<SocketAddr>().unwrap()]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
