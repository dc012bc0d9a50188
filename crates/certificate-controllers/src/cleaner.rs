//! The CSR cleaner (`csrcleaner`, upstream's `cleaner.go`): automated requests and
//! approvals make CertificateSigningRequests pile up, so once an hour (and once its
//! cache has synced) it deletes every request that is
//! - approved and issued, an hour after the approval;
//! - denied, an hour after the denial; failed, an hour after the failure;
//! - still pending (no condition at all) a day after its creation;
//! - issued with a certificate that has expired.
//!
//! An approved request that was never issued stays, as upstream.

use std::time::{Duration, SystemTime};

use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, DeleteParams};
use kube::Client;

use controllers::controller::{ControllerContext, ControllerFuture};
use controllers::error::ControllerError;
use controllers::informer::{Informer, InformerFactory, Store};
use validation::certificates::{certificate, conditions, APPROVED, DENIED, FAILED};

use crate::controller::written;
use crate::request::is_issued;

/// Canonical name of the CSR cleaner.
pub const CSR_CLEANER_CONTROLLER_NAME: &str = "certificatesigningrequest-cleaner-controller";

/// How often every request is checked.
pub const POLLING_INTERVAL: Duration = Duration::from_secs(3600);
/// How long an issued request stays after its approval.
pub const APPROVED_EXPIRATION: Duration = Duration::from_secs(3600);
/// How long a denied (or failed) request stays.
pub const DENIED_EXPIRATION: Duration = Duration::from_secs(3600);
/// How long a request nobody handled stays.
pub const PENDING_EXPIRATION: Duration = Duration::from_secs(24 * 3600);

/// Why a request is deleted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cleanup {
    /// Issued, and approved more than [`APPROVED_EXPIRATION`] ago.
    IssuedPastDeadline,
    /// Denied more than [`DENIED_EXPIRATION`] ago.
    DeniedPastDeadline,
    /// Failed more than [`DENIED_EXPIRATION`] ago.
    FailedPastDeadline,
    /// Without any condition for more than [`PENDING_EXPIRATION`].
    PendingPastDeadline,
    /// Issued with a certificate that has expired.
    IssuedExpired,
}

/// Whether `t` is set and more than `d` before `now`.
fn older_than(t: Option<&Time>, d: Duration, now: SystemTime) -> bool {
    t.is_some_and(|t| SystemTime::from(t.0) + d < now)
}

/// Whether a condition of `type_` was last updated more than `d` before `now`.
fn condition_older_than(
    csr: &CertificateSigningRequest,
    type_: &str,
    d: Duration,
    now: SystemTime,
) -> bool {
    conditions(csr)
        .iter()
        .any(|c| c.type_ == type_ && older_than(c.last_update_time.as_ref(), d, now))
}

/// Why `csr` should be deleted at `now`, if it should (upstream's checks, in its
/// order).
pub fn cleanup(csr: &CertificateSigningRequest, now: SystemTime) -> Option<Cleanup> {
    let approved = conditions(csr).iter().any(|c| c.type_ == APPROVED);
    if is_issued(csr) && condition_older_than(csr, APPROVED, APPROVED_EXPIRATION, now) {
        return Some(Cleanup::IssuedPastDeadline);
    }
    if condition_older_than(csr, DENIED, DENIED_EXPIRATION, now) {
        return Some(Cleanup::DeniedPastDeadline);
    }
    if condition_older_than(csr, FAILED, DENIED_EXPIRATION, now) {
        return Some(Cleanup::FailedPastDeadline);
    }
    if conditions(csr).is_empty()
        && older_than(
            csr.metadata.creation_timestamp.as_ref(),
            PENDING_EXPIRATION,
            now,
        )
    {
        return Some(Cleanup::PendingPastDeadline);
    }
    let expired = pki::csr::certificate_not_after(certificate(csr)).is_some_and(|end| now > end);
    if approved && expired {
        return Some(Cleanup::IssuedExpired);
    }
    None
}

/// Starts the cleaner.
pub fn start_csr_cleaner_controller(
    ctx: &ControllerContext,
) -> Result<ControllerFuture, ControllerError> {
    let informer = ctx.informers.informer::<CertificateSigningRequest>();
    let cleaner = CsrCleaner {
        client: ctx.client.clone(),
        csrs: informer.store(),
        informers: ctx.informers.clone(),
        informer,
    };
    Ok(Box::pin(cleaner.run()))
}

/// The cleaner.
pub struct CsrCleaner {
    client: Client,
    csrs: Store<CertificateSigningRequest>,
    informers: InformerFactory,
    informer: Informer<CertificateSigningRequest>,
}

impl CsrCleaner {
    /// Waits for the cache, then cleans every [`POLLING_INTERVAL`] until dropped.
    pub async fn run(self) {
        self.informers.start();
        self.informer.wait_synced().await;
        tracing::info!(
            controller = CSR_CLEANER_CONTROLLER_NAME,
            "caches synced; cleaning"
        );
        loop {
            self.clean_once(SystemTime::now()).await;
            tokio::time::sleep(POLLING_INTERVAL).await;
        }
    }

    /// Deletes every cached request that [`cleanup`] says should go at `now`.
    pub async fn clean_once(&self, now: SystemTime) {
        let api: Api<CertificateSigningRequest> = Api::all(self.client.clone());
        for csr in self.csrs.list() {
            let Some(why) = cleanup(&csr, now) else {
                continue;
            };
            let name = csr.metadata.name.as_deref().unwrap_or_default();
            tracing::info!(csr = %name, reason = ?why, "cleaning CSR");
            let deleted = api.delete(name, &DeleteParams::default()).await;
            if let Err(e) = written(deleted, "unable to delete CSR") {
                tracing::error!(csr = %name, error = %e, "cleaning CSR failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const HOUR: Duration = Duration::from_secs(3600);

    fn at(t: SystemTime) -> String {
        jiff::Timestamp::try_from(t).unwrap().to_string()
    }

    fn csr(created: SystemTime, status: serde_json::Value) -> CertificateSigningRequest {
        serde_json::from_value(json!({
            "metadata": {"name": "c", "creationTimestamp": at(created)},
            "spec": {"request": "", "signerName": "example.com/s"},
            "status": status,
        }))
        .unwrap()
    }

    fn condition(type_: &str, updated: SystemTime) -> serde_json::Value {
        json!({"type": type_, "status": "True", "lastUpdateTime": at(updated)})
    }

    /// A PEM certificate valid from `start` to `end`.
    fn cert(start: SystemTime, end: SystemTime) -> k8s_openapi::ByteString {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::default();
        params.not_before = start.into();
        params.not_after = end.into();
        k8s_openapi::ByteString(params.self_signed(&key).unwrap().pem().into_bytes())
    }

    #[test]
    fn deadlines() {
        let now = SystemTime::now();
        let recent = now - HOUR / 2;
        let old = now - 2 * HOUR;
        let valid = cert(old, now + HOUR);
        let expired = cert(now - 3 * HOUR, now - HOUR);
        let cases = [
            (csr(now, json!({})), None),
            (csr(now - 23 * HOUR, json!({})), None),
            (
                csr(now - 25 * HOUR, json!({})),
                Some(Cleanup::PendingPastDeadline),
            ),
            (
                csr(
                    old,
                    json!({"conditions": [condition("Approved", recent)], "certificate": valid}),
                ),
                None,
            ),
            (
                csr(
                    old,
                    json!({"conditions": [condition("Approved", old)], "certificate": valid}),
                ),
                Some(Cleanup::IssuedPastDeadline),
            ),
            // Approved long ago but never issued: kept.
            (
                csr(old, json!({"conditions": [condition("Approved", old)]})),
                None,
            ),
            (
                csr(old, json!({"conditions": [condition("Denied", recent)]})),
                None,
            ),
            (
                csr(old, json!({"conditions": [condition("Denied", old)]})),
                Some(Cleanup::DeniedPastDeadline),
            ),
            (
                csr(
                    old,
                    json!({"conditions": [condition("Approved", recent), condition("Failed", old)]}),
                ),
                Some(Cleanup::FailedPastDeadline),
            ),
            (
                csr(
                    old,
                    json!({"conditions": [condition("Approved", recent)], "certificate": expired}),
                ),
                Some(Cleanup::IssuedExpired),
            ),
        ];
        for (i, (c, want)) in cases.iter().enumerate() {
            assert_eq!(cleanup(c, now), *want, "case {i}");
        }
    }
}
