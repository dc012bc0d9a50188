//! Static pods: pod manifests in `--pod-manifest-path` (YAML or JSON, one pod per
//! file), read at start and every `--file-check-frequency`, run by the kubelet
//! whatever the API says, and shown in the API as mirror pods. As upstream: the pod
//! is named `<name>-<node>`, defaults to the `default` namespace, gets a UID hashed
//! from its content, source and node, the `kubernetes.io/config.*` annotations and a
//! NoExecute toleration; its mirror carries `kubernetes.io/config.mirror` and is
//! owned by the Node.

use std::collections::BTreeMap;
use std::path::Path;

use k8s_openapi::api::core::v1::{Pod, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use sha2::{Digest, Sha256};
use tracing::warn;

/// The annotation naming a static pod's hash (its UID on the node).
pub const CONFIG_HASH: &str = "kubernetes.io/config.hash";
/// The annotation marking a mirror pod, with the static pod's hash.
pub const CONFIG_MIRROR: &str = "kubernetes.io/config.mirror";
/// Where the pod came from (`file`, `http`, `api`).
pub const CONFIG_SOURCE: &str = "kubernetes.io/config.source";
/// When the kubelet first saw it.
pub const CONFIG_SEEN: &str = "kubernetes.io/config.seen";

/// Whether `pod` is a mirror pod.
pub fn is_mirror(pod: &Pod) -> bool {
    mirror_hash(pod).is_some()
}

/// The static pod hash a mirror pod stands for.
pub fn mirror_hash(pod: &Pod) -> Option<&str> {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(CONFIG_MIRROR))
        .map(String::as_str)
}

/// Whether `pod` is a static pod (came from a file or URL).
pub fn is_static(pod: &Pod) -> bool {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(CONFIG_SOURCE))
        .is_some_and(|s| s != "api")
}

/// Makes a static pod from a manifest's pod, as upstream's file source does.
pub fn prepare(pod: Pod, source: &str, node_name: &str) -> Pod {
    prepare_from(pod, source, "file", node_name)
}

/// Makes a static pod, naming its source kind (`file` or `http`).
pub fn prepare_from(mut pod: Pod, source: &str, kind: &str, node_name: &str) -> Pod {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let full_name = format!("{name}-{node_name}");
    pod.metadata.name = Some(full_name);
    if pod.metadata.namespace.as_deref().unwrap_or("").is_empty() {
        pod.metadata.namespace = Some("default".into());
    }
    let mut spec = pod.spec.take().unwrap_or_default();
    spec.node_name = Some(node_name.to_string());
    validation::core::defaults::default_pod_spec(&mut spec);
    let tolerate_all = Toleration {
        operator: Some("Exists".into()),
        effect: Some("NoExecute".into()),
        ..Default::default()
    };
    let tolerations = spec.tolerations.get_or_insert_with(Vec::new);
    if !tolerations.contains(&tolerate_all) {
        tolerations.push(tolerate_all);
    }
    pod.spec = Some(spec);
    pod.status = None;
    pod.metadata.uid = None;
    pod.metadata.resource_version = None;
    // The UID: a hash of the pod as read, its source and the node.
    let mut h = Sha256::new();
    h.update(serde_json::to_vec(&pod).unwrap_or_default());
    h.update(source.as_bytes());
    h.update(node_name.as_bytes());
    let digest = h.finalize();
    let uid: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    pod.metadata.uid = Some(uid.clone());
    let annotations = pod.metadata.annotations.get_or_insert_with(BTreeMap::new);
    annotations.insert(CONFIG_HASH.into(), uid);
    annotations.insert(CONFIG_SOURCE.into(), kind.into());
    annotations.insert(
        CONFIG_SEEN.into(),
        k8s_openapi::jiff::Timestamp::now().to_string(),
    );
    pod
}

/// The mirror pod the API shows for a static pod, owned by the Node.
pub fn mirror_of(pod: &Pod, node_uid: &str) -> Pod {
    let mut m = pod.clone();
    m.metadata.uid = None;
    m.metadata.resource_version = None;
    m.status = None;
    let hash = pod.metadata.uid.clone().unwrap_or_default();
    m.metadata
        .annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(CONFIG_MIRROR.into(), hash);
    let node = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.clone())
        .unwrap_or_default();
    m.metadata.owner_references = Some(vec![OwnerReference {
        api_version: "v1".into(),
        kind: "Node".into(),
        name: node,
        uid: node_uid.to_string(),
        controller: Some(true),
        ..Default::default()
    }]);
    m
}

/// Reads the manifests of `dir`: `*.yaml`, `*.yml`, `*.json`, not hidden files.
/// Files that do not parse are logged and skipped.
pub fn read_dir(dir: &Path, node_name: &str) -> Vec<Pod> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    let mut paths: Vec<_> = entries.flatten().map(|e| e.path()).collect();
    paths.sort();
    for path in paths {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with('.') || !path.is_file() {
            continue;
        }
        if !(name.ends_with(".yaml") || name.ends_with(".yml") || name.ends_with(".json")) {
            continue;
        }
        match read_manifest(&path) {
            Ok(pod) => out.push(prepare(pod, &path.display().to_string(), node_name)),
            Err(e) => {
                warn!(path = %path.display(), error = %e, "could not read static pod manifest")
            }
        }
    }
    out
}

/// The pods a `--manifest-url` answer holds: one Pod or a PodList, YAML or JSON.
pub fn parse_url_manifest(body: &[u8], url: &str, node_name: &str) -> Result<Vec<Pod>, String> {
    let text = std::str::from_utf8(body).map_err(|e| e.to_string())?;
    let value: serde_json::Value = if text.trim_start().starts_with('{') {
        serde_json::from_str(text).map_err(|e| e.to_string())?
    } else {
        serde_saphyr::from_str(text).map_err(|e| e.to_string())?
    };
    let items: Vec<serde_json::Value> = match value["kind"].as_str() {
        Some("Pod") => vec![value],
        Some("PodList") => value["items"].as_array().cloned().unwrap_or_default(),
        other => return Err(format!("kind {other:?} is neither Pod nor PodList")),
    };
    items
        .into_iter()
        .map(|v| {
            let pod: Pod = serde_json::from_value(v).map_err(|e| e.to_string())?;
            if pod.metadata.name.as_deref().unwrap_or("").is_empty() {
                return Err("a pod has no name".to_string());
            }
            Ok(prepare_from(pod, url, "http", node_name))
        })
        .collect()
}

fn read_manifest(path: &Path) -> Result<Pod, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let value: serde_json::Value = if text.trim_start().starts_with('{') {
        serde_json::from_str(&text).map_err(|e| e.to_string())?
    } else {
        serde_saphyr::from_str(&text).map_err(|e| e.to_string())?
    };
    if value["kind"] != "Pod" {
        return Err(format!("kind {} is not Pod", value["kind"]));
    }
    if value["metadata"]["name"].as_str().unwrap_or("").is_empty() {
        return Err("the pod has no name".into());
    }
    serde_json::from_value(value).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifests_become_static_pods() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("web.yaml"),
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  containers:\n  - name: c\n    image: busybox\n",
        )
        .unwrap();
        std::fs::write(dir.path().join(".hidden.yaml"), "junk").unwrap();
        std::fs::write(dir.path().join("bad.yaml"), "kind: Service\n").unwrap();
        let pods = read_dir(dir.path(), "node-1");
        assert_eq!(pods.len(), 1);
        let p = &pods[0];
        assert_eq!(p.metadata.name.as_deref(), Some("web-node-1"));
        assert_eq!(p.metadata.namespace.as_deref(), Some("default"));
        let uid = p.metadata.uid.clone().unwrap();
        assert_eq!(uid.len(), 32);
        let ann = p.metadata.annotations.as_ref().unwrap();
        assert_eq!(ann[CONFIG_HASH], uid);
        assert_eq!(ann[CONFIG_SOURCE], "file");
        let spec = p.spec.as_ref().unwrap();
        assert_eq!(spec.node_name.as_deref(), Some("node-1"));
        assert_eq!(spec.restart_policy.as_deref(), Some("Always"));
        assert!(is_static(p));
        // Same content, same UID; changed content, new UID.
        assert_eq!(
            read_dir(dir.path(), "node-1")[0].metadata.uid.as_deref(),
            Some(uid.as_str())
        );
        std::fs::write(
            dir.path().join("web.yaml"),
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  containers:\n  - name: c\n    image: busybox:2\n",
        )
        .unwrap();
        assert_ne!(
            read_dir(dir.path(), "node-1")[0].metadata.uid.as_deref(),
            Some(uid.as_str())
        );
        let m = mirror_of(p, "node-uid");
        assert!(is_mirror(&m));
        assert_eq!(mirror_hash(&m), Some(uid.as_str()));
        assert!(m.metadata.uid.is_none());
        assert_eq!(
            m.metadata.owner_references.as_ref().unwrap()[0].kind,
            "Node"
        );
    }
}
