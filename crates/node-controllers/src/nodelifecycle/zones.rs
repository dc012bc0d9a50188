//! Zones and disruption: the zone key of a node (region and zone labels), the state of
//! a zone from the Ready conditions of its nodes, and [`Zones`], the per-zone states
//! and taint queues with upstream's handling of disruption (slower evictions in a
//! partially disrupted zone, none when every zone is fully disrupted).

use std::collections::HashMap;
use std::fmt;
use std::time::Instant;

use k8s_openapi::api::core::v1::Node;

use crate::ratelimit::RateLimitedTimedQueue;

/// The zone label.
pub const LABEL_TOPOLOGY_ZONE: &str = "topology.kubernetes.io/zone";
/// The region label.
pub const LABEL_TOPOLOGY_REGION: &str = "topology.kubernetes.io/region";
/// The deprecated zone label, preferred when present as upstream does.
pub const LABEL_FAILURE_DOMAIN_BETA_ZONE: &str = "failure-domain.beta.kubernetes.io/zone";
/// The deprecated region label.
pub const LABEL_FAILURE_DOMAIN_BETA_REGION: &str = "failure-domain.beta.kubernetes.io/region";
/// Nodes with this label do not count in zone disruption.
pub const LABEL_EXCLUDE_DISRUPTION: &str = "node.kubernetes.io/exclude-disruption";

/// The zone key of a node: `region:\0:zone`, or empty without either label.
pub fn zone_key(node: &Node) -> String {
    let Some(labels) = node.metadata.labels.as_ref() else {
        return String::new();
    };
    let zone = labels
        .get(LABEL_FAILURE_DOMAIN_BETA_ZONE)
        .or_else(|| labels.get(LABEL_TOPOLOGY_ZONE))
        .map(String::as_str)
        .unwrap_or("");
    let region = labels
        .get(LABEL_FAILURE_DOMAIN_BETA_REGION)
        .or_else(|| labels.get(LABEL_TOPOLOGY_REGION))
        .map(String::as_str)
        .unwrap_or("");
    if region.is_empty() && zone.is_empty() {
        return String::new();
    }
    format!("{region}:\0:{zone}")
}

/// Whether the node is left out of zone disruption checks.
pub fn excluded_from_disruption(node: &Node) -> bool {
    node.metadata
        .labels
        .as_ref()
        .is_some_and(|l| l.contains_key(LABEL_EXCLUDE_DISRUPTION))
}

/// The state of a zone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ZoneState {
    /// Not evaluated yet.
    Initial,
    /// Healthy enough: evictions at the normal rate.
    Normal,
    /// Many nodes unready: evictions at the secondary rate (or none in small
    /// clusters).
    PartialDisruption,
    /// No node ready.
    FullDisruption,
}

impl ZoneState {
    /// Upstream's name of the state.
    pub fn as_str(self) -> &'static str {
        match self {
            ZoneState::Initial => "Initial",
            ZoneState::Normal => "Normal",
            ZoneState::PartialDisruption => "PartialDisruption",
            ZoneState::FullDisruption => "FullDisruption",
        }
    }
}

impl fmt::Display for ZoneState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The number of unready nodes and the state of a zone, from the Ready condition
/// status of each of its nodes (`None`: no Ready condition, counted unready).
pub fn compute_zone_state(
    ready: &[Option<String>],
    unhealthy_threshold: f64,
) -> (usize, ZoneState) {
    let ready_nodes = ready
        .iter()
        .filter(|s| s.as_deref() == Some("True"))
        .count();
    let not_ready = ready.len() - ready_nodes;
    let state = if ready_nodes == 0 && not_ready > 0 {
        ZoneState::FullDisruption
    } else if not_ready > 2
        && (not_ready as f32) / ((not_ready + ready_nodes) as f32) >= unhealthy_threshold as f32
    {
        ZoneState::PartialDisruption
    } else {
        ZoneState::Normal
    };
    (not_ready, state)
}

/// The eviction settings (flags of the controller manager).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EvictionSettings {
    /// `--node-eviction-rate`.
    pub eviction_qps: f64,
    /// `--secondary-node-eviction-rate`.
    pub secondary_eviction_qps: f64,
    /// `--large-cluster-size-threshold`.
    pub large_cluster_threshold: i32,
    /// `--unhealthy-zone-threshold`.
    pub unhealthy_zone_threshold: f64,
}

impl EvictionSettings {
    /// The rate in a partially disrupted zone of `zone_size` nodes.
    pub fn reduced_qps(&self, zone_size: usize) -> f64 {
        if zone_size as i64 > i64::from(self.large_cluster_threshold) {
            self.secondary_eviction_qps
        } else {
            0.0
        }
    }

    /// The rate of a healthy (or fully disrupted, while other zones are not) zone.
    pub fn healthy_qps(&self, _zone_size: usize) -> f64 {
        self.eviction_qps
    }
}

/// What [`Zones::handle_disruption`] leaves for the caller to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DisruptionAction {
    /// Nothing more.
    None,
    /// Every zone just became fully disrupted: remove the `NoExecute` taints of every
    /// node (evictions have been stopped).
    EnteredFullDisruption,
    /// Some node is ready again after a full disruption: reset every node's probe and
    /// transition timestamps to now.
    ExitedFullDisruption,
}

/// The zone states and per-zone taint queues.
#[derive(Debug)]
pub struct Zones {
    settings: EvictionSettings,
    states: HashMap<String, ZoneState>,
    tainters: HashMap<String, RateLimitedTimedQueue>,
}

impl Zones {
    /// No zones yet.
    pub fn new(settings: EvictionSettings) -> Self {
        Zones {
            settings,
            states: HashMap::new(),
            tainters: HashMap::new(),
        }
    }

    /// The state of `zone`, if known.
    pub fn state(&self, zone: &str) -> Option<ZoneState> {
        self.states.get(zone).copied()
    }

    /// The taint queue of `zone`.
    pub fn tainter(&mut self, zone: &str) -> Option<&mut RateLimitedTimedQueue> {
        self.tainters.get_mut(zone)
    }

    /// The zones that have a taint queue.
    pub fn tainter_zones(&self) -> Vec<String> {
        self.tainters.keys().cloned().collect()
    }

    /// Starts tracking `zone` (state Initial, a fresh queue at the normal rate) unless
    /// it has a state already.
    pub fn add_zone(&mut self, zone: &str, now: Instant) {
        if !self.states.contains_key(zone) {
            self.states.insert(zone.to_string(), ZoneState::Initial);
            self.tainters.insert(
                zone.to_string(),
                RateLimitedTimedQueue::new(self.settings.eviction_qps, now),
            );
        }
    }

    fn set_limiter(&mut self, zone: &str, size: usize, state: ZoneState, now: Instant) {
        let qps = match state {
            ZoneState::Normal => self.settings.eviction_qps,
            ZoneState::PartialDisruption => self.settings.reduced_qps(size),
            ZoneState::FullDisruption => self.settings.healthy_qps(size),
            ZoneState::Initial => return,
        };
        if let Some(t) = self.tainters.get_mut(zone) {
            t.swap_limiter(qps, now);
        }
    }

    /// Recomputes the zone states from the Ready condition statuses of the nodes of
    /// each zone and adjusts the eviction rates, as upstream's handleDisruption.
    pub fn handle_disruption(
        &mut self,
        zone_ready: &HashMap<String, Vec<Option<String>>>,
        now: Instant,
    ) -> DisruptionAction {
        let mut new_states: HashMap<String, ZoneState> = HashMap::new();
        let mut all_are_fully_disrupted = true;
        for (zone, ready) in zone_ready {
            let (_, state) = compute_zone_state(ready, self.settings.unhealthy_zone_threshold);
            if state != ZoneState::FullDisruption {
                all_are_fully_disrupted = false;
            }
            new_states.insert(zone.clone(), state);
            self.states
                .entry(zone.clone())
                .or_insert(ZoneState::Initial);
        }
        // Zones without nodes are forgotten.
        self.states.retain(|zone, _| zone_ready.contains_key(zone));
        let all_were_fully_disrupted = self
            .states
            .values()
            .all(|s| *s == ZoneState::FullDisruption);

        if all_are_fully_disrupted && all_were_fully_disrupted {
            return DisruptionAction::None;
        }
        if all_are_fully_disrupted {
            tracing::info!(
                "controller detected that all Nodes are not-Ready; entering master disruption mode"
            );
            let zones: Vec<String> = self.states.keys().cloned().collect();
            for zone in zones {
                if let Some(t) = self.tainters.get_mut(&zone) {
                    t.swap_limiter(0.0, now);
                }
                self.states.insert(zone, ZoneState::FullDisruption);
            }
            return DisruptionAction::EnteredFullDisruption;
        }
        if all_were_fully_disrupted {
            tracing::info!(
                "controller detected that some Nodes are Ready; exiting master disruption mode"
            );
            let zones: Vec<String> = self.states.keys().cloned().collect();
            for zone in zones {
                let state = new_states.get(&zone).copied().unwrap_or(ZoneState::Normal);
                let size = zone_ready.get(&zone).map_or(0, Vec::len);
                self.set_limiter(&zone, size, state, now);
                self.states.insert(zone, state);
            }
            return DisruptionAction::ExitedFullDisruption;
        }
        let zones: Vec<(String, ZoneState)> =
            self.states.iter().map(|(z, s)| (z.clone(), *s)).collect();
        for (zone, old) in zones {
            let Some(&state) = new_states.get(&zone) else {
                continue;
            };
            if old == state {
                continue;
            }
            tracing::info!(zone = %zone.replace('\0', ""), new_state = %state, "controller detected that zone is now in new state");
            let size = zone_ready.get(&zone).map_or(0, Vec::len);
            self.set_limiter(&zone, size, state, now);
            self.states.insert(zone, state);
        }
        DisruptionAction::None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn statuses(ready: usize, not_ready: usize) -> Vec<Option<String>> {
        let mut v = vec![Some("True".to_string()); ready];
        v.extend(std::iter::repeat_n(Some("Unknown".to_string()), not_ready));
        v
    }

    fn settings() -> EvictionSettings {
        EvictionSettings {
            eviction_qps: 0.1,
            secondary_eviction_qps: 0.01,
            large_cluster_threshold: 50,
            unhealthy_zone_threshold: 0.55,
        }
    }

    #[test]
    fn zone_keys() {
        let mut n = Node::default();
        assert_eq!(zone_key(&n), "");
        n.metadata = ObjectMeta {
            labels: Some(
                [
                    (LABEL_TOPOLOGY_ZONE.to_string(), "a".to_string()),
                    (LABEL_TOPOLOGY_REGION.to_string(), "r".to_string()),
                ]
                .into(),
            ),
            ..Default::default()
        };
        assert_eq!(zone_key(&n), "r:\0:a");
        n.metadata
            .labels
            .as_mut()
            .unwrap()
            .insert(LABEL_FAILURE_DOMAIN_BETA_ZONE.into(), "b".into());
        assert_eq!(zone_key(&n), "r:\0:b");
        assert!(!excluded_from_disruption(&n));
    }

    #[test]
    fn zone_states_as_upstream() {
        let t = 0.55;
        assert_eq!(
            compute_zone_state(&statuses(3, 0), t),
            (0, ZoneState::Normal)
        );
        assert_eq!(
            compute_zone_state(&statuses(0, 1), t),
            (1, ZoneState::FullDisruption)
        );
        assert_eq!(
            compute_zone_state(&statuses(0, 5), t),
            (5, ZoneState::FullDisruption)
        );
        // Two unready nodes are never a partial disruption, whatever the fraction.
        assert_eq!(
            compute_zone_state(&statuses(1, 2), t),
            (2, ZoneState::Normal)
        );
        assert_eq!(
            compute_zone_state(&statuses(2, 3), t),
            (3, ZoneState::PartialDisruption)
        );
        assert_eq!(
            compute_zone_state(&statuses(3, 3), t),
            (3, ZoneState::Normal),
            "0.5 < 0.55"
        );
        assert_eq!(
            compute_zone_state(&[None, None, None, Some("True".into())], t).1,
            ZoneState::PartialDisruption
        );
        assert_eq!(compute_zone_state(&[], t), (0, ZoneState::Normal));
        assert_eq!(
            ZoneState::PartialDisruption.to_string(),
            "PartialDisruption"
        );
    }

    #[test]
    fn rates_follow_disruption() {
        let now = Instant::now();
        let mut zones = Zones::new(settings());
        zones.add_zone("a", now);
        zones.add_zone("b", now);
        assert_eq!(zones.state("a"), Some(ZoneState::Initial));
        let mut ready = HashMap::new();
        ready.insert("a".to_string(), statuses(10, 0));
        ready.insert("b".to_string(), statuses(10, 0));
        assert_eq!(zones.handle_disruption(&ready, now), DisruptionAction::None);
        assert_eq!(zones.state("a"), Some(ZoneState::Normal));
        assert_eq!(zones.tainter("a").unwrap().qps(), 0.1);

        // Partial disruption in a small zone stops evictions there.
        ready.insert("a".to_string(), statuses(2, 8));
        zones.handle_disruption(&ready, now);
        assert_eq!(zones.state("a"), Some(ZoneState::PartialDisruption));
        assert_eq!(zones.tainter("a").unwrap().qps(), 0.0);
        assert_eq!(zones.tainter("b").unwrap().qps(), 0.1);
        // ... and slows them in a large one (rates change with the state only).
        ready.insert("a".to_string(), statuses(60, 0));
        zones.handle_disruption(&ready, now);
        assert_eq!(zones.tainter("a").unwrap().qps(), 0.1);
        ready.insert("a".to_string(), statuses(20, 40));
        zones.handle_disruption(&ready, now);
        assert_eq!(zones.tainter("a").unwrap().qps(), 0.01);

        // One zone fully disrupted, the other not: normal rate in it.
        ready.insert("a".to_string(), statuses(0, 10));
        assert_eq!(zones.handle_disruption(&ready, now), DisruptionAction::None);
        assert_eq!(zones.state("a"), Some(ZoneState::FullDisruption));
        assert_eq!(zones.tainter("a").unwrap().qps(), 0.1);

        // Every zone fully disrupted: evictions stop everywhere.
        ready.insert("b".to_string(), statuses(0, 10));
        assert_eq!(
            zones.handle_disruption(&ready, now),
            DisruptionAction::EnteredFullDisruption
        );
        assert_eq!(zones.tainter("a").unwrap().qps(), 0.0);
        assert_eq!(zones.tainter("b").unwrap().qps(), 0.0);
        assert_eq!(zones.handle_disruption(&ready, now), DisruptionAction::None);

        // Recovery of one zone resets every limiter to its state's rate.
        ready.insert("b".to_string(), statuses(10, 0));
        assert_eq!(
            zones.handle_disruption(&ready, now),
            DisruptionAction::ExitedFullDisruption
        );
        assert_eq!(zones.state("b"), Some(ZoneState::Normal));
        assert_eq!(zones.state("a"), Some(ZoneState::FullDisruption));
        assert_eq!(zones.tainter("a").unwrap().qps(), 0.1);
        assert_eq!(zones.tainter("b").unwrap().qps(), 0.1);

        // A zone without nodes loses its state.
        ready.remove("a");
        zones.handle_disruption(&ready, now);
        assert_eq!(zones.state("a"), None);
    }

    #[test]
    fn single_zone_cluster_all_down_stops_evictions() {
        let now = Instant::now();
        let mut zones = Zones::new(settings());
        zones.add_zone("", now);
        let mut ready = HashMap::new();
        ready.insert(String::new(), statuses(1, 0));
        zones.handle_disruption(&ready, now);
        ready.insert(String::new(), statuses(0, 1));
        assert_eq!(
            zones.handle_disruption(&ready, now),
            DisruptionAction::EnteredFullDisruption
        );
        assert_eq!(zones.tainter("").unwrap().qps(), 0.0);
    }
}
