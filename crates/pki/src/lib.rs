//! The cluster's public-key infrastructure.
//!
//! On first start a CA is generated and kept in `<data-dir>/pki`; it signs the
//! apiserver's serving certificate and client certificates (the admin's, later the
//! kubelets'). Client identities follow Kubernetes: the certificate's CommonName is
//! the user name and its Organizations are the groups. [`kubeconfig`] writes a
//! kubeconfig file that points kubectl at the cluster with such a certificate. [`sa`]
//! holds the key that signs service account tokens; [`csr`] reads certificate signing
//! requests and signs them (the certificates.k8s.io signers); [`join`] is the token
//! nodes join with.

pub mod csr;
pub mod join;
pub mod sa;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use time::{Duration, OffsetDateTime};

/// Why a PKI operation failed.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// Reading or writing a file under the PKI directory failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Generating, parsing or signing a certificate failed.
    #[error("certificate: {0}")]
    Certificate(#[from] rcgen::Error),
    /// A client certificate can name at most one group.
    #[error("a client certificate can carry at most one group (got {0})")]
    TooManyGroups(usize),
    /// A key could not be generated, parsed, encoded or used.
    #[error("key: {0}")]
    Key(String),
    /// A certificate signing request could not be read or its signature is wrong.
    #[error("{0}")]
    Request(#[from] csr::RequestError),
    /// Usages without a certificates.k8s.io meaning (Go's `%q` of the list).
    #[error("unrecognized usage values: [{}]", quoted(.0))]
    UnknownUsages(Vec<String>),
    /// A certificate must live for some time.
    #[error("invalid ttl=0s")]
    InvalidTtl,
    /// The CA expires before the certificate would start.
    #[error("the signer has expired: NotAfter={0}")]
    SignerExpired(String),
    /// The CA has expired.
    #[error("refusing to sign a certificate that expired in the past: NotAfter={0}")]
    SignerExpiredInThePast(String),
    /// The request's subject repeats an attribute (two Organizations, ...), which the
    /// certificate library cannot write.
    #[error("subjects with more than one value of attribute {0} are not supported")]
    RepeatedSubjectAttribute(String),
}

fn quoted(items: &[String]) -> String {
    items
        .iter()
        .map(|s| format!("{s:?}"))
        .collect::<Vec<_>>()
        .join(" ")
}

type Result<T> = std::result::Result<T, PkiError>;

/// A certificate and its private key, PEM encoded.
#[derive(Clone, Debug)]
pub struct CertPair {
    /// The certificate.
    pub cert_pem: String,
    /// The private key (PKCS#8).
    pub key_pem: String,
}

/// The cluster CA, loaded from or created in a directory.
pub struct ClusterCa {
    dir: PathBuf,
    cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

const CA_CERT: &str = "ca.crt";
const CA_KEY: &str = "ca.key";

pub(crate) fn read(path: &Path) -> Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(PkiError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Writes `contents` to `path` atomically (temp file + rename), private to root.
pub fn write_private(path: &Path, contents: &str) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let io = |source| PkiError::Io {
        path: path.to_path_buf(),
        source,
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io)?;
    }
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io)?;
    f.write_all(contents.as_bytes()).map_err(io)?;
    f.sync_all().map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

fn validity(params: &mut CertificateParams, days: i64) {
    let now = OffsetDateTime::now_utc();
    // Tolerate small clock differences between machines.
    params.not_before = now - Duration::minutes(5);
    params.not_after = now + Duration::days(days);
}

impl ClusterCa {
    /// Loads the CA from `dir`, creating it (and `dir`) on first use.
    pub fn load_or_create(dir: &Path) -> Result<ClusterCa> {
        let cert_path = dir.join(CA_CERT);
        let key_path = dir.join(CA_KEY);
        if let (Some(cert_pem), Some(key_pem)) = (read(&cert_path)?, read(&key_path)?) {
            let key = KeyPair::from_pem(&key_pem)?;
            let issuer = Issuer::from_ca_cert_pem(&cert_pem, key)?;
            return Ok(ClusterCa {
                dir: dir.to_path_buf(),
                cert_pem,
                issuer,
            });
        }
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(
            DnType::CommonName,
            format!(
                "ferrokube-ca@{}",
                OffsetDateTime::now_utc().unix_timestamp()
            ),
        );
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        validity(&mut params, 3650);
        let cert = params.self_signed(&key)?;
        let cert_pem = cert.pem();
        write_private(&key_path, &key.serialize_pem())?;
        write_private(&cert_path, &cert_pem)?;
        Ok(ClusterCa {
            dir: dir.to_path_buf(),
            cert_pem,
            issuer: Issuer::new(params, key),
        })
    }

    /// The CA certificate (PEM).
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The directory the CA lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Issues a serving certificate for the given DNS names and IP addresses.
    pub fn issue_server(
        &self,
        common_name: &str,
        dns: &[String],
        ips: &[IpAddr],
    ) -> Result<CertPair> {
        let mut params = CertificateParams::new(dns.to_vec())?;
        params
            .subject_alt_names
            .extend(ips.iter().map(|ip| SanType::IpAddress(*ip)));
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, common_name);
        params.distinguished_name = dn;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        validity(&mut params, 365);
        self.sign(params)
    }

    /// Issues a client certificate for `user` in `groups` (CommonName and
    /// Organization, as Kubernetes reads them). At most one group: the certificate
    /// library keeps one value per name attribute.
    pub fn issue_client(&self, user: &str, groups: &[&str]) -> Result<CertPair> {
        if groups.len() > 1 {
            return Err(PkiError::TooManyGroups(groups.len()));
        }
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, user);
        for g in groups {
            dn.push(DnType::OrganizationName, *g);
        }
        params.distinguished_name = dn;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        validity(&mut params, 365);
        self.sign(params)
    }

    fn sign(&self, params: CertificateParams) -> Result<CertPair> {
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(CertPair {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// Loads `<name>.crt`/`<name>.key` from the CA directory if present and
    /// `still_good` accepts the certificate; otherwise issues a new pair with `issue` and
    /// stores it.
    pub fn load_or_issue(
        &self,
        name: &str,
        still_good: impl Fn(&str) -> bool,
        issue: impl FnOnce(&ClusterCa) -> Result<CertPair>,
    ) -> Result<CertPair> {
        let cert_path = self.dir.join(format!("{name}.crt"));
        let key_path = self.dir.join(format!("{name}.key"));
        if let (Some(cert_pem), Some(key_pem)) = (read(&cert_path)?, read(&key_path)?) {
            if still_good(&cert_pem) {
                return Ok(CertPair { cert_pem, key_pem });
            }
        }
        let pair = issue(self)?;
        write_private(&key_path, &pair.key_pem)?;
        write_private(&cert_path, &pair.cert_pem)?;
        Ok(pair)
    }
}

/// A kubeconfig (YAML) for `user` with an embedded client certificate, pointing at
/// `server` and trusting `ca_pem`.
pub fn kubeconfig(server: &str, ca_pem: &str, user: &str, client: &CertPair) -> String {
    use base64::Engine;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
    format!(
        "apiVersion: v1
kind: Config
clusters:
- cluster:
    certificate-authority-data: {ca}
    server: {server}
  name: ferrokube
contexts:
- context:
    cluster: ferrokube
    user: {user}
  name: ferrokube
current-context: ferrokube
preferences: {{}}
users:
- name: {user}
  user:
    client-certificate-data: {cert}
    client-key-data: {key}
",
        ca = b64(ca_pem),
        cert = b64(&client.cert_pem),
        key = b64(&client.key_pem),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use x509_parser::prelude::*;

    fn parse(pem: &str) -> Vec<u8> {
        let (_, p) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
        p.contents
    }

    #[test]
    fn ca_persists_and_signs() {
        let dir = tempfile::tempdir().unwrap();
        let ca = ClusterCa::load_or_create(dir.path()).unwrap();
        let again = ClusterCa::load_or_create(dir.path()).unwrap();
        assert_eq!(ca.cert_pem(), again.cert_pem(), "CA regenerated on reload");

        let client = again
            .issue_client("kubernetes-admin", &["system:masters"])
            .unwrap();
        let der = parse(&client.cert_pem);
        let (_, cert) = X509Certificate::from_der(&der).unwrap();
        let cn: Vec<_> = cert
            .subject()
            .iter_common_name()
            .map(|c| c.as_str().unwrap())
            .collect();
        let orgs: Vec<_> = cert
            .subject()
            .iter_organization()
            .map(|c| c.as_str().unwrap())
            .collect();
        assert_eq!(cn, vec!["kubernetes-admin"]);
        assert_eq!(orgs, vec!["system:masters"]);
        let ca_der = parse(ca.cert_pem());
        let (_, ca_cert) = X509Certificate::from_der(&ca_der).unwrap();
        cert.verify_signature(Some(ca_cert.public_key())).unwrap();

        let server = ca
            .issue_server(
                "kube-apiserver",
                &["localhost".into()],
                &["127.0.0.1".parse().unwrap()],
            )
            .unwrap();
        let der = parse(&server.cert_pem);
        let (_, cert) = X509Certificate::from_der(&der).unwrap();
        let san = cert.subject_alternative_name().unwrap().unwrap();
        assert_eq!(san.value.general_names.len(), 2);
    }

    #[test]
    fn kubeconfig_embeds_credentials() {
        let dir = tempfile::tempdir().unwrap();
        let ca = ClusterCa::load_or_create(dir.path()).unwrap();
        let admin = ca.issue_client("admin", &["system:masters"]).unwrap();
        let kc = kubeconfig("https://127.0.0.1:6443", ca.cert_pem(), "admin", &admin);
        assert!(kc.contains("server: https://127.0.0.1:6443"));
        assert!(kc.contains("client-key-data: "));
        assert!(kc.contains("current-context: ferrokube"));
        assert!(matches!(
            ca.issue_client("x", &["a", "b"]),
            Err(PkiError::TooManyGroups(2))
        ));
    }
}
