//! The pinned `helm` as a plain client of the HTTPS endpoint: a release's life (install,
//! upgrade, rollback, history, uninstall, install again under the same name) on a chart made
//! by `helm create`.
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
    let chart = chart.to_str().unwrap();

    helm.ok(&["install", "web", chart, "--namespace", "default"])
        .await;
    let deployments: Api<Deployment> = Api::namespaced(cp.client(), "default");
    assert!(deployments.get_opt("web").await.unwrap().is_some());
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
}
