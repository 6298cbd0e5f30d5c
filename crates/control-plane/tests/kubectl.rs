//! The real `kubectl` against the HTTPS endpoint: discovery, `get`, `apply --server-side`
//! (idempotent re-apply, conflicts, `--force-conflicts`), `delete` with a finalizer, `get -w`.
//!
//! kubectl is found via `UPSTART_KUBECTL`, else `.tools/bin/kubectl` at the workspace root, else
//! `PATH`. Without kubectl this test fails: it is the project's check that real clients work.

#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers outside #[test] fns

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use upstart_control_plane::Endpoint;

struct Kubectl {
    bin: PathBuf,
    kubeconfig: PathBuf,
    cache: PathBuf,
    dir: PathBuf,
}

impl Kubectl {
    fn new(endpoint: &Endpoint, dir: &Path) -> Self {
        let kubeconfig = dir.join("kubeconfig");
        endpoint.write_kubeconfig(&kubeconfig).unwrap();
        Kubectl {
            bin: upstart_test_support::kubectl(),
            kubeconfig,
            cache: dir.join("cache"),
            dir: dir.to_path_buf(),
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.bin);
        c.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(&self.cache);
        c.args(args);
        c.env_remove("KUBECONFIG");
        c
    }

    /// Runs kubectl off the async runtime (the server answers on the runtime's threads).
    async fn run(&self, args: &[&str]) -> Output {
        let mut c = self.command(args);
        tokio::task::spawn_blocking(move || c.output().expect("kubectl runs"))
            .await
            .unwrap()
    }

    async fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args).await;
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn file(&self, name: &str, content: &str) -> String {
        let p = self.dir.join(name);
        std::fs::write(&p, content).unwrap();
        p.to_string_lossy().into_owned()
    }
}

const CRD: &str = r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget, shortNames: [wd]}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    additionalPrinterColumns:
    - {name: Size, type: integer, jsonPath: .spec.size}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              size: {type: integer}
              colour: {type: string}
"#;

fn widget_yaml(size: i64, colour: &str) -> String {
    format!(
        "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w1\n  namespace: default\nspec:\n  size: {size}\n  colour: {colour}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_works_against_the_https_endpoint() {
    let cp = common::control_plane();
    let endpoint = cp
        .serve_https("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let k = Kubectl::new(&endpoint, tmp.path());

    // 1. get: discovery and Table output.
    let namespaces = k.ok(&["get", "namespaces"]).await;
    assert!(
        namespaces.contains("NAME") && namespaces.contains("default"),
        "{namespaces}"
    );
    // Imperative creation sends protobuf bodies.
    k.ok(&["create", "namespace", "imperative"]).await;
    k.ok(&[
        "-n",
        "imperative",
        "create",
        "configmap",
        "settings",
        "--from-literal=a=b",
    ])
    .await;
    let data = k
        .ok(&[
            "-n",
            "imperative",
            "get",
            "configmap",
            "settings",
            "-o",
            "jsonpath={.data.a}",
        ])
        .await;
    assert_eq!(data, "b");

    // 2. apply --server-side of a CRD, then of a custom resource, twice.
    let crd = k.file("crd.yaml", CRD);
    let out = k.ok(&["apply", "--server-side", "-f", &crd]).await;
    assert!(
        out.contains("widgets.example.com serverside-applied"),
        "{out}"
    );
    let w = k.file("w1.yaml", &widget_yaml(3, "red"));
    k.ok(&["apply", "--server-side", "-f", &w]).await;
    let rv1 = k
        .ok(&[
            "get",
            "widget",
            "w1",
            "-o",
            "jsonpath={.metadata.resourceVersion}",
        ])
        .await;
    k.ok(&["apply", "--server-side", "-f", &w]).await;
    let rv2 = k
        .ok(&[
            "get",
            "widget",
            "w1",
            "-o",
            "jsonpath={.metadata.resourceVersion}",
        ])
        .await;
    assert_eq!(rv1, rv2, "re-applying the same manifest is a no-op");
    let listed = k.ok(&["get", "wd"]).await;
    assert!(
        listed.contains("SIZE") && listed.contains("w1"),
        "printer columns shown: {listed}"
    );

    // 3. a second manager changing an owned field conflicts, unless it forces.
    let w2 = k.file("w1-other.yaml", &widget_yaml(5, "red"));
    let conflict = k
        .run(&["apply", "--server-side", "--field-manager=other", "-f", &w2])
        .await;
    assert!(!conflict.status.success(), "a conflicting apply must fail");
    let stderr = String::from_utf8_lossy(&conflict.stderr);
    assert!(stderr.contains("conflict"), "{stderr}");
    k.ok(&[
        "apply",
        "--server-side",
        "--field-manager=other",
        "--force-conflicts",
        "-f",
        &w2,
    ])
    .await;
    let size = k
        .ok(&["get", "widget", "w1", "-o", "jsonpath={.spec.size}"])
        .await;
    assert_eq!(size, "5");

    // 4. delete with a finalizer present returns once deletionTimestamp is set.
    k.ok(&[
        "patch",
        "widget",
        "w1",
        "--type=merge",
        "-p",
        r#"{"metadata":{"finalizers":["example.com/hold"]}}"#,
    ])
    .await;
    k.ok(&["delete", "widget", "w1", "--wait=false"]).await;
    let ts = k
        .ok(&[
            "get",
            "widget",
            "w1",
            "-o",
            "jsonpath={.metadata.deletionTimestamp}",
        ])
        .await;
    assert!(!ts.is_empty(), "deletionTimestamp is set");
    k.ok(&[
        "patch",
        "widget",
        "w1",
        "--type=json",
        "-p",
        r#"[{"op":"remove","path":"/metadata/finalizers"}]"#,
    ])
    .await;
    let gone = k.run(&["get", "widget", "w1"]).await;
    assert!(!gone.status.success());
    assert!(String::from_utf8_lossy(&gone.stderr).contains("NotFound"));

    // 5. get -w sees an update made by another client.
    let cms: Api<ConfigMap> = Api::default_namespaced(cp.client());
    let cm: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "watched"}, "data": {"a": "1"}}))
            .unwrap();
    cms.create(&PostParams::default(), &cm).await.unwrap();
    let mut child = k
        .command(&["get", "configmap", "watched", "-w", "--output-watch-events"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let first = tokio::time::timeout(Duration::from_secs(20), rx.recv())
        .await
        .expect("kubectl prints")
        .unwrap();
    let first = if first.contains("EVENT") {
        tokio::time::timeout(Duration::from_secs(20), rx.recv())
            .await
            .expect("kubectl prints")
            .unwrap()
    } else {
        first
    };
    assert!(
        first.contains("ADDED") && first.contains("watched"),
        "{first}"
    );
    // kubectl prints the object, then watches from resourceVersion 0 and skips the synthetic
    // ADDED it gets first; a change made before its watch is open is folded into that ADDED.
    // So keep changing the object until kubectl reports a MODIFIED event.
    let mut seen = None;
    for attempt in 0..20 {
        cms.patch(
            "watched",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"attempt": attempt.to_string()}})),
        )
        .await
        .unwrap();
        if let Ok(Some(line)) = tokio::time::timeout(Duration::from_secs(1), rx.recv()).await {
            seen = Some(line);
            break;
        }
    }
    let second = seen.expect("kubectl get -w reports the update");
    assert!(
        second.contains("MODIFIED") && second.contains("watched"),
        "{second}"
    );
    child.kill().ok();
    child.wait().ok();
}
