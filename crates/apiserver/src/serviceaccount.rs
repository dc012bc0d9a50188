//! Service account tokens, as upstream's bound tokens:
//!
//! - [`TokenAuthority`] signs JWTs (`pki/sa.key`: ES256, ES384 or ES512 by the ECDSA
//!   key's curve, or RS256 with an RSA key) with the claims upstream issues (`iss`,
//!   `sub`, `aud`, `exp`, `iat`, `nbf`, `jti` and the `kubernetes.io` claim naming
//!   the namespace, service account and bound pod, secret or node), and authenticates
//!   bearer tokens: signature, issuer, times (one minute of leeway), audiences, and
//!   the service account and bound objects still existing with the same UID.
//! - [`token_request`]: `POST serviceaccounts/<name>/token` (TokenRequest,
//!   `authentication.k8s.io/v1`), with upstream's defaults (API audiences, 3600 s),
//!   validation (10 minutes to 2^32 seconds), bound object checks, and the extended
//!   lifetime of the 3607-second tokens the ServiceAccount admission plugin projects
//!   into pods (valid a year, `warnafter` at the requested expiry).
//! - The OpenID discovery documents (`/.well-known/openid-configuration`,
//!   `/openid/v1/jwks`) that let others verify the tokens.

use crate::auth::User;
use crate::error::{ApiError, ApiResult, Target};
use crate::handlers::{write, Ctx};
use crate::{object, Body, Server};
use apimachinery::{FieldError, Path};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use bytes::Bytes;
use http::{Response, StatusCode};
use serde::Serialize;
use serde_json::{json, Value};

/// The issuer kubeadm and k3s configure (`--service-account-issuer`).
pub const DEFAULT_ISSUER: &str = "https://kubernetes.default.svc.cluster.local";
/// Lifetime of a TokenRequest that does not ask for one.
pub const DEFAULT_EXPIRATION_SECONDS: i64 = 3600;
/// Shortest lifetime a TokenRequest may ask for (10 minutes).
pub const MIN_EXPIRATION_SECONDS: i64 = 600;
/// Longest lifetime a TokenRequest may ask for (2^32 seconds).
pub const MAX_EXPIRATION_SECONDS: i64 = 1 << 32;
/// The lifetime admission gives projected tokens; such pod-bound tokens are extended.
pub const WARN_ONLY_BOUND_TOKEN_EXPIRATION_SECONDS: i64 = 3607;
/// How long an extended projected token stays valid (a year).
pub const EXPIRATION_EXTENSION_SECONDS: i64 = 365 * 24 * 60 * 60;
/// Clock skew tolerated on `exp`, `nbf`, `iat` and deletion times.
const LEEWAY_SECONDS: i64 = 60;

/// `extra` key of the bound pod's name.
pub const EXTRA_POD_NAME: &str = "authentication.kubernetes.io/pod-name";
/// `extra` key of the bound pod's UID.
pub const EXTRA_POD_UID: &str = "authentication.kubernetes.io/pod-uid";
/// `extra` key of the bound (or pod's) node name.
pub const EXTRA_NODE_NAME: &str = "authentication.kubernetes.io/node-name";
/// `extra` key of the bound (or pod's) node UID.
pub const EXTRA_NODE_UID: &str = "authentication.kubernetes.io/node-uid";
/// `extra` key of the token's ID (`JTI=<jti>`).
pub const EXTRA_CREDENTIAL_ID: &str = "authentication.kubernetes.io/credential-id";

/// Why a service account token was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The token is not a well-formed signed JWT.
    #[error("malformed service account token: {0}")]
    Malformed(&'static str),
    /// The signature does not verify with the signing key.
    #[error("invalid service account token signature")]
    Signature,
    /// Past `exp`.
    #[error("service account token has expired")]
    Expired,
    /// Before `nbf`.
    #[error("service account token is not valid yet")]
    NotValidYet,
    /// `iat` is in the future.
    #[error("service account token is issued in the future")]
    IssuedInFuture,
    /// No audience of the token is one the request accepts.
    #[error("token audiences {token} is invalid for the target audiences {wanted}")]
    Audience {
        /// The token's audiences, as Go prints a string list.
        token: String,
        /// The accepted audiences, likewise.
        wanted: String,
    },
    /// The service account or a bound object is gone or was replaced.
    #[error("{0}")]
    Invalidated(String),
    /// Reading an object failed.
    #[error("{0}")]
    Lookup(String),
}

/// A successfully authenticated service account token.
#[derive(Clone, Debug)]
pub struct Authenticated {
    /// Who the token names.
    pub user: User,
    /// The audiences the token was accepted for.
    pub audiences: Vec<String>,
}

/// Signs and checks service account tokens for one issuer.
pub struct TokenAuthority {
    key: pki::sa::ServiceAccountKey,
    issuer: String,
    api_audiences: Vec<String>,
    jwks_uri: String,
    max_expiration_seconds: Option<i64>,
    extend_expiration: bool,
}

/// `/.well-known/openid-configuration`, fields in upstream's order.
#[derive(Serialize)]
struct OpenIdConfiguration<'a> {
    issuer: &'a str,
    jwks_uri: &'a str,
    response_types_supported: [&'static str; 1],
    subject_types_supported: [&'static str; 1],
    id_token_signing_alg_values_supported: [&'static str; 1],
}

/// One JSON Web Key, fields in go-jose's order.
#[derive(Serialize)]
struct Jwk<'a> {
    #[serde(rename = "use")]
    use_: &'static str,
    kty: &'static str,
    kid: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    crv: Option<&'static str>,
    alg: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    x: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    y: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    n: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    e: Option<String>,
}

#[derive(Serialize)]
struct Jwks<'a> {
    keys: Vec<Jwk<'a>>,
}

/// Go's `%q` of a string list: `["a" "b"]`.
fn go_quoted_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("{s:?}")).collect();
    format!("[{}]", quoted.join(" "))
}

/// The seconds since the epoch now.
fn unix_now() -> i64 {
    jiff::Timestamp::now().as_second()
}

/// A NumericDate claim (seconds, possibly fractional in foreign tokens).
fn numeric_date(v: &Value) -> Option<i64> {
    v.as_i64().or_else(|| v.as_f64().map(|f| f as i64))
}

/// The `aud` claim, which JWTs may give as one string or a list.
fn audiences_of(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a
            .iter()
            .filter_map(|s| s.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    }
}

/// The object stored under `storage` as an informer's lister sees it (a consistent
/// read when the cache does not have it yet).
async fn lookup(server: &Server, storage: &str, ns: &str, name: &str) -> ApiResult<Option<Value>> {
    let Some(store) = server.registry.get(storage) else {
        return Ok(None);
    };
    Ok(crate::admission::lister_get(store, &store.key(ns, name))
        .await?
        .map(|item| item.extra.value()))
}

/// Whether the object was marked for deletion before `before` (seconds).
fn deleted_before(obj: &Value, before: i64) -> bool {
    obj["metadata"]["deletionTimestamp"]
        .as_str()
        .and_then(object::parse_time)
        .is_some_and(|t| t.as_second() < before)
}

fn uid_of(obj: &Value) -> &str {
    obj["metadata"]["uid"].as_str().unwrap_or("")
}

fn name_uid(obj: &Value) -> (&str, &str) {
    (obj["metadata"]["name"].as_str().unwrap_or(""), uid_of(obj))
}

/// A `{name, uid}` reference claim (empty fields left out).
fn reference(name: &str, uid: &str) -> Value {
    let mut r = json!({});
    if !name.is_empty() {
        r["name"] = json!(name);
    }
    if !uid.is_empty() {
        r["uid"] = json!(uid);
    }
    r
}

/// What a token is bound to, for its claims.
#[derive(Default)]
pub struct Binding<'a> {
    /// The pod (name, uid).
    pub pod: Option<(&'a str, &'a str)>,
    /// The secret (name, uid).
    pub secret: Option<(&'a str, &'a str)>,
    /// The node (name, uid; the uid may be empty when a pod's node is unknown).
    pub node: Option<(&'a str, &'a str)>,
}

impl TokenAuthority {
    /// An authority signing with `key` for `issuer`, accepting `api_audiences` (the
    /// issuer when empty, as upstream's `--api-audiences` default) and naming
    /// `jwks_uri` in its discovery document.
    pub fn new(
        key: pki::sa::ServiceAccountKey,
        issuer: &str,
        api_audiences: &[String],
        jwks_uri: String,
    ) -> TokenAuthority {
        let api_audiences = if api_audiences.is_empty() {
            vec![issuer.to_string()]
        } else {
            api_audiences.to_vec()
        };
        TokenAuthority {
            key,
            issuer: issuer.to_string(),
            api_audiences,
            jwks_uri,
            max_expiration_seconds: None,
            extend_expiration: true,
        }
    }

    /// Caps requested lifetimes (`--service-account-max-token-expiration`) and turns
    /// the extension of projected tokens on or off
    /// (`--service-account-extend-token-expiration`).
    pub fn with_expiration_policy(mut self, max_seconds: Option<i64>, extend: bool) -> Self {
        self.max_expiration_seconds = max_seconds.filter(|s| *s > 0);
        self.extend_expiration = extend;
        self
    }

    /// The issuer (`iss`).
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The audiences the API accepts (and TokenRequests default to).
    pub fn api_audiences(&self) -> &[String] {
        &self.api_audiences
    }

    /// The signing key.
    pub fn key(&self) -> &pki::sa::ServiceAccountKey {
        &self.key
    }

    /// Signs `claims` as a compact JWS (the key's algorithm, this key's `kid`).
    pub fn sign(&self, claims: &Value) -> ApiResult<String> {
        let header = json!({"alg": self.key.algorithm(), "kid": self.key.key_id()});
        let mut token =
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).map_err(ApiError::internal)?);
        token.push('.');
        token.push_str(
            &URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).map_err(ApiError::internal)?),
        );
        let sig = self
            .key
            .sign(token.as_bytes())
            .map_err(|e| ApiError::internal(format!("failed to generate token: {e}")))?;
        token.push('.');
        token.push_str(&URL_SAFE_NO_PAD.encode(sig));
        Ok(token)
    }

    /// The claims of a token for the service account `sa` (JSON), valid from `now`
    /// for `expiration_seconds`, with `warnafter` set when `warn_after_seconds` > 0.
    pub fn claims(
        &self,
        sa: &Value,
        binding: &Binding<'_>,
        audiences: &[String],
        now: i64,
        expiration_seconds: i64,
        warn_after_seconds: i64,
    ) -> Value {
        let ns = sa["metadata"]["namespace"].as_str().unwrap_or("");
        let name = sa["metadata"]["name"].as_str().unwrap_or("");
        let mut k8s = json!({
            "namespace": ns,
            "serviceaccount": reference(name, uid_of(sa)),
        });
        if let Some((n, u)) = binding.pod {
            k8s["pod"] = reference(n, u);
        }
        if let Some((n, u)) = binding.secret {
            k8s["secret"] = reference(n, u);
        }
        if let Some((n, u)) = binding.node {
            k8s["node"] = reference(n, u);
        }
        if warn_after_seconds > 0 {
            k8s["warnafter"] = json!(now + warn_after_seconds);
        }
        json!({
            "aud": audiences,
            "exp": now + expiration_seconds,
            "iat": now,
            "iss": self.issuer,
            "jti": object::new_uid(),
            "kubernetes.io": k8s,
            "nbf": now,
            "sub": format!("system:serviceaccount:{ns}:{name}"),
        })
    }

    /// The claims of `token` if this authority signed it. `Ok(None)` when the token is
    /// not one of ours (not a JWT, or another issuer's); an error when it claims to be
    /// but does not verify.
    pub fn verify(&self, token: &str) -> Result<Option<Value>, TokenError> {
        let mut parts = token.split('.');
        let (Some(header_b64), Some(payload_b64), Some(sig_b64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Ok(None);
        };
        let Some(claims) = URL_SAFE_NO_PAD
            .decode(payload_b64)
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        else {
            return Ok(None);
        };
        if claims["iss"].as_str() != Some(self.issuer.as_str()) {
            return Ok(None);
        }
        let header: Value = URL_SAFE_NO_PAD
            .decode(header_b64)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or(TokenError::Malformed("header"))?;
        if header["alg"] != self.key.algorithm() {
            return Err(TokenError::Malformed("unexpected signature algorithm"));
        }
        let sig = URL_SAFE_NO_PAD
            .decode(sig_b64)
            .map_err(|_| TokenError::Malformed("signature"))?;
        let signed = &token[..header_b64.len() + 1 + payload_b64.len()];
        if !self.key.verify(signed.as_bytes(), &sig) {
            return Err(TokenError::Signature);
        }
        Ok(Some(claims))
    }

    /// Authenticates a bearer token for `wanted` audiences. `Ok(None)` when the token
    /// is not a service account token of this issuer.
    pub async fn authenticate(
        &self,
        server: &Server,
        token: &str,
        wanted: &[String],
    ) -> Result<Option<Authenticated>, TokenError> {
        let Some(claims) = self.verify(token)? else {
            return Ok(None);
        };
        let now = unix_now();
        if let Some(exp) = numeric_date(&claims["exp"]) {
            if now - LEEWAY_SECONDS > exp {
                return Err(TokenError::Expired);
            }
        }
        if let Some(nbf) = numeric_date(&claims["nbf"]) {
            if now + LEEWAY_SECONDS < nbf {
                return Err(TokenError::NotValidYet);
            }
        }
        if let Some(iat) = numeric_date(&claims["iat"]) {
            if now + LEEWAY_SECONDS < iat {
                return Err(TokenError::IssuedInFuture);
            }
        }
        let token_audiences = audiences_of(&claims["aud"]);
        let audiences: Vec<String> = token_audiences
            .iter()
            .filter(|a| wanted.contains(a))
            .cloned()
            .collect();
        if audiences.is_empty() {
            return Err(TokenError::Audience {
                token: go_quoted_list(&token_audiences),
                wanted: go_quoted_list(wanted),
            });
        }
        let user = self.validate_bindings(server, &claims, now).await?;
        Ok(Some(Authenticated { user, audiences }))
    }

    /// Checks that the service account and the objects the token is bound to still
    /// exist as they were, and builds the user.
    async fn validate_bindings(
        &self,
        server: &Server,
        claims: &Value,
        now: i64,
    ) -> Result<User, TokenError> {
        let k = &claims["kubernetes.io"];
        let str_of = |v: &Value| v.as_str().unwrap_or("").to_string();
        let ns = str_of(&k["namespace"]);
        let sa_name = str_of(&k["serviceaccount"]["name"]);
        let sa_uid = str_of(&k["serviceaccount"]["uid"]);
        let invalid_before = now - LEEWAY_SECONDS;
        let get = |storage: &'static str, ns: String, name: String| async move {
            lookup(server, storage, &ns, &name)
                .await
                .map_err(|e| TokenError::Lookup(e.message))
        };
        let invalidated =
            || TokenError::Invalidated("service account token has been invalidated".into());
        let sa = get("serviceaccounts", ns.clone(), sa_name.clone())
            .await?
            .ok_or_else(|| {
                TokenError::Invalidated(format!("serviceaccounts \"{sa_name}\" not found"))
            })?;
        if uid_of(&sa) != sa_uid {
            return Err(TokenError::Invalidated(format!(
                "service account UID ({}) does not match claim ({sa_uid})",
                uid_of(&sa)
            )));
        }
        if deleted_before(&sa, invalid_before) {
            return Err(TokenError::Invalidated(format!(
                "service account {ns}/{sa_name} has been deleted"
            )));
        }
        let mut extra = std::collections::BTreeMap::new();
        if k["secret"].is_object() {
            let name = str_of(&k["secret"]["name"]);
            let uid = str_of(&k["secret"]["uid"]);
            let secret = get("secrets", ns.clone(), name)
                .await?
                .ok_or_else(invalidated)?;
            if uid_of(&secret) != uid {
                return Err(TokenError::Invalidated(format!(
                    "secret UID ({}) does not match service account secret ref claim ({uid})",
                    uid_of(&secret)
                )));
            }
            if deleted_before(&secret, invalid_before) {
                return Err(invalidated());
            }
        }
        let bound_to_pod = k["pod"].is_object();
        if bound_to_pod {
            let name = str_of(&k["pod"]["name"]);
            let uid = str_of(&k["pod"]["uid"]);
            let pod = get("pods", ns.clone(), name.clone())
                .await?
                .ok_or_else(invalidated)?;
            if uid_of(&pod) != uid {
                return Err(TokenError::Invalidated(format!(
                    "pod UID ({}) does not match service account pod ref claim ({uid})",
                    uid_of(&pod)
                )));
            }
            if deleted_before(&pod, invalid_before) {
                return Err(invalidated());
            }
            if !name.is_empty() && !uid.is_empty() {
                extra.insert(EXTRA_POD_NAME.to_string(), vec![name]);
                extra.insert(EXTRA_POD_UID.to_string(), vec![uid]);
            }
        }
        if k["node"].is_object() {
            let name = str_of(&k["node"]["name"]);
            let uid = str_of(&k["node"]["uid"]);
            if !bound_to_pod {
                let node = get("nodes", String::new(), name.clone())
                    .await?
                    .ok_or_else(invalidated)?;
                if uid_of(&node) != uid {
                    return Err(TokenError::Invalidated(format!(
                        "node UID ({}) does not match service account node ref claim ({uid})",
                        uid_of(&node)
                    )));
                }
                if deleted_before(&node, invalid_before) {
                    return Err(invalidated());
                }
            }
            if !name.is_empty() {
                extra.insert(EXTRA_NODE_NAME.to_string(), vec![name]);
                if !uid.is_empty() {
                    extra.insert(EXTRA_NODE_UID.to_string(), vec![uid]);
                }
            }
        }
        if let Some(jti) = claims["jti"].as_str().filter(|j| !j.is_empty()) {
            extra.insert(EXTRA_CREDENTIAL_ID.to_string(), vec![format!("JTI={jti}")]);
        }
        let mut user = User::authenticated(
            &format!("system:serviceaccount:{ns}:{sa_name}"),
            &[
                "system:serviceaccounts".to_string(),
                format!("system:serviceaccounts:{ns}"),
            ],
        );
        user.uid = sa_uid;
        user.extra = extra;
        Ok(user)
    }

    /// The OpenID provider configuration document.
    pub fn openid_configuration(&self) -> Vec<u8> {
        serde_json::to_vec(&OpenIdConfiguration {
            issuer: &self.issuer,
            jwks_uri: &self.jwks_uri,
            response_types_supported: ["id_token"],
            subject_types_supported: ["public"],
            id_token_signing_alg_values_supported: [self.key.algorithm()],
        })
        .unwrap_or_default()
    }

    /// The JSON Web Key Set of the signing key.
    pub fn jwks(&self) -> Vec<u8> {
        let b64 = |v: Vec<u8>| Some(URL_SAFE_NO_PAD.encode(v));
        let mut jwk = Jwk {
            use_: "sig",
            kty: "RSA",
            kid: self.key.key_id(),
            crv: None,
            alg: self.key.algorithm(),
            x: None,
            y: None,
            n: None,
            e: None,
        };
        match self.key.public_jwk() {
            Ok(pki::sa::PublicJwk::Rsa { n, e }) => {
                (jwk.n, jwk.e) = (b64(n), b64(e));
            }
            Ok(pki::sa::PublicJwk::Ec { crv, x, y }) => {
                (jwk.kty, jwk.crv) = ("EC", Some(crv));
                (jwk.x, jwk.y) = (b64(x), b64(y));
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot publish the service account key");
                return serde_json::to_vec(&Jwks { keys: vec![] }).unwrap_or_default();
            }
        }
        serde_json::to_vec(&Jwks { keys: vec![jwk] }).unwrap_or_default()
    }
}

/// The 422 of a TokenRequest.
fn invalid(name: &str, errs: &[FieldError]) -> ApiError {
    ApiError::invalid("TokenRequest", "authentication.k8s.io", name, errs)
}

/// `serviceaccounts/<name>/token`: issues a token for the service account.
pub async fn token_request(ctx: &Ctx<'_>, body: Bytes) -> ApiResult<Response<Body>> {
    let authority = &ctx.server.sa_tokens;
    let mut req = write::decode_body(ctx, &body)?;
    write::check_type_meta(ctx, &mut req, "TokenRequest", "authentication.k8s.io/v1")?;
    let ns = ctx.req.namespace.as_str();
    let name = ctx.req.name.as_str();
    let given = |k: &str| req["metadata"][k].as_str().unwrap_or("").to_string();
    let (given_name, given_ns) = (given("name"), given("namespace"));
    if !given_name.is_empty() && given_name != name {
        return Err(invalid(
            name,
            &[FieldError::invalid(
                &Path::new("metadata").child("name"),
                json!(given_name),
                "must match the service account name if specified",
            )],
        ));
    }
    if !given_ns.is_empty() && given_ns != ns {
        return Err(invalid(
            name,
            &[FieldError::invalid(
                &Path::new("metadata").child("namespace"),
                json!(given_ns),
                "must match the service account namespace if specified",
            )],
        ));
    }
    let sa_store = ctx.store()?;
    let sa = sa_store
        .cache
        .get_cached(&sa_store.key(ns, name))
        .await
        .map_err(|e| ApiError::from_store(e, &ctx.target()))?
        .ok_or_else(|| ApiError::not_found(&ctx.target()))?
        .extra
        .value();

    if !req["spec"].is_object() {
        req["spec"] = json!({});
    }
    let mut audiences: Vec<String> = req["spec"]["audiences"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    if audiences.is_empty() {
        audiences = authority.api_audiences().to_vec();
    }
    req["spec"]["audiences"] = json!(audiences);
    let mut expiration = match &req["spec"]["expirationSeconds"] {
        Value::Null => DEFAULT_EXPIRATION_SECONDS,
        v => v.as_i64().ok_or_else(|| {
            ApiError::bad_request(format!(
                "json: cannot unmarshal {v} into Go struct field TokenRequestSpec.spec.expirationSeconds of type int64"
            ))
        })?,
    };
    let now_ts = jiff::Timestamp::now();
    let now = now_ts.as_second();
    {
        let meta = object::meta_mut(&mut req);
        meta.insert("name".into(), json!(name));
        meta.insert("namespace".into(), json!(ns));
        meta.insert(
            "creationTimestamp".into(),
            json!(object::format_time(now_ts)),
        );
    }
    if let Some(status) = req.as_object_mut() {
        status.remove("status");
    }
    let exp_path = Path::new("spec").child("expirationSeconds");
    let mut errs = Vec::new();
    if expiration < MIN_EXPIRATION_SECONDS {
        errs.push(FieldError::invalid(
            &exp_path,
            json!(expiration),
            "may not specify a duration less than 10 minutes",
        ));
    }
    if expiration > MAX_EXPIRATION_SECONDS {
        errs.push(FieldError::invalid(
            &exp_path,
            json!(expiration),
            "may not specify a duration larger than 2^32 seconds",
        ));
    }
    if !errs.is_empty() {
        return Err(invalid("", &errs));
    }

    // The bound object must exist (with the given UID, if any).
    let bound = req["spec"]["boundObjectRef"].clone();
    let mut pod: Option<Value> = None;
    let mut secret: Option<Value> = None;
    let mut node: Option<(String, String)> = None;
    if bound.is_object() {
        let kind = bound["kind"].as_str().unwrap_or("");
        let api_version = bound["apiVersion"].as_str().unwrap_or("");
        let (group, version) = match api_version.split_once('/') {
            Some((g, v)) => (g, v),
            None => ("", api_version),
        };
        let ref_name = bound["name"].as_str().unwrap_or("");
        let ref_uid = bound["uid"].as_str().unwrap_or("");
        let not_found = |resource: &str| {
            ApiError::not_found(&Target {
                group: String::new(),
                resource: resource.into(),
                name: ref_name.to_string(),
            })
        };
        let get = |storage: &'static str, ns: &str| {
            let ns = ns.to_string();
            async move {
                let store = ctx
                    .server
                    .registry
                    .get(storage)
                    .ok_or_else(ApiError::path_not_found)?;
                Ok::<_, ApiError>(
                    store
                        .cache
                        .get_cached(&store.key(&ns, ref_name))
                        .await
                        .map_err(ApiError::internal)?
                        .map(|i| i.extra.value()),
                )
            }
        };
        let uid = match (group, kind) {
            ("", "Pod") => {
                let p = get("pods", ns).await?.ok_or_else(|| not_found("pods"))?;
                if p["spec"]["serviceAccountName"].as_str().unwrap_or("") != name {
                    return Err(ApiError::bad_request(format!(
                        "cannot bind token for serviceaccount {name:?} to pod running with different serviceaccount name."
                    )));
                }
                // A scheduled pod's node goes into the claims too (name only when
                // the Node object is missing).
                if let Some(node_name) = p["spec"]["nodeName"].as_str().filter(|n| !n.is_empty()) {
                    let node_uid = lookup(ctx.server, "nodes", "", node_name)
                        .await?
                        .map(|n| uid_of(&n).to_string())
                        .unwrap_or_default();
                    node = Some((node_name.to_string(), node_uid));
                }
                let uid = uid_of(&p).to_string();
                pod = Some(p);
                uid
            }
            ("", "Node") => {
                let n = get("nodes", "").await?.ok_or_else(|| not_found("nodes"))?;
                let uid = uid_of(&n).to_string();
                node = Some((ref_name.to_string(), uid.clone()));
                uid
            }
            ("", "Secret") => {
                let s = get("secrets", ns)
                    .await?
                    .ok_or_else(|| not_found("secrets"))?;
                let uid = uid_of(&s).to_string();
                secret = Some(s);
                uid
            }
            _ => {
                return Err(ApiError::bad_request(format!(
                    "cannot bind token to object of type {group}/{version}, Kind={kind}"
                )))
            }
        };
        if !ref_uid.is_empty() && ref_uid != uid {
            return Err(ApiError::conflict(
                &Target {
                    group: String::new(),
                    resource: kind.to_string(),
                    name: ref_name.to_string(),
                },
                &format!("the UID in the bound object reference ({ref_uid}) does not match the UID in record. The object might have been deleted and then recreated"),
            ));
        }
    }

    if let Some(max) = authority.max_expiration_seconds {
        if expiration > max {
            ctx.warn([format!(
                "requested expiration of {expiration} seconds shortened to {max} seconds"
            )]);
            expiration = max;
        }
    }
    req["spec"]["expirationSeconds"] = json!(expiration);
    // Projected tokens of pods stay valid for a year, warning after their nominal
    // lifetime, so workloads that do not reload tokens keep working.
    let mut exp = expiration;
    let mut warn_after = 0;
    if authority.extend_expiration
        && pod.is_some()
        && expiration == WARN_ONLY_BOUND_TOKEN_EXPIRATION_SECONDS
        && audiences
            .iter()
            .all(|a| authority.api_audiences().contains(a))
    {
        warn_after = expiration;
        exp = EXPIRATION_EXTENSION_SECONDS.max(authority.max_expiration_seconds.unwrap_or(0));
    }
    let binding = Binding {
        pod: pod.as_ref().map(name_uid),
        secret: secret.as_ref().map(name_uid),
        node: node.as_ref().map(|(n, u)| (n.as_str(), u.as_str())),
    };
    let claims = authority.claims(&sa, &binding, &audiences, now, exp, warn_after);
    let token = authority.sign(&claims)?;
    req["status"] = json!({
        "token": token,
        "expirationTimestamp": object::format_time(
            jiff::Timestamp::from_second(now + expiration).unwrap_or(now_ts)
        ),
    });
    ctx.value_response(StatusCode::CREATED, req)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn authority() -> (tempfile::TempDir, TokenAuthority) {
        let dir = tempfile::tempdir().unwrap();
        let key = pki::sa::ServiceAccountKey::load_or_create(dir.path()).unwrap();
        (dir, authority_with(key))
    }

    fn authority_with(key: pki::sa::ServiceAccountKey) -> TokenAuthority {
        TokenAuthority::new(
            key,
            DEFAULT_ISSUER,
            &[],
            "https://10.0.0.1:6443/openid/v1/jwks".into(),
        )
    }

    /// The decoded header of a compact JWS.
    pub(super) fn jws_header(token: &str) -> Value {
        let b64 = token.split('.').next().unwrap();
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(b64).unwrap()).unwrap()
    }

    /// A token for `a` whose header says `alg`, signed by `a`'s key all the same.
    fn token_with_alg(a: &TokenAuthority, claims: &Value, alg: &str) -> String {
        let header = json!({"alg": alg, "kid": a.key().key_id()});
        let mut t = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).unwrap());
        t.push('.');
        t.push_str(&URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap()));
        let sig = a.key().sign(t.as_bytes()).unwrap();
        t.push('.');
        t.push_str(&URL_SAFE_NO_PAD.encode(sig));
        t
    }

    #[test]
    fn an_rsa_key_signs_rs256_and_the_algorithm_must_match() {
        let rsa = authority_with(pki::sa::ServiceAccountKey::generate_rsa().unwrap());
        let (_dir, ec) = authority();
        let sa = json!({"metadata": {"name": "builder", "namespace": "ci", "uid": "u-1"}});
        for (a, alg, other) in [(&rsa, "RS256", "ES256"), (&ec, "ES256", "RS256")] {
            let claims = a.claims(&sa, &Binding::default(), a.api_audiences(), 1000, 600, 0);
            let token = a.sign(&claims).unwrap();
            assert_eq!(jws_header(&token)["alg"], alg);
            assert_eq!(a.verify(&token).unwrap().unwrap(), claims);
            for wrong in [other, "none", "HS256"] {
                assert!(
                    matches!(
                        a.verify(&token_with_alg(a, &claims, wrong)),
                        Err(TokenError::Malformed(_))
                    ),
                    "{alg} key took a token saying {wrong}"
                );
            }
        }
        // Each key refuses the other's tokens.
        let claims = rsa.claims(&sa, &Binding::default(), rsa.api_audiences(), 1000, 600, 0);
        let from_rsa = rsa.sign(&claims).unwrap();
        assert!(ec.verify(&from_rsa).is_err());
    }

    #[test]
    fn a_p384_key_from_kubeadm_signs_es384_and_publishes_its_curve() {
        use aws_lc_rs::signature::{EcdsaKeyPair, ECDSA_P384_SHA384_FIXED_SIGNING};
        // kubeadm's `encryptionAlgorithm: ECDSA-P384` writes a PKCS#8 P-384 sa.key.
        let dir = tempfile::tempdir().unwrap();
        let ec = EcdsaKeyPair::generate(&ECDSA_P384_SHA384_FIXED_SIGNING).unwrap();
        std::fs::write(
            dir.path().join(pki::sa::SA_KEY),
            pki::sa::to_pem("PRIVATE KEY", ec.to_pkcs8v1().unwrap().as_ref()),
        )
        .unwrap();
        let a = authority_with(pki::sa::ServiceAccountKey::load_or_create(dir.path()).unwrap());
        let sa = json!({"metadata": {"name": "builder", "namespace": "ci", "uid": "u-1"}});
        let claims = a.claims(&sa, &Binding::default(), a.api_audiences(), 1000, 600, 0);
        let token = a.sign(&claims).unwrap();
        assert_eq!(jws_header(&token)["alg"], "ES384");
        assert_eq!(a.verify(&token).unwrap().unwrap(), claims);
        for wrong in ["ES256", "ES512", "RS256"] {
            assert!(matches!(
                a.verify(&token_with_alg(&a, &claims, wrong)),
                Err(TokenError::Malformed(_))
            ));
        }
        let conf: Value = serde_json::from_slice(&a.openid_configuration()).unwrap();
        assert_eq!(
            conf["id_token_signing_alg_values_supported"],
            json!(["ES384"])
        );
        let jwks: Value = serde_json::from_slice(&a.jwks()).unwrap();
        let k = &jwks["keys"][0];
        assert_eq!(
            (&k["kty"], &k["crv"], &k["alg"]),
            (&json!("EC"), &json!("P-384"), &json!("ES384"))
        );
        let x = URL_SAFE_NO_PAD.decode(k["x"].as_str().unwrap()).unwrap();
        assert_eq!(x.len(), 48);
    }

    #[test]
    fn signs_and_verifies_only_own_tokens() {
        let (_dir, a) = authority();
        assert_eq!(a.api_audiences(), [DEFAULT_ISSUER.to_string()]);
        let sa = json!({"metadata": {"name": "builder", "namespace": "ci", "uid": "u-1"}});
        let claims = a.claims(&sa, &Binding::default(), a.api_audiences(), 1000, 600, 0);
        let token = a.sign(&claims).unwrap();
        assert_eq!(
            jws_header(&token),
            json!({"alg": "ES256", "kid": a.key().key_id()})
        );
        assert_eq!(a.verify(&token).unwrap().unwrap(), claims);
        // A changed payload no longer verifies; foreign issuers and non-JWTs are not ours.
        let mut parts: Vec<String> = token.split('.').map(str::to_string).collect();
        let mut forged = claims.clone();
        forged["sub"] = json!("system:serviceaccount:ci:admin");
        parts[1] = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).unwrap());
        assert!(matches!(
            a.verify(&parts.join(".")),
            Err(TokenError::Signature)
        ));
        forged["iss"] = json!("https://elsewhere");
        parts[1] = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).unwrap());
        assert!(a.verify(&parts.join(".")).unwrap().is_none());
        assert!(a.verify("abc").unwrap().is_none());
    }

    #[test]
    fn claims_have_upstream_shape() {
        let (_dir, a) = authority();
        let sa =
            json!({"metadata": {"name": "default", "namespace": "kube-system", "uid": "sa-uid"}});
        let binding = Binding {
            pod: Some(("coredns-1", "pod-uid")),
            secret: None,
            node: Some(("n1", "")),
        };
        let c = a.claims(
            &sa,
            &binding,
            &["x".to_string()],
            1_700_000_000,
            31_536_000,
            3607,
        );
        let jti = c["jti"].as_str().unwrap().to_string();
        assert_eq!(jti.len(), 36);
        assert_eq!(
            c,
            json!({
                "aud": ["x"],
                "exp": 1_731_536_000,
                "iat": 1_700_000_000,
                "iss": DEFAULT_ISSUER,
                "jti": jti,
                "kubernetes.io": {
                    "namespace": "kube-system",
                    "node": {"name": "n1"},
                    "pod": {"name": "coredns-1", "uid": "pod-uid"},
                    "serviceaccount": {"name": "default", "uid": "sa-uid"},
                    "warnafter": 1_700_003_607,
                },
                "nbf": 1_700_000_000,
                "sub": "system:serviceaccount:kube-system:default",
            })
        );
    }

    #[test]
    fn discovery_documents() {
        let (_dir, a) = authority();
        let conf: Value = serde_json::from_slice(&a.openid_configuration()).unwrap();
        assert_eq!(
            String::from_utf8(a.openid_configuration()).unwrap(),
            format!(
                "{{\"issuer\":\"{DEFAULT_ISSUER}\",\"jwks_uri\":\"https://10.0.0.1:6443/openid/v1/jwks\",\"response_types_supported\":[\"id_token\"],\"subject_types_supported\":[\"public\"],\"id_token_signing_alg_values_supported\":[\"ES256\"]}}"
            )
        );
        assert_eq!(conf["issuer"], DEFAULT_ISSUER);
        let jwks: Value = serde_json::from_slice(&a.jwks()).unwrap();
        let k = &jwks["keys"][0];
        assert_eq!(
            (
                k["use"].as_str(),
                k["kty"].as_str(),
                k["crv"].as_str(),
                k["alg"].as_str()
            ),
            (Some("sig"), Some("EC"), Some("P-256"), Some("ES256"))
        );
        assert_eq!(k["kid"], a.key().key_id());
        let coord = |c: &str| URL_SAFE_NO_PAD.decode(k[c].as_str().unwrap()).unwrap();
        assert_eq!(
            a.key().public_jwk().unwrap(),
            pki::sa::PublicJwk::Ec {
                crv: "P-256",
                x: coord("x"),
                y: coord("y")
            }
        );
        assert!(k.get("n").is_none() && k.get("e").is_none());
        // go-jose's field order.
        let text = String::from_utf8(a.jwks()).unwrap();
        assert!(text.starts_with("{\"keys\":[{\"use\":\"sig\",\"kty\":\"EC\",\"kid\":"));
        assert!(text.contains("\"crv\":\"P-256\",\"alg\":\"ES256\",\"x\":"));

        // An RSA key publishes n and e, and RS256.
        let rsa = authority_with(pki::sa::ServiceAccountKey::generate_rsa().unwrap());
        let conf: Value = serde_json::from_slice(&rsa.openid_configuration()).unwrap();
        assert_eq!(
            conf["id_token_signing_alg_values_supported"],
            json!(["RS256"])
        );
        let jwks: Value = serde_json::from_slice(&rsa.jwks()).unwrap();
        let k = &jwks["keys"][0];
        assert_eq!(
            (k["kty"].as_str(), k["alg"].as_str(), k["e"].as_str()),
            (Some("RSA"), Some("RS256"), Some("AQAB"))
        );
        assert!(k.get("crv").is_none() && k.get("x").is_none());
        assert!(String::from_utf8(rsa.jwks())
            .unwrap()
            .starts_with("{\"keys\":[{\"use\":\"sig\",\"kty\":\"RSA\",\"kid\":"));
    }

    #[test]
    fn go_list_quoting() {
        assert_eq!(
            go_quoted_list(&["a".into(), "b c".into()]),
            "[\"a\" \"b c\"]"
        );
    }
}

#[cfg(test)]
mod api_tests {
    use super::*;
    use crate::testing::TestServer;
    use tests::jws_header;

    /// The claims of a JWT, without checking it.
    fn claims_of(token: &str) -> Value {
        let payload = token.split('.').nth(1).unwrap();
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
    }

    async fn service_account(api: &TestServer, ns: &str, name: &str, extra: Value) -> Value {
        let mut sa = json!({"apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": {"name": name, "namespace": ns}});
        if let (Some(sa), Some(extra)) = (sa.as_object_mut(), extra.as_object()) {
            sa.extend(extra.clone());
        }
        api.create(&format!("/api/v1/namespaces/{ns}/serviceaccounts"), sa)
            .await
    }

    async fn token(api: &TestServer, ns: &str, sa: &str, spec: Value) -> (StatusCode, Value) {
        let req =
            json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec});
        api.call(
            "POST",
            &format!("/api/v1/namespaces/{ns}/serviceaccounts/{sa}/token"),
            Some(&req),
        )
        .await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn token_request_round_trip_and_bearer_authentication() {
        let api = TestServer::start().await;
        let sa = service_account(&api, "default", "builder", json!({})).await;
        let sa_uid = sa["metadata"]["uid"].as_str().unwrap().to_string();

        let (code, tr) = token(&api, "default", "builder", json!({})).await;
        assert_eq!(code, StatusCode::CREATED, "{tr}");
        assert_eq!(tr["kind"], "TokenRequest");
        assert_eq!(tr["apiVersion"], "authentication.k8s.io/v1");
        assert_eq!(tr["metadata"]["name"], "builder");
        assert_eq!(tr["metadata"]["namespace"], "default");
        assert_eq!(
            tr["spec"],
            json!({"audiences": [DEFAULT_ISSUER], "expirationSeconds": 3600})
        );
        let jwt = tr["status"]["token"].as_str().unwrap();
        let c = claims_of(jwt);
        let iat = c["iat"].as_i64().unwrap();
        let jti = c["jti"].as_str().unwrap().to_string();
        assert!(uuid::Uuid::parse_str(&jti).is_ok(), "{jti}");
        assert_eq!(
            c,
            json!({
                "aud": [DEFAULT_ISSUER],
                "exp": iat + 3600,
                "iat": iat,
                "iss": DEFAULT_ISSUER,
                "jti": jti,
                "kubernetes.io": {
                    "namespace": "default",
                    "serviceaccount": {"name": "builder", "uid": sa_uid},
                },
                "nbf": iat,
                "sub": "system:serviceaccount:default:builder",
            })
        );
        assert_eq!(
            tr["status"]["expirationTimestamp"],
            json!(object::format_time(
                jiff::Timestamp::from_second(iat + 3600).unwrap()
            ))
        );
        assert!((iat - jiff::Timestamp::now().as_second()).abs() < 10);

        // The token authenticates as the service account.
        let (code, review) = api
            .call_as(
                jwt,
                "POST",
                "/apis/authentication.k8s.io/v1/selfsubjectreviews",
                Some(
                    &json!({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}),
                ),
            )
            .await;
        assert_eq!(code, StatusCode::CREATED, "{review}");
        assert_eq!(
            review["status"]["userInfo"],
            json!({
                "username": "system:serviceaccount:default:builder",
                "uid": sa_uid,
                "groups": ["system:serviceaccounts", "system:serviceaccounts:default", "system:authenticated"],
                "extra": {"authentication.kubernetes.io/credential-id": [format!("JTI={jti}")]},
            })
        );
        let (code, _) = api
            .call_as(
                jwt,
                "GET",
                "/api/v1/namespaces/default/serviceaccounts",
                None,
            )
            .await;
        assert_eq!(code, StatusCode::OK);

        // The JWKS verifies the token.
        let resp = api
            .send(TestServer::request("GET", "/openid/v1/jwks", None), true)
            .await;
        assert_eq!(resp.headers()["content-type"], "application/jwk-set+json");
        assert_eq!(resp.headers()["cache-control"], "public, max-age=3600");
        let (_, jwks) = crate::testing::read_json(resp).await;
        let key = &jwks["keys"][0];
        let header = jws_header(jwt);
        assert_eq!(header["kid"], key["kid"]);
        assert_eq!(header["alg"], "ES256");
        assert_eq!(
            (key["kty"].as_str(), key["crv"].as_str()),
            (Some("EC"), Some("P-256"))
        );
        let (signed, sig) = jwt.rsplit_once('.').unwrap();
        // The uncompressed point: 0x04, X, Y.
        let mut point = vec![4u8];
        for c in ["x", "y"] {
            point.extend(URL_SAFE_NO_PAD.decode(key[c].as_str().unwrap()).unwrap());
        }
        aws_lc_rs::signature::UnparsedPublicKey::new(
            &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED,
            &point,
        )
        .verify(signed.as_bytes(), &URL_SAFE_NO_PAD.decode(sig).unwrap())
        .unwrap();
        let (code, conf) = api
            .call("GET", "/.well-known/openid-configuration", None)
            .await;
        assert_eq!(code, StatusCode::OK);
        assert_eq!(conf["issuer"], DEFAULT_ISSUER);
        assert_eq!(
            conf["jwks_uri"],
            format!(
                "https://127.0.0.1:{}/openid/v1/jwks",
                api.running.addr.port()
            )
        );

        // Another audience is not accepted by the API, but TokenReview can ask for it.
        let (_, other) = token(&api, "default", "builder", json!({"audiences": ["vault"]})).await;
        let other = other["status"]["token"].as_str().unwrap().to_string();
        let (code, status) = api.call_as(&other, "GET", "/api/v1/namespaces", None).await;
        assert_eq!(code, StatusCode::UNAUTHORIZED);
        assert_eq!(
            status,
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": "Unauthorized", "reason": "Unauthorized", "code": 401})
        );
        let review = |token: String, audiences: Value| {
            json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
                "spec": {"token": token, "audiences": audiences}})
        };
        let (_, r) = api
            .call(
                "POST",
                "/apis/authentication.k8s.io/v1/tokenreviews",
                Some(&review(other.clone(), json!(["vault"]))),
            )
            .await;
        assert_eq!(r["status"]["authenticated"], true, "{r}");
        assert_eq!(r["status"]["audiences"], json!(["vault"]));
        assert_eq!(
            r["status"]["user"]["username"],
            "system:serviceaccount:default:builder"
        );
        let (_, r) = api
            .call(
                "POST",
                "/apis/authentication.k8s.io/v1/tokenreviews",
                Some(&review(other, json!([]))),
            )
            .await;
        assert_eq!(r["status"]["authenticated"], json!(null), "{r}");
        assert_eq!(
            r["status"]["error"],
            format!("token audiences [\"vault\"] is invalid for the target audiences [\"{DEFAULT_ISSUER}\"]")
        );

        // A tampered or foreign token is refused.
        let mut forged = jwt.to_string();
        forged.pop();
        forged.push(if jwt.ends_with('A') { 'B' } else { 'A' });
        let (code, _) = api
            .call_as(&forged, "GET", "/api/v1/namespaces", None)
            .await;
        assert_eq!(code, StatusCode::UNAUTHORIZED);

        // Deleting the service account invalidates its tokens.
        let (code, _) = api
            .call(
                "DELETE",
                "/api/v1/namespaces/default/serviceaccounts/builder",
                None,
            )
            .await;
        assert_eq!(code, StatusCode::OK);
        let (code, _) = api.call_as(jwt, "GET", "/api/v1/namespaces", None).await;
        assert_eq!(code, StatusCode::UNAUTHORIZED);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn token_request_validation() {
        let api = TestServer::start().await;
        service_account(&api, "default", "builder", json!({})).await;
        let (code, s) = token(
            &api,
            "default",
            "builder",
            json!({"expirationSeconds": 599}),
        )
        .await;
        assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            s["message"],
            "TokenRequest.authentication.k8s.io \"\" is invalid: spec.expirationSeconds: Invalid value: 599: may not specify a duration less than 10 minutes"
        );
        let (code, s) = token(
            &api,
            "default",
            "builder",
            json!({"expirationSeconds": (1_i64 << 32) + 1}),
        )
        .await;
        assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            s["message"],
            "TokenRequest.authentication.k8s.io \"\" is invalid: spec.expirationSeconds: Invalid value: 4294967297: may not specify a duration larger than 2^32 seconds"
        );
        for ok in [600, 1_i64 << 32] {
            let (code, tr) =
                token(&api, "default", "builder", json!({"expirationSeconds": ok})).await;
            assert_eq!(code, StatusCode::CREATED, "{tr}");
            let c = claims_of(tr["status"]["token"].as_str().unwrap());
            assert_eq!(c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(), ok);
        }
        let (code, s) = token(&api, "default", "nobody", json!({})).await;
        assert_eq!(code, StatusCode::NOT_FOUND);
        assert_eq!(s["message"], "serviceaccounts \"nobody\" not found");
        let (code, s) = api
            .call(
                "POST",
                "/api/v1/namespaces/default/serviceaccounts/builder/token",
                Some(&json!({"metadata": {"name": "other"}})),
            )
            .await;
        assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            s["message"],
            "TokenRequest.authentication.k8s.io \"builder\" is invalid: metadata.name: Invalid value: \"other\": must match the service account name if specified"
        );
        let (code, s) = token(
            &api,
            "default",
            "builder",
            json!({"boundObjectRef": {"kind": "ConfigMap", "apiVersion": "v1", "name": "x"}}),
        )
        .await;
        assert_eq!(code, StatusCode::BAD_REQUEST);
        assert_eq!(
            s["message"],
            "cannot bind token to object of type /v1, Kind=ConfigMap"
        );
        let (code, s) = token(
            &api,
            "default",
            "builder",
            json!({"boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "gone"}}),
        )
        .await;
        assert_eq!(code, StatusCode::NOT_FOUND);
        assert_eq!(s["message"], "pods \"gone\" not found");
        // The service account is listed in discovery as upstream shows it.
        let (_, list) = api.call("GET", "/api/v1", None).await;
        let entry = list["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == "serviceaccounts/token")
            .unwrap()
            .clone();
        assert_eq!(
            entry,
            json!({"name": "serviceaccounts/token", "singularName": "", "namespaced": true,
                "group": "authentication.k8s.io", "version": "v1", "kind": "TokenRequest",
                "verbs": ["create"]})
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn pod_bound_tokens_follow_the_pod() {
        let api = TestServer::start().await;
        let sa = service_account(&api, "default", "runner", json!({})).await;
        let sa_uid = sa["metadata"]["uid"].as_str().unwrap().to_string();
        service_account(&api, "default", "other", json!({})).await;
        let node = api
            .create(
                "/api/v1/nodes",
                json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}}),
            )
            .await;
        let node_uid = node["metadata"]["uid"].as_str().unwrap().to_string();
        let pod = api
            .create(
                "/api/v1/namespaces/default/pods",
                json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "job"},
                    "spec": {"serviceAccountName": "runner", "nodeName": "n1",
                        "containers": [{"name": "c", "image": "busybox"}]}}),
            )
            .await;
        let pod_uid = pod["metadata"]["uid"].as_str().unwrap().to_string();
        let bound = |uid: &str| {
            json!({"expirationSeconds": 3607,
                "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "job", "uid": uid}})
        };
        let (code, tr) = token(&api, "default", "runner", bound(&pod_uid)).await;
        assert_eq!(code, StatusCode::CREATED, "{tr}");
        let jwt = tr["status"]["token"].as_str().unwrap().to_string();
        let c = claims_of(&jwt);
        let iat = c["iat"].as_i64().unwrap();
        // Projected-token lifetime: valid a year, warning after 3607 s; the status
        // reports the requested expiry.
        assert_eq!(
            c["exp"].as_i64().unwrap(),
            iat + EXPIRATION_EXTENSION_SECONDS
        );
        assert_eq!(
            c["kubernetes.io"],
            json!({
                "namespace": "default",
                "node": {"name": "n1", "uid": node_uid},
                "pod": {"name": "job", "uid": pod_uid},
                "serviceaccount": {"name": "runner", "uid": sa_uid},
                "warnafter": iat + 3607,
            })
        );
        assert_eq!(
            tr["status"]["expirationTimestamp"],
            json!(object::format_time(
                jiff::Timestamp::from_second(iat + 3607).unwrap()
            ))
        );
        let (code, review) = api
            .call_as(
                &jwt,
                "POST",
                "/apis/authentication.k8s.io/v1/selfsubjectreviews",
                Some(
                    &json!({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}),
                ),
            )
            .await;
        assert_eq!(code, StatusCode::CREATED);
        let extra = &review["status"]["userInfo"]["extra"];
        assert_eq!(extra[EXTRA_POD_NAME], json!(["job"]));
        assert_eq!(extra[EXTRA_POD_UID], json!([pod_uid]));
        assert_eq!(extra[EXTRA_NODE_NAME], json!(["n1"]));
        assert_eq!(extra[EXTRA_NODE_UID], json!([node_uid]));

        // Another lifetime or audience is not extended.
        let (_, tr) = token(
            &api,
            "default",
            "runner",
            json!({"expirationSeconds": 3600, "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "job"}}),
        )
        .await;
        let c = claims_of(tr["status"]["token"].as_str().unwrap());
        assert_eq!(
            c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(),
            3600
        );
        assert!(c["kubernetes.io"].get("warnafter").is_none());

        // Wrong UID, wrong service account.
        let (code, s) = token(&api, "default", "runner", bound("not-the-uid")).await;
        assert_eq!(code, StatusCode::CONFLICT);
        assert_eq!(
            s["message"],
            "Operation cannot be fulfilled on Pod \"job\": the UID in the bound object reference (not-the-uid) does not match the UID in record. The object might have been deleted and then recreated"
        );
        let (code, s) = token(&api, "default", "other", bound(&pod_uid)).await;
        assert_eq!(code, StatusCode::BAD_REQUEST);
        assert_eq!(
            s["message"],
            "cannot bind token for serviceaccount \"other\" to pod running with different serviceaccount name."
        );

        // Once the pod is gone, its tokens are refused.
        let (code, _) = api
            .call(
                "DELETE",
                "/api/v1/namespaces/default/pods/job?gracePeriodSeconds=0",
                None,
            )
            .await;
        assert_eq!(code, StatusCode::OK);
        let (code, _) = api.call_as(&jwt, "GET", "/api/v1/namespaces", None).await;
        assert_eq!(code, StatusCode::UNAUTHORIZED);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn node_and_secret_bound_tokens() {
        let api = TestServer::start().await;
        service_account(&api, "default", "agent", json!({})).await;
        let node = api
            .create(
                "/api/v1/nodes",
                json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n2"}}),
            )
            .await;
        let secret = api
            .create(
                "/api/v1/namespaces/default/secrets",
                json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}}),
            )
            .await;
        let (_, tr) = token(
            &api,
            "default",
            "agent",
            json!({"boundObjectRef": {"kind": "Node", "apiVersion": "v1", "name": "n2"}}),
        )
        .await;
        let node_token = tr["status"]["token"].as_str().unwrap().to_string();
        assert_eq!(
            claims_of(&node_token)["kubernetes.io"]["node"],
            json!({"name": "n2", "uid": node["metadata"]["uid"]})
        );
        let (_, tr) = token(
            &api,
            "default",
            "agent",
            json!({"boundObjectRef": {"kind": "Secret", "apiVersion": "v1", "name": "s"}}),
        )
        .await;
        let secret_token = tr["status"]["token"].as_str().unwrap().to_string();
        assert_eq!(
            claims_of(&secret_token)["kubernetes.io"]["secret"],
            json!({"name": "s", "uid": secret["metadata"]["uid"]})
        );
        for t in [&node_token, &secret_token] {
            let (code, _) = api.call_as(t, "GET", "/api/v1/namespaces", None).await;
            assert_eq!(code, StatusCode::OK);
        }
        api.call("DELETE", "/api/v1/nodes/n2", None).await;
        api.call("DELETE", "/api/v1/namespaces/default/secrets/s", None)
            .await;
        for t in [&node_token, &secret_token] {
            let (code, _) = api.call_as(t, "GET", "/api/v1/namespaces", None).await;
            assert_eq!(code, StatusCode::UNAUTHORIZED);
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn maximum_expiration_shortens_with_a_warning() {
        let api = TestServer::start_with(|c| {
            c.service_account_max_token_expiration = Some(std::time::Duration::from_secs(7200))
        })
        .await;
        service_account(&api, "default", "builder", json!({})).await;
        let req = TestServer::request(
            "POST",
            "/api/v1/namespaces/default/serviceaccounts/builder/token",
            Some(&json!({"spec": {"expirationSeconds": 86400}})),
        );
        let resp = api.send(req, true).await;
        assert_eq!(
            resp.headers()["warning"],
            "299 - \"requested expiration of 86400 seconds shortened to 7200 seconds\""
        );
        let (_, tr) = crate::testing::read_json(resp).await;
        assert_eq!(tr["spec"]["expirationSeconds"], 7200);
        let c = claims_of(tr["status"]["token"].as_str().unwrap());
        assert_eq!(
            c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(),
            7200
        );
    }
}
