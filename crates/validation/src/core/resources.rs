//! Resource names and quantities: upstream's resource-name helpers
//! (`IsStandardContainerResourceName`, `IsExtendedResourceName`,
//! `IsOvercommitAllowed`, ...), `ValidateResourceQuantityValue` and the
//! validation of container resource requirements (requests <= limits,
//! hugepages, claims).

use std::collections::{BTreeMap, BTreeSet};

use apimachinery::validation as av;
use apimachinery::{FieldError, Path, Quantity as Q};
use k8s_openapi::api::core::v1::ResourceRequirements;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use crate::util::{list, s, validate_dns1123_label, IS_NOT_INTEGER_ERROR_MSG};

const STANDARD_CONTAINER_RESOURCES: &[&str] = &["cpu", "memory", "ephemeral-storage"];

const STANDARD_RESOURCES: &[&str] = &[
    "cpu",
    "memory",
    "ephemeral-storage",
    "requests.cpu",
    "requests.memory",
    "requests.ephemeral-storage",
    "limits.cpu",
    "limits.memory",
    "limits.ephemeral-storage",
    "pods",
    "resourcequotas",
    "services",
    "replicationcontrollers",
    "secrets",
    "configmaps",
    "persistentvolumeclaims",
    "storage",
    "requests.storage",
    "services.nodeports",
    "services.loadbalancers",
];

const STANDARD_QUOTA_RESOURCES: &[&str] = &[
    "cpu",
    "memory",
    "ephemeral-storage",
    "requests.cpu",
    "requests.memory",
    "requests.storage",
    "requests.ephemeral-storage",
    "limits.cpu",
    "limits.memory",
    "limits.ephemeral-storage",
    "pods",
    "resourcequotas",
    "services",
    "replicationcontrollers",
    "secrets",
    "persistentvolumeclaims",
    "configmaps",
    "services.nodeports",
    "services.loadbalancers",
];

const INTEGER_RESOURCES: &[&str] = &[
    "pods",
    "resourcequotas",
    "services",
    "replicationcontrollers",
    "secrets",
    "configmaps",
    "persistentvolumeclaims",
    "services.nodeports",
    "services.loadbalancers",
];

/// Upstream `IsHugePageResourceName`.
pub fn is_huge_page(name: &str) -> bool {
    name.starts_with("hugepages-")
}

/// Upstream `IsQuotaHugePageResourceName`.
pub fn is_quota_huge_page(name: &str) -> bool {
    name.starts_with("hugepages-") || name.starts_with("requests.hugepages-")
}

/// Upstream `IsNativeResource`: unprefixed or `kubernetes.io/`-prefixed.
pub fn is_native(name: &str) -> bool {
    !name.contains('/') || name.contains("kubernetes.io/")
}

/// Upstream `IsExtendedResourceName`.
pub fn is_extended(name: &str) -> bool {
    if is_native(name) || name.starts_with("requests.") {
        return false;
    }
    av::is_qualified_name(&format!("requests.{name}")).is_empty()
}

/// Upstream `IsOvercommitAllowed`.
pub fn is_overcommit_allowed(name: &str) -> bool {
    is_native(name) && !is_huge_page(name)
}

/// Upstream `IsIntegerResourceName`.
pub fn is_integer_resource(name: &str) -> bool {
    INTEGER_RESOURCES.contains(&name) || is_extended(name)
}

/// Upstream `IsStandardResourceName`.
pub fn is_standard_resource(name: &str) -> bool {
    STANDARD_RESOURCES.contains(&name) || is_quota_huge_page(name)
}

/// Upstream `IsStandardContainerResourceName`.
pub fn is_standard_container_resource(name: &str) -> bool {
    STANDARD_CONTAINER_RESOURCES.contains(&name) || is_huge_page(name)
}

/// Upstream `IsStandardQuotaResourceName`.
pub fn is_standard_quota_resource(name: &str) -> bool {
    STANDARD_QUOTA_RESOURCES.contains(&name) || is_quota_huge_page(name)
}

/// Parses a quantity, reporting a parse failure at `path` the way the
/// decoder's message reads.
pub fn parse_q(q: &Quantity, path: &Path) -> Result<Q, FieldError> {
    Q::parse(&q.0).map_err(|e| FieldError::invalid(path, q.0.as_str(), e.to_string()))
}

/// The canonical rendering of a quantity (its raw text when unparseable).
pub fn q_str(q: &Quantity) -> String {
    Q::parse(&q.0)
        .map(|p| p.to_string())
        .unwrap_or_else(|_| q.0.clone())
}

/// Upstream `validateResourceName`.
pub fn validate_resource_name(value: &str, path: &Path) -> Vec<FieldError> {
    let errs: Vec<FieldError> = av::is_qualified_name(value)
        .into_iter()
        .map(|m| FieldError::invalid(path, value, m))
        .collect();
    if !errs.is_empty() {
        return errs;
    }
    if !value.contains('/') && !is_standard_resource(value) {
        return vec![FieldError::invalid(
            path,
            value,
            "must be a standard resource type or fully qualified",
        )];
    }
    Vec::new()
}

/// Upstream `validateContainerResourceName`.
pub fn validate_container_resource_name(value: &str, path: &Path) -> Vec<FieldError> {
    let mut errs = validate_resource_name(value, path);
    if !value.contains('/') {
        if !is_standard_container_resource(value) {
            errs.push(FieldError::invalid(
                path,
                value,
                "must be a standard resource for containers",
            ));
        }
    } else if !is_native(value) && !is_extended(value) {
        errs.push(FieldError::invalid(
            path,
            value,
            "doesn't follow extended resource name standard",
        ));
    }
    errs
}

/// Upstream `ValidateResourceQuotaResourceName`.
pub fn validate_quota_resource_name(value: &str, path: &Path) -> Vec<FieldError> {
    let mut errs = validate_resource_name(value, path);
    if !value.contains('/') && !is_standard_quota_resource(value) {
        errs.push(FieldError::invalid(
            path,
            value,
            "must be a standard resource for quota",
        ));
    }
    errs
}

/// Upstream `ValidateNonnegativeQuantity` (the canonical value is quoted).
pub fn validate_nonneg_quantity(q: &Q, path: &Path) -> Vec<FieldError> {
    if q.sign() < 0 {
        return vec![FieldError::invalid(
            path,
            q.to_string(),
            av::IS_NEGATIVE_ERROR_MSG,
        )];
    }
    Vec::new()
}

/// Upstream `ValidatePositiveQuantityValue`.
pub fn validate_positive_quantity(q: &Q, path: &Path) -> Vec<FieldError> {
    if q.sign() <= 0 {
        return vec![FieldError::invalid(
            path,
            q.to_string(),
            crate::util::IS_NOT_POSITIVE_ERROR_MSG,
        )];
    }
    Vec::new()
}

/// Upstream `ValidateResourceQuantityValue`: non-negative, and a whole
/// number for integer resources (the bad value then prints unquoted, as a
/// `Quantity` stringer).
pub fn validate_quantity_value(name: &str, q: &Q, path: &Path) -> Vec<FieldError> {
    let mut errs = validate_nonneg_quantity(q, path);
    if is_integer_resource(name) && q.milli_value() % 1000 != 0 {
        errs.push(crate::util::invalid_go(
            path,
            &q.to_string(),
            IS_NOT_INTEGER_ERROR_MSG,
        ));
    }
    errs
}

/// Upstream `validateBasicResource`.
pub fn validate_basic_resource(q: &Q, path: &Path) -> Vec<FieldError> {
    if q.value() < 0 {
        return vec![FieldError::invalid(
            path,
            q.value(),
            "must be a valid resource quantity",
        )];
    }
    Vec::new()
}

fn huge_page_divisible(name: &str, q: &Q) -> bool {
    let Some(size) = name.strip_prefix("hugepages-") else {
        return false;
    };
    let Ok(page) = Q::parse(size) else {
        return false;
    };
    if page.sign() <= 0 || page.milli_value() % 1000 != 0 {
        return false;
    }
    let pv = page.value();
    pv != 0 && q.value() % pv == 0
}

/// Upstream `ValidateContainerResourceRequirements` (resource names,
/// quantities, request <= limit, hugepages, claim references).
pub fn validate_container_resources(
    r: &Option<ResourceRequirements>,
    pod_claim_names: &BTreeSet<String>,
    path: &Path,
) -> Vec<FieldError> {
    let Some(r) = r else {
        return Vec::new();
    };
    let empty = BTreeMap::new();
    let limits = r.limits.as_ref().unwrap_or(&empty);
    let requests = r.requests.as_ref().unwrap_or(&empty);
    validate_resource_requirements(limits, requests, validate_container_resource_name, path)
        .into_iter()
        .chain(validate_resource_claim_names(
            list(&r.claims)
                .iter()
                .map(|c| (c.name.as_str(), s(&c.request))),
            pod_claim_names,
            &path.child("claims"),
        ))
        .collect()
}

/// The common part of upstream `validateResourceRequirements`.
pub fn validate_resource_requirements(
    limits: &BTreeMap<String, Quantity>,
    requests: &BTreeMap<String, Quantity>,
    name_fn: fn(&str, &Path) -> Vec<FieldError>,
    path: &Path,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let lim_path = path.child("limits");
    let req_path = path.child("requests");
    let mut lim_cpu_mem = false;
    let mut req_cpu_mem = false;
    let mut lim_huge = false;
    let mut req_huge = false;
    // The limits that parse, for comparing requests without parsing again.
    let mut parsed_limits: Vec<(&str, Q)> = Vec::with_capacity(limits.len());
    for (name, q) in limits {
        let p = lim_path.key(name);
        errs.extend(name_fn(name, &p));
        let parsed = match parse_q(q, &p) {
            Ok(v) => v,
            Err(e) => {
                errs.push(e);
                continue;
            }
        };
        errs.extend(validate_quantity_value(name, &parsed, &p));
        if is_huge_page(name) {
            lim_huge = true;
            if !huge_page_divisible(name, &parsed) {
                errs.push(FieldError::invalid(
                    &p,
                    parsed.to_string(),
                    format!("{parsed} is not positive integer multiple of {name}"),
                ));
            }
        }
        if name == "cpu" || name == "memory" {
            lim_cpu_mem = true;
        }
        parsed_limits.push((name, parsed));
    }
    for (name, q) in requests {
        let p = req_path.key(name);
        errs.extend(name_fn(name, &p));
        let parsed = match parse_q(q, &p) {
            Ok(v) => v,
            Err(e) => {
                errs.push(e);
                continue;
            }
        };
        errs.extend(validate_quantity_value(name, &parsed, &p));
        if limits.contains_key(name) {
            let limit = parsed_limits
                .iter()
                .find(|(n, _)| *n == name.as_str())
                .map(|(_, q)| q);
            if let Some(limit) = limit {
                if parsed.cmp(limit) != std::cmp::Ordering::Equal && !is_overcommit_allowed(name) {
                    errs.push(FieldError::invalid(
                        &req_path,
                        parsed.to_string(),
                        format!("must be equal to {name} limit of {limit}"),
                    ));
                } else if parsed > *limit {
                    errs.push(FieldError::invalid(
                        &req_path,
                        parsed.to_string(),
                        format!("must be less than or equal to {name} limit of {limit}"),
                    ));
                }
            }
        } else if !is_overcommit_allowed(name) {
            errs.push(FieldError::required(
                &lim_path,
                "Limit must be set for non overcommitable resources",
            ));
        }
        if is_huge_page(name) {
            req_huge = true;
            if !huge_page_divisible(name, &parsed) {
                errs.push(FieldError::invalid(
                    &p,
                    parsed.to_string(),
                    format!("{parsed} is not positive integer multiple of {name}"),
                ));
            }
        }
        if name == "cpu" || name == "memory" {
            req_cpu_mem = true;
        }
    }
    if !lim_cpu_mem && !req_cpu_mem && (req_huge || lim_huge) {
        errs.push(FieldError::forbidden(
            path,
            "HugePages require cpu or memory",
        ));
    }
    errs
}

/// Upstream `validateResourceClaimNames`.
pub fn validate_resource_claim_names<'a>(
    claims: impl Iterator<Item = (&'a str, &'a str)>,
    pod_claim_names: &BTreeSet<String>,
    path: &Path,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let mut names: BTreeSet<String> = BTreeSet::new();
    for (i, (name, request)) in claims.enumerate() {
        let p = path.index(i);
        if name.is_empty() {
            errs.push(FieldError::required(&p, ""));
            continue;
        }
        if names.contains(name) {
            errs.push(FieldError::duplicate(&p, name));
        } else {
            let mut key = name.to_string();
            if !request.is_empty() {
                errs.extend(validate_dns1123_label(request, &p.child("request")));
                key = format!("{name}/{request}");
            }
            if names.contains(&key) {
                errs.push(FieldError::duplicate(&p, key.as_str()));
            } else if request.is_empty() {
                for k in &names {
                    if let Some((prefix, _)) = k.split_once('/') {
                        if prefix == name {
                            errs.push(FieldError::duplicate(&p, name));
                        }
                    }
                }
            }
            names.insert(key);
        }
        if !pod_claim_names.contains(name) {
            let mut detail = "must be one of the names in pod.spec.resourceClaims".to_string();
            if pod_claim_names.is_empty() {
                detail.push_str(" which is empty");
            } else {
                let all: Vec<&str> = pod_claim_names.iter().map(String::as_str).collect();
                detail.push_str(": ");
                detail.push_str(&all.join(", "));
            }
            errs.push(FieldError::new(
                apimachinery::ErrorKind::NotFound,
                &p,
                Some(name.into()),
                detail,
            ));
        }
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rl(items: &[(&str, &str)]) -> BTreeMap<String, Quantity> {
        items
            .iter()
            .map(|(k, v)| (k.to_string(), Quantity(v.to_string())))
            .collect()
    }

    #[test]
    fn requests_must_not_exceed_limits() {
        let p = Path::new("spec")
            .child("containers")
            .index(0)
            .child("resources");
        let errs = validate_resource_requirements(
            &rl(&[("cpu", "500m")]),
            &rl(&[("cpu", "1")]),
            validate_container_resource_name,
            &p,
        );
        let msgs: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        assert_eq!(
            msgs,
            vec![
                r#"spec.containers[0].resources.requests: Invalid value: "1": must be less than or equal to cpu limit of 500m"#
            ]
        );
    }

    #[test]
    fn resource_names() {
        let p = Path::new("r");
        assert_eq!(
            validate_container_resource_name("foo", &p)[0].to_string(),
            r#"r: Invalid value: "foo": must be a standard resource type or fully qualified"#
        );
        assert!(validate_container_resource_name("example.com/gpu", &p).is_empty());
        assert!(is_integer_resource("example.com/gpu"));
        assert!(!is_overcommit_allowed("example.com/gpu"));
    }
}
