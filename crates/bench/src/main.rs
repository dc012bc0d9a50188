//! `ferrokube-bench`: the apiserver/store benchmarks of BENCHMARKS.md.
//!
//! Starts `ferrokube server` itself (embedded store, then etcd from Debian's
//! `etcd-server`, both on loopback, both stopped by PID at the end) and measures:
//! start to ready and idle RSS; pod creates (realistic ~2.5 KB pods) with concurrent
//! clients, throughput and p50/p99; list of 10,000 pods p50/p99; 100 watchers receiving
//! 10,000 events; RSS holding 10,000 pods. Also the scheduler scenarios
//! ([`scheduling`]), the control-plane one ([`controlplane`]), pod startup on a
//! real kubelet ([`podstart`]) and Service programming by kube-proxy
//! ([`servicesync`]). Prints a Markdown
//! table and writes JSON.

mod client;
mod controlplane;
mod podstart;
mod scheduling;
mod servicesync;

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use clap::Parser;
use client::{Pool, Target};
use futures::StreamExt;
use http::Method;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Parser, Clone)]
#[command(about = "ferrokube apiserver and store benchmarks")]
struct Args {
    /// The ferrokube binary (use a release build).
    #[arg(long, default_value = "target/release/ferrokube")]
    ferrokube: PathBuf,
    /// Pods to create.
    #[arg(long, default_value_t = 10_000)]
    pods: usize,
    /// Concurrent create requests in flight.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// HTTP/2 connections.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Watchers in the watch scenario.
    #[arg(long, default_value_t = 100)]
    watchers: usize,
    /// Events each watcher must receive.
    #[arg(long, default_value_t = 10_000)]
    watch_events: usize,
    /// List requests to time.
    #[arg(long, default_value_t = 30)]
    lists: usize,
    /// Skip the etcd comparison.
    #[arg(long)]
    no_etcd: bool,
    /// Only run pod creates (and lists) against an already running server with this
    /// kubeconfig (for profiling the server).
    #[arg(long)]
    against: Option<PathBuf>,
    /// Which benchmarks to run: `api` (apiserver and store), `scheduler`,
    /// `controlplane` (a big Deployment on simulated nodes), `pods` (pod startup
    /// latency on a real kubelet, each OCI runtime), `services` (kube-proxy: endpoint
    /// change to data path), or `all`.
    #[arg(long, default_value = "all")]
    only: String,
    /// Nodes in the scheduler scenarios.
    #[arg(long, default_value_t = 5_000)]
    sched_nodes: usize,
    /// Pods placed before measuring in the scheduler scenarios.
    #[arg(long, default_value_t = 1_000)]
    sched_init_pods: usize,
    /// Pods measured in the scheduler scenarios.
    #[arg(long, default_value_t = 10_000)]
    sched_pods: usize,
    /// Simulated nodes in the control-plane scenario.
    #[arg(long, default_value_t = 1_000)]
    cp_nodes: usize,
    /// Replicas of the Deployment in the control-plane scenario.
    #[arg(long, default_value_t = 10_000)]
    cp_replicas: usize,
    /// Requests the simulated kubelets keep in flight (pod status updates), so the
    /// test tool does not limit the control plane.
    #[arg(long, default_value_t = 128)]
    cp_sim_concurrency: usize,
    /// Pods created at once in the pod startup scenario.
    #[arg(long, default_value_t = 100)]
    pod_burst: usize,
    /// OCI runtimes measured in the pod startup scenario, in this order.
    #[arg(long, value_delimiter = ',', default_value = "builtin,runc,crun")]
    pod_runtimes: Vec<String>,
    /// Where the kubelet keeps its runtime state in the pod startup scenario (a fresh
    /// directory under this one per run, e.g. on tmpfs as containerd keeps its state
    /// under /run); by default inside each run's data directory.
    #[arg(long)]
    pod_state_dir: Option<PathBuf>,
    /// Services in the Service programming scenario.
    #[arg(long, default_value_t = 1_000)]
    svc_services: usize,
    /// Endpoints of each of those Services.
    #[arg(long, default_value_t = 10)]
    svc_endpoints: usize,
    /// Endpoint changes timed in the Service programming scenario.
    #[arg(long, default_value_t = 50)]
    svc_samples: usize,
    /// Where to write the JSON results.
    #[arg(long, default_value = "target/bench-results.json")]
    out: PathBuf,
}

pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

/// A process killed (by PID) on drop.
pub(crate) struct Proc(pub(crate) Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub(crate) fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next().and_then(|n| n.parse().ok()))
        })
        .unwrap_or(0)
}

pub(crate) struct Server {
    proc: Proc,
    pub(crate) kubeconfig: PathBuf,
    ready_after: Duration,
    _dir: Option<tempfile::TempDir>,
}

impl Server {
    /// The server's process id.
    pub(crate) fn pid(&self) -> u32 {
        self.proc.0.id()
    }

    /// Keeps `dir` (the server's data directory) until the server is dropped.
    pub(crate) fn keep_dir(&mut self, dir: tempfile::TempDir) {
        self._dir = Some(dir);
    }
}

pub(crate) fn start_server(bin: &Path, dir: &Path, extra: &[String]) -> Result<Server> {
    start_server_with(bin, dir, extra, false)
}

/// Starts `ferrokube server`; `agent` keeps the server's own kubelet.
pub(crate) fn start_server_with(
    bin: &Path,
    dir: &Path,
    extra: &[String],
    agent: bool,
) -> Result<Server> {
    let port = free_port();
    let started = Instant::now();
    let mut child = Command::new(bin)
        .arg("server")
        .arg("--data-dir")
        .arg(dir)
        .args([
            "--bind-address",
            "127.0.0.1",
            "--secure-port",
            &port.to_string(),
        ])
        .args((!agent).then_some("--disable-agent"))
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let stdout = child.stdout.take().context("stdout")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.contains("ready in") {
                let _ = tx.send(Instant::now());
            }
        }
    });
    let proc = Proc(child);
    let ready = rx
        .recv_timeout(Duration::from_secs(60))
        .context("server did not become ready")?;
    Ok(Server {
        proc,
        kubeconfig: dir.join("admin.kubeconfig"),
        ready_after: ready - started,
        _dir: None,
    })
}

pub(crate) fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

pub(crate) fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e5).round() / 1e2
}

/// A realistic pod of about 2.5 KB.
fn pod(ns: &str, name: &str) -> Bytes {
    let v = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": name, "namespace": ns,
            "labels": {"app": "shop", "tier": "backend", "release": "stable", "pod-template-hash": "7d9f8b6c5d"},
            "annotations": {"prometheus.io/scrape": "true", "prometheus.io/port": "9090", "kubernetes.io/change-cause": "kubectl apply --filename=deploy.yaml --record=true"},
        },
        "spec": {
            "containers": [
                {
                    "name": "app", "image": "registry.example.com/shop/backend:v1.42.7",
                    "args": ["--port=8080", "--log-level=info", "--db=postgres://db:5432/shop"],
                    "ports": [{"containerPort": 8080, "name": "http"}, {"containerPort": 9090, "name": "metrics"}],
                    "env": [
                        {"name": "MODE", "value": "production"},
                        {"name": "REGION", "value": "eu-west-1"},
                        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                    ],
                    "resources": {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"cpu": "1", "memory": "512Mi"}},
                    "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": 5},
                    "livenessProbe": {"httpGet": {"path": "/livez", "port": 8080}, "initialDelaySeconds": 10},
                    "volumeMounts": [{"name": "config", "mountPath": "/etc/shop"}, {"name": "cache", "mountPath": "/var/cache/shop"}],
                },
                {
                    "name": "sidecar", "image": "registry.example.com/infra/log-forwarder:2.3.1",
                    "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}},
                    "volumeMounts": [{"name": "cache", "mountPath": "/var/cache/shop", "readOnly": true}],
                },
            ],
            "volumes": [{"name": "config", "configMap": {"name": "shop-config"}}, {"name": "cache", "emptyDir": {}}],
            "nodeSelector": {"kubernetes.io/os": "linux"},
            "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "shop", "effect": "NoSchedule"}],
        },
    });
    Bytes::from(serde_json::to_vec(&v).unwrap_or_default())
}

pub(crate) async fn ensure_namespace(pool: &Pool, ns: &str) -> Result<()> {
    let body = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
    create_unless_exists(pool, "/api/v1/namespaces", body, &format!("namespace {ns}")).await?;
    // Its default ServiceAccount, which the controller manager makes when it runs;
    // without it the ServiceAccount admission plugin refuses pods.
    let sa = json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default"}});
    create_unless_exists(
        pool,
        &format!("/api/v1/namespaces/{ns}/serviceaccounts"),
        sa,
        &format!("the default ServiceAccount of {ns}"),
    )
    .await
}

/// POSTs `body` to `path`; an object that already exists (409) is fine.
async fn create_unless_exists(pool: &Pool, path: &str, body: Value, what: &str) -> Result<()> {
    let (status, bytes) = pool
        .send(Method::POST, path, Some(Bytes::from(body.to_string())))
        .await?;
    if !status.is_success() && status.as_u16() != 409 {
        bail!(
            "creating {what}: {status} {}",
            String::from_utf8_lossy(&bytes)
        );
    }
    Ok(())
}

/// Creates `n` pods with `concurrency` requests in flight; returns (pods/s, latencies).
async fn create_pods(
    pool: &Pool,
    ns: &str,
    prefix: &str,
    n: usize,
    concurrency: usize,
) -> Result<(f64, Vec<Duration>)> {
    ensure_namespace(pool, ns).await?;
    let path = format!("/api/v1/namespaces/{ns}/pods");
    // The load generator should cost little CPU: serialize the pod once and splice
    // each name into it.
    let marker = "@@NAME@@";
    let template = pod(ns, marker);
    let at = template
        .windows(marker.len())
        .position(|w| w == marker.as_bytes())
        .context("name marker")?;
    let (before, after) = (template.slice(..at), template.slice(at + marker.len()..));
    let started = Instant::now();
    let results: Vec<Result<Duration>> = futures::stream::iter(0..n)
        .map(|i| {
            let pool = pool.clone();
            let path = path.clone();
            let name = format!("{prefix}-{i:06}");
            let mut b = Vec::with_capacity(before.len() + name.len() + after.len());
            b.extend_from_slice(&before);
            b.extend_from_slice(name.as_bytes());
            b.extend_from_slice(&after);
            let body = Bytes::from(b);
            async move {
                let t = Instant::now();
                pool.expect(Method::POST, &path, Some(body)).await?;
                Ok(t.elapsed())
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let elapsed = started.elapsed();
    let mut lat = results.into_iter().collect::<Result<Vec<_>>>()?;
    lat.sort();
    Ok((n as f64 / elapsed.as_secs_f64(), lat))
}

/// Times `runs` lists of a namespace: from the request until the last byte of the
/// response arrived (the body is read but not kept). One untimed list checks that
/// all `expect` items are there.
async fn time_lists(pool: &Pool, ns: &str, expect: usize, runs: usize) -> Result<Vec<Duration>> {
    let path = format!("/api/v1/namespaces/{ns}/pods");
    let body = pool.expect(Method::GET, &path, None).await?;
    let v: Value = serde_json::from_slice(&body)?;
    let got = v["items"].as_array().map(Vec::len).unwrap_or(0);
    if got != expect {
        bail!("list returned {got} items, expected {expect}");
    }
    let mut lat = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        let (status, n) = pool.drain(&path).await?;
        lat.push(t.elapsed());
        if !status.is_success() || n != body.len() {
            bail!(
                "list answered {status} with {n} bytes, expected {}",
                body.len()
            );
        }
    }
    lat.sort();
    Ok(lat)
}

/// `watchers` watches on a namespace; then `events` pod creates; returns the time until
/// every watcher has received every event, and the creation time alone.
async fn watch_fanout(
    target: &Target,
    pool: &Pool,
    watchers: usize,
    events: usize,
    concurrency: usize,
) -> Result<(Duration, Duration)> {
    let ns = "watched";
    ensure_namespace(pool, ns).await?;
    let list = pool
        .expect(Method::GET, &format!("/api/v1/namespaces/{ns}/pods"), None)
        .await?;
    let rv = serde_json::from_slice::<Value>(&list)?["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or("0")
        .to_string();
    // Watch connections of their own (each carries many streams' worth of bytes).
    let watch_conns = Pool::new(target, 4).await?;
    let done = Arc::new(tokio::sync::Barrier::new(watchers + 1));
    let mut tasks = Vec::new();
    for _ in 0..watchers {
        let pool = watch_conns.clone();
        let path = format!(
            "/api/v1/namespaces/{ns}/pods?watch=true&resourceVersion={rv}&timeoutSeconds=600"
        );
        let done = done.clone();
        tasks.push(tokio::spawn(async move {
            let r = watch_count(&pool, &path, events).await;
            done.wait().await;
            r
        }));
    }
    // Let the watches register before writing.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = Instant::now();
    create_pods(pool, ns, "w", events, concurrency).await?;
    let created = started.elapsed();
    done.wait().await;
    let all = started.elapsed();
    for t in tasks {
        t.await??;
    }
    Ok((all, created))
}

async fn watch_count(pool: &Pool, path: &str, events: usize) -> Result<()> {
    use http_body_util::BodyExt;
    let mut body = pool.stream(path).await?;
    let mut seen = 0usize;
    while seen < events {
        match body.frame().await {
            Some(Ok(f)) => {
                if let Some(d) = f.data_ref() {
                    seen += d.iter().filter(|b| **b == b'\n').count();
                }
            }
            Some(Err(e)) => bail!("watch failed after {seen} events: {e}"),
            None => bail!("watch ended after {seen} events"),
        }
    }
    Ok(())
}

struct EtcdProc {
    _proc: Proc,
    endpoint: String,
    _dir: tempfile::TempDir,
}

fn start_etcd() -> Result<EtcdProc> {
    let dir = tempfile::tempdir()?;
    let (cp, pp) = (free_port(), free_port());
    let client = format!("http://127.0.0.1:{cp}");
    let peer = format!("http://127.0.0.1:{pp}");
    let child = Command::new("etcd")
        .arg("--data-dir")
        .arg(dir.path())
        .args([
            "--listen-client-urls",
            &client,
            "--advertise-client-urls",
            &client,
        ])
        .args([
            "--listen-peer-urls",
            &peer,
            "--initial-advertise-peer-urls",
            &peer,
        ])
        .args(["--initial-cluster", &format!("default={peer}")])
        .args(["--quota-backend-bytes", "8589934592"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting etcd (Debian etcd-server)")?;
    let p = Proc(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", cp)).is_err() {
        if Instant::now() > deadline {
            bail!("etcd did not start");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(EtcdProc {
        _proc: p,
        endpoint: client,
        _dir: dir,
    })
}

/// Prints a row "<head>, p50 … ms, p99 … ms" and records `<key>_p50_ms`/`<key>_p99_ms`.
pub(crate) fn latency_line(
    results: &mut Value,
    key: &str,
    name: &str,
    head: String,
    lat: &[Duration],
) {
    let (p50, p99) = (ms(percentile(lat, 0.5)), ms(percentile(lat, 0.99)));
    line(name, format!("{head}, p50 {p50} ms, p99 {p99} ms"));
    results[format!("{key}_p50_ms")] = json!(p50);
    results[format!("{key}_p99_ms")] = json!(p99);
}

pub(crate) fn line(name: &str, value: String) {
    println!("| {name} | {value} |");
}

async fn against(args: &Args, kubeconfig: &Path) -> Result<Value> {
    let target = Target::from_kubeconfig(kubeconfig)?;
    let pool = Pool::new(&target, args.connections).await?;
    let prefix = format!("p{}", std::process::id());
    let (rate, lat) = create_pods(&pool, "bench", &prefix, args.pods, args.concurrency).await?;
    println!(
        "creates: {rate:.0}/s, p50 {} ms, p99 {} ms",
        ms(percentile(&lat, 0.5)),
        ms(percentile(&lat, 0.99))
    );
    let lists = time_lists_any(&pool, "bench", args.lists).await?;
    println!(
        "lists: p50 {} ms, p99 {} ms",
        ms(percentile(&lists, 0.5)),
        ms(percentile(&lists, 0.99))
    );
    Ok(json!({"create_per_s": rate}))
}

async fn time_lists_any(pool: &Pool, ns: &str, runs: usize) -> Result<Vec<Duration>> {
    let path = format!("/api/v1/namespaces/{ns}/pods");
    let mut lat = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        pool.drain(&path).await?;
        lat.push(t.elapsed());
    }
    lat.sort();
    Ok(lat)
}

async fn run(args: Args) -> Result<Value> {
    if let Some(kc) = &args.against {
        return against(&args, kc).await;
    }
    let mut results = json!({});
    println!("| measurement | result |\n|---|---|");
    if matches!(args.only.as_str(), "all" | "api") {
        api_benchmarks(&args, &mut results).await?;
    }
    if matches!(args.only.as_str(), "all" | "scheduler") {
        let sizes = scheduling::Sizes {
            nodes: args.sched_nodes,
            init_pods: args.sched_init_pods,
            pods: args.sched_pods,
        };
        scheduling::run_all(&args.ferrokube, sizes, &mut results).await?;
    }
    if matches!(args.only.as_str(), "all" | "controlplane") {
        let sizes = controlplane::Sizes {
            nodes: args.cp_nodes,
            replicas: args.cp_replicas,
            sim_concurrency: args.cp_sim_concurrency,
        };
        controlplane::run_all(&args.ferrokube, sizes, &mut results).await?;
    }
    if matches!(args.only.as_str(), "all" | "pods") {
        podstart::run_all(
            &args.ferrokube,
            args.pod_burst,
            &args.pod_runtimes,
            args.pod_state_dir.as_deref(),
            &mut results,
        )
        .await?;
    }
    if matches!(args.only.as_str(), "all" | "services") {
        let sizes = servicesync::Sizes {
            services: args.svc_services,
            endpoints: args.svc_endpoints,
            samples: args.svc_samples,
        };
        servicesync::run_all(&args.ferrokube, sizes, &mut results).await?;
    }
    Ok(results)
}

/// The apiserver and store benchmarks. The pod scenarios run the apiserver alone
/// (there are no nodes: a scheduler would only report every pod unschedulable, and the
/// controller manager's caches are measured with the control-plane scenarios).
async fn api_benchmarks(args: &Args, results: &mut Value) -> Result<()> {
    let api_only = [
        "--disable-scheduler".to_string(),
        "--disable-controller-manager".to_string(),
    ];
    // Start to ready: first start (CA and certificates generated) and restart.
    let mut first = Vec::new();
    let mut warm = Vec::new();
    let mut idle_rss = 0;
    let mut idle_api_rss = 0;
    for _ in 0..5 {
        let dir = tempfile::tempdir()?;
        let s = start_server(&args.ferrokube, dir.path(), &[])?;
        first.push(s.ready_after);
        drop(s);
        let s = start_server(&args.ferrokube, dir.path(), &[])?;
        warm.push(s.ready_after);
        tokio::time::sleep(Duration::from_secs(2)).await;
        idle_rss = idle_rss.max(rss_kib(s.proc.0.id()));
        drop(s);
        let s = start_server(&args.ferrokube, dir.path(), &api_only)?;
        tokio::time::sleep(Duration::from_secs(2)).await;
        idle_api_rss = idle_api_rss.max(rss_kib(s.proc.0.id()));
    }
    first.sort();
    warm.sort();
    line(
        "start to ready, first start (median of 5)",
        format!("{} ms", ms(percentile(&first, 0.5))),
    );
    line(
        "start to ready, restart (median of 5)",
        format!("{} ms", ms(percentile(&warm, 0.5))),
    );
    line(
        "idle RSS, all-in-one (max of 5)",
        format!("{:.1} MB", idle_rss as f64 / 1024.0),
    );
    line(
        "idle RSS, apiserver and store only (max of 5)",
        format!("{:.1} MB", idle_api_rss as f64 / 1024.0),
    );
    results["ready_first_ms"] = json!(ms(percentile(&first, 0.5)));
    results["ready_restart_ms"] = json!(ms(percentile(&warm, 0.5)));
    results["idle_rss_mb"] = json!(idle_rss as f64 / 1024.0);
    results["idle_api_rss_mb"] = json!(idle_api_rss as f64 / 1024.0);

    // Embedded store.
    let dir = tempfile::tempdir()?;
    let s = start_server(&args.ferrokube, dir.path(), &api_only)?;
    let target = Target::from_kubeconfig(&s.kubeconfig)?;
    let pool = Pool::new(&target, args.connections).await?;
    let (rate, lat) = create_pods(&pool, "bench", "p", args.pods, args.concurrency).await?;
    latency_line(
        results,
        "embedded_create",
        &format!(
            "embedded: {} pod creates, {} in flight",
            args.pods, args.concurrency
        ),
        format!("{rate:.0}/s"),
        &lat,
    );
    results["embedded_create_per_s"] = json!(rate);
    let lists = time_lists(&pool, "bench", args.pods, args.lists).await?;
    line(
        &format!("embedded: list of {} pods", args.pods),
        format!(
            "p50 {} ms, p99 {} ms",
            ms(percentile(&lists, 0.5)),
            ms(percentile(&lists, 0.99))
        ),
    );
    results["list_p50_ms"] = json!(ms(percentile(&lists, 0.5)));
    results["list_p99_ms"] = json!(ms(percentile(&lists, 0.99)));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss = rss_kib(s.proc.0.id());
    line(
        &format!("RSS holding {} pods", args.pods),
        format!("{:.1} MB", rss as f64 / 1024.0),
    );
    results["rss_with_pods_mb"] = json!(rss as f64 / 1024.0);
    let (all, created) = watch_fanout(
        &target,
        &pool,
        args.watchers,
        args.watch_events,
        args.concurrency,
    )
    .await?;
    let delivered = (args.watchers * args.watch_events) as f64;
    line(
        &format!("{} watchers x {} events", args.watchers, args.watch_events),
        format!(
            "all delivered {} s after the first write (writes took {} s): {:.0} events/s",
            ms(all) / 1000.0,
            ms(created) / 1000.0,
            delivered / all.as_secs_f64()
        ),
    );
    results["watch_all_delivered_s"] = json!(all.as_secs_f64());
    results["watch_events_per_s"] = json!(delivered / all.as_secs_f64());
    drop(pool);
    drop(s);

    if !args.no_etcd {
        let etcd = start_etcd()?;
        let dir = tempfile::tempdir()?;
        let s = start_server(
            &args.ferrokube,
            dir.path(),
            &[
                format!("--etcd-servers={}", etcd.endpoint),
                "--disable-scheduler".to_string(),
                "--disable-controller-manager".to_string(),
            ],
        )?;
        let target = Target::from_kubeconfig(&s.kubeconfig)?;
        let pool = Pool::new(&target, args.connections).await?;
        let (rate, lat) = create_pods(&pool, "bench", "p", args.pods, args.concurrency).await?;
        latency_line(
            results,
            "etcd_create",
            &format!(
                "etcd: {} pod creates, {} in flight",
                args.pods, args.concurrency
            ),
            format!("{rate:.0}/s"),
            &lat,
        );
        results["etcd_create_per_s"] = json!(rate);
        let lists = time_lists(&pool, "bench", args.pods, args.lists).await?;
        line(
            &format!("etcd: list of {} pods", args.pods),
            format!(
                "p50 {} ms, p99 {} ms",
                ms(percentile(&lists, 0.5)),
                ms(percentile(&lists, 0.99))
            ),
        );
        results["etcd_list_p99_ms"] = json!(ms(percentile(&lists, 0.99)));
    }
    Ok(())
}

fn main() -> Result<()> {
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let results = rt.block_on(run(args.clone()))?;
    std::fs::write(&args.out, serde_json::to_vec_pretty(&results)?)?;
    println!("\nresults written to {}", args.out.display());
    Ok(())
}
