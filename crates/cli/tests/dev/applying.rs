//! Files given to `upstart dev`: an invalid one refused before anything starts, a custom
//! resource applied and read back with kubectl (then SIGTERM stops cleanly), and an applied
//! file edited and reapplied with kubectl server-side.

use super::*;

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
