//! The HPA's replica arithmetic, free of I/O so it can be tested alone:
//! - [`group_pods`] sorts pods into ready (counted), unready (pending, or for cpu not
//!   yet ready after start), missing a metric, and ignored (deleted or failed);
//! - [`resource_replicas`] (utilization targets) and [`plain_replicas`] (average value
//!   targets) turn per-pod metrics into a replica proposal with the tolerance,
//!   treating missing pods conservatively and unready pods as idle on a scale up;
//! - [`Recommender`] normalizes a proposal: the stabilization windows (the downscale
//!   window without behavior, both windows with `spec.behavior`), the scale-up limit
//!   or the behavior policies, and min/max, giving the reasons and messages of the
//!   AbleToScale and ScalingLimited conditions.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use k8s_openapi::api::autoscaling::v2::{HPAScalingPolicy, HPAScalingRules};
use k8s_openapi::api::core::v1::Pod;

/// One pod's metric sample.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PodMetric {
    /// When it was taken.
    pub timestamp: jiff::Timestamp,
    /// Over which window.
    pub window: Duration,
    /// The value (milli-units).
    pub value: i64,
}

/// Metrics by pod name.
pub type PodMetrics = BTreeMap<String, PodMetric>;

/// Pods sorted by how their samples are used.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PodGroups {
    /// Pods whose samples count.
    pub ready: usize,
    /// Pods not yet ready (samples ignored; idle on a scale up).
    pub unready: BTreeSet<String>,
    /// Pods without a sample.
    pub missing: BTreeSet<String>,
    /// Deleted or failed pods.
    pub ignored: BTreeSet<String>,
}

fn pod_name(p: &Pod) -> String {
    p.metadata.name.clone().unwrap_or_default()
}

/// Sorts pods as upstream's replica calculator does.
pub fn group_pods(
    pods: &[&Pod],
    metrics: &PodMetrics,
    resource: &str,
    cpu_initialization_period: Duration,
    initial_readiness_delay: Duration,
    now: jiff::Timestamp,
) -> PodGroups {
    let mut g = PodGroups::default();
    let span = |d: Duration| jiff::SignedDuration::try_from(d).unwrap_or_default();
    for pod in pods {
        let name = pod_name(pod);
        let status = pod.status.as_ref();
        let phase = status.and_then(|s| s.phase.as_deref());
        if pod.metadata.deletion_timestamp.is_some() || phase == Some("Failed") {
            g.ignored.insert(name);
            continue;
        }
        if phase == Some("Pending") {
            g.unready.insert(name);
            continue;
        }
        let Some(metric) = metrics.get(&name) else {
            g.missing.insert(name);
            continue;
        };
        if resource == "cpu" {
            let cond = status
                .and_then(|s| s.conditions.as_ref())
                .and_then(|c| c.iter().find(|c| c.type_ == "Ready"));
            let start = status.and_then(|s| s.start_time.as_ref()).map(|t| t.0);
            let unready = match (cond, start) {
                (Some(c), Some(start)) => {
                    let transition = c.last_transition_time.as_ref().map_or(start, |t| t.0);
                    if start + span(cpu_initialization_period) > now {
                        c.status == "False" || metric.timestamp < transition + span(metric.window)
                    } else {
                        c.status == "False" && start + span(initial_readiness_delay) > transition
                    }
                }
                _ => true,
            };
            if unready {
                g.unready.insert(name);
                continue;
            }
        }
        g.ready += 1;
    }
    g
}

/// The sum of a pod's container requests of `resource` in milli-units (sidecars
/// included; only `container` if given), or the error naming the container without
/// one.
pub fn pod_requests(
    pods: &[&Pod],
    resource: &str,
    container: &str,
) -> Result<HashMap<String, i64>, String> {
    let mut out = HashMap::new();
    for pod in pods {
        let Some(spec) = pod.spec.as_ref() else {
            continue;
        };
        let sidecars = spec
            .init_containers
            .iter()
            .flatten()
            .filter(|c| c.restart_policy.as_deref() == Some("Always"));
        let mut sum = 0i64;
        for c in spec.containers.iter().chain(sidecars) {
            if !container.is_empty() && c.name != container {
                continue;
            }
            let req = c
                .resources
                .as_ref()
                .and_then(|r| r.requests.as_ref())
                .and_then(|r| r.get(resource))
                .and_then(|q| apimachinery_milli(&q.0));
            match req {
                Some(v) => sum += v,
                None => {
                    return Err(format!(
                        "missing request for {resource} in container {} of Pod {}",
                        c.name,
                        pod_name(pod)
                    ))
                }
            }
        }
        out.insert(pod_name(pod), sum);
    }
    Ok(out)
}

/// The milli-value of a quantity string.
pub fn apimachinery_milli(s: &str) -> Option<i64> {
    quota::resources::parse_list(&serde_json::json!({ "q": s }))
        .get("q")
        .map(|q| q.milli_value())
}

/// Usage ratio, current utilization (percent) and raw average of `metrics` against
/// the requests.
pub fn utilization_ratio(
    metrics: &PodMetrics,
    requests: &HashMap<String, i64>,
    target_utilization: i32,
) -> Result<(f64, i32, i64), String> {
    let (mut total, mut requested, mut n) = (0i64, 0i64, 0i64);
    for (name, m) in metrics {
        if let Some(r) = requests.get(name) {
            total += m.value;
            requested += r;
            n += 1;
        }
    }
    if requested == 0 {
        return Err("no metrics returned matched known pods".into());
    }
    let utilization = i32::try_from(total * 100 / requested).unwrap_or(i32::MAX);
    Ok((
        f64::from(utilization) / f64::from(target_utilization),
        utilization,
        total / n,
    ))
}

/// A proposal from a resource utilization target: replicas, utilization (percent),
/// raw average (milli-units).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResourceProposal {
    /// Proposed replicas.
    pub replicas: i32,
    /// Current average utilization.
    pub utilization: i32,
    /// Current average value in milli-units.
    pub raw: i64,
}

fn ceil_i32(v: f64) -> i32 {
    v.ceil() as i32
}

/// Replicas for a utilization target (upstream's GetResourceReplicas after the
/// metrics were fetched).
#[allow(clippy::too_many_arguments)]
pub fn resource_replicas(
    current_replicas: i32,
    target_utilization: i32,
    mut metrics: PodMetrics,
    pods: &[&Pod],
    resource: &str,
    container: &str,
    tolerance: f64,
    cpu_initialization_period: Duration,
    initial_readiness_delay: Duration,
    now: jiff::Timestamp,
) -> Result<ResourceProposal, String> {
    if pods.is_empty() {
        return Err("no pods returned by selector while calculating replica count".into());
    }
    let groups = group_pods(
        pods,
        &metrics,
        resource,
        cpu_initialization_period,
        initial_readiness_delay,
        now,
    );
    metrics.retain(|k, _| !groups.ignored.contains(k) && !groups.unready.contains(k));
    if metrics.is_empty() {
        return Err("did not receive metrics for targeted pods (pods might be unready)".into());
    }
    let requests = pod_requests(pods, resource, container)?;
    let (ratio, utilization, raw) = utilization_ratio(&metrics, &requests, target_utilization)?;
    let proposal = |replicas| ResourceProposal {
        replicas,
        utilization,
        raw,
    };
    let scale_up_with_unready = !groups.unready.is_empty() && ratio > 1.0;
    if !scale_up_with_unready && groups.missing.is_empty() {
        if (1.0 - ratio).abs() <= tolerance {
            return Ok(proposal(current_replicas));
        }
        return Ok(proposal(ceil_i32(ratio * groups.ready as f64)));
    }
    let sample = |value| PodMetric {
        timestamp: now,
        window: Duration::ZERO,
        value,
    };
    if !groups.missing.is_empty() {
        if ratio < 1.0 {
            let fallback = i64::from(target_utilization.max(100));
            for name in &groups.missing {
                let r = requests.get(name).copied().unwrap_or(0);
                metrics.insert(name.clone(), sample(r * fallback / 100));
            }
        } else if ratio > 1.0 {
            for name in &groups.missing {
                metrics.insert(name.clone(), sample(0));
            }
        }
    }
    if scale_up_with_unready {
        for name in &groups.unready {
            metrics.insert(name.clone(), sample(0));
        }
    }
    let (new_ratio, _, _) = utilization_ratio(&metrics, &requests, target_utilization)?;
    if (1.0 - new_ratio).abs() <= tolerance
        || (ratio < 1.0 && new_ratio > 1.0)
        || (ratio > 1.0 && new_ratio < 1.0)
    {
        return Ok(proposal(current_replicas));
    }
    let replicas = ceil_i32(new_ratio * metrics.len() as f64);
    if (new_ratio < 1.0 && replicas > current_replicas)
        || (new_ratio > 1.0 && replicas < current_replicas)
    {
        return Ok(proposal(current_replicas));
    }
    Ok(proposal(replicas))
}

/// Replicas for an average value target (milli-units): replicas and the current
/// average.
#[allow(clippy::too_many_arguments)]
pub fn plain_replicas(
    current_replicas: i32,
    target_usage: i64,
    mut metrics: PodMetrics,
    pods: &[&Pod],
    resource: &str,
    tolerance: f64,
    cpu_initialization_period: Duration,
    initial_readiness_delay: Duration,
    now: jiff::Timestamp,
) -> Result<(i32, i64), String> {
    if pods.is_empty() {
        return Err("no pods returned by selector while calculating replica count".into());
    }
    let groups = group_pods(
        pods,
        &metrics,
        resource,
        cpu_initialization_period,
        initial_readiness_delay,
        now,
    );
    metrics.retain(|k, _| !groups.ignored.contains(k) && !groups.unready.contains(k));
    if metrics.is_empty() {
        return Err("did not receive metrics for targeted pods (pods might be unready)".into());
    }
    let ratio_of = |m: &PodMetrics| {
        let usage = m.values().map(|v| v.value).sum::<i64>() / m.len() as i64;
        (usage as f64 / target_usage as f64, usage)
    };
    let (ratio, usage) = ratio_of(&metrics);
    let scale_up_with_unready = !groups.unready.is_empty() && ratio > 1.0;
    if !scale_up_with_unready && groups.missing.is_empty() {
        if (1.0 - ratio).abs() <= tolerance {
            return Ok((current_replicas, usage));
        }
        return Ok((ceil_i32(ratio * groups.ready as f64), usage));
    }
    let sample = |value| PodMetric {
        timestamp: now,
        window: Duration::ZERO,
        value,
    };
    for name in &groups.missing {
        let v = if ratio < 1.0 { target_usage } else { 0 };
        metrics.insert(name.clone(), sample(v));
    }
    if scale_up_with_unready {
        for name in &groups.unready {
            metrics.insert(name.clone(), sample(0));
        }
    }
    let (new_ratio, _) = ratio_of(&metrics);
    if (1.0 - new_ratio).abs() <= tolerance
        || (ratio < 1.0 && new_ratio > 1.0)
        || (ratio > 1.0 && new_ratio < 1.0)
    {
        return Ok((current_replicas, usage));
    }
    let replicas = ceil_i32(new_ratio * metrics.len() as f64);
    if (new_ratio < 1.0 && replicas > current_replicas)
        || (new_ratio > 1.0 && replicas < current_replicas)
    {
        return Ok((current_replicas, usage));
    }
    Ok((replicas, usage))
}

/// A condition decided by normalization: reason and message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// The condition reason.
    pub reason: &'static str,
    /// The condition message.
    pub message: &'static str,
}

const READY_FOR_NEW_SCALE: Verdict = Verdict {
    reason: "ReadyForNewScale",
    message: "recommended size matches current size",
};
const SCALE_DOWN_STABILIZED: Verdict = Verdict {
    reason: "ScaleDownStabilized",
    message: "recent recommendations were higher than current one, applying the highest recent recommendation",
};
const SCALE_UP_STABILIZED: Verdict = Verdict {
    reason: "ScaleUpStabilized",
    message: "recent recommendations were lower than current one, applying the lowest recent recommendation",
};
const WITHIN_RANGE: Verdict = Verdict {
    reason: "DesiredWithinRange",
    message: "the desired count is within the acceptable range",
};
const SCALE_UP_LIMIT: Verdict = Verdict {
    reason: "ScaleUpLimit",
    message: "the desired replica count is increasing faster than the maximum scale rate",
};
const TOO_MANY: Verdict = Verdict {
    reason: "TooManyReplicas",
    message: "the desired replica count is more than the maximum replica count",
};
const TOO_FEW: Verdict = Verdict {
    reason: "TooFewReplicas",
    message: "the desired replica count is less than the minimum replica count",
};
const SCALE_DOWN_LIMIT: Verdict = Verdict {
    reason: "ScaleDownLimit",
    message: "the desired replica count is decreasing faster than the maximum scale rate",
};

/// The outcome of normalizing a proposal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Normalized {
    /// The replicas to scale to.
    pub replicas: i32,
    /// AbleToScale (status True) reason and message.
    pub able_to_scale: Verdict,
    /// ScalingLimited reason and message.
    pub scaling_limited: Verdict,
    /// Whether ScalingLimited is True (the proposal was cut).
    pub limited: bool,
}

/// The scale-up limit without behavior: twice the current replicas, at least 4.
pub fn scale_up_limit(current: i32) -> i32 {
    (2 * current).max(4)
}

/// Clamps without behavior (upstream's convertDesiredReplicasWithRules).
pub fn clamp_with_rules(current: i32, desired: i32, min: i32, max: i32) -> (i32, Verdict) {
    let limit = scale_up_limit(current);
    let (maximum, why) = if max > limit {
        (limit, SCALE_UP_LIMIT)
    } else {
        (max, TOO_MANY)
    };
    if desired < min {
        (min, TOO_FEW)
    } else if desired > maximum {
        (maximum, why)
    } else {
        (desired, WITHIN_RANGE)
    }
}

#[derive(Clone, Copy, Debug)]
struct Recommendation {
    replicas: i32,
    at: jiff::Timestamp,
}

#[derive(Clone, Copy, Debug)]
struct ScaleEvent {
    change: i32,
    at: jiff::Timestamp,
    outdated: bool,
}

/// The scaling history of one HPA: past recommendations (for stabilization) and
/// scale events (for the behavior policies' periods).
#[derive(Clone, Debug, Default)]
pub struct Recommender {
    recommendations: Vec<Recommendation>,
    scale_up_events: Vec<ScaleEvent>,
    scale_down_events: Vec<ScaleEvent>,
}

fn secs(s: i32) -> jiff::SignedDuration {
    jiff::SignedDuration::from_secs(i64::from(s))
}

fn change_in_period(period_seconds: i32, events: &[ScaleEvent], now: jiff::Timestamp) -> i32 {
    let cutoff = now - secs(period_seconds);
    events
        .iter()
        .filter(|e| e.at > cutoff)
        .map(|e| e.change)
        .sum()
}

/// The behavior defaults upstream fills in: scale up 100% or 4 pods per 15s (the
/// larger), no window; scale down 100% per 15s, the controller's window.
pub fn default_rules(
    up: bool,
    rules: Option<&HPAScalingRules>,
    downscale_window: Duration,
) -> HPAScalingRules {
    let mut r = rules.cloned().unwrap_or_default();
    if r.select_policy.is_none() {
        r.select_policy = Some("Max".into());
    }
    if r.policies.as_ref().is_none_or(|p| p.is_empty()) {
        let mut p = vec![HPAScalingPolicy {
            type_: "Percent".into(),
            value: 100,
            period_seconds: 15,
        }];
        if up {
            p.push(HPAScalingPolicy {
                type_: "Pods".into(),
                value: 4,
                period_seconds: 15,
            });
        }
        r.policies = Some(p);
    }
    if r.stabilization_window_seconds.is_none() {
        r.stabilization_window_seconds = Some(if up {
            0
        } else {
            i32::try_from(downscale_window.as_secs()).unwrap_or(i32::MAX)
        });
    }
    r
}

impl Recommender {
    /// Records the first recommendation (the current replicas) if there is none.
    pub fn record_initial(&mut self, current: i32, now: jiff::Timestamp) {
        if self.recommendations.is_empty() {
            self.recommendations.push(Recommendation {
                replicas: current,
                at: now,
            });
        }
    }

    fn store_recommendation(
        &mut self,
        replicas: i32,
        now: jiff::Timestamp,
        old_index: Option<usize>,
    ) {
        let rec = Recommendation { replicas, at: now };
        match old_index {
            Some(i) => self.recommendations[i] = rec,
            None => self.recommendations.push(rec),
        }
    }

    /// Normalizes without `spec.behavior`: the highest recommendation of the downscale
    /// window, then the rules.
    pub fn normalize(
        &mut self,
        current: i32,
        desired: i32,
        min: i32,
        max: i32,
        downscale_window: Duration,
        now: jiff::Timestamp,
    ) -> Normalized {
        let cutoff = now - jiff::SignedDuration::try_from(downscale_window).unwrap_or_default();
        let mut stabilized = desired;
        let mut old = None;
        for (i, r) in self.recommendations.iter().enumerate() {
            if r.at < cutoff {
                old = Some(i);
            } else if r.replicas > stabilized {
                stabilized = r.replicas;
            }
        }
        self.store_recommendation(desired, now, old);
        let able = if stabilized != desired {
            SCALE_DOWN_STABILIZED
        } else {
            READY_FOR_NEW_SCALE
        };
        let (replicas, why) = clamp_with_rules(current, stabilized, min, max);
        Normalized {
            replicas,
            able_to_scale: able,
            scaling_limited: why,
            limited: replicas != stabilized,
        }
    }

    /// Normalizes with `spec.behavior` (rules already defaulted): both stabilization
    /// windows, then the policies' rate limits and min/max.
    #[allow(clippy::too_many_arguments)]
    pub fn normalize_with_behavior(
        &mut self,
        current: i32,
        desired: i32,
        min: i32,
        max: i32,
        up: &HPAScalingRules,
        down: &HPAScalingRules,
        now: jiff::Timestamp,
    ) -> Normalized {
        let up_cutoff = now - secs(up.stabilization_window_seconds.unwrap_or(0));
        let down_cutoff = now - secs(down.stabilization_window_seconds.unwrap_or(0));
        let (mut up_rec, mut down_rec) = (desired, desired);
        let mut old = None;
        for (i, r) in self.recommendations.iter().enumerate() {
            if r.at > up_cutoff {
                up_rec = up_rec.min(r.replicas);
            }
            if r.at > down_cutoff {
                down_rec = down_rec.max(r.replicas);
            }
            if r.at < up_cutoff && r.at < down_cutoff {
                old = Some(i);
            }
        }
        let stabilized = current.max(up_rec).min(down_rec);
        self.store_recommendation(desired, now, old);
        let able = if stabilized == desired {
            READY_FOR_NEW_SCALE
        } else if desired >= current {
            SCALE_UP_STABILIZED
        } else {
            SCALE_DOWN_STABILIZED
        };
        let (replicas, why) = self.rate_limit(current, stabilized, min, max, up, down, now);
        Normalized {
            replicas,
            able_to_scale: able,
            scaling_limited: why,
            limited: replicas != stabilized,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn rate_limit(
        &self,
        current: i32,
        desired: i32,
        min: i32,
        max: i32,
        up: &HPAScalingRules,
        down: &HPAScalingRules,
        now: jiff::Timestamp,
    ) -> (i32, Verdict) {
        if desired > current {
            let limit = self
                .scale_up_limit_with_rules(current, up, now)
                .max(current);
            let (maximum, why) = if max > limit {
                (limit, SCALE_UP_LIMIT)
            } else {
                (max, TOO_MANY)
            };
            if desired > maximum {
                return (maximum, why);
            }
        } else if desired < current {
            let limit = self
                .scale_down_limit_with_rules(current, down, now)
                .min(current);
            let (minimum, why) = if min < limit {
                (limit, SCALE_DOWN_LIMIT)
            } else {
                (min, TOO_FEW)
            };
            if desired < minimum {
                return (minimum, why);
            }
        }
        (desired, WITHIN_RANGE)
    }

    fn period_start(&self, current: i32, period: i32, now: jiff::Timestamp) -> i32 {
        current - change_in_period(period, &self.scale_up_events, now)
            + change_in_period(period, &self.scale_down_events, now)
    }

    fn scale_up_limit_with_rules(
        &self,
        current: i32,
        rules: &HPAScalingRules,
        now: jiff::Timestamp,
    ) -> i32 {
        let select = rules.select_policy.as_deref().unwrap_or("Max");
        if select == "Disabled" {
            return current;
        }
        let min_change = select == "Min";
        let mut result = if min_change { i32::MAX } else { i32::MIN };
        for p in rules.policies.iter().flatten() {
            let start = self.period_start(current, p.period_seconds, now);
            let proposed = if p.type_ == "Pods" {
                start + p.value
            } else {
                (f64::from(start) * (1.0 + f64::from(p.value) / 100.0)).ceil() as i32
            };
            result = if min_change {
                result.min(proposed)
            } else {
                result.max(proposed)
            };
        }
        result
    }

    fn scale_down_limit_with_rules(
        &self,
        current: i32,
        rules: &HPAScalingRules,
        now: jiff::Timestamp,
    ) -> i32 {
        let select = rules.select_policy.as_deref().unwrap_or("Max");
        if select == "Disabled" {
            return current;
        }
        let min_change = select == "Min";
        let mut result = if min_change { i32::MIN } else { i32::MAX };
        for p in rules.policies.iter().flatten() {
            let start = self.period_start(current, p.period_seconds, now);
            let proposed = if p.type_ == "Pods" {
                start - p.value
            } else {
                (f64::from(start) * (1.0 - f64::from(p.value) / 100.0)) as i32
            };
            result = if min_change {
                result.max(proposed)
            } else {
                result.min(proposed)
            };
        }
        result
    }

    /// Records a rescale (only used with behavior), replacing an event older than the
    /// longest policy period.
    pub fn store_scale_event(
        &mut self,
        rules: &HPAScalingRules,
        previous: i32,
        new: i32,
        now: jiff::Timestamp,
    ) {
        let longest = rules
            .policies
            .iter()
            .flatten()
            .map(|p| p.period_seconds)
            .max()
            .unwrap_or(0);
        let events = if new > previous {
            &mut self.scale_up_events
        } else {
            &mut self.scale_down_events
        };
        let cutoff = now - secs(longest);
        let mut old = None;
        for (i, e) in events.iter_mut().enumerate() {
            if e.at < cutoff {
                e.outdated = true;
            }
            if e.outdated {
                old = Some(i);
            }
        }
        let ev = ScaleEvent {
            change: (new - previous).abs(),
            at: now,
            outdated: false,
        };
        match old {
            Some(i) => events[i] = ev,
            None => events.push(ev),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        Container, PodCondition, PodSpec, PodStatus, ResourceRequirements,
    };
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

    fn t(s: i64) -> jiff::Timestamp {
        jiff::Timestamp::from_second(1_700_000_000 + s).unwrap()
    }

    fn pod(name: &str, cpu_request: &str, phase: &str, ready: bool, started: i64) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "c".into(),
                    resources: Some(ResourceRequirements {
                        requests: Some([("cpu".to_string(), Quantity(cpu_request.into()))].into()),
                        ..Default::default()
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            status: Some(PodStatus {
                phase: Some(phase.into()),
                start_time: Some(Time(t(started))),
                conditions: Some(vec![PodCondition {
                    type_: "Ready".into(),
                    status: if ready { "True" } else { "False" }.into(),
                    last_transition_time: Some(Time(t(started))),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
        }
    }

    fn metrics(values: &[(&str, i64)], at: i64) -> PodMetrics {
        values
            .iter()
            .map(|(n, v)| {
                (
                    n.to_string(),
                    PodMetric {
                        timestamp: t(at),
                        window: Duration::from_secs(30),
                        value: *v,
                    },
                )
            })
            .collect()
    }

    const INIT: Duration = Duration::from_secs(300);
    const DELAY: Duration = Duration::from_secs(30);

    /// Per-pod samples: pod name and value.
    type Samples<'a> = &'a [(&'a str, i64)];

    /// `resource_replicas` for cpu on all containers, tolerance 0.1, with samples
    /// `values` taken and evaluated at t(1000).
    fn cpu_replicas(
        current: i32,
        target: i32,
        values: Samples,
        pods: &[&Pod],
    ) -> Result<ResourceProposal, String> {
        resource_replicas(
            current,
            target,
            metrics(values, 1000),
            pods,
            "cpu",
            "",
            0.1,
            INIT,
            DELAY,
            t(1000),
        )
    }

    #[test]
    fn scales_up_by_utilization() {
        let pods = [
            pod("a", "1", "Running", true, 0),
            pod("b", "1", "Running", true, 0),
        ];
        let refs: Vec<&Pod> = pods.iter().collect();
        // 900m of 1 each at a 50% target: ratio 1.8 → ceil(3.6) = 4.
        assert_eq!(
            cpu_replicas(2, 50, &[("a", 900), ("b", 900)], &refs).unwrap(),
            ResourceProposal {
                replicas: 4,
                utilization: 90,
                raw: 900
            }
        );
        // Within tolerance: keep.
        let p = cpu_replicas(2, 50, &[("a", 520), ("b", 520)], &refs).unwrap();
        assert_eq!(p.replicas, 2);
    }

    #[test]
    fn missing_and_unready_pods_are_conservative() {
        let pods = [
            pod("a", "1", "Running", true, 0),
            pod("b", "1", "Running", true, 0),
            pod("c", "1", "Pending", false, 0),
        ];
        let refs: Vec<&Pod> = pods.iter().collect();
        let cases: [(&str, i32, Samples, i32); 2] = [
            // b missing counts as 100%: (200+1000)/2000 = 60% vs 50% target: ratio 1.2
            // flips direction → keep 3.
            ("scale down with b missing", 3, &[("a", 200)], 3),
            // The unready pod counts as idle: (1000+1000+0)/3000 = 66% vs 50% → ratio
            // 1.32 → ceil(1.32*3) = 4.
            ("scale up with c unready", 3, &[("a", 1000), ("b", 1000)], 4),
        ];
        for (what, current, values, want) in cases {
            let p = cpu_replicas(current, 50, values, &refs).unwrap();
            assert_eq!(p.replicas, want, "{what}");
        }
        let bare = Pod {
            metadata: ObjectMeta {
                name: Some("x".into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "c".into(),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            status: pods[0].status.clone(),
        };
        let errors: [(Samples, &[&Pod], &str); 2] = [
            (
                &[],
                &refs[2..],
                "did not receive metrics for targeted pods (pods might be unready)",
            ),
            (
                &[("x", 1)],
                &[&bare],
                "missing request for cpu in container c of Pod x",
            ),
        ];
        for (values, pods, want) in errors {
            assert_eq!(cpu_replicas(1, 50, values, pods).unwrap_err(), want);
        }
    }

    #[test]
    fn plain_values() {
        let pods = [
            pod("a", "1", "Running", true, 0),
            pod("b", "1", "Running", true, 0),
        ];
        let refs: Vec<&Pod> = pods.iter().collect();
        assert_eq!(
            plain_replicas(
                2,
                500,
                metrics(&[("a", 1000), ("b", 500)], 1000),
                &refs,
                "memory",
                0.1,
                INIT,
                DELAY,
                t(1000)
            ),
            Ok((3, 750))
        );
    }

    #[test]
    fn rules_and_downscale_stabilization() {
        assert_eq!(clamp_with_rules(2, 10, 1, 20), (4, SCALE_UP_LIMIT));
        assert_eq!(clamp_with_rules(10, 30, 1, 15), (15, TOO_MANY));
        assert_eq!(clamp_with_rules(3, 0, 1, 15), (1, TOO_FEW));
        let mut r = Recommender::default();
        r.record_initial(5, t(0));
        let n = r.normalize(5, 2, 1, 10, Duration::from_secs(300), t(10));
        assert_eq!(n.replicas, 5);
        assert_eq!(n.able_to_scale.reason, "ScaleDownStabilized");
        assert!(!n.limited);
        // After the window the low recommendation wins.
        let n = r.normalize(5, 2, 1, 10, Duration::from_secs(300), t(400));
        assert_eq!(n.replicas, 2);
        assert_eq!(n.able_to_scale.reason, "ReadyForNewScale");
        assert_eq!(n.scaling_limited.reason, "DesiredWithinRange");
    }

    #[test]
    fn behavior_policies_limit_the_rate() {
        let up = default_rules(true, None, Duration::from_secs(300));
        let down = default_rules(
            false,
            Some(&HPAScalingRules {
                stabilization_window_seconds: Some(0),
                policies: Some(vec![HPAScalingPolicy {
                    type_: "Pods".into(),
                    value: 1,
                    period_seconds: 60,
                }]),
                select_policy: None,
                tolerance: None,
            }),
            Duration::from_secs(300),
        );
        let mut r = Recommender::default();
        // 2 → 20: max(2*2=4, 2+4=6) = 6.
        let n = r.normalize_with_behavior(2, 20, 1, 50, &up, &down, t(0));
        assert_eq!(
            (n.replicas, n.scaling_limited.reason, n.limited),
            (6, "ScaleUpLimit", true)
        );
        r.store_scale_event(&up, 2, 6, t(0));
        // Within the same 15s period, the period started at 2: still 6.
        let n = r.normalize_with_behavior(6, 20, 1, 50, &up, &down, t(5));
        assert_eq!(n.replicas, 6);
        // Scale down one pod a minute.
        let n = r.normalize_with_behavior(10, 3, 1, 50, &up, &down, t(100));
        assert_eq!(
            (n.replicas, n.scaling_limited.reason),
            (9, "ScaleDownLimit")
        );
        // Max replicas caps below the rate limit.
        let n = r.normalize_with_behavior(4, 20, 1, 5, &up, &down, t(200));
        assert_eq!(
            (n.replicas, n.scaling_limited.reason),
            (5, "TooManyReplicas")
        );
        // Disabled scale down.
        let disabled = HPAScalingRules {
            select_policy: Some("Disabled".into()),
            ..down.clone()
        };
        let n = r.normalize_with_behavior(4, 1, 1, 5, &up, &disabled, t(300));
        assert_eq!(n.replicas, 4);
    }

    #[test]
    fn upscale_window_stabilizes() {
        let up = HPAScalingRules {
            stabilization_window_seconds: Some(60),
            ..default_rules(true, None, Duration::ZERO)
        };
        let down = default_rules(false, None, Duration::from_secs(0));
        let mut r = Recommender::default();
        r.record_initial(3, t(0));
        let n = r.normalize_with_behavior(3, 8, 1, 10, &up, &down, t(10));
        assert_eq!(
            (n.replicas, n.able_to_scale.reason),
            (3, "ScaleUpStabilized")
        );
    }
}
