//! Shared pieces of the end-to-end tests: a test PKI, a fake kubelet ([`FakeHost`]) over
//! a real container runtime with busybox containers, the server on a random port, and
//! clients (HTTPS with or without a client certificate, SPDY and WebSocket upgrades).

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use container_runtime::cgroups::PodCgroup;
use container_runtime::sandbox::{Sandbox, SandboxNamespaces};
use container_runtime::{ContainerIo, ContainerRuntime, OciRuntime, RuntimeConfig};
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStateRunning, ContainerStatus, Pod, PodSpec, PodStatus,
};
use kubelet_server::{labels, Host, KubeletServer, ServingCert, TlsOptions};
use oci_spec::runtime::{LinuxNamespaceType, Spec};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tokio_tungstenite::tungstenite::protocol::Role;

/// A CA and a client certificate it signed.
pub struct Pki {
    pub ca_pem: String,
    pub client_cert: String,
    pub client_key: String,
}

impl Pki {
    pub fn new(cn: &str) -> Pki {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(rcgen::DnType::CommonName, format!("{cn}-ca"));
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca, ca_key);
        let key = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name.push(rcgen::DnType::CommonName, cn);
        p.distinguished_name
            .push(rcgen::DnType::OrganizationName, "system:masters");
        p.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let cert = p.signed_by(&key, &issuer).unwrap();
        Pki {
            ca_pem: ca_cert.pem(),
            client_cert: cert.pem(),
            client_key: key.serialize_pem(),
        }
    }
}

/// The kubelet's side of the server, backed by a real runtime.
pub struct FakeHost {
    pub runtime: ContainerRuntime,
    pub pods: Mutex<Vec<Pod>>,
    pub netns: Mutex<HashMap<String, PathBuf>>,
    pub log_paths: Mutex<HashMap<String, PathBuf>>,
    pub root: PathBuf,
}

impl Host for FakeHost {
    fn node_name(&self) -> String {
        "node-1".to_string()
    }
    fn pods(&self) -> Vec<Pod> {
        self.pods.lock().unwrap().clone()
    }
    fn runtime(&self) -> &ContainerRuntime {
        &self.runtime
    }
    fn pod_netns(&self, pod_uid: &str) -> Option<PathBuf> {
        self.netns.lock().unwrap().get(pod_uid).cloned()
    }
    fn container_log_path(&self, container_id: &str) -> Option<PathBuf> {
        if let Some(p) = self.log_paths.lock().unwrap().get(container_id) {
            return Some(p.clone());
        }
        self.runtime
            .get(container_id)
            .ok()
            .flatten()
            .map(|i| i.log_path)
    }
    fn root_dir(&self) -> PathBuf {
        self.root.clone()
    }
    fn image_fs_dir(&self) -> PathBuf {
        self.root.clone()
    }
}

static SEQ: AtomicU32 = AtomicU32::new(0);

/// One test's world.
pub struct World {
    pub tmp: tempfile::TempDir,
    pub rootfs: PathBuf,
    pub host: Arc<FakeHost>,
    pub addr: std::net::SocketAddr,
    pub pki: Pki,
    pub cg_parent: String,
    pub sandboxes: Mutex<Vec<Sandbox>>,
    server: tokio::task::JoinHandle<()>,
}

impl World {
    pub async fn new() -> World {
        let tmp = tempfile::Builder::new()
            .prefix("ferrokube-kls-")
            .tempdir()
            .unwrap();
        let rootfs = tmp.path().join("rootfs");
        make_rootfs(&rootfs);
        let runtime = ContainerRuntime::new(RuntimeConfig {
            state_dir: tmp.path().join("state"),
            oci: OciRuntime::Builtin,
            shim_program: PathBuf::from(env!("CARGO_BIN_EXE_kubelet-server-test-shim")),
            shim_args: Vec::new(),
        })
        .unwrap();
        let host = Arc::new(FakeHost {
            runtime,
            pods: Mutex::new(Vec::new()),
            netns: Mutex::new(HashMap::new()),
            log_paths: Mutex::new(HashMap::new()),
            root: tmp.path().to_path_buf(),
        });
        let pki = Pki::new("kube-apiserver-kubelet-client");
        let server = KubeletServer::bind(
            "127.0.0.1:0".parse().unwrap(),
            TlsOptions {
                serving: ServingCert::SelfSigned {
                    hosts: vec!["localhost".into(), "127.0.0.1".into()],
                },
                client_ca_pem: pki.ca_pem.clone(),
            },
            host.clone(),
        )
        .await
        .unwrap();
        let addr = server.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let _ = server.run().await;
        });
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        World {
            tmp,
            rootfs,
            host,
            addr,
            pki,
            cg_parent: format!("/ferrokube-kls-test-{}-{n}", std::process::id()),
            sandboxes: Mutex::new(Vec::new()),
            server,
        }
    }

    /// Adds a pod (spec with `containers`, all running) and returns its uid.
    pub fn add_pod(&self, name: &str, containers: &[&str]) -> String {
        let uid = format!("uid-{name}");
        let mut pod = Pod::default();
        pod.metadata.name = Some(name.into());
        pod.metadata.namespace = Some("default".into());
        pod.metadata.uid = Some(uid.clone());
        pod.spec = Some(PodSpec {
            containers: containers
                .iter()
                .map(|c| Container {
                    name: c.to_string(),
                    image: Some("busybox".into()),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        });
        pod.status = Some(PodStatus {
            phase: Some("Running".into()),
            ..Default::default()
        });
        self.host.pods.lock().unwrap().push(pod);
        uid
    }

    /// Replaces a pod's container statuses.
    pub fn set_statuses(&self, pod: &str, statuses: Vec<ContainerStatus>) {
        let mut pods = self.host.pods.lock().unwrap();
        for p in pods.iter_mut() {
            if p.metadata.name.as_deref() == Some(pod) {
                p.status
                    .get_or_insert_with(Default::default)
                    .container_statuses = Some(statuses.clone());
            }
        }
    }

    /// A sandbox (network, IPC, UTS namespaces) for a pod.
    pub async fn sandbox(&self, uid: &str) -> Sandbox {
        let dir = self.tmp.path().join("sandboxes").join(uid);
        let sb = self
            .host
            .runtime
            .create_sandbox(
                &dir,
                uid,
                "pod-host",
                SandboxNamespaces {
                    net: true,
                    ipc: true,
                    uts: true,
                },
            )
            .await
            .unwrap();
        if let Some(net) = &sb.net {
            self.host
                .netns
                .lock()
                .unwrap()
                .insert(uid.to_string(), net.clone());
        }
        self.sandboxes.lock().unwrap().push(sb.clone());
        sb
    }

    /// Starts a container of a pod (in its sandbox when given) and marks it running in
    /// the pod status; returns the runtime id.
    pub async fn start(
        &self,
        pod: &str,
        uid: &str,
        container: &str,
        args: &[&str],
        sandbox: Option<&Sandbox>,
    ) -> String {
        self.start_with_io(pod, uid, container, args, sandbox, ContainerIo::default())
            .await
    }

    /// [`start`](Self::start) with stdin and/or a terminal, also set in the pod's container
    /// spec (where kubectl looks).
    pub async fn start_with_io(
        &self,
        pod: &str,
        uid: &str,
        container: &str,
        args: &[&str],
        sandbox: Option<&Sandbox>,
        io: ContainerIo,
    ) -> String {
        for p in self.host.pods.lock().unwrap().iter_mut() {
            if p.metadata.name.as_deref() != Some(pod) {
                continue;
            }
            for c in p.spec.iter_mut().flat_map(|s| s.containers.iter_mut()) {
                if c.name == container {
                    c.stdin = Some(io.stdin);
                    c.stdin_once = Some(io.stdin_once);
                    c.tty = Some(io.tty);
                }
            }
        }
        let id = format!("{pod}-{container}-{}", SEQ.fetch_add(1, Ordering::Relaxed));
        let cgroup = format!("{}/pod{uid}/{id}", self.cg_parent);
        let mut spec = spec(&self.rootfs, args, &cgroup);
        if let Some(sb) = sandbox {
            spec = in_sandbox(spec, sb);
        }
        let log = self
            .tmp
            .path()
            .join("logs")
            .join(format!("default_{pod}_{uid}"))
            .join(container)
            .join("0.log");
        let labels = BTreeMap::from([
            (labels::POD_UID.to_string(), uid.to_string()),
            (labels::POD_NAME.to_string(), pod.to_string()),
            (labels::POD_NAMESPACE.to_string(), "default".to_string()),
            (labels::CONTAINER_NAME.to_string(), container.to_string()),
            (labels::ATTEMPT.to_string(), "0".to_string()),
        ]);
        self.host
            .runtime
            .start_with_io(&id, &spec, &log, labels, io)
            .await
            .unwrap_or_else(|e| panic!("starting {id}: {e}"));
        self.set_statuses(
            pod,
            vec![ContainerStatus {
                name: container.to_string(),
                container_id: Some(format!("ferrokube://{id}")),
                state: Some(ContainerState {
                    running: Some(ContainerStateRunning::default()),
                    ..Default::default()
                }),
                ..Default::default()
            }],
        );
        id
    }

    pub fn connector(&self, with_cert: Option<&Pki>) -> tokio_rustls::TlsConnector {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyServer(provider)));
        let mut config = match with_cert {
            Some(p) => builder
                .with_client_auth_cert(
                    CertificateDer::pem_slice_iter(p.client_cert.as_bytes())
                        .collect::<Result<Vec<_>, _>>()
                        .unwrap(),
                    PrivateKeyDer::from_pem_slice(p.client_key.as_bytes()).unwrap(),
                )
                .unwrap(),
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        tokio_rustls::TlsConnector::from(Arc::new(config))
    }

    /// An HTTP/1.1 connection over TLS (with this world's client certificate unless
    /// `cert` says otherwise).
    pub async fn http(
        &self,
        cert: Option<&Pki>,
    ) -> std::io::Result<http1::SendRequest<Empty<Bytes>>> {
        let tcp = tokio::net::TcpStream::connect(self.addr).await?;
        let tls = self
            .connector(cert)
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await?;
        let (sender, conn) = http1::handshake(TokioIo::new(tls))
            .await
            .map_err(std::io::Error::other)?;
        tokio::spawn(async move {
            let _ = conn.with_upgrades().await;
        });
        Ok(sender)
    }

    /// GET with the client certificate; status and body.
    pub async fn get(&self, path: &str) -> (u16, String) {
        self.get_as(Some(&self.pki), path).await.unwrap()
    }

    pub async fn get_as(&self, cert: Option<&Pki>, path: &str) -> std::io::Result<(u16, String)> {
        let mut s = self.http(cert).await?;
        let req = http::Request::get(path)
            .header("host", "localhost")
            .body(Empty::new())
            .unwrap();
        let resp = s.send_request(req).await.map_err(std::io::Error::other)?;
        let status = resp.status().as_u16();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(std::io::Error::other)?
            .to_bytes();
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    }

    /// Upgrades `path` to SPDY with the given stream protocols.
    pub async fn spdy(
        &self,
        path: &str,
        protocols: &[&str],
    ) -> Result<(String, kubelet_server::spdy::Connection), (u16, String)> {
        let mut s = self.http(Some(&self.pki)).await.unwrap();
        let mut req = http::Request::post(path)
            .header("host", "localhost")
            .header("connection", "Upgrade")
            .header("upgrade", "SPDY/3.1");
        for p in protocols {
            req = req.header("x-stream-protocol-version", *p);
        }
        let resp = s
            .send_request(req.body(Empty::new()).unwrap())
            .await
            .unwrap();
        if resp.status() != 101 {
            let status = resp.status().as_u16();
            let body = resp.into_body().collect().await.unwrap().to_bytes();
            return Err((status, String::from_utf8_lossy(&body).into_owned()));
        }
        let proto = resp
            .headers()
            .get("x-stream-protocol-version")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        let up = hyper::upgrade::on(resp).await.unwrap();
        Ok((
            proto,
            kubelet_server::spdy::Connection::new(
                TokioIo::new(up),
                kubelet_server::spdy::Role::Client,
            ),
        ))
    }

    /// Upgrades `path` to a WebSocket offering `protocols`.
    pub async fn websocket(
        &self,
        path: &str,
        protocols: &[&str],
    ) -> Result<(String, kubelet_server::ws::Ws), (u16, String)> {
        let mut s = self.http(Some(&self.pki)).await.unwrap();
        let mut req = http::Request::get(path)
            .header("host", "localhost")
            .header("connection", "Upgrade")
            .header("upgrade", "websocket")
            .header("sec-websocket-version", "13")
            .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==");
        if !protocols.is_empty() {
            req = req.header("sec-websocket-protocol", protocols.join(", "));
        }
        let resp = s
            .send_request(req.body(Empty::new()).unwrap())
            .await
            .unwrap();
        if resp.status() != 101 {
            let status = resp.status().as_u16();
            let body = resp.into_body().collect().await.unwrap().to_bytes();
            return Err((status, String::from_utf8_lossy(&body).into_owned()));
        }
        assert_eq!(
            resp.headers()["sec-websocket-accept"],
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
        let proto = resp
            .headers()
            .get("sec-websocket-protocol")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        let up = hyper::upgrade::on(resp).await.unwrap();
        let ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
            TokioIo::new(up),
            Role::Client,
            None,
        )
        .await;
        Ok((proto, ws))
    }
}

impl Drop for World {
    fn drop(&mut self) {
        self.server.abort();
        if let Ok(list) = self.host.runtime.list() {
            for c in list {
                if let Err(e) = self.host.runtime.remove(&c.id) {
                    eprintln!("cleanup: removing {}: {e}", c.id);
                }
            }
        }
        for sb in self.sandboxes.lock().unwrap().drain(..) {
            let _ = sb.remove();
        }
        if let Err(e) = PodCgroup::from_path(self.cg_parent.clone()).remove() {
            eprintln!("cleanup: {e}");
        }
    }
}

/// Accepts any server certificate (the kubelet's is self-signed).
#[derive(Debug)]
struct AnyServer(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyServer {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A rootfs with a static busybox and the applets the tests use.
pub fn make_rootfs(root: &Path) {
    for d in ["bin", "proc", "dev", "sys", "etc", "tmp"] {
        fs::create_dir_all(root.join(d)).unwrap();
    }
    fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
    for applet in [
        "sh", "sleep", "echo", "cat", "true", "false", "nc", "httpd", "stty", "tty", "seq", "tar",
        "cmp",
    ] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
    }
    fs::write(root.join("etc/hostname"), "").unwrap();
}

/// runc's default spec with our args and cgroup, and a writable root.
pub fn spec(rootfs: &Path, args: &[&str], cgroups_path: &str) -> Spec {
    let mut spec = Spec::default();
    let mut root = spec.root().clone().unwrap();
    root.set_path(rootfs.to_path_buf());
    root.set_readonly(Some(false));
    spec.set_root(Some(root));
    let mut process = spec.process().clone().unwrap();
    process.set_terminal(Some(false));
    process.set_args(Some(args.iter().map(|s| s.to_string()).collect()));
    spec.set_process(Some(process));
    let mut linux = spec.linux().clone().unwrap();
    linux.set_cgroups_path(Some(PathBuf::from(cgroups_path)));
    spec.set_linux(Some(linux));
    spec
}

/// Joins the sandbox's namespaces.
pub fn in_sandbox(mut spec: Spec, sb: &Sandbox) -> Spec {
    let mut linux = spec.linux().clone().unwrap();
    let mut nss = linux.namespaces().clone().unwrap_or_default();
    for ns in nss.iter_mut() {
        let path = match ns.typ() {
            LinuxNamespaceType::Network => sb.net.clone(),
            LinuxNamespaceType::Ipc => sb.ipc.clone(),
            LinuxNamespaceType::Uts => sb.uts.clone(),
            _ => None,
        };
        if path.is_some() {
            ns.set_path(path);
        }
    }
    linux.set_namespaces(Some(nss));
    spec.set_linux(Some(linux));
    spec.set_hostname(None);
    spec
}

/// Polls `f` until it returns true.
pub async fn eventually(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + timeout;
    while !f() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
