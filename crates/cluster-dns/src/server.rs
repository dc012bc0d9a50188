//! The DNS server: [`ClusterDnsHandler`] answers each query from the current
//! [`Records`] and sends what is not the cluster's to the [`Forwarder`];
//! [`serve_records`] runs it over UDP and TCP on one address (bound with
//! `IP_FREEBIND`, so the address may appear on an interface later) and hands back a
//! [`DnsServer`] to wait on or stop.

use std::future::Future;
use std::io;
use std::iter;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hickory_server::net::runtime::Time;
use hickory_server::proto::op::{
    Edns, Header, HeaderCounts, MessageType, Metadata, OpCode, ResponseCode,
};
use hickory_server::proto::rr::{DNSClass, Record, RecordType};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;
use hickory_server::Server;
use parking_lot::RwLock;
use socket2::{Domain, Protocol, Socket, Type};
use tracing::{debug, warn};

use crate::forward::Forwarder;
use crate::records::{Answer, Outcome, Records};
use crate::DnsError;

/// How long a TCP connection may stay idle between queries.
const TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// How many responses may wait to be written on one TCP connection.
const TCP_RESPONSE_BUFFER: usize = 32;

/// Answers queries from the cluster's records, forwarding the rest upstream.
pub struct ClusterDnsHandler {
    records: Arc<RwLock<Records>>,
    forwarder: Forwarder,
}

impl ClusterDnsHandler {
    /// A handler reading `records` (replaced as the cluster changes) and asking
    /// `forwarder` about other names.
    pub fn new(records: Arc<RwLock<Records>>, forwarder: Forwarder) -> ClusterDnsHandler {
        ClusterDnsHandler { records, forwarder }
    }

    /// The response to one well-formed query: metadata and the three sections.
    async fn resolve(
        &self,
        request: &Request,
        name: &hickory_server::proto::rr::Name,
        qtype: RecordType,
        qclass: DNSClass,
    ) -> Response {
        let mut metadata = Metadata::response_from_request(&request.metadata);
        metadata.recursion_available = true;

        let answer = if qclass == DNSClass::IN {
            self.records.read().answer(&name.to_ascii(), qtype)
        } else {
            Answer {
                outcome: Outcome::Forward,
                answers: Vec::new(),
                authority: Vec::new(),
                additionals: Vec::new(),
                chase: None,
            }
        };

        if answer.outcome == Outcome::Forward {
            let cd = request.metadata.checking_disabled;
            return match self.forwarder.query(name, qtype, qclass, cd).await {
                Ok(mut upstream) => {
                    metadata.response_code = upstream.metadata.response_code;
                    metadata.authoritative = upstream.metadata.authoritative;
                    Response {
                        metadata,
                        answers: std::mem::take(&mut upstream.answers),
                        authority: std::mem::take(&mut upstream.authorities),
                        additionals: std::mem::take(&mut upstream.additionals),
                    }
                }
                Err(error) => {
                    debug!(%name, %qtype, %error, "forwarding failed");
                    metadata.response_code = ResponseCode::ServFail;
                    Response::empty(metadata)
                }
            };
        }

        metadata.authoritative = answer.authoritative();
        metadata.response_code = answer.response_code();
        let Answer {
            mut answers,
            authority,
            additionals,
            chase,
            ..
        } = answer;
        // A CNAME leading out of the cluster: resolve its target as a recursive
        // server would, so stub resolvers get addresses. Without an answer the CNAME
        // alone is sent.
        if let Some(target) = chase {
            match self.forwarder.query(&target, qtype, qclass, false).await {
                Ok(upstream) => answers.extend(upstream.answers),
                Err(error) => debug!(%target, %error, "resolving a CNAME target failed"),
            }
        }
        Response {
            metadata,
            answers,
            authority,
            additionals,
        }
    }
}

/// A response before encoding.
struct Response {
    metadata: Metadata,
    answers: Vec<Record>,
    authority: Vec<Record>,
    additionals: Vec<Record>,
}

impl Response {
    fn empty(metadata: Metadata) -> Response {
        Response {
            metadata,
            answers: Vec::new(),
            authority: Vec::new(),
            additionals: Vec::new(),
        }
    }
}

#[async_trait::async_trait]
impl RequestHandler for ClusterDnsHandler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response_handle: R,
    ) -> ResponseInfo {
        // EDNS: answer in kind, with at least the classic 512 bytes.
        let edns = request.edns.as_ref().map(|req| {
            let mut edns = Edns::new();
            edns.set_max_payload(req.max_payload().max(512));
            edns.set_version(0);
            edns
        });

        let mut metadata = Metadata::response_from_request(&request.metadata);
        let response = if request.edns.as_ref().is_some_and(|e| e.version() > 0) {
            metadata.response_code = ResponseCode::BADVERS;
            Response::empty(metadata)
        } else if request.metadata.message_type != MessageType::Query
            || request.metadata.op_code != OpCode::Query
        {
            metadata.response_code = ResponseCode::NotImp;
            Response::empty(metadata)
        } else {
            match request.request_info() {
                Ok(info) => {
                    let query = info.query;
                    let name = query.name().clone().into();
                    self.resolve(request, &name, query.query_type(), query.query_class())
                        .await
                }
                Err(_) => {
                    metadata.response_code = ResponseCode::FormErr;
                    Response::empty(metadata)
                }
            }
        };

        let builder = MessageResponseBuilder::new(&request.queries, edns.as_ref());
        let message = builder.build(
            response.metadata,
            response.answers.iter(),
            response.authority.iter(),
            iter::empty(),
            response.additionals.iter(),
        );
        match response_handle.send_response(message).await {
            Ok(info) => info,
            Err(error) => {
                warn!(%error, "sending a DNS response failed");
                let mut metadata = Metadata::response_from_request(&request.metadata);
                metadata.response_code = ResponseCode::ServFail;
                ResponseInfo::from(Header {
                    metadata,
                    counts: HeaderCounts::default(),
                })
            }
        }
    }
}

/// A running DNS server.
pub struct DnsServer {
    server: Server<ClusterDnsHandler>,
    local_addr: SocketAddr,
}

impl DnsServer {
    /// The address it serves on, UDP and TCP alike (the port chosen when asked for
    /// port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Waits until the server stops on its own, which it only does on a socket error.
    pub async fn wait(&mut self) -> Result<(), DnsError> {
        self.server
            .block_until_done()
            .await
            .map_err(DnsError::Server)
    }

    /// Stops accepting queries and waits for the ones under way.
    pub async fn shutdown(mut self) -> Result<(), DnsError> {
        self.server
            .shutdown_gracefully()
            .await
            .map_err(DnsError::Server)
    }

    /// Serves until `shutdown` completes, then stops.
    pub async fn run_until(
        mut self,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), DnsError> {
        tokio::select! {
            r = self.wait() => r,
            _ = shutdown => self.shutdown().await,
        }
    }
}

/// Serves `records` on `bind` over UDP and TCP, forwarding other names to
/// `upstreams`. With port 0, one free port is chosen for both.
pub async fn serve_records(
    records: Arc<RwLock<Records>>,
    bind: SocketAddr,
    upstreams: Vec<SocketAddr>,
) -> Result<DnsServer, DnsError> {
    serve(
        ClusterDnsHandler::new(records, Forwarder::new(upstreams)),
        bind,
    )
    .await
}

/// Serves queries with `handler` on `bind` over UDP and TCP.
pub async fn serve(handler: ClusterDnsHandler, bind: SocketAddr) -> Result<DnsServer, DnsError> {
    let (udp, tcp) = bind_both(bind)?;
    let local_addr = udp.local_addr().map_err(|source| DnsError::Bind {
        protocol: "udp",
        addr: bind,
        source,
    })?;
    let mut server = Server::new(handler);
    server.register_socket(udp);
    server.register_listener(tcp, TCP_IDLE_TIMEOUT, TCP_RESPONSE_BUFFER);
    Ok(DnsServer { server, local_addr })
}

/// A UDP socket and a TCP listener on the same address; for port 0, on the same free
/// port.
fn bind_both(
    bind: SocketAddr,
) -> Result<(tokio::net::UdpSocket, tokio::net::TcpListener), DnsError> {
    let bind_err = |protocol, addr| {
        move |source| DnsError::Bind {
            protocol,
            addr,
            source,
        }
    };
    // A free UDP port may be taken for TCP; try a few.
    let attempts = if bind.port() == 0 { 16 } else { 1 };
    let mut last = None;
    for _ in 0..attempts {
        let udp = udp_socket(bind).map_err(bind_err("udp", bind))?;
        let port = udp.local_addr().map_err(bind_err("udp", bind))?.port();
        let addr = SocketAddr::new(bind.ip(), port);
        match tcp_listener(addr) {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e) if bind.port() == 0 && e.kind() == io::ErrorKind::AddrInUse => {
                last = Some(e);
            }
            Err(e) => return Err(bind_err("tcp", addr)(e)),
        }
    }
    let e = last.unwrap_or_else(|| io::Error::from(io::ErrorKind::AddrInUse));
    Err(bind_err("tcp", bind)(e))
}

/// Lets the socket bind an address no interface has (yet).
fn set_freebind(socket: &Socket, addr: SocketAddr) -> io::Result<()> {
    if addr.is_ipv4() {
        socket.set_freebind_v4(true)
    } else {
        socket.set_freebind_v6(true)
    }
}

fn udp_socket(addr: SocketAddr) -> io::Result<tokio::net::UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    set_freebind(&socket, addr)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    tokio::net::UdpSocket::from_std(socket.into())
}

fn tcp_listener(addr: SocketAddr) -> io::Result<tokio::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    set_freebind(&socket, addr)?;
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    tokio::net::TcpListener::from_std(socket.into())
}
