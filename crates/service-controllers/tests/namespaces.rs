//! The ServiceAccount controller and the root CA certificate publisher against an
//! in-process apiserver.

use base64::Engine;
use controllers::ControllerManagerConfig;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::Client;
use serde_json::json;

mod support;
use support::{cluster, eventually};

/// The apiserver's CA bundle (PEM), from its kubeconfig.
fn ca_bundle(kubeconfig: &std::path::Path) -> String {
    let kc = kube::config::Kubeconfig::read_from(kubeconfig).unwrap();
    let cluster = kc.clusters[0].cluster.as_ref().unwrap();
    let data = cluster.certificate_authority_data.as_ref().unwrap();
    let pem = base64::engine::general_purpose::STANDARD
        .decode(data)
        .unwrap();
    String::from_utf8(pem).unwrap()
}

async fn create_namespace(client: &Client, name: &str) {
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        ..Default::default()
    };
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_service_account_everywhere() {
    let c = cluster(&["serviceaccount"], ControllerManagerConfig::default()).await;
    let client = &c.client;
    create_namespace(client, "team-a").await;
    let api: Api<ServiceAccount> = Api::namespaced(client.clone(), "team-a");
    eventually("default SA in team-a", || async {
        api.get_opt("default").await.unwrap().is_some()
    })
    .await;
    let uid = api.get("default").await.unwrap().metadata.uid;
    api.delete("default", &DeleteParams::default())
        .await
        .unwrap();
    eventually("default SA recreated", || async {
        api.get_opt("default")
            .await
            .unwrap()
            .is_some_and(|sa| sa.metadata.uid != uid)
    })
    .await;
    // Pre-existing namespaces get one too.
    let sys: Api<ServiceAccount> = Api::namespaced(client.clone(), "kube-system");
    eventually("default SA in kube-system", || async {
        sys.get_opt("default").await.unwrap().is_some()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn root_ca_published_everywhere() {
    // The bundle file must exist before the publisher starts; any valid certificate
    // will do, so take the CA of a throwaway apiserver.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ca.crt");
    let c = {
        let probe = testapi::TestApi::start().await;
        let bundle = ca_bundle(&probe.kubeconfig);
        std::fs::write(&path, &bundle).unwrap();
        drop(probe);
        let config = ControllerManagerConfig {
            root_ca_file: Some(path.clone()),
            ..Default::default()
        };
        cluster(&["root-ca-cert-publisher"], config).await
    };
    let bundle = std::fs::read_to_string(&path).unwrap();
    let client = &c.client;
    create_namespace(client, "team-b").await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "team-b");
    let published = |cm: &ConfigMap| {
        cm.data.as_ref().and_then(|d| d.get("ca.crt")) == Some(&bundle)
            && cm
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get("kubernetes.io/description"))
                .map(String::as_str)
                == Some(service_controllers::rootca::DESCRIPTION)
    };
    eventually("kube-root-ca.crt in team-b", || async {
        api.get_opt("kube-root-ca.crt")
            .await
            .unwrap()
            .is_some_and(|cm| published(&cm))
    })
    .await;

    // Edited: restored.
    let patch = json!({"data": {"ca.crt": "tampered"}, "metadata": {"annotations": {"kubernetes.io/description": null}}});
    api.patch(
        "kube-root-ca.crt",
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await
    .unwrap();
    eventually("kube-root-ca.crt restored", || async {
        api.get_opt("kube-root-ca.crt")
            .await
            .unwrap()
            .is_some_and(|cm| published(&cm))
    })
    .await;

    // Deleted: recreated.
    let uid = api.get("kube-root-ca.crt").await.unwrap().metadata.uid;
    api.delete("kube-root-ca.crt", &DeleteParams::default())
        .await
        .unwrap();
    eventually("kube-root-ca.crt recreated", || async {
        api.get_opt("kube-root-ca.crt")
            .await
            .unwrap()
            .is_some_and(|cm| cm.metadata.uid != uid && published(&cm))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn root_ca_file_errors() {
    let api = testapi::TestApi::start().await;
    let client = api.client().await;
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.crt");
    std::fs::write(&bad, "not a certificate").unwrap();
    for (path, want) in [
        (
            bad.clone(),
            "data does not contain any valid RSA or ECDSA certificates".to_string(),
        ),
        (
            dir.path().join("missing.crt"),
            format!(
                "error reading root-ca-file at {}: ",
                dir.path().join("missing.crt").display()
            ),
        ),
    ] {
        let config = ControllerManagerConfig {
            root_ca_file: Some(path),
            ..Default::default()
        };
        let ctx = controllers::ControllerContext::new(client.clone(), config);
        let err = service_controllers::start(&ctx, "root-ca-cert-publisher")
            .err()
            .unwrap();
        assert!(matches!(err, controllers::ControllerError::Config(_)));
        assert!(err.to_string().starts_with(&want), "{err}");
    }
}
