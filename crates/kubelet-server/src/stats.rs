//! Node and pod resource usage: the Summary API (`/stats/summary`, upstream's
//! `stats/v1alpha1` shape) and the resource metrics (`/metrics/resource`, Prometheus
//! text). Usage comes from cgroups (the node's root cgroup, each pod's cgroup — the
//! parent of its containers' cgroups — and each running container's cgroup), file
//! systems from `statvfs` and directory walks, network counters from the pod's
//! `/proc/<pid>/net/dev`.
//!
//! CPU rates (`usageNanoCores`) need two samples: the collector keeps the previous
//! cumulative value per cgroup and derives the rate over at least a second; a cgroup seen
//! for the first time is sampled again after 100 ms.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use container_runtime::cgroups::{self, Stats};
use container_runtime::{ContainerInfo, ContainerState};
use serde_json::{json, Map, Value};

use crate::{labels, Host};

/// Minimum window for a CPU rate.
const RATE_WINDOW: Duration = Duration::from_secs(1);
/// Second sample for a cgroup seen for the first time.
const FIRST_SAMPLE_DELAY: Duration = Duration::from_millis(100);
/// How long a directory walk's result is reused.
const DU_TTL: Duration = Duration::from_secs(10);

/// File system usage.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FsUsage {
    /// Bytes available to unprivileged users (file system) — none for a directory.
    pub available: Option<u64>,
    /// Size of the file system.
    pub capacity: Option<u64>,
    /// Bytes used (by the directory, or the whole file system).
    pub used: u64,
    /// Free inodes of the file system.
    pub inodes_free: Option<u64>,
    /// Inodes of the file system.
    pub inodes: Option<u64>,
    /// Inodes used.
    pub inodes_used: u64,
}

/// Cgroup usage at one moment.
#[derive(Clone, Debug, PartialEq)]
pub struct Usage {
    /// When it was read.
    pub time: SystemTime,
    /// The cgroup's numbers.
    pub stats: Stats,
    /// CPU rate in billionths of a core, when known.
    pub nano_cores: Option<u64>,
}

/// Network counters of a pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InterfaceUsage {
    /// Interface name.
    pub name: String,
    /// Received bytes.
    pub rx_bytes: u64,
    /// Receive errors.
    pub rx_errors: u64,
    /// Transmitted bytes.
    pub tx_bytes: u64,
    /// Transmit errors.
    pub tx_errors: u64,
}

/// One running container.
#[derive(Clone, Debug, PartialEq)]
pub struct ContainerUsage {
    /// Container name in the pod spec.
    pub name: String,
    /// When its process started.
    pub start_time: SystemTime,
    /// Cgroup usage.
    pub usage: Usage,
    /// Its writable layer.
    pub rootfs: Option<FsUsage>,
    /// Its log directory.
    pub logs: Option<FsUsage>,
}

/// One pod with running containers.
#[derive(Clone, Debug, PartialEq)]
pub struct PodUsage {
    /// Pod name.
    pub name: String,
    /// Namespace.
    pub namespace: String,
    /// UID.
    pub uid: String,
    /// `status.startTime` (RFC 3339), when set.
    pub start_time: Option<String>,
    /// The pod cgroup's usage.
    pub usage: Option<Usage>,
    /// Running containers.
    pub containers: Vec<ContainerUsage>,
    /// Volumes by name.
    pub volumes: Vec<(String, FsUsage)>,
    /// Interfaces other than `lo`, with the time they were read.
    pub network: Option<(SystemTime, Vec<InterfaceUsage>)>,
}

/// The whole node.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeUsage {
    /// Node name.
    pub name: String,
    /// Boot time.
    pub start_time: SystemTime,
    /// Root cgroup usage (memory completed from `/proc/meminfo`).
    pub usage: Usage,
    /// Total memory.
    pub memory_capacity: u64,
    /// The kubelet's root directory file system.
    pub fs: Option<FsUsage>,
    /// The image store's file system (used bytes: the store's size).
    pub image_fs: Option<FsUsage>,
    /// `(pid_max, running processes)`.
    pub rlimit: (u64, u64),
}

/// Everything one collection found.
#[derive(Clone, Debug, PartialEq)]
pub struct Snapshot {
    /// When it was collected.
    pub time: SystemTime,
    /// Node usage.
    pub node: NodeUsage,
    /// Pods with running containers, sorted by namespace and name.
    pub pods: Vec<PodUsage>,
}

struct CpuSample {
    at: Instant,
    total: u64,
    rate: Option<u64>,
}

/// Collects usage, keeping what CPU rates need between calls. One per server.
#[derive(Default)]
pub struct StatsCollector {
    samples: Mutex<HashMap<String, CpuSample>>,
    du: Mutex<HashMap<PathBuf, (Instant, u64, u64)>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

impl StatsCollector {
    /// A collector without history.
    pub fn new() -> Self {
        Self::default()
    }

    /// CPU rates for the given (cgroup, cumulative nanoseconds) readings.
    fn rates(&self, readings: &[(String, u64)]) -> HashMap<String, u64> {
        let mut out = HashMap::new();
        let mut missing = Vec::new();
        {
            let now = Instant::now();
            let mut samples = lock(&self.samples);
            let seen: HashSet<&str> = readings.iter().map(|(k, _)| k.as_str()).collect();
            samples.retain(|k, _| seen.contains(k.as_str()));
            for (key, total) in readings {
                match samples.get_mut(key) {
                    Some(s) if now.duration_since(s.at) >= RATE_WINDOW => {
                        let dt = now.duration_since(s.at).as_nanos().max(1);
                        let rate =
                            (total.saturating_sub(s.total) as u128 * 1_000_000_000 / dt) as u64;
                        *s = CpuSample {
                            at: now,
                            total: *total,
                            rate: Some(rate),
                        };
                        out.insert(key.clone(), rate);
                    }
                    Some(CpuSample { rate: Some(r), .. }) => {
                        out.insert(key.clone(), *r);
                    }
                    Some(_) => missing.push((key.clone(), *total)),
                    None => {
                        samples.insert(
                            key.clone(),
                            CpuSample {
                                at: now,
                                total: *total,
                                rate: None,
                            },
                        );
                        missing.push((key.clone(), *total));
                    }
                }
            }
        }
        if missing.is_empty() {
            return out;
        }
        std::thread::sleep(FIRST_SAMPLE_DELAY);
        let now = Instant::now();
        let mut samples = lock(&self.samples);
        for (key, _) in missing {
            let Ok(st) = cgroups::container_stats(&key) else {
                continue;
            };
            if let Some(s) = samples.get_mut(&key) {
                let dt = now.duration_since(s.at).as_nanos().max(1);
                let rate = (st.cpu_usage_nanos.saturating_sub(s.total) as u128 * 1_000_000_000 / dt)
                    as u64;
                *s = CpuSample {
                    at: now,
                    total: st.cpu_usage_nanos,
                    rate: Some(rate),
                };
                out.insert(key, rate);
            }
        }
        out
    }

    /// Disk usage of a directory tree (bytes in allocated blocks, inodes), cached briefly.
    fn du(&self, dir: &Path) -> Option<(u64, u64)> {
        if let Some((at, b, i)) = lock(&self.du).get(dir) {
            if at.elapsed() < DU_TTL {
                return Some((*b, *i));
            }
        }
        let meta = fs::symlink_metadata(dir).ok()?;
        let mut bytes = 0u64;
        let mut inodes = 0u64;
        let mut seen = HashSet::new();
        let mut stack = vec![(dir.to_path_buf(), meta)];
        while let Some((p, m)) = stack.pop() {
            inodes += 1;
            if m.nlink() <= 1 || seen.insert((m.dev(), m.ino())) {
                bytes += m.blocks() * 512;
            }
            if m.is_dir() {
                if let Ok(entries) = fs::read_dir(&p) {
                    for e in entries.flatten() {
                        if let Ok(em) = e.metadata() {
                            if em.dev() == m.dev() || !em.is_dir() {
                                stack.push((e.path(), em));
                            }
                        }
                    }
                }
            }
        }
        lock(&self.du).insert(dir.to_path_buf(), (Instant::now(), bytes, inodes));
        Some((bytes, inodes))
    }

    fn dir_usage(&self, dir: &Path) -> Option<FsUsage> {
        let (used, inodes_used) = self.du(dir)?;
        Some(FsUsage {
            used,
            inodes_used,
            ..Default::default()
        })
    }

    fn fs_of(&self, dir: &Path, used_by_dir: bool) -> Option<FsUsage> {
        let vfs = nix::sys::statvfs::statvfs(dir).ok()?;
        let frag = vfs.fragment_size();
        let capacity = vfs.blocks() * frag;
        let available = vfs.blocks_available() * frag;
        let inodes = vfs.files();
        let inodes_free = vfs.files_free();
        let (used, inodes_used) = if used_by_dir {
            self.du(dir)?
        } else {
            (
                vfs.blocks().saturating_sub(vfs.blocks_free()) * frag,
                inodes.saturating_sub(inodes_free),
            )
        };
        Some(FsUsage {
            available: Some(available),
            capacity: Some(capacity),
            used,
            inodes_free: Some(inodes_free),
            inodes: Some(inodes),
            inodes_used,
        })
    }

    /// Reads everything (blocking: cgroup files, directory walks, maybe a 100 ms pause).
    pub fn collect(&self, host: &dyn Host, only_cpu_and_memory: bool) -> Snapshot {
        let time = SystemTime::now();
        let containers = host.runtime().list().unwrap_or_default();
        let mut by_pod: HashMap<String, Vec<(ContainerInfo, String)>> = HashMap::new();
        for c in containers {
            if !matches!(c.state, ContainerState::Running { .. }) {
                continue;
            }
            let Some(uid) = c.labels.get(labels::POD_UID).cloned() else {
                continue;
            };
            let Ok(cg) = host.runtime().cgroup_path(&c.id) else {
                continue;
            };
            by_pod.entry(uid).or_default().push((c, cg));
        }

        // Raw cgroup numbers first, then one round of rate computation for all.
        let read = |cg: &str| cgroups::container_stats(cg).ok();
        let node_stats = read("/").unwrap_or_default();
        let mut readings = vec![("/".to_string(), node_stats.cpu_usage_nanos)];
        struct PodRaw {
            pod: k8s_openapi::api::core::v1::Pod,
            cgroup: Option<(String, Stats)>,
            containers: Vec<(ContainerInfo, String, Stats)>,
        }
        let mut raw = Vec::new();
        for pod in host.pods() {
            let uid = pod.metadata.uid.clone().unwrap_or_default();
            let Some(list) = by_pod.remove(&uid) else {
                continue;
            };
            let mut cs = Vec::new();
            for (info, cg) in list {
                if let Some(st) = read(&cg) {
                    readings.push((cg.clone(), st.cpu_usage_nanos));
                    cs.push((info, cg, st));
                }
            }
            let pod_cg = cs
                .first()
                .and_then(|(_, cg, _)| cg.rsplit_once('/').map(|(p, _)| p.to_string()))
                .filter(|p| !p.is_empty());
            let cgroup = pod_cg.and_then(|p| read(&p).map(|st| (p, st)));
            if let Some((p, st)) = &cgroup {
                readings.push((p.clone(), st.cpu_usage_nanos));
            }
            raw.push(PodRaw {
                pod,
                cgroup,
                containers: cs,
            });
        }
        let rates = self.rates(&readings);
        let usage = |key: &str, stats: Stats| Usage {
            time,
            nano_cores: rates.get(key).copied(),
            stats,
        };

        let mut pods = Vec::new();
        for r in raw {
            let m = &r.pod.metadata;
            let uid = m.uid.clone().unwrap_or_default();
            let mut containers = Vec::new();
            let mut init_pid = None;
            for (info, cg, st) in r.containers {
                let ContainerState::Running { pid, started_at } = info.state else {
                    continue;
                };
                init_pid.get_or_insert(pid);
                let name = info
                    .labels
                    .get(labels::CONTAINER_NAME)
                    .cloned()
                    .unwrap_or_default();
                let (rootfs, logs) = if only_cpu_and_memory {
                    (None, None)
                } else {
                    (
                        host.container_rootfs(&info.id)
                            .and_then(|p| self.fs_with_dir(host, &p)),
                        info.log_path
                            .parent()
                            .and_then(|p| self.fs_with_dir(host, p)),
                    )
                };
                containers.push(ContainerUsage {
                    name,
                    start_time: started_at,
                    usage: usage(&cg, st),
                    rootfs,
                    logs,
                });
            }
            containers.sort_by(|a, b| a.name.cmp(&b.name));
            let (volumes, network) = if only_cpu_and_memory {
                (Vec::new(), None)
            } else {
                let volumes = host
                    .pod_volumes(&uid)
                    .into_iter()
                    .filter_map(|(n, p)| self.fs_with_dir(host, &p).map(|u| (n, u)))
                    .collect();
                let network = init_pid.and_then(read_net_dev).map(|i| (time, i));
                (volumes, network)
            };
            pods.push(PodUsage {
                name: m.name.clone().unwrap_or_default(),
                namespace: m.namespace.clone().unwrap_or_default(),
                uid,
                start_time: r
                    .pod
                    .status
                    .as_ref()
                    .and_then(|s| s.start_time.as_ref())
                    .map(|t| t.0.to_string()),
                usage: r.cgroup.map(|(p, st)| usage(&p, st)),
                containers,
                volumes,
                network,
            });
        }
        pods.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));

        let meminfo = read_meminfo();
        let total = meminfo.get("MemTotal").copied().unwrap_or(0);
        let mut node_stats = node_stats;
        if node_stats.memory_usage_bytes == 0 {
            // No usage file in the root cgroup (cgroup v2): from /proc/meminfo.
            let free = meminfo.get("MemFree").copied().unwrap_or(0);
            let inactive_file = meminfo.get("Inactive(file)").copied().unwrap_or(0);
            node_stats.memory_usage_bytes = total.saturating_sub(free);
            node_stats.memory_working_set_bytes =
                node_stats.memory_usage_bytes.saturating_sub(inactive_file);
            if node_stats.rss == 0 {
                node_stats.rss = meminfo.get("AnonPages").copied().unwrap_or(0);
            }
        }
        let node = NodeUsage {
            name: host.node_name(),
            start_time: boot_time().unwrap_or(UNIX_EPOCH),
            usage: usage("/", node_stats),
            memory_capacity: total,
            fs: if only_cpu_and_memory {
                None
            } else {
                self.fs_of(&host.root_dir(), false)
            },
            image_fs: if only_cpu_and_memory {
                None
            } else {
                self.fs_of(&host.image_fs_dir(), true)
            },
            rlimit: rlimit(),
        };
        Snapshot { time, node, pods }
    }

    /// Directory usage completed with its file system's totals.
    fn fs_with_dir(&self, _host: &dyn Host, dir: &Path) -> Option<FsUsage> {
        let mut u = self.dir_usage(dir)?;
        if let Ok(vfs) = nix::sys::statvfs::statvfs(dir) {
            let frag = vfs.fragment_size();
            u.available = Some(vfs.blocks_available() * frag);
            u.capacity = Some(vfs.blocks() * frag);
            u.inodes = Some(vfs.files());
            u.inodes_free = Some(vfs.files_free());
        }
        Some(u)
    }

    /// The `/stats/summary` document.
    pub fn summary(&self, host: &dyn Host, only_cpu_and_memory: bool) -> Value {
        summary_json(
            &self.collect(host, only_cpu_and_memory),
            only_cpu_and_memory,
        )
    }

    /// The `/metrics/resource` text.
    pub fn resource_metrics(&self, host: &dyn Host) -> String {
        resource_metrics_text(&self.collect(host, true))
    }
}

/// metav1.Time's JSON form (RFC 3339, whole seconds, UTC).
fn rfc3339(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs() as i64;
    jiff::Timestamp::from_second(secs)
        .map(|ts| ts.to_string())
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".to_string())
}

fn cpu_json(u: &Usage) -> Value {
    let mut m = Map::new();
    m.insert("time".into(), rfc3339(u.time).into());
    if let Some(r) = u.nano_cores {
        m.insert("usageNanoCores".into(), r.into());
    }
    m.insert(
        "usageCoreNanoSeconds".into(),
        u.stats.cpu_usage_nanos.into(),
    );
    Value::Object(m)
}

fn memory_json(u: &Usage, capacity: Option<u64>) -> Value {
    let s = &u.stats;
    let mut m = Map::new();
    m.insert("time".into(), rfc3339(u.time).into());
    if let Some(limit) = capacity.or(s.memory_limit_bytes) {
        m.insert(
            "availableBytes".into(),
            limit.saturating_sub(s.memory_working_set_bytes).into(),
        );
    }
    m.insert("usageBytes".into(), s.memory_usage_bytes.into());
    m.insert("workingSetBytes".into(), s.memory_working_set_bytes.into());
    m.insert("rssBytes".into(), s.rss.into());
    m.insert("pageFaults".into(), s.page_faults.into());
    m.insert("majorPageFaults".into(), s.major_page_faults.into());
    Value::Object(m)
}

fn fs_json(time: SystemTime, f: &FsUsage) -> Value {
    let mut m = Map::new();
    m.insert("time".into(), rfc3339(time).into());
    if let Some(v) = f.available {
        m.insert("availableBytes".into(), v.into());
    }
    if let Some(v) = f.capacity {
        m.insert("capacityBytes".into(), v.into());
    }
    m.insert("usedBytes".into(), f.used.into());
    if let Some(v) = f.inodes_free {
        m.insert("inodesFree".into(), v.into());
    }
    if let Some(v) = f.inodes {
        m.insert("inodes".into(), v.into());
    }
    m.insert("inodesUsed".into(), f.inodes_used.into());
    Value::Object(m)
}

/// Builds the Summary document from a snapshot.
pub fn summary_json(s: &Snapshot, only_cpu_and_memory: bool) -> Value {
    let n = &s.node;
    let mut node = Map::new();
    node.insert("nodeName".into(), n.name.clone().into());
    node.insert("startTime".into(), rfc3339(n.start_time).into());
    node.insert("cpu".into(), cpu_json(&n.usage));
    node.insert(
        "memory".into(),
        memory_json(&n.usage, Some(n.memory_capacity)),
    );
    if !only_cpu_and_memory {
        if let Some(f) = &n.fs {
            node.insert("fs".into(), fs_json(s.time, f));
        }
        if let Some(f) = &n.image_fs {
            node.insert(
                "runtime".into(),
                json!({"imageFs": fs_json(s.time, f), "containerFs": fs_json(s.time, f)}),
            );
        }
        node.insert(
            "rlimit".into(),
            json!({"time": rfc3339(s.time), "maxpid": n.rlimit.0, "curproc": n.rlimit.1}),
        );
    }
    let mut pods = Vec::new();
    for p in &s.pods {
        let mut pod = Map::new();
        pod.insert(
            "podRef".into(),
            json!({"name": p.name, "namespace": p.namespace, "uid": p.uid}),
        );
        pod.insert(
            "startTime".into(),
            p.start_time
                .clone()
                .unwrap_or_else(|| rfc3339(s.time))
                .into(),
        );
        let mut containers = Vec::new();
        for c in &p.containers {
            let mut cm = Map::new();
            cm.insert("name".into(), c.name.clone().into());
            cm.insert("startTime".into(), rfc3339(c.start_time).into());
            cm.insert("cpu".into(), cpu_json(&c.usage));
            cm.insert("memory".into(), memory_json(&c.usage, None));
            if !only_cpu_and_memory {
                if let Some(f) = &c.rootfs {
                    cm.insert("rootfs".into(), fs_json(s.time, f));
                }
                if let Some(f) = &c.logs {
                    cm.insert("logs".into(), fs_json(s.time, f));
                }
            }
            containers.push(Value::Object(cm));
        }
        pod.insert("containers".into(), Value::Array(containers));
        if let Some(u) = &p.usage {
            pod.insert("cpu".into(), cpu_json(u));
            pod.insert("memory".into(), memory_json(u, None));
        }
        if !only_cpu_and_memory {
            if let Some((t, ifaces)) = &p.network {
                if let Some(first) = ifaces.first() {
                    let list: Vec<Value> = ifaces
                        .iter()
                        .map(|i| {
                            json!({"name": i.name, "rxBytes": i.rx_bytes, "rxErrors": i.rx_errors,
                                   "txBytes": i.tx_bytes, "txErrors": i.tx_errors})
                        })
                        .collect();
                    pod.insert(
                        "network".into(),
                        json!({"time": rfc3339(*t), "name": first.name, "rxBytes": first.rx_bytes,
                               "rxErrors": first.rx_errors, "txBytes": first.tx_bytes,
                               "txErrors": first.tx_errors, "interfaces": list}),
                    );
                }
            }
            let volumes: Vec<Value> = p
                .volumes
                .iter()
                .map(|(name, f)| {
                    let mut v = fs_json(s.time, f);
                    if let Value::Object(m) = &mut v {
                        m.insert("name".into(), name.clone().into());
                    }
                    v
                })
                .collect();
            if !volumes.is_empty() {
                pod.insert("volume".into(), Value::Array(volumes));
            }
            // Ephemeral storage: writable layers, logs and node-local volumes.
            let mut eph = FsUsage::default();
            let mut any = false;
            for f in p
                .containers
                .iter()
                .flat_map(|c| c.rootfs.iter().chain(c.logs.iter()))
                .chain(p.volumes.iter().map(|(_, f)| f))
            {
                any = true;
                eph.used += f.used;
                eph.inodes_used += f.inodes_used;
                eph.available = f.available.or(eph.available);
                eph.capacity = f.capacity.or(eph.capacity);
                eph.inodes = f.inodes.or(eph.inodes);
                eph.inodes_free = f.inodes_free.or(eph.inodes_free);
            }
            if any {
                pod.insert("ephemeral-storage".into(), fs_json(s.time, &eph));
            }
            if let Some(u) = &p.usage {
                pod.insert(
                    "process_stats".into(),
                    json!({"process_count": u.stats.pids}),
                );
            }
        }
        pods.push(Value::Object(pod));
    }
    json!({"node": Value::Object(node), "pods": pods})
}

/// Formats a number as Go's `strconv.FormatFloat(f, 'g', -1, 64)` (the Prometheus text
/// format's number form): the shortest digits that round-trip, in exponent form when the
/// decimal exponent is below -4 or at least 6.
pub fn go_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    if f == 0.0 {
        return "0".into();
    }
    // Shortest round-trip digits and the decimal exponent, from Rust's `{:e}`.
    let e = format!("{f:e}");
    let (mant, exp) = e.split_once('e').unwrap_or((&e, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let sign = if mant.starts_with('-') { "-" } else { "" };
    let digits: String = mant.chars().filter(|c| c.is_ascii_digit()).collect();
    if !(-4..6).contains(&exp) {
        return exp_form(sign, &digits, exp);
    }
    if exp >= 0 {
        let int_len = (exp + 1) as usize;
        if digits.len() <= int_len {
            format!("{sign}{digits}{}", "0".repeat(int_len - digits.len()))
        } else {
            format!("{sign}{}.{}", &digits[..int_len], &digits[int_len..])
        }
    } else {
        format!("{sign}0.{}{digits}", "0".repeat((-exp - 1) as usize))
    }
}

fn exp_form(sign: &str, digits: &str, exp: i32) -> String {
    let (first, rest) = digits.split_at(1);
    let mant = if rest.is_empty() {
        first.to_string()
    } else {
        format!("{first}.{rest}")
    };
    let esign = if exp < 0 { '-' } else { '+' };
    format!("{sign}{mant}e{esign}{:02}", exp.abs())
}

fn millis(t: SystemTime) -> u128 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis()
}

fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The `/metrics/resource` text for a snapshot (families in name order, as the
/// Prometheus registry emits them).
pub fn resource_metrics_text(s: &Snapshot) -> String {
    let mut out = String::new();
    let family = |out: &mut String, name: &str, help: &str, kind: &str, lines: &[String]| {
        if lines.is_empty() {
            return;
        }
        let _ = writeln!(out, "# HELP {name} [STABLE] {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for l in lines {
            out.push_str(l);
            out.push('\n');
        }
    };
    let mut containers: Vec<(&PodUsage, &ContainerUsage)> = s
        .pods
        .iter()
        .flat_map(|p| p.containers.iter().map(move |c| (p, c)))
        .collect();
    containers.sort_by(|(pa, ca), (pb, cb)| {
        (&ca.name, &pa.namespace, &pa.name).cmp(&(&cb.name, &pb.namespace, &pb.name))
    });
    let clabels = |p: &PodUsage, c: &ContainerUsage| {
        format!(
            "{{container=\"{}\",namespace=\"{}\",pod=\"{}\"}}",
            escape_label(&c.name),
            escape_label(&p.namespace),
            escape_label(&p.name)
        )
    };
    let plabels = |p: &PodUsage| {
        format!(
            "{{namespace=\"{}\",pod=\"{}\"}}",
            escape_label(&p.namespace),
            escape_label(&p.name)
        )
    };
    let secs = |ns: u64| go_float(ns as f64 / 1e9);
    let lines: Vec<String> = containers
        .iter()
        .map(|(p, c)| {
            format!(
                "container_cpu_usage_seconds_total{} {} {}",
                clabels(p, c),
                secs(c.usage.stats.cpu_usage_nanos),
                millis(c.usage.time)
            )
        })
        .collect();
    family(
        &mut out,
        "container_cpu_usage_seconds_total",
        "Cumulative cpu time consumed by the container in core-seconds",
        "counter",
        &lines,
    );
    let lines: Vec<String> = containers
        .iter()
        .map(|(p, c)| {
            format!(
                "container_memory_working_set_bytes{} {} {}",
                clabels(p, c),
                go_float(c.usage.stats.memory_working_set_bytes as f64),
                millis(c.usage.time)
            )
        })
        .collect();
    family(
        &mut out,
        "container_memory_working_set_bytes",
        "Current working set of the container in bytes",
        "gauge",
        &lines,
    );
    let lines: Vec<String> = containers
        .iter()
        .map(|(p, c)| {
            let t = c
                .start_time
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos() as f64
                / 1e9;
            format!(
                "container_start_time_seconds{} {}",
                clabels(p, c),
                go_float(t)
            )
        })
        .collect();
    family(
        &mut out,
        "container_start_time_seconds",
        "Start time of the container since unix epoch in seconds",
        "gauge",
        &lines,
    );
    let n = &s.node;
    family(
        &mut out,
        "node_cpu_usage_seconds_total",
        "Cumulative cpu time consumed by the node in core-seconds",
        "counter",
        &[format!(
            "node_cpu_usage_seconds_total {} {}",
            secs(n.usage.stats.cpu_usage_nanos),
            millis(n.usage.time)
        )],
    );
    family(
        &mut out,
        "node_memory_working_set_bytes",
        "Current working set of the node in bytes",
        "gauge",
        &[format!(
            "node_memory_working_set_bytes {} {}",
            go_float(n.usage.stats.memory_working_set_bytes as f64),
            millis(n.usage.time)
        )],
    );
    let pods: Vec<(&PodUsage, &Usage)> = s
        .pods
        .iter()
        .filter_map(|p| p.usage.as_ref().map(|u| (p, u)))
        .collect();
    let lines: Vec<String> = pods
        .iter()
        .map(|(p, u)| {
            format!(
                "pod_cpu_usage_seconds_total{} {} {}",
                plabels(p),
                secs(u.stats.cpu_usage_nanos),
                millis(u.time)
            )
        })
        .collect();
    family(
        &mut out,
        "pod_cpu_usage_seconds_total",
        "Cumulative cpu time consumed by the pod in core-seconds",
        "counter",
        &lines,
    );
    let lines: Vec<String> = pods
        .iter()
        .map(|(p, u)| {
            format!(
                "pod_memory_working_set_bytes{} {} {}",
                plabels(p),
                go_float(u.stats.memory_working_set_bytes as f64),
                millis(u.time)
            )
        })
        .collect();
    family(
        &mut out,
        "pod_memory_working_set_bytes",
        "Current working set of the pod in bytes",
        "gauge",
        &lines,
    );
    family(
        &mut out,
        "resource_scrape_error",
        "1 if there was an error while getting container metrics, 0 otherwise",
        "gauge",
        &["resource_scrape_error 0".to_string()],
    );
    out
}

fn read_meminfo() -> HashMap<String, u64> {
    let text = fs::read_to_string("/proc/meminfo").unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            let kb: u64 = v.split_whitespace().next()?.parse().ok()?;
            Some((k.to_string(), kb * 1024))
        })
        .collect()
}

fn boot_time() -> Option<SystemTime> {
    let stat = fs::read_to_string("/proc/stat").ok()?;
    let secs: u64 = stat
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    Some(UNIX_EPOCH + Duration::from_secs(secs))
}

fn rlimit() -> (u64, u64) {
    let max = fs::read_to_string("/proc/sys/kernel/pid_max")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0);
    let cur = fs::read_dir("/proc")
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
                .count() as u64
        })
        .unwrap_or(0);
    (max, cur)
}

/// Interfaces (other than `lo`) of the network namespace of process `pid`.
fn read_net_dev(pid: i32) -> Option<Vec<InterfaceUsage>> {
    let text = fs::read_to_string(format!("/proc/{pid}/net/dev")).ok()?;
    let list: Vec<InterfaceUsage> = text
        .lines()
        .skip(2)
        .filter_map(parse_net_dev_line)
        .collect();
    (!list.is_empty()).then_some(list)
}

fn parse_net_dev_line(line: &str) -> Option<InterfaceUsage> {
    let (name, rest) = line.split_once(':')?;
    let name = name.trim();
    if name == "lo" {
        return None;
    }
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|v| v.parse().unwrap_or(0))
        .collect();
    Some(InterfaceUsage {
        name: name.to_string(),
        rx_bytes: *f.first()?,
        rx_errors: *f.get(2)?,
        tx_bytes: *f.get(8)?,
        tx_errors: *f.get(10)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_float_formatting() {
        for (v, want) in [
            (0.0, "0"),
            (10.0, "10"),
            (1000.0, "1000"),
            (123456.0, "123456"),
            (1234567.0, "1.234567e+06"),
            (17391616.0, "1.7391616e+07"),
            (1.137475584e9, "1.137475584e+09"),
            (422.097108038, "422.097108038"),
            (6197.005020909, "6197.005020909"),
            (1.7506078418297591e9, "1.7506078418297591e+09"),
            (0.5, "0.5"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (-2.5, "-2.5"),
            (1e21, "1e+21"),
        ] {
            assert_eq!(go_float(v), want, "{v}");
        }
    }

    #[test]
    fn net_dev_lines() {
        let l = "  eth0: 1000 10 2 0 0 0 0 0 2000 20 3 0 0 0 0 0";
        assert_eq!(
            parse_net_dev_line(l),
            Some(InterfaceUsage {
                name: "eth0".into(),
                rx_bytes: 1000,
                rx_errors: 2,
                tx_bytes: 2000,
                tx_errors: 3
            })
        );
        assert_eq!(
            parse_net_dev_line("    lo: 1 1 0 0 0 0 0 0 1 1 0 0 0 0 0 0"),
            None
        );
    }

    fn usage(t: SystemTime, cpu: u64, ws: u64) -> Usage {
        Usage {
            time: t,
            stats: Stats {
                cpu_usage_nanos: cpu,
                memory_usage_bytes: ws + 100,
                memory_working_set_bytes: ws,
                ..Default::default()
            },
            nano_cores: Some(5_000_000),
        }
    }

    fn snapshot() -> Snapshot {
        let t = UNIX_EPOCH + Duration::from_nanos(1_624_396_278_302_091_597);
        let start = t - Duration::from_secs(30);
        Snapshot {
            time: t,
            node: NodeUsage {
                name: "node-1".into(),
                start_time: UNIX_EPOCH + Duration::from_secs(1_600_000_000),
                usage: usage(t, 10_000_000_000, 1000),
                memory_capacity: 4000,
                fs: None,
                image_fs: None,
                rlimit: (4194304, 100),
            },
            pods: vec![PodUsage {
                name: "pod_a".into(),
                namespace: "namespace_a".into(),
                uid: "u1".into(),
                start_time: Some("2021-06-22T21:10:00Z".into()),
                usage: Some(usage(t, 20_000_000_000, 2000)),
                containers: vec![ContainerUsage {
                    name: "container_a".into(),
                    start_time: start,
                    usage: usage(t, 10_000_000_000, 1000),
                    rootfs: None,
                    logs: Some(FsUsage {
                        used: 4096,
                        inodes_used: 2,
                        ..Default::default()
                    }),
                }],
                volumes: vec![],
                network: None,
            }],
        }
    }

    #[test]
    fn metrics_text() {
        let text = resource_metrics_text(&snapshot());
        let want = "\
# HELP container_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by the container in core-seconds
# TYPE container_cpu_usage_seconds_total counter
container_cpu_usage_seconds_total{container=\"container_a\",namespace=\"namespace_a\",pod=\"pod_a\"} 10 1624396278302
# HELP container_memory_working_set_bytes [STABLE] Current working set of the container in bytes
# TYPE container_memory_working_set_bytes gauge
container_memory_working_set_bytes{container=\"container_a\",namespace=\"namespace_a\",pod=\"pod_a\"} 1000 1624396278302
# HELP container_start_time_seconds [STABLE] Start time of the container since unix epoch in seconds
# TYPE container_start_time_seconds gauge
container_start_time_seconds{container=\"container_a\",namespace=\"namespace_a\",pod=\"pod_a\"} 1.6243962483020916e+09
# HELP node_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by the node in core-seconds
# TYPE node_cpu_usage_seconds_total counter
node_cpu_usage_seconds_total 10 1624396278302
# HELP node_memory_working_set_bytes [STABLE] Current working set of the node in bytes
# TYPE node_memory_working_set_bytes gauge
node_memory_working_set_bytes 1000 1624396278302
# HELP pod_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by the pod in core-seconds
# TYPE pod_cpu_usage_seconds_total counter
pod_cpu_usage_seconds_total{namespace=\"namespace_a\",pod=\"pod_a\"} 20 1624396278302
# HELP pod_memory_working_set_bytes [STABLE] Current working set of the pod in bytes
# TYPE pod_memory_working_set_bytes gauge
pod_memory_working_set_bytes{namespace=\"namespace_a\",pod=\"pod_a\"} 2000 1624396278302
# HELP resource_scrape_error [STABLE] 1 if there was an error while getting container metrics, 0 otherwise
# TYPE resource_scrape_error gauge
resource_scrape_error 0
";
        assert_eq!(text, want);
    }

    #[test]
    fn summary_shape() {
        let v = summary_json(&snapshot(), false);
        assert_eq!(v["node"]["nodeName"], "node-1");
        assert_eq!(v["node"]["startTime"], "2020-09-13T12:26:40Z");
        assert_eq!(v["node"]["cpu"]["time"], "2021-06-22T21:11:18Z");
        assert_eq!(v["node"]["cpu"]["usageNanoCores"], 5_000_000);
        assert_eq!(v["node"]["cpu"]["usageCoreNanoSeconds"], 10_000_000_000u64);
        assert_eq!(v["node"]["memory"]["availableBytes"], 3000);
        assert_eq!(v["node"]["memory"]["workingSetBytes"], 1000);
        assert_eq!(v["node"]["memory"]["usageBytes"], 1100);
        assert_eq!(v["node"]["rlimit"]["maxpid"], 4194304);
        let pod = &v["pods"][0];
        assert_eq!(
            pod["podRef"],
            json!({"name": "pod_a", "namespace": "namespace_a", "uid": "u1"})
        );
        assert_eq!(pod["startTime"], "2021-06-22T21:10:00Z");
        assert_eq!(pod["containers"][0]["name"], "container_a");
        assert_eq!(pod["containers"][0]["startTime"], "2021-06-22T21:10:48Z");
        assert!(pod["containers"][0]["memory"]
            .get("availableBytes")
            .is_none());
        assert_eq!(pod["containers"][0]["logs"]["usedBytes"], 4096);
        assert_eq!(pod["memory"]["workingSetBytes"], 2000);
        assert_eq!(pod["ephemeral-storage"]["usedBytes"], 4096);
        let small = summary_json(&snapshot(), true);
        assert!(small["node"].get("rlimit").is_none());
        assert!(small["pods"][0]["containers"][0].get("logs").is_none());
    }
}
