//! Label maps and label selectors rendered as upstream prints them.
//!
//! * [`format_labels`]: `k1=v1,k2=v2` with sorted keys, `<none>` when empty.
//! * [`selector_string`]: a `metav1.LabelSelector` converted to selector
//!   syntax (`app=web,tier in (a,b),!legacy`), requirements sorted by key.
//! * [`format_label_selector`]: like `selector_string`, with `<none>` for an
//!   empty result and `<error>` for an invalid selector.

use serde_json::Value;

/// Formats a label map (`{"b":"2","a":"1"}` → `a=1,b=2`), `<none>` when empty.
pub fn format_labels(map: Option<&Value>) -> String {
    let mut pairs: Vec<(&str, &str)> = map
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.as_str(), v.as_str().unwrap_or("")))
                .collect()
        })
        .unwrap_or_default();
    if pairs.is_empty() {
        return "<none>".to_string();
    }
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// A label selector that could not be converted (bad operator or values).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidSelector;

/// Converts a `LabelSelector` JSON object into selector syntax.
///
/// A missing selector selects nothing and an empty one selects everything;
/// both render as the empty string, as upstream's `Selector.String()` does.
pub fn selector_string(sel: Option<&Value>) -> Result<String, InvalidSelector> {
    let Some(sel) = sel.and_then(Value::as_object) else {
        return Ok(String::new());
    };
    // (key, rendered requirement)
    let mut reqs: Vec<(String, String)> = Vec::new();
    if let Some(ml) = sel.get("matchLabels").and_then(Value::as_object) {
        for (k, v) in ml {
            if k.is_empty() {
                return Err(InvalidSelector);
            }
            let v = v.as_str().unwrap_or("");
            reqs.push((k.clone(), format!("{k}={v}")));
        }
    }
    if let Some(exprs) = sel.get("matchExpressions").and_then(Value::as_array) {
        for e in exprs {
            let key = e.get("key").and_then(Value::as_str).unwrap_or("");
            if key.is_empty() {
                return Err(InvalidSelector);
            }
            let op = e.get("operator").and_then(Value::as_str).unwrap_or("");
            let mut values: Vec<&str> = e
                .get("values")
                .and_then(Value::as_array)
                .map(|a| a.iter().map(|v| v.as_str().unwrap_or("")).collect())
                .unwrap_or_default();
            let rendered = match op {
                "In" | "NotIn" => {
                    if values.is_empty() {
                        return Err(InvalidSelector);
                    }
                    values.sort_unstable();
                    let word = if op == "In" { "in" } else { "notin" };
                    format!("{key} {word} ({})", values.join(","))
                }
                "Exists" | "DoesNotExist" => {
                    if !values.is_empty() {
                        return Err(InvalidSelector);
                    }
                    if op == "Exists" {
                        key.to_string()
                    } else {
                        format!("!{key}")
                    }
                }
                _ => return Err(InvalidSelector),
            };
            reqs.push((key.to_string(), rendered));
        }
    }
    reqs.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(reqs
        .into_iter()
        .map(|(_, r)| r)
        .collect::<Vec<_>>()
        .join(","))
}

/// Upstream's `FormatLabelSelector`: `<none>` when empty, `<error>` when invalid.
pub fn format_label_selector(sel: Option<&Value>) -> String {
    match selector_string(sel) {
        Ok(s) if s.is_empty() => "<none>".to_string(),
        Ok(s) => s,
        Err(InvalidSelector) => "<error>".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn labels_sorted() {
        assert_eq!(
            format_labels(Some(&json!({"tier": "web", "app": "nginx"}))),
            "app=nginx,tier=web"
        );
        assert_eq!(format_labels(Some(&json!({}))), "<none>");
        assert_eq!(format_labels(None), "<none>");
    }

    #[test]
    fn selector_forms() {
        let sel = json!({
            "matchLabels": {"app": "web"},
            "matchExpressions": [
                {"key": "tier", "operator": "In", "values": ["frontend", "backend"]},
                {"key": "env", "operator": "NotIn", "values": ["dev"]},
                {"key": "legacy", "operator": "DoesNotExist"},
                {"key": "zone", "operator": "Exists"}
            ]
        });
        assert_eq!(
            selector_string(Some(&sel)).unwrap(),
            "app=web,env notin (dev),!legacy,tier in (backend,frontend),zone"
        );
        assert_eq!(format_label_selector(Some(&json!({}))), "<none>");
        assert_eq!(format_label_selector(None), "<none>");
        assert_eq!(selector_string(None).unwrap(), "");
        let bad = json!({"matchExpressions": [{"key": "a", "operator": "In", "values": []}]});
        assert_eq!(format_label_selector(Some(&bad)), "<error>");
        let bad_op = json!({"matchExpressions": [{"key": "a", "operator": "Gt", "values": ["1"]}]});
        assert_eq!(format_label_selector(Some(&bad_op)), "<error>");
    }
}
