//! The Kubernetes API server.
//!
//! [`start`] opens the cluster PKI in the data directory, starts a watch cache per
//! resource over the given store, serves HTTPS (HTTP/2 and HTTP/1.1) with client
//! certificate and token authentication (including the service account tokens it
//! issues, [`serviceaccount`]), keeps the system namespaces and the `kubernetes`
//! Service in place, and compacts old store revisions. Requests flow: [`server`] (TLS,
//! authentication) → [`request`] (routing) → [`discovery`] or [`handlers`] (the
//! generic REST handler) → [`registry`] (caches) → the store. Logs, exec, attach,
//! port-forward and proxy requests go to kubelets instead ([`streaming`],
//! [`kubelet`]).

pub mod admission;
pub mod alloc;
pub mod auth;
pub mod bootstrap;
pub mod bootstraptoken;
pub mod convert;
pub mod discovery;
pub mod error;
pub mod fieldmanager;
pub mod handlers;
pub mod kubelet;
pub mod negotiate;
pub mod object;
pub mod openapi;
pub mod registry;
pub mod request;
pub mod reviews;
pub mod server;
pub mod serviceaccount;
pub mod streaming;
pub mod table;
#[cfg(test)]
pub(crate) mod testing;

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use store::Storage;

/// Response body type.
pub type Body = BoxBody<Bytes, Infallible>;

/// A complete body.
pub fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).boxed()
}

/// How to run the apiserver.
#[derive(Clone, Debug)]
pub struct Config {
    /// Address to listen on.
    pub bind_address: IpAddr,
    /// HTTPS port (6443).
    pub secure_port: u16,
    /// The address other components and the `kubernetes` Service use.
    pub advertise_address: IpAddr,
    /// Where the PKI and kubeconfig live.
    pub data_dir: PathBuf,
    /// ClusterIP range.
    pub service_cluster_ip_range: String,
    /// NodePort range.
    pub service_node_port_range: (u16, u16),
    /// Extra names for the serving certificate.
    pub extra_sans: Vec<String>,
    /// How often old revisions are compacted (upstream: 5 minutes).
    pub compaction_interval: Duration,
    /// Issuer of service account tokens (`--service-account-issuer`).
    pub service_account_issuer: String,
    /// Audiences the API accepts tokens for (`--api-audiences`; empty: the issuer).
    pub api_audiences: Vec<String>,
    /// Longest lifetime a TokenRequest gets (`--service-account-max-token-expiration`;
    /// none by default).
    pub service_account_max_token_expiration: Option<Duration>,
    /// Whether projected pod tokens stay valid for a year past their nominal lifetime
    /// (`--service-account-extend-token-expiration`, on by default).
    pub service_account_extend_token_expiration: bool,
    /// Admission plugins to skip, by upstream name (`--disable-admission-plugins`):
    /// `NamespaceLifecycle`, `ServiceAccount`, `Priority`, `DefaultTolerationSeconds`,
    /// `ResourceQuota`. Other names are ignored.
    pub disable_admission_plugins: Vec<String>,
    /// Node address types tried, in order, to reach kubelets
    /// (`--kubelet-preferred-address-types`).
    pub kubelet_preferred_address_types: Vec<String>,
    /// The token nodes join with: kept valid as a bootstrap token Secret (none for
    /// the apiserver alone; `ferrokube server` makes one).
    pub join_token: Option<pki::join::JoinToken>,
}

impl Config {
    /// Defaults for a single-node cluster with state in `data_dir`.
    pub fn new(data_dir: PathBuf) -> Config {
        Config {
            bind_address: IpAddr::from([0, 0, 0, 0]),
            secure_port: 6443,
            advertise_address: IpAddr::from([127, 0, 0, 1]),
            data_dir,
            service_cluster_ip_range: "10.43.0.0/16".into(),
            service_node_port_range: (30000, 32767),
            extra_sans: vec![],
            compaction_interval: Duration::from_secs(300),
            service_account_issuer: serviceaccount::DEFAULT_ISSUER.into(),
            api_audiences: Vec::new(),
            service_account_max_token_expiration: None,
            service_account_extend_token_expiration: true,
            disable_admission_plugins: Vec::new(),
            kubelet_preferred_address_types: kubelet::DEFAULT_PREFERRED_ADDRESS_TYPES
                .iter()
                .map(|s| s.to_string())
                .collect(),
            join_token: None,
        }
    }
}

/// Why the apiserver could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Certificates could not be loaded or made.
    #[error("pki: {0}")]
    Pki(#[from] pki::PkiError),
    /// TLS configuration failed.
    #[error("tls: {0}")]
    Tls(String),
    /// The listener could not be bound.
    #[error("listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// The error.
        source: std::io::Error,
    },
    /// A configuration value is wrong.
    #[error("invalid configuration: {0}")]
    Config(String),
}

/// Shared state of a running apiserver.
pub struct Server {
    /// Configuration.
    pub config: Config,
    /// Watch caches.
    pub registry: registry::Registry,
    /// Accepted bearer tokens.
    pub tokens: auth::TokenTable,
    /// Issues and checks service account tokens.
    pub sa_tokens: serviceaccount::TokenAuthority,
    /// Client of kubelets (logs, exec, proxy).
    pub kubelet: kubelet::KubeletClient,
    /// ClusterIP and NodePort allocators.
    pub services: alloc::ServiceAllocators,
    /// Whether bootstrapping finished (readyz).
    pub ready: AtomicBool,
    /// The cluster CA certificate (PEM), published in `kube-public/cluster-info`.
    pub ca_pem: String,
}

impl Server {
    /// The shared state for `config` over `store`: loads (or creates) the service
    /// account signing key and the kubelet client certificate in `<data-dir>/pki`.
    pub fn new(config: Config, store: Arc<dyn Storage>) -> Result<Server, StartError> {
        let cidr = alloc::Cidr::parse(&config.service_cluster_ip_range).ok_or_else(|| {
            StartError::Config(format!(
                "bad service range {}",
                config.service_cluster_ip_range
            ))
        })?;
        let pki_dir = config.data_dir.join("pki");
        let ca = pki::ClusterCa::load_or_create(&pki_dir)?;
        let key = pki::sa::ServiceAccountKey::load_or_create(&pki_dir)?;
        let jwks_uri = format!(
            "https://{}/openid/v1/jwks",
            SocketAddr::new(config.advertise_address, config.secure_port)
        );
        let sa_tokens = serviceaccount::TokenAuthority::new(
            key,
            &config.service_account_issuer,
            &config.api_audiences,
            jwks_uri,
        )
        .with_expiration_policy(
            config
                .service_account_max_token_expiration
                .map(|d| d.as_secs() as i64),
            config.service_account_extend_token_expiration,
        );
        let client_cert =
            ca.load_or_issue(kubelet::CLIENT_CERT_NAME, server::cert_still_valid, |ca| {
                ca.issue_client(kubelet::CLIENT_CERT_CN, &["system:masters"])
            })?;
        let kubelet =
            kubelet::KubeletClient::new(&client_cert, &config.kubelet_preferred_address_types)
                .map_err(StartError::Tls)?;
        Ok(Server {
            services: alloc::ServiceAllocators::new(
                store.clone(),
                cidr,
                config.service_node_port_range,
            ),
            registry: registry::Registry::new(store),
            tokens: auth::TokenTable::default(),
            sa_tokens,
            kubelet,
            ready: AtomicBool::new(false),
            ca_pem: ca.cert_pem().to_string(),
            config,
        })
    }

    /// Whether an admission plugin runs (not listed in `disable_admission_plugins`).
    pub fn admission_enabled(&self, plugin: &str) -> bool {
        !self
            .config
            .disable_admission_plugins
            .iter()
            .any(|p| p == plugin)
    }
}

/// A started apiserver.
pub struct Running {
    /// The address it listens on.
    pub addr: SocketAddr,
    /// The admin kubeconfig.
    pub kubeconfig: PathBuf,
    /// Shared state.
    pub server: Arc<Server>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Running {
    /// Stops serving.
    pub fn stop(&self) {
        for t in &self.tasks {
            t.abort();
        }
    }

    /// Waits until bootstrap finished and `/readyz` answers ok.
    pub async fn wait_ready(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        while !self.server.ready.load(Ordering::Acquire) {
            if tokio::time::Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        true
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Starts the apiserver on `store`.
pub async fn start(config: Config, store: Arc<dyn Storage>) -> Result<Running, StartError> {
    // One crypto provider for the whole process; a second install is harmless.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let cidr = alloc::Cidr::parse(&config.service_cluster_ip_range).ok_or_else(|| {
        StartError::Config(format!(
            "bad service range {}",
            config.service_cluster_ip_range
        ))
    })?;
    let (tls, kubeconfig) = server::pki(&config, cidr.addr(1))?;
    let addr = SocketAddr::new(config.bind_address, config.secure_port);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Listen { addr, source })?;
    let addr = listener
        .local_addr()
        .map_err(|source| StartError::Listen { addr, source })?;
    let mut config = config;
    config.secure_port = addr.port();
    let server = Arc::new(Server::new(config, store.clone())?);
    let mut tasks = vec![tokio::spawn(server::serve(server.clone(), listener, tls))];
    let kubeconfig_path = server.config.data_dir.join("admin.kubeconfig");
    let kc = kubeconfig.replace("__SERVER__", &format!("https://127.0.0.1:{}", addr.port()));
    pki::write_private(&kubeconfig_path, &kc)?;
    tasks.push(tokio::spawn(maintain(server.clone())));
    tasks.push(tokio::spawn(compact(server.clone(), store)));
    Ok(Running {
        addr,
        kubeconfig: kubeconfig_path,
        server,
        tasks,
    })
}

/// Bootstraps, then keeps the system objects in place every 10 seconds.
async fn maintain(server: Arc<Server>) {
    let mut first = true;
    loop {
        if server.registry.wait_ready().await {
            match bootstrap::reconcile(&server).await {
                Ok(()) => {
                    if first {
                        server.ready.store(true, Ordering::Release);
                        first = false;
                    }
                }
                Err(e) => tracing::warn!(error = %e, "bootstrap reconcile failed"),
            }
        }
        let pause = if first { 50 } else { 10_000 };
        tokio::time::sleep(Duration::from_millis(pause)).await;
    }
}

/// Compacts the store every interval, at the revision seen one interval earlier (what
/// upstream's compactor does), so watchers have a full interval of history.
async fn compact(server: Arc<Server>, store: Arc<dyn Storage>) {
    let mut previous = 0;
    loop {
        tokio::time::sleep(server.config.compaction_interval).await;
        if previous > 0 {
            match store.compact(previous).await {
                Ok(()) | Err(store::StoreError::Compacted { .. }) => {}
                Err(e) => tracing::warn!(error = %e, "compaction failed"),
            }
        }
        if let Ok(rev) = store.current_revision().await {
            previous = rev;
        }
    }
}
