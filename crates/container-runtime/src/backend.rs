//! The three ways of running a container behind one interface: ferrokube's own runtime
//! in-process (builtin, see [`crate::native`]), or the `runc`/`crun` command line (`create`/`start`/`exec`/
//! `delete` with a per-runtime `--root`). Used by the shim to create, start and exec
//! (in the foreground with inherited stdio, or detached with a pseudo-terminal whose
//! master goes to a console socket), and by the runtime to clean up after a shim that
//! died.
//!
//! crun 1.8 refuses hybrid cgroup setups whose v2 mount has any controller attached
//! ("cgroups in hybrid mode not supported"); on such machines every crun command runs in a
//! private mount namespace where that v2 mount is detached, so crun drives v1 only.

use std::ffi::CString;
use std::fs;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::store::{ContainerDir, Meta, RuntimeKind, INIT_PID_FILE};

/// The container's standard streams.
pub(crate) struct Stdio3 {
    pub stdin: OwnedFd,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
}

/// Creates and starts the container; returns the host pid of its process. The error is
/// the text the kubelet shows for a `StartError`. With `console_socket` (a spec asking
/// for a terminal) the runtime creates the pseudo-terminal and sends its master there;
/// `stdio` is then not the container's.
pub(crate) fn create_and_start(
    meta: &Meta,
    dir: &ContainerDir,
    stdio: Stdio3,
    console_socket: Option<&Path>,
) -> Result<i32, String> {
    match meta.runtime {
        RuntimeKind::Builtin => crate::native::create_and_start(meta, dir, stdio, console_socket),
        RuntimeKind::Runc | RuntimeKind::Crun => {
            cli_create_and_start(meta, dir, stdio, console_socket)
        }
    }
}

fn cli_create_and_start(
    meta: &Meta,
    dir: &ContainerDir,
    stdio: Stdio3,
    console_socket: Option<&Path>,
) -> Result<i32, String> {
    let name = meta.runtime.name();
    let pid_file = dir.file(INIT_PID_FILE);
    let log = dir.file("create.log");
    let _ = fs::remove_file(&log);
    let mut cmd =
        runtime_command(meta, &log).map_err(|e| format!("OCI runtime create failed: {e}"))?;
    cmd.arg("create");
    if let Some(sock) = console_socket {
        cmd.arg("--console-socket").arg(sock);
    }
    cmd.arg("--bundle")
        .arg(&dir.path)
        .arg("--pid-file")
        .arg(&pid_file)
        .arg(&meta.id)
        .stdin(Stdio::from(stdio.stdin))
        .stdout(Stdio::from(stdio.stdout))
        .stderr(Stdio::from(stdio.stderr));
    let status = cmd
        .status()
        .map_err(|e| format!("OCI runtime create failed: {name}: {e}"))?;
    if !status.success() {
        let msg = last_runtime_error(&log).unwrap_or_else(|| format!("{name} create: {status}"));
        return Err(format!(
            "OCI runtime create failed: {}",
            normalize_message(&msg)
        ));
    }
    let pid: i32 = fs::read_to_string(&pid_file)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .ok_or_else(|| format!("OCI runtime create failed: {name} wrote no pid file"))?;

    let log = dir.file("start.log");
    let _ = fs::remove_file(&log);
    let mut cmd =
        runtime_command(meta, &log).map_err(|e| format!("OCI runtime start failed: {e}"))?;
    let out = cmd
        .arg("start")
        .arg(&meta.id)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| format!("OCI runtime start failed: {name}: {e}"))?;
    if !out.status.success() {
        let msg = last_runtime_error(&log)
            .unwrap_or_else(|| String::from_utf8_lossy(&out.stderr).trim().to_string());
        return Err(format!(
            "OCI runtime start failed: {}",
            normalize_message(&msg)
        ));
    }
    Ok(pid)
}

/// Removes the runtime's record of the container, killing what is left of it. Succeeds
/// when there is nothing to remove.
pub(crate) fn delete(meta: &Meta, dir: &ContainerDir) -> Result<(), String> {
    if meta.runtime == RuntimeKind::Builtin {
        return crate::native::delete(meta);
    }
    let state = meta.runtime_root.join(&meta.id);
    if !state.exists() {
        return Ok(());
    }
    match meta.runtime {
        RuntimeKind::Builtin | RuntimeKind::Runc | RuntimeKind::Crun => {
            let log = dir.file("delete.log");
            let mut cmd = runtime_command(meta, &log).map_err(|e| e.to_string())?;
            let out = cmd
                .arg("delete")
                .arg("--force")
                .arg(&meta.id)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .output()
                .map_err(|e| format!("{}: {e}", meta.runtime.name()))?;
            let _ = fs::remove_file(&log);
            if out.status.success() || !state.exists() {
                Ok(())
            } else {
                Err(format!(
                    "{} delete failed: {}",
                    meta.runtime.name(),
                    String::from_utf8_lossy(&out.stderr).trim()
                ))
            }
        }
    }
}

/// How an exec ended: the process's exit status, or the runtime could not start it.
pub(crate) enum ExecEnd {
    Exited(i32),
    Failed(String),
}

/// Runs the process described by `process_json` in the running container, with this
/// process's standard streams, and waits for it. Its host pid is written to `pid_file`.
pub(crate) fn exec(
    meta: &Meta,
    dir: &ContainerDir,
    process_json: &Path,
    pid_file: &Path,
    log: &Path,
) -> ExecEnd {
    match meta.runtime {
        RuntimeKind::Builtin => crate::native::exec(meta, dir, process_json, pid_file),
        RuntimeKind::Runc | RuntimeKind::Crun => {
            let mut cmd = match runtime_command(meta, log) {
                Ok(c) => c,
                Err(e) => return ExecEnd::Failed(exec_failed(&e.to_string())),
            };
            cmd.arg("exec")
                .arg("--process")
                .arg(process_json)
                .arg("--pid-file")
                .arg(pid_file)
                .arg(&meta.id)
                .stdin(Stdio::inherit());
            match cmd.status() {
                Ok(status) => {
                    if let Some(msg) = last_runtime_error(log) {
                        return ExecEnd::Failed(exec_failed(&msg));
                    }
                    use std::os::unix::process::ExitStatusExt;
                    match (status.code(), status.signal()) {
                        (Some(c), _) => ExecEnd::Exited(c),
                        (None, Some(s)) => ExecEnd::Exited(128 + s),
                        _ => ExecEnd::Exited(255),
                    }
                }
                Err(e) => ExecEnd::Failed(exec_failed(&format!("{}: {e}", meta.runtime.name()))),
            }
        }
    }
}

/// Starts the process described by `process_json` (which asks for a terminal) in the
/// running container without waiting for it: the runtime creates the pseudo-terminal
/// inside the container and sends its master to the unix socket `console_socket`.
/// Returns the host pid of the process, which becomes a child of the calling (subreaper)
/// process.
pub(crate) fn exec_detached(
    meta: &Meta,
    dir: &ContainerDir,
    process_json: &Path,
    pid_file: &Path,
    log: &Path,
    console_socket: &Path,
) -> Result<i32, String> {
    match meta.runtime {
        RuntimeKind::Builtin => {
            crate::native::exec_detached(meta, dir, process_json, pid_file, console_socket)
        }
        RuntimeKind::Runc | RuntimeKind::Crun => {
            let mut cmd = runtime_command(meta, log).map_err(|e| exec_failed(&e.to_string()))?;
            let out = cmd
                .arg("exec")
                .arg("--detach")
                .arg("--console-socket")
                .arg(console_socket)
                .arg("--process")
                .arg(process_json)
                .arg("--pid-file")
                .arg(pid_file)
                .arg(&meta.id)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .output()
                .map_err(|e| exec_failed(&format!("{}: {e}", meta.runtime.name())))?;
            if !out.status.success() {
                let msg = last_runtime_error(log)
                    .unwrap_or_else(|| String::from_utf8_lossy(&out.stderr).trim().to_string());
                return Err(exec_failed(&msg));
            }
            fs::read_to_string(pid_file)
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .ok_or_else(|| exec_failed(&format!("{} wrote no pid file", meta.runtime.name())))
        }
    }
}

fn exec_failed(msg: &str) -> String {
    format!("OCI runtime exec failed: {}", normalize_message(msg))
}

/// A runc/crun command with `--root` and a JSON log file.
fn runtime_command(meta: &Meta, log: &Path) -> io::Result<Command> {
    let bin = meta
        .runtime_binary
        .clone()
        .ok_or_else(|| io::Error::other("no runtime binary recorded"))?;
    let mut cmd = Command::new(bin);
    cmd.arg("--root").arg(&meta.runtime_root);
    match meta.runtime {
        RuntimeKind::Crun => {
            cmd.arg(format!("--log=file:{}", log.display()));
            cmd.arg("--log-format=json");
            if crun_needs_hidden_unified() {
                hide_unified_cgroup(&mut cmd);
            }
        }
        _ => {
            cmd.arg("--log").arg(log).arg("--log-format").arg("json");
        }
    }
    Ok(cmd)
}

const UNIFIED: &str = "/sys/fs/cgroup/unified";

/// Hybrid setup with controllers on the v2 mount, which crun refuses.
fn crun_needs_hidden_unified() -> bool {
    use nix::sys::statfs::{statfs, FsType, CGROUP2_SUPER_MAGIC, TMPFS_MAGIC};
    let is_fs = |p: &str, magic: FsType| {
        statfs(p)
            .map(|s| s.filesystem_type() == magic)
            .unwrap_or(false)
    };
    is_fs("/sys/fs/cgroup", TMPFS_MAGIC)
        && is_fs(UNIFIED, CGROUP2_SUPER_MAGIC)
        && fs::read_to_string(Path::new(UNIFIED).join("cgroup.controllers"))
            .map(|c| !c.trim().is_empty())
            .unwrap_or(false)
}

fn hide_unified_cgroup(cmd: &mut Command) {
    let (Ok(root), Ok(unified)) = (CString::new("/"), CString::new(UNIFIED)) else {
        return;
    };
    // SAFETY: the hook runs in the forked child before exec and only makes raw system
    // calls on strings allocated before the fork.
    unsafe {
        cmd.pre_exec(move || {
            if libc::unshare(libc::CLONE_NEWNS) != 0 {
                return Err(io::Error::last_os_error());
            }
            // Private first, so the unmount below stays in this namespace.
            if libc::mount(
                std::ptr::null(),
                root.as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            ) != 0
            {
                return Err(io::Error::last_os_error());
            }
            if libc::umount2(unified.as_ptr(), libc::MNT_DETACH) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// The last error message in a runc/crun JSON log.
fn last_runtime_error(log: &Path) -> Option<String> {
    let text = fs::read_to_string(log).ok()?;
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| matches!(v["level"].as_str(), Some("error" | "fatal")))
        .filter_map(|v| v["msg"].as_str().map(str::to_string))
        .next_back()
}

/// Rewrites the runtimes' "executable not found" messages to runc's wording, which is
/// what users and tests of the kubelet expect:
/// `unable to start container process: exec: "nope": executable file not found in $PATH`.
pub(crate) fn normalize_message(msg: &str) -> String {
    if msg.contains("exec: \"") {
        return msg.to_string();
    }
    let patterns: [(&str, &str); 2] = [
        ("executable '", "' not found in $PATH"),
        ("executable file `", "` not found in $PATH"),
    ];
    for (start, end) in patterns {
        if let Some(i) = msg.find(start) {
            let rest = &msg[i + start.len()..];
            if let Some(j) = rest.find(end) {
                let name = &rest[..j];
                return format!(
                    "unable to start container process: exec: \"{name}\": executable file not found in $PATH"
                );
            }
        }
    }
    msg.to_string()
}

/// The runtime root for a runtime kind under the state directory.
pub(crate) fn runtime_root(state_dir: &Path, kind: RuntimeKind) -> PathBuf {
    state_dir.join(".runtime").join(kind.name())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_executable_messages() {
        let want =
            "unable to start container process: exec: \"nope\": executable file not found in $PATH";
        assert_eq!(
            normalize_message("failed to create container: error in executing process : executable 'nope' not found in $PATH"),
            want
        );
        assert_eq!(
            normalize_message(
                "executable file `nope` not found in $PATH: No such file or directory"
            ),
            want
        );
        let runc = "runc create failed: unable to start container process: exec: \"nope\": executable file not found in $PATH";
        assert_eq!(normalize_message(runc), runc);
        assert_eq!(normalize_message("other"), "other");
    }

    #[test]
    fn runtime_log_errors() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("log.json");
        fs::write(
            &p,
            "{\"level\":\"warning\",\"msg\":\"w\"}\nnot json\n{\"level\":\"error\",\"msg\":\"first\"}\n{\"msg\":\"last\",\"level\":\"error\",\"time\":\"x\"}\n",
        )
        .unwrap();
        assert_eq!(last_runtime_error(&p).as_deref(), Some("last"));
        assert_eq!(last_runtime_error(&dir.path().join("none")), None);
    }
}
