//! The eviction manager: every monitoring interval it measures the node's
//! signals (`memory.available`, `nodefs.available`, `nodefs.inodesFree`,
//! `imagefs.available`) against `--eviction-hard`; a crossed threshold raises
//! MemoryPressure or DiskPressure on the Node and evicts one pod per interval,
//! ranked as upstream ranks them: pods using more than they request first, then
//! lower priority, then by how far usage exceeds requests.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use apimachinery::Quantity;
use k8s_openapi::api::core::v1::Pod;

/// A signal the kubelet watches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Signal {
    /// Memory left on the node.
    MemoryAvailable,
    /// Space left on the kubelet's filesystem.
    NodefsAvailable,
    /// Inodes left on the kubelet's filesystem.
    NodefsInodesFree,
    /// Space left on the image filesystem.
    ImagefsAvailable,
    /// Process ids left (the kernel's pid and thread limits less the tasks running).
    PidAvailable,
}

impl Signal {
    /// Upstream's name.
    pub fn name(self) -> &'static str {
        match self {
            Signal::MemoryAvailable => "memory.available",
            Signal::NodefsAvailable => "nodefs.available",
            Signal::NodefsInodesFree => "nodefs.inodesFree",
            Signal::ImagefsAvailable => "imagefs.available",
            Signal::PidAvailable => "pid.available",
        }
    }

    /// The node condition it raises.
    pub fn condition(self) -> &'static str {
        match self {
            Signal::MemoryAvailable => "MemoryPressure",
            Signal::PidAvailable => "PIDPressure",
            _ => "DiskPressure",
        }
    }

    /// The resource named in eviction messages.
    pub fn resource(self) -> &'static str {
        match self {
            Signal::MemoryAvailable => "memory",
            Signal::NodefsInodesFree => "inodes",
            Signal::PidAvailable => "pids",
            _ => "ephemeral-storage",
        }
    }

    fn parse(s: &str) -> Option<Signal> {
        Some(match s {
            "memory.available" => Signal::MemoryAvailable,
            "nodefs.available" => Signal::NodefsAvailable,
            "nodefs.inodesFree" => Signal::NodefsInodesFree,
            "imagefs.available" => Signal::ImagefsAvailable,
            "pid.available" => Signal::PidAvailable,
            _ => return None,
        })
    }
}

/// A threshold: an absolute quantity or a percentage of capacity.
#[derive(Clone, Debug, PartialEq)]
pub enum Amount {
    /// Absolute.
    Quantity(Quantity),
    /// Percent of capacity.
    Percent(f64),
}

/// One `--eviction-hard` or `--eviction-soft` entry.
#[derive(Clone, Debug, PartialEq)]
pub struct Threshold {
    /// The signal.
    pub signal: Signal,
    /// Below this, the node is under pressure.
    pub value: Amount,
    /// For a soft threshold: how long it must stay crossed before pods are evicted
    /// (`--eviction-soft-grace-period`); `None` for a hard one.
    pub grace_period: Option<Duration>,
}

impl Threshold {
    /// The threshold in the signal's units, given capacity.
    pub fn level(&self, capacity: u64) -> u64 {
        match &self.value {
            Amount::Quantity(q) => q.value().max(0) as u64,
            Amount::Percent(p) => (capacity as f64 * p / 100.0) as u64,
        }
    }

    /// As upstream prints it in messages (`100Mi`, `10%`).
    pub fn display(&self) -> String {
        match &self.value {
            Amount::Quantity(q) => q.to_string(),
            Amount::Percent(p) => format!("{p}%"),
        }
    }
}

/// Upstream's default hard thresholds.
pub const DEFAULT_EVICTION_HARD: &str =
    "memory.available<100Mi,nodefs.available<10%,nodefs.inodesFree<5%,imagefs.available<15%";

/// Parses `memory.available<100Mi,nodefs.available<10%`.
pub fn parse_thresholds(s: &str) -> Result<Vec<Threshold>, String> {
    let mut out = Vec::new();
    for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (name, value) = item
            .split_once('<')
            .ok_or_else(|| format!("invalid eviction threshold {item:?}: only '<' is supported"))?;
        let signal = Signal::parse(name.trim())
            .ok_or_else(|| format!("unsupported eviction signal {name:?}"))?;
        let value = value.trim();
        let value = if let Some(p) = value.strip_suffix('%') {
            let p: f64 = p
                .parse()
                .map_err(|_| format!("invalid percentage {value:?}"))?;
            if !(0.0..=100.0).contains(&p) {
                return Err(format!("invalid percentage {value:?}"));
            }
            Amount::Percent(p)
        } else {
            Amount::Quantity(
                value
                    .parse()
                    .map_err(|e| format!("invalid quantity {value:?}: {e}"))?,
            )
        };
        out.push(Threshold {
            signal,
            value,
            grace_period: None,
        });
    }
    Ok(out)
}

/// Parses `--eviction-soft` with `--eviction-soft-grace-period`
/// (`memory.available=1m30s,...`); every soft threshold needs a grace period.
pub fn parse_soft_thresholds(
    thresholds: &str,
    grace_periods: &str,
) -> Result<Vec<Threshold>, String> {
    let mut graces: BTreeMap<Signal, Duration> = BTreeMap::new();
    for item in grace_periods
        .split(',')
        .map(str::trim)
        .filter(|i| !i.is_empty())
    {
        let (name, value) = item
            .split_once('=')
            .ok_or_else(|| format!("invalid eviction grace period {item:?}"))?;
        let signal = Signal::parse(name.trim())
            .ok_or_else(|| format!("unsupported eviction signal {name:?}"))?;
        let d = controllers::config::parse_go_duration(value.trim())
            .ok_or_else(|| format!("invalid duration {value:?}"))?;
        graces.insert(signal, d);
    }
    let mut out = parse_thresholds(thresholds)?;
    for t in &mut out {
        let g = graces.get(&t.signal).copied().ok_or_else(|| {
            format!(
                "grace period must be specified for the soft eviction threshold {}",
                t.signal.name()
            )
        })?;
        t.grace_period = Some(g);
    }
    Ok(out)
}

/// Remembers, between measurements, since when each threshold has been crossed and
/// when each pressure condition was last seen, which upstream's eviction manager
/// needs for soft thresholds and for `--eviction-pressure-transition-period`.
#[derive(Debug, Default)]
pub struct Tracker {
    first_crossed: BTreeMap<usize, Instant>,
    last_seen: BTreeMap<&'static str, Instant>,
}

impl Tracker {
    /// Takes one measurement's crossed thresholds (index into the threshold list,
    /// the threshold, its observation) and returns the conditions to report (raised
    /// while seen within `transition` of now) and the thresholds to act on (hard
    /// ones at once, soft ones once crossed for their whole grace period).
    pub fn step(
        &mut self,
        now: Instant,
        crossed: &[(usize, Threshold, Observation)],
        transition: Duration,
    ) -> (BTreeSet<&'static str>, Vec<(Threshold, Observation)>) {
        self.first_crossed
            .retain(|i, _| crossed.iter().any(|(j, _, _)| j == i));
        for (i, t, _) in crossed {
            self.first_crossed.entry(*i).or_insert(now);
            self.last_seen.insert(t.signal.condition(), now);
        }
        self.last_seen
            .retain(|_, seen| now.saturating_duration_since(*seen) < transition || *seen == now);
        let conditions = self.last_seen.keys().copied().collect();
        let actionable = crossed
            .iter()
            .filter(|(i, t, _)| {
                let since = self.first_crossed.get(i).copied().unwrap_or(now);
                now.saturating_duration_since(since) >= t.grace_period.unwrap_or_default()
            })
            .map(|(_, t, o)| (t.clone(), *o))
            .collect();
        (conditions, actionable)
    }
}

/// One measurement of a signal.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Observation {
    /// Amount left.
    pub available: u64,
    /// Total.
    pub capacity: u64,
}

/// Measures the node's signals now.
pub fn observe(
    root_dir: &Path,
    image_dir: &Path,
    memory_capacity: u64,
) -> BTreeMap<Signal, Observation> {
    let mut out = BTreeMap::new();
    // memory.available = capacity - working set of the root cgroup, as upstream
    // (falls back to MemAvailable when the root memory cgroup is not readable).
    let read = |p: &str| std::fs::read_to_string(p).ok();
    let working_set = read("/sys/fs/cgroup/memory/memory.usage_in_bytes")
        .and_then(|u| u.trim().parse::<u64>().ok())
        .map(|usage| {
            let inactive = read("/sys/fs/cgroup/memory/memory.stat")
                .and_then(|st| {
                    st.lines()
                        .find_map(|l| l.strip_prefix("total_inactive_file "))
                        .and_then(|v| v.trim().parse::<u64>().ok())
                })
                .unwrap_or(0);
            usage.saturating_sub(inactive)
        });
    let available = match working_set {
        Some(ws) => memory_capacity.saturating_sub(ws),
        None => read("/proc/meminfo")
            .and_then(|m| {
                m.lines()
                    .find_map(|l| l.strip_prefix("MemAvailable:"))
                    .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            })
            .map_or(0, |kib| kib * 1024),
    };
    out.insert(
        Signal::MemoryAvailable,
        Observation {
            available,
            capacity: memory_capacity,
        },
    );
    if let Ok(s) = nix::sys::statvfs::statvfs(root_dir) {
        let frag = s.fragment_size();
        out.insert(
            Signal::NodefsAvailable,
            Observation {
                available: s.blocks_available() * frag,
                capacity: s.blocks() * frag,
            },
        );
        out.insert(
            Signal::NodefsInodesFree,
            Observation {
                available: s.files_available(),
                capacity: s.files(),
            },
        );
    }
    if let Some(pids) = pid_observation() {
        out.insert(Signal::PidAvailable, pids);
    }
    if let Ok(s) = nix::sys::statvfs::statvfs(image_dir) {
        let frag = s.fragment_size();
        out.insert(
            Signal::ImagefsAvailable,
            Observation {
                available: s.blocks_available() * frag,
                capacity: s.blocks() * frag,
            },
        );
    }
    out
}

/// pid.available as upstream measures it: the smaller of the kernel's `pid_max` and
/// `threads-max`, less the tasks (threads) that exist now (from `/proc/loadavg`).
fn pid_observation() -> Option<Observation> {
    let read = |p: &str| -> Option<u64> { std::fs::read_to_string(p).ok()?.trim().parse().ok() };
    let capacity = read("/proc/sys/kernel/pid_max")?.min(read("/proc/sys/kernel/threads-max")?);
    let loadavg = std::fs::read_to_string("/proc/loadavg").ok()?;
    let running: u64 = loadavg
        .split_whitespace()
        .nth(3)?
        .split_once('/')?
        .1
        .parse()
        .ok()?;
    Some(Observation {
        available: capacity.saturating_sub(running),
        capacity,
    })
}

/// The thresholds crossed now, each with its index in `thresholds` (what [`Tracker`]
/// keys on) and what was observed.
pub fn crossed(
    thresholds: &[Threshold],
    observed: &BTreeMap<Signal, Observation>,
) -> Vec<(usize, Threshold, Observation)> {
    thresholds
        .iter()
        .enumerate()
        .filter_map(|(i, t)| {
            let o = observed.get(&t.signal)?;
            (o.available < t.level(o.capacity)).then(|| (i, t.clone(), *o))
        })
        .collect()
}

/// A candidate for eviction.
#[derive(Clone, Debug)]
pub struct Candidate {
    /// The pod.
    pub pod: Pod,
    /// Its current usage of the starved resource, bytes.
    pub usage: u64,
}

/// The pod's summed request of a resource (memory or ephemeral-storage), bytes.
pub fn request_of(pod: &Pod, resource: &str) -> u64 {
    pod.spec
        .iter()
        .flat_map(|s| s.containers.iter())
        .filter_map(|c| c.resources.as_ref()?.requests.as_ref()?.get(resource))
        .filter_map(|q| q.0.parse::<Quantity>().ok())
        .map(|q| q.value().max(0) as u64)
        .sum()
}

/// Orders candidates as upstream does: exceeding requests first, then lower
/// priority, then the largest excess over requests.
pub fn rank(candidates: &mut [Candidate], resource: &str) {
    candidates.sort_by(|a, b| {
        let ex = |c: &Candidate| c.usage > request_of(&c.pod, resource);
        let prio = |c: &Candidate| c.pod.spec.as_ref().and_then(|s| s.priority).unwrap_or(0);
        let over = |c: &Candidate| c.usage as i128 - request_of(&c.pod, resource) as i128;
        ex(b)
            .cmp(&ex(a))
            .then(prio(a).cmp(&prio(b)))
            .then(over(b).cmp(&over(a)))
    });
}

/// Upstream's eviction message.
pub fn message(t: &Threshold, o: &Observation, c: &Candidate, resource: &str) -> String {
    let fmt = |b: u64| {
        let q = Quantity::new(b as i64, apimachinery::Format::BinarySI);
        q.to_string()
    };
    let counted = matches!(t.signal, Signal::NodefsInodesFree | Signal::PidAvailable);
    let available = if counted {
        o.available.to_string()
    } else {
        fmt(o.available)
    };
    let mut msg = format!(
        "The node was low on resource: {}. Threshold quantity: {}, available: {available}. ",
        t.signal.resource(),
        t.display()
    );
    // Upstream names the container's use only for memory and disk.
    let container = c
        .pod
        .spec
        .as_ref()
        .and_then(|s| s.containers.first())
        .filter(|_| t.signal != Signal::PidAvailable);
    if let Some(container) = container {
        msg.push_str(&format!(
            "Container {} was using {}, request is {}, has larger consumption of {resource}. ",
            container.name,
            fmt(c.usage),
            fmt(request_of(&c.pod, resource))
        ));
    }
    msg.trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn soft_thresholds_wait_for_their_grace_period_and_conditions_linger() {
        let soft = parse_soft_thresholds("memory.available<1Gi", "memory.available=30s").unwrap();
        assert_eq!(soft[0].grace_period, Some(Duration::from_secs(30)));
        assert!(parse_soft_thresholds("memory.available<1Gi", "")
            .unwrap_err()
            .contains("grace period must be specified"));
        let mut all = parse_thresholds("memory.available<100Mi").unwrap();
        all.extend(soft);
        let low = |available: u64| {
            BTreeMap::from([(
                Signal::MemoryAvailable,
                Observation {
                    available,
                    capacity: 8 << 30,
                },
            )])
        };
        let mut tr = Tracker::default();
        let t0 = Instant::now();
        // One measurement `secs` after the start with `available` bytes free.
        let mut at = |secs: u64, available: u64| {
            let now = t0 + Duration::from_secs(secs);
            tr.step(
                now,
                &crossed(&all, &low(available)),
                Duration::from_secs(300),
            )
        };
        // Below the soft threshold only: pressure at once, no eviction yet.
        let (cond, act) = at(0, 512 << 20);
        assert!(cond.contains("MemoryPressure"));
        assert!(act.is_empty());
        assert!(at(29, 512 << 20).1.is_empty());
        let (_, act) = at(30, 512 << 20);
        assert_eq!(act.len(), 1);
        assert_eq!(act[0].0.grace_period, Some(Duration::from_secs(30)));
        // Recovering resets the soft threshold's clock; the condition stays for the
        // transition period.
        let (cond, act) = at(40, 4 << 30);
        assert!(cond.contains("MemoryPressure") && act.is_empty());
        assert!(at(50, 512 << 20).1.is_empty());
        // A hard threshold acts at once.
        let (_, act) = at(51, 50 << 20);
        assert!(act.iter().any(|(t, _)| t.grace_period.is_none()));
        // Quiet for the whole transition period: the condition clears.
        let (cond, _) = at(51 + 300, 4 << 30);
        assert!(cond.is_empty());
    }

    #[test]
    fn thresholds_parse_as_upstream() {
        let t = parse_thresholds(DEFAULT_EVICTION_HARD).unwrap();
        assert_eq!(t.len(), 4);
        assert_eq!(t[0].signal, Signal::MemoryAvailable);
        assert_eq!(t[0].level(1 << 30), 100 << 20);
        assert_eq!(t[1].level(1000), 100);
        assert_eq!(t[1].display(), "10%");
        assert!(parse_thresholds("memory.available>1Gi").is_err());
        assert!(parse_thresholds("cpu.available<1").is_err());
        assert!(parse_thresholds("nodefs.available<120%").is_err());
    }

    /// pid.available is measured from the kernel's limits and task count, raises
    /// PIDPressure, and its message counts pids without a container part.
    #[test]
    fn pid_available_is_observed_and_reported_as_upstream() {
        let o = pid_observation().expect("pid.available on Linux");
        assert!(
            o.capacity > 0 && o.available > 0 && o.available < o.capacity,
            "{o:?}"
        );
        let t = parse_thresholds("pid.available<1000").unwrap();
        assert_eq!(t[0].signal.condition(), "PIDPressure");
        let low = Observation {
            available: 900,
            capacity: 4_194_304,
        };
        let observed = BTreeMap::from([(Signal::PidAvailable, low)]);
        let (_, th, o) = crossed(&t, &observed).remove(0);
        let victim = Candidate {
            pod: serde_json::from_value(serde_json::json!({
                "metadata": {"name": "p"},
                "spec": {"containers": [{"name": "c"}]}
            }))
            .unwrap(),
            usage: 50,
        };
        assert_eq!(
            message(&th, &o, &victim, "pids"),
            // (Quantities print canonically, as Go's resource.Quantity does.)
            "The node was low on resource: pids. Threshold quantity: 1k, available: 900."
        );
    }

    #[test]
    fn pressure_and_ranking() {
        let t = parse_thresholds("memory.available<1Gi").unwrap();
        let mut obs = BTreeMap::new();
        obs.insert(
            Signal::MemoryAvailable,
            Observation {
                available: 2 << 30,
                capacity: 8 << 30,
            },
        );
        assert!(crossed(&t, &obs).is_empty());
        obs.insert(
            Signal::MemoryAvailable,
            Observation {
                available: 512 << 20,
                capacity: 8 << 30,
            },
        );
        assert_eq!(crossed(&t, &obs).len(), 1);
        let pod = |name: &str, req: Option<&str>, prio: i32| -> Pod {
            let mut c = json!({"name": "main"});
            if let Some(r) = req {
                c["resources"] = json!({"requests": {"memory": r}});
            }
            serde_json::from_value(
                json!({"metadata": {"name": name}, "spec": {"priority": prio, "containers": [c]}}),
            )
            .unwrap()
        };
        let mut cands = vec![
            Candidate {
                pod: pod("guaranteed", Some("64Mi"), 0),
                usage: 10 << 20,
            },
            Candidate {
                pod: pod("important-hog", None, 1000),
                usage: 300 << 20,
            },
            Candidate {
                pod: pod("small", None, 0),
                usage: 5 << 20,
            },
            Candidate {
                pod: pod("hog", None, 0),
                usage: 200 << 20,
            },
        ];
        rank(&mut cands, "memory");
        let order: Vec<_> = cands
            .iter()
            .map(|c| c.pod.metadata.name.clone().unwrap())
            .collect();
        assert_eq!(order, ["hog", "small", "important-hog", "guaranteed"]);
        let (_, th, o) = crossed(&t, &obs).remove(0);
        assert_eq!(
            message(&th, &o, &cands[0], "memory"),
            "The node was low on resource: memory. Threshold quantity: 1Gi, available: 512Mi. Container main was using 200Mi, request is 0, has larger consumption of memory."
        );
    }
}
