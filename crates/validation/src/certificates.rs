//! certificates.k8s.io/v1 CertificateSigningRequest: upstream's registry strategies
//! (main resource, `status` and `approval` subresources) and validation
//! (`pkg/apis/certificates/validation`), with upstream's paths and messages.
//!
//! Who may change what:
//! - create: status is cleared and `spec.username`, `uid`, `groups` and `extra` come
//!   from the requesting user ([`KindRules::prepare_for_create_by`]);
//! - the main resource: only metadata (spec and status are kept);
//! - `status`: the certificate and conditions other than Approved and Denied;
//! - `approval`: only the conditions (Approved and Denied are what it is for).
//!
//! Approved, Denied and Failed conditions can never be removed; an issued
//! certificate never changes. As upstream, the API does not check that a request was
//! approved before its certificate is set: that is the signers' rule.

use std::collections::BTreeMap;

use apimachinery::validation as av;
use apimachinery::{FieldError, Path};
use k8s_openapi::api::certificates::v1::{
    CertificateSigningRequest, CertificateSigningRequestCondition, CertificateSigningRequestStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::util::{list, to_json, validate_kube_finalizers};
use crate::{KindRules, UserInfo};

/// The Approved condition type.
pub const APPROVED: &str = "Approved";
/// The Denied condition type.
pub const DENIED: &str = "Denied";
/// The Failed condition type.
pub const FAILED: &str = "Failed";

/// The signer name only the v1beta1 API accepted on new requests.
pub const LEGACY_UNKNOWN_SIGNER: &str = "kubernetes.io/legacy-unknown";

/// Every usage the API knows, sorted (upstream's `allValidUsages.List()`).
pub const VALID_USAGES: &[&str] = &[
    "any",
    "cert sign",
    "client auth",
    "code signing",
    "content commitment",
    "crl sign",
    "data encipherment",
    "decipher only",
    "digital signature",
    "email protection",
    "encipher only",
    "ipsec end system",
    "ipsec tunnel",
    "ipsec user",
    "key agreement",
    "key encipherment",
    "microsoft sgc",
    "netscape sgc",
    "ocsp signing",
    "s/mime",
    "server auth",
    "signing",
    "timestamping",
];

/// The smallest `spec.expirationSeconds` accepted.
pub const MIN_EXPIRATION_SECONDS: i32 = 600;

fn now() -> Time {
    Time(
        jiff::Timestamp::now()
            .round(jiff::Unit::Second)
            .unwrap_or_else(|_| jiff::Timestamp::now()),
    )
}

/// The request's conditions.
pub fn conditions(csr: &CertificateSigningRequest) -> &[CertificateSigningRequestCondition] {
    csr.status
        .as_ref()
        .map(|s| list(&s.conditions))
        .unwrap_or_default()
}

/// The issued certificate (PEM), empty until issued.
pub fn certificate(csr: &CertificateSigningRequest) -> &[u8] {
    csr.status
        .as_ref()
        .and_then(|s| s.certificate.as_ref())
        .map(|c| c.0.as_slice())
        .unwrap_or_default()
}

/// The conditions of `type_`.
fn find_conditions<'a>(
    csr: &'a CertificateSigningRequest,
    type_: &str,
) -> Vec<&'a CertificateSigningRequestCondition> {
    conditions(csr)
        .iter()
        .filter(|c| c.type_ == type_)
        .collect()
}

/// Whether the request has a condition of `type_` with status True.
pub fn has_true_condition(csr: &CertificateSigningRequest, type_: &str) -> bool {
    conditions(csr)
        .iter()
        .any(|c| c.type_ == type_ && c.status == "True")
}

/// What a validation tolerates (upstream's `certificateValidationOptions`): the
/// subresource-specific permissions, and problems already present in the stored
/// object that updates may carry along.
#[derive(Default)]
struct Options {
    allow_setting_approval_conditions: bool,
    allow_setting_certificate: bool,
    allow_both_approved_and_denied: bool,
    allow_resetting_certificate: bool,
    allow_legacy_signer_name: bool,
    allow_duplicate_condition_types: bool,
    allow_empty_condition_type: bool,
    allow_arbitrary_certificate: bool,
    allow_unknown_usages: bool,
    allow_duplicate_usages: bool,
}

fn has_duplicates<'a>(items: impl Iterator<Item = &'a str>) -> bool {
    let mut seen = std::collections::HashSet::new();
    items.into_iter().any(|i| !seen.insert(i))
}

/// Upstream's `getValidationOptions`: `old` is `None` on create.
fn options(new: &CertificateSigningRequest, old: Option<&CertificateSigningRequest>) -> Options {
    let Some(old) = old else {
        return Options::default();
    };
    let usages = list(&old.spec.usages);
    Options {
        allow_both_approved_and_denied: !find_conditions(old, APPROVED).is_empty()
            && !find_conditions(old, DENIED).is_empty(),
        allow_legacy_signer_name: old.spec.signer_name == LEGACY_UNKNOWN_SIGNER,
        allow_duplicate_condition_types: has_duplicates(
            conditions(old).iter().map(|c| c.type_.as_str()),
        ),
        allow_empty_condition_type: conditions(old).iter().any(|c| c.type_.is_empty()),
        allow_arbitrary_certificate: certificate(new) == certificate(old)
            || pki::csr::check_certificate_bundle(certificate(old)).is_err(),
        allow_unknown_usages: usages.iter().any(|u| !VALID_USAGES.contains(&u.as_str())),
        allow_duplicate_usages: has_duplicates(usages.iter().map(String::as_str)),
        ..Options::default()
    }
}

/// The errors of the first of `labels` (dot-separated parts of `segment`) that
/// `check` refuses; later ones would only repeat them.
fn first_bad_label(
    path: &Path,
    segment: &str,
    labels: &[&str],
    check: fn(&str) -> Vec<String>,
) -> Vec<FieldError> {
    labels
        .iter()
        .map(|label| {
            check(label)
                .into_iter()
                .map(|m| {
                    FieldError::invalid(path, segment, format!("validating label {label:?}: {m}"))
                })
                .collect::<Vec<_>>()
        })
        .find(|errs| !errs.is_empty())
        .unwrap_or_default()
}

/// Upstream's `ValidateSignerName`: `domain/path`, the domain DNS labels with at
/// least one dot, the path DNS subdomains separated by dots.
pub fn validate_signer_name(path: &Path, signer: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if signer.is_empty() {
        errs.push(FieldError::required(path, ""));
        return errs;
    }
    let segments: Vec<&str> = signer.split('/').collect();
    let [domain, signer_path] = segments.as_slice() else {
        errs.push(FieldError::invalid(
            path,
            signer,
            "must be a fully qualified domain and path of the form 'example.com/signer-name'",
        ));
        return errs;
    };
    if domain.len() > av::DNS1123_SUBDOMAIN_MAX_LENGTH {
        errs.push(FieldError::too_long(
            path,
            *domain,
            av::DNS1123_SUBDOMAIN_MAX_LENGTH as i64,
        ));
    }
    let labels: Vec<&str> = domain.split('.').collect();
    errs.extend(first_bad_label(path, domain, &labels, av::is_dns1123_label));
    if labels.len() < 2 {
        errs.push(FieldError::invalid(
            path,
            *domain,
            "should be a domain with at least two segments separated by dots",
        ));
    }
    let path_labels: Vec<&str> = signer_path.split('.').collect();
    errs.extend(first_bad_label(
        path,
        signer_path,
        &path_labels,
        av::is_dns1123_subdomain,
    ));
    let max_path = av::DNS1123_SUBDOMAIN_MAX_LENGTH + av::DNS1123_LABEL_MAX_LENGTH + 1;
    let max = av::DNS1123_SUBDOMAIN_MAX_LENGTH + max_path + 1;
    if signer.len() > max {
        errs.push(FieldError::too_long(path, signer, max as i64));
    }
    errs
}

/// Reads and checks `spec.request` (upstream's `validateCSR`).
fn check_request(pem: &[u8]) -> Result<(), pki::csr::RequestError> {
    pki::csr::CertificateRequest::from_pem(pem)?.verify_signature()
}

fn validate_conditions(csr: &CertificateSigningRequest, opts: &Options) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let p = Path::new("status").child("conditions");
    let mut seen = std::collections::HashSet::new();
    let (mut approved, mut denied) = (false, false);
    for (i, c) in conditions(csr).iter().enumerate() {
        let cp = p.index(i);
        if !opts.allow_empty_condition_type && c.type_.is_empty() {
            errs.push(FieldError::required(&cp.child("type"), ""));
        }
        let allowed: &[&str] = if [APPROVED, DENIED, FAILED].contains(&c.type_.as_str()) {
            &["True"]
        } else {
            &["False", "True", "Unknown"]
        };
        if c.status.is_empty() {
            errs.push(FieldError::required(&cp.child("status"), ""));
        } else if !allowed.contains(&c.status.as_str()) {
            errs.push(FieldError::not_supported(
                &cp.child("status"),
                c.status.as_str(),
                allowed,
            ));
        }
        if !opts.allow_both_approved_and_denied {
            let exclusive = match c.type_.as_str() {
                APPROVED => {
                    approved = true;
                    denied
                }
                DENIED => {
                    denied = true;
                    approved
                }
                _ => false,
            };
            if exclusive {
                errs.push(FieldError::invalid(
                    &cp.child("type"),
                    c.type_.as_str(),
                    "Approved and Denied conditions are mutually exclusive",
                ));
            }
        }
        if !opts.allow_duplicate_condition_types && !seen.insert(c.type_.as_str()) {
            errs.push(FieldError::duplicate(&cp.child("type"), c.type_.as_str()));
        }
    }
    errs
}

/// Upstream's `validateCertificateSigningRequest` (metadata checks other than
/// finalizers are the caller's).
fn validate_csr(csr: &CertificateSigningRequest, opts: &Options) -> Vec<FieldError> {
    let mut errs = validate_kube_finalizers(&csr.metadata);
    let spec = &csr.spec;
    let sp = Path::new("spec");
    if let Err(e) = check_request(&spec.request.0) {
        errs.push(FieldError::invalid(
            &sp.child("request"),
            to_json(&spec.request),
            e.to_string(),
        ));
    }
    let usages = list(&spec.usages);
    if usages.is_empty() {
        errs.push(FieldError::required(&sp.child("usages"), ""));
    }
    if !opts.allow_unknown_usages {
        for (i, u) in usages.iter().enumerate() {
            if !VALID_USAGES.contains(&u.as_str()) {
                errs.push(FieldError::not_supported(
                    &sp.child("usages").index(i),
                    u.as_str(),
                    VALID_USAGES,
                ));
            }
        }
    }
    if !opts.allow_duplicate_usages {
        let mut seen = std::collections::HashSet::new();
        for (i, u) in usages.iter().enumerate() {
            if !seen.insert(u.as_str()) {
                errs.push(FieldError::duplicate(
                    &sp.child("usages").index(i),
                    u.as_str(),
                ));
            }
        }
    }
    if !opts.allow_legacy_signer_name && spec.signer_name == LEGACY_UNKNOWN_SIGNER {
        errs.push(FieldError::invalid(
            &sp.child("signerName"),
            spec.signer_name.as_str(),
            "the legacy signerName is not allowed via this API version",
        ));
    } else {
        errs.extend(validate_signer_name(
            &sp.child("signerName"),
            &spec.signer_name,
        ));
    }
    if let Some(secs) = spec.expiration_seconds {
        if secs < MIN_EXPIRATION_SECONDS {
            errs.push(FieldError::invalid(
                &sp.child("expirationSeconds"),
                secs,
                "may not specify a duration less than 600 seconds (10 minutes)",
            ));
        }
    }
    errs.extend(validate_conditions(csr, opts));
    if !opts.allow_arbitrary_certificate {
        if let Err(e) = pki::csr::check_certificate_bundle(certificate(csr)) {
            errs.push(FieldError::invalid(
                &Path::new("status").child("certificate"),
                "<certificate data>",
                e.to_string(),
            ));
        }
    }
    errs
}

/// Upstream's `validateCertificateSigningRequestUpdate` (metadata update checks are
/// the caller's).
fn validate_update_with(
    new: &CertificateSigningRequest,
    old: &CertificateSigningRequest,
    opts: &Options,
) -> Vec<FieldError> {
    let mut errs = validate_csr(new, opts);
    let cp = Path::new("status").child("conditions");
    for t in [APPROVED, DENIED, FAILED] {
        if find_conditions(new, t).len() < find_conditions(old, t).len() {
            errs.push(FieldError::forbidden(
                &cp,
                format!("updates may not remove a condition of type {t:?}"),
            ));
        }
    }
    if !opts.allow_setting_approval_conditions {
        for t in [APPROVED, DENIED] {
            let (o, n) = (find_conditions(old, t), find_conditions(new, t));
            if n.len() > o.len() {
                errs.push(FieldError::forbidden(
                    &cp,
                    format!("updates may not add a condition of type {t:?}"),
                ));
            } else if n.len() == o.len() && o != n {
                errs.push(FieldError::forbidden(
                    &cp,
                    format!(
                        "updates may not modify a condition of type {t:?}\n- {}\n+ {}",
                        to_json(&o),
                        to_json(&n)
                    ),
                ));
            }
        }
    }
    let cert_path = Path::new("status").child("certificate");
    if certificate(new) != certificate(old) {
        if !opts.allow_setting_certificate {
            errs.push(FieldError::forbidden(
                &cert_path,
                "updates may not set certificate content",
            ));
        } else if !opts.allow_resetting_certificate && !certificate(old).is_empty() {
            errs.push(FieldError::forbidden(
                &cert_path,
                "updates may not modify existing certificate content",
            ));
        }
    }
    errs
}

/// Sets `lastUpdateTime` and `lastTransitionTime` where a condition lacks them; a
/// condition whose type and status were already there keeps its old transition time
/// (upstream's `populateConditionTimestamps`).
fn populate_condition_timestamps(
    new: &mut CertificateSigningRequest,
    old: &CertificateSigningRequest,
    now: &Time,
) {
    let old_conditions = conditions(old).to_vec();
    let Some(conds) = new.status.as_mut().and_then(|s| s.conditions.as_mut()) else {
        return;
    };
    for c in conds {
        if c.last_update_time.is_none() {
            c.last_update_time = Some(now.clone());
        }
        if c.last_transition_time.is_none() {
            let kept = old_conditions
                .iter()
                .find(|o| o.type_ == c.type_ && o.status == c.status)
                .and_then(|o| o.last_transition_time.clone());
            c.last_transition_time = Some(kept.unwrap_or_else(|| now.clone()));
        }
    }
}

/// Copies the old conditions of `type_` over the new ones when there are as many
/// (upstream's `preserveConditionInstances`); added or removed ones are left for
/// validation to refuse.
fn preserve_condition_instances(
    new: &mut CertificateSigningRequest,
    old: &CertificateSigningRequest,
    type_: &str,
) {
    let old_instances: Vec<CertificateSigningRequestCondition> =
        find_conditions(old, type_).into_iter().cloned().collect();
    let Some(conds) = new.status.as_mut().and_then(|s| s.conditions.as_mut()) else {
        return;
    };
    let positions: Vec<usize> = conds
        .iter()
        .enumerate()
        .filter(|(_, c)| c.type_ == type_)
        .map(|(i, _)| i)
        .collect();
    if positions.len() != old_instances.len() {
        return;
    }
    for (i, c) in positions.into_iter().zip(old_instances) {
        conds[i] = c;
    }
}

/// The `approval` subresource's update: only the conditions change (timestamps
/// filled in); spec and certificate stay as they were.
pub fn prepare_for_approval_update(
    new: &mut CertificateSigningRequest,
    old: &CertificateSigningRequest,
) {
    populate_condition_timestamps(new, old, &now());
    let conditions = new.status.take().and_then(|s| s.conditions);
    new.spec = old.spec.clone();
    let mut status = old.status.clone().unwrap_or_default();
    status.conditions = conditions;
    new.status = Some(status);
}

/// Validation of an update through the `approval` subresource.
pub fn validate_approval_update(
    new: &CertificateSigningRequest,
    old: &CertificateSigningRequest,
) -> Vec<FieldError> {
    let mut opts = options(new, Some(old));
    opts.allow_setting_approval_conditions = true;
    validate_update_with(new, old, &opts)
}

/// The spec fields that record who asked, from `user`.
fn set_requester(csr: &mut CertificateSigningRequest, user: &UserInfo<'_>) {
    let non_empty = |s: &str| (!s.is_empty()).then(|| s.to_string());
    csr.spec.username = non_empty(user.name);
    csr.spec.uid = non_empty(user.uid);
    csr.spec.groups = (!user.groups.is_empty()).then(|| user.groups.to_vec());
    csr.spec.extra = (!user.extra.is_empty()).then(|| {
        user.extra
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect::<BTreeMap<_, _>>()
    });
}

impl KindRules for CertificateSigningRequest {
    fn prepare_for_create(&mut self) {
        self.spec.username = None;
        self.spec.uid = None;
        self.spec.groups = None;
        self.spec.extra = None;
        // Users cannot create pre-approved requests.
        self.status = Some(CertificateSigningRequestStatus::default());
    }

    fn prepare_for_create_by(&mut self, user: &UserInfo<'_>) {
        set_requester(self, user);
    }

    fn prepare_for_update(&mut self, old: &Self) {
        self.spec = old.spec.clone();
        self.status = old.status.clone();
    }

    fn prepare_for_status_update(&mut self, old: &Self) {
        self.spec = old.spec.clone();
        preserve_condition_instances(self, old, APPROVED);
        preserve_condition_instances(self, old, DENIED);
        populate_condition_timestamps(self, old, &now());
    }

    fn update_subresource(&mut self, subresource: &str, old: &Self) -> Option<Vec<FieldError>> {
        (subresource == "approval").then(|| {
            prepare_for_approval_update(self, old);
            validate_approval_update(self, old)
        })
    }

    fn validate(&self) -> Vec<FieldError> {
        validate_csr(self, &options(self, None))
    }

    fn validate_update(&self, old: &Self) -> Vec<FieldError> {
        validate_update_with(self, old, &options(self, Some(old)))
    }

    fn validate_status_update(&self, old: &Self) -> Vec<FieldError> {
        let mut opts = options(self, Some(old));
        opts.allow_setting_certificate = true;
        validate_update_with(self, old, &opts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;
    use serde_json::json;

    /// A valid PEM request (ECDSA P-256, CN=system:node:n1, O=system:nodes).
    fn request_pem() -> String {
        pki::csr::generate_request("system:node:n1", &["system:nodes"], &[], &[])
            .unwrap()
            .request_pem
    }

    /// A PEM certificate (a fresh cluster CA's).
    fn cert_pem() -> Vec<u8> {
        let dir = tempfile::tempdir().unwrap();
        let ca = pki::ClusterCa::load_or_create(dir.path()).unwrap();
        ca.cert_pem().as_bytes().to_vec()
    }

    fn csr(v: serde_json::Value) -> CertificateSigningRequest {
        let mut base = json!({
            "metadata": {"name": "c", "resourceVersion": "1"},
            "spec": {
                "request": ByteString(request_pem().into_bytes()),
                "signerName": "example.com/signer",
                "usages": ["digital signature", "client auth"],
            },
        });
        json_patch::merge(&mut base, &v);
        serde_json::from_value(base).unwrap()
    }

    fn messages(errs: &[FieldError]) -> Vec<String> {
        errs.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn create_validation() {
        assert!(csr(json!({})).validate().is_empty());
        let bad = csr(json!({"spec": {
            "request": ByteString(b"junk".to_vec()),
            "signerName": "",
            "usages": ["client auth", "flying", "client auth"],
            "expirationSeconds": 599,
        }}));
        assert_eq!(
            messages(&bad.validate()),
            [
                "spec.request: Invalid value: \"anVuaw==\": PEM block type must be CERTIFICATE REQUEST",
                &format!("spec.usages[1]: Unsupported value: \"flying\": supported values: {}", VALID_USAGES.iter().map(|u| format!("{u:?}")).collect::<Vec<_>>().join(", ")),
                "spec.usages[2]: Duplicate value: \"client auth\"",
                "spec.signerName: Required value",
                "spec.expirationSeconds: Invalid value: 599: may not specify a duration less than 600 seconds (10 minutes)",
            ]
        );
        let none = csr(json!({"spec": {"usages": null}}));
        assert_eq!(messages(&none.validate()), ["spec.usages: Required value"]);
        let legacy = csr(json!({"spec": {"signerName": LEGACY_UNKNOWN_SIGNER}}));
        assert_eq!(
            messages(&legacy.validate()),
            ["spec.signerName: Invalid value: \"kubernetes.io/legacy-unknown\": the legacy signerName is not allowed via this API version"]
        );
    }

    #[test]
    fn signer_names() {
        let p = Path::new("spec").child("signerName");
        let msgs = |s: &str| messages(&validate_signer_name(&p, s));
        assert!(msgs("kubernetes.io/kube-apiserver-client-kubelet").is_empty());
        assert!(msgs("example.com/a.b-c").is_empty());
        assert_eq!(
            msgs("nodomain"),
            ["spec.signerName: Invalid value: \"nodomain\": must be a fully qualified domain and path of the form 'example.com/signer-name'"]
        );
        assert_eq!(
            msgs("example/x"),
            ["spec.signerName: Invalid value: \"example\": should be a domain with at least two segments separated by dots"]
        );
        assert_eq!(
            msgs("Example.com/x"),
            ["spec.signerName: Invalid value: \"Example.com\": validating label \"Example\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"]
        );
    }

    #[test]
    fn conditions_rules() {
        let c = csr(json!({"status": {"conditions": [
            {"type": "Approved", "status": "False"},
            {"type": "Denied", "status": "True"},
            {"type": "", "status": "Maybe"},
            {"type": "Denied", "status": "True"},
        ]}}));
        assert_eq!(
            messages(&c.validate()),
            [
                "status.conditions[0].status: Unsupported value: \"False\": supported values: \"True\"",
                "status.conditions[1].type: Invalid value: \"Denied\": Approved and Denied conditions are mutually exclusive",
                "status.conditions[2].type: Required value",
                "status.conditions[2].status: Unsupported value: \"Maybe\": supported values: \"False\", \"True\", \"Unknown\"",
                "status.conditions[3].type: Invalid value: \"Denied\": Approved and Denied conditions are mutually exclusive",
                "status.conditions[3].type: Duplicate value: \"Denied\"",
            ]
        );
    }

    /// An approval as stored (the approval endpoint fills in both times).
    fn approved() -> serde_json::Value {
        json!({"status": {"conditions": [{"type": "Approved", "status": "True", "reason": "R",
            "lastUpdateTime": "2025-01-01T00:00:00Z", "lastTransitionTime": "2025-01-01T00:00:00Z"}]}})
    }

    #[test]
    fn main_update_keeps_spec_and_status() {
        let old = csr(approved());
        let mut new = csr(
            json!({"spec": {"signerName": "example.com/other"}, "status": {"conditions": null}}),
        );
        new.prepare_for_update(&old);
        assert_eq!(new.spec, old.spec);
        assert_eq!(new.status, old.status);
        assert!(new.validate_update(&old).is_empty());
        // Sent through validation directly (no prepare), approval changes are refused.
        let added = csr(approved());
        assert_eq!(
            messages(&added.validate_update(&csr(json!({})))),
            ["status.conditions: Forbidden: updates may not add a condition of type \"Approved\""]
        );
    }

    #[test]
    fn approval_changes_only_conditions() {
        let old = csr(json!({}));
        let mut new = csr(
            json!({"spec": {"usages": ["server auth"]}, "status": {"conditions": [{"type": "Approved", "status": "True"}], "certificate": ByteString(b"x".to_vec())}}),
        );
        let errs = new.update_subresource("approval", &old).unwrap();
        assert!(errs.is_empty(), "{errs:?}");
        assert_eq!(new.spec, old.spec);
        let status = new.status.unwrap();
        assert!(status.certificate.is_none());
        let cond = &status.conditions.unwrap()[0];
        assert!(cond.last_update_time.is_some() && cond.last_transition_time.is_some());
        // Approval cannot be taken back.
        let mut removed = csr(json!({}));
        assert_eq!(
            messages(&removed.update_subresource("approval", &csr(approved())).unwrap()),
            ["status.conditions: Forbidden: updates may not remove a condition of type \"Approved\""]
        );
        assert!(csr(json!({})).update_subresource("scale", &old).is_none());
    }

    #[test]
    fn status_sets_certificate_keeps_approval() {
        let cert = ByteString(cert_pem());
        let old = csr(approved());
        // Approved/Denied sent to /status are the old ones.
        let mut new = csr(
            json!({"status": {"conditions": [{"type": "Approved", "status": "True", "reason": "Changed"}], "certificate": cert}}),
        );
        new.prepare_for_status_update(&old);
        assert_eq!(
            messages(&new.validate_status_update(&old)),
            Vec::<String>::new()
        );
        assert_eq!(
            conditions(&new)[0].reason.as_deref(),
            Some("R"),
            "approval kept"
        );
        // Once set, the certificate stays.
        let mut again = new.clone();
        again.status.as_mut().unwrap().certificate = Some(ByteString(cert_pem()));
        assert_eq!(
            messages(&again.validate_status_update(&new)),
            ["status.certificate: Forbidden: updates may not modify existing certificate content"]
        );
        // Not through the main resource or approval.
        assert_eq!(
            messages(&new.validate_update(&old)),
            ["status.certificate: Forbidden: updates may not set certificate content"]
        );
        // As upstream, even on a pending request (approval is the signers' rule);
        // but not garbage.
        let pending = csr(json!({}));
        let mut issued = csr(json!({"status": {"certificate": cert}}));
        issued.prepare_for_status_update(&pending);
        assert_eq!(
            messages(&issued.validate_status_update(&pending)),
            Vec::<String>::new()
        );
        let mut garbage = csr(approved());
        garbage.status.as_mut().unwrap().certificate = Some(ByteString(b"junk".to_vec()));
        assert_eq!(
            messages(&garbage.validate_status_update(&old)),
            ["status.certificate: Invalid value: \"<certificate data>\": must contain at least one CERTIFICATE PEM block"]
        );
        // Status may not add Approved either.
        let mut approving = csr(approved());
        approving.prepare_for_status_update(&pending);
        assert_eq!(
            messages(&approving.validate_status_update(&pending)),
            ["status.conditions: Forbidden: updates may not add a condition of type \"Approved\""]
        );
    }

    #[test]
    fn create_records_the_requester() {
        let mut c = csr(
            json!({"spec": {"username": "liar", "groups": ["system:masters"]}, "status": {"conditions": [{"type": "Approved", "status": "True"}]}}),
        );
        c.prepare_for_create();
        let groups = vec!["system:bootstrappers".to_string()];
        let extra = BTreeMap::from([("k".to_string(), vec!["v".to_string()])]);
        c.prepare_for_create_by(&UserInfo {
            name: "system:bootstrap:abcdef",
            uid: "",
            groups: &groups,
            extra: &extra,
        });
        assert_eq!(c.spec.username.as_deref(), Some("system:bootstrap:abcdef"));
        assert_eq!(c.spec.groups, Some(groups));
        assert_eq!(c.spec.uid, None);
        assert_eq!(c.spec.extra, Some(extra));
        assert_eq!(c.status, Some(CertificateSigningRequestStatus::default()));
    }
}
