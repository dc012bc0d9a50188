//! The apiserver as a client of kubelets (and of pods, for `pods/proxy`).
//!
//! Kubelets are reached over HTTPS on the port the Node reports in
//! `status.daemonEndpoints.kubeletEndpoint.Port` (10250 when unset) of its first
//! address of the preferred types (`--kubelet-preferred-address-types`; InternalIP,
//! ExternalIP, Hostname, as kubeadm and k3s set it). The apiserver presents the client
//! certificate `pki/apiserver-kubelet-client.crt` (CN `kube-apiserver-kubelet-client`,
//! O `system:masters`). Kubelet serving certificates are self-signed, so they are not
//! verified (upstream's behaviour without `--kubelet-certificate-authority`); the
//! handshake signatures still are. Connections speak HTTP/1.1 so that upgrades (exec,
//! attach, port-forward) work.

use crate::error::{ApiError, ApiResult, Target};
use crate::Server;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// The kubelet port when the Node does not report one.
pub const DEFAULT_KUBELET_PORT: u16 = 10250;
/// The preferred address types kubeadm and k3s configure.
pub const DEFAULT_PREFERRED_ADDRESS_TYPES: &[&str] = &["InternalIP", "ExternalIP", "Hostname"];
/// Name of the client certificate files in the PKI directory.
pub const CLIENT_CERT_NAME: &str = "apiserver-kubelet-client";
/// Common name of the client certificate.
pub const CLIENT_CERT_CN: &str = "kube-apiserver-kubelet-client";
/// How long connecting (TCP and TLS) may take.
const DIAL_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a backend could not be reached.
#[derive(Debug, thiserror::Error)]
pub enum DialError {
    /// TCP connect or TLS handshake failed.
    #[error("dial tcp {addr}: {source}")]
    Connect {
        /// `host:port`.
        addr: String,
        /// The failure.
        source: std::io::Error,
    },
    /// Connecting took too long.
    #[error("dial tcp {0}: i/o timeout")]
    Timeout(String),
    /// The HTTP exchange failed.
    #[error("{0}")]
    Http(#[from] hyper::Error),
}

/// Accepts any server certificate; checks the handshake signatures.
#[derive(Debug)]
struct AnyServerCert(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyServerCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
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
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Where a node's kubelet listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// Address or host name.
    pub host: String,
    /// Port.
    pub port: u16,
}

impl Endpoint {
    /// `host:port`, with IPv6 addresses in brackets.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// HTTPS client for kubelets.
pub struct KubeletClient {
    with_cert: TlsConnector,
    without_cert: TlsConnector,
    preferred_address_types: Vec<String>,
}

impl KubeletClient {
    /// A client presenting `cert` (PEM pair), preferring node addresses of
    /// `address_types` in that order.
    pub fn new(cert: &pki::CertPair, address_types: &[String]) -> Result<KubeletClient, String> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let certs: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(cert.cert_pem.as_bytes())
                .collect::<Result<_, _>>()
                .map_err(|e| e.to_string())?;
        let key =
            PrivateKeyDer::from_pem_slice(cert.key_pem.as_bytes()).map_err(|e| e.to_string())?;
        let builder = || {
            rustls::ClientConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .map(|b| {
                    b.dangerous()
                        .with_custom_certificate_verifier(Arc::new(AnyServerCert(provider.clone())))
                })
                .map_err(|e| e.to_string())
        };
        let mut with_cert = builder()?
            .with_client_auth_cert(certs, key)
            .map_err(|e| e.to_string())?;
        with_cert.alpn_protocols = vec![b"http/1.1".to_vec()];
        let mut without_cert = builder()?.with_no_client_auth();
        without_cert.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(KubeletClient {
            with_cert: TlsConnector::from(Arc::new(with_cert)),
            without_cert: TlsConnector::from(Arc::new(without_cert)),
            preferred_address_types: address_types.to_vec(),
        })
    }

    /// Where the kubelet of `node` listens (upstream's `GetConnectionInfo`): 404 when
    /// the Node does not exist, 500 when it has no address of a preferred type.
    pub async fn endpoint(&self, server: &Server, node: &str) -> ApiResult<Endpoint> {
        let store = server
            .registry
            .get("nodes")
            .ok_or_else(ApiError::path_not_found)?;
        let target = Target {
            group: String::new(),
            resource: "nodes".into(),
            name: node.to_string(),
        };
        let obj = store
            .cache
            .get_cached(&store.key("", node))
            .await
            .map_err(|e| ApiError::from_store(e, &target))?
            .ok_or_else(|| ApiError::not_found(&target))?
            .extra
            .value();
        let addresses = obj["status"]["addresses"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let host = self
            .preferred_address_types
            .iter()
            .find_map(|ty| {
                addresses
                    .iter()
                    .find(|a| a["type"] == ty.as_str())
                    .and_then(|a| a["address"].as_str())
                    .filter(|a| !a.is_empty())
            })
            .ok_or_else(|| {
                let known: Vec<String> = addresses
                    .iter()
                    .map(|a| {
                        format!(
                            "{{{} {}}}",
                            a["type"].as_str().unwrap_or(""),
                            a["address"].as_str().unwrap_or("")
                        )
                    })
                    .collect();
                ApiError::new(
                    500,
                    "",
                    format!(
                        "no preferred addresses found; known addresses: [{}]",
                        known.join(" ")
                    ),
                )
            })?;
        let port = obj["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"]
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .filter(|p| *p > 0)
            .unwrap_or(DEFAULT_KUBELET_PORT);
        Ok(Endpoint {
            host: host.to_string(),
            port,
        })
    }

    /// Opens a TCP connection to `endpoint`, with TLS when `tls`, presenting the
    /// client certificate when `client_cert`.
    async fn dial(
        &self,
        endpoint: &Endpoint,
        tls: bool,
        client_cert: bool,
    ) -> Result<Box<dyn Io>, DialError> {
        let addr = endpoint.authority();
        let connect = async {
            let tcp = TcpStream::connect((endpoint.host.as_str(), endpoint.port))
                .await
                .map_err(|source| DialError::Connect {
                    addr: addr.clone(),
                    source,
                })?;
            let _ = tcp.set_nodelay(true);
            if !tls {
                return Ok(Box::new(tcp) as Box<dyn Io>);
            }
            let name =
                ServerName::try_from(endpoint.host.clone()).map_err(|e| DialError::Connect {
                    addr: addr.clone(),
                    source: std::io::Error::new(std::io::ErrorKind::InvalidInput, e),
                })?;
            let connector = if client_cert {
                &self.with_cert
            } else {
                &self.without_cert
            };
            let stream =
                connector
                    .connect(name, tcp)
                    .await
                    .map_err(|source| DialError::Connect {
                        addr: addr.clone(),
                        source,
                    })?;
            Ok(Box::new(stream) as Box<dyn Io>)
        };
        tokio::time::timeout(DIAL_TIMEOUT, connect)
            .await
            .map_err(|_| DialError::Timeout(addr.clone()))?
    }

    /// Sends one HTTP/1.1 request over a new connection and returns the response;
    /// the connection serves upgrades, so a 101 answer can be taken over with
    /// `hyper::upgrade::on`. The request's URI should be origin-form (path and query).
    pub async fn send<B>(
        &self,
        endpoint: &Endpoint,
        tls: bool,
        client_cert: bool,
        req: Request<B>,
    ) -> Result<Response<Incoming>, DialError>
    where
        B: hyper::body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let io = self.dial(endpoint, tls, client_cert).await?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await?;
        tokio::spawn(async move {
            let _ = conn.with_upgrades().await;
        });
        Ok(sender.send_request(req).await?)
    }
}

/// A byte stream to a backend (TCP or TLS).
pub trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin {}

impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin> Io for T {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authority_brackets_ipv6() {
        let e = Endpoint {
            host: "fd00::1".into(),
            port: 10250,
        };
        assert_eq!(e.authority(), "[fd00::1]:10250");
        let e = Endpoint {
            host: "10.0.0.2".into(),
            port: 10250,
        };
        assert_eq!(e.authority(), "10.0.0.2:10250");
    }
}
