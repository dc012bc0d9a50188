//! Request routing of the kubelet's API: `/healthz` (open), then client-certificate
//! authentication (401 `Unauthorized` otherwise), `/pods`, `/stats/summary`,
//! `/metrics/resource`, `/containerLogs/{ns}/{pod}/{container}`,
//! `/exec|attach/{ns}/{pod}[/{uid}]/{container}` and `/portForward/{ns}/{pod}[/{uid}]`,
//! with upstream's status codes and error texts.

use std::convert::Infallible;
use std::io;
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use http::{header, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::TokioIo;
use k8s_openapi::api::core::v1::{ContainerStatus, Pod};

use crate::logs::{read_logs, LogOptions};
use crate::portforward::{self, Target};
use crate::remotecommand::{self, Action, StreamOptions};
use crate::stats::StatsCollector;
use crate::tls::Identity;
use crate::ws;
use crate::{labels, Host};

/// Response body type.
pub(crate) type Body = BoxBody<Bytes, io::Error>;

/// What every request handler shares.
pub(crate) struct State {
    pub host: Arc<dyn Host>,
    pub stats: StatsCollector,
}

fn full(data: impl Into<Bytes>) -> Body {
    Full::new(data.into())
        .map_err(|e: Infallible| match e {})
        .boxed()
}

fn text(status: StatusCode, body: impl Into<String>) -> Response<Body> {
    let mut r = Response::new(full(body.into()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn json(value: &serde_json::Value) -> Response<Body> {
    let mut r = Response::new(full(serde_json::to_vec(value).unwrap_or_default()));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    r
}

fn not_found() -> Response<Body> {
    text(StatusCode::NOT_FOUND, "404 page not found\n")
}

fn decode_segment(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// Handles one request.
pub(crate) async fn handle(
    state: Arc<State>,
    identity: Option<Identity>,
    mut req: Request<Incoming>,
) -> Response<Body> {
    let path = req.uri().path().to_string();
    if path == "/healthz" || path.starts_with("/healthz/") {
        return text(StatusCode::OK, "ok");
    }
    if identity.is_none() {
        return text(StatusCode::UNAUTHORIZED, "Unauthorized");
    }
    let query: Vec<(String, String)> =
        url::form_urlencoded::parse(req.uri().query().unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    let segs: Vec<String> = path
        .trim_start_matches('/')
        .split('/')
        .map(decode_segment)
        .collect();
    let seg: Vec<&str> = segs.iter().map(String::as_str).collect();
    match seg.as_slice() {
        ["pods"] | ["pods", ""] => pods(&state),
        ["stats", "summary"] | ["stats", "summary", ""] => {
            let only = query
                .iter()
                .any(|(k, v)| k == "only_cpu_and_memory" && v == "true");
            let st = state.clone();
            match tokio::task::spawn_blocking(move || st.stats.summary(st.host.as_ref(), only))
                .await
            {
                Ok(v) => json(&v),
                Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
            }
        }
        ["metrics", "resource"] => {
            let st = state.clone();
            match tokio::task::spawn_blocking(move || st.stats.resource_metrics(st.host.as_ref()))
                .await
            {
                Ok(t) => {
                    let mut r = text(StatusCode::OK, t);
                    r.headers_mut().insert(
                        header::CONTENT_TYPE,
                        header::HeaderValue::from_static(
                            "text/plain; version=0.0.4; charset=utf-8",
                        ),
                    );
                    r
                }
                Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
            }
        }
        ["containerLogs", ns, pod, container] => {
            container_logs(&state, ns, pod, container, &query).await
        }
        ["containerLogs", ..] => text(
            StatusCode::BAD_REQUEST,
            r#"{"message": "Missing container name."}"#,
        ),
        ["exec", ns, pod, container] => {
            streaming(&state, &mut req, ns, pod, None, container, false, &query)
        }
        ["exec", ns, pod, uid, container] => streaming(
            &state,
            &mut req,
            ns,
            pod,
            Some(uid),
            container,
            false,
            &query,
        ),
        ["attach", ns, pod, container] => {
            streaming(&state, &mut req, ns, pod, None, container, true, &query)
        }
        ["attach", ns, pod, uid, container] => streaming(
            &state,
            &mut req,
            ns,
            pod,
            Some(uid),
            container,
            true,
            &query,
        ),
        ["portForward", ns, pod] => port_forward(&state, &mut req, ns, pod, None, &query),
        ["portForward", ns, pod, uid] => port_forward(&state, &mut req, ns, pod, Some(uid), &query),
        _ => not_found(),
    }
}

fn pods(state: &State) -> Response<Body> {
    let items: Vec<serde_json::Value> = state
        .host
        .pods()
        .iter()
        .filter_map(|p| serde_json::to_value(p).ok())
        .map(|mut v| {
            // List items carry no type meta.
            if let Some(m) = v.as_object_mut() {
                m.remove("apiVersion");
                m.remove("kind");
            }
            v
        })
        .collect();
    json(&serde_json::json!({
        "kind": "PodList",
        "apiVersion": "v1",
        "metadata": {},
        "items": items,
    }))
}

fn find_pod(host: &dyn Host, namespace: &str, name: &str) -> Option<Pod> {
    host.pods().into_iter().find(|p| {
        p.metadata.namespace.as_deref() == Some(namespace)
            && p.metadata.name.as_deref() == Some(name)
    })
}

fn in_spec(pod: &Pod, container: &str) -> bool {
    let Some(spec) = &pod.spec else {
        return false;
    };
    spec.containers.iter().any(|c| c.name == container)
        || spec
            .init_containers
            .iter()
            .flatten()
            .any(|c| c.name == container)
        || spec
            .ephemeral_containers
            .iter()
            .flatten()
            .any(|c| c.name == container)
}

/// The runtime id in a status `containerID` (`<runtime>://<id>`).
fn runtime_id(container_id: &str) -> &str {
    container_id
        .split_once("://")
        .map(|(_, id)| id)
        .unwrap_or(container_id)
}

/// Which container instance's log to read, following the kubelet's rules on the pod
/// status; the error is the 400 body.
pub(crate) fn log_container_id(
    pod: &Pod,
    container: &str,
    previous: bool,
) -> Result<String, String> {
    let pod_name = pod.metadata.name.clone().unwrap_or_default();
    let status = pod.status.clone().unwrap_or_default();
    let find = |list: &Option<Vec<ContainerStatus>>| {
        list.iter().flatten().find(|s| s.name == container).cloned()
    };
    let cs = find(&status.container_statuses)
        .or_else(|| find(&status.init_container_statuses))
        .or_else(|| find(&status.ephemeral_container_statuses))
        .ok_or_else(|| format!("container {container:?} in pod {pod_name:?} is not available"))?;
    let last = cs.last_state.as_ref().and_then(|s| s.terminated.as_ref());
    let last_id = last
        .and_then(|t| t.container_id.clone())
        .filter(|i| !i.is_empty());
    let state = cs.state.clone().unwrap_or_default();
    let terminated_msg = || format!("container {container:?} in pod {pod_name:?} is terminated");
    if previous {
        return last_id.ok_or_else(|| {
            format!("previous terminated container {container:?} in pod {pod_name:?} not found")
        });
    }
    if state.running.is_some() {
        return cs.container_id.clone().ok_or_else(|| {
            format!("container {container:?} in pod {pod_name:?} is not available")
        });
    }
    if let Some(t) = &state.terminated {
        return match t.container_id.clone().filter(|i| !i.is_empty()) {
            Some(id) => Ok(id),
            None => last_id.ok_or_else(terminated_msg),
        };
    }
    if last.is_some() {
        return last_id.ok_or_else(terminated_msg);
    }
    if let Some(w) = &state.waiting {
        let reason = w.reason.clone().unwrap_or_default();
        let why = match reason.as_str() {
            "ErrImagePull" => "image can't be pulled".to_string(),
            "ImagePullBackOff" => "trying and failing to pull image".to_string(),
            _ => reason,
        };
        return Err(format!(
            "container {container:?} in pod {pod_name:?} is waiting to start: {why}"
        ));
    }
    Err(format!(
        "container {container:?} in pod {pod_name:?} is waiting to start - no logs yet"
    ))
}

async fn container_logs(
    state: &Arc<State>,
    ns: &str,
    pod: &str,
    container: &str,
    query: &[(String, String)],
) -> Response<Body> {
    if pod.is_empty() {
        return text(StatusCode::BAD_REQUEST, r#"{"message": "Missing podID."}"#);
    }
    if container.is_empty() {
        return text(
            StatusCode::BAD_REQUEST,
            r#"{"message": "Missing container name."}"#,
        );
    }
    if ns.is_empty() {
        return text(
            StatusCode::BAD_REQUEST,
            r#"{"message": "Missing podNamespace."}"#,
        );
    }
    let opts = match LogOptions::from_query(query, jiff::Timestamp::now()) {
        Ok(o) => o,
        Err((code, body)) => return text(code, body),
    };
    let host = state.host.clone();
    let Some(p) = find_pod(host.as_ref(), ns, pod) else {
        return text(StatusCode::NOT_FOUND, format!("pod {pod:?} does not exist"));
    };
    if !in_spec(&p, container) {
        return text(
            StatusCode::NOT_FOUND,
            format!("container {container:?} not found in pod {pod:?}"),
        );
    }
    let id = match log_container_id(&p, container, opts.previous) {
        Ok(id) => runtime_id(&id).to_string(),
        Err(msg) => return text(StatusCode::BAD_REQUEST, msg),
    };
    let Some(path) = host.container_log_path(&id) else {
        return text(
            StatusCode::BAD_REQUEST,
            format!("failed to get container status {id:?}: container not found"),
        );
    };
    if std::fs::metadata(&path).is_err() {
        return text(
            StatusCode::BAD_REQUEST,
            format!(
                "failed to try resolving symlinks in path {:?}: lstat {}: no such file or directory",
                path.display().to_string(),
                path.display()
            ),
        );
    }
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(32);
    tokio::task::spawn_blocking(move || {
        let rt = host.runtime().clone();
        let running = || {
            rt.get(&id)
                .ok()
                .flatten()
                .is_some_and(|i| !i.state.is_exited())
        };
        if let Err(e) = read_logs(&path, &opts, &running, &mut |_, b| {
            tx.blocking_send(Bytes::copy_from_slice(b)).is_ok()
        }) {
            tracing::debug!(error = %e, "reading container log failed");
        }
    });
    let stream = tokio_stream_from(rx).map(|b| Ok::<_, io::Error>(Frame::data(b)));
    let mut r = Response::new(BodyExt::boxed(StreamBody::new(stream)));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn tokio_stream_from(
    mut rx: tokio::sync::mpsc::Receiver<Bytes>,
) -> impl futures::Stream<Item = Bytes> + Send + Sync + 'static {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// The running instance of a pod's container.
fn running_container(host: &dyn Host, pod_uid: &str, container: &str) -> Option<String> {
    let list = host.runtime().list().ok()?;
    list.into_iter()
        .filter(|c| {
            c.labels.get(labels::POD_UID).map(String::as_str) == Some(pod_uid)
                && c.labels.get(labels::CONTAINER_NAME).map(String::as_str) == Some(container)
                && matches!(c.state, container_runtime::ContainerState::Running { .. })
        })
        .max_by_key(|c| {
            c.labels
                .get(labels::ATTEMPT)
                .and_then(|a| a.parse::<u32>().ok())
                .unwrap_or(0)
        })
        .map(|c| c.id)
}

fn header_has_token(req: &Request<Incoming>, name: header::HeaderName, token: &str) -> bool {
    req.headers().get_all(name).iter().any(|v| {
        v.to_str()
            .map(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
            .unwrap_or(false)
    })
}

/// Negotiates the SPDY upgrade; `Err` is the response to send instead.
fn spdy_handshake(
    req: &Request<Incoming>,
    supported: &[&str],
) -> Result<Response<Body>, Box<Response<Body>>> {
    let offered: Vec<String> = req
        .headers()
        .get_all("x-stream-protocol-version")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|s| s.split(','))
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    if offered.is_empty() {
        return Err(Box::new(text(
            StatusCode::BAD_REQUEST,
            "unable to upgrade: X-Stream-Protocol-Version is required",
        )));
    }
    let Some(protocol) = offered.iter().find(|p| supported.contains(&p.as_str())) else {
        let mut r = text(
            StatusCode::FORBIDDEN,
            format!(
                "unable to upgrade: unable to negotiate protocol: client supports {}, server accepts {}",
                go_list(&offered),
                go_list(&supported.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            ),
        );
        for p in supported {
            if let Ok(v) = header::HeaderValue::from_str(p) {
                r.headers_mut()
                    .append("x-accepted-stream-protocol-versions", v);
            }
        }
        return Err(Box::new(r));
    };
    if !header_has_token(req, header::CONNECTION, "upgrade")
        || !req
            .headers()
            .get(header::UPGRADE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.to_ascii_lowercase().contains("spdy/3.1"))
    {
        return Err(Box::new(text(
            StatusCode::BAD_REQUEST,
            "unable to upgrade: missing upgrade headers in request",
        )));
    }
    let mut r = Response::new(full(Bytes::new()));
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert(
        header::CONNECTION,
        header::HeaderValue::from_static("Upgrade"),
    );
    h.insert(
        header::UPGRADE,
        header::HeaderValue::from_static("SPDY/3.1"),
    );
    if let Ok(v) = header::HeaderValue::from_str(protocol) {
        h.insert("x-stream-protocol-version", v);
    }
    Ok(r)
}

/// Go's `%v` of a string slice.
fn go_list(v: &[String]) -> String {
    format!("[{}]", v.join(" "))
}

fn ws_handshake(
    req: &Request<Incoming>,
    supported: &[&str],
) -> Result<(String, Response<Body>), Box<Response<Body>>> {
    let offered = ws::offered_protocols(req);
    let Some(protocol) = ws::negotiate(&offered, supported) else {
        return Err(Box::new(text(
            StatusCode::BAD_REQUEST,
            format!(
                "requested protocol(s) are not supported: {}; supports {}",
                go_list(&offered),
                go_list(&supported.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            ),
        )));
    };
    let Some(builder) = ws::accept_response(req, &protocol) else {
        return Err(Box::new(text(
            StatusCode::BAD_REQUEST,
            "websocket: the client is not using the websocket protocol",
        )));
    };
    match builder.body(full(Bytes::new())) {
        Ok(r) => Ok((protocol, r)),
        Err(e) => Err(Box::new(text(
            StatusCode::INTERNAL_SERVER_ERROR,
            e.to_string(),
        ))),
    }
}

#[allow(clippy::too_many_arguments)]
fn streaming(
    state: &Arc<State>,
    req: &mut Request<Incoming>,
    ns: &str,
    pod: &str,
    uid: Option<&str>,
    container: &str,
    attach: bool,
    query: &[(String, String)],
) -> Response<Body> {
    let opts = match StreamOptions::from_query(query) {
        Ok(o) => o,
        Err(msg) => return text(StatusCode::BAD_REQUEST, msg),
    };
    let host = state.host.clone();
    let Some(p) = find_pod(host.as_ref(), ns, pod) else {
        return text(StatusCode::NOT_FOUND, "pod does not exist");
    };
    let pod_uid = p.metadata.uid.clone().unwrap_or_default();
    if uid.is_some_and(|u| u != pod_uid) {
        return text(StatusCode::NOT_FOUND, "pod not found");
    }
    let Some(id) = running_container(host.as_ref(), &pod_uid, container) else {
        return text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("container not found ({container:?})"),
        );
    };
    let action = if attach {
        match host.runtime().get(&id).ok().flatten() {
            Some(info) => Action::Attach {
                container_id: id,
                log_path: info.log_path,
            },
            None => {
                return text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("container not found ({container:?})"),
                )
            }
        }
    } else {
        Action::Exec {
            container_id: id,
            command: opts.command.clone(),
        }
    };
    let runtime = host.runtime().clone();
    if ws::is_websocket_request(req) {
        let (protocol, resp) = match ws_handshake(req, remotecommand::WS_PROTOCOLS) {
            Ok(x) => x,
            Err(r) => return *r,
        };
        let on_upgrade = hyper::upgrade::on(req);
        tokio::spawn(async move {
            match on_upgrade.await {
                Ok(up) => {
                    let socket = ws::from_upgraded(up).await;
                    remotecommand::serve_ws(socket, protocol, opts, runtime, action).await;
                }
                Err(e) => tracing::debug!(error = %e, "upgrade failed"),
            }
        });
        return resp;
    }
    let resp = match spdy_handshake(req, remotecommand::SPDY_PROTOCOLS) {
        Ok(r) => r,
        Err(r) => return *r,
    };
    let protocol = resp
        .headers()
        .get("x-stream-protocol-version")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let on_upgrade = hyper::upgrade::on(req);
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(up) => {
                remotecommand::serve_spdy(TokioIo::new(up), protocol, opts, runtime, action).await
            }
            Err(e) => tracing::debug!(error = %e, "upgrade failed"),
        }
    });
    resp
}

fn port_forward(
    state: &Arc<State>,
    req: &mut Request<Incoming>,
    ns: &str,
    pod: &str,
    uid: Option<&str>,
    query: &[(String, String)],
) -> Response<Body> {
    let host = state.host.clone();
    let Some(p) = find_pod(host.as_ref(), ns, pod) else {
        return text(StatusCode::NOT_FOUND, "pod does not exist");
    };
    let pod_uid = p.metadata.uid.clone().unwrap_or_default();
    if uid.is_some_and(|u| u != pod_uid) {
        return text(StatusCode::NOT_FOUND, "pod not found");
    }
    let host_network = p
        .spec
        .as_ref()
        .and_then(|s| s.host_network)
        .unwrap_or(false);
    let netns = if host_network {
        None
    } else {
        match host.pod_netns(&pod_uid) {
            Some(n) => Some(n),
            None => {
                return text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("pod not found ({:?})", format!("{pod}_{ns}")),
                )
            }
        }
    };
    let target = Arc::new(Target {
        netns,
        pod_id: pod_uid,
    });
    if ws::is_websocket_request(req) {
        let (protocol, resp) = match ws_handshake(req, portforward::WS_PROTOCOLS) {
            Ok(x) => x,
            Err(r) => return *r,
        };
        let ports = if protocol == portforward::TUNNEL_PROTOCOL {
            Vec::new()
        } else {
            match portforward::ports_from_query(query) {
                Ok(p) => p,
                Err(msg) => return text(StatusCode::BAD_REQUEST, msg),
            }
        };
        let on_upgrade = hyper::upgrade::on(req);
        tokio::spawn(async move {
            let up = match on_upgrade.await {
                Ok(up) => up,
                Err(e) => {
                    tracing::debug!(error = %e, "upgrade failed");
                    return;
                }
            };
            let socket = ws::from_upgraded(up).await;
            if protocol == portforward::TUNNEL_PROTOCOL {
                portforward::serve_spdy(ws::byte_stream(socket), target).await;
            } else {
                portforward::serve_ws(socket, protocol, ports, target).await;
            }
        });
        return resp;
    }
    let resp = match spdy_handshake(req, &[portforward::SPDY_PROTOCOL]) {
        Ok(r) => r,
        Err(r) => return *r,
    };
    let on_upgrade = hyper::upgrade::on(req);
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(up) => portforward::serve_spdy(TokioIo::new(up), target).await,
            Err(e) => tracing::debug!(error = %e, "upgrade failed"),
        }
    });
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting,
        PodStatus,
    };

    fn pod(statuses: Vec<ContainerStatus>) -> Pod {
        let mut p = Pod::default();
        p.metadata.name = Some("p".into());
        p.status = Some(PodStatus {
            container_statuses: Some(statuses),
            ..Default::default()
        });
        p
    }

    fn status(
        state: ContainerState,
        last: Option<ContainerState>,
        id: Option<&str>,
    ) -> ContainerStatus {
        ContainerStatus {
            name: "c".into(),
            state: Some(state),
            last_state: last,
            container_id: id.map(str::to_string),
            ..Default::default()
        }
    }

    fn terminated(id: Option<&str>) -> ContainerState {
        ContainerState {
            terminated: Some(ContainerStateTerminated {
                container_id: id.map(str::to_string),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn log_instance_rules() {
        let running = ContainerState {
            running: Some(ContainerStateRunning::default()),
            ..Default::default()
        };
        let p = pod(vec![status(
            running.clone(),
            Some(terminated(Some("x://old"))),
            Some("x://new"),
        )]);
        assert_eq!(log_container_id(&p, "c", false).unwrap(), "x://new");
        assert_eq!(log_container_id(&p, "c", true).unwrap(), "x://old");
        let p = pod(vec![status(running, None, Some("x://new"))]);
        assert_eq!(
            log_container_id(&p, "c", true).unwrap_err(),
            "previous terminated container \"c\" in pod \"p\" not found"
        );
        assert_eq!(
            log_container_id(&p, "d", false).unwrap_err(),
            "container \"d\" in pod \"p\" is not available"
        );
        let waiting = |reason: &str| ContainerState {
            waiting: Some(ContainerStateWaiting {
                reason: Some(reason.into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let p = pod(vec![status(waiting("ContainerCreating"), None, None)]);
        assert_eq!(
            log_container_id(&p, "c", false).unwrap_err(),
            "container \"c\" in pod \"p\" is waiting to start: ContainerCreating"
        );
        let p = pod(vec![status(waiting("ErrImagePull"), None, None)]);
        assert_eq!(
            log_container_id(&p, "c", false).unwrap_err(),
            "container \"c\" in pod \"p\" is waiting to start: image can't be pulled"
        );
        // Crash loop: waiting, with the last run's logs.
        let p = pod(vec![status(
            waiting("CrashLoopBackOff"),
            Some(terminated(Some("x://last"))),
            None,
        )]);
        assert_eq!(log_container_id(&p, "c", false).unwrap(), "x://last");
        let p = pod(vec![status(
            terminated(Some("x://done")),
            None,
            Some("x://done"),
        )]);
        assert_eq!(log_container_id(&p, "c", false).unwrap(), "x://done");
        let p = pod(vec![status(terminated(None), None, None)]);
        assert_eq!(
            log_container_id(&p, "c", false).unwrap_err(),
            "container \"c\" in pod \"p\" is terminated"
        );
        assert_eq!(runtime_id("ferrokube://abc"), "abc");
        assert_eq!(runtime_id("abc"), "abc");
    }
}
