//! Micro-benchmark of the managed-fields bookkeeping the apiserver does on
//! every create and update (`ManagedFields::for_update`, `apply::update`,
//! `ManagedFields::write_to`), over a realistic Pod and Deployment.
//!
//! Run with `cargo run -p merge --release --example bench_update`; pass a
//! number to change the iteration count (20000 by default). It prints, per
//! scenario, the time and the number of allocations of one create or update
//! (only the calls above: cloning the request object before and dropping it
//! after are not counted). Environment variables:
//!
//! - `BENCH_ONLY=<text>`: run only the scenarios whose name contains it;
//! - `BENCH_DUMP=1`: print the managed fields each scenario produces (to
//!   check that outputs stay the same across changes);
//! - `BENCH_PHASES=1`: also time the parts of an operation on their own.
//!
//! The objects and the type graph are in `fixture.rs`.

mod fixture;

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use merge::{ManagedFields, TypeGraph, TypeId};
use serde_json::{json, Value};

/// The system allocator, counting allocations so that the benchmark can
/// report them per operation.
struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Relaxed);
        System.alloc(layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Relaxed);
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const T0: &str = "2024-05-01T10:00:00Z";
const T1: &str = "2024-05-01T10:00:05Z";
const T2: &str = "2024-05-01T10:00:09Z";
const T3: &str = "2024-05-01T10:05:00Z";

/// What the apiserver does on create.
#[inline(never)]
fn on_create(g: &TypeGraph, root: TypeId, obj: &mut Value, manager: &str, now: &str) {
    let managed = ManagedFields::for_update(&json!({}), obj, false);
    let zero = g.zero_value(root);
    let mf = merge::apply::update(&zero, obj, manager, "", &managed, g, root, now);
    mf.write_to(obj);
}

/// What the apiserver does on update (`subresource` empty for the main
/// resource).
#[inline(never)]
fn on_update(
    g: &TypeGraph,
    root: TypeId,
    old: &Value,
    new: &mut Value,
    manager: &str,
    subresource: &str,
    now: &str,
) {
    let managed = ManagedFields::for_update(old, new, !subresource.is_empty());
    let mf = merge::apply::update(old, new, manager, subresource, &managed, g, root, now);
    mf.write_to(new);
}

/// Nanoseconds per call of `f`.
fn time<F: FnMut()>(iters: u32, f: F) -> f64 {
    measure(iters, f).0
}

/// Nanoseconds and allocations per iteration of `f`, counting only what
/// `f` runs through the timing function it is given.
fn measure_each<F: FnMut(&mut dyn FnMut(&mut dyn FnMut()))>(iters: u32, mut f: F) -> (f64, f64) {
    let mut elapsed = Duration::ZERO;
    let mut allocs = 0;
    let warmup = iters / 10 + 1;
    for i in 0..warmup + iters {
        f(&mut |op: &mut dyn FnMut()| {
            let before = ALLOCATIONS.load(Relaxed);
            let start = Instant::now();
            op();
            if i >= warmup {
                elapsed += start.elapsed();
                allocs += ALLOCATIONS.load(Relaxed) - before;
            }
        });
    }
    (
        elapsed.as_nanos() as f64 / f64::from(iters),
        allocs as f64 / f64::from(iters),
    )
}

/// Nanoseconds and allocations per call of `f`.
fn measure<F: FnMut()>(iters: u32, mut f: F) -> (f64, f64) {
    for _ in 0..iters / 10 + 1 {
        f();
    }
    let allocs = ALLOCATIONS.load(Relaxed);
    let start = Instant::now();
    for _ in 0..iters {
        f();
    }
    let ns = start.elapsed().as_nanos() as f64 / iters as f64;
    let allocs = (ALLOCATIONS.load(Relaxed) - allocs) as f64 / iters as f64;
    (ns, allocs)
}

fn managed_json(obj: &Value) -> String {
    serde_json::to_string(&obj["metadata"]["managedFields"]).unwrap_or_default()
}

fn main() {
    let iters: u32 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(20_000);
    let dump = std::env::var_os("BENCH_DUMP").is_some();
    let (g, roots) = fixture::graph();

    // --- Pod: create, then the scheduler binds it and the kubelet reports
    // status, then someone changes a label.
    let pod = fixture::pod();
    let mut created = pod.clone();
    on_create(&g, roots.pod, &mut created, "kube-controller-manager", T0);
    let mut bound = created.clone();
    bound["spec"]["nodeName"] = json!("node-1");
    on_update(
        &g,
        roots.pod,
        &created,
        &mut bound,
        "kube-scheduler",
        "binding",
        T1,
    );
    let mut running = bound.clone();
    running["status"] = json!({
        "phase": "Running",
        "conditions": [
            {"type": "Initialized", "status": "True", "lastProbeTime": null, "lastTransitionTime": T1},
            {"type": "Ready", "status": "True", "lastProbeTime": null, "lastTransitionTime": T2},
            {"type": "ContainersReady", "status": "True", "lastProbeTime": null, "lastTransitionTime": T2},
            {"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": T1}
        ],
        "hostIP": "10.0.0.11",
        "hostIPs": [{"ip": "10.0.0.11"}],
        "podIP": "10.244.1.17",
        "podIPs": [{"ip": "10.244.1.17"}],
        "startTime": T1,
        "qosClass": "Burstable",
        "containerStatuses": [
            {"name": "log-shipper", "ready": true, "restartCount": 0, "image": "registry.example.com/infra/shipper:0.9.1",
             "imageID": "sha256:01", "containerID": "containerd://aa", "started": true, "state": {"running": {"startedAt": T2}}},
            {"name": "web", "ready": true, "restartCount": 0, "image": "registry.example.com/team/web:1.25.3",
             "imageID": "sha256:02", "containerID": "containerd://bb", "started": true, "state": {"running": {"startedAt": T2}}}
        ]
    });
    on_update(&g, roots.pod, &bound, &mut running, "kubelet", "status", T2);
    let mut relabeled = running.clone();
    relabeled["metadata"]["labels"]["tier"] = json!("backend");
    let mut status_again = running.clone();
    status_again["status"]["conditions"][1]["status"] = json!("False");
    status_again["status"]["containerStatuses"][1]["ready"] = json!(false);

    // --- Deployment: created by kubectl, status written by the controller,
    // then scaled through an update of spec.replicas.
    let mut dep = fixture::deployment();
    on_create(&g, roots.deployment, &mut dep, "kubectl-create", T0);
    let mut dep_status = dep.clone();
    dep_status["status"] = json!({
        "observedGeneration": 1, "replicas": 3, "updatedReplicas": 3, "readyReplicas": 3,
        "availableReplicas": 3,
        "conditions": [
            {"type": "Available", "status": "True", "lastUpdateTime": T1, "lastTransitionTime": T1,
             "reason": "MinimumReplicasAvailable", "message": "Deployment has minimum availability."},
            {"type": "Progressing", "status": "True", "lastUpdateTime": T1, "lastTransitionTime": T0,
             "reason": "NewReplicaSetAvailable", "message": "ReplicaSet \"web-7d4b9c8f6\" has successfully progressed."}
        ]
    });
    on_update(
        &g,
        roots.deployment,
        &dep,
        &mut dep_status,
        "kube-controller-manager",
        "status",
        T1,
    );
    let mut scaled = dep_status.clone();
    scaled["spec"]["replicas"] = json!(5);

    println!(
        "pod JSON {} bytes, stored pod {} bytes, deployment {} bytes; {} iterations",
        serde_json::to_string(&pod).map(|s| s.len()).unwrap_or(0),
        serde_json::to_string(&running)
            .map(|s| s.len())
            .unwrap_or(0),
        serde_json::to_string(&dep_status)
            .map(|s| s.len())
            .unwrap_or(0),
        iters
    );

    // `BENCH_ONLY=<text>` runs only the scenarios whose name contains it.
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    let wanted = |name: &str| name.contains(only.as_str());
    let mut results: Vec<(&str, f64, f64, String)> = Vec::new();

    // Create: the object gets managedFields written and they are taken off
    // again (untimed) so every iteration starts from the same request.
    let mut create_case = |name: &'static str, root: TypeId, obj: Value, manager: &str| {
        if !wanted(name) {
            return;
        }
        let mut obj = obj;
        let (ns, allocs) = measure_each(iters, |timed| {
            timed(&mut || on_create(&g, root, &mut obj, manager, T0));
            if let Some(Value::Object(m)) = obj.get_mut("metadata") {
                black_box(m.remove("managedFields"));
            }
        });
        on_create(&g, root, &mut obj, manager, T0);
        results.push((name, ns, allocs, managed_json(&obj)));
    };
    create_case(
        "create pod",
        roots.pod,
        pod.clone(),
        "kube-controller-manager",
    );
    create_case(
        "create deployment",
        roots.deployment,
        fixture::deployment(),
        "kubectl-create",
    );

    // Updates: each iteration works on a fresh clone of the new object.
    let mut update_case =
        |name: &'static str, root: TypeId, old: &Value, new: &Value, manager: &str, sub: &str| {
            if !wanted(name) {
                return;
            }
            // Only the update itself is timed and counted; the clone before
            // it and the drop after it are not.
            let (ns, allocs) = measure_each(iters, |timed| {
                let mut n = new.clone();
                timed(&mut || on_update(&g, root, old, &mut n, manager, sub, T3));
                black_box(n);
            });
            let mut n = new.clone();
            on_update(&g, root, old, &mut n, manager, sub, T3);
            results.push((name, ns, allocs, managed_json(&n)));
        };
    update_case(
        "update pod label",
        roots.pod,
        &running,
        &relabeled,
        "kubectl-label",
        "",
    );
    update_case(
        "update pod status",
        roots.pod,
        &running,
        &status_again,
        "kubelet",
        "status",
    );
    update_case(
        "update deployment replicas",
        roots.deployment,
        &dep_status,
        &scaled,
        "kubectl-edit",
        "",
    );
    update_case(
        "update deployment no-op",
        roots.deployment,
        &dep_status,
        &dep_status,
        "kubectl-edit",
        "",
    );

    if std::env::var_os("BENCH_PHASES").is_some() && only.is_empty() {
        let phases =
            |name: &str, root: TypeId, old: &Value, new: &Value, manager: &str, sub: &str| {
                let managed = ManagedFields::for_update(old, new, !sub.is_empty());
                let mf = merge::apply::update(old, new, manager, sub, &managed, &g, root, T3);
                let parse = time(iters, || {
                    black_box(ManagedFields::for_update(old, new, !sub.is_empty()));
                });
                let upd = time(iters, || {
                    black_box(merge::apply::update(
                        old, new, manager, sub, &managed, &g, root, T3,
                    ));
                });
                let write = time(iters, || {
                    black_box(mf.to_value());
                });
                println!(
                    "{:<28} for_update {:>7.0}  update {:>7.0}  to_value {:>7.0} ns",
                    name, parse, upd, write
                );
            };
        let zero = g.zero_value(roots.pod);
        let none = ManagedFields::new();
        let (upd_ns, upd_allocs) = measure(iters, || {
            black_box(merge::apply::update(
                &zero, &pod, "m", "", &none, &g, roots.pod, T0,
            ));
        });
        let created = merge::apply::update(&zero, &pod, "m", "", &none, &g, roots.pod, T0);
        let (tv_ns, tv_allocs) = measure(iters, || {
            black_box(created.to_value());
        });
        let (drop_ns, drop_allocs) = measure(iters, || {
            black_box(created.clone());
        });
        println!(
            "create pod: update {:.0} ns {:.0} allocs, to_value {:.0} ns {:.0} allocs, result clone+drop {:.0} ns {:.0} allocs",
            upd_ns, upd_allocs, tv_ns, tv_allocs, drop_ns, drop_allocs
        );
        let set = merge::field_set_of(&pod, &g, roots.pod);
        let fso = time(iters, || {
            black_box(merge::field_set_of(&pod, &g, roots.pod));
        });
        let clone = time(iters, || {
            black_box(set.clone());
        });
        let tv = time(iters, || {
            black_box(set.to_value());
        });
        let doc = set.to_value();
        let parse = time(iters, || {
            black_box(merge::FieldSet::from_fields_v1(&doc).ok());
        });
        let vclone = time(iters, || {
            black_box(doc.clone());
        });
        println!(
            "pod field set ({} paths): field_set_of {:.0}  clone+drop {:.0}  to_value {:.0}  parse {:.0}  value clone+drop {:.0} ns",
            set.len(), fso, clone, tv, parse, vclone
        );
        let zero_pod = g.zero_value(roots.pod);
        phases(
            "phases: create pod",
            roots.pod,
            &zero_pod,
            &pod,
            "kube-controller-manager",
            "",
        );
        phases(
            "phases: update pod label",
            roots.pod,
            &running,
            &relabeled,
            "kubectl-label",
            "",
        );
        phases(
            "phases: update deployment",
            roots.deployment,
            &dep_status,
            &scaled,
            "kubectl-edit",
            "",
        );
    }

    for (name, ns, allocs, out) in &results {
        println!("{:<28} {:>10.0} ns/op {:>8.0} allocs/op", name, ns, allocs);
        if dump {
            println!("  {}", out);
        }
    }
}
