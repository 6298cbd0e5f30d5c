//! The pinned `helm` as a plain client of the HTTPS endpoint, with the workload simulator
//! running as under `upstart dev --no-operators`: a release's whole life on a chart made by
//! `helm create` (install --wait, list, status, get values, get manifest, upgrade, history,
//! rollback, test (its test hook Pod), uninstall, install again under the same name).
//!
//! helm's storage driver talks to the API through client-go's typed clients, which send
//! protobuf bodies: its release Secrets are created, updated and deleted that way (the delete
//! with a protobuf `DeleteOptions`). helm is found via `UPSTART_HELM`, else `.tools/bin/helm` of
//! the workspace, else `PATH`; without it this test fails and says so.

#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers outside #[test] fns

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ListParams};
use upstart_control_plane::Endpoint;

struct Helm {
    bin: PathBuf,
    kubeconfig: PathBuf,
    home: PathBuf,
}

impl Helm {
    fn new(endpoint: &Endpoint, dir: &Path) -> Self {
        let kubeconfig = dir.join("kubeconfig");
        endpoint.write_kubeconfig(&kubeconfig).unwrap();
        Helm {
            bin: upstart_test_support::helm(),
            kubeconfig,
            home: dir.join("helm-home"),
        }
    }

    /// Runs helm off the async runtime (the server answers on the runtime's threads), with its
    /// configuration, cache and data in the test's directory.
    async fn run(&self, args: &[&str]) -> Output {
        let mut c = Command::new(&self.bin);
        c.args(args)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .env("HELM_CONFIG_HOME", self.home.join("config"))
            .env("HELM_CACHE_HOME", self.home.join("cache"))
            .env("HELM_DATA_HOME", self.home.join("data"))
            .env_remove("KUBECONFIG")
            .env_remove("HELM_DRIVER");
        tokio::task::spawn_blocking(move || c.output().expect("helm runs"))
            .await
            .unwrap()
    }

    async fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args).await;
        assert!(
            out.status.success(),
            "helm {args:?} failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// Release Secrets of `release` in `default` (helm's storage: `sh.helm.release.v1.NAME.vN`).
async fn release_secrets(client: &kube::Client, release: &str) -> Vec<String> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "default");
    let list = secrets
        .list(&ListParams::default().labels(&format!("owner=helm,name={release}")))
        .await
        .unwrap();
    list.items
        .into_iter()
        .filter_map(|s| s.metadata.name)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_release_lifecycle_install_upgrade_uninstall_and_reinstall_the_same_name() {
    let cp = common::control_plane();
    let simulator = upstart_workload_simulator::Simulator::new(
        cp.client(),
        upstart_workload_simulator::Options {
            ready_after: std::time::Duration::from_millis(200),
            fail: false,
        },
    )
    .spawn();
    let endpoint = cp
        .serve_https("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let helm = Helm::new(&endpoint, tmp.path());
    // A chart generated now by the pinned helm: nothing third-party is committed.
    let chart_dir = tmp.path().join("charts");
    std::fs::create_dir_all(&chart_dir).unwrap();
    let created = Command::new(&helm.bin)
        .args(["create", "web"])
        .current_dir(&chart_dir)
        .output()
        .unwrap();
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let chart = chart_dir.join("web");
    // A pre-install hook: helm waits for the Job to complete (the simulator completes it), then
    // deletes it (hook-succeeded).
    std::fs::write(
        chart.join("templates/pre-install-job.yaml"),
        "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: {{ .Release.Name }}-setup\n  annotations:\n    helm.sh/hook: pre-install\n    helm.sh/hook-delete-policy: hook-succeeded\nspec:\n  template:\n    spec:\n      restartPolicy: Never\n      containers:\n      - name: setup\n        image: busybox:1\n",
    )
    .unwrap();
    let chart = chart.to_str().unwrap();

    // --wait: helm watches the Deployment until the simulator reports it available.
    helm.ok(&[
        "install",
        "web",
        chart,
        "--namespace",
        "default",
        "--wait",
        "--timeout=60s",
    ])
    .await;
    let deployments: Api<Deployment> = Api::namespaced(cp.client(), "default");
    assert!(deployments.get_opt("web").await.unwrap().is_some());
    let jobs: Api<k8s_openapi::api::batch::v1::Job> = Api::namespaced(cp.client(), "default");
    assert!(
        jobs.get_opt("web-setup").await.unwrap().is_none(),
        "the succeeded hook Job was deleted"
    );
    let hooks = helm
        .ok(&["get", "hooks", "web", "--namespace", "default"])
        .await;
    assert!(hooks.contains("name: web-setup"), "{hooks}");
    assert_eq!(
        release_secrets(&cp.client(), "web").await,
        ["sh.helm.release.v1.web.v1"]
    );
    helm.ok(&[
        "upgrade",
        "web",
        chart,
        "--namespace",
        "default",
        "--set",
        "replicaCount=2",
    ])
    .await;
    let status = helm.ok(&["status", "web", "--namespace", "default"]).await;
    assert!(
        status.contains("REVISION: 2") && status.contains("STATUS: deployed"),
        "{status}"
    );
    let values = helm
        .ok(&["get", "values", "web", "--namespace", "default"])
        .await;
    assert!(values.contains("replicaCount: 2"), "{values}");
    let manifest = helm
        .ok(&["get", "manifest", "web", "--namespace", "default"])
        .await;
    assert!(
        manifest.contains("kind: Deployment") && manifest.contains("replicas: 2"),
        "{manifest}"
    );
    let listed = helm
        .ok(&["list", "--namespace", "default", "--output", "json"])
        .await;
    assert!(
        listed.contains(r#""name":"web""#) && listed.contains(r#""revision":"2""#),
        "{listed}"
    );
    // The scaffold's test hook is a Pod that must succeed (the simulator runs it).
    let tested = helm
        .ok(&["test", "web", "--namespace", "default", "--timeout=60s"])
        .await;
    assert!(
        tested.contains("TEST SUITE:") && tested.contains("Phase:          Succeeded"),
        "{tested}"
    );

    helm.ok(&["rollback", "web", "1", "--namespace", "default"])
        .await;
    let history = helm.ok(&["history", "web", "--namespace", "default"]).await;
    assert!(history.contains("Rollback to 1"), "{history}");

    // The storage driver deletes each release Secret with a protobuf DeleteOptions body.
    let out = helm
        .ok(&["uninstall", "web", "--namespace", "default"])
        .await;
    assert!(out.contains("release \"web\" uninstalled"), "{out}");
    assert!(
        release_secrets(&cp.client(), "web").await.is_empty(),
        "uninstall removes the release's history"
    );
    assert!(
        deployments.get_opt("web").await.unwrap().is_none(),
        "uninstall deletes the release's objects"
    );

    // The name is free again.
    helm.ok(&["install", "web", chart, "--namespace", "default"])
        .await;
    let listed = helm.ok(&["list", "--namespace", "default"]).await;
    assert!(
        listed.contains("web") && listed.contains("deployed"),
        "{listed}"
    );
    simulator.shutdown().await;
}
