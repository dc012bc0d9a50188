//! The HTTP health checks kube-proxy serves, as upstream's do:
//! - one listener per `healthCheckNodePort` (LoadBalancer Services with the Local
//!   external traffic policy), answering 200 while this node has ready endpoints of
//!   the Service and the proxy is healthy, else 503, so load balancers send
//!   traffic only to nodes that keep it local;
//! - the proxy's own `/healthz` and `/livez` (`--healthz-bind-address`, port 10256),
//!   unhealthy once a change has waited longer than the health timeout to reach
//!   the data path (a sync that fails or hangs).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tracing::warn;

use crate::model::HealthCheck;

/// How long a change may wait for the data path before the proxy reports itself
/// unhealthy (upstream: twice its 30 s sync period).
pub const HEALTH_TIMEOUT: Duration = Duration::from_secs(60);

/// Whether the proxy keeps its data path in step with the API.
#[derive(Debug)]
pub struct ProxyHealth {
    state: Mutex<HealthState>,
}

#[derive(Debug)]
struct HealthState {
    /// The last successful sync.
    last_updated: Option<SystemTime>,
    /// Since when a change has been waiting to be programmed (from the start until
    /// the first sync, and from a failed sync until one succeeds).
    waiting_since: Option<Instant>,
}

impl Default for ProxyHealth {
    fn default() -> ProxyHealth {
        ProxyHealth {
            state: Mutex::new(HealthState {
                last_updated: None,
                waiting_since: Some(Instant::now()),
            }),
        }
    }
}

impl ProxyHealth {
    fn lock(&self) -> std::sync::MutexGuard<'_, HealthState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A change is waiting to reach the data path.
    pub fn queued(&self) {
        self.lock().waiting_since.get_or_insert_with(Instant::now);
    }

    /// A sync brought the data path up to date.
    pub fn synced(&self) {
        let mut s = self.lock();
        s.last_updated = Some(SystemTime::now());
        s.waiting_since = None;
    }

    /// A sync failed: the change it carried is still waiting.
    pub fn failed(&self) {
        self.lock().waiting_since.get_or_insert_with(Instant::now);
    }

    /// Healthy unless a change has waited longer than [`HEALTH_TIMEOUT`].
    pub fn healthy(&self) -> bool {
        self.lock()
            .waiting_since
            .is_none_or(|t| t.elapsed() < HEALTH_TIMEOUT)
    }

    fn last_updated(&self) -> Option<SystemTime> {
        self.lock().last_updated
    }
}

type Response = http::Response<Full<Bytes>>;

fn json_response(status: http::StatusCode, body: String, weight: Option<usize>) -> Response {
    let mut r = http::Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    h.insert(
        "X-Content-Type-Options",
        http::HeaderValue::from_static("nosniff"),
    );
    if let Some(w) = weight {
        h.insert(
            "X-Load-Balancing-Endpoint-Weight",
            http::HeaderValue::from(w),
        );
    }
    r
}

/// The answer for a Service's health check port.
pub fn service_response(check: &HealthCheck, proxy_healthy: bool) -> Response {
    let body = serde_json::json!({
        "service": {"namespace": check.namespace, "name": check.name},
        "localEndpoints": check.local_endpoints,
        "serviceProxyHealthy": proxy_healthy,
    });
    let status = if check.local_endpoints > 0 && proxy_healthy {
        http::StatusCode::OK
    } else {
        http::StatusCode::SERVICE_UNAVAILABLE
    };
    json_response(status, format!("{body:#}"), Some(check.local_endpoints))
}

fn rfc3339(t: SystemTime) -> String {
    jiff::Timestamp::try_from(t)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

/// The answer of the proxy's own `/healthz` and `/livez`.
pub fn proxy_response(health: &ProxyHealth) -> Response {
    let healthy = health.healthy();
    let body = serde_json::json!({
        "lastUpdated": health.last_updated().map(rfc3339).unwrap_or_default(),
        "currentTime": rfc3339(SystemTime::now()),
    });
    let status = if healthy {
        http::StatusCode::OK
    } else {
        http::StatusCode::SERVICE_UNAVAILABLE
    };
    json_response(status, body.to_string(), None)
}

/// Serves HTTP/1 on `listener`, answering every request with `answer()`.
async fn serve(listener: TcpListener, answer: Arc<dyn Fn(&str) -> Response + Send + Sync>) {
    loop {
        let tcp = match listener.accept().await {
            Ok((tcp, _)) => tcp,
            Err(e) => {
                warn!(error = %e, "health check: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let answer = answer.clone();
        tokio::spawn(async move {
            let svc =
                hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let r = answer(req.uri().path());
                    async move { Ok::<_, std::convert::Infallible>(r) }
                });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), svc)
                .await;
        });
    }
}

/// Serves the proxy's `/healthz` and `/livez` at `addr` until dropped.
pub async fn serve_proxy_healthz(
    addr: SocketAddr,
    health: Arc<ProxyHealth>,
) -> std::io::Result<JoinHandle<()>> {
    let listener = TcpListener::bind(addr).await?;
    let answer = move |path: &str| match path {
        "/healthz" | "/livez" => proxy_response(&health),
        _ => {
            let mut r = http::Response::new(Full::new(Bytes::from_static(b"404 page not found\n")));
            *r.status_mut() = http::StatusCode::NOT_FOUND;
            r
        }
    };
    Ok(tokio::spawn(serve(listener, Arc::new(answer))))
}

/// The listeners of the Services' health check node ports.
pub struct HealthServers {
    checks: Arc<RwLock<BTreeMap<u16, HealthCheck>>>,
    listeners: BTreeMap<u16, JoinHandle<()>>,
    health: Arc<ProxyHealth>,
}

impl HealthServers {
    /// Health check servers reporting `health` as the proxy's.
    pub fn new(health: Arc<ProxyHealth>) -> HealthServers {
        HealthServers {
            checks: Arc::default(),
            listeners: BTreeMap::new(),
            health,
        }
    }

    /// Serves exactly `checks`: new ports are opened (one that cannot be bound is
    /// retried at the next sync), gone ones closed, counts updated.
    pub async fn sync(&mut self, checks: BTreeMap<u16, HealthCheck>) {
        self.listeners.retain(|port, task| {
            let keep = checks.contains_key(port) && !task.is_finished();
            if !keep {
                task.abort();
            }
            keep
        });
        for port in checks.keys() {
            if self.listeners.contains_key(port) {
                continue;
            }
            match TcpListener::bind((std::net::Ipv4Addr::UNSPECIFIED, *port)).await {
                Ok(listener) => {
                    let (checks, health, port) = (self.checks.clone(), self.health.clone(), *port);
                    let answer = move |_: &str| {
                        let checks = checks.read().unwrap_or_else(|e| e.into_inner());
                        match checks.get(&port) {
                            Some(c) => service_response(c, health.healthy()),
                            None => json_response(
                                http::StatusCode::SERVICE_UNAVAILABLE,
                                "{}".into(),
                                Some(0),
                            ),
                        }
                    };
                    self.listeners
                        .insert(port, tokio::spawn(serve(listener, Arc::new(answer))));
                }
                Err(e) => warn!(port, error = %e, "cannot serve a health check node port"),
            }
        }
        *self.checks.write().unwrap_or_else(|e| e.into_inner()) = checks;
    }

    /// The ports being served.
    pub fn ports(&self) -> Vec<u16> {
        self.listeners.keys().copied().collect()
    }
}

impl Drop for HealthServers {
    fn drop(&mut self) {
        for task in self.listeners.values() {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(n: usize) -> HealthCheck {
        HealthCheck {
            namespace: "default".into(),
            name: "web".into(),
            local_endpoints: n,
        }
    }

    #[test]
    fn service_answers_follow_local_endpoints_and_proxy_health() {
        let r = service_response(&check(2), true);
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["X-Load-Balancing-Endpoint-Weight"], "2");
        assert_eq!(r.headers()["Content-Type"], "application/json");
        assert_eq!(service_response(&check(0), true).status(), 503);
        assert_eq!(service_response(&check(2), false).status(), 503);
    }

    #[test]
    fn proxy_health_waits_for_the_timeout() {
        let h = ProxyHealth::default();
        assert!(h.healthy(), "healthy while the first sync is young");
        h.lock().waiting_since = Some(Instant::now() - HEALTH_TIMEOUT);
        assert!(!h.healthy());
        assert_eq!(proxy_response(&h).status(), 503);
        h.synced();
        assert!(h.healthy());
        h.failed();
        assert!(h.healthy(), "a failure is within the timeout at first");
        assert_eq!(proxy_response(&h).status(), 200);
    }
}
