//! API discovery as the garbage collector and the namespace controller need it:
//! every served group/version's resources (with scope and verbs), the preferred
//! version of each group/resource (client-go's `ServerPreferredResources`), tolerance
//! of group/versions that fail to answer (reported the way client-go's
//! `ErrGroupDiscoveryFailed` is), and a [`RestMapper`] from apiVersion/kind to the
//! resource serving it.

use std::collections::{BTreeMap, HashMap, HashSet};

use controllers::ControllerError;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::APIResourceList;
use kube::discovery::ApiResource;
use kube::Client;

/// One served resource (never a subresource) of one group/version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiscoveredResource {
    /// Group, version, kind and plural name.
    pub resource: ApiResource,
    /// Whether objects live in namespaces.
    pub namespaced: bool,
    /// The verbs the resource supports.
    pub verbs: Vec<String>,
}

impl DiscoveredResource {
    /// Whether every one of `verbs` is supported.
    pub fn supports_all(&self, verbs: &[&str]) -> bool {
        verbs
            .iter()
            .all(|v| self.verbs.iter().any(|have| have == v))
    }

    /// The group/version/resource key.
    pub fn gvr(&self) -> Gvr {
        Gvr {
            group: self.resource.group.clone(),
            version: self.resource.version.clone(),
            resource: self.resource.plural.clone(),
        }
    }
}

/// A group/version/resource triple.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Gvr {
    /// API group (empty for the core group).
    pub group: String,
    /// Version.
    pub version: String,
    /// Plural resource name.
    pub resource: String,
}

impl std::fmt::Display for Gvr {
    /// Formatted as Go's `%+v` of a GroupVersionResource.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{{Group:{} Version:{} Resource:{}}}",
            self.group, self.version, self.resource
        )
    }
}

/// The outcome of one discovery pass.
#[derive(Clone, Debug, Default)]
pub struct Discovered {
    /// Every resource of every group/version that answered.
    pub all: Vec<DiscoveredResource>,
    /// For each group and resource name, the resource at the group's preferred
    /// version (or, if that version does not serve it, at the first listed version
    /// that does).
    pub preferred: Vec<DiscoveredResource>,
    /// Group/versions (`group/version`, or `v1` for core) whose resources could not
    /// be listed, with the error.
    pub failed: BTreeMap<String, String>,
}

impl Discovered {
    /// client-go's message for partially failed discovery
    /// (`unable to retrieve the complete list of server APIs: ...`), if any
    /// group/version failed.
    pub fn failure_message(&self) -> Option<String> {
        if self.failed.is_empty() {
            return None;
        }
        let parts: Vec<String> = self
            .failed
            .iter()
            .map(|(gv, err)| format!("{gv}: {err}"))
            .collect();
        Some(format!(
            "unable to retrieve the complete list of server APIs: {}",
            parts.join(", ")
        ))
    }

    /// The preferred resources supporting all of `verbs`.
    pub fn preferred_supporting(&self, verbs: &[&str]) -> Vec<DiscoveredResource> {
        self.preferred
            .iter()
            .filter(|r| r.supports_all(verbs))
            .cloned()
            .collect()
    }
}

/// One group with its versions in the server's order and its preferred version.
struct GroupVersions {
    name: String,
    versions: Vec<String>,
    preferred: Option<String>,
}

/// Converts a resource list of `group`/`version` into discovered resources, leaving
/// out subresources.
fn resources_of(group: &str, version: &str, list: &APIResourceList) -> Vec<DiscoveredResource> {
    let api_version = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    list.resources
        .iter()
        .filter(|r| !r.name.contains('/'))
        .map(|r| DiscoveredResource {
            resource: ApiResource {
                group: r.group.clone().unwrap_or_else(|| group.to_string()),
                version: r.version.clone().unwrap_or_else(|| version.to_string()),
                api_version: api_version.clone(),
                kind: r.kind.clone(),
                plural: r.name.clone(),
            },
            namespaced: r.namespaced,
            verbs: r.verbs.clone(),
        })
        .collect()
}

/// Picks the preferred version of each group/resource, as client-go's
/// `ServerPreferredResources` does: versions are visited in the server's order and a
/// resource seen at an earlier version is only replaced by the preferred version.
fn pick_preferred(
    groups: &[GroupVersions],
    by_gv: &HashMap<(String, String), Vec<DiscoveredResource>>,
) -> Vec<DiscoveredResource> {
    let mut order: Vec<(String, String)> = Vec::new();
    let mut chosen: HashMap<(String, String), DiscoveredResource> = HashMap::new();
    for g in groups {
        for v in &g.versions {
            let Some(resources) = by_gv.get(&(g.name.clone(), v.clone())) else {
                continue;
            };
            for r in resources {
                let key = (g.name.clone(), r.resource.plural.clone());
                if chosen.contains_key(&key) && g.preferred.as_deref() != Some(v.as_str()) {
                    continue;
                }
                if !chosen.contains_key(&key) {
                    order.push(key.clone());
                }
                chosen.insert(key, r.clone());
            }
        }
    }
    order
        .into_iter()
        .filter_map(|k| chosen.remove(&k))
        .collect()
}

/// Asks the apiserver for every group/version and its resources. Fails only if the
/// group lists themselves cannot be read; group/versions that fail are recorded in
/// [`Discovered::failed`].
pub async fn discover(client: &Client) -> Result<Discovered, ControllerError> {
    let core = client.list_core_api_versions().await?;
    let api_groups = client.list_api_groups().await?;
    let mut groups = vec![GroupVersions {
        name: String::new(),
        preferred: core.versions.first().cloned(),
        versions: core.versions.clone(),
    }];
    for g in api_groups.groups {
        groups.push(GroupVersions {
            preferred: g.preferred_version.map(|v| v.version),
            versions: g.versions.into_iter().map(|v| v.version).collect(),
            name: g.name,
        });
    }
    let mut out = Discovered::default();
    let mut by_gv = HashMap::new();
    for g in &groups {
        for v in &g.versions {
            let (gv, listed) = if g.name.is_empty() {
                (v.clone(), client.list_core_api_resources(v).await)
            } else {
                let gv = format!("{}/{}", g.name, v);
                let listed = client.list_api_group_resources(&gv).await;
                (gv, listed)
            };
            match listed {
                Ok(list) => {
                    let resources = resources_of(&g.name, v, &list);
                    out.all.extend(resources.iter().cloned());
                    by_gv.insert((g.name.clone(), v.clone()), resources);
                }
                Err(err) => {
                    out.failed
                        .insert(gv, ControllerError::from(err).to_string());
                }
            }
        }
    }
    out.preferred = pick_preferred(&groups, &by_gv);
    Ok(out)
}

/// Maps an apiVersion and kind to the resource serving it and its scope, over every
/// discovered group/version.
#[derive(Clone, Debug, Default)]
pub struct RestMapper {
    by_gvk: HashMap<(String, String), DiscoveredResource>,
    groups: HashSet<String>,
}

impl RestMapper {
    /// A mapper over `resources`.
    pub fn new(resources: &[DiscoveredResource]) -> Self {
        let mut by_gvk = HashMap::new();
        let mut groups = HashSet::new();
        for r in resources {
            groups.insert(r.resource.group.clone());
            by_gvk
                .entry((r.resource.api_version.clone(), r.resource.kind.clone()))
                .or_insert_with(|| r.clone());
        }
        RestMapper { by_gvk, groups }
    }

    /// The resource serving `kind` at `api_version` (`v1`, `apps/v1`).
    pub fn lookup(&self, api_version: &str, kind: &str) -> Option<&DiscoveredResource> {
        self.by_gvk
            .get(&(api_version.to_string(), kind.to_string()))
    }

    /// Whether nothing has been discovered yet.
    pub fn is_empty(&self) -> bool {
        self.by_gvk.is_empty()
    }

    /// How many kinds are known.
    pub fn len(&self) -> usize {
        self.by_gvk.len()
    }

    /// Whether `group` was discovered.
    pub fn has_group(&self, group: &str) -> bool {
        self.groups.contains(group)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::APIResource;

    fn list(gv: &str, names: &[(&str, &str, bool, &[&str])]) -> APIResourceList {
        APIResourceList {
            group_version: gv.into(),
            resources: names
                .iter()
                .map(|(name, kind, namespaced, verbs)| APIResource {
                    name: name.to_string(),
                    kind: kind.to_string(),
                    namespaced: *namespaced,
                    singular_name: String::new(),
                    verbs: verbs.iter().map(|v| v.to_string()).collect(),
                    ..Default::default()
                })
                .collect(),
        }
    }

    #[test]
    fn preferred_versions_win_and_others_fill_in() {
        let all = &["list", "watch", "delete"];
        let v2 = list(
            "autoscaling/v2",
            &[
                (
                    "horizontalpodautoscalers",
                    "HorizontalPodAutoscaler",
                    true,
                    all,
                ),
                (
                    "horizontalpodautoscalers/status",
                    "HorizontalPodAutoscaler",
                    true,
                    &["get"],
                ),
            ],
        );
        let v1 = list(
            "autoscaling/v1",
            &[
                (
                    "horizontalpodautoscalers",
                    "HorizontalPodAutoscaler",
                    true,
                    all,
                ),
                ("legacythings", "LegacyThing", false, &["get"]),
            ],
        );
        let groups = vec![GroupVersions {
            name: "autoscaling".into(),
            versions: vec!["v2".into(), "v1".into()],
            preferred: Some("v2".into()),
        }];
        let mut by_gv = HashMap::new();
        by_gv.insert(
            ("autoscaling".to_string(), "v2".to_string()),
            resources_of("autoscaling", "v2", &v2),
        );
        by_gv.insert(
            ("autoscaling".to_string(), "v1".to_string()),
            resources_of("autoscaling", "v1", &v1),
        );
        let preferred = pick_preferred(&groups, &by_gv);
        let names: Vec<String> = preferred
            .iter()
            .map(|r| format!("{}/{}", r.resource.api_version, r.resource.plural))
            .collect();
        assert_eq!(
            names,
            [
                "autoscaling/v2/horizontalpodautoscalers",
                "autoscaling/v1/legacythings"
            ]
        );
        assert!(preferred[0].supports_all(&["delete", "list", "watch"]));
        assert!(!preferred[1].supports_all(&["delete"]));
        assert!(!preferred[1].namespaced);

        let mut all_resources = by_gv[&("autoscaling".to_string(), "v1".to_string())].clone();
        all_resources.extend(by_gv[&("autoscaling".to_string(), "v2".to_string())].clone());
        let mapper = RestMapper::new(&all_resources);
        let hpa = mapper
            .lookup("autoscaling/v1", "HorizontalPodAutoscaler")
            .unwrap();
        assert_eq!(hpa.resource.version, "v1");
        assert!(mapper
            .lookup("autoscaling/v3", "HorizontalPodAutoscaler")
            .is_none());
        assert!(mapper.has_group("autoscaling"));
    }

    #[test]
    fn failure_message_like_client_go() {
        let mut d = Discovered::default();
        assert_eq!(d.failure_message(), None);
        d.failed.insert(
            "metrics.k8s.io/v1beta1".into(),
            "the server is currently unable to handle the request".into(),
        );
        assert_eq!(
            d.failure_message().unwrap(),
            "unable to retrieve the complete list of server APIs: metrics.k8s.io/v1beta1: the server is currently unable to handle the request"
        );
        let gvr = Gvr {
            group: "apps".into(),
            version: "v1".into(),
            resource: "deployments".into(),
        };
        assert_eq!(
            gvr.to_string(),
            "{Group:apps Version:v1 Resource:deployments}"
        );
    }
}
