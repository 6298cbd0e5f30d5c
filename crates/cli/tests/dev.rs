//! `upstart dev` as a user runs it: the binary with files to apply, `--exit-when-ready`, and
//! the real kubectl against the kubeconfig it writes, then SIGTERM for a clean stop.
//!
//! kubectl is found via `UPSTART_KUBECTL`, else `.tools/bin/kubectl` at the workspace root,
//! else `PATH`; without it the kubectl test fails and says so.

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

#[test]
fn exit_when_ready_exits_at_once_when_no_object_has_a_ready_condition() {
    let tmp = tempfile::tempdir().unwrap();
    let file = write(tmp.path(), "widget.yaml", &format!("{WIDGET}---{CRD}"));
    let mut command = upstart(tmp.path());
    command
        .args(["--exit-when-ready", "--kubeconfig", "out/kubeconfig"])
        .arg(&file);
    let out = run(command);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stderr:\n{stderr}");
    let kubeconfig = tmp.path().join("out/kubeconfig");
    assert!(
        stdout.contains(&format!("export KUBECONFIG={}", kubeconfig.display())),
        "{stdout}"
    );
    assert!(kubeconfig.is_file());
    // The CRD was applied (and established) before the Widget, whatever the file order.
    let crd_at = stderr
        .find("CustomResourceDefinition widgets.example.com")
        .unwrap();
    let widget_at = stderr.find("Widget default/w").unwrap();
    assert!(crd_at < widget_at, "{stderr}");
    assert!(stderr.contains("nothing to wait for"), "{stderr}");
}

#[test]
fn exit_when_ready_succeeds_when_every_ready_condition_is_true() {
    let tmp = tempfile::tempdir().unwrap();
    let file = write(
        tmp.path(),
        "g.yaml",
        &format!("{CRD_WITHOUT_STATUS}---\n{}", gadget("True")),
    );
    let mut command = upstart(tmp.path());
    command
        .args(["--exit-when-ready", "--kubeconfig", "k.yaml"])
        .arg(&file);
    let out = run(command);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stderr:\n{stderr}");
    assert!(stderr.contains("every applied object is Ready"), "{stderr}");
}

#[test]
fn exit_when_ready_fails_with_a_clear_message_on_timeout() {
    let tmp = tempfile::tempdir().unwrap();
    let file = write(
        tmp.path(),
        "g.yaml",
        &format!("{CRD_WITHOUT_STATUS}---\n{}", gadget("False")),
    );
    let mut command = upstart(tmp.path());
    command
        .args([
            "--exit-when-ready",
            "--ready-timeout",
            "1s",
            "--kubeconfig",
            "k.yaml",
        ])
        .arg(&file);
    let started = Instant::now();
    let out = run(command);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "stderr:\n{stderr}");
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert!(
        stderr.contains(
            "upstart: timed out after 1s waiting for Ready: Gadget default/g is Ready=False \
             (Waiting: waiting for the database)"
        ),
        "{stderr}"
    );
}

#[test]
fn exit_when_ready_does_not_wait_for_upstart_kinds_whose_operator_is_not_running() {
    let tmp = tempfile::tempdir().unwrap();
    let crd = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../crds/upstartservices.upstartoperators.upstart.com.yaml");
    let service = write(
        tmp.path(),
        "service.yaml",
        "apiVersion: upstartoperators.upstart.com/v1alpha1
kind: UpstartService
metadata: {name: s}
spec:
  helmReleases:
    web: {chart: upstart-charts/example-service}
",
    );
    let mut command = upstart(tmp.path());
    command
        .args([
            "--exit-when-ready",
            "--ready-timeout",
            "20s",
            "--kubeconfig",
            "k.yaml",
        ])
        .arg(&crd)
        .arg(&service);
    let started = Instant::now();
    let out = run(command);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stderr:\n{stderr}");
    assert!(started.elapsed() < Duration::from_secs(20), "{stderr}");
    assert!(
        stderr.contains(
            "no operator for UpstartService is running: not waiting for UpstartService default/s"
        ),
        "{stderr}"
    );
    assert!(stderr.contains("nothing to wait for"), "{stderr}");
}

#[test]
fn invalid_file_fails_before_starting_anything() {
    let tmp = tempfile::tempdir().unwrap();
    let file = write(tmp.path(), "bad.yaml", "apiVersion: v1\nkind: ConfigMap\n");
    let mut command = upstart(tmp.path());
    command.args(["--kubeconfig", "k.yaml"]).arg(&file);
    let out = run(command);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("bad.yaml#1"), "{stderr}");
    assert!(!tmp.path().join("k.yaml").exists());
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

/// A minimal HTTP/1.1 GET returning the whole response, so the test needs no HTTP client.
fn http_get(host: &str, path: &str) -> String {
    use std::io::{Read as _, Write as _};
    let mut stream = std::net::TcpStream::connect(host).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

#[test]
fn kubectl_applies_and_reads_back_a_custom_resource_and_sigterm_stops_dev_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::create_dir_all(dir.join("charts/tiny")).unwrap();
    write(
        &dir.join("charts/tiny"),
        "Chart.yaml",
        "apiVersion: v2\nname: tiny\nversion: 0.1.0\n",
    );
    write(dir, "crd.yaml", CRD);
    write(dir, "widget.yaml", WIDGET);

    let mut child = Command::new(env!("CARGO_BIN_EXE_upstart"))
        .current_dir(dir)
        .args([
            "--log-format",
            "text",
            "dev",
            "--no-operators",
            "--port",
            "0",
        ])
        .args(["--kubeconfig", "k.yaml", "--charts", "charts"])
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (lines, received) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let export = received
        .recv_timeout(Duration::from_secs(60))
        .expect("upstart dev prints how to use kubectl");
    assert!(export.starts_with("export KUBECONFIG="), "{export}");
    let repo_line = received.recv_timeout(Duration::from_secs(10)).unwrap();
    let url = repo_line
        .strip_prefix("# chart repository upstart-charts: ")
        .unwrap_or_else(|| panic!("{repo_line}"));
    let index = http_get(url.strip_prefix("http://").unwrap(), "/index.yaml");
    assert!(index.starts_with("HTTP/1.1 200"), "{index}");
    assert!(index.contains("tiny-0.1.0.tgz"), "{index}");

    kubectl(dir, &["apply", "--server-side", "-f", "crd.yaml"]);
    kubectl(
        dir,
        &[
            "wait",
            "--for=condition=established",
            "crd/widgets.example.com",
            "--timeout=30s",
        ],
    );
    kubectl(dir, &["apply", "--server-side", "-f", "widget.yaml"]);
    let size = kubectl(dir, &["get", "widget", "w", "-o", "jsonpath={.spec.size}"]);
    assert_eq!(size, "3");
    let managers = kubectl(
        dir,
        &[
            "get",
            "widget",
            "w",
            "--show-managed-fields",
            "-o",
            "jsonpath={.metadata.managedFields[*].manager}",
        ],
    );
    assert!(managers.contains("kubectl"), "{managers}");

    let pid = child.id().to_string();
    let status = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(status.success());
    let out = wait_output(child, Duration::from_secs(20));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stderr:\n{stderr}");
    assert!(stderr.contains("chart repository serving"), "{stderr}");
    assert!(stderr.contains("shutting down"), "{stderr}");
}

#[test]
fn sigterm_while_waiting_for_ready_exits_non_zero() {
    let tmp = tempfile::tempdir().unwrap();
    let file = write(
        tmp.path(),
        "g.yaml",
        &format!("{CRD_WITHOUT_STATUS}---\n{}", gadget("False")),
    );
    let mut child = upstart(tmp.path())
        .args(["--exit-when-ready", "--kubeconfig", "k.yaml"])
        .arg(&file)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Once the export line is out, the control plane is up and the wait is under way.
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.starts_with("export KUBECONFIG="), "{first}");
    std::thread::sleep(Duration::from_millis(300));
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let out = wait_output(child, Duration::from_secs(20));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "stderr:\n{stderr}");
    assert!(
        stderr.contains("interrupted before every applied object was Ready"),
        "{stderr}"
    );
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

#[test]
fn a_file_upstart_dev_applied_is_edited_and_reapplied_with_kubectl_server_side() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write(dir, "crd.yaml", CRD);
    write(dir, "widget.yaml", WIDGET);
    let dev = Running::start(dev_on(dir, 0, "k.yaml", &["crd.yaml", "widget.yaml"]));
    let size = kubectl_eventually(dir, &["get", "widget", "w", "-o", "jsonpath={.spec.size}"]);
    assert_eq!(size, "3");

    // The documented loop: edit the file, apply it with kubectl's defaults (no
    // --force-conflicts, no --field-manager).
    write(dir, "widget.yaml", &WIDGET.replace("size: 3", "size: 5"));
    kubectl(dir, &["apply", "--server-side", "-f", "widget.yaml"]);
    let size = kubectl(dir, &["get", "widget", "w", "-o", "jsonpath={.spec.size}"]);
    assert_eq!(size, "5");
    let managers = kubectl(
        dir,
        &[
            "get",
            "widget",
            "w",
            "--show-managed-fields",
            "-o",
            "jsonpath={.metadata.managedFields[*].manager}",
        ],
    );
    assert_eq!(managers, "kubectl", "one owner of the applied fields");
    dev.stop();
}

fn record(dir: &Path, kubeconfig: &str) -> serde_json::Value {
    let path = dir.join(format!("{kubeconfig}.dev.json"));
    serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap()
}

#[test]
fn a_second_dev_names_the_instance_holding_its_port_and_never_takes_its_kubeconfig() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let first = Running::start(dev_on(dir, 0, "a.yaml", &[]));
    let held = record(dir, "a.yaml");
    assert_eq!(held["pid"], first.pid());
    let port = u16::try_from(held["port"].as_u64().unwrap()).unwrap();
    let kubeconfig = std::fs::read_to_string(dir.join("a.yaml")).unwrap();
    assert!(
        kubeconfig.contains(&format!("127.0.0.1:{port}")),
        "{kubeconfig}"
    );

    // Its port, with a kubeconfig of its own.
    let out = run(dev_on(dir, port, "b.yaml", &[]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "stderr:\n{stderr}");
    let a = std::path::absolute(dir.join("a.yaml")).unwrap();
    assert!(
        stderr.contains(&format!(
            "port {port} is in use by another upstart dev (pid {}, port {port}, started ",
            first.pid()
        )) && stderr.contains(&format!(
            "kubeconfig {}): stop it, or pass --port 0 --kubeconfig OTHER",
            a.display()
        )),
        "{stderr}"
    );
    assert!(!dir.join("b.yaml").exists());
    assert!(!dir.join("b.yaml.dev.json").exists());

    // Any port, with its kubeconfig.
    let out = run(dev_on(dir, 0, "a.yaml", &[]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "stderr:\n{stderr}");
    assert!(
        stderr.contains(&format!(
            "the kubeconfig {} belongs to another running upstart dev (pid {}",
            a.display(),
            first.pid()
        )) && stderr.contains("pass --kubeconfig OTHER"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("a.yaml")).unwrap(),
        kubeconfig,
        "the first one's kubeconfig is untouched"
    );
    assert_eq!(record(dir, "a.yaml"), held);

    first.stop();
    assert!(
        !dir.join("a.yaml.dev.json").exists(),
        "the record goes with the instance"
    );
    // Now free: the same kubeconfig is taken over.
    let again = Running::start(dev_on(dir, 0, "a.yaml", &[]));
    assert_eq!(record(dir, "a.yaml")["pid"], again.pid());
    again.stop();
}

#[test]
fn a_port_held_by_something_else_is_not_blamed_on_an_upstart_dev() {
    let tmp = tempfile::tempdir().unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let out = run(dev_on(tmp.path(), port, "k.yaml", &[]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "stderr:\n{stderr}");
    assert!(
        stderr.contains(&format!(
            "port {port} of 127.0.0.1 is in use, and not by an upstart dev with its kubeconfig in"
        )) && stderr.contains("pass --port 0"),
        "{stderr}"
    );
    assert!(!tmp.path().join("k.yaml.dev.json").exists());
    drop(listener);
}

/// The flag examples `upstart dev` gives with a malformed repository flag.
const REPOSITORY_EXAMPLE: &str = "e.g. --repository bitnami=https://charts.bitnami.com/bitnami";
const CLUSTER_SCOPED_EXAMPLE: &str =
    "e.g. --allow-cluster-scoped rbac.authorization.k8s.io/ClusterRole,Namespace";

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

#[test]
fn malformed_repository_flags_are_refused_naming_the_flag_with_an_example() {
    for (flag, problem) in [
        ("bitnami", "no `=` between the name and the URL"),
        ("=https://charts.example.com", "the name is empty"),
        (
            "bit nami=https://charts.example.com",
            "the name may hold only letters, digits",
        ),
        ("b=charts.example.com", "the URL has no scheme"),
        (
            "b=ftp://charts.example.com",
            "the URL scheme ftp:// is not supported",
        ),
        ("b=https://", "the URL has no host"),
        (
            "b=https://robot:hunter2@charts.example.com/stable",
            "credentials in the URL are refused",
        ),
    ] {
        let stderr = refused_flags(&["--repository", flag]);
        assert!(
            stderr.contains("upstart: --repository ")
                && stderr.contains(problem)
                && stderr.contains(REPOSITORY_EXAMPLE),
            "--repository {flag}:\n{stderr}"
        );
        assert!(
            !stderr.contains("hunter2"),
            "the password leaked:\n{stderr}"
        );
    }
    let stderr = refused_flags(&[
        "--repository",
        "b=https://one.example.com",
        "--repository",
        "b=https://two.example.com",
    ]);
    assert!(
        stderr.contains("the repository b is given twice"),
        "{stderr}"
    );
}

#[test]
fn malformed_allow_cluster_scoped_kinds_are_refused_naming_the_flag_with_an_example() {
    for (flag, problem) in [
        (
            "clusterrole",
            "\"clusterrole\" is not a kind as manifests write it",
        ),
        (
            "rbac.authorization.k8s.io/v1/ClusterRole",
            "write the API group without its version",
        ),
        ("v1/Namespace", "\"v1\" is an API version, not a group"),
        (
            "RBAC.authorization.k8s.io/ClusterRole",
            "is not an API group",
        ),
        ("ClusterRole,", "an empty kind (a stray comma?)"),
    ] {
        let stderr = refused_flags(&["--allow-cluster-scoped", flag]);
        assert!(
            stderr.contains("upstart: --allow-cluster-scoped ")
                && stderr.contains(problem)
                && stderr.contains(CLUSTER_SCOPED_EXAMPLE),
            "--allow-cluster-scoped {flag}:\n{stderr}"
        );
    }
}

#[test]
fn a_malformed_repositories_config_is_refused_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let stderr = refused_flags(&["--repositories-config", "missing.yaml"]);
    assert!(
        stderr.contains("--repositories-config missing.yaml: cannot read it"),
        "{stderr}"
    );
    let typo = write(tmp.path(), "typo.yaml", "allowUnlistd: true\n");
    let stderr = refused_flags(&["--repositories-config", typo.to_str().unwrap()]);
    assert!(
        stderr.contains("allowUnlistd")
            && stderr.contains("expected the HelmRelease operator's repository configuration"),
        "{stderr}"
    );
    // What only the operator's own checks see: they run before the cluster starts.
    let scheme = write(
        tmp.path(),
        "scheme.yaml",
        "repositories:\n  mirror: {url: ftp://charts.example.com}\n",
    );
    let stderr = refused_flags(&["--repositories-config", scheme.to_str().unwrap()]);
    assert!(
        stderr.contains("chart repository configuration")
            && stderr.contains("\"mirror\": url must start with oci://, https:// or http://"),
        "{stderr}"
    );
}

/// A second chart repository, as a user would serve a directory: another `upstart dev`, with
/// no operators, serving it as its `upstart-charts`. Returns it and its URL.
fn serve_charts(dir: &Path) -> (Running, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_upstart"))
        .current_dir(dir)
        .args(["dev", "--no-operators", "--port", "0"])
        .args(["--kubeconfig", "repo-kubeconfig", "--charts", "charts"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let running = Running { child: Some(child) };
    for line in stdout.lines() {
        if let Some(url) = line
            .unwrap()
            .strip_prefix("# chart repository upstart-charts: ")
        {
            return (running, url.trim_end_matches('/').to_owned());
        }
    }
    panic!("the chart repository did not start");
}

/// Charts nobody configured in `upstart dev`: `hello` (a ConfigMap) and `reader` (a
/// ClusterRole, as ingress-nginx or kube-state-metrics render).
fn other_charts(dir: &Path) {
    for (name, template) in [
        (
            "hello",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: '{{ .Release.Name }}'}\n\
             data: {chart: '{{ .Chart.Name }}'}\n",
        ),
        (
            "reader",
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\n\
             metadata: {name: '{{ .Release.Namespace }}-{{ .Release.Name }}'}\n\
             rules: [{apiGroups: [''], resources: [pods], verbs: [get]}]\n",
        ),
    ] {
        let chart = dir.join("charts").join(name);
        std::fs::create_dir_all(chart.join("templates")).unwrap();
        write(
            &chart,
            "Chart.yaml",
            &format!("apiVersion: v2\nname: {name}\nversion: 1.0.0\n"),
        );
        write(&chart.join("templates"), "objects.yaml", template);
    }
}

fn helm_releases(charts: &[(&str, &str)]) -> String {
    charts
        .iter()
        .map(|(name, chart)| {
            format!(
                "apiVersion: upstartoperators.upstart.com/v1alpha1\nkind: HelmRelease\n\
                 metadata: {{name: {name}}}\nspec: {{chart: \"{chart}\"}}\n"
            )
        })
        .collect::<Vec<_>>()
        .join("---\n")
}

/// `upstart dev` with its operators, waiting at most `timeout` for `args` (with no charts
/// directory unless `args` gives one).
fn dev_with_operators(dir: &Path, timeout: &str, args: &[&str]) -> Output {
    let charts = if args.contains(&"--charts") {
        &[][..]
    } else {
        &["--charts", "no-charts"][..]
    };
    let mut command = Command::new(env!("CARGO_BIN_EXE_upstart"));
    command
        .current_dir(dir)
        .args(["--log-format", "text", "dev", "--port", "0"])
        .args(["--kubeconfig", "k.yaml"])
        .args(charts)
        .args(["--helm", upstart_test_support::helm().to_str().unwrap()])
        .args(["--workload-delay", "0s", "--exit-when-ready"])
        .args(["--ready-timeout", timeout])
        .args(args)
        .env("RUST_LOG", "warn");
    run(command)
}

#[test]
fn charts_of_other_repositories_unlisted_urls_and_cluster_roles_install_with_the_dev_flags() {
    let tmp = tempfile::tempdir().unwrap();
    other_charts(tmp.path());
    let (repo, url) = serve_charts(tmp.path());
    let releases = write(
        tmp.path(),
        "releases.yaml",
        &helm_releases(&[
            ("hello", "other/hello"),
            ("direct", &format!("{url}/hello")),
            ("reader", "other/reader"),
        ]),
    );
    let releases = releases.to_str().unwrap();

    // Today's configuration: nothing but upstart-charts, and no cluster-scoped kind.
    let out = dev_with_operators(tmp.path(), "3s", &[releases]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    for refusal in [
        "HelmRelease default/hello is Ready=False (ChartFetchFailed",
        "HelmRelease default/direct is Ready=False (ChartFetchFailed",
        "HelmRelease default/reader is Ready=False (ChartFetchFailed",
    ] {
        assert!(stderr.contains(refusal), "{refusal}:\n{stderr}");
    }

    let repository = format!("other={url}");
    let out = dev_with_operators(
        tmp.path(),
        "30s",
        &[
            "--repository",
            &repository,
            "--allow-unlisted",
            "--allow-cluster-scoped",
            "rbac.authorization.k8s.io/ClusterRole",
            releases,
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains(&format!("# chart repository other: {url}")),
        "{stdout}"
    );

    // The ClusterRole alone, without the allow-list: refused as the operator refuses it.
    let reader = write(
        tmp.path(),
        "reader.yaml",
        &helm_releases(&[("reader", "other/reader")]),
    );
    let out = dev_with_operators(
        tmp.path(),
        "3s",
        &["--repository", &repository, reader.to_str().unwrap()],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("HelmRelease default/reader is Ready=False (ClusterScopedNotAllowed"),
        "{stderr}"
    );
    repo.stop_quietly();
}

#[test]
fn a_repositories_config_file_is_used_as_the_operator_uses_it_and_flags_override_it() {
    let tmp = tempfile::tempdir().unwrap();
    other_charts(tmp.path());
    let (repo, url) = serve_charts(tmp.path());
    let releases = write(
        tmp.path(),
        "releases.yaml",
        &helm_releases(&[
            ("hello", "other/hello"),
            ("direct", &format!("{url}/hello")),
        ]),
    );
    // As the operators' chart renders its ConfigMap.
    let config = write(
        tmp.path(),
        "repositories.yaml",
        &format!(
            "repositories:\n  other:\n    url: {url}\nallowUnlisted: true\n\
             unlistedPlainHttp: false\nindexTtl: \"5m\"\nlimits:\n  fetchTimeout: \"10s\"\n"
        ),
    );
    let config = config.to_str().unwrap();
    let out = dev_with_operators(
        tmp.path(),
        "30s",
        &["--repositories-config", config, releases.to_str().unwrap()],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");

    // A --repository of the file's name replaces the file's entry, whatever the order.
    let dead = write(
        tmp.path(),
        "dead.yaml",
        "repositories:\n  other: {url: \"http://127.0.0.1:1\"}\n",
    );
    let hello = write(
        tmp.path(),
        "hello.yaml",
        &helm_releases(&[("hello", "other/hello")]),
    );
    let repository = format!("other={url}");
    let out = dev_with_operators(
        tmp.path(),
        "30s",
        &[
            "--repository",
            &repository,
            "--repositories-config",
            dead.to_str().unwrap(),
            hello.to_str().unwrap(),
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains(&format!("# chart repository other: {url}")),
        "{stdout}"
    );
    repo.stop_quietly();
}

#[test]
fn a_repository_named_upstart_charts_wins_over_the_charts_directory() {
    let tmp = tempfile::tempdir().unwrap();
    other_charts(tmp.path());
    let (repo, url) = serve_charts(tmp.path());
    // The local directory has no `hello`: only the repository given by name serves it.
    std::fs::create_dir_all(tmp.path().join("local/tiny")).unwrap();
    write(
        &tmp.path().join("local/tiny"),
        "Chart.yaml",
        "apiVersion: v2\nname: tiny\nversion: 0.1.0\n",
    );
    let hello = write(
        tmp.path(),
        "hello.yaml",
        &helm_releases(&[("hello", "upstart-charts/hello")]),
    );
    let repository = format!("upstart-charts={url}");
    let out = dev_with_operators(
        tmp.path(),
        "30s",
        &[
            "--charts",
            "local",
            "--repository",
            &repository,
            hello.to_str().unwrap(),
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let repositories: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("# chart repository"))
        .collect();
    assert_eq!(
        repositories,
        [format!("# chart repository upstart-charts: {url}")],
        "{stdout}"
    );
    repo.stop_quietly();
}

#[test]
fn a_configured_repository_url_with_a_password_is_refused_without_showing_it() {
    let tmp = tempfile::tempdir().unwrap();
    let config = write(
        tmp.path(),
        "repositories.yaml",
        "repositories:\n  mirror: {url: \"https://robot:hunter2@127.0.0.1:1/charts\"}\n",
    );
    let stderr = refused_flags(&["--repositories-config", config.to_str().unwrap()]);
    assert!(
        stderr.contains("repository \"mirror\"")
            && stderr.contains("carries credentials; use credentialsSecret instead"),
        "{stderr}"
    );
    assert!(!stderr.contains("hunter2"), "{stderr}");
}
