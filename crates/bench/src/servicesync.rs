//! The Service programming benchmark: how long an endpoint change takes to reach
//! the data path. `ferrokube server` (no agent) and `ferrokube kube-proxy`
//! (nftables) run in a network namespace of their own, made by this benchmark's
//! thread with `unshare` (so nothing it programs touches the host, and it goes when
//! the thread ends). N Services (default 1,000) with an EndpointSlice of M
//! endpoints each (default 10) are created; the time until the whole set is
//! programmed is measured, then S times one endpoint of one Service is replaced, and
//! timed from the update request to the moment the kernel commits the new
//! endpoint's DNAT rule, as `nft monitor` reports it. Changes are spaced beyond
//! the proxy's default `--min-sync-period` (1 s), so each measures one sync. Then,
//! with all of that programmed: new TCP connections per second through a cluster
//! IP against directly to the endpoint (local listeners on a veth pair in the
//! namespace), and `ferrokube cluster-dns` answering A queries for those Services
//! (queries per second and latency). Then the same proxy in iptables mode (through
//! Debian's default `iptables`, whose nf_tables rules `nft monitor` also reports):
//! the time from its start to all programmed, the same endpoint changes and the
//! connection rate; and the connection rate of the userspace mode.

use crate::client::{Pool, Target};
use crate::{ms, percentile, start_server_with, Proc};
use anyhow::{bail, Context, Result};
use bytes::Bytes;
use http::Method;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const NS: &str = "svcsync";

/// Sizes of the scenario.
pub(crate) struct Sizes {
    pub(crate) services: usize,
    pub(crate) endpoints: usize,
    pub(crate) samples: usize,
}

/// The address of endpoint `e` of service `s` (up to 53,000 services of 254).
fn endpoint_ip(s: usize, e: usize) -> String {
    format!("10.{}.{}.{}", 42 + s / 256, s % 256, e + 1)
}

/// The replacement address of change `i`: never one of the above.
fn fresh_ip(i: usize) -> String {
    format!("10.250.{}.{}", (i / 256) % 256, i % 256)
}

fn slice_body(s: usize, ips: &[String]) -> Bytes {
    let endpoints: Vec<Value> = ips
        .iter()
        .map(|ip| json!({"addresses": [ip], "conditions": {"ready": true}}))
        .collect();
    let v = json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": format!("svc-{s}-1"), "namespace": NS,
                     "labels": {"kubernetes.io/service-name": format!("svc-{s}")}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": endpoints
    });
    Bytes::from(serde_json::to_vec(&v).unwrap_or_default())
}

/// Lines of `nft monitor`, each with the time it was read.
fn monitor() -> Result<(Proc, mpsc::Receiver<(Instant, String)>)> {
    let mut child = Command::new("nft")
        .args(["monitor", "rules"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("starting nft monitor")?;
    let out = child.stdout.take().context("nft monitor stdout")?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send((Instant::now(), line)).is_err() {
                break;
            }
        }
    });
    Ok((Proc(child), rx))
}

/// Waits for a monitored rule DNATing to `needle` (`address:port`); returns when
/// it was read.
fn wait_for(
    rx: &mpsc::Receiver<(Instant, String)>,
    needle: &str,
    limit: Duration,
) -> Result<Instant> {
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok((at, line)) if dnat_target(&line) == Some(needle) => return Ok(at),
            Ok(_) => {}
            Err(_) => bail!("{needle:?} not programmed within {limit:?}"),
        }
    }
}

async fn scenario(bin: &Path, sizes: &Sizes) -> Result<Value> {
    let up = Command::new("ip")
        .args(["link", "set", "lo", "up"])
        .status()?;
    if !up.success() {
        bail!("bringing lo up in the benchmark's namespace");
    }
    let dir = tempfile::tempdir()?;
    let server = start_server_with(bin, dir.path(), &[], false)?;
    let target = Target::from_kubeconfig(&server.kubeconfig)?;
    let pool = Pool::new(&target, 4).await?;
    pool.expect(
        Method::POST,
        "/api/v1/namespaces",
        Some(Bytes::from(
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}).to_string(),
        )),
    )
    .await?;
    let (_monitor, events) = monitor()?;
    let proxy = start_proxy(bin, &server.kubeconfig, "nftables")?;

    // The whole set, created as fast as the API takes it.
    let started = Instant::now();
    let mut tasks = Vec::new();
    for s in 0..sizes.services {
        let pool = pool.clone();
        let ips: Vec<String> = (0..sizes.endpoints).map(|e| endpoint_ip(s, e)).collect();
        tasks.push(tokio::spawn(async move {
            let svc = json!({
                "apiVersion": "v1", "kind": "Service",
                "metadata": {"name": format!("svc-{s}"), "namespace": NS},
                "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}]}
            });
            pool.expect(
                Method::POST,
                &format!("/api/v1/namespaces/{NS}/services"),
                Some(Bytes::from(svc.to_string())),
            )
            .await?;
            pool.expect(
                Method::POST,
                &format!("/apis/discovery.k8s.io/v1/namespaces/{NS}/endpointslices"),
                Some(slice_body(s, &ips)),
            )
            .await?;
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let created = started.elapsed();
    // Each Service's last endpoint: everything is programmed once all are.
    let all_at = wait_all_programmed(&events, sizes)?;
    let initial = all_at - started;
    // Let the proxy settle (a sync may still be running for late events).
    tokio::time::sleep(Duration::from_secs(3)).await;
    while events.try_recv().is_ok() {}

    let mut lat = change_latencies(&pool, &events, sizes).await?;
    let proxy_kib = crate::rss_kib(proxy.0.id());
    let (direct, via_vip, vip_addr) = throughput(&pool).await?;
    let dns = dns_rate(bin, &server.kubeconfig, sizes.services).await?;
    // The iptables mode in place of the nftables one: from its start to all
    // programmed, endpoint changes, and the same Service's connection rate.
    drop(proxy);
    cleanup(bin)?;
    while events.try_recv().is_ok() {}
    let ipt_started = Instant::now();
    let ipt = start_proxy(bin, &server.kubeconfig, "iptables")?;
    let ipt_initial = wait_all_programmed(&events, sizes)? - ipt_started;
    tokio::time::sleep(Duration::from_secs(3)).await;
    while events.try_recv().is_ok() {}
    let mut ipt_lat = change_latencies(&pool, &events, sizes).await?;
    wait_served(&vip_addr).await?;
    let via_iptables = connection_rate(&vip_addr).await;
    let ipt_kib = crate::rss_kib(ipt.0.id());
    drop(ipt);
    cleanup(bin)?;

    // The same Service through the userspace mode.
    let userspace = start_proxy(bin, &server.kubeconfig, "userspace")?;
    wait_served(&vip_addr).await?;
    let via_userspace = connection_rate(&vip_addr).await;
    let userspace_kib = crate::rss_kib(userspace.0.id());
    drop(userspace);
    let _ = Command::new(bin).args(["kube-proxy", "--cleanup"]).status();
    drop(server);
    lat.sort();
    let what = format!(
        "{} services × {} endpoints",
        sizes.services, sizes.endpoints
    );
    crate::line(
        &format!("kube-proxy (nftables), {what}: created → all programmed"),
        format!(
            "{:.2} s (API creates took {:.2} s); kube-proxy RSS {:.1} MB",
            initial.as_secs_f64(),
            created.as_secs_f64(),
            proxy_kib as f64 / 1024.0
        ),
    );
    crate::line(
        &format!("kube-proxy (nftables), {what}: endpoint change → data path"),
        format!(
            "p50 {} ms, p99 {} ms ({} changes)",
            ms(percentile(&lat, 0.5)),
            ms(percentile(&lat, 0.99)),
            lat.len()
        ),
    );
    crate::line(
        "kube-proxy (nftables): new connections/s, direct to a pod address vs through its cluster IP",
        format!(
            "{direct:.0}/s direct, {via_vip:.0}/s through the cluster IP (ratio {:.2})",
            via_vip / direct.max(1.0)
        ),
    );
    ipt_lat.sort();
    crate::line(
        &format!("kube-proxy (iptables), {what}: proxy start → all programmed"),
        format!(
            "{:.2} s; kube-proxy RSS {:.1} MB",
            ipt_initial.as_secs_f64(),
            ipt_kib as f64 / 1024.0
        ),
    );
    crate::line(
        &format!("kube-proxy (iptables), {what}: endpoint change → data path"),
        format!(
            "p50 {} ms, p99 {} ms ({} changes)",
            ms(percentile(&ipt_lat, 0.5)),
            ms(percentile(&ipt_lat, 0.99)),
            ipt_lat.len()
        ),
    );
    crate::line(
        "kube-proxy (iptables): new connections/s through the same cluster IP",
        format!(
            "{via_iptables:.0}/s (ratio to direct {:.2})",
            via_iptables / direct.max(1.0)
        ),
    );
    crate::line(
        "kube-proxy (userspace): new connections/s through the same cluster IP",
        format!(
            "{via_userspace:.0}/s (ratio to direct {:.2}); proxy RSS {:.1} MB",
            via_userspace / direct.max(1.0),
            userspace_kib as f64 / 1024.0
        ),
    );
    crate::line(
        &format!(
            "cluster DNS: A queries of {} Services over UDP, 32 in flight",
            sizes.services
        ),
        format!(
            "{:.0} queries/s, p50 {} ms, p99 {} ms",
            dns.qps,
            ms(dns.p50),
            ms(dns.p99)
        ),
    );
    Ok(json!({
        "svcsync_conn_per_s_direct": direct,
        "svcsync_conn_per_s_cluster_ip": via_vip,
        "svcsync_conn_per_s_userspace": via_userspace,
        "svcsync_conn_per_s_iptables": via_iptables,
        "svcsync_iptables_initial_s": ipt_initial.as_secs_f64(),
        "svcsync_iptables_change_p50_ms": ms(percentile(&ipt_lat, 0.5)),
        "svcsync_iptables_change_p99_ms": ms(percentile(&ipt_lat, 0.99)),
        "svcsync_iptables_rss_mb": ipt_kib as f64 / 1024.0,
        "svcsync_userspace_rss_mb": userspace_kib as f64 / 1024.0,
        "dns_qps": dns.qps,
        "dns_p99_ms": ms(dns.p99),
        "svcsync_initial_s": initial.as_secs_f64(),
        "svcsync_change_p50_ms": ms(percentile(&lat, 0.5)),
        "svcsync_change_p99_ms": ms(percentile(&lat, 0.99)),
        "svcsync_proxy_rss_mb": proxy_kib as f64 / 1024.0,
    }))
}

/// The `address:port` a monitored rule DNATs to.
fn dnat_target(line: &str) -> Option<&str> {
    let n = line.find("dnat to ")?;
    line[n + 8..].split_whitespace().next()
}

/// Waits until the monitor has shown every Service's last endpoint programmed;
/// returns when the last of them was.
fn wait_all_programmed(
    events: &mpsc::Receiver<(Instant, String)>,
    sizes: &Sizes,
) -> Result<Instant> {
    let mut needles: std::collections::HashSet<String> = (0..sizes.services)
        .map(|s| {
            format!(
                "dnat to {}:8080",
                endpoint_ip(s, sizes.endpoints.saturating_sub(1))
            )
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut all_at = Instant::now();
    while !needles.is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        let (at, line) = events.recv_timeout(left).map_err(|_| {
            anyhow::anyhow!("{} services not programmed within 300 s", needles.len())
        })?;
        if let Some(target) = dnat_target(&line) {
            if needles.remove(&format!("dnat to {target}")) {
                all_at = at;
            }
        }
    }
    Ok(all_at)
}

/// `sizes.samples` times, one endpoint of one Service replaced: the time from the
/// update request to the kernel committing the new endpoint's DNAT rule.
async fn change_latencies(
    pool: &Pool,
    events: &mpsc::Receiver<(Instant, String)>,
    sizes: &Sizes,
) -> Result<Vec<Duration>> {
    let mut lat = Vec::new();
    for i in 0..sizes.samples {
        let s = (i * 7919) % sizes.services.max(1);
        let mut ips: Vec<String> = (0..sizes.endpoints).map(|e| endpoint_ip(s, e)).collect();
        let fresh = fresh_ip(i);
        if let Some(first) = ips.first_mut() {
            first.clone_from(&fresh);
        }
        let sent = Instant::now();
        pool.expect(
            Method::PUT,
            &format!("/apis/discovery.k8s.io/v1/namespaces/{NS}/endpointslices/svc-{s}-1"),
            Some(slice_body(s, &ips)),
        )
        .await?;
        let at = wait_for(events, &format!("{fresh}:8080"), Duration::from_secs(30))?;
        lat.push(at - sent);
        // Put it back for the next round, and wait past the min-sync-period.
        let back: Vec<String> = (0..sizes.endpoints).map(|e| endpoint_ip(s, e)).collect();
        pool.expect(
            Method::PUT,
            &format!("/apis/discovery.k8s.io/v1/namespaces/{NS}/endpointslices/svc-{s}-1"),
            Some(slice_body(s, &back)),
        )
        .await?;
        tokio::time::sleep(Duration::from_millis(1100)).await;
        while events.try_recv().is_ok() {}
        tokio::time::sleep(Duration::from_millis(1100)).await;
        while events.try_recv().is_ok() {}
    }
    Ok(lat)
}

/// `ferrokube kube-proxy --cleanup`: no mode's rules left.
fn cleanup(bin: &Path) -> Result<()> {
    if !Command::new(bin)
        .args(["kube-proxy", "--cleanup"])
        .status()?
        .success()
    {
        bail!("kube-proxy --cleanup failed");
    }
    Ok(())
}

/// `ferrokube kube-proxy` in `mode` for the benchmark's node.
fn start_proxy(bin: &Path, kubeconfig: &Path, mode: &str) -> Result<Proc> {
    let proxy = Command::new(bin)
        .args(["kube-proxy", "--kubeconfig"])
        .arg(kubeconfig)
        .args([
            "--hostname-override",
            "bench",
            "--cluster-cidr",
            "10.42.0.0/16",
            "--proxy-mode",
            mode,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting kube-proxy")?;
    Ok(Proc(proxy))
}

/// Waits (up to 30 s) until a connection to `addr` is answered.
async fn wait_served(addr: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while connect_once(addr).await.is_err() {
        if Instant::now() > deadline {
            bail!("{addr} not served within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// Two local endpoints (addresses of a veth pair inside the namespace, each
/// answering every connection with one line) behind a Service: new connections
/// per second made directly to an endpoint, then through the cluster IP, 16 at a
/// time for 3 s each. Also returns the cluster IP's address.
async fn throughput(pool: &Pool) -> Result<(f64, f64, String)> {
    for cmd in [
        "link add fkbA type veth peer name fkbB",
        "link set fkbA up",
        "link set fkbB up",
        "addr add 10.99.0.5/32 dev fkbA",
        "addr add 10.99.0.6/32 dev fkbB",
        "route add 10.43.0.0/16 dev fkbA",
    ] {
        let args: Vec<&str> = cmd.split(' ').collect();
        if !Command::new("ip").args(&args).status()?.success() {
            bail!("ip {cmd}");
        }
    }
    for ip in ["10.99.0.5", "10.99.0.6"] {
        let l = tokio::net::TcpListener::bind((ip, 8080)).await?;
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                tokio::spawn(async move {
                    use tokio::io::AsyncWriteExt;
                    let _ = s.write_all(b"ok\n").await;
                });
            }
        });
    }
    let svc = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "rps", "namespace": NS},
        "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}]}
    });
    let created = pool
        .expect(
            Method::POST,
            &format!("/api/v1/namespaces/{NS}/services"),
            Some(Bytes::from(svc.to_string())),
        )
        .await?;
    let created: Value = serde_json::from_slice(&created)?;
    let vip = created["spec"]["clusterIP"]
        .as_str()
        .context("the Service has no cluster IP")?
        .to_string();
    let slice = json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "rps-1", "namespace": NS,
                     "labels": {"kubernetes.io/service-name": "rps"}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": [{"addresses": ["10.99.0.5"], "conditions": {"ready": true}},
                      {"addresses": ["10.99.0.6"], "conditions": {"ready": true}}]
    });
    pool.expect(
        Method::POST,
        &format!("/apis/discovery.k8s.io/v1/namespaces/{NS}/endpointslices"),
        Some(Bytes::from(slice.to_string())),
    )
    .await?;
    let vip_addr = format!("{vip}:80");
    // Programmed once a connection through the cluster IP is answered.
    wait_served(&vip_addr).await?;
    let direct = connection_rate("10.99.0.5:8080").await;
    let via_vip = connection_rate(&vip_addr).await;
    Ok((direct, via_vip, vip_addr))
}

/// One connection: connect, read the line, close.
async fn connect_once(addr: &str) -> std::io::Result<()> {
    use tokio::io::AsyncReadExt;
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    let mut buf = [0u8; 8];
    let n = s.read(&mut buf).await?;
    if n == 0 {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    Ok(())
}

/// Completed connections per second to `addr`, 16 at a time for 3 s.
async fn connection_rate(addr: &str) -> f64 {
    let until = Instant::now() + Duration::from_secs(3);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let addr = addr.to_string();
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            while Instant::now() < until {
                if connect_once(&addr).await.is_ok() {
                    n += 1;
                }
            }
            n
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap_or(0);
    }
    total as f64 / started.elapsed().as_secs_f64()
}

/// What the DNS load measured.
struct DnsRate {
    qps: f64,
    p50: Duration,
    p99: Duration,
}

/// A DNS query for the A record of `name`, with id `id`.
fn dns_query(id: u16, name: &str) -> Vec<u8> {
    let mut q = Vec::with_capacity(64);
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]); // RD, one question
    for label in name.split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]); // root, type A, class IN
    q
}

/// `ferrokube cluster-dns` on a loopback port, answering A queries for the
/// benchmark's Services, 32 in flight (one socket each) for 3 s.
async fn dns_rate(bin: &Path, kubeconfig: &Path, services: usize) -> Result<DnsRate> {
    let port = crate::free_port();
    let child = Command::new(bin)
        .args(["cluster-dns", "--kubeconfig"])
        .arg(kubeconfig)
        .args(["--dns-bind-address", &format!("127.0.0.1:{port}")])
        .args(["--upstream-resolv-conf", "/dev/null"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting cluster-dns")?;
    let _dns = Proc(child);
    let server = format!("127.0.0.1:{port}");
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
    sock.connect(&server).await?;
    // Ready once the last Service resolves.
    let last = format!("svc-{}.{NS}.svc.cluster.local", services.saturating_sub(1));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        sock.send(&dns_query(1, &last)).await?;
        let mut buf = [0u8; 512];
        let got = tokio::time::timeout(Duration::from_millis(200), sock.recv(&mut buf)).await;
        if let Ok(Ok(n)) = got {
            // NOERROR with an answer.
            if n > 8 && buf[3] & 0x0f == 0 && u16::from_be_bytes([buf[6], buf[7]]) > 0 {
                break;
            }
        }
        if Instant::now() > deadline {
            bail!("cluster DNS did not answer for {last} within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let until = Instant::now() + Duration::from_secs(3);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..32usize {
        let server = server.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let Ok(sock) = tokio::net::UdpSocket::bind("127.0.0.1:0").await else {
                return lat;
            };
            if sock.connect(&server).await.is_err() {
                return lat;
            }
            let mut i = w;
            let mut buf = [0u8; 512];
            while Instant::now() < until {
                let name = format!("svc-{}.{NS}.svc.cluster.local", i % services.max(1));
                let id = (i % 65536) as u16;
                let sent = Instant::now();
                if sock.send(&dns_query(id, &name)).await.is_err() {
                    break;
                }
                match tokio::time::timeout(Duration::from_secs(1), sock.recv(&mut buf)).await {
                    Ok(Ok(n)) if n > 2 && u16::from_be_bytes([buf[0], buf[1]]) == id => {
                        lat.push(sent.elapsed())
                    }
                    _ => {}
                }
                i += 32;
            }
            lat
        }));
    }
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await.unwrap_or_default());
    }
    let elapsed = started.elapsed();
    lat.sort();
    Ok(DnsRate {
        qps: lat.len() as f64 / elapsed.as_secs_f64(),
        p50: percentile(&lat, 0.5),
        p99: percentile(&lat, 0.99),
    })
}

/// Runs the scenario on a thread of its own in a fresh network namespace.
pub(crate) async fn run_all(bin: &Path, sizes: Sizes, results: &mut Value) -> Result<()> {
    let bin: PathBuf = bin.to_path_buf();
    let handle = std::thread::spawn(move || -> Result<Value> {
        // SAFETY: unshare affects only this thread (and the processes it starts).
        if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
            bail!("unshare(CLONE_NEWNET): {}", std::io::Error::last_os_error());
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        rt.block_on(scenario(&bin, &sizes))
    });
    let out = tokio::task::spawn_blocking(move || handle.join())
        .await?
        .map_err(|_| anyhow::anyhow!("the service benchmark's thread panicked"))??;
    if let (Some(r), Some(o)) = (results.as_object_mut(), out.as_object()) {
        r.extend(o.clone());
    }
    Ok(())
}
