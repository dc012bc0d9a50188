//! Micro-benchmark of pod defaulting, create preparation and validation
//! (create and update), as the apiserver runs them for every Pod write.
//!
//! Run with `cargo run --release -p validation --example pod_bench`; an
//! optional first argument sets the iteration count per round (default
//! 50000; the best of five rounds is reported), an
//! optional second one runs only the cases whose name contains it.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use k8s_openapi::api::core::v1::Pod;
use serde_json::json;
use validation::KindRules;

/// The system allocator, counting allocations.
struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller upholds `GlobalAlloc::dealloc`'s contract.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller upholds `GlobalAlloc::realloc`'s contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// A realistic ~2.5 KB pod: two containers with env (including a
/// fieldRef), resources, httpGet probes and volume mounts; configMap and
/// emptyDir volumes; node selector, tolerations, labels and annotations.
fn sample_pod() -> Pod {
    let container = |name: &str, port: i32| {
        json!({
            "name": name,
            "image": format!("registry.example.com/team/{name}:v1.2.3"),
            "ports": [{"name": "http", "containerPort": port, "protocol": "TCP"}],
            "env": [
                {"name": "LOG_LEVEL", "value": "info"},
                {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                {"name": "POD_IP", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "status.podIP"}}},
                {"name": "GOMAXPROCS", "value": "2"}
            ],
            "resources": {
                "requests": {"cpu": "100m", "memory": "128Mi"},
                "limits": {"cpu": "500m", "memory": "256Mi"}
            },
            "readinessProbe": {
                "httpGet": {"path": "/ready", "port": port},
                "initialDelaySeconds": 2, "periodSeconds": 5
            },
            "livenessProbe": {
                "httpGet": {"path": "/healthz", "port": "http", "scheme": "HTTP"},
                "initialDelaySeconds": 10, "failureThreshold": 3
            },
            "volumeMounts": [
                {"name": "config", "mountPath": "/etc/app", "readOnly": true},
                {"name": "scratch", "mountPath": "/tmp/scratch"}
            ]
        })
    };
    let v = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "web-7d9f8b6c5d-x2k4q",
            "namespace": "default",
            "labels": {"app": "web", "tier": "frontend", "pod-template-hash": "7d9f8b6c5d"},
            "annotations": {"example.com/owner": "team-a", "prometheus.io/scrape": "true"}
        },
        "spec": {
            "containers": [container("web", 8080), container("sidecar", 9090)],
            "volumes": [
                {"name": "config", "configMap": {"name": "web-config", "items": [{"key": "app.yaml", "path": "app.yaml"}]}},
                {"name": "scratch", "emptyDir": {"sizeLimit": "1Gi"}}
            ],
            "nodeSelector": {"kubernetes.io/os": "linux", "node-role.example.com/web": "true"},
            "tolerations": [
                {"key": "dedicated", "operator": "Equal", "value": "web", "effect": "NoSchedule"},
                {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}
            ],
            "serviceAccountName": "web",
            "terminationGracePeriodSeconds": 30
        }
    });
    serde_json::from_value(v).unwrap_or_default()
}

/// Runs `f` `iters` times in each of five rounds and prints the fastest
/// round's time per call (the machine may be shared with other work) and
/// the allocations (including reallocations) per call.
fn time<F: FnMut()>(name: &str, iters: u32, mut f: F) {
    if let Some(filter) = std::env::args().nth(2) {
        if !name.contains(&filter) {
            return;
        }
    }
    for _ in 0..iters / 10 {
        f();
    }
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    f();
    let allocs = ALLOCATIONS.load(Ordering::Relaxed) - before;
    let mut best = f64::INFINITY;
    for _ in 0..5 {
        let start = Instant::now();
        for _ in 0..iters {
            f();
        }
        best = best.min(start.elapsed().as_nanos() as f64 / f64::from(iters));
    }
    println!("{name:<40} {best:>10.0} ns/op {allocs:>8} allocs/op");
}

fn main() {
    let iters: u32 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(50_000);
    let raw = sample_pod();
    println!(
        "pod JSON size: {} bytes",
        serde_json::to_vec(&raw).map(|v| v.len()).unwrap_or(0)
    );

    let mut created = raw.clone();
    created.default();
    created.prepare_for_create();
    assert!(created.validate().is_empty(), "{:?}", created.validate());

    let mut updated = raw.clone();
    if let Some(spec) = updated.spec.as_mut() {
        spec.containers[0].image = Some("registry.example.com/team/web:v1.2.4".into());
    }
    updated.default();
    updated.prepare_for_update(&created);
    assert!(updated.validate_update(&created).is_empty());

    time("clone+default+prepare_for_create", iters, || {
        let mut p = black_box(&raw).clone();
        p.default();
        p.prepare_for_create();
        black_box(&p);
    });
    time("clone only", iters, || {
        black_box(black_box(&raw).clone());
    });
    time("validate (create)", iters, || {
        black_box(black_box(&created).validate());
    });
    time("validate_update (image change)", iters, || {
        black_box(black_box(&updated).validate_update(black_box(&created)));
    });
    time("validate_update (no change)", iters, || {
        black_box(black_box(&created).validate_update(black_box(&created)));
    });
    let meta = serde_json::to_value(&created.metadata).unwrap_or_default();
    let mut new_meta = meta.clone();
    new_meta["resourceVersion"] = json!("42");
    let metadata = apimachinery::Path::new("metadata");
    time("validate_object_meta (generic)", iters, || {
        black_box(apimachinery::validation::validate_object_meta(
            black_box(&meta),
            true,
            apimachinery::validation::name_is_dns_subdomain,
            &metadata,
        ));
    });
    time("validate_object_meta_update (generic)", iters, || {
        black_box(apimachinery::validation::validate_object_meta_update(
            black_box(&new_meta),
            black_box(&meta),
            &metadata,
        ));
    });
    time("clone+default+prepare_for_update", iters, || {
        let mut p = black_box(&raw).clone();
        p.default();
        p.prepare_for_update(black_box(&created));
        black_box(&p);
    });
}
