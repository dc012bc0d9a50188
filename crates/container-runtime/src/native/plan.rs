//! What the native runtime will do, worked out from the OCI spec before it forks: the
//! namespaces to make and join, the mounts and devices of the root filesystem, and the
//! process (arguments, environment, user, capabilities, limits). Everything a spec can
//! get wrong is refused here, in the parent, so the child only makes system calls.

use std::ffi::CString;
use std::fs::File;
use std::os::fd::OwnedFd;
use std::path::{Component, Path, PathBuf};

use nix::mount::MsFlags;
use oci_spec::runtime::{LinuxNamespaceType, LinuxResources, PosixRlimitType, Process, Spec};

use super::cstr;
use super::devices::{self, DeviceNode, DeviceRule};
use crate::cgroups;

/// The namespaces of a new container.
pub(crate) struct NsPlan {
    /// `unshare` flags for namespaces made new (mount always; net, ipc, uts when asked).
    pub unshare: libc::c_int,
    /// A new PID namespace (made by the parent before the fork).
    pub new_pid: bool,
    /// A new cgroup namespace (made by the child once it is in its cgroup).
    pub new_cgroup: bool,
    /// Namespaces joined by path, in the order they are joined.
    pub join: Vec<(OwnedFd, libc::c_int)>,
}

/// How a mount is made.
pub(crate) enum MountKind {
    /// A bind mount of a host path (recursive with `rbind`).
    Bind {
        source: CString,
        recursive: bool,
        dir: bool,
    },
    /// `/sys/fs/cgroup`: the container's own cgroup directories.
    Cgroup,
    /// A file system mount (`proc`, `tmpfs`, `devpts`, ...).
    Fs { fstype: CString, source: CString },
}

/// One mount of the spec.
pub(crate) struct MountPlan {
    /// Path in the container (absolute, no `..`).
    pub dest: PathBuf,
    pub kind: MountKind,
    /// Mount flags other than propagation.
    pub flags: MsFlags,
    /// Propagation changes applied after the mount.
    pub propagation: Vec<MsFlags>,
    /// File system options (`mode=755,size=65536k`).
    pub data: Option<CString>,
}

/// The container's view of the cgroup tree at `/sys/fs/cgroup`.
pub(crate) enum CgroupView {
    /// cgroup v1: a tmpfs with one bind mount per hierarchy (the container's directory),
    /// plus the host's symlinks between hierarchy names.
    V1 {
        binds: Vec<(String, CString)>,
        links: Vec<(String, String)>,
    },
    /// cgroup v2 in a new cgroup namespace: a fresh cgroup2 mount.
    V2Namespaced,
    /// cgroup v2 without one: the container's directory bound.
    V2Bind(CString),
}

/// The root filesystem.
pub(crate) struct RootPlan {
    pub rootfs: PathBuf,
    /// A file system mounted at `rootfs` in the container's mount namespace (a mount
    /// whose destination is `/`, such as the image's overlayfs); without one,
    /// `rootfs` is prepared on the host and bound.
    pub mount: Option<MountPlan>,
    pub readonly: bool,
    pub mounts: Vec<MountPlan>,
    pub cgroup: CgroupView,
    /// Device nodes made in `/dev` (the defaults when `/dev` is a fresh tmpfs, and the
    /// spec's own).
    pub devices: Vec<DeviceNode>,
    /// The usual `/dev` symlinks (`fd`, `stdin`, `ptmx`, ...), when `/dev` is fresh.
    pub dev_links: bool,
    pub masked: Vec<PathBuf>,
    pub readonly_paths: Vec<PathBuf>,
    pub propagation: Option<MsFlags>,
    pub sysctl: Vec<(PathBuf, String)>,
    pub hostname: Option<String>,
    pub domainname: Option<String>,
}

/// The process to exec.
pub(crate) struct ProcessPlan {
    pub args: Vec<CString>,
    pub env: Vec<CString>,
    /// `PATH` from the environment, for finding `args[0]`.
    pub path: String,
    pub cwd: PathBuf,
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
    pub umask: u32,
    pub caps: Option<CapSets>,
    pub no_new_privs: bool,
    pub rlimits: Vec<(libc::__rlimit_resource_t, u64, u64)>,
    pub oom_score_adj: Option<i32>,
    pub terminal: bool,
    /// Where the terminal's master goes.
    pub console_socket: Option<CString>,
}

/// Capability sets as bit masks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct CapSets {
    pub bounding: u64,
    pub effective: u64,
    pub permitted: u64,
    pub inheritable: u64,
    pub ambient: u64,
}

/// Everything for creating and starting a container.
pub(crate) struct InitPlan {
    pub ns: NsPlan,
    pub root: RootPlan,
    pub process: ProcessPlan,
    pub resources: LinuxResources,
    pub device_rules: Vec<DeviceRule>,
}

/// Everything for an exec.
pub(crate) struct ExecPlan {
    /// The container's PID namespace (joined by the parent before the fork).
    pub pid_ns: Option<OwnedFd>,
    /// The other namespaces, in joining order (mount last).
    pub join: Vec<(OwnedFd, libc::c_int)>,
    pub process: ProcessPlan,
}

impl InitPlan {
    pub(crate) fn new(
        spec: &Spec,
        cgroup_path: &str,
        console_socket: Option<&Path>,
    ) -> Result<InitPlan, String> {
        let linux = spec
            .linux()
            .as_ref()
            .ok_or("the spec has no linux section")?;
        let root = spec.root().as_ref().ok_or("the spec has no root")?;
        let rootfs = root.path().clone();
        if !rootfs.is_absolute() {
            return Err(format!("root.path {} is not absolute", rootfs.display()));
        }
        let process = spec.process().as_ref().ok_or("the spec has no process")?;

        let mut ns = NsPlan {
            unshare: 0,
            new_pid: false,
            new_cgroup: false,
            join: Vec::new(),
        };
        let mut new_mount = false;
        let mut new_uts = false;
        let mut join_order: Vec<(u8, OwnedFd, libc::c_int)> = Vec::new();
        for n in linux.namespaces().iter().flatten() {
            let flag = match n.typ() {
                LinuxNamespaceType::Mount => libc::CLONE_NEWNS,
                LinuxNamespaceType::Network => libc::CLONE_NEWNET,
                LinuxNamespaceType::Ipc => libc::CLONE_NEWIPC,
                LinuxNamespaceType::Uts => libc::CLONE_NEWUTS,
                LinuxNamespaceType::Pid => libc::CLONE_NEWPID,
                LinuxNamespaceType::Cgroup => libc::CLONE_NEWCGROUP,
                LinuxNamespaceType::User => {
                    return Err("user namespaces are not supported by the built-in runtime".into())
                }
                LinuxNamespaceType::Time => {
                    return Err("time namespaces are not supported by the built-in runtime".into())
                }
            };
            match n.path() {
                Some(path) => {
                    if flag == libc::CLONE_NEWNS || flag == libc::CLONE_NEWPID {
                        return Err(format!(
                            "joining an existing {} namespace is not supported by the built-in runtime",
                            n.typ()
                        ));
                    }
                    let fd = File::open(path)
                        .map_err(|e| format!("opening namespace {}: {e}", path.display()))?;
                    // Joined in the order runc uses: ipc, uts, net, cgroup.
                    let order = match flag {
                        libc::CLONE_NEWIPC => 0,
                        libc::CLONE_NEWUTS => 1,
                        libc::CLONE_NEWNET => 2,
                        _ => 3,
                    };
                    join_order.push((order, OwnedFd::from(fd), flag));
                }
                None => match flag {
                    libc::CLONE_NEWPID => ns.new_pid = true,
                    libc::CLONE_NEWCGROUP => ns.new_cgroup = true,
                    f => {
                        if f == libc::CLONE_NEWNS {
                            new_mount = true;
                        }
                        if f == libc::CLONE_NEWUTS {
                            new_uts = true;
                        }
                        ns.unshare |= f;
                    }
                },
            }
        }
        if !new_mount {
            return Err("the built-in runtime needs a new mount namespace".into());
        }
        join_order.sort_by_key(|(o, _, _)| *o);
        ns.join = join_order.into_iter().map(|(_, fd, f)| (fd, f)).collect();

        let mut mounts = Vec::new();
        let mut root_mount = None;
        let mut fresh_dev = false;
        let mut has_cgroup_mount = false;
        for m in spec.mounts().iter().flatten() {
            let plan = mount_plan(m)?;
            if plan.dest == Path::new("/") {
                if !matches!(plan.kind, MountKind::Fs { .. }) || root_mount.is_some() {
                    return Err("the only mount at / must be a file system".into());
                }
                root_mount = Some(plan);
                continue;
            }
            if plan.dest == Path::new("/dev") {
                fresh_dev = !matches!(plan.kind, MountKind::Bind { .. });
            }
            has_cgroup_mount |= matches!(plan.kind, MountKind::Cgroup);
            mounts.push(plan);
        }
        let cgroup = if has_cgroup_mount {
            cgroup_view(cgroup_path, ns.new_cgroup)?
        } else {
            CgroupView::V1 {
                binds: Vec::new(),
                links: Vec::new(),
            }
        };

        let mut nodes = if fresh_dev {
            devices::default_nodes()
        } else {
            Vec::new()
        };
        for d in linux.devices().iter().flatten() {
            let node = DeviceNode::from_spec(d)?;
            nodes.retain(|n| n.path != node.path);
            nodes.push(node);
        }
        let resources = linux.resources().clone().unwrap_or_default();
        let device_rules = devices::rules(&resources, linux.devices().as_deref().unwrap_or(&[]))?;

        let propagation = match linux.rootfs_propagation().as_deref() {
            None | Some("") => None,
            Some(p) => Some(
                propagation_flag(p).ok_or_else(|| format!("unknown rootfsPropagation {p:?}"))?,
            ),
        };
        let mut sysctl = Vec::new();
        for (k, v) in linux.sysctl().iter().flatten() {
            if k.contains('/') || k.contains("..") || k.is_empty() {
                return Err(format!("invalid sysctl {k:?}"));
            }
            sysctl.push((
                PathBuf::from("/proc/sys").join(k.replace('.', "/")),
                v.clone(),
            ));
        }
        let hostname = spec.hostname().clone().filter(|h| !h.is_empty());
        let domainname = spec.domainname().clone().filter(|h| !h.is_empty());
        if (hostname.is_some() || domainname.is_some()) && !new_uts {
            // As runc: a name can only be set in a UTS namespace of the container's own.
            if ns.join.iter().all(|(_, f)| *f != libc::CLONE_NEWUTS) {
                return Err("unable to set hostname without a private UTS namespace".into());
            }
        }

        let root = RootPlan {
            rootfs,
            mount: root_mount,
            readonly: root.readonly().unwrap_or(false),
            mounts,
            cgroup,
            devices: nodes,
            dev_links: fresh_dev,
            masked: checked_paths(linux.masked_paths().as_deref().unwrap_or(&[]))?,
            readonly_paths: checked_paths(linux.readonly_paths().as_deref().unwrap_or(&[]))?,
            propagation,
            sysctl,
            hostname: hostname.filter(|_| new_uts),
            domainname: domainname.filter(|_| new_uts),
        };
        if linux.seccomp().is_some() {
            return Err("seccomp profiles are not supported by the built-in runtime".into());
        }
        let process = ProcessPlan::new(process, console_socket)?;
        Ok(InitPlan {
            ns,
            root,
            process,
            resources,
            device_rules,
        })
    }
}

impl ExecPlan {
    pub(crate) fn new(
        process: &Process,
        init_pid: i32,
        console_socket: Option<&Path>,
    ) -> Result<ExecPlan, String> {
        let open = |name: &str| -> Result<OwnedFd, String> {
            File::open(format!("/proc/{init_pid}/ns/{name}"))
                .map(OwnedFd::from)
                .map_err(|e| format!("opening the container's {name} namespace: {e}"))
        };
        let pid_ns = Some(open("pid")?);
        let mut join = Vec::new();
        for (name, flag) in [
            ("ipc", libc::CLONE_NEWIPC),
            ("uts", libc::CLONE_NEWUTS),
            ("net", libc::CLONE_NEWNET),
            ("cgroup", libc::CLONE_NEWCGROUP),
            ("mnt", libc::CLONE_NEWNS),
        ] {
            join.push((open(name)?, flag));
        }
        Ok(ExecPlan {
            pid_ns,
            join,
            process: ProcessPlan::new(process, console_socket)?,
        })
    }
}

impl ProcessPlan {
    fn new(p: &Process, console_socket: Option<&Path>) -> Result<ProcessPlan, String> {
        let args: Vec<CString> = p
            .args()
            .iter()
            .flatten()
            .map(cstr)
            .collect::<Result<_, _>>()?;
        if args.is_empty() {
            return Err("process.args is empty".into());
        }
        let env_list = p.env().clone().unwrap_or_default();
        let path = env_list
            .iter()
            .rev()
            .find_map(|e| e.strip_prefix("PATH="))
            .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
            .to_string();
        let env = env_list.iter().map(cstr).collect::<Result<_, _>>()?;
        let cwd = p.cwd().clone();
        if !cwd.is_absolute() {
            return Err(format!("cwd {:?} is not absolute", cwd.display()));
        }
        let user = p.user();
        let caps = p.capabilities().as_ref().map(|c| {
            let mask = |set: &Option<oci_spec::runtime::Capabilities>| {
                set.iter().flatten().fold(0u64, |m, cap| {
                    // Names the caps crate (or this kernel) does not know are skipped, as
                    // runc warns and skips them.
                    match format!("CAP_{cap}").parse::<caps::Capability>() {
                        Ok(c) => m | c.bitmask(),
                        Err(_) => m,
                    }
                })
            };
            CapSets {
                bounding: mask(c.bounding()),
                effective: mask(c.effective()),
                permitted: mask(c.permitted()),
                inheritable: mask(c.inheritable()),
                ambient: mask(c.ambient()),
            }
        });
        let mut rlimits = Vec::new();
        for r in p.rlimits().iter().flatten() {
            rlimits.push((rlimit_resource(r.typ()), r.soft(), r.hard()));
        }
        if p.terminal().unwrap_or(false) && console_socket.is_none() {
            return Err("a terminal was asked for without a console socket".into());
        }
        Ok(ProcessPlan {
            args,
            env,
            path,
            cwd,
            uid: user.uid(),
            gid: user.gid(),
            groups: user.additional_gids().clone().unwrap_or_default(),
            umask: user.umask().unwrap_or(0o022),
            caps,
            no_new_privs: p.no_new_privileges().unwrap_or(false),
            rlimits,
            oom_score_adj: p.oom_score_adj(),
            terminal: p.terminal().unwrap_or(false),
            console_socket: console_socket.map(cstr).transpose()?,
        })
    }
}

fn rlimit_resource(t: PosixRlimitType) -> libc::__rlimit_resource_t {
    match t {
        PosixRlimitType::RlimitCpu => libc::RLIMIT_CPU,
        PosixRlimitType::RlimitFsize => libc::RLIMIT_FSIZE,
        PosixRlimitType::RlimitData => libc::RLIMIT_DATA,
        PosixRlimitType::RlimitStack => libc::RLIMIT_STACK,
        PosixRlimitType::RlimitCore => libc::RLIMIT_CORE,
        PosixRlimitType::RlimitRss => libc::RLIMIT_RSS,
        PosixRlimitType::RlimitNproc => libc::RLIMIT_NPROC,
        PosixRlimitType::RlimitNofile => libc::RLIMIT_NOFILE,
        PosixRlimitType::RlimitMemlock => libc::RLIMIT_MEMLOCK,
        PosixRlimitType::RlimitAs => libc::RLIMIT_AS,
        PosixRlimitType::RlimitLocks => libc::RLIMIT_LOCKS,
        PosixRlimitType::RlimitSigpending => libc::RLIMIT_SIGPENDING,
        PosixRlimitType::RlimitMsgqueue => libc::RLIMIT_MSGQUEUE,
        PosixRlimitType::RlimitNice => libc::RLIMIT_NICE,
        PosixRlimitType::RlimitRtprio => libc::RLIMIT_RTPRIO,
        PosixRlimitType::RlimitRttime => libc::RLIMIT_RTTIME,
    }
}

/// A container path: absolute, without `..`.
fn checked_path(p: &Path) -> Result<PathBuf, String> {
    if !p.is_absolute() {
        return Err(format!("path {} is not absolute", p.display()));
    }
    if p.components().any(|c| c == Component::ParentDir) {
        return Err(format!("path {} must not contain '..'", p.display()));
    }
    Ok(p.to_path_buf())
}

fn checked_paths(paths: &[String]) -> Result<Vec<PathBuf>, String> {
    paths.iter().map(|p| checked_path(Path::new(p))).collect()
}

fn propagation_flag(opt: &str) -> Option<MsFlags> {
    Some(match opt {
        "private" => MsFlags::MS_PRIVATE,
        "rprivate" => MsFlags::MS_PRIVATE | MsFlags::MS_REC,
        "shared" => MsFlags::MS_SHARED,
        "rshared" => MsFlags::MS_SHARED | MsFlags::MS_REC,
        "slave" => MsFlags::MS_SLAVE,
        "rslave" => MsFlags::MS_SLAVE | MsFlags::MS_REC,
        "unbindable" => MsFlags::MS_UNBINDABLE,
        "runbindable" => MsFlags::MS_UNBINDABLE | MsFlags::MS_REC,
        _ => return None,
    })
}

/// Mount options as flags (set, cleared) and file system data, as mount(8) reads them.
pub(crate) fn parse_options(options: &[String]) -> (MsFlags, Vec<MsFlags>, Vec<String>, bool) {
    let mut flags = MsFlags::empty();
    let mut propagation = Vec::new();
    let mut data = Vec::new();
    let mut bind = false;
    for o in options {
        let (set, clear) = match o.as_str() {
            "ro" => (MsFlags::MS_RDONLY, MsFlags::empty()),
            "rw" => (MsFlags::empty(), MsFlags::MS_RDONLY),
            "nosuid" => (MsFlags::MS_NOSUID, MsFlags::empty()),
            "suid" => (MsFlags::empty(), MsFlags::MS_NOSUID),
            "nodev" => (MsFlags::MS_NODEV, MsFlags::empty()),
            "dev" => (MsFlags::empty(), MsFlags::MS_NODEV),
            "noexec" => (MsFlags::MS_NOEXEC, MsFlags::empty()),
            "exec" => (MsFlags::empty(), MsFlags::MS_NOEXEC),
            "sync" => (MsFlags::MS_SYNCHRONOUS, MsFlags::empty()),
            "async" => (MsFlags::empty(), MsFlags::MS_SYNCHRONOUS),
            "dirsync" => (MsFlags::MS_DIRSYNC, MsFlags::empty()),
            "mand" => (MsFlags::MS_MANDLOCK, MsFlags::empty()),
            "nomand" => (MsFlags::empty(), MsFlags::MS_MANDLOCK),
            "noatime" => (MsFlags::MS_NOATIME, MsFlags::empty()),
            "atime" => (MsFlags::empty(), MsFlags::MS_NOATIME),
            "nodiratime" => (MsFlags::MS_NODIRATIME, MsFlags::empty()),
            "diratime" => (MsFlags::empty(), MsFlags::MS_NODIRATIME),
            "relatime" => (MsFlags::MS_RELATIME, MsFlags::empty()),
            "norelatime" => (MsFlags::empty(), MsFlags::MS_RELATIME),
            "strictatime" => (MsFlags::MS_STRICTATIME, MsFlags::empty()),
            "nostrictatime" => (MsFlags::empty(), MsFlags::MS_STRICTATIME),
            "bind" => {
                bind = true;
                (MsFlags::MS_BIND, MsFlags::empty())
            }
            "rbind" => {
                bind = true;
                (MsFlags::MS_BIND | MsFlags::MS_REC, MsFlags::empty())
            }
            // runc's own options that are not for the kernel.
            "tmpcopyup" | "defaults" => (MsFlags::empty(), MsFlags::empty()),
            other => {
                if let Some(p) = propagation_flag(other) {
                    propagation.push(p);
                } else {
                    data.push(other.to_string());
                }
                (MsFlags::empty(), MsFlags::empty())
            }
        };
        flags.insert(set);
        flags.remove(clear);
    }
    (flags, propagation, data, bind)
}

fn mount_plan(m: &oci_spec::runtime::Mount) -> Result<MountPlan, String> {
    let dest = checked_path(m.destination())?;
    let options = m.options().clone().unwrap_or_default();
    let (flags, propagation, data, bind) = parse_options(&options);
    let typ = m.typ().clone().unwrap_or_default();
    let kind = if bind || typ == "bind" {
        let source = m
            .source()
            .as_ref()
            .ok_or_else(|| format!("bind mount {} has no source", dest.display()))?;
        let meta = std::fs::metadata(source)
            .map_err(|e| format!("bind mount source {}: {e}", source.display()))?;
        MountKind::Bind {
            source: cstr(source)?,
            recursive: flags.contains(MsFlags::MS_REC),
            dir: meta.is_dir(),
        }
    } else if typ == "cgroup" || typ == "cgroup2" {
        MountKind::Cgroup
    } else {
        let source = m
            .source()
            .as_ref()
            .map(|s| s.as_os_str().to_owned())
            .unwrap_or_else(|| typ.clone().into());
        MountKind::Fs {
            fstype: cstr(&typ)?,
            source: cstr(source)?,
        }
    };
    let data = if data.is_empty() || matches!(kind, MountKind::Bind { .. }) {
        None
    } else {
        Some(cstr(data.join(","))?)
    };
    Ok(MountPlan {
        dest,
        kind,
        flags: flags - (MsFlags::MS_BIND | MsFlags::MS_REC),
        propagation,
        data,
    })
}

fn cgroup_view(cgroup_path: &str, new_ns: bool) -> Result<CgroupView, String> {
    let dirs = cgroups::named_dirs(cgroup_path).map_err(|e| e.to_string())?;
    match cgroups::version() {
        cgroups::CgroupVersion::V2 => {
            if new_ns {
                Ok(CgroupView::V2Namespaced)
            } else {
                let (_, dir) = dirs
                    .into_iter()
                    .next()
                    .ok_or("no cgroup2 mount on this machine")?;
                Ok(CgroupView::V2Bind(cstr(dir)?))
            }
        }
        cgroups::CgroupVersion::V1 => {
            let mut binds = Vec::new();
            for (name, dir) in dirs {
                binds.push((name, cstr(dir)?));
            }
            Ok(CgroupView::V1 {
                binds,
                links: cgroups::hierarchy_links(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_split_into_flags_propagation_and_data() {
        let opts: Vec<String> = [
            "nosuid", "rw", "rbind", "rslave", "mode=755", "size=1k", "ro",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let (flags, prop, data, bind) = parse_options(&opts);
        assert!(bind);
        assert_eq!(
            flags,
            MsFlags::MS_NOSUID | MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_RDONLY
        );
        assert_eq!(prop, vec![MsFlags::MS_SLAVE | MsFlags::MS_REC]);
        assert_eq!(data, vec!["mode=755".to_string(), "size=1k".to_string()]);
    }

    #[test]
    fn paths_must_stay_inside() {
        assert!(checked_path(Path::new("/a/../b")).is_err());
        assert!(checked_path(Path::new("rel")).is_err());
        assert_eq!(
            checked_path(Path::new("/a/b")).unwrap(),
            PathBuf::from("/a/b")
        );
    }

    #[test]
    fn process_from_spec() {
        let spec = Spec::default();
        let p = ProcessPlan::new(spec.process().as_ref().unwrap(), None).unwrap();
        assert_eq!(p.args, vec![CString::new("sh").unwrap()]);
        assert_eq!(
            p.path,
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        );
        assert_eq!(p.rlimits, vec![(libc::RLIMIT_NOFILE, 1024, 1024)]);
        let caps = p.caps.unwrap();
        assert_ne!(caps.bounding & caps::Capability::CAP_KILL.bitmask(), 0);
        assert_eq!(caps.bounding & caps::Capability::CAP_SYS_ADMIN.bitmask(), 0);
        assert!(p.no_new_privs);
    }
}
