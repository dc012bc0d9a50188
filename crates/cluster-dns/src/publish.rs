//! How a node's DNS server becomes the cluster's: the `kube-system/kube-dns`
//! Service at the cluster DNS address (made by the first node that needs it, left
//! alone after), and an EndpointSlice per node, `kube-dns-<node>`, naming the
//! address this node's server listens on: its pod bridge's gateway, the first
//! address of the node's podCIDR, which every pod of the node reaches directly and
//! other nodes reach over the pod network. kube-proxy then sends the Service's
//! traffic to the servers of all nodes. The slice is owned by the Node, so it goes
//! when the node does.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, PostParams};
use kube::Client;
use serde_json::json;

/// The Service's namespace and name, as upstream's DNS add-ons name it.
pub const NAMESPACE: &str = "kube-system";
pub const SERVICE: &str = "kube-dns";

/// Failure to publish.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("{0}: {1}")]
    Api(String, kube::Error),
    #[error("the node's podCIDR {0:?} is not an IPv4 network")]
    BadCidr(String),
    #[error("decoding {0}: {1}")]
    Decode(&'static str, serde_json::Error),
}

/// The gateway address of the node's pod network: waits until the node exists and
/// has a podCIDR.
pub async fn node_gateway(client: &Client, node: &str) -> Result<(Ipv4Addr, Node), PublishError> {
    let nodes: Api<Node> = Api::all(client.clone());
    loop {
        match nodes.get_opt(node).await {
            Ok(Some(n)) => {
                if let Some(cidr) = n.spec.as_ref().and_then(|s| s.pod_cidr.clone()) {
                    let gw = gateway_of(&cidr).ok_or(PublishError::BadCidr(cidr))?;
                    return Ok((gw, n));
                }
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, node, "reading the node for its podCIDR"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// The pod gateway of an IPv4 podCIDR (the pod network's rule: its first host
/// address); `None` for anything else or a network too small for pods.
pub fn gateway_of(cidr: &str) -> Option<Ipv4Addr> {
    let net: ipnet::Ipv4Net = cidr.parse().ok()?;
    if net.prefix_len() > 30 {
        return None;
    }
    match pod_network::gateway_of(net.into()) {
        IpAddr::V4(gw) => Some(gw),
        IpAddr::V6(_) => None,
    }
}

/// Makes the Service at `cluster_ip` unless it exists, and this node's slice
/// naming `addr`, replacing an older one.
pub async fn publish(
    client: &Client,
    node: &Node,
    cluster_ip: IpAddr,
    addr: Ipv4Addr,
) -> Result<(), PublishError> {
    let services: Api<Service> = Api::namespaced(client.clone(), NAMESPACE);
    let svc: Service = serde_json::from_value(json!({
        "metadata": {"name": SERVICE, "namespace": NAMESPACE,
                     "labels": {"k8s-app": "kube-dns", "kubernetes.io/name": "ferrokube-dns"}},
        "spec": {"clusterIP": cluster_ip.to_string(), "ports": [
            {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
            {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53}
        ]}
    }))
    .map_err(|e| PublishError::Decode("the kube-dns Service", e))?;
    // Looked up first: creating it again would be refused for its address (422)
    // before its name.
    let existing = services
        .get_opt(SERVICE)
        .await
        .map_err(|e| PublishError::Api("reading the kube-dns Service".into(), e))?;
    if existing.is_none() {
        match services.create(&PostParams::default(), &svc).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => return Err(PublishError::Api("creating the kube-dns Service".into(), e)),
        }
    }

    let node_name = node.metadata.name.clone().unwrap_or_default();
    let name = format!("{SERVICE}-{node_name}");
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), NAMESPACE);
    let slice: EndpointSlice = serde_json::from_value(json!({
        "metadata": {
            "name": name, "namespace": NAMESPACE,
            "labels": {"kubernetes.io/service-name": SERVICE,
                       "endpointslice.kubernetes.io/managed-by": "cluster-dns.ferrokube.io"},
            "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": node_name,
                                 "uid": node.metadata.uid.clone().unwrap_or_default()}]
        },
        "addressType": "IPv4",
        "endpoints": [{"addresses": [addr.to_string()], "nodeName": node_name,
                       "conditions": {"ready": true, "serving": true, "terminating": false}}],
        "ports": [{"name": "dns", "port": 53, "protocol": "UDP"},
                  {"name": "dns-tcp", "port": 53, "protocol": "TCP"}]
    }))
    .map_err(|e| PublishError::Decode("the kube-dns EndpointSlice", e))?;
    match slices.get_opt(&name).await {
        Ok(Some(old)) => {
            let mut new = slice;
            new.metadata.resource_version = old.metadata.resource_version;
            slices
                .replace(&name, &PostParams::default(), &new)
                .await
                .map_err(|e| PublishError::Api(format!("replacing EndpointSlice {name}"), e))?;
        }
        Ok(None) => {
            slices
                .create(&PostParams::default(), &slice)
                .await
                .map_err(|e| PublishError::Api(format!("creating EndpointSlice {name}"), e))?;
        }
        Err(e) => {
            return Err(PublishError::Api(
                format!("reading EndpointSlice {name}"),
                e,
            ))
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_is_the_first_host() {
        assert_eq!(
            gateway_of("10.42.3.0/24"),
            Some(Ipv4Addr::new(10, 42, 3, 1))
        );
        assert_eq!(
            gateway_of("10.42.3.7/24"),
            Some(Ipv4Addr::new(10, 42, 3, 1))
        );
        assert_eq!(gateway_of("fd00::/64"), None);
        assert_eq!(gateway_of("10.0.0.0/31"), None);
    }
}
