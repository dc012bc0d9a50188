//! Forwarding of names that are not the cluster's to the upstream nameservers of a
//! resolv.conf: [`parse_resolv_conf`] reads their addresses, [`Forwarder`] asks them in
//! turn over UDP (again over TCP when the answer came back truncated), each with a short
//! timeout, and hands back the first answer.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, Query};
use hickory_proto::rr::{DNSClass, Name, RecordType};
use hickory_proto::serialize::binary::DecodeError;
use hickory_proto::ProtoError;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

/// How long one upstream gets to answer before the next is asked.
pub const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);

/// The UDP payload size announced to upstreams (the DNS flag day 2020 value).
const UDP_PAYLOAD: u16 = 1232;

/// Why a query could not be forwarded.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    #[error("no upstream nameserver is configured")]
    NoUpstreams,
    #[error("encoding the upstream query")]
    Encode(#[source] ProtoError),
    #[error("asking upstream {upstream}")]
    Exchange {
        upstream: SocketAddr,
        #[source]
        source: io::Error,
    },
    #[error("decoding the answer of upstream {upstream}")]
    Decode {
        upstream: SocketAddr,
        #[source]
        source: DecodeError,
    },
}

/// The nameserver addresses (port 53) of a resolv.conf's `nameserver` lines, in order.
/// Link-local IPv6 addresses with a zone (`fe80::1%eth0`) are skipped.
pub fn parse_resolv_conf(text: &str) -> Vec<SocketAddr> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            if words.next()? != "nameserver" {
                return None;
            }
            let ip = words.next()?.parse().ok()?;
            Some(SocketAddr::new(ip, 53))
        })
        .collect()
}

/// Reads a resolv.conf's nameserver addresses.
pub fn read_resolv_conf(path: &Path) -> io::Result<Vec<SocketAddr>> {
    Ok(parse_resolv_conf(&std::fs::read_to_string(path)?))
}

/// Asks upstream nameservers.
#[derive(Clone, Debug)]
pub struct Forwarder {
    upstreams: Arc<[SocketAddr]>,
    timeout: Duration,
}

impl Forwarder {
    /// A forwarder to these nameservers, each given [`UPSTREAM_TIMEOUT`].
    pub fn new(upstreams: Vec<SocketAddr>) -> Forwarder {
        Forwarder {
            upstreams: upstreams.into(),
            timeout: UPSTREAM_TIMEOUT,
        }
    }

    /// The same, with another time limit per upstream.
    pub fn with_timeout(mut self, timeout: Duration) -> Forwarder {
        self.timeout = timeout;
        self
    }

    /// The nameservers asked, in order.
    pub fn upstreams(&self) -> &[SocketAddr] {
        &self.upstreams
    }

    /// Asks the upstreams in turn for `name`/`qtype` and returns the first answer
    /// (whatever its response code), or the last failure.
    pub async fn query(
        &self,
        name: &Name,
        qtype: RecordType,
        qclass: DNSClass,
        checking_disabled: bool,
    ) -> Result<Message, ForwardError> {
        let mut query = Query::query(name.clone(), qtype);
        query.set_query_class(qclass);
        let mut message = Message::query();
        message.metadata.recursion_desired = true;
        message.metadata.checking_disabled = checking_disabled;
        message.add_query(query.clone());
        let mut edns = Edns::new();
        edns.set_max_payload(UDP_PAYLOAD);
        message.set_edns(edns);
        let bytes = message.to_vec().map_err(ForwardError::Encode)?;
        let id = message.metadata.id;

        let mut last = ForwardError::NoUpstreams;
        for &upstream in self.upstreams.iter() {
            let asked = async {
                let answer = exchange_udp(upstream, &bytes, id, &query).await?;
                if answer.metadata.truncation {
                    return exchange_tcp(upstream, &bytes, id, &query).await;
                }
                Ok(answer)
            };
            match tokio::time::timeout(self.timeout, asked).await {
                Ok(Ok(answer)) => return Ok(answer),
                Ok(Err(e)) => {
                    tracing::debug!(%upstream, error = %e, "upstream nameserver failed");
                    last = e;
                }
                Err(_) => {
                    tracing::debug!(%upstream, "upstream nameserver timed out");
                    last = ForwardError::Exchange {
                        upstream,
                        source: io::Error::new(io::ErrorKind::TimedOut, "no answer in time"),
                    };
                }
            }
        }
        Err(last)
    }
}

/// Whether `answer` answers our query `id` for `query`.
fn answers(answer: &Message, id: u16, query: &Query) -> bool {
    answer.metadata.id == id
        && answer.metadata.message_type == MessageType::Response
        && answer.queries.len() == 1
        && answer.queries[0].name() == query.name()
        && answer.queries[0].query_type() == query.query_type()
}

async fn exchange_udp(
    upstream: SocketAddr,
    query_bytes: &[u8],
    id: u16,
    query: &Query,
) -> Result<Message, ForwardError> {
    let io_err = |source| ForwardError::Exchange { upstream, source };
    let local: SocketAddr = if upstream.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(local).await.map_err(io_err)?;
    socket.connect(upstream).await.map_err(io_err)?;
    socket.send(query_bytes).await.map_err(io_err)?;
    let mut buf = vec![0u8; usize::from(u16::MAX)];
    loop {
        let n = socket.recv(&mut buf).await.map_err(io_err)?;
        // Anything that is not the answer to this query (late or forged datagrams) is
        // dropped and the wait goes on.
        match Message::from_vec(&buf[..n]) {
            Ok(answer) if answers(&answer, id, query) => return Ok(answer),
            Ok(_) => tracing::debug!(%upstream, "dropped an unrelated UDP answer"),
            Err(e) => tracing::debug!(%upstream, error = %e, "dropped an undecodable UDP answer"),
        }
    }
}

async fn exchange_tcp(
    upstream: SocketAddr,
    query_bytes: &[u8],
    id: u16,
    query: &Query,
) -> Result<Message, ForwardError> {
    let io_err = |source| ForwardError::Exchange { upstream, source };
    let len = u16::try_from(query_bytes.len()).map_err(|_| {
        io_err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "query too long",
        ))
    })?;
    let mut stream = TcpStream::connect(upstream).await.map_err(io_err)?;
    let mut framed = Vec::with_capacity(query_bytes.len() + 2);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(query_bytes);
    stream.write_all(&framed).await.map_err(io_err)?;
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).await.map_err(io_err)?;
    let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut buf).await.map_err(io_err)?;
    let answer =
        Message::from_vec(&buf).map_err(|source| ForwardError::Decode { upstream, source })?;
    if !answers(&answer, id, query) {
        return Err(io_err(io::Error::new(
            io::ErrorKind::InvalidData,
            "the TCP answer is for another query",
        )));
    }
    Ok(answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf_nameservers() {
        let text = "# generated\nsearch example.com\nnameserver 10.0.0.2\n\
                    nameserver  fd00::53 \noptions ndots:2\nnameserver fe80::1%eth0\n\
                    nameserver\n;nameserver 1.1.1.1\n";
        assert_eq!(
            parse_resolv_conf(text),
            vec![
                "10.0.0.2:53".parse::<SocketAddr>().unwrap(),
                "[fd00::53]:53".parse().unwrap()
            ]
        );
    }

    #[tokio::test]
    async fn no_upstreams_is_an_error() {
        let err = Forwarder::new(vec![])
            .query(
                &Name::from_ascii("example.com.").unwrap(),
                RecordType::A,
                DNSClass::IN,
                false,
            )
            .await
            .unwrap_err();
        assert!(matches!(err, ForwardError::NoUpstreams));
    }

    #[tokio::test]
    async fn silent_upstream_times_out() {
        // A bound socket that never answers.
        let silent = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = silent.local_addr().unwrap();
        let err = Forwarder::new(vec![addr])
            .with_timeout(Duration::from_millis(200))
            .query(
                &Name::from_ascii("example.com.").unwrap(),
                RecordType::A,
                DNSClass::IN,
                false,
            )
            .await
            .unwrap_err();
        match err {
            ForwardError::Exchange { upstream, source } => {
                assert_eq!(upstream, addr);
                assert_eq!(source.kind(), io::ErrorKind::TimedOut);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}
