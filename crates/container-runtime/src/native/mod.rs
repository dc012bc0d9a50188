//! ferrokube's own OCI runtime, the default (`--oci-runtime=builtin`): it creates and
//! starts a container from its bundle with one fork of the calling shim, and runs exec
//! processes in a running container.
//!
//! [`create_and_start`] reads and checks the spec ([`plan`]), makes and limits the cgroup,
//! then forks once. The parent moves the child into the cgroup and lets it go; the child
//! ([`child`]) unshares its namespaces and joins the pod's, builds the root filesystem
//! ([`rootfs`]), pivots into it, takes the spec's user, capabilities and limits and execs
//! the process. A close-on-exec pipe carries a failure's message back; its end of file
//! means the exec happened. The runtime reads no mount table and keeps no state of its
//! own: the shim's records and the cgroup are the container.
//!
//! New PID namespaces come from `unshare(CLONE_NEWPID)` in the (single-purpose) shim
//! before the fork, so the child is the namespace's init without a second fork; `exec`
//! joins the container's PID namespace the same way.

use std::ffi::CString;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

use crate::backend::{ExecEnd, Stdio3};
use crate::cgroups;
use crate::store::{ContainerDir, Meta, CONFIG_FILE};

mod child;
mod devices;
mod plan;
mod rootfs;

/// Creates and starts the container of `dir`; returns the host pid of its process, or
/// the message a `StartError` shows.
pub(crate) fn create_and_start(
    meta: &Meta,
    dir: &ContainerDir,
    stdio: Stdio3,
    console_socket: Option<&Path>,
) -> Result<i32, String> {
    let failed = |m: String| format!("OCI runtime create failed: {m}");
    let spec = oci_spec::runtime::Spec::load(dir.file(CONFIG_FILE))
        .map_err(|e| failed(format!("reading config.json: {e}")))?;
    let plan = plan::InitPlan::new(&spec, &meta.cgroups_path, console_socket).map_err(failed)?;
    cgroups::create_cgroup(&meta.cgroups_path, cgroups::Children::None)
        .map_err(|e| failed(e.to_string()))?;
    devices::apply_resources(&meta.cgroups_path, &plan.resources, &plan.device_rules)
        .map_err(|e| failed(e.to_string()))?;
    if plan.ns.new_pid {
        // SAFETY: unshare with a flag; it only changes where this process's next
        // children are created.
        if unsafe { libc::unshare(libc::CLONE_NEWPID) } != 0 {
            return Err(failed(format!(
                "unshare pid namespace: {}",
                io::Error::last_os_error()
            )));
        }
    }
    let (go_r, go_w) = pipe().map_err(|e| failed(format!("pipe: {e}")))?;
    let (err_r, err_w) = pipe().map_err(|e| failed(format!("pipe: {e}")))?;
    // SAFETY: the shim is single-threaded; the child only runs `child::init` and exits.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(failed(format!("fork: {}", io::Error::last_os_error())));
    }
    if pid == 0 {
        drop(go_w);
        drop(err_r);
        child::run(err_w, || child::init(&plan, stdio, go_r))
    }
    drop(go_r);
    drop(err_w);
    drop(stdio);
    release(pid, &meta.cgroups_path, go_w, err_r).map_err(failed)
}

/// Puts the child into its cgroup, lets it go and waits for its exec (or its error).
fn release(pid: i32, cgroup: &str, go_w: OwnedFd, err_r: OwnedFd) -> Result<i32, String> {
    if let Err(e) = cgroups::add_process(cgroup, pid) {
        kill_and_reap(pid);
        return Err(e.to_string());
    }
    let mut go = File::from(go_w);
    if go.write_all(b"g").is_err() {
        kill_and_reap(pid);
        return Err("the container process died before it started".into());
    }
    drop(go);
    let mut msg = String::new();
    let _ = File::from(err_r).read_to_string(&mut msg);
    if msg.is_empty() {
        Ok(pid)
    } else {
        kill_and_reap(pid);
        Err(msg)
    }
}

fn kill_and_reap(pid: i32) {
    // SAFETY: kill and waitpid on our own child.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
        let mut status = 0;
        while libc::waitpid(pid, &mut status, 0) < 0
            && io::Error::last_os_error().raw_os_error() == Some(libc::EINTR)
        {}
    }
}

/// Runs the process described by `process_json` in the running container `dir` with this
/// process's standard streams and waits for it; its host pid goes to `pid_file`.
pub(crate) fn exec(
    meta: &Meta,
    dir: &ContainerDir,
    process_json: &Path,
    pid_file: &Path,
) -> ExecEnd {
    let pid = match start_exec(meta, dir, process_json, pid_file, None) {
        Ok(pid) => pid,
        Err(msg) => return ExecEnd::Failed(exec_failed(&msg)),
    };
    let mut status = 0;
    loop {
        // SAFETY: waitpid(2) on our own child with a valid status pointer.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r == pid {
            return ExecEnd::Exited(crate::sys::decode_wait_status(status).0);
        }
        if r < 0 && io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return ExecEnd::Failed("lost track of the exec process".into());
        }
    }
}

/// Starts the process described by `process_json` (which asks for a terminal) in the
/// running container without waiting: its terminal's master goes to `console_socket`.
pub(crate) fn exec_detached(
    meta: &Meta,
    dir: &ContainerDir,
    process_json: &Path,
    pid_file: &Path,
    console_socket: &Path,
) -> Result<i32, String> {
    start_exec(meta, dir, process_json, pid_file, Some(console_socket)).map_err(|m| exec_failed(&m))
}

fn exec_failed(msg: &str) -> String {
    format!("OCI runtime exec failed: exec failed: {msg}")
}

fn start_exec(
    meta: &Meta,
    dir: &ContainerDir,
    process_json: &Path,
    pid_file: &Path,
    console_socket: Option<&Path>,
) -> Result<i32, String> {
    let running = dir
        .running()
        .map_err(|e| e.to_string())?
        .filter(|r| r.init.alive())
        .ok_or_else(|| "cannot exec in a stopped container".to_string())?;
    let data = std::fs::read(process_json).map_err(|e| format!("reading the process: {e}"))?;
    let process: oci_spec::runtime::Process =
        serde_json::from_slice(&data).map_err(|e| format!("decoding the process: {e}"))?;
    let plan = plan::ExecPlan::new(&process, running.init.pid, console_socket)?;
    if let Some(pidns) = &plan.pid_ns {
        // SAFETY: setns on a namespace descriptor; it only changes where this process's
        // next children are created.
        if unsafe { libc::setns(pidns.as_raw_fd(), libc::CLONE_NEWPID) } != 0 {
            return Err(format!(
                "joining the pid namespace: {}",
                io::Error::last_os_error()
            ));
        }
    }
    let (go_r, go_w) = pipe().map_err(|e| format!("pipe: {e}"))?;
    let (err_r, err_w) = pipe().map_err(|e| format!("pipe: {e}"))?;
    // SAFETY: the exec shim is single-threaded; the child only runs `child::exec`.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(format!("fork: {}", io::Error::last_os_error()));
    }
    if pid == 0 {
        drop(go_w);
        drop(err_r);
        child::run(err_w, || child::exec(&plan, go_r))
    }
    drop(go_r);
    drop(err_w);
    let _ = crate::sys::write_atomic(pid_file, pid.to_string().as_bytes());
    release(pid, &meta.cgroups_path, go_w, err_r)
}

/// Kills what is left of the container (its processes, through the cgroup). The runtime
/// keeps no state of its own; a state directory under the runtime root is left only by
/// containers that older versions started with youki's libcontainer, and goes too.
pub(crate) fn delete(meta: &Meta) -> Result<(), String> {
    cgroups::kill_all(&meta.cgroups_path);
    let old_state = meta.runtime_root.join(&meta.id);
    if old_state.exists() {
        std::fs::remove_dir_all(&old_state)
            .map_err(|e| format!("removing {}: {e}", old_state.display()))?;
    }
    Ok(())
}

fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(io::Error::from)
}

/// A path as a C string.
pub(crate) fn cstr(p: impl AsRef<std::ffi::OsStr>) -> Result<CString, String> {
    CString::new(p.as_ref().as_encoded_bytes())
        .map_err(|_| format!("{:?} contains a NUL byte", p.as_ref()))
}
