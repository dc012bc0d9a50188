//! The CSR controllers against an in-process apiserver, driven as a joining node and
//! an administrator would: a bootstrapping node's client certificate request is
//! approved and signed, and the certificate it gets authenticates it as the node;
//! requests the rules do not cover are left alone; signers refuse what they may not
//! issue; the cleaner deletes finished requests.

use std::time::Duration;

use controllers::{ControllerContext, ControllerManagerConfig};
use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use kube::api::{Api, PostParams};
use kube::Client;
use serde_json::json;
use testapi::wait::eventually;
use testapi::TestApi;
use x509_parser::prelude::{FromDer, X509Certificate};

const WAIT: Duration = Duration::from_secs(20);
const KUBELET_CLIENT: &str = "kubernetes.io/kube-apiserver-client-kubelet";

/// An apiserver and some of the CSR controllers, signing with the apiserver's CA.
struct Cluster {
    api: TestApi,
    admin: Client,
    handles: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for h in &self.handles {
            h.abort();
        }
    }
}

async fn cluster(names: &[&str]) -> Cluster {
    let api = TestApi::start().await;
    let admin = api.client().await;
    let pki = api.data_dir().join("pki");
    let config = ControllerManagerConfig {
        cluster_signing_cert_file: Some(pki.join("ca.crt")),
        cluster_signing_key_file: Some(pki.join("ca.key")),
        ..Default::default()
    };
    let ctx = ControllerContext::new(admin.clone(), config);
    let mut handles = Vec::new();
    for name in names {
        let d = certificate_controllers::descriptors()
            .into_iter()
            .find(|d| d.aliases.contains(name))
            .unwrap();
        handles.push(tokio::spawn((d.start)(&ctx).unwrap()));
    }
    ctx.informers.start();
    Cluster {
        api,
        admin,
        handles,
    }
}

/// A PEM request and its private key (PKCS#8 PEM).
fn request(cn: &str, orgs: &[&str], dns: &[&str]) -> (String, String) {
    let pair = pki::csr::generate_request(cn, orgs, dns, &[]).unwrap();
    (pair.request_pem, pair.key_pem)
}

fn csr(name: &str, pem: &str, signer: &str, usages: &[&str]) -> CertificateSigningRequest {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "request": k8s_openapi::ByteString(pem.as_bytes().to_vec()),
            "signerName": signer,
            "usages": usages,
            "expirationSeconds": 3600,
        },
    }))
    .unwrap()
}

async fn create(client: &Client, csr: &CertificateSigningRequest) -> CertificateSigningRequest {
    Api::<CertificateSigningRequest>::all(client.clone())
        .create(&PostParams::default(), csr)
        .await
        .unwrap()
}

async fn get(client: &Client, name: &str) -> Option<CertificateSigningRequest> {
    Api::<CertificateSigningRequest>::all(client.clone())
        .get_opt(name)
        .await
        .unwrap()
}

/// Approves through the approval subresource, as `kubectl certificate approve`.
async fn approve(client: &Client, name: &str) {
    let api = Api::<CertificateSigningRequest>::all(client.clone());
    let mut csr = api.get(name).await.unwrap();
    csr.status
        .get_or_insert_with(Default::default)
        .conditions
        .get_or_insert_with(Vec::new)
        .push(
            serde_json::from_value(json!({"type": "Approved", "status": "True",
                "reason": "KubectlApprove", "message": "This CSR was approved by kubectl certificate approve."}))
            .unwrap(),
        );
    api.replace_subresource("approval", name, &PostParams::default(), &csr)
        .await
        .unwrap();
}

fn conditions(csr: &CertificateSigningRequest) -> Vec<(String, String, String)> {
    csr.status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default()
        .into_iter()
        .map(|c| {
            (
                c.type_,
                c.reason.unwrap_or_default(),
                c.message.unwrap_or_default(),
            )
        })
        .collect()
}

fn certificate(csr: &CertificateSigningRequest) -> Option<String> {
    let bytes = csr.status.as_ref()?.certificate.as_ref()?;
    Some(String::from_utf8(bytes.0.clone()).unwrap())
}

/// Waits until the request has a certificate and returns it.
async fn issued(client: &Client, name: &str) -> String {
    eventually(&format!("{name} issued"), WAIT, || async {
        get(client, name)
            .await
            .as_ref()
            .and_then(certificate)
            .is_some()
    })
    .await;
    let csr = get(client, name).await.unwrap();
    certificate(&csr).unwrap()
}

/// A client authenticating with `cert_pem` and `key_pem`.
async fn client_with_certificate(api: &TestApi, cert_pem: &str, key_pem: &str) -> Client {
    use base64::Engine;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let mut kc = kube::config::Kubeconfig::read_from(&api.kubeconfig).unwrap();
    for named in &mut kc.auth_infos {
        named.auth_info = Some(kube::config::AuthInfo {
            client_certificate_data: Some(b64(cert_pem)),
            client_key_data: Some(b64(key_pem).into()),
            ..Default::default()
        });
    }
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    Client::try_from(cfg).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bootstrapping_node_gets_an_approved_signed_client_certificate() {
    let c = cluster(&["csrapproving", "csrsigning"]).await;
    // The node authenticates with its bootstrap token.
    let node = c
        .api
        .client_as("system:bootstrap:abcdef", &["system:bootstrappers"])
        .await;
    let (pem, key) = request("system:node:n1", &["system:nodes"], &[]);
    let created = create(
        &node,
        &csr(
            "node-csr-n1",
            &pem,
            KUBELET_CLIENT,
            &["digital signature", "key encipherment", "client auth"],
        ),
    )
    .await;
    assert_eq!(
        created.spec.username.as_deref(),
        Some("system:bootstrap:abcdef")
    );
    let cert_pem = issued(&node, "node-csr-n1").await;
    let got = get(&node, "node-csr-n1").await.unwrap();
    assert_eq!(
        conditions(&got),
        [(
            "Approved".to_string(),
            "AutoApproved".to_string(),
            "Auto approving kubelet client certificate after SubjectAccessReview.".to_string()
        )]
    );

    // Signed by the cluster CA, for the subject asked, as a client certificate, for
    // the hour asked.
    let der = pem::parse(&cert_pem).unwrap().into_contents();
    let (_, cert) = X509Certificate::from_der(&der).unwrap();
    let ca_pem = std::fs::read_to_string(c.api.data_dir().join("pki/ca.crt")).unwrap();
    let ca_der = pem::parse(&ca_pem).unwrap().into_contents();
    let (_, ca) = X509Certificate::from_der(&ca_der).unwrap();
    cert.verify_signature(Some(ca.public_key())).unwrap();
    let cn: Vec<&str> = cert
        .subject()
        .iter_common_name()
        .map(|a| a.as_str().unwrap())
        .collect();
    let orgs: Vec<&str> = cert
        .subject()
        .iter_organization()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(cn, ["system:node:n1"]);
    assert_eq!(orgs, ["system:nodes"]);
    let eku = cert.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.client_auth && !eku.server_auth);
    let lifetime = cert.validity().not_after.timestamp() - cert.validity().not_before.timestamp();
    assert_eq!(
        lifetime,
        3600 + 300,
        "an hour from now, backdated 5 minutes"
    );

    // The certificate authenticates the node as itself.
    let as_node = client_with_certificate(&c.api, &cert_pem, &key).await;
    let review: SelfSubjectReview = serde_json::from_value(json!({
        "apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"
    }))
    .unwrap();
    let me = Api::<SelfSubjectReview>::all(as_node)
        .create(&PostParams::default(), &review)
        .await
        .unwrap();
    let info = me.status.unwrap().user_info.unwrap();
    assert_eq!(info.username.as_deref(), Some("system:node:n1"));
    assert!(info.groups.unwrap().contains(&"system:nodes".to_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_renewing_its_own_certificate_is_approved() {
    let c = cluster(&["csrapproving"]).await;
    let node = c.api.client_as("system:node:n2", &["system:nodes"]).await;
    let (pem, _) = request("system:node:n2", &["system:nodes"], &[]);
    create(
        &node,
        &csr(
            "renew-n2",
            &pem,
            KUBELET_CLIENT,
            &["digital signature", "client auth"],
        ),
    )
    .await;
    eventually("renewal approved", WAIT, || async {
        let got = get(&c.admin, "renew-n2").await.unwrap();
        conditions(&got)
            == [(
                "Approved".to_string(),
                "AutoApproved".to_string(),
                "Auto approving self kubelet client certificate after SubjectAccessReview."
                    .to_string(),
            )]
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_outside_the_rules_are_left_alone() {
    let c = cluster(&["csrapproving", "csrsigning"]).await;
    let node = c
        .api
        .client_as("system:bootstrap:abcdef", &["system:bootstrappers"])
        .await;
    let usages = ["digital signature", "client auth"];
    // Asking for more than a node's identity.
    let (masters, _) = request("system:node:n1", &["system:masters"], &[]);
    create(&node, &csr("wrong-org", &masters, KUBELET_CLIENT, &usages)).await;
    // Another node's renewal, and a user who is not bootstrapping.
    let (n3, _) = request("system:node:n3", &["system:nodes"], &[]);
    let other_node = c.api.client_as("system:node:n4", &["system:nodes"]).await;
    create(&other_node, &csr("not-mine", &n3, KUBELET_CLIENT, &usages)).await;
    let jane = c.api.client_as("jane", &["devs"]).await;
    create(&jane, &csr("jane-asks", &n3, KUBELET_CLIENT, &usages)).await;
    // A valid request made afterwards is approved and issued...
    let (good, _) = request("system:node:n1", &["system:nodes"], &[]);
    create(&node, &csr("good", &good, KUBELET_CLIENT, &usages)).await;
    issued(&c.admin, "good").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    // ...while the others are still pending.
    for name in ["wrong-org", "not-mine", "jane-asks"] {
        let got = get(&c.admin, name).await.unwrap();
        assert!(
            conditions(&got).is_empty(),
            "{name}: {:?}",
            conditions(&got)
        );
        assert!(certificate(&got).is_none(), "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_waits_for_approval_and_refuses_what_a_signer_may_not_issue() {
    let c = cluster(&["csrsigning"]).await;
    let admin = &c.admin;
    // A client certificate nobody approved yet is not signed.
    let (user, _) = request("jane", &["devs"], &[]);
    let client_usages = ["digital signature", "client auth"];
    create(
        admin,
        &csr(
            "jane",
            &user,
            "kubernetes.io/kube-apiserver-client",
            &client_usages,
        ),
    )
    .await;
    // A kubelet serving certificate request without server auth.
    let (serving, _) = request("system:node:n1", &["system:nodes"], &["n1.example"]);
    create(
        admin,
        &csr(
            "serving",
            &serving,
            "kubernetes.io/kubelet-serving",
            &client_usages,
        ),
    )
    .await;
    approve(admin, "serving").await;
    eventually("serving request failed", WAIT, || async {
        conditions(&get(admin, "serving").await.unwrap())
            .iter()
            .any(|(t, _, _)| t == "Failed")
    })
    .await;
    let failed = get(admin, "serving").await.unwrap();
    assert_eq!(
        conditions(&failed)[1],
        (
            "Failed".to_string(),
            "SignerValidationFailure".to_string(),
            "usages did not match [digital signature key encipherment server auth]".to_string()
        )
    );
    assert!(certificate(&failed).is_none());
    // Another signer's approved request is not ours.
    let (other, _) = request("svc", &[], &[]);
    create(
        admin,
        &csr("other", &other, "example.com/mine", &client_usages),
    )
    .await;
    approve(admin, "other").await;
    // The pending one was never signed; once approved it is.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(certificate(&get(admin, "jane").await.unwrap()).is_none());
    approve(admin, "jane").await;
    let cert = issued(admin, "jane").await;
    assert!(pki::csr::check_certificate_bundle(cert.as_bytes()).is_ok());
    let other = get(admin, "other").await.unwrap();
    assert!(certificate(&other).is_none());
    assert_eq!(conditions(&other).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cleaner_deletes_old_denied_requests_and_keeps_fresh_ones() {
    let c = cluster(&[]).await;
    let admin = &c.admin;
    let (pem, _) = request("jane", &[], &[]);
    let usages = ["client auth"];
    create(
        admin,
        &csr(
            "old-denied",
            &pem,
            "kubernetes.io/kube-apiserver-client",
            &usages,
        ),
    )
    .await;
    create(
        admin,
        &csr(
            "fresh",
            &pem,
            "kubernetes.io/kube-apiserver-client",
            &usages,
        ),
    )
    .await;
    // Denied two hours ago (approvers may say when).
    let api = Api::<CertificateSigningRequest>::all(admin.clone());
    let mut denied = api.get("old-denied").await.unwrap();
    let two_hours_ago = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(2);
    denied.status = Some(
        serde_json::from_value(json!({"conditions": [{"type": "Denied", "status": "True",
            "reason": "No", "lastUpdateTime": two_hours_ago.round(jiff::Unit::Second).unwrap().to_string()}]}))
        .unwrap(),
    );
    api.replace_subresource("approval", "old-denied", &PostParams::default(), &denied)
        .await
        .unwrap();
    // The cleaner's first pass runs once its cache has synced.
    let ctx = ControllerContext::new(admin.clone(), ControllerManagerConfig::default());
    let d = certificate_controllers::descriptors()
        .into_iter()
        .find(|d| d.aliases.contains(&"csrcleaner"))
        .unwrap();
    let cleaner = tokio::spawn((d.start)(&ctx).unwrap());
    eventually("old denied request deleted", WAIT, || async {
        get(admin, "old-denied").await.is_none()
    })
    .await;
    assert!(get(admin, "fresh").await.is_some());
    cleaner.abort();
}
