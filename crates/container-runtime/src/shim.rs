//! The per-container shim (conmon's role), run as `ferrokube container-shim ...`.
//!
//! `run <container dir>`: reads the container record, detaches (started as a new process:
//! fork, the first process exits at once; forked by the launcher: no second fork), calls
//! `setsid` and becomes a child subreaper so it is the parent of the container process
//! even when runc/crun exit after `create`, creates and
//! starts the container with its stdout/stderr on pipes, reports `{"pid":N}` or
//! `{"error":"..."}` on its original stdout (a pipe the starter reads to EOF), then copies
//! the container's output into the CRI log file until the container exits, reads the
//! cgroup's OOM-kill counter, deletes the runtime state and cgroup, and records the exit
//! status. SIGUSR1 makes it reopen the log file (log rotation).
//!
//! `zygote`: the launcher that forks the `run` shims (see the `zygote` module).
//!
//! `hold <sandbox dir> <pod uid> <hostname> <namespaces>`: a pod sandbox's namespace
//! holder (see the `sandbox` module), detached the same way as `run`.
//!
//! `exec <container dir> <token> <cmd>...`: runs a command in the running container with
//! this process's stdio and exits with its status; the command's pid goes to
//! `exec-<token>.pid` and the outcome to `exec-<token>.result`.
//!
//! `exec-tty <container dir> <token> <cmd>...`: the same with a terminal. The runtime
//! creates the pseudo-terminal inside the container (detached exec with a console socket
//! in a private temporary directory); the shim passes the master on through the unix
//! socket it finds on fd 3 ([`TTY_CHANNEL_FD`]), then waits for the command as its
//! subreaper.
//!
//! The shim is single-threaded and does not use tokio.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use nix::fcntl::OFlag;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use serde::{Deserialize, Serialize};

use crate::attach::AttachServer;
use crate::backend::{self, ExecEnd, Stdio3};
use crate::cgroups;
use crate::crilog::{format_record, LineSplitter};
use crate::store::{
    exit_reason, ContainerDir, ExitRecord, Meta, ProcRef, RunningRecord, ShimRecord, CONFIG_FILE,
    RUNNING_FILE, SHIM_FILE,
};
use crate::sys;
use crate::OutputStream;

/// What the shim reports to the starter.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct StartReport {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The outcome of an exec, written to `exec-<token>.result`.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ExecResult {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// How long output is still drained after the container's process exited.
const DRAIN_AFTER_EXIT: Duration = Duration::from_secs(2);

/// Entry point of the shim. `args` are the arguments after the ferrokube subcommand
/// (`run <dir>` or `exec <dir> <token> <cmd>...`); leading arguments before the mode word
/// (such as the program name or `container-shim`) are skipped. Returns the exit code.
pub fn shim_main(args: Vec<OsString>) -> i32 {
    shim_main_with(args, Detach::Fork)
}

/// How a `run` shim leaves the process that started it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Detach {
    /// Started as a new process whose starter waits for it: fork, and let the first
    /// process exit.
    Fork,
    /// Forked by the launcher, which ignores `SIGCHLD` and waits for nothing: this
    /// process already is the detached one.
    AlreadyForked,
}

/// [`shim_main`], told how `run` detaches.
pub(crate) fn shim_main_with(args: Vec<OsString>, detach: Detach) -> i32 {
    let Some(pos) = args
        .iter()
        .position(|a| a == "run" || a == "exec" || a == "exec-tty" || a == "zygote" || a == "hold")
    else {
        eprintln!(
            "usage: container-shim run <container-dir> | exec[-tty] <container-dir> <token> <cmd>... | hold <sandbox-dir> <pod-uid> <hostname> <namespaces>"
        );
        return 2;
    };
    let mode = args[pos].clone();
    let rest = &args[pos + 1..];
    if mode == "zygote" {
        crate::zygote::zygote_main()
    } else if mode == "hold" {
        crate::sandbox::holder_main(rest, detach)
    } else if mode == "run" {
        match rest.first() {
            Some(dir) if rest.len() == 1 => run_shim(PathBuf::from(dir), detach),
            _ => {
                eprintln!("usage: container-shim run <container-dir>");
                2
            }
        }
    } else {
        if rest.len() < 3 {
            eprintln!("usage: container-shim exec <container-dir> <token> <cmd>...");
            return 2;
        }
        let dir = PathBuf::from(&rest[0]);
        let token = rest[1].to_string_lossy().into_owned();
        let cmd: Vec<String> = rest[2..]
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        exec_shim(&dir, &token, cmd, mode == "exec-tty")
    }
}

fn log_diag(msg: &str) {
    eprintln!(
        "{} shim[{}]: {msg}",
        crate::crilog::format_rfc3339_nano(SystemTime::now()),
        std::process::id()
    );
}

/// Moves fd 1 (the status pipe) to a close-on-exec descriptor and puts /dev/null on fd 1.
pub(crate) fn take_status_channel() -> io::Result<File> {
    let stdout = io::stdout();
    let dup = stdout.as_fd().try_clone_to_owned()?;
    let devnull = OpenOptions::new().write(true).open("/dev/null")?;
    // SAFETY: dup2 onto fd 1 with a descriptor we own; fd 1 stays valid throughout.
    if unsafe { libc::dup2(devnull.as_raw_fd(), 1) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(File::from(dup))
}

/// Reports a failed start on the status channel; the shim's exit code.
pub(crate) fn report_failure(status: &mut Option<File>, error: String) -> i32 {
    report(
        status,
        &StartReport {
            pid: None,
            error: Some(error),
        },
    );
    1
}

/// Writes `rep` on the status channel (once); whether the starter got it (it may be
/// gone: SIGPIPE is ignored).
pub(crate) fn report(status: &mut Option<File>, rep: &StartReport) -> bool {
    let Some(mut f) = status.take() else {
        return false;
    };
    let Ok(mut line) = serde_json::to_vec(rep) else {
        return false;
    };
    line.push(b'\n');
    f.write_all(&line).is_ok()
}

/// Detaches from the starting process and starts a session of its own. Started as a
/// new process, the starter reaps the first process right away and the second one runs
/// on; forked by the launcher, there is nothing to leave.
pub(crate) fn detach_from_starter(detach: Detach) -> Result<(), String> {
    if detach == Detach::Fork {
        // SAFETY: the shim is single-threaded here (fresh process, no threads started).
        match unsafe { nix::unistd::fork() } {
            Ok(nix::unistd::ForkResult::Parent { .. }) => {
                // SAFETY: leaving the forked-off parent without running destructors.
                unsafe { libc::_exit(0) }
            }
            Ok(nix::unistd::ForkResult::Child) => {}
            Err(e) => return Err(format!("fork: {e}")),
        }
    }
    let _ = nix::unistd::setsid();
    Ok(())
}

fn run_shim(dir: PathBuf, detach: Detach) -> i32 {
    let cdir = ContainerDir::new(dir);
    let mut status = match take_status_channel() {
        Ok(f) => Some(f),
        Err(e) => {
            log_diag(&format!("cannot set up the status channel: {e}"));
            return 1;
        }
    };
    let meta = match cdir.meta() {
        Ok(Some(m)) => m,
        Ok(None) => {
            let error = format!("no container record in {}", cdir.path.display());
            return report_failure(&mut status, error);
        }
        Err(e) => return report_failure(&mut status, e.to_string()),
    };
    if let Err(e) = detach_from_starter(detach) {
        return report_failure(&mut status, format!("container shim: {e}"));
    }
    // SAFETY: prctl with integer arguments.
    unsafe {
        libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
    }
    let _ = std::env::set_current_dir("/");
    if let Some(me) = ProcRef::of(std::process::id() as i32) {
        if let Err(e) = sys::write_json(&cdir.file(SHIM_FILE), &ShimRecord { shim: me }) {
            log_diag(&format!("{e}"));
        }
    }
    Shim::run(cdir, meta, &mut status)
}

struct Stream {
    name: &'static str,
    fd: Option<OwnedFd>,
    splitter: LineSplitter,
}

impl Stream {
    fn new(name: &'static str, fd: Option<OwnedFd>) -> Stream {
        Stream {
            name,
            fd,
            splitter: LineSplitter::default(),
        }
    }
}

/// A started container as the supervision loop needs it.
struct Started {
    init: ProcRef,
    streams: [Stream; 2],
    oom_before: u64,
    sfd: Option<SignalFd>,
}

fn block_signals() -> Option<SignalFd> {
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGCHLD);
    mask.add(Signal::SIGUSR1);
    if let Err(e) = nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&mask), None) {
        log_diag(&format!("sigprocmask: {e}"));
    }
    match SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC) {
        Ok(s) => Some(s),
        Err(e) => {
            log_diag(&format!("signalfd: {e}"));
            None
        }
    }
}

struct Shim {
    cdir: ContainerDir,
    meta: Meta,
    log: Option<File>,
    attach: Option<AttachServer>,
}

impl Shim {
    fn run(cdir: ContainerDir, meta: Meta, status: &mut Option<File>) -> i32 {
        let mut shim = Shim {
            cdir,
            meta,
            log: None,
            attach: None,
        };
        match shim.start() {
            Ok(started) => {
                let rep = StartReport {
                    pid: Some(started.init.pid),
                    error: None,
                };
                report(status, &rep);
                *status = None;
                shim.supervise(started)
            }
            Err(error) => {
                log_diag(&format!("start failed: {error}"));
                shim.cleanup();
                let rec = ExitRecord {
                    exit_code: 128,
                    signal: None,
                    started_at: None,
                    finished_at: SystemTime::now(),
                    oom_killed: false,
                    reason: "StartError".to_string(),
                    message: Some(error.clone()),
                };
                if let Err(e) = shim.cdir.write_exit(&rec) {
                    log_diag(&format!("{e}"));
                }
                report_failure(status, error)
            }
        }
    }

    fn open_log(&mut self) -> Result<(), String> {
        if let Some(parent) = self.meta.log_path.parent() {
            let _ = fs::create_dir_all(parent);
        }
        let f = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o640)
            .open(&self.meta.log_path)
            .map_err(|e| {
                format!(
                    "failed to create container log {}: {e}",
                    self.meta.log_path.display()
                )
            })?;
        self.log = Some(f);
        Ok(())
    }

    fn start(&mut self) -> Result<Started, String> {
        self.open_log()?;
        let io = self.meta.io;
        let pipe = || nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| format!("pipe: {e}"));
        let null = |write: bool| -> Result<OwnedFd, String> {
            OpenOptions::new()
                .read(!write)
                .write(write)
                .open("/dev/null")
                .map(OwnedFd::from)
                .map_err(|e| format!("/dev/null: {e}"))
        };
        let (pid, streams, input) = if io.tty {
            let console =
                ConsoleSocket::new().map_err(|e| format!("creating the console socket: {e}"))?;
            let stdio = Stdio3 {
                stdin: null(false)?,
                stdout: null(true)?,
                stderr: null(true)?,
            };
            let pid =
                backend::create_and_start(&self.meta, &self.cdir, stdio, Some(&console.path))?;
            let master = console
                .receive_master(CONSOLE_TIMEOUT)
                .and_then(|m| m.try_clone().map(|dup| (m, dup)));
            let (master, input) = match master {
                Ok(m) => m,
                Err(e) => {
                    cgroups::kill_all(&self.meta.cgroups_path);
                    return Err(format!("receiving the container's terminal: {e}"));
                }
            };
            let streams = [
                Stream::new("stdout", Some(master)),
                Stream::new("stderr", None),
            ];
            (pid, streams, Some(input))
        } else {
            let (out_r, out_w) = pipe()?;
            let (err_r, err_w) = pipe()?;
            let (stdin, input) = if io.stdin {
                let (r, w) = pipe()?;
                (r, Some(w))
            } else {
                (null(false)?, None)
            };
            let stdio = Stdio3 {
                stdin,
                stdout: out_w,
                stderr: err_w,
            };
            let pid = match backend::create_and_start(&self.meta, &self.cdir, stdio, None) {
                Ok(pid) => pid,
                Err(e) => {
                    // Whatever is in the pipes now came from the runtime itself, not from
                    // the container: it is not container output.
                    drop((out_r, err_r));
                    return Err(e);
                }
            };
            let streams = [
                Stream::new("stdout", Some(out_r)),
                Stream::new("stderr", Some(err_r)),
            ];
            (pid, streams, input)
        };
        let started_at = SystemTime::now();
        if io.attachable() {
            // Listening before the start is reported: an attach right after the kubelet
            // saw the container running finds the socket.
            match AttachServer::bind(&self.cdir.path, input, io.tty, io.stdin, io.stdin_once) {
                Ok(a) => self.attach = Some(a),
                Err(e) => log_diag(&format!("cannot serve attach sessions: {e}")),
            }
        }
        // From here on SIGCHLD and SIGUSR1 arrive through a signalfd. Blocking them only
        // now keeps them unblocked in the container process (the builtin runtime clones
        // it from this process).
        let sfd = block_signals();
        let init = ProcRef::of(pid).unwrap_or(ProcRef { pid, start_time: 0 });
        let oom_before = cgroups::oom_kill_count(&self.meta.cgroups_path).unwrap_or(0);
        sys::write_json(
            &self.cdir.file(RUNNING_FILE),
            &RunningRecord { init, started_at },
        )
        .map_err(|e| e.to_string())?;
        Ok(Started {
            init,
            streams,
            oom_before,
            sfd,
        })
    }

    /// Copies output until the container exited and its streams closed, then records the
    /// exit.
    fn supervise(&mut self, started: Started) -> i32 {
        let Started {
            init,
            mut streams,
            oom_before,
            mut sfd,
        } = started;
        for s in &streams {
            if let Some(fd) = &s.fd {
                set_nonblocking(fd.as_fd());
            }
        }
        let mut exit: Option<(i32, Option<i32>)> = None;
        let mut finished_at = SystemTime::now();
        let mut drain_deadline: Option<Instant> = None;
        let mut buf = vec![0u8; 64 * 1024];

        loop {
            if exit.is_none() {
                if let Some(st) = reap(init.pid) {
                    exit = Some(st);
                } else if init.start_time != 0
                    && sys::proc_start_time(init.pid) != Some(init.start_time)
                {
                    // Gone without us reaping it (not even a zombie): it was not our child
                    // after all (should not happen with the subreaper).
                    exit = Some((255, None));
                }
                if exit.is_some() {
                    finished_at = SystemTime::now();
                    // Leftovers (no pid namespace) would keep the pipes open.
                    cgroups::kill_all(&self.meta.cgroups_path);
                    drain_deadline = Some(Instant::now() + DRAIN_AFTER_EXIT);
                }
            }
            let all_closed = streams.iter().all(|s| s.fd.is_none());
            if exit.is_some() && (all_closed || drain_deadline.is_some_and(|d| Instant::now() >= d))
            {
                break;
            }

            let timeout = match drain_deadline {
                Some(d) => d.saturating_duration_since(Instant::now()),
                None => Duration::from_secs(1),
            };
            let mut fds: Vec<PollFd> = Vec::with_capacity(3);
            let mut which: Vec<usize> = Vec::with_capacity(3);
            if let Some(s) = &sfd {
                fds.push(PollFd::new(s.as_fd(), PollFlags::POLLIN));
                which.push(usize::MAX);
            }
            for (i, s) in streams.iter().enumerate() {
                if let Some(fd) = &s.fd {
                    fds.push(PollFd::new(fd.as_fd(), PollFlags::POLLIN));
                    which.push(i);
                }
            }
            // The attach socket's descriptors come last.
            let own = fds.len();
            if let Some(a) = &self.attach {
                fds.extend(a.poll_fds());
            }
            let ms = timeout.as_millis().min(1000) as u16;
            let polled = match poll(&mut fds, PollTimeout::from(ms.max(1))) {
                Ok(n) => n,
                Err(nix::errno::Errno::EINTR) => 0,
                Err(e) => {
                    log_diag(&format!("poll: {e}"));
                    std::thread::sleep(Duration::from_millis(50));
                    0
                }
            };
            // Readable, hung up or failed: a read tells which.
            let fired: Vec<bool> = fds
                .iter()
                .map(|p| polled > 0 && p.revents().is_some_and(|ev| !ev.is_empty()))
                .collect();
            drop(fds);
            let ready: Vec<usize> = which
                .iter()
                .zip(&fired)
                .filter(|(_, f)| **f)
                .map(|(w, _)| *w)
                .collect();
            if let Some(a) = self.attach.as_mut() {
                if fired[own..].iter().any(|f| *f) {
                    a.handle(&fired[own..]);
                }
            }
            for w in ready {
                if w == usize::MAX {
                    let mut reopen = false;
                    if let Some(s) = sfd.as_mut() {
                        while let Ok(Some(info)) = s.read_signal() {
                            if info.ssi_signo == libc::SIGUSR1 as u32 {
                                reopen = true;
                            }
                        }
                    }
                    if reopen {
                        if let Err(e) = self.open_log() {
                            log_diag(&e);
                        }
                    }
                } else {
                    self.pump(&mut streams[w], &mut buf);
                }
            }
        }

        // Flush what is left (a partial last line, or streams still open at the deadline).
        for s in streams.iter_mut() {
            if s.fd.is_some() {
                self.pump(s, &mut buf);
            }
            self.finish_stream(s);
        }

        let (exit_code, signal) = exit.unwrap_or((255, None));
        let oom_killed =
            cgroups::oom_kill_count(&self.meta.cgroups_path).is_some_and(|n| n > oom_before);
        self.cleanup();
        let started_at = self.cdir.running().ok().flatten().map(|r| r.started_at);
        let rec = ExitRecord {
            exit_code,
            signal,
            started_at,
            finished_at,
            oom_killed,
            reason: exit_reason(exit_code, oom_killed).to_string(),
            message: None,
        };
        let recorded = self.cdir.write_exit(&rec);
        if let Some(a) = self.attach.take() {
            a.finish();
        }
        if let Err(e) = recorded {
            log_diag(&format!("cannot record exit: {e}"));
            return 1;
        }
        0
    }

    /// Reads what is available on one stream into the log.
    fn pump(&mut self, s: &mut Stream, buf: &mut [u8]) {
        loop {
            let Some(fd) = &s.fd else { return };
            match nix::unistd::read(fd.as_raw_fd(), buf) {
                Ok(0) => {
                    self.finish_stream(s);
                    return;
                }
                Ok(n) => {
                    if let Some(a) = self.attach.as_mut() {
                        let stream = if s.name == "stderr" {
                            OutputStream::Stderr
                        } else {
                            OutputStream::Stdout
                        };
                        a.broadcast(stream, &buf[..n]);
                    }
                    let now = SystemTime::now();
                    let log = &mut self.log;
                    let name = s.name;
                    s.splitter.push(&buf[..n], &mut |body, full| {
                        write_record(log, now, name, full, body);
                    });
                }
                Err(nix::errno::Errno::EAGAIN) => return,
                Err(nix::errno::Errno::EINTR) => continue,
                // A terminal whose container side is closed everywhere.
                Err(nix::errno::Errno::EIO) => {
                    self.finish_stream(s);
                    return;
                }
                Err(e) => {
                    log_diag(&format!("reading {}: {e}", s.name));
                    self.finish_stream(s);
                    return;
                }
            }
        }
    }

    fn finish_stream(&mut self, s: &mut Stream) {
        let now = SystemTime::now();
        let log = &mut self.log;
        let name = s.name;
        s.splitter.finish(&mut |body, full| {
            write_record(log, now, name, full, body);
        });
        s.fd = None;
    }

    /// Deletes the runtime's state and the container cgroup.
    fn cleanup(&self) {
        if let Err(e) = backend::delete(&self.meta, &self.cdir) {
            log_diag(&format!("runtime delete: {e}"));
        }
        if let Err(e) = cgroups::remove_cgroup(&self.meta.cgroups_path) {
            log_diag(&format!("cgroup removal: {e}"));
        }
    }
}

fn write_record(log: &mut Option<File>, now: SystemTime, stream: &str, full: bool, body: &[u8]) {
    if let Some(f) = log {
        // One write per record keeps records whole with O_APPEND.
        let _ = f.write_all(&format_record(now, stream, full, body));
    }
}

fn set_nonblocking(fd: BorrowedFd<'_>) {
    // SAFETY: fcntl on a valid descriptor with integer flags.
    unsafe {
        let flags = libc::fcntl(fd.as_raw_fd(), libc::F_GETFL);
        if flags >= 0 {
            libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK);
        }
    }
}

/// Reaps all exited children; returns the decoded status if `pid` was among them.
fn reap(pid: i32) -> Option<(i32, Option<i32>)> {
    let mut found = None;
    loop {
        let mut status = 0;
        // SAFETY: waitpid(2) with a valid status pointer.
        let r = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if r <= 0 {
            break;
        }
        if r == pid {
            found = Some(sys::decode_wait_status(status));
        }
    }
    found
}

fn exec_shim(dir: &Path, token: &str, cmd: Vec<String>, tty: bool) -> i32 {
    // Processes the runtime leaves behind (e.g. a failed exec's init) become ours and are
    // reaped before exiting, instead of lingering under init; a detached exec's process
    // becomes our child this way.
    // SAFETY: prctl with integer arguments.
    unsafe {
        libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
    }
    let code = exec_in_container(dir, token, cmd, tty);
    reap_all(Duration::from_secs(1));
    code
}

/// Reaps children until none are left or `limit` has passed.
fn reap_all(limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        let mut status = 0;
        // SAFETY: waitpid(2) with a valid status pointer.
        let r = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if r > 0 {
            continue;
        }
        if r < 0 || Instant::now() >= deadline {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn exec_in_container(dir: &Path, token: &str, cmd: Vec<String>, tty: bool) -> i32 {
    let cdir = ContainerDir::new(dir.to_path_buf());
    let result_path = cdir.file(&format!("exec-{token}.result"));
    let fail = |msg: String| {
        let _ = sys::write_json(
            &result_path,
            &ExecResult {
                exit_code: None,
                error: Some(msg.clone()),
            },
        );
        eprintln!("{msg}");
        126
    };
    if token.contains('/') {
        return fail("invalid exec token".into());
    }
    let meta = match cdir.meta() {
        Ok(Some(m)) => m,
        Ok(None) => return fail(format!("no container record in {}", dir.display())),
        Err(e) => return fail(e.to_string()),
    };
    let spec = match oci_spec::runtime::Spec::load(cdir.file(CONFIG_FILE)) {
        Ok(s) => s,
        Err(e) => return fail(format!("reading the container's spec: {e}")),
    };
    let Some(mut process) = spec.process().clone() else {
        return fail("the container's spec has no process".into());
    };
    process.set_args(Some(cmd));
    process.set_terminal(Some(tty));
    process.set_console_size(None);
    if tty {
        // As containerd does for exec with a terminal.
        let mut env = process.env().clone().unwrap_or_default();
        if !env.iter().any(|e| e.starts_with("TERM=")) {
            env.push("TERM=xterm".to_string());
        }
        process.set_env(Some(env));
    }
    let process_path = cdir.file(&format!("exec-{token}.json"));
    let pid_path = cdir.file(&format!("exec-{token}.pid"));
    let log_path = cdir.file(&format!("exec-{token}.log"));
    let data = match serde_json::to_vec(&process) {
        Ok(d) => d,
        Err(e) => return fail(format!("encoding the exec process: {e}")),
    };
    if let Err(e) = sys::write_atomic(&process_path, &data) {
        return fail(format!("writing {}: {e}", process_path.display()));
    }
    let end = if tty {
        exec_with_terminal(&meta, &cdir, &process_path, &pid_path, &log_path)
    } else {
        backend::exec(&meta, &cdir, &process_path, &pid_path, &log_path)
    };
    let _ = fs::remove_file(&process_path);
    let _ = fs::remove_file(&log_path);
    match end {
        ExecEnd::Exited(code) => {
            let _ = sys::write_json(
                &result_path,
                &ExecResult {
                    exit_code: Some(code),
                    error: None,
                },
            );
            code
        }
        ExecEnd::Failed(msg) => fail(msg),
    }
}

/// The descriptor on which `exec-tty` finds the unix socket that receives the terminal's
/// master.
pub(crate) const TTY_CHANNEL_FD: i32 = 3;

/// How long a detached exec may take to hand over its terminal.
const CONSOLE_TIMEOUT: Duration = Duration::from_secs(10);

/// Starts the exec detached with a terminal, forwards the terminal's master to fd 3 and
/// waits for the process.
fn exec_with_terminal(
    meta: &Meta,
    cdir: &ContainerDir,
    process_path: &Path,
    pid_path: &Path,
    log_path: &Path,
) -> ExecEnd {
    // SAFETY: fd 3 was set up by the starter for us; we own it from here on.
    let channel = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(TTY_CHANNEL_FD) };
    if !is_socket(channel.as_fd()) {
        std::mem::forget(channel);
        return ExecEnd::Failed("exec with a terminal needs a channel on fd 3".into());
    }
    // Keep it out of the runtime's processes: the starter sees the channel's end of file
    // as soon as this process is done with it.
    // SAFETY: fcntl on a descriptor we own, with integer flags.
    unsafe {
        libc::fcntl(channel.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC);
    }
    let console = match ConsoleSocket::new() {
        Ok(c) => c,
        Err(e) => return ExecEnd::Failed(format!("creating the console socket: {e}")),
    };
    let pid =
        match backend::exec_detached(meta, cdir, process_path, pid_path, log_path, &console.path) {
            Ok(pid) => pid,
            Err(msg) => return ExecEnd::Failed(msg),
        };
    let handed_over = console
        .receive_master(CONSOLE_TIMEOUT)
        .and_then(|master| send_fd(channel.as_fd(), master.as_fd()));
    drop(console);
    drop(channel);
    if let Err(e) = handed_over {
        // SAFETY: kill(2) on the child we just started.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
        }
        let _ = wait_for_child(pid);
        return ExecEnd::Failed(format!("passing on the exec's terminal: {e}"));
    }
    ExecEnd::Exited(wait_for_child(pid))
}

/// A listening unix socket in a private temporary directory (short path, owner-only).
struct ConsoleSocket {
    dir: PathBuf,
    path: PathBuf,
    listener: std::os::unix::net::UnixListener,
}

impl ConsoleSocket {
    fn new() -> io::Result<ConsoleSocket> {
        let template = std::env::temp_dir().join("ferrokube-console-XXXXXX");
        let mut raw = std::ffi::CString::new(template.as_os_str().as_encoded_bytes())
            .map_err(io::Error::other)?
            .into_bytes_with_nul();
        // SAFETY: mkdtemp rewrites the NUL-terminated template in place.
        let made = unsafe { libc::mkdtemp(raw.as_mut_ptr().cast()) };
        if made.is_null() {
            return Err(io::Error::last_os_error());
        }
        raw.pop();
        let dir =
            PathBuf::from(<std::ffi::OsString as std::os::unix::ffi::OsStringExt>::from_vec(raw));
        let path = dir.join("console.sock");
        match std::os::unix::net::UnixListener::bind(&path) {
            Ok(listener) => Ok(ConsoleSocket {
                dir,
                path,
                listener,
            }),
            Err(e) => {
                let _ = fs::remove_dir(&dir);
                Err(e)
            }
        }
    }

    /// Accepts the runtime's connection and takes the descriptor it sends.
    fn receive_master(&self, timeout: Duration) -> io::Result<OwnedFd> {
        let deadline = Instant::now() + timeout;
        wait_readable(self.listener.as_fd(), deadline)?;
        let (conn, _) = self.listener.accept()?;
        wait_readable(conn.as_fd(), deadline)?;
        recv_fd(conn.as_fd())?.ok_or_else(|| io::Error::other("the runtime sent no terminal"))
    }
}

impl Drop for ConsoleSocket {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
        let _ = fs::remove_dir(&self.dir);
    }
}

fn wait_readable(fd: BorrowedFd<'_>, deadline: Instant) -> io::Result<()> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "timed out"));
        }
        let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
        let ms = left.as_millis().min(10_000) as u16;
        match poll(&mut fds, PollTimeout::from(ms.max(1))) {
            Ok(0) => continue,
            Ok(_) => return Ok(()),
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

fn is_socket(fd: BorrowedFd<'_>) -> bool {
    nix::sys::stat::fstat(fd.as_raw_fd())
        .map(|st| st.st_mode & libc::S_IFMT == libc::S_IFSOCK)
        .unwrap_or(false)
}

/// Sends one descriptor over a unix socket (with a one-byte payload).
pub(crate) fn send_fd(sock: BorrowedFd<'_>, fd: BorrowedFd<'_>) -> io::Result<()> {
    send_fd_with(sock, b"t", Some(fd))
}

/// Sends `payload` over a unix socket, with `fd` attached when given.
pub(crate) fn send_fd_with(
    sock: BorrowedFd<'_>,
    payload: &[u8],
    fd: Option<BorrowedFd<'_>>,
) -> io::Result<()> {
    use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
    let fds: Vec<i32> = fd.iter().map(|f| f.as_raw_fd()).collect();
    let iov = [io::IoSlice::new(payload)];
    let cmsgs: Vec<ControlMessage> = if fds.is_empty() {
        Vec::new()
    } else {
        vec![ControlMessage::ScmRights(&fds)]
    };
    sendmsg::<()>(sock.as_raw_fd(), &iov, &cmsgs, MsgFlags::MSG_NOSIGNAL, None)?;
    Ok(())
}

/// Receives one descriptor sent over a unix socket; `None` at end of stream or when the
/// message carried no descriptor. Extra descriptors are closed.
pub(crate) fn recv_fd(sock: BorrowedFd<'_>) -> io::Result<Option<OwnedFd>> {
    let mut buf = [0u8; 256];
    recv_fd_with(sock, &mut buf).map(|(_, fd)| fd)
}

/// Receives at most `buf.len()` bytes and the first descriptor that came with them;
/// returns how many bytes were read (0 at end of stream). Extra descriptors are closed.
pub(crate) fn recv_fd_with(
    sock: BorrowedFd<'_>,
    buf: &mut [u8],
) -> io::Result<(usize, Option<OwnedFd>)> {
    let (n, fds, _) = recv_fds(sock, buf)?;
    Ok((n, fds.into_iter().next()))
}

/// Receives at most `buf.len()` bytes and up to four descriptors (close-on-exec);
/// returns the byte count (0 at end of stream), the descriptors, and whether the
/// message was longer than `buf`.
pub(crate) fn recv_fds(
    sock: BorrowedFd<'_>,
    buf: &mut [u8],
) -> io::Result<(usize, Vec<OwnedFd>, bool)> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    let mut iov = [io::IoSliceMut::new(buf)];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 4]);
    let msg = loop {
        match recvmsg::<()>(
            sock.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Ok(m) => break m,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
    };
    let mut out = Vec::new();
    for cmsg in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(fds) = cmsg {
            for raw in fds {
                // SAFETY: the kernel installed these descriptors for us.
                out.push(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(raw) });
            }
        }
    }
    Ok((msg.bytes, out, msg.flags.contains(MsgFlags::MSG_TRUNC)))
}

/// Waits for the process `pid` (our child, possibly adopted as subreaper), reaping other
/// children on the way; returns its exit code (128+signal for a signal death).
fn wait_for_child(pid: i32) -> i32 {
    loop {
        let mut status = 0;
        // SAFETY: waitpid(2) with a valid status pointer.
        let r = unsafe { libc::waitpid(-1, &mut status, 0) };
        if r == pid {
            return sys::decode_wait_status(status).0;
        }
        if r < 0 {
            match io::Error::last_os_error().raw_os_error() {
                Some(libc::EINTR) => continue,
                _ => {
                    // Not (or no longer) our child: follow it until it is gone.
                    while sys::proc_start_time(pid).is_some() {
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    return 255;
                }
            }
        }
    }
}

/// Reads a whole small file (the exec pid file).
pub(crate) fn read_pid_file(path: &Path) -> Option<i32> {
    let mut s = String::new();
    File::open(path).ok()?.read_to_string(&mut s).ok()?;
    s.trim().parse().ok()
}
