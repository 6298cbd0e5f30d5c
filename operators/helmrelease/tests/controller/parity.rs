//! Helm parity of hooks and resource policies: post-install hooks wait for a healthy release
//! with `wait` (as `helm install --wait`); `hook-succeeded` hooks that ended in an earlier pass
//! of a deletion are deleted too; a release created again with the same spec runs its own
//! hooks; `helm.sh/resource-policy: keep` leaves an object in place at prune and deletion.

use k8s_openapi::api::batch::v1::Job;

use super::*;

/// `migrated`: a Deployment available after 2 s and a post-install hook Job. `tidy`: pre- and
/// post-delete hooks deleted on success, the post-delete one slow enough for the deletion to take
/// passes. `lingering`: a pre-delete hook with the default policy (it stays). `keeper`: with
/// `keepData`, a ConfigMap marked keep.
pub(super) fn charts(root: &Path) {
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
    write(
        root,
        "keeper/Chart.yaml",
        "apiVersion: v2\nname: keeper\nversion: 0.1.0\n",
    );
    write(
        root,
        "keeper/templates/objects.yaml",
        r#"{{- if .Values.keepData }}
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-data
  annotations:
    helm.sh/resource-policy: " Keep "
data:
  precious: "yes"
---
{{- end }}
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-settings
data:
  plain: "yes"
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
async fn hook_started_before_healthy(h: &Harness, name: &str, wait: bool) -> bool {
    h.create(
        name,
        json!({"chart": "test/migrated", "version": "0.1.0", "wait": wait}),
    )
    .await;
    let deployments: Api<Deployment> = Api::namespaced(h.client.clone(), NS);
    let jobs: Api<Job> = Api::namespaced(h.client.clone(), NS);
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
    let hooks = h.ready(name).await.status.unwrap().hooks;
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
    let h = Harness::start().await;
    assert!(
        !hook_started_before_healthy(&h, "waits", true).await,
        "with wait: the post-install hook started before the Deployment was available"
    );
    assert!(
        hook_started_before_healthy(&h, "eager", false).await,
        "without wait: the post-install hook starts right after the apply"
    );
    h.stop().await;
}

async fn install(h: &Harness, name: &str, chart: &str) {
    h.create(
        name,
        json!({"chart": format!("test/{chart}"), "version": "0.1.0"}),
    )
    .await;
    h.ready(name).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hooks_succeeded_in_an_earlier_pass_of_a_deletion_are_deleted_too() {
    let h = Harness::start().await;
    install(&h, "tidy", "tidy").await;
    h.delete("tidy").await;
    let jobs: Api<Job> = Api::namespaced(h.client.clone(), NS);
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
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_created_again_with_the_same_spec_runs_its_own_delete_hook() {
    let h = Harness::start().await;
    let jobs: Api<Job> = Api::namespaced(h.client.clone(), NS);

    install(&h, "again", "lingering").await;
    h.delete("again").await;
    let first = jobs.get("again-goodbye").await.expect("the hook stays");

    install(&h, "again", "lingering").await;
    h.delete("again").await;
    let second = jobs.get("again-goodbye").await.expect("the hook stays");
    assert_ne!(
        first.uid(),
        second.uid(),
        "the second deletion ran its own pre-delete hook"
    );
    h.stop().await;
}

fn release(keep_data: bool) -> HelmRelease {
    serde_json::from_value(json!({
        "apiVersion": "upstartoperators.upstart.com/v1alpha1",
        "kind": "HelmRelease",
        "metadata": {"name": "store", "namespace": NS},
        "spec": {"chart": "test/keeper", "version": "0.1.0", "values": {"keepData": keep_data}}
    }))
    .unwrap()
}

async fn ready_for_generation(api: &Api<HelmRelease>, generation: i64) -> HelmRelease {
    object_where(api, "store", WAIT, "Ready", |r| {
        r.metadata.generation == Some(generation)
            && r.status
                .as_ref()
                .is_some_and(|s| is_ready_for_generation(&s.conditions, r.metadata.generation))
    })
    .await
}

async fn exists(client: &Client, name: &str) -> bool {
    Api::<ConfigMap>::namespaced(client.clone(), NS)
        .get_opt(name)
        .await
        .unwrap()
        .is_some()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_marked_keep_survive_prune_and_deletion_and_are_reported() {
    let h = Harness::start().await;
    let client = h.client.clone();
    let api = h.releases();

    // 1. Installed with the kept ConfigMap.
    api.create(&PostParams::default(), &release(true))
        .await
        .unwrap();
    ready_for_generation(&api, 1).await;
    assert!(exists(&client, "store-data").await);

    // 2. A render without it: the prune leaves it in place and status lists it as kept.
    api.patch(
        "store",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"values": {"keepData": false}}})),
    )
    .await
    .unwrap();
    let pruned = ready_for_generation(&api, 2).await;
    let status = pruned.status.unwrap();
    assert!(exists(&client, "store-data").await, "kept at prune");
    assert!(
        !status.inventory.iter().any(|e| e.name == "store-data"),
        "no longer part of the release: {:?}",
        status.inventory
    );
    assert!(
        status.kept.iter().any(|e| e.name == "store-data"),
        "{:?}",
        status.kept
    );

    // 3. Taken back by a render that has it again, then the release is deleted: the plain
    //    object goes, the kept one stays.
    api.patch(
        "store",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"values": {"keepData": true}}})),
    )
    .await
    .unwrap();
    let back = ready_for_generation(&api, 3).await;
    assert!(back.status.unwrap().kept.is_empty(), "back in the release");
    h.delete("store").await;
    assert!(!exists(&client, "store-settings").await, "deleted");
    assert!(exists(&client, "store-data").await, "kept at deletion");

    event_with_reason(&client, "ResourceKept", "store-data").await;
    h.stop().await;
}
