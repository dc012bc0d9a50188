//! End-to-end tests of the kubelet API with busybox containers: authentication, pods,
//! logs with each parameter, exec/attach over SPDY and WebSocket (stdin, terminal and
//! resize, exit codes), port-forward over SPDY, WebSocket and tunnelled SPDY into a pod
//! network namespace, stats summary and resource metrics.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use common::{eventually, Pki, World};
use futures::{SinkExt, StreamExt};
use k8s_openapi::api::core::v1::{ContainerState, ContainerStateTerminated, ContainerStatus};
use kubelet_server::spdy::{Connection, Stream};
use tokio_tungstenite::tungstenite::Message;

const T: Duration = Duration::from_secs(20);

fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

async fn read_to_end(mut s: Stream) -> String {
    let mut out = Vec::new();
    while let Some(b) = tokio::time::timeout(T, s.read())
        .await
        .expect("stream read timed out")
    {
        out.extend_from_slice(&b);
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authentication_and_pods() {
    let w = World::new().await;
    w.add_pod("web", &["c"]);
    // Health needs no certificate.
    assert_eq!(
        w.get_as(None, "/healthz").await.unwrap(),
        (200, "ok".to_string())
    );
    // Anything else does.
    assert_eq!(
        w.get_as(None, "/pods").await.unwrap(),
        (401, "Unauthorized".to_string())
    );
    // A certificate from another CA is refused (handshake failure or 401).
    let stranger = Pki::new("mallory");
    match w.get_as(Some(&stranger), "/pods").await {
        Err(_) => {}
        Ok((status, _)) => assert_eq!(status, 401),
    }
    let (status, body) = w.get("/pods").await;
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["kind"], "PodList");
    assert_eq!(v["apiVersion"], "v1");
    assert_eq!(v["items"][0]["metadata"]["name"], "web");
    assert!(v["items"][0].get("kind").is_none());
    assert_eq!(
        w.get("/nope").await,
        (404, "404 page not found\n".to_string())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_healthz() {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(kubelet_server::serve_healthz_on(l));
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    assert!(out.starts_with("HTTP/1.1 200 OK"), "{out}");
    assert!(out.ends_with("\r\n\r\nok"), "{out}");
}

fn write_log(w: &World, name: &str, text: &str) -> std::path::PathBuf {
    let p = w.tmp.path().join(format!("{name}.log"));
    std::fs::write(&p, text).unwrap();
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn container_logs() {
    let w = World::new().await;
    w.add_pod("logs", &["c"]);
    let current = write_log(
        &w,
        "current",
        "2024-01-01T00:00:01.5Z stdout F one\n\
         2024-01-01T00:00:02Z stderr F two\n\
         2024-01-01T00:00:03Z stdout P thr\n\
         2024-01-01T00:00:03.1Z stdout F ee\n\
         2024-01-01T00:00:04Z stdout F four\n",
    );
    let previous = write_log(
        &w,
        "previous",
        "2023-12-31T23:59:59Z stdout F before restart\n",
    );
    w.host
        .log_paths
        .lock()
        .unwrap()
        .insert("cur".into(), current);
    w.host
        .log_paths
        .lock()
        .unwrap()
        .insert("prev".into(), previous);
    let running = ContainerState {
        running: Some(Default::default()),
        ..Default::default()
    };
    w.set_statuses(
        "logs",
        vec![ContainerStatus {
            name: "c".into(),
            container_id: Some("ferrokube://cur".into()),
            state: Some(running.clone()),
            ..Default::default()
        }],
    );
    let base = "/containerLogs/default/logs/c";
    assert_eq!(w.get(base).await, (200, "one\ntwo\nthree\nfour\n".into()));
    assert_eq!(
        w.get(&format!("{base}?timestamps=true&tailLines=2"))
            .await
            .1,
        "2024-01-01T00:00:03.100000000Z ee\n2024-01-01T00:00:04.000000000Z four\n"
    );
    assert_eq!(w.get(&format!("{base}?tailLines=1")).await.1, "four\n");
    assert_eq!(w.get(&format!("{base}?limitBytes=6")).await.1, "one\ntw");
    assert_eq!(
        w.get(&format!("{base}?sinceTime=2024-01-01T00:00:02Z"))
            .await
            .1,
        "two\nthree\nfour\n"
    );
    // Records are years old: sinceSeconds keeps none of them.
    assert_eq!(w.get(&format!("{base}?sinceSeconds=10")).await.1, "");
    assert_eq!(w.get(&format!("{base}?stream=Stderr")).await.1, "two\n");
    assert_eq!(
        w.get(&format!("{base}?previous=true")).await,
        (
            400,
            "previous terminated container \"c\" in pod \"logs\" not found".into()
        )
    );
    assert_eq!(
        w.get(&format!("{base}?tailLines=-1")).await,
        (422, r#"{"message": "Invalid request."}"#.into())
    );
    assert_eq!(
        w.get(&format!("{base}?follow=maybe")).await,
        (400, r#"{"message": "Unable to decode query."}"#.into())
    );
    assert_eq!(
        w.get("/containerLogs/default/nope/c").await,
        (404, "pod \"nope\" does not exist".into())
    );
    assert_eq!(
        w.get("/containerLogs/default/logs/x").await,
        (404, "container \"x\" not found in pod \"logs\"".into())
    );

    // After a restart the previous instance's log is there.
    w.set_statuses(
        "logs",
        vec![ContainerStatus {
            name: "c".into(),
            container_id: Some("ferrokube://cur".into()),
            state: Some(running),
            last_state: Some(ContainerState {
                terminated: Some(ContainerStateTerminated {
                    container_id: Some("ferrokube://prev".into()),
                    exit_code: 1,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }],
    );
    assert_eq!(
        w.get(&format!("{base}?previous=true")).await,
        (200, "before restart\n".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follow_logs_until_exit() {
    let w = World::new().await;
    let uid = w.add_pod("follow", &["c"]);
    w.start(
        "follow",
        &uid,
        "c",
        &["sh", "-c", "echo a; sleep 1; echo b >&2; sleep 1; echo c"],
        None,
    )
    .await;
    let started = std::time::Instant::now();
    let (status, body) =
        tokio::time::timeout(T, w.get("/containerLogs/default/follow/c?follow=true"))
            .await
            .unwrap();
    assert_eq!(status, 200);
    assert_eq!(body, "a\nb\nc\n");
    assert!(started.elapsed() >= Duration::from_millis(1500));
}

/// Runs an exec over SPDY the way client-go's v4 executor does.
async fn spdy_session(
    conn: &Connection,
    tty: bool,
    stdin: Option<&[u8]>,
    resize: Option<&str>,
    stderr: bool,
) -> (String, String, String) {
    let open = |t: &str| conn.open(h(&[("streamType", t)]), T);
    let error = open("error").await.unwrap();
    let stdin_stream = match stdin {
        Some(_) => Some(open("stdin").await.unwrap()),
        None => None,
    };
    let stdout = open("stdout").await.unwrap();
    let stderr_stream = if stderr && !tty {
        Some(open("stderr").await.unwrap())
    } else {
        None
    };
    let resize_stream = if tty {
        Some(open("resize").await.unwrap())
    } else {
        None
    };
    if let (Some(r), Some(size)) = (&resize_stream, resize) {
        r.writer().write(size.as_bytes()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    if let (Some(s), Some(data)) = (&stdin_stream, stdin) {
        s.writer().write(data).await.unwrap();
        s.writer().close().await.unwrap();
    }
    let out = tokio::spawn(read_to_end(stdout));
    let err = tokio::spawn(async move {
        match stderr_stream {
            Some(s) => read_to_end(s).await,
            None => String::new(),
        }
    });
    let status = read_to_end(error).await;
    (out.await.unwrap(), err.await.unwrap(), status)
}

fn exec_path(pod: &str, container: &str, cmd: &[&str], params: &str) -> String {
    let mut p = format!("/exec/default/{pod}/{container}?{params}");
    for c in cmd {
        p.push_str("&command=");
        p.push_str(&url_escape(c));
    }
    p
}

fn url_escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_over_spdy() {
    let w = World::new().await;
    let uid = w.add_pod("sp", &["main"]);
    let sb = w.sandbox(&uid).await;
    w.start("sp", &uid, "main", &["sleep", "1000"], Some(&sb))
        .await;

    // stdin round trip.
    let (proto, conn) = w
        .spdy(
            &exec_path("sp", "main", &["cat"], "input=1&output=1&error=1"),
            &[
                "v4.channel.k8s.io",
                "v3.channel.k8s.io",
                "v2.channel.k8s.io",
                "channel.k8s.io",
            ],
        )
        .await
        .unwrap();
    assert_eq!(proto, "v4.channel.k8s.io");
    let (out, err, status) = spdy_session(&conn, false, Some(b"hello\nworld\n"), None, true).await;
    assert_eq!((out.as_str(), err.as_str()), ("hello\nworld\n", ""));
    assert_eq!(status, r#"{"metadata":{},"status":"Success"}"#);

    // Exit code and stderr.
    let (_, conn) = w
        .spdy(
            &exec_path(
                "sp",
                "main",
                &["sh", "-c", "echo out; echo err >&2; exit 3"],
                "stdout=1&stderr=1",
            ),
            &["v4.channel.k8s.io"],
        )
        .await
        .unwrap();
    let (out, err, status) = spdy_session(&conn, false, None, None, true).await;
    assert_eq!((out.as_str(), err.as_str()), ("out\n", "err\n"));
    let v: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(v["status"], "Failure");
    assert_eq!(v["reason"], "NonZeroExitCode");
    assert_eq!(
        v["details"]["causes"],
        serde_json::json!([{"reason": "ExitCode", "message": "3"}])
    );

    // A terminal, resized before the command looks.
    let (_, conn) = w
        .spdy(
            &exec_path("sp", "main", &["sh"], "input=1&output=1&error=1&tty=1"),
            &["v4.channel.k8s.io"],
        )
        .await
        .unwrap();
    let (out, _, status) = spdy_session(
        &conn,
        true,
        Some(b"tty; stty size; hostname; exit 5\n"),
        Some("{\"Width\":100,\"Height\":40}\n"),
        true,
    )
    .await;
    assert!(out.contains("/dev/pts/"), "{out:?}");
    assert!(out.contains("40 100\r\n"), "{out:?}");
    assert!(out.contains("pod-host\r\n"), "{out:?}");
    let v: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(v["details"]["causes"][0]["message"], "5");

    // Older protocols only report failures, as text.
    let (proto, conn) = w
        .spdy(
            &exec_path("sp", "main", &["sh", "-c", "exit 2"], "stdout=1"),
            &["channel.k8s.io"],
        )
        .await
        .unwrap();
    assert_eq!(proto, "channel.k8s.io");
    let (_, _, status) = spdy_session(&conn, false, None, None, false).await;
    assert_eq!(
        status,
        "command terminated with non-zero exit code: error executing command [sh -c exit 2], exit code 2"
    );

    // A command that cannot start.
    let (_, conn) = w
        .spdy(
            &exec_path("sp", "main", &["nope"], "stdout=1"),
            &["v4.channel.k8s.io"],
        )
        .await
        .unwrap();
    let (_, _, status) = spdy_session(&conn, false, None, None, false).await;
    let v: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(v["reason"], "InternalError");
    assert_eq!(v["code"], 500);
    let msg = v["message"].as_str().unwrap();
    assert!(
        msg.starts_with("Internal error occurred: error executing command in container: ")
            && msg.contains("executable file not found in $PATH"),
        "{msg}"
    );

    // Request errors.
    assert_eq!(
        w.spdy(
            &exec_path("sp", "main", &["ls"], ""),
            &["v4.channel.k8s.io"]
        )
        .await
        .err()
        .unwrap(),
        (
            400,
            "you must specify at least 1 of stdin, stdout, stderr".into()
        )
    );
    assert_eq!(
        w.spdy(
            &exec_path("nope", "main", &["ls"], "stdout=1"),
            &["v4.channel.k8s.io"]
        )
        .await
        .err()
        .unwrap(),
        (404, "pod does not exist".into())
    );
    assert_eq!(
        w.spdy(
            &exec_path("sp", "other", &["ls"], "stdout=1"),
            &["v4.channel.k8s.io"]
        )
        .await
        .err()
        .unwrap(),
        (500, "container not found (\"other\")".into())
    );
    let (code, body) = w
        .spdy(
            &exec_path("sp", "main", &["ls"], "stdout=1"),
            &["v9.channel.k8s.io"],
        )
        .await
        .err()
        .unwrap();
    assert_eq!(code, 403);
    assert!(
        body.starts_with("unable to upgrade: unable to negotiate protocol"),
        "{body}"
    );
}

/// Collects a WebSocket exec/attach session: per channel data, in order of arrival.
async fn ws_collect(ws: &mut kubelet_server::ws::Ws) -> (Vec<Vec<u8>>, HashMap<u8, Vec<u8>>) {
    let mut order = Vec::new();
    let mut by_channel: HashMap<u8, Vec<u8>> = HashMap::new();
    while let Some(msg) = tokio::time::timeout(T, ws.next())
        .await
        .expect("ws read timed out")
    {
        match msg {
            Ok(Message::Binary(b)) => {
                order.push(b.to_vec());
                if let Some((&ch, rest)) = b.split_first() {
                    by_channel.entry(ch).or_default().extend_from_slice(rest);
                }
            }
            Ok(Message::Close(_)) | Err(_) => break,
            Ok(_) => {}
        }
    }
    (order, by_channel)
}

fn text_of(m: &HashMap<u8, Vec<u8>>, ch: u8) -> String {
    String::from_utf8_lossy(m.get(&ch).map(Vec::as_slice).unwrap_or_default()).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_over_websocket() {
    let w = World::new().await;
    let uid = w.add_pod("wsp", &["main"]);
    w.start("wsp", &uid, "main", &["sleep", "1000"], None).await;

    // v5: stdin closed with the close signal.
    let (proto, mut ws) = w
        .websocket(
            &exec_path(
                "wsp",
                "main",
                &["cat"],
                "stdin=true&stdout=true&stderr=true",
            ),
            &["v5.channel.k8s.io", "v4.channel.k8s.io"],
        )
        .await
        .unwrap();
    assert_eq!(proto, "v5.channel.k8s.io");
    ws.send(Message::Binary(Bytes::from_static(b"\x00hello\n")))
        .await
        .unwrap();
    ws.send(Message::Binary(Bytes::from_static(&[255, 0])))
        .await
        .unwrap();
    let (order, m) = ws_collect(&mut ws).await;
    assert_eq!(order[0], vec![1u8], "first an empty stdout message");
    assert_eq!(text_of(&m, 1), "hello\n");
    assert_eq!(text_of(&m, 2), "");
    assert_eq!(text_of(&m, 3), r#"{"metadata":{},"status":"Success"}"#);

    // v4 with a terminal: resize on channel 4, exit code in the status.
    let (proto, mut ws) = w
        .websocket(
            &exec_path("wsp", "main", &["sh"], "stdin=1&stdout=1&tty=1"),
            &["v4.channel.k8s.io"],
        )
        .await
        .unwrap();
    assert_eq!(proto, "v4.channel.k8s.io");
    ws.send(Message::Binary(Bytes::from_static(
        b"\x04{\"Width\":120,\"Height\":33}",
    )))
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    ws.send(Message::Binary(Bytes::from_static(
        b"\x00stty size; exit 7\n",
    )))
    .await
    .unwrap();
    let (_, m) = ws_collect(&mut ws).await;
    assert!(
        text_of(&m, 1).contains("33 120\r\n"),
        "{:?}",
        text_of(&m, 1)
    );
    let v: serde_json::Value = serde_json::from_str(&text_of(&m, 3)).unwrap();
    assert_eq!(v["reason"], "NonZeroExitCode");
    assert_eq!(v["details"]["causes"][0]["message"], "7");

    // base64 framing.
    let (proto, mut ws) = w
        .websocket(
            &exec_path("wsp", "main", &["echo", "hi"], "stdout=1"),
            &["v4.base64.channel.k8s.io"],
        )
        .await
        .unwrap();
    assert_eq!(proto, "v4.base64.channel.k8s.io");
    let mut got = Vec::new();
    while let Some(Ok(msg)) = tokio::time::timeout(T, ws.next()).await.unwrap() {
        match msg {
            Message::Text(t) => got.push(t.to_string()),
            Message::Close(_) => break,
            _ => {}
        }
    }
    assert_eq!(got[0], "1");
    assert!(got.contains(&"1aGkK".to_string()), "{got:?}");

    // A protocol the server does not speak.
    let (code, _) = w
        .websocket(
            &exec_path("wsp", "main", &["ls"], "stdout=1"),
            &["v9.channel.k8s.io"],
        )
        .await
        .err()
        .unwrap();
    assert_eq!(code, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attach_streams_output() {
    let w = World::new().await;
    let uid = w.add_pod("att", &["main"]);
    w.start(
        "att",
        &uid,
        "main",
        &[
            "sh",
            "-c",
            "sleep 1; echo hello; echo oops >&2; sleep 1; echo bye",
        ],
        None,
    )
    .await;
    let (_, mut ws) = w
        .websocket(
            "/attach/default/att/main?stdout=1&stderr=1",
            &["v5.channel.k8s.io"],
        )
        .await
        .unwrap();
    let (_, m) = ws_collect(&mut ws).await;
    assert_eq!(text_of(&m, 1), "hello\nbye\n");
    assert_eq!(text_of(&m, 2), "oops\n");
    assert_eq!(text_of(&m, 3), r#"{"metadata":{},"status":"Success"}"#);
}

/// Opens an error/data stream pair for `port`.
async fn pf_pair(conn: &Connection, port: u16, id: u32) -> (Stream, Stream) {
    let p = port.to_string();
    let i = id.to_string();
    let err = conn
        .open(
            h(&[("streamType", "error"), ("port", &p), ("requestID", &i)]),
            T,
        )
        .await
        .unwrap();
    let data = conn
        .open(
            h(&[("streamType", "data"), ("port", &p), ("requestID", &i)]),
            T,
        )
        .await
        .unwrap();
    (err, data)
}

async fn echo_through(conn: &Connection, id: u32) -> Result<String, String> {
    let (err, mut data) = pf_pair(conn, 8080, id).await;
    data.writer().write(b"ping\n").await.unwrap();
    let mut got = Vec::new();
    while got.len() < 5 {
        match tokio::time::timeout(T, data.read()).await.unwrap() {
            Some(b) => got.extend_from_slice(&b),
            None => break,
        }
    }
    if got.is_empty() {
        return Err(read_to_end(err).await);
    }
    data.writer().close().await.unwrap();
    // The echo server ends the connection once its input ended.
    let rest = read_to_end(data).await;
    let err = read_to_end(err).await;
    assert_eq!(err, "");
    Ok(format!("{}{rest}", String::from_utf8_lossy(&got)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn port_forward() {
    let w = World::new().await;
    let uid = w.add_pod("pf", &["echo"]);
    let sb = w.sandbox(&uid).await;
    w.start(
        "pf",
        &uid,
        "echo",
        &["nc", "-ll", "-p", "8080", "-e", "cat"],
        Some(&sb),
    )
    .await;

    // SPDY (kubectl up to 1.30 and the API server's translation).
    let (proto, conn) = w
        .spdy("/portForward/default/pf", &["portforward.k8s.io"])
        .await
        .unwrap();
    assert_eq!(proto, "portforward.k8s.io");
    let mut answer = Err(String::new());
    for i in 0..50 {
        answer = echo_through(&conn, i).await;
        if answer.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(answer.unwrap(), "ping\n");
    // Nothing listens on 8081 in the pod (the host's 8081 does not count).
    let (err, data) = pf_pair(&conn, 8081, 1000).await;
    let msg = read_to_end(err).await;
    assert!(
        msg.starts_with(&format!("error forwarding port 8081 to pod {uid}, uid : failed to execute portforward in network namespace \"")),
        "{msg}"
    );
    assert!(
        msg.contains("IPv4: dial tcp4 127.0.0.1:8081: connect: connection refused"),
        "{msg}"
    );
    assert_eq!(read_to_end(data).await, "");
    drop(conn);

    // WebSocket v4 channels: 2-byte little-endian port first on both channels.
    let (proto, mut ws) = w
        .websocket("/portForward/default/pf?port=8080", &["v4.channel.k8s.io"])
        .await
        .unwrap();
    assert_eq!(proto, "v4.channel.k8s.io");
    let mut first = Vec::new();
    for _ in 0..2 {
        match tokio::time::timeout(T, ws.next()).await.unwrap() {
            Some(Ok(Message::Binary(b))) => first.push(b.to_vec()),
            other => panic!("{other:?}"),
        }
    }
    first.sort();
    assert_eq!(first, vec![vec![0u8, 0x90, 0x1f], vec![1u8, 0x90, 0x1f]]);
    ws.send(Message::Binary(Bytes::from_static(b"\x00ping\n")))
        .await
        .unwrap();
    match tokio::time::timeout(T, ws.next()).await.unwrap() {
        Some(Ok(Message::Binary(b))) => assert_eq!(&b[..], b"\x00ping\n"),
        other => panic!("{other:?}"),
    }
    drop(ws);

    // SPDY tunnelled in WebSocket binary messages (kubectl 1.30+).
    let (proto, ws) = w
        .websocket("/portForward/default/pf", &["SPDY/3.1+portforward.k8s.io"])
        .await
        .unwrap();
    assert_eq!(proto, "SPDY/3.1+portforward.k8s.io");
    let conn = Connection::new(
        kubelet_server::ws::byte_stream(ws),
        kubelet_server::spdy::Role::Client,
    );
    assert_eq!(echo_through(&conn, 0).await.unwrap(), "ping\n");

    assert_eq!(
        w.spdy("/portForward/default/nope", &["portforward.k8s.io"])
            .await
            .err()
            .unwrap(),
        (404, "pod does not exist".into())
    );
    assert_eq!(
        w.websocket("/portForward/default/pf", &["v4.channel.k8s.io"])
            .await
            .err()
            .unwrap(),
        (400, "query parameter \"port\" is required".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_and_metrics() {
    let w = World::new().await;
    let uid = w.add_pod("busy", &["spin"]);
    w.start(
        "busy",
        &uid,
        "spin",
        &["sh", "-c", "while :; do :; done"],
        None,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (status, body) = w.get("/stats/summary").await;
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["node"]["nodeName"], "node-1");
    assert!(v["node"]["cpu"]["usageCoreNanoSeconds"].as_u64().unwrap() > 0);
    assert!(v["node"]["memory"]["workingSetBytes"].as_u64().unwrap() > 0);
    assert!(v["node"]["fs"]["capacityBytes"].as_u64().unwrap() > 0);
    assert!(v["node"]["rlimit"]["maxpid"].as_u64().unwrap() > 0);
    let pod = v["pods"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["podRef"]["name"] == "busy")
        .unwrap();
    assert_eq!(
        pod["podRef"],
        serde_json::json!({"name": "busy", "namespace": "default", "uid": uid})
    );
    let c = &pod["containers"][0];
    assert_eq!(c["name"], "spin");
    // A busy loop uses most of a core.
    let cores = c["cpu"]["usageNanoCores"].as_u64().unwrap();
    assert!(cores > 200_000_000, "{cores}");
    assert!(c["memory"]["workingSetBytes"].as_u64().unwrap() > 0);
    assert!(c["logs"]["usedBytes"].is_u64());
    assert!(pod["cpu"]["usageCoreNanoSeconds"].as_u64().unwrap() > 0);
    assert!(pod["memory"]["usageBytes"].as_u64().unwrap() > 0);

    // The second call derives rates from the kept sample.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (_, body) = w.get("/stats/summary?only_cpu_and_memory=true").await;
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(v["node"].get("fs").is_none());
    let pod = v["pods"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["podRef"]["name"] == "busy")
        .unwrap();
    assert!(
        pod["containers"][0]["cpu"]["usageNanoCores"]
            .as_u64()
            .unwrap()
            > 200_000_000
    );

    let (status, text) = w.get("/metrics/resource").await;
    assert_eq!(status, 200);
    for needle in [
        "# HELP container_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by the container in core-seconds\n# TYPE container_cpu_usage_seconds_total counter\ncontainer_cpu_usage_seconds_total{container=\"spin\",namespace=\"default\",pod=\"busy\"} ",
        "container_memory_working_set_bytes{container=\"spin\",namespace=\"default\",pod=\"busy\"} ",
        "container_start_time_seconds{container=\"spin\",namespace=\"default\",pod=\"busy\"} 1.",
        "\nnode_cpu_usage_seconds_total ",
        "\nnode_memory_working_set_bytes ",
        "pod_cpu_usage_seconds_total{namespace=\"default\",pod=\"busy\"} ",
        "pod_memory_working_set_bytes{namespace=\"default\",pod=\"busy\"} ",
        "\nresource_scrape_error 0\n",
    ] {
        assert!(text.contains(needle), "{needle:?} missing in\n{text}");
    }
    eventually("a listed pod", Duration::from_secs(1), || true).await;
}
