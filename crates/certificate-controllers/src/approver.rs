//! The CSR approving controller (`csrapproving`, upstream's `sarapprove.go`):
//! approves `kubernetes.io/kube-apiserver-client-kubelet` requests that are valid
//! kubelet client certificate requests (CN `system:node:<name>`, O exactly
//! `system:nodes`, no subject alternative names, digital signature and client auth
//! usages, optionally key encipherment), when
//! - the requester is the node itself (user name equals the CN): upstream's
//!   `selfnodeclient` rule, a kubelet renewing its certificate; or
//! - the requester is in group `system:bootstrappers`: upstream's `nodeclient`
//!   rule, a node joining with a bootstrap token.
//!
//! Upstream asks a SubjectAccessReview for the `certificatesigningrequests`
//! subresources `selfnodeclient` and `nodeclient` (create) as the requester, and
//! clusters bind those permissions with RBAC. ferrokube has no RBAC, so these fixed
//! user and group rules stand in for the reviews: they grant what a default kubeadm
//! cluster binds. Anything else (other signers, other subjects, other requesters)
//! is left for someone else to approve or deny.

use k8s_openapi::api::certificates::v1::{
    CertificateSigningRequest, CertificateSigningRequestCondition,
};
use kube::api::{Api, PostParams};
use kube::Client;

use controllers::controller::{ControllerContext, ControllerFuture};
use controllers::error::ControllerError;
use pki::csr::CertificateRequest;

use crate::controller::{written, CertificateController, CsrHandler};
use crate::request::{
    add_condition, approval, parse, usages, validate_kubelet_client, KUBE_APISERVER_CLIENT_KUBELET,
};

/// Canonical name of the CSR approving controller.
pub const CSR_APPROVING_CONTROLLER_NAME: &str = "certificatesigningrequest-approving-controller";

/// The group bootstrap tokens authenticate into.
pub const BOOTSTRAPPERS_GROUP: &str = "system:bootstrappers";

/// The reason of the Approved conditions this controller adds.
pub const AUTO_APPROVED: &str = "AutoApproved";

/// One kind of request this controller approves, and who may get it approved.
struct Rule {
    /// Upstream's name (the SubjectAccessReview subresource).
    name: &'static str,
    /// Whether the request is of this kind.
    recognize: fn(&CertificateSigningRequest, &CertificateRequest) -> bool,
    /// Whether its requester may have it approved (the SubjectAccessReview's stand-in).
    allowed: fn(&CertificateSigningRequest) -> bool,
    /// The approval message.
    message: &'static str,
}

fn is_node_client(csr: &CertificateSigningRequest, req: &CertificateRequest) -> bool {
    csr.spec.signer_name == KUBE_APISERVER_CLIENT_KUBELET
        && validate_kubelet_client(req, usages(csr)).is_ok()
}

fn is_self_node_client(csr: &CertificateSigningRequest, req: &CertificateRequest) -> bool {
    csr.spec.username.as_deref() == Some(req.common_name.as_str()) && is_node_client(csr, req)
}

fn requester_in(csr: &CertificateSigningRequest, group: &str) -> bool {
    csr.spec
        .groups
        .as_deref()
        .unwrap_or_default()
        .iter()
        .any(|g| g == group)
}

/// Upstream's recognizers, in its order.
const RULES: &[Rule] = &[
    Rule {
        name: "selfnodeclient",
        recognize: is_self_node_client,
        // Recognizing it already checked that the requester is the node named.
        allowed: |_| true,
        message: "Auto approving self kubelet client certificate after SubjectAccessReview.",
    },
    Rule {
        name: "nodeclient",
        recognize: is_node_client,
        allowed: |csr| requester_in(csr, BOOTSTRAPPERS_GROUP),
        message: "Auto approving kubelet client certificate after SubjectAccessReview.",
    },
];

/// Starts the controller (five workers, as upstream).
pub fn start_csr_approving_controller(
    ctx: &ControllerContext,
) -> Result<ControllerFuture, ControllerError> {
    let approver = CsrApprover {
        client: ctx.client.clone(),
    };
    let c = CertificateController::new(ctx, CSR_APPROVING_CONTROLLER_NAME, approver);
    Ok(Box::pin(c.run(5)))
}

/// The approving handler.
pub struct CsrApprover {
    client: Client,
}

impl CsrHandler for CsrApprover {
    async fn handle(&self, mut csr: CertificateSigningRequest) -> Result<(), ControllerError> {
        if approval(&csr) != (false, false) {
            return Ok(());
        }
        let name = csr.metadata.name.clone().unwrap_or_default();
        let req = parse(&csr)
            .map_err(|e| ControllerError::Other(format!("unable to parse csr {name:?}: {e}")))?;
        let mut tried = Vec::new();
        for rule in RULES {
            if !(rule.recognize)(&csr, &req) {
                continue;
            }
            tried.push(rule.name);
            if !(rule.allowed)(&csr) {
                continue;
            }
            add_condition(
                &mut csr,
                CertificateSigningRequestCondition {
                    type_: validation::certificates::APPROVED.into(),
                    status: "True".into(),
                    reason: Some(AUTO_APPROVED.into()),
                    message: Some(rule.message.into()),
                    ..Default::default()
                },
            );
            let api: Api<CertificateSigningRequest> = Api::all(self.client.clone());
            let result = api
                .replace_subresource("approval", &name, &PostParams::default(), &csr)
                .await;
            return written(result, "error updating approval for csr");
        }
        // Upstream re-queues these in case permissions change; the stand-in rules
        // read only the immutable spec, so a retry would decide the same.
        if !tried.is_empty() {
            tracing::info!(
                csr = %name,
                rules = ?tried,
                "recognized csr but its requester may not have it approved automatically"
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn csr(
        username: &str,
        groups: &[&str],
        cn: &str,
        org: &str,
    ) -> (CertificateSigningRequest, CertificateRequest) {
        let pem = pki::csr::generate_request(cn, &[org], &[], &[])
            .unwrap()
            .request_pem;
        let req = CertificateRequest::from_pem(pem.as_bytes()).unwrap();
        let csr = serde_json::from_value(json!({
            "metadata": {"name": "c"},
            "spec": {
                "request": k8s_openapi::ByteString(pem.into_bytes()),
                "signerName": KUBE_APISERVER_CLIENT_KUBELET,
                "usages": ["digital signature", "client auth"],
                "username": username,
                "groups": groups,
            }
        }))
        .unwrap();
        (csr, req)
    }

    /// The rules that would approve a request.
    fn approving(csr: &CertificateSigningRequest, req: &CertificateRequest) -> Vec<&'static str> {
        RULES
            .iter()
            .filter(|r| (r.recognize)(csr, req) && (r.allowed)(csr))
            .map(|r| r.name)
            .collect()
    }

    #[test]
    fn rules() {
        let (c, r) = csr(
            "system:bootstrap:abcdef",
            &["system:bootstrappers", "system:authenticated"],
            "system:node:n1",
            "system:nodes",
        );
        assert_eq!(approving(&c, &r), ["nodeclient"]);
        let (c, r) = csr(
            "system:node:n1",
            &["system:nodes", "system:authenticated"],
            "system:node:n1",
            "system:nodes",
        );
        assert_eq!(approving(&c, &r), ["selfnodeclient"]);
        // Another node's name, or a user who is not bootstrapping: nothing.
        let (c, r) = csr(
            "system:node:n2",
            &["system:nodes"],
            "system:node:n1",
            "system:nodes",
        );
        assert!(approving(&c, &r).is_empty());
        let (c, r) = csr(
            "jane",
            &["system:authenticated"],
            "system:node:n1",
            "system:nodes",
        );
        assert!(approving(&c, &r).is_empty());
        // Not a node client request.
        let (c, r) = csr(
            "system:bootstrap:abcdef",
            &["system:bootstrappers"],
            "system:node:n1",
            "system:masters",
        );
        assert!(approving(&c, &r).is_empty());
        let (mut c, r) = csr(
            "system:bootstrap:abcdef",
            &["system:bootstrappers"],
            "system:node:n1",
            "system:nodes",
        );
        c.spec.signer_name = "kubernetes.io/kube-apiserver-client".into();
        assert!(approving(&c, &r).is_empty());
    }
}
