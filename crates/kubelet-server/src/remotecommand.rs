//! Exec and attach streams (`/exec/...`, `/attach/...`) over SPDY/3.1 (protocols
//! `v4.channel.k8s.io`, `v3.channel.k8s.io`, `v2.channel.k8s.io`, `channel.k8s.io`,
//! one SPDY stream per channel named by its `streamType` header) and WebSocket (the same
//! protocols plus `v5.channel.k8s.io` and the base64 variants, channels 0 stdin, 1
//! stdout, 2 stderr, 3 error, 4 resize). The error channel ends the session with a
//! `metav1.Status` (JSON for v4/v5; for older protocols only a failure's message): a
//! non-zero exit is reason `NonZeroExitCode` with an `ExitCode` cause carrying the code,
//! which kubectl turns into its own exit code.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use container_runtime::{
    AttachSession, ContainerRuntime, ExecReader, ExecWriter, OutputStream, TerminalResizer,
};
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, watch};

use crate::logs::{read_logs, LogOptions, LogStream};
use crate::spdy::{self, Connection, Role};
use crate::ws::{self, Channels, Codec, Ws};

/// SPDY protocols for exec/attach, most preferred first.
pub const SPDY_PROTOCOLS: &[&str] = &[
    "v4.channel.k8s.io",
    "v3.channel.k8s.io",
    "v2.channel.k8s.io",
    "channel.k8s.io",
];

/// WebSocket protocols for exec/attach (`""`: no subprotocol, binary channels).
pub const WS_PROTOCOLS: &[&str] = &[
    "v5.channel.k8s.io",
    "v4.channel.k8s.io",
    "v4.base64.channel.k8s.io",
    "v3.channel.k8s.io",
    "v2.channel.k8s.io",
    "channel.k8s.io",
    "base64.channel.k8s.io",
    "",
];

/// How long the client has to open all its SPDY streams.
const STREAM_CREATION_TIMEOUT: Duration = Duration::from_secs(30);
/// How long output is still forwarded after the command exited.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a finished connection waits for the peer to close.
const LINGER: Duration = Duration::from_secs(5);

/// Which streams a request asks for: the kubelet's query parameters `input`, `output`,
/// `error` and `tty` (`1`), as the API server sends them; `stdin`, `stdout`, `stderr`
/// and `true` are accepted too.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StreamOptions {
    /// Forward standard input.
    pub stdin: bool,
    /// Return standard output.
    pub stdout: bool,
    /// Return standard error (never with a terminal).
    pub stderr: bool,
    /// Allocate a terminal.
    pub tty: bool,
    /// The `command` parameters (exec).
    pub command: Vec<String>,
}

impl StreamOptions {
    /// Reads the query as the kubelet does; the error is the 400 response body.
    pub fn from_query(query: &[(String, String)]) -> Result<StreamOptions, String> {
        let flag = |names: &[&str]| {
            query.iter().any(|(k, v)| {
                names.contains(&k.as_str()) && matches!(v.as_str(), "1" | "true" | "True" | "TRUE")
            })
        };
        let tty = flag(&["tty"]);
        let opts = StreamOptions {
            stdin: flag(&["input", "stdin"]),
            stdout: flag(&["output", "stdout"]),
            // A terminal merges stderr into stdout.
            stderr: flag(&["error", "stderr"]) && !tty,
            tty,
            command: query
                .iter()
                .filter(|(k, _)| k == "command")
                .map(|(_, v)| v.clone())
                .collect(),
        };
        if !opts.stdin && !opts.stdout && !opts.stderr {
            return Err("you must specify at least 1 of stdin, stdout, stderr".to_string());
        }
        Ok(opts)
    }
}

/// What a session does.
#[derive(Clone, Debug)]
pub enum Action {
    /// Run a command in the container.
    Exec {
        /// Runtime container id.
        container_id: String,
        /// The command.
        command: Vec<String>,
    },
    /// Stream the container's output (its log file, from now on) until it exits.
    Attach {
        /// Runtime container id.
        container_id: String,
        /// The container's log file.
        log_path: PathBuf,
    },
}

/// Where one output channel goes.
#[derive(Clone)]
pub(crate) enum Sink {
    Spdy(spdy::StreamWriter),
    Ws(ws::ChannelWriter),
}

impl Sink {
    async fn write(&self, data: Bytes) -> Result<(), ()> {
        match self {
            Sink::Spdy(w) => w.write_bytes(data).await.map_err(|_| ()),
            Sink::Ws(w) => w.write(data).await.map_err(|_| ()),
        }
    }

    async fn close(&self) {
        if let Sink::Spdy(w) = self {
            let _ = w.close().await;
        }
    }
}

/// A session's channels, whatever the transport.
pub(crate) struct Wiring {
    stdin: Option<mpsc::Receiver<Bytes>>,
    stdout: Option<Sink>,
    stderr: Option<Sink>,
    resize: Option<mpsc::Receiver<Bytes>>,
    error: Option<Sink>,
    json_status: bool,
    closed: watch::Receiver<bool>,
}

/// How a session ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    Success,
    ExitCode(i32, Vec<String>),
    Internal(String),
    Disconnected,
}

#[derive(Serialize)]
struct StatusMeta {}

#[derive(Serialize)]
struct StatusCause {
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'static str>,
    message: String,
}

#[derive(Serialize)]
struct StatusDetails {
    causes: Vec<StatusCause>,
}

#[derive(Serialize)]
struct Status {
    metadata: StatusMeta,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    details: Option<StatusDetails>,
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<u16>,
}

impl Outcome {
    fn status(&self) -> Option<Status> {
        Some(match self {
            Outcome::Success => Status {
                metadata: StatusMeta {},
                status: "Success",
                message: None,
                reason: None,
                details: None,
                code: None,
            },
            Outcome::ExitCode(code, cmd) => Status {
                metadata: StatusMeta {},
                status: "Failure",
                message: Some(format!(
                    "command terminated with non-zero exit code: error executing command [{}], exit code {code}",
                    cmd.join(" ")
                )),
                reason: Some("NonZeroExitCode"),
                details: Some(StatusDetails {
                    causes: vec![StatusCause {
                        reason: Some("ExitCode"),
                        message: code.to_string(),
                    }],
                }),
                code: None,
            },
            Outcome::Internal(msg) => Status {
                metadata: StatusMeta {},
                status: "Failure",
                message: Some(format!("Internal error occurred: {msg}")),
                reason: Some("InternalError"),
                details: Some(StatusDetails {
                    causes: vec![StatusCause {
                        reason: None,
                        message: msg.clone(),
                    }],
                }),
                code: Some(500),
            },
            Outcome::Disconnected => return None,
        })
    }

    /// What goes on the error channel: the JSON status (v4/v5), or a failure's message
    /// (older protocols; nothing on success).
    pub(crate) fn error_channel_bytes(&self, json: bool) -> Option<Vec<u8>> {
        let status = self.status()?;
        if json {
            return serde_json::to_vec(&status).ok();
        }
        if status.status == "Success" {
            return None;
        }
        status.message.map(String::into_bytes)
    }
}

/// Runs a session on its channels and writes the final status.
pub(crate) async fn run(runtime: ContainerRuntime, action: Action, tty: bool, mut w: Wiring) {
    let outcome = match &action {
        Action::Exec {
            container_id,
            command,
        } => exec(&runtime, container_id, command, tty, &mut w).await,
        Action::Attach {
            container_id,
            log_path,
        } => attach(&runtime, container_id, log_path.clone(), tty, &mut w).await,
    };
    if let Some(err) = w.error.take() {
        if let Some(bytes) = outcome.error_channel_bytes(w.json_status) {
            let _ = err.write(Bytes::from(bytes)).await;
        }
        err.close().await;
    }
}

async fn pump(reader: Option<ExecReader>, sink: Option<Sink>) {
    let Some(mut r) = reader else {
        return;
    };
    let mut buf = vec![0u8; 32 * 1024];
    let mut sink = sink;
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if let Some(s) = &sink {
                    if s.write(Bytes::copy_from_slice(&buf[..n])).await.is_err() {
                        // Keep draining so the command does not block on a full pipe.
                        sink = None;
                    }
                }
            }
        }
    }
}

/// Copies the client's input into `input` until the client ends its input, then ends
/// it (for a `stdinOnce` attach that closes the container's stdin: the shim handed over
/// its only copy). Input with nowhere to go, or past a failed write, is read and
/// dropped, as upstream drops input for a container without stdin.
fn forward_input(
    rx: Option<mpsc::Receiver<Bytes>>,
    input: Option<ExecWriter>,
) -> Option<tokio::task::JoinHandle<()>> {
    let mut rx = rx?;
    Some(tokio::spawn(async move {
        if let Some(mut input) = input {
            while let Some(b) = rx.recv().await {
                if input.write_all(&b).await.is_err() {
                    break;
                }
            }
            let _ = input.shutdown().await;
        }
        while rx.recv().await.is_some() {}
    }))
}

/// Applies the client's terminal sizes when both it and a terminal are there.
fn forward_resizes(
    rx: Option<mpsc::Receiver<Bytes>>,
    resizer: Option<TerminalResizer>,
) -> Option<tokio::task::JoinHandle<()>> {
    Some(tokio::spawn(resize_loop(rx?, resizer?)))
}

#[derive(serde::Deserialize)]
struct TerminalSize {
    #[serde(rename = "Width")]
    width: u16,
    #[serde(rename = "Height")]
    height: u16,
}

/// Applies the JSON sizes (`{"Width":80,"Height":24}`, one after the other) arriving on
/// the resize channel.
async fn resize_loop(mut rx: mpsc::Receiver<Bytes>, resizer: TerminalResizer) {
    let mut buf: Vec<u8> = Vec::new();
    while let Some(chunk) = rx.recv().await {
        buf.extend_from_slice(&chunk);
        let mut consumed = 0;
        {
            let mut it = serde_json::Deserializer::from_slice(&buf).into_iter::<TerminalSize>();
            loop {
                match it.next() {
                    Some(Ok(size)) => {
                        consumed = it.byte_offset();
                        if let Err(e) = resizer.resize(size.width, size.height) {
                            tracing::debug!(error = %e, "terminal resize failed");
                        }
                    }
                    Some(Err(e)) if e.is_eof() => break,
                    Some(Err(_)) => {
                        // Garbage: drop what we have.
                        consumed = buf.len();
                        break;
                    }
                    None => {
                        consumed = buf.len();
                        break;
                    }
                }
            }
        }
        buf.drain(..consumed);
    }
}

async fn exec(
    runtime: &ContainerRuntime,
    container_id: &str,
    command: &[String],
    tty: bool,
    w: &mut Wiring,
) -> Outcome {
    let mut session = match runtime
        .exec_spawn(container_id, command, tty, w.stdin.is_some())
        .await
    {
        Ok(s) => s,
        Err(e) => {
            return Outcome::Internal(format!(
                "error executing command in container: failed to exec in container: {e}"
            ))
        }
    };
    let stdin_task = forward_input(w.stdin.take(), session.take_stdin());
    let resize_task = forward_resizes(w.resize.take(), session.resizer());
    let mut out_task = tokio::spawn(pump(session.take_stdout(), w.stdout.clone()));
    let mut err_task = tokio::spawn(pump(session.take_stderr(), w.stderr.clone()));
    let mut closed = w.closed.clone();
    let waited = tokio::select! {
        res = session.wait() => Some(res),
        _ = crate::until_closed(&mut closed) => None,
    };
    let abort_all = |tasks: [&Option<tokio::task::JoinHandle<()>>; 2]| {
        for t in tasks.into_iter().flatten() {
            t.abort();
        }
    };
    let Some(res) = waited else {
        // The client went away: the session's command is killed with it.
        drop(session);
        out_task.abort();
        err_task.abort();
        abort_all([&stdin_task, &resize_task]);
        return Outcome::Disconnected;
    };
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
        let _ = (&mut out_task).await;
        let _ = (&mut err_task).await;
    })
    .await;
    if drained.is_err() {
        out_task.abort();
        err_task.abort();
    }
    abort_all([&stdin_task, &resize_task]);
    for s in [w.stdout.take(), w.stderr.take()].into_iter().flatten() {
        s.close().await;
    }
    match res {
        Ok(0) => Outcome::Success,
        Ok(code) => Outcome::ExitCode(code, command.to_vec()),
        Err(e) => Outcome::Internal(format!(
            "error executing command in container: failed to exec in container: {e}"
        )),
    }
}

async fn attach(
    runtime: &ContainerRuntime,
    container_id: &str,
    log_path: PathBuf,
    tty: bool,
    w: &mut Wiring,
) -> Outcome {
    match runtime.attach(container_id, w.stdin.is_some()).await {
        Ok(Some(session)) => attach_live(session, w).await,
        Ok(None) => attach_log(runtime, container_id, log_path, tty, w).await,
        Err(e) => Outcome::Internal(format!("error attaching to container: {e}")),
    }
}

/// Attaches to a container started with stdin or a terminal through its shim: input and
/// resizes go to the container, output comes as the container writes it.
async fn attach_live(mut session: AttachSession, w: &mut Wiring) -> Outcome {
    let tty = session.is_tty();
    let stdin_task = forward_input(w.stdin.take(), session.take_stdin());
    let resize_task = forward_resizes(w.resize.take(), session.resizer());
    let mut closed = w.closed.clone();
    let mut outcome = Outcome::Success;
    loop {
        tokio::select! {
            m = session.next_output() => match m {
                Ok(Some((stream, data))) => {
                    let sink = if tty || stream == OutputStream::Stdout { &w.stdout } else { &w.stderr };
                    if let Some(s) = sink {
                        if s.write(Bytes::from(data)).await.is_err() {
                            outcome = Outcome::Disconnected;
                            break;
                        }
                    }
                }
                // The container is gone.
                Ok(None) | Err(_) => break,
            },
            _ = crate::until_closed(&mut closed) => {
                outcome = Outcome::Disconnected;
                break;
            }
        }
    }
    for t in [stdin_task, resize_task].into_iter().flatten() {
        t.abort();
    }
    drop(session);
    for s in [w.stdout.take(), w.stderr.take()].into_iter().flatten() {
        s.close().await;
    }
    outcome
}

/// Attaches to a container without stdin and terminal: its output is followed in the log.
async fn attach_log(
    runtime: &ContainerRuntime,
    container_id: &str,
    log_path: PathBuf,
    tty: bool,
    w: &mut Wiring,
) -> Outcome {
    // The container has no stdin: input is read and dropped.
    forward_input(w.stdin.take(), None);
    drop(w.resize.take());
    let (tx, mut rx) = mpsc::channel::<(LogStream, Bytes)>(64);
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let rt = runtime.clone();
        let id = container_id.to_string();
        let stop = stop.clone();
        tokio::task::spawn_blocking(move || {
            let opts = LogOptions {
                follow: true,
                tail_lines: Some(0),
                ..Default::default()
            };
            let running = || {
                !stop.load(Ordering::Relaxed)
                    && rt
                        .get(&id)
                        .ok()
                        .flatten()
                        .is_some_and(|i| !i.state.is_exited())
            };
            let _ = read_logs(&log_path, &opts, &running, &mut |s, b| {
                tx.blocking_send((s, Bytes::copy_from_slice(b))).is_ok()
            });
        })
    };
    let mut closed = w.closed.clone();
    let mut outcome = Outcome::Success;
    loop {
        tokio::select! {
            m = rx.recv() => match m {
                Some((stream, data)) => {
                    let sink = if tty || stream == LogStream::Stdout { &w.stdout } else { &w.stderr };
                    if let Some(s) = sink {
                        if s.write(data).await.is_err() {
                            outcome = Outcome::Disconnected;
                            break;
                        }
                    }
                }
                None => break,
            },
            _ = crate::until_closed(&mut closed) => {
                outcome = Outcome::Disconnected;
                break;
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    drop(rx);
    let _ = tokio::time::timeout(Duration::from_secs(2), reader).await;
    for s in [w.stdout.take(), w.stderr.take()].into_iter().flatten() {
        s.close().await;
    }
    outcome
}

fn spdy_version(protocol: &str) -> u8 {
    match protocol {
        "v4.channel.k8s.io" => 4,
        "v3.channel.k8s.io" => 3,
        "v2.channel.k8s.io" => 2,
        _ => 1,
    }
}

/// Serves one exec/attach session over SPDY on an upgraded connection.
pub(crate) async fn serve_spdy<T>(
    io: T,
    protocol: String,
    opts: StreamOptions,
    runtime: ContainerRuntime,
    action: Action,
) where
    T: AsyncRead + AsyncWrite + Send + 'static,
{
    let mut conn = Connection::new(io, Role::Server);
    let version = spdy_version(&protocol);
    let expected = 1
        + opts.stdin as usize
        + opts.stdout as usize
        + opts.stderr as usize
        + (opts.tty && version >= 3) as usize;
    let deadline = tokio::time::Instant::now() + STREAM_CREATION_TIMEOUT;
    let mut streams: HashMap<String, spdy::Stream> = HashMap::new();
    while streams.len() < expected {
        let s = match tokio::time::timeout_at(deadline, conn.accept()).await {
            Ok(Some(s)) => s,
            Ok(None) => return,
            Err(_) => {
                tracing::warn!("timed out waiting for client to create streams");
                conn.close(Duration::from_secs(1)).await;
                return;
            }
        };
        let ty = s
            .header("streamtype")
            .unwrap_or_default()
            .to_ascii_lowercase();
        if matches!(
            ty.as_str(),
            "error" | "stdin" | "stdout" | "stderr" | "resize"
        ) && !streams.contains_key(&ty)
        {
            let _ = s.reply().await;
            streams.insert(ty, s);
        } else {
            tracing::debug!(stream_type = %ty, "unexpected stream type");
            let _ = s.writer().reset(spdy::RST_REFUSED_STREAM).await;
        }
    }
    let mut take = |name: &str| streams.remove(name).map(spdy::Stream::into_parts);
    let error = take("error").map(|(_, w)| Sink::Spdy(w));
    let stdin = take("stdin").map(|(r, _)| r);
    let stdout = take("stdout").map(|(_, w)| Sink::Spdy(w));
    let stderr = take("stderr").map(|(_, w)| Sink::Spdy(w));
    let resize = take("resize").map(|(r, _)| r);
    let wiring = Wiring {
        stdin: if opts.stdin { stdin } else { None },
        stdout,
        stderr,
        resize: if opts.tty { resize } else { None },
        error,
        json_status: version >= 4,
        closed: conn.closed_signal(),
    };
    let mut session = tokio::spawn(run(runtime, action, opts.tty, wiring));
    let mut accepting = true;
    loop {
        tokio::select! {
            _ = &mut session => break,
            s = conn.accept(), if accepting => match s {
                Some(s) => { let _ = s.writer().reset(spdy::RST_REFUSED_STREAM).await; }
                None => accepting = false,
            },
        }
    }
    conn.close(LINGER).await;
}

/// Serves one exec/attach session over a WebSocket with the negotiated `protocol`.
pub(crate) async fn serve_ws(
    ws: Ws,
    protocol: String,
    opts: StreamOptions,
    runtime: ContainerRuntime,
    action: Action,
) {
    let codec = Codec::of(&protocol);
    let v5 = protocol == "v5.channel.k8s.io";
    let json = protocol.starts_with("v4.") || v5;
    let mut ch = Channels::new(ws, codec, &[0, 4], v5);
    // The client learns the connection is up from an empty message on the first
    // channel it reads.
    let first = if opts.stdout {
        1
    } else if opts.stderr {
        2
    } else {
        3
    };
    let _ = ch.writer(first).write(Bytes::new()).await;
    let stdin = ch.take_reader(0).filter(|_| opts.stdin);
    let resize = ch.take_reader(4).filter(|_| opts.tty);
    let wiring = Wiring {
        stdin,
        stdout: opts.stdout.then(|| Sink::Ws(ch.writer(1))),
        stderr: opts.stderr.then(|| Sink::Ws(ch.writer(2))),
        resize,
        error: Some(Sink::Ws(ch.writer(3))),
        json_status: json,
        closed: ch.closed_signal(),
    };
    run(runtime, action, opts.tty, wiring).await;
    ch.close(LINGER).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn options() {
        let o = StreamOptions::from_query(&q(&[
            ("command", "sh"),
            ("command", "-c"),
            ("command", "echo hi"),
            ("stdin", "1"),
            ("stdout", "true"),
            ("stderr", "1"),
            ("tty", "1"),
        ]))
        .unwrap();
        assert_eq!(o.command, vec!["sh", "-c", "echo hi"]);
        assert!(o.stdin && o.stdout && o.tty);
        assert!(!o.stderr, "a terminal has no stderr");
        // The names the API server uses towards the kubelet.
        let o = StreamOptions::from_query(&q(&[
            ("command", "ls"),
            ("input", "1"),
            ("output", "1"),
            ("error", "1"),
        ]))
        .unwrap();
        assert_eq!(
            o,
            StreamOptions {
                stdin: true,
                stdout: true,
                stderr: true,
                tty: false,
                command: vec!["ls".to_string()],
            }
        );
        assert!(
            !StreamOptions::from_query(&q(&[("output", "0"), ("input", "1")]))
                .unwrap()
                .stdout
        );
        assert_eq!(
            StreamOptions::from_query(&q(&[("command", "ls")])).unwrap_err(),
            "you must specify at least 1 of stdin, stdout, stderr"
        );
    }

    #[test]
    fn statuses() {
        let cmd = vec!["sh".to_string(), "-c".to_string(), "exit 3".to_string()];
        assert_eq!(
            String::from_utf8(Outcome::Success.error_channel_bytes(true).unwrap()).unwrap(),
            r#"{"metadata":{},"status":"Success"}"#
        );
        assert_eq!(Outcome::Success.error_channel_bytes(false), None);
        assert_eq!(
            String::from_utf8(
                Outcome::ExitCode(3, cmd.clone())
                    .error_channel_bytes(true)
                    .unwrap()
            )
            .unwrap(),
            r#"{"metadata":{},"status":"Failure","message":"command terminated with non-zero exit code: error executing command [sh -c exit 3], exit code 3","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"3"}]}}"#
        );
        assert_eq!(
            String::from_utf8(Outcome::ExitCode(3, cmd).error_channel_bytes(false).unwrap())
                .unwrap(),
            "command terminated with non-zero exit code: error executing command [sh -c exit 3], exit code 3"
        );
        assert_eq!(
            String::from_utf8(
                Outcome::Internal("boom".into())
                    .error_channel_bytes(true)
                    .unwrap()
            )
            .unwrap(),
            r#"{"metadata":{},"status":"Failure","message":"Internal error occurred: boom","reason":"InternalError","details":{"causes":[{"message":"boom"}]},"code":500}"#
        );
        assert_eq!(Outcome::Disconnected.error_channel_bytes(true), None);
    }
}
