//! Several `upstart dev`s: a second one names the instance holding its port and never takes
//! its kubeconfig; a port held by something else is not blamed on an `upstart dev`.

use super::*;

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
