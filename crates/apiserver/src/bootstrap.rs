//! What the apiserver keeps in place by itself: the system namespaces (`default`,
//! `kube-system`, `kube-public`, `kube-node-lease`), the system PriorityClasses, the
//! public `kube-public/cluster-info` ConfigMap (the server's address and CA, which
//! joining nodes read before they have credentials), the join token's bootstrap
//! Secret, and the `kubernetes` Service in `default` on the first address of the
//! service range, with Endpoints and an EndpointSlice pointing at this apiserver's
//! advertised address. Writes go through the same create/update path as client
//! requests.

use crate::auth::User;
use crate::error::{ApiError, ApiResult};
use crate::handlers::write::{self, Change, Endpoint};
use crate::handlers::Ctx;
use crate::negotiate::Output;
use crate::request::{Query, ResourceRequest};
use crate::Server;
use http::HeaderMap;
use serde_json::{json, Value};
use std::sync::Arc;

/// The namespaces that always exist.
pub const SYSTEM_NAMESPACES: &[&str] =
    &["default", "kube-system", "kube-public", "kube-node-lease"];

/// A request made by the apiserver itself, owning what a [`Ctx`] borrows.
pub struct SystemRequest {
    info: &'static resources::ResourceInfo,
    user: User,
    req: ResourceRequest,
    query: Query,
    headers: HeaderMap,
    warnings: parking_lot::Mutex<Vec<String>>,
}

impl SystemRequest {
    /// A request on `resource` in `group`/`version` for the object `namespace`/`name`.
    pub fn new(
        group: &str,
        version: &str,
        resource: &str,
        namespace: &str,
        name: &str,
    ) -> ApiResult<SystemRequest> {
        Ok(SystemRequest {
            info: resources::find(group, version, resource).ok_or_else(ApiError::path_not_found)?,
            user: User::authenticated("system:apiserver", &["system:masters".to_string()]),
            req: ResourceRequest {
                verb: "update",
                group: group.into(),
                version: version.into(),
                namespace: namespace.into(),
                resource: resource.into(),
                name: name.into(),
                subresource: String::new(),
                rest: vec![],
            },
            query: Query::parse(Some("fieldManager=kube-apiserver")),
            headers: HeaderMap::new(),
            warnings: parking_lot::Mutex::new(Vec::new()),
        })
    }

    /// The handler context of this request.
    pub fn ctx<'a>(&'a self, server: &'a Arc<Server>) -> Ctx<'a> {
        Ctx {
            server,
            user: &self.user,
            req: &self.req,
            query: &self.query,
            info: self.info,
            output: Output::Json,
            headers: &self.headers,
            warnings: &self.warnings,
        }
    }
}

/// Creates `obj` unless it exists; replaces it when `reconcile` says the existing one is
/// out of date.
async fn ensure(
    server: &Arc<Server>,
    group: &str,
    version: &str,
    resource: &str,
    obj: Value,
    reconcile: fn(&Value, &Value) -> Option<Value>,
) -> ApiResult<()> {
    let ns = obj["metadata"]["namespace"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let name = obj["metadata"]["name"].as_str().unwrap_or("").to_string();
    let sys = SystemRequest::new(group, version, resource, &ns, &name)?;
    let ctx = sys.ctx(server);
    let store = ctx.store()?;
    let existing = store
        .cache
        .get_cached(&store.key(&ns, &name))
        .await
        .map_err(ApiError::internal)?;
    match existing {
        None => match write::create_object(&ctx, obj).await {
            Ok(_) => Ok(()),
            Err(e) if e.code == 409 => Ok(()),
            Err(e) => Err(e),
        },
        Some(cur) => {
            let cur = cur.extra.value();
            if let Some(fixed) = reconcile(&cur, &obj) {
                let f = move |_: &Value| Ok(fixed.clone());
                write::update_object(&ctx, Change::Func(&f), Endpoint::Main).await?;
            }
            Ok(())
        }
    }
}

fn keep(_: &Value, _: &Value) -> Option<Value> {
    None
}

/// Replaces `field` of the existing object with the wanted one when they differ.
fn reconcile_field(cur: &Value, want: &Value, field: &str) -> Option<Value> {
    (cur[field] != want[field]).then(|| {
        let mut fixed = cur.clone();
        fixed[field] = want[field].clone();
        if let Some(m) = fixed["metadata"].as_object_mut() {
            m.remove("resourceVersion");
        }
        fixed
    })
}

fn reconcile_data(cur: &Value, want: &Value) -> Option<Value> {
    reconcile_field(cur, want, "data")
}

/// The URL other machines reach this apiserver at.
pub fn public_url(server: &Server) -> String {
    let addr =
        std::net::SocketAddr::new(server.config.advertise_address, server.config.secure_port);
    format!("https://{addr}")
}

/// `kube-public/cluster-info`, as kubeadm publishes it: a kubeconfig with the
/// cluster's address and CA and no credentials.
fn cluster_info(server: &Server) -> Value {
    use base64::Engine;
    let ca = base64::engine::general_purpose::STANDARD.encode(server.ca_pem.as_bytes());
    let kubeconfig = format!(
        "apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: {ca}\n    server: {}\n  name: \"\"\ncontexts: null\ncurrent-context: \"\"\nkind: Config\npreferences: {{}}\nusers: null\n",
        public_url(server)
    );
    json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": CLUSTER_INFO, "namespace": "kube-public"},
        "data": {"kubeconfig": kubeconfig},
    })
}

/// The public ConfigMap's name.
pub const CLUSTER_INFO: &str = "cluster-info";

fn reconcile_subsets(cur: &Value, want: &Value) -> Option<Value> {
    reconcile_field(cur, want, "subsets")
}

fn reconcile_slice(cur: &Value, want: &Value) -> Option<Value> {
    reconcile_field(cur, want, "endpoints").or_else(|| reconcile_field(cur, want, "ports"))
}

fn reconcile_service_ports(cur: &Value, want: &Value) -> Option<Value> {
    (cur["spec"]["ports"] != want["spec"]["ports"]).then(|| {
        let mut fixed = cur.clone();
        fixed["spec"]["ports"] = want["spec"]["ports"].clone();
        if let Some(m) = fixed["metadata"].as_object_mut() {
            m.remove("resourceVersion");
        }
        fixed
    })
}

/// Creates the system namespaces and the `kubernetes` Service, Endpoints and
/// EndpointSlice, or brings them back in line.
pub async fn reconcile(server: &Arc<Server>) -> ApiResult<()> {
    for ns in SYSTEM_NAMESPACES {
        ensure(
            server,
            "",
            "v1",
            "namespaces",
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
            keep,
        )
        .await?;
    }
    for (name, value, description) in validation::other::SYSTEM_PRIORITY_CLASSES {
        ensure(
            server,
            "scheduling.k8s.io",
            "v1",
            "priorityclasses",
            json!({
                "apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
                "metadata": {"name": name}, "value": value, "description": description,
            }),
            keep,
        )
        .await?;
    }
    ensure(
        server,
        "",
        "v1",
        "configmaps",
        cluster_info(server),
        reconcile_data,
    )
    .await?;
    if let Some(token) = &server.config.join_token {
        ensure(
            server,
            "",
            "v1",
            "secrets",
            crate::bootstraptoken::secret_for(token),
            keep,
        )
        .await?;
    }
    let ip = server.services.first_ip().to_string();
    let advertise = server.config.advertise_address.to_string();
    let port = server.config.secure_port;
    ensure(
        server,
        "",
        "v1",
        "services",
        json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "kubernetes", "namespace": "default",
                "labels": {"component": "apiserver", "provider": "kubernetes"}},
            "spec": {
                "type": "ClusterIP", "clusterIP": ip, "sessionAffinity": "None",
                "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": port}],
            },
        }),
        reconcile_service_ports,
    )
    .await?;
    if server.config.advertise_address.is_loopback() {
        // Endpoints may not point at loopback addresses (as upstream validates); a
        // loopback-only host serves clients on 127.0.0.1 without them.
        tracing::warn!(
            "advertise address is a loopback address: not publishing kubernetes endpoints"
        );
        return Ok(());
    }
    ensure(
        server,
        "",
        "v1",
        "endpoints",
        json!({
            "apiVersion": "v1", "kind": "Endpoints",
            "metadata": {"name": "kubernetes", "namespace": "default",
                "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
            "subsets": [{"addresses": [{"ip": advertise}], "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}],
        }),
        reconcile_subsets,
    )
    .await?;
    ensure(
        server,
        "discovery.k8s.io",
        "v1",
        "endpointslices",
        json!({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": "kubernetes", "namespace": "default",
                "labels": {"kubernetes.io/service-name": "kubernetes"}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": [advertise], "conditions": {"ready": true}}],
            "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
        }),
        reconcile_slice,
    )
    .await?;
    Ok(())
}
