//! When post-install hooks start (Helm parity): with `wait: true`, once the release's objects
//! are healthy, as `helm install --wait` starts them (a migration Job must not run before its
//! database is up); with `wait: false`, right after the apply, as `helm install` does.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails by panicking"
)]

use std::path::Path;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use kube::api::PostParams;
use kube::{Api, Client};
use serde_json::json;
use upstart_api::conditions::is_ready_for_generation;
use upstart_api::v1alpha1::HelmRelease;
use upstart_test_support::operators::{Cluster, RunningOperator, object_where, write};

const WAIT: Duration = Duration::from_secs(60);
const NS: &str = "default";

/// A Deployment that becomes available after 2 s and a post-install hook Job.
fn charts(root: &Path) {
    write(
        root,
        "migrated/Chart.yaml",
        "apiVersion: v2\nname: migrated\nversion: 0.1.0\n",
    );
    write(
        root,
        "migrated/templates/objects.yaml",
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}-db
  annotations:
    simulator.upstart.dev/ready-after: 2s
spec:
  replicas: 1
  selector:
    matchLabels: {app: {{ .Release.Name }}-db}
  template:
    metadata:
      labels: {app: {{ .Release.Name }}-db}
    spec:
      containers:
        - name: db
          image: example/db:1
---
apiVersion: batch/v1
kind: Job
metadata:
  name: {{ .Release.Name }}-migrate
  annotations:
    helm.sh/hook: post-install
    simulator.upstart.dev/ready-after: 100ms
spec:
  template:
    spec:
      restartPolicy: Never
      containers:
        - name: migrate
          image: example/migrate:1
"#,
    );
}

fn available(deployment: &Deployment) -> bool {
    deployment
        .status
        .as_ref()
        .and_then(|s| s.available_replicas)
        .unwrap_or_default()
        >= 1
}

/// Creates the release and watches, every 20 ms, whether the hook Job exists while the
/// Deployment is not available yet. Returns whether it ever did, once the release is Ready.
async fn hook_started_before_healthy(client: &Client, name: &str, wait: bool) -> bool {
    let releases: Api<HelmRelease> = Api::namespaced(client.clone(), NS);
    let release: HelmRelease = serde_json::from_value(json!({
        "apiVersion": "upstartoperators.upstart.com/v1alpha1",
        "kind": "HelmRelease",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"chart": "test/migrated", "version": "0.1.0", "wait": wait}
    }))
    .unwrap();
    releases
        .create(&PostParams::default(), &release)
        .await
        .unwrap();
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NS);
    let jobs: Api<Job> = Api::namespaced(client.clone(), NS);
    let deadline = Instant::now() + WAIT;
    let mut early = false;
    loop {
        let db = deployments.get_opt(&format!("{name}-db")).await.unwrap();
        if db.as_ref().is_some_and(available) {
            break;
        }
        if jobs
            .get_opt(&format!("{name}-migrate"))
            .await
            .unwrap()
            .is_some()
        {
            early = true;
        }
        assert!(
            Instant::now() < deadline,
            "{name}-db never became available"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let ready = object_where(&releases, name, WAIT, "Ready", |r| {
        r.status
            .as_ref()
            .is_some_and(|s| is_ready_for_generation(&s.conditions, r.metadata.generation))
    })
    .await;
    let hooks = ready.status.unwrap().hooks;
    assert!(
        hooks
            .iter()
            .any(|h| h.event == "post-install" && h.object.ends_with("-migrate")),
        "the hook ran: {hooks:?}"
    );
    early
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_install_hook_starts_once_the_release_is_healthy_with_wait_and_at_once_without() {
    let cluster = Cluster::start(charts).await;
    let client = cluster.client.clone();
    let operator = RunningOperator::helmrelease(client.clone(), cluster.helmrelease_config());

    assert!(
        !hook_started_before_healthy(&client, "waits", true).await,
        "with wait: the post-install hook started before the Deployment was available"
    );
    assert!(
        hook_started_before_healthy(&client, "eager", false).await,
        "without wait: the post-install hook starts right after the apply"
    );
    operator.stop(Duration::from_secs(10)).await;
}
