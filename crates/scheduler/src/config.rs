//! The scheduler's configuration file, a KubeSchedulerConfiguration
//! (`kubescheduler.config.k8s.io/v1`): profiles, each with a schedulerName and the
//! filter/score plugins enabled or disabled (per extension point or `multiPoint`) and
//! their weights, plus percentageOfNodesToScore and the PodTopologySpread plugin's
//! default constraints (`pluginConfig`).

use crate::plugins::{FILTERS, SCORES};
use serde::Deserialize;

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// What went wrong.
        source: std::io::Error,
    },
    /// The YAML is not a KubeSchedulerConfiguration.
    #[error("parsing the scheduler configuration: {0}")]
    Parse(String),
    /// A value is out of range or names an unknown plugin.
    #[error("invalid scheduler configuration: {0}")]
    Invalid(String),
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct File {
    api_version: Option<String>,
    kind: Option<String>,
    percentage_of_nodes_to_score: Option<i32>,
    #[serde(default)]
    profiles: Vec<FileProfile>,
    leader_election: Option<FileLeaderElection>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct FileLeaderElection {
    leader_elect: Option<bool>,
    resource_name: Option<String>,
    resource_namespace: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct FileProfile {
    scheduler_name: Option<String>,
    percentage_of_nodes_to_score: Option<i32>,
    #[serde(default)]
    plugins: FilePlugins,
    #[serde(default)]
    plugin_config: Vec<FilePluginConfig>,
}

#[derive(Deserialize)]
struct FilePluginConfig {
    name: String,
    #[serde(default)]
    args: Option<FileSpreadArgs>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct FileSpreadArgs {
    #[serde(default)]
    default_constraints: Vec<FileDefaultConstraint>,
    defaulting_type: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FileDefaultConstraint {
    max_skew: i64,
    topology_key: String,
    when_unsatisfiable: String,
}

/// A topology spread constraint applied to pods that declare none, counting the pods
/// of the same Services and controllers (PodTopologySpread's default constraints).
#[derive(Clone, Debug, PartialEq)]
pub struct DefaultSpread {
    /// maxSkew.
    pub max_skew: i64,
    /// topologyKey.
    pub topology_key: String,
    /// whenUnsatisfiable is DoNotSchedule.
    pub hard: bool,
}

/// Upstream's built-in default constraints (`defaultingType: System`).
pub fn system_default_spread() -> Vec<DefaultSpread> {
    vec![
        DefaultSpread {
            max_skew: 3,
            topology_key: "kubernetes.io/hostname".into(),
            hard: false,
        },
        DefaultSpread {
            max_skew: 5,
            topology_key: "topology.kubernetes.io/zone".into(),
            hard: false,
        },
    ]
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct FilePlugins {
    #[serde(default)]
    multi_point: PluginSet,
    #[serde(default)]
    filter: PluginSet,
    #[serde(default)]
    score: PluginSet,
}

#[derive(Deserialize, Default)]
struct PluginSet {
    #[serde(default)]
    enabled: Vec<PluginRef>,
    #[serde(default)]
    disabled: Vec<PluginRef>,
}

#[derive(Deserialize)]
struct PluginRef {
    name: String,
    #[serde(default)]
    weight: Option<i64>,
}

/// One scheduling profile.
#[derive(Clone, Debug, PartialEq)]
pub struct Profile {
    /// Pods whose spec.schedulerName is this are scheduled with this profile.
    pub scheduler_name: String,
    /// Filter plugins in the order they run.
    pub filters: Vec<String>,
    /// The same, resolved.
    pub filter_kinds: Vec<crate::plugins::Filter>,
    /// Score plugins and their weights.
    pub scores: Vec<(String, i64)>,
    /// Percentage of feasible nodes to find before scoring (None: adaptive).
    pub percentage_of_nodes_to_score: Option<i32>,
    /// Spread constraints for pods without their own.
    pub default_spread: Vec<DefaultSpread>,
    /// Whether `default_spread` are the System ones (nodes lacking a topology label
    /// are then still scored on the others).
    pub spread_system_defaulted: bool,
}

impl Profile {
    /// The default profile: every default plugin with its default weight.
    pub fn default_named(name: &str) -> Profile {
        Profile {
            scheduler_name: name.to_string(),
            filters: FILTERS.iter().map(|s| s.to_string()).collect(),
            filter_kinds: FILTERS
                .iter()
                .filter_map(|f| crate::plugins::Filter::from_name(f))
                .collect(),
            scores: SCORES.iter().map(|(n, w)| (n.to_string(), *w)).collect(),
            percentage_of_nodes_to_score: None,
            default_spread: system_default_spread(),
            spread_system_defaulted: true,
        }
    }

    /// Whether a plugin runs at some extension point.
    pub fn enabled(&self, plugin: &str) -> bool {
        self.filters.iter().any(|f| f == plugin) || self.scores.iter().any(|(s, _)| s == plugin)
    }
}

/// The whole configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct SchedulerConfiguration {
    /// Profiles; at least one.
    pub profiles: Vec<Profile>,
    /// Global percentage of nodes to score (None: adaptive, as upstream's 0).
    pub percentage_of_nodes_to_score: Option<i32>,
    /// leaderElection.leaderElect from the file, if given.
    pub leader_elect: Option<bool>,
    /// The lease's name (kube-scheduler by default).
    pub lease_name: String,
    /// The lease's namespace (kube-system by default).
    pub lease_namespace: String,
}

impl Default for SchedulerConfiguration {
    fn default() -> Self {
        SchedulerConfiguration {
            profiles: vec![Profile::default_named("default-scheduler")],
            percentage_of_nodes_to_score: None,
            leader_elect: None,
            lease_name: "kube-scheduler".into(),
            lease_namespace: "kube-system".into(),
        }
    }
}

fn apply_set(
    current: &mut Vec<(String, i64)>,
    set: &PluginSet,
    known: &[(&str, i64)],
) -> Result<(), ConfigError> {
    for d in &set.disabled {
        if d.name == "*" {
            current.clear();
        } else {
            current.retain(|(n, _)| n != &d.name);
        }
    }
    for e in &set.enabled {
        let Some((_, default_weight)) = known.iter().find(|(n, _)| *n == e.name) else {
            continue;
        };
        let weight = e.weight.unwrap_or(*default_weight);
        if !(0..=100).contains(&weight) {
            return Err(ConfigError::Invalid(format!(
                "plugin {} weight {weight} is outside 0..100",
                e.name
            )));
        }
        match current.iter_mut().find(|(n, _)| n == &e.name) {
            Some(slot) => slot.1 = weight,
            None => current.push((e.name.clone(), weight)),
        }
    }
    Ok(())
}

fn known_plugin(name: &str) -> bool {
    FILTERS.contains(&name)
        || SCORES.iter().any(|(n, _)| *n == name)
        || matches!(
            name,
            "PrioritySort"
                | "DefaultBinder"
                | "DefaultPreemption"
                | "ImageLocality"
                | "VolumeBinding"
                | "VolumeRestrictions"
                | "VolumeZone"
                | "NodeVolumeLimits"
                | "EBSLimits"
                | "GCEPDLimits"
                | "AzureDiskLimits"
                | "SchedulingGates"
                | "DynamicResources"
                | "*"
        )
}

/// The default spread constraints a profile's `pluginConfig` asks for, checked as
/// upstream's validation does.
fn spread_defaults(
    configs: &[FilePluginConfig],
) -> Result<(Vec<DefaultSpread>, bool), ConfigError> {
    let Some(args) = configs
        .iter()
        .find(|c| c.name == "PodTopologySpread")
        .and_then(|c| c.args.as_ref())
    else {
        return Ok((system_default_spread(), true));
    };
    match args.defaulting_type.as_deref().unwrap_or("System") {
        "System" => {
            if !args.default_constraints.is_empty() {
                return Err(ConfigError::Invalid(
                    "defaultConstraints: Invalid value: when .defaultingType is \"System\", .defaultConstraints must be empty".into(),
                ));
            }
            Ok((system_default_spread(), true))
        }
        "List" => {
            let mut out: Vec<DefaultSpread> = Vec::new();
            for c in &args.default_constraints {
                if c.max_skew <= 0 {
                    return Err(ConfigError::Invalid(format!(
                        "defaultConstraints.maxSkew: Invalid value: {}: must be greater than zero",
                        c.max_skew
                    )));
                }
                if c.topology_key.is_empty() {
                    return Err(ConfigError::Invalid(
                        "defaultConstraints.topologyKey: Required value: can not be empty".into(),
                    ));
                }
                let hard = match c.when_unsatisfiable.as_str() {
                    "DoNotSchedule" => true,
                    "ScheduleAnyway" => false,
                    other => {
                        return Err(ConfigError::Invalid(format!(
                            "defaultConstraints.whenUnsatisfiable: Unsupported value: {other:?}"
                        )))
                    }
                };
                if out
                    .iter()
                    .any(|o| o.topology_key == c.topology_key && o.hard == hard)
                {
                    return Err(ConfigError::Invalid(format!(
                        "defaultConstraints: Duplicate value: {{{:?}, {:?}}}",
                        c.topology_key, c.when_unsatisfiable
                    )));
                }
                out.push(DefaultSpread {
                    max_skew: c.max_skew,
                    topology_key: c.topology_key.clone(),
                    hard,
                });
            }
            Ok((out, false))
        }
        other => Err(ConfigError::Invalid(format!(
            "defaultingType: Unsupported value: {other:?}: supported values: \"List\", \"System\""
        ))),
    }
}

impl SchedulerConfiguration {
    /// Parses a KubeSchedulerConfiguration document.
    pub fn parse(yaml: &str) -> Result<SchedulerConfiguration, ConfigError> {
        let file: File =
            serde_saphyr::from_str(yaml).map_err(|e| ConfigError::Parse(e.to_string()))?;
        if let Some(kind) = &file.kind {
            if kind != "KubeSchedulerConfiguration" {
                return Err(ConfigError::Parse(format!("unexpected kind {kind:?}")));
            }
        }
        if let Some(v) = &file.api_version {
            if !v.starts_with("kubescheduler.config.k8s.io/") {
                return Err(ConfigError::Parse(format!("unexpected apiVersion {v:?}")));
            }
        }
        let check_pct = |p: Option<i32>| match p {
            Some(p) if !(0..=100).contains(&p) => Err(ConfigError::Invalid(format!(
                "percentageOfNodesToScore {p} is outside 0..100"
            ))),
            _ => Ok(()),
        };
        check_pct(file.percentage_of_nodes_to_score)?;
        let mut config = SchedulerConfiguration {
            percentage_of_nodes_to_score: file.percentage_of_nodes_to_score.filter(|p| *p > 0),
            ..Default::default()
        };
        if let Some(le) = &file.leader_election {
            config.leader_elect = le.leader_elect;
            if let Some(n) = &le.resource_name {
                config.lease_name = n.clone();
            }
            if let Some(n) = &le.resource_namespace {
                config.lease_namespace = n.clone();
            }
        }
        if !file.profiles.is_empty() {
            config.profiles.clear();
        }
        for fp in &file.profiles {
            check_pct(fp.percentage_of_nodes_to_score)?;
            let name = fp
                .scheduler_name
                .clone()
                .unwrap_or_else(|| "default-scheduler".into());
            if config.profiles.iter().any(|p| p.scheduler_name == name) {
                return Err(ConfigError::Invalid(format!("duplicate profile {name:?}")));
            }
            let sets = [
                &fp.plugins.multi_point,
                &fp.plugins.filter,
                &fp.plugins.score,
            ];
            for set in sets {
                for r in set.enabled.iter().chain(&set.disabled) {
                    if !known_plugin(&r.name) {
                        return Err(ConfigError::Invalid(format!("unknown plugin {:?}", r.name)));
                    }
                }
            }
            let mut filters: Vec<(String, i64)> =
                FILTERS.iter().map(|f| (f.to_string(), 0)).collect();
            let mut scores: Vec<(String, i64)> =
                SCORES.iter().map(|(n, w)| (n.to_string(), *w)).collect();
            let filter_known: Vec<(&str, i64)> = FILTERS.iter().map(|f| (*f, 0)).collect();
            apply_set(&mut filters, &fp.plugins.multi_point, &filter_known)?;
            apply_set(&mut scores, &fp.plugins.multi_point, SCORES)?;
            apply_set(&mut filters, &fp.plugins.filter, &filter_known)?;
            apply_set(&mut scores, &fp.plugins.score, SCORES)?;
            // Filters always run in upstream's order.
            let filters: Vec<String> = FILTERS
                .iter()
                .filter(|f| filters.iter().any(|(n, _)| n == *f))
                .map(|f| f.to_string())
                .collect();
            let filter_kinds = filters
                .iter()
                .filter_map(|f| crate::plugins::Filter::from_name(f))
                .collect();
            let (default_spread, spread_system_defaulted) = spread_defaults(&fp.plugin_config)?;
            config.profiles.push(Profile {
                scheduler_name: name,
                filters,
                filter_kinds,
                scores,
                percentage_of_nodes_to_score: fp.percentage_of_nodes_to_score.filter(|p| *p > 0),
                default_spread,
                spread_system_defaulted,
            });
        }
        Ok(config)
    }

    /// Reads and parses a configuration file.
    pub fn load(path: &std::path::Path) -> Result<SchedulerConfiguration, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        SchedulerConfiguration::parse(&text)
    }

    /// The profile for a schedulerName.
    pub fn profile(&self, scheduler_name: &str) -> Option<&Profile> {
        self.profiles
            .iter()
            .find(|p| p.scheduler_name == scheduler_name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_plugins_and_weights() {
        let c = SchedulerConfiguration::parse(
            r#"
apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
percentageOfNodesToScore: 30
profiles:
- schedulerName: default-scheduler
- schedulerName: bin-packer
  plugins:
    score:
      disabled:
      - name: "*"
      enabled:
      - name: NodeAffinity
        weight: 7
    filter:
      disabled:
      - name: TaintToleration
"#,
        )
        .unwrap();
        assert_eq!(c.percentage_of_nodes_to_score, Some(30));
        assert_eq!(c.profiles.len(), 2);
        assert_eq!(c.profiles[0], Profile::default_named("default-scheduler"));
        let p = c.profile("bin-packer").unwrap();
        assert_eq!(p.scores, vec![("NodeAffinity".to_string(), 7)]);
        assert!(!p.filters.contains(&"TaintToleration".to_string()));
        assert!(p.filters.contains(&"NodeResourcesFit".to_string()));
    }

    #[test]
    fn spread_default_constraints() {
        let c = SchedulerConfiguration::parse(
            r#"
profiles:
- schedulerName: listed
  pluginConfig:
  - name: PodTopologySpread
    args:
      defaultingType: List
      defaultConstraints:
      - maxSkew: 1
        topologyKey: topology.kubernetes.io/zone
        whenUnsatisfiable: DoNotSchedule
- schedulerName: none
  pluginConfig:
  - name: PodTopologySpread
    args:
      defaultingType: List
"#,
        )
        .unwrap();
        let listed = c.profile("listed").unwrap();
        assert!(!listed.spread_system_defaulted);
        assert_eq!(
            listed.default_spread,
            vec![DefaultSpread {
                max_skew: 1,
                topology_key: "topology.kubernetes.io/zone".into(),
                hard: true
            }]
        );
        assert!(c.profile("none").unwrap().default_spread.is_empty());
        let d = Profile::default_named("x");
        assert!(d.spread_system_defaulted);
        assert_eq!(d.default_spread, system_default_spread());
        let bad = SchedulerConfiguration::parse(
            "profiles:\n- pluginConfig:\n  - name: PodTopologySpread\n    args:\n      defaultConstraints:\n      - {maxSkew: 1, topologyKey: k, whenUnsatisfiable: DoNotSchedule}\n",
        );
        assert!(bad.unwrap_err().to_string().contains("must be empty"));
    }

    #[test]
    fn bad_configurations_are_refused() {
        assert!(SchedulerConfiguration::parse("kind: Pod\n").is_err());
        assert!(SchedulerConfiguration::parse(
            "profiles:\n- plugins:\n    score:\n      enabled:\n      - name: Nope\n"
        )
        .is_err());
        assert!(SchedulerConfiguration::parse("percentageOfNodesToScore: 101\n").is_err());
    }
}
