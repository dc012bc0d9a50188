//! Authentication: who is calling. Client certificates signed by the cluster CA name a
//! user (CommonName) and groups (Organizations), as in Kubernetes; bearer tokens come
//! from a static token table, are bootstrap tokens ([`crate::bootstraptoken`]) or are
//! service account tokens signed by this server ([`crate::serviceaccount`]). Requests
//! with neither are anonymous, and anonymous requests are refused except on the
//! health endpoints and the public `kube-public/cluster-info` ConfigMap.

use crate::Server;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use x509_parser::prelude::*;

/// An authenticated caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    /// User name.
    pub name: String,
    /// Group memberships, including `system:authenticated`.
    pub groups: Vec<String>,
    /// Stable identifier, if the authenticator has one.
    pub uid: String,
    /// Extra attributes (a service account token's bound pod and node, its ID).
    pub extra: BTreeMap<String, Vec<String>>,
}

impl User {
    /// The unauthenticated caller.
    pub fn anonymous() -> User {
        User {
            name: "system:anonymous".into(),
            groups: vec!["system:unauthenticated".into()],
            uid: String::new(),
            extra: BTreeMap::new(),
        }
    }

    /// Whether this is the anonymous user.
    pub fn is_anonymous(&self) -> bool {
        self.name == "system:anonymous"
    }

    /// An authenticated user with `groups` plus `system:authenticated`.
    pub fn authenticated(name: &str, groups: &[String]) -> User {
        let mut groups = groups.to_vec();
        if !groups.iter().any(|g| g == "system:authenticated") {
            groups.push("system:authenticated".into());
        }
        User {
            name: name.to_string(),
            groups,
            uid: String::new(),
            extra: BTreeMap::new(),
        }
    }

    /// The `UserInfo` of reviews (`username`, `uid`, `groups`, `extra`; empty fields
    /// left out, as upstream's `omitempty`).
    pub fn info(&self) -> serde_json::Value {
        let mut v = serde_json::json!({"username": self.name});
        if !self.uid.is_empty() {
            v["uid"] = serde_json::json!(self.uid);
        }
        if !self.groups.is_empty() {
            v["groups"] = serde_json::json!(self.groups);
        }
        if !self.extra.is_empty() {
            v["extra"] = serde_json::json!(self.extra);
        }
        v
    }
}

/// The user a verified client certificate (DER) names.
pub fn user_from_cert(der: &[u8]) -> Option<User> {
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    let subject = cert.subject();
    let name = subject
        .iter_common_name()
        .next()?
        .as_str()
        .ok()?
        .to_string();
    let groups: Vec<String> = subject
        .iter_organization()
        .filter_map(|o| o.as_str().ok().map(str::to_string))
        .collect();
    Some(User::authenticated(&name, &groups))
}

/// Bearer tokens the server accepts (token → user).
#[derive(Clone, Default)]
pub struct TokenTable {
    tokens: Arc<parking_lot::RwLock<HashMap<String, User>>>,
}

impl TokenTable {
    /// Adds a token.
    pub fn insert(&self, token: &str, user: User) {
        self.tokens.write().insert(token.to_string(), user);
    }

    /// The user a token belongs to.
    pub fn lookup(&self, token: &str) -> Option<User> {
        self.tokens.read().get(token).cloned()
    }
}

/// Credentials were presented but are not valid.
#[derive(Debug, thiserror::Error)]
#[error("invalid credentials")]
pub struct InvalidCredentials;

/// The token of an `Authorization: Bearer <token>` header.
pub fn bearer_token(authorization: &str) -> Option<&str> {
    authorization
        .strip_prefix("Bearer ")
        .or_else(|| authorization.strip_prefix("bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// Authenticates a request as the server does: the connection's certificate user if
/// any, else the bearer token (static table, then bootstrap tokens, then service
/// account tokens for the API audiences), else anonymous.
pub async fn authenticate_request(
    server: &Server,
    cert_user: Option<&User>,
    authorization: Option<&str>,
) -> Result<User, InvalidCredentials> {
    match authenticate(cert_user, authorization, &server.tokens) {
        Ok(u) => Ok(u),
        Err(InvalidCredentials) => {
            let token = authorization
                .and_then(bearer_token)
                .ok_or(InvalidCredentials)?;
            if pki::join::split_bootstrap_token(token).is_some() {
                return crate::bootstraptoken::authenticate(server, token)
                    .await
                    .ok_or(InvalidCredentials);
            }
            let audiences = server.sa_tokens.api_audiences();
            match server
                .sa_tokens
                .authenticate(server, token, audiences)
                .await
            {
                Ok(Some(a)) => Ok(a.user),
                Ok(None) => Err(InvalidCredentials),
                Err(e) => {
                    tracing::debug!(error = %e, "service account token rejected");
                    Err(InvalidCredentials)
                }
            }
        }
    }
}

/// Authenticates a request: the connection's certificate user if any, else a bearer
/// token of the static table, else anonymous.
pub fn authenticate(
    cert_user: Option<&User>,
    authorization: Option<&str>,
    tokens: &TokenTable,
) -> Result<User, InvalidCredentials> {
    if let Some(u) = cert_user {
        return Ok(u.clone());
    }
    match authorization {
        None => Ok(User::anonymous()),
        Some(h) => {
            let token = bearer_token(h).ok_or(InvalidCredentials)?;
            tokens.lookup(token).ok_or(InvalidCredentials)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificate_names_user_and_groups() {
        let dir = tempfile::tempdir().unwrap();
        let ca = pki::ClusterCa::load_or_create(dir.path()).unwrap();
        let pair = ca.issue_client("alice", &["devs"]).unwrap();
        let (_, pem) = x509_parser::pem::parse_x509_pem(pair.cert_pem.as_bytes()).unwrap();
        let user = user_from_cert(&pem.contents).unwrap();
        assert_eq!(user.name, "alice");
        assert_eq!(user.groups, vec!["devs", "system:authenticated"]);
    }

    #[test]
    fn tokens_and_anonymous() {
        let t = TokenTable::default();
        t.insert("abc", User::authenticated("bob", &[]));
        assert_eq!(
            authenticate(None, Some("Bearer abc"), &t).unwrap().name,
            "bob"
        );
        assert!(authenticate(None, Some("Bearer nope"), &t).is_err());
        assert!(authenticate(None, None, &t).unwrap().is_anonymous());
        assert_eq!(bearer_token("Bearer  abc "), Some("abc"));
        assert_eq!(bearer_token("Bearer "), None);
        assert_eq!(bearer_token("Basic abc"), None);
    }

    #[test]
    fn user_info_leaves_out_empty_fields() {
        let mut u = User::authenticated("bob", &[]);
        assert_eq!(
            u.info(),
            serde_json::json!({"username": "bob", "groups": ["system:authenticated"]})
        );
        u.uid = "1".into();
        u.extra.insert("k".into(), vec!["v".into()]);
        assert_eq!(
            u.info(),
            serde_json::json!({"username": "bob", "uid": "1",
                "groups": ["system:authenticated"], "extra": {"k": ["v"]}})
        );
    }
}
