//! `upstart dev` as a user runs it: the binary with files to apply, `--exit-when-ready`, and
//! the real kubectl against the kubeconfig it writes, then SIGTERM for a clean stop.
//!
//! kubectl is found via `UPSTART_KUBECTL`, else `.tools/bin/kubectl` at the workspace root,
//! else `PATH`; without it the kubectl test fails and says so.
//!
//! One test binary (linked once), its tests by behaviour in the modules declared below; this
//! file is their shared harness: the CRDs and objects, running `upstart dev`, kubectl, the
//! [`Running`] instance and the refused-flags check.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails by panicking"
)]

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

mod applying;
mod exit_when_ready;
mod flags;
mod instances;
mod overlay;
mod repositories;

const CRD: &str = "
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-preserve-unknown-fields: true
";

/// A CRD without a status subresource, so that a manifest can carry its own status.
const CRD_WITHOUT_STATUS: &str = "
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: gadgets.example.com
spec:
  group: example.com
  scope: Namespaced
  names: {plural: gadgets, singular: gadget, kind: Gadget}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-preserve-unknown-fields: true
";

const WIDGET: &str = "
apiVersion: example.com/v1
kind: Widget
metadata: {name: w}
spec: {size: 3}
";

fn gadget(ready: &str) -> String {
    format!(
        "apiVersion: example.com/v1
kind: Gadget
metadata: {{name: g}}
status:
  conditions:
  - {{type: Ready, status: \"{ready}\", reason: Waiting, message: waiting for the database}}
"
    )
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn upstart(dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_upstart"));
    c.current_dir(dir)
        .args([
            "--log-format",
            "text",
            "dev",
            "--no-operators",
            "--port",
            "0",
        ])
        .args(["--charts", "no-charts"])
        .env("RUST_LOG", "info");
    c
}

/// Waits for `child` with a deadline, killing it if it overruns.
fn wait_output(mut child: Child, limit: Duration) -> Output {
    let deadline = Instant::now() + limit;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            let out = child.wait_with_output().unwrap();
            panic!(
                "upstart did not exit within {limit:?}; stderr:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

fn run(mut command: Command) -> Output {
    let child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_output(child, Duration::from_secs(60))
}

fn kubectl(dir: &Path, args: &[&str]) -> String {
    let out = Command::new(upstart_test_support::kubectl())
        .current_dir(dir)
        .args(["--kubeconfig", "k.yaml", "--cache-dir", "kube-cache"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "kubectl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `upstart dev --no-operators` on `port` writing `kubeconfig`, with `files`.
fn dev_on(dir: &Path, port: u16, kubeconfig: &str, files: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_upstart"));
    c.current_dir(dir)
        .args(["--log-format", "text", "dev", "--no-operators"])
        .args(["--port", &port.to_string()])
        .args(["--kubeconfig", kubeconfig, "--charts", "no-charts"])
        .args(files)
        .env("RUST_LOG", "info");
    c
}

/// A running `upstart dev`, stopped with SIGTERM when dropped.
struct Running {
    child: Option<Child>,
}

impl Running {
    /// Starts it and waits for its first stdout line (`export KUBECONFIG=…`).
    fn start(mut command: Command) -> Running {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        assert!(first.starts_with("export KUBECONFIG=/"), "{first}");
        Running { child: Some(child) }
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// SIGTERM, then its stderr once it exited successfully.
    fn stop(mut self) -> String {
        let child = self.child.take().unwrap();
        let pid = child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        let out = wait_output(child, Duration::from_secs(20));
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "stderr:\n{stderr}");
        stderr
    }
}

impl Running {
    /// SIGTERM, then waits for it to end, whatever its exit status.
    fn stop_quietly(mut self) {
        if let Some(child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let _ = wait_output(child, Duration::from_secs(20));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Polls `kubectl ARGS` until it succeeds, and returns its stdout.
fn kubectl_eventually(dir: &Path, args: &[&str]) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = Command::new(upstart_test_support::kubectl())
            .current_dir(dir)
            .args(["--kubeconfig", "k.yaml", "--cache-dir", "kube-cache"])
            .args(args)
            .output()
            .unwrap();
        if out.status.success() {
            return String::from_utf8(out.stdout).unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "kubectl {args:?} kept failing: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Runs `upstart dev` with `args`, expecting it to fail before starting anything; its stderr.
fn refused_flags(args: &[&str]) -> String {
    let tmp = tempfile::tempdir().unwrap();
    let mut command = upstart(tmp.path());
    command.args(["--kubeconfig", "k.yaml"]).args(args);
    let out = run(command);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "{args:?} was accepted:\n{stderr}");
    assert!(
        !tmp.path().join("k.yaml").exists(),
        "{args:?}: the cluster started:\n{stderr}"
    );
    stderr
}
