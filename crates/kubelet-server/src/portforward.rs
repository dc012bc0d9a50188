//! Port forwarding (`/portForward/...`): over SPDY (protocol `portforward.k8s.io`, each
//! forwarded connection a pair of streams — `streamType` `error` and `data` — with the
//! same `requestID` and a `port` header; also tunnelled in WebSocket binary messages as
//! kubectl 1.30+ does with `SPDY/3.1+portforward.k8s.io`) and over plain WebSocket
//! (`v4.channel.k8s.io`: the `port` query parameters give one data/error channel pair
//! each, both first carrying the port as two little-endian bytes).
//!
//! Each connection goes to `localhost:<port>` (127.0.0.1, then ::1) inside the pod's
//! network namespace: a short-lived thread enters the namespace, connects, and hands the
//! socket back (a socket keeps the namespace it was created in).

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot, watch};

use crate::spdy::{self, Connection, Role};
use crate::ws::{ChannelWriter, Channels, Codec, Ws};

/// The SPDY protocol of port forwarding.
pub const SPDY_PROTOCOL: &str = "portforward.k8s.io";
/// The WebSocket subprotocol kubectl uses to tunnel SPDY port forwarding.
pub const TUNNEL_PROTOCOL: &str = "SPDY/3.1+portforward.k8s.io";
/// WebSocket protocols (tunnelled SPDY first, then channel protocols).
pub const WS_PROTOCOLS: &[&str] = &[
    TUNNEL_PROTOCOL,
    "v4.channel.k8s.io",
    "v4.base64.channel.k8s.io",
    "",
];

/// How long both streams of a pair have to arrive.
const PAIR_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a connection attempt inside the pod may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where forwarded connections go.
#[derive(Clone, Debug)]
pub struct Target {
    /// The pod's network namespace file; `None` for a host-network pod.
    pub netns: Option<PathBuf>,
    /// How the pod is named in error messages (upstream shows the sandbox id).
    pub pod_id: String,
}

/// Go's text for a socket error (`connection refused`, `i/o timeout`, ...).
fn go_error_text(e: &io::Error) -> String {
    if e.kind() == io::ErrorKind::TimedOut && e.raw_os_error().is_none() {
        return "i/o timeout".to_string();
    }
    match e.raw_os_error() {
        Some(code) => {
            let s = io::Error::from_raw_os_error(code).to_string();
            let s = s.split(" (os error").next().unwrap_or(&s).to_string();
            let mut c = s.chars();
            match c.next() {
                Some(f) => f.to_lowercase().collect::<String>() + c.as_str(),
                None => s,
            }
        }
        None => e.to_string(),
    }
}

/// Connects to `localhost:port` inside the target's network namespace. The error is the
/// message upstream writes to the error stream.
pub async fn connect(target: &Target, port: u16) -> Result<tokio::net::TcpStream, String> {
    let (tx, rx) = oneshot::channel();
    let netns = target.netns.clone();
    let spawned = std::thread::Builder::new()
        .name("portforward-dial".into())
        .spawn(move || {
            let res = (|| {
                if let Some(ns) = &netns {
                    let f = File::open(ns).map_err(|e| format!("opening {}: {e}", ns.display()))?;
                    nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET)
                        .map_err(|e| format!("entering {}: {e}", ns.display()))?;
                }
                let v4 = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
                let v6 = SocketAddr::from((Ipv6Addr::LOCALHOST, port));
                match std::net::TcpStream::connect_timeout(&v4, CONNECT_TIMEOUT) {
                    Ok(s) => Ok(s),
                    Err(e4) => match std::net::TcpStream::connect_timeout(&v6, CONNECT_TIMEOUT) {
                        Ok(s) => Ok(s),
                        Err(e6) => Err(format!(
                            "IPv4: dial tcp4 {v4}: connect: {} IPv6 dial tcp6 {v6}: connect: {} ",
                            go_error_text(&e4),
                            go_error_text(&e6)
                        )),
                    },
                }
            })();
            let _ = tx.send(res);
        });
    let ns_name = target
        .netns
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "host".to_string());
    let wrap = |detail: String| {
        format!(
            "error forwarding port {port} to pod {}, uid : failed to execute portforward in network namespace \"{ns_name}\": failed to connect to localhost:{port} inside namespace \"{}\", {detail}",
            target.pod_id, target.pod_id
        )
    };
    if let Err(e) = spawned {
        return Err(wrap(format!("starting a thread: {e}")));
    }
    let std_stream = match rx.await {
        Ok(Ok(s)) => s,
        Ok(Err(detail)) => return Err(wrap(detail)),
        Err(_) => return Err(wrap("the connecting thread failed".into())),
    };
    std_stream
        .set_nonblocking(true)
        .and_then(|()| tokio::net::TcpStream::from_std(std_stream))
        .map_err(|e| wrap(e.to_string()))
}

/// Copies between a pod connection and a client stream: client data to the pod (then
/// half-close towards the pod), pod data to the client until the pod closes (or the
/// client connection goes away).
async fn splice<F, Fut>(
    tcp: tokio::net::TcpStream,
    mut from_client: mpsc::Receiver<Bytes>,
    mut to_client: F,
    mut closed: watch::Receiver<bool>,
) where
    F: FnMut(Bytes) -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let (mut r, mut w) = tcp.into_split();
    let up = tokio::spawn(async move {
        while let Some(b) = from_client.recv().await {
            if w.write_all(&b).await.is_err() {
                return;
            }
        }
        let _ = w.shutdown().await;
    });
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        tokio::select! {
            n = r.read(&mut buf) => match n {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if !to_client(Bytes::copy_from_slice(&buf[..n])).await {
                        break;
                    }
                }
            },
            _ = crate::until_closed(&mut closed) => break,
        }
    }
    up.abort();
}

struct Pair {
    data: Option<spdy::Stream>,
    error: Option<spdy::Stream>,
    since: Instant,
}

fn validate(s: &spdy::Stream) -> Result<(), String> {
    let port = s.header("port").unwrap_or_default();
    if port.is_empty() {
        return Err("\"port\" header is required".to_string());
    }
    match port.parse::<u16>() {
        Ok(0) => return Err(format!("port {port:?} must be > 0")),
        Ok(_) => {}
        Err(e) => return Err(format!("unable to parse {port:?} as a port: {e}")),
    }
    match s.header("streamtype").unwrap_or_default() {
        "" => Err("\"streamType\" header is required".to_string()),
        "error" | "data" => Ok(()),
        other => Err(format!("invalid stream type {other:?}")),
    }
}

/// The pair a stream belongs to (`requestID`, or derived from the stream id for clients
/// that do not send one: the error stream is opened just before its data stream).
fn request_id(s: &spdy::Stream) -> String {
    match s.header("requestid") {
        Some(id) if !id.is_empty() => id.to_string(),
        _ => match s.header("streamtype") {
            Some("data") => s.id().saturating_sub(2).to_string(),
            _ => s.id().to_string(),
        },
    }
}

async fn forward_pair(
    data: spdy::Stream,
    error: spdy::Stream,
    target: Arc<Target>,
    closed: watch::Receiver<bool>,
) {
    let port: u16 = data
        .header("port")
        .and_then(|p| p.parse().ok())
        .unwrap_or_default();
    let (from_client, data_w) = data.into_parts();
    let (_, err_w) = error.into_parts();
    match connect(&target, port).await {
        Err(msg) => {
            tracing::debug!(%msg, "port-forward connection failed");
            let _ = err_w.write(msg.as_bytes()).await;
        }
        Ok(tcp) => {
            let w = data_w.clone();
            splice(
                tcp,
                from_client,
                move |b| {
                    let w = w.clone();
                    async move { w.write_bytes(b).await.is_ok() }
                },
                closed,
            )
            .await;
        }
    }
    let _ = data_w.close().await;
    let _ = err_w.close().await;
}

/// Serves SPDY port forwarding on an upgraded (or tunnelled) connection.
pub(crate) async fn serve_spdy<T>(io: T, target: Arc<Target>)
where
    T: AsyncRead + AsyncWrite + Send + 'static,
{
    let mut conn = Connection::new(io, Role::Server);
    let closed = conn.closed_signal();
    let mut pairs: HashMap<String, Pair> = HashMap::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        let s = tokio::select! {
            s = conn.accept() => match s {
                Some(s) => s,
                None => break,
            },
            _ = tick.tick() => {
                let expired: Vec<String> = pairs
                    .iter()
                    .filter(|(_, p)| p.since.elapsed() > PAIR_TIMEOUT)
                    .map(|(k, _)| k.clone())
                    .collect();
                for id in expired {
                    if let Some(p) = pairs.remove(&id) {
                        if let Some(e) = &p.error {
                            let _ = e.writer().write(b"timed out waiting for streams").await;
                            let _ = e.writer().close().await;
                        }
                        if let Some(d) = &p.data {
                            let _ = d.writer().reset(spdy::RST_CANCEL).await;
                        }
                    }
                }
                continue;
            }
        };
        if let Err(msg) = validate(&s) {
            tracing::debug!(%msg, "rejecting port-forward stream");
            let _ = s.writer().reset(spdy::RST_PROTOCOL_ERROR).await;
            continue;
        }
        let _ = s.reply().await;
        let id = request_id(&s);
        let pair = pairs.entry(id.clone()).or_insert_with(|| Pair {
            data: None,
            error: None,
            since: Instant::now(),
        });
        let is_error = s.header("streamtype") == Some("error");
        let slot = if is_error {
            &mut pair.error
        } else {
            &mut pair.data
        };
        if slot.is_some() {
            let msg = format!(
                "error processing stream for request {id}: {} stream already assigned",
                if is_error { "error" } else { "data" }
            );
            if let Some(e) = &pair.error {
                let _ = e.writer().write(msg.as_bytes()).await;
            }
            let _ = s.writer().reset(spdy::RST_PROTOCOL_ERROR).await;
            continue;
        }
        *slot = Some(s);
        if pair.data.is_some() && pair.error.is_some() {
            if let Some(Pair {
                data: Some(d),
                error: Some(e),
                ..
            }) = pairs.remove(&id)
            {
                tasks.spawn(forward_pair(d, e, target.clone(), closed.clone()));
            }
        }
    }
    // The client is gone: its streams have ended, so the forwards finish.
    while tokio::time::timeout(Duration::from_secs(5), tasks.join_next())
        .await
        .ok()
        .flatten()
        .is_some()
    {}
    tasks.abort_all();
    conn.close(Duration::from_secs(1)).await;
}

/// Reads the `port` query parameters (repeated or comma-separated); the error is the
/// 400 response body.
pub fn ports_from_query(query: &[(String, String)]) -> Result<Vec<u16>, String> {
    let values: Vec<&str> = query
        .iter()
        .filter(|(k, _)| k == "port")
        .map(|(_, v)| v.as_str())
        .collect();
    if values.is_empty() {
        return Err("query parameter \"port\" is required".to_string());
    }
    let mut ports = Vec::new();
    for v in values {
        if v.is_empty() {
            return Err("query parameter \"port\" cannot be empty".to_string());
        }
        for p in v.split(',') {
            let port: u16 = p
                .parse()
                .map_err(|e| format!("unable to parse {p:?} as a port: {e}"))?;
            if port < 1 {
                return Err(format!("port {p:?} must be > 0"));
            }
            ports.push(port);
        }
    }
    Ok(ports)
}

/// Serves WebSocket port forwarding (channel protocols) for `ports`.
pub(crate) async fn serve_ws(ws: Ws, protocol: String, ports: Vec<u16>, target: Arc<Target>) {
    let codec = Codec::of(&protocol);
    let readable: Vec<u8> = (0..ports.len()).map(|i| (2 * i) as u8).collect();
    let mut ch = Channels::new(ws, codec, &readable, false);
    let closed = ch.closed_signal();
    let mut tasks = tokio::task::JoinSet::new();
    for (i, &port) in ports.iter().enumerate() {
        let (data_ch, err_ch) = ((2 * i) as u8, (2 * i + 1) as u8);
        let data_w = ch.writer(data_ch);
        let err_w = ch.writer(err_ch);
        let prefix = Bytes::copy_from_slice(&port.to_le_bytes());
        let _ = data_w.write(prefix.clone()).await;
        let _ = err_w.write(prefix).await;
        let Some(from_client) = ch.take_reader(data_ch) else {
            continue;
        };
        let target = target.clone();
        let closed = closed.clone();
        tasks.spawn(forward_channel(
            port,
            from_client,
            data_w,
            err_w,
            target,
            closed,
        ));
    }
    while tasks.join_next().await.is_some() {}
    ch.close(Duration::from_secs(2)).await;
}

async fn forward_channel(
    port: u16,
    from_client: mpsc::Receiver<Bytes>,
    data_w: ChannelWriter,
    err_w: ChannelWriter,
    target: Arc<Target>,
    closed: watch::Receiver<bool>,
) {
    match connect(&target, port).await {
        Err(msg) => {
            let _ = err_w.write(Bytes::from(msg)).await;
        }
        Ok(tcp) => {
            splice(
                tcp,
                from_client,
                move |b| {
                    let w = data_w.clone();
                    async move { w.write(b).await.is_ok() }
                },
                closed,
            )
            .await;
        }
    }
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
    fn port_parameters() {
        assert_eq!(
            ports_from_query(&q(&[("port", "80"), ("port", "81,82")])).unwrap(),
            vec![80, 81, 82]
        );
        assert_eq!(
            ports_from_query(&[]).unwrap_err(),
            "query parameter \"port\" is required"
        );
        assert_eq!(
            ports_from_query(&q(&[("port", "0")])).unwrap_err(),
            "port \"0\" must be > 0"
        );
        assert!(ports_from_query(&q(&[("port", "x")]))
            .unwrap_err()
            .starts_with("unable to parse \"x\" as a port"));
    }

    #[test]
    fn socket_error_texts() {
        assert_eq!(
            go_error_text(&io::Error::from_raw_os_error(libc::ECONNREFUSED)),
            "connection refused"
        );
        assert_eq!(
            go_error_text(&io::Error::from(io::ErrorKind::TimedOut)),
            "i/o timeout"
        );
    }

    #[tokio::test]
    async fn host_network_connect() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let target = Target {
            netns: None,
            pod_id: "p".into(),
        };
        connect(&target, port).await.unwrap();
        drop(l);
        let err = connect(&target, port).await.unwrap_err();
        assert_eq!(
            err,
            format!(
                "error forwarding port {port} to pod p, uid : failed to execute portforward in network namespace \"host\": failed to connect to localhost:{port} inside namespace \"p\", IPv4: dial tcp4 127.0.0.1:{port}: connect: connection refused IPv6 dial tcp6 [::1]:{port}: connect: connection refused "
            )
        );
    }
}
