//! The components' API client: kube's, over a connection stack that offers HTTP/2.
//!
//! kube's own builder only speaks HTTP/1.1 (its TLS connector advertises nothing else),
//! so a component with many requests in flight opens a connection, and pays a TLS
//! handshake, for each: the kubelet opened about fifty during a burst of pod starts.
//! client-go, which upstream's components use, negotiates HTTP/2 and multiplexes
//! everything over one connection; this does the same (falling back to HTTP/1.1 if
//! the server does not offer HTTP/2), with the rest of kube's stack: base URI,
//! credentials, extra headers (the user agent), retries of throttled requests, and
//! the configured connect (TCP and TLS), read and write timeouts. Requests that start
//! before the first connection's handshake has finished may open connections of their
//! own (the pool learns a connection is HTTP/2 from ALPN); after it, all share it.
//!
//! Not for upgraded requests (exec, attach, port-forward over WebSocket), which need
//! HTTP/1.1: no component makes them. With a proxy configured, kube's own HTTP/1.1
//! client is used, which knows how to go through one.

use std::time::Duration;

use anyhow::{Context, Result};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use kube::client::retry::RetryPolicy;
use kube::client::ConfigExt;
use tower::retry::RetryLayer;
use tower::ServiceBuilder;

/// Flow-control windows as Go's HTTP/2 transport (client-go) sets them: a watch whose
/// reader falls behind must not stall the other streams of the connection by using up
/// the connection's window.
const STREAM_WINDOW: u32 = 4 << 20;
const CONNECTION_WINDOW: u32 = 1 << 30;
/// Pings on an idle connection, so a dead peer is noticed (as client-go's
/// `ReadIdleTimeout`).
const KEEP_ALIVE: Duration = Duration::from_secs(30);

/// A client for `config` that negotiates HTTP/2 with the API server.
pub(crate) fn client(config: kube::Config) -> Result<kube::Client> {
    if config.proxy_url.is_some() {
        return kube::Client::try_from(config).context("building the API client");
    }
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(config.connect_timeout);
    let tls = config
        .rustls_client_config()
        .context("the API client's TLS settings")?;
    let mut https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http();
    if let Some(name) = &config.tls_server_name {
        let name = name
            .clone()
            .try_into()
            .with_context(|| format!("TLS server name {name:?}"))?;
        https = https.with_server_name_resolver(hyper_rustls::FixedServerNameResolver::new(name));
    }
    let https = https.enable_all_versions().wrap_connector(http);
    let mut connector = hyper_timeout::TimeoutConnector::new(https);
    connector.set_connect_timeout(config.connect_timeout);
    connector.set_read_timeout(config.read_timeout);
    connector.set_write_timeout(config.write_timeout);
    let hyper_client = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .timer(TokioTimer::new())
        .http2_initial_stream_window_size(STREAM_WINDOW)
        .http2_initial_connection_window_size(CONNECTION_WINDOW)
        .http2_keep_alive_interval(KEEP_ALIVE)
        .http2_keep_alive_while_idle(true)
        .build(connector);
    let service = ServiceBuilder::new()
        .layer(config.base_uri_layer())
        .option_layer(
            config
                .default_retry
                .then(|| RetryLayer::new(RetryPolicy::server_retry())),
        )
        .option_layer(
            config
                .auth_layer()
                .context("the API client's credentials")?,
        )
        .layer(
            config
                .extra_headers_layer()
                .context("the API client's headers")?,
        )
        .map_err(tower::BoxError::from)
        .service(hyper_client);
    Ok(kube::Client::new(service, config.default_namespace))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use k8s_openapi::api::core::v1::Namespace;

    use super::*;

    /// Established TCP connections (in this network namespace) to 127.0.0.1:`port`.
    fn connections_to(port: u16) -> usize {
        let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
        let remote = format!("0100007F:{port:04X}");
        table
            .lines()
            .skip(1)
            .filter(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                f.get(2) == Some(&remote.as_str()) && f.get(3) == Some(&"01")
            })
            .count()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_requests_share_one_http2_connection() {
        let dir = tempfile::tempdir().unwrap();
        let db = store::EmbeddedStore::open(&dir.path().join("db"), Default::default()).unwrap();
        let mut config = apiserver::Config::new(dir.path().to_path_buf());
        config.bind_address = [127, 0, 0, 1].into();
        config.secure_port = 0;
        let running = apiserver::start(config, Arc::new(db)).await.unwrap();
        assert!(running.wait_ready(Duration::from_secs(30)).await);

        let client = crate::client_from(&running.kubeconfig, "apiclient-test")
            .await
            .unwrap();
        let api: kube::Api<Namespace> = kube::Api::all(client);
        let lp = kube::api::ListParams::default();
        // The pool learns that a connection is HTTP/2 only from its handshake (ALPN):
        // requests that race the first handshake may each open one. After it, every
        // request goes over that connection.
        api.list(&lp).await.unwrap();
        assert_eq!(connections_to(running.addr.port()), 1);
        // As many requests in flight as a burst of pod starts makes; over HTTP/1.1
        // each would need a connection of its own.
        let lists = (0..32).map(|_| api.list(&lp));
        for listed in futures::future::join_all(lists).await {
            assert!(listed
                .unwrap()
                .items
                .iter()
                .any(|n| n.metadata.name.as_deref() == Some("default")));
        }
        assert_eq!(connections_to(running.addr.port()), 1);
        // A watch shares it too.
        let wp = kube::api::WatchParams::default();
        let mut w = std::pin::pin!(api.watch(&wp, "0").await.unwrap());
        use futures::StreamExt;
        assert!(w.next().await.is_some());
        assert_eq!(connections_to(running.addr.port()), 1);
        running.stop();
    }
}
