//! The pod startup benchmark: `ferrokube server` without its own kubelet, plus
//! `ferrokube kubelet` as a separate process (so its memory is its own), with a
//! busybox image imported at start. For each OCI runtime (built-in, runc, crun) in
//! the same run: one pod created and timed to Ready five times, then a burst of 100
//! pods created at once, each timed from its create request to the watch event
//! that shows it Ready (p50/p99, upstream's pod startup latency with the image
//! present). Also the kubelet's RSS idle and with the 100 pods, the shims', and
//! the CPU time the burst cost: the server, the kubelet, and the whole machine,
//! and for each burst pod when the watch showed it bound, with a kubelet status,
//! and Ready (`podstart_<runtime>_burst_trace` in the JSON results).

use crate::client::{Pool, Target};
use crate::{ms, percentile, start_server_with, Proc};
use anyhow::{bail, Context, Result};
use bytes::Bytes;
use futures::StreamExt;
use http::Method;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

const IMAGE: &str = "ferrokube.test/busybox:1";
const NS: &str = "podstart";

/// What one runtime measured.
struct Outcome {
    single: Vec<Duration>,
    burst: Vec<Duration>,
    /// Each burst pod's steps, in ms since the burst began, in order of Ready.
    trace: Vec<PodSteps>,
    /// When the burst began, in ms since the Unix epoch (to line logs up with it).
    started_unix_ms: f64,
    burst_total: Duration,
    kubelet_idle_kib: u64,
    kubelet_busy_kib: u64,
    shims_kib: u64,
    burst_cpu: BurstCpu,
}

/// When one pod of the burst reached each step, in ms since the burst began.
#[derive(serde::Serialize)]
struct PodSteps {
    name: String,
    sent: f64,
    bound: Option<f64>,
    status: Option<f64>,
    ready: Option<f64>,
}

/// CPU time spent from the first create of the burst until its last pod was Ready.
#[derive(Default)]
struct BurstCpu {
    server: Duration,
    kubelet: Duration,
    machine: Duration,
}

/// Clock ticks per second of `/proc`'s CPU counters (`sysconf(_SC_CLK_TCK)`).
fn clock_ticks() -> f64 {
    // SAFETY: sysconf only reads a constant of the system.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// User plus system CPU ticks of a process, with those of its reaped children.
fn process_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which ends with the last ')'.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    // utime, stime, cutime, cstime are fields 14..=17, i.e. 12..=15 after the name.
    rest.split_whitespace()
        .skip(11)
        .take(4)
        .filter_map(|f| f.parse::<u64>().ok())
        .sum()
}

/// Busy CPU ticks of the whole machine (all but idle and iowait).
fn machine_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(cpu) = stat.lines().next() else {
        return 0;
    };
    // user nice system idle iowait irq softirq steal (guest counts are in user).
    cpu.split_whitespace()
        .skip(1)
        .take(8)
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4)
        .filter_map(|(_, f)| f.parse::<u64>().ok())
        .sum()
}

/// Writes `cmd` to the control FIFO named by `FERROKUBE_BENCH_PERF_CTL`, if set: with
/// `perf record -D -1 --control=fifo:<that FIFO>` a profile covers only the burst.
fn perf_control(cmd: &str) {
    if let Some(fifo) = std::env::var_os("FERROKUBE_BENCH_PERF_CTL") {
        if let Err(e) = std::fs::write(&fifo, format!("{cmd}\n")) {
            eprintln!("perf control {}: {e}", Path::new(&fifo).display());
        }
    }
}

/// Where the kubelet's log goes: the file `FERROKUBE_BENCH_KUBELET_LOG` names (its
/// level from `RUST_LOG`, which the bench's children inherit), else nowhere.
fn kubelet_log() -> Result<Stdio> {
    Ok(match std::env::var_os("FERROKUBE_BENCH_KUBELET_LOG") {
        Some(path) => std::fs::File::create(&path)
            .with_context(|| format!("creating {}", Path::new(&path).display()))?
            .into(),
        None => Stdio::null(),
    })
}

fn ticks(n: u64) -> Duration {
    Duration::from_secs_f64(n as f64 / clock_ticks())
}

fn pod_body(name: &str) -> Bytes {
    let v = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": NS, "labels": {"bench": "podstart"}},
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "containers": [{"name": "main", "image": IMAGE, "command": ["sleep", "3600"]}]
        }
    });
    Bytes::from(serde_json::to_vec(&v).unwrap_or_default())
}

/// Times when each pod was first seen Ready, fed by one watch.
type Seen = Arc<Mutex<HashMap<String, Instant>>>;

/// When the watch first showed each pod at each step: bound to the node, with a
/// status from the kubelet (`startTime`), and Ready. The tail of a burst is read
/// from these.
type Steps = Arc<Mutex<HashMap<String, [Option<Instant>; 3]>>>;

/// Records when each pod of the namespace is first seen Ready (and each earlier
/// step). The watch callback is synchronous, so it hands the times to a task that
/// takes the async locks.
async fn watch_ready(pool: &Pool, seen: Seen, steps: Steps) -> Result<()> {
    let path = format!("/api/v1/namespaces/{NS}/pods?watch=1");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(String, usize, Instant)>();
    let forward = tokio::spawn(async move {
        while let Some((name, step, at)) = rx.recv().await {
            steps.lock().await.entry(name.clone()).or_default()[step].get_or_insert(at);
            if step == 2 {
                seen.lock().await.entry(name).or_insert(at);
            }
        }
    });
    let result = crate::client::for_each_watched(pool, &path, |obj| {
        let at = Instant::now();
        let Some(name) = obj["metadata"]["name"].as_str() else {
            return;
        };
        let ready = obj["status"]["conditions"].as_array().is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        });
        let reached = [
            obj["spec"]["nodeName"].is_string(),
            obj["status"]["startTime"].is_string(),
            ready,
        ];
        for (step, _) in reached.iter().enumerate().filter(|(_, r)| **r) {
            let _ = tx.send((name.to_string(), step, at));
        }
    })
    .await;
    forward.abort();
    result
}

async fn wait_ready(seen: &Seen, names: &[String], deadline: Duration) -> Result<()> {
    let until = Instant::now() + deadline;
    loop {
        {
            let s = seen.lock().await;
            if names.iter().all(|n| s.contains_key(n)) {
                return Ok(());
            }
        }
        if Instant::now() > until {
            let s = seen.lock().await;
            let missing = names.iter().filter(|n| !s.contains_key(*n)).count();
            bail!("{missing} pods were not Ready in time");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn pod_count(pool: &Pool) -> Result<usize> {
    let list: Value = serde_json::from_slice(
        &pool
            .expect(Method::GET, &format!("/api/v1/namespaces/{NS}/pods"), None)
            .await?,
    )?;
    Ok(list["items"].as_array().map_or(0, Vec::len))
}

async fn delete_all(pool: &Pool) -> Result<()> {
    pool.expect(
        Method::DELETE,
        &format!("/api/v1/namespaces/{NS}/pods"),
        None,
    )
    .await?;
    let until = Instant::now() + Duration::from_secs(120);
    while pod_count(pool).await? > 0 {
        if Instant::now() > until {
            bail!("pods were not deleted in time");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

/// RSS of this run's shims (their command lines name the state directory).
fn shims_kib(state_dir: &Path) -> u64 {
    let needle = state_dir.to_string_lossy().into_owned();
    let mut total = 0;
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if cmd.contains("container-shim") && cmd.contains(&needle) {
            total += crate::rss_kib(pid);
        }
    }
    total
}

async fn run_once(
    bin: &Path,
    runtime: &str,
    burst: usize,
    state_parent: Option<&Path>,
) -> Result<Outcome> {
    let dir = tempfile::tempdir()?;
    let agent = dir.path().join("agent");
    std::fs::create_dir_all(agent.join("images"))?;
    images::testimage::busybox_image(IMAGE)
        .write_oci_archive(&agent.join("images/busybox.tar"))
        .context("writing the busybox image")?;
    // Declared before the kubelet, so removed after it stops.
    let state_tmp = state_parent.map(tempfile::tempdir_in).transpose()?;
    let state = state_tmp
        .as_ref()
        .map(|t| t.path().to_path_buf())
        .unwrap_or_else(|| agent.join("run"));
    let mut server = start_server_with(bin, dir.path(), &[], false)?;
    let kubelet = Proc(
        Command::new(bin)
            .arg("kubelet")
            .arg("--kubeconfig")
            .arg(&server.kubeconfig)
            .arg("--root-dir")
            .arg(&agent)
            .arg("--runtime-state-dir")
            .arg(&state)
            .arg("--pod-logs-dir")
            .arg(agent.join("logs"))
            .args([
                "--hostname-override",
                "bench-node",
                "--oci-runtime",
                runtime,
            ])
            .args([
                "--port",
                &crate::free_port().to_string(),
                "--healthz-port",
                "0",
            ])
            .args(["--address", "127.0.0.1", "--node-ip", "127.0.0.1"])
            .args(["--eviction-hard", "memory.available<1Mi"])
            // As a node of `ferrokube server` is set up (pods' nameserver the cluster
            // DNS Service), so pods get no `MissingClusterDNS` warning.
            .args([
                "--cluster-dns",
                "10.43.0.10",
                "--cluster-domain",
                "cluster.local",
            ])
            .stdout(Stdio::null())
            .stderr(kubelet_log()?)
            .spawn()
            .context("starting the kubelet")?,
    );
    server.keep_dir(dir);
    let target = Target::from_kubeconfig(&server.kubeconfig)?;
    let pool = Pool::new(&target, 2).await?;
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, body) = pool
            .send(Method::GET, "/api/v1/nodes/bench-node", None)
            .await?;
        let ready = status.is_success()
            && serde_json::from_slice::<Value>(&body).is_ok_and(|n| {
                n["status"]["conditions"].as_array().is_some_and(|cs| {
                    cs.iter()
                        .any(|c| c["type"] == "Ready" && c["status"] == "True")
                })
            });
        if ready {
            break;
        }
        if Instant::now() > until {
            bail!("the kubelet's node did not become Ready");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    crate::ensure_namespace(&pool, NS).await?;
    // The namespace's default ServiceAccount comes from the controller manager.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let seen: Seen = Arc::default();
    let steps: Steps = Arc::default();
    let watcher = {
        let (pool, seen, steps) = (pool.clone(), seen.clone(), steps.clone());
        tokio::spawn(async move { watch_ready(&pool, seen, steps).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let kubelet_idle_kib = crate::rss_kib(kubelet.0.id());
    let path = format!("/api/v1/namespaces/{NS}/pods");

    let mut single = Vec::new();
    for i in 0..5 {
        let name = format!("single-{i}");
        let sent = Instant::now();
        pool.expect(Method::POST, &path, Some(pod_body(&name)))
            .await?;
        wait_ready(&seen, std::slice::from_ref(&name), Duration::from_secs(60)).await?;
        let at = seen.lock().await[&name];
        single.push(at - sent);
        delete_all(&pool).await?;
    }

    let names: Vec<String> = (0..burst).map(|i| format!("burst-{i}")).collect();
    // Before the counters and the clock, so profiling costs the burst nothing.
    perf_control("enable");
    let cpu_before = (
        process_ticks(server.pid()),
        process_ticks(kubelet.0.id()),
        machine_ticks(),
    );
    let started = Instant::now();
    let started_unix_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, ms);
    let sends = futures::stream::iter(names.clone())
        .map(|name| {
            let pool = pool.clone();
            let path = path.clone();
            async move {
                let sent = Instant::now();
                pool.expect(Method::POST, &path, Some(pod_body(&name)))
                    .await
                    .map(|_| (name, sent))
            }
        })
        .buffer_unordered(burst.max(1))
        .collect::<Vec<_>>()
        .await;
    let mut sent_at = HashMap::new();
    for s in sends {
        let (name, at) = s?;
        sent_at.insert(name, at);
    }
    wait_ready(&seen, &names, Duration::from_secs(300)).await?;
    let burst_total = started.elapsed();
    perf_control("disable");
    let burst_cpu = BurstCpu {
        server: ticks(process_ticks(server.pid()).saturating_sub(cpu_before.0)),
        kubelet: ticks(process_ticks(kubelet.0.id()).saturating_sub(cpu_before.1)),
        machine: ticks(machine_ticks().saturating_sub(cpu_before.2)),
    };
    let mut latencies = Vec::new();
    let mut trace = Vec::new();
    {
        let s = seen.lock().await;
        let st = steps.lock().await;
        let since = |at: Option<Instant>| at.map(|at| ms(at.saturating_duration_since(started)));
        for n in &names {
            latencies.push(s[n] - sent_at[n]);
            let [bound, status, ready] = st.get(n).copied().unwrap_or_default();
            trace.push(PodSteps {
                name: n.clone(),
                sent: ms(sent_at[n] - started),
                bound: since(bound),
                status: since(status),
                ready: since(ready),
            });
        }
    }
    trace.sort_by(|a, b| {
        a.ready
            .partial_cmp(&b.ready)
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    let kubelet_busy_kib = crate::rss_kib(kubelet.0.id());
    let shims = shims_kib(&state);
    delete_all(&pool).await?;
    watcher.abort();
    drop(kubelet);
    Ok(Outcome {
        single,
        burst: latencies,
        trace,
        started_unix_ms,
        burst_total,
        kubelet_idle_kib,
        kubelet_busy_kib,
        shims_kib: shims,
        burst_cpu,
    })
}

/// Runs the scenario for each runtime, printing table rows and filling `results`.
pub async fn run_all(
    bin: &Path,
    burst: usize,
    runtimes: &[String],
    state_parent: Option<&Path>,
    results: &mut Value,
) -> Result<()> {
    for runtime in runtimes {
        let runtime = runtime.as_str();
        let mut o = run_once(bin, runtime, burst, state_parent).await?;
        o.single.sort();
        o.burst.sort();
        let mb = |kib: u64| kib as f64 / 1024.0;
        crate::line(
            &format!("pod startup ({runtime}): one pod, create to Ready (5 runs)"),
            format!(
                "p50 {} ms, max {} ms",
                ms(percentile(&o.single, 0.5)),
                ms(percentile(&o.single, 1.0))
            ),
        );
        crate::line(
            &format!("pod startup ({runtime}): burst of {burst} pods on one node"),
            format!(
                "p50 {} ms, p99 {} ms, all Ready after {:.2} s",
                ms(percentile(&o.burst, 0.5)),
                ms(percentile(&o.burst, 0.99)),
                o.burst_total.as_secs_f64()
            ),
        );
        let per = |d: Duration| ms(d) / burst.max(1) as f64;
        let c = &o.burst_cpu;
        crate::line(
            &format!("pod startup ({runtime}): CPU per pod in the burst"),
            format!(
                "{:.1} ms in all on the machine: server {:.1} ms, kubelet {:.1} ms, the rest {:.1} ms",
                per(c.machine),
                per(c.server),
                per(c.kubelet),
                per(c.machine.saturating_sub(c.server + c.kubelet))
            ),
        );
        results[format!("podstart_{runtime}_burst_cpu_ms_per_pod")] = json!(per(c.machine));
        let per_pod =
            o.kubelet_busy_kib.saturating_sub(o.kubelet_idle_kib) as f64 / burst.max(1) as f64;
        crate::line(
            &format!("kubelet RSS ({runtime}): idle, with {burst} pods; shims"),
            format!(
                "{:.1} MB idle, {:.1} MB with {burst} pods ({:.0} KB per pod); shims {:.1} MB in all ({:.2} MB each)",
                mb(o.kubelet_idle_kib),
                mb(o.kubelet_busy_kib),
                per_pod,
                mb(o.shims_kib),
                mb(o.shims_kib) / burst.max(1) as f64
            ),
        );
        results[format!("podstart_{runtime}_single_p50_ms")] =
            json!(ms(percentile(&o.single, 0.5)));
        results[format!("podstart_{runtime}_burst_p50_ms")] = json!(ms(percentile(&o.burst, 0.5)));
        results[format!("podstart_{runtime}_burst_p99_ms")] = json!(ms(percentile(&o.burst, 0.99)));
        results[format!("podstart_{runtime}_kubelet_idle_mb")] = json!(mb(o.kubelet_idle_kib));
        results[format!("podstart_{runtime}_kubelet_busy_mb")] = json!(mb(o.kubelet_busy_kib));
        results[format!("podstart_{runtime}_shims_mb")] = json!(mb(o.shims_kib));
        results[format!("podstart_{runtime}_burst_trace")] = json!(o.trace);
        results[format!("podstart_{runtime}_burst_started_unix_ms")] = json!(o.started_unix_ms);
    }
    Ok(())
}
