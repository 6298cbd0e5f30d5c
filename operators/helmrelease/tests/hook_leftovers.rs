//! Delete hooks across passes and incarnations (Helm parity): a `hook-succeeded` hook that
//! finished in an earlier pass of a deletion is still deleted; a release deleted and created
//! again with the same spec runs its own hooks instead of taking its earlier self's leftovers.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails by panicking"
)]

use std::path::Path;
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use kube::api::{DeleteParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use upstart_api::conditions::is_ready_for_generation;
use upstart_api::v1alpha1::HelmRelease;
use upstart_test_support::operators::{Cluster, RunningOperator, eventually, object_where, write};

const WAIT: Duration = Duration::from_secs(60);
const NS: &str = "default";

fn charts(root: &Path) {
    // Deleted after success, the post-delete one slow enough for the deletion to take passes.
    write(
        root,
        "tidy/Chart.yaml",
        "apiVersion: v2\nname: tidy\nversion: 0.1.0\n",
    );
    write(
        root,
        "tidy/templates/objects.yaml",
        r#"{{- range $event, $after := dict "pre-delete" "100ms" "post-delete" "1500ms" }}
apiVersion: batch/v1
kind: Job
metadata:
  name: {{ $.Release.Name }}-{{ $event }}
  annotations:
    helm.sh/hook: {{ $event }}
    helm.sh/hook-delete-policy: hook-succeeded
    simulator.upstart.dev/ready-after: {{ $after }}
spec:
  template:
    spec:
      restartPolicy: Never
      containers:
        - name: hook
          image: example/hook:1
---
{{- end }}
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-settings
data:
  tidy: "yes"
"#,
    );
    // The default policy (before-hook-creation): the hook stays after it ran.
    write(
        root,
        "lingering/Chart.yaml",
        "apiVersion: v2\nname: lingering\nversion: 0.1.0\n",
    );
    write(
        root,
        "lingering/templates/objects.yaml",
        r#"apiVersion: batch/v1
kind: Job
metadata:
  name: {{ .Release.Name }}-goodbye
  annotations:
    helm.sh/hook: pre-delete
    simulator.upstart.dev/ready-after: 100ms
spec:
  template:
    spec:
      restartPolicy: Never
      containers:
        - name: hook
          image: example/hook:1
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-settings
data:
  lingering: "yes"
"#,
    );
}

async fn install(client: &Client, name: &str, chart: &str) {
    let api: Api<HelmRelease> = Api::namespaced(client.clone(), NS);
    let release: HelmRelease = serde_json::from_value(json!({
        "apiVersion": "upstartoperators.upstart.com/v1alpha1",
        "kind": "HelmRelease",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"chart": format!("test/{chart}"), "version": "0.1.0"}
    }))
    .unwrap();
    api.create(&PostParams::default(), &release).await.unwrap();
    object_where(&api, name, WAIT, "Ready", |r| {
        r.status
            .as_ref()
            .is_some_and(|s| is_ready_for_generation(&s.conditions, r.metadata.generation))
    })
    .await;
}

async fn delete(client: &Client, name: &str) {
    let api: Api<HelmRelease> = Api::namespaced(client.clone(), NS);
    api.delete(name, &DeleteParams::default()).await.unwrap();
    eventually(WAIT, "the release gone", || async {
        api.get_opt(name).await.unwrap().is_none().then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hooks_succeeded_in_an_earlier_pass_of_a_deletion_are_deleted_too() {
    let cluster = Cluster::start(charts).await;
    let client = cluster.client.clone();
    let operator = RunningOperator::helmrelease(client.clone(), cluster.helmrelease_config());
    install(&client, "tidy", "tidy").await;
    delete(&client, "tidy").await;
    let jobs: Api<Job> = Api::namespaced(client.clone(), NS);
    let left: Vec<String> = jobs
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(|j| j.name_any())
        .filter(|n| n.starts_with("tidy-"))
        .collect();
    assert!(
        left.is_empty(),
        "hook-succeeded hooks left behind: {left:?}"
    );
    operator.stop(Duration::from_secs(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_created_again_with_the_same_spec_runs_its_own_delete_hook() {
    let cluster = Cluster::start(charts).await;
    let client = cluster.client.clone();
    let operator = RunningOperator::helmrelease(client.clone(), cluster.helmrelease_config());
    let jobs: Api<Job> = Api::namespaced(client.clone(), NS);

    install(&client, "again", "lingering").await;
    delete(&client, "again").await;
    let first = jobs.get("again-goodbye").await.expect("the hook stays");

    install(&client, "again", "lingering").await;
    delete(&client, "again").await;
    let second = jobs.get("again-goodbye").await.expect("the hook stays");
    assert_ne!(
        first.uid(),
        second.uid(),
        "the second deletion ran its own pre-delete hook"
    );
    operator.stop(Duration::from_secs(10)).await;
}
