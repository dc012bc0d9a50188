//! Interactive exec ([`ContainerRuntime::exec_spawn`]): an [`ExecSession`] runs a command
//! in a running container through the shim's `exec` mode (pipes for stdin, stdout and
//! stderr) or `exec-tty` mode (a pseudo-terminal created by the OCI runtime inside the
//! container, whose master the shim passes back over a socket pair). The session's
//! command is SIGKILLed when the session is dropped before it finished.
//!
//! [`ContainerRuntime::exec_spawn`]: crate::ContainerRuntime::exec_spawn

use std::fs;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::pin::Pin;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::unix::pipe;

use crate::shim::{read_pid_file, recv_fd, ExecResult, TTY_CHANNEL_FD};
use crate::store::ProcRef;
use crate::{sys, Error};

/// How long [`ContainerRuntime::exec_spawn`](crate::ContainerRuntime::exec_spawn) waits
/// for the runtime to hand over a terminal.
const TERMINAL_TIMEOUT: Duration = Duration::from_secs(30);

/// A command running in a container, started by
/// [`ContainerRuntime::exec_spawn`](crate::ContainerRuntime::exec_spawn).
///
/// Take the streams with [`take_stdin`](Self::take_stdin),
/// [`take_stdout`](Self::take_stdout) and [`take_stderr`](Self::take_stderr); closing
/// (dropping) the stdin writer gives the command end of input. With a terminal, stdout
/// carries everything the command writes and there is no stderr. Dropping the session
/// before [`wait`](Self::wait) returned kills the command.
#[derive(Debug)]
pub struct ExecSession {
    shim: Option<Child>,
    shim_fd: Option<AsyncFd<OwnedFd>>,
    pid_path: PathBuf,
    result_path: PathBuf,
    stdin: Option<ExecWriter>,
    stdout: Option<ExecReader>,
    stderr: Option<ExecReader>,
    terminal: Option<Arc<AsyncFd<OwnedFd>>>,
    outcome: Option<Result<i32, String>>,
}

/// Everything needed to start the shim for one exec.
pub(crate) struct ExecLaunch {
    pub command: Command,
    pub tty: bool,
    pub stdin: bool,
    pub pid_path: PathBuf,
    pub result_path: PathBuf,
}

impl ExecSession {
    /// Starts the shim and sets up the streams.
    pub(crate) async fn start(launch: ExecLaunch) -> Result<ExecSession, Error> {
        let ExecLaunch {
            mut command,
            tty,
            stdin,
            pid_path,
            result_path,
        } = launch;
        let spawn_err =
            |e: io::Error| Error::ExecFailed(format!("failed to start exec helper: {e}"));
        let mut session = ExecSession {
            shim: None,
            shim_fd: None,
            pid_path,
            result_path,
            stdin: None,
            stdout: None,
            stderr: None,
            terminal: None,
            outcome: None,
        };
        if tty {
            let (ours, theirs) = UnixStream::pair().map_err(spawn_err)?;
            // A descriptor number well away from 0-3, so stdio setup cannot clobber it and
            // dup2 onto fd 3 always clears close-on-exec.
            let moved = dup_above(theirs.as_fd(), 10).map_err(spawn_err);
            drop(theirs);
            let theirs = moved?;
            let raw = theirs.as_raw_fd();
            command
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            // SAFETY: the hook only calls dup2 (async-signal-safe) on descriptors that stay
            // open until the child has exec'd.
            unsafe {
                command.pre_exec(move || {
                    if libc::dup2(raw, TTY_CHANNEL_FD) < 0 {
                        return Err(io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
            let child = command.spawn().map_err(spawn_err)?;
            drop(theirs);
            session.adopt(child);
            ours.set_nonblocking(true)
                .map_err(|e| Error::io("exec terminal channel", e))?;
            let channel = register(OwnedFd::from(ours), tokio::io::Interest::READABLE)
                .map_err(|e| Error::io("exec terminal channel", e))?;
            let received = tokio::time::timeout(TERMINAL_TIMEOUT, async {
                loop {
                    let mut guard = channel.readable().await?;
                    match guard.try_io(|fd| recv_fd(fd.get_ref().as_fd())) {
                        Ok(res) => return res,
                        Err(_would_block) => continue,
                    }
                }
            })
            .await;
            match received {
                Ok(Ok(Some(master))) => {
                    set_nonblocking(&master).map_err(|e| Error::io("exec terminal", e))?;
                    let interest = tokio::io::Interest::READABLE.add(tokio::io::Interest::WRITABLE);
                    let master = Arc::new(
                        register(master, interest).map_err(|e| Error::io("exec terminal", e))?,
                    );
                    if stdin {
                        session.stdin = Some(ExecWriter(WriterInner::Pty(master.clone())));
                    }
                    session.stdout = Some(ExecReader(ReaderInner::Pty(master.clone())));
                    session.terminal = Some(master);
                }
                Ok(Ok(None)) | Ok(Err(_)) => {
                    // The shim ended (or broke the channel) without a terminal: the exec
                    // failed to start.
                    return match session.wait().await {
                        Err(e) => Err(e),
                        Ok(code) => Err(Error::ExecFailed(format!(
                            "exec ended with exit code {code} before its terminal was set up"
                        ))),
                    };
                }
                Err(_) => {
                    return Err(Error::ExecFailed(
                        "timed out waiting for the exec's terminal".into(),
                    ))
                }
            }
        } else {
            command
                .stdin(if stdin { Stdio::piped() } else { Stdio::null() })
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            let mut child = command.spawn().map_err(spawn_err)?;
            let taken = (child.stdin.take(), child.stdout.take(), child.stderr.take());
            session.adopt(child);
            let pipe_err = |e: io::Error| Error::io("exec pipes", e);
            if let Some(w) = taken.0 {
                let w = pipe::Sender::from_owned_fd(OwnedFd::from(w)).map_err(pipe_err)?;
                session.stdin = Some(ExecWriter(WriterInner::Pipe(w)));
            }
            if let Some(r) = taken.1 {
                let r = pipe::Receiver::from_owned_fd(OwnedFd::from(r)).map_err(pipe_err)?;
                session.stdout = Some(ExecReader(ReaderInner::Pipe(r)));
            }
            if let Some(r) = taken.2 {
                let r = pipe::Receiver::from_owned_fd(OwnedFd::from(r)).map_err(pipe_err)?;
                session.stderr = Some(ExecReader(ReaderInner::Pipe(r)));
            }
        }
        Ok(session)
    }

    fn adopt(&mut self, child: Child) {
        self.shim_fd = sys::pidfd_open(child.id() as i32)
            .ok()
            .and_then(|fd| register(fd, tokio::io::Interest::READABLE).ok());
        self.shim = Some(child);
    }

    /// The writer feeding the command's standard input (`None` without stdin, or once
    /// taken). Dropping it closes the command's input.
    pub fn take_stdin(&mut self) -> Option<ExecWriter> {
        self.stdin.take()
    }

    /// The command's standard output (with a terminal: everything it writes).
    pub fn take_stdout(&mut self) -> Option<ExecReader> {
        self.stdout.take()
    }

    /// The command's standard error (`None` with a terminal).
    pub fn take_stderr(&mut self) -> Option<ExecReader> {
        self.stderr.take()
    }

    /// Whether the command runs with a terminal.
    pub fn is_tty(&self) -> bool {
        self.terminal.is_some()
    }

    /// A handle that resizes the terminal (`None` without a terminal).
    pub fn resizer(&self) -> Option<TerminalResizer> {
        self.terminal.clone().map(TerminalResizer)
    }

    /// Resizes the terminal to `width` columns and `height` rows.
    pub fn resize(&self, width: u16, height: u16) -> Result<(), Error> {
        match self.resizer() {
            Some(r) => r.resize(width, height),
            None => Err(Error::ExecFailed("the exec has no terminal".into())),
        }
    }

    /// Waits for the command to exit and returns its exit code (128+signal for a signal
    /// death), or [`Error::ExecFailed`] when it could not be started. Can be called again
    /// after it returned.
    pub async fn wait(&mut self) -> Result<i32, Error> {
        if let Some(o) = &self.outcome {
            return o.clone().map_err(Error::ExecFailed);
        }
        while let Some(child) = self.shim.as_mut() {
            if !matches!(child.try_wait(), Ok(None)) {
                break;
            }
            match &self.shim_fd {
                // A pidfd turns readable (and stays so) when the process exits.
                Some(fd) => {
                    let _ = tokio::time::timeout(Duration::from_secs(1), fd.readable()).await;
                }
                None => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
        self.shim = None;
        self.shim_fd = None;
        let result: Option<ExecResult> = sys::read_json(&self.result_path).ok().flatten();
        let _ = fs::remove_file(&self.result_path);
        let _ = fs::remove_file(&self.pid_path);
        let outcome = match result {
            Some(ExecResult {
                error: Some(msg), ..
            }) => Err(msg),
            Some(ExecResult {
                exit_code: Some(code),
                ..
            }) => Ok(code),
            _ => Err("exec helper ended without a result".to_string()),
        };
        self.outcome = Some(outcome.clone());
        outcome.map_err(Error::ExecFailed)
    }

    /// SIGKILLs the command if it still runs (the session then ends with exit code 137).
    pub fn kill(&self) {
        if let Some(p) = read_pid_file(&self.pid_path).and_then(ProcRef::of) {
            let _ = sys::signal_process(p.pid, p.start_time, libc::SIGKILL);
        }
    }
}

impl Drop for ExecSession {
    fn drop(&mut self) {
        let Some(mut child) = self.shim.take() else {
            return;
        };
        if matches!(child.try_wait(), Ok(Some(_))) {
            let _ = fs::remove_file(&self.result_path);
            let _ = fs::remove_file(&self.pid_path);
            return;
        }
        self.kill();
        let pid_path = self.pid_path.clone();
        let result_path = self.result_path.clone();
        // The shim reaps the killed command and exits; make sure of it without blocking
        // the caller (the command may not even have started yet).
        let reaper = move || {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                if matches!(child.try_wait(), Ok(Some(_)) | Err(_)) {
                    break;
                }
                if let Some(p) = read_pid_file(&pid_path).and_then(ProcRef::of) {
                    let _ = sys::signal_process(p.pid, p.start_time, libc::SIGKILL);
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = fs::remove_file(&result_path);
            let _ = fs::remove_file(&pid_path);
        };
        if std::thread::Builder::new()
            .name("exec-reaper".into())
            .spawn(reaper)
            .is_err()
        {
            tracing::warn!("could not start a thread to reap an exec helper");
        }
    }
}

/// Resizes an exec's terminal (`TIOCSWINSZ` on the master; the kernel then signals
/// `SIGWINCH` to the terminal's foreground process group). Cheap to clone.
#[derive(Clone, Debug)]
pub struct TerminalResizer(pub(crate) Arc<AsyncFd<OwnedFd>>);

impl TerminalResizer {
    /// Sets the terminal size to `width` columns and `height` rows.
    pub fn resize(&self, width: u16, height: u16) -> Result<(), Error> {
        let ws = libc::winsize {
            ws_row: height,
            ws_col: width,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ reads a winsize struct we pass by reference.
        let r = unsafe { libc::ioctl(self.0.get_ref().as_raw_fd(), libc::TIOCSWINSZ, &ws) };
        if r < 0 {
            return Err(Error::io(
                "resizing the terminal",
                io::Error::last_os_error(),
            ));
        }
        Ok(())
    }
}

#[derive(Debug)]
enum WriterInner {
    Pipe(pipe::Sender),
    Pty(Arc<AsyncFd<OwnedFd>>),
}

/// The write side of an exec's (or an attached container's) standard input.
#[derive(Debug)]
pub struct ExecWriter(WriterInner);

impl ExecWriter {
    pub(crate) fn from_pipe(p: pipe::Sender) -> ExecWriter {
        ExecWriter(WriterInner::Pipe(p))
    }
}

/// A writer to a terminal's master (registered for writability).
pub(crate) fn pty_writer(master: Arc<AsyncFd<OwnedFd>>) -> ExecWriter {
    ExecWriter(WriterInner::Pty(master))
}

#[derive(Debug)]
enum ReaderInner {
    Pipe(pipe::Receiver),
    Pty(Arc<AsyncFd<OwnedFd>>),
}

/// The read side of an exec's standard output or error. A terminal whose other side was
/// closed reads as end of file.
#[derive(Debug)]
pub struct ExecReader(ReaderInner);

impl AsyncRead for ExecReader {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match &mut self.get_mut().0 {
            ReaderInner::Pipe(p) => Pin::new(p).poll_read(cx, buf),
            ReaderInner::Pty(fd) => loop {
                let mut guard = ready!(fd.poll_read_ready(cx))?;
                let unfilled = buf.initialize_unfilled();
                let res = guard.try_io(|inner| {
                    // SAFETY: read(2) into a buffer we own, at most its length.
                    let n = unsafe {
                        libc::read(
                            inner.get_ref().as_raw_fd(),
                            unfilled.as_mut_ptr().cast(),
                            unfilled.len(),
                        )
                    };
                    if n < 0 {
                        Err(io::Error::last_os_error())
                    } else {
                        Ok(n as usize)
                    }
                });
                match res {
                    Ok(Ok(n)) => {
                        buf.advance(n);
                        return Poll::Ready(Ok(()));
                    }
                    // The last holder of the terminal's other side is gone.
                    Ok(Err(e)) if e.raw_os_error() == Some(libc::EIO) => {
                        return Poll::Ready(Ok(()))
                    }
                    Ok(Err(e)) => return Poll::Ready(Err(e)),
                    Err(_would_block) => continue,
                }
            },
        }
    }
}

impl AsyncWrite for ExecWriter {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().0 {
            WriterInner::Pipe(p) => Pin::new(p).poll_write(cx, data),
            WriterInner::Pty(fd) => loop {
                let mut guard = ready!(fd.poll_write_ready(cx))?;
                let res = guard.try_io(|inner| {
                    // SAFETY: write(2) from a buffer we borrow, at most its length.
                    let n = unsafe {
                        libc::write(
                            inner.get_ref().as_raw_fd(),
                            data.as_ptr().cast(),
                            data.len(),
                        )
                    };
                    if n < 0 {
                        Err(io::Error::last_os_error())
                    } else {
                        Ok(n as usize)
                    }
                });
                match res {
                    Ok(Ok(n)) => return Poll::Ready(Ok(n)),
                    Ok(Err(e)) if e.raw_os_error() == Some(libc::EIO) => {
                        return Poll::Ready(Err(io::Error::from(io::ErrorKind::BrokenPipe)))
                    }
                    Ok(Err(e)) => return Poll::Ready(Err(e)),
                    Err(_would_block) => continue,
                }
            },
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().0 {
            WriterInner::Pipe(p) => Pin::new(p).poll_flush(cx),
            WriterInner::Pty(_) => Poll::Ready(Ok(())),
        }
    }

    /// Ends the input. For a pipe the pipe closes when the writer is dropped; for a
    /// terminal this sends end-of-file (`^D`) as a terminal in canonical mode reads it.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().0 {
            WriterInner::Pipe(p) => Pin::new(p).poll_shutdown(cx),
            WriterInner::Pty(_) => Poll::Ready(Ok(())),
        }
    }
}

pub(crate) fn set_nonblocking(fd: &OwnedFd) -> io::Result<()> {
    // SAFETY: fcntl on a descriptor we own, with integer flags.
    unsafe {
        let flags = libc::fcntl(fd.as_raw_fd(), libc::F_GETFL);
        if flags < 0 || libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Registers a descriptor with the reactor.
pub(crate) fn register(fd: OwnedFd, interest: tokio::io::Interest) -> io::Result<AsyncFd<OwnedFd>> {
    // SAFETY: the OwnedFd is moved into the AsyncFd, stays open and keeps its number for
    // the AsyncFd's whole life.
    unsafe { AsyncFd::register_with_interest(fd, interest) }.map_err(|e| e.into_parts().1)
}

/// Duplicates `fd` onto the lowest free descriptor at or above `min` (close-on-exec).
fn dup_above(fd: std::os::fd::BorrowedFd<'_>, min: i32) -> io::Result<OwnedFd> {
    // SAFETY: F_DUPFD_CLOEXEC returns a new descriptor we then own.
    let raw = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, min) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: raw is a fresh descriptor owned by nobody else.
    Ok(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(raw) })
}
