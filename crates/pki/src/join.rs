//! The token a node joins the cluster with, in k3s's form: `K10<hash>::<id>.<secret>`.
//!
//! - `<id>.<secret>` is a Kubernetes bootstrap token (6 and 16 characters of
//!   `[a-z0-9]`): the apiserver authenticates it from the Secret
//!   `kube-system/bootstrap-token-<id>` as `system:bootstrap:<id>`, and the node uses
//!   it to ask for its certificate.
//! - `<hash>` is the SHA-256 (hex) of the cluster CA certificate as served (PEM): a
//!   joining node fetches the CA without trusting anything yet and checks it against
//!   the hash before sending the token anywhere.
//!
//! A bare `<id>.<secret>` is accepted too; the node then trusts the first CA it sees.

use crate::PkiError;
use std::path::Path;

/// A join token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinToken {
    /// SHA-256 of the CA certificate (lowercase hex), when the token carries it.
    pub ca_hash: Option<String>,
    /// The bootstrap token's ID (public: it names the Secret).
    pub id: String,
    /// The bootstrap token's secret.
    pub secret: String,
}

const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

fn is_token_part(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| ALPHABET.contains(&b))
}

/// Splits a bootstrap token `<id>.<secret>` into its parts, if it is one.
pub fn split_bootstrap_token(token: &str) -> Option<(&str, &str)> {
    let (id, secret) = token.split_once('.')?;
    (is_token_part(id, 6) && is_token_part(secret, 16)).then_some((id, secret))
}

/// The SHA-256 of a CA certificate as served (its PEM bytes), in lowercase hex.
pub fn ca_hash(ca_pem: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, ca_pem.as_bytes());
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

fn random_part(len: usize) -> Result<String, PkiError> {
    use aws_lc_rs::rand::SecureRandom;
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let mut out = String::with_capacity(len);
    // Rejection sampling keeps every character equally likely.
    let limit = 256 - 256 % ALPHABET.len();
    while out.len() < len {
        let mut buf = [0u8; 32];
        rng.fill(&mut buf)
            .map_err(|_| PkiError::Key("no randomness for a token".into()))?;
        for b in buf {
            if (b as usize) < limit && out.len() < len {
                out.push(ALPHABET[b as usize % ALPHABET.len()] as char);
            }
        }
    }
    Ok(out)
}

impl JoinToken {
    /// A new random token for the CA `ca_pem`.
    pub fn generate(ca_pem: &str) -> Result<JoinToken, PkiError> {
        Ok(JoinToken {
            ca_hash: Some(ca_hash(ca_pem)),
            id: random_part(6)?,
            secret: random_part(16)?,
        })
    }

    /// Parses `K10<hash>::<id>.<secret>` or a bare `<id>.<secret>`.
    pub fn parse(s: &str) -> Option<JoinToken> {
        let s = s.trim();
        let (ca_hash, token) = match s.strip_prefix("K10") {
            Some(rest) => {
                let (hash, token) = rest.split_once("::")?;
                let hash = hash.to_ascii_lowercase();
                if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return None;
                }
                // k3s writes `server:<password>` here; only bootstrap tokens are ours.
                (Some(hash), token)
            }
            None => (None, s),
        };
        let (id, secret) = split_bootstrap_token(token)?;
        Some(JoinToken {
            ca_hash,
            id: id.into(),
            secret: secret.into(),
        })
    }

    /// The bootstrap token part, `<id>.<secret>`, as sent in `Authorization`.
    pub fn bearer(&self) -> String {
        format!("{}.{}", self.id, self.secret)
    }

    /// Whether `ca_pem` is the CA this token was made for (any CA when the token
    /// carries no hash).
    pub fn trusts(&self, ca_pem: &str) -> bool {
        self.ca_hash.as_deref().is_none_or(|h| h == ca_hash(ca_pem))
    }

    /// Reads the token kept at `path`, or makes one for `ca_pem` and keeps it there
    /// (private to root). A token given by the operator (`given`) wins and is kept.
    pub fn load_or_create(
        path: &Path,
        ca_pem: &str,
        given: Option<&JoinToken>,
    ) -> Result<JoinToken, PkiError> {
        let token = match given {
            Some(t) => JoinToken {
                ca_hash: Some(ca_hash(ca_pem)),
                ..t.clone()
            },
            None => match crate::read(path)?.as_deref().and_then(JoinToken::parse) {
                Some(t) if t.trusts(ca_pem) => return Ok(t),
                _ => JoinToken::generate(ca_pem)?,
            },
        };
        crate::write_private(path, &format!("{token}\n"))?;
        Ok(token)
    }
}

impl std::fmt::Display for JoinToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.ca_hash {
            Some(h) => write!(f, "K10{h}::{}.{}", self.id, self.secret),
            None => write!(f, "{}.{}", self.id, self.secret),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_check_the_ca() {
        let t = JoinToken::generate("CA-PEM").unwrap();
        assert!(split_bootstrap_token(&t.bearer()).is_some());
        let s = t.to_string();
        assert!(s.starts_with("K10"), "{s}");
        assert_eq!(JoinToken::parse(&s), Some(t.clone()));
        assert!(t.trusts("CA-PEM"));
        assert!(!t.trusts("another CA"));
        let bare = JoinToken::parse("abcdef.0123456789abcdef").unwrap();
        assert_eq!(bare.ca_hash, None);
        assert!(bare.trusts("anything"));
        assert_eq!(bare.to_string(), "abcdef.0123456789abcdef");
    }

    #[test]
    fn malformed_tokens_are_refused() {
        for bad in [
            "",
            "abcdef",
            "abcde.0123456789abcdef",
            "abcdef.0123456789abcde",
            "ABCDEF.0123456789abcdef",
            "abcdef.0123456789abcdeF",
            "K10abc::abcdef.0123456789abcdef",
            "K10zz::abcdef.0123456789abcdef",
            // k3s's server password form.
            "K10aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa::server:pw",
        ] {
            assert_eq!(JoinToken::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_token_persists_and_follows_the_ca() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        let t = JoinToken::load_or_create(&path, "CA1", None).unwrap();
        assert_eq!(JoinToken::load_or_create(&path, "CA1", None).unwrap(), t);
        // Another CA: the old token's hash is wrong, so a new one is made.
        let t2 = JoinToken::load_or_create(&path, "CA2", None).unwrap();
        assert_ne!(t2, t);
        assert!(t2.trusts("CA2"));
        // The operator's token wins, with the CA's hash.
        let given = JoinToken::parse("abcdef.0123456789abcdef").unwrap();
        let t3 = JoinToken::load_or_create(&path, "CA2", Some(&given)).unwrap();
        assert_eq!(t3.bearer(), "abcdef.0123456789abcdef");
        assert!(t3.ca_hash.is_some());
        assert_eq!(
            std::fs::read_to_string(&path).unwrap().trim(),
            t3.to_string()
        );
    }
}
