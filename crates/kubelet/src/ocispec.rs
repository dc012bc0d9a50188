//! The OCI runtime spec of one container, as the kubelet and containerd's CRI
//! plugin build it together upstream: process (args, env, cwd, user, capabilities,
//! no_new_privileges, OOM score), root filesystem, the standard mounts plus the
//! pod's files and volumes, the pod's shared namespaces, the cgroup path and the
//! resource limits from the container's requests and limits.

use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Container, Pod};
use oci_spec::runtime::Spec;
use serde_json::{json, Value};

/// Linux capabilities a container gets by default (containerd's default set).
pub const DEFAULT_CAPABILITIES: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// Every capability, for privileged containers.
const ALL_CAPABILITIES: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// Paths hidden from unprivileged containers.
const MASKED_PATHS: &[&str] = &[
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Paths read-only in unprivileged containers.
const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// Why a spec could not be made (reported as CreateContainerConfigError).
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// The user named by the image or pod is not in the image's /etc/passwd.
    #[error("unable to find user {0}: no matching entries in passwd file")]
    UnknownUser(String),
    /// A group name is not in the image's /etc/group.
    #[error("unable to find group {0}: no matching entries in group file")]
    UnknownGroup(String),
    /// runAsNonRoot with a root user.
    #[error("container has runAsNonRoot and image will run as root (pod: {pod}, container: {container})")]
    RunsAsRoot { pod: String, container: String },
    /// runAsNonRoot with a non-numeric image user.
    #[error("container has runAsNonRoot and image has non-numeric user ({user}), cannot verify user is non-root (pod: {pod}, container: {container})")]
    NonNumericUser {
        user: String,
        pod: String,
        container: String,
    },
    /// The assembled spec did not deserialize (a bug).
    #[error("building the OCI spec: {0}")]
    Invalid(#[from] serde_json::Error),
}

/// A bind mount into the container.
#[derive(Clone, Debug, PartialEq)]
pub struct BindMount {
    /// Host path.
    pub source: PathBuf,
    /// Path in the container.
    pub destination: String,
    /// Mounted read-only.
    pub read_only: bool,
}

/// Namespaces the container joins (paths of bind-mounted nsfs files); `None`
/// shares the host's.
#[derive(Clone, Debug, Default)]
pub struct PodNamespaces {
    /// Network namespace (None: host network).
    pub net: Option<PathBuf>,
    /// IPC namespace (None: host IPC).
    pub ipc: Option<PathBuf>,
    /// UTS namespace (None: host UTS, as with hostNetwork).
    pub uts: Option<PathBuf>,
    /// Share the host's PID namespace (`hostPID`).
    pub host_pid: bool,
}

/// Cgroup limits of one container.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Limits {
    /// cpu.shares from the cpu request (2 when none, as upstream).
    pub cpu_shares: u64,
    /// CFS quota from the cpu limit, with period 100 ms.
    pub cpu_quota: Option<i64>,
    /// Memory limit, bytes.
    pub memory: Option<i64>,
    /// OOM score adjustment by QoS; negative values clamp to 0 (no CAP_SYS_RESOURCE
    /// is assumed, as containerd's restrict_oom_score_adj).
    pub oom_score_adj: i32,
}

/// CFS period the kubelet uses.
pub const CPU_PERIOD: u64 = 100_000;

/// Limits from a container's requests and limits, by upstream's formulas.
pub fn limits_of(c: &Container, qos: &str, memory_capacity: u64) -> Limits {
    use apimachinery::Quantity;
    let res = c.resources.as_ref();
    let get = |m: Option<
        &std::collections::BTreeMap<
            String,
            k8s_openapi::apimachinery::pkg::api::resource::Quantity,
        >,
    >,
               k: &str| {
        m.and_then(|m| m.get(k))
            .and_then(|q| q.0.parse::<Quantity>().ok())
    };
    let cpu_request = get(res.and_then(|r| r.requests.as_ref()), "cpu")
        .or_else(|| get(res.and_then(|r| r.limits.as_ref()), "cpu"));
    let cpu_limit = get(res.and_then(|r| r.limits.as_ref()), "cpu");
    let memory_limit = get(res.and_then(|r| r.limits.as_ref()), "memory");
    let memory_request =
        get(res.and_then(|r| r.requests.as_ref()), "memory").or_else(|| memory_limit.clone());
    let cpu_shares = cpu_request
        .map(|q| ((q.milli_value().max(0) as u64) * 1024 / 1000).max(2))
        .unwrap_or(2);
    let cpu_quota = cpu_limit.map(|q| {
        let quota = q.milli_value() * CPU_PERIOD as i64 / 1000;
        quota.max(1000)
    });
    let oom_score_adj = match qos {
        "Guaranteed" => -997,
        "BestEffort" => 1000,
        _ => {
            let req = memory_request.map_or(0, |q| q.value().max(0) as u64);
            let cap = memory_capacity.max(1);
            let adj = 1000 - (1000 * req / cap) as i32;
            adj.clamp(3, 999)
        }
    };
    Limits {
        cpu_shares,
        cpu_quota,
        memory: memory_limit.map(|q| q.value()),
        oom_score_adj: oom_score_adj.max(0),
    }
}

/// The user and groups a container runs as.
#[derive(Clone, Debug, PartialEq)]
pub struct User {
    /// uid.
    pub uid: u32,
    /// gid.
    pub gid: u32,
    /// Supplementary groups.
    pub additional_gids: Vec<u32>,
}

/// Reads a file of the image's root filesystem (`etc/passwd`, `etc/group`).
pub type ImageFiles<'a> = &'a dyn Fn(&str) -> Option<String>;

/// [`ImageFiles`] of a root filesystem mounted at `rootfs`.
pub fn files_under(rootfs: &Path) -> impl Fn(&str) -> Option<String> + '_ {
    move |rel| std::fs::read_to_string(rootfs.join(rel)).ok()
}

fn lookup_passwd(files: ImageFiles<'_>, name: &str) -> Option<(u32, u32)> {
    let text = files("etc/passwd")?;
    text.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() >= 4 && f[0] == name).then(|| Some((f[2].parse().ok()?, f[3].parse().ok()?)))?
    })
}

fn lookup_group(files: ImageFiles<'_>, name: &str) -> Option<u32> {
    let text = files("etc/group")?;
    text.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() >= 3 && f[0] == name).then(|| f[2].parse().ok())?
    })
}

/// Resolves the user: the container's then the pod's runAsUser/runAsGroup, else
/// the image's USER (`uid`, `uid:gid`, `name`, `name:group`), looked up in the
/// image's /etc/passwd and /etc/group; enforces runAsNonRoot.
pub fn resolve_user(
    pod: &Pod,
    c: &Container,
    image_user: &str,
    files: ImageFiles<'_>,
) -> Result<User, SpecError> {
    let psc = pod.spec.as_ref().and_then(|s| s.security_context.as_ref());
    let csc = c.security_context.as_ref();
    let run_as_user = csc
        .and_then(|s| s.run_as_user)
        .or_else(|| psc.and_then(|s| s.run_as_user));
    let run_as_group = csc
        .and_then(|s| s.run_as_group)
        .or_else(|| psc.and_then(|s| s.run_as_group));
    let non_root = csc
        .and_then(|s| s.run_as_non_root)
        .or_else(|| psc.and_then(|s| s.run_as_non_root))
        .unwrap_or(false);
    let (user_part, group_part) = match image_user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (image_user, None),
    };
    let pod_name = pod.metadata.name.clone().unwrap_or_default();
    let (uid, mut gid) = match run_as_user {
        Some(uid) => {
            let uid = uid as u32;
            (uid, lookup_passwd_uid(files, uid).unwrap_or(0))
        }
        None if user_part.is_empty() => (0, 0),
        None => match user_part.parse::<u32>() {
            Ok(uid) => (uid, lookup_passwd_uid(files, uid).unwrap_or(0)),
            Err(_) => {
                if non_root {
                    return Err(SpecError::NonNumericUser {
                        user: user_part.to_string(),
                        pod: pod_name,
                        container: c.name.clone(),
                    });
                }
                lookup_passwd(files, user_part)
                    .ok_or_else(|| SpecError::UnknownUser(user_part.to_string()))?
            }
        },
    };
    if let Some(g) = group_part.filter(|g| !g.is_empty()) {
        gid = match g.parse::<u32>() {
            Ok(g) => g,
            Err(_) => {
                lookup_group(files, g).ok_or_else(|| SpecError::UnknownGroup(g.to_string()))?
            }
        };
    }
    if let Some(g) = run_as_group {
        gid = g as u32;
    }
    if non_root && uid == 0 {
        return Err(SpecError::RunsAsRoot {
            pod: pod_name,
            container: c.name.clone(),
        });
    }
    let mut additional_gids: Vec<u32> = psc
        .and_then(|s| s.supplemental_groups.clone())
        .unwrap_or_default()
        .into_iter()
        .map(|g| g as u32)
        .collect();
    if let Some(fs) = psc.and_then(|s| s.fs_group) {
        additional_gids.push(fs as u32);
    }
    additional_gids.sort_unstable();
    additional_gids.dedup();
    Ok(User {
        uid,
        gid,
        additional_gids,
    })
}

fn lookup_passwd_uid(files: ImageFiles<'_>, uid: u32) -> Option<u32> {
    let text = files("etc/passwd")?;
    text.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() >= 4 && f[2].parse::<u32>().ok() == Some(uid)).then(|| f[3].parse().ok())?
    })
}

/// Everything the spec is made from.
pub struct SpecInput<'a> {
    /// The pod.
    pub pod: &'a Pod,
    /// The container.
    pub container: &'a Container,
    /// The root filesystem: mounted there, or the mount point of `root_mount`.
    pub rootfs: &'a Path,
    /// Options of the overlayfs the runtime mounts at `rootfs` in the container's own
    /// mount namespace (the built-in runtime); `None` when `rootfs` is mounted.
    pub root_mount: Option<Vec<String>>,
    /// Process arguments.
    pub args: Vec<String>,
    /// Environment (image env merged under the kubelet's).
    pub env: Vec<(String, String)>,
    /// Working directory (container's, else image's, else `/`).
    pub cwd: String,
    /// The user.
    pub user: User,
    /// Namespaces to join.
    pub namespaces: PodNamespaces,
    /// Cgroup path (`/kubepods/besteffort/pod<uid>/<id>`).
    pub cgroups_path: String,
    /// Limits.
    pub limits: Limits,
    /// Pod files and volumes.
    pub mounts: Vec<BindMount>,
}

/// Merges the image's environment under the kubelet's (same names: kubelet wins),
/// adding `HOSTNAME` as containerd does and a default PATH when the image has none.
pub fn merge_env(
    image_env: &[String],
    kubelet: &[(String, String)],
    hostname: &str,
) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut put = |k: String, v: String| match out.iter_mut().find(|(n, _)| *n == k) {
        Some(e) => e.1 = v,
        None => out.push((k, v)),
    };
    put("HOSTNAME".into(), hostname.into());
    for e in image_env {
        let (k, v) = e.split_once('=').unwrap_or((e.as_str(), ""));
        put(k.into(), v.into());
    }
    for (k, v) in kubelet {
        put(k.clone(), v.clone());
    }
    if !out.iter().any(|(k, _)| k == "PATH") {
        out.insert(
            0,
            (
                "PATH".into(),
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
            ),
        );
    }
    out
}

/// Builds the spec.
pub fn build(input: &SpecInput<'_>) -> Result<Spec, SpecError> {
    let c = input.container;
    let sc = c.security_context.as_ref();
    let privileged = sc.and_then(|s| s.privileged).unwrap_or(false);
    let read_only_root = sc
        .and_then(|s| s.read_only_root_filesystem)
        .unwrap_or(false);
    let mut caps: Vec<String> = if privileged {
        ALL_CAPABILITIES.iter().map(|s| s.to_string()).collect()
    } else {
        DEFAULT_CAPABILITIES.iter().map(|s| s.to_string()).collect()
    };
    if !privileged {
        if let Some(cs) = sc.and_then(|s| s.capabilities.as_ref()) {
            let norm = |c: &String| {
                let u = c.to_uppercase();
                if u.starts_with("CAP_") {
                    u
                } else {
                    format!("CAP_{u}")
                }
            };
            let drops: Vec<String> = cs.drop.iter().flatten().map(norm).collect();
            if drops.iter().any(|d| d == "CAP_ALL") {
                caps.clear();
            } else {
                caps.retain(|c| !drops.contains(c));
            }
            for a in cs.add.iter().flatten().map(norm) {
                if a == "CAP_ALL" {
                    caps = ALL_CAPABILITIES.iter().map(|s| s.to_string()).collect();
                } else if !caps.contains(&a) {
                    caps.push(a);
                }
            }
        }
    }
    let no_new_privs = sc.and_then(|s| s.allow_privilege_escalation) == Some(false) && !privileged;
    let env: Vec<String> = input.env.iter().map(|(k, v)| format!("{k}={v}")).collect();

    let mut mounts = Vec::new();
    if let Some(options) = &input.root_mount {
        mounts.push(
            json!({"destination": "/", "type": "overlay", "source": "overlay", "options": options}),
        );
    }
    mounts.extend([
        json!({"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]}),
        json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", if privileged { "rw" } else { "ro" }]}),
        json!({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["nosuid", "noexec", "nodev", "relatime", if privileged { "rw" } else { "ro" }]}),
        json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]}),
    ]);
    for m in &input.mounts {
        let mut options = vec!["rbind", "rprivate"];
        options.push(if m.read_only { "ro" } else { "rw" });
        mounts.push(json!({"destination": m.destination, "type": "bind", "source": m.source, "options": options}));
    }

    let mut namespaces = vec![json!({"type": "mount"})];
    if !input.namespaces.host_pid {
        namespaces.push(json!({"type": "pid"}));
    }
    for (ty, path) in [
        ("network", &input.namespaces.net),
        ("ipc", &input.namespaces.ipc),
        ("uts", &input.namespaces.uts),
    ] {
        if let Some(p) = path {
            namespaces.push(json!({"type": ty, "path": p}));
        }
    }

    let mut cpu = json!({"shares": input.limits.cpu_shares});
    if let Some(q) = input.limits.cpu_quota {
        cpu["quota"] = json!(q);
        cpu["period"] = json!(CPU_PERIOD);
    }
    let mut resources = json!({
        "devices": if privileged {
            json!([{"allow": true, "access": "rwm"}])
        } else {
            json!([{"allow": false, "access": "rwm"}])
        },
        "cpu": cpu,
    });
    if let Some(m) = input.limits.memory {
        resources["memory"] = json!({"limit": m, "swap": m});
    }

    let mut linux = json!({
        "namespaces": namespaces,
        "cgroupsPath": input.cgroups_path,
        "resources": resources,
    });
    if !privileged {
        linux["maskedPaths"] = json!(MASKED_PATHS);
        linux["readonlyPaths"] = json!(READONLY_PATHS);
    }

    let spec = json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": {"uid": input.user.uid, "gid": input.user.gid, "additionalGids": input.user.additional_gids},
            "args": input.args,
            "env": env,
            "cwd": if input.cwd.is_empty() { "/" } else { input.cwd.as_str() },
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
            "noNewPrivileges": no_new_privs,
            "oomScoreAdj": input.limits.oom_score_adj,
        },
        "root": {"path": input.rootfs, "readonly": read_only_root},
        "mounts": mounts,
        "linux": linux,
    });
    let spec: Value = strip_nulls(spec);
    Ok(serde_json::from_value(spec)?)
}

/// Drops nulls so optional OCI fields are absent rather than null.
fn strip_nulls(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, strip_nulls(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(strip_nulls).collect()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(v: Value) -> Pod {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn limits_by_upstream_formulas() {
        let c: Container = serde_json::from_value(json!({"name": "c", "resources": {
            "requests": {"cpu": "250m", "memory": "1Gi"}, "limits": {"cpu": "500m", "memory": "2Gi"}}})).unwrap();
        let l = limits_of(&c, "Burstable", 8 << 30);
        assert_eq!(l.cpu_shares, 256);
        assert_eq!(l.cpu_quota, Some(50_000));
        assert_eq!(l.memory, Some(2 << 30));
        assert_eq!(l.oom_score_adj, 875);
        let none: Container = serde_json::from_value(json!({"name": "c"})).unwrap();
        let l = limits_of(&none, "BestEffort", 8 << 30);
        assert_eq!(
            (l.cpu_shares, l.cpu_quota, l.memory, l.oom_score_adj),
            (2, None, None, 1000)
        );
        // Guaranteed's -997 cannot be written without CAP_SYS_RESOURCE here.
        assert_eq!(limits_of(&c, "Guaranteed", 8 << 30).oom_score_adj, 0);
    }

    #[test]
    fn users_from_pod_image_and_passwd() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("etc")).unwrap();
        std::fs::write(
            dir.path().join("etc/passwd"),
            "root:x:0:0::/root:/bin/sh\nwww:x:33:34::/var/www:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("etc/group"), "root:x:0:\nstaff:x:50:\n").unwrap();
        let p = pod(
            json!({"metadata": {"name": "p"}, "spec": {"securityContext": {"supplementalGroups": [7], "fsGroup": 9}, "containers": [{"name": "c"}]}}),
        );
        let c = p.spec.as_ref().unwrap().containers[0].clone();
        let u = resolve_user(&p, &c, "www", &files_under(dir.path())).unwrap();
        assert_eq!(
            u,
            User {
                uid: 33,
                gid: 34,
                additional_gids: vec![7, 9]
            }
        );
        assert_eq!(
            resolve_user(&p, &c, "www:staff", &files_under(dir.path()))
                .unwrap()
                .gid,
            50
        );
        assert_eq!(
            resolve_user(&p, &c, "1000:1000", &files_under(dir.path()))
                .unwrap()
                .uid,
            1000
        );
        assert_eq!(
            resolve_user(&p, &c, "", &files_under(dir.path()))
                .unwrap()
                .uid,
            0
        );
        assert_eq!(
            resolve_user(&p, &c, "ghost", &files_under(dir.path()))
                .unwrap_err()
                .to_string(),
            "unable to find user ghost: no matching entries in passwd file"
        );
        let p2 = pod(
            json!({"metadata": {"name": "p"}, "spec": {"securityContext": {"runAsNonRoot": true}, "containers": [{"name": "c", "securityContext": {"runAsUser": 0}}]}}),
        );
        let c2 = p2.spec.as_ref().unwrap().containers[0].clone();
        assert!(matches!(
            resolve_user(&p2, &c2, "", &files_under(dir.path())),
            Err(SpecError::RunsAsRoot { .. })
        ));
    }

    #[test]
    fn spec_has_namespaces_caps_and_mounts() {
        let p = pod(
            json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c",
            "securityContext": {"readOnlyRootFilesystem": true, "allowPrivilegeEscalation": false,
                "capabilities": {"add": ["NET_ADMIN"], "drop": ["KILL"]}}}]}}),
        );
        let c = p.spec.as_ref().unwrap().containers[0].clone();
        let input = SpecInput {
            pod: &p,
            container: &c,
            rootfs: Path::new("/r"),
            root_mount: None,
            args: vec!["sh".into()],
            env: merge_env(
                &["PATH=/bin".into(), "A=image".into()],
                &[("A".into(), "pod".into())],
                "p",
            ),
            cwd: String::new(),
            user: User {
                uid: 0,
                gid: 0,
                additional_gids: vec![],
            },
            namespaces: PodNamespaces {
                net: Some("/ns/net".into()),
                ipc: Some("/ns/ipc".into()),
                uts: Some("/ns/uts".into()),
                host_pid: false,
            },
            cgroups_path: "/kubepods/besteffort/podu/id".into(),
            limits: Limits {
                cpu_shares: 2,
                cpu_quota: None,
                memory: Some(16 << 20),
                oom_score_adj: 1000,
            },
            mounts: vec![BindMount {
                source: "/pods/u/etc-hosts".into(),
                destination: "/etc/hosts".into(),
                read_only: false,
            }],
        };
        let spec = serde_json::to_value(build(&input).unwrap()).unwrap();
        assert_eq!(spec["root"]["readonly"], true);
        assert_eq!(spec["process"]["noNewPrivileges"], true);
        let caps = spec["process"]["capabilities"]["bounding"]
            .as_array()
            .unwrap();
        assert!(caps.contains(&json!("CAP_NET_ADMIN")));
        assert!(!caps.contains(&json!("CAP_KILL")));
        let env = spec["process"]["env"].as_array().unwrap();
        assert!(env.contains(&json!("A=pod")));
        assert!(env.contains(&json!("HOSTNAME=p")));
        assert!(env.contains(&json!("PATH=/bin")));
        let ns = spec["linux"]["namespaces"].as_array().unwrap();
        assert!(ns.contains(&json!({"type": "network", "path": "/ns/net"})));
        assert!(ns.contains(&json!({"type": "pid"})));
        assert_eq!(spec["linux"]["resources"]["memory"]["limit"], 16 << 20);
        assert_eq!(spec["linux"]["cgroupsPath"], "/kubepods/besteffort/podu/id");
        assert!(spec["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["destination"] == "/etc/hosts"));
    }
}
