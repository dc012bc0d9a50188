//! End-to-end: certificate signing requests with the real kubectl (1.27 and 1.33)
//! against `ferrokube server`, whose in-process controller manager signs with the server's own CA: a
//! request shows as Pending, `kubectl certificate approve` gets it issued (a
//! certificate the cluster CA signed), `kubectl certificate deny` denies another.

mod support;

use std::time::Duration;
use support::{eventually, Cluster};

/// A CertificateSigningRequest manifest for a client certificate of `user`.
fn manifest(name: &str, user: &str) -> String {
    use base64::Engine;
    let pem = pki::csr::generate_request(user, &[], &[], &[])
        .unwrap()
        .request_pem;
    let request = base64::engine::general_purpose::STANDARD.encode(pem);
    format!(
        "apiVersion: certificates.k8s.io/v1
kind: CertificateSigningRequest
metadata:
  name: {name}
spec:
  request: {request}
  signerName: kubernetes.io/kube-apiserver-client
  expirationSeconds: 86400
  usages: [client auth]
"
    )
}

#[test]
fn kubectl_1_27_approves_and_the_server_signs() {
    approve_and_sign("1.27");
}

#[test]
fn kubectl_1_33_approves_and_the_server_signs() {
    approve_and_sign("1.33");
}

fn approve_and_sign(kubectl: &str) {
    let c = Cluster::start();
    let k = c.kubectl(kubectl);
    for name in ["jane", "mallory"] {
        let out = k.run_stdin(&["create", "-f", "-"], &manifest(name, name));
        assert!(out.status.success(), "{out:?}");
    }
    let table = k.ok(&["get", "csr"]);
    assert!(table.starts_with("NAME"), "{table}");
    assert!(
        table.contains("kubernetes.io/kube-apiserver-client"),
        "{table}"
    );
    assert!(table.contains("system:admin"), "{table}");
    assert!(table.contains("Pending"), "{table}");

    let out = k.ok(&["certificate", "approve", "jane"]);
    assert_eq!(
        out.trim(),
        "certificatesigningrequest.certificates.k8s.io/jane approved"
    );
    let out = k.ok(&["certificate", "deny", "mallory"]);
    assert_eq!(
        out.trim(),
        "certificatesigningrequest.certificates.k8s.io/mallory denied"
    );
    assert!(
        eventually(Duration::from_secs(20), || {
            !k.ok(&["get", "csr", "jane", "-o", "jsonpath={.status.certificate}"])
                .trim()
                .is_empty()
        }),
        "jane's certificate was not issued: {}",
        k.ok(&["get", "csr", "jane", "-o", "yaml"])
    );
    let jane = k.json(&["get", "csr", "jane"]);
    let approved = &jane["status"]["conditions"][0];
    assert_eq!(approved["type"], "Approved");
    assert_eq!(approved["reason"], "KubectlApprove");
    let table = k.ok(&["get", "csr"]);
    let row = |name: &str| {
        table
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_default()
            .to_string()
    };
    assert!(row("jane").contains("Approved,Issued"), "{table}");
    assert!(row("mallory").contains("Denied"), "{table}");

    // Issued by the server's CA.
    use base64::Engine;
    let cert = base64::engine::general_purpose::STANDARD
        .decode(jane["status"]["certificate"].as_str().unwrap())
        .unwrap();
    let ca = std::fs::read_to_string(c.dir.path().join("pki/ca.crt")).unwrap();
    let cert_path = c.dir.path().join("jane.crt");
    let ca_path = c.dir.path().join("ca-copy.crt");
    std::fs::write(&cert_path, &cert).unwrap();
    std::fs::write(&ca_path, ca).unwrap();
    let verify = std::process::Command::new("openssl")
        .args(["verify", "-CAfile"])
        .arg(&ca_path)
        .arg(&cert_path)
        .output();
    if let Ok(out) = verify {
        assert!(out.status.success(), "{out:?}");
    }
}
