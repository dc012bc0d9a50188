//! The kubelet's pod cgroup tree, laid out as upstream's cgroupfs driver does it
//! (`/kubepods/pod<uid>` for Guaranteed pods, `/kubepods/burstable/pod<uid>`,
//! `/kubepods/besteffort/pod<uid>`), on every cgroup v1 hierarchy or on the v2 tree; plus
//! container cgroup helpers: OOM-kill counters, killing and removing leftovers, and the
//! usage numbers behind the kubelet's `/stats/summary`.
//!
//! cgroup v2 is used when `/sys/fs/cgroup` is a cgroup2 mount, or when no v1 memory
//! hierarchy exists and the v2 mount has the memory controller. In hybrid setups (v1
//! hierarchies plus a v2 mount at `/sys/fs/cgroup/unified`) the v1 hierarchies carry the
//! limits and the v2 directories are only created and removed alongside, as runc does.

use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::Error;

/// Which cgroup interface limits are written through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CgroupVersion {
    /// Legacy per-controller hierarchies.
    V1,
    /// The unified hierarchy.
    V2,
}

/// A pod's QoS class, which decides where its cgroup lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum QosClass {
    /// Directly under `kubepods`.
    Guaranteed,
    /// Under `kubepods/burstable`.
    Burstable,
    /// Under `kubepods/besteffort`.
    BestEffort,
}

/// Limits written into a pod cgroup. `None` for a limit means unlimited (written as such,
/// so an update can lift a limit); `None` for `cpu_shares`/`cpu_period_us` leaves the
/// current value.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodResources {
    /// `cpu.shares` (v1) or the equivalent `cpu.weight` (v2).
    pub cpu_shares: Option<u64>,
    /// CFS quota per period in microseconds.
    pub cpu_quota_us: Option<i64>,
    /// CFS period in microseconds (100000 when unset on v2).
    pub cpu_period_us: Option<u64>,
    /// Memory limit in bytes.
    pub memory_limit_bytes: Option<i64>,
    /// Maximum number of processes.
    pub pids_limit: Option<i64>,
}

/// Resource usage of one cgroup, for the kubelet's `/stats/summary`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Cumulative CPU time in nanoseconds.
    pub cpu_usage_nanos: u64,
    /// Memory usage including page cache.
    pub memory_usage_bytes: u64,
    /// Usage minus inactive file pages (what the kubelet evicts on).
    pub memory_working_set_bytes: u64,
    /// Anonymous memory (`total_rss` on v1, `anon` on v2).
    pub rss: u64,
    /// Cumulative page faults.
    pub page_faults: u64,
    /// Cumulative major page faults.
    pub major_page_faults: u64,
    /// The memory limit, when one is set.
    pub memory_limit_bytes: Option<u64>,
    /// Current number of processes.
    pub pids: u64,
}

#[derive(Debug, Default)]
struct Mounts {
    /// v1 hierarchies: controllers (including `name=...`) and mount point.
    v1: Vec<(Vec<String>, PathBuf)>,
    /// The cgroup2 mount, if any.
    v2: Option<PathBuf>,
}

fn parse_mountinfo(text: &str) -> Mounts {
    let mut m = Mounts::default();
    for line in text.lines() {
        let Some((pre, post)) = line.split_once(" - ") else {
            continue;
        };
        let mount_point = match pre.split(' ').nth(4) {
            Some(p) => PathBuf::from(unescape_mount(p)),
            None => continue,
        };
        let mut post = post.split(' ');
        let fstype = post.next().unwrap_or("");
        let _source = post.next();
        let options = post.next().unwrap_or("");
        match fstype {
            "cgroup" => {
                let controllers: Vec<String> = options
                    .split(',')
                    .filter(|o| {
                        !matches!(*o, "rw" | "ro")
                            && !o.starts_with("release_agent")
                            && *o != "clone_children"
                            && *o != "noprefix"
                            && *o != "xattr"
                    })
                    .map(str::to_string)
                    .collect();
                if !controllers.is_empty() && !m.v1.iter().any(|(c, _)| *c == controllers) {
                    m.v1.push((controllers, mount_point));
                }
            }
            "cgroup2" if m.v2.is_none() => m.v2 = Some(mount_point),
            _ => {}
        }
    }
    m
}

fn unescape_mount(s: &str) -> String {
    s.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\134", "\\")
}

fn mounts() -> &'static Mounts {
    static MOUNTS: OnceLock<Mounts> = OnceLock::new();
    MOUNTS.get_or_init(|| {
        fs::read_to_string("/proc/self/mountinfo")
            .map(|t| parse_mountinfo(&t))
            .unwrap_or_default()
    })
}

/// Looks up the cgroup mount table and interface now, so processes forked later
/// inherit them instead of reading `/proc/self/mountinfo` again.
pub(crate) fn warm() {
    let _ = mounts();
    let _ = version();
}

/// The cgroup interface of this machine.
pub fn version() -> CgroupVersion {
    static VERSION: OnceLock<CgroupVersion> = OnceLock::new();
    *VERSION.get_or_init(|| {
        let m = mounts();
        if m.v2.as_deref() == Some(Path::new("/sys/fs/cgroup")) {
            return CgroupVersion::V2;
        }
        let v1_memory = m.v1.iter().any(|(c, _)| c.iter().any(|c| c == "memory"));
        if v1_memory {
            return CgroupVersion::V1;
        }
        let v2_memory = m.v2.as_ref().is_some_and(|p| {
            fs::read_to_string(p.join("cgroup.controllers"))
                .map(|c| c.split_whitespace().any(|c| c == "memory"))
                .unwrap_or(false)
        });
        if v2_memory || m.v1.is_empty() {
            CgroupVersion::V2
        } else {
            CgroupVersion::V1
        }
    })
}

/// Turns an absolute cgroup path (`/kubepods/...`) into a relative one, refusing `..`.
fn relative(cgroup: &str) -> Result<PathBuf, Error> {
    let mut rel = PathBuf::new();
    for c in Path::new(cgroup).components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(p) => rel.push(p),
            _ => {
                return Err(Error::Cgroup {
                    path: PathBuf::from(cgroup),
                    message: "cgroup path must not contain '..'".into(),
                })
            }
        }
    }
    Ok(rel)
}

/// Every hierarchy root a cgroup path exists in: all v1 hierarchies plus the v2 mount
/// (v1/hybrid), or only the v2 mount.
fn hierarchy_roots() -> Vec<PathBuf> {
    let m = mounts();
    match version() {
        CgroupVersion::V2 => m.v2.iter().cloned().collect(),
        CgroupVersion::V1 => {
            m.v1.iter()
                .map(|(_, p)| p.clone())
                .chain(m.v2.iter().cloned())
                .collect()
        }
    }
}

/// The directory of `cgroup` in the hierarchy that carries `controller`.
pub(crate) fn controller_dir(controller: &str, cgroup: &str) -> Result<Option<PathBuf>, Error> {
    let rel = relative(cgroup)?;
    let m = mounts();
    Ok(match version() {
        CgroupVersion::V2 => m.v2.as_ref().map(|p| p.join(&rel)),
        CgroupVersion::V1 => {
            m.v1.iter()
                .find(|(c, _)| c.iter().any(|c| c == controller))
                .map(|(_, p)| p.join(&rel))
        }
    })
}

/// The directory of `cgroup` in each hierarchy that carries limits, named as the
/// hierarchy's mount point is (`memory`, `cpu,cpuacct`; one unnamed entry on cgroup v2).
/// A hybrid setup's v2 mount is left out, as runc leaves it out of containers.
pub(crate) fn named_dirs(cgroup: &str) -> Result<Vec<(String, PathBuf)>, Error> {
    let rel = relative(cgroup)?;
    let m = mounts();
    let roots: Vec<PathBuf> = match version() {
        CgroupVersion::V2 => m.v2.iter().cloned().collect(),
        CgroupVersion::V1 => m.v1.iter().map(|(_, p)| p.clone()).collect(),
    };
    Ok(roots
        .into_iter()
        .map(|r| {
            let name = match version() {
                CgroupVersion::V2 => String::new(),
                CgroupVersion::V1 => r
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            };
            (name, r.join(&rel))
        })
        .collect())
}

/// The symlinks next to the v1 hierarchies (`cpu -> cpu,cpuacct`), as (name, target).
pub(crate) fn hierarchy_links() -> Vec<(String, String)> {
    let Some(base) = hierarchy_roots()
        .first()
        .and_then(|r| r.parent().map(Path::to_path_buf))
    else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in fs::read_dir(&base).into_iter().flatten().flatten() {
        if let Ok(target) = fs::read_link(e.path()) {
            let target = target.to_string_lossy().into_owned();
            if !target.contains('/') {
                out.push((e.file_name().to_string_lossy().into_owned(), target));
            }
        }
    }
    out.sort();
    out
}

/// Moves process `pid` into `cgroup` on every hierarchy.
pub(crate) fn add_process(cgroup: &str, pid: i32) -> Result<(), Error> {
    for dir in all_dirs(cgroup)? {
        write_file(&dir, "cgroup.procs", &pid.to_string())?;
    }
    Ok(())
}

/// Every directory of `cgroup` across hierarchies.
fn all_dirs(cgroup: &str) -> Result<Vec<PathBuf>, Error> {
    let rel = relative(cgroup)?;
    Ok(hierarchy_roots()
        .into_iter()
        .map(|r| r.join(&rel))
        .collect())
}

fn cg_err(path: &Path, e: io::Error) -> Error {
    Error::Cgroup {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

fn write_file(dir: &Path, file: &str, value: &str) -> Result<(), Error> {
    let p = dir.join(file);
    fs::write(&p, value).map_err(|e| cg_err(&p, e))
}

fn read_u64(path: &Path) -> Option<u64> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Reads `key value` lines (memory.stat, memory.events, cpu.stat, memory.oom_control).
fn read_keyed(path: &Path, key: &str) -> Option<u64> {
    let text = fs::read_to_string(path).ok()?;
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

fn qos_dir(qos: QosClass) -> Option<&'static str> {
    match qos {
        QosClass::Guaranteed => None,
        QosClass::Burstable => Some("burstable"),
        QosClass::BestEffort => Some("besteffort"),
    }
}

/// The pod cgroup under the cgroup root `root` (the kubelet's `--cgroup-root`, `/` by
/// default): `/kubepods/burstable/pod<uid>`.
pub fn pod_cgroup_path_under(root: &str, qos: QosClass, pod_uid: &str) -> String {
    let mut p = root.trim_end_matches('/').to_string();
    p.push_str("/kubepods");
    if let Some(q) = qos_dir(qos) {
        p.push('/');
        p.push_str(q);
    }
    p.push_str("/pod");
    p.push_str(pod_uid);
    p
}

/// The cgroup parent of a pod's containers with the default cgroup root:
/// `/kubepods/burstable/pod<uid>` (`/kubepods/pod<uid>` for Guaranteed pods).
pub fn cgroup_parent_path(qos: QosClass, pod_uid: &str) -> String {
    pod_cgroup_path_under("/", qos, pod_uid)
}

/// What the kubelet puts in a container's `linux.cgroupsPath`:
/// `/kubepods/burstable/pod<uid>/<container id>`.
pub fn container_cgroup_path(qos: QosClass, pod_uid: &str, container_id: &str) -> String {
    format!("{}/{container_id}", cgroup_parent_path(qos, pod_uid))
}

/// A pod's cgroup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodCgroup {
    path: String,
}

impl PodCgroup {
    /// Creates (or updates) the pod cgroup under the default root `/` with the given limits.
    pub fn ensure(
        qos: QosClass,
        pod_uid: &str,
        resources: &PodResources,
    ) -> Result<PodCgroup, Error> {
        Self::ensure_under("/", qos, pod_uid, resources)
    }

    /// Creates (or updates) the pod cgroup under the cgroup root `root`, creating
    /// `kubepods` and the QoS level as needed, on every hierarchy.
    pub fn ensure_under(
        root: &str,
        qos: QosClass,
        pod_uid: &str,
        resources: &PodResources,
    ) -> Result<PodCgroup, Error> {
        if pod_uid.is_empty() || pod_uid.contains('/') || pod_uid.contains("..") {
            return Err(Error::Cgroup {
                path: PathBuf::from(pod_uid),
                message: "invalid pod uid".into(),
            });
        }
        let cg = PodCgroup {
            path: pod_cgroup_path_under(root, qos, pod_uid),
        };
        create_cgroup(&cg.path, Children::Expected)?;
        cg.update(resources)?;
        Ok(cg)
    }

    /// Refers to an existing pod cgroup by path (e.g. one found by [`PodCgroup::list_under`]).
    pub fn from_path(path: impl Into<String>) -> PodCgroup {
        PodCgroup { path: path.into() }
    }

    /// The cgroup path, e.g. `/kubepods/burstable/pod<uid>`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Writes the limits.
    pub fn update(&self, resources: &PodResources) -> Result<(), Error> {
        write_limits(&self.path, resources)
    }

    /// Whether the pod cgroup exists.
    pub fn exists(&self) -> bool {
        controller_dir("memory", &self.path)
            .ok()
            .flatten()
            .is_some_and(|d| d.is_dir())
    }

    /// Kills any processes left in the pod cgroup (and its container cgroups) and removes
    /// it from every hierarchy. Removing a missing cgroup is not an error.
    pub fn remove(&self) -> Result<(), Error> {
        remove_cgroup(&self.path)
    }

    /// Stats of the whole pod.
    pub fn stats(&self) -> Result<Stats, Error> {
        container_stats(&self.path)
    }

    /// The pod cgroups that exist under `root` (to clean up after pods deleted while the
    /// kubelet was down).
    pub fn list_under(root: &str) -> Result<Vec<PodCgroup>, Error> {
        let base = format!("{}/kubepods", root.trim_end_matches('/'));
        let Some(dir) = controller_dir("memory", &base)? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for sub in ["", "/burstable", "/besteffort"] {
            let Ok(entries) = fs::read_dir(format!("{}{sub}", dir.display())) else {
                continue;
            };
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.starts_with("pod") && e.path().is_dir() {
                    out.push(PodCgroup {
                        path: format!("{base}{sub}/{name}"),
                    });
                }
            }
        }
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }
}

/// Whether a cgroup being made will hold cgroups of its own (a pod's holds its
/// containers'), so that on cgroup v1 its cpuset children should copy its cpus and mems
/// themselves (`cgroup.clone_children`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Children {
    Expected,
    None,
}

/// Creates `cgroup` and its missing ancestors on every hierarchy (cpuset values are
/// copied from the parent; v2 controllers are enabled on the way down).
pub(crate) fn create_cgroup(cgroup: &str, children: Children) -> Result<(), Error> {
    let rel = relative(cgroup)?;
    if version() == CgroupVersion::V2 {
        for root in hierarchy_roots() {
            create_v2(&root, &rel)?;
        }
        return Ok(());
    }
    let m = mounts();
    let roots =
        m.v1.iter()
            .map(|(c, p)| (p, c.iter().any(|c| c == "cpuset")))
            .chain(m.v2.iter().map(|p| (p, false)));
    for (root, is_cpuset) in roots {
        create_v1(root, &root.join(&rel), is_cpuset, children)?;
    }
    Ok(())
}

/// Makes `dir` in a v1 hierarchy (or a hybrid setup's v2 mount), and its missing
/// parents down to `root`. The first `mkdir` is tried right away: when the parent
/// exists, as it does for every pod but the first, that is all it costs. A new cpuset
/// cgroup gets its parent's cpus and mems (v1 leaves them empty): the kernel copies
/// them when the parent has `cgroup.clone_children` set, which this sets on every
/// cpuset cgroup made to hold others, so a container's cgroup costs two reads instead of
/// four reads and two writes (each write to `cpuset.cpus` takes the cpuset lock and may
/// rebuild the scheduling domains).
fn create_v1(root: &Path, dir: &Path, is_cpuset: bool, children: Children) -> Result<(), Error> {
    match fs::create_dir(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound && dir != root => {
            let Some(parent) = dir.parent() else {
                return Err(cg_err(dir, e));
            };
            create_v1(root, parent, is_cpuset, Children::Expected)?;
            match fs::create_dir(dir) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(()),
                Err(e) => return Err(cg_err(dir, e)),
            }
        }
        Err(e) => return Err(cg_err(dir, e)),
    }
    if is_cpuset {
        let parent = dir.parent().unwrap_or(root);
        for f in ["cpuset.cpus", "cpuset.mems"] {
            let cur = fs::read_to_string(dir.join(f)).unwrap_or_default();
            if cur.trim().is_empty() {
                let v = fs::read_to_string(parent.join(f)).map_err(|e| cg_err(parent, e))?;
                write_file(dir, f, v.trim())?;
            }
        }
        // Only a saving for the children: they copy by hand without it.
        if children == Children::Expected {
            let _ = write_file(dir, "cgroup.clone_children", "1");
        }
    }
    Ok(())
}

/// Makes `rel` under the v2 `root` one level at a time, enabling the controllers of
/// each level in its parent first so the new group gets them.
fn create_v2(root: &Path, rel: &Path) -> Result<(), Error> {
    let mut dir = root.to_path_buf();
    for part in rel.components() {
        let parent = dir.clone();
        dir.push(part);
        enable_v2_controllers(&parent);
        if dir.is_dir() {
            continue;
        }
        match fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(cg_err(&dir, e)),
        }
    }
    Ok(())
}

fn enable_v2_controllers(dir: &Path) {
    let Ok(avail) = fs::read_to_string(dir.join("cgroup.controllers")) else {
        return;
    };
    let enabled = fs::read_to_string(dir.join("cgroup.subtree_control")).unwrap_or_default();
    for c in avail.split_whitespace() {
        if matches!(c, "cpu" | "cpuset" | "memory" | "pids" | "io" | "hugetlb")
            && !enabled.split_whitespace().any(|e| e == c)
        {
            // Best effort: a controller that cannot be enabled just stays off.
            let _ = fs::write(dir.join("cgroup.subtree_control"), format!("+{c}"));
        }
    }
}

pub(crate) fn write_limits(cgroup: &str, r: &PodResources) -> Result<(), Error> {
    match version() {
        CgroupVersion::V1 => {
            if let Some(cpu) = controller_dir("cpu", cgroup)? {
                if let Some(shares) = r.cpu_shares {
                    write_file(&cpu, "cpu.shares", &shares.clamp(2, 262_144).to_string())?;
                }
                if let Some(period) = r.cpu_period_us {
                    write_file(&cpu, "cpu.cfs_period_us", &period.to_string())?;
                }
                let quota = r.cpu_quota_us.filter(|q| *q > 0).unwrap_or(-1);
                write_file(&cpu, "cpu.cfs_quota_us", &quota.to_string())?;
            }
            if let Some(mem) = controller_dir("memory", cgroup)? {
                let limit = r.memory_limit_bytes.filter(|m| *m > 0).unwrap_or(-1);
                write_file(&mem, "memory.limit_in_bytes", &limit.to_string())?;
            }
            if let Some(pids) = controller_dir("pids", cgroup)? {
                write_file(&pids, "pids.max", &pids_value(r.pids_limit))?;
            }
        }
        CgroupVersion::V2 => {
            let Some(dir) = controller_dir("", cgroup)? else {
                return Ok(());
            };
            if let Some(shares) = r.cpu_shares {
                write_file(&dir, "cpu.weight", &shares_to_weight(shares).to_string())?;
            }
            if r.cpu_quota_us.is_some() || r.cpu_period_us.is_some() || dir.join("cpu.max").exists()
            {
                let period = r.cpu_period_us.unwrap_or(100_000);
                let quota = match r.cpu_quota_us.filter(|q| *q > 0) {
                    Some(q) => q.to_string(),
                    None => "max".to_string(),
                };
                write_file(&dir, "cpu.max", &format!("{quota} {period}"))?;
            }
            let mem = match r.memory_limit_bytes.filter(|m| *m > 0) {
                Some(m) => m.to_string(),
                None => "max".to_string(),
            };
            write_v2_optional(&dir, "memory.max", &mem, r.memory_limit_bytes.is_some())?;
            write_v2_optional(
                &dir,
                "pids.max",
                &pids_value(r.pids_limit),
                r.pids_limit.is_some(),
            )?;
        }
    }
    Ok(())
}

/// Writes a v2 limit file; a missing file (controller not enabled here) is only an error
/// when a limit was asked for.
fn write_v2_optional(dir: &Path, file: &str, value: &str, required: bool) -> Result<(), Error> {
    if !required && !dir.join(file).exists() {
        return Ok(());
    }
    write_file(dir, file, value)
}

fn pids_value(limit: Option<i64>) -> String {
    match limit.filter(|p| *p > 0) {
        Some(p) => p.to_string(),
        None => "max".to_string(),
    }
}

/// cgroup v1 `cpu.shares` to v2 `cpu.weight`, as runc and the kubelet convert.
pub fn shares_to_weight(shares: u64) -> u64 {
    let shares = shares.clamp(2, 262_144);
    1 + ((shares - 2) * 9999) / 262_142
}

/// Pids of the processes in `cgroup` and its descendants (from the pids or memory
/// hierarchy on v1).
pub fn cgroup_pids(cgroup: &str) -> Vec<i32> {
    let dir = match controller_dir("pids", cgroup) {
        Ok(Some(d)) => d,
        _ => match controller_dir("memory", cgroup) {
            Ok(Some(d)) => d,
            _ => return Vec::new(),
        },
    };
    let mut out = Vec::new();
    for d in subtree_post_order(&dir) {
        if let Ok(text) = fs::read_to_string(d.join("cgroup.procs")) {
            out.extend(text.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
        }
    }
    out
}

/// SIGKILLs every process in `cgroup` (and descendants) on every hierarchy; returns how
/// many were signalled.
pub(crate) fn kill_all(cgroup: &str) -> usize {
    let Ok(dirs) = all_dirs(cgroup) else {
        return 0;
    };
    let mut n = 0;
    for root in dirs {
        for d in subtree_post_order(&root) {
            n += kill_procs(&d);
        }
    }
    n
}

fn kill_procs(dir: &Path) -> usize {
    let Ok(text) = fs::read_to_string(dir.join("cgroup.procs")) else {
        return 0;
    };
    let mut n = 0;
    for pid in text.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
        // SAFETY: kill(2) with integer arguments.
        if pid > 0 && unsafe { libc::kill(pid, libc::SIGKILL) } == 0 {
            n += 1;
        }
    }
    n
}

/// `dir` and all directories below it, deepest first.
fn subtree_post_order(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    fn walk(d: &Path, out: &mut Vec<PathBuf>) {
        if let Ok(entries) = fs::read_dir(d) {
            for e in entries.flatten() {
                if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                    walk(&e.path(), out);
                }
            }
        }
        if d.is_dir() {
            out.push(d.to_path_buf());
        }
    }
    walk(dir, &mut out);
    out
}

/// Kills what is left in `cgroup` and removes it (with descendants) from every hierarchy,
/// retrying while the kernel still reports it busy. A missing cgroup is fine.
pub(crate) fn remove_cgroup(cgroup: &str) -> Result<(), Error> {
    let rel = relative(cgroup)?;
    if rel.as_os_str().is_empty() {
        return Err(Error::Cgroup {
            path: PathBuf::from(cgroup),
            message: "refusing to remove the root cgroup".into(),
        });
    }
    let mut first_err = None;
    for root in hierarchy_roots() {
        let top = root.join(&rel);
        for d in subtree_post_order(&top) {
            if let Err(e) = rmdir_retry(&d) {
                first_err.get_or_insert(e);
            }
        }
    }
    match first_err {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn rmdir_retry(dir: &Path) -> Result<(), Error> {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut delay = Duration::from_millis(2);
    loop {
        kill_procs(dir);
        match fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline => {
                std::thread::sleep(delay);
                delay = (delay * 2).min(Duration::from_millis(100));
            }
            Err(e) => return Err(cg_err(dir, e)),
        }
    }
}

/// The number of OOM kills recorded for `cgroup` (v1 `memory.oom_control` `oom_kill`,
/// kernel 4.13+; v2 `memory.events` `oom_kill`).
pub(crate) fn oom_kill_count(cgroup: &str) -> Option<u64> {
    let dir = controller_dir("memory", cgroup).ok()??;
    match version() {
        CgroupVersion::V1 => read_keyed(&dir.join("memory.oom_control"), "oom_kill"),
        CgroupVersion::V2 => read_keyed(&dir.join("memory.events"), "oom_kill"),
    }
}

/// Usage numbers of a container (or pod) cgroup given as its cgroup path
/// (`/kubepods/burstable/pod<uid>/<container id>`).
pub fn container_stats(cgroup_path: &str) -> Result<Stats, Error> {
    let mut s = Stats::default();
    match version() {
        CgroupVersion::V1 => {
            let mem = controller_dir("memory", cgroup_path)?.ok_or_else(|| Error::Cgroup {
                path: PathBuf::from(cgroup_path),
                message: "no memory hierarchy".into(),
            })?;
            if !mem.is_dir() {
                return Err(cg_err(&mem, io::Error::from(io::ErrorKind::NotFound)));
            }
            if let Some(d) = controller_dir("cpuacct", cgroup_path)? {
                s.cpu_usage_nanos = read_u64(&d.join("cpuacct.usage")).unwrap_or(0);
            }
            s.memory_usage_bytes = read_u64(&mem.join("memory.usage_in_bytes")).unwrap_or(0);
            let stat = mem.join("memory.stat");
            let inactive = read_keyed(&stat, "total_inactive_file").unwrap_or(0);
            s.memory_working_set_bytes = s.memory_usage_bytes.saturating_sub(inactive);
            s.rss = read_keyed(&stat, "total_rss").unwrap_or(0);
            s.page_faults = read_keyed(&stat, "total_pgfault").unwrap_or(0);
            s.major_page_faults = read_keyed(&stat, "total_pgmajfault").unwrap_or(0);
            // An unlimited v1 cgroup reports a huge page-rounded number.
            s.memory_limit_bytes =
                read_u64(&mem.join("memory.limit_in_bytes")).filter(|l| *l < (1u64 << 62));
            if let Some(d) = controller_dir("pids", cgroup_path)? {
                s.pids = read_u64(&d.join("pids.current")).unwrap_or(0);
            }
        }
        CgroupVersion::V2 => {
            let dir = controller_dir("", cgroup_path)?.ok_or_else(|| Error::Cgroup {
                path: PathBuf::from(cgroup_path),
                message: "no cgroup2 mount".into(),
            })?;
            if !dir.is_dir() {
                return Err(cg_err(&dir, io::Error::from(io::ErrorKind::NotFound)));
            }
            s.cpu_usage_nanos = read_keyed(&dir.join("cpu.stat"), "usage_usec").unwrap_or(0) * 1000;
            s.memory_usage_bytes = read_u64(&dir.join("memory.current")).unwrap_or(0);
            let stat = dir.join("memory.stat");
            let inactive = read_keyed(&stat, "inactive_file").unwrap_or(0);
            s.memory_working_set_bytes = s.memory_usage_bytes.saturating_sub(inactive);
            s.rss = read_keyed(&stat, "anon").unwrap_or(0);
            s.page_faults = read_keyed(&stat, "pgfault").unwrap_or(0);
            s.major_page_faults = read_keyed(&stat, "pgmajfault").unwrap_or(0);
            s.memory_limit_bytes = read_u64(&dir.join("memory.max"));
            s.pids = read_u64(&dir.join("pids.current")).unwrap_or(0);
        }
    }
    Ok(s)
}

/// The directories `cgroup` has on this machine (for tests and diagnostics).
pub fn cgroup_dirs(cgroup: &str) -> Result<Vec<PathBuf>, Error> {
    all_dirs(cgroup)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(
            cgroup_parent_path(QosClass::Burstable, "1234-ab"),
            "/kubepods/burstable/pod1234-ab"
        );
        assert_eq!(
            cgroup_parent_path(QosClass::Guaranteed, "u"),
            "/kubepods/podu"
        );
        assert_eq!(
            container_cgroup_path(QosClass::BestEffort, "u", "c1"),
            "/kubepods/besteffort/podu/c1"
        );
        assert_eq!(
            pod_cgroup_path_under("/test-1/", QosClass::Burstable, "u"),
            "/test-1/kubepods/burstable/podu"
        );
        assert!(relative("/a/../b").is_err());
        assert_eq!(relative("/a/b").unwrap(), PathBuf::from("a/b"));
    }

    #[test]
    fn weights() {
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(262_144), 10000);
    }

    #[test]
    fn mountinfo_parsing() {
        let text = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
34 31 0:31 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,release_agent=/x,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";
        let m = parse_mountinfo(text);
        assert_eq!(m.v1.len(), 3);
        assert_eq!(m.v1[1].0, vec!["cpu".to_string(), "cpuacct".to_string()]);
        assert_eq!(m.v1[2].0, vec!["name=systemd".to_string()]);
        assert_eq!(m.v2, Some(PathBuf::from("/sys/fs/cgroup/unified")));
    }

    #[test]
    fn keyed_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("memory.oom_control");
        fs::write(&p, "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n").unwrap();
        assert_eq!(read_keyed(&p, "oom_kill"), Some(3));
        assert_eq!(read_keyed(&p, "missing"), None);
    }
}
