//! The forked child of the native runtime: it waits until the parent has put it into the
//! container's cgroup, enters or makes the namespaces, builds the root filesystem (new
//! containers) or enters the container's (exec), sets up its terminal or standard
//! streams, takes on the spec's limits, user and capabilities and execs. Any failure is
//! written to the error pipe and the child exits; the pipe closes on a successful exec.

use std::convert::Infallible;
use std::ffi::{CStr, CString};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::plan::{ExecPlan, InitPlan, ProcessPlan};
use super::rootfs;
use crate::backend::Stdio3;

/// Runs `body` in the child and exits: with its error written to `err_w`, or through the
/// exec it ends with. Panics are reported too; nothing unwinds into the parent's code.
pub(crate) fn run(err_w: OwnedFd, body: impl FnOnce() -> Result<Infallible, String>) -> ! {
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(body));
    let msg = match result {
        Ok(Err(msg)) => msg,
        Ok(Ok(never)) => match never {},
        Err(_) => "internal error in the container process".to_string(),
    };
    let _ = File::from(err_w).write_all(msg.as_bytes());
    // SAFETY: leaving the forked child without running the parent's destructors.
    unsafe { libc::_exit(1) }
}

fn wait_go(go_r: OwnedFd) -> Result<(), String> {
    let mut b = [0u8; 1];
    match File::from(go_r).read(&mut b) {
        Ok(1) => Ok(()),
        _ => Err("the runtime gave up before the container started".into()),
    }
}

fn os_err(what: &str) -> String {
    format!("{what}: {}", io::Error::last_os_error())
}

/// Signal dispositions and mask as a fresh process has them (the shim ignores SIGPIPE
/// and may block signals).
fn reset_signals() {
    // SAFETY: sigprocmask with an empty set and signal() with SIG_DFL are always sound.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
        for sig in [
            libc::SIGPIPE,
            libc::SIGCHLD,
            libc::SIGUSR1,
            libc::SIGTERM,
            libc::SIGINT,
        ] {
            libc::signal(sig, libc::SIG_DFL);
        }
    }
}

fn dup_onto(fd: &OwnedFd, target: i32) -> Result<(), String> {
    // SAFETY: dup2 onto a standard descriptor number.
    if unsafe { libc::dup2(fd.as_raw_fd(), target) } < 0 {
        return Err(os_err("setting up the standard streams"));
    }
    Ok(())
}

fn setns(fd: &OwnedFd, flag: libc::c_int) -> Result<(), String> {
    // SAFETY: setns on a namespace descriptor.
    if unsafe { libc::setns(fd.as_raw_fd(), flag) } != 0 {
        return Err(os_err("joining a namespace"));
    }
    Ok(())
}

fn connect_console(path: &CStr) -> Result<OwnedFd, String> {
    let p = Path::new(std::ffi::OsStr::from_bytes(path.to_bytes()));
    std::os::unix::net::UnixStream::connect(p)
        .map(OwnedFd::from)
        .map_err(|e| format!("connecting to the console socket: {e}"))
}

/// Creates the terminal from the container's `/dev/ptmx`, sends its master to the
/// console socket and makes its other end the process's controlling terminal and
/// standard streams.
fn setup_terminal(console: OwnedFd, dev_console: bool) -> Result<(), String> {
    // SAFETY: plain system calls on descriptors owned here and literal paths.
    unsafe {
        let master = libc::open(
            c"/dev/ptmx".as_ptr(),
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        );
        if master < 0 {
            return Err(os_err("opening /dev/ptmx"));
        }
        let master = <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(master);
        let unlock: libc::c_int = 0;
        if libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &unlock) != 0 {
            return Err(os_err("unlocking the terminal"));
        }
        let slave = libc::ioctl(
            master.as_raw_fd(),
            libc::TIOCGPTPEER,
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        );
        if slave < 0 {
            return Err(os_err("opening the terminal"));
        }
        let slave = <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(slave);
        if dev_console {
            // As runc: the terminal also shows up as /dev/console.
            let fd_path =
                CString::new(format!("/proc/self/fd/{}", slave.as_raw_fd())).unwrap_or_default();
            let made = libc::open(
                c"/dev/console".as_ptr(),
                libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC | libc::O_NOFOLLOW,
                0o600,
            );
            if made >= 0 {
                libc::close(made);
                libc::mount(
                    fd_path.as_ptr(),
                    c"/dev/console".as_ptr(),
                    std::ptr::null(),
                    libc::MS_BIND,
                    std::ptr::null(),
                );
            }
        }
        crate::shim::send_fd(console.as_fd(), master.as_fd())
            .map_err(|e| format!("sending the terminal: {e}"))?;
        drop(console);
        drop(master);
        if libc::setsid() < 0 {
            return Err(os_err("setsid"));
        }
        if libc::ioctl(slave.as_raw_fd(), libc::TIOCSCTTY, 0) != 0 {
            return Err(os_err("taking the terminal"));
        }
        for target in 0..3 {
            dup_onto(&slave, target)?;
        }
    }
    Ok(())
}

/// The new container's process.
pub(crate) fn init(plan: &InitPlan, stdio: Stdio3, go_r: OwnedFd) -> Result<Infallible, String> {
    reset_signals();
    // SAFETY: umask has no preconditions; device nodes and mount points get exact modes.
    unsafe { libc::umask(0) };
    wait_go(go_r)?;
    let p = &plan.process;
    let console = match &p.console_socket {
        Some(path) if p.terminal => Some(connect_console(path)?),
        _ => {
            dup_onto(&stdio.stdin, 0)?;
            dup_onto(&stdio.stdout, 1)?;
            dup_onto(&stdio.stderr, 2)?;
            None
        }
    };
    drop(stdio);
    if let Some(adj) = p.oom_score_adj {
        std::fs::write("/proc/self/oom_score_adj", adj.to_string())
            .map_err(|e| format!("setting oom_score_adj: {e}"))?;
    }
    for (fd, flag) in &plan.ns.join {
        setns(fd, *flag)?;
    }
    // SAFETY: unshare with namespace flags.
    if plan.ns.unshare != 0 && unsafe { libc::unshare(plan.ns.unshare) } != 0 {
        return Err(os_err("making the namespaces"));
    }
    // After the move into the cgroup, so the namespace is rooted at the container's.
    // SAFETY: as above.
    if plan.ns.new_cgroup && unsafe { libc::unshare(libc::CLONE_NEWCGROUP) } != 0 {
        return Err(os_err("making the cgroup namespace"));
    }
    let root = &plan.root;
    if let Some(h) = &root.hostname {
        nix::unistd::sethostname(h).map_err(|e| format!("sethostname: {e}"))?;
    }
    if let Some(d) = &root.domainname {
        let c = super::cstr(d)?;
        // SAFETY: setdomainname with a buffer and its length.
        if unsafe { libc::setdomainname(c.as_ptr(), d.len()) } != 0 {
            return Err(os_err("setdomainname"));
        }
    }
    let root_fd = rootfs::prepare(root, &p.cwd)?;
    rootfs::pivot(root_fd)?;
    if let Some(console) = console {
        let dev_console = root.dev_links;
        setup_terminal(console, dev_console)?;
    }
    rootfs::finish(root)?;
    finish_process(p)
}

/// A process exec'd in a running container.
pub(crate) fn exec(plan: &ExecPlan, go_r: OwnedFd) -> Result<Infallible, String> {
    reset_signals();
    wait_go(go_r)?;
    let p = &plan.process;
    let console = match &p.console_socket {
        Some(path) if p.terminal => Some(connect_console(path)?),
        _ => None,
    };
    if let Some(adj) = p.oom_score_adj {
        let _ = std::fs::write("/proc/self/oom_score_adj", adj.to_string());
    }
    for (fd, flag) in &plan.join {
        setns(fd, *flag)?;
    }
    if let Some(console) = console {
        setup_terminal(console, false)?;
    }
    finish_process(p)
}

/// Limits, user, capabilities, working directory, then exec.
fn finish_process(p: &ProcessPlan) -> Result<Infallible, String> {
    for (res, soft, hard) in &p.rlimits {
        let lim = libc::rlimit {
            rlim_cur: *soft,
            rlim_max: *hard,
        };
        // SAFETY: setrlimit with a valid structure.
        if unsafe { libc::setrlimit(*res, &lim) } != 0 {
            return Err(os_err("setting a resource limit"));
        }
    }
    // SAFETY: prctl/setgroups/setres[ug]id with integer arguments and a valid buffer.
    unsafe {
        if let Some(caps) = &p.caps {
            libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0);
            for cap in 0..64u64 {
                if caps.bounding & (1 << cap) == 0 {
                    // EINVAL: no such capability on this kernel.
                    if libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) != 0
                        && io::Error::last_os_error().raw_os_error() != Some(libc::EINVAL)
                    {
                        return Err(os_err("dropping a bounding capability"));
                    }
                }
            }
        }
        if libc::setgroups(p.groups.len(), p.groups.as_ptr()) != 0 {
            return Err(os_err("setgroups"));
        }
        if libc::setresgid(p.gid, p.gid, p.gid) != 0 {
            return Err(os_err("setgid"));
        }
        if libc::setresuid(p.uid, p.uid, p.uid) != 0 {
            return Err(os_err("setuid"));
        }
        if let Some(caps) = &p.caps {
            libc::prctl(libc::PR_SET_KEEPCAPS, 0, 0, 0, 0);
            capset(caps.effective, caps.permitted, caps.inheritable)?;
            for cap in 0..64u64 {
                if caps.ambient & (1 << cap) != 0 {
                    libc::prctl(libc::PR_CAP_AMBIENT, libc::PR_CAP_AMBIENT_RAISE, cap, 0, 0);
                }
            }
        }
        if p.no_new_privs && libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
            return Err(os_err("setting no_new_privs"));
        }
    }
    let cwd = super::cstr(&p.cwd)?;
    // SAFETY: chdir with a NUL-terminated path.
    if unsafe { libc::chdir(cwd.as_ptr()) } != 0 {
        let e = io::Error::last_os_error();
        return Err(format!(
            "chdir to cwd ({:?}) set in config.json failed: {}",
            p.cwd.display().to_string(),
            go_error_text(&e)
        ));
    }
    // SAFETY: umask has no preconditions.
    unsafe { libc::umask(p.umask as libc::mode_t) };
    let prog = find_program(p)?;
    let mut argv: Vec<*const libc::c_char> = p.args.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    let mut envp: Vec<*const libc::c_char> = p.env.iter().map(|a| a.as_ptr()).collect();
    envp.push(std::ptr::null());
    // Descriptors the shim holds stay out of the container (the error pipe closes with
    // the exec).
    // SAFETY: close_range with flags, then execve with NUL-terminated arrays of pointers
    // to strings that live until the call.
    unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        );
        libc::execve(prog.as_ptr(), argv.as_ptr(), envp.as_ptr());
    }
    let e = io::Error::last_os_error();
    Err(format!(
        "unable to start container process: exec: {:?}: {}",
        p.args[0].to_string_lossy(),
        go_error_text(&e)
    ))
}

fn capset(effective: u64, permitted: u64, inheritable: u64) -> Result<(), String> {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    let header = Header {
        version: 0x2008_0522,
        pid: 0,
    };
    let split = |v: u64| (v as u32, (v >> 32) as u32);
    let (e0, e1) = split(effective);
    let (p0, p1) = split(permitted);
    let (i0, i1) = split(inheritable);
    let data = [
        Data {
            effective: e0,
            permitted: p0,
            inheritable: i0,
        },
        Data {
            effective: e1,
            permitted: p1,
            inheritable: i1,
        },
    ];
    // SAFETY: capset with a version-3 header and two data words.
    if unsafe { libc::syscall(libc::SYS_capset, &header, data.as_ptr()) } != 0 {
        return Err(os_err("setting capabilities"));
    }
    Ok(())
}

/// An errno as Go spells it (`permission denied`), which is how runc reports it.
fn go_error_text(e: &io::Error) -> String {
    let s = e.to_string();
    let s = match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    };
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().chain(c).collect(),
        None => s,
    }
}

/// `args[0]` as exec will find it: as given when it has a slash, else in `PATH` (an
/// existing regular file with an execute bit, as Go's `LookPath`).
fn find_program(p: &ProcessPlan) -> Result<CString, String> {
    let name = p.args[0].to_bytes();
    if name.contains(&b'/') {
        return Ok(p.args[0].clone());
    }
    let name_str = String::from_utf8_lossy(name);
    if !name.is_empty() {
        for dir in p.path.split(':') {
            let dir = if dir.is_empty() { "." } else { dir };
            let candidate = format!("{dir}/{name_str}");
            if let Ok(m) = std::fs::metadata(&candidate) {
                if m.is_file() && m.permissions().mode() & 0o111 != 0 {
                    return super::cstr(candidate);
                }
            }
        }
    }
    Err(format!(
        "unable to start container process: exec: {name_str:?}: executable file not found in $PATH"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_read_as_go_prints_them() {
        let e = io::Error::from_raw_os_error(libc::EACCES);
        assert_eq!(go_error_text(&e), "permission denied");
        let e = io::Error::from_raw_os_error(libc::ENOENT);
        assert_eq!(go_error_text(&e), "no such file or directory");
    }
}
