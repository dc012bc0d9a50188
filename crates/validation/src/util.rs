//! Small helpers shared by every kind: reading optional k8s-openapi fields
//! with Go zero-value semantics, building field errors whose bad value must
//! be rendered the way Go's `%#v` renders it (maps, slices, label
//! selectors), and common checks (names, non-negative numbers, immutable
//! fields, label selectors on typed objects).

use std::collections::BTreeMap;

use apimachinery::gofmt;
use apimachinery::validation as av;
use apimachinery::{ErrorKind, FieldError, Path};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::Value;

/// Upstream's `isNotPositiveErrorMsg`.
pub const IS_NOT_POSITIVE_ERROR_MSG: &str = "must be greater than zero";
/// Upstream's `isNotIntegerErrorMsg`.
pub const IS_NOT_INTEGER_ERROR_MSG: &str = "must be an integer";

/// The string value of an optional string field ("" when absent).
pub fn s(v: &Option<String>) -> &str {
    v.as_deref().unwrap_or("")
}

/// The value of an optional boolean field (false when absent).
pub fn b(v: Option<bool>) -> bool {
    v.unwrap_or(false)
}

/// The value of an optional i32 field (0 when absent).
pub fn i32v(v: Option<i32>) -> i32 {
    v.unwrap_or(0)
}

/// The value of an optional i64 field (0 when absent).
pub fn i64v(v: Option<i64>) -> i64 {
    v.unwrap_or(0)
}

/// The items of an optional list (empty when absent).
pub fn list<T>(v: &Option<Vec<T>>) -> &[T] {
    v.as_deref().unwrap_or(&[])
}

/// Whether an optional string is absent or empty.
pub fn empty(v: &Option<String>) -> bool {
    v.as_deref().is_none_or(str::is_empty)
}

/// Sets an optional string to `value` when it is absent or empty.
pub fn default_str(field: &mut Option<String>, value: &str) {
    if empty(field) {
        *field = Some(value.to_string());
    }
}

/// The entries of an optional string map (empty when absent).
pub fn map_entries(
    m: &Option<BTreeMap<String, String>>,
) -> impl Iterator<Item = (&String, &String)> {
    m.iter().flat_map(|m| m.iter())
}

/// An error whose bad value is already rendered in Go syntax (for example
/// `map[string]string{"app":"x"}`). The rendered value goes into the
/// detail, so `Display` prints exactly what upstream prints.
pub fn go_err(kind: ErrorKind, path: &Path, rendered: &str, detail: &str) -> FieldError {
    let full = if detail.is_empty() {
        rendered.to_string()
    } else {
        format!("{rendered}: {detail}")
    };
    FieldError::new(kind, path, None, full)
}

/// `field.Invalid` with a Go-rendered bad value.
pub fn invalid_go(path: &Path, rendered: &str, detail: &str) -> FieldError {
    go_err(ErrorKind::Invalid, path, rendered, detail)
}

/// Renders an optional string map as Go's `%#v` does.
pub fn go_str_map(m: &Option<BTreeMap<String, String>>) -> String {
    match m {
        None => "map[string]string(nil)".to_string(),
        Some(m) => go_str_map_ref(m),
    }
}

/// Renders a string map as Go's `%#v` does (keys sorted).
pub fn go_str_map_ref(m: &BTreeMap<String, String>) -> String {
    let items: Vec<String> = m
        .iter()
        .map(|(k, v)| format!("{}:{}", gofmt::quote(k), gofmt::quote(v)))
        .collect();
    format!("map[string]string{{{}}}", items.join(", "))
}

/// Renders an optional string slice as Go's `%#v` does.
pub fn go_str_slice(v: &Option<Vec<String>>) -> String {
    match v {
        None => "[]string(nil)".to_string(),
        Some(v) => gofmt::string_slice(v),
    }
}

/// Renders a `metav1.LabelSelector` as Go's `%#v` does.
pub fn go_label_selector(sel: &LabelSelector) -> String {
    let labels = go_str_map(&sel.match_labels);
    let exprs = match &sel.match_expressions {
        None => "[]v1.LabelSelectorRequirement(nil)".to_string(),
        Some(items) => {
            let rendered: Vec<String> = items
                .iter()
                .map(|r| {
                    format!(
                        "v1.LabelSelectorRequirement{{Key:{}, Operator:{}, Values:{}}}",
                        gofmt::quote(&r.key),
                        gofmt::quote(&r.operator),
                        go_str_slice(&r.values)
                    )
                })
                .collect();
            format!("[]v1.LabelSelectorRequirement{{{}}}", rendered.join(", "))
        }
    };
    format!("v1.LabelSelector{{MatchLabels:{labels}, MatchExpressions:{exprs}}}")
}

/// Renders an IntOrString as upstream's `String()` does (no quotes).
pub fn intstr_string(v: &IntOrString) -> String {
    match v {
        IntOrString::Int(i) => i.to_string(),
        IntOrString::String(s) => s.clone(),
    }
}

/// Renders an IntOrString as Go's `%#v` does.
pub fn go_intstr(v: &IntOrString) -> String {
    match v {
        IntOrString::Int(i) => format!("intstr.IntOrString{{Type:0, IntVal:{i}, StrVal:\"\"}}"),
        IntOrString::String(s) => format!(
            "intstr.IntOrString{{Type:1, IntVal:0, StrVal:{}}}",
            gofmt::quote(s)
        ),
    }
}

/// The integer value of an IntOrString as Go's `IntValue()` computes it
/// (a string is parsed with `strconv.Atoi`, 0 on failure).
pub fn intstr_int_value(v: &IntOrString) -> i64 {
    match v {
        IntOrString::Int(i) => i64::from(*i),
        IntOrString::String(s) => s.parse::<i64>().unwrap_or(0),
    }
}

/// Converts a list of messages into `Invalid` errors at `path`.
pub fn msgs_invalid(path: &Path, value: &str, msgs: Vec<String>) -> Vec<FieldError> {
    msgs.into_iter()
        .map(|m| FieldError::invalid(path, value, m))
        .collect()
}

/// Upstream `ValidateDNS1123Label`.
pub fn validate_dns1123_label(value: &str, path: &Path) -> Vec<FieldError> {
    msgs_invalid(path, value, av::is_dns1123_label(value))
}

/// Upstream `ValidateDNS1123Subdomain`.
pub fn validate_dns1123_subdomain(value: &str, path: &Path) -> Vec<FieldError> {
    msgs_invalid(path, value, av::is_dns1123_subdomain(value))
}

/// Upstream `ValidateQualifiedName`.
pub fn validate_qualified_name(value: &str, path: &Path) -> Vec<FieldError> {
    msgs_invalid(path, value, av::is_qualified_name(value))
}

/// Upstream `ValidateNonnegativeField`.
pub fn nonneg(value: i64, path: &Path) -> Vec<FieldError> {
    av::validate_nonnegative_field(value, path)
}

/// Upstream `ValidateImmutableField` for values already rendered as JSON.
pub fn immutable(new: Value, old: Value, path: &Path) -> Vec<FieldError> {
    av::validate_immutable_field(&new, &old, path)
}

/// Upstream `ValidateLabels` on an optional typed map.
pub fn validate_labels(m: &Option<BTreeMap<String, String>>, path: &Path) -> Vec<FieldError> {
    match m {
        None => Vec::new(),
        Some(m) => av::validate_label_pairs(m.iter().map(|(k, v)| (k.as_str(), v.as_str())), path),
    }
}

/// Upstream `ValidateAnnotations` on an optional typed map.
pub fn validate_annotations(m: &Option<BTreeMap<String, String>>, path: &Path) -> Vec<FieldError> {
    match m {
        None => Vec::new(),
        Some(m) => {
            av::validate_annotation_pairs(m.iter().map(|(k, v)| (k.as_str(), v.as_str())), path)
        }
    }
}

/// Upstream `ValidateLabelName`.
pub fn validate_label_name(name: &str, path: &Path) -> Vec<FieldError> {
    av::validate_label_name(name, path)
}

/// Upstream `ValidateLabelSelector` on an optional typed selector.
pub fn validate_label_selector(
    sel: &Option<LabelSelector>,
    allow_invalid_label_value: bool,
    path: &Path,
) -> Vec<FieldError> {
    match sel {
        None => Vec::new(),
        Some(sel) => apimachinery::labels::validate_label_selector(
            &to_json(sel),
            allow_invalid_label_value,
            path,
        ),
    }
}

/// Converts a typed label selector into a matcher (`None` selects nothing,
/// like upstream's `LabelSelectorAsSelector(nil)`); `Err` when it cannot be
/// converted.
pub fn selector_of(
    sel: &Option<LabelSelector>,
) -> Result<apimachinery::labels::Selector, apimachinery::labels::SelectorError> {
    match sel {
        None => Ok(apimachinery::labels::Selector::nothing()),
        Some(sel) => apimachinery::labels::Selector::from_label_selector(&to_json(sel)),
    }
}

/// Whether a label selector matches a label map.
pub fn selector_matches(
    sel: &apimachinery::labels::Selector,
    labels: &Option<BTreeMap<String, String>>,
) -> bool {
    let empty = BTreeMap::new();
    sel.matches(labels.as_ref().unwrap_or(&empty))
}

/// Serializes a value to JSON (`null` on the impossible failure).
pub fn to_json<T: serde::Serialize + ?Sized>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// The metadata name.
pub fn meta_name(m: &ObjectMeta) -> &str {
    s(&m.name)
}

/// Kubernetes' standard finalizer names (upstream `IsStandardFinalizerName`).
const STANDARD_FINALIZERS: &[&str] = &["kubernetes", "orphan", "foregroundDeletion"];

/// Upstream `validateKubeFinalizerName`: an unqualified finalizer name must
/// be one of the standard ones.
pub fn validate_kube_finalizer_name(name: &str, path: &Path) -> Vec<FieldError> {
    if !name.contains('/') && !STANDARD_FINALIZERS.contains(&name) {
        return vec![FieldError::invalid(
            path,
            name,
            "name is neither a standard finalizer name nor is it fully qualified",
        )];
    }
    Vec::new()
}

/// The extra finalizer checks that core's `ValidateObjectMeta` and
/// `ValidateObjectMetaUpdate` add to apimachinery's, reported at
/// `metadata.finalizers[i]`.
pub fn validate_kube_finalizers(meta: &ObjectMeta) -> Vec<FieldError> {
    if list(&meta.finalizers).is_empty() {
        return Vec::new();
    }
    let p = Path::new("metadata").child("finalizers");
    list(&meta.finalizers)
        .iter()
        .enumerate()
        .flat_map(|(i, f)| validate_kube_finalizer_name(f, &p.index(i)))
        .collect()
}

/// A `serde_json::Value` for an optional i32 (null when absent), as the bad
/// value of a pointer field.
pub fn opt_i32(v: Option<i32>) -> Value {
    v.map(Value::from).unwrap_or(Value::Null)
}

/// A `serde_json::Value` for an optional i64 (null when absent).
pub fn opt_i64(v: Option<i64>) -> Value {
    v.map(Value::from).unwrap_or(Value::Null)
}

/// `len(strings.Split(s, "/")) == 1`.
pub fn has_no_slash(v: &str) -> bool {
    !v.contains('/')
}

/// Removes nulls, empty arrays and empty objects recursively, so that two
/// values compare the way upstream's semantic equality compares Go structs
/// (nil and empty slices and maps are equal).
pub fn normalize(v: Value) -> Value {
    match v {
        Value::Object(m) => {
            let out: serde_json::Map<String, Value> = m
                .into_iter()
                .map(|(k, v)| (k, normalize(v)))
                .filter(|(_, v)| !is_emptyish(v))
                .collect();
            Value::Object(out)
        }
        Value::Array(a) => Value::Array(a.into_iter().map(normalize).collect()),
        other => other,
    }
}

fn is_emptyish(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Array(a) => a.is_empty(),
        Value::Object(m) => m.is_empty(),
        _ => false,
    }
}

/// Upstream `apiequality.Semantic.DeepEqual` approximated on JSON: nil and
/// empty collections are equal.
///
/// Equal values are recognized without serializing; otherwise both are
/// compared as normalized token streams (see [`crate::semantic`]), falling
/// back to normalized JSON trees for values the stream cannot mirror.
pub fn semantic_eq<T: serde::Serialize + PartialEq + ?Sized>(a: &T, b: &T) -> bool {
    if a == b {
        return true;
    }
    let mut sa = Vec::with_capacity(4096);
    let mut sb = Vec::with_capacity(4096);
    match (
        crate::semantic::write_stream(a, &mut sa),
        crate::semantic::write_stream(b, &mut sb),
    ) {
        (Ok(()), Ok(())) => sa == sb,
        _ => normalize(to_json(a)) == normalize(to_json(b)),
    }
}

/// A short rendering of the fields that differ between two values, used
/// where upstream appends a `cmp.Diff` to a message.
pub fn simple_diff<T: serde::Serialize + ?Sized>(type_name: &str, old: &T, new: &T) -> String {
    let o = normalize(to_json(old));
    let n = normalize(to_json(new));
    let mut out = format!("  {type_name}{{\n");
    if let (Value::Object(om), Value::Object(nm)) = (&o, &n) {
        let mut keys: Vec<&String> = om.keys().chain(nm.keys()).collect();
        keys.sort();
        keys.dedup();
        for k in keys {
            let ov = om.get(k);
            let nv = nm.get(k);
            if ov != nv {
                if let Some(ov) = ov {
                    out.push_str(&format!("- \t{k}: {ov},\n"));
                }
                if let Some(nv) = nv {
                    out.push_str(&format!("+ \t{k}: {nv},\n"));
                }
            }
        }
    }
    out.push_str("  }\n");
    out
}
