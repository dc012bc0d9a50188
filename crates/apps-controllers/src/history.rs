//! ControllerRevisions, the recorded history of a DaemonSet's or StatefulSet's pod
//! template, shared by both controllers:
//! - the revision payload: a strategic merge patch `{"spec":{"template":{…,
//!   "$patch":"replace"}}}` rendered as Go's `encoding/json` renders a map (sorted
//!   keys, HTML characters escaped), so that equal templates give equal bytes;
//! - naming: `<parent>-<hash>` (the parent name cut to 223 bytes), the hash being
//!   32-bit FNV-1 over the payload and, when set, the decimal collision count,
//!   rendered with the safe alphabet;
//! - comparing and sorting revisions (by revision number, then creation time, then
//!   name), reading the template back out of a revision;
//! - [`RevisionClient`]: creating (with hash-collision probing), renumbering,
//!   deleting and adopting revisions through the API.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::{Client, Resource};
use serde_json::{json, Value};

use controllers::error::ControllerError;
use controllers::util::new_controller_ref;

use crate::deployment::util::safe_encode_string;

/// The label carrying a revision's hash, on revisions and on the pods made from them.
pub const CONTROLLER_REVISION_HASH_LABEL: &str = "controller-revision-hash";

/// Revision names keep at most this many bytes of the parent's name.
const MAX_PREFIX_LENGTH: usize = 223;

/// Renders `v` as Go's `json.Marshal` renders a decoded value: object keys sorted,
/// no whitespace, and `<`, `>`, `&`, U+2028 and U+2029 escaped.
pub fn go_json(v: &Value) -> Vec<u8> {
    let mut out = String::new();
    write_go_json(v, &mut out);
    out.into_bytes()
}

fn write_go_json(v: &Value, out: &mut String) {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_go_string(k, out);
                out.push(':');
                if let Some(v) = m.get(k) {
                    write_go_json(v, out);
                }
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, v) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_go_json(v, out);
            }
            out.push(']');
        }
        Value::String(s) => write_go_string(s, out),
        other => out.push_str(&other.to_string()),
    }
}

fn write_go_string(s: &str, out: &mut String) {
    let quoted = Value::String(s.to_string()).to_string();
    for c in quoted.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
}

/// The template as Go serializes it: metadata always present with
/// `creationTimestamp: null`, and every container with `resources` (`{}` when
/// empty), as those Go fields are structs that `omitempty` never drops.
fn go_template_value(template: &PodTemplateSpec) -> Value {
    let mut v = serde_json::to_value(template).unwrap_or_else(|_| json!({}));
    if let Value::Object(m) = &mut v {
        let meta = m
            .entry("metadata")
            .or_insert_with(|| Value::Object(Default::default()));
        if let Value::Object(meta) = meta {
            meta.entry("creationTimestamp").or_insert(Value::Null);
        }
        if let Some(Value::Object(spec)) = m.get_mut("spec") {
            for list in ["initContainers", "containers"] {
                if let Some(Value::Array(cs)) = spec.get_mut(list) {
                    for c in cs {
                        if let Value::Object(c) = c {
                            c.entry("resources")
                                .or_insert_with(|| Value::Object(Default::default()));
                        }
                    }
                }
            }
        }
    }
    v
}

/// The revision payload for a template: `{"spec":{"template":{…,"$patch":"replace"}}}`.
pub fn template_patch_value(template: &PodTemplateSpec) -> Value {
    let mut t = go_template_value(template);
    if let Value::Object(m) = &mut t {
        m.insert("$patch".into(), Value::String("replace".into()));
    }
    json!({"spec": {"template": t}})
}

/// The payload of `template_patch_value`, as bytes.
pub fn template_patch(template: &PodTemplateSpec) -> Vec<u8> {
    go_json(&template_patch_value(template))
}

/// The payload bytes of a stored revision (rendered as [`go_json`]).
pub fn revision_data(rev: &ControllerRevision) -> Vec<u8> {
    rev.data.as_ref().map(|d| go_json(&d.0)).unwrap_or_default()
}

/// FNV-1 (not 1a), 32 bits.
pub fn fnv32(data: &[u8], mut hash: u32) -> u32 {
    for b in data {
        hash = hash.wrapping_mul(0x0100_0193);
        hash ^= u32::from(*b);
    }
    hash
}

/// The FNV offset basis.
pub const FNV32_OFFSET: u32 = 0x811c_9dc5;

/// The hash of a revision payload, probed with the collision count when set.
pub fn hash_revision(data: &[u8], probe: Option<i32>) -> String {
    let mut h = fnv32(data, FNV32_OFFSET);
    if let Some(p) = probe {
        h = fnv32(p.to_string().as_bytes(), h);
    }
    safe_encode_string(&h.to_string())
}

/// `<prefix>-<hash>`, the prefix cut to 223 bytes.
pub fn revision_name(prefix: &str, hash: &str) -> String {
    let mut end = prefix.len().min(MAX_PREFIX_LENGTH);
    while !prefix.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}-{hash}", &prefix[..end])
}

/// A new revision of `parent` (not yet created): labels copied from the template
/// plus the hash label, the parent's annotations, a controller reference, the
/// payload and the revision number; named `<parent>-<hash>`.
pub fn new_revision<O: Resource<DynamicType = ()>>(
    parent: &O,
    template_labels: Option<&BTreeMap<String, String>>,
    data: Value,
    revision: i64,
    collision_count: Option<i32>,
) -> ControllerRevision {
    let hash = hash_revision(&go_json(&data), collision_count);
    let mut labels = template_labels.cloned().unwrap_or_default();
    labels.insert(CONTROLLER_REVISION_HASH_LABEL.into(), hash.clone());
    let meta = parent.meta();
    ControllerRevision {
        metadata: ObjectMeta {
            name: Some(revision_name(meta.name.as_deref().unwrap_or(""), &hash)),
            namespace: meta.namespace.clone(),
            labels: Some(labels),
            annotations: meta.annotations.clone().filter(|a| !a.is_empty()),
            owner_references: Some(vec![new_controller_ref(parent)]),
            ..Default::default()
        },
        data: Some(RawExtension(data)),
        revision,
    }
}

/// Whether two revisions hold the same payload.
pub fn equal_revision(a: &ControllerRevision, b: &ControllerRevision) -> bool {
    revision_data(a) == revision_data(b)
}

/// The revisions equal to `needle`, in their order.
pub fn find_equal_revisions(
    revisions: &[Arc<ControllerRevision>],
    needle: &ControllerRevision,
) -> Vec<Arc<ControllerRevision>> {
    revisions
        .iter()
        .filter(|r| equal_revision(r, needle))
        .cloned()
        .collect()
}

fn revision_order(a: &ControllerRevision, b: &ControllerRevision) -> Ordering {
    a.revision
        .cmp(&b.revision)
        .then_with(|| {
            let ta = a.metadata.creation_timestamp.as_ref().map(|t| t.0);
            let tb = b.metadata.creation_timestamp.as_ref().map(|t| t.0);
            ta.cmp(&tb)
        })
        .then_with(|| a.metadata.name.cmp(&b.metadata.name))
}

/// Sorts revisions by revision number, then creation time, then name (stable).
pub fn sort_revisions(revisions: &mut [Arc<ControllerRevision>]) {
    revisions.sort_by(|a, b| revision_order(a, b));
}

/// The number after the last of sorted `revisions` (1 when there are none).
pub fn next_revision(revisions: &[Arc<ControllerRevision>]) -> i64 {
    revisions.last().map_or(1, |r| r.revision + 1)
}

/// The largest revision number (0 when there are none).
pub fn max_revision(revisions: &[Arc<ControllerRevision>]) -> i64 {
    revisions.iter().map(|r| r.revision).max().unwrap_or(0)
}

/// The pod template a revision restores: its payload's `spec.template` without the
/// `$patch` directive.
pub fn template_from_revision(rev: &ControllerRevision) -> Result<PodTemplateSpec, String> {
    let mut t = rev
        .data
        .as_ref()
        .and_then(|d| d.0.get("spec"))
        .and_then(|s| s.get("template"))
        .cloned()
        .ok_or_else(|| {
            format!(
                "revision {} has no spec.template",
                rev.metadata.name.as_deref().unwrap_or("")
            )
        })?;
    if let Value::Object(m) = &mut t {
        m.remove("$patch");
        if let Some(Value::Object(meta)) = m.get_mut("metadata") {
            meta.retain(|_, v| !v.is_null());
        }
    }
    serde_json::from_value(t).map_err(|e| e.to_string())
}

/// Revision writes through the API.
#[derive(Clone)]
pub struct RevisionClient {
    client: Client,
}

impl RevisionClient {
    /// Revision writes through `client`.
    pub fn new(client: Client) -> Self {
        RevisionClient { client }
    }

    fn api(&self, namespace: &str) -> Api<ControllerRevision> {
        Api::namespaced(self.client.clone(), namespace)
    }

    /// Creates `revision` for `parent`. On a name taken by a different payload, bumps
    /// `collision_count` and retries under the new hash; a revision already there
    /// with the same payload is returned as is.
    pub async fn create<O: Resource<DynamicType = ()>>(
        &self,
        parent: &O,
        revision: &ControllerRevision,
        collision_count: &mut i32,
    ) -> Result<ControllerRevision, ControllerError> {
        let namespace = parent.meta().namespace.clone().unwrap_or_default();
        let parent_name = parent.meta().name.clone().unwrap_or_default();
        let data = revision_data(revision);
        let api = self.api(&namespace);
        // A bounded number of probes: each collision needs a distinct stored payload.
        for _ in 0..1000 {
            let mut clone = revision.clone();
            clone.metadata.name = Some(revision_name(
                &parent_name,
                &hash_revision(&data, Some(*collision_count)),
            ));
            clone.metadata.namespace = Some(namespace.clone());
            match api.create(&PostParams::default(), &clone).await {
                Ok(created) => return Ok(created),
                Err(e) => {
                    let e = ControllerError::from(e);
                    if !e.is_already_exists() {
                        return Err(e);
                    }
                    let name = clone.metadata.name.clone().unwrap_or_default();
                    let existing = api.get(&name).await.map_err(ControllerError::from)?;
                    if revision_data(&existing) == data {
                        return Ok(existing);
                    }
                    *collision_count = collision_count.saturating_add(1);
                }
            }
        }
        Err(ControllerError::Other(format!(
            "too many hash collisions creating a revision of {parent_name}"
        )))
    }

    /// Sets the revision number of `revision` to `new_revision` (retrying on
    /// conflicts with a fresh read).
    pub async fn update_revision_number(
        &self,
        revision: &ControllerRevision,
        new_revision: i64,
    ) -> Result<ControllerRevision, ControllerError> {
        let namespace = revision.metadata.namespace.clone().unwrap_or_default();
        let name = revision.metadata.name.clone().unwrap_or_default();
        let api = self.api(&namespace);
        let mut current = revision.clone();
        for _ in 0..5 {
            if current.revision == new_revision {
                return Ok(current);
            }
            current.revision = new_revision;
            match api.replace(&name, &PostParams::default(), &current).await {
                Ok(updated) => return Ok(updated),
                Err(e) => {
                    let e = ControllerError::from(e);
                    if !e.is_conflict() {
                        return Err(e);
                    }
                    current = api.get(&name).await.map_err(ControllerError::from)?;
                }
            }
        }
        Err(ControllerError::Other(format!(
            "aborting update of revision {name} after repeated conflicts"
        )))
    }

    /// Deletes a revision.
    pub async fn delete(&self, revision: &ControllerRevision) -> Result<(), ControllerError> {
        let namespace = revision.metadata.namespace.clone().unwrap_or_default();
        let name = revision.metadata.name.clone().unwrap_or_default();
        match self
            .api(&namespace)
            .delete(&name, &DeleteParams::default())
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => Err(ControllerError::from(e)),
        }
    }

    /// Applies a strategic merge patch to a revision (adoption and release).
    pub async fn patch(
        &self,
        revision: &ControllerRevision,
        patch: &Value,
    ) -> Result<ControllerRevision, ControllerError> {
        let namespace = revision.metadata.namespace.clone().unwrap_or_default();
        let name = revision.metadata.name.clone().unwrap_or_default();
        self.api(&namespace)
            .patch(&name, &PatchParams::default(), &Patch::Strategic(patch))
            .await
            .map_err(ControllerError::from)
    }

    /// Replaces a revision (used to add a missing hash label).
    pub async fn replace(
        &self,
        revision: &ControllerRevision,
    ) -> Result<ControllerRevision, ControllerError> {
        let namespace = revision.metadata.namespace.clone().unwrap_or_default();
        let name = revision.metadata.name.clone().unwrap_or_default();
        self.api(&namespace)
            .replace(&name, &PostParams::default(), revision)
            .await
            .map_err(ControllerError::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::StatefulSet;
    use k8s_openapi::api::core::v1::{Container, PodSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn template(image: &str) -> PodTemplateSpec {
        PodTemplateSpec {
            metadata: Some(ObjectMeta {
                labels: Some([("app".to_string(), "web".to_string())].into()),
                ..Default::default()
            }),
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "c".into(),
                    image: Some(image.into()),
                    ..Default::default()
                }],
                ..Default::default()
            }),
        }
    }

    #[test]
    fn patch_is_go_json() {
        assert_eq!(
            String::from_utf8(template_patch(&template("nginx"))).unwrap(),
            r#"{"spec":{"template":{"$patch":"replace","metadata":{"creationTimestamp":null,"labels":{"app":"web"}},"spec":{"containers":[{"image":"nginx","name":"c","resources":{}}]}}}}"#
        );
        assert_eq!(
            go_json(&json!({"b": "<&>", "a": [1, null]})),
            br#"{"a":[1,null],"b":"\u003c\u0026\u003e"}"#
        );
    }

    #[test]
    fn fnv1_vectors() {
        // Published FNV-1 32-bit test vectors.
        assert_eq!(fnv32(b"", FNV32_OFFSET), 0x811c_9dc5);
        assert_eq!(fnv32(b"a", FNV32_OFFSET), 0x050c_5d7e);
        assert_eq!(fnv32(b"foobar", FNV32_OFFSET), 0x31f0_b262);
    }

    #[test]
    fn hashes_and_names() {
        let data = template_patch(&template("nginx"));
        let h = hash_revision(&data, None);
        assert_eq!(h, hash_revision(&data, None));
        assert_ne!(h, hash_revision(&data, Some(0)), "a probe changes the hash");
        assert_ne!(h, hash_revision(&template_patch(&template("httpd")), None));
        assert!(h.chars().all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)));
        // The hash of the empty payload: FNV-1 offset basis 2166136261.
        assert_eq!(hash_revision(b"", None), safe_encode_string("2166136261"));
        assert_eq!(revision_name("web", "abc"), "web-abc");
        assert_eq!(revision_name(&"x".repeat(300), "h").len(), 225);
    }

    #[test]
    fn new_revision_and_round_trip() {
        let set = StatefulSet {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("default".into()),
                uid: Some("u1".into()),
                annotations: Some([("a".to_string(), "b".to_string())].into()),
                ..Default::default()
            },
            ..Default::default()
        };
        let t = template("nginx");
        let rev = new_revision(
            &set,
            t.metadata.as_ref().unwrap().labels.as_ref(),
            template_patch_value(&t),
            3,
            Some(0),
        );
        let hash = hash_revision(&template_patch(&t), Some(0));
        assert_eq!(
            rev.metadata.name.as_deref(),
            Some(format!("web-{hash}").as_str())
        );
        let labels = rev.metadata.labels.as_ref().unwrap();
        assert_eq!(labels["app"], "web");
        assert_eq!(labels[CONTROLLER_REVISION_HASH_LABEL], hash);
        assert_eq!(rev.metadata.annotations.as_ref().unwrap()["a"], "b");
        let owner = &rev.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str()),
            ("StatefulSet", "u1")
        );
        assert_eq!(rev.revision, 3);
        let back = template_from_revision(&rev).unwrap();
        assert_eq!(
            back.spec.as_ref().unwrap().containers[0].image.as_deref(),
            Some("nginx")
        );
        assert_eq!(
            template_patch(&back),
            template_patch(&t),
            "round trip is stable"
        );
    }

    #[test]
    fn sorting_and_matching() {
        let rev = |name: &str, n: i64, t: i64, image: &str| {
            Arc::new(ControllerRevision {
                metadata: ObjectMeta {
                    name: Some(name.into()),
                    creation_timestamp: Some(Time(jiff::Timestamp::from_second(t).unwrap())),
                    ..Default::default()
                },
                data: Some(RawExtension(template_patch_value(&template(image)))),
                revision: n,
            })
        };
        let mut revs = vec![
            rev("c", 2, 5, "a"),
            rev("b", 1, 9, "b"),
            rev("a", 1, 9, "a"),
            rev("d", 1, 3, "c"),
        ];
        sort_revisions(&mut revs);
        let names: Vec<_> = revs
            .iter()
            .map(|r| r.metadata.name.clone().unwrap())
            .collect();
        assert_eq!(names, ["d", "a", "b", "c"]);
        assert_eq!(next_revision(&revs), 3);
        assert_eq!(next_revision(&[]), 1);
        assert_eq!(max_revision(&revs), 2);
        let eq = find_equal_revisions(&revs, &rev("x", 7, 0, "a"));
        let names: Vec<_> = eq
            .iter()
            .map(|r| r.metadata.name.clone().unwrap())
            .collect();
        assert_eq!(names, ["a", "c"]);
    }
}
