//! `--exit-when-ready`: at once when nothing has a Ready condition, success when every Ready
//! condition is true, a clear message on timeout, no wait on kinds whose operator is not
//! running, and SIGTERM while waiting exits non-zero.

use super::*;

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
