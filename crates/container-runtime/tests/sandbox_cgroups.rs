//! Pod sandboxes (namespaces held by a holder process) and the pod cgroup tree. Needs
//! root and cgroups.

mod common;

use std::fs;
use std::path::Path;

use common::{Ctx, Kind};
use container_runtime::cgroups::{self, CgroupVersion, PodCgroup, PodResources, QosClass};
use container_runtime::sandbox::{Sandbox, SandboxNamespaces};

fn ns_inode(p: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    fs::metadata(p).unwrap().ino()
}

fn all() -> SandboxNamespaces {
    SandboxNamespaces {
        net: true,
        ipc: true,
        uts: true,
    }
}

fn cmdline(pid: i32) -> String {
    String::from_utf8_lossy(&fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default())
        .replace('\0', " ")
}

#[tokio::test]
async fn sandbox_create_remove_twice() {
    let mut ctx = Ctx::new(Kind::Builtin);
    let dir = ctx.tmp.path().join("pod");
    let host_net = ns_inode(Path::new("/proc/self/ns/net"));
    let host_uts = ns_inode(Path::new("/proc/self/ns/uts"));
    for round in 0..2 {
        let sb = ctx
            .rt
            .create_sandbox(&dir, "uid-1", "web-0", all())
            .await
            .unwrap();
        // Held by a process, not by mounts.
        assert!(common::mounts_under(&dir).is_empty(), "round {round}");
        let holder = sb.holder_pid().unwrap();
        assert!(cmdline(holder).contains("hold"), "{}", cmdline(holder));
        for p in [&sb.net, &sb.ipc, &sb.uts] {
            let p = p.as_ref().unwrap();
            assert!(p.starts_with(format!("/proc/{holder}/ns")), "{p:?}");
        }
        assert_ne!(ns_inode(sb.net.as_ref().unwrap()), host_net);
        assert_ne!(ns_inode(sb.uts.as_ref().unwrap()), host_uts);
        assert!(sb.intact());
        assert_eq!(
            sb.identity().unwrap(),
            ("uid-1".to_string(), "web-0".to_string())
        );
        // A second sandbox in the same place is refused and changes nothing.
        let again = ctx.rt.create_sandbox(&dir, "uid-1", "web-0", all()).await;
        assert!(again.is_err());
        assert!(sb.intact());
        // Adoption after a restart (a new runtime) sees the same namespaces.
        ctx.reopen();
        assert_eq!(Sandbox::open(&dir).unwrap(), Some(sb.clone()));
        sb.remove().unwrap();
        assert!(!dir.exists());
        assert!(
            common::processes_mentioning(&dir.to_string_lossy()).is_empty(),
            "round {round}: the holder outlived removal"
        );
        sb.remove().unwrap();
        Sandbox::remove_dir(&dir).unwrap();
    }
    assert_eq!(Sandbox::open(&dir).unwrap(), None);
}

#[tokio::test]
async fn sandbox_hostname_and_loopback() {
    let ctx = Ctx::new(Kind::Builtin);
    let dir = ctx.tmp.path().join("pod");
    let sb = ctx
        .rt
        .create_sandbox(&dir, "uid-3", "web-3", all())
        .await
        .unwrap();
    let holder = sb.holder_pid().unwrap();
    let out = std::process::Command::new("nsenter")
        .args(["-t", &holder.to_string(), "-u", "-n", "sh", "-c"])
        .arg("hostname; ip -o link show")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    sb.remove().unwrap();
    assert!(out.status.success(), "{out:?}");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "web-3");
    // Only lo, and it is up.
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines[1].starts_with("1: lo: <LOOPBACK,UP"), "{text}");
}

#[tokio::test]
async fn sandbox_whose_holder_died_is_not_intact() {
    let ctx = Ctx::new(Kind::Builtin);
    let dir = ctx.tmp.path().join("pod");
    let sb = ctx
        .rt
        .create_sandbox(&dir, "uid-4", "web-4", all())
        .await
        .unwrap();
    let holder = sb.holder_pid().unwrap();
    let short = std::time::Duration::from_millis(100);
    assert!(
        tokio::time::timeout(short, sb.holder_exited())
            .await
            .is_err(),
        "the holder is alive"
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(holder),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let long = std::time::Duration::from_secs(5);
    tokio::time::timeout(long, sb.holder_exited())
        .await
        .expect("the holder's exit is noticed");
    assert!(!sb.intact());
    let reopened = Sandbox::open(&dir).unwrap().unwrap();
    assert!(!reopened.intact());
    assert!(reopened.net.is_none() && reopened.ipc.is_none() && reopened.uts.is_none());
    reopened.remove().unwrap();
    assert!(!dir.exists());
    // A new one can be made in its place.
    let sb = ctx
        .rt
        .create_sandbox(&dir, "uid-4", "web-4", all())
        .await
        .unwrap();
    assert!(sb.intact());
    sb.remove().unwrap();
}

/// After a reboot the recorded pid and start time may name an unrelated process: a
/// record of another boot is a lost sandbox, and removing it signals nothing.
#[tokio::test]
async fn holder_of_another_boot_is_neither_trusted_nor_killed() {
    let ctx = Ctx::new(Kind::Builtin);
    let dir = ctx.tmp.path().join("pod");
    let sb = ctx
        .rt
        .create_sandbox(&dir, "uid-7", "web-7", all())
        .await
        .unwrap();
    let holder = sb.holder_pid().unwrap();
    let record = dir.join("sandbox.json");
    let mut rec: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&record).unwrap()).unwrap();
    assert!(rec["boot_id"].is_string(), "{rec}");
    rec["boot_id"] = "00000000-0000-0000-0000-000000000000".into();
    fs::write(&record, rec.to_string()).unwrap();
    let reopened = Sandbox::open(&dir).unwrap().unwrap();
    assert!(!reopened.intact());
    assert!(reopened.net.is_none());
    Sandbox::remove_dir(&dir).unwrap();
    assert!(!dir.exists());
    // The process the record named still runs.
    assert!(cmdline(holder).contains("hold"), "it was killed");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(holder),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
}

#[tokio::test]
async fn host_network_sandbox() {
    let ctx = Ctx::new(Kind::Builtin);
    let dir = ctx.tmp.path().join("pod");
    let only_ipc = SandboxNamespaces {
        net: false,
        ipc: true,
        uts: false,
    };
    let sb = ctx
        .rt
        .create_sandbox(&dir, "uid-2", "node-1", only_ipc)
        .await
        .unwrap();
    assert!(sb.net.is_none() && sb.uts.is_none() && sb.ipc.is_some());
    assert_ne!(
        ns_inode(sb.ipc.as_ref().unwrap()),
        ns_inode(Path::new("/proc/self/ns/ipc"))
    );
    sb.remove().unwrap();
    assert!(!dir.exists());

    // Nothing of its own: no holder at all.
    let none = SandboxNamespaces::default();
    let sb = ctx
        .rt
        .create_sandbox(&dir, "uid-2", "node-1", none)
        .await
        .unwrap();
    assert!(sb.holder_pid().is_none() && sb.net.is_none() && sb.ipc.is_none());
    assert!(sb.intact());
    assert_eq!(Sandbox::open(&dir).unwrap(), Some(sb.clone()));
    sb.remove().unwrap();
    assert!(!dir.exists());
}

#[tokio::test]
async fn bad_hostname_makes_nothing() {
    let ctx = Ctx::new(Kind::Builtin);
    let dir = ctx.tmp.path().join("pod");
    let long = "a".repeat(65);
    assert!(ctx
        .rt
        .create_sandbox(&dir, "uid-5", &long, all())
        .await
        .is_err());
    assert!(ctx
        .rt
        .create_sandbox(&dir, "uid-5", "", all())
        .await
        .is_err());
    assert_eq!(Sandbox::open(&dir).unwrap(), None);
    assert!(common::processes_mentioning(&dir.to_string_lossy()).is_empty());
}

/// A sandbox of an earlier version, its namespaces pinned by bind mounts, still opens
/// and is removed with its mounts.
#[test]
fn bind_mounted_sandbox_of_earlier_versions() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("pod");
    fs::create_dir_all(&dir).unwrap();
    fs::write(
        dir.join("sandbox.json"),
        r#"{"pod_uid":"uid-6","hostname":"old-6"}"#,
    )
    .unwrap();
    let target = dir.join("ipc");
    fs::File::create(&target).unwrap();
    nix::mount::mount(
        Some("/proc/self/ns/ipc"),
        &target,
        None::<&str>,
        nix::mount::MsFlags::MS_BIND,
        None::<&str>,
    )
    .unwrap();
    let sb = Sandbox::open(&dir).unwrap().unwrap();
    assert_eq!(sb.ipc.as_deref(), Some(target.as_path()));
    assert!(sb.net.is_none() && sb.uts.is_none());
    assert!(sb.intact());
    assert_eq!(common::mounts_under(&dir).len(), 1);
    sb.remove().unwrap();
    assert!(common::mounts_under(&dir).is_empty());
    assert!(!dir.exists());
}

fn read(dir: &Path, file: &str) -> String {
    fs::read_to_string(dir.join(file))
        .unwrap()
        .trim()
        .to_string()
}

struct CgGuard(String);

impl Drop for CgGuard {
    fn drop(&mut self) {
        let _ = PodCgroup::from_path(self.0.clone()).remove();
    }
}

#[test]
fn pod_cgroups_with_limits() {
    let root = format!("/ferrokube-podtest-{}", std::process::id());
    let _guard = CgGuard(root.clone());
    let uid = "8dd8d8f4-5b9e-4c1b-9c1e-0123456789ab";
    let res = PodResources {
        cpu_shares: Some(512),
        cpu_quota_us: Some(50_000),
        cpu_period_us: Some(100_000),
        memory_limit_bytes: Some(64 << 20),
        pids_limit: Some(100),
    };
    let pod = PodCgroup::ensure_under(&root, QosClass::Burstable, uid, &res).unwrap();
    assert_eq!(pod.path(), format!("{root}/kubepods/burstable/pod{uid}"));
    assert!(pod.exists());
    let dirs = cgroups::cgroup_dirs(pod.path()).unwrap();
    assert!(dirs.iter().all(|d| d.is_dir()), "{dirs:?}");
    match cgroups::version() {
        CgroupVersion::V1 => {
            let d = |ctrl: &str| {
                dirs.iter()
                    .find(|d| d.join(ctrl).exists())
                    .unwrap_or_else(|| panic!("no {ctrl}"))
                    .clone()
            };
            assert_eq!(
                read(&d("memory.limit_in_bytes"), "memory.limit_in_bytes"),
                (64u64 << 20).to_string()
            );
            assert_eq!(read(&d("cpu.shares"), "cpu.shares"), "512");
            assert_eq!(read(&d("cpu.cfs_quota_us"), "cpu.cfs_quota_us"), "50000");
            assert_eq!(read(&d("cpu.cfs_period_us"), "cpu.cfs_period_us"), "100000");
            assert_eq!(read(&d("pids.max"), "pids.max"), "100");
            let cpuset = d("cpuset.cpus");
            assert!(!read(&cpuset, "cpuset.cpus").is_empty());
            assert!(!read(&cpuset, "cpuset.mems").is_empty());
        }
        CgroupVersion::V2 => {
            let d = &dirs[0];
            assert_eq!(read(d, "memory.max"), (64u64 << 20).to_string());
            assert_eq!(read(d, "cpu.max"), "50000 100000");
            assert_eq!(
                read(d, "cpu.weight"),
                cgroups::shares_to_weight(512).to_string()
            );
            assert_eq!(read(d, "pids.max"), "100");
        }
    }

    // Lifting the limits.
    pod.update(&PodResources {
        cpu_shares: Some(2),
        ..Default::default()
    })
    .unwrap();
    if cgroups::version() == CgroupVersion::V1 {
        let mem = dirs
            .iter()
            .find(|d| d.join("memory.limit_in_bytes").exists())
            .unwrap();
        let limit: u64 = read(mem, "memory.limit_in_bytes").parse().unwrap();
        assert!(limit > 1 << 50, "{limit}");
        let cpu = dirs.iter().find(|d| d.join("cpu.shares").exists()).unwrap();
        assert_eq!(read(cpu, "cpu.cfs_quota_us"), "-1");
        assert_eq!(read(cpu, "cpu.shares"), "2");
    }

    // A leftover process in a container cgroup below the pod is killed on removal.
    let ctr = format!("{}/ctr1", pod.path());
    let mut child = std::process::Command::new("sleep")
        .arg("100")
        .spawn()
        .unwrap();
    let pid = child.id();
    for d in cgroups::cgroup_dirs(pod.path()).unwrap() {
        let sub = d.join("ctr1");
        fs::create_dir_all(&sub).unwrap();
        let _ = fs::write(sub.join("cgroup.procs"), pid.to_string());
    }
    assert!(cgroups::cgroup_pids(&ctr).contains(&(pid as i32)));
    if cgroups::version() == CgroupVersion::V1 {
        // The pod's cpuset children get its cpus and mems from the kernel.
        let cpuset = dirs
            .iter()
            .find(|d| d.join("cpuset.cpus").exists())
            .unwrap();
        assert_eq!(read(cpuset, "cgroup.clone_children"), "1");
        for f in ["cpuset.cpus", "cpuset.mems"] {
            let mine = read(&cpuset.join("ctr1"), f);
            assert!(!mine.is_empty(), "{f}");
            assert_eq!(mine, read(cpuset, f), "{f}");
        }
        // So the process could join the container's cpuset cgroup.
        let procs = read(&cpuset.join("ctr1"), "cgroup.procs");
        assert_eq!(procs, pid.to_string());
    }
    let listed = PodCgroup::list_under(&root).unwrap();
    assert_eq!(listed, vec![pod.clone()]);

    pod.remove().unwrap();
    let status = child.wait().unwrap();
    assert!(!status.success());
    assert!(!pod.exists());
    for d in &dirs {
        assert!(!d.exists(), "{} left", d.display());
    }
    pod.remove().unwrap();

    // Guaranteed and BestEffort placement.
    let g = PodCgroup::ensure_under(&root, QosClass::Guaranteed, "g1", &PodResources::default())
        .unwrap();
    let b = PodCgroup::ensure_under(&root, QosClass::BestEffort, "b1", &PodResources::default())
        .unwrap();
    assert_eq!(g.path(), format!("{root}/kubepods/podg1"));
    assert_eq!(b.path(), format!("{root}/kubepods/besteffort/podb1"));
    assert!(g.exists() && b.exists());
    let listed = PodCgroup::list_under(&root).unwrap();
    assert_eq!(listed, vec![b.clone(), g.clone()]);
    g.remove().unwrap();
    b.remove().unwrap();
    PodCgroup::from_path(root.clone()).remove().unwrap();
    for d in cgroups::cgroup_dirs(&root).unwrap() {
        assert!(!d.exists(), "{} left", d.display());
    }
}

#[test]
fn container_paths() {
    assert_eq!(
        cgroups::container_cgroup_path(QosClass::Burstable, "u1", "abc"),
        "/kubepods/burstable/podu1/abc"
    );
    assert_eq!(
        cgroups::cgroup_parent_path(QosClass::Guaranteed, "u1"),
        "/kubepods/podu1"
    );
}
