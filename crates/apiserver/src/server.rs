//! The HTTPS front: certificates, TLS with optional client certificates, HTTP/2 and
//! HTTP/1.1 connections, authentication, and routing to discovery, health, the OpenID
//! documents of service account tokens, the streaming subresources and the REST
//! handlers.

use crate::auth::{self, User};
use crate::error::ApiError;
use crate::handlers::{self, error_response, json_response};
use crate::negotiate::{self, Output};
use crate::request::{self, Query, Route};
use crate::{discovery, Body, Config, Server, StartError};
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::server::WebPkiClientVerifier;
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// HTTP/2 streams a client may have open on one connection (upstream's default).
const MAX_STREAMS_PER_CONNECTION: u32 = 1000;

/// Largest request body accepted (upstream's default).
pub const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

/// Loads or creates the CA, the serving certificate and the admin credentials.
/// Returns the TLS acceptor and a kubeconfig whose server URL is `__SERVER__`.
pub fn pki(config: &Config, service_ip: Ipv4Addr) -> Result<(TlsAcceptor, String), StartError> {
    let ca = pki::ClusterCa::load_or_create(&config.data_dir.join("pki"))?;
    let mut dns: Vec<String> = vec![
        "localhost".into(),
        "kubernetes".into(),
        "kubernetes.default".into(),
        "kubernetes.default.svc".into(),
        "kubernetes.default.svc.cluster.local".into(),
    ];
    let mut ips: Vec<IpAddr> = vec![
        IpAddr::from([127, 0, 0, 1]),
        IpAddr::V4(service_ip),
        config.advertise_address,
    ];
    for san in &config.extra_sans {
        match san.parse::<IpAddr>() {
            Ok(ip) => ips.push(ip),
            Err(_) => dns.push(san.clone()),
        }
    }
    if let Ok(host) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
        let host = host.trim().to_string();
        if !host.is_empty() {
            dns.push(host);
        }
    }
    dns.sort();
    dns.dedup();
    ips.sort();
    ips.dedup();
    let wanted: Vec<String> = dns
        .iter()
        .cloned()
        .chain(ips.iter().map(IpAddr::to_string))
        .collect();
    let serving = ca.load_or_issue(
        "apiserver",
        |pem| cert_covers(pem, &wanted),
        |ca| ca.issue_server("kube-apiserver", &dns, &ips),
    )?;
    let admin = ca.load_or_issue(
        "admin",
        |_| true,
        |ca| ca.issue_client("system:admin", &["system:masters"]),
    )?;
    let kubeconfig = pki::kubeconfig("__SERVER__", ca.cert_pem(), "admin", &admin);

    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(serving.cert_pem.as_bytes())
            .collect::<Result<_, _>>()
            .map_err(|e| StartError::Tls(e.to_string()))?;
    let key = PrivateKeyDer::from_pem_slice(serving.key_pem.as_bytes())
        .map_err(|e| StartError::Tls(e.to_string()))?;
    let mut roots = RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca.cert_pem().as_bytes()) {
        roots
            .add(c.map_err(|e| StartError::Tls(e.to_string()))?)
            .map_err(|e| StartError::Tls(e.to_string()))?;
    }
    let verifier = WebPkiClientVerifier::builder(Arc::new(roots))
        .allow_unauthenticated()
        .build()
        .map_err(|e| StartError::Tls(e.to_string()))?;
    // AES-128-GCM first: as secure for this purpose, ~30% cheaper than AES-256 on the
    // large responses (lists, watches), and what Go clients prefer too.
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    provider.cipher_suites.sort_by_key(|s| match s.suite() {
        rustls::CipherSuite::TLS13_AES_128_GCM_SHA256 => 0,
        rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 => 1,
        _ => 2,
    });
    let mut tls = rustls::ServerConfig::builder_with_provider(Arc::new(provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| StartError::Tls(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .map_err(|e| StartError::Tls(e.to_string()))?;
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok((TlsAcceptor::from(Arc::new(tls)), kubeconfig))
}

/// Whether a certificate (PEM) parses and is valid for at least another day.
pub fn cert_still_valid(pem: &str) -> bool {
    use x509_parser::prelude::*;
    let Ok((_, p)) = x509_parser::pem::parse_x509_pem(pem.as_bytes()) else {
        return false;
    };
    let Ok((_, cert)) = X509Certificate::from_der(&p.contents) else {
        return false;
    };
    cert.validity()
        .time_to_expiration()
        .is_some_and(|left| left.whole_days() >= 1)
}

/// Whether a certificate names every wanted DNS name and IP.
fn cert_covers(pem: &str, wanted: &[String]) -> bool {
    use x509_parser::prelude::*;
    let Ok((_, p)) = x509_parser::pem::parse_x509_pem(pem.as_bytes()) else {
        return false;
    };
    let Ok((_, cert)) = X509Certificate::from_der(&p.contents) else {
        return false;
    };
    if !cert.validity().is_valid() {
        return false;
    }
    let Ok(Some(san)) = cert.subject_alternative_name() else {
        return false;
    };
    let have: Vec<String> = san
        .value
        .general_names
        .iter()
        .filter_map(|n| match n {
            GeneralName::DNSName(d) => Some(d.to_string()),
            GeneralName::IPAddress(b) if b.len() == 4 => {
                Some(Ipv4Addr::new(b[0], b[1], b[2], b[3]).to_string())
            }
            _ => None,
        })
        .collect();
    wanted.iter().all(|w| have.contains(w))
}

/// Accepts connections until aborted.
pub async fn serve(server: Arc<Server>, listener: TcpListener, tls: TlsAcceptor) {
    loop {
        let (tcp, _peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let tls = tls.clone();
        let server = server.clone();
        tokio::spawn(async move {
            let Ok(stream) = tls.accept(tcp).await else {
                return;
            };
            let cert_user = stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .and_then(|c| auth::user_from_cert(c));
            let cert_user = Arc::new(cert_user);
            let svc = hyper::service::service_fn(move |req| {
                let server = server.clone();
                let cert_user = cert_user.clone();
                async move {
                    Ok::<_, Infallible>(handle(server, cert_user.as_ref().as_ref(), req).await)
                }
            });
            let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            // Let a large response (a big list) queue more than hyper's 400 KB default
            // per stream, so producing it overlaps with encrypting it.
            builder.http2().max_send_buf_size(4 << 20);
            // Upstream's --http2-max-streams-per-connection default: clients multiplex
            // every watch and request of a component over one connection.
            builder
                .http2()
                .max_concurrent_streams(MAX_STREAMS_PER_CONNECTION);
            let _ = builder
                .serve_connection_with_upgrades(TokioIo::new(stream), svc)
                .await;
        });
    }
}

fn text(code: StatusCode, body: &'static str) -> Response<Body> {
    handlers::bytes_response(
        code,
        "text/plain; charset=utf-8",
        Bytes::from_static(body.as_bytes()),
    )
}

/// Handles one HTTP request.
pub async fn handle(
    server: Arc<Server>,
    cert_user: Option<&User>,
    req: Request<Incoming>,
) -> Response<Body> {
    let query = Query::parse(req.uri().query());
    let route = request::route(req.method(), req.uri().path(), &query);
    let authz = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let user = match auth::authenticate_request(&server, cert_user, authz).await {
        Ok(u) => u,
        Err(_) => return error_response(&ApiError::unauthorized()),
    };
    if let Route::Health(path) = &route {
        return health(&server, path);
    }
    if user.is_anonymous() && !public(&route) {
        return error_response(&ApiError::unauthorized());
    }
    match dispatch(&server, &user, route, &query, req).await {
        Ok(r) => r,
        Err(e) => error_response(&e),
    }
}

/// What anonymous callers may read besides health: the `kube-public/cluster-info`
/// ConfigMap (kubeadm grants `system:anonymous` exactly that), so a joining node can
/// learn the cluster's CA before it has credentials.
fn public(route: &Route) -> bool {
    matches!(route, Route::Resource(r)
        if r.verb == "get" && r.group.is_empty() && r.resource == "configmaps"
            && r.namespace == "kube-public" && r.name == crate::bootstrap::CLUSTER_INFO
            && r.subresource.is_empty())
}

fn health(server: &Server, path: &str) -> Response<Body> {
    let ready = server.ready.load(std::sync::atomic::Ordering::Acquire);
    if path.starts_with("readyz") && !ready {
        return text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "[-]poststarthook/bootstrap failed: not finished\nreadyz check failed\n",
        );
    }
    text(StatusCode::OK, "ok")
}

async fn dispatch(
    server: &Arc<Server>,
    user: &User,
    route: Route,
    query: &Query,
    req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let accept = req
        .headers()
        .get(http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let discovery_output = |allow| negotiate::choose(accept.as_deref(), allow);
    match route {
        Route::Health(_) => unreachable!("health is answered before dispatch"),
        Route::Version => Ok(json_response(StatusCode::OK, &discovery::version())),
        Route::CoreVersions => match discovery_output(true)? {
            Output::Discovery(v) => Ok(discovery_json(
                &discovery::aggregated(true, v),
                Output::Discovery(v),
            )),
            _ => Ok(json_response(
                StatusCode::OK,
                &discovery::core_versions(&format!(
                    "{}:{}",
                    server.config.advertise_address, server.config.secure_port
                )),
            )),
        },
        Route::Groups => match discovery_output(true)? {
            Output::Discovery(v) => Ok(discovery_json(
                &discovery::aggregated(false, v),
                Output::Discovery(v),
            )),
            _ => Ok(json_response(StatusCode::OK, &discovery::group_list())),
        },
        Route::Group(g) => discovery::group(&g)
            .map(|v| json_response(StatusCode::OK, &v))
            .ok_or_else(ApiError::path_not_found),
        Route::GroupVersion(g, v) => discovery::resource_list(&g, &v)
            .map(|v| json_response(StatusCode::OK, &v))
            .ok_or_else(ApiError::path_not_found),
        Route::OpenApiV2 => crate::openapi::v2(accept.as_deref()),
        Route::OpenApiV3(path) => crate::openapi::v3(&path, accept.as_deref()),
        Route::Metrics | Route::NotFound => Err(ApiError::path_not_found()),
        Route::OpenIdConfiguration => Ok(openid_response(
            "application/json",
            server.sa_tokens.openid_configuration(),
        )),
        Route::OpenIdJwks => Ok(openid_response(
            "application/jwk-set+json",
            server.sa_tokens.jwks(),
        )),
        Route::Resource(rr) if crate::streaming::is_streaming(&rr) => {
            crate::streaming::handle(server, &rr, req).await
        }
        Route::Resource(rr) => {
            let (parts, body) = req.into_parts();
            let body = match Limited::new(body, MAX_BODY_BYTES).collect().await {
                Ok(b) => b.to_bytes(),
                Err(e) => {
                    if e.downcast_ref::<http_body_util::LengthLimitError>()
                        .is_some()
                    {
                        return Err(ApiError::too_large(format!(
                            "Request entity too large: limit is {MAX_BODY_BYTES}"
                        )));
                    }
                    return Err(ApiError::bad_request(format!("reading request body: {e}")));
                }
            };
            handlers::handle(server, user, &rr, query, &parts.headers, body).await
        }
    }
}

/// An OpenID document, cacheable for an hour as upstream serves them.
fn openid_response(content_type: &str, body: Vec<u8>) -> Response<Body> {
    let mut r = handlers::bytes_response(StatusCode::OK, content_type, Bytes::from(body));
    r.headers_mut().insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("public, max-age=3600"),
    );
    r
}

fn discovery_json(v: &serde_json::Value, output: Output) -> Response<Body> {
    handlers::bytes_response(
        StatusCode::OK,
        &output.content_type(),
        Bytes::from(serde_json::to_vec(v).unwrap_or_default()),
    )
}
