//! Certificate signing requests as the certificates.k8s.io API carries them: reading a
//! PEM `CERTIFICATE REQUEST` ([`CertificateRequest`]: subject, subject alternative
//! names, signature check), signing one with a CA the way Kubernetes' in-tree signers
//! do ([`CsrSigner`], upstream's `PermissiveSigningPolicy`), and the checks the API
//! applies to PEM certificate bundles ([`check_certificate_bundle`]).
//!
//! Messages follow upstream's (Go's `encoding/pem` and `crypto/x509` where upstream
//! passes those through), since they end up in API validation errors and CSR
//! conditions.

use crate::PkiError;
use rcgen::{
    CertificateParams, DistinguishedName, DnType, DnValue, ExtendedKeyUsagePurpose, IsCa, Issuer,
    KeyPair, KeyUsagePurpose, SanType, SerialNumber, SubjectPublicKeyInfo,
};
use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, SystemTime};
use time::OffsetDateTime;
use x509_parser::asn1_rs::Tag;
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::{FromDer, X509Certificate};

/// PEM type of a certificate signing request.
const REQUEST_BLOCK: &str = "CERTIFICATE REQUEST";
/// PEM type of a certificate.
const CERTIFICATE_BLOCK: &str = "CERTIFICATE";

/// Why a certificate signing request could not be read or verified.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// The data does not start with a PEM `CERTIFICATE REQUEST` block.
    #[error("PEM block type must be CERTIFICATE REQUEST")]
    NotPemRequest,
    /// The block does not hold a PKCS#10 request.
    #[error("x509: malformed certificate request")]
    Malformed,
    /// The subject holds a value that is not a string.
    #[error("x509: unsupported string type in subject attribute {0}")]
    SubjectValue(String),
    /// The request's signature algorithm is not one that can be checked.
    #[error("x509: cannot verify signature: algorithm unimplemented")]
    UnsupportedSignature,
    /// The signature does not match the request's public key (Go's wording for the
    /// key's algorithm).
    #[error("{0}")]
    BadSignature(&'static str),
}

/// One subject attribute: its OID, string encoding and value.
#[derive(Clone, Debug, PartialEq, Eq)]
struct SubjectAttribute {
    oid: Vec<u64>,
    tag: Tag,
    value: String,
}

/// A parsed PKCS#10 certificate signing request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertificateRequest {
    der: Vec<u8>,
    subject: Vec<SubjectAttribute>,
    /// The subject's first CommonName ("" when it has none).
    pub common_name: String,
    /// The subject's Organizations, in order.
    pub organizations: Vec<String>,
    /// DNS subject alternative names.
    pub dns_names: Vec<String>,
    /// IP address subject alternative names.
    pub ip_addresses: Vec<IpAddr>,
    /// Email subject alternative names.
    pub email_addresses: Vec<String>,
    /// URI subject alternative names.
    pub uris: Vec<String>,
}

/// OID of the CommonName attribute.
const OID_COMMON_NAME: &[u64] = &[2, 5, 4, 3];
/// OID of the Organization attribute.
const OID_ORGANIZATION: &[u64] = &[2, 5, 4, 10];

fn oid_parts(oid: &x509_parser::der_parser::oid::Oid<'_>) -> Option<Vec<u64>> {
    oid.iter().map(Iterator::collect)
}

fn ip_from_octets(octets: &[u8]) -> Option<IpAddr> {
    match octets.len() {
        4 => <[u8; 4]>::try_from(octets).ok().map(IpAddr::from),
        16 => <[u8; 16]>::try_from(octets).ok().map(IpAddr::from),
        _ => None,
    }
}

impl CertificateRequest {
    /// Reads the first PEM block of `pem`, which must be a `CERTIFICATE REQUEST`
    /// (upstream's `ParseCSR`). The signature is not checked here.
    pub fn from_pem(pem: &[u8]) -> Result<CertificateRequest, RequestError> {
        let block = ::pem::parse(pem).map_err(|_| RequestError::NotPemRequest)?;
        if block.tag() != REQUEST_BLOCK {
            return Err(RequestError::NotPemRequest);
        }
        CertificateRequest::from_der(block.contents())
    }

    /// Reads a DER-encoded PKCS#10 request.
    pub fn from_der(der: &[u8]) -> Result<CertificateRequest, RequestError> {
        let (rest, csr) =
            X509CertificationRequest::from_der(der).map_err(|_| RequestError::Malformed)?;
        if !rest.is_empty() {
            return Err(RequestError::Malformed);
        }
        let info = &csr.certification_request_info;
        let mut subject = Vec::new();
        for attr in info.subject.iter_attributes() {
            let oid = oid_parts(attr.attr_type()).ok_or(RequestError::Malformed)?;
            let value = attr
                .as_str()
                .map_err(|_| RequestError::SubjectValue(attr.attr_type().to_id_string()))?;
            subject.push(SubjectAttribute {
                oid,
                tag: attr.attr_value().tag(),
                value: value.to_string(),
            });
        }
        let values = |oid: &[u64]| -> Vec<String> {
            subject
                .iter()
                .filter(|a| a.oid == oid)
                .map(|a| a.value.clone())
                .collect()
        };
        let mut req = CertificateRequest {
            der: der.to_vec(),
            common_name: values(OID_COMMON_NAME)
                .into_iter()
                .next()
                .unwrap_or_default(),
            organizations: values(OID_ORGANIZATION),
            subject,
            dns_names: Vec::new(),
            ip_addresses: Vec::new(),
            email_addresses: Vec::new(),
            uris: Vec::new(),
        };
        // Go's parser keeps the DNS, IP, email and URI names of the requested
        // subjectAltName extension and ignores other kinds and other extensions.
        for ext in csr.requested_extensions().into_iter().flatten() {
            let ParsedExtension::SubjectAlternativeName(san) = ext else {
                continue;
            };
            for name in &san.general_names {
                match name {
                    GeneralName::DNSName(n) => req.dns_names.push(n.to_string()),
                    GeneralName::RFC822Name(n) => req.email_addresses.push(n.to_string()),
                    GeneralName::URI(n) => req.uris.push(n.to_string()),
                    GeneralName::IPAddress(octets) => req
                        .ip_addresses
                        .push(ip_from_octets(octets).ok_or(RequestError::Malformed)?),
                    _ => {}
                }
            }
        }
        Ok(req)
    }

    /// The DER encoding.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// Checks that the request is signed by the key it carries (upstream's
    /// `CheckSignature`).
    pub fn verify_signature(&self) -> Result<(), RequestError> {
        let (_, csr) =
            X509CertificationRequest::from_der(&self.der).map_err(|_| RequestError::Malformed)?;
        match csr.verify_signature() {
            Ok(()) => Ok(()),
            Err(x509_parser::error::X509Error::SignatureUnsupportedAlgorithm) => {
                Err(RequestError::UnsupportedSignature)
            }
            Err(_) => {
                let key_alg = oid_parts(
                    &csr.certification_request_info
                        .subject_pki
                        .algorithm
                        .algorithm,
                )
                .unwrap_or_default();
                Err(RequestError::BadSignature(match key_alg.as_slice() {
                    // id-ecPublicKey
                    [1, 2, 840, 10045, 2, 1] => "x509: ECDSA verification failure",
                    // id-Ed25519
                    [1, 3, 101, 112] => "x509: Ed25519 verification failure",
                    _ => "crypto/rsa: verification error",
                }))
            }
        }
    }

    fn spki_der(&self) -> Result<Vec<u8>, RequestError> {
        let (_, csr) =
            X509CertificationRequest::from_der(&self.der).map_err(|_| RequestError::Malformed)?;
        Ok(csr.certification_request_info.subject_pki.raw.to_vec())
    }
}

/// A new private key and a certificate signing request for it.
#[derive(Clone, Debug)]
pub struct KeyAndRequest {
    /// The request (PEM `CERTIFICATE REQUEST`).
    pub request_pem: String,
    /// The private key (PKCS#8 PEM).
    pub key_pem: String,
}

/// Generates an ECDSA P-256 key and a request for a certificate with subject CN
/// `common_name` and O `organizations` (at most one: the certificate library keeps
/// one value per attribute), and the given DNS and IP subject alternative names:
/// what a node makes to ask for its client or serving certificate.
pub fn generate_request(
    common_name: &str,
    organizations: &[&str],
    dns_names: &[&str],
    ip_addresses: &[IpAddr],
) -> Result<KeyAndRequest, PkiError> {
    if organizations.len() > 1 {
        return Err(PkiError::TooManyGroups(organizations.len()));
    }
    let key = KeyPair::generate()?;
    let mut params =
        CertificateParams::new(dns_names.iter().map(|d| d.to_string()).collect::<Vec<_>>())?;
    params
        .subject_alt_names
        .extend(ip_addresses.iter().map(|ip| SanType::IpAddress(*ip)));
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    for o in organizations {
        params.distinguished_name.push(DnType::OrganizationName, *o);
    }
    Ok(KeyAndRequest {
        request_pem: params.serialize_request(&key)?.pem()?,
        key_pem: key.serialize_pem(),
    })
}

/// Backdating of a signed certificate's validity, for clock skew between machines
/// (upstream's signer uses 5 minutes).
pub const BACKDATE: Duration = Duration::from_secs(5 * 60);
/// Certificates living shorter than this are not backdated at their end (upstream's
/// `Short`, 8 hours).
pub const SHORT_LIVED: Duration = Duration::from_secs(8 * 3600);

/// Key usages by their certificates.k8s.io names.
const KEY_USAGES: &[(&str, KeyUsagePurpose)] = &[
    ("signing", KeyUsagePurpose::DigitalSignature),
    ("digital signature", KeyUsagePurpose::DigitalSignature),
    ("content commitment", KeyUsagePurpose::ContentCommitment),
    ("key encipherment", KeyUsagePurpose::KeyEncipherment),
    ("key agreement", KeyUsagePurpose::KeyAgreement),
    ("data encipherment", KeyUsagePurpose::DataEncipherment),
    ("cert sign", KeyUsagePurpose::KeyCertSign),
    ("crl sign", KeyUsagePurpose::CrlSign),
    ("encipher only", KeyUsagePurpose::EncipherOnly),
    ("decipher only", KeyUsagePurpose::DecipherOnly),
];

/// Extended key usages by their certificates.k8s.io names, in the order Go's
/// `x509.ExtKeyUsage` numbers them (upstream sorts them so).
fn extended_key_usages() -> [(&'static [&'static str], ExtendedKeyUsagePurpose); 12] {
    use ExtendedKeyUsagePurpose as E;
    [
        (&["any"], E::Any),
        (&["server auth"], E::ServerAuth),
        (&["client auth"], E::ClientAuth),
        (&["code signing"], E::CodeSigning),
        (&["email protection", "s/mime"], E::EmailProtection),
        (
            &["ipsec end system"],
            E::Other(vec![1, 3, 6, 1, 5, 5, 7, 3, 5]),
        ),
        (&["ipsec tunnel"], E::Other(vec![1, 3, 6, 1, 5, 5, 7, 3, 6])),
        (&["ipsec user"], E::Other(vec![1, 3, 6, 1, 5, 5, 7, 3, 7])),
        (&["timestamping"], E::TimeStamping),
        (&["ocsp signing"], E::OcspSigning),
        (
            &["microsoft sgc"],
            E::Other(vec![1, 3, 6, 1, 4, 1, 311, 10, 3, 3]),
        ),
        (
            &["netscape sgc"],
            E::Other(vec![2, 16, 840, 1, 113730, 4, 1]),
        ),
    ]
}

/// The key usages and extended key usages named by `usages` (upstream's
/// `keyUsagesFromStrings`).
fn usages_of<S: AsRef<str>>(
    usages: &[S],
) -> Result<(Vec<KeyUsagePurpose>, Vec<ExtendedKeyUsagePurpose>), PkiError> {
    let mut key = Vec::new();
    let mut unknown = Vec::new();
    let ekus = extended_key_usages();
    let mut wanted = [false; 12];
    for usage in usages.iter().map(AsRef::as_ref) {
        if let Some((_, k)) = KEY_USAGES.iter().find(|(name, _)| *name == usage) {
            if !key.contains(k) {
                key.push(*k);
            }
        } else if let Some(i) = ekus.iter().position(|(names, _)| names.contains(&usage)) {
            wanted[i] = true;
        } else {
            unknown.push(usage.to_string());
        }
    }
    if !unknown.is_empty() {
        return Err(PkiError::UnknownUsages(unknown));
    }
    let extended = ekus
        .into_iter()
        .zip(wanted)
        .filter(|(_, w)| *w)
        .map(|((_, e), _)| e)
        .collect();
    Ok((key, extended))
}

fn subject_of(req: &CertificateRequest) -> Result<DistinguishedName, PkiError> {
    let mut dn = DistinguishedName::new();
    let mut seen: Vec<&[u64]> = Vec::new();
    for attr in &req.subject {
        // rcgen keeps one value per attribute type.
        if seen.contains(&attr.oid.as_slice()) {
            let oid: Vec<String> = attr.oid.iter().map(u64::to_string).collect();
            return Err(PkiError::RepeatedSubjectAttribute(oid.join(".")));
        }
        seen.push(&attr.oid);
        let value = match attr.tag {
            Tag::PrintableString => attr
                .value
                .as_str()
                .try_into()
                .map(DnValue::PrintableString)?,
            Tag::Ia5String => attr.value.as_str().try_into().map(DnValue::Ia5String)?,
            _ => DnValue::Utf8String(attr.value.clone()),
        };
        dn.push(DnType::from_oid(&attr.oid), value);
    }
    Ok(dn)
}

fn random_serial() -> Result<SerialNumber, PkiError> {
    let mut bytes = [0u8; 16];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| PkiError::Key("random serial".into()))?;
    // Positive and never zero.
    bytes[0] = (bytes[0] & 0x7f) | 0x01;
    Ok(SerialNumber::from_slice(&bytes))
}

/// Signs certificate signing requests with a CA certificate and key, as upstream's
/// local signer (`--cluster-signing-cert-file`, `--cluster-signing-key-file`) does.
pub struct CsrSigner {
    cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
    not_after: SystemTime,
}

impl std::fmt::Debug for CsrSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CsrSigner")
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

/// The `NotAfter` of the first certificate in `pem`, if it holds one.
pub fn certificate_not_after(pem: &[u8]) -> Option<SystemTime> {
    let block = ::pem::parse(pem).ok()?;
    if block.tag() != CERTIFICATE_BLOCK {
        return None;
    }
    let (_, cert) = X509Certificate::from_der(block.contents()).ok()?;
    let secs = cert.validity().not_after.timestamp();
    let secs = u64::try_from(secs).ok()?;
    SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(secs))
}

impl CsrSigner {
    /// A signer from a PEM CA certificate and its PEM private key.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<CsrSigner, PkiError> {
        let not_after = certificate_not_after(cert_pem.as_bytes()).ok_or(PkiError::Certificate(
            rcgen::Error::CouldNotParseCertificate,
        ))?;
        let key = KeyPair::from_pem(key_pem)?;
        let issuer = Issuer::from_ca_cert_pem(cert_pem, key)?;
        Ok(CsrSigner {
            cert_pem: cert_pem.to_string(),
            issuer,
            not_after,
        })
    }

    /// A signer from the CA certificate and key files.
    pub fn load(cert_file: &Path, key_file: &Path) -> Result<CsrSigner, PkiError> {
        let read = |path: &Path| {
            crate::read(path)?.ok_or_else(|| PkiError::Io {
                path: path.to_path_buf(),
                source: std::io::ErrorKind::NotFound.into(),
            })
        };
        CsrSigner::from_pem(&read(cert_file)?, &read(key_file)?)
    }

    /// The CA certificate (PEM).
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// When the CA certificate expires.
    pub fn not_after(&self) -> SystemTime {
        self.not_after
    }

    /// Signs `req` for `usages` (certificates.k8s.io names), valid for `ttl` from
    /// `now`, and returns the PEM certificate. As upstream's policy: the subject and
    /// the DNS, IP, email and URI names come from the request and nothing else does;
    /// the certificate is not a CA; it starts [`BACKDATE`] before `now` and ends `ttl`
    /// after `now` less the backdate (not less for certificates shorter than
    /// [`SHORT_LIVED`]), never after the CA itself.
    pub fn sign<S: AsRef<str>>(
        &self,
        req: &CertificateRequest,
        usages: &[S],
        ttl: Duration,
        now: SystemTime,
    ) -> Result<String, PkiError> {
        if ttl.is_zero() {
            return Err(PkiError::InvalidTtl);
        }
        req.verify_signature()?;
        let (key_usages, extended_key_usages) = usages_of(usages)?;
        let not_before = now.checked_sub(BACKDATE).unwrap_or(now);
        let mut not_after = if ttl < SHORT_LIVED {
            now + ttl
        } else {
            (now + ttl).checked_sub(BACKDATE).unwrap_or(now)
        };
        if not_after >= self.not_after {
            not_after = self.not_after;
        }
        if not_before >= self.not_after {
            return Err(PkiError::SignerExpired(show_time(self.not_after)));
        }
        if now >= self.not_after {
            return Err(PkiError::SignerExpiredInThePast(show_time(self.not_after)));
        }
        let mut params = CertificateParams::default();
        params.distinguished_name = subject_of(req)?;
        for dns in &req.dns_names {
            params
                .subject_alt_names
                .push(SanType::DnsName(dns.as_str().try_into()?));
        }
        for ip in &req.ip_addresses {
            params.subject_alt_names.push(SanType::IpAddress(*ip));
        }
        for email in &req.email_addresses {
            params
                .subject_alt_names
                .push(SanType::Rfc822Name(email.as_str().try_into()?));
        }
        for uri in &req.uris {
            params
                .subject_alt_names
                .push(SanType::URI(uri.as_str().try_into()?));
        }
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = key_usages;
        params.extended_key_usages = extended_key_usages;
        params.not_before = OffsetDateTime::from(not_before);
        params.not_after = OffsetDateTime::from(not_after);
        params.serial_number = Some(random_serial()?);
        params.use_authority_key_identifier_extension = true;
        let public_key = SubjectPublicKeyInfo::from_der(&req.spki_der()?)?;
        let cert = params.signed_by(&public_key, &self.issuer)?;
        Ok(cert.pem())
    }
}

/// A time as the signer's errors show it.
fn show_time(t: SystemTime) -> String {
    OffsetDateTime::from(t).to_string()
}

/// Why a PEM certificate bundle is not acceptable as a CSR's `status.certificate`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BundleError {
    /// A block of another type.
    #[error("only CERTIFICATE PEM blocks are allowed, found {0:?}")]
    NotCertificate(String),
    /// A block with headers.
    #[error("no PEM block headers are permitted")]
    Headers,
    /// A block that does not hold a certificate.
    #[error("x509: malformed certificate")]
    Malformed,
    /// No block at all.
    #[error("must contain at least one CERTIFICATE PEM block")]
    Empty,
}

/// Checks a bundle as upstream checks `status.certificate`: empty, or one or more PEM
/// `CERTIFICATE` blocks without headers, each holding a certificate.
pub fn check_certificate_bundle(pem: &[u8]) -> Result<(), BundleError> {
    if pem.is_empty() {
        return Ok(());
    }
    let blocks = ::pem::parse_many(pem).map_err(|_| BundleError::Empty)?;
    if blocks.is_empty() {
        return Err(BundleError::Empty);
    }
    for block in &blocks {
        if block.tag() != CERTIFICATE_BLOCK {
            return Err(BundleError::NotCertificate(block.tag().to_string()));
        }
        if block.headers().iter().next().is_some() {
            return Err(BundleError::Headers);
        }
        X509Certificate::from_der(block.contents()).map_err(|_| BundleError::Malformed)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ClusterCa;

    /// A request for `cn` in `orgs` with the given DNS names.
    fn request(cn: &str, orgs: &[&str], dns: &[&str]) -> String {
        generate_request(cn, orgs, dns, &[]).unwrap().request_pem
    }

    fn signer(dir: &Path) -> CsrSigner {
        let ca = ClusterCa::load_or_create(dir).unwrap();
        CsrSigner::load(&ca.dir().join("ca.crt"), &ca.dir().join("ca.key")).unwrap()
    }

    #[test]
    fn generated_requests_carry_what_was_asked() {
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let pair = generate_request("system:node:n1", &["system:nodes"], &["n1"], &[ip]).unwrap();
        let req = CertificateRequest::from_pem(pair.request_pem.as_bytes()).unwrap();
        req.verify_signature().unwrap();
        assert_eq!(req.ip_addresses, [ip]);
        assert!(KeyPair::from_pem(&pair.key_pem).is_ok());
        assert!(matches!(
            generate_request("u", &["a", "b"], &[], &[]),
            Err(PkiError::TooManyGroups(2))
        ));
    }

    #[test]
    fn reads_subject_and_names() {
        let pem = request("system:node:n1", &["system:nodes"], &["n1.example"]);
        let req = CertificateRequest::from_pem(pem.as_bytes()).unwrap();
        assert_eq!(req.common_name, "system:node:n1");
        assert_eq!(req.organizations, ["system:nodes"]);
        assert_eq!(req.dns_names, ["n1.example"]);
        assert!(req.ip_addresses.is_empty());
        req.verify_signature().unwrap();
    }

    #[test]
    fn rejects_other_blocks_and_bad_signatures() {
        assert_eq!(
            CertificateRequest::from_pem(b"not pem"),
            Err(RequestError::NotPemRequest)
        );
        let dir = tempfile::tempdir().unwrap();
        let ca = ClusterCa::load_or_create(dir.path()).unwrap();
        assert_eq!(
            CertificateRequest::from_pem(ca.cert_pem().as_bytes()),
            Err(RequestError::NotPemRequest)
        );
        let garbage = ::pem::encode(&::pem::Pem::new(REQUEST_BLOCK, b"garbage".to_vec()));
        assert_eq!(
            CertificateRequest::from_pem(garbage.as_bytes()),
            Err(RequestError::Malformed)
        );
        // Flip a bit of the signature (the last byte of the DER).
        let pem = request("u", &[], &[]);
        let mut der = ::pem::parse(&pem).unwrap().into_contents();
        if let Some(last) = der.last_mut() {
            *last ^= 1;
        }
        let req = CertificateRequest::from_der(&der).unwrap();
        assert_eq!(
            req.verify_signature(),
            Err(RequestError::BadSignature(
                "x509: ECDSA verification failure"
            ))
        );
    }

    #[test]
    fn signs_with_subject_names_and_usages() {
        let dir = tempfile::tempdir().unwrap();
        let signer = signer(dir.path());
        let pem = request("system:node:n1", &["system:nodes"], &["n1.example"]);
        let req = CertificateRequest::from_pem(pem.as_bytes()).unwrap();
        let now = SystemTime::now();
        let ttl = Duration::from_secs(24 * 3600);
        let cert_pem = signer
            .sign(&req, &["digital signature", "server auth"], ttl, now)
            .unwrap();
        check_certificate_bundle(cert_pem.as_bytes()).unwrap();
        let der = ::pem::parse(&cert_pem).unwrap().into_contents();
        let (_, cert) = X509Certificate::from_der(&der).unwrap();
        let cn: Vec<_> = cert
            .subject()
            .iter_common_name()
            .map(|a| a.as_str().unwrap())
            .collect();
        assert_eq!(cn, ["system:node:n1"]);
        let ca_der = ::pem::parse(signer.cert_pem()).unwrap().into_contents();
        let (_, ca) = X509Certificate::from_der(&ca_der).unwrap();
        cert.verify_signature(Some(ca.public_key())).unwrap();
        assert_eq!(cert.issuer(), ca.subject());
        let eku = cert.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.server_auth && !eku.client_auth);
        let ku = cert.key_usage().unwrap().unwrap().value;
        assert!(ku.digital_signature() && !ku.key_encipherment());
        let bc = cert.basic_constraints().unwrap().unwrap().value;
        assert!(!bc.ca);
        let san = cert.subject_alternative_name().unwrap().unwrap().value;
        assert_eq!(san.general_names, [GeneralName::DNSName("n1.example")]);
        // Backdated by five minutes at both ends (not a short-lived certificate).
        let start = cert.validity().not_before.timestamp();
        let end = cert.validity().not_after.timestamp();
        let now_s = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        assert!((now_s - 300 - start).abs() <= 1, "{start} vs {now_s}");
        assert!(
            (now_s + 24 * 3600 - 300 - end).abs() <= 1,
            "{end} vs {now_s}"
        );
        // Short-lived: not backdated at the end.
        let short = signer
            .sign(&req, &["client auth"], Duration::from_secs(3600), now)
            .unwrap();
        let end = certificate_not_after(short.as_bytes()).unwrap();
        let want = now + Duration::from_secs(3600);
        let diff = end.duration_since(want).unwrap_or_else(|e| e.duration());
        assert!(diff <= Duration::from_secs(1), "{diff:?}");
    }

    #[test]
    fn validity_is_capped_by_the_ca() {
        let dir = tempfile::tempdir().unwrap();
        let signer = signer(dir.path());
        let pem = request("u", &[], &[]);
        let req = CertificateRequest::from_pem(pem.as_bytes()).unwrap();
        let forever = Duration::from_secs(100 * 365 * 24 * 3600);
        let cert = signer
            .sign(&req, &["client auth"], forever, SystemTime::now())
            .unwrap();
        assert_eq!(
            certificate_not_after(cert.as_bytes()),
            Some(signer.not_after())
        );
        let much_later = signer.not_after() + Duration::from_secs(600);
        assert!(matches!(
            signer.sign(&req, &["client auth"], forever, much_later),
            Err(PkiError::SignerExpired(_))
        ));
        // Backdating would still start it in time, but the CA is past its end.
        let just_after = signer.not_after() + Duration::from_secs(1);
        assert!(matches!(
            signer.sign(&req, &["client auth"], forever, just_after),
            Err(PkiError::SignerExpiredInThePast(_))
        ));
    }

    #[test]
    fn usages_map_like_upstream() {
        let (key, ext) = usages_of(&[
            "signing",
            "digital signature",
            "s/mime",
            "client auth",
            "email protection",
        ])
        .unwrap();
        assert_eq!(key, [KeyUsagePurpose::DigitalSignature]);
        assert_eq!(
            ext,
            [
                ExtendedKeyUsagePurpose::ClientAuth,
                ExtendedKeyUsagePurpose::EmailProtection
            ]
        );
        assert_eq!(
            usages_of(&["client auth", "nonsense", "bogus"])
                .unwrap_err()
                .to_string(),
            r#"unrecognized usage values: ["nonsense" "bogus"]"#
        );
    }

    #[test]
    fn repeated_subject_attributes_are_refused() {
        // rcgen's builder keeps one value per type, so build the DER subject by hand
        // through x509-parser's view of an existing request: two O values.
        let pem = request("u", &["a"], &[]);
        let mut req = CertificateRequest::from_pem(pem.as_bytes()).unwrap();
        let o = req.subject[1].clone();
        req.subject.push(SubjectAttribute {
            value: "b".into(),
            ..o
        });
        assert!(matches!(
            subject_of(&req),
            Err(PkiError::RepeatedSubjectAttribute(oid)) if oid == "2.5.4.10"
        ));
    }

    #[test]
    fn bundles() {
        let dir = tempfile::tempdir().unwrap();
        let ca = ClusterCa::load_or_create(dir.path()).unwrap();
        check_certificate_bundle(b"").unwrap();
        let two = format!("{}{}", ca.cert_pem(), ca.cert_pem());
        check_certificate_bundle(two.as_bytes()).unwrap();
        assert_eq!(check_certificate_bundle(b"junk"), Err(BundleError::Empty));
        let csr = request("u", &[], &[]);
        assert_eq!(
            check_certificate_bundle(csr.as_bytes()),
            Err(BundleError::NotCertificate("CERTIFICATE REQUEST".into()))
        );
        assert_eq!(
            BundleError::NotCertificate("X".into()).to_string(),
            "only CERTIFICATE PEM blocks are allowed, found \"X\""
        );
        let bad = ::pem::encode(&::pem::Pem::new(CERTIFICATE_BLOCK, b"nope".to_vec()));
        assert_eq!(
            check_certificate_bundle(bad.as_bytes()),
            Err(BundleError::Malformed)
        );
    }

    #[test]
    fn signs_rsa_requests() {
        let key = KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::CommonName, "rsa-user");
        let pem = params.serialize_request(&key).unwrap().pem().unwrap();
        let req = CertificateRequest::from_pem(pem.as_bytes()).unwrap();
        req.verify_signature().unwrap();
        let dir = tempfile::tempdir().unwrap();
        signer(dir.path())
            .sign(
                &req,
                &["client auth"],
                Duration::from_secs(3600),
                SystemTime::now(),
            )
            .unwrap();
    }
}
