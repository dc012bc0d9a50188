//! Per-pod namespaces without a pause process. A [`Sandbox`] owns new network, IPC and
//! UTS namespaces kept alive by bind-mounting their nsfs files into the sandbox directory
//! (as `ip netns add` does); the kubelet puts those paths into each container's
//! `linux.namespaces`. The namespaces are made by a short-lived thread (these namespace
//! kinds are per thread), which also sets the hostname and brings `lo` up.
//!
//! Layout of the sandbox directory: `net`, `ipc`, `uts` (bind mounts of the nsfs files),
//! `hostname` (the pod's hostname, for bind-mounting at `/etc/hostname`) and
//! `sandbox.json` (pod uid and hostname).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::CloneFlags;
use serde::{Deserialize, Serialize};

use crate::sys;
use crate::Error;

/// Which namespaces a pod gets of its own (`false` shares the host's, as for
/// `hostNetwork`/`hostIPC` pods).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SandboxNamespaces {
    /// A private network namespace (with `lo` up).
    pub net: bool,
    /// A private IPC namespace.
    pub ipc: bool,
    /// A private UTS namespace carrying the pod's hostname.
    pub uts: bool,
}

/// A pod's namespaces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sandbox {
    /// The sandbox directory.
    pub dir: PathBuf,
    /// The network namespace file, if the pod has its own.
    pub net: Option<PathBuf>,
    /// The IPC namespace file, if the pod has its own.
    pub ipc: Option<PathBuf>,
    /// The UTS namespace file, if the pod has its own.
    pub uts: Option<PathBuf>,
}

#[derive(Debug, Serialize, Deserialize)]
struct SandboxRecord {
    pod_uid: String,
    hostname: String,
}

const KINDS: [(&str, CloneFlags); 3] = [
    ("net", CloneFlags::CLONE_NEWNET),
    ("ipc", CloneFlags::CLONE_NEWIPC),
    ("uts", CloneFlags::CLONE_NEWUTS),
];

impl Sandbox {
    /// Creates the namespaces selected by `share` for the pod `pod_uid` in `dir` (created if
    /// missing), sets `hostname` in the new UTS namespace and brings `lo` up in the new
    /// network namespace. On failure nothing is left mounted. Fails with
    /// [`Error::SandboxExists`] if `dir` already holds a sandbox (remove it first).
    pub fn create(
        dir: &Path,
        pod_uid: &str,
        hostname: &str,
        share: SandboxNamespaces,
    ) -> Result<Sandbox, Error> {
        if hostname.is_empty() || hostname.len() > 64 {
            return Err(Error::InvalidSpec(format!("invalid hostname {hostname:?}")));
        }
        if dir.join("sandbox.json").exists() {
            return Err(Error::SandboxExists(dir.to_path_buf()));
        }
        fs::create_dir_all(dir).map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
        sys::write_json(
            &dir.join("sandbox.json"),
            &SandboxRecord {
                pod_uid: pod_uid.to_string(),
                hostname: hostname.to_string(),
            },
        )?;

        let wanted: Vec<(&'static str, CloneFlags)> = KINDS
            .iter()
            .copied()
            .filter(|(name, _)| match *name {
                "net" => share.net,
                "ipc" => share.ipc,
                _ => share.uts,
            })
            .collect();
        let dir_owned = dir.to_path_buf();
        let host = hostname.to_string();
        let made = std::thread::Builder::new()
            .name("sandbox-ns".into())
            .spawn(move || make_namespaces(&dir_owned, &host, &wanted))
            .map_err(|e| Error::io("spawning the namespace thread", e))?
            .join()
            .unwrap_or_else(|_| Err(Error::Runtime("namespace thread panicked".into())));
        if let Err(e) = made {
            let _ = Self::remove_dir(dir);
            return Err(e);
        }
        Self::open(dir)?.ok_or_else(|| Error::Runtime("sandbox vanished after creation".into()))
    }

    /// Opens an existing sandbox (after a kubelet restart); `None` if `dir` has no sandbox.
    pub fn open(dir: &Path) -> Result<Option<Sandbox>, Error> {
        if !dir.join("sandbox.json").exists() {
            return Ok(None);
        }
        let ns = |name: &str| {
            let p = dir.join(name);
            is_nsfs(&p).then_some(p)
        };
        Ok(Some(Sandbox {
            dir: dir.to_path_buf(),
            net: ns("net"),
            ipc: ns("ipc"),
            uts: ns("uts"),
        }))
    }

    /// The pod uid and hostname the sandbox was created with.
    pub fn identity(&self) -> Result<(String, String), Error> {
        let rec: SandboxRecord = sys::read_json(&self.dir.join("sandbox.json"))?
            .ok_or_else(|| Error::NotFound(self.dir.display().to_string()))?;
        Ok((rec.pod_uid, rec.hostname))
    }

    /// Unmounts the namespaces (they go away with their last process) and deletes the
    /// directory. Idempotent.
    pub fn remove(&self) -> Result<(), Error> {
        Self::remove_dir(&self.dir)
    }

    /// [`Sandbox::remove`] by directory.
    pub fn remove_dir(dir: &Path) -> Result<(), Error> {
        for (name, _) in KINDS {
            let p = dir.join(name);
            // A file can carry stacked mounts if creation was retried: unmount all.
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

fn is_nsfs(path: &Path) -> bool {
    nix::sys::statfs::statfs(path)
        .map(|s| s.filesystem_type() == nix::sys::statfs::NSFS_MAGIC)
        .unwrap_or(false)
}

/// Runs on a dedicated thread: unshares, configures and pins the namespaces.
fn make_namespaces(
    dir: &Path,
    hostname: &str,
    wanted: &[(&'static str, CloneFlags)],
) -> Result<(), Error> {
    if wanted.is_empty() {
        return Ok(());
    }
    let flags = wanted.iter().fold(CloneFlags::empty(), |f, (_, k)| f | *k);
    nix::sched::unshare(flags).map_err(|e| Error::io("unshare", e.into()))?;
    if flags.contains(CloneFlags::CLONE_NEWUTS) {
        nix::unistd::sethostname(hostname).map_err(|e| Error::io("sethostname", e.into()))?;
    }
    if flags.contains(CloneFlags::CLONE_NEWNET) {
        loopback_up().map_err(|e| Error::io("bringing lo up", e))?;
    }
    // SAFETY: gettid has no preconditions.
    let tid = unsafe { libc::syscall(libc::SYS_gettid) };
    for (name, _) in wanted {
        let target = dir.join(name);
        fs::File::create(&target)
            .map_err(|e| Error::io(format!("creating {}", target.display()), e))?;
        let source = PathBuf::from(format!("/proc/self/task/{tid}/ns/{name}"));
        mount(
            Some(&source),
            &target,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(|e| Error::io(format!("bind-mounting {}", target.display()), e.into()))?;
    }
    Ok(())
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
