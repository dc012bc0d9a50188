//! Per-pod namespaces. A [`Sandbox`] owns new network, IPC and UTS namespaces kept alive
//! by a holder process (the role of upstream's pause container, without an image): the
//! shim launcher forks it as `container-shim hold ...`; it unshares the namespaces, sets
//! the hostname, brings `lo` up, records itself in the sandbox directory and sleeps until
//! it is killed. The kubelet puts `/proc/<holder>/ns/<kind>` into each container's
//! `linux.namespaces`, hands the network namespace to CNI plugins and enters it for
//! probes and port forwarding. A holder costs no mount in the host's mount table, which
//! every container start copies (`unshare(CLONE_NEWNS)`) and tears down again (after
//! `pivot_root`); bind-mounting the nsfs files, as `ip netns add` does, cost three per
//! pod.
//!
//! The holder is identified by pid and start time, so a pid reused after the holder died
//! is never taken for it. A sandbox whose holder died is not [intact](Sandbox::intact):
//! its namespaces are gone with the holder's path to them, and the kubelet makes a new
//! one, as upstream does when the pause container dies.
//!
//! Layout of the sandbox directory: `sandbox.json` (pod uid, hostname, the namespaces the
//! pod has of its own, the holder). Sandboxes of earlier versions pinned their namespaces
//! by bind mounts at `net`, `ipc` and `uts` in the directory; those are still opened and
//! removed.

use std::ffi::OsString;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::mount::{umount2, MntFlags};
use nix::sched::CloneFlags;
use serde::{Deserialize, Serialize};

use crate::shim::{Detach, StartReport};
use crate::store::ProcRef;
use crate::sys;
use crate::Error;

/// Which namespaces a pod gets of its own (`false` shares the host's, as for
/// `hostNetwork`/`hostIPC` pods).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxNamespaces {
    /// A private network namespace (with `lo` up).
    pub net: bool,
    /// A private IPC namespace.
    pub ipc: bool,
    /// A private UTS namespace carrying the pod's hostname.
    pub uts: bool,
}

impl SandboxNamespaces {
    pub(crate) fn any(self) -> bool {
        self.net || self.ipc || self.uts
    }

    /// The holder's argument: the kinds joined by commas.
    fn to_arg(self) -> String {
        let mut kinds = Vec::new();
        for (name, wanted) in [("net", self.net), ("ipc", self.ipc), ("uts", self.uts)] {
            if wanted {
                kinds.push(name);
            }
        }
        kinds.join(",")
    }

    fn from_arg(arg: &str) -> Option<SandboxNamespaces> {
        let mut ns = SandboxNamespaces::default();
        for kind in arg.split(',') {
            match kind {
                "net" => ns.net = true,
                "ipc" => ns.ipc = true,
                "uts" => ns.uts = true,
                _ => return None,
            }
        }
        Some(ns)
    }

    fn clone_flags(self) -> CloneFlags {
        let mut flags = CloneFlags::empty();
        if self.net {
            flags |= CloneFlags::CLONE_NEWNET;
        }
        if self.ipc {
            flags |= CloneFlags::CLONE_NEWIPC;
        }
        if self.uts {
            flags |= CloneFlags::CLONE_NEWUTS;
        }
        flags
    }
}

/// A pod's namespaces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sandbox {
    /// The sandbox directory.
    pub dir: PathBuf,
    /// The network namespace file, if the pod has its own (and it is still there).
    pub net: Option<PathBuf>,
    /// The IPC namespace file, if the pod has its own (and it is still there).
    pub ipc: Option<PathBuf>,
    /// The UTS namespace file, if the pod has its own (and it is still there).
    pub uts: Option<PathBuf>,
    /// Whether the pod has namespaces of its own that a holder keeps.
    held: bool,
    /// The holder, if it ran in this boot.
    holder: Option<ProcRef>,
}

#[derive(Debug, Serialize, Deserialize)]
struct SandboxRecord {
    pod_uid: String,
    hostname: String,
    /// Absent in records of versions that pinned namespaces by bind mounts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    namespaces: Option<SandboxNamespaces>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    holder: Option<ProcRef>,
    /// The boot the holder ran in: after a reboot its pid and start time may name an
    /// unrelated process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    boot_id: Option<String>,
}

impl SandboxRecord {
    /// The record of a sandbox for `share`, kept by `holder` (of this boot).
    fn new(
        pod_uid: &str,
        hostname: &str,
        share: SandboxNamespaces,
        holder: Option<ProcRef>,
    ) -> SandboxRecord {
        SandboxRecord {
            pod_uid: pod_uid.to_string(),
            hostname: hostname.to_string(),
            namespaces: Some(share),
            holder,
            boot_id: holder.and_then(|_| boot_id()),
        }
    }

    /// The holder, if it is of this boot.
    fn holder_this_boot(&self) -> Option<ProcRef> {
        self.holder
            .filter(|_| self.boot_id.is_some() && self.boot_id == boot_id())
    }
}

/// This boot's id (`/proc/sys/kernel/random/boot_id`).
fn boot_id() -> Option<String> {
    fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .ok()
        .map(|s| s.trim().to_string())
}

const RECORD: &str = "sandbox.json";
const KINDS: [&str; 3] = ["net", "ipc", "uts"];
/// How long removal waits for a killed holder to be gone.
const HOLDER_EXIT_WAIT: Duration = Duration::from_secs(2);

/// Checks what [`Sandbox`] creation needs before anything is made: a valid hostname and
/// no sandbox in `dir` yet. Creates `dir`.
pub(crate) fn prepare(dir: &Path, hostname: &str) -> Result<(), Error> {
    if hostname.is_empty() || hostname.len() > 64 {
        return Err(Error::InvalidSpec(format!("invalid hostname {hostname:?}")));
    }
    if dir.join(RECORD).exists() {
        return Err(Error::SandboxExists(dir.to_path_buf()));
    }
    fs::create_dir_all(dir).map_err(|e| Error::io(format!("creating {}", dir.display()), e))
}

/// The holder's arguments (after `container-shim`) for a pod with namespaces of its
/// own (`share`).
pub(crate) fn holder_args(
    dir: &Path,
    pod_uid: &str,
    hostname: &str,
    share: SandboxNamespaces,
) -> Vec<OsString> {
    vec![
        "hold".into(),
        dir.into(),
        pod_uid.into(),
        hostname.into(),
        share.to_arg().into(),
    ]
}

/// Writes the record of a sandbox that needs no holder: the pod shares all the host's
/// namespaces.
pub(crate) fn write_unheld(
    dir: &Path,
    pod_uid: &str,
    hostname: &str,
    share: SandboxNamespaces,
) -> Result<(), Error> {
    let record = SandboxRecord::new(pod_uid, hostname, share, None);
    sys::write_json(&dir.join(RECORD), &record)
}

impl Sandbox {
    /// Opens an existing sandbox (after a kubelet restart); `None` if `dir` has no sandbox.
    /// A sandbox whose holder is gone opens without namespace paths and is not
    /// [intact](Sandbox::intact).
    pub fn open(dir: &Path) -> Result<Option<Sandbox>, Error> {
        let Some(rec) = sys::read_json::<SandboxRecord>(&dir.join(RECORD))? else {
            return Ok(None);
        };
        let Some(wanted) = rec.namespaces else {
            // Pinned by bind mounts (earlier versions).
            let ns = |name: &str| {
                let p = dir.join(name);
                is_nsfs(&p).then_some(p)
            };
            return Ok(Some(Sandbox {
                dir: dir.to_path_buf(),
                net: ns("net"),
                ipc: ns("ipc"),
                uts: ns("uts"),
                held: false,
                holder: None,
            }));
        };
        // A holder of an earlier boot is gone whatever its pid names now.
        let holder = rec.holder_this_boot();
        let live = holder.filter(|h| h.alive());
        let ns = |wanted: bool, name: &str| {
            live.filter(|_| wanted)
                .map(|h| PathBuf::from(format!("/proc/{}/ns/{name}", h.pid)))
        };
        Ok(Some(Sandbox {
            dir: dir.to_path_buf(),
            net: ns(wanted.net, "net"),
            ipc: ns(wanted.ipc, "ipc"),
            uts: ns(wanted.uts, "uts"),
            held: wanted.any(),
            holder,
        }))
    }

    /// Whether the sandbox's namespaces still exist: false once its holder died (the
    /// pod's containers may still run in them, but nothing can join them any more).
    pub fn intact(&self) -> bool {
        !self.held || self.holder.is_some_and(|h| h.alive())
    }

    /// Resolves when the sandbox's holder has exited (at once if it already has), so a
    /// kubelet can replace a lost sandbox without waiting for its next look; never
    /// resolves for a sandbox without a holder.
    pub async fn holder_exited(&self) {
        if !self.held {
            return std::future::pending().await;
        }
        let Some(h) = self.holder else {
            return;
        };
        if let Ok(Some(fd)) = sys::pidfd_for(h.pid, h.start_time) {
            // A pidfd turns readable when its process exits.
            // SAFETY: the pidfd is owned by the AsyncFd and neither replaced nor closed
            // while registered.
            let afd = unsafe {
                tokio::io::unix::AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE)
            };
            if let Ok(afd) = afd {
                let _ = afd.readable().await;
                return;
            }
        }
        while h.alive() {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// The holder process's pid, if the pod has namespaces of its own.
    pub fn holder_pid(&self) -> Option<i32> {
        self.holder.map(|h| h.pid)
    }

    /// The pod uid and hostname the sandbox was created with.
    pub fn identity(&self) -> Result<(String, String), Error> {
        let rec: SandboxRecord = sys::read_json(&self.dir.join(RECORD))?
            .ok_or_else(|| Error::NotFound(self.dir.display().to_string()))?;
        Ok((rec.pod_uid, rec.hostname))
    }

    /// Ends the namespaces' holder (they go away with their last process) and deletes
    /// the directory. Idempotent.
    pub fn remove(&self) -> Result<(), Error> {
        Self::remove_dir(&self.dir)
    }

    /// [`Sandbox::remove`] by directory.
    pub fn remove_dir(dir: &Path) -> Result<(), Error> {
        if let Ok(Some(rec)) = sys::read_json::<SandboxRecord>(&dir.join(RECORD)) {
            if let Some(h) = rec.holder_this_boot() {
                kill_holder(h);
            }
        }
        for name in KINDS {
            let p = dir.join(name);
            // Pins of earlier versions; a file can carry stacked mounts if creation was
            // retried: unmount all.
            for _ in 0..8 {
                match umount2(&p, MntFlags::MNT_DETACH) {
                    Ok(()) => continue,
                    Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => break,
                    Err(e) => {
                        return Err(Error::io(format!("unmounting {}", p.display()), e.into()))
                    }
                }
            }
        }
        match fs::remove_dir_all(dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io(format!("removing {}", dir.display()), e)),
        }
    }
}

/// Kills the holder `h` if it still runs and waits (briefly) until it has exited.
pub(crate) fn kill_holder(h: ProcRef) {
    // Through a pidfd taken while the process is known to be the holder, so a pid
    // reused in between is never signalled.
    let Ok(Some(fd)) = sys::pidfd_for(h.pid, h.start_time) else {
        return;
    };
    // SAFETY: pidfd_send_signal with a pidfd we own and no siginfo.
    unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            std::os::fd::AsRawFd::as_raw_fd(&fd),
            libc::SIGKILL,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        );
    }
    // The pidfd turns readable when the holder has exited.
    let mut pfd = libc::pollfd {
        fd: std::os::fd::AsRawFd::as_raw_fd(&fd),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: poll on one pollfd we own, with a timeout.
    unsafe { libc::poll(&mut pfd, 1, HOLDER_EXIT_WAIT.as_millis() as libc::c_int) };
}

fn is_nsfs(path: &Path) -> bool {
    nix::sys::statfs::statfs(path)
        .map(|s| s.filesystem_type() == nix::sys::statfs::NSFS_MAGIC)
        .unwrap_or(false)
}

/// `container-shim hold <sandbox dir> <pod uid> <hostname> <namespaces>`: detaches,
/// unshares the namespaces (a comma-separated list of `net`, `ipc`, `uts`), sets the
/// hostname, brings `lo` up, writes the sandbox record naming itself, reports
/// `{"pid":N}` (or `{"error":"..."}`) on its stdout and sleeps until killed. Returns the
/// exit code (only on failure).
pub(crate) fn holder_main(args: &[OsString], detach: Detach) -> i32 {
    let mut status = match crate::shim::take_status_channel() {
        Ok(f) => Some(f),
        Err(e) => {
            eprintln!("container-shim hold: cannot set up the status channel: {e}");
            return 1;
        }
    };
    let [dir, uid, hostname, kinds] = args else {
        let usage = "usage: container-shim hold <sandbox-dir> <pod-uid> <hostname> <namespaces>";
        return crate::shim::report_failure(&mut status, usage.into());
    };
    let (Some(uid), Some(hostname), Some(share)) = (
        uid.to_str(),
        hostname.to_str(),
        kinds.to_str().and_then(SandboxNamespaces::from_arg),
    ) else {
        let error = format!("bad sandbox holder arguments {args:?}");
        return crate::shim::report_failure(&mut status, error);
    };
    let dir = Path::new(dir);
    if let Err(e) = crate::shim::detach_from_starter(detach) {
        return crate::shim::report_failure(&mut status, format!("sandbox holder: {e}"));
    }
    let _ = std::env::set_current_dir("/");
    // As upstream's pause container: the last thing the OOM killer picks.
    let _ = fs::write("/proc/self/oom_score_adj", "-998");
    if let Err(e) = hold(dir, uid, hostname, share) {
        return crate::shim::report_failure(&mut status, e.to_string());
    }
    let report = StartReport {
        pid: Some(std::process::id() as i32),
        error: None,
    };
    // Nobody to hear it (the starter gave up): the sandbox is not wanted any more.
    if !crate::shim::report(&mut status, &report) {
        return 1;
    }
    // Nothing of the starter's stays open; the kubelet's signals for its process group
    // do not reach here (own session), and the holder ends only when killed.
    for (fd, mode) in [(0, libc::O_RDONLY), (2, libc::O_WRONLY)] {
        // SAFETY: opening /dev/null and moving it onto a standard descriptor.
        unsafe {
            let null = libc::open(c"/dev/null".as_ptr(), mode | libc::O_CLOEXEC);
            if null >= 0 {
                libc::dup2(null, fd);
                libc::close(null);
            }
        }
    }
    // SAFETY: setting signal dispositions in a single-threaded process.
    unsafe {
        libc::signal(libc::SIGHUP, libc::SIG_IGN);
        libc::signal(libc::SIGINT, libc::SIG_IGN);
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
    loop {
        // SAFETY: pause has no preconditions.
        unsafe { libc::pause() };
    }
}

/// The holder's own work: new namespaces, hostname, `lo`, the record.
fn hold(dir: &Path, uid: &str, hostname: &str, share: SandboxNamespaces) -> Result<(), Error> {
    let flags = share.clone_flags();
    nix::sched::unshare(flags).map_err(|e| Error::io("unshare", e.into()))?;
    if share.uts {
        nix::unistd::sethostname(hostname).map_err(|e| Error::io("sethostname", e.into()))?;
    }
    if share.net {
        loopback_up().map_err(|e| Error::io("bringing lo up", e))?;
    }
    let me = ProcRef::of(std::process::id() as i32)
        .ok_or_else(|| Error::Runtime("cannot read the holder's own start time".into()))?;
    let record = SandboxRecord::new(uid, hostname, share, Some(me));
    sys::write_json(&dir.join(RECORD), &record)
}

/// Sets IFF_UP on `lo` in the calling thread's network namespace.
fn loopback_up() -> io::Result<()> {
    // SAFETY: creating a socket has no memory-safety preconditions.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the socket was just created and is owned here.
    let sock = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    use std::os::fd::AsRawFd;
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS/SIOCSIFFLAGS read and write the ifreq we pass.
    unsafe {
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) < 0 {
            return Err(io::Error::last_os_error());
        }
        req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}
