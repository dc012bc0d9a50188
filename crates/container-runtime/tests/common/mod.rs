//! Shared helpers for the integration tests: a busybox rootfs, a minimal spec builder,
//! one runtime per test with a test-unique state dir and cgroup parent, and cleanup
//! guards that run even when a test fails.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use container_runtime::cgroups::PodCgroup;
use container_runtime::{
    ContainerInfo, ContainerRuntime, ContainerState, OciRuntime, RuntimeConfig,
};
use oci_spec::runtime::{LinuxMemoryBuilder, LinuxNamespace, LinuxNamespaceType, Mount, Spec};

/// Which runtime a test runs against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Builtin,
    Runc,
    Crun,
}

impl Kind {
    pub fn oci(self) -> OciRuntime {
        match self {
            Kind::Builtin => OciRuntime::Builtin,
            Kind::Runc => "runc".parse().unwrap(),
            Kind::Crun => "crun".parse().unwrap(),
        }
    }
}

static SEQ: AtomicU32 = AtomicU32::new(0);

/// One test's world: temp dir (rootfs, state dir, logs), runtime, cgroup parent.
pub struct Ctx {
    pub tmp: tempfile::TempDir,
    pub rootfs: PathBuf,
    pub state_dir: PathBuf,
    pub rt: ContainerRuntime,
    pub cg_parent: String,
    pub kind: Kind,
}

impl Ctx {
    pub fn new(kind: Kind) -> Ctx {
        let tmp = tempfile::Builder::new()
            .prefix("ferrokube-crt-")
            .tempdir()
            .unwrap();
        let rootfs = tmp.path().join("rootfs");
        make_rootfs(&rootfs);
        let state_dir = tmp.path().join("state");
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        let cg_parent = format!("/ferrokube-test-{}-{n}", std::process::id());
        let rt = runtime(&state_dir, kind);
        Ctx {
            tmp,
            rootfs,
            state_dir,
            rt,
            cg_parent,
            kind,
        }
    }

    /// A new runtime over the same state dir (as a restarted kubelet would make).
    pub fn reopen(&mut self) {
        self.rt = runtime(&self.state_dir, self.kind);
    }

    pub fn log(&self, id: &str) -> PathBuf {
        self.tmp.path().join("logs").join(format!("{id}.log"))
    }

    pub fn cgroup(&self, id: &str) -> String {
        format!("{}/{id}", self.cg_parent)
    }

    /// A spec running `args` (through the rootfs' busybox) in this test's cgroup parent.
    pub fn spec(&self, id: &str, args: &[&str]) -> Spec {
        spec(&self.rootfs, args, &self.cgroup(id))
    }

    pub fn id(&self, name: &str) -> String {
        format!("{name}-{}", self.kind_name())
    }

    fn kind_name(&self) -> &'static str {
        match self.kind {
            Kind::Builtin => "builtin",
            Kind::Runc => "runc",
            Kind::Crun => "crun",
        }
    }

    pub async fn start(&self, id: &str, spec: &Spec) -> ContainerInfo {
        self.rt
            .start(id, spec, &self.log(id), labels(id))
            .await
            .unwrap_or_else(|e| panic!("start {id}: {e}"))
    }

    /// Waits for the exit with a test timeout.
    pub async fn wait_exit(&self, id: &str) -> ContainerInfo {
        tokio::time::timeout(Duration::from_secs(20), self.rt.wait(id))
            .await
            .unwrap_or_else(|_| panic!("{id} did not exit"))
            .unwrap()
    }

    pub fn log_records(&self, id: &str) -> Vec<(String, String, String, String)> {
        parse_log(&fs::read_to_string(self.log(id)).unwrap_or_default())
    }
}

impl Drop for Ctx {
    fn drop(&mut self) {
        if let Ok(list) = self.rt.list() {
            for c in list {
                if let Err(e) = self.rt.remove(&c.id) {
                    eprintln!("cleanup: removing {}: {e}", c.id);
                }
            }
        }
        if let Err(e) = PodCgroup::from_path(self.cg_parent.clone()).remove() {
            eprintln!("cleanup: {e}");
        }
    }
}

fn runtime(state_dir: &Path, kind: Kind) -> ContainerRuntime {
    ContainerRuntime::new(RuntimeConfig {
        state_dir: state_dir.to_path_buf(),
        oci: kind.oci(),
        shim_program: PathBuf::from(env!("CARGO_BIN_EXE_ferrokube-shim")),
        shim_args: Vec::new(),
    })
    .unwrap()
}

pub fn labels(id: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("io.kubernetes.container.name".to_string(), id.to_string()),
        (
            "io.kubernetes.container.restartCount".to_string(),
            "0".to_string(),
        ),
    ])
}

/// A rootfs with a static busybox and the applets the tests use.
pub fn make_rootfs(root: &Path) {
    for d in ["bin", "proc", "dev", "sys", "etc", "tmp"] {
        fs::create_dir_all(root.join(d)).unwrap();
    }
    fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
    for applet in [
        "sh", "sleep", "echo", "cat", "true", "false", "nc", "hostname", "head", "tail", "dd",
        "printf", "ls", "ps", "grep", "tty", "stty", "env",
    ] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
    }
    fs::write(root.join("etc/hostname"), "").unwrap();
}

/// runc's default spec, adjusted: our args, no terminal, the given cgroup.
pub fn spec(rootfs: &Path, args: &[&str], cgroups_path: &str) -> Spec {
    let mut spec = Spec::default();
    let mut root = spec.root().clone().unwrap();
    root.set_path(rootfs.to_path_buf());
    spec.set_root(Some(root));
    let mut process = spec.process().clone().unwrap();
    process.set_terminal(Some(false));
    process.set_args(Some(args.iter().map(|s| s.to_string()).collect()));
    spec.set_process(Some(process));
    let mut linux = spec.linux().clone().unwrap();
    linux.set_cgroups_path(Some(PathBuf::from(cgroups_path)));
    spec.set_linux(Some(linux));
    spec
}

pub fn with_memory_limit(mut spec: Spec, bytes: i64) -> Spec {
    let mut linux = spec.linux().clone().unwrap();
    let mut res = linux.resources().clone().unwrap_or_default();
    res.set_memory(Some(
        LinuxMemoryBuilder::default().limit(bytes).build().unwrap(),
    ));
    linux.set_resources(Some(res));
    spec.set_linux(Some(linux));
    spec
}

/// Joins the sandbox's namespaces and bind-mounts a file with the pod's hostname at
/// /etc/hostname (the kubelet keeps its own in the pod directory; this one goes with
/// the sandbox directory).
pub fn in_sandbox(mut spec: Spec, sb: &container_runtime::sandbox::Sandbox) -> Spec {
    let (_, hostname) = sb.identity().unwrap();
    let hostname_file = sb.dir.join("test-hostname");
    std::fs::write(&hostname_file, format!("{hostname}\n")).unwrap();
    let mut linux = spec.linux().clone().unwrap();
    let mut nss: Vec<LinuxNamespace> = linux.namespaces().clone().unwrap_or_default();
    for ns in nss.iter_mut() {
        let path = match ns.typ() {
            LinuxNamespaceType::Network => sb.net.clone(),
            LinuxNamespaceType::Ipc => sb.ipc.clone(),
            LinuxNamespaceType::Uts => sb.uts.clone(),
            _ => None,
        };
        if path.is_some() {
            ns.set_path(path);
        }
    }
    linux.set_namespaces(Some(nss));
    spec.set_linux(Some(linux));
    // The hostname lives in the shared UTS namespace already.
    spec.set_hostname(None);
    let mut mounts: Vec<Mount> = spec.mounts().clone().unwrap_or_default();
    let mut m = Mount::default();
    m.set_destination(PathBuf::from("/etc/hostname"));
    m.set_typ(Some("bind".into()));
    m.set_source(Some(hostname_file));
    m.set_options(Some(vec!["rbind".into(), "ro".into()]));
    mounts.push(m);
    spec.set_mounts(Some(mounts));
    spec
}

/// (timestamp, stream, tag, body) per CRI log record.
pub fn parse_log(text: &str) -> Vec<(String, String, String, String)> {
    text.lines()
        .map(|l| {
            let mut it = l.splitn(4, ' ');
            (
                it.next().unwrap_or("").to_string(),
                it.next().unwrap_or("").to_string(),
                it.next().unwrap_or("").to_string(),
                it.next().unwrap_or("").to_string(),
            )
        })
        .collect()
}

pub fn exited(info: &ContainerInfo) -> (i32, Option<i32>, bool, Option<String>, Option<String>) {
    match &info.state {
        ContainerState::Exited {
            exit_code,
            signal,
            oom_killed,
            reason,
            message,
            ..
        } => (
            *exit_code,
            *signal,
            *oom_killed,
            reason.clone(),
            message.clone(),
        ),
        other => panic!("{} not exited: {other:?}", info.id),
    }
}

/// Mount points below `prefix`.
pub fn mounts_under(prefix: &Path) -> Vec<String> {
    let p = prefix.to_string_lossy().to_string();
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(str::to_string))
        .filter(|m| m.starts_with(&p))
        .collect()
}

/// Pids of processes whose command line mentions `needle`.
pub fn processes_mentioning(needle: &str) -> Vec<i32> {
    let mut out = Vec::new();
    for e in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if pid == std::process::id() as i32 {
            continue;
        }
        let cmd = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cgroup = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
        if String::from_utf8_lossy(&cmd).contains(needle) || cgroup.contains(needle) {
            // Zombies waiting for a reaper are gone for our purposes.
            let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let state = stat
                .rsplit(')')
                .next()
                .and_then(|r| r.split_whitespace().next());
            if state != Some("Z") {
                out.push(pid);
            }
        }
    }
    out
}

/// Generates one test per runtime for an async test body `fn(Kind)`.
#[macro_export]
macro_rules! per_runtime {
    ($body:ident) => {
        mod $body {
            use super::common::Kind;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn builtin() {
                super::$body(Kind::Builtin).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn runc() {
                super::$body(Kind::Runc).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn crun() {
                super::$body(Kind::Crun).await
            }
        }
    };
}
