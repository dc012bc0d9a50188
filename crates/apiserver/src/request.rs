//! What a request asks for: the path parsed into verb, group, version, namespace,
//! resource, name and subresource (as upstream's RequestInfoFactory does), and the
//! query parameters of the Kubernetes API.

use crate::error::{ApiError, ApiResult};
use http::Method;
use std::collections::HashMap;

/// A request for a resource (as opposed to discovery or health endpoints).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResourceRequest {
    /// get, list, watch, create, update, patch, delete, deletecollection.
    pub verb: &'static str,
    /// API group ("" for core).
    pub group: String,
    /// API version.
    pub version: String,
    /// Namespace from the path ("" if none).
    pub namespace: String,
    /// Plural resource name.
    pub resource: String,
    /// Object name ("" for collections).
    pub name: String,
    /// Subresource ("" if none).
    pub subresource: String,
    /// Path segments after the subresource (proxy paths).
    pub rest: Vec<String>,
}

/// What a path names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    /// `/healthz`, `/livez`, `/readyz` and their sub-checks.
    Health(String),
    /// `/version`.
    Version,
    /// `/api`.
    CoreVersions,
    /// `/apis`.
    Groups,
    /// `/apis/<group>`.
    Group(String),
    /// `/api/v1` or `/apis/<group>/<version>`.
    GroupVersion(String, String),
    /// `/openapi/v2`.
    OpenApiV2,
    /// `/openapi/v3` and `/openapi/v3/<path>`.
    OpenApiV3(String),
    /// `/metrics`.
    Metrics,
    /// `/.well-known/openid-configuration`.
    OpenIdConfiguration,
    /// `/openid/v1/jwks`.
    OpenIdJwks,
    /// A resource endpoint.
    Resource(ResourceRequest),
    /// Anything else.
    NotFound,
}

fn decode(seg: &str) -> String {
    percent_encoding::percent_decode_str(seg)
        .decode_utf8_lossy()
        .into_owned()
}

/// Parses a request path and method.
pub fn route(method: &Method, path: &str, query: &Query) -> Route {
    let parts: Vec<String> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .map(decode)
        .collect();
    let p: Vec<&str> = parts.iter().map(String::as_str).collect();
    match p.as_slice() {
        [] => Route::NotFound,
        [h, ..] if matches!(*h, "healthz" | "livez" | "readyz") => Route::Health(p.join("/")),
        ["version"] => Route::Version,
        ["metrics"] => Route::Metrics,
        [".well-known", "openid-configuration"] => Route::OpenIdConfiguration,
        ["openid", "v1", "jwks"] => Route::OpenIdJwks,
        ["openapi", "v2"] => Route::OpenApiV2,
        ["openapi", "v3", rest @ ..] => Route::OpenApiV3(rest.join("/")),
        ["api"] => Route::CoreVersions,
        ["api", version] => Route::GroupVersion(String::new(), version.to_string()),
        ["api", version, rest @ ..] => resource_route(method, "", version, rest, query),
        ["apis"] => Route::Groups,
        ["apis", group] => Route::Group(group.to_string()),
        ["apis", group, version] => Route::GroupVersion(group.to_string(), version.to_string()),
        ["apis", group, version, rest @ ..] => resource_route(method, group, version, rest, query),
        _ => Route::NotFound,
    }
}

fn resource_route(
    method: &Method,
    group: &str,
    version: &str,
    parts: &[&str],
    query: &Query,
) -> Route {
    let mut parts = parts;
    let mut legacy_watch = false;
    if parts.first() == Some(&"watch") {
        legacy_watch = true;
        parts = &parts[1..];
    }
    if parts.is_empty() {
        return Route::NotFound;
    }
    let mut namespace = String::new();
    if parts[0] == "namespaces" && parts.len() > 1 {
        namespace = parts[1].to_string();
        // `/namespaces/<name>/status` and `/finalize` are subresources of the namespace.
        if parts.len() > 2 && !matches!(parts[2], "status" | "finalize") {
            parts = &parts[2..];
        }
    }
    let resource = parts[0].to_string();
    let name = parts.get(1).map(|s| s.to_string()).unwrap_or_default();
    let subresource = parts.get(2).map(|s| s.to_string()).unwrap_or_default();
    let rest = parts.iter().skip(3).map(|s| s.to_string()).collect();
    let watch = legacy_watch || query.flag("watch");
    let verb = match *method {
        Method::GET | Method::HEAD => {
            if watch {
                "watch"
            } else if name.is_empty() {
                "list"
            } else {
                "get"
            }
        }
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE => {
            if name.is_empty() {
                "deletecollection"
            } else {
                "delete"
            }
        }
        _ => "",
    };
    // `/api/v1/namespaces/<name>` names the namespace object itself.
    if resource == "namespaces" && namespace == name {
        namespace.clear();
    }
    Route::Resource(ResourceRequest {
        verb,
        group: group.to_string(),
        version: version.to_string(),
        namespace,
        resource,
        name,
        subresource,
        rest,
    })
}

/// Query parameters.
#[derive(Clone, Debug, Default)]
pub struct Query {
    params: HashMap<String, String>,
}

impl Query {
    /// Parses a raw query string.
    pub fn parse(raw: Option<&str>) -> Query {
        let params = raw
            .map(|q| {
                url::form_urlencoded::parse(q.as_bytes())
                    .into_owned()
                    .collect()
            })
            .unwrap_or_default();
        Query { params }
    }

    /// A parameter's value.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.params.get(key).map(String::as_str)
    }

    /// A boolean parameter (`true`/`1`).
    pub fn flag(&self, key: &str) -> bool {
        matches!(self.get(key), Some("true" | "1" | "True" | "TRUE"))
    }

    /// A non-empty string parameter.
    pub fn str(&self, key: &str) -> Option<&str> {
        self.get(key).filter(|s| !s.is_empty())
    }

    /// An integer parameter; a malformed value is a 400.
    pub fn int(&self, key: &str) -> ApiResult<Option<i64>> {
        match self.str(key) {
            None => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|_| {
                ApiError::bad_request(format!("invalid value for {key}: {v:?} is not an integer"))
            }),
        }
    }

    /// `dryRun=All` (the only value upstream accepts; others are a 400).
    pub fn dry_run(&self) -> ApiResult<bool> {
        match self.get("dryRun") {
            None | Some("") => Ok(false),
            Some("All") => Ok(true),
            Some(other) => Err(
                ApiError::bad_request(format!("Invalid dry run value: {other}"))
                    .with_details(serde_json::json!({})),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(method: Method, path: &str, q: &str) -> Route {
        route(&method, path, &Query::parse(Some(q)))
    }

    fn res(method: Method, path: &str, q: &str) -> ResourceRequest {
        match r(method, path, q) {
            Route::Resource(rr) => rr,
            other => panic!("{path}: {other:?}"),
        }
    }

    #[test]
    fn parses_like_upstream() {
        let x = res(Method::GET, "/api/v1/namespaces/default/pods/web-0", "");
        assert_eq!(
            (
                x.verb,
                x.namespace.as_str(),
                x.resource.as_str(),
                x.name.as_str()
            ),
            ("get", "default", "pods", "web-0")
        );
        let x = res(Method::GET, "/api/v1/namespaces/default/pods", "watch=true");
        assert_eq!(x.verb, "watch");
        let x = res(Method::GET, "/api/v1/watch/namespaces/default/pods", "");
        assert_eq!(x.verb, "watch");
        let x = res(Method::GET, "/api/v1/pods", "");
        assert_eq!((x.verb, x.namespace.as_str()), ("list", ""));
        let x = res(Method::PUT, "/api/v1/namespaces/kube-system/status", "");
        assert_eq!(
            (
                x.resource.as_str(),
                x.name.as_str(),
                x.subresource.as_str(),
                x.namespace.as_str()
            ),
            ("namespaces", "kube-system", "status", "")
        );
        let x = res(Method::GET, "/api/v1/namespaces/kube-system", "");
        assert_eq!(
            (x.resource.as_str(), x.name.as_str(), x.namespace.as_str()),
            ("namespaces", "kube-system", "")
        );
        let x = res(Method::DELETE, "/apis/apps/v1/namespaces/a/deployments", "");
        assert_eq!((x.verb, x.group.as_str()), ("deletecollection", "apps"));
        let x = res(Method::POST, "/api/v1/namespaces/a/pods/p/binding", "");
        assert_eq!((x.verb, x.subresource.as_str()), ("create", "binding"));
        let x = res(
            Method::GET,
            "/api/v1/namespaces/a/pods/p/proxy/some/path",
            "",
        );
        assert_eq!(x.rest, vec!["some", "path"]);
        assert_eq!(
            r(Method::GET, "/apis/apps/v1", ""),
            Route::GroupVersion("apps".into(), "v1".into())
        );
        assert_eq!(
            r(Method::GET, "/readyz", ""),
            Route::Health("readyz".into())
        );
        assert_eq!(r(Method::GET, "/api", ""), Route::CoreVersions);
        assert_eq!(
            r(Method::GET, "/.well-known/openid-configuration", ""),
            Route::OpenIdConfiguration
        );
        assert_eq!(r(Method::GET, "/openid/v1/jwks", ""), Route::OpenIdJwks);
    }
}
