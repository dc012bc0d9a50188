//! Where the HPA gets pod metrics: the [`MetricsClient`] trait, and
//! [`RestMetricsClient`], which reads the resource metrics API
//! (`metrics.k8s.io/v1beta1` PodMetrics, served by metrics-server).

use std::time::Duration;

use futures::future::BoxFuture;
use kube::Client;
use serde_json::Value;

use super::replicas::{PodMetric, PodMetrics};

/// A source of per-pod resource metrics.
pub trait MetricsClient: Send + Sync {
    /// The usage of `resource` (milli-units) of the pods `selector` picks in
    /// `namespace` (only of `container` if not empty), and the newest sample's time.
    /// Errors are upstream's messages (`unable to fetch metrics from resource metrics
    /// API: ...`).
    fn resource_metric<'a>(
        &'a self,
        resource: &'a str,
        namespace: &'a str,
        selector: &'a str,
        container: &'a str,
    ) -> BoxFuture<'a, Result<(PodMetrics, jiff::Timestamp), String>>;
}

/// Reads `pods.metrics.k8s.io` through the API server.
#[derive(Clone)]
pub struct RestMetricsClient {
    client: Client,
}

impl RestMetricsClient {
    /// A client reading through `client`.
    pub fn new(client: Client) -> Self {
        RestMetricsClient { client }
    }
}

fn go_duration(s: &str) -> Duration {
    controllers::config::parse_go_duration(s).unwrap_or_default()
}

/// Sums a PodMetricsList into per-pod samples (pods missing the resource in some
/// container are left out).
pub fn parse_pod_metrics(
    list: &Value,
    resource: &str,
    container: &str,
) -> (PodMetrics, jiff::Timestamp) {
    let mut out = PodMetrics::new();
    let mut newest = jiff::Timestamp::UNIX_EPOCH;
    for item in list["items"].as_array().into_iter().flatten() {
        let name = item["metadata"]["name"].as_str().unwrap_or("").to_string();
        let timestamp = item["timestamp"]
            .as_str()
            .and_then(|t| t.parse::<jiff::Timestamp>().ok())
            .unwrap_or(jiff::Timestamp::UNIX_EPOCH);
        let window = go_duration(item["window"].as_str().unwrap_or("0"));
        let mut sum = 0i64;
        let mut missing = false;
        let mut any = false;
        for c in item["containers"].as_array().into_iter().flatten() {
            if !container.is_empty() && c["name"].as_str() != Some(container) {
                continue;
            }
            any = true;
            match c["usage"][resource]
                .as_str()
                .and_then(super::replicas::apimachinery_milli)
            {
                Some(v) => sum += v,
                None => missing = true,
            }
        }
        if !missing && (any || container.is_empty()) {
            if timestamp > newest {
                newest = timestamp;
            }
            out.insert(
                name,
                PodMetric {
                    timestamp,
                    window,
                    value: sum,
                },
            );
        }
    }
    (out, newest)
}

impl MetricsClient for RestMetricsClient {
    fn resource_metric<'a>(
        &'a self,
        resource: &'a str,
        namespace: &'a str,
        selector: &'a str,
        container: &'a str,
    ) -> BoxFuture<'a, Result<(PodMetrics, jiff::Timestamp), String>> {
        Box::pin(async move {
            let mut url = format!("/apis/metrics.k8s.io/v1beta1/namespaces/{namespace}/pods");
            if !selector.is_empty() {
                let q: String = url_encode(selector);
                url.push_str(&format!("?labelSelector={q}"));
            }
            let req = http::Request::get(url)
                .body(Vec::new())
                .map_err(|e| e.to_string())?;
            let list: Value = match self.client.request(req).await {
                Ok(v) => v,
                Err(kube::Error::Api(s)) if s.code == 404 => {
                    return Err("unable to fetch metrics from resource metrics API: the server could not find the requested resource (get pods.metrics.k8s.io)".into())
                }
                Err(kube::Error::Api(s)) => {
                    return Err(format!("unable to fetch metrics from resource metrics API: {}", s.message))
                }
                Err(e) => return Err(format!("unable to fetch metrics from resource metrics API: {e}")),
            };
            if list["items"].as_array().is_none_or(|a| a.is_empty()) {
                return Err("no metrics returned from resource metrics API".into());
            }
            Ok(parse_pod_metrics(&list, resource, container))
        })
    }
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sums_containers() {
        let list = json!({"items": [
            {"metadata": {"name": "a"}, "timestamp": "2025-01-01T00:00:00Z", "window": "30s",
             "containers": [{"name": "x", "usage": {"cpu": "100m"}}, {"name": "y", "usage": {"cpu": "250m"}}]},
            {"metadata": {"name": "b"}, "timestamp": "2025-01-01T00:00:10Z", "window": "30s",
             "containers": [{"name": "x", "usage": {"memory": "1Mi"}}]}
        ]});
        let (m, newest) = parse_pod_metrics(&list, "cpu", "");
        assert_eq!(m.len(), 1);
        assert_eq!(m["a"].value, 350);
        assert_eq!(m["a"].window, Duration::from_secs(30));
        assert_eq!(newest.to_string(), "2025-01-01T00:00:00Z");
        let (m, _) = parse_pod_metrics(&list, "cpu", "y");
        assert_eq!(m["a"].value, 250);
        assert_eq!(
            url_encode("app=web,tier in (a)"),
            "app%3Dweb%2Ctier%20in%20%28a%29"
        );
    }
}
