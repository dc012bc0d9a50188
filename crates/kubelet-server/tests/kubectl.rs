//! The real kubectl binaries (1.27, 1.30, 1.33 when installed under
//! `/usr/lib/google-cloud-sdk/bin/kubectl.<version>`) against this server, through a
//! minimal stand-in for the API server: it answers discovery and `GET pod`, and forwards
//! the `exec`, `attach`, `log` and `portforward` subresources byte for byte to the
//! kubelet as the API server's proxy does (kubectl 1.27 speaks SPDY, 1.30+ WebSocket v5
//! for exec and, from 1.31, SPDY tunnelled in a WebSocket for port-forward).

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use common::World;
use container_runtime::ContainerIo;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn kubectl(version: &str) -> Option<PathBuf> {
    let p = PathBuf::from(format!("/usr/lib/google-cloud-sdk/bin/kubectl.{version}"));
    p.is_file().then_some(p)
}

/// The stand-in API server.
async fn apiserver(w: &World) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let kubelet = w.addr;
    let connector = w.connector(Some(&w.pki));
    let host = w.host.clone();
    tokio::spawn(async move {
        loop {
            let Ok((c, _)) = listener.accept().await else {
                return;
            };
            let connector = connector.clone();
            let pods: Vec<serde_json::Value> = kubelet_server::Host::pods(host.as_ref())
                .iter()
                .map(|p| serde_json::to_value(p).unwrap())
                .collect();
            tokio::spawn(async move {
                let _ = serve(c, kubelet, connector, pods).await;
            });
        }
    });
    addr
}

async fn respond(c: &mut TcpStream, status: &str, body: &str) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    c.write_all(head.as_bytes()).await?;
    c.write_all(body.as_bytes()).await?;
    c.shutdown().await
}

async fn serve(
    mut c: TcpStream,
    kubelet: SocketAddr,
    connector: tokio_rustls::TlsConnector,
    pods: Vec<serde_json::Value>,
) -> std::io::Result<()> {
    let mut buf = Vec::new();
    let head_end = loop {
        let mut chunk = [0u8; 4096];
        let n = c.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let rest = buf[head_end..].to_vec();
    let mut lines = head.split("\r\n");
    let first = lines.next().unwrap_or_default();
    let mut parts = first.split(' ');
    let method = parts.next().unwrap_or_default();
    let target = parts.next().unwrap_or_default();
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let seg: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match seg.as_slice() {
        ["api"] => {
            respond(&mut c, "200 OK", r#"{"kind":"APIVersions","versions":["v1"],"serverAddressByClientCIDRs":[{"clientCIDR":"0.0.0.0/0","serverAddress":"127.0.0.1"}]}"#).await
        }
        ["apis"] => {
            respond(&mut c, "200 OK", r#"{"kind":"APIGroupList","apiVersion":"v1","groups":[]}"#).await
        }
        ["api", "v1"] => {
            let sub = |name: &str, kind: &str| {
                format!(r#"{{"name":"{name}","singularName":"","namespaced":true,"kind":"{kind}","verbs":["create","get"]}}"#)
            };
            let body = format!(
                r#"{{"kind":"APIResourceList","groupVersion":"v1","resources":[{{"name":"pods","singularName":"pod","namespaced":true,"kind":"Pod","verbs":["get","list"],"shortNames":["po"]}},{},{},{},{}]}}"#,
                sub("pods/exec", "PodExecOptions"),
                sub("pods/attach", "PodAttachOptions"),
                sub("pods/log", "Pod"),
                sub("pods/portforward", "PodPortForwardOptions"),
            );
            respond(&mut c, "200 OK", &body).await
        }
        ["api", "v1", "namespaces", ns, "pods", name] => {
            match pods.iter().find(|p| p["metadata"]["name"] == *name) {
                Some(p) => respond(&mut c, "200 OK", &p.to_string()).await,
                None => {
                    let body = format!(
                        r#"{{"kind":"Status","apiVersion":"v1","metadata":{{}},"status":"Failure","message":"pods \"{name}\" not found","reason":"NotFound","details":{{"name":"{name}","kind":"pods"}},"code":404}}"#
                    );
                    let _ = ns;
                    respond(&mut c, "404 Not Found", &body).await
                }
            }
        }
        ["api", "v1", "namespaces", ns, "pods", name, sub] => {
            let pod = pods.iter().find(|p| p["metadata"]["name"] == *name);
            let container = url::form_urlencoded::parse(query.as_bytes())
                .find(|(k, _)| k == "container")
                .map(|(_, v)| v.into_owned())
                .or_else(|| {
                    pod.and_then(|p| p["spec"]["containers"][0]["name"].as_str().map(str::to_string))
                })
                .unwrap_or_default();
            let new_path = match *sub {
                "exec" => format!("/exec/{ns}/{name}/{container}"),
                "attach" => format!("/attach/{ns}/{name}/{container}"),
                "log" => format!("/containerLogs/{ns}/{name}/{container}"),
                "portforward" => format!("/portForward/{ns}/{name}"),
                _ => return respond(&mut c, "404 Not Found", "{}").await,
            };
            // The API server's names for the streams towards the kubelet.
            let query: String = url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(
                    url::form_urlencoded::parse(query.as_bytes())
                        .filter(|(k, _)| k != "container")
                        .filter(|(k, v)| {
                            !matches!(k.as_ref(), "stdin" | "stdout" | "stderr" | "tty") || v == "true"
                        })
                        .map(|(k, v)| match k.as_ref() {
                            "stdin" => ("input".to_string(), "1".to_string()),
                            "stdout" => ("output".to_string(), "1".to_string()),
                            "stderr" => ("error".to_string(), "1".to_string()),
                            "tty" => ("tty".to_string(), "1".to_string()),
                            _ => (k.into_owned(), v.into_owned()),
                        }),
                )
                .finish();
            let tcp = TcpStream::connect(kubelet).await?;
            let mut k = connector
                .connect(ServerName::try_from("localhost").unwrap(), tcp)
                .await?;
            let mut out = format!("{method} {new_path}?{query} HTTP/1.1\r\n");
            for l in lines.filter(|l| !l.is_empty()) {
                if l.to_ascii_lowercase().starts_with("host:") {
                    continue;
                }
                out.push_str(l);
                out.push_str("\r\n");
            }
            out.push_str("Host: localhost\r\n\r\n");
            k.write_all(out.as_bytes()).await?;
            k.write_all(&rest).await?;
            let _ = tokio::io::copy_bidirectional(&mut c, &mut k).await;
            Ok(())
        }
        _ => respond(&mut c, "404 Not Found", "{}").await,
    }
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

async fn run(bin: &PathBuf, api: SocketAddr, args: &[&str], stdin: Option<&[u8]>) -> Run {
    let mut cmd = tokio::process::Command::new(bin);
    cmd.env("KUBECONFIG", "/nonexistent")
        .env("HOME", "/tmp")
        .arg(format!("--server=http://{api}"))
        .args(args)
        .stdin(if stdin.is_some() {
            std::process::Stdio::piped()
        } else {
            std::process::Stdio::null()
        })
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().unwrap();
    if let Some(data) = stdin {
        let mut s = child.stdin.take().unwrap();
        s.write_all(data).await.unwrap();
        drop(s);
    }
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("kubectl hung")
        .unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

async fn exec_logs_attach(version: &str) {
    let Some(bin) = kubectl(version) else {
        eprintln!("kubectl {version} not installed; skipping");
        return;
    };
    let w = World::new().await;
    let uid = w.add_pod("p", &["main"]);
    let sb = w.sandbox(&uid).await;
    w.start(
        "p",
        &uid,
        "main",
        &["sh", "-c", "echo started; echo warn >&2; exec sleep 1000"],
        Some(&sb),
    )
    .await;
    let api = apiserver(&w).await;

    let r = run(
        &bin,
        api,
        &[
            "exec",
            "p",
            "--",
            "sh",
            "-c",
            "echo hi; echo err >&2; exit 3",
        ],
        None,
    )
    .await;
    assert_eq!((r.code, r.stdout.as_str()), (3, "hi\n"), "{}", r.stderr);
    assert!(r.stderr.contains("err\n"), "{}", r.stderr);

    let r = run(
        &bin,
        api,
        &["exec", "-i", "p", "-c", "main", "--", "cat"],
        Some(b"hello\nworld\n"),
    )
    .await;
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "hello\nworld\n"),
        "{}",
        r.stderr
    );

    // kubectl cp from the pod: tar over exec's stdout (2 MB of busybox).
    let dest = w.tmp.path().join(format!("copied-{version}"));
    let r = run(
        &bin,
        api,
        &["cp", "p:/bin/busybox", dest.to_str().unwrap()],
        None,
    )
    .await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        std::fs::read(&dest).unwrap(),
        std::fs::read("/bin/busybox").unwrap()
    );

    // kubectl cp into the pod: tar over exec's stdin, which must see end of input.
    let r = run(
        &bin,
        api,
        &["cp", dest.to_str().unwrap(), "p:/tmp/back"],
        None,
    )
    .await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = run(
        &bin,
        api,
        &["exec", "p", "--", "cmp", "/tmp/back", "/bin/busybox"],
        None,
    )
    .await;
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);

    let r = run(&bin, api, &["exec", "p", "--", "nope"], None).await;
    assert_ne!(r.code, 0);
    assert!(
        r.stderr.contains("executable file not found"),
        "{}",
        r.stderr
    );

    // A terminal through `script`, so kubectl sees one.
    let cmd = format!(
        "{} --server=http://{api} exec -it p -- sh -c 'tty; stty size'",
        bin.display()
    );
    let out = tokio::process::Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .env("KUBECONFIG", "/nonexistent")
        .env("HOME", "/tmp")
        .stdin(std::process::Stdio::piped())
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("/dev/pts/"), "{text:?}");

    let r = run(&bin, api, &["logs", "p"], None).await;
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "started\nwarn\n"),
        "{}",
        r.stderr
    );
    let r = run(&bin, api, &["logs", "p", "--tail=1", "--timestamps"], None).await;
    assert!(r.stdout.ends_with("Z warn\n"), "{}", r.stdout);
    let r = run(&bin, api, &["logs", "p", "--previous"], None).await;
    assert_ne!(r.code, 0);
    // (The API server turns the kubelet's 400 text into a BadRequest status; this
    // stand-in passes bytes through, so only the class of error shows.)
    assert!(r.stderr.contains("(BadRequest)"), "{}", r.stderr);

    // Attach streams what the container writes from now on, until it exits.
    let uid = w.add_pod("att", &["main"]);
    w.start(
        "att",
        &uid,
        "main",
        &["sh", "-c", "sleep 2; echo late; sleep 1"],
        None,
    )
    .await;
    let r = run(&bin, api, &["attach", "att"], None).await;
    assert_eq!((r.code, r.stdout.as_str()), (0, "late\n"), "{}", r.stderr);
}

/// `kubectl attach -i` to a container with `stdin` and `stdinOnce`: the input reaches it
/// and kubectl's end of input closes it; `kubectl attach -it` to a container with a
/// terminal drives its shell.
async fn attach_input(version: &str) {
    let Some(bin) = kubectl(version) else {
        eprintln!("kubectl {version} not installed; skipping");
        return;
    };
    let w = World::new().await;
    let uid = w.add_pod("in", &["main"]);
    let once = ContainerIo {
        stdin: true,
        stdin_once: true,
        tty: false,
    };
    let script = "while read l; do echo got:$l; done; echo bye";
    w.start_with_io("in", &uid, "main", &["sh", "-c", script], None, once)
        .await;
    let api = apiserver(&w).await;
    let r = run(&bin, api, &["attach", "-i", "in"], Some(b"x\ny\n")).await;
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "got:x\ngot:y\nbye\n"),
        "{}",
        r.stderr
    );

    let uid = w.add_pod("term", &["main"]);
    let tty = ContainerIo {
        stdin: true,
        stdin_once: true,
        tty: true,
    };
    w.start_with_io("term", &uid, "main", &["sh"], None, tty)
        .await;
    // `script` gives kubectl a terminal; what we write is typed into it.
    let cmd = format!("{} --server=http://{api} attach -it term", bin.display());
    let mut child = tokio::process::Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .env("KUBECONFIG", "/nonexistent")
        .env("HOME", "/tmp")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let mut output = child.stdout.take().unwrap();
    // Typed only once kubectl is attached, which it announces (before that the local
    // terminal would take the line).
    let mut text = String::new();
    tokio::time::timeout(Duration::from_secs(30), async {
        let mut buf = [0u8; 4096];
        while !text.contains("pressing enter") {
            let n = output.read(&mut buf).await.unwrap();
            assert!(n > 0, "kubectl ended early: {text:?}");
            text.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    })
    .await
    .unwrap_or_else(|_| panic!("kubectl did not attach: {text:?}"));
    input.write_all(b"echo term=$TERM; exit 5\n").await.unwrap();
    tokio::time::timeout(Duration::from_secs(60), output.read_to_string(&mut text))
        .await
        .unwrap_or_else(|_| panic!("kubectl attach -it hung: {text:?}"))
        .unwrap();
    drop(input);
    let _ = child.wait().await;
    assert!(text.contains("term=xterm"), "{text:?}");
}

async fn port_forward(version: &str) {
    let Some(bin) = kubectl(version) else {
        eprintln!("kubectl {version} not installed; skipping");
        return;
    };
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
    let api = apiserver(&w).await;
    let local = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut child = tokio::process::Command::new(&bin)
        .env("KUBECONFIG", "/nonexistent")
        .env("HOME", "/tmp")
        .arg(format!("--server=http://{api}"))
        .args(["port-forward", "pod/pf", &format!("{local}:8080")])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut answer = String::new();
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", local)).await else {
            continue;
        };
        if s.write_all(b"ping\n").await.is_err() {
            continue;
        }
        let mut buf = [0u8; 16];
        match tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => {
                answer = String::from_utf8_lossy(&buf[..n]).into_owned();
                break;
            }
            _ => continue,
        }
    }
    let _ = child.start_kill();
    let out = child.wait_with_output().await.unwrap();
    assert_eq!(
        answer,
        "ping\n",
        "kubectl said: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

macro_rules! versions {
    ($body:ident) => {
        mod $body {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn v1_27() {
                super::$body("1.27").await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn v1_30() {
                super::$body("1.30").await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn v1_33() {
                super::$body("1.33").await
            }
        }
    };
}

versions!(exec_logs_attach);
versions!(port_forward);
versions!(attach_input);
