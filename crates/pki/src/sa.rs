//! The service account signing key, kept as `sa.key` (PKCS#8 PEM) beside the CA with
//! its public half in `sa.pub` (PKIX PEM), as kubeadm lays them out. A new key is ECDSA
//! P-256 (kubeadm's `encryptionAlgorithm: ECDSA-P256`) and signs tokens with ES256: a
//! signature costs a few hundredths of a millisecond where RSA 2048 costs about one,
//! and every pod start asks for a token. An existing key is kept: RSA (PKCS#8, or
//! PKCS#1 as older tools write) signs with RS256, ECDSA P-256, P-384 or P-521 (PKCS#8
//! or SEC1; kubeadm's `ECDSA-P384` among them) with ES256, ES384 or ES512, as
//! upstream picks the algorithm from the key. The key ID is the one upstream derives
//! (unpadded base64url of the SHA-256 of the PKIX public key).

use crate::{read, write_private, PkiError};
use aws_lc_rs::encoding::{AsBigEndian, AsDer, EcPublicKeyUncompressedBin, PublicKeyX509Der};
use aws_lc_rs::signature::{self, EcdsaKeyPair, KeyPair as _, UnparsedPublicKey};
use base64::Engine;
use std::path::Path;

/// File name of the private key.
pub const SA_KEY: &str = "sa.key";
/// File name of the public key.
pub const SA_PUB: &str = "sa.pub";

/// The private key, by kind.
enum Signer {
    Rsa(aws_lc_rs::rsa::KeyPair),
    Ec(EcdsaKeyPair, Curve),
}

/// The ECDSA curves a service account key may use, each with its JWS algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Curve {
    P256,
    P384,
    P521,
}

impl Curve {
    const ALL: [Curve; 3] = [Curve::P256, Curve::P384, Curve::P521];

    fn signing(self) -> &'static signature::EcdsaSigningAlgorithm {
        match self {
            Curve::P256 => &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            Curve::P384 => &signature::ECDSA_P384_SHA384_FIXED_SIGNING,
            Curve::P521 => &signature::ECDSA_P521_SHA512_FIXED_SIGNING,
        }
    }

    fn verification(self) -> &'static signature::EcdsaVerificationAlgorithm {
        match self {
            Curve::P256 => &signature::ECDSA_P256_SHA256_FIXED,
            Curve::P384 => &signature::ECDSA_P384_SHA384_FIXED,
            Curve::P521 => &signature::ECDSA_P521_SHA512_FIXED,
        }
    }

    /// The JWS `alg` (RFC 7518 3.4).
    fn jws(self) -> &'static str {
        match self {
            Curve::P256 => "ES256",
            Curve::P384 => "ES384",
            Curve::P521 => "ES512",
        }
    }

    /// The JWK `crv` (RFC 7518 6.2.1.1).
    fn name(self) -> &'static str {
        match self {
            Curve::P256 => "P-256",
            Curve::P384 => "P-384",
            Curve::P521 => "P-521",
        }
    }

    /// Bytes of one coordinate.
    fn coordinate_len(self) -> usize {
        match self {
            Curve::P256 => 32,
            Curve::P384 => 48,
            Curve::P521 => 66,
        }
    }
}

/// The public key as a JSON Web Key needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicJwk {
    /// `kty: RSA`: modulus and public exponent, big-endian without leading zeros.
    Rsa { n: Vec<u8>, e: Vec<u8> },
    /// `kty: EC`: the curve (`crv`: `P-256`, `P-384` or `P-521`) and the point's
    /// coordinates, 32, 48 or 66 bytes each.
    Ec {
        crv: &'static str,
        x: Vec<u8>,
        y: Vec<u8>,
    },
}

/// The key that signs service account tokens.
pub struct ServiceAccountKey {
    key: Signer,
    public_pkix: Vec<u8>,
    key_id: String,
}

impl std::fmt::Debug for ServiceAccountKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceAccountKey")
            .field("algorithm", &self.algorithm())
            .field("key_id", &self.key_id)
            .finish()
    }
}

fn crypto(what: &str) -> PkiError {
    PkiError::Key(what.to_string())
}

/// The DER inside the first PEM block labelled `label`.
fn pem_block(pem: &str, label: &str) -> Option<Vec<u8>> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = pem.find(&begin)? + begin.len();
    let stop = start + pem[start..].find(&end)?;
    let body: String = pem[start..stop]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    base64::engine::general_purpose::STANDARD.decode(body).ok()
}

/// PEM text of `der` under `label`, 64 characters a line.
pub fn to_pem(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// Parses a private key PEM: PKCS#8 (RSA or ECDSA), PKCS#1 RSA, or SEC1 ECDSA, the
/// ECDSA curve being P-256, P-384 or P-521.
fn parse_private(pem: &str, path: &Path) -> Result<Signer, PkiError> {
    let bad = |e: &dyn std::fmt::Display| crypto(&format!("{}: {e}", path.display()));
    // The first curve the key parses as: a key of another curve is refused by each.
    let ec = |parse: &dyn Fn(&'static signature::EcdsaSigningAlgorithm) -> Option<EcdsaKeyPair>| {
        Curve::ALL
            .into_iter()
            .find_map(|c| parse(c.signing()).map(|k| Signer::Ec(k, c)))
    };
    if let Some(der) = pem_block(pem, "PRIVATE KEY") {
        match aws_lc_rs::rsa::KeyPair::from_pkcs8(&der) {
            Ok(k) => Ok(Signer::Rsa(k)),
            Err(rsa_err) => ec(&|alg| EcdsaKeyPair::from_pkcs8(alg, &der).ok()).ok_or_else(|| {
                bad(&format!(
                    "neither an RSA key ({rsa_err}) nor an ECDSA P-256, P-384 or P-521 key"
                ))
            }),
        }
    } else if let Some(der) = pem_block(pem, "RSA PRIVATE KEY") {
        aws_lc_rs::rsa::KeyPair::from_der(&der)
            .map(Signer::Rsa)
            .map_err(|e| bad(&e))
    } else if let Some(der) = pem_block(pem, "EC PRIVATE KEY") {
        ec(&|alg| EcdsaKeyPair::from_private_key_der(alg, &der).ok())
            .ok_or_else(|| bad(&"not an ECDSA P-256, P-384 or P-521 key"))
    } else {
        Err(bad(&"no RSA or ECDSA private key found"))
    }
}

impl ServiceAccountKey {
    /// Loads `sa.key` from `dir`, or generates an ECDSA P-256 one (and `sa.pub`) on
    /// first use.
    pub fn load_or_create(dir: &Path) -> Result<ServiceAccountKey, PkiError> {
        let key_path = dir.join(SA_KEY);
        if let Some(pem) = read(&key_path)? {
            return ServiceAccountKey::from_signer(parse_private(&pem, &key_path)?);
        }
        let key = EcdsaKeyPair::generate(&signature::ECDSA_P256_SHA256_FIXED_SIGNING)
            .map_err(|_| crypto("generating the ECDSA key"))?;
        let der = key
            .to_pkcs8v1()
            .map_err(|_| crypto("encoding the ECDSA key"))?;
        let sa = ServiceAccountKey::from_signer(Signer::Ec(key, Curve::P256))?;
        write_private(&key_path, &to_pem("PRIVATE KEY", der.as_ref()))?;
        write_private(&dir.join(SA_PUB), &sa.public_pem())?;
        Ok(sa)
    }

    /// A new RSA 2048 key, not stored anywhere (tests of RS256 tokens).
    pub fn generate_rsa() -> Result<ServiceAccountKey, PkiError> {
        let key = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
            .map_err(|_| crypto("generating the RSA key"))?;
        ServiceAccountKey::from_signer(Signer::Rsa(key))
    }

    fn from_signer(key: Signer) -> Result<ServiceAccountKey, PkiError> {
        let pkix: Result<PublicKeyX509Der<'static>, _> = match &key {
            Signer::Rsa(k) => k.public_key().as_der(),
            Signer::Ec(k, _) => k.public_key().as_der(),
        };
        let public_pkix = pkix
            .map_err(|_| crypto("encoding the public key"))?
            .as_ref()
            .to_vec();
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &public_pkix);
        let key_id = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest.as_ref());
        Ok(ServiceAccountKey {
            key,
            public_pkix,
            key_id,
        })
    }

    /// The JWS algorithm this key signs with: `RS256`, or `ES256`, `ES384` or `ES512`
    /// by the ECDSA key's curve.
    pub fn algorithm(&self) -> &'static str {
        match &self.key {
            Signer::Rsa(_) => "RS256",
            Signer::Ec(_, c) => c.jws(),
        }
    }

    /// The key ID (`kid`) tokens and the JWKS name this key by.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The public key as PKIX (SubjectPublicKeyInfo) DER.
    pub fn public_pkix(&self) -> &[u8] {
        &self.public_pkix
    }

    /// The public key as PEM.
    pub fn public_pem(&self) -> String {
        to_pem("PUBLIC KEY", &self.public_pkix)
    }

    /// The public key's JSON Web Key parameters.
    pub fn public_jwk(&self) -> Result<PublicJwk, PkiError> {
        match &self.key {
            Signer::Rsa(k) => Ok(PublicJwk::Rsa {
                n: k.public_key()
                    .modulus()
                    .big_endian_without_leading_zero()
                    .to_vec(),
                e: k.public_key()
                    .exponent()
                    .big_endian_without_leading_zero()
                    .to_vec(),
            }),
            Signer::Ec(k, c) => {
                let point: EcPublicKeyUncompressedBin<'static> = k
                    .public_key()
                    .as_be_bytes()
                    .map_err(|_| crypto("encoding the public key"))?;
                // 0x04, then X and Y, each of the curve's coordinate length.
                let len = c.coordinate_len();
                match point.as_ref() {
                    [4, xy @ ..] if xy.len() == 2 * len => Ok(PublicJwk::Ec {
                        crv: c.name(),
                        x: xy[..len].to_vec(),
                        y: xy[len..].to_vec(),
                    }),
                    _ => Err(crypto("unexpected ECDSA public key encoding")),
                }
            }
        }
    }

    /// Signs `msg` as a JWS of [`Self::algorithm`]: RSASSA-PKCS1-v1_5 over SHA-256, or
    /// ECDSA over the curve's hash with the fixed-length `R || S` signature JWS wants.
    pub fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, PkiError> {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        match &self.key {
            Signer::Rsa(k) => {
                let mut sig = vec![0; k.public_modulus_len()];
                k.sign(&signature::RSA_PKCS1_SHA256, &rng, msg, &mut sig)
                    .map_err(|_| crypto("signing"))?;
                Ok(sig)
            }
            Signer::Ec(k, _) => k
                .sign(&rng, msg)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| crypto("signing")),
        }
    }

    /// Whether `sig` is this key's signature of `msg` in [`Self::algorithm`].
    pub fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        match &self.key {
            Signer::Rsa(k) => UnparsedPublicKey::new(
                &signature::RSA_PKCS1_2048_8192_SHA256,
                k.public_key().as_ref(),
            )
            .verify(msg, sig)
            .is_ok(),
            Signer::Ec(k, c) => UnparsedPublicKey::new(c.verification(), k.public_key().as_ref())
                .verify(msg, sig)
                .is_ok(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_key_is_p256_persists_signs_and_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let key = ServiceAccountKey::load_or_create(dir.path()).unwrap();
        let again = ServiceAccountKey::load_or_create(dir.path()).unwrap();
        assert_eq!(key.algorithm(), "ES256");
        assert_eq!(key.key_id(), again.key_id(), "key regenerated on reload");
        assert_eq!(key.key_id().len(), 43, "unpadded base64url of 32 bytes");
        match key.public_jwk().unwrap() {
            PublicJwk::Ec { crv, x, y } => {
                assert_eq!((crv, x.len(), y.len()), ("P-256", 32, 32))
            }
            other => panic!("not an EC key: {other:?}"),
        }
        let sig = key.sign(b"header.claims").unwrap();
        assert_eq!(sig.len(), 64, "fixed R || S");
        assert!(again.verify(b"header.claims", &sig));
        assert!(!again.verify(b"header.claimz", &sig));
        let public = std::fs::read_to_string(dir.path().join(SA_PUB)).unwrap();
        assert!(public.starts_with("-----BEGIN PUBLIC KEY-----\n"));
        assert_eq!(pem_block(&public, "PUBLIC KEY").unwrap(), key.public_pkix());
        let private = std::fs::read_to_string(dir.path().join(SA_KEY)).unwrap();
        assert!(private.starts_with("-----BEGIN PRIVATE KEY-----\n"));
    }

    #[test]
    fn an_existing_rsa_key_is_kept_and_signs_rs256() {
        let dir = tempfile::tempdir().unwrap();
        let rsa = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
        let der: aws_lc_rs::encoding::Pkcs8V1Der<'static> = rsa.as_der().unwrap();
        std::fs::write(dir.path().join(SA_KEY), to_pem("PRIVATE KEY", der.as_ref())).unwrap();
        let key = ServiceAccountKey::load_or_create(dir.path()).unwrap();
        assert_eq!(key.algorithm(), "RS256");
        match key.public_jwk().unwrap() {
            PublicJwk::Rsa { n, e } => {
                assert_eq!(n.len(), 256);
                assert_eq!(e, vec![1, 0, 1]);
            }
            other => panic!("not an RSA key: {other:?}"),
        }
        let sig = key.sign(b"header.claims").unwrap();
        assert_eq!(sig.len(), 256);
        assert!(key.verify(b"header.claims", &sig));
        assert!(!key.verify(b"header.claimz", &sig));
        assert!(!dir.path().join(SA_PUB).exists(), "loading writes nothing");
    }

    #[test]
    fn a_sec1_ec_key_loads() {
        let dir = tempfile::tempdir().unwrap();
        let ec = EcdsaKeyPair::generate(&signature::ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
        let sec1: aws_lc_rs::encoding::EcPrivateKeyRfc5915Der<'static> =
            ec.private_key().as_der().unwrap();
        std::fs::write(
            dir.path().join(SA_KEY),
            to_pem("EC PRIVATE KEY", sec1.as_ref()),
        )
        .unwrap();
        let key = ServiceAccountKey::load_or_create(dir.path()).unwrap();
        assert_eq!(key.algorithm(), "ES256");
        let pkix: PublicKeyX509Der<'static> = ec.public_key().as_der().unwrap();
        assert_eq!(key.public_pkix(), pkix.as_ref());
    }

    #[test]
    fn existing_p384_and_p521_keys_are_kept_and_sign_es384_and_es512() {
        for (curve, alg, coordinate, sec1) in [
            (Curve::P384, "ES384", 48, false),
            (Curve::P384, "ES384", 48, true),
            (Curve::P521, "ES512", 66, false),
            (Curve::P521, "ES512", 66, true),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let ec = EcdsaKeyPair::generate(curve.signing()).unwrap();
            let pem = if sec1 {
                let der: aws_lc_rs::encoding::EcPrivateKeyRfc5915Der<'static> =
                    ec.private_key().as_der().unwrap();
                to_pem("EC PRIVATE KEY", der.as_ref())
            } else {
                to_pem("PRIVATE KEY", ec.to_pkcs8v1().unwrap().as_ref())
            };
            std::fs::write(dir.path().join(SA_KEY), pem).unwrap();
            let key = ServiceAccountKey::load_or_create(dir.path()).unwrap();
            assert_eq!(key.algorithm(), alg);
            let pkix: PublicKeyX509Der<'static> = ec.public_key().as_der().unwrap();
            assert_eq!(key.public_pkix(), pkix.as_ref());
            match key.public_jwk().unwrap() {
                PublicJwk::Ec { crv, x, y } => {
                    assert_eq!(
                        (crv, x.len(), y.len()),
                        (curve.name(), coordinate, coordinate)
                    )
                }
                other => panic!("not an EC key: {other:?}"),
            }
            let sig = key.sign(b"header.claims").unwrap();
            assert_eq!(sig.len(), 2 * coordinate, "fixed R || S");
            assert!(key.verify(b"header.claims", &sig));
            assert!(!key.verify(b"header.claimz", &sig));
            // The signature is what the curve's standard verifier accepts.
            assert!(
                UnparsedPublicKey::new(curve.verification(), ec.public_key().as_ref())
                    .verify(b"header.claims", &sig)
                    .is_ok()
            );
        }
    }

    #[test]
    fn garbage_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(SA_KEY), "not a key").unwrap();
        assert!(ServiceAccountKey::load_or_create(dir.path()).is_err());
        std::fs::write(dir.path().join(SA_KEY), to_pem("PRIVATE KEY", b"junk")).unwrap();
        assert!(ServiceAccountKey::load_or_create(dir.path()).is_err());
    }
}
