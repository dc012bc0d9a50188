//! Attaching to a running container's own stdio (`kubectl attach`, `kubectl run -it`):
//! both ends of the shim's attach socket.
//!
//! A container started with stdin or a terminal ([`ContainerIo::attachable`]) has its shim
//! listen on `attach.sock` in the container's directory ([`AttachServer`], driven by the
//! shim's poll loop). A client connects and sends one byte: whether it brings input. The
//! shim answers with a two-byte header (`F`, flags), carrying with `SCM_RIGHTS` the
//! descriptor input goes to: the write end of the container's stdin pipe (only to a
//! client bringing input), or the terminal's master (also used to resize it). Then the
//! shim sends the container's output as it reads it, in frames of one stream byte (1
//! stdout, 2 stderr), a big-endian u32 length and the bytes. The client writes nothing
//! more; closing the connection detaches. With `stdin_once` (and no terminal) the first
//! client bringing input gets the shim's only copy of the pipe's write end, so the
//! container reads end of file when that session ends, and later sessions get no input
//! (as containerd closes a `stdinOnce` container's stdin after the first attach with
//! stdin).
//!
//! The socket is bound and connected through `/proc/self/fd/<dir>/attach.sock`, which
//! keeps the address short whatever the state directory's length.
//!
//! [`ContainerIo::attachable`]: crate::ContainerIo::attachable

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use tokio::io::AsyncReadExt;
use tokio::net::unix::pipe;

use crate::interactive::{pty_writer, register, set_nonblocking};
use crate::shim::{recv_fd_with, send_fd_with};
use crate::store::ATTACH_SOCKET;
use crate::{Error, ExecWriter, TerminalResizer};

const MAGIC: u8 = b'F';
/// Request byte: the client brings input.
const WANTS_STDIN: u8 = 1;
/// Header flag: a descriptor came with the header.
const HAS_FD: u8 = 1;
/// Header flag: the descriptor is a terminal's master.
const TTY: u8 = 2;
/// Header flag: input written to the descriptor reaches the container.
const STDIN_OPEN: u8 = 4;
/// Frame stream bytes.
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
/// Output a slow client may fall behind by before it is disconnected.
const MAX_PENDING: usize = 4 << 20;
/// How long the shim tries to deliver what is left once the container is gone.
const FINAL_FLUSH: Duration = Duration::from_secs(2);
/// The largest frame a client accepts.
const MAX_FRAME: usize = 1 << 20;

/// The address of `dir`'s attach socket through the descriptor `dir_fd`.
fn socket_address(dir_fd: BorrowedFd<'_>) -> PathBuf {
    PathBuf::from(format!(
        "/proc/self/fd/{}/{ATTACH_SOCKET}",
        dir_fd.as_raw_fd()
    ))
}

fn open_dir(dir: &Path) -> io::Result<OwnedFd> {
    Ok(File::open(dir)?.into())
}

/// Which stream a piece of container output came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputStream {
    /// Standard output (everything, with a terminal).
    Stdout,
    /// Standard error.
    Stderr,
}

struct Client {
    sock: UnixStream,
    /// Whether the header went out (after the client's request byte); output is only
    /// sent after it.
    answered: bool,
    pending: Vec<u8>,
    gone: bool,
}

impl Client {
    /// Sends what is pending without blocking; marks the client gone on error.
    fn flush(&mut self) {
        while !self.pending.is_empty() && !self.gone {
            match (&self.sock).write(&self.pending) {
                Ok(0) => self.gone = true,
                Ok(n) => {
                    self.pending.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => self.gone = true,
            }
        }
    }
}

/// The shim's side: the listening socket, the input descriptor it hands out and the
/// connected clients.
pub(crate) struct AttachServer {
    dir: OwnedFd,
    listener: UnixListener,
    input: Option<OwnedFd>,
    tty: bool,
    stdin: bool,
    stdin_once: bool,
    clients: Vec<Client>,
}

impl AttachServer {
    /// Listens on `dir`'s attach socket. `input` is the stdin pipe's write end or the
    /// terminal's master (`tty`); `stdin` says whether the container reads it.
    pub(crate) fn bind(
        dir: &Path,
        input: Option<OwnedFd>,
        tty: bool,
        stdin: bool,
        stdin_once: bool,
    ) -> io::Result<AttachServer> {
        let dir_fd = open_dir(dir)?;
        let addr = socket_address(dir_fd.as_fd());
        let _ = std::fs::remove_file(&addr);
        let listener = UnixListener::bind(&addr)?;
        listener.set_nonblocking(true)?;
        Ok(AttachServer {
            dir: dir_fd,
            listener,
            input,
            tty,
            stdin,
            stdin_once: stdin_once && !tty,
            clients: Vec::new(),
        })
    }

    /// The descriptors to poll: the listener first, then one per client (with `POLLOUT`
    /// while output is pending for it).
    pub(crate) fn poll_fds(&self) -> Vec<PollFd<'_>> {
        let mut fds = vec![PollFd::new(self.listener.as_fd(), PollFlags::POLLIN)];
        for c in &self.clients {
            let mut ev = PollFlags::POLLIN;
            if !c.pending.is_empty() {
                ev |= PollFlags::POLLOUT;
            }
            fds.push(PollFd::new(c.sock.as_fd(), ev));
        }
        fds
    }

    /// Handles readiness reported for [`poll_fds`](Self::poll_fds)' entries (`ready[i]`
    /// for entry `i`).
    pub(crate) fn handle(&mut self, ready: &[bool]) {
        if ready.first().copied().unwrap_or(false) {
            self.accept_all();
        }
        for i in 0..self.clients.len() {
            if !ready.get(i + 1).copied().unwrap_or(false) {
                continue;
            }
            self.clients[i].flush();
            let mut buf = [0u8; 512];
            loop {
                let c = &mut self.clients[i];
                match nix::unistd::read(c.sock.as_raw_fd(), &mut buf) {
                    Ok(0) => {
                        c.gone = true;
                        break;
                    }
                    // Anything after the request byte is ignored.
                    Ok(_) => {
                        if !c.answered {
                            self.answer(i, buf[0] & WANTS_STDIN != 0);
                        }
                    }
                    Err(nix::errno::Errno::EINTR) => continue,
                    Err(nix::errno::Errno::EAGAIN) => break,
                    Err(_) => {
                        c.gone = true;
                        break;
                    }
                }
            }
        }
        self.clients.retain(|c| !c.gone);
    }

    fn accept_all(&mut self) {
        loop {
            let sock = match self.listener.accept() {
                Ok((s, _)) => s,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return,
            };
            if sock.set_nonblocking(true).is_err() {
                continue;
            }
            self.clients.push(Client {
                sock,
                answered: false,
                pending: Vec::new(),
                gone: false,
            });
        }
    }

    /// Sends client `i` its header, with the input descriptor it may have.
    fn answer(&mut self, i: usize, wants_stdin: bool) {
        let mut flags = 0;
        if self.tty {
            flags |= TTY;
        }
        let takes_input = wants_stdin && self.stdin && self.input.is_some();
        if takes_input {
            flags |= STDIN_OPEN;
        }
        // The only copy goes to the first client bringing input; the next ones get none.
        let give = if takes_input && self.stdin_once {
            self.input.take()
        } else {
            None
        };
        let fd = match (&give, &self.input) {
            (Some(f), _) => Some(f.as_fd()),
            // A terminal's master also serves to resize it.
            (None, Some(f)) if takes_input || self.tty => Some(f.as_fd()),
            _ => None,
        };
        if fd.is_some() {
            flags |= HAS_FD;
        }
        let c = &mut self.clients[i];
        c.answered = true;
        if send_fd_with(c.sock.as_fd(), &[MAGIC, flags], fd).is_err() {
            c.gone = true;
            // Nobody got it: keep it for the next client.
            if give.is_some() {
                self.input = give;
            }
        }
    }

    /// Sends output to every client; a client too far behind is disconnected.
    pub(crate) fn broadcast(&mut self, stream: OutputStream, data: &[u8]) {
        if self.clients.is_empty() || data.is_empty() {
            return;
        }
        let tag = match stream {
            OutputStream::Stdout => STDOUT,
            OutputStream::Stderr => STDERR,
        };
        for c in self.clients.iter_mut().filter(|c| c.answered) {
            c.pending.push(tag);
            c.pending
                .extend_from_slice(&(data.len() as u32).to_be_bytes());
            c.pending.extend_from_slice(data);
            c.flush();
            if c.pending.len() > MAX_PENDING {
                c.gone = true;
            }
        }
        self.clients.retain(|c| !c.gone);
    }

    /// Delivers what is still pending (for a bounded time) and stops serving.
    pub(crate) fn finish(mut self) {
        let deadline = Instant::now() + FINAL_FLUSH;
        loop {
            self.clients.retain(|c| !c.gone && !c.pending.is_empty());
            let left = deadline.saturating_duration_since(Instant::now());
            if self.clients.is_empty() || left.is_zero() {
                break;
            }
            let mut fds: Vec<PollFd> = self
                .clients
                .iter()
                .map(|c| PollFd::new(c.sock.as_fd(), PollFlags::POLLOUT))
                .collect();
            let ms = left.as_millis().min(1000) as u16;
            let _ = poll(&mut fds, PollTimeout::from(ms.max(1)));
            drop(fds);
            for c in &mut self.clients {
                c.flush();
            }
        }
    }
}

impl Drop for AttachServer {
    fn drop(&mut self) {
        let _ = nix::unistd::unlinkat(
            Some(self.dir.as_raw_fd()),
            ATTACH_SOCKET,
            nix::unistd::UnlinkatFlags::NoRemoveDir,
        );
    }
}

/// A connection to a running container's stdio, from
/// [`ContainerRuntime::attach`](crate::ContainerRuntime::attach).
///
/// Output arrives through [`next_output`](Self::next_output) from the moment of attaching
/// (earlier output is only in the log). Dropping the session detaches; with `stdinOnce`
/// dropping the stdin writer (taken with [`take_stdin`](Self::take_stdin)) closes the
/// container's input.
#[derive(Debug)]
pub struct AttachSession {
    stream: tokio::net::UnixStream,
    stdin: Option<ExecWriter>,
    terminal: Option<TerminalResizer>,
    tty: bool,
}

impl AttachSession {
    /// Connects to the shim of the container in `dir`; `stdin`: whether the session
    /// brings input (only then does it get the container's stdin).
    pub(crate) async fn connect(dir: PathBuf, stdin: bool) -> Result<AttachSession, Error> {
        let connected = tokio::task::spawn_blocking(move || -> io::Result<_> {
            let dir_fd = open_dir(&dir)?;
            let mut sock = UnixStream::connect(socket_address(dir_fd.as_fd()))?;
            sock.write_all(&[if stdin { WANTS_STDIN } else { 0 }])?;
            sock.set_read_timeout(Some(Duration::from_secs(10)))?;
            let mut header = [0u8; 2];
            let (n, fd) = recv_fd_with(sock.as_fd(), &mut header)?;
            if n != 2 || header[0] != MAGIC {
                return Err(io::Error::other("unexpected attach header from the shim"));
            }
            sock.set_read_timeout(None)?;
            sock.set_nonblocking(true)?;
            Ok((sock, header[1], fd))
        })
        .await
        .map_err(|e| Error::io("attach", io::Error::other(e)))?;
        let (sock, flags, fd) =
            connected.map_err(|e| Error::io("attaching to the container", e))?;
        let stream = tokio::net::UnixStream::from_std(sock)
            .map_err(|e| Error::io("attaching to the container", e))?;
        let tty = flags & TTY != 0;
        let mut session = AttachSession {
            stream,
            stdin: None,
            terminal: None,
            tty,
        };
        let Some(fd) = fd.filter(|_| flags & HAS_FD != 0) else {
            return Ok(session);
        };
        let io_err = |e: io::Error| Error::io("attaching to the container's input", e);
        if tty {
            set_nonblocking(&fd).map_err(io_err)?;
            let master =
                std::sync::Arc::new(register(fd, tokio::io::Interest::WRITABLE).map_err(io_err)?);
            if flags & STDIN_OPEN != 0 {
                session.stdin = Some(pty_writer(master.clone()));
            }
            session.terminal = Some(TerminalResizer(master));
        } else if flags & STDIN_OPEN != 0 {
            let w = pipe::Sender::from_owned_fd(fd).map_err(io_err)?;
            session.stdin = Some(ExecWriter::from_pipe(w));
        }
        Ok(session)
    }

    /// The writer to the container's standard input (`None` when the container has no
    /// open stdin, or once taken).
    pub fn take_stdin(&mut self) -> Option<ExecWriter> {
        self.stdin.take()
    }

    /// Resizes the container's terminal (`None` without a terminal).
    pub fn resizer(&self) -> Option<TerminalResizer> {
        self.terminal.clone()
    }

    /// Whether the container runs with a terminal.
    pub fn is_tty(&self) -> bool {
        self.tty
    }

    /// The next piece of output; `None` once the container is gone (or the shim
    /// disconnected this session).
    pub async fn next_output(&mut self) -> io::Result<Option<(OutputStream, Vec<u8>)>> {
        let mut head = [0u8; 5];
        match self.stream.read_exact(&mut head).await {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(e),
        }
        let stream = match head[0] {
            STDOUT => OutputStream::Stdout,
            STDERR => OutputStream::Stderr,
            other => {
                return Err(io::Error::other(format!(
                    "unknown stream {other} from the shim"
                )))
            }
        };
        let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
        if len > MAX_FRAME {
            return Err(io::Error::other("oversized frame from the shim"));
        }
        let mut data = vec![0u8; len];
        self.stream.read_exact(&mut data).await?;
        Ok(Some((stream, data)))
    }
}
