//! The server end to end on loopback: it is started on 127.0.0.1 with fixed records and
//! a fake upstream nameserver (also on 127.0.0.1), and queried over UDP and TCP with
//! hickory-proto messages. Nothing here leaves the machine.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use cluster_dns::records::Records;
use cluster_dns::{serve_records, DnsServer};
use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, CNAME, PTR, SRV};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use parking_lot::{Mutex, RwLock};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

/// What the fake upstream answers for every A query.
const UPSTREAM_ANSWER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);

const WAIT: Duration = Duration::from_secs(5);

fn records() -> Records {
    let services: Vec<Service> = vec![
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {
                "clusterIP": "10.43.0.10",
                "clusterIPs": ["10.43.0.10"],
                "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]
            }
        }))
        .unwrap(),
        serde_json::from_value(json!({
            "metadata": {"name": "ext", "namespace": "default"},
            "spec": {"type": "ExternalName", "externalName": "www.example.test"}
        }))
        .unwrap(),
    ];
    Records::build(&services, &[] as &[EndpointSlice], "cluster.local")
}

/// A nameserver on 127.0.0.1 that answers every query with [`UPSTREAM_ANSWER`] and
/// remembers the names it was asked.
async fn fake_upstream() -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    let asked = Arc::new(Mutex::new(Vec::new()));
    let seen = asked.clone();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65535];
        loop {
            let Ok((n, from)) = socket.recv_from(&mut buf).await else {
                return;
            };
            let Ok(query) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            let Some(q) = query.queries.first().cloned() else {
                continue;
            };
            seen.lock().push(q.name().to_ascii());
            let mut reply = Message::response(query.metadata.id, OpCode::Query);
            reply.metadata.recursion_desired = query.metadata.recursion_desired;
            reply.metadata.recursion_available = true;
            reply.add_query(q.clone());
            if q.query_type() == RecordType::A {
                reply.add_answer(Record::from_rdata(
                    q.name().clone(),
                    60,
                    RData::A(A(UPSTREAM_ANSWER)),
                ));
            }
            let _ = socket.send_to(&reply.to_vec().unwrap(), from).await;
        }
    });
    (addr, asked)
}

/// An address where nothing listens: queries to it are refused at once.
async fn closed_port() -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket.local_addr().unwrap()
}

async fn start(records: Records, upstreams: Vec<SocketAddr>) -> (DnsServer, Arc<RwLock<Records>>) {
    let shared = Arc::new(RwLock::new(records));
    let server = serve_records(shared.clone(), "127.0.0.1:0".parse().unwrap(), upstreams)
        .await
        .unwrap();
    (server, shared)
}

fn query_bytes(name: &str, qtype: RecordType) -> (u16, Vec<u8>) {
    let mut message = Message::query();
    message.metadata.recursion_desired = true;
    message.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    (message.metadata.id, message.to_vec().unwrap())
}

async fn udp_query(server: SocketAddr, name: &str, qtype: RecordType) -> Message {
    let (id, bytes) = query_bytes(name, qtype);
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket.connect(server).await.unwrap();
    socket.send(&bytes).await.unwrap();
    let mut buf = vec![0u8; 65535];
    let n = tokio::time::timeout(WAIT, socket.recv(&mut buf))
        .await
        .expect("no UDP answer in time")
        .unwrap();
    let answer = Message::from_vec(&buf[..n]).unwrap();
    assert_eq!(answer.metadata.id, id);
    assert_eq!(answer.metadata.message_type, MessageType::Response);
    answer
}

async fn tcp_query(server: SocketAddr, name: &str, qtype: RecordType) -> Message {
    let (id, bytes) = query_bytes(name, qtype);
    let exchange = async {
        let mut stream = TcpStream::connect(server).await.unwrap();
        let mut framed = (bytes.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(&bytes);
        stream.write_all(&framed).await.unwrap();
        let mut len = [0u8; 2];
        stream.read_exact(&mut len).await.unwrap();
        let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
        stream.read_exact(&mut buf).await.unwrap();
        buf
    };
    let buf = tokio::time::timeout(WAIT, exchange)
        .await
        .expect("no TCP answer in time");
    let answer = Message::from_vec(&buf).unwrap();
    assert_eq!(answer.metadata.id, id);
    answer
}

fn name(s: &str) -> Name {
    Name::from_ascii(s).unwrap()
}

fn data(records: &[Record]) -> Vec<RData> {
    records.iter().map(|r| r.data.clone()).collect()
}

#[tokio::test]
async fn a_record_over_udp_and_tcp() {
    let (server, _) = start(records(), vec![]).await;
    let addr = server.local_addr();
    assert_ne!(addr.port(), 0);
    for answer in [
        udp_query(addr, "web.default.svc.cluster.local.", RecordType::A).await,
        tcp_query(addr, "WEB.default.svc.cluster.local.", RecordType::A).await,
    ] {
        assert_eq!(answer.metadata.response_code, ResponseCode::NoError);
        assert!(answer.metadata.authoritative);
        assert!(answer.metadata.recursion_available);
        assert_eq!(
            data(&answer.answers),
            vec![RData::A(A(Ipv4Addr::new(10, 43, 0, 10)))]
        );
        assert_eq!(answer.answers[0].ttl, 5);
    }
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn nxdomain_carries_the_soa() {
    let (server, _) = start(records(), vec![]).await;
    for answer in [
        udp_query(
            server.local_addr(),
            "nope.default.svc.cluster.local.",
            RecordType::A,
        )
        .await,
        tcp_query(
            server.local_addr(),
            "nope.default.svc.cluster.local.",
            RecordType::A,
        )
        .await,
    ] {
        assert_eq!(answer.metadata.response_code, ResponseCode::NXDomain);
        assert!(answer.metadata.authoritative);
        assert!(answer.answers.is_empty());
        assert_eq!(answer.authorities.len(), 1);
        let RData::SOA(soa) = &answer.authorities[0].data else {
            panic!("no SOA: {answer:?}");
        };
        assert_eq!(soa.mname, name("ns.dns.cluster.local."));
        assert_eq!(soa.rname, name("hostmaster.cluster.local."));
    }

    // An existing name without the asked type: NOERROR, no answers, SOA.
    let answer = udp_query(
        server.local_addr(),
        "web.default.svc.cluster.local.",
        RecordType::AAAA,
    )
    .await;
    assert_eq!(answer.metadata.response_code, ResponseCode::NoError);
    assert!(answer.answers.is_empty());
    assert!(matches!(answer.authorities[0].data, RData::SOA(_)));
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn srv_with_the_target_address() {
    let (server, _) = start(records(), vec![]).await;
    let answer = udp_query(
        server.local_addr(),
        "_http._tcp.web.default.svc.cluster.local.",
        RecordType::SRV,
    )
    .await;
    assert_eq!(answer.metadata.response_code, ResponseCode::NoError);
    assert_eq!(
        data(&answer.answers),
        vec![RData::SRV(SRV::new(
            0,
            100,
            80,
            name("web.default.svc.cluster.local.")
        ))]
    );
    assert!(answer.additionals.iter().any(|r| {
        r.name == name("web.default.svc.cluster.local.")
            && r.data == RData::A(A(Ipv4Addr::new(10, 43, 0, 10)))
    }));
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn ptr_of_a_cluster_ip() {
    let (server, _) = start(records(), vec![]).await;
    let answer = udp_query(
        server.local_addr(),
        "10.0.43.10.in-addr.arpa.",
        RecordType::PTR,
    )
    .await;
    assert_eq!(answer.metadata.response_code, ResponseCode::NoError);
    assert_eq!(
        data(&answer.answers),
        vec![RData::PTR(PTR(name("web.default.svc.cluster.local.")))]
    );
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn other_names_are_forwarded_upstream() {
    let (upstream, asked) = fake_upstream().await;
    let (server, _) = start(records(), vec![upstream]).await;
    for answer in [
        udp_query(server.local_addr(), "www.example.test.", RecordType::A).await,
        tcp_query(server.local_addr(), "www.example.test.", RecordType::A).await,
    ] {
        assert_eq!(answer.metadata.response_code, ResponseCode::NoError);
        assert!(!answer.metadata.authoritative);
        assert_eq!(data(&answer.answers), vec![RData::A(A(UPSTREAM_ANSWER))]);
    }
    // Reverse names that are not the cluster's go upstream too.
    udp_query(
        server.local_addr(),
        "1.2.0.192.in-addr.arpa.",
        RecordType::PTR,
    )
    .await;
    assert_eq!(
        *asked.lock(),
        vec![
            "www.example.test.".to_string(),
            "www.example.test.".to_string(),
            "1.2.0.192.in-addr.arpa.".to_string()
        ]
    );
    // The cluster's names never are.
    udp_query(
        server.local_addr(),
        "web.default.svc.cluster.local.",
        RecordType::A,
    )
    .await;
    assert_eq!(asked.lock().len(), 3);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn external_name_target_is_resolved_upstream() {
    let (upstream, asked) = fake_upstream().await;
    let (server, _) = start(records(), vec![upstream]).await;
    let answer = udp_query(
        server.local_addr(),
        "ext.default.svc.cluster.local.",
        RecordType::A,
    )
    .await;
    assert_eq!(answer.metadata.response_code, ResponseCode::NoError);
    assert!(answer.metadata.authoritative);
    assert_eq!(
        data(&answer.answers),
        vec![
            RData::CNAME(CNAME(name("www.example.test."))),
            RData::A(A(UPSTREAM_ANSWER))
        ]
    );
    assert_eq!(*asked.lock(), vec!["www.example.test.".to_string()]);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn servfail_when_no_upstream_answers() {
    let (server, _) = start(records(), vec![closed_port().await]).await;
    let answer = udp_query(server.local_addr(), "www.example.test.", RecordType::A).await;
    assert_eq!(answer.metadata.response_code, ResponseCode::ServFail);
    assert!(answer.answers.is_empty());
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn answers_follow_the_shared_records() {
    let (server, shared) = start(Records::pending("cluster.local"), vec![]).await;
    // Not loaded yet: SERVFAIL, so that clients retry instead of caching a miss.
    let answer = udp_query(
        server.local_addr(),
        "web.default.svc.cluster.local.",
        RecordType::A,
    )
    .await;
    assert_eq!(answer.metadata.response_code, ResponseCode::ServFail);

    *shared.write() = records();
    let answer = udp_query(
        server.local_addr(),
        "web.default.svc.cluster.local.",
        RecordType::A,
    )
    .await;
    assert_eq!(answer.metadata.response_code, ResponseCode::NoError);
    assert_eq!(answer.answers.len(), 1);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn run_until_stops_on_shutdown() {
    let (server, _) = start(records(), vec![]).await;
    let addr = server.local_addr();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(server.run_until(async {
        let _ = rx.await;
    }));
    udp_query(addr, "web.default.svc.cluster.local.", RecordType::A).await;
    tx.send(()).unwrap();
    tokio::time::timeout(WAIT, running)
        .await
        .expect("server did not stop")
        .unwrap()
        .unwrap();
    // The TCP listener is gone.
    assert!(TcpStream::connect(addr).await.is_err());
}
