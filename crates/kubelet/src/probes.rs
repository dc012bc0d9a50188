//! Container probes and lifecycle hook actions, as upstream's prober runs them:
//! exec (in the container, with the probe's timeout), httpGet (HTTP or HTTPS
//! without certificate checks; 200–399 succeeds), tcpSocket (a connection
//! succeeds) and grpc (the standard health service answers SERVING). Network
//! probes reach the pod at 127.0.0.1 inside its network namespace (the socket is
//! made in that namespace), or the host for hostNetwork pods.
//!
//! [`run_prober`] is one task per probe of a running container: it waits the
//! initial delay, probes every period, and publishes the result once the success or
//! failure threshold is crossed.

use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use container_runtime::ContainerRuntime;
use http_body_util::{BodyExt, Full};
use k8s_openapi::api::core::v1::{
    Container, ExecAction, GRPCAction, HTTPGetAction, Probe, TCPSocketAction,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use parking_lot::Mutex;
use tokio::sync::Notify;

/// Which probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// startupProbe.
    Startup,
    /// livenessProbe.
    Liveness,
    /// readinessProbe.
    Readiness,
}

impl Kind {
    /// How events name it (`Liveness probe failed: …`).
    pub fn title(self) -> &'static str {
        match self {
            Kind::Startup => "Startup",
            Kind::Liveness => "Liveness",
            Kind::Readiness => "Readiness",
        }
    }
}

/// One probe's outcome.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Succeeded.
    Success,
    /// Failed, with what the probe saw.
    Failure(String),
}

/// Where the probe reaches the container.
#[derive(Clone, Debug)]
pub struct Target {
    /// The runtime, for exec.
    pub runtime: ContainerRuntime,
    /// The container instance.
    pub container_id: String,
    /// The pod's network namespace (None: host network).
    pub netns: Option<PathBuf>,
    /// The container spec (named ports).
    pub container: Container,
}

/// The port a probe names: a number, or a container port's name.
fn resolve_port(port: &IntOrString, c: &Container) -> Result<u16, String> {
    match port {
        IntOrString::Int(p) => u16::try_from(*p).map_err(|_| format!("invalid port number: {p}")),
        IntOrString::String(name) => {
            if let Ok(p) = name.parse::<u16>() {
                return Ok(p);
            }
            c.ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some(name.as_str()))
                .and_then(|p| u16::try_from(p.container_port).ok())
                .ok_or_else(|| format!("couldn't find port: {name} in {}", c.name))
        }
    }
}

/// Connects to `127.0.0.1:port` from inside `netns` (or the host's namespace).
pub fn connect_in_netns(
    netns: Option<&Path>,
    host: Option<&str>,
    port: u16,
    timeout: Duration,
) -> std::io::Result<TcpStream> {
    let ip: std::net::IpAddr = host
        .and_then(|h| h.parse().ok())
        .unwrap_or(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST));
    let addr = SocketAddr::new(ip, port);
    let Some(ns) = netns else {
        return TcpStream::connect_timeout(&addr, timeout);
    };
    let ns = ns.to_path_buf();
    // The thread enters the pod's namespace and dies; its socket stays there.
    std::thread::spawn(move || -> std::io::Result<TcpStream> {
        let f = std::fs::File::open(&ns)?;
        nix::sched::setns(f.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
            .map_err(std::io::Error::from)?;
        TcpStream::connect_timeout(&addr, timeout)
    })
    .join()
    .map_err(|_| std::io::Error::other("network namespace thread panicked"))?
}

async fn connect(
    t: &Target,
    host: Option<&str>,
    port: u16,
    timeout: Duration,
) -> std::io::Result<tokio::net::TcpStream> {
    let netns = t.netns.clone();
    let host = host.map(str::to_string);
    let s = tokio::task::spawn_blocking(move || {
        connect_in_netns(netns.as_deref(), host.as_deref(), port, timeout)
    })
    .await
    .map_err(std::io::Error::other)??;
    s.set_nonblocking(true)?;
    tokio::net::TcpStream::from_std(s)
}

async fn exec_probe(t: &Target, a: &ExecAction, timeout: Duration) -> Outcome {
    let cmd = a.command.clone().unwrap_or_default();
    match t.runtime.exec_capture(&t.container_id, &cmd, timeout).await {
        Ok(out) if out.timed_out => Outcome::Failure(format!(
            "command {} timed out",
            apimachinery::gofmt::quote(&cmd.join(" "))
        )),
        Ok(out) if out.exit_code == 0 => Outcome::Success,
        Ok(out) => {
            let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
            text.push_str(&String::from_utf8_lossy(&out.stderr));
            Outcome::Failure(text)
        }
        Err(e) => Outcome::Failure(e.to_string()),
    }
}

async fn tcp_probe(t: &Target, a: &TCPSocketAction, timeout: Duration) -> Outcome {
    let port = match resolve_port(&a.port, &t.container) {
        Ok(p) => p,
        Err(e) => return Outcome::Failure(e),
    };
    match connect(t, a.host.as_deref(), port, timeout).await {
        Ok(_) => Outcome::Success,
        Err(e) => Outcome::Failure(format!("dial tcp 127.0.0.1:{port}: {e}")),
    }
}

/// Accepts any server certificate, as upstream's HTTPS probes do.
#[derive(Debug)]
struct NoVerify(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _: &rustls_pki_types::CertificateDer<'_>,
        _: &[rustls_pki_types::CertificateDer<'_>],
        _: &rustls_pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &rustls_pki_types::CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &rustls_pki_types::CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

async fn send_http<I>(
    io: I,
    req: http::Request<Full<Bytes>>,
) -> Result<(http::StatusCode, Bytes), String>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(io))
            .await
            .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let status = resp.status();
    let body = resp
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    Ok((status, body))
}

async fn http_probe(t: &Target, a: &HTTPGetAction, timeout: Duration) -> Outcome {
    let port = match resolve_port(&a.port, &t.container) {
        Ok(p) => p,
        Err(e) => return Outcome::Failure(e),
    };
    let https = a.scheme.as_deref() == Some("HTTPS");
    let path = a
        .path
        .clone()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "/".into());
    let path = if path.starts_with('/') {
        path
    } else {
        format!("/{path}")
    };
    let host = a.host.clone().unwrap_or_else(|| "127.0.0.1".into());
    let url = format!(
        "{}://{host}:{port}{path}",
        if https { "https" } else { "http" }
    );
    let mut req = http::Request::get(path.as_str())
        .header(http::header::HOST, format!("{host}:{port}"))
        .header(http::header::USER_AGENT, "kube-probe/1.33")
        .header(http::header::ACCEPT, "*/*");
    for h in a.http_headers.iter().flatten() {
        req = req.header(h.name.as_str(), h.value.as_str());
    }
    let Ok(req) = req.body(Full::new(Bytes::new())) else {
        return Outcome::Failure(format!("invalid probe request for {url}"));
    };
    let work = async {
        let stream = connect(t, a.host.as_deref(), port, timeout)
            .await
            .map_err(|e| format!("Get \"{url}\": dial tcp {host}:{port}: {e}"))?;
        if https {
            let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
            let cfg = rustls::ClientConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .map_err(|e| e.to_string())?
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(NoVerify(provider)))
                .with_no_client_auth();
            let name =
                rustls_pki_types::ServerName::try_from(host.clone()).map_err(|e| e.to_string())?;
            let tls = tokio_rustls::TlsConnector::from(Arc::new(cfg))
                .connect(name, stream)
                .await
                .map_err(|e| format!("Get \"{url}\": {e}"))?;
            send_http(tls, req).await
        } else {
            send_http(stream, req).await
        }
    };
    match tokio::time::timeout(timeout, work).await {
        Err(_) => Outcome::Failure(format!(
            "Get \"{url}\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
        )),
        Ok(Err(e)) => Outcome::Failure(e),
        Ok(Ok((status, body))) if (200..400).contains(&status.as_u16()) => {
            let _ = body;
            Outcome::Success
        }
        Ok(Ok((status, _))) => {
            Outcome::Failure(format!("HTTP probe failed with statuscode: {}", status.as_u16()))
        }
    }
}

/// A gRPC HealthCheckRequest with `service` (field 1, string).
fn health_request(service: &str) -> Bytes {
    let mut msg = Vec::new();
    if !service.is_empty() {
        msg.push(0x0a);
        let mut n = service.len();
        loop {
            let b = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                msg.push(b);
                break;
            }
            msg.push(b | 0x80);
        }
        msg.extend_from_slice(service.as_bytes());
    }
    let mut framed = vec![0u8];
    framed.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    framed.extend_from_slice(&msg);
    Bytes::from(framed)
}

/// The `status` (field 1, enum) of a framed HealthCheckResponse.
fn health_status(body: &[u8]) -> Option<u64> {
    let msg = body.get(5..)?;
    let mut i = 0;
    while i < msg.len() {
        let key = msg[i];
        i += 1;
        let (mut v, mut shift) = (0u64, 0);
        loop {
            let b = *msg.get(i)?;
            i += 1;
            v |= u64::from(b & 0x7f) << shift;
            shift += 7;
            if b & 0x80 == 0 {
                break;
            }
        }
        if key == 0x08 {
            return Some(v);
        }
        if key & 7 == 2 {
            i += v as usize;
        }
    }
    Some(0)
}

async fn grpc_probe(t: &Target, a: &GRPCAction, timeout: Duration) -> Outcome {
    let Ok(port) = u16::try_from(a.port) else {
        return Outcome::Failure(format!("invalid port number: {}", a.port));
    };
    let service = a.service.clone().unwrap_or_default();
    let work = async {
        let stream = connect(t, None, port, timeout).await.map_err(|e| {
            format!(
                "failed to connect service \"127.0.0.1:{port}\" within {}s: {e}",
                timeout.as_secs()
            )
        })?;
        let (mut sender, conn) = hyper::client::conn::http2::handshake(
            hyper_util::rt::TokioExecutor::new(),
            hyper_util::rt::TokioIo::new(stream),
        )
        .await
        .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        let req = http::Request::post(format!(
            "http://127.0.0.1:{port}/grpc.health.v1.Health/Check"
        ))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header(http::header::USER_AGENT, "kube-probe/1.33")
        .body(Full::new(health_request(&service)))
        .map_err(|e| e.to_string())?;
        let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
        let collected = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?;
        let grpc_status = collected
            .trailers()
            .and_then(|t| t.get("grpc-status"))
            .and_then(|v| v.to_str().ok())
            .unwrap_or("0")
            .to_string();
        let body = collected.to_bytes();
        if grpc_status != "0" {
            return Err(format!(
                "health rpc probe failed: rpc error: code = {grpc_status}"
            ));
        }
        match health_status(&body) {
            Some(1) => Ok(()),
            Some(s) => Err(format!(
                "service unhealthy (responded with \"{}\")",
                match s {
                    0 => "UNKNOWN",
                    2 => "NOT_SERVING",
                    3 => "SERVICE_UNKNOWN",
                    _ => "UNKNOWN",
                }
            )),
            None => Err("health rpc probe failed: malformed response".into()),
        }
    };
    match tokio::time::timeout(timeout, work).await {
        Err(_) => Outcome::Failure(format!(
            "timeout: health rpc did not complete within {}s",
            timeout.as_secs()
        )),
        Ok(Err(e)) => Outcome::Failure(e),
        Ok(Ok(())) => Outcome::Success,
    }
}

/// Runs a probe's action once.
pub async fn probe_once(t: &Target, p: &Probe) -> Outcome {
    let timeout = Duration::from_secs(p.timeout_seconds.unwrap_or(1).max(1) as u64);
    if let Some(a) = &p.exec {
        exec_probe(t, a, timeout).await
    } else if let Some(a) = &p.http_get {
        http_probe(t, a, timeout).await
    } else if let Some(a) = &p.tcp_socket {
        tcp_probe(t, a, timeout).await
    } else if let Some(a) = &p.grpc {
        grpc_probe(t, a, timeout).await
    } else {
        Outcome::Failure("missing probe handler".into())
    }
}

/// A lifecycle hook's action (postStart/preStop): exec, httpGet, tcpSocket or sleep.
pub async fn run_hook(
    t: &Target,
    h: &k8s_openapi::api::core::v1::LifecycleHandler,
    budget: Duration,
) -> Result<(), String> {
    if let Some(s) = &h.sleep {
        tokio::time::sleep(Duration::from_secs(s.seconds.max(0) as u64).min(budget)).await;
        return Ok(());
    }
    let outcome = if let Some(a) = &h.exec {
        exec_probe(t, a, budget).await
    } else if let Some(a) = &h.http_get {
        http_probe(t, a, budget).await
    } else if let Some(a) = &h.tcp_socket {
        tcp_probe(t, a, budget).await
    } else {
        return Ok(());
    };
    match outcome {
        Outcome::Success => Ok(()),
        Outcome::Failure(m) => Err(m),
    }
}

/// The published state of one container's probes.
#[derive(Clone, Debug, Default)]
pub struct ProbeState {
    /// The startup probe passed (or there is none).
    pub started: bool,
    /// The readiness probe passes (or there is none and the container started).
    pub ready: bool,
    /// Liveness (or startup) failed past its threshold: restart the container.
    pub restart: Option<String>,
}

/// Runs one probe forever, publishing threshold crossings into `state` and waking
/// the pod worker; `on_failure` is told each failed attempt (for Unhealthy events).
pub async fn run_prober(
    kind: Kind,
    probe: Probe,
    target: Target,
    state: Arc<Mutex<ProbeState>>,
    wake: Arc<Notify>,
    on_failure: impl Fn(Kind, String) + Send + 'static,
) {
    tokio::time::sleep(Duration::from_secs(
        probe.initial_delay_seconds.unwrap_or(0).max(0) as u64,
    ))
    .await;
    let period = Duration::from_secs(probe.period_seconds.unwrap_or(10).max(1) as u64);
    let success_threshold = probe.success_threshold.unwrap_or(1).max(1);
    let failure_threshold = probe.failure_threshold.unwrap_or(3).max(1);
    let (mut successes, mut failures) = (0, 0);
    loop {
        // Liveness and readiness wait for the startup probe.
        if kind != Kind::Startup && !state.lock().started {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        }
        let outcome = probe_once(&target, &probe).await;
        match outcome {
            Outcome::Success => {
                failures = 0;
                successes += 1;
                if successes >= success_threshold {
                    let mut s = state.lock();
                    let changed = match kind {
                        Kind::Startup => !std::mem::replace(&mut s.started, true),
                        Kind::Readiness => !std::mem::replace(&mut s.ready, true),
                        Kind::Liveness => false,
                    };
                    drop(s);
                    if changed {
                        wake.notify_one();
                    }
                    if kind == Kind::Startup {
                        return;
                    }
                }
            }
            Outcome::Failure(msg) => {
                successes = 0;
                failures += 1;
                on_failure(kind, msg.clone());
                if failures >= failure_threshold {
                    let mut s = state.lock();
                    match kind {
                        Kind::Readiness => {
                            if std::mem::replace(&mut s.ready, false) {
                                drop(s);
                                wake.notify_one();
                            }
                        }
                        Kind::Startup | Kind::Liveness => {
                            s.restart = Some(format!(
                                "Container {} failed {} probe, will be restarted",
                                target.container.name,
                                kind.title().to_lowercase()
                            ));
                            drop(s);
                            wake.notify_one();
                            return;
                        }
                    }
                }
            }
        }
        tokio::time::sleep(period).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_health_frames() {
        assert_eq!(&health_request("")[..], &[0, 0, 0, 0, 0]);
        assert_eq!(
            &health_request("db")[..],
            &[0, 0, 0, 0, 4, 0x0a, 2, b'd', b'b']
        );
        assert_eq!(health_status(&[0, 0, 0, 0, 2, 0x08, 1]), Some(1));
        assert_eq!(health_status(&[0, 0, 0, 0, 2, 0x08, 2]), Some(2));
        assert_eq!(health_status(&[0, 0, 0, 0, 0]), Some(0));
        assert_eq!(health_status(&[0, 0]), None);
    }

    #[test]
    fn named_ports() {
        let c: Container = serde_json::from_value(
            serde_json::json!({"name": "c", "ports": [{"name": "http", "containerPort": 8080}]}),
        )
        .unwrap();
        assert_eq!(
            resolve_port(&IntOrString::String("http".into()), &c),
            Ok(8080)
        );
        assert_eq!(resolve_port(&IntOrString::Int(80), &c), Ok(80));
        assert_eq!(
            resolve_port(&IntOrString::String("9090".into()), &c),
            Ok(9090)
        );
        assert!(resolve_port(&IntOrString::String("nope".into()), &c).is_err());
    }

    #[tokio::test]
    async fn tcp_and_http_probes_on_the_host() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = listener.accept().await else {
                    return;
                };
                tokio::spawn(async move {
                    use tokio::io::{AsyncReadExt, AsyncWriteExt};
                    let mut buf = vec![0u8; 4096];
                    let n = s.read(&mut buf).await.unwrap_or(0);
                    let req = String::from_utf8_lossy(&buf[..n]).into_owned();
                    let (status, body) = if req.starts_with("GET /healthz ") {
                        ("200 OK", "ok")
                    } else {
                        ("500 Internal Server Error", "broken")
                    };
                    let _ = s
                        .write_all(format!("HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len()).as_bytes())
                        .await;
                });
            }
        });
        let dir = tempfile::tempdir().unwrap();
        let runtime = ContainerRuntime::new(container_runtime::RuntimeConfig {
            state_dir: dir.path().to_path_buf(),
            oci: container_runtime::OciRuntime::Builtin,
            shim_program: "/bin/true".into(),
            shim_args: vec![],
        })
        .unwrap();
        let target = Target {
            runtime,
            container_id: "none".into(),
            netns: None,
            container: serde_json::from_value(serde_json::json!({"name": "c"})).unwrap(),
        };
        let probe = |v: serde_json::Value| -> Probe { serde_json::from_value(v).unwrap() };
        assert_eq!(
            probe_once(
                &target,
                &probe(serde_json::json!({"tcpSocket": {"port": port}}))
            )
            .await,
            Outcome::Success
        );
        assert_eq!(
            probe_once(
                &target,
                &probe(serde_json::json!({"httpGet": {"path": "/healthz", "port": port}}))
            )
            .await,
            Outcome::Success
        );
        assert_eq!(
            probe_once(
                &target,
                &probe(serde_json::json!({"httpGet": {"path": "/bad", "port": port}}))
            )
            .await,
            Outcome::Failure("HTTP probe failed with statuscode: 500".into())
        );
        // Nothing listens on port 1.
        assert!(matches!(
            probe_once(
                &target,
                &probe(serde_json::json!({"tcpSocket": {"port": 1}}))
            )
            .await,
            Outcome::Failure(_)
        ));
    }
}
