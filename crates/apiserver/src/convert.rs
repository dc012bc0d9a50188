//! Conversion between served versions and storage versions, for resources served in
//! several shapes from one storage: `events.k8s.io/v1` Events are stored as core/v1
//! Events, and `autoscaling/v1` HorizontalPodAutoscalers as `autoscaling/v2` (with the
//! v2-only fields kept in annotations, as upstream does).

use resources::ResourceInfo;
use serde_json::{json, Map, Value};

/// Renames of fields between events.k8s.io/v1 (left) and core/v1 (right).
const EVENT_FIELDS: &[(&str, &str)] = &[
    ("regarding", "involvedObject"),
    ("note", "message"),
    ("reportingController", "reportingComponent"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
];

const HPA_METRICS: &str = "autoscaling.alpha.kubernetes.io/metrics";
const HPA_CURRENT_METRICS: &str = "autoscaling.alpha.kubernetes.io/current-metrics";
const HPA_CONDITIONS: &str = "autoscaling.alpha.kubernetes.io/conditions";
const HPA_BEHAVIOR: &str = "autoscaling.alpha.kubernetes.io/behavior";

fn rename(obj: &mut Map<String, Value>, from: &str, to: &str) {
    if let Some(v) = obj.remove(from) {
        obj.insert(to.to_string(), v);
    }
}

/// A stored object in the version `info` serves.
pub fn from_storage(info: &ResourceInfo, mut obj: Value) -> Value {
    match (info.group, info.kind) {
        ("events.k8s.io", "Event") => {
            if let Some(m) = obj.as_object_mut() {
                for (served, stored) in EVENT_FIELDS {
                    rename(m, stored, served);
                }
            }
        }
        ("autoscaling", "HorizontalPodAutoscaler") if info.version == "v1" => {
            obj = hpa_v2_to_v1(obj);
        }
        _ => {}
    }
    obj["apiVersion"] = json!(info.api_version());
    obj["kind"] = json!(info.kind);
    obj
}

/// An object of the version `info` serves, in its storage version.
pub fn to_storage(info: &ResourceInfo, mut obj: Value) -> Value {
    match (info.group, info.kind) {
        ("events.k8s.io", "Event") => {
            if let Some(m) = obj.as_object_mut() {
                for (served, stored) in EVENT_FIELDS {
                    rename(m, served, stored);
                }
            }
            obj["apiVersion"] = json!("v1");
        }
        ("autoscaling", "HorizontalPodAutoscaler") if info.version == "v1" => {
            obj = hpa_v1_to_v2(obj);
            obj["apiVersion"] = json!("autoscaling/v2");
        }
        _ => {}
    }
    obj
}

fn is_cpu_utilization(m: &Value) -> bool {
    m["type"] == "Resource"
        && m["resource"]["name"] == "cpu"
        && m["resource"]["target"]["type"] == "Utilization"
}

fn annotations(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj["metadata"]["annotations"].is_object() {
        obj["metadata"]["annotations"] = json!({});
    }
    match obj["metadata"]["annotations"].as_object_mut() {
        Some(m) => m,
        None => unreachable!("annotations were just made an object"),
    }
}

fn hpa_v2_to_v1(mut obj: Value) -> Value {
    let spec = obj["spec"].take();
    let status = obj["status"].take();
    let mut v1spec = json!({
        "scaleTargetRef": spec["scaleTargetRef"].clone(),
        "maxReplicas": spec["maxReplicas"].clone(),
    });
    if !spec["minReplicas"].is_null() {
        v1spec["minReplicas"] = spec["minReplicas"].clone();
    }
    let metrics = spec["metrics"].as_array().cloned().unwrap_or_default();
    let mut others = Vec::new();
    for m in metrics {
        if is_cpu_utilization(&m) && v1spec.get("targetCPUUtilizationPercentage").is_none() {
            v1spec["targetCPUUtilizationPercentage"] =
                m["resource"]["target"]["averageUtilization"].clone();
        } else {
            others.push(m);
        }
    }
    if !others.is_empty() {
        annotations(&mut obj).insert(HPA_METRICS.into(), json!(Value::Array(others).to_string()));
    }
    if !spec["behavior"].is_null() {
        annotations(&mut obj).insert(HPA_BEHAVIOR.into(), json!(spec["behavior"].to_string()));
    }
    obj["spec"] = v1spec;
    if !status.is_null() {
        let mut s = json!({
            "currentReplicas": status["currentReplicas"].as_i64().unwrap_or(0),
            "desiredReplicas": status["desiredReplicas"].as_i64().unwrap_or(0),
        });
        for k in ["observedGeneration", "lastScaleTime"] {
            if !status[k].is_null() {
                s[k] = status[k].clone();
            }
        }
        let current = status["currentMetrics"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let mut others = Vec::new();
        for m in current {
            if m["type"] == "Resource"
                && m["resource"]["name"] == "cpu"
                && s.get("currentCPUUtilizationPercentage").is_none()
            {
                if let Some(u) = m["resource"]["current"]["averageUtilization"].as_i64() {
                    s["currentCPUUtilizationPercentage"] = json!(u);
                    continue;
                }
            }
            others.push(m);
        }
        if !others.is_empty() {
            annotations(&mut obj).insert(
                HPA_CURRENT_METRICS.into(),
                json!(Value::Array(others).to_string()),
            );
        }
        if let Some(c) = status["conditions"].as_array().filter(|c| !c.is_empty()) {
            annotations(&mut obj).insert(
                HPA_CONDITIONS.into(),
                json!(Value::Array(c.clone()).to_string()),
            );
        }
        obj["status"] = s;
    } else if let Some(m) = obj.as_object_mut() {
        m.remove("status");
    }
    obj
}

fn take_annotation(obj: &mut Value, key: &str) -> Option<Value> {
    let raw = obj["metadata"]["annotations"]
        .as_object_mut()?
        .remove(key)?;
    serde_json::from_str(raw.as_str()?).ok()
}

fn hpa_v1_to_v2(mut obj: Value) -> Value {
    let spec = obj["spec"].take();
    let status = obj["status"].take();
    let mut metrics = Vec::new();
    if let Some(t) = spec["targetCPUUtilizationPercentage"].as_i64() {
        metrics.push(json!({
            "type": "Resource",
            "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": t}},
        }));
    }
    if let Some(Value::Array(more)) = take_annotation(&mut obj, HPA_METRICS) {
        metrics.extend(more);
    }
    let mut v2spec = json!({
        "scaleTargetRef": spec["scaleTargetRef"].clone(),
        "maxReplicas": spec["maxReplicas"].clone(),
    });
    if !spec["minReplicas"].is_null() {
        v2spec["minReplicas"] = spec["minReplicas"].clone();
    }
    if !metrics.is_empty() {
        v2spec["metrics"] = Value::Array(metrics);
    }
    if let Some(b) = take_annotation(&mut obj, HPA_BEHAVIOR) {
        v2spec["behavior"] = b;
    }
    obj["spec"] = v2spec;
    let current_more = take_annotation(&mut obj, HPA_CURRENT_METRICS);
    let conditions = take_annotation(&mut obj, HPA_CONDITIONS);
    if !status.is_null() {
        let mut s = json!({
            "currentReplicas": status["currentReplicas"].as_i64().unwrap_or(0),
            "desiredReplicas": status["desiredReplicas"].as_i64().unwrap_or(0),
        });
        for k in ["observedGeneration", "lastScaleTime"] {
            if !status[k].is_null() {
                s[k] = status[k].clone();
            }
        }
        let mut current = Vec::new();
        if let Some(u) = status["currentCPUUtilizationPercentage"].as_i64() {
            current.push(json!({
                "type": "Resource",
                "resource": {"name": "cpu", "current": {"averageUtilization": u}},
            }));
        }
        if let Some(Value::Array(more)) = current_more {
            current.extend(more);
        }
        if !current.is_empty() {
            s["currentMetrics"] = Value::Array(current);
        }
        if let Some(c) = conditions {
            s["conditions"] = c;
        }
        obj["status"] = s;
    } else if let Some(m) = obj.as_object_mut() {
        m.remove("status");
    }
    if obj["metadata"]["annotations"]
        .as_object()
        .is_some_and(Map::is_empty)
    {
        if let Some(m) = obj["metadata"].as_object_mut() {
            m.remove("annotations");
        }
    }
    obj
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip() {
        let info = resources::find("events.k8s.io", "v1", "events").unwrap();
        let core = json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "e"},
            "involvedObject": {"kind": "Pod", "name": "p"}, "message": "hi", "count": 2, "reason": "Started"});
        let served = from_storage(info, core.clone());
        assert_eq!(served["apiVersion"], "events.k8s.io/v1");
        assert_eq!(served["regarding"]["name"], "p");
        assert_eq!(served["note"], "hi");
        assert_eq!(served["deprecatedCount"], 2);
        assert_eq!(to_storage(info, served), core);
    }

    #[test]
    fn hpa_round_trip_keeps_v2_fields() {
        let info = resources::find("autoscaling", "v1", "horizontalpodautoscalers").unwrap();
        let v2 = json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "h"},
        "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "d", "apiVersion": "apps/v1"},
            "minReplicas": 1, "maxReplicas": 5,
            "metrics": [
                {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}},
                {"type": "Resource", "resource": {"name": "memory", "target": {"type": "AverageValue", "averageValue": "100Mi"}}}
            ]}});
        let v1 = from_storage(info, v2.clone());
        assert_eq!(v1["spec"]["targetCPUUtilizationPercentage"], 50);
        assert!(v1["metadata"]["annotations"][HPA_METRICS].is_string());
        let back = to_storage(info, v1);
        assert_eq!(back["spec"], v2["spec"]);
        assert!(back["metadata"].get("annotations").is_none());
    }
}
