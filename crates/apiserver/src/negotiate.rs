//! Content negotiation: which representation a client accepts (JSON, YAML, Table,
//! PartialObjectMetadata, aggregated discovery) and how a request body is encoded.

use crate::error::{ApiError, ApiResult};
use serde_json::Value;

/// A representation a response can take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    /// The object as JSON.
    Json,
    /// The object as YAML.
    Yaml,
    /// A `meta.k8s.io` Table of the given version (`v1` or `v1beta1`).
    Table(&'static str),
    /// `PartialObjectMetadata` (or its List) of the given version.
    PartialMetadata(&'static str),
    /// Aggregated discovery of the given `apidiscovery.k8s.io` version.
    Discovery(&'static str),
}

impl Output {
    /// The media type to answer with.
    pub fn content_type(&self) -> String {
        match self {
            Output::Yaml => "application/yaml".into(),
            Output::Table(v) => format!("application/json;as=Table;v={v};g=meta.k8s.io"),
            Output::PartialMetadata(v) => {
                format!("application/json;as=PartialObjectMetadata;v={v};g=meta.k8s.io")
            }
            Output::Discovery(v) => {
                format!("application/json;g=apidiscovery.k8s.io;v={v};as=APIGroupDiscoveryList")
            }
            Output::Json => "application/json".into(),
        }
    }
}

struct MediaRange<'a> {
    essence: String,
    params: Vec<(&'a str, &'a str)>,
}

impl MediaRange<'_> {
    fn param(&self, key: &str) -> Option<&str> {
        self.params.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
    }
}

fn parse_accept(accept: &str) -> Vec<MediaRange<'_>> {
    accept
        .split(',')
        .map(|part| {
            let mut it = part.split(';');
            let essence = it.next().unwrap_or("").trim().to_ascii_lowercase();
            let params = it
                .filter_map(|p| {
                    let (k, v) = p.split_once('=')?;
                    Some((k.trim(), v.trim().trim_matches('"')))
                })
                .collect();
            MediaRange { essence, params }
        })
        .collect()
}

/// The first representation in `accept` this server can produce. `allow_discovery`
/// admits aggregated discovery (only on `/api` and `/apis`).
pub fn choose(accept: Option<&str>, allow_discovery: bool) -> ApiResult<Output> {
    let Some(accept) = accept.filter(|a| !a.trim().is_empty()) else {
        return Ok(Output::Json);
    };
    for m in parse_accept(accept) {
        let json_like = matches!(
            m.essence.as_str(),
            "application/json" | "*/*" | "application/*"
        );
        let as_ = m.param("as");
        let g = m.param("g");
        let v = m.param("v");
        match (json_like, as_, g) {
            (true, None, None) => return Ok(Output::Json),
            (true, Some("Table"), Some("meta.k8s.io")) => match v {
                Some("v1") => return Ok(Output::Table("v1")),
                Some("v1beta1") => return Ok(Output::Table("v1beta1")),
                _ => continue,
            },
            (
                true,
                Some("PartialObjectMetadata" | "PartialObjectMetadataList"),
                Some("meta.k8s.io"),
            ) => match v {
                Some("v1") => return Ok(Output::PartialMetadata("v1")),
                Some("v1beta1") => return Ok(Output::PartialMetadata("v1beta1")),
                _ => continue,
            },
            (true, Some("APIGroupDiscoveryList"), Some("apidiscovery.k8s.io"))
                if allow_discovery =>
            {
                match v {
                    Some("v2") => return Ok(Output::Discovery("v2")),
                    Some("v2beta1") => return Ok(Output::Discovery("v2beta1")),
                    _ => continue,
                }
            }
            _ => {}
        }
        if m.essence == "application/yaml" && as_.is_none() {
            return Ok(Output::Yaml);
        }
    }
    Err(ApiError::not_acceptable(accept))
}

/// How a request body is encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyType {
    /// `application/json`.
    Json,
    /// `application/yaml`.
    Yaml,
    /// `application/json-patch+json`.
    JsonPatch,
    /// `application/merge-patch+json`.
    MergePatch,
    /// `application/strategic-merge-patch+json`.
    StrategicMergePatch,
    /// `application/apply-patch+yaml` (server-side apply).
    ApplyPatch,
    /// `application/vnd.kubernetes.protobuf`.
    Protobuf,
}

/// Classifies a Content-Type header.
pub fn body_type(content_type: Option<&str>) -> ApiResult<BodyType> {
    let ct = content_type.unwrap_or("application/json");
    let essence = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    Ok(match essence.as_str() {
        "application/json" | "" | "*/*" => BodyType::Json,
        "application/yaml" | "application/x-yaml" | "text/yaml" => BodyType::Yaml,
        "application/json-patch+json" => BodyType::JsonPatch,
        "application/merge-patch+json" => BodyType::MergePatch,
        "application/strategic-merge-patch+json" => BodyType::StrategicMergePatch,
        "application/apply-patch+yaml" | "application/apply-patch+json" => BodyType::ApplyPatch,
        "application/vnd.kubernetes.protobuf" => BodyType::Protobuf,
        _ => return Err(ApiError::unsupported_media_type(ct)),
    })
}

/// Decodes a JSON or YAML document into a JSON value.
pub fn decode(body: &[u8], yaml: bool) -> ApiResult<Value> {
    if !yaml {
        return serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding JSON body: {e}")));
    }
    let text = std::str::from_utf8(body)
        .map_err(|_| ApiError::bad_request("the body is not valid UTF-8"))?;
    // JSON is valid YAML; parse it as JSON first so numbers and strings keep their types.
    if let Ok(v) = serde_json::from_str(text) {
        return Ok(v);
    }
    serde_saphyr::from_str::<Value>(text)
        .map_err(|e| ApiError::bad_request(format!("error converting YAML to JSON: {e}")))
}

/// Decodes a Kubernetes protobuf body into the JSON the object has.
pub fn decode_protobuf(body: &[u8]) -> ApiResult<Value> {
    protobuf::decode(body)
        .map_err(|e| ApiError::bad_request(format!("error decoding protobuf body: {e}")))
}

/// Encodes a JSON value as YAML.
pub fn to_yaml(v: &Value) -> Vec<u8> {
    serde_saphyr::to_string(v).unwrap_or_default().into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubectl_accept_headers() {
        let get = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
        assert_eq!(choose(Some(get), false).unwrap(), Output::Table("v1"));
        let disc = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
        assert_eq!(choose(Some(disc), true).unwrap(), Output::Discovery("v2"));
        assert_eq!(choose(Some(disc), false).unwrap(), Output::Json);
        assert_eq!(
            choose(Some("application/vnd.kubernetes.protobuf, */*"), false).unwrap(),
            Output::Json
        );
        assert!(choose(Some("application/vnd.kubernetes.protobuf"), false).is_err());
        assert_eq!(choose(None, false).unwrap(), Output::Json);
        assert_eq!(
            choose(Some("application/yaml"), false).unwrap(),
            Output::Yaml
        );
    }

    #[test]
    fn yaml_bodies() {
        let v = decode(b"a: 1\nb: [x, z]\nc: \"01\"\n", true).unwrap();
        assert_eq!(v, serde_json::json!({"a": 1, "b": ["x", "z"], "c": "01"}));
        // YAML 1.1 booleans, as upstream's YAML decoder reads them.
        let v = decode(b"a: yes\nb: off\n", true).unwrap();
        assert_eq!(v, serde_json::json!({"a": true, "b": false}));
    }
}
