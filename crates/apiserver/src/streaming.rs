//! Subresources that reach through the apiserver to a kubelet or a pod:
//!
//! - `pods/log`: validated as upstream, then the kubelet's
//!   `/containerLogs/<ns>/<pod>/<container>` is streamed back as it arrives.
//! - `pods/exec`, `pods/attach`, `pods/portforward`: upgrade requests (SPDY or
//!   WebSocket) forwarded to the kubelet's `/exec`, `/attach` and `/portForward`; once
//!   the kubelet answers 101 the answer is relayed and the two upgraded connections are
//!   spliced until either side closes. Any other answer is passed back as it is.
//! - `nodes/proxy` (to the kubelet, or another port of the node) and `pods/proxy` (to
//!   the pod's IP): any method, plain or upgraded.
//!
//! These requests are handled before the request body is read, since they stream it.

use crate::error::{ApiError, ApiResult, Target};
use crate::kubelet::{DialError, Endpoint};
use crate::request::ResourceRequest;
use crate::{Body, Server};
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Version};
use http_body_util::{BodyExt, Empty, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::Arc;
use tokio::io::AsyncWriteExt;

/// The longest error body read from a kubelet (upstream's limit).
const MAX_ERROR_BODY: usize = 50_000;

/// Whether the request is one this module serves.
pub fn is_streaming(rr: &ResourceRequest) -> bool {
    if !rr.group.is_empty() || rr.version != "v1" || rr.name.is_empty() {
        return false;
    }
    match rr.resource.as_str() {
        "pods" => matches!(
            rr.subresource.as_str(),
            "log" | "exec" | "attach" | "portforward" | "proxy"
        ),
        "nodes" => rr.subresource == "proxy",
        _ => false,
    }
}

/// Query parameters in order, repeated keys kept (`command` of exec).
struct Params(Vec<(String, String)>);

impl Params {
    fn parse(raw: Option<&str>) -> Params {
        Params(
            raw.map(|q| {
                url::form_urlencoded::parse(q.as_bytes())
                    .into_owned()
                    .collect()
            })
            .unwrap_or_default(),
        )
    }

    fn first(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn all(&self, key: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// A boolean option as upstream's query conversion reads it: absent is false,
    /// `0` and `false` (any case) are false, anything else is true.
    fn flag(&self, key: &str) -> bool {
        self.first(key)
            .is_some_and(|v| v != "0" && !v.eq_ignore_ascii_case("false"))
    }

    /// An optional integer option (empty counts as absent).
    fn int(&self, key: &str) -> ApiResult<Option<i64>> {
        match self.first(key).filter(|v| !v.is_empty()) {
            None => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|_| {
                ApiError::bad_request(format!("strconv.ParseInt: parsing {v:?}: invalid syntax"))
            }),
        }
    }
}

/// Serves a log, exec, attach, port-forward or proxy request.
pub async fn handle(
    server: &Arc<Server>,
    rr: &ResourceRequest,
    req: Request<Incoming>,
) -> ApiResult<Response<Body>> {
    if rr.resource == "pods" && rr.namespace.is_empty() {
        return Err(ApiError::path_not_found());
    }
    let params = Params::parse(req.uri().query());
    let target = Target {
        group: String::new(),
        resource: rr.resource.clone(),
        name: rr.name.clone(),
    };
    match (rr.resource.as_str(), rr.subresource.as_str()) {
        ("pods", "log") => {
            if req.method() != Method::GET {
                return Err(ApiError::method_not_supported(&target, rr.verb));
            }
            log(server, rr, &params).await
        }
        ("pods", sub @ ("exec" | "attach" | "portforward")) => {
            if !matches!(*req.method(), Method::GET | Method::POST) {
                return Err(ApiError::method_not_supported(&target, rr.verb));
            }
            connect(server, rr, sub, &params, req).await
        }
        ("pods", "proxy") => pod_proxy(server, rr, req).await,
        ("nodes", "proxy") => node_proxy(server, rr, req).await,
        _ => Err(ApiError::path_not_found()),
    }
}

/// The pod `name` in `namespace`, read consistently.
async fn get_pod(server: &Server, namespace: &str, name: &str) -> ApiResult<Value> {
    let store = server
        .registry
        .get("pods")
        .ok_or_else(ApiError::path_not_found)?;
    let target = Target {
        group: String::new(),
        resource: "pods".into(),
        name: name.to_string(),
    };
    Ok(store
        .cache
        .get_cached(&store.key(namespace, name))
        .await
        .map_err(|e| ApiError::from_store(e, &target))?
        .ok_or_else(|| ApiError::not_found(&target))?
        .extra
        .value())
}

/// Names of the pod's init, regular and ephemeral containers, in that order.
fn container_names(pod: &Value) -> Vec<String> {
    ["initContainers", "containers", "ephemeralContainers"]
        .iter()
        .flat_map(|f| pod["spec"][*f].as_array().cloned().unwrap_or_default())
        .filter_map(|c| c["name"].as_str().map(str::to_string))
        .collect()
}

/// The container a request is about (upstream's `validateContainer`): the given one
/// if the pod has it, else the only regular container.
pub fn validate_container(container: Option<&str>, pod: &Value) -> ApiResult<String> {
    let pod_name = pod["metadata"]["name"].as_str().unwrap_or("");
    match container.filter(|c| !c.is_empty()) {
        Some(c) => {
            if container_names(pod).iter().any(|n| n == c) {
                Ok(c.to_string())
            } else {
                Err(ApiError::bad_request(format!(
                    "container {c} is not valid for pod {pod_name}"
                )))
            }
        }
        None => {
            let regular = pod["spec"]["containers"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            match regular.as_slice() {
                [only] => Ok(only["name"].as_str().unwrap_or("").to_string()),
                [] => Err(ApiError::bad_request(format!(
                    "a container name must be specified for pod {pod_name}"
                ))),
                _ => Err(ApiError::bad_request(format!(
                    "a container name must be specified for pod {pod_name}, choose one of: [{}]",
                    container_names(pod).join(" ")
                ))),
            }
        }
    }
}

/// A query string with Go's `url.Values.Encode` ordering (sorted keys).
fn encode_query(mut pairs: Vec<(&str, String)>) -> String {
    pairs.sort_by(|a, b| a.0.cmp(b.0));
    let mut out = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        out.append_pair(k, &v);
    }
    out.finish()
}

/// A response body relaying `body` frame by frame as it arrives; a failed read ends it.
fn relay(body: Incoming) -> Body {
    let frames = futures::stream::unfold(Some(body), |state| async move {
        let mut body = state?;
        match body.frame().await {
            Some(Ok(frame)) => Some((Ok::<Frame<Bytes>, Infallible>(frame), Some(body))),
            _ => None,
        }
    });
    StreamBody::new(frames).boxed()
}

/// An error as upstream reports a failure to reach a backend.
fn unreachable_error(code: u16, reason: &'static str, message: String) -> ApiError {
    ApiError::new(code, reason, message)
}

/// The node a pod runs on, or None if it is not scheduled.
fn node_of(pod: &Value) -> Option<&str> {
    pod["spec"]["nodeName"].as_str().filter(|n| !n.is_empty())
}

/// `pods/log`.
async fn log(server: &Arc<Server>, rr: &ResourceRequest, p: &Params) -> ApiResult<Response<Body>> {
    let tail_lines = p.int("tailLines")?;
    let limit_bytes = p.int("limitBytes")?;
    let since_seconds = p.int("sinceSeconds")?;
    let since_time = match p.first("sinceTime").filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => Some(s.parse::<jiff::Timestamp>().map_err(|_| {
            ApiError::bad_request(format!(
                "parsing time {s:?} as \"2006-01-02T15:04:05Z07:00\": cannot parse {s:?} as \"2006\""
            ))
        })?),
    };
    // Upstream's ValidatePodLogOptions.
    let mut errs = Vec::new();
    if let Some(t) = tail_lines.filter(|t| *t < 0) {
        errs.push(apimachinery::FieldError::invalid(
            &apimachinery::Path::new("tailLines"),
            t,
            "must be greater than or equal to 0",
        ));
    }
    if let Some(l) = limit_bytes.filter(|l| *l < 1) {
        errs.push(apimachinery::FieldError::invalid(
            &apimachinery::Path::new("limitBytes"),
            l,
            "must be greater than 0",
        ));
    }
    match (since_seconds, since_time) {
        (Some(_), Some(_)) => errs.push(apimachinery::FieldError::forbidden(
            &apimachinery::Path::new(""),
            "at most one of `sinceTime` or `sinceSeconds` may be specified",
        )),
        (Some(s), None) if s < 1 => errs.push(apimachinery::FieldError::invalid(
            &apimachinery::Path::new("sinceSeconds"),
            s,
            "must be greater than 0",
        )),
        _ => {}
    }
    if !errs.is_empty() {
        return Err(ApiError::invalid("PodLogOptions", "", &rr.name, &errs));
    }
    let pod = get_pod(server, &rr.namespace, &rr.name).await?;
    let container = validate_container(p.first("container"), &pod)?;
    let Some(node) = node_of(&pod) else {
        // Not scheduled yet: nothing to stream (upstream answers 204).
        let mut r = Response::new(crate::full(Bytes::new()));
        *r.status_mut() = StatusCode::NO_CONTENT;
        return Ok(r);
    };
    let endpoint = server.kubelet.endpoint(server, node).await?;
    let mut q: Vec<(&str, String)> = Vec::new();
    for flag in ["follow", "previous", "timestamps"] {
        if p.flag(flag) {
            q.push((flag, "true".into()));
        }
    }
    if let Some(s) = since_seconds {
        q.push(("sinceSeconds", s.to_string()));
    }
    if let Some(t) = since_time {
        q.push(("sinceTime", crate::object::format_time(t)));
    }
    if let Some(t) = tail_lines {
        q.push(("tailLines", t.to_string()));
    }
    if let Some(l) = limit_bytes {
        q.push(("limitBytes", l.to_string()));
    }
    let mut path = format!("/containerLogs/{}/{}/{}", rr.namespace, rr.name, container);
    let query = encode_query(q);
    if !query.is_empty() {
        path = format!("{path}?{query}");
    }
    let url = format!("https://{}{path}", endpoint.authority());
    let backend = Request::builder()
        .method(Method::GET)
        .uri(path.as_str())
        .version(Version::HTTP_11)
        .header(header::HOST, endpoint.authority())
        .body(Empty::<Bytes>::new())
        .map_err(ApiError::internal)?;
    let resp = server
        .kubelet
        .send(&endpoint, true, true, backend)
        .await
        .map_err(|e| unreachable_error(500, "", format!("Get {url:?}: {e}")))?;
    let status = resp.status();
    if !(200..=206).contains(&status.as_u16()) {
        return Err(backend_error(status, resp.into_body(), &rr.name).await);
    }
    let mut out = Response::new(relay(resp.into_body()));
    out.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    Ok(out)
}

/// The error for a kubelet's non-success answer to a log request (upstream's
/// generic response checker).
async fn backend_error(status: StatusCode, body: Incoming, name: &str) -> ApiError {
    let limited = http_body_util::Limited::new(body, MAX_ERROR_BODY);
    let text = match limited.collect().await {
        Ok(b) => String::from_utf8_lossy(&b.to_bytes()).into_owned(),
        Err(e) => return ApiError::internal(e),
    };
    match status.as_u16() {
        500 => ApiError::internal(text),
        400 => ApiError::bad_request(text),
        404 => ApiError::new(404, "NotFound", text).with_details(serde_json::json!({
            "name": name, "kind": "pods/log",
        })),
        code => ApiError::new(code, "", text).with_details(serde_json::json!({
            "name": name, "kind": "pods/log",
        })),
    }
}

/// `pods/exec`, `pods/attach`, `pods/portforward`.
async fn connect(
    server: &Arc<Server>,
    rr: &ResourceRequest,
    sub: &str,
    p: &Params,
    req: Request<Incoming>,
) -> ApiResult<Response<Body>> {
    let pod = get_pod(server, &rr.namespace, &rr.name).await?;
    let container = if sub == "portforward" {
        None
    } else {
        Some(validate_container(p.first("container"), &pod)?)
    };
    let Some(node) = node_of(&pod) else {
        return Err(ApiError::bad_request(format!(
            "pod {} does not have a host assigned",
            rr.name
        )));
    };
    let endpoint = server.kubelet.endpoint(server, node).await?;
    let mut q: Vec<(&str, String)> = Vec::new();
    if sub == "portforward" {
        let ports: Vec<String> = p.all("ports");
        if !ports.is_empty() {
            q.push(("port", ports.join(",")));
        }
    } else {
        // The kubelet's parameter names for the streams.
        for (option, param) in [
            ("stdin", "input"),
            ("stdout", "output"),
            ("stderr", "error"),
            ("tty", "tty"),
        ] {
            if p.flag(option) {
                q.push((param, "1".into()));
            }
        }
        if sub == "exec" {
            for c in p.all("command") {
                q.push(("command", c));
            }
        }
    }
    let path = match (sub, container) {
        ("portforward", _) => format!("/portForward/{}/{}", rr.namespace, rr.name),
        (s, Some(c)) => format!("/{s}/{}/{}/{c}", rr.namespace, rr.name),
        _ => return Err(ApiError::internal("no container")),
    };
    let query = encode_query(q);
    let path = if query.is_empty() {
        path
    } else {
        format!("{path}?{query}")
    };
    if !is_upgrade(req.headers()) {
        return Err(ApiError::bad_request("Upgrade request required"));
    }
    forward(server, req, &endpoint, true, true, &path).await
}

/// `nodes/<name>[:port]/proxy/<path>`.
async fn node_proxy(
    server: &Arc<Server>,
    rr: &ResourceRequest,
    req: Request<Incoming>,
) -> ApiResult<Response<Body>> {
    let (scheme, name, port) = split_scheme_name_port(&rr.name)
        .ok_or_else(|| ApiError::bad_request(format!("invalid node request {:?}", rr.name)))?;
    let kubelet = server.kubelet.endpoint(server, name).await?;
    let path = with_query(&proxy_path(req.uri().path(), "nodes"), req.uri().query());
    if port.is_empty() || port == kubelet.port.to_string() {
        return forward(server, req, &kubelet, true, true, &path).await;
    }
    // Another port of the node: only to addresses a proxy may reach.
    check_proxyable(&kubelet.host).await?;
    let port: u16 = port
        .parse()
        .map_err(|_| ApiError::bad_request(format!("invalid node request {:?}", rr.name)))?;
    let endpoint = Endpoint {
        host: kubelet.host,
        port,
    };
    forward(server, req, &endpoint, scheme == "https", false, &path).await
}

/// `pods/<name>[:port]/proxy/<path>`: to the pod's IP.
async fn pod_proxy(
    server: &Arc<Server>,
    rr: &ResourceRequest,
    req: Request<Incoming>,
) -> ApiResult<Response<Body>> {
    let (scheme, name, port) = split_scheme_name_port(&rr.name)
        .ok_or_else(|| ApiError::bad_request(format!("invalid pod request {:?}", rr.name)))?;
    let pod = get_pod(server, &rr.namespace, name).await?;
    let mut port = port.to_string();
    if port.is_empty() {
        if let Some(p) = pod["spec"]["containers"]
            .as_array()
            .into_iter()
            .flatten()
            .find_map(|c| c["ports"][0]["containerPort"].as_i64())
        {
            port = p.to_string();
        }
    }
    let ip = pod["status"]["podIPs"][0]["ip"]
        .as_str()
        .or_else(|| pod["status"]["podIP"].as_str())
        .unwrap_or("");
    let address_allowed = ip.parse::<IpAddr>().is_ok_and(is_global_unicast);
    if !address_allowed {
        return Err(ApiError::bad_request("address not allowed"));
    }
    let tls = scheme == "https";
    let port: u16 = if port.is_empty() {
        if tls {
            443
        } else {
            80
        }
    } else {
        port.parse()
            .map_err(|_| ApiError::bad_request(format!("invalid pod request {:?}", rr.name)))?
    };
    let endpoint = Endpoint {
        host: ip.to_string(),
        port,
    };
    let path = with_query(&proxy_path(req.uri().path(), "pods"), req.uri().query());
    forward(server, req, &endpoint, tls, false, &path).await
}

/// `name`, `name:port` or `scheme:name:port` (scheme http or https).
pub fn split_scheme_name_port(id: &str) -> Option<(&str, &str, &str)> {
    let parts: Vec<&str> = id.split(':').collect();
    let (scheme, name, port) = match parts.as_slice() {
        [n] => ("", *n, ""),
        [n, p] => ("", *n, *p),
        [s, n, p] => (*s, *n, *p),
        _ => return None,
    };
    (!name.is_empty() && matches!(scheme, "" | "http" | "https")).then_some((scheme, name, port))
}

/// Go's `IP.IsGlobalUnicast`.
fn is_global_unicast(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            !(v4.is_loopback()
                || v4.is_multicast()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast())
        }
        IpAddr::V6(v6) => {
            !(v6.is_loopback()
                || v6.is_multicast()
                || v6.is_unspecified()
                || (v6.segments()[0] & 0xffc0) == 0xfe80)
        }
    }
}

/// Refuses loopback and link-local targets (upstream's `IsProxyableHostname`).
async fn check_proxyable(host: &str) -> ApiResult<()> {
    let addrs: Vec<IpAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![ip],
        Err(_) => tokio::net::lookup_host((host, 0))
            .await
            .map_err(|e| ApiError::bad_request(e.to_string()))?
            .map(|a| a.ip())
            .collect(),
    };
    if addrs.is_empty() {
        return Err(ApiError::bad_request("no addresses for hostname"));
    }
    for ip in addrs {
        let denied = match ip {
            IpAddr::V4(v4) => v4.is_loopback() || v4.is_link_local(),
            IpAddr::V6(v6) => {
                v6.is_loopback()
                    || (v6.segments()[0] & 0xffc0) == 0xfe80
                    || (v6.segments()[0] & 0xff0f) == 0xff02
                    || (v6.segments()[0] & 0xff0f) == 0xff01
            }
        };
        if denied {
            return Err(ApiError::bad_request("address not allowed"));
        }
    }
    Ok(())
}

/// What follows `<resource>/<name>/proxy` in the raw request path, from its `/`.
fn proxy_path(raw: &str, resource: &str) -> String {
    let segs: Vec<&str> = raw.split('/').collect();
    for i in 2..segs.len() {
        if segs[i] == "proxy" && segs[i - 2] == resource {
            return format!("/{}", segs[i + 1..].join("/"));
        }
    }
    "/".to_string()
}

fn with_query(path: &str, query: Option<&str>) -> String {
    match query.filter(|q| !q.is_empty()) {
        Some(q) => format!("{path}?{q}"),
        None => path.to_string(),
    }
}

/// Whether a request asks for a protocol upgrade (a `Connection` header mentioning
/// `upgrade`, as upstream tests it).
pub fn is_upgrade(headers: &HeaderMap) -> bool {
    headers.get_all(header::CONNECTION).iter().any(|v| {
        v.to_str()
            .is_ok_and(|s| s.to_ascii_lowercase().contains("upgrade"))
    })
}

/// Hop-by-hop headers, which a proxy does not forward (plus any the `Connection`
/// header names).
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for n in named {
        headers.remove(n);
    }
    for n in [
        "connection",
        "proxy-connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    ] {
        headers.remove(n);
    }
}

/// Forwards the client's request to `endpoint` at `path` (origin form, with query).
/// Upgrade requests are spliced after a 101; anything else is relayed as answered.
async fn forward(
    server: &Arc<Server>,
    mut req: Request<Incoming>,
    endpoint: &Endpoint,
    tls: bool,
    client_cert: bool,
    path: &str,
) -> ApiResult<Response<Body>> {
    let upgrade = is_upgrade(req.headers());
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
    let (parts, body) = req.into_parts();
    let mut headers = parts.headers;
    // Credentials were for the apiserver; the backend gets the apiserver's own.
    headers.remove(header::AUTHORIZATION);
    if !upgrade {
        strip_hop_by_hop(&mut headers);
    } else {
        headers.remove(header::TRANSFER_ENCODING);
    }
    if let Ok(host) = HeaderValue::from_str(&endpoint.authority()) {
        headers.insert(header::HOST, host);
    }
    let mut backend = Request::builder()
        .method(parts.method.clone())
        .uri(path)
        .version(Version::HTTP_11)
        .body(body)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    *backend.headers_mut() = headers;
    let scheme = if tls { "https" } else { "http" };
    let mut resp = match server
        .kubelet
        .send(endpoint, tls, client_cert, backend)
        .await
    {
        Ok(r) => r,
        Err(e) if upgrade => {
            return Err(unreachable_error(
                500,
                "",
                format!("error dialing backend: {e}"),
            ))
        }
        Err(e @ (DialError::Connect { .. } | DialError::Timeout(_))) => {
            return Err(unreachable_error(
                503,
                "ServiceUnavailable",
                format!("error trying to reach service: {e}"),
            ))
        }
        Err(e) => {
            return Err(unreachable_error(
                502,
                "",
                format!("error from {scheme}://{}{path}: {e}", endpoint.authority()),
            ))
        }
    };
    if let (Some(client_upgrade), StatusCode::SWITCHING_PROTOCOLS) = (client_upgrade, resp.status())
    {
        let backend_upgrade = hyper::upgrade::on(&mut resp);
        let mut out = Response::new(crate::full(Bytes::new()));
        *out.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        *out.headers_mut() = resp.headers().clone();
        tokio::spawn(splice(client_upgrade, backend_upgrade));
        return Ok(out);
    }
    let (parts, body) = resp.into_parts();
    let mut headers = parts.headers;
    strip_hop_by_hop(&mut headers);
    let mut out = Response::new(relay(body));
    *out.status_mut() = parts.status;
    *out.headers_mut() = headers;
    Ok(out)
}

/// Copies bytes both ways between the client's and the backend's upgraded
/// connections until either side closes, then closes both.
async fn splice(client: hyper::upgrade::OnUpgrade, backend: hyper::upgrade::OnUpgrade) {
    let (client, backend) = tokio::join!(client, backend);
    let (Ok(client), Ok(backend)) = (client, backend) else {
        return;
    };
    let (mut client_read, mut client_write) = tokio::io::split(TokioIo::new(client));
    let (mut backend_read, mut backend_write) = tokio::io::split(TokioIo::new(backend));
    tokio::select! {
        _ = tokio::io::copy(&mut client_read, &mut backend_write) => {}
        _ = tokio::io::copy(&mut backend_read, &mut client_write) => {}
    }
    let _ = client_write.shutdown().await;
    let _ = backend_write.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn containers_are_chosen_as_upstream() {
        let pod = json!({"metadata": {"name": "web"}, "spec": {
            "initContainers": [{"name": "init"}],
            "containers": [{"name": "a"}, {"name": "b"}],
        }});
        assert_eq!(
            validate_container(None, &pod).unwrap_err().message,
            "a container name must be specified for pod web, choose one of: [init a b]"
        );
        let e = validate_container(Some("c"), &pod).unwrap_err();
        assert_eq!((e.code, e.reason), (400, "BadRequest"));
        assert_eq!(e.message, "container c is not valid for pod web");
        assert_eq!(validate_container(Some("init"), &pod).unwrap(), "init");
        let one = json!({"metadata": {"name": "one"}, "spec": {"containers": [{"name": "app"}]}});
        assert_eq!(validate_container(None, &one).unwrap(), "app");
        let none = json!({"metadata": {"name": "empty"}, "spec": {}});
        assert_eq!(
            validate_container(None, &none).unwrap_err().message,
            "a container name must be specified for pod empty"
        );
    }

    #[test]
    fn names_ports_and_paths() {
        assert_eq!(split_scheme_name_port("n1"), Some(("", "n1", "")));
        assert_eq!(split_scheme_name_port("n1:8080"), Some(("", "n1", "8080")));
        assert_eq!(
            split_scheme_name_port("https:n1:443"),
            Some(("https", "n1", "443"))
        );
        assert_eq!(split_scheme_name_port("ftp:n1:21"), None);
        assert_eq!(split_scheme_name_port(":80"), None);
        assert_eq!(
            proxy_path("/api/v1/nodes/n1/proxy/stats/summary", "nodes"),
            "/stats/summary"
        );
        assert_eq!(proxy_path("/api/v1/nodes/n1/proxy", "nodes"), "/");
        assert_eq!(
            proxy_path("/api/v1/namespaces/ns/pods/p:80/proxy/a/b/", "pods"),
            "/a/b/"
        );
        assert_eq!(
            encode_query(vec![
                ("tty", "1".into()),
                ("command", "sh".into()),
                ("input", "1".into()),
                ("command", "-c".into()),
            ]),
            "command=sh&command=-c&input=1&tty=1"
        );
    }

    #[test]
    fn flags_read_like_upstream() {
        let p = Params::parse(Some("a=true&b=1&c=false&d=0&e=&f=FALSE&g=yes"));
        let got: Vec<bool> = ["a", "b", "c", "d", "e", "f", "g", "h"]
            .iter()
            .map(|k| p.flag(k))
            .collect();
        assert_eq!(got, [true, true, false, false, true, false, true, false]);
    }

    #[test]
    fn global_unicast() {
        for (ip, want) in [
            ("10.42.0.5", true),
            ("127.0.0.1", false),
            ("169.254.1.1", false),
            ("0.0.0.0", false),
            ("fd00::5", true),
            ("::1", false),
            ("fe80::1", false),
        ] {
            assert_eq!(is_global_unicast(ip.parse().unwrap()), want, "{ip}");
        }
    }

    #[test]
    fn upgrade_detection() {
        let mut h = HeaderMap::new();
        assert!(!is_upgrade(&h));
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, Upgrade"),
        );
        assert!(is_upgrade(&h));
    }
}

#[cfg(test)]
mod api_tests {
    use super::*;
    use crate::testing::{read_json, TestServer};
    use http_body_util::combinators::BoxBody;
    use http_body_util::Full;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use rustls_pki_types::pem::PemObject;
    use serde_json::json;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A request the fake kubelet received.
    #[derive(Clone, Debug)]
    struct Seen {
        method: String,
        path: String,
        client_cn: Option<String>,
        authorization: Option<String>,
    }

    /// A kubelet stand-in: HTTPS with client certificates of the cluster CA required,
    /// serving logs (a follow stream waits for `release` before its second chunk),
    /// exec/attach/portForward upgrades that echo bytes (404 for container `b`), and
    /// anything else with a line naming the request.
    struct FakeKubelet {
        port: u16,
        seen: Arc<parking_lot::Mutex<Vec<Seen>>>,
        release: Arc<tokio::sync::Notify>,
        _dir: tempfile::TempDir,
    }

    impl FakeKubelet {
        fn last(&self) -> Seen {
            self.seen.lock().last().cloned().unwrap()
        }
    }

    type FakeBody = BoxBody<Bytes, Infallible>;

    fn text(code: u16, body: &str) -> Response<FakeBody> {
        let mut r = Response::new(Full::new(Bytes::from(body.to_string())).boxed());
        *r.status_mut() = StatusCode::from_u16(code).unwrap();
        r
    }

    async fn kubelet_answer(
        mut req: Request<Incoming>,
        release: Arc<tokio::sync::Notify>,
    ) -> Response<FakeBody> {
        let path = req.uri().path().to_string();
        let query = req.uri().query().unwrap_or("").to_string();
        if path.starts_with("/containerLogs/") {
            if query.contains("follow=true") {
                let first = Bytes::from(format!("first: {query}\n"));
                let frames = futures::stream::unfold(0, move |i| {
                    let release = release.clone();
                    let first = first.clone();
                    async move {
                        match i {
                            0 => Some((Ok::<_, Infallible>(Frame::data(first)), 1)),
                            1 => {
                                release.notified().await;
                                Some((Ok(Frame::data(Bytes::from_static(b"second\n"))), 2))
                            }
                            _ => None,
                        }
                    }
                });
                return Response::new(StreamBody::new(frames).boxed());
            }
            return text(200, &format!("line1\nline2 {query}\n"));
        }
        let streaming = ["/exec/", "/attach/", "/portForward/"]
            .iter()
            .any(|p| path.starts_with(p));
        if !streaming {
            let mut r = text(200, &format!("proxied {} {path}?{query}", req.method()));
            r.headers_mut()
                .insert("x-kubelet", HeaderValue::from_static("yes"));
            return r;
        }
        if path.ends_with("/b") {
            return text(404, "container not found (\"b\")");
        }
        if !is_upgrade(req.headers()) {
            return text(400, "upgrade required by the fake kubelet");
        }
        let mut r = text(101, "");
        r = {
            let (mut parts, _) = r.into_parts();
            for (name, fallback) in [
                ("upgrade", ""),
                ("x-stream-protocol-version", ""),
                ("sec-websocket-protocol", ""),
            ] {
                if let Some(v) = req.headers().get(name) {
                    parts.headers.insert(name, v.clone());
                } else if !fallback.is_empty() {
                    parts
                        .headers
                        .insert(name, HeaderValue::from_static(fallback));
                }
            }
            parts
                .headers
                .insert("connection", HeaderValue::from_static("Upgrade"));
            Response::from_parts(parts, Empty::new().boxed())
        };
        let on = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            if let Ok(up) = on.await {
                let (mut r, mut w) = tokio::io::split(TokioIo::new(up));
                let _ = tokio::io::copy(&mut r, &mut w).await;
            }
        });
        r
    }

    async fn fake_kubelet(cluster_ca: &str) -> FakeKubelet {
        let dir = tempfile::tempdir().unwrap();
        let own_ca = pki::ClusterCa::load_or_create(dir.path()).unwrap();
        let cert = own_ca
            .issue_server(
                "kubelet",
                &["localhost".into()],
                &["127.0.0.1".parse().unwrap()],
            )
            .unwrap();
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(cluster_ca.as_bytes()) {
            roots.add(c.unwrap()).unwrap();
        }
        let verifier = rustls::server::WebPkiClientVerifier::builder(Arc::new(roots))
            .build()
            .unwrap();
        let mut config = rustls::ServerConfig::builder()
            .with_client_cert_verifier(verifier)
            .with_single_cert(
                CertificateDer::pem_slice_iter(cert.cert_pem.as_bytes())
                    .collect::<Result<_, _>>()
                    .unwrap(),
                PrivateKeyDer::from_pem_slice(cert.key_pem.as_bytes()).unwrap(),
            )
            .unwrap();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(parking_lot::Mutex::new(Vec::new()));
        let release = Arc::new(tokio::sync::Notify::new());
        let (seen2, release2) = (seen.clone(), release.clone());
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let acceptor = acceptor.clone();
                let seen = seen2.clone();
                let release = release2.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let client_cn = tls
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|c| c.first())
                        .and_then(|c| crate::auth::user_from_cert(c))
                        .map(|u| u.name);
                    let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                        seen.lock().push(Seen {
                            method: req.method().to_string(),
                            path: req.uri().to_string(),
                            client_cn: client_cn.clone(),
                            authorization: req
                                .headers()
                                .get("authorization")
                                .map(|v| v.to_str().unwrap().to_string()),
                        });
                        let release = release.clone();
                        async move { Ok::<_, Infallible>(kubelet_answer(req, release).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), svc)
                        .with_upgrades()
                        .await;
                });
            }
        });
        FakeKubelet {
            port,
            seen,
            release,
            _dir: dir,
        }
    }

    /// A node whose kubelet is `port` on 127.0.0.1.
    async fn register_node(api: &TestServer, name: &str, port: u16) {
        api.create(
            "/api/v1/nodes",
            json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}}),
        )
        .await;
        let path = format!("/api/v1/nodes/{name}/status");
        let (_, mut node) = api.call("GET", &path, None).await;
        node["status"]["addresses"] = json!([
            {"type": "Hostname", "address": format!("{name}-host")},
            {"type": "InternalIP", "address": "127.0.0.1"},
        ]);
        node["status"]["daemonEndpoints"] = json!({"kubeletEndpoint": {"Port": port}});
        let (code, got) = api.call("PUT", &path, Some(&node)).await;
        assert_eq!(code, StatusCode::OK, "{got}");
    }

    async fn setup() -> (TestServer, FakeKubelet) {
        let api =
            TestServer::start_with(|c| c.disable_admission_plugins = vec!["ServiceAccount".into()])
                .await;
        let kubelet = fake_kubelet(&api.ca_pem()).await;
        register_node(&api, "n1", kubelet.port).await;
        let pods = "/api/v1/namespaces/default/pods";
        let pod = |name: &str, spec: Value| json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec});
        api.create(
            pods,
            pod(
                "web",
                json!({"nodeName": "n1",
                    "initContainers": [{"name": "init", "image": "busybox"}],
                    "containers": [{"name": "a", "image": "busybox"}, {"name": "b", "image": "busybox"}]}),
            ),
        )
        .await;
        api.create(
            pods,
            pod(
                "solo",
                json!({"nodeName": "n1", "containers": [{"name": "c", "image": "busybox"}]}),
            ),
        )
        .await;
        api.create(
            pods,
            pod(
                "pending",
                json!({"containers": [{"name": "c", "image": "busybox"}]}),
            ),
        )
        .await;
        (api, kubelet)
    }

    fn upgrade_request(method: &str, path: &str, headers: &[(&str, &str)]) -> Request<Full<Bytes>> {
        let mut req = TestServer::request(method, path, None);
        for (k, v) in headers {
            req.headers_mut().append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        req
    }

    const SPDY: &[(&str, &str)] = &[
        ("connection", "Upgrade"),
        ("upgrade", "SPDY/3.1"),
        ("x-stream-protocol-version", "v4.channel.k8s.io"),
        ("x-stream-protocol-version", "v3.channel.k8s.io"),
    ];

    /// Sends an upgrade request expecting 101, then checks bytes come back echoed.
    async fn echo_through(api: &TestServer, req: Request<Full<Bytes>>) -> HeaderMap {
        let resp = api.send(req, true).await;
        assert_eq!(resp.status(), StatusCode::SWITCHING_PROTOCOLS);
        let headers = resp.headers().clone();
        let mut io = TokioIo::new(hyper::upgrade::on(resp).await.unwrap());
        for msg in [&b"ping"[..], &b"and more bytes"[..]] {
            io.write_all(msg).await.unwrap();
            let mut back = vec![0; msg.len()];
            tokio::time::timeout(Duration::from_secs(10), io.read_exact(&mut back))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(back, msg);
        }
        headers
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn logs_are_validated_and_streamed_from_the_kubelet() {
        let (api, kubelet) = setup().await;
        let logs = "/api/v1/namespaces/default/pods";
        let (code, s) = api.call("GET", &format!("{logs}/web/log"), None).await;
        assert_eq!(code, StatusCode::BAD_REQUEST);
        assert_eq!(
            s,
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": "a container name must be specified for pod web, choose one of: [init a b]",
                "reason": "BadRequest", "code": 400})
        );
        let (code, s) = api
            .call("GET", &format!("{logs}/web/log?container=zz"), None)
            .await;
        assert_eq!(code, StatusCode::BAD_REQUEST);
        assert_eq!(s["message"], "container zz is not valid for pod web");
        let (code, s) = api
            .call("GET", &format!("{logs}/solo/log?tailLines=-1"), None)
            .await;
        assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            s["message"],
            "PodLogOptions \"solo\" is invalid: tailLines: Invalid value: -1: must be greater than or equal to 0"
        );
        let (code, s) = api
            .call(
                "GET",
                &format!("{logs}/solo/log?sinceSeconds=5&sinceTime=2024-01-01T00:00:00Z"),
                None,
            )
            .await;
        assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            s["message"],
            "PodLogOptions \"solo\" is invalid: []: Forbidden: at most one of `sinceTime` or `sinceSeconds` may be specified"
        );
        let (code, s) = api.call("GET", &format!("{logs}/nope/log"), None).await;
        assert_eq!(code, StatusCode::NOT_FOUND);
        assert_eq!(s["message"], "pods \"nope\" not found");
        // Not scheduled: nothing to stream yet.
        let resp = api
            .send(
                TestServer::request("GET", &format!("{logs}/pending/log"), None),
                true,
            )
            .await;
        assert_eq!(resp.status(), StatusCode::NO_CONTENT);
        assert!(kubelet.seen.lock().is_empty());

        // Parameters reach the kubelet, with the apiserver's client certificate.
        let resp = api
            .send(
                TestServer::request(
                    "GET",
                    &format!("{logs}/solo/log?tailLines=5&timestamps=true&sinceTime=2024-05-01T10:00:00%2B02:00"),
                    None,
                ),
                true,
            )
            .await;
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.headers()["content-type"], "text/plain");
        let (_, body) = read_json(resp).await;
        assert_eq!(
            body,
            "line1\nline2 sinceTime=2024-05-01T08%3A00%3A00Z&tailLines=5&timestamps=true\n"
        );
        let seen = kubelet.last();
        assert_eq!(seen.method, "GET");
        assert_eq!(
            seen.path,
            "/containerLogs/default/solo/c?sinceTime=2024-05-01T08%3A00%3A00Z&tailLines=5&timestamps=true"
        );
        assert_eq!(
            seen.client_cn.as_deref(),
            Some("kube-apiserver-kubelet-client")
        );
        assert_eq!(seen.authorization, None);

        // follow: the first chunk arrives while the kubelet still holds the second.
        let resp = api
            .send(
                TestServer::request(
                    "GET",
                    &format!("{logs}/web/log?container=a&follow=true&sinceSeconds=10&limitBytes=100&previous=false&insecureSkipTLSVerifyBackend=true"),
                    None,
                ),
                true,
            )
            .await;
        assert_eq!(resp.status(), StatusCode::OK);
        let mut body = resp.into_body();
        let first = tokio::time::timeout(Duration::from_secs(10), body.frame())
            .await
            .expect("first chunk flushed before the stream ends")
            .unwrap()
            .unwrap()
            .into_data()
            .unwrap();
        assert_eq!(
            first,
            Bytes::from_static(b"first: follow=true&limitBytes=100&sinceSeconds=10\n")
        );
        kubelet.release.notify_one();
        let rest = body.collect().await.unwrap().to_bytes();
        assert_eq!(rest, Bytes::from_static(b"second\n"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn exec_attach_and_port_forward_are_spliced_to_the_kubelet() {
        let (api, kubelet) = setup().await;
        let pods = "/api/v1/namespaces/default/pods";
        let (code, s) = api
            .call("POST", &format!("{pods}/web/exec?command=ls"), None)
            .await;
        assert_eq!(code, StatusCode::BAD_REQUEST);
        assert_eq!(
            s["message"],
            "a container name must be specified for pod web, choose one of: [init a b]"
        );
        let (code, s) = api
            .call(
                "POST",
                &format!("{pods}/pending/exec?command=ls&container=c"),
                None,
            )
            .await;
        assert_eq!(code, StatusCode::BAD_REQUEST);
        assert_eq!(s["message"], "pod pending does not have a host assigned");
        let (code, s) = api
            .call("POST", &format!("{pods}/solo/exec?command=ls"), None)
            .await;
        assert_eq!(code, StatusCode::BAD_REQUEST);
        assert_eq!(s["message"], "Upgrade request required");
        let (code, _) = api
            .call("PUT", &format!("{pods}/solo/exec?command=ls"), None)
            .await;
        assert_eq!(code, StatusCode::METHOD_NOT_ALLOWED);

        // SPDY exec: the 101 and its headers come from the kubelet, bytes flow both ways.
        let mut req = upgrade_request(
            "POST",
            &format!("{pods}/solo/exec?command=echo&command=hi&stdin=true&stdout=true&stderr=false&tty=false"),
            SPDY,
        );
        req.headers_mut().insert(
            "authorization",
            HeaderValue::from_static("Bearer not-for-kubelets"),
        );
        let headers = echo_through(&api, req).await;
        assert_eq!(headers["upgrade"], "SPDY/3.1");
        assert_eq!(headers["connection"], "Upgrade");
        assert_eq!(headers["x-stream-protocol-version"], "v4.channel.k8s.io");
        let seen = kubelet.last();
        assert_eq!(
            (seen.method.as_str(), seen.path.as_str()),
            (
                "POST",
                "/exec/default/solo/c?command=echo&command=hi&input=1&output=1"
            )
        );
        assert_eq!(
            seen.client_cn.as_deref(),
            Some("kube-apiserver-kubelet-client")
        );
        assert_eq!(seen.authorization, None);

        // WebSocket attach.
        let ws = [
            ("connection", "Upgrade"),
            ("upgrade", "websocket"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ("sec-websocket-version", "13"),
            ("sec-websocket-protocol", "v5.channel.k8s.io"),
        ];
        let headers = echo_through(
            &api,
            upgrade_request(
                "GET",
                &format!("{pods}/web/attach?container=a&stdout=1&tty=true"),
                &ws,
            ),
        )
        .await;
        assert_eq!(headers["sec-websocket-protocol"], "v5.channel.k8s.io");
        assert_eq!(kubelet.last().path, "/attach/default/web/a?output=1&tty=1");

        // Port-forward (no container), ports passed on.
        echo_through(
            &api,
            upgrade_request(
                "GET",
                &format!("{pods}/solo/portforward?ports=8080&ports=9090"),
                SPDY,
            ),
        )
        .await;
        assert_eq!(
            kubelet.last().path,
            "/portForward/default/solo?port=8080%2C9090"
        );

        // A kubelet's refusal is passed back as it is.
        let resp = api
            .send(
                upgrade_request(
                    "POST",
                    &format!("{pods}/web/exec?container=b&command=sh"),
                    SPDY,
                ),
                true,
            )
            .await;
        assert_eq!(resp.status(), StatusCode::NOT_FOUND);
        let (_, body) = read_json(resp).await;
        assert_eq!(body, "container not found (\"b\")");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn node_and_pod_proxies() {
        let (api, kubelet) = setup().await;
        let resp = api
            .send(
                TestServer::request("GET", "/api/v1/nodes/n1/proxy/healthz?verbose=1", None),
                true,
            )
            .await;
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.headers()["x-kubelet"], "yes");
        let (_, body) = read_json(resp).await;
        assert_eq!(body, "proxied GET /healthz?verbose=1");
        assert_eq!(
            kubelet.last().client_cn.as_deref(),
            Some("kube-apiserver-kubelet-client")
        );
        let (code, body) = api
            .call(
                "POST",
                &format!("/api/v1/nodes/n1:{}/proxy/", kubelet.port),
                None,
            )
            .await;
        assert_eq!(code, StatusCode::OK);
        assert_eq!(body, "proxied POST /?");
        // Upgrades pass through the node proxy too.
        echo_through(
            &api,
            upgrade_request(
                "POST",
                "/api/v1/nodes/n1/proxy/exec/default/solo/c?command=sh",
                SPDY,
            ),
        )
        .await;
        assert_eq!(kubelet.last().path, "/exec/default/solo/c?command=sh");

        // Other ports of a loopback node, pods without a routable IP: refused.
        let (code, s) = api.call("GET", "/api/v1/nodes/n1:1234/proxy/", None).await;
        assert_eq!(
            (code, s["message"].as_str()),
            (StatusCode::BAD_REQUEST, Some("address not allowed"))
        );
        let (code, s) = api.call("GET", "/api/v1/nodes/nope/proxy/", None).await;
        assert_eq!(
            (code, s["message"].as_str()),
            (StatusCode::NOT_FOUND, Some("nodes \"nope\" not found"))
        );
        let (code, s) = api
            .call("GET", "/api/v1/namespaces/default/pods/solo/proxy/", None)
            .await;
        assert_eq!(
            (code, s["message"].as_str()),
            (StatusCode::BAD_REQUEST, Some("address not allowed"))
        );
        let (code, s) = api
            .call(
                "GET",
                "/api/v1/namespaces/default/pods/ftp:solo:21/proxy/",
                None,
            )
            .await;
        assert_eq!(code, StatusCode::BAD_REQUEST);
        assert_eq!(s["message"], "invalid pod request \"ftp:solo:21\"");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn unreachable_kubelets() {
        let api =
            TestServer::start_with(|c| c.disable_admission_plugins = vec!["ServiceAccount".into()])
                .await;
        // A port nobody listens on.
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        register_node(&api, "dead", closed).await;
        api.create(
            "/api/v1/nodes",
            json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "bare"}}),
        )
        .await;
        for (name, node) in [("p1", "dead"), ("p2", "bare")] {
            api.create(
                "/api/v1/namespaces/default/pods",
                json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
                    "spec": {"nodeName": node, "containers": [{"name": "c", "image": "busybox"}]}}),
            )
            .await;
        }
        let (code, s) = api
            .call("GET", "/api/v1/namespaces/default/pods/p1/log", None)
            .await;
        assert_eq!(code, StatusCode::INTERNAL_SERVER_ERROR);
        let msg = s["message"].as_str().unwrap();
        assert!(
            msg.starts_with(&format!(
                "Get \"https://127.0.0.1:{closed}/containerLogs/default/p1/c\": dial tcp 127.0.0.1:{closed}: "
            )),
            "{msg}"
        );
        let resp = api
            .send(
                upgrade_request(
                    "POST",
                    "/api/v1/namespaces/default/pods/p1/exec?command=sh",
                    SPDY,
                ),
                true,
            )
            .await;
        let (code, s) = read_json(resp).await;
        assert_eq!(code, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(
            s["message"].as_str().unwrap().starts_with(&format!(
                "error dialing backend: dial tcp 127.0.0.1:{closed}: "
            )),
            "{s}"
        );
        let (code, s) = api
            .call("GET", "/api/v1/namespaces/default/pods/p2/log", None)
            .await;
        assert_eq!(code, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            s["message"],
            "no preferred addresses found; known addresses: []"
        );
    }
}
