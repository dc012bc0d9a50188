//! Scheduler benchmarks on the shapes of upstream's scheduler_perf: N nodes (4 cpu,
//! 32 GiB, 110 pods) and pods requesting 100m/500Mi, plain (SchedulingBasic), with
//! required pod anti-affinity per hostname (SchedulingPodAntiAffinity), and with
//! topology spread over zones (SchedulingTopologySpread).
//!
//! As upstream's scheduler_perf, only the apiserver and the scheduler run: the nodes
//! have no kubelet, so a node lifecycle controller would (rightly) mark all of them
//! unreachable and taint them mid-run.
//!
//! Each scenario starts `ferrokube server --disable-scheduler`, creates the nodes,
//! the initial pods and the measured pods (all pending), then starts `ferrokube
//! scheduler` as its own process and watches the bindings: throughput is measured
//! pods over the time between the first and the last measured binding. A streaming
//! run of SchedulingBasic instead keeps the in-process scheduler and creates the
//! measured pods while it runs, giving per-pod latency from create to bound.

use crate::client::{Pool, Target};
use crate::{start_server, Proc};
use anyhow::{bail, Context, Result};
use bytes::Bytes;
use futures::StreamExt;
use http::Method;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One scheduling scenario.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Shape {
    /// No constraints.
    Basic,
    /// Required anti-affinity between all measured pods, per hostname.
    AntiAffinity,
    /// DoNotSchedule spread over 10 zones (maxSkew 1) plus ScheduleAnyway per host.
    TopologySpread,
}

impl Shape {
    fn name(self) -> &'static str {
        match self {
            Shape::Basic => "SchedulingBasic",
            Shape::AntiAffinity => "SchedulingPodAntiAffinity",
            Shape::TopologySpread => "SchedulingTopologySpread",
        }
    }
}

fn node_body(i: usize) -> Bytes {
    let name = format!("node-{i:05}");
    let v = json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {
            "kubernetes.io/hostname": name,
            "topology.kubernetes.io/zone": format!("zone-{}", i % 10),
        }},
        "status": {
            "capacity": {"cpu": "4", "memory": "32Gi", "pods": "110"},
            "allocatable": {"cpu": "4", "memory": "32Gi", "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                "message": "kubelet is posting ready status"}],
        },
    });
    Bytes::from(serde_json::to_vec(&v).unwrap_or_default())
}

fn pod_body(name: &str, shape: Shape, measured: bool) -> Bytes {
    let mut spec = json!({"containers": [{"name": "pause", "image": "registry.k8s.io/pause:3.10",
        "resources": {"requests": {"cpu": "100m", "memory": "500Mi"},
                      "limits": {"cpu": "100m", "memory": "500Mi"}}}]});
    let group = if measured { "measured" } else { "init" };
    match shape {
        Shape::Basic => {}
        Shape::AntiAffinity => {
            spec["affinity"] = json!({"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [{
                "labelSelector": {"matchLabels": {"group": group}},
                "topologyKey": "kubernetes.io/hostname"}]}});
        }
        Shape::TopologySpread => {
            spec["topologySpreadConstraints"] = json!([
                {"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
                 "whenUnsatisfiable": "DoNotSchedule",
                 "labelSelector": {"matchLabels": {"group": group}}},
                {"maxSkew": 1, "topologyKey": "kubernetes.io/hostname",
                 "whenUnsatisfiable": "ScheduleAnyway",
                 "labelSelector": {"matchLabels": {"group": group}}},
            ]);
        }
    }
    let v = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"group": group}},
        "spec": spec,
    });
    Bytes::from(serde_json::to_vec(&v).unwrap_or_default())
}

async fn post_all(pool: &Pool, path: &str, bodies: Vec<Bytes>, concurrency: usize) -> Result<()> {
    let results: Vec<Result<Bytes>> = futures::stream::iter(bodies)
        .map(|b| {
            let pool = pool.clone();
            let path = path.to_string();
            async move { pool.expect(Method::POST, &path, Some(b)).await }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    for r in results {
        r?;
    }
    Ok(())
}

/// Watches pods in `ns` from `rv` and records when each one was first seen bound.
fn watch_bindings(
    pool: &Pool,
    ns: &str,
    rv: &str,
    bound: Bound,
) -> tokio::task::JoinHandle<Result<()>> {
    let pool = pool.clone();
    let path =
        format!("/api/v1/namespaces/{ns}/pods?watch=true&resourceVersion={rv}&timeoutSeconds=3600");
    tokio::spawn(async move {
        crate::client::for_each_watched(&pool, &path, |obj| {
            if obj["spec"]["nodeName"]
                .as_str()
                .is_some_and(|n| !n.is_empty())
            {
                if let Some(name) = obj["metadata"]["name"].as_str() {
                    let now = Instant::now();
                    if let Ok(mut m) = bound.lock() {
                        m.entry(name.to_string()).or_insert(now);
                    }
                }
            }
        })
        .await
    })
}

async fn wait_bound(bound: &Bound, prefix: &str, n: usize, limit: Duration) -> Result<()> {
    let deadline = Instant::now() + limit;
    loop {
        let done = bound
            .lock()
            .map(|m| m.keys().filter(|k| k.starts_with(prefix)).count())
            .unwrap_or(0);
        if done >= n {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("only {done} of {n} {prefix}* pods were bound in {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn list_rv(pool: &Pool, ns: &str) -> Result<String> {
    let list = pool
        .expect(
            Method::GET,
            &format!("/api/v1/namespaces/{ns}/pods?limit=1"),
            None,
        )
        .await?;
    Ok(
        serde_json::from_slice::<Value>(&list)?["metadata"]["resourceVersion"]
            .as_str()
            .unwrap_or("0")
            .to_string(),
    )
}

/// Sizes of a run.
#[derive(Clone, Copy, Debug)]
pub struct Sizes {
    /// Nodes.
    pub nodes: usize,
    /// Pods placed before measuring.
    pub init_pods: usize,
    /// Pods measured.
    pub pods: usize,
}

/// Bindings seen so far: pod name to when.
type Bound = Arc<Mutex<HashMap<String, Instant>>>;

/// A server with the nodes and initial pods created and a watch on bindings.
struct Setup {
    server: crate::Server,
    pool: Pool,
    path: String,
    bound: Bound,
    watch: tokio::task::JoinHandle<Result<()>>,
}

async fn setup(bin: &Path, extra: &[String], shape: Shape, sizes: Sizes) -> Result<Setup> {
    let dir = tempfile::tempdir()?;
    let mut server = start_server(bin, dir.path(), extra)?;
    server.keep_dir(dir);
    let target = Target::from_kubeconfig(&server.kubeconfig)?;
    let pool = Pool::new(&target, 4).await?;
    let nodes: Vec<Bytes> = (0..sizes.nodes).map(node_body).collect();
    post_all(&pool, "/api/v1/nodes", nodes, 64).await?;
    let ns = "sched";
    crate::ensure_namespace(&pool, ns).await?;
    let rv = list_rv(&pool, ns).await?;
    let bound: Bound = Arc::new(Mutex::new(HashMap::new()));
    let watch = watch_bindings(&pool, ns, &rv, bound.clone());
    let path = format!("/api/v1/namespaces/{ns}/pods");
    let init: Vec<Bytes> = (0..sizes.init_pods)
        .map(|i| pod_body(&format!("init-{i:06}"), shape, false))
        .collect();
    post_all(&pool, &path, init, 64).await?;
    Ok(Setup {
        server,
        pool,
        path,
        bound,
        watch,
    })
}

/// As upstream's scheduler_perf apiserver: no controller manager makes service
/// accounts, so their admission plugin is off and pods carry no token volume.
const NO_SERVICE_ACCOUNTS: &str = "--disable-admission-plugins=ServiceAccount";

/// Backlog run: everything pending, then a separate scheduler process starts.
/// Returns measured pods per second and the scheduler's RSS at the end.
pub async fn backlog(bin: &Path, shape: Shape, sizes: Sizes) -> Result<(f64, u64)> {
    let extra = [
        "--disable-scheduler".to_string(),
        "--disable-controller-manager".to_string(),
        NO_SERVICE_ACCOUNTS.to_string(),
    ];
    let s = setup(bin, &extra, shape, sizes).await?;
    let measured: Vec<Bytes> = (0..sizes.pods)
        .map(|i| pod_body(&format!("m-{i:06}"), shape, true))
        .collect();
    post_all(&s.pool, &s.path, measured, 64).await?;
    let started = Instant::now();
    let mut cmd = Command::new(bin);
    cmd.arg("scheduler")
        .arg("--kubeconfig")
        .arg(&s.server.kubeconfig)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let sched = Proc(cmd.spawn().context("starting the scheduler")?);
    wait_bound(&s.bound, "init-", sizes.init_pods, Duration::from_secs(300)).await?;
    wait_bound(&s.bound, "m-", sizes.pods, Duration::from_secs(600)).await?;
    let rss = crate::rss_kib(sched.0.id());
    let times: Vec<Instant> = s
        .bound
        .lock()
        .map(|m| {
            m.iter()
                .filter(|(k, _)| k.starts_with("m-"))
                .map(|(_, t)| *t)
                .collect()
        })
        .unwrap_or_default();
    let first = times.iter().min().copied().unwrap_or(started);
    let last = times.iter().max().copied().unwrap_or(started);
    let span = last.duration_since(first).max(Duration::from_millis(1));
    s.watch.abort();
    drop(sched);
    Ok((sizes.pods as f64 / span.as_secs_f64(), rss))
}

/// Streaming run of the in-process scheduler: pods created while it schedules.
/// Returns pods/s (first create to last binding) and per-pod create-to-bound latencies.
pub async fn streaming(
    bin: &Path,
    sizes: Sizes,
    concurrency: usize,
) -> Result<(f64, Vec<Duration>)> {
    let extra = [
        "--disable-controller-manager".to_string(),
        NO_SERVICE_ACCOUNTS.to_string(),
    ];
    let s = setup(bin, &extra, Shape::Basic, sizes).await?;
    wait_bound(&s.bound, "init-", sizes.init_pods, Duration::from_secs(300)).await?;
    let created: Bound = Arc::new(Mutex::new(HashMap::new()));
    let started = Instant::now();
    let results: Vec<Result<()>> = futures::stream::iter(0..sizes.pods)
        .map(|i| {
            let pool = s.pool.clone();
            let path = s.path.clone();
            let created = created.clone();
            async move {
                let name = format!("m-{i:06}");
                pool.expect(
                    Method::POST,
                    &path,
                    Some(pod_body(&name, Shape::Basic, true)),
                )
                .await?;
                if let Ok(mut m) = created.lock() {
                    m.insert(name, Instant::now());
                }
                Ok(())
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    for r in results {
        r?;
    }
    wait_bound(&s.bound, "m-", sizes.pods, Duration::from_secs(600)).await?;
    let total = started.elapsed();
    s.watch.abort();
    let created = created.lock().map(|m| m.clone()).unwrap_or_default();
    let bound = s.bound.lock().map(|m| m.clone()).unwrap_or_default();
    let mut lat: Vec<Duration> = created
        .iter()
        .filter_map(|(k, c)| bound.get(k).map(|b| b.saturating_duration_since(*c)))
        .collect();
    lat.sort();
    Ok((sizes.pods as f64 / total.as_secs_f64(), lat))
}

/// Runs every scheduling scenario, printing table rows and filling `results`.
pub async fn run_all(bin: &Path, sizes: Sizes, results: &mut Value) -> Result<()> {
    for shape in [Shape::Basic, Shape::AntiAffinity, Shape::TopologySpread] {
        // Anti-affinity per hostname can place at most one measured pod per node.
        let sizes = if shape == Shape::AntiAffinity {
            Sizes {
                init_pods: sizes.init_pods.min(sizes.nodes / 2),
                pods: sizes.pods.min(sizes.nodes / 2),
                ..sizes
            }
        } else {
            sizes
        };
        let (rate, rss) = backlog(bin, shape, sizes).await?;
        crate::line(
            &format!(
                "scheduler {}: {} nodes, {} pods (backlog)",
                shape.name(),
                sizes.nodes,
                sizes.pods
            ),
            format!(
                "{rate:.0} pods/s, scheduler RSS {:.1} MB",
                rss as f64 / 1024.0
            ),
        );
        results[format!("sched_{}_pods_per_s", shape.name())] = json!(rate);
        results[format!("sched_{}_rss_mb", shape.name())] = json!(rss as f64 / 1024.0);
    }
    let (rate, lat) = streaming(bin, sizes, 64).await?;
    crate::latency_line(
        results,
        "sched_streaming",
        &format!(
            "scheduler SchedulingBasic: {} nodes, {} pods created while scheduling (in-process)",
            sizes.nodes, sizes.pods
        ),
        format!("{rate:.0} pods/s end to end, create to bound"),
        &lat,
    );
    results["sched_streaming_pods_per_s"] = json!(rate);
    Ok(())
}
