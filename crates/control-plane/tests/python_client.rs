//! The official Kubernetes Python client against the HTTPS endpoint, at the two versions
//! scripts/python-clients pins (37.0.3, the newest; 31.0.0, of the 31–36 line that sends
//! booleans as `True`): e2e/clients/python_conformance.py runs its checks (CRUD, the four kinds
//! of patch, selectors, pagination, watch with the `Watch` helper, 409s, CRDs with status,
//! finalizers, deletion, Events...) and any `FAIL` line fails this test.
//!
//! The clients live in `.tools/python/k8s-NN` of the workspace (scripts/test runs
//! scripts/python-clients first); without them this test fails and says how to install them.

#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers outside #[test] fns

mod common;

use std::path::PathBuf;
use std::process::Command;

/// Runs the conformance script with the client in `.tools/python/{venv}` against a fresh
/// control plane and returns its output.
async fn conformance(venv: &str) -> String {
    let root = upstart_test_support::workspace_root();
    let python = root.join(".tools/python").join(venv).join("bin/python");
    assert!(
        python.is_file(),
        "{} is missing: run scripts/python-clients (scripts/test does) to install the pinned \
         Kubernetes Python clients",
        python.display()
    );
    let script: PathBuf = root.join("e2e/clients/python_conformance.py");
    let cp = common::control_plane();
    let endpoint = cp
        .serve_https("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let kubeconfig = tmp.path().join("kubeconfig");
    endpoint.write_kubeconfig(&kubeconfig).unwrap();
    let mut c = Command::new(&python);
    c.arg(&script)
        .arg(&kubeconfig)
        .env_remove("KUBECONFIG")
        .env("PYTHONDONTWRITEBYTECODE", "1");
    // Off the async runtime: the server answers on the runtime's threads.
    let out = tokio::task::spawn_blocking(move || c.output().expect("python runs"))
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let failed: Vec<&str> = stdout.lines().filter(|l| l.starts_with("FAIL ")).collect();
    assert!(
        out.status.success() && failed.is_empty() && stdout.contains("checks passed"),
        "the Python client {venv} found differences from the Kubernetes API:\n{}\n\n\
         full output:\n{stdout}\n{}",
        failed.join("\n"),
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_client_37_passes_every_conformance_check() {
    let out = conformance("k8s-37").await;
    assert!(out.contains("python-client 37.0.3:"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_client_31_passes_every_conformance_check() {
    let out = conformance("k8s-31").await;
    assert!(out.contains("python-client 31.0.0:"), "{out}");
}
