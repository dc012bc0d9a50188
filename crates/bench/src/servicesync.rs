//! The Service programming benchmark: how long an endpoint change takes to reach
//! the data path. `ferrokube server` (no agent) and `ferrokube kube-proxy`
//! (nftables) run in a network namespace of their own, made by this benchmark's
//! thread with `unshare` (so nothing it programs touches the host, and it goes when
//! the thread ends). N Services (default 1,000) with an EndpointSlice of M
//! endpoints each (default 10) are created; the time until the whole set is
//! programmed is measured, then S times one endpoint of one Service is replaced, and
//! timed from the update request to the moment the kernel commits the new
//! endpoint's DNAT rule, as `nft monitor` reports it. Changes are spaced beyond
//! the proxy's default `--min-sync-period` (1 s), so each measures one sync.

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

/// Waits for a monitor line containing `needle`; returns when it was read.
fn wait_for(
    rx: &mpsc::Receiver<(Instant, String)>,
    needle: &str,
    limit: Duration,
) -> Result<Instant> {
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok((at, line)) if line.contains(needle) => return Ok(at),
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
    let proxy = Command::new(bin)
        .args(["kube-proxy", "--kubeconfig"])
        .arg(&server.kubeconfig)
        .args([
            "--hostname-override",
            "bench",
            "--cluster-cidr",
            "10.42.0.0/16",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting kube-proxy")?;
    let proxy = Proc(proxy);

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
        if let Some(n) = line.find("dnat to ") {
            if needles.remove(&line[n..]) {
                all_at = at;
            }
        }
    }
    let initial = all_at - started;
    // Let the proxy settle (a sync may still be running for late events).
    tokio::time::sleep(Duration::from_secs(3)).await;
    while events.try_recv().is_ok() {}

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
        let at = wait_for(
            &events,
            &format!("dnat to {fresh}:8080"),
            Duration::from_secs(30),
        )?;
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
    let proxy_kib = crate::rss_kib(proxy.0.id());
    drop(proxy);
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
    Ok(json!({
        "svcsync_initial_s": initial.as_secs_f64(),
        "svcsync_change_p50_ms": ms(percentile(&lat, 0.5)),
        "svcsync_change_p99_ms": ms(percentile(&lat, 0.99)),
        "svcsync_proxy_rss_mb": proxy_kib as f64 / 1024.0,
    }))
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
