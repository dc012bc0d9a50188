//! Test harness (tests only): the apiserver started in-process on a loopback port with
//! an embedded store in a temporary directory, and a small HTTPS client that talks to
//! it with the admin certificate or a bearer token over HTTP/1.1 (so upgrades work).

use crate::{Config, Running};
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde_json::Value;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// A running apiserver for one test.
pub struct TestServer {
    /// The server.
    pub running: Running,
    /// Its data directory.
    pub dir: tempfile::TempDir,
}

impl TestServer {
    /// Starts an apiserver with `configure` applied to its configuration.
    pub async fn start_with(configure: impl FnOnce(&mut Config)) -> TestServer {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let dir = tempfile::tempdir().unwrap();
        let db = store::EmbeddedStore::open(&dir.path().join("db"), Default::default()).unwrap();
        let mut config = Config::new(dir.path().to_path_buf());
        config.bind_address = [127, 0, 0, 1].into();
        config.secure_port = 0;
        configure(&mut config);
        let running = crate::start(config, Arc::new(db)).await.unwrap();
        assert!(running.wait_ready(Duration::from_secs(30)).await);
        TestServer { running, dir }
    }

    /// Starts an apiserver with the default configuration.
    pub async fn start() -> TestServer {
        Self::start_with(|_| {}).await
    }

    /// The PKI directory.
    pub fn pki(&self) -> PathBuf {
        self.dir.path().join("pki")
    }

    /// The cluster CA certificate (PEM).
    pub fn ca_pem(&self) -> String {
        std::fs::read_to_string(self.pki().join("ca.crt")).unwrap()
    }

    fn tls(&self, admin: bool) -> tokio_rustls::TlsConnector {
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(self.ca_pem().as_bytes()) {
            roots.add(c.unwrap()).unwrap();
        }
        let builder = rustls::ClientConfig::builder().with_root_certificates(roots);
        let mut config = if admin {
            let cert = std::fs::read(self.pki().join("admin.crt")).unwrap();
            let key = std::fs::read(self.pki().join("admin.key")).unwrap();
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert)
                .collect::<Result<_, _>>()
                .unwrap();
            builder
                .with_client_auth_cert(certs, PrivateKeyDer::from_pem_slice(&key).unwrap())
                .unwrap()
        } else {
            builder.with_no_client_auth()
        };
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        tokio_rustls::TlsConnector::from(Arc::new(config))
    }

    /// Sends a request on a new HTTP/1.1 connection, as the admin when `admin`
    /// (else with no client certificate).
    pub async fn send(&self, req: Request<Full<Bytes>>, admin: bool) -> Response<Incoming> {
        let tcp = tokio::net::TcpStream::connect(self.running.addr)
            .await
            .unwrap();
        let tls = self
            .tls(admin)
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .unwrap();
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .unwrap();
        tokio::spawn(async move {
            let _ = conn.with_upgrades().await;
        });
        sender.send_request(req).await.unwrap()
    }

    /// A request with a JSON body (or none).
    pub fn request(method: &str, path: &str, body: Option<&Value>) -> Request<Full<Bytes>> {
        let body = body
            .map(|b| Bytes::from(serde_json::to_vec(b).unwrap()))
            .unwrap_or_default();
        Request::builder()
            .method(method)
            .uri(path)
            .header("host", "localhost")
            .header("content-type", "application/json")
            .body(Full::new(body))
            .unwrap()
    }

    /// Sends a request as the admin and returns the status and the body as JSON
    /// (a JSON string when the body is not JSON).
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> (StatusCode, Value) {
        let resp = self.send(Self::request(method, path, body), true).await;
        read_json(resp).await
    }

    /// Like [`TestServer::call`], authenticated with a bearer token only.
    pub async fn call_as(
        &self,
        token: &str,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> (StatusCode, Value) {
        let mut req = Self::request(method, path, body);
        req.headers_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
        read_json(self.send(req, false).await).await
    }

    /// Creates an object, asserting success, and returns it.
    pub async fn create(&self, path: &str, obj: Value) -> Value {
        let (code, got) = self.call("POST", path, Some(&obj)).await;
        assert_eq!(code, StatusCode::CREATED, "{got}");
        got
    }
}

/// The status and body (JSON, or a JSON string) of a response.
pub async fn read_json(resp: Response<Incoming>) -> (StatusCode, Value) {
    let code = resp.status();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    let v = serde_json::from_slice(&body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
    (code, v)
}
