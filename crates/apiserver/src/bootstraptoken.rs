//! Bootstrap tokens, as upstream's authenticator reads them: a bearer token
//! `<id>.<secret>` is valid while the Secret `kube-system/bootstrap-token-<id>` of
//! type `bootstrap.kubernetes.io/token` holds that secret, allows authentication
//! (`usage-bootstrap-authentication: "true"`), has not expired and is not being
//! deleted. The caller is `system:bootstrap:<id>` in `system:bootstrappers`, the
//! Secret's `auth-extra-groups` and `system:authenticated`.
//!
//! The server's own join token ([`pki::join::JoinToken`]) is kept as such a Secret
//! ([`secret_for`]).

use crate::auth::User;
use crate::Server;
use base64::Engine;
use serde_json::{json, Value};

/// The Secret type of bootstrap tokens.
pub const SECRET_TYPE: &str = "bootstrap.kubernetes.io/token";
/// The namespace the Secrets live in.
pub const NAMESPACE: &str = "kube-system";
/// The group every bootstrap token's user is in.
pub const GROUP: &str = "system:bootstrappers";
/// The extra group of the server's own join token (k3s's and kubeadm's is alike).
pub const JOIN_GROUP: &str = "system:bootstrappers:ferrokube:default-node-token";

/// The Secret's name for token `id`.
pub fn secret_name(id: &str) -> String {
    format!("bootstrap-token-{id}")
}

/// The Secret that makes `token` valid for joining nodes.
pub fn secret_for(token: &pki::join::JoinToken) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": secret_name(&token.id), "namespace": NAMESPACE},
        "type": SECRET_TYPE,
        "stringData": {
            "description": "The token nodes join this cluster with (ferrokube agent --token).",
            "token-id": token.id,
            "token-secret": token.secret,
            "usage-bootstrap-authentication": "true",
            "usage-bootstrap-signing": "true",
            "auth-extra-groups": JOIN_GROUP,
        },
    })
}

/// A Secret data value, decoded.
fn data(secret: &Value, key: &str) -> Option<String> {
    let b64 = secret["data"][key].as_str()?;
    let bytes = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
    String::from_utf8(bytes).ok()
}

/// Compares without stopping at the first difference.
fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// The user `token` authenticates as, given the Secret for its ID (`None` if the
/// Secret does not make the token valid at `now`, in seconds since the epoch).
pub fn user_from_secret(secret: &Value, id: &str, token_secret: &str, now: i64) -> Option<User> {
    if secret["type"].as_str() != Some(SECRET_TYPE)
        || !secret["metadata"]["deletionTimestamp"].is_null()
    {
        return None;
    }
    if data(secret, "token-id").as_deref() != Some(id) {
        return None;
    }
    if !same_secret(&data(secret, "token-secret")?, token_secret) {
        return None;
    }
    if data(secret, "usage-bootstrap-authentication").as_deref() != Some("true") {
        return None;
    }
    if let Some(exp) = data(secret, "expiration") {
        let expired = exp
            .parse::<jiff::Timestamp>()
            .map(|t| t.as_second() <= now)
            // An expiration that cannot be read is taken as expired, as upstream.
            .unwrap_or(true);
        if expired {
            return None;
        }
    }
    let mut groups = vec![GROUP.to_string()];
    for g in data(secret, "auth-extra-groups")
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|g| !g.is_empty())
    {
        // Only bootstrappers' subgroups may be added (upstream rejects the token
        // otherwise).
        if !g.starts_with("system:bootstrappers:") {
            return None;
        }
        groups.push(g.to_string());
    }
    Some(User::authenticated(
        &format!("system:bootstrap:{id}"),
        &groups,
    ))
}

/// The user of a bootstrap token, or `None` when it is not one or not valid.
pub async fn authenticate(server: &Server, token: &str) -> Option<User> {
    let (id, token_secret) = pki::join::split_bootstrap_token(token)?;
    let store = server.registry.get("secrets")?;
    let item = crate::admission::lister_get(store, &store.key(NAMESPACE, &secret_name(id)))
        .await
        .ok()??;
    user_from_secret(
        &item.extra.value(),
        id,
        token_secret,
        jiff::Timestamp::now().as_second(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(extra: &[(&str, &str)]) -> Value {
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let mut data = serde_json::Map::new();
        for (k, v) in [
            ("token-id", "abcdef"),
            ("token-secret", "0123456789abcdef"),
            ("usage-bootstrap-authentication", "true"),
        ]
        .iter()
        .chain(extra)
        {
            data.insert(k.to_string(), json!(b64(v)));
        }
        json!({"type": SECRET_TYPE, "metadata": {"name": "bootstrap-token-abcdef"}, "data": data})
    }

    #[test]
    fn valid_tokens_name_a_bootstrapper() {
        let s = secret(&[("auth-extra-groups", "system:bootstrappers:nodes")]);
        let u = user_from_secret(&s, "abcdef", "0123456789abcdef", 0).unwrap();
        assert_eq!(u.name, "system:bootstrap:abcdef");
        assert_eq!(
            u.groups,
            vec![
                "system:bootstrappers",
                "system:bootstrappers:nodes",
                "system:authenticated"
            ]
        );
    }

    #[test]
    fn invalid_tokens_are_refused() {
        let ok = secret(&[]);
        assert!(user_from_secret(&ok, "abcdef", "0123456789abcdee", 0).is_none());
        assert!(user_from_secret(&ok, "abcdeg", "0123456789abcdef", 0).is_none());
        let mut wrong_type = ok.clone();
        wrong_type["type"] = json!("Opaque");
        assert!(user_from_secret(&wrong_type, "abcdef", "0123456789abcdef", 0).is_none());
        let mut deleting = ok.clone();
        deleting["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        assert!(user_from_secret(&deleting, "abcdef", "0123456789abcdef", 0).is_none());
        let not_for_auth = secret(&[("usage-bootstrap-authentication", "false")]);
        assert!(user_from_secret(&not_for_auth, "abcdef", "0123456789abcdef", 0).is_none());
        let bad_group = secret(&[("auth-extra-groups", "system:masters")]);
        assert!(user_from_secret(&bad_group, "abcdef", "0123456789abcdef", 0).is_none());
        let expiring = secret(&[("expiration", "2026-11-23T00:00:00Z")]);
        let t = "2026-11-23T00:00:00Z"
            .parse::<jiff::Timestamp>()
            .unwrap()
            .as_second();
        assert!(user_from_secret(&expiring, "abcdef", "0123456789abcdef", t - 1).is_some());
        assert!(user_from_secret(&expiring, "abcdef", "0123456789abcdef", t).is_none());
        let unreadable = secret(&[("expiration", "tomorrow")]);
        assert!(user_from_secret(&unreadable, "abcdef", "0123456789abcdef", 0).is_none());
    }

    #[test]
    fn the_join_secret_authenticates_its_token() {
        let token = pki::join::JoinToken::parse("abcdef.0123456789abcdef").unwrap();
        let mut s = secret_for(&token);
        // What the apiserver stores: stringData moved into data.
        let b64 = |v: &Value| {
            json!(base64::engine::general_purpose::STANDARD.encode(v.as_str().unwrap()))
        };
        let data: serde_json::Map<String, Value> = s["stringData"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), b64(v)))
            .collect();
        s["data"] = Value::Object(data);
        let u = user_from_secret(&s, "abcdef", "0123456789abcdef", 0).unwrap();
        assert!(u.groups.contains(&JOIN_GROUP.to_string()));
    }
}
