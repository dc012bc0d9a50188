//! certificates.k8s.io/v1 CertificateSigningRequests through HTTP, as a node
//! bootstrapping its credentials and an approver would use them: discovery, the
//! requester recorded on create, 422s with field causes, and what each of the main
//! resource, `approval` and `status` may change.

use crate::auth::User;
use crate::testing::TestServer;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use http::StatusCode;
use serde_json::{json, Value};

const CSRS: &str = "/apis/certificates.k8s.io/v1/certificatesigningrequests";
const KUBELET_CLIENT: &str = "kubernetes.io/kube-apiserver-client-kubelet";

/// A PEM request for `cn` in organization `org`.
fn request_pem(cn: &str, org: &str) -> String {
    pki::csr::generate_request(cn, &[org], &[], &[])
        .unwrap()
        .request_pem
}

/// A CertificateSigningRequest for a node's client certificate.
fn node_csr(name: &str) -> Value {
    json!({
        "apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
        "metadata": {"name": name},
        "spec": {
            "request": STANDARD.encode(request_pem("system:node:n1", "system:nodes")),
            "signerName": KUBELET_CLIENT,
            "usages": ["digital signature", "client auth"],
        },
    })
}

/// A bearer token for a bootstrapping node.
fn bootstrap_token(api: &TestServer) -> &'static str {
    api.running.server.tokens.insert(
        "abcdef.0123456789abcdef",
        User::authenticated(
            "system:bootstrap:abcdef",
            &["system:bootstrappers".to_string()],
        ),
    );
    "abcdef.0123456789abcdef"
}

/// The (field, reason) pairs of a 422's causes.
fn causes(status: &Value) -> Vec<(String, String)> {
    status["details"]["causes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            (
                c["field"].as_str().unwrap_or("").to_string(),
                c["reason"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

/// PUTs `body` to `path` as the admin, asserting a 422; returns the Status.
async fn put_refused(api: &TestServer, path: &str, body: &Value) -> Value {
    let (code, status) = api.call("PUT", path, Some(body)).await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{status}");
    status
}

/// Asserts that a Status' message says `text`.
fn assert_mentions(status: &Value, text: &str) {
    let message = status["message"].as_str().unwrap_or_default();
    assert!(message.contains(text), "{status}");
}

fn approved(mut csr: Value) -> Value {
    csr["status"]["conditions"] = json!([{
        "type": "Approved", "status": "True", "reason": "KubectlApprove",
        "message": "This CSR was approved by kubectl certificate approve.",
    }]);
    csr
}

/// A certificate signed by the cluster CA for the request in `csr`.
fn sign(api: &TestServer, csr: &Value) -> String {
    let pem = STANDARD
        .decode(csr["spec"]["request"].as_str().unwrap())
        .unwrap();
    let req = pki::csr::CertificateRequest::from_pem(&pem).unwrap();
    let signer =
        pki::csr::CsrSigner::load(&api.pki().join("ca.crt"), &api.pki().join("ca.key")).unwrap();
    signer
        .sign(
            &req,
            &["digital signature", "client auth"],
            std::time::Duration::from_secs(3600),
            std::time::SystemTime::now(),
        )
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_lists_the_resource_and_its_subresources() {
    let api = TestServer::start().await;
    let (code, list) = api.call("GET", "/apis/certificates.k8s.io/v1", None).await;
    assert_eq!(code, StatusCode::OK, "{list}");
    let names: Vec<&str> = list["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "certificatesigningrequests",
            "certificatesigningrequests/approval",
            "certificatesigningrequests/status"
        ]
    );
    let csr = &list["resources"][0];
    assert_eq!(csr["kind"], "CertificateSigningRequest");
    assert_eq!(csr["namespaced"], false);
    assert_eq!(csr["shortNames"], json!(["csr"]));
    assert_eq!(
        list["resources"][1]["verbs"],
        json!(["get", "patch", "update"])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_records_the_requester_and_clears_status() {
    let api = TestServer::start().await;
    let token = bootstrap_token(&api);
    let mut body = approved(node_csr("node-csr-1"));
    body["spec"]["username"] = json!("kubernetes-admin");
    body["spec"]["groups"] = json!(["system:masters"]);
    body["spec"]["uid"] = json!("forged");
    body["spec"]["extra"] = json!({"forged": ["yes"]});
    let (code, created) = api.call_as(token, "POST", CSRS, Some(&body)).await;
    assert_eq!(code, StatusCode::CREATED, "{created}");
    assert_eq!(created["spec"]["username"], "system:bootstrap:abcdef");
    assert_eq!(
        created["spec"]["groups"],
        json!(["system:bootstrappers", "system:authenticated"])
    );
    assert!(created["spec"].get("uid").is_none(), "{created}");
    assert!(created["spec"].get("extra").is_none(), "{created}");
    assert_eq!(created["status"], json!({}));
    // Field selectors on the signer name work.
    let (_, list) = api
        .call(
            "GET",
            &format!("{CSRS}?fieldSelector=spec.signerName%3D{KUBELET_CLIENT}"),
            None,
        )
        .await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    let (_, none) = api
        .call(
            "GET",
            &format!("{CSRS}?fieldSelector=spec.signerName%3Dexample.com/other"),
            None,
        )
        .await;
    assert_eq!(none["items"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_requests_are_refused_with_field_causes() {
    let api = TestServer::start().await;
    let cases = [
        (
            "request is not a CSR",
            json!({"request": STANDARD.encode("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")}),
            ("spec.request", "FieldValueInvalid"),
        ),
        (
            "no signer",
            json!({"signerName": null}),
            ("spec.signerName", "FieldValueRequired"),
        ),
        (
            "signer not qualified",
            json!({"signerName": "kubelet"}),
            ("spec.signerName", "FieldValueInvalid"),
        ),
        (
            "unknown usage",
            json!({"usages": ["client auth", "teleportation"]}),
            ("spec.usages[1]", "FieldValueNotSupported"),
        ),
        (
            "no usages",
            json!({"usages": []}),
            ("spec.usages", "FieldValueRequired"),
        ),
        (
            "short expiration",
            json!({"expirationSeconds": 599}),
            ("spec.expirationSeconds", "FieldValueInvalid"),
        ),
    ];
    for (i, (what, spec, (field, reason))) in cases.into_iter().enumerate() {
        let mut body = node_csr(&format!("bad-{i}"));
        for (k, v) in spec.as_object().unwrap() {
            match v {
                Value::Null => {
                    body["spec"].as_object_mut().unwrap().remove(k);
                }
                v => body["spec"][k] = v.clone(),
            }
        }
        let (code, status) = api.call("POST", CSRS, Some(&body)).await;
        assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{what}: {status}");
        assert_eq!(status["reason"], "Invalid", "{what}");
        assert_eq!(status["details"]["group"], "certificates.k8s.io", "{what}");
        assert_eq!(
            causes(&status),
            [(field.to_string(), reason.to_string())],
            "{what}: {status}"
        );
    }
    let mut body = node_csr("bad-pem");
    body["spec"]["request"] = json!(STANDARD.encode("garbage"));
    let (_, status) = api.call("POST", CSRS, Some(&body)).await;
    let message = status["message"].as_str().unwrap();
    assert!(
        message.starts_with("CertificateSigningRequest.certificates.k8s.io \"bad-pem\" is invalid: spec.request: Invalid value: "),
        "{message}"
    );
    assert!(
        message.ends_with(": PEM block type must be CERTIFICATE REQUEST"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approval_status_and_main_resource_change_only_their_parts() {
    let api = TestServer::start().await;
    let created = api.create(CSRS, node_csr("c1")).await;
    let item = format!("{CSRS}/c1");

    // A certificate cannot be issued through the main resource: its status is kept.
    let cert = sign(&api, &created);
    let mut with_cert = created.clone();
    with_cert["status"]["certificate"] = json!(STANDARD.encode(&cert));
    let (code, after) = api.call("PUT", &item, Some(&with_cert)).await;
    assert_eq!(code, StatusCode::OK, "{after}");
    assert_eq!(after["status"], json!({}));
    // Approval through the main resource and /status is ignored.
    let (code, after) = api
        .call("PUT", &item, Some(&approved(created.clone())))
        .await;
    assert_eq!(code, StatusCode::OK, "{after}");
    assert_eq!(after["status"], json!({}));
    let status = put_refused(&api, &format!("{item}/status"), &approved(created.clone())).await;
    assert_mentions(
        &status,
        "updates may not add a condition of type \"Approved\"",
    );

    // Approve through /approval (as `kubectl certificate approve` does); spec and
    // certificate sent along are ignored there.
    let mut approval = approved(after.clone());
    approval["spec"]["usages"] = json!(["server auth"]);
    approval["status"]["certificate"] = json!(STANDARD.encode(&cert));
    let (code, approved_csr) = api
        .call("PUT", &format!("{item}/approval"), Some(&approval))
        .await;
    assert_eq!(code, StatusCode::OK, "{approved_csr}");
    let cond = &approved_csr["status"]["conditions"][0];
    assert_eq!(cond["type"], "Approved");
    assert_eq!(cond["reason"], "KubectlApprove");
    assert!(cond["lastUpdateTime"].is_string(), "{cond}");
    assert!(cond["lastTransitionTime"].is_string(), "{cond}");
    assert_eq!(approved_csr["spec"]["usages"], created["spec"]["usages"]);
    assert!(approved_csr["status"].get("certificate").is_none());
    let (code, got) = api.call("GET", &format!("{item}/approval"), None).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(got["status"]["conditions"][0]["type"], "Approved");

    // Approval cannot be taken back.
    let mut unapprove = approved_csr.clone();
    unapprove["status"]["conditions"] = json!([]);
    let status = put_refused(&api, &format!("{item}/approval"), &unapprove).await;
    assert_mentions(
        &status,
        "updates may not remove a condition of type \"Approved\"",
    );

    // The signer writes the certificate through /status.
    let mut issued = approved_csr.clone();
    issued["status"]["certificate"] = json!(STANDARD.encode(&cert));
    let (code, issued) = api
        .call("PUT", &format!("{item}/status"), Some(&issued))
        .await;
    assert_eq!(code, StatusCode::OK, "{issued}");
    assert_eq!(
        issued["status"]["certificate"],
        json!(STANDARD.encode(&cert))
    );

    // Updates of the main resource keep spec and status; metadata changes stick.
    let mut edit = issued.clone();
    edit["metadata"]["labels"] = json!({"team": "nodes"});
    edit["spec"]["signerName"] = json!("example.com/other");
    edit["status"] = json!({});
    let (code, edited) = api.call("PUT", &item, Some(&edit)).await;
    assert_eq!(code, StatusCode::OK, "{edited}");
    assert_eq!(edited["metadata"]["labels"], json!({"team": "nodes"}));
    assert_eq!(edited["spec"], issued["spec"]);
    assert_eq!(edited["status"], issued["status"]);

    // The certificate never changes once issued.
    let mut reissue = edited.clone();
    reissue["status"]["certificate"] = json!(STANDARD.encode(format!("{cert}{cert}")));
    let status = put_refused(&api, &format!("{item}/status"), &reissue).await;
    assert_mentions(
        &status,
        "updates may not modify existing certificate content",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approval_by_patch_and_denial() {
    let api = TestServer::start().await;
    api.create(CSRS, node_csr("c2")).await;
    let item = format!("{CSRS}/c2");
    let mut req = TestServer::request(
        "PATCH",
        &format!("{item}/approval"),
        Some(
            &json!({"status": {"conditions": [{"type": "Denied", "status": "True", "reason": "NotMine"}]}}),
        ),
    );
    req.headers_mut().insert(
        "content-type",
        "application/merge-patch+json".parse().unwrap(),
    );
    let (code, denied) = crate::testing::read_json(api.send(req, true).await).await;
    assert_eq!(code, StatusCode::OK, "{denied}");
    assert_eq!(denied["status"]["conditions"][0]["type"], "Denied");
    // Approved and Denied exclude each other.
    let mut both = denied.clone();
    both["status"]["conditions"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "Approved", "status": "True"}));
    let status = put_refused(&api, &format!("{item}/approval"), &both).await;
    assert_eq!(
        causes(&status),
        [(
            "status.conditions[1].type".to_string(),
            "FieldValueInvalid".to_string()
        )]
    );
}
