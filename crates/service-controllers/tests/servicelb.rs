//! The built-in service load balancer against an in-process apiserver: Ready
//! nodes' addresses become a LoadBalancer Service's ingress and follow the nodes;
//! Services of another load-balancer class are left alone.

use controllers::ControllerManagerConfig;
use k8s_openapi::api::core::v1::{Node, Service};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::Client;
use serde_json::json;

mod support;
use support::{cluster, eventually, NS};

async fn node(client: &Client, name: &str, ip: &str, ready: bool) {
    let api: Api<Node> = Api::all(client.clone());
    if api.get_opt(name).await.unwrap().is_none() {
        let n: Node = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
        api.create(&PostParams::default(), &n).await.unwrap();
    }
    let status = json!({"status": {
        "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}],
        "addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": name}]
    }});
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
}

async fn load_balancer(client: &Client, name: &str, class: Option<&str>) {
    let mut spec = json!({"type": "LoadBalancer", "ports": [{"port": 80}]});
    if let Some(c) = class {
        spec["loadBalancerClass"] = json!(c);
    }
    let svc: Service =
        serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec})).unwrap();
    Api::<Service>::namespaced(client.clone(), NS)
        .create(&PostParams::default(), &svc)
        .await
        .unwrap();
}

async fn ingress(client: &Client, name: &str) -> Vec<(String, String)> {
    let svc = Api::<Service>::namespaced(client.clone(), NS)
        .get(name)
        .await
        .unwrap();
    svc.status
        .and_then(|s| s.load_balancer)
        .and_then(|lb| lb.ingress)
        .unwrap_or_default()
        .into_iter()
        .map(|i| (i.ip.unwrap_or_default(), i.ip_mode.unwrap_or_default()))
        .collect()
}

fn vip(ips: &[&str]) -> Vec<(String, String)> {
    ips.iter()
        .map(|ip| (ip.to_string(), "VIP".to_string()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_addresses_become_load_balancer_ingress() {
    let c = cluster(&["servicelb"], ControllerManagerConfig::default()).await;
    let client = &c.client;
    node(client, "n1", "192.0.2.11", true).await;
    node(client, "n2", "192.0.2.12", false).await;
    load_balancer(client, "web", None).await;
    load_balancer(client, "other", Some("example.com/lb")).await;
    eventually("ingress from the ready node", || async {
        ingress(client, "web").await == vip(&["192.0.2.11"])
    })
    .await;
    // The second node becomes Ready: both addresses.
    node(client, "n2", "192.0.2.12", true).await;
    eventually("ingress from both nodes", || async {
        ingress(client, "web").await == vip(&["192.0.2.11", "192.0.2.12"])
    })
    .await;
    // The first stops being Ready: only the second.
    node(client, "n1", "192.0.2.11", false).await;
    eventually("ingress follows readiness", || async {
        ingress(client, "web").await == vip(&["192.0.2.12"])
    })
    .await;
    assert!(ingress(client, "other").await.is_empty());
}
