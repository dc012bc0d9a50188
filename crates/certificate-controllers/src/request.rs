//! What the CSR controllers read from a CertificateSigningRequest: its approval
//! state, its parsed PKCS#10 request, and upstream's checks of what the
//! `kubernetes.io` signers may issue (`ValidateKubeletClientCSR`,
//! `ValidateKubeletServingCSR`, the kube-apiserver client usages), with upstream's
//! messages, which become the message of a `Failed` condition.

use std::collections::BTreeSet;

use controllers::error::ControllerError;
use k8s_openapi::api::certificates::v1::{
    CertificateSigningRequest, CertificateSigningRequestCondition, CertificateSigningRequestStatus,
};
use pki::csr::CertificateRequest;
use validation::certificates::{conditions, has_true_condition, APPROVED, DENIED, FAILED};

/// Client certificates for kube-apiserver.
pub const KUBE_APISERVER_CLIENT: &str = "kubernetes.io/kube-apiserver-client";
/// Client certificates kubelets authenticate to kube-apiserver with.
pub const KUBE_APISERVER_CLIENT_KUBELET: &str = "kubernetes.io/kube-apiserver-client-kubelet";
/// Serving certificates of kubelets.
pub const KUBELET_SERVING: &str = "kubernetes.io/kubelet-serving";
/// Requests of the v1beta1 API that named no signer.
pub const LEGACY_UNKNOWN: &str = "kubernetes.io/legacy-unknown";

/// The prefix of node user names.
pub const NODE_USER_PREFIX: &str = "system:node:";
/// The group of nodes.
pub const NODES_GROUP: &str = "system:nodes";

/// Whether the request has an Approved and a Denied condition (upstream's
/// `GetCertApprovalCondition`).
pub fn approval(csr: &CertificateSigningRequest) -> (bool, bool) {
    let has = |t: &str| conditions(csr).iter().any(|c| c.type_ == t);
    (has(APPROVED), has(DENIED))
}

/// Approved and not Denied (upstream's `IsCertificateRequestApproved`).
pub fn is_approved(csr: &CertificateSigningRequest) -> bool {
    matches!(approval(csr), (true, false))
}

/// Whether the request carries a True Failed condition.
pub fn is_failed(csr: &CertificateSigningRequest) -> bool {
    has_true_condition(csr, FAILED)
}

/// Whether a certificate was issued.
pub fn is_issued(csr: &CertificateSigningRequest) -> bool {
    !validation::certificates::certificate(csr).is_empty()
}

/// The request's usages.
pub fn usages(csr: &CertificateSigningRequest) -> &[String] {
    csr.spec.usages.as_deref().unwrap_or_default()
}

/// The PKCS#10 request of `spec.request` (upstream's `ParseCSR`).
pub fn parse(csr: &CertificateSigningRequest) -> Result<CertificateRequest, ControllerError> {
    CertificateRequest::from_pem(&csr.spec.request.0).map_err(|e| {
        let name = csr.metadata.name.as_deref().unwrap_or_default();
        ControllerError::Other(format!("unable to parse csr {name:?}: {e}"))
    })
}

/// Appends `condition` to the request's status.
pub fn add_condition(
    csr: &mut CertificateSigningRequest,
    condition: CertificateSigningRequestCondition,
) {
    csr.status
        .get_or_insert_with(CertificateSigningRequestStatus::default)
        .conditions
        .get_or_insert_with(Vec::new)
        .push(condition);
}

/// Why a request may not be issued by a signer.
type Refusal = String;

fn usage_set(usages: &[String]) -> BTreeSet<&str> {
    usages.iter().map(String::as_str).collect()
}

/// Go's `%v` of a sorted string set.
fn go_list(set: &[&str]) -> String {
    format!("[{}]", set.join(" "))
}

/// Usages a kubelet client certificate may have, with and without key
/// encipherment (only RSA keys need it), sorted.
const KUBELET_CLIENT_USAGES: &[&str] = &["client auth", "digital signature", "key encipherment"];
const KUBELET_CLIENT_USAGES_NO_RSA: &[&str] = &["client auth", "digital signature"];
/// Usages a kubelet serving certificate may have, sorted.
const KUBELET_SERVING_USAGES: &[&str] = &["digital signature", "key encipherment", "server auth"];
const KUBELET_SERVING_USAGES_NO_RSA: &[&str] = &["digital signature", "server auth"];

fn usages_match(usages: &[String], allowed: &[&[&str]]) -> bool {
    let have = usage_set(usages);
    allowed
        .iter()
        .any(|a| have == a.iter().copied().collect::<BTreeSet<_>>())
}

fn organization_is_nodes(req: &CertificateRequest) -> Result<(), Refusal> {
    if req.organizations != [NODES_GROUP] {
        return Err("subject organization is not system:nodes".into());
    }
    Ok(())
}

fn common_name_is_node(req: &CertificateRequest) -> Result<(), Refusal> {
    if !req.common_name.starts_with(NODE_USER_PREFIX) {
        return Err("subject common name does not begin with system:node:".into());
    }
    Ok(())
}

/// A kubelet client certificate request: O exactly `system:nodes`, no subject
/// alternative names, CN `system:node:<name>`, usages digital signature and client
/// auth (and key encipherment).
pub fn validate_kubelet_client(req: &CertificateRequest, usages: &[String]) -> Result<(), Refusal> {
    organization_is_nodes(req)?;
    if !req.dns_names.is_empty() {
        return Err("DNS subjectAltNames are not allowed".into());
    }
    if !req.email_addresses.is_empty() {
        return Err("Email subjectAltNames are not allowed".into());
    }
    if !req.ip_addresses.is_empty() {
        return Err("IP subjectAltNames are not allowed".into());
    }
    if !req.uris.is_empty() {
        return Err("URI subjectAltNames are not allowed".into());
    }
    common_name_is_node(req)?;
    if !usages_match(
        usages,
        &[KUBELET_CLIENT_USAGES, KUBELET_CLIENT_USAGES_NO_RSA],
    ) {
        return Err(format!(
            "usages did not match {}",
            go_list(KUBELET_CLIENT_USAGES)
        ));
    }
    Ok(())
}

/// A kubelet serving certificate request: O exactly `system:nodes`, at least one DNS
/// or IP name and no email or URI names, usages digital signature and server auth
/// (and key encipherment), CN `system:node:<name>`.
pub fn validate_kubelet_serving(
    req: &CertificateRequest,
    usages: &[String],
) -> Result<(), Refusal> {
    organization_is_nodes(req)?;
    if req.dns_names.is_empty() && req.ip_addresses.is_empty() {
        return Err("DNS or IP subjectAltName is required".into());
    }
    if !req.email_addresses.is_empty() {
        return Err("Email subjectAltNames are not allowed".into());
    }
    if !req.uris.is_empty() {
        return Err("URI subjectAltNames are not allowed".into());
    }
    if !usages_match(
        usages,
        &[KUBELET_SERVING_USAGES, KUBELET_SERVING_USAGES_NO_RSA],
    ) {
        return Err(format!(
            "usages did not match {}",
            go_list(KUBELET_SERVING_USAGES)
        ));
    }
    common_name_is_node(req)
}

/// A kube-apiserver client certificate: client auth, optionally digital signature
/// and key encipherment, nothing else.
pub fn validate_apiserver_client_usages(usages: &[String]) -> Result<(), Refusal> {
    let mut client_auth = false;
    for u in usages {
        match u.as_str() {
            "digital signature" | "key encipherment" => {}
            "client auth" => client_auth = true,
            other => return Err(format!("invalid usage for client certificate: {other}")),
        }
    }
    if !client_auth {
        return Err("missing required usage for client certificate: client auth".into());
    }
    Ok(())
}

/// What `signer` may issue for `req`: `None` for signers other than the four
/// `kubernetes.io` ones ferrokube signs for, else whether this request passes the
/// signer's checks (upstream's `isRequestForSignerFunc`s).
pub fn check_for_signer(
    signer: &str,
    req: &CertificateRequest,
    usages: &[String],
) -> Option<Result<(), Refusal>> {
    match signer {
        KUBELET_SERVING => Some(validate_kubelet_serving(req, usages)),
        KUBE_APISERVER_CLIENT_KUBELET => Some(validate_kubelet_client(req, usages)),
        KUBE_APISERVER_CLIENT => Some(validate_apiserver_client_usages(usages)),
        // No restrictions, for compatibility with v1beta1 requests.
        LEGACY_UNKNOWN => Some(Ok(())),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(cn: &str, orgs: &[&str], dns: &[&str], ips: &[&str]) -> CertificateRequest {
        let ips: Vec<std::net::IpAddr> = ips.iter().map(|ip| ip.parse().unwrap()).collect();
        let pair = pki::csr::generate_request(cn, orgs, dns, &ips).unwrap();
        CertificateRequest::from_pem(pair.request_pem.as_bytes()).unwrap()
    }

    fn u(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn kubelet_client() {
        let ok = req("system:node:n1", &["system:nodes"], &[], &[]);
        validate_kubelet_client(&ok, &u(&["digital signature", "client auth"])).unwrap();
        validate_kubelet_client(
            &ok,
            &u(&["key encipherment", "digital signature", "client auth"]),
        )
        .unwrap();
        assert_eq!(
            validate_kubelet_client(&ok, &u(&["client auth"])),
            Err("usages did not match [client auth digital signature key encipherment]".into())
        );
        assert_eq!(
            validate_kubelet_client(
                &req("system:node:n1", &["system:masters"], &[], &[]),
                &u(&["digital signature", "client auth"])
            ),
            Err("subject organization is not system:nodes".into())
        );
        assert_eq!(
            validate_kubelet_client(
                &req("system:node:n1", &["system:nodes"], &["n1"], &[]),
                &u(&["digital signature", "client auth"])
            ),
            Err("DNS subjectAltNames are not allowed".into())
        );
        assert_eq!(
            validate_kubelet_client(
                &req("n1", &["system:nodes"], &[], &[]),
                &u(&["digital signature", "client auth"])
            ),
            Err("subject common name does not begin with system:node:".into())
        );
    }

    #[test]
    fn kubelet_serving() {
        let usages = u(&["digital signature", "key encipherment", "server auth"]);
        let ok = req("system:node:n1", &["system:nodes"], &["n1"], &["192.0.2.1"]);
        validate_kubelet_serving(&ok, &usages).unwrap();
        assert_eq!(
            validate_kubelet_serving(&ok, &u(&["digital signature", "client auth"])),
            Err("usages did not match [digital signature key encipherment server auth]".into())
        );
        assert_eq!(
            validate_kubelet_serving(&req("system:node:n1", &["system:nodes"], &[], &[]), &usages),
            Err("DNS or IP subjectAltName is required".into())
        );
    }

    #[test]
    fn apiserver_client_and_unknown_signers() {
        let r = req("jane", &["devs"], &[], &[]);
        assert_eq!(
            check_for_signer(KUBE_APISERVER_CLIENT, &r, &u(&["client auth"])),
            Some(Ok(()))
        );
        assert_eq!(
            check_for_signer(
                KUBE_APISERVER_CLIENT,
                &r,
                &u(&["client auth", "server auth"])
            ),
            Some(Err(
                "invalid usage for client certificate: server auth".into()
            ))
        );
        assert_eq!(
            check_for_signer(KUBE_APISERVER_CLIENT, &r, &u(&["digital signature"])),
            Some(Err(
                "missing required usage for client certificate: client auth".into()
            ))
        );
        assert_eq!(check_for_signer(LEGACY_UNKNOWN, &r, &[]), Some(Ok(())));
        assert_eq!(check_for_signer("example.com/mine", &r, &[]), None);
    }
}
