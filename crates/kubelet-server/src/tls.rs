//! TLS for the kubelet's port: the serving certificate (given, or self-signed at start as
//! the kubelet does without `--tls-cert-file`) and client authentication with
//! certificates signed by the client CA bundle. A connection without a client
//! certificate is accepted (for `/healthz`); its requests are answered 401 elsewhere.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use tokio_rustls::TlsAcceptor;

use crate::ServerError;

/// Where the serving certificate comes from.
#[derive(Clone, Debug)]
pub enum ServingCert {
    /// A self-signed certificate made at start for these DNS names and IP addresses
    /// (common name `<first name>@<unix time>`).
    SelfSigned {
        /// Subject alternative names (IP addresses are recognized).
        hosts: Vec<String>,
    },
    /// PEM certificate chain and private key.
    Pem {
        /// Certificate chain, leaf first.
        cert_chain: String,
        /// The leaf's private key.
        key: String,
    },
    /// PEM files, as `--tls-cert-file`/`--tls-private-key-file`.
    Files {
        /// Certificate chain file.
        cert: std::path::PathBuf,
        /// Private key file.
        key: std::path::PathBuf,
    },
}

/// TLS settings of the server.
#[derive(Clone, Debug)]
pub struct TlsOptions {
    /// The serving certificate.
    pub serving: ServingCert,
    /// PEM bundle of the CAs whose client certificates are accepted (the cluster CA).
    pub client_ca_pem: String,
}

/// The authenticated user of a connection (from its client certificate).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// The subject's common name.
    pub user: String,
    /// The subject's organizations.
    pub groups: Vec<String>,
}

fn tls_err(e: impl std::fmt::Display) -> ServerError {
    ServerError::Tls(e.to_string())
}

/// A self-signed certificate and key (PEM) for `hosts`.
pub fn self_signed(hosts: &[String]) -> Result<(String, String), ServerError> {
    let names: Vec<String> = if hosts.is_empty() {
        vec!["localhost".to_string()]
    } else {
        hosts.to_vec()
    };
    let mut params = rcgen::CertificateParams::new(names.clone()).map_err(tls_err)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    params.distinguished_name.push(
        rcgen::DnType::CommonName,
        format!(
            "{}@{now}",
            names.first().map(String::as_str).unwrap_or("localhost")
        ),
    );
    let start = time::OffsetDateTime::now_utc() - time::Duration::hours(1);
    params.not_before = start;
    params.not_after = start + time::Duration::days(365);
    let key = rcgen::KeyPair::generate().map_err(tls_err)?;
    let cert = params.self_signed(&key).map_err(tls_err)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// Builds the acceptor: serving certificate, client CA verification (optional client
/// certificates), ALPN `h2` and `http/1.1`.
pub fn acceptor(opts: &TlsOptions) -> Result<TlsAcceptor, ServerError> {
    let (cert_pem, key_pem) = match &opts.serving {
        ServingCert::SelfSigned { hosts } => self_signed(hosts)?,
        ServingCert::Pem { cert_chain, key } => (cert_chain.clone(), key.clone()),
        ServingCert::Files { cert, key } => (
            std::fs::read_to_string(cert)
                .map_err(|e| tls_err(format!("reading {}: {e}", cert.display())))?,
            std::fs::read_to_string(key)
                .map_err(|e| tls_err(format!("reading {}: {e}", key.display())))?,
        ),
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| tls_err(format!("serving certificate: {e}")))?;
    if chain.is_empty() {
        return Err(tls_err("serving certificate: no certificate in PEM"));
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
        .map_err(|e| tls_err(format!("serving key: {e}")))?;
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(opts.client_ca_pem.as_bytes()) {
        let c = c.map_err(|e| tls_err(format!("client CA: {e}")))?;
        roots
            .add(c)
            .map_err(|e| tls_err(format!("client CA: {e}")))?;
    }
    if roots.is_empty() {
        return Err(tls_err("client CA: no certificate in PEM"));
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()
        .map_err(tls_err)?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(tls_err)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(tls_err)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// The identity in a verified client certificate.
pub fn identity(cert: &CertificateDer<'_>) -> Option<Identity> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    let subject = parsed.subject();
    let user = subject
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .unwrap_or_default()
        .to_string();
    let groups = subject
        .iter_organization()
        .filter_map(|o| o.as_str().ok().map(str::to_string))
        .collect();
    Some(Identity { user, groups })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_certificates() {
        let (cert, key) = self_signed(&["node-1".into(), "10.0.0.5".into()]).unwrap();
        assert!(cert.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(key.contains("PRIVATE KEY"));
        let der = CertificateDer::from_pem_slice(cert.as_bytes()).unwrap();
        let (_, parsed) = x509_parser::parse_x509_certificate(der.as_ref()).unwrap();
        let cn = identity(&der).unwrap().user;
        assert!(cn.starts_with("node-1@"), "{cn}");
        let san = parsed.subject_alternative_name().unwrap().unwrap();
        let names: Vec<String> = san
            .value
            .general_names
            .iter()
            .map(|n| format!("{n}"))
            .collect();
        assert_eq!(names, vec!["DNSName(node-1)", "IPAddress(0a:00:00:05)"]);
        // Usable as a serving certificate with itself as client CA.
        acceptor(&TlsOptions {
            serving: ServingCert::Pem {
                cert_chain: cert.clone(),
                key,
            },
            client_ca_pem: cert,
        })
        .unwrap();
    }

    #[test]
    fn bad_inputs() {
        let err = acceptor(&TlsOptions {
            serving: ServingCert::SelfSigned { hosts: vec![] },
            client_ca_pem: String::new(),
        })
        .err()
        .unwrap();
        assert!(err.to_string().contains("client CA"), "{err}");
    }
}
