//! A lean HTTP/2 client for benchmarks: TLS with the admin client certificate from a
//! kubeconfig, a few multiplexed connections, raw bytes in and out (no decoding), so
//! the measuring side costs as little CPU as possible.

use anyhow::{anyhow, Context, Result};
use base64::Engine;
use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio_rustls::TlsConnector;

/// Credentials and address read from a kubeconfig.
#[derive(Clone)]
pub struct Target {
    /// `host:port`.
    pub addr: String,
    tls: Arc<rustls::ClientConfig>,
}

fn field(kubeconfig: &str, key: &str) -> Result<Vec<u8>> {
    let line = kubeconfig
        .lines()
        .find_map(|l| l.trim().strip_prefix(&format!("{key}: ")))
        .with_context(|| format!("{key} missing from kubeconfig"))?;
    Ok(base64::engine::general_purpose::STANDARD.decode(line.trim())?)
}

impl Target {
    /// Reads a ferrokube admin kubeconfig.
    pub fn from_kubeconfig(path: &Path) -> Result<Target> {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let kc = std::fs::read_to_string(path)?;
        let server = kc
            .lines()
            .find_map(|l| l.trim().strip_prefix("server: https://"))
            .context("server missing from kubeconfig")?
            .to_string();
        let ca = field(&kc, "certificate-authority-data")?;
        let cert = field(&kc, "client-certificate-data")?;
        let key = field(&kc, "client-key-data")?;
        let mut roots = RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(&ca) {
            roots.add(c?)?;
        }
        let certs: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(&cert).collect::<Result<_, _>>()?;
        let key = PrivateKeyDer::from_pem_slice(&key)?;
        let mut tls = rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_client_auth_cert(certs, key)?;
        tls.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Target {
            addr: server,
            tls: Arc::new(tls),
        })
    }

    /// Opens one HTTP/2 connection.
    pub async fn connect(&self) -> Result<SendRequest<Full<Bytes>>> {
        let tcp = tokio::net::TcpStream::connect(&self.addr).await?;
        tcp.set_nodelay(true)?;
        let tls = TlsConnector::from(self.tls.clone())
            .connect(ServerName::try_from("localhost")?, tcp)
            .await?;
        let (send, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
            .initial_stream_window_size(8 << 20)
            .initial_connection_window_size(32 << 20)
            .handshake(TokioIo::new(tls))
            .await?;
        tokio::spawn(conn);
        Ok(send)
    }
}

/// A small pool of HTTP/2 connections used round-robin.
#[derive(Clone)]
pub struct Pool {
    conns: Arc<Vec<SendRequest<Full<Bytes>>>>,
    next: Arc<AtomicUsize>,
}

impl Pool {
    /// Opens `n` connections.
    pub async fn new(target: &Target, n: usize) -> Result<Pool> {
        let mut conns = Vec::new();
        for _ in 0..n {
            conns.push(target.connect().await?);
        }
        Ok(Pool {
            conns: Arc::new(conns),
            next: Arc::default(),
        })
    }

    /// Opens a streaming GET (a watch) on a connection of the pool; returns its body.
    pub async fn stream(&self, path: &str) -> Result<hyper::body::Incoming> {
        let mut conn = self.raw_conn();
        conn.ready().await?;
        let req = http::Request::builder()
            .uri(format!("https://localhost{path}"))
            .header("accept", "application/json")
            .body(Full::new(Bytes::new()))?;
        Ok(conn.send_request(req).await?.into_body())
    }

    /// One of the connections (for streaming requests).
    fn raw_conn(&self) -> SendRequest<Full<Bytes>> {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.conns.len();
        self.conns[i].clone()
    }

    /// Sends a request and reads the whole body.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
    ) -> Result<(StatusCode, Bytes)> {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.conns.len();
        let mut conn = self.conns[i].clone();
        conn.ready().await?;
        let mut req = Request::builder()
            .method(method)
            .uri(format!("https://localhost{path}"))
            .header("accept", "application/json");
        if body.is_some() {
            req = req.header("content-type", "application/json");
        }
        let req = req.body(Full::new(body.unwrap_or_default()))?;
        let resp = conn.send_request(req).await?;
        let status = resp.status();
        let bytes = resp.into_body().collect().await?.to_bytes();
        Ok((status, bytes))
    }

    /// Sends a GET and reads the body frame by frame without keeping it; returns the
    /// status and the number of body bytes.
    pub async fn drain(&self, path: &str) -> Result<(StatusCode, usize)> {
        let mut conn = self.raw_conn();
        conn.ready().await?;
        let req = Request::builder()
            .uri(format!("https://localhost{path}"))
            .header("accept", "application/json")
            .body(Full::new(Bytes::new()))?;
        let resp = conn.send_request(req).await?;
        let status = resp.status();
        let mut body = resp.into_body();
        let mut n = 0;
        while let Some(frame) = body.frame().await {
            if let Some(d) = frame?.data_ref() {
                n += d.len();
            }
        }
        Ok((status, n))
    }

    /// Sends a request, failing on a non-2xx answer.
    pub async fn expect(&self, method: Method, path: &str, body: Option<Bytes>) -> Result<Bytes> {
        let (status, bytes) = self.send(method, path, body).await?;
        if !status.is_success() {
            return Err(anyhow!(
                "{path}: {status}: {}",
                String::from_utf8_lossy(&bytes)
            ));
        }
        Ok(bytes)
    }
}

/// Follows a watch at `path`, calling `f` with each event's object until the
/// stream ends.
pub async fn for_each_watched(
    pool: &Pool,
    path: &str,
    mut f: impl FnMut(&serde_json::Value),
) -> Result<()> {
    use http_body_util::BodyExt;
    let mut body = pool.stream(path).await?;
    let mut buf: Vec<u8> = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame?;
        let Some(data) = frame.data_ref() else {
            continue;
        };
        buf.extend_from_slice(data);
        while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buf.drain(..=pos).collect();
            if let Ok(ev) = serde_json::from_slice::<serde_json::Value>(&line) {
                f(&ev["object"]);
            }
        }
    }
    Ok(())
}
