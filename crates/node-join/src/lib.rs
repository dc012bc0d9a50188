//! How a node joins a cluster with a join token ([`pki::join::JoinToken`]), the way
//! kubeadm's discovery and the kubelet's TLS bootstrap do it:
//!
//! 1. read `kube-public/cluster-info` anonymously, trusting nothing yet, and keep its
//!    CA only if it is the one the token names (its hash);
//! 2. with the CA trusted, authenticate with the token's bootstrap part and create a
//!    CertificateSigningRequest for `kubernetes.io/kube-apiserver-client-kubelet`
//!    with subject `system:node:<name>` in `system:nodes`;
//! 3. wait until it is approved and issued (the controller manager approves node
//!    client requests from bootstrappers), and keep the certificate, its key and the
//!    CA in a kubeconfig.
//!
//! A node that already has a valid certificate for its name skips all of it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams};
use kube::Client;
use pki::join::JoinToken;
use serde_json::json;

/// The signer of kubelets' client certificates.
pub const SIGNER: &str = "kubernetes.io/kube-apiserver-client-kubelet";
/// The group nodes' certificates name.
pub const NODES_GROUP: &str = "system:nodes";

/// Why a node could not join.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    /// The server address is not a URL.
    #[error("bad server URL {0}: {1}")]
    BadServer(String, String),
    /// The cluster's CA is not the one the token names.
    #[error("the server's CA does not match the join token's hash: is {0} the right server?")]
    CaMismatch(String),
    /// What the server published could not be read.
    #[error("reading cluster-info: {0}")]
    ClusterInfo(String),
    /// A client could not be made.
    #[error("API client: {0}")]
    Client(String),
    /// An API request failed.
    #[error("{0}: {1}")]
    Api(String, #[source] kube::Error),
    /// The request was denied or failed.
    #[error("certificate signing request {name} {verdict}: {message}")]
    Refused {
        /// The CSR's name.
        name: String,
        /// Denied or Failed.
        verdict: String,
        /// The condition's reason and message.
        message: String,
    },
    /// A key, request or certificate could not be made.
    #[error(transparent)]
    Pki(#[from] pki::PkiError),
}

/// What the node joins with.
#[derive(Clone, Debug)]
pub struct Join {
    /// The server's URL (`https://host:6443`).
    pub server: String,
    /// The join token.
    pub token: JoinToken,
    /// The node's name.
    pub node_name: String,
    /// Where the node keeps its kubeconfig and the cluster CA.
    pub dir: PathBuf,
}

/// What a joined node uses.
#[derive(Clone, Debug)]
pub struct Credentials {
    /// Kubeconfig with the server, the CA and the node's client certificate.
    pub kubeconfig: PathBuf,
    /// The cluster CA (PEM), also what the kubelet checks the apiserver's client
    /// certificate against.
    pub ca_file: PathBuf,
}

impl Join {
    fn kubeconfig_path(&self) -> PathBuf {
        self.dir.join("kubelet.kubeconfig")
    }

    fn ca_path(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }

    fn user(&self) -> String {
        format!("system:node:{}", self.node_name)
    }

    fn url(&self) -> Result<http::Uri, JoinError> {
        self.server.parse().map_err(|e: http::uri::InvalidUri| {
            JoinError::BadServer(self.server.clone(), e.to_string())
        })
    }
}

/// The client certificate of a kubeconfig the node wrote, if it is this node's and
/// valid for at least a day.
fn current(kubeconfig: &Path, user: &str) -> bool {
    let Ok(text) = std::fs::read_to_string(kubeconfig) else {
        return false;
    };
    let Ok(kc) = kube::config::Kubeconfig::from_yaml(&text) else {
        return false;
    };
    let Some(data) = kc
        .auth_infos
        .first()
        .and_then(|a| a.auth_info.as_ref())
        .and_then(|a| a.client_certificate_data.clone())
    else {
        return false;
    };
    let Ok(pem) = base64::engine::general_purpose::STANDARD.decode(data) else {
        return false;
    };
    cert_is_for(&pem, user)
}

/// Whether a PEM certificate names `user` and has at least a day left.
fn cert_is_for(pem: &[u8], user: &str) -> bool {
    use x509_parser::prelude::*;
    let Ok((_, p)) = x509_parser::pem::parse_x509_pem(pem) else {
        return false;
    };
    let Ok((_, cert)) = X509Certificate::from_der(&p.contents) else {
        return false;
    };
    let cn = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|c| c.as_str().ok());
    cn == Some(user)
        && cert
            .validity()
            .time_to_expiration()
            .is_some_and(|left| left.whole_days() >= 1)
}

/// The node's credentials: those it has, or new ones obtained with the token.
/// Waits (retrying) for the server to answer and for the request to be issued.
pub async fn credentials(join: &Join) -> Result<Credentials, JoinError> {
    let creds = Credentials {
        kubeconfig: join.kubeconfig_path(),
        ca_file: join.ca_path(),
    };
    let ca_ok = std::fs::read_to_string(&creds.ca_file).is_ok_and(|ca| join.token.trusts(&ca));
    if ca_ok && current(&creds.kubeconfig, &join.user()) {
        return Ok(creds);
    }
    let ca = loop {
        match cluster_ca(join).await {
            Ok(ca) => break ca,
            Err(e @ JoinError::CaMismatch(_)) | Err(e @ JoinError::BadServer(..)) => return Err(e),
            Err(e) => {
                tracing::warn!(error = %e, server = %join.server, "waiting for the server");
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
    };
    let client = bootstrap_client(join, &ca).await?;
    let (cert_pem, key_pem) = request_certificate(&client, join).await?;
    let kubeconfig = pki::kubeconfig(
        &join.server,
        &ca,
        &join.user(),
        &pki::CertPair { cert_pem, key_pem },
    );
    pki::write_private(&creds.ca_file, &ca)?;
    pki::write_private(&creds.kubeconfig, &kubeconfig)?;
    tracing::info!(node = %join.node_name, kubeconfig = %creds.kubeconfig.display(), "joined the cluster");
    Ok(creds)
}

/// The CA in `kube-public/cluster-info`, read without trusting the server, and kept
/// only if the token names it.
pub async fn cluster_ca(join: &Join) -> Result<String, JoinError> {
    let mut config = kube::Config::new(join.url()?);
    // Nothing is trusted yet, and nothing secret is sent: the answer is checked
    // against the token's hash instead.
    config.accept_invalid_certs = true;
    let client = Client::try_from(config).map_err(|e| JoinError::Client(e.to_string()))?;
    let cm = Api::<ConfigMap>::namespaced(client, "kube-public")
        .get("cluster-info")
        .await
        .map_err(|e| JoinError::Api("reading kube-public/cluster-info".into(), e))?;
    let text = cm
        .data
        .as_ref()
        .and_then(|d| d.get("kubeconfig"))
        .ok_or_else(|| JoinError::ClusterInfo("no kubeconfig key".into()))?;
    let kc = kube::config::Kubeconfig::from_yaml(text)
        .map_err(|e| JoinError::ClusterInfo(e.to_string()))?;
    let data = kc
        .clusters
        .first()
        .and_then(|c| c.cluster.as_ref())
        .and_then(|c| c.certificate_authority_data.clone())
        .ok_or_else(|| JoinError::ClusterInfo("no certificate-authority-data".into()))?;
    let ca = base64::engine::general_purpose::STANDARD
        .decode(data)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| {
            JoinError::ClusterInfo("certificate-authority-data is not base64 PEM".into())
        })?;
    if !join.token.trusts(&ca) {
        return Err(JoinError::CaMismatch(join.server.clone()));
    }
    if join.token.ca_hash.is_none() {
        tracing::warn!(server = %join.server, "the join token has no CA hash: trusting the first CA the server shows");
    }
    Ok(ca)
}

/// A client that trusts `ca` and authenticates with the token's bootstrap part.
async fn bootstrap_client(join: &Join, ca: &str) -> Result<Client, JoinError> {
    let yaml = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {server}\n    certificate-authority-data: {ca}\nusers:\n- name: u\n  user:\n    token: {token}\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\ncurrent-context: c\n",
        server = join.server,
        ca = base64::engine::general_purpose::STANDARD.encode(ca),
        token = join.token.bearer(),
    );
    let kc =
        kube::config::Kubeconfig::from_yaml(&yaml).map_err(|e| JoinError::Client(e.to_string()))?;
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .map_err(|e| JoinError::Client(e.to_string()))?;
    Client::try_from(config).map_err(|e| JoinError::Client(e.to_string()))
}

/// Asks for this node's client certificate and waits until it is issued. Returns
/// the certificate and its key (PEM).
pub async fn request_certificate(
    client: &Client,
    join: &Join,
) -> Result<(String, String), JoinError> {
    let pki::csr::KeyAndRequest {
        request_pem: csr_pem,
        key_pem,
    } = pki::csr::generate_request(&join.user(), &[NODES_GROUP], &[], &[])?;
    let api: Api<CertificateSigningRequest> = Api::all(client.clone());
    let csr: CertificateSigningRequest = serde_json::from_value(json!({
        "metadata": {"generateName": "node-csr-"},
        "spec": {
            "request": base64::engine::general_purpose::STANDARD.encode(csr_pem),
            "signerName": SIGNER,
            "usages": ["digital signature", "client auth"],
        },
    }))
    .map_err(|e| JoinError::Client(e.to_string()))?;
    let created = api
        .create(&PostParams::default(), &csr)
        .await
        .map_err(|e| JoinError::Api("creating the certificate signing request".into(), e))?;
    let name = created.metadata.name.unwrap_or_default();
    tracing::info!(csr = %name, node = %join.node_name, "waiting for the node's certificate");
    let mut noted = std::time::Instant::now();
    loop {
        let csr = api.get(&name).await.map_err(|e| {
            JoinError::Api(format!("reading certificate signing request {name}"), e)
        })?;
        if let Some(status) = &csr.status {
            for c in status.conditions.iter().flatten() {
                if (c.type_ == "Denied" || c.type_ == "Failed") && c.status == "True" {
                    return Err(JoinError::Refused {
                        name,
                        verdict: c.type_.to_lowercase(),
                        message: format!(
                            "{}: {}",
                            c.reason.as_deref().unwrap_or(""),
                            c.message.as_deref().unwrap_or("")
                        ),
                    });
                }
            }
            if let Some(cert) = status.certificate.as_ref().filter(|c| !c.0.is_empty()) {
                let pem = String::from_utf8(cert.0.clone()).map_err(|_| {
                    JoinError::ClusterInfo("the issued certificate is not PEM".into())
                })?;
                return Ok((pem, key_pem));
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
        if noted.elapsed() >= Duration::from_secs(30) {
            tracing::info!(csr = %name, "still waiting for approval (kubectl certificate approve {name})");
            noted = std::time::Instant::now();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_valid_certificate_of_this_node_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let ca = pki::ClusterCa::load_or_create(dir.path()).unwrap();
        let pair = ca.issue_client("system:node:n1", &[NODES_GROUP]).unwrap();
        let path = dir.path().join("kubelet.kubeconfig");
        std::fs::write(
            &path,
            pki::kubeconfig("https://192.0.2.1:6443", ca.cert_pem(), "n1", &pair),
        )
        .unwrap();
        assert!(current(&path, "system:node:n1"));
        assert!(!current(&path, "system:node:n2"));
        assert!(!current(&dir.path().join("missing"), "system:node:n1"));
        std::fs::write(&path, "not yaml: [").unwrap();
        assert!(!current(&path, "system:node:n1"));
    }

    #[test]
    fn requests_name_the_node() {
        use x509_parser::prelude::FromDer;
        let csr = pki::csr::generate_request("system:node:n1", &[NODES_GROUP], &[], &[])
            .unwrap()
            .request_pem;
        assert!(csr.starts_with("-----BEGIN CERTIFICATE REQUEST-----"));
        let (_, pem) = x509_parser::pem::parse_x509_pem(csr.as_bytes()).unwrap();
        let (_, req) =
            x509_parser::certification_request::X509CertificationRequest::from_der(&pem.contents)
                .unwrap();
        let subject = req.certification_request_info.subject.to_string();
        assert!(subject.contains("CN=system:node:n1"), "{subject}");
        assert!(subject.contains("O=system:nodes"), "{subject}");
    }
}
