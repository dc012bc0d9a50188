//! The kubelet's HTTPS API (port 10250), as upstream's kubelet serves it to the API
//! server, metrics-server and kubectl (through the API server's proxy):
//!
//! - `/healthz` (no authentication; also plain HTTP on 10248 with [`serve_healthz`]);
//! - `/pods` (a `PodList`), `/stats/summary` (the Summary API) and `/metrics/resource`
//!   (Prometheus text) — see [`stats`];
//! - `/containerLogs/{namespace}/{pod}/{container}` with the `PodLogOptions` parameters
//!   (`follow`, `previous`, `tailLines`, `sinceSeconds`, `sinceTime`, `timestamps`,
//!   `limitBytes`, `stream`) — see [`logs`];
//! - `/exec/...` and `/attach/...` over SPDY/3.1 or WebSocket (`v5.channel.k8s.io` and
//!   older) — see [`remotecommand`];
//! - `/portForward/{namespace}/{pod}` over SPDY, WebSocket, or SPDY tunnelled in a
//!   WebSocket — see [`portforward`].
//!
//! Clients authenticate with a certificate signed by the client CA (the API server's
//! kubelet client certificate); anything else gets 401. The kubelet plugs in through the
//! [`Host`] trait: the pods it runs, its container runtime, pod network namespaces and a
//! few paths.

pub mod logs;
pub mod portforward;
pub mod remotecommand;
mod server;
pub mod spdy;
pub mod stats;
pub mod tls;
pub mod ws;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use container_runtime::ContainerRuntime;
use hyper_util::rt::{TokioExecutor, TokioIo};
use k8s_openapi::api::core::v1::Pod;
use tokio::net::TcpListener;

pub use tls::{Identity, ServingCert, TlsOptions};

/// The labels the kubelet puts on its containers (the CRI's pod and container labels),
/// used to find a pod's containers in the runtime.
pub mod labels {
    /// Pod UID.
    pub const POD_UID: &str = "io.kubernetes.pod.uid";
    /// Pod name.
    pub const POD_NAME: &str = "io.kubernetes.pod.name";
    /// Pod namespace.
    pub const POD_NAMESPACE: &str = "io.kubernetes.pod.namespace";
    /// Container name in the pod spec.
    pub const CONTAINER_NAME: &str = "io.kubernetes.container.name";
    /// Restart count of the instance.
    pub const ATTEMPT: &str = "io.kubernetes.container.restartCount";
}

/// Errors of the server.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// Binding or accepting failed.
    #[error("kubelet server: {0}")]
    Io(#[from] std::io::Error),
    /// The TLS configuration is unusable.
    #[error("kubelet server TLS: {0}")]
    Tls(String),
    /// The peer closed the connection.
    #[error("connection closed")]
    ConnectionClosed,
}

/// What the server needs from the kubelet.
///
/// Containers are found in [`runtime`](Host::runtime) by their labels ([`labels`]);
/// container logs are chosen by the pod status (`containerID` of the current or last
/// terminated instance, `<runtime>://<id>`).
pub trait Host: Send + Sync + 'static {
    /// The node's name.
    fn node_name(&self) -> String;

    /// The pods bound to this node, with the status the kubelet last computed.
    fn pods(&self) -> Vec<Pod>;

    /// The container runtime running the pods.
    fn runtime(&self) -> &ContainerRuntime;

    /// The network namespace file of a pod's sandbox (`None` when the pod has none, e.g.
    /// not started yet). Not asked for host-network pods.
    fn pod_netns(&self, pod_uid: &str) -> Option<PathBuf>;

    /// The log file of a container instance (by runtime id). By default from the
    /// runtime's record.
    fn container_log_path(&self, container_id: &str) -> Option<PathBuf> {
        self.runtime()
            .get(container_id)
            .ok()
            .flatten()
            .map(|i| i.log_path)
    }

    /// A directory on the node's main file system (reported as the node's `fs`).
    fn root_dir(&self) -> PathBuf {
        PathBuf::from("/")
    }

    /// The image store's directory (reported as `runtime.imageFs`; used bytes are the
    /// directory's size).
    fn image_fs_dir(&self) -> PathBuf {
        PathBuf::from("/")
    }

    /// A pod's volume directories by volume name (for `volume` stats).
    fn pod_volumes(&self, _pod_uid: &str) -> Vec<(String, PathBuf)> {
        Vec::new()
    }

    /// A container's writable layer (for `rootfs` stats).
    fn container_rootfs(&self, _container_id: &str) -> Option<PathBuf> {
        None
    }
}

/// A bound kubelet API server.
pub struct KubeletServer {
    listener: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    state: Arc<server::State>,
}

impl KubeletServer {
    /// Binds `addr` and prepares TLS (a self-signed serving certificate is made here).
    pub async fn bind(
        addr: SocketAddr,
        tls: TlsOptions,
        host: Arc<dyn Host>,
    ) -> Result<KubeletServer, ServerError> {
        let acceptor = tls::acceptor(&tls)?;
        let listener = TcpListener::bind(addr).await?;
        Ok(KubeletServer {
            listener,
            acceptor,
            state: Arc::new(server::State {
                host,
                stats: stats::StatsCollector::new(),
            }),
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> Result<SocketAddr, ServerError> {
        Ok(self.listener.local_addr()?)
    }

    /// Serves until the future is dropped.
    pub async fn run(self) -> Result<(), ServerError> {
        loop {
            let (tcp, _peer) = match self.listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "kubelet server: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let acceptor = self.acceptor.clone();
            let state = self.state.clone();
            tokio::spawn(async move {
                let _ = tcp.set_nodelay(true);
                let tls = match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp))
                    .await
                {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        tracing::debug!(error = %e, "kubelet server: TLS handshake failed");
                        return;
                    }
                    Err(_) => return,
                };
                let identity = tls
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|c| c.first())
                    .and_then(tls::identity);
                let svc = hyper::service::service_fn(move |req| {
                    let state = state.clone();
                    let identity = identity.clone();
                    async move {
                        Ok::<_, std::convert::Infallible>(
                            server::handle(state, identity, req).await,
                        )
                    }
                });
                let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                if let Err(e) = builder
                    .serve_connection_with_upgrades(TokioIo::new(tls), svc)
                    .await
                {
                    tracing::debug!(error = %e, "kubelet server: connection ended");
                }
            });
        }
    }
}

/// Resolves once a connection's "closed" signal turned true (or its sender is gone).
pub(crate) async fn until_closed(rx: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = rx.wait_for(|c| *c).await.is_ok();
}

/// Binds `addr` and serves the kubelet API until the future is dropped.
pub async fn serve(
    addr: SocketAddr,
    tls: TlsOptions,
    host: Arc<dyn Host>,
) -> Result<(), ServerError> {
    KubeletServer::bind(addr, tls, host).await?.run().await
}

/// Serves the plain-HTTP health endpoint (`GET /healthz` answers `ok`; upstream's
/// `--healthz-port` 10248 on 127.0.0.1) until the future is dropped.
pub async fn serve_healthz(addr: SocketAddr) -> Result<(), ServerError> {
    let listener = TcpListener::bind(addr).await?;
    serve_healthz_on(listener).await
}

/// [`serve_healthz`] on an already bound listener.
pub async fn serve_healthz_on(listener: TcpListener) -> Result<(), ServerError> {
    use http_body_util::Full;
    loop {
        let (tcp, _) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "healthz: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(
                |req: http::Request<hyper::body::Incoming>| async move {
                    let (status, body) = if req.uri().path() == "/healthz" {
                        (http::StatusCode::OK, "ok")
                    } else {
                        (http::StatusCode::NOT_FOUND, "404 page not found\n")
                    };
                    let mut r =
                        http::Response::new(Full::new(bytes::Bytes::from_static(body.as_bytes())));
                    *r.status_mut() = status;
                    r.headers_mut().insert(
                        http::header::CONTENT_TYPE,
                        http::HeaderValue::from_static("text/plain; charset=utf-8"),
                    );
                    Ok::<_, std::convert::Infallible>(r)
                },
            );
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), svc)
                .await;
        });
    }
}
