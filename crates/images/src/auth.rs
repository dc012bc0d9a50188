//! Registry credentials: reading `kubernetes.io/dockerconfigjson` (`{"auths": {...}}`)
//! and legacy `kubernetes.io/dockercfg` secret data, and choosing the credentials for an
//! image the way the kubelet's credential keyring does: config keys may carry a scheme,
//! a `/v1/` or `/v2/` suffix, a path prefix and `*`-globs in host labels, more specific
//! keys are tried first, and `index.docker.io` keys serve Docker Hub images.

use std::fmt;

use base64::Engine as _;
use serde_json::{Map, Value};

use crate::Error;

/// The keyring key of Docker Hub credentials written as `https://index.docker.io/v1/`.
const DEFAULT_REGISTRY_KEY: &str = "index.docker.io";

/// Credentials for one registry key of a docker config.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct RegistryAuth {
    /// The key as written in the config: `https://index.docker.io/v1/`, `docker.io`,
    /// `registry.example:5000`, `quay.io/team`, `*.example.com`.
    pub registry: String,
    /// User name (from `username`, or the `auth` field when present).
    pub username: String,
    /// Password or access token (from `password`, or the `auth` field when present).
    pub password: String,
}

impl fmt::Debug for RegistryAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegistryAuth")
            .field("registry", &self.registry)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

fn invalid(reason: impl Into<String>) -> Error {
    Error::InvalidDockerConfig {
        reason: reason.into(),
    }
}

/// Reads the data of a `.dockerconfigjson` (`{"auths": {"<key>": {...}}}`) or legacy
/// `.dockercfg` (`{"<key>": {...}}`) secret. Each entry gives `username` and `password`,
/// or `auth` (base64 of `username:password`, padded or not), which takes precedence;
/// `email` and unknown fields are ignored. Entries whose key is not a usable URL are
/// skipped, as the kubelet does.
///
/// The result is in the order the kubelet's keyring tries credentials: more specific
/// keys (reverse lexical order of the normalised keys) first. Concatenating the results
/// of several pull secrets gives the order the kubelet uses for a pod's secrets.
pub fn auths_from_docker_config(json: &[u8]) -> Result<Vec<RegistryAuth>, Error> {
    let doc: Value =
        serde_json::from_slice(json).map_err(|e| invalid(format!("not valid JSON: {e}")))?;
    let Value::Object(top) = doc else {
        return Err(invalid("expected a JSON object"));
    };
    let entries: &Map<String, Value> = match top.get("auths") {
        Some(Value::Object(auths)) => auths,
        Some(Value::Null) => return Ok(Vec::new()),
        Some(_) => return Err(invalid("\"auths\" must be an object")),
        None => &top,
    };
    let mut out: Vec<(String, RegistryAuth)> = Vec::new();
    for (key, entry) in entries {
        let (username, password) = parse_entry(key, entry)?;
        let Some(k) = KeyUrl::from_config_key(key) else {
            tracing::warn!(key = %key, "ignoring docker config entry whose key is not a valid URL");
            continue;
        };
        out.push((
            k.key_string(),
            RegistryAuth {
                registry: key.clone(),
                username,
                password,
            },
        ));
    }
    // Stable: entries under the same normalised key keep their order.
    out.sort_by(|a, b| b.0.cmp(&a.0));
    Ok(out.into_iter().map(|(_, a)| a).collect())
}

/// Username and password of one entry.
fn parse_entry(key: &str, entry: &Value) -> Result<(String, String), Error> {
    let obj = match entry {
        Value::Object(o) => o,
        Value::Null => return Ok((String::new(), String::new())),
        _ => return Err(invalid(format!("entry {key:?} must be an object"))),
    };
    // Go's encoding/json matches field names case-insensitively.
    let field = |name: &str| -> Result<String, Error> {
        match obj.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)) {
            None | Some((_, Value::Null)) => Ok(String::new()),
            Some((_, Value::String(s))) => Ok(s.clone()),
            Some(_) => Err(invalid(format!("entry {key:?}: {name} must be a string"))),
        }
    };
    let username = field("username")?;
    let password = field("password")?;
    field("email")?;
    let auth = field("auth")?;
    if auth.is_empty() {
        return Ok((username, password));
    }
    decode_auth_field(&auth).map_err(|reason| invalid(format!("entry {key:?}: {reason}")))
}

/// Decodes `base64(username:password)`; padding is optional.
fn decode_auth_field(field: &str) -> Result<(String, String), String> {
    let engine = if field.trim().ends_with('=') {
        &base64::engine::general_purpose::STANDARD
    } else {
        &base64::engine::general_purpose::STANDARD_NO_PAD
    };
    let decoded = engine
        .decode(field)
        .map_err(|e| format!("illegal base64 data in auth field: {e}"))?;
    let text = String::from_utf8_lossy(&decoded);
    match text.split_once(':') {
        Some((u, p)) => Ok((u.to_string(), p.to_string())),
        None => Err(
            "unable to parse auth field, must be formatted as base64(username:password)"
                .to_string(),
        ),
    }
}

/// A keyring key or an image name split as Go's url.Parse splits `https://<it>`.
#[derive(Clone, Debug, PartialEq, Eq)]
struct KeyUrl {
    host: String,
    path: String,
}

impl KeyUrl {
    /// Parses a config key as the keyring does when adding credentials: a missing scheme
    /// means https, and a leading `/v1/` or `/v2/` path means the host itself.
    fn from_config_key(key: &str) -> Option<KeyUrl> {
        let with_scheme = if key.starts_with("https://") || key.starts_with("http://") {
            key.to_string()
        } else {
            format!("https://{key}")
        };
        let mut u = parse_url(&with_scheme)?;
        if u.path.starts_with("/v2/") || u.path.starts_with("/v1/") {
            u.path = u.path[3..].to_string();
        }
        if u.path == "/" {
            u.path.clear();
        }
        Some(u)
    }

    /// The normalised key: host plus the effective path.
    fn key_string(&self) -> String {
        format!("{}{}", self.host, self.path)
    }

    /// An image repository name such as `docker.io/library/busybox`.
    fn from_image(name: &str) -> Option<KeyUrl> {
        parse_url(&format!("https://{name}"))
    }

    /// Whether credentials under this (possibly globbed) key apply to `target`: same
    /// port, same number of host labels each matching its glob, and the key's path a
    /// prefix of the target's.
    fn matches(&self, target: &KeyUrl) -> bool {
        let (glob_labels, glob_port) = split_host(&self.host);
        let (target_labels, target_port) = split_host(&target.host);
        glob_port == target_port
            && glob_labels.len() == target_labels.len()
            && target.path.starts_with(&self.path)
            && glob_labels
                .iter()
                .zip(&target_labels)
                .all(|(g, t)| glob_match(g, t).unwrap_or(false))
    }
}

/// Splits `scheme://[userinfo@]host[/path][?query][#fragment]` into host and path.
fn parse_url(s: &str) -> Option<KeyUrl> {
    let (_, rest) = s.split_once("://")?;
    let rest = rest.split(['?', '#']).next().unwrap_or("");
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if host.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return None;
    }
    // A port, when present, is all digits.
    let port = if let Some(stripped) = host.strip_prefix('[') {
        let (_, after) = stripped.split_once(']')?;
        after.strip_prefix(':')
    } else {
        host.rsplit_once(':').map(|(_, p)| p)
    };
    if port.is_some_and(|p| !p.bytes().all(|b| b.is_ascii_digit())) {
        return None;
    }
    Some(KeyUrl {
        host: host.to_string(),
        path: path.to_string(),
    })
}

/// Host labels and port (empty when none) of `host[:port]`.
fn split_host(host: &str) -> (Vec<&str>, &str) {
    let (h, port) = if let Some(stripped) = host.strip_prefix('[') {
        match stripped.split_once("]:") {
            Some((h, p)) => (h, p),
            None => (host, ""),
        }
    } else {
        match host.split_once(':') {
            Some((h, p)) if !p.contains(':') => (h, p),
            _ => (host, ""),
        }
    };
    (h.split('.').collect(), port)
}

/// Shell-style matching of one host label (`*`, `?`, `[a-z]`, `[^x]`, `\` escapes);
/// `None` for a malformed pattern.
fn glob_match(pattern: &str, text: &str) -> Option<bool> {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    glob_at(&p, &t)
}

fn glob_at(p: &[char], t: &[char]) -> Option<bool> {
    let Some((&first, rest)) = p.split_first() else {
        return Some(t.is_empty());
    };
    match first {
        '*' => {
            for skip in 0..=t.len() {
                if glob_at(rest, &t[skip..])? {
                    return Some(true);
                }
            }
            Some(false)
        }
        '?' => match t.split_first() {
            Some((_, t_rest)) => glob_at(rest, t_rest),
            None => {
                // Still validate the rest of the pattern.
                glob_at(rest, &[]).map(|_| false)
            }
        },
        '[' => {
            let (matched, after) = class_match(rest, t.first().copied())?;
            match (matched, t.split_first()) {
                (true, Some((_, t_rest))) => glob_at(after, t_rest),
                _ => Some(false),
            }
        }
        '\\' => {
            let (&lit, after) = rest.split_first()?;
            match t.split_first() {
                Some((&c, t_rest)) if c == lit => glob_at(after, t_rest),
                _ => Some(false),
            }
        }
        lit => match t.split_first() {
            Some((&c, t_rest)) if c == lit => glob_at(rest, t_rest),
            _ => Some(false),
        },
    }
}

/// Matches a character class body (after `[`) against `c`; returns whether it matched
/// and the pattern after the closing `]`.
fn class_match(p: &[char], c: Option<char>) -> Option<(bool, &[char])> {
    let mut i = 0;
    let negated = p.first() == Some(&'^');
    if negated {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    loop {
        let &ch = p.get(i)?;
        if ch == ']' && !first {
            i += 1;
            break;
        }
        first = false;
        let lo = if ch == '\\' {
            i += 1;
            *p.get(i)?
        } else {
            ch
        };
        i += 1;
        let hi = if p.get(i) == Some(&'-') && p.get(i + 1).is_some_and(|&n| n != ']') {
            i += 1;
            let h = if p[i] == '\\' {
                i += 1;
                *p.get(i)?
            } else {
                p[i]
            };
            i += 1;
            h
        } else {
            lo
        };
        if lo > hi {
            return None;
        }
        if c.is_some_and(|c| lo <= c && c <= hi) {
            matched = true;
        }
    }
    Some((matched != negated && c.is_some(), &p[i..]))
}

/// Whether an image name pulls from Docker Hub judging by its first component.
fn is_default_registry_match(image: &str) -> bool {
    let first = image.split('/').next().unwrap_or("");
    if first.is_empty() {
        return false;
    }
    if !image.contains('/') || first == "docker.io" || first == "index.docker.io" {
        return true;
    }
    !first.contains(['.', ':']) && first != "localhost"
}

/// The credentials among `auths` that apply to the repository `image`
/// (`docker.io/library/busybox`, `registry.example:5000/team/app`), in the order given;
/// when none matches, Docker Hub images fall back to `index.docker.io` credentials.
pub(crate) fn credentials_for<'a>(auths: &'a [RegistryAuth], image: &str) -> Vec<&'a RegistryAuth> {
    let Some(target) = KeyUrl::from_image(image) else {
        return Vec::new();
    };
    let keyed: Vec<(&RegistryAuth, KeyUrl)> = auths
        .iter()
        .filter_map(|a| KeyUrl::from_config_key(&a.registry).map(|k| (a, k)))
        .collect();
    let matched: Vec<&RegistryAuth> = keyed
        .iter()
        .filter(|(_, k)| k.matches(&target))
        .map(|(a, _)| *a)
        .collect();
    if !matched.is_empty() || !is_default_registry_match(image) {
        return matched;
    }
    keyed
        .iter()
        .filter(|(_, k)| k.key_string() == DEFAULT_REGISTRY_KEY)
        .map(|(a, _)| *a)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    fn auth(registry: &str, user: &str) -> RegistryAuth {
        RegistryAuth {
            registry: registry.into(),
            username: user.into(),
            password: "pw".into(),
        }
    }

    fn users(auths: &[RegistryAuth], image: &str) -> Vec<String> {
        credentials_for(auths, image)
            .into_iter()
            .map(|a| a.username.clone())
            .collect()
    }

    #[test]
    fn dockerconfigjson_and_legacy() {
        let json = format!(
            r#"{{"auths":{{"https://index.docker.io/v1/":{{"username":"hub","password":"p1","email":"a@b"}},
            "registry.example:5000":{{"auth":"{}"}},
            "quay.io/team":{{"Username":"q","Password":"p3"}}}},"credsStore":"desktop"}}"#,
            b64("reg:p:w")
        );
        let auths = auths_from_docker_config(json.as_bytes()).unwrap();
        assert_eq!(
            auths,
            vec![
                RegistryAuth {
                    registry: "registry.example:5000".into(),
                    username: "reg".into(),
                    password: "p:w".into()
                },
                RegistryAuth {
                    registry: "quay.io/team".into(),
                    username: "q".into(),
                    password: "p3".into()
                },
                RegistryAuth {
                    registry: "https://index.docker.io/v1/".into(),
                    username: "hub".into(),
                    password: "p1".into()
                },
            ]
        );
        let legacy = format!(
            r#"{{"docker.io":{{"auth":"{}"}}}}"#,
            b64("u:v").trim_end_matches('=')
        );
        assert_eq!(
            auths_from_docker_config(legacy.as_bytes()).unwrap(),
            vec![RegistryAuth {
                registry: "docker.io".into(),
                username: "u".into(),
                password: "v".into()
            }]
        );
        assert!(auths_from_docker_config(br#"{"auths":null}"#)
            .unwrap()
            .is_empty());
        let dbg = format!("{:?}", auths[0]);
        assert!(!dbg.contains("p:w"), "{dbg}");
    }

    #[test]
    fn bad_configs() {
        let e = auths_from_docker_config(
            format!(r#"{{"auths":{{"x.io":{{"auth":"{}"}}}}}}"#, b64("nocolon")).as_bytes(),
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid docker config: entry \"x.io\": unable to parse auth field, must be formatted as base64(username:password)"
        );
        assert!(auths_from_docker_config(b"[]").is_err());
        assert!(auths_from_docker_config(b"{").is_err());
        assert!(auths_from_docker_config(br#"{"auths":{"x":{"username":1}}}"#).is_err());
        assert!(auths_from_docker_config(br#"{"auths":{"x":{"auth":"!!"}}}"#).is_err());
    }

    #[test]
    fn keys_normalise_like_the_keyring() {
        let k = |s: &str| KeyUrl::from_config_key(s).unwrap().key_string();
        assert_eq!(k("https://index.docker.io/v1/"), "index.docker.io");
        assert_eq!(
            k("http://registry.example:5000/v2/"),
            "registry.example:5000"
        );
        assert_eq!(k("quay.io/team"), "quay.io/team");
        assert_eq!(k("https://quay.io/v2/team"), "quay.io/team");
        assert_eq!(k("docker.io"), "docker.io");
        assert!(KeyUrl::from_config_key("host:abc").is_none());
    }

    #[test]
    fn docker_hub_credentials() {
        let auths = vec![auth("https://index.docker.io/v1/", "hub")];
        assert_eq!(users(&auths, "docker.io/library/busybox"), vec!["hub"]);
        assert_eq!(users(&auths, "docker.io/me/app"), vec!["hub"]);
        assert!(users(&auths, "quay.io/me/app").is_empty());
        assert!(users(&auths, "localhost/app").is_empty());
        // A docker.io key matches directly, and then index.docker.io ones are not used.
        let auths = vec![auth("docker.io", "d"), auth("index.docker.io", "i")];
        assert_eq!(users(&auths, "docker.io/library/busybox"), vec!["d"]);
    }

    #[test]
    fn hosts_ports_paths_and_globs() {
        let auths = vec![
            auth("registry.example:5000", "port"),
            auth("quay.io/team", "team"),
            auth("quay.io", "quay"),
            auth("*.gcr.io", "glob"),
            auth("127.0.0.1:5000", "ip"),
        ];
        assert_eq!(users(&auths, "registry.example:5000/x/y"), vec!["port"]);
        assert!(users(&auths, "registry.example/x/y").is_empty());
        assert_eq!(users(&auths, "quay.io/team/app"), vec!["team", "quay"]);
        assert_eq!(users(&auths, "quay.io/other/app"), vec!["quay"]);
        assert_eq!(users(&auths, "eu.gcr.io/p/app"), vec!["glob"]);
        assert!(users(&auths, "gcr.io/p/app").is_empty());
        assert!(users(&auths, "a.b.gcr.io/p/app").is_empty());
        assert_eq!(users(&auths, "127.0.0.1:5000/busybox"), vec!["ip"]);
    }

    #[test]
    fn globs() {
        assert_eq!(glob_match("*", "abc"), Some(true));
        assert_eq!(glob_match("a?c", "abc"), Some(true));
        assert_eq!(glob_match("[a-c]x", "bx"), Some(true));
        assert_eq!(glob_match("[^a-c]x", "bx"), Some(false));
        assert_eq!(glob_match("[^a-c]x", "dx"), Some(true));
        assert_eq!(glob_match("ab", "abc"), Some(false));
        assert_eq!(glob_match("[a-", "a"), None);
    }
}
