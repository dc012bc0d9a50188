//! The CSR signing controller (`csrsigning`, upstream's `signer.go`): issues
//! Approved, not Failed requests of the `kubernetes.io/kube-apiserver-client`,
//! `kube-apiserver-client-kubelet`, `kubelet-serving` and `legacy-unknown` signers
//! with the CA of `--cluster-signing-cert-file` and `--cluster-signing-key-file`,
//! writing the certificate through the `status` subresource.
//!
//! Each signer first checks what it may issue ([`crate::request::check_for_signer`]);
//! a request that fails gets a `Failed` condition (reason `SignerValidationFailure`)
//! instead of a certificate. A certificate lasts `spec.expirationSeconds` when that
//! is shorter than `--cluster-signing-duration` (at least 10 minutes), else that
//! duration, and never outlives the CA. Without both files the controller does not
//! run, as upstream. The CA is read once when the controller starts (upstream
//! reloads it when the files change).

use std::time::{Duration, SystemTime};

use k8s_openapi::api::certificates::v1::{
    CertificateSigningRequest, CertificateSigningRequestCondition, CertificateSigningRequestStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::ByteString;
use kube::api::{Api, PostParams};
use kube::Client;

use controllers::controller::{ControllerContext, ControllerFuture};
use controllers::error::ControllerError;
use pki::csr::CsrSigner;

use crate::controller::{written, CertificateController, CsrHandler};
use crate::request::{add_condition, check_for_signer, is_approved, is_failed, parse, usages};

/// Canonical name of the CSR signing controller.
pub const CSR_SIGNING_CONTROLLER_NAME: &str = "certificatesigningrequest-signing-controller";

/// The reason of the Failed condition of requests a signer refuses.
pub const SIGNER_VALIDATION_FAILURE: &str = "SignerValidationFailure";

/// The shortest certificate issued, whatever a request asks (twice the backdating).
const MIN_DURATION: Duration = Duration::from_secs(10 * 60);

/// Starts the controller (five workers, as upstream), or a no-op when the signing
/// files are not configured.
pub fn start_csr_signing_controller(
    ctx: &ControllerContext,
) -> Result<ControllerFuture, ControllerError> {
    let config = &ctx.config;
    let (Some(cert), Some(key)) = (
        &config.cluster_signing_cert_file,
        &config.cluster_signing_key_file,
    ) else {
        tracing::info!(
            controller = CSR_SIGNING_CONTROLLER_NAME,
            "Skipping CSR signer controller because no csr cert/key was specified"
        );
        return Ok(Box::pin(async {}));
    };
    let ca = CsrSigner::load(cert, key).map_err(|e| {
        ControllerError::Config(format!(
            "failed to start certificate signing controller: error reading CA cert file {:?} and key file {:?}: {e}",
            cert.display().to_string(),
            key.display().to_string()
        ))
    })?;
    let signer = CsrSigningHandler::new(ctx.client.clone(), ca, config.cluster_signing_duration);
    let c = CertificateController::new(ctx, CSR_SIGNING_CONTROLLER_NAME, signer);
    Ok(Box::pin(c.run(5)))
}

/// How long a certificate lasts for a request asking `expiration_seconds` from a
/// signer that gives at most `max` (upstream's `signer.duration`).
pub fn certificate_duration(expiration_seconds: Option<i32>, max: Duration) -> Duration {
    let Some(secs) = expiration_seconds else {
        return max;
    };
    let requested = Duration::from_secs(u64::try_from(secs).unwrap_or(0));
    if requested > max {
        max
    } else {
        requested.max(MIN_DURATION)
    }
}

/// The signing handler.
pub struct CsrSigningHandler {
    client: Client,
    ca: CsrSigner,
    max_duration: Duration,
}

impl CsrSigningHandler {
    /// Signs with `ca`, for at most `max_duration`.
    pub fn new(client: Client, ca: CsrSigner, max_duration: Duration) -> Self {
        CsrSigningHandler {
            client,
            ca,
            max_duration,
        }
    }

    async fn update_status(
        &self,
        csr: &CertificateSigningRequest,
        what: &str,
    ) -> Result<(), ControllerError> {
        let api: Api<CertificateSigningRequest> = Api::all(self.client.clone());
        let name = csr.metadata.name.as_deref().unwrap_or_default();
        written(
            api.replace_status(name, &PostParams::default(), csr).await,
            what,
        )
    }
}

impl CsrHandler for CsrSigningHandler {
    async fn handle(&self, mut csr: CertificateSigningRequest) -> Result<(), ControllerError> {
        if !is_approved(&csr) || is_failed(&csr) {
            return Ok(());
        }
        let name = csr.metadata.name.clone().unwrap_or_default();
        let req = parse(&csr)
            .map_err(|e| ControllerError::Other(format!("unable to parse csr {name:?}: {e}")))?;
        let now = SystemTime::now();
        match check_for_signer(&csr.spec.signer_name, &req, usages(&csr)) {
            // Another signer's request.
            None => Ok(()),
            Some(Err(refusal)) => {
                let stamp = jiff::Timestamp::try_from(now)
                    .ok()
                    .and_then(|t| t.round(jiff::Unit::Second).ok());
                add_condition(
                    &mut csr,
                    CertificateSigningRequestCondition {
                        type_: validation::certificates::FAILED.into(),
                        status: "True".into(),
                        reason: Some(SIGNER_VALIDATION_FAILURE.into()),
                        message: Some(refusal),
                        last_update_time: stamp.map(Time),
                        ..Default::default()
                    },
                );
                self.update_status(&csr, "error adding failure condition for csr")
                    .await
            }
            Some(Ok(())) => {
                let ttl = certificate_duration(csr.spec.expiration_seconds, self.max_duration);
                let pem = self
                    .ca
                    .sign(&req, usages(&csr), ttl, now)
                    .map_err(|e| ControllerError::Other(format!("error auto signing csr: {e}")))?;
                csr.status
                    .get_or_insert_with(CertificateSigningRequestStatus::default)
                    .certificate = Some(ByteString(pem.into_bytes()));
                self.update_status(&csr, "error updating signature for csr")
                    .await
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_follow_the_request_within_bounds() {
        let year = Duration::from_secs(8760 * 3600);
        assert_eq!(certificate_duration(None, year), year);
        assert_eq!(
            certificate_duration(Some(3600), year),
            Duration::from_secs(3600)
        );
        assert_eq!(certificate_duration(Some(60), year), MIN_DURATION);
        assert_eq!(certificate_duration(Some(i32::MAX), year), year);
    }
}
