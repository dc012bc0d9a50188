//! The control-plane benchmark: `ferrokube server` (apiserver, scheduler and
//! controller manager in one process) with N simulated nodes from `ferrokube
//! sim-nodes` (its own process, so its memory is not counted), then one Deployment of
//! R replicas applied: time from the create to every replica Ready (the Deployment's
//! status says so), and the control plane's RSS while it holds the nodes and pods.

use crate::client::{Pool, Target};
use crate::{start_server, Proc};
use anyhow::{bail, Context, Result};
use bytes::Bytes;
use http::Method;
use serde_json::{json, Value};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Sizes of the run.
#[derive(Clone, Copy, Debug)]
pub struct Sizes {
    /// Simulated nodes.
    pub nodes: usize,
    /// Replicas of the Deployment.
    pub replicas: usize,
    /// API requests the simulated kubelets keep in flight.
    pub sim_concurrency: usize,
}

/// What one run measured.
struct Outcome {
    nodes_ready: Duration,
    all_created: Duration,
    all_ready: Duration,
    rss_nodes_kib: u64,
    rss_holding_kib: u64,
    sim_rss_kib: u64,
}

async fn get_json(pool: &Pool, path: &str) -> Result<Value> {
    let bytes = pool.expect(Method::GET, path, None).await?;
    Ok(serde_json::from_slice(&bytes)?)
}

/// Number of nodes whose Ready condition is True.
async fn ready_nodes(pool: &Pool) -> Result<usize> {
    let list = get_json(pool, "/api/v1/nodes").await?;
    let items = list["items"].as_array().cloned().unwrap_or_default();
    Ok(items
        .iter()
        .filter(|n| {
            n["status"]["conditions"].as_array().is_some_and(|cs| {
                cs.iter()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
            })
        })
        .count())
}

fn deployment_body(replicas: usize) -> Bytes {
    let v = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "big"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "big"}},
            "template": {
                "metadata": {"labels": {"app": "big"}},
                "spec": {"containers": [{"name": "app", "image": "registry.k8s.io/pause:3.10",
                    "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}]}
            }
        }
    });
    Bytes::from(serde_json::to_vec(&v).unwrap_or_default())
}

async fn run_once(bin: &Path, sizes: Sizes) -> Result<Outcome> {
    let dir = tempfile::tempdir()?;
    let mut server = start_server(bin, dir.path(), &[])?;
    server.keep_dir(dir);
    let target = Target::from_kubeconfig(&server.kubeconfig)?;
    let pool = Pool::new(&target, 2).await?;

    let started = Instant::now();
    let sim = Proc(
        Command::new(bin)
            .arg("sim-nodes")
            .arg("--kubeconfig")
            .arg(&server.kubeconfig)
            .args(["--count", &sizes.nodes.to_string()])
            .args(["--concurrency", &sizes.sim_concurrency.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting sim-nodes")?,
    );
    let deadline = Instant::now() + Duration::from_secs(300);
    while ready_nodes(&pool).await? < sizes.nodes {
        if Instant::now() > deadline {
            bail!("the {} simulated nodes were not Ready in time", sizes.nodes);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let nodes_ready = started.elapsed();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rss_nodes_kib = crate::rss_kib(server.pid());

    let ns = "bench";
    crate::ensure_namespace(&pool, ns).await?;
    let path = format!("/apis/apps/v1/namespaces/{ns}/deployments");
    let applied = Instant::now();
    pool.expect(Method::POST, &path, Some(deployment_body(sizes.replicas)))
        .await?;
    let mut all_created = None;
    let deadline = Instant::now() + Duration::from_secs(1800);
    let all_ready = loop {
        let d = get_json(&pool, &format!("{path}/big")).await?;
        let status = &d["status"];
        let n = |k: &str| status[k].as_u64().unwrap_or(0) as usize;
        if all_created.is_none() && n("replicas") >= sizes.replicas {
            all_created = Some(applied.elapsed());
        }
        if n("readyReplicas") >= sizes.replicas
            && n("availableReplicas") >= sizes.replicas
            && n("updatedReplicas") >= sizes.replicas
        {
            break applied.elapsed();
        }
        if Instant::now() > deadline {
            bail!(
                "Deployment not Ready in time: {} ready of {}",
                n("readyReplicas"),
                sizes.replicas
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    // Let the controllers settle, then measure what holding it all costs.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let rss_holding_kib = crate::rss_kib(server.pid());
    let sim_rss_kib = crate::rss_kib(sim.0.id());
    drop(sim);
    Ok(Outcome {
        nodes_ready,
        all_created: all_created.unwrap_or(all_ready),
        all_ready,
        rss_nodes_kib,
        rss_holding_kib,
        sim_rss_kib,
    })
}

/// Runs the control-plane scenario, printing table rows and filling `results`.
pub async fn run_all(bin: &Path, sizes: Sizes, results: &mut Value) -> Result<()> {
    let o = run_once(bin, sizes).await?;
    let mb = |kib: u64| kib as f64 / 1024.0;
    crate::line(
        &format!(
            "control plane: {} simulated nodes registered and Ready",
            sizes.nodes
        ),
        format!(
            "{:.1} s; server RSS {:.1} MB",
            o.nodes_ready.as_secs_f64(),
            mb(o.rss_nodes_kib)
        ),
    );
    crate::line(
        &format!(
            "control plane: Deployment of {} replicas on {} nodes, apply to all Ready",
            sizes.replicas, sizes.nodes
        ),
        format!(
            "{:.1} s ({:.0} pods/s; all pods created after {:.1} s)",
            o.all_ready.as_secs_f64(),
            sizes.replicas as f64 / o.all_ready.as_secs_f64(),
            o.all_created.as_secs_f64()
        ),
    );
    crate::line(
        "control plane RSS holding them (apiserver + scheduler + controller manager)",
        format!(
            "{:.1} MB (sim-nodes process: {:.1} MB)",
            mb(o.rss_holding_kib),
            mb(o.sim_rss_kib)
        ),
    );
    results["cp_nodes_ready_s"] = json!(o.nodes_ready.as_secs_f64());
    results["cp_deployment_ready_s"] = json!(o.all_ready.as_secs_f64());
    results["cp_deployment_created_s"] = json!(o.all_created.as_secs_f64());
    results["cp_rss_nodes_mb"] = json!(mb(o.rss_nodes_kib));
    results["cp_rss_holding_mb"] = json!(mb(o.rss_holding_kib));
    results["cp_sim_rss_mb"] = json!(mb(o.sim_rss_kib));
    Ok(())
}
