//! The service account signing key: an RSA 2048 key kept as `sa.key` (PKCS#8 PEM)
//! beside the CA, with its public half in `sa.pub` (PKIX PEM), as kubeadm lays them
//! out. It signs service account tokens with RS256 and checks their signatures; its
//! key ID is the one upstream derives (unpadded base64url of the SHA-256 of the PKIX
//! public key).

use crate::{read, write_private, PkiError};
use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der, PublicKeyX509Der};
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::{self, KeyPair as _, UnparsedPublicKey};
use base64::Engine;
use std::path::Path;

/// File name of the private key.
pub const SA_KEY: &str = "sa.key";
/// File name of the public key.
pub const SA_PUB: &str = "sa.pub";

/// The key that signs service account tokens.
pub struct ServiceAccountKey {
    key: KeyPair,
    public_pkix: Vec<u8>,
    key_id: String,
}

impl std::fmt::Debug for ServiceAccountKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceAccountKey")
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

impl ServiceAccountKey {
    /// Loads `sa.key` from `dir`, or generates it (and `sa.pub`) on first use. A
    /// PKCS#1 (`RSA PRIVATE KEY`) file, as older tools write, is accepted too.
    pub fn load_or_create(dir: &Path) -> Result<ServiceAccountKey, PkiError> {
        let key_path = dir.join(SA_KEY);
        if let Some(pem) = read(&key_path)? {
            let key = if let Some(der) = pem_block(&pem, "PRIVATE KEY") {
                KeyPair::from_pkcs8(&der)
            } else if let Some(der) = pem_block(&pem, "RSA PRIVATE KEY") {
                KeyPair::from_der(&der)
            } else {
                return Err(crypto(&format!(
                    "{}: no RSA private key found",
                    key_path.display()
                )));
            }
            .map_err(|e| crypto(&format!("{}: {e}", key_path.display())))?;
            return ServiceAccountKey::from_key(key);
        }
        let key = KeyPair::generate(KeySize::Rsa2048).map_err(|_| crypto("generating RSA key"))?;
        let der: Pkcs8V1Der<'static> = key.as_der().map_err(|_| crypto("encoding the RSA key"))?;
        let sa = ServiceAccountKey::from_key(key)?;
        write_private(&key_path, &to_pem("PRIVATE KEY", der.as_ref()))?;
        write_private(&dir.join(SA_PUB), &sa.public_pem())?;
        Ok(sa)
    }

    fn from_key(key: KeyPair) -> Result<ServiceAccountKey, PkiError> {
        let pkix: PublicKeyX509Der<'static> = key
            .public_key()
            .as_der()
            .map_err(|_| crypto("encoding the public key"))?;
        let public_pkix = pkix.as_ref().to_vec();
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &public_pkix);
        let key_id = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest.as_ref());
        Ok(ServiceAccountKey {
            key,
            public_pkix,
            key_id,
        })
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

    /// The RSA modulus, big-endian without leading zeros (JWK `n`).
    pub fn modulus(&self) -> Vec<u8> {
        self.key
            .public_key()
            .modulus()
            .big_endian_without_leading_zero()
            .to_vec()
    }

    /// The RSA public exponent, big-endian without leading zeros (JWK `e`).
    pub fn exponent(&self) -> Vec<u8> {
        self.key
            .public_key()
            .exponent()
            .big_endian_without_leading_zero()
            .to_vec()
    }

    /// Signs `msg` with RSASSA-PKCS1-v1_5 over SHA-256 (JWS `RS256`).
    pub fn sign_rs256(&self, msg: &[u8]) -> Result<Vec<u8>, PkiError> {
        let mut sig = vec![0; self.key.public_modulus_len()];
        let rng = aws_lc_rs::rand::SystemRandom::new();
        self.key
            .sign(&signature::RSA_PKCS1_SHA256, &rng, msg, &mut sig)
            .map_err(|_| crypto("signing"))?;
        Ok(sig)
    }

    /// Whether `sig` is this key's RS256 signature of `msg`.
    pub fn verify_rs256(&self, msg: &[u8], sig: &[u8]) -> bool {
        UnparsedPublicKey::new(
            &signature::RSA_PKCS1_2048_8192_SHA256,
            self.key.public_key().as_ref(),
        )
        .verify(msg, sig)
        .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_persists_signs_and_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let key = ServiceAccountKey::load_or_create(dir.path()).unwrap();
        let again = ServiceAccountKey::load_or_create(dir.path()).unwrap();
        assert_eq!(key.key_id(), again.key_id(), "key regenerated on reload");
        assert_eq!(key.key_id().len(), 43, "unpadded base64url of 32 bytes");
        assert_eq!(key.modulus().len(), 256);
        assert_eq!(key.exponent(), vec![1, 0, 1]);
        let sig = key.sign_rs256(b"header.claims").unwrap();
        assert!(again.verify_rs256(b"header.claims", &sig));
        assert!(!again.verify_rs256(b"header.claimz", &sig));
        let public = std::fs::read_to_string(dir.path().join(SA_PUB)).unwrap();
        assert!(public.starts_with("-----BEGIN PUBLIC KEY-----\n"));
        assert_eq!(pem_block(&public, "PUBLIC KEY").unwrap(), key.public_pkix());
        let private = std::fs::read_to_string(dir.path().join(SA_KEY)).unwrap();
        assert!(private.starts_with("-----BEGIN PRIVATE KEY-----\n"));
    }
}
