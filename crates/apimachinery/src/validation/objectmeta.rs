//! `ObjectMeta` validation on a `serde_json::Value` of `metadata`, as
//! upstream's `pkg/api/validation` (`ValidateObjectMeta`,
//! `ValidateObjectMetaUpdate`) and `pkg/apis/meta/v1/validation`
//! (`ValidateLabels`, `ValidateManagedFields`) do it.
//!
//! Map-valued fields (labels, annotations) are checked in sorted key order so
//! the output is deterministic (upstream iterates Go maps, in random order).
//! A field of the wrong JSON type yields a `TypeInvalid` error; upstream
//! never gets that far because decoding into typed structs fails first.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use super::{is_qualified_name, is_valid_label_value, validate_namespace_name, NameValidator};
use crate::field::{FieldError, Path};
use crate::gofmt;

/// Upstream's `FieldImmutableErrorMsg`.
pub const FIELD_IMMUTABLE_ERROR_MSG: &str = "field is immutable";
/// Upstream's `IsNegativeErrorMsg`.
pub const IS_NEGATIVE_ERROR_MSG: &str = "must be greater than or equal to 0";
/// Maximum total size in bytes of all annotation keys and values (256 KiB).
pub const TOTAL_ANNOTATION_SIZE_LIMIT_B: usize = 256 * (1 << 10);
/// Maximum length of a managed-fields manager name.
pub const FIELD_MANAGER_MAX_LENGTH: usize = 128;
/// Maximum length of a managed-fields subresource name.
pub const MAX_SUBRESOURCE_NAME_LENGTH: usize = 256;

const FINALIZER_ORPHAN_DEPENDENTS: &str = "orphan";
const FINALIZER_DELETE_DEPENDENTS: &str = "foregroundDeletion";

/// A string field of `obj`; absent or `null` reads as "".
fn get_str<'a>(obj: &'a Value, key: &str, path: &Path, errs: &mut Vec<FieldError>) -> &'a str {
    match obj.get(key) {
        None | Some(Value::Null) => "",
        Some(Value::String(s)) => s,
        Some(other) => {
            errs.push(FieldError::type_invalid(
                &path.child(key),
                other.clone(),
                "must be of type string",
            ));
            ""
        }
    }
}

/// An integer field of `obj`; absent or `null` reads as 0.
fn get_i64(obj: &Value, key: &str, path: &Path, errs: &mut Vec<FieldError>) -> i64 {
    match obj.get(key) {
        None | Some(Value::Null) => 0,
        Some(v) => v.as_i64().unwrap_or_else(|| {
            errs.push(FieldError::type_invalid(
                &path.child(key),
                v.clone(),
                "must be of type integer",
            ));
            0
        }),
    }
}

/// A string-to-string map value, as sorted (key, value) pairs; type errors
/// are reported at `path` (or `path[key]` for a bad entry).
fn string_map<'a>(
    value: &'a Value,
    path: &Path,
    errs: &mut Vec<FieldError>,
) -> Vec<(&'a str, &'a str)> {
    let map: &Map<String, Value> = match value {
        Value::Null => return Vec::new(),
        Value::Object(m) => m,
        other => {
            errs.push(FieldError::type_invalid(
                path,
                other.clone(),
                "must be of type object",
            ));
            return Vec::new();
        }
    };
    let mut out = Vec::with_capacity(map.len());
    for (k, v) in map {
        match v {
            Value::String(s) => out.push((k.as_str(), s.as_str())),
            Value::Null => out.push((k.as_str(), "")),
            other => errs.push(FieldError::type_invalid(
                &path.key(k),
                other.clone(),
                "must be of type string",
            )),
        }
    }
    out.sort_unstable();
    out
}

/// A list-of-strings value; type errors are reported at `path` (or
/// `path[i]` for a bad item).
fn string_list(value: &Value, path: &Path, errs: &mut Vec<FieldError>) -> Vec<String> {
    let items: &[Value] = match value {
        Value::Null => return Vec::new(),
        Value::Array(items) => items,
        other => {
            errs.push(FieldError::type_invalid(
                path,
                other.clone(),
                "must be of type array",
            ));
            return Vec::new();
        }
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        match item {
            Value::String(s) => out.push(s.clone()),
            other => errs.push(FieldError::type_invalid(
                &path.index(i),
                other.clone(),
                "must be of type string",
            )),
        }
    }
    out
}

/// Validates a label key (upstream `ValidateLabelName`).
pub fn validate_label_name(name: &str, path: &Path) -> Vec<FieldError> {
    is_qualified_name(name)
        .into_iter()
        .map(|msg| FieldError::invalid(path, name, msg))
        .collect()
}

/// Validates a label map given as a JSON object (upstream `ValidateLabels`):
/// keys must be qualified names, values valid label values. Errors are
/// reported at `path` itself, not per key, as upstream does.
pub fn validate_labels(labels: &Value, path: &Path) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let pairs = string_map(labels, path, &mut errs);
    errs.extend(validate_label_pairs(pairs, path));
    errs
}

/// [`validate_labels`] on (key, value) pairs, checked in the given order
/// (typed callers pass a sorted map).
pub fn validate_label_pairs<'a>(
    labels: impl IntoIterator<Item = (&'a str, &'a str)>,
    path: &Path,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for (k, v) in labels {
        errs.extend(validate_label_name(k, path));
        for msg in is_valid_label_value(v) {
            errs.push(FieldError::invalid(path, v, msg));
        }
    }
    errs
}

/// Validates an annotation map given as a JSON object (upstream
/// `ValidateAnnotations`): keys must be qualified names (case-insensitively)
/// and keys plus values may total at most 256 KiB.
pub fn validate_annotations(annotations: &Value, path: &Path) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let pairs = string_map(annotations, path, &mut errs);
    errs.extend(validate_annotation_pairs(pairs, path));
    errs
}

/// [`validate_annotations`] on (key, value) pairs, checked in the given
/// order (typed callers pass a sorted map).
pub fn validate_annotation_pairs<'a>(
    annotations: impl IntoIterator<Item = (&'a str, &'a str)>,
    path: &Path,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let mut total = 0usize;
    for (k, v) in annotations {
        let msgs = if k.bytes().any(|b| b.is_ascii_uppercase() || !b.is_ascii()) {
            is_qualified_name(&k.to_lowercase())
        } else {
            // Already lower case: no need to copy the key.
            is_qualified_name(k)
        };
        for msg in msgs {
            errs.push(FieldError::invalid(path, k, msg));
        }
        total += k.len() + v.len();
    }
    if total > TOTAL_ANNOTATION_SIZE_LIMIT_B {
        errs.push(FieldError::too_long(
            path,
            "",
            TOTAL_ANNOTATION_SIZE_LIMIT_B as i64,
        ));
    }
    errs
}

/// Validates a finalizer name (upstream `ValidateFinalizerName`).
pub fn validate_finalizer_name(name: &str, path: &Path) -> Vec<FieldError> {
    is_qualified_name(name)
        .into_iter()
        .map(|msg| FieldError::invalid(path, name, msg))
        .collect()
}

/// Validates a finalizer list (upstream `ValidateFinalizers`): qualified
/// names, and not both `orphan` and `foregroundDeletion`. Errors are reported
/// at `path` itself, as upstream does.
pub fn validate_finalizers(finalizers: &[String], path: &Path) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for f in finalizers {
        errs.extend(validate_finalizer_name(f, path));
    }
    let orphan = finalizers.iter().any(|f| f == FINALIZER_ORPHAN_DEPENDENTS);
    let foreground = finalizers.iter().any(|f| f == FINALIZER_DELETE_DEPENDENTS);
    if orphan && foreground {
        errs.push(FieldError::invalid(
            path,
            Value::from(finalizers.to_vec()),
            format!(
                "finalizer {FINALIZER_ORPHAN_DEPENDENTS} and {FINALIZER_DELETE_DEPENDENTS} cannot be both set"
            ),
        ));
    }
    errs
}

/// Validates that an integer field is not negative (upstream
/// `ValidateNonnegativeField`).
pub fn validate_nonnegative_field(value: i64, path: &Path) -> Vec<FieldError> {
    if value < 0 {
        vec![FieldError::invalid(path, value, IS_NEGATIVE_ERROR_MSG)]
    } else {
        Vec::new()
    }
}

/// Validates that a field did not change (upstream `ValidateImmutableField`);
/// the new value is reported.
pub fn validate_immutable_field(new: &Value, old: &Value, path: &Path) -> Vec<FieldError> {
    if new != old {
        vec![FieldError::invalid(
            path,
            new.clone(),
            FIELD_IMMUTABLE_ERROR_MSG,
        )]
    } else {
        Vec::new()
    }
}

/// Splits an apiVersion into (group, version) like `schema.ParseGroupVersion`;
/// `None` when it has more than one `/`.
fn parse_group_version(api_version: &str) -> Option<(&str, &str)> {
    if api_version.is_empty() || api_version == "/" {
        return Some(("", ""));
    }
    match api_version.matches('/').count() {
        0 => Some(("", api_version)),
        1 => api_version.split_once('/'),
        _ => None,
    }
}

/// Validates `ownerReferences` given as a JSON array (upstream
/// `ValidateOwnerReferences`): apiVersion (with a version), kind, name and
/// uid must be set, `v1` `Event`s may not be owners, and at most one
/// reference may be the controller. Errors are reported under `path`
/// without an index, as upstream does.
pub fn validate_owner_references(refs: &Value, path: &Path) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let items: &[Value] = match refs {
        Value::Array(items) => items,
        Value::Null => &[],
        other => {
            return vec![FieldError::type_invalid(
                path,
                other.clone(),
                "must be of type array",
            )];
        }
    };
    let mut first_controller = String::new();
    for (i, r) in items.iter().enumerate() {
        if !r.is_object() {
            errs.push(FieldError::type_invalid(
                &path.index(i),
                r.clone(),
                "must be of type object",
            ));
            continue;
        }
        let api_version = get_str(r, "apiVersion", &path.index(i), &mut errs);
        let kind = get_str(r, "kind", &path.index(i), &mut errs);
        let name = get_str(r, "name", &path.index(i), &mut errs);
        let uid = get_str(r, "uid", &path.index(i), &mut errs);
        let (group, version) = parse_group_version(api_version).unwrap_or(("", ""));
        if version.is_empty() {
            errs.push(FieldError::invalid(
                &path.child("apiVersion"),
                api_version,
                "version must not be empty",
            ));
        }
        if kind.is_empty() {
            errs.push(FieldError::invalid(
                &path.child("kind"),
                kind,
                "must not be empty",
            ));
        }
        if name.is_empty() {
            errs.push(FieldError::invalid(
                &path.child("name"),
                name,
                "must not be empty",
            ));
        }
        if uid.is_empty() {
            errs.push(FieldError::invalid(
                &path.child("uid"),
                uid,
                "must not be empty",
            ));
        }
        if group.is_empty() && version == "v1" && kind == "Event" {
            errs.push(FieldError::invalid(
                path,
                r.clone(),
                format!("{group}/{version}, Kind={kind} is disallowed from being an owner"),
            ));
        }
        if r.get("controller").and_then(Value::as_bool) == Some(true) {
            let current = format!("{kind}/{name}");
            if first_controller.is_empty() {
                first_controller = current;
            } else {
                errs.push(FieldError::invalid(
                    path,
                    refs.clone(),
                    format!(
                        "Only one reference can have Controller set to true. Found \"true\" in references for {first_controller} and {current}"
                    ),
                ));
            }
        }
    }
    errs
}

fn validate_field_manager(manager: &str, path: &Path) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if manager.len() > FIELD_MANAGER_MAX_LENGTH {
        errs.push(FieldError::too_long(
            path,
            manager,
            FIELD_MANAGER_MAX_LENGTH as i64,
        ));
    }
    for (i, c) in manager.char_indices() {
        if !gofmt::is_print(c) {
            errs.push(FieldError::invalid(
                path,
                manager,
                format!("invalid character U+{:04X} (at position {i})", c as u32),
            ));
        }
    }
    errs
}

/// Validates `managedFields` given as a JSON array (upstream
/// `ValidateManagedFields`).
pub fn validate_managed_fields(entries: &Value, path: &Path) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let items: &[Value] = match entries {
        Value::Array(items) => items,
        Value::Null => &[],
        other => {
            return vec![FieldError::type_invalid(
                path,
                other.clone(),
                "must be of type array",
            )];
        }
    };
    for (i, entry) in items.iter().enumerate() {
        let p = path.index(i);
        let operation = get_str(entry, "operation", &p, &mut errs);
        if operation != "Apply" && operation != "Update" {
            errs.push(FieldError::invalid(
                &p.child("operation"),
                operation,
                "must be `Apply` or `Update`",
            ));
        }
        let fields_type = get_str(entry, "fieldsType", &p, &mut errs);
        if !fields_type.is_empty() && fields_type != "FieldsV1" {
            errs.push(FieldError::invalid(
                &p.child("fieldsType"),
                fields_type,
                "must be `FieldsV1`",
            ));
        }
        let manager = get_str(entry, "manager", &p, &mut errs);
        errs.extend(validate_field_manager(manager, &p.child("manager")));
        let subresource = get_str(entry, "subresource", &p, &mut errs);
        if subresource.len() > MAX_SUBRESOURCE_NAME_LENGTH {
            errs.push(FieldError::too_long(
                &p.child("subresource"),
                subresource,
                MAX_SUBRESOURCE_NAME_LENGTH as i64,
            ));
        }
    }
    errs
}

fn member_or_null<'a>(meta: &'a Value, key: &str) -> &'a Value {
    meta.get(key).unwrap_or(&Value::Null)
}

/// The checks shared by create and update: labels, annotations, owner
/// references and managed fields.
fn validate_common_maps(meta: &Value, path: &Path, errs: &mut Vec<FieldError>) {
    errs.extend(validate_labels(
        member_or_null(meta, "labels"),
        &path.child("labels"),
    ));
    errs.extend(validate_annotations(
        member_or_null(meta, "annotations"),
        &path.child("annotations"),
    ));
    errs.extend(validate_owner_references(
        member_or_null(meta, "ownerReferences"),
        &path.child("ownerReferences"),
    ));
}

/// Validates an object's `metadata` on create (upstream
/// `ValidateObjectMeta`). Name generation is expected to have happened
/// already. `name_validator` checks the name and the `generateName` prefix;
/// `requires_namespace` says whether the kind is namespaced (namespace
/// required) or cluster-scoped (namespace forbidden).
pub fn validate_object_meta(
    meta: &Value,
    requires_namespace: bool,
    name_validator: NameValidator,
    path: &Path,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if !meta.is_object() && !meta.is_null() {
        return vec![FieldError::type_invalid(
            path,
            meta.clone(),
            "must be of type object",
        )];
    }
    let generate_name = get_str(meta, "generateName", path, &mut errs);
    if !generate_name.is_empty() {
        for msg in name_validator(generate_name, true) {
            errs.push(FieldError::invalid(
                &path.child("generateName"),
                generate_name,
                msg,
            ));
        }
    }
    let name = get_str(meta, "name", path, &mut errs);
    if name.is_empty() {
        errs.push(FieldError::required(
            &path.child("name"),
            "name or generateName is required",
        ));
    } else {
        for msg in name_validator(name, false) {
            errs.push(FieldError::invalid(&path.child("name"), name, msg));
        }
    }
    let namespace = get_str(meta, "namespace", path, &mut errs);
    if requires_namespace {
        if namespace.is_empty() {
            errs.push(FieldError::required(&path.child("namespace"), ""));
        } else {
            for msg in validate_namespace_name(namespace, false) {
                errs.push(FieldError::invalid(
                    &path.child("namespace"),
                    namespace,
                    msg,
                ));
            }
        }
    } else if !namespace.is_empty() {
        errs.push(FieldError::forbidden(
            &path.child("namespace"),
            "not allowed on this type",
        ));
    }
    let generation = get_i64(meta, "generation", path, &mut errs);
    errs.extend(validate_nonnegative_field(
        generation,
        &path.child("generation"),
    ));
    validate_common_maps(meta, path, &mut errs);
    let finalizers = string_list(
        member_or_null(meta, "finalizers"),
        &path.child("finalizers"),
        &mut errs,
    );
    errs.extend(validate_finalizers(&finalizers, &path.child("finalizers")));
    errs.extend(validate_managed_fields(
        member_or_null(meta, "managedFields"),
        &path.child("managedFields"),
    ));
    errs
}

/// Reads a possibly-absent member as a value, treating absence as `null`.
fn nullable(meta: &Value, key: &str) -> Value {
    meta.get(key).cloned().unwrap_or(Value::Null)
}

/// Validates an object's `metadata` on update (upstream
/// `ValidateObjectMetaUpdate`): no new finalizers once deletion started,
/// resourceVersion set, generation not decremented, and name, namespace,
/// uid, creationTimestamp, deletionTimestamp and deletionGracePeriodSeconds
/// unchanged; then labels, annotations, owner references and managed fields
/// of the new metadata.
pub fn validate_object_meta_update(new: &Value, old: &Value, path: &Path) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let mut ignored = Vec::new();

    let old_deletion = nullable(old, "deletionTimestamp");
    if !old_deletion.is_null() {
        let p = path.child("finalizers");
        let new_finalizers = string_list(member_or_null(new, "finalizers"), &p, &mut errs);
        let old_finalizers = string_list(member_or_null(old, "finalizers"), &p, &mut ignored);
        let old_set: BTreeSet<&String> = old_finalizers.iter().collect();
        let extra: BTreeSet<&String> = new_finalizers
            .iter()
            .filter(|f| !old_set.contains(f))
            .collect();
        if !extra.is_empty() {
            let extra: Vec<&String> = extra.into_iter().collect();
            errs.push(FieldError::forbidden(
                &path.child("finalizers"),
                format!(
                    "no new finalizers can be added if the object is being deleted, found new finalizers {}",
                    gofmt::string_slice(&extra)
                ),
            ));
        }
    }

    let resource_version = get_str(new, "resourceVersion", path, &mut errs);
    if resource_version.is_empty() {
        errs.push(FieldError::invalid(
            &path.child("resourceVersion"),
            resource_version,
            "must be specified for an update",
        ));
    }

    let new_generation = get_i64(new, "generation", path, &mut errs);
    let old_generation = get_i64(old, "generation", path, &mut ignored);
    if new_generation < old_generation {
        errs.push(FieldError::invalid(
            &path.child("generation"),
            new_generation,
            "must not be decremented",
        ));
    }

    for key in ["name", "namespace", "uid"] {
        let n = get_str(new, key, path, &mut errs);
        let o = get_str(old, key, path, &mut ignored);
        errs.extend(validate_immutable_field(
            &Value::from(n),
            &Value::from(o),
            &path.child(key),
        ));
    }
    for key in [
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
    ] {
        errs.extend(validate_immutable_field(
            &nullable(new, key),
            &nullable(old, key),
            &path.child(key),
        ));
    }

    validate_common_maps(new, path, &mut errs);
    errs.extend(validate_managed_fields(
        member_or_null(new, "managedFields"),
        &path.child("managedFields"),
    ));
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validation::{name_is_dns_label, name_is_dns_subdomain};
    use serde_json::json;

    fn msgs(errs: &[FieldError]) -> Vec<String> {
        errs.iter().map(|e| e.to_string()).collect()
    }

    fn meta_path() -> Path {
        Path::new("metadata")
    }

    const SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";

    #[test]
    fn valid_meta_passes() {
        let meta = json!({
            "name": "web-1",
            "namespace": "default",
            "labels": {"app": "web", "example.com/tier": "front_end", "empty": ""},
            "annotations": {"Example.com/Note": "anything goes here"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "123", "controller": true}],
            "finalizers": ["example.com/cleanup"],
            "managedFields": [{"manager": "kubectl", "operation": "Apply", "fieldsType": "FieldsV1"}],
            "generation": 3
        });
        assert!(validate_object_meta(&meta, true, name_is_dns_subdomain, &meta_path()).is_empty());
    }

    #[test]
    fn name_rules() {
        let errs = validate_object_meta(
            &json!({"namespace": "default"}),
            true,
            name_is_dns_subdomain,
            &meta_path(),
        );
        assert_eq!(
            msgs(&errs),
            vec!["metadata.name: Required value: name or generateName is required"]
        );

        let errs = validate_object_meta(
            &json!({"name": "Foo_", "namespace": "default"}),
            true,
            name_is_dns_subdomain,
            &meta_path(),
        );
        assert_eq!(
            msgs(&errs),
            vec![format!(
                "metadata.name: Invalid value: \"Foo_\": {SUBDOMAIN_MSG}"
            )]
        );

        let errs = validate_object_meta(
            &json!({"generateName": "Bad_", "name": "bad-abcde", "namespace": "default"}),
            true,
            name_is_dns_subdomain,
            &meta_path(),
        );
        assert_eq!(
            msgs(&errs),
            vec![format!(
                "metadata.generateName: Invalid value: \"Bad_\": {SUBDOMAIN_MSG}"
            )]
        );

        let ok = json!({"generateName": "web-", "name": "web-x7k2p", "namespace": "default"});
        assert!(validate_object_meta(&ok, true, name_is_dns_subdomain, &meta_path()).is_empty());
    }

    #[test]
    fn namespace_rules() {
        let errs = validate_object_meta(
            &json!({"name": "a"}),
            true,
            name_is_dns_subdomain,
            &meta_path(),
        );
        assert_eq!(msgs(&errs), vec!["metadata.namespace: Required value"]);
        let errs = validate_object_meta(
            &json!({"name": "a", "namespace": "x"}),
            false,
            name_is_dns_label,
            &meta_path(),
        );
        assert_eq!(
            msgs(&errs),
            vec!["metadata.namespace: Forbidden: not allowed on this type"]
        );
        let errs = validate_object_meta(
            &json!({"name": "a", "namespace": "Bad.NS"}),
            true,
            name_is_dns_subdomain,
            &meta_path(),
        );
        assert_eq!(
            msgs(&errs),
            vec!["metadata.namespace: Invalid value: \"Bad.NS\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"]
        );
    }

    #[test]
    fn labels_and_annotations() {
        let meta =
            json!({"name": "a", "namespace": "d", "labels": {"bad key": "ok", "k": "bad value"}});
        let errs = validate_object_meta(&meta, true, name_is_dns_subdomain, &meta_path());
        assert_eq!(
            msgs(&errs),
            vec![
                "metadata.labels: Invalid value: \"bad key\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')",
                "metadata.labels: Invalid value: \"bad value\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')",
            ]
        );
        let big = "x".repeat(TOTAL_ANNOTATION_SIZE_LIMIT_B);
        let meta = json!({"name": "a", "namespace": "d", "annotations": {"a": big}});
        let errs = validate_object_meta(&meta, true, name_is_dns_subdomain, &meta_path());
        assert_eq!(
            msgs(&errs),
            vec!["metadata.annotations: Too long: may not be more than 262144 bytes"]
        );
        let exact = "x".repeat(TOTAL_ANNOTATION_SIZE_LIMIT_B - 1);
        let meta = json!({"name": "a", "namespace": "d", "annotations": {"a": exact}});
        assert!(validate_object_meta(&meta, true, name_is_dns_subdomain, &meta_path()).is_empty());
        let errs = validate_annotations(
            &json!({"a/b/c": "x"}),
            &Path::new("metadata").child("annotations"),
        );
        assert_eq!(errs.len(), 1);
        assert!(errs[0].to_string().starts_with(
            "metadata.annotations: Invalid value: \"a/b/c\": a qualified name must consist"
        ));
        let errs = validate_labels(&json!("nope"), &Path::new("metadata").child("labels"));
        assert_eq!(errs.len(), 1);
    }

    #[test]
    fn owner_references() {
        let p = meta_path().child("ownerReferences");
        let errs = validate_owner_references(
            &json!([{"apiVersion": "", "kind": "", "name": "", "uid": ""}]),
            &p,
        );
        assert_eq!(
            msgs(&errs),
            vec![
                "metadata.ownerReferences.apiVersion: Invalid value: \"\": version must not be empty",
                "metadata.ownerReferences.kind: Invalid value: \"\": must not be empty",
                "metadata.ownerReferences.name: Invalid value: \"\": must not be empty",
                "metadata.ownerReferences.uid: Invalid value: \"\": must not be empty",
            ]
        );
        let errs = validate_owner_references(
            &json!([{"apiVersion": "v1", "kind": "Event", "name": "e", "uid": "1"}]),
            &p,
        );
        assert_eq!(
            msgs(&errs),
            vec![
                r#"metadata.ownerReferences: Invalid value: {"apiVersion":"v1","kind":"Event","name":"e","uid":"1"}: /v1, Kind=Event is disallowed from being an owner"#
            ]
        );
        let two = json!([
            {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "a", "uid": "1", "controller": true},
            {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "b", "uid": "2", "controller": true}
        ]);
        let errs = validate_owner_references(&two, &p);
        assert_eq!(errs.len(), 1);
        assert!(errs[0].to_string().ends_with(
            ": Only one reference can have Controller set to true. Found \"true\" in references for ReplicaSet/a and ReplicaSet/b"
        ));
        assert!(errs[0]
            .to_string()
            .starts_with("metadata.ownerReferences: Invalid value: [{"));
    }

    #[test]
    fn finalizers_and_generation() {
        let meta = json!({"name": "a", "namespace": "d", "finalizers": ["orphan", "foregroundDeletion", "bad/fin/x"], "generation": -1});
        let errs = validate_object_meta(&meta, true, name_is_dns_subdomain, &meta_path());
        let m = msgs(&errs);
        assert_eq!(
            m[0],
            "metadata.generation: Invalid value: -1: must be greater than or equal to 0"
        );
        assert!(
            m[1].starts_with("metadata.finalizers: Invalid value: \"bad/fin/x\": a qualified name")
        );
        assert_eq!(
            m[2],
            r#"metadata.finalizers: Invalid value: ["orphan","foregroundDeletion","bad/fin/x"]: finalizer orphan and foregroundDeletion cannot be both set"#
        );
        assert_eq!(m.len(), 3);
    }

    #[test]
    fn managed_fields() {
        let p = meta_path().child("managedFields");
        let errs = validate_managed_fields(
            &json!([{"manager": "a\u{7}b", "operation": "Patch", "fieldsType": "FieldsV2", "subresource": "s".repeat(257)}]),
            &p,
        );
        assert_eq!(
            msgs(&errs),
            vec![
                "metadata.managedFields[0].operation: Invalid value: \"Patch\": must be `Apply` or `Update`",
                "metadata.managedFields[0].fieldsType: Invalid value: \"FieldsV2\": must be `FieldsV1`",
                "metadata.managedFields[0].manager: Invalid value: \"a\\ab\": invalid character U+0007 (at position 1)",
                "metadata.managedFields[0].subresource: Too long: may not be more than 256 bytes",
            ]
        );
    }

    #[test]
    fn update_rules() {
        let old = json!({
            "name": "a", "namespace": "d", "uid": "u1", "resourceVersion": "5", "generation": 4,
            "creationTimestamp": "2024-01-01T00:00:00Z",
            "deletionTimestamp": "2024-01-02T00:00:00Z", "deletionGracePeriodSeconds": 30,
            "finalizers": ["a.io/x"]
        });
        let same = old.clone();
        assert!(validate_object_meta_update(&same, &old, &meta_path()).is_empty());

        let new = json!({
            "name": "b", "namespace": "e", "uid": "u2", "generation": 3,
            "creationTimestamp": "2025-01-01T00:00:00Z",
            "deletionTimestamp": "2024-01-02T00:00:00Z",
            "finalizers": ["a.io/x", "z.io/new", "b.io/new"]
        });
        assert_eq!(
            msgs(&validate_object_meta_update(&new, &old, &meta_path())),
            vec![
                r#"metadata.finalizers: Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers []string{"b.io/new", "z.io/new"}"#,
                r#"metadata.resourceVersion: Invalid value: "": must be specified for an update"#,
                "metadata.generation: Invalid value: 3: must not be decremented",
                r#"metadata.name: Invalid value: "b": field is immutable"#,
                r#"metadata.namespace: Invalid value: "e": field is immutable"#,
                r#"metadata.uid: Invalid value: "u2": field is immutable"#,
                r#"metadata.creationTimestamp: Invalid value: "2025-01-01T00:00:00Z": field is immutable"#,
                "metadata.deletionGracePeriodSeconds: Invalid value: null: field is immutable",
            ]
        );
    }
}
