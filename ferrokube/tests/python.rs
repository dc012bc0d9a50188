//! End-to-end with the official Python `kubernetes` client (installed by
//! scripts/deps.sh into target/test-venv): create, list with selectors, watch.

mod support;

use std::path::PathBuf;
use std::process::Command;
use support::Cluster;

#[test]
fn python_client_create_list_watch() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let python = root.join("../target/test-venv/bin/python");
    assert!(
        python.exists(),
        "{} missing: run scripts/deps.sh (the test command does)",
        python.display()
    );
    let c = Cluster::start();
    let out = Command::new(&python)
        .arg(root.join("tests/python/client_test.py"))
        .env("KUBECONFIG", &c.kubeconfig)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "python client test failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok");
}
