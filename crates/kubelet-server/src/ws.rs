//! WebSocket side of the streaming endpoints: the upgrade handshake with subprotocol
//! negotiation (client order wins, as in Kubernetes' `wsstream`), the channel
//! multiplexing of the `channel.k8s.io` family (each binary message starts with its
//! channel number; the `base64.` variants use text messages with an ASCII digit and
//! base64 payload; `v5.channel.k8s.io` adds the close signal: channel 255 followed by the
//! number of the channel the peer finished writing), and a byte-stream view of a
//! WebSocket for SPDY tunnelled in binary messages (`SPDY/3.1+portforward.k8s.io`).

use std::collections::HashMap;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// The channel number that announces a half-close (`v5.channel.k8s.io`).
pub const CLOSE_CHANNEL: u8 = 255;

/// A WebSocket over an upgraded HTTP connection.
pub type Ws = WebSocketStream<TokioIo<Upgraded>>;

/// Whether a request asks for a WebSocket upgrade.
pub fn is_websocket_request<B>(req: &http::Request<B>) -> bool {
    let has = |name: http::header::HeaderName, token: &str| {
        req.headers().get_all(name).iter().any(|v| {
            v.to_str()
                .map(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
                .unwrap_or(false)
        })
    };
    has(http::header::CONNECTION, "upgrade") && has(http::header::UPGRADE, "websocket")
}

/// The subprotocols a client offers (`Sec-WebSocket-Protocol`, in order).
pub fn offered_protocols<B>(req: &http::Request<B>) -> Vec<String> {
    req.headers()
        .get_all(http::header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|s| s.split(','))
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// Picks the first offered protocol the server supports; an empty offer selects `""`
/// when `""` is supported. `None` when nothing matches.
pub fn negotiate(offered: &[String], supported: &[&str]) -> Option<String> {
    if offered.is_empty() {
        return supported.contains(&"").then(String::new);
    }
    offered
        .iter()
        .find(|p| supported.contains(&p.as_str()))
        .cloned()
}

/// The 101 response accepting a WebSocket upgrade with `protocol` (none when empty), or
/// `None` when the request lacks a key.
pub fn accept_response<B>(
    req: &http::Request<B>,
    protocol: &str,
) -> Option<http::response::Builder> {
    let key = req.headers().get(http::header::SEC_WEBSOCKET_KEY)?;
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    let mut b = http::Response::builder()
        .status(http::StatusCode::SWITCHING_PROTOCOLS)
        .header(http::header::CONNECTION, "Upgrade")
        .header(http::header::UPGRADE, "websocket")
        .header(http::header::SEC_WEBSOCKET_ACCEPT, accept);
    if !protocol.is_empty() {
        b = b.header(http::header::SEC_WEBSOCKET_PROTOCOL, protocol);
    }
    Some(b)
}

/// Wraps an upgraded connection as a server-side WebSocket.
pub async fn from_upgraded(upgraded: Upgraded) -> Ws {
    let mut config = WebSocketConfig::default();
    config.max_message_size = Some(64 << 20);
    WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config)).await
}

/// How channel messages are framed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codec {
    /// Binary messages: channel byte, then data.
    Binary,
    /// Text messages: channel as an ASCII digit, then base64 data.
    Base64,
}

impl Codec {
    /// The framing of a `channel.k8s.io` family protocol name.
    pub fn of(protocol: &str) -> Codec {
        if protocol.contains("base64.") {
            Codec::Base64
        } else {
            Codec::Binary
        }
    }

    fn encode(self, channel: u8, data: &[u8]) -> Message {
        match self {
            Codec::Binary => {
                let mut v = Vec::with_capacity(data.len() + 1);
                v.push(channel);
                v.extend_from_slice(data);
                Message::Binary(v.into())
            }
            Codec::Base64 => {
                let mut s = String::with_capacity(data.len() * 4 / 3 + 4);
                s.push((b'0' + channel) as char);
                base64::engine::general_purpose::STANDARD.encode_string(data, &mut s);
                Message::Text(s.into())
            }
        }
    }

    fn decode(self, msg: Message) -> Option<(u8, Bytes)> {
        match (self, msg) {
            (Codec::Binary, Message::Binary(b)) if !b.is_empty() => Some((b[0], b.slice(1..))),
            (Codec::Base64, Message::Text(t)) => {
                let s = t.as_str();
                let ch = s.as_bytes().first()?.checked_sub(b'0')?;
                let data = base64::engine::general_purpose::STANDARD
                    .decode(&s[1..])
                    .ok()?;
                Some((ch, Bytes::from(data)))
            }
            _ => None,
        }
    }
}

enum WsOut {
    Data(u8, Bytes),
    Close,
}

/// A multiplexed channel connection over a WebSocket: incoming data per channel, one
/// ordered writer for all channels.
pub struct Channels {
    out: mpsc::Sender<WsOut>,
    inbound: HashMap<u8, mpsc::Receiver<Bytes>>,
    closed: watch::Receiver<bool>,
    reader: tokio::task::JoinHandle<()>,
    writer: tokio::task::JoinHandle<()>,
}

impl Channels {
    /// Starts the reader and writer tasks. Incoming data is delivered for the channels
    /// in `readable` (others are dropped); `close_signal` enables the v5 half-close.
    pub fn new(ws: Ws, codec: Codec, readable: &[u8], close_signal: bool) -> Channels {
        let (mut sink, mut stream) = ws.split();
        let (out_tx, mut out_rx) = mpsc::channel::<WsOut>(256);
        let mut senders = HashMap::new();
        let mut inbound = HashMap::new();
        for &ch in readable {
            let (tx, rx) = mpsc::channel(64);
            senders.insert(ch, tx);
            inbound.insert(ch, rx);
        }
        let (closed_tx, closed_rx) = watch::channel(false);
        let reader = tokio::spawn(async move {
            while let Some(msg) = stream.next().await {
                let msg = match msg {
                    Ok(Message::Close(_)) | Err(_) => break,
                    Ok(m) => m,
                };
                let Some((ch, data)) = codec.decode(msg) else {
                    continue;
                };
                if close_signal && ch == CLOSE_CHANNEL {
                    if let Some(&target) = data.first() {
                        senders.remove(&target);
                    }
                    continue;
                }
                let tx = senders.get(&ch).cloned();
                if let Some(tx) = tx {
                    if !data.is_empty() && tx.send(data).await.is_err() {
                        senders.remove(&ch);
                    }
                }
            }
            drop(senders);
            let _ = closed_tx.send(true);
        });
        let writer = tokio::spawn(async move {
            while let Some(m) = out_rx.recv().await {
                let res = match m {
                    WsOut::Data(ch, data) => sink.send(codec.encode(ch, &data)).await,
                    WsOut::Close => {
                        let frame = CloseFrame {
                            code: CloseCode::Normal,
                            reason: "".into(),
                        };
                        let _ = sink.send(Message::Close(Some(frame))).await;
                        let _ = sink.flush().await;
                        break;
                    }
                };
                if res.is_err() {
                    break;
                }
            }
        });
        Channels {
            out: out_tx,
            inbound,
            closed: closed_rx,
            reader,
            writer,
        }
    }

    /// The incoming data of `channel` (once).
    pub fn take_reader(&mut self, channel: u8) -> Option<mpsc::Receiver<Bytes>> {
        self.inbound.remove(&channel)
    }

    /// A writer for `channel`.
    pub fn writer(&self, channel: u8) -> ChannelWriter {
        ChannelWriter {
            channel,
            out: self.out.clone(),
        }
    }

    /// A signal that turns true when the peer closed the connection.
    pub fn closed_signal(&self) -> watch::Receiver<bool> {
        self.closed.clone()
    }

    /// Sends a close frame and waits up to `linger` for the peer's.
    pub async fn close(self, linger: Duration) {
        let _ = self.out.send(WsOut::Close).await;
        let mut closed = self.closed.clone();
        let _ = tokio::time::timeout(linger, closed.wait_for(|c| *c)).await;
        let _ = tokio::time::timeout(Duration::from_millis(200), self.writer).await;
        self.reader.abort();
    }
}

/// Writes to one channel of [`Channels`]. Cheap to clone.
#[derive(Clone)]
pub struct ChannelWriter {
    channel: u8,
    out: mpsc::Sender<WsOut>,
}

impl ChannelWriter {
    /// Sends one message on the channel (an empty one is sent as just the channel).
    pub async fn write(&self, data: Bytes) -> Result<(), crate::ServerError> {
        self.out
            .send(WsOut::Data(self.channel, data))
            .await
            .map_err(|_| crate::ServerError::ConnectionClosed)
    }
}

/// A byte stream carried in a WebSocket's binary messages (for SPDY tunnelled over a
/// WebSocket): bytes written to the returned stream go out as binary messages, binary
/// messages received come out of it; a close in either direction ends it.
pub fn byte_stream(ws: Ws) -> DuplexStream {
    let (ours, theirs) = tokio::io::duplex(256 * 1024);
    let (mut from_app, mut to_app) = tokio::io::split(theirs);
    let (mut sink, mut stream) = ws.split();
    tokio::spawn(async move {
        while let Some(Ok(msg)) = stream.next().await {
            let d = match msg {
                Message::Binary(d) => d,
                Message::Close(_) => break,
                _ => continue,
            };
            if to_app.write_all(&d).await.is_err() {
                break;
            }
        }
        let _ = to_app.shutdown().await;
    });
    tokio::spawn(async move {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match from_app.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if sink
                        .send(Message::Binary(Bytes::copy_from_slice(&buf[..n])))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            }
        }
        let frame = CloseFrame {
            code: CloseCode::Normal,
            reason: "".into(),
        };
        let _ = sink.send(Message::Close(Some(frame))).await;
        let _ = sink.flush().await;
    });
    ours
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation_follows_client_order() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let supported = ["v5.channel.k8s.io", "v4.channel.k8s.io", ""];
        assert_eq!(
            negotiate(&s(&["v4.channel.k8s.io", "v5.channel.k8s.io"]), &supported),
            Some("v4.channel.k8s.io".to_string())
        );
        assert_eq!(negotiate(&[], &supported), Some(String::new()));
        assert_eq!(negotiate(&[], &["v4.channel.k8s.io"]), None);
        assert_eq!(negotiate(&s(&["x"]), &supported), None);
    }

    #[test]
    fn codecs() {
        let m = Codec::Binary.encode(1, b"hi");
        assert_eq!(m, Message::Binary(Bytes::from_static(&[1, b'h', b'i'])));
        assert_eq!(
            Codec::Binary.decode(m),
            Some((1, Bytes::from_static(b"hi")))
        );
        let m = Codec::Base64.encode(2, b"hi");
        assert_eq!(m, Message::Text("2aGk=".into()));
        assert_eq!(
            Codec::Base64.decode(m),
            Some((2, Bytes::from_static(b"hi")))
        );
        assert_eq!(Codec::of("v4.base64.channel.k8s.io"), Codec::Base64);
        assert_eq!(Codec::of("v5.channel.k8s.io"), Codec::Binary);
    }

    #[test]
    fn upgrade_detection() {
        let req = http::Request::builder()
            .header("Connection", "keep-alive, Upgrade")
            .header("Upgrade", "websocket")
            .header(
                "Sec-WebSocket-Protocol",
                "v5.channel.k8s.io, v4.channel.k8s.io",
            )
            .header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
            .body(())
            .unwrap();
        assert!(is_websocket_request(&req));
        assert_eq!(
            offered_protocols(&req),
            vec!["v5.channel.k8s.io", "v4.channel.k8s.io"]
        );
        let resp = accept_response(&req, "v5.channel.k8s.io")
            .unwrap()
            .body(())
            .unwrap();
        assert_eq!(resp.status(), 101);
        assert_eq!(
            resp.headers()["sec-websocket-accept"],
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
        assert_eq!(
            resp.headers()["sec-websocket-protocol"],
            "v5.channel.k8s.io"
        );
    }
}
