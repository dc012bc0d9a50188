//! The components' API client: kube's, over a connection stack that offers HTTP/2.
//!
//! kube's own builder only speaks HTTP/1.1 (its TLS connector advertises nothing else),
//! so a component with many requests in flight opens a connection, and pays a TLS
//! handshake, for each: the kubelet opened about fifty during a burst of pod starts.
//! client-go, which upstream's components use, negotiates HTTP/2 and multiplexes
//! everything over one connection; this does the same (falling back to HTTP/1.1 if
//! the server does not offer HTTP/2), with the rest of kube's stack: base URI,
//! credentials, extra headers (the user agent), retries of throttled requests, the
//! configured connect (TCP and TLS), read and write timeouts, and its request tracing
//! (a span per request; 5xx answers and transport failures logged as errors). Requests that start
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
use tower_http::classify::ServerErrorsFailureClass;
use tower_http::trace::TraceLayer;
use tracing::Span;

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
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(request_span)
                .on_request(())
                .on_response(record_status)
                .on_body_chunk(())
                .on_eos(())
                .on_failure(log_failure),
        )
        .map_err(tower::BoxError::from)
        .service(hyper_client);
    Ok(kube::Client::new(service, config.default_namespace))
}

/// A request's span, as kube's own client makes it: method, URL and (later) status.
/// At error level, unlike kube's, so that the failures logged in it name the request
/// at the components' default log level (`warn`).
fn request_span(req: &http::Request<kube::client::Body>) -> Span {
    tracing::error_span!(
        "HTTP",
        http.method = %req.method(),
        http.url = %req.uri(),
        http.status_code = tracing::field::Empty,
    )
}

fn record_status(res: &http::Response<hyper::body::Incoming>, _: Duration, span: &Span) {
    span.record("http.status_code", res.status().as_u16());
}

/// 5xx answers and failed requests are errors worth logging, as kube's client does.
fn log_failure(class: ServerErrorsFailureClass, _: Duration, span: &Span) {
    match class {
        ServerErrorsFailureClass::StatusCode(status) => {
            span.record("http.status_code", status.as_u16());
            tracing::error!("API request failed with status {status}");
        }
        ServerErrorsFailureClass::Error(e) => tracing::error!("API request failed: {e}"),
    }
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

    /// A writer into a shared buffer, for capturing log output.
    #[derive(Clone, Default)]
    struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn server_errors_are_logged() {
        // A server that answers every request with 500.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            use std::io::{Read, Write};
            for mut conn in listener.incoming().flatten() {
                let mut buf = [0u8; 4096];
                let _ = conn.read(&mut buf);
                let _ = conn.write_all(
                    b"HTTP/1.1 500 Internal Server Error\r\ncontent-type: application/json\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}",
                );
            }
        });
        let logs = Captured::default();
        let subscriber = tracing_subscriber::fmt()
            // The components' default level.
            .with_max_level(tracing::Level::WARN)
            .with_ansi(false)
            .with_writer({
                let logs = logs.clone();
                move || logs.clone()
            })
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);
        let config = kube::Config::new(format!("http://127.0.0.1:{port}").parse().unwrap());
        let api: kube::Api<Namespace> = kube::Api::all(client(config).unwrap());
        assert!(api.get("default").await.is_err());
        let logs = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
        assert!(logs.contains("ERROR"), "{logs}");
        assert!(
            logs.contains("API request failed with status 500"),
            "{logs}"
        );
        assert!(logs.contains("/api/v1/namespaces/default"), "{logs}");
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
