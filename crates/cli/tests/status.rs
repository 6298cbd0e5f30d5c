//! `upstart status` and `upstart graph ENV` against the local control plane over HTTPS, with
//! objects whose statuses the test writes by hand (no operator runs): the tree, what each
//! release waits for, progress, and `--watch` ending once the environment is Ready.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails by panicking"
)]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};
use tokio::io::AsyncReadExt as _;
use upstart_api::v1alpha1::{HelmRelease, UpstartEnvironment, UpstartService};
use upstart_control_plane::{ControlPlane, Options};

struct Cluster {
    cp: ControlPlane,
    client: Client,
    kubeconfig: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.cp.shutdown();
    }
}

async fn cluster() -> Cluster {
    let cp = ControlPlane::start(Options::default());
    let client = cp.client();
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in upstart_api::crd::crds() {
        crds.create(&PostParams::default(), &crd).await.unwrap();
    }
    let endpoint = cp
        .serve_https("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    endpoint.write_kubeconfig(&kubeconfig).unwrap();
    Cluster {
        cp,
        client,
        kubeconfig,
        _dir: dir,
    }
}

fn condition(ready: bool, reason: &str, message: &str) -> Value {
    json!({"type": "Ready", "status": if ready { "True" } else { "False" }, "reason": reason,
           "message": message, "lastTransitionTime": "2026-01-01T00:00:00Z"})
}

async fn set_status<K>(api: &Api<K>, name: &str, status: Value)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"status": status})),
    )
    .await
    .unwrap();
}

async fn create<K>(api: &Api<K>, object: Value)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    let object: K = serde_json::from_value(object).unwrap();
    api.create(&PostParams::default(), &object).await.unwrap();
}

/// Environment pr-7 (namespace pr-7): release `flags`; services `shop` (db, app -> db, flags)
/// and `later` (a template not yet instantiated).
async fn provisioning_environment(client: &Client) {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    // The template of `later`, which the environment has not instantiated yet.
    create(
        &namespaces,
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "upstart-catalog"}}),
    )
    .await;
    let catalog: Api<UpstartService> = Api::namespaced(client.clone(), "upstart-catalog");
    create(
        &catalog,
        json!({
            "apiVersion": "upstartoperators.upstart.com/v1alpha1", "kind": "UpstartService",
            "metadata": {"name": "later", "namespace": "upstart-catalog"},
            "spec": {"helmReleases": {"queue": {"chart": "r/queue"}}}
        }),
    )
    .await;
    create(
        &namespaces,
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "pr-7"}}),
    )
    .await;
    let environments: Api<UpstartEnvironment> = Api::all(client.clone());
    create(
        &environments,
        json!({
            "apiVersion": "upstartoperators.upstart.com/v1alpha1", "kind": "UpstartEnvironment",
            "metadata": {"name": "pr-7"},
            "spec": {"helmReleases": {"flags": {"chart": "r/flags"}},
                     "services": [{"name": "shop", "template": {"name": "shop"}},
                                  {"name": "later", "template": {"name": "later"}}]}
        }),
    )
    .await;
    set_status(
        &environments,
        "pr-7",
        json!({
            "phase": "Provisioning", "namespace": "pr-7",
            "conditions": [condition(false, "Provisioning", "waiting for shop, later")]
        }),
    )
    .await;
    let services: Api<UpstartService> = Api::namespaced(client.clone(), "pr-7");
    create(&services, json!({
        "apiVersion": "upstartoperators.upstart.com/v1alpha1", "kind": "UpstartService",
        "metadata": {"name": "shop", "namespace": "pr-7"},
        "spec": {"helmReleases": {
            "db": {"chart": "r/db"},
            "app": {"chart": "r/app", "dependencies": [{"name": "db"}, {"name": "pr-7-flags"}]}}}
    })).await;
    set_status(
        &services,
        "shop",
        json!({"phase": "Provisioning", "blockedBy": "db: Installing"}),
    )
    .await;
    let releases: Api<HelmRelease> = Api::namespaced(client.clone(), "pr-7");
    for (name, dependencies) in [
        ("pr-7-flags", json!([])),
        ("shop-db", json!([])),
        (
            "shop-app",
            json!([{"name": "shop-db"}, {"name": "pr-7-flags"}]),
        ),
    ] {
        create(
            &releases,
            json!({
                "apiVersion": "upstartoperators.upstart.com/v1alpha1", "kind": "HelmRelease",
                "metadata": {"name": name, "namespace": "pr-7"},
                "spec": {"chart": "r/x", "dependencies": dependencies}
            }),
        )
        .await;
    }
    set_status(
        &releases,
        "pr-7-flags",
        json!({"phase": "Ready", "conditions": [condition(true, "Ready", "installed")]}),
    )
    .await;
    set_status(&releases, "shop-db", json!({"phase": "Installing", "conditions": [condition(false, "Installing", "waiting for Deployment/db")]})).await;
    set_status(&releases, "shop-app", json!({"phase": "WaitingForDependencies", "conditions": [condition(false, "WaitingForDependencies", "waiting for shop-db")]})).await;
}

fn upstart(kubeconfig: &Path, args: &[&str]) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_upstart"));
    command
        .args(args)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

#[tokio::test]
async fn status_shows_the_tree_with_phases_waits_and_progress() {
    let cluster = cluster().await;
    provisioning_environment(&cluster.client).await;
    let out = upstart(&cluster.kubeconfig, &["status", "pr-7"])
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(
        lines[0].starts_with("UpstartEnvironment pr-7 (namespace pr-7)  Provisioning  services 0/2  releases 1/4 [#####---------------]  for "),
        "{stdout}"
    );
    let expected = [
        "  waiting for shop, later",
        // Not created yet: its releases come from its catalog template.
        "├─ UpstartService later  NotCreated  0/1 [----------]",
        "│  └─ … queue                NotCreated",
        "├─ UpstartService shop  Provisioning  0/2 [----------]  blocked by db: Installing",
        "│  ├─ … app                  WaitingForDependencies  waits for shop/db",
        "│  └─ ◌ db                   Installing  waiting for Deployment/db",
        "└─ environment releases  1/1 [##########]",
        "   └─ ✔ flags                Ready",
    ];
    assert_eq!(lines[1..], expected, "{stdout}");
}

#[tokio::test]
async fn status_of_a_namespace_without_an_environment_lists_its_releases() {
    let cluster = cluster().await;
    provisioning_environment(&cluster.client).await;
    let out = upstart(&cluster.kubeconfig, &["status", "--namespace", "pr-7"])
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.starts_with("namespace pr-7  Provisioning  services 0/1  releases 1/3"),
        "{stdout}"
    );
    assert!(stdout.contains("└─ other releases  1/1"), "{stdout}");
}

#[tokio::test]
async fn status_of_a_missing_environment_fails_naming_it() {
    let cluster = cluster().await;
    let out = upstart(&cluster.kubeconfig, &["status", "nope"])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("UpstartEnvironment nope not found"),
        "{stderr}"
    );
}

#[tokio::test]
async fn watch_follows_changes_and_exits_once_the_environment_is_ready() {
    let cluster = cluster().await;
    provisioning_environment(&cluster.client).await;
    let mut child = upstart(
        &cluster.kubeconfig,
        &["status", "pr-7", "--watch", "--timeout", "60s"],
    )
    .spawn()
    .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut seen = Vec::new();
    // The first tree, before anything changes.
    let mut buffer = [0u8; 4096];
    while !String::from_utf8_lossy(&seen).contains("environment releases") {
        let n = tokio::time::timeout(Duration::from_secs(30), stdout.read(&mut buffer))
            .await
            .expect("the first tree in time")
            .unwrap();
        assert!(
            n > 0,
            "stdout closed early: {}",
            String::from_utf8_lossy(&seen)
        );
        seen.extend_from_slice(&buffer[..n]);
    }

    let client = &cluster.client;
    let releases: Api<HelmRelease> = Api::namespaced(client.clone(), "pr-7");
    for name in ["shop-db", "shop-app"] {
        set_status(
            &releases,
            name,
            json!({"phase": "Ready", "conditions": [condition(true, "Ready", "installed")]}),
        )
        .await;
    }
    let services: Api<UpstartService> = Api::namespaced(client.clone(), "pr-7");
    set_status(
        &services,
        "shop",
        json!({"phase": "Ready", "blockedBy": null}),
    )
    .await;
    let environments: Api<UpstartEnvironment> = Api::all(client.clone());
    set_status(
        &environments,
        "pr-7",
        json!({
            "phase": "Ready", "timeToReadySeconds": 42.0, "expiresAt": "2026-01-04T00:00:00Z",
            "criticalPath": [{"release": "shop-db", "waitSeconds": 0.0, "installSeconds": 30.5},
                             {"release": "shop-app", "waitSeconds": 1.0, "installSeconds": 11.0}],
            "conditions": [condition(true, "Ready", "every service is Ready")]
        }),
    )
    .await;

    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("exits once Ready")
        .unwrap();
    stdout.read_to_end(&mut seen).await.unwrap();
    let output = String::from_utf8_lossy(&seen);
    assert!(status.success(), "{output}");
    let last = output.rsplit("UpstartEnvironment pr-7").next().unwrap();
    assert!(last.starts_with(" (namespace pr-7)  Ready"), "{output}");
    assert!(last.contains("ready in 42s"), "{output}");
    assert!(
        last.contains("\n  expires at 2026-01-04T00:00:00Z\n"),
        "{output}"
    );
    assert!(
        last.contains("\n  critical path: shop-db (waited 0s, installed in 30s) -> shop-app (waited 1s, installed in 11s)\n"),
        "{output}"
    );
    assert!(
        last.contains("│  ├─ ✔ app                  Ready"),
        "{output}"
    );
}

#[tokio::test]
async fn graph_of_a_live_environment_shows_each_release_phase() {
    let cluster = cluster().await;
    provisioning_environment(&cluster.client).await;
    let out = upstart(&cluster.kubeconfig, &["graph", "pr-7", "--format", "ascii"])
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.starts_with("namespace pr-7 (UpstartEnvironment pr-7)\nlevel 1\n"),
        "{stdout}"
    );
    assert!(stdout.contains("  pr-7-flags  [Ready]\n"), "{stdout}");
    assert!(
        stdout.contains(
            "  shop/app  [WaitingForDependencies]\n    ├─-> shop/db\n    └─-> pr-7-flags\n"
        ),
        "{stdout}"
    );
}
