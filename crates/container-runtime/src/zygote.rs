//! The shim launcher: one small single-threaded process, started once per
//! [`ContainerRuntime`](crate::ContainerRuntime) from the ferrokube binary
//! (`container-shim zygote`), that forks each container's shim on request. A container
//! start then costs one fork of a process with a few pages of heap instead of an exec of
//! the whole ferrokube binary (mapping it, relocating about 100 000 pointers, faulting in
//! its pages), and what every shim would look up again (the cgroup mount table) is looked
//! up once, in the launcher, and inherited.
//!
//! Protocol, over a `SOCK_SEQPACKET` socket pair whose launcher end is its fd 3: each
//! request is one message holding the shim's arguments (NUL-separated) with its stdin,
//! stdout and stderr attached as `SCM_RIGHTS`; the answer is one message, the forked
//! process's pid in decimal or `error: <why>`. The forked process is the shim itself:
//! it starts its own session without a second fork, since the launcher ignores
//! `SIGCHLD` (the kernel reaps the shims when they exit) and waits for nothing. The
//! launcher exits when the runtime's end of the socket closes.
//!
//! The forked shim renames itself (`container-shim run <dir>`, written over the
//! launcher's argument area, which is padded for it) so `ps` and anything that looks for
//! a container's processes by its directory still find it.

use std::ffi::OsString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;

use nix::sys::socket::{
    sendmsg, socketpair, AddressFamily, ControlMessage, MsgFlags, SockFlag, SockType,
};

/// The launcher's end of the socket.
const SOCKET_FD: RawFd = 3;
/// Bytes of padding added to the launcher's command line, room for the shims' names.
const TITLE_ROOM: usize = 240;
/// Largest request accepted (arguments of one shim).
const MAX_REQUEST: usize = 64 << 10;

/// The runtime's handle on its launcher, started on first use and again if it died.
#[derive(Debug, Default)]
pub(crate) struct Launcher {
    live: Mutex<Option<Running>>,
}

#[derive(Debug)]
struct Running {
    sock: OwnedFd,
    child: Child,
}

impl Drop for Running {
    fn drop(&mut self) {
        // Closing our end makes the launcher exit; reap it.
        let _ = nix::sys::socket::shutdown(self.sock.as_raw_fd(), nix::sys::socket::Shutdown::Both);
        let _ = self.child.wait();
    }
}

impl Launcher {
    /// Forks a shim running `args` (as `container-shim` would get them) with the given
    /// stdin, stdout and stderr; returns its pid. Starts the launcher (`program` with
    /// `pre_args` and `zygote`) if it is not running, and once more if it died.
    pub(crate) fn launch(
        &self,
        program: &Path,
        pre_args: &[OsString],
        args: &[OsString],
        stdio: [BorrowedFd<'_>; 3],
    ) -> io::Result<i32> {
        let mut live = self
            .live
            .lock()
            .map_err(|_| io::Error::other("shim launcher lock poisoned"))?;
        let mut last = None;
        for _ in 0..2 {
            let running = match &mut *live {
                Some(r) => r,
                empty => empty.insert(start(program, pre_args)?),
            };
            match request(running.sock.as_fd(), args, stdio) {
                Ok(Reply::Pid(pid)) => return Ok(pid),
                Ok(Reply::Refused(why)) => return Err(io::Error::other(why)),
                Err(e) => {
                    // The launcher is gone (or broken): start a new one and retry once.
                    tracing::debug!(error = %e, "shim launcher failed; restarting it");
                    *live = None;
                    last = Some(e);
                }
            }
        }
        Err(last.unwrap_or_else(|| io::Error::other("shim launcher unavailable")))
    }
}

enum Reply {
    Pid(i32),
    Refused(String),
}

fn start(program: &Path, pre_args: &[OsString]) -> io::Result<Running> {
    let (ours, theirs) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )?;
    let theirs_raw = theirs.as_raw_fd();
    let mut cmd = Command::new(program);
    cmd.args(pre_args)
        .arg("zygote")
        .arg(" ".repeat(TITLE_ROOM))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    // SAFETY: only dup2 (async-signal-safe) between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(theirs_raw, SOCKET_FD) < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd.spawn()?;
    drop(theirs);
    Ok(Running { sock: ours, child })
}

fn request(
    sock: BorrowedFd<'_>,
    args: &[OsString],
    stdio: [BorrowedFd<'_>; 3],
) -> io::Result<Reply> {
    let mut msg = Vec::new();
    for a in args {
        msg.extend_from_slice(a.as_bytes());
        msg.push(0);
    }
    let fds = stdio.map(|f| f.as_raw_fd());
    sendmsg::<()>(
        sock.as_raw_fd(),
        &[io::IoSlice::new(&msg)],
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::MSG_NOSIGNAL,
        None,
    )?;
    let mut buf = [0u8; 512];
    let n = loop {
        match nix::sys::socket::recv(sock.as_raw_fd(), &mut buf, MsgFlags::empty()) {
            Ok(n) => break n,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
    };
    if n == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "shim launcher exited",
        ));
    }
    let text = String::from_utf8_lossy(&buf[..n]);
    match text.strip_prefix("error: ") {
        Some(why) => Ok(Reply::Refused(why.to_string())),
        None => {
            text.trim().parse().map(Reply::Pid).map_err(|_| {
                io::Error::other(format!("bad answer from the shim launcher: {text:?}"))
            })
        }
    }
}

/// The launcher's main loop (`container-shim zygote`). Returns its exit code.
pub(crate) fn zygote_main() -> i32 {
    // SAFETY: fd 3 was set up by the runtime as our end of the socket; we own it now.
    let sock = unsafe { OwnedFd::from_raw_fd(SOCKET_FD) };
    // SAFETY: setting a signal disposition; single-threaded.
    unsafe { libc::signal(libc::SIGCHLD, libc::SIG_IGN) };
    let _ = std::env::set_current_dir("/");
    // What every shim would look up: once here, inherited by the forks.
    crate::cgroups::warm();
    let title = TitleArea::of_self();
    let mut buf = vec![0u8; MAX_REQUEST];
    loop {
        let (n, fds) = match receive(sock.as_fd(), &mut buf) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("container-shim zygote: {e}");
                return 1;
            }
        };
        if n == 0 {
            return 0;
        }
        let answer = match <[OwnedFd; 3]>::try_from(fds) {
            Err(fds) => format!("error: expected 3 descriptors, got {}", fds.len()),
            Ok(stdio) => {
                let body = &buf[..n];
                let args: Vec<OsString> = body
                    .strip_suffix(&[0])
                    .unwrap_or(body)
                    .split(|b| *b == 0)
                    .map(|a| OsString::from_vec(a.to_vec()))
                    .collect();
                // SAFETY: this process is single-threaded.
                match unsafe { nix::unistd::fork() } {
                    Ok(nix::unistd::ForkResult::Child) => {
                        drop(sock);
                        let code = run_child(stdio, args, title);
                        std::process::exit(code);
                    }
                    Ok(nix::unistd::ForkResult::Parent { child }) => child.to_string(),
                    Err(e) => format!("error: fork: {e}"),
                }
            }
        };
        if let Err(e) = sendmsg::<()>(
            sock.as_raw_fd(),
            &[io::IoSlice::new(answer.as_bytes())],
            &[],
            MsgFlags::MSG_NOSIGNAL,
            None,
        ) {
            eprintln!("container-shim zygote: answering: {e}");
            return 1;
        }
    }
}

/// Runs in the forked child: takes the request's stdio, renames itself, runs the shim.
fn run_child(stdio: [OwnedFd; 3], args: Vec<OsString>, title: Option<TitleArea>) -> i32 {
    // SAFETY: restoring the default disposition; single-threaded.
    unsafe { libc::signal(libc::SIGCHLD, libc::SIG_DFL) };
    for (target, fd) in stdio.iter().enumerate() {
        // SAFETY: dup2 onto 0..=2 from descriptors we own.
        if unsafe { libc::dup2(fd.as_raw_fd(), target as RawFd) } < 0 {
            eprintln!("container-shim: dup2: {}", io::Error::last_os_error());
            return 1;
        }
    }
    // Close the originals unless one already was 0..=2 (then dup2 made it the target).
    for fd in stdio {
        if fd.as_raw_fd() <= 2 {
            std::mem::forget(fd);
        }
    }
    if let Some(t) = title {
        let mut name = b"container-shim".to_vec();
        for a in &args {
            name.push(b' ');
            name.extend_from_slice(a.as_bytes());
        }
        t.set(&name);
    }
    crate::shim::shim_main_with(args, crate::shim::Detach::AlreadyForked)
}

fn receive(sock: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<(usize, Vec<OwnedFd>)> {
    let (n, fds, truncated) = crate::shim::recv_fds(sock, buf)?;
    if truncated {
        return Err(io::Error::other("request too long"));
    }
    Ok((n, fds))
}

/// The process's argument area (`arg_start..arg_end` of `/proc/self/stat`), which
/// `/proc/<pid>/cmdline` shows: writing a new NUL-terminated name over it renames the
/// process for `ps`.
#[derive(Clone, Copy, Debug)]
struct TitleArea {
    start: usize,
    len: usize,
}

impl TitleArea {
    fn of_self() -> Option<TitleArea> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // Fields after the command name, which is in parentheses and may hold spaces.
        let rest = stat.rsplit_once(')')?.1;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // arg_start and arg_end are fields 48 and 49; `rest` starts at field 3.
        let start: usize = fields.get(48 - 3)?.parse().ok()?;
        let end: usize = fields.get(49 - 3)?.parse().ok()?;
        (end > start).then_some(TitleArea {
            start,
            len: end - start,
        })
    }

    /// Writes `name` (truncated to fit, NUL-padded) over the argument area.
    fn set(self, name: &[u8]) {
        let n = name.len().min(self.len - 1);
        // SAFETY: `start..start+len` is this process's argument area on its initial
        // stack: mapped, writable, and not owned by any Rust value (std copies the
        // arguments out when asked for them).
        unsafe {
            let p = self.start as *mut u8;
            std::ptr::copy_nonoverlapping(name.as_ptr(), p, n);
            std::ptr::write_bytes(p.add(n), 0, self.len - n);
        }
    }
}
