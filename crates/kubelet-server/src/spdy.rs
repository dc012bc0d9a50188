//! SPDY/3.1 as Kubernetes' streaming protocols use it (the framing of Go's
//! `spdystream`): frames, the zlib header-block compression with the SPDY/3 dictionary
//! (one compression context per direction for the whole connection, each block ending
//! with a sync flush), and [`Connection`], a multiplexed connection over any byte stream
//! whose streams carry kubectl's exec/attach/port-forward channels.
//!
//! Flow control is not enforced in either direction: `spdystream` ignores
//! `WINDOW_UPDATE` and `SETTINGS`, so neither is sent and received ones are dropped;
//! back-pressure comes from the transport (a stream whose consumer is slow stops the
//! connection's reader, as with `spdystream`).

use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

/// The protocol version carried in control frames.
pub const VERSION: u16 = 3;
/// `FLAG_FIN`: the sender is done with the stream (data frames and SYN frames).
pub const FLAG_FIN: u8 = 0x01;
/// `FLAG_UNIDIRECTIONAL` on SYN_STREAM: the receiver may not send on the stream.
pub const FLAG_UNIDIRECTIONAL: u8 = 0x02;
/// RST_STREAM status: protocol error.
pub const RST_PROTOCOL_ERROR: u32 = 1;
/// RST_STREAM status: the stream was refused.
pub const RST_REFUSED_STREAM: u32 = 3;
/// RST_STREAM status: cancelled.
pub const RST_CANCEL: u32 = 5;
/// RST_STREAM status: internal error.
pub const RST_INTERNAL_ERROR: u32 = 6;

/// Largest data frame payload sent.
const MAX_DATA_CHUNK: usize = 32 * 1024;
/// Largest decompressed header block accepted.
const MAX_HEADER_BLOCK: usize = 1 << 20;
/// Data frames buffered per stream before the connection's reader waits.
const STREAM_BUFFER: usize = 64;

/// Header names (SPDY/3 compression dictionary, first part: each preceded by its length
/// as a 32-bit big-endian number).
const DICTIONARY_WORDS: &[&str] = &[
    "options",
    "head",
    "post",
    "put",
    "delete",
    "trace",
    "accept",
    "accept-charset",
    "accept-encoding",
    "accept-language",
    "accept-ranges",
    "age",
    "allow",
    "authorization",
    "cache-control",
    "connection",
    "content-base",
    "content-encoding",
    "content-language",
    "content-length",
    "content-location",
    "content-md5",
    "content-range",
    "content-type",
    "date",
    "etag",
    "expect",
    "expires",
    "from",
    "host",
    "if-match",
    "if-modified-since",
    "if-none-match",
    "if-range",
    "if-unmodified-since",
    "last-modified",
    "location",
    "max-forwards",
    "pragma",
    "proxy-authenticate",
    "proxy-authorization",
    "range",
    "referer",
    "retry-after",
    "server",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "user-agent",
    "vary",
    "via",
    "warning",
    "www-authenticate",
    "method",
    "get",
    "status",
    "200 OK",
    "version",
    "HTTP/1.1",
    "url",
    "public",
    "set-cookie",
    "keep-alive",
    "origin",
];

/// Common values (SPDY/3 compression dictionary, second part, verbatim bytes).
const DICTIONARY_TAIL: &str = concat!(
    "100101201202205206300302303304305306307",
    "402405406407408409410411412413414415416417",
    "502504505",
    "203 Non-Authoritative Information",
    "204 No Content",
    "301 Moved Permanently",
    "400 Bad Request",
    "401 Unauthorized",
    "403 Forbidden",
    "404 Not Found",
    "500 Internal Server Error",
    "501 Not Implemented",
    "503 Service Unavailable",
    "Jan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec ",
    "00:00:00 ",
    "Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMT",
    "chunked,text/html,image/png,image/jpg,image/gif,",
    "application/xml,application/xhtml+xml,text/plain,text/javascript,",
    "publicprivatemax-age=gzip,deflate,sdch",
    "charset=utf-8charset=iso-8859-1,utf-,*,enq=0.",
);

/// The SPDY/3 zlib dictionary (1423 bytes).
pub fn dictionary() -> &'static [u8] {
    static DICT: OnceLock<Vec<u8>> = OnceLock::new();
    DICT.get_or_init(|| {
        let mut d = Vec::with_capacity(1423);
        for w in DICTIONARY_WORDS {
            d.extend_from_slice(&(w.len() as u32).to_be_bytes());
            d.extend_from_slice(w.as_bytes());
        }
        d.extend_from_slice(DICTIONARY_TAIL.as_bytes());
        d
    })
}

/// Errors of the SPDY layer.
#[derive(Debug, thiserror::Error)]
pub enum SpdyError {
    /// Reading or writing the transport failed.
    #[error("spdy: {0}")]
    Io(#[from] io::Error),
    /// A control frame carried another protocol version.
    #[error("spdy: unsupported protocol version {0}")]
    Version(u16),
    /// A frame was malformed.
    #[error("spdy: invalid {0} frame")]
    Invalid(&'static str),
    /// A header block could not be (de)compressed or parsed.
    #[error("spdy: header block: {0}")]
    Headers(String),
    /// The connection is closed.
    #[error("spdy: connection closed")]
    Closed,
    /// The peer reset the stream.
    #[error("spdy: stream {0} was reset")]
    Reset(u32),
    /// The peer did not answer a SYN_STREAM in time.
    #[error("spdy: timed out waiting for the reply to stream {0}")]
    ReplyTimeout(u32),
}

/// Name/value pairs of a header block (names lower-case on the wire).
pub type Headers = Vec<(String, String)>;

/// One SPDY frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    /// Opens a stream.
    SynStream {
        /// The new stream (odd when opened by the client).
        stream_id: u32,
        /// The stream this one is associated with (0 for none).
        associated_to: u32,
        /// Priority, 0 (highest) to 7.
        priority: u8,
        /// [`FLAG_FIN`] and/or [`FLAG_UNIDIRECTIONAL`].
        flags: u8,
        /// The stream's headers.
        headers: Headers,
    },
    /// Accepts a stream.
    SynReply {
        /// The stream.
        stream_id: u32,
        /// [`FLAG_FIN`].
        flags: u8,
        /// Reply headers.
        headers: Headers,
    },
    /// Aborts a stream.
    RstStream {
        /// The stream.
        stream_id: u32,
        /// Why (e.g. [`RST_CANCEL`]).
        status: u32,
    },
    /// Connection settings (ignored).
    Settings {
        /// Frame flags.
        flags: u8,
        /// (flags, id, value) entries.
        entries: Vec<(u8, u32, u32)>,
    },
    /// Liveness check, echoed by the side that did not send it.
    Ping {
        /// Odd when sent by the client, even when sent by the server.
        id: u32,
    },
    /// The sender accepts no new streams.
    GoAway {
        /// The last stream the sender accepted.
        last_good_stream_id: u32,
        /// 0 for a normal shutdown.
        status: u32,
    },
    /// More headers for a stream.
    Headers {
        /// The stream.
        stream_id: u32,
        /// [`FLAG_FIN`].
        flags: u8,
        /// The headers.
        headers: Headers,
    },
    /// Flow-control credit (ignored).
    WindowUpdate {
        /// The stream (0 for the connection).
        stream_id: u32,
        /// Credit in bytes.
        delta: u32,
    },
    /// Stream data.
    Data {
        /// The stream.
        stream_id: u32,
        /// [`FLAG_FIN`].
        flags: u8,
        /// Payload.
        data: Bytes,
    },
    /// A control frame of a type this implementation skips.
    Unknown {
        /// The frame type.
        frame_type: u16,
    },
}

/// Compresses outgoing header blocks (one zlib stream per connection direction).
pub struct HeaderCompressor {
    z: Compress,
    primed: bool,
}

impl Default for HeaderCompressor {
    fn default() -> Self {
        Self::new()
    }
}

impl HeaderCompressor {
    /// A fresh compression context.
    pub fn new() -> Self {
        HeaderCompressor {
            z: Compress::new(Compression::default(), true),
            primed: false,
        }
    }

    /// Serializes and compresses one header block (names lower-cased).
    pub fn compress(&mut self, headers: &[(String, String)]) -> Result<Vec<u8>, SpdyError> {
        if !self.primed {
            self.z
                .set_dictionary(dictionary())
                .map_err(|e| SpdyError::Headers(e.to_string()))?;
            self.primed = true;
        }
        let mut block = Vec::new();
        block.extend_from_slice(&(headers.len() as u32).to_be_bytes());
        for (name, value) in headers {
            let name = name.to_ascii_lowercase();
            block.extend_from_slice(&(name.len() as u32).to_be_bytes());
            block.extend_from_slice(name.as_bytes());
            block.extend_from_slice(&(value.len() as u32).to_be_bytes());
            block.extend_from_slice(value.as_bytes());
        }
        let mut out = Vec::with_capacity(block.len() + 64);
        let mut input: &[u8] = &block;
        loop {
            if out.capacity() - out.len() < 64 {
                out.reserve(256.max(input.len()));
            }
            let before = self.z.total_in();
            self.z
                .compress_vec(input, &mut out, FlushCompress::Sync)
                .map_err(|e| SpdyError::Headers(e.to_string()))?;
            let used = (self.z.total_in() - before) as usize;
            input = &input[used..];
            if input.is_empty() && out.len() < out.capacity() {
                return Ok(out);
            }
        }
    }
}

/// Decompresses incoming header blocks.
pub struct HeaderDecompressor {
    z: Decompress,
}

impl Default for HeaderDecompressor {
    fn default() -> Self {
        Self::new()
    }
}

impl HeaderDecompressor {
    /// A fresh decompression context.
    pub fn new() -> Self {
        HeaderDecompressor {
            z: Decompress::new(true),
        }
    }

    /// Decompresses and parses one header block.
    pub fn decompress(&mut self, data: &[u8]) -> Result<Headers, SpdyError> {
        let hdr = |m: String| SpdyError::Headers(m);
        let mut out: Vec<u8> = Vec::with_capacity(data.len() * 4 + 256);
        let mut input = data;
        loop {
            if out.len() == out.capacity() {
                if out.len() >= MAX_HEADER_BLOCK {
                    return Err(hdr("header block too large".into()));
                }
                out.reserve(4096);
            }
            let (in_before, out_before) = (self.z.total_in(), out.len());
            match self
                .z
                .decompress_vec(input, &mut out, FlushDecompress::Sync)
            {
                Ok(_) => {}
                Err(e) if e.needs_dictionary().is_some() => {
                    self.z
                        .set_dictionary(dictionary())
                        .map_err(|e| hdr(e.to_string()))?;
                }
                Err(e) => return Err(hdr(e.to_string())),
            }
            let used = (self.z.total_in() - in_before) as usize;
            input = &input[used..];
            if input.is_empty() && out.len() < out.capacity() {
                break;
            }
            if used == 0 && out.len() == out_before && out.len() < out.capacity() {
                return Err(hdr("truncated header block".into()));
            }
        }
        parse_header_block(&out)
    }
}

fn parse_header_block(block: &[u8]) -> Result<Headers, SpdyError> {
    let bad = || SpdyError::Headers("malformed name/value block".into());
    let mut pos = 0usize;
    let take_u32 = |pos: &mut usize| -> Result<usize, SpdyError> {
        let b = block.get(*pos..*pos + 4).ok_or_else(bad)?;
        *pos += 4;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
    };
    let count = take_u32(&mut pos)?;
    let mut out = Vec::with_capacity(count.min(64));
    for _ in 0..count {
        let n = take_u32(&mut pos)?;
        let name = block.get(pos..pos + n).ok_or_else(bad)?;
        pos += n;
        let v = take_u32(&mut pos)?;
        let value = block.get(pos..pos + v).ok_or_else(bad)?;
        pos += v;
        out.push((
            String::from_utf8_lossy(name).to_ascii_lowercase(),
            String::from_utf8_lossy(value).into_owned(),
        ));
    }
    Ok(out)
}

fn control_frame(frame_type: u16, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + payload.len());
    out.extend_from_slice(&(0x8000 | VERSION).to_be_bytes());
    out.extend_from_slice(&frame_type.to_be_bytes());
    out.push(flags);
    let len = payload.len() as u32;
    out.extend_from_slice(&len.to_be_bytes()[1..]);
    out.extend_from_slice(payload);
    out
}

impl Frame {
    /// The wire form of the frame (header blocks compressed with `hc`).
    pub fn encode(&self, hc: &mut HeaderCompressor) -> Result<Vec<u8>, SpdyError> {
        let id = |i: &u32| (i & 0x7fff_ffff).to_be_bytes();
        Ok(match self {
            Frame::SynStream {
                stream_id,
                associated_to,
                priority,
                flags,
                headers,
            } => {
                let mut p = Vec::new();
                p.extend_from_slice(&id(stream_id));
                p.extend_from_slice(&id(associated_to));
                p.push((priority & 0x7) << 5);
                p.push(0);
                p.extend_from_slice(&hc.compress(headers)?);
                control_frame(1, *flags, &p)
            }
            Frame::SynReply {
                stream_id,
                flags,
                headers,
            } => {
                let mut p = id(stream_id).to_vec();
                p.extend_from_slice(&hc.compress(headers)?);
                control_frame(2, *flags, &p)
            }
            Frame::RstStream { stream_id, status } => {
                let mut p = id(stream_id).to_vec();
                p.extend_from_slice(&status.to_be_bytes());
                control_frame(3, 0, &p)
            }
            Frame::Settings { flags, entries } => {
                let mut p = (entries.len() as u32).to_be_bytes().to_vec();
                for (f, i, v) in entries {
                    p.push(*f);
                    p.extend_from_slice(&i.to_be_bytes()[1..]);
                    p.extend_from_slice(&v.to_be_bytes());
                }
                control_frame(4, *flags, &p)
            }
            Frame::Ping { id } => control_frame(6, 0, &id.to_be_bytes()),
            Frame::GoAway {
                last_good_stream_id,
                status,
            } => {
                let mut p = id(last_good_stream_id).to_vec();
                p.extend_from_slice(&status.to_be_bytes());
                control_frame(7, 0, &p)
            }
            Frame::Headers {
                stream_id,
                flags,
                headers,
            } => {
                let mut p = id(stream_id).to_vec();
                p.extend_from_slice(&hc.compress(headers)?);
                control_frame(8, *flags, &p)
            }
            Frame::WindowUpdate { stream_id, delta } => {
                let mut p = id(stream_id).to_vec();
                p.extend_from_slice(&(delta & 0x7fff_ffff).to_be_bytes());
                control_frame(9, 0, &p)
            }
            Frame::Data {
                stream_id,
                flags,
                data,
            } => {
                let mut out = Vec::with_capacity(8 + data.len());
                out.extend_from_slice(&id(stream_id));
                out.push(*flags);
                out.extend_from_slice(&(data.len() as u32).to_be_bytes()[1..]);
                out.extend_from_slice(data);
                out
            }
            Frame::Unknown { .. } => Vec::new(),
        })
    }

    /// Reads one frame; `Ok(None)` at end of stream.
    pub async fn read<R: AsyncRead + Unpin>(
        r: &mut R,
        hd: &mut HeaderDecompressor,
    ) -> Result<Option<Frame>, SpdyError> {
        let mut head = [0u8; 8];
        match r.read_exact(&mut head).await {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(e.into()),
        }
        let flags = head[4];
        let len = u32::from_be_bytes([0, head[5], head[6], head[7]]) as usize;
        let mut p = vec![0u8; len];
        r.read_exact(&mut p).await?;
        if head[0] & 0x80 == 0 {
            let stream_id = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) & 0x7fff_ffff;
            return Ok(Some(Frame::Data {
                stream_id,
                flags,
                data: Bytes::from(p),
            }));
        }
        let version = u16::from_be_bytes([head[0] & 0x7f, head[1]]);
        if version != VERSION {
            return Err(SpdyError::Version(version));
        }
        let frame_type = u16::from_be_bytes([head[2], head[3]]);
        let u32_at = |at: usize| -> Option<u32> {
            p.get(at..at + 4)
                .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        };
        let sid = |at: usize, what: &'static str| {
            u32_at(at)
                .map(|v| v & 0x7fff_ffff)
                .ok_or(SpdyError::Invalid(what))
        };
        Ok(Some(match frame_type {
            1 => {
                if p.len() < 10 {
                    return Err(SpdyError::Invalid("SYN_STREAM"));
                }
                Frame::SynStream {
                    stream_id: sid(0, "SYN_STREAM")?,
                    associated_to: sid(4, "SYN_STREAM")?,
                    priority: p[8] >> 5,
                    flags,
                    headers: hd.decompress(&p[10..])?,
                }
            }
            2 => Frame::SynReply {
                stream_id: sid(0, "SYN_REPLY")?,
                flags,
                headers: hd.decompress(p.get(4..).unwrap_or_default())?,
            },
            3 => Frame::RstStream {
                stream_id: sid(0, "RST_STREAM")?,
                status: u32_at(4).ok_or(SpdyError::Invalid("RST_STREAM"))?,
            },
            4 => {
                let n = u32_at(0).ok_or(SpdyError::Invalid("SETTINGS"))? as usize;
                let mut entries = Vec::new();
                for i in 0..n.min((p.len().saturating_sub(4)) / 8) {
                    let at = 4 + i * 8;
                    let (Some(w), Some(v)) = (u32_at(at), u32_at(at + 4)) else {
                        break;
                    };
                    entries.push(((w >> 24) as u8, w & 0x00ff_ffff, v));
                }
                Frame::Settings { flags, entries }
            }
            6 => Frame::Ping {
                id: u32_at(0).ok_or(SpdyError::Invalid("PING"))?,
            },
            7 => Frame::GoAway {
                last_good_stream_id: sid(0, "GOAWAY")?,
                status: u32_at(4).unwrap_or(0),
            },
            8 => Frame::Headers {
                stream_id: sid(0, "HEADERS")?,
                flags,
                headers: hd.decompress(p.get(4..).unwrap_or_default())?,
            },
            9 => Frame::WindowUpdate {
                stream_id: sid(0, "WINDOW_UPDATE")?,
                delta: u32_at(4).ok_or(SpdyError::Invalid("WINDOW_UPDATE"))? & 0x7fff_ffff,
            },
            other => Frame::Unknown { frame_type: other },
        }))
    }
}

/// Which end of the connection this is (decides stream and ping id parity).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Accepts streams (the kubelet).
    Server,
    /// Opens streams (kubectl; used by tests).
    Client,
}

enum Out {
    Frame(Frame),
    Shutdown(oneshot::Sender<()>),
}

#[derive(Default)]
struct Entry {
    data: Option<mpsc::Sender<Bytes>>,
    reply: Option<oneshot::Sender<Result<(), SpdyError>>>,
}

struct Shared {
    streams: Mutex<HashMap<u32, Entry>>,
}

impl Shared {
    fn with<R>(&self, f: impl FnOnce(&mut HashMap<u32, Entry>) -> R) -> R {
        let mut g = match self.streams.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        f(&mut g)
    }
}

/// A SPDY connection: a reader task demultiplexes incoming frames into [`Stream`]s, a
/// writer task serializes outgoing frames.
pub struct Connection {
    role: Role,
    out: mpsc::Sender<Out>,
    shared: Arc<Shared>,
    incoming: mpsc::Receiver<Stream>,
    closed: watch::Receiver<bool>,
    next_id: AtomicU32,
    last_accepted: Arc<AtomicU32>,
    reader: JoinHandle<()>,
    writer: JoinHandle<()>,
}

impl Connection {
    /// Runs SPDY over `io`.
    pub fn new<T>(io: T, role: Role) -> Connection
    where
        T: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (r, w) = tokio::io::split(io);
        let (out_tx, out_rx) = mpsc::channel(256);
        let (in_tx, in_rx) = mpsc::channel(16);
        let (closed_tx, closed_rx) = watch::channel(false);
        let shared = Arc::new(Shared {
            streams: Mutex::new(HashMap::new()),
        });
        let last_accepted = Arc::new(AtomicU32::new(0));
        let reader = tokio::spawn(read_loop(
            r,
            shared.clone(),
            out_tx.clone(),
            in_tx,
            role,
            closed_tx,
            last_accepted.clone(),
        ));
        let writer = tokio::spawn(write_loop(w, out_rx));
        Connection {
            role,
            out: out_tx,
            shared,
            incoming: in_rx,
            closed: closed_rx,
            next_id: AtomicU32::new(if role == Role::Client { 1 } else { 2 }),
            last_accepted,
            reader,
            writer,
        }
    }

    /// The next stream the peer opened; `None` once the connection is closed or the peer
    /// sent GOAWAY. The stream is not replied to yet (see [`Stream::reply`]).
    pub async fn accept(&mut self) -> Option<Stream> {
        self.incoming.recv().await
    }

    /// Opens a stream (client side) and waits up to `timeout` for the reply.
    pub async fn open(&self, headers: Headers, timeout: Duration) -> Result<Stream, SpdyError> {
        let id = self.next_id.fetch_add(2, Ordering::Relaxed);
        let (data_tx, data_rx) = mpsc::channel(STREAM_BUFFER);
        let (reply_tx, reply_rx) = oneshot::channel();
        self.shared.with(|m| {
            m.insert(
                id,
                Entry {
                    data: Some(data_tx),
                    reply: Some(reply_tx),
                },
            )
        });
        self.out
            .send(Out::Frame(Frame::SynStream {
                stream_id: id,
                associated_to: 0,
                priority: 0,
                flags: 0,
                headers: headers.clone(),
            }))
            .await
            .map_err(|_| SpdyError::Closed)?;
        match tokio::time::timeout(timeout, reply_rx).await {
            Ok(Ok(Ok(()))) => Ok(Stream {
                id,
                headers,
                data: data_rx,
                writer: StreamWriter {
                    id,
                    out: self.out.clone(),
                },
            }),
            Ok(Ok(Err(e))) => Err(e),
            Ok(Err(_)) => Err(SpdyError::Closed),
            Err(_) => Err(SpdyError::ReplyTimeout(id)),
        }
    }

    /// Sends a PING (the peer echoes it).
    pub async fn ping(&self, id: u32) -> Result<(), SpdyError> {
        self.send(Frame::Ping { id }).await
    }

    /// Queues a raw frame.
    pub async fn send(&self, frame: Frame) -> Result<(), SpdyError> {
        self.out
            .send(Out::Frame(frame))
            .await
            .map_err(|_| SpdyError::Closed)
    }

    /// Resolves when the peer closed the connection (or reading it failed).
    pub async fn wait_closed(&self) {
        let mut rx = self.closed.clone();
        let _ = rx.wait_for(|c| *c).await;
    }

    /// A future resolving when the peer closed the connection, usable after `self` moved.
    pub fn closed_signal(&self) -> watch::Receiver<bool> {
        self.closed.clone()
    }

    /// Ends the connection gracefully: GOAWAY, flush, close the write side, then keep
    /// reading (and dropping) what the peer still sends for up to `linger`, so closing
    /// does not destroy data the peer has not read yet.
    pub async fn close(mut self, linger: Duration) {
        let last = match self.role {
            Role::Server => self.last_accepted.load(Ordering::Relaxed),
            Role::Client => 0,
        };
        let _ = self
            .out
            .send(Out::Frame(Frame::GoAway {
                last_good_stream_id: last,
                status: 0,
            }))
            .await;
        let (tx, rx) = oneshot::channel();
        if self.out.send(Out::Shutdown(tx)).await.is_ok() {
            let _ = tokio::time::timeout(linger, rx).await;
        }
        self.incoming.close();
        let _ = tokio::time::timeout(linger, self.wait_closed()).await;
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.reader.abort();
        self.writer.abort();
    }
}

async fn read_loop<R: AsyncRead + Unpin>(
    mut r: R,
    shared: Arc<Shared>,
    out: mpsc::Sender<Out>,
    incoming: mpsc::Sender<Stream>,
    role: Role,
    closed: watch::Sender<bool>,
    last_accepted: Arc<AtomicU32>,
) {
    let mut hd = HeaderDecompressor::new();
    let mut incoming = Some(incoming);
    loop {
        let frame = match Frame::read(&mut r, &mut hd).await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => {
                tracing::debug!(error = %e, "spdy connection ended");
                break;
            }
        };
        match frame {
            Frame::SynStream {
                stream_id,
                flags,
                headers,
                ..
            } => {
                let (tx, rx) = mpsc::channel(STREAM_BUFFER);
                shared.with(|m| {
                    m.insert(
                        stream_id,
                        Entry {
                            data: (flags & FLAG_FIN == 0).then_some(tx),
                            reply: None,
                        },
                    )
                });
                let stream = Stream {
                    id: stream_id,
                    headers,
                    data: rx,
                    writer: StreamWriter {
                        id: stream_id,
                        out: out.clone(),
                    },
                };
                let accepted = match &incoming {
                    Some(tx) => tx.send(stream).await.is_ok(),
                    None => false,
                };
                if accepted {
                    last_accepted.fetch_max(stream_id, Ordering::Relaxed);
                } else {
                    shared.with(|m| m.remove(&stream_id));
                    let _ = out
                        .send(Out::Frame(Frame::RstStream {
                            stream_id,
                            status: RST_REFUSED_STREAM,
                        }))
                        .await;
                }
            }
            Frame::SynReply {
                stream_id, flags, ..
            } => shared.with(|m| {
                if let Some(e) = m.get_mut(&stream_id) {
                    if let Some(reply) = e.reply.take() {
                        let _ = reply.send(Ok(()));
                    }
                    if flags & FLAG_FIN != 0 {
                        e.data = None;
                    }
                }
            }),
            Frame::Data {
                stream_id,
                flags,
                data,
            } => {
                let tx = shared.with(|m| m.get(&stream_id).and_then(|e| e.data.clone()));
                if let Some(tx) = tx {
                    if !data.is_empty() {
                        // A receiver that went away just drops the data.
                        let _ = tx.send(data).await;
                    }
                }
                if flags & FLAG_FIN != 0 {
                    shared.with(|m| {
                        if let Some(e) = m.get_mut(&stream_id) {
                            e.data = None;
                        }
                    });
                }
            }
            Frame::RstStream { stream_id, .. } => {
                if let Some(mut e) = shared.with(|m| m.remove(&stream_id)) {
                    if let Some(reply) = e.reply.take() {
                        let _ = reply.send(Err(SpdyError::Reset(stream_id)));
                    }
                }
            }
            Frame::Ping { id } => {
                let from_peer = match role {
                    Role::Server => id % 2 == 1,
                    Role::Client => id % 2 == 0,
                };
                if from_peer {
                    let _ = out.send(Out::Frame(Frame::Ping { id })).await;
                }
            }
            Frame::GoAway { .. } => incoming = None,
            Frame::Settings { .. }
            | Frame::WindowUpdate { .. }
            | Frame::Headers { .. }
            | Frame::Unknown { .. } => {}
        }
    }
    // End of the connection: every stream's reader sees the end, waiting openers fail.
    let entries: Vec<Entry> = shared.with(|m| m.drain().map(|(_, e)| e).collect());
    for mut e in entries {
        if let Some(reply) = e.reply.take() {
            let _ = reply.send(Err(SpdyError::Closed));
        }
    }
    let _ = closed.send(true);
}

async fn write_loop<W: AsyncWrite + Unpin>(w: W, mut rx: mpsc::Receiver<Out>) {
    let mut w = BufWriter::with_capacity(64 * 1024, w);
    let mut hc = HeaderCompressor::new();
    while let Some(msg) = rx.recv().await {
        match msg {
            Out::Frame(f) => {
                let bytes = match f.encode(&mut hc) {
                    Ok(b) => b,
                    Err(e) => {
                        tracing::warn!(error = %e, "spdy: cannot encode frame");
                        continue;
                    }
                };
                if w.write_all(&bytes).await.is_err() {
                    break;
                }
            }
            Out::Shutdown(done) => {
                let _ = w.flush().await;
                let _ = w.shutdown().await;
                let _ = done.send(());
                break;
            }
        }
        if rx.is_empty() && w.flush().await.is_err() {
            break;
        }
    }
}

/// One stream of a [`Connection`].
pub struct Stream {
    id: u32,
    headers: Headers,
    data: mpsc::Receiver<Bytes>,
    writer: StreamWriter,
}

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stream")
            .field("id", &self.id)
            .field("headers", &self.headers)
            .finish()
    }
}

impl Stream {
    /// The stream id.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// All headers of the SYN_STREAM.
    pub fn headers(&self) -> &[(String, String)] {
        &self.headers
    }

    /// One header (names compare case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Accepts the stream (SYN_REPLY without headers).
    pub async fn reply(&self) -> Result<(), SpdyError> {
        self.writer
            .send(Frame::SynReply {
                stream_id: self.id,
                flags: 0,
                headers: Vec::new(),
            })
            .await
    }

    /// The next chunk of data from the peer; `None` once it finished (or reset) the
    /// stream.
    pub async fn read(&mut self) -> Option<Bytes> {
        self.data.recv().await
    }

    /// A handle for writing to the stream.
    pub fn writer(&self) -> StreamWriter {
        self.writer.clone()
    }

    /// Splits into the incoming data and the writer.
    pub fn into_parts(self) -> (mpsc::Receiver<Bytes>, StreamWriter) {
        (self.data, self.writer)
    }
}

/// Writes to one stream. Cheap to clone.
#[derive(Clone, Debug)]
pub struct StreamWriter {
    id: u32,
    out: mpsc::Sender<Out>,
}

impl std::fmt::Debug for Out {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Out::Frame(fr) => write!(f, "Frame({fr:?})"),
            Out::Shutdown(_) => f.write_str("Shutdown"),
        }
    }
}

impl StreamWriter {
    /// The stream id.
    pub fn id(&self) -> u32 {
        self.id
    }

    async fn send(&self, f: Frame) -> Result<(), SpdyError> {
        self.out
            .send(Out::Frame(f))
            .await
            .map_err(|_| SpdyError::Closed)
    }

    /// Sends data (split into frames of at most 32 KiB).
    pub async fn write(&self, data: &[u8]) -> Result<(), SpdyError> {
        for chunk in data.chunks(MAX_DATA_CHUNK) {
            self.send(Frame::Data {
                stream_id: self.id,
                flags: 0,
                data: Bytes::copy_from_slice(chunk),
            })
            .await?;
        }
        Ok(())
    }

    /// Sends data already in a [`Bytes`] (no copy when it fits one frame).
    pub async fn write_bytes(&self, data: Bytes) -> Result<(), SpdyError> {
        if data.len() <= MAX_DATA_CHUNK {
            if data.is_empty() {
                return Ok(());
            }
            return self
                .send(Frame::Data {
                    stream_id: self.id,
                    flags: 0,
                    data,
                })
                .await;
        }
        self.write(&data).await
    }

    /// Half-closes the stream (empty data frame with FIN).
    pub async fn close(&self) -> Result<(), SpdyError> {
        self.send(Frame::Data {
            stream_id: self.id,
            flags: FLAG_FIN,
            data: Bytes::new(),
        })
        .await
    }

    /// Aborts the stream.
    pub async fn reset(&self, status: u32) -> Result<(), SpdyError> {
        self.send(Frame::RstStream {
            stream_id: self.id,
            status,
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dictionary_is_spdy3() {
        let d = dictionary();
        assert_eq!(d.len(), 1423);
        assert_eq!(&d[..11], b"\0\0\0\x07options");
        assert!(d.ends_with(b",*,enq=0."));
        // The dictionary id a zlib stream carries for it (Adler-32).
        let mut a: u32 = 1;
        let mut b: u32 = 0;
        for &x in d {
            a = (a + x as u32) % 65521;
            b = (b + a) % 65521;
        }
        assert_eq!((b << 16) | a, 0xe3c6_a7c2);
    }

    #[test]
    fn header_blocks_round_trip_across_frames() {
        let mut c = HeaderCompressor::new();
        let mut d = HeaderDecompressor::new();
        let h1: Headers = vec![
            ("streamType".into(), "error".into()),
            ("port".into(), "8080".into()),
        ];
        let h2: Headers = vec![("streamtype".into(), "data".into())];
        let b1 = c.compress(&h1).unwrap();
        // zlib header with the preset-dictionary flag and the dictionary id.
        assert_eq!(b1[0], 0x78);
        assert_ne!(b1[1] & 0x20, 0);
        assert_eq!(&b1[2..6], &0xe3c6_a7c2u32.to_be_bytes());
        let b2 = c.compress(&h2).unwrap();
        assert_eq!(
            d.decompress(&b1).unwrap(),
            vec![
                ("streamtype".to_string(), "error".to_string()),
                ("port".to_string(), "8080".to_string())
            ]
        );
        assert_eq!(d.decompress(&b2).unwrap(), h2);
        assert!(d.decompress(&[1, 2, 3]).is_err());
    }

    #[tokio::test]
    async fn frames_round_trip() {
        let frames = vec![
            Frame::SynStream {
                stream_id: 1,
                associated_to: 0,
                priority: 3,
                flags: FLAG_FIN,
                headers: vec![("a".into(), "b".into())],
            },
            Frame::SynReply {
                stream_id: 1,
                flags: 0,
                headers: vec![],
            },
            Frame::RstStream {
                stream_id: 3,
                status: RST_CANCEL,
            },
            Frame::Settings {
                flags: 0,
                entries: vec![(0, 7, 65536)],
            },
            Frame::Ping { id: 5 },
            Frame::GoAway {
                last_good_stream_id: 9,
                status: 0,
            },
            Frame::WindowUpdate {
                stream_id: 1,
                delta: 1000,
            },
            Frame::Data {
                stream_id: 7,
                flags: FLAG_FIN,
                data: Bytes::from_static(b"hello"),
            },
        ];
        let mut hc = HeaderCompressor::new();
        let mut wire = Vec::new();
        for f in &frames {
            wire.extend(f.encode(&mut hc).unwrap());
        }
        // Exact bytes of a data frame and a ping.
        let mut hc2 = HeaderCompressor::new();
        assert_eq!(
            Frame::Data {
                stream_id: 7,
                flags: FLAG_FIN,
                data: Bytes::from_static(b"hi")
            }
            .encode(&mut hc2)
            .unwrap(),
            vec![0, 0, 0, 7, 1, 0, 0, 2, b'h', b'i']
        );
        assert_eq!(
            Frame::Ping { id: 1 }.encode(&mut hc2).unwrap(),
            vec![0x80, 3, 0, 6, 0, 0, 0, 4, 0, 0, 0, 1]
        );
        let mut hd = HeaderDecompressor::new();
        let mut r: &[u8] = &wire;
        let mut got = Vec::new();
        while let Some(f) = Frame::read(&mut r, &mut hd).await.unwrap() {
            got.push(f);
        }
        assert_eq!(got, frames);
    }

    #[tokio::test]
    async fn connection_streams() {
        let (a, b) = tokio::io::duplex(4096);
        let mut server = Connection::new(a, Role::Server);
        let client = Connection::new(b, Role::Client);
        let opener = tokio::spawn(async move {
            let mut s = client
                .open(
                    vec![("streamType".into(), "stdin".into())],
                    Duration::from_secs(5),
                )
                .await
                .unwrap();
            assert_eq!(s.id(), 1);
            let w = s.writer();
            w.write(b"ping").await.unwrap();
            w.close().await.unwrap();
            let got = s.read().await.unwrap();
            assert_eq!(&got[..], b"pong");
            assert!(s.read().await.is_none());
            client
        });
        let mut s = server.accept().await.unwrap();
        assert_eq!(s.header("StreamType"), Some("stdin"));
        s.reply().await.unwrap();
        assert_eq!(&s.read().await.unwrap()[..], b"ping");
        assert!(s.read().await.is_none());
        s.writer().write(b"pong").await.unwrap();
        s.writer().close().await.unwrap();
        let client = opener.await.unwrap();
        drop(client);
        server.wait_closed().await;
        assert!(server.accept().await.is_none());
    }
}
