//! The controller against the local control plane: charts from a local HTTP chart repository,
//! workloads made ready by the simulator, helm from `$UPSTART_HELM`, else `.tools/bin/helm`
//! at the workspace root, else PATH (a missing helm fails these tests).

#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

use std::future::Future;
use std::path::Path;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use upstart_api::conditions::is_ready_for_generation;
use upstart_api::v1alpha1::{HelmRelease, HelmReleasePhase};
use upstart_chart_source::RepositoryConfig;
use upstart_helmrelease_operator::controller::{self, Config};
use upstart_release_engine::manifests::{ClusterScopedAllowList, RELEASE_LABEL};
use upstart_test_support::operators::{Cluster, RunningOperator, object_where, write};

const WAIT: Duration = Duration::from_secs(60);
const NS: &str = "default";

/// `app`: a ConfigMap holding `.Values.message` and a Deployment whose env has `.Values.password`.
/// `producer`: a Secret publishing `.Values.password` as `PASSWORD`.
fn charts(root: &Path) {
    app_chart(root);
    // `site`: 0.1.0 is `app`; 0.2.0 no longer has the ConfigMap (a template removed).
    for file in ["templates/configmap.yaml", "templates/deployment.yaml"] {
        let text = std::fs::read_to_string(root.join("app").join(file)).unwrap();
        write(root, &format!("site-1/{file}"), &text);
        if file == "templates/deployment.yaml" {
            write(root, &format!("site-2/{file}"), &text);
        }
    }
    write(
        root,
        "site-1/Chart.yaml",
        "apiVersion: v2\nname: site\nversion: 0.1.0\n",
    );
    write(
        root,
        "site-2/Chart.yaml",
        "apiVersion: v2\nname: site\nversion: 0.2.0\n",
    );
    other_charts(root);
}

fn app_chart(root: &Path) {
    write(
        root,
        "app/Chart.yaml",
        "apiVersion: v2\nname: app\nversion: 0.1.0\n",
    );
    write(
        root,
        "app/templates/configmap.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-settings\ndata:\n  message: {{ .Values.message | default \"none\" | quote }}\n",
    );
    write(
        root,
        "app/templates/deployment.yaml",
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}
  annotations:
    simulator.upstart.dev/ready-after: {{ .Values.readyAfter | default "200ms" }}
spec:
  replicas: 1
  selector:
    matchLabels: {app: {{ .Release.Name }}}
  template:
    metadata:
      labels: {app: {{ .Release.Name }}}
    spec:
      containers:
        - name: app
          image: example/app:1
          env:
            - name: PASSWORD
              value: {{ .Values.password | default "" | quote }}
"#,
    );
}

/// The charts of the other tests (hooks, CRDs, outputs, ...).
fn other_charts(root: &Path) {
    write(
        root,
        "hooked/Chart.yaml",
        "apiVersion: v2\nname: hooked\nversion: 0.1.0\n",
    );
    write(
        root,
        "hooked/templates/hooks.yaml",
        r#"apiVersion: batch/v1
kind: Job
metadata:
  name: {{ .Release.Name }}-migrate
  annotations:
    helm.sh/hook: pre-install,pre-upgrade
    helm.sh/hook-delete-policy: hook-succeeded
    simulator.upstart.dev/ready-after: 100ms
    simulator.upstart.dev/fail: {{ .Values.failMigration | default false | quote }}
spec:
  template:
    spec:
      restartPolicy: Never
      containers:
        - name: migrate
          image: example/migrate:1
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-marker
  annotations:
    helm.sh/hook: post-install
data:
  done: "yes"
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-farewell
  annotations:
    helm.sh/hook: pre-delete
data:
  bye: "yes"
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-settings
data:
  message: hooked
"#,
    );
    write(
        root,
        "widgets/Chart.yaml",
        "apiVersion: v2\nname: widgets\nversion: 0.1.0\n",
    );
    write(
        root,
        "widgets/templates/crd.yaml",
        r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  names: {kind: Widget, plural: widgets, singular: widget, listKind: WidgetList}
  scope: Namespaced
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          x-kubernetes-preserve-unknown-fields: true
---
apiVersion: example.com/v1
kind: Widget
metadata:
  name: {{ .Release.Name }}
spec:
  size: 3
"#,
    );
    write(
        root,
        "crashy/Chart.yaml",
        "apiVersion: v2\nname: crashy\nversion: 0.1.0\n",
    );
    write(
        root,
        "crashy/templates/objects.yaml",
        r#"apiVersion: batch/v1
kind: Job
metadata:
  name: {{ .Release.Name }}-pre
  annotations:
    helm.sh/hook: pre-install
    simulator.upstart.dev/ready-after: 100ms
spec:
  template:
    spec:
      restartPolicy: Never
      containers:
        - name: pre
          image: example/pre:1
---
apiVersion: batch/v1
kind: Job
metadata:
  name: {{ .Release.Name }}-post
  annotations:
    helm.sh/hook: post-install
    simulator.upstart.dev/ready-after: {{ .Values.postAfter | default "100ms" }}
spec:
  template:
    spec:
      restartPolicy: Never
      containers:
        - name: post
          image: example/post:1
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-settings
data:
  message: crashy
"#,
    );
    write(
        root,
        "farewell/Chart.yaml",
        "apiVersion: v2\nname: farewell\nversion: 0.1.0\n",
    );
    write(
        root,
        "farewell/templates/objects.yaml",
        r#"apiVersion: batch/v1
kind: Job
metadata:
  name: {{ .Release.Name }}-bye
  annotations:
    helm.sh/hook: pre-delete
    simulator.upstart.dev/ready-after: 3s
spec:
  template:
    spec:
      restartPolicy: Never
      containers:
        - name: bye
          image: example/bye:1
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-settings
data:
  message: farewell
"#,
    );
    write(
        root,
        "relay/Chart.yaml",
        "apiVersion: v2\nname: relay\nversion: 0.1.0\n",
    );
    write(
        root,
        "relay/templates/configmap.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-out\ndata:\n  URL: {{ .Values.url | quote }}\n",
    );
    write(
        root,
        "foreign/Chart.yaml",
        "apiVersion: v2\nname: foreign\nversion: 0.1.0\n",
    );
    write(
        root,
        "foreign/templates/objects.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-local\ndata: {a: b}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-elsewhere\n  namespace: kube-public\ndata: {a: b}\n",
    );
    write(
        root,
        "producer/Chart.yaml",
        "apiVersion: v2\nname: producer\nversion: 0.1.0\n",
    );
    write(
        root,
        "producer/templates/secret.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {{ .Release.Name }}-creds\ndata:\n  PASSWORD: {{ .Values.password | b64enc | quote }}\n",
    );
}

struct Harness {
    cluster: Cluster,
    client: Client,
    /// One in-process operator: stopped gracefully by [`Harness::stop`], or killed mid-work by
    /// [`Harness::kill`] as a crash would.
    operator: Option<RunningOperator>,
}

impl Harness {
    /// A control plane, the workload simulator and the chart repository; an operator with
    /// [`Harness::config`].
    async fn start() -> Harness {
        let mut h = Harness::boot().await;
        h.run_operator(h.config());
        h
    }

    /// Everything but the operator.
    async fn boot() -> Harness {
        // RUST_LOG=upstart_helmrelease_operator=debug shows the controller's logs on failure.
        logs::install();
        let cluster = Cluster::start(charts).await;
        Harness {
            client: cluster.client.clone(),
            cluster,
            operator: None,
        }
    }

    /// The test configuration: repository `test` is the local chart repository.
    fn config(&self) -> Config {
        Config {
            cluster_scoped_allow_list: ClusterScopedAllowList::new([
                "apiextensions.k8s.io/CustomResourceDefinition",
            ]),
            ..self.cluster.helmrelease_config()
        }
    }

    fn run_operator(&mut self, config: Config) {
        assert!(self.operator.is_none(), "one operator at a time");
        self.operator = Some(RunningOperator::helmrelease(self.client.clone(), config));
    }

    fn metrics(&self) -> &upstart_operator_runtime::Metrics {
        &self.operator.as_ref().expect("an operator runs").metrics
    }

    /// Aborts the operator where it stands, as a crash would: no graceful shutdown.
    async fn kill(&mut self) {
        self.operator.take().expect("an operator runs").kill().await;
    }

    fn releases(&self) -> Api<HelmRelease> {
        Api::namespaced(self.client.clone(), NS)
    }

    async fn create(&self, name: &str, spec: serde_json::Value) {
        let release: HelmRelease = serde_json::from_value(json!({
            "apiVersion": "upstartoperators.upstart.com/v1alpha1",
            "kind": "HelmRelease",
            "metadata": {"name": name, "namespace": NS},
            "spec": spec
        }))
        .unwrap();
        self.releases()
            .create(&PostParams::default(), &release)
            .await
            .unwrap();
    }

    async fn ready(&self, name: &str) -> HelmRelease {
        object_where(&self.releases(), name, WAIT, "Ready", |release| {
            release.status.as_ref().is_some_and(|status| {
                is_ready_for_generation(&status.conditions, release.metadata.generation)
            })
        })
        .await
    }

    async fn stop(mut self) {
        self.shut_down().await;
    }

    /// Stops the operator gracefully, as on SIGTERM.
    async fn shut_down(&mut self) {
        if let Some(operator) = self.operator.take() {
            operator.stop(Duration::from_secs(10)).await;
        }
    }
}

/// Logs of every test of this binary: to the test output (filtered by `RUST_LOG`) and, at
/// debug level for our crates, to a buffer the secret-scanning test reads.
mod logs {
    use std::io::Write;
    use std::sync::{Mutex, Once};

    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    use tracing_subscriber::{EnvFilter, Layer as _};

    static BUFFER: Mutex<Vec<u8>> = Mutex::new(Vec::new());
    static INSTALL: Once = Once::new();

    struct BufferWriter;

    impl Write for BufferWriter {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            BUFFER
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    pub fn install() {
        INSTALL.call_once(|| {
            let to_test_output = tracing_subscriber::fmt::layer()
                .with_test_writer()
                .with_filter(EnvFilter::from_default_env());
            let to_buffer = tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_writer(|| BufferWriter)
                .with_filter(EnvFilter::new(
                    // What the operator's process logs; the fixtures (control plane, simulator,
                    // chart repository) see values by design and are left out.
                    "debug,upstart=trace,upstart_control_plane=warn,upstart_workload_simulator=warn,\
                     upstart_chart_repo=warn,hyper=info,hyper_util=info,h2=info,rustls=info,tower=info",
                ));
            tracing_subscriber::registry()
                .with(to_test_output)
                .with(to_buffer)
                .init();
        });
    }

    /// Everything logged so far by this test binary.
    pub fn captured() -> String {
        String::from_utf8_lossy(&BUFFER.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
    }
}

/// Polls `check` until it gives a value, for up to [`WAIT`].
async fn eventually<T, Fut>(what: &str, check: impl FnMut() -> Fut) -> T
where
    Fut: Future<Output = Option<T>>,
{
    upstart_test_support::operators::eventually(WAIT, what, check).await
}

fn env_password(deployment: &Deployment) -> Option<String> {
    deployment.spec.as_ref()?.template.spec.as_ref()?.containers[0]
        .env
        .as_ref()?
        .iter()
        .find(|e| e.name == "PASSWORD")?
        .value
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_is_installed_to_ready_and_reapplied_when_its_values_change() {
    let h = Harness::start().await;
    h.create(
        "web",
        json!({"chart": "test/app", "version": "0.1.0", "values": {"message": "hello"}}),
    )
    .await;

    let release = h.ready("web").await;
    let status = release.status.unwrap();
    assert_eq!(status.phase, Some(HelmReleasePhase::Ready));
    assert_eq!(status.version.as_deref(), Some("0.1.0"));
    assert!(status.chart_digest.unwrap().starts_with("sha256:"));
    let mut kinds: Vec<String> = status
        .inventory
        .iter()
        .map(|e| format!("{}/{}", e.kind, e.name))
        .collect();
    kinds.sort();
    assert_eq!(kinds, ["ConfigMap/web-settings", "Deployment/web"]);

    let config_maps: Api<ConfigMap> = Api::namespaced(h.client.clone(), NS);
    let settings = config_maps.get("web-settings").await.unwrap();
    assert_eq!(settings.data.as_ref().unwrap()["message"], "hello");
    assert_eq!(settings.labels()[RELEASE_LABEL], "default.web");

    h.releases()
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"values": {"message": "changed"}}})),
        )
        .await
        .unwrap();
    let release = h.ready("web").await;
    assert_eq!(release.status.unwrap().phase, Some(HelmReleasePhase::Ready));
    let settings = config_maps.get("web-settings").await.unwrap();
    assert_eq!(settings.data.unwrap()["message"], "changed");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_release_writes_nothing_more_to_its_status() {
    let h = Harness::start().await;
    h.create("quiet", json!({"chart": "test/app", "version": "0.1.0"}))
        .await;
    let ready = h.ready("quiet").await;
    // Several reconciles happen in this time (status writes, workload events); none may
    // change status again.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let later = h.releases().get("quiet").await.unwrap();
    assert_eq!(later.status, ready.status);
    assert_eq!(later.resource_version(), ready.resource_version());
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dependent_waits_then_receives_its_dependency_output_in_its_values() {
    let h = Harness::start().await;
    h.create(
        "app",
        json!({
            "chart": "test/app",
            "version": "0.1.0",
            "dependencies": [{"name": "db"}],
            "values": {"password": "<< db.outputs.PASSWORD >>"}
        }),
    )
    .await;
    let api = h.releases();
    eventually("app waiting for db", || async {
        let release = api.get("app").await.ok()?;
        let status = release.status?;
        let ready = status
            .conditions
            .iter()
            .find(|c| c.type_ == "DependenciesReady")?;
        (status.phase == Some(HelmReleasePhase::WaitingForDependencies)
            && ready.message.contains("db: does not exist"))
        .then_some(())
    })
    .await;

    h.create(
        "db",
        json!({
            "chart": "test/producer",
            "version": "0.1.0",
            "values": {"password": "s3cret"},
            "outputsFrom": [{"secretRef": {"name": "db-creds"}}]
        }),
    )
    .await;
    h.ready("db").await;
    h.ready("app").await;
    let deployments: Api<Deployment> = Api::namespaced(h.client.clone(), NS);
    let deployment = deployments.get("app").await.unwrap();
    assert_eq!(env_password(&deployment).as_deref(), Some("s3cret"));
    let text = h.metrics().encode().unwrap();
    assert!(
        text.contains("upstart_dependency_handoff_seconds_count 1"),
        "hand-off measured once"
    );

    // A rotated output reaches the dependent (SPEC §2.7).
    api.patch(
        "db",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"values": {"password": "rotated"}}})),
    )
    .await
    .unwrap();
    eventually("rotated password in the dependent", || async {
        let deployment = deployments.get("app").await.ok()?;
        (env_password(&deployment).as_deref() == Some("rotated")).then_some(())
    })
    .await;
    let app = api.get("app").await.unwrap();
    let status = serde_json::to_string(&app.status).unwrap();
    assert!(
        !status.contains("rotated") && !status.contains("s3cret"),
        "status holds no value"
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_release_removes_what_it_applied() {
    let h = Harness::start().await;
    h.create("gone", json!({"chart": "test/app", "version": "0.1.0"}))
        .await;
    h.ready("gone").await;
    h.releases()
        .delete("gone", &DeleteParams::default())
        .await
        .unwrap();
    let api = h.releases();
    eventually("the release to disappear", || async {
        api.get_opt("gone").await.unwrap().is_none().then_some(())
    })
    .await;
    let config_maps: Api<ConfigMap> = Api::namespaced(h.client.clone(), NS);
    let deployments: Api<Deployment> = Api::namespaced(h.client.clone(), NS);
    assert!(
        config_maps
            .get_opt("gone-settings")
            .await
            .unwrap()
            .is_none()
    );
    assert!(deployments.get_opt("gone").await.unwrap().is_none());
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_deleted_by_hand_is_put_back() {
    let h = Harness::start().await;
    h.create(
        "drift",
        json!({"chart": "test/app", "version": "0.1.0", "values": {"message": "kept"}}),
    )
    .await;
    h.ready("drift").await;
    let config_maps: Api<ConfigMap> = Api::namespaced(h.client.clone(), NS);
    config_maps
        .delete("drift-settings", &DeleteParams::default())
        .await
        .unwrap();
    // The deletion event wakes the release (its release label), well before the interval.
    eventually("the ConfigMap to be put back", || async {
        let settings = config_maps.get_opt("drift-settings").await.unwrap()?;
        (settings.data?.get("message")? == "kept").then_some(())
    })
    .await;
    eventually("drift and phase metrics", || async {
        let text = h.metrics().encode().unwrap();
        (text.contains("upstart_helmrelease_drift_corrections_total 1")
            && text.contains("upstart_helmreleases{phase=\"Ready\"} 1")
            && text.contains("upstart_helmrelease_render_duration_seconds_count"))
        .then_some(())
    })
    .await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hooks_run_in_order_around_the_install_and_follow_their_delete_policy() {
    let h = Harness::start().await;
    h.create(
        "hooked",
        json!({"chart": "test/hooked", "version": "0.1.0"}),
    )
    .await;
    let release = h.ready("hooked").await;
    let status = release.status.unwrap();
    let hooks: Vec<(String, String, String)> = status
        .hooks
        .iter()
        .map(|h| (h.event.clone(), h.object.clone(), h.phase.clone()))
        .collect();
    assert_eq!(
        hooks,
        [
            (
                "pre-install".into(),
                "Job/hooked-migrate".into(),
                "Succeeded".into()
            ),
            (
                "post-install".into(),
                "ConfigMap/hooked-marker".into(),
                "Succeeded".into()
            ),
        ]
    );
    let inventory: Vec<String> = status.inventory.iter().map(|e| e.name.clone()).collect();
    assert_eq!(inventory, ["hooked-settings"], "hooks are not inventory");
    let jobs: Api<k8s_openapi::api::batch::v1::Job> = Api::namespaced(h.client.clone(), NS);
    assert!(
        jobs.get_opt("hooked-migrate").await.unwrap().is_none(),
        "hook-succeeded deletes the Job"
    );
    let config_maps: Api<ConfigMap> = Api::namespaced(h.client.clone(), NS);
    assert!(
        config_maps
            .get_opt("hooked-marker")
            .await
            .unwrap()
            .is_some()
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_pre_install_hook_fails_the_release_before_anything_is_applied() {
    let h = Harness::start().await;
    h.create(
        "broken",
        json!({"chart": "test/hooked", "version": "0.1.0", "values": {"failMigration": true}}),
    )
    .await;
    let api = h.releases();
    let condition = eventually("the release to fail on its hook", || async {
        let release = api.get("broken").await.ok()?;
        let status = release.status?;
        let ready = status
            .conditions
            .iter()
            .find(|c| c.type_ == "Ready")?
            .clone();
        (status.phase == Some(HelmReleasePhase::Failed) && ready.reason == "HookFailed")
            .then_some(ready)
    })
    .await;
    assert_eq!(condition.status, "False");
    assert!(
        condition.message.contains("Job/broken-migrate"),
        "{}",
        condition.message
    );
    let config_maps: Api<ConfigMap> = Api::namespaced(h.client.clone(), NS);
    assert!(
        config_maps
            .get_opt("broken-settings")
            .await
            .unwrap()
            .is_none()
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_dependency_waits_for_its_dependents_to_go_first() {
    let h = Harness::start().await;
    h.create(
        "db",
        json!({"chart": "test/producer", "version": "0.1.0", "values": {"password": "p"},
               "outputsFrom": [{"secretRef": {"name": "db-creds"}}]}),
    )
    .await;
    h.create(
        "app",
        json!({"chart": "test/app", "version": "0.1.0", "dependencies": [{"name": "db"}]}),
    )
    .await;
    h.ready("app").await;
    let api = h.releases();
    api.delete("db", &DeleteParams::default()).await.unwrap();
    eventually("db waiting for app", || async {
        let status = api.get("db").await.ok()?.status?;
        let ready = status.conditions.iter().find(|c| c.type_ == "Ready")?;
        (status.phase == Some(HelmReleasePhase::Deleting) && ready.message.contains("app"))
            .then_some(())
    })
    .await;
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(h.client.clone(), NS);
    assert!(
        secrets.get_opt("db-creds").await.unwrap().is_some(),
        "db keeps its objects"
    );

    api.delete("app", &DeleteParams::default()).await.unwrap();
    eventually("both releases gone", || async {
        let db = api.get_opt("db").await.unwrap();
        let app = api.get_opt("app").await.unwrap();
        (db.is_none() && app.is_none()).then_some(())
    })
    .await;
    assert!(secrets.get_opt("db-creds").await.unwrap().is_none());
    h.stop().await;
}

type Condition = k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

/// Waits until `name` has Ready=False with `reason`; its phase, Ready and all conditions.
async fn ready_condition(
    h: &Harness,
    name: &str,
    reason: &str,
) -> (HelmReleasePhase, Condition, Vec<Condition>) {
    let api = h.releases();
    eventually(
        &format!("{name} Ready=False with reason {reason}"),
        || async {
            let status = api.get(name).await.ok()?.status?;
            let ready = status
                .conditions
                .iter()
                .find(|c| c.type_ == "Ready")?
                .clone();
            let phase = status.phase?;
            (ready.reason == reason).then(|| (phase, ready, status.conditions.clone()))
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expression_syntax_error_stalls_the_release_until_the_spec_changes() {
    let h = Harness::start().await;
    h.create(
        "typo",
        json!({"chart": "test/app", "version": "0.1.0", "values": {"message": "<< release.name"}}),
    )
    .await;
    let (phase, ready, conditions) = ready_condition(&h, "typo", "ExpressionSyntax").await;
    assert_eq!(phase, HelmReleasePhase::Failed);
    assert_eq!(ready.status, "False");
    let stalled = conditions.iter().find(|c| c.type_ == "Stalled").unwrap();
    assert_eq!(stalled.status, "True");
    let config_maps: Api<ConfigMap> = Api::namespaced(h.client.clone(), NS);
    assert!(
        config_maps
            .get_opt("typo-settings")
            .await
            .unwrap()
            .is_none()
    );

    h.releases()
        .patch(
            "typo",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"values": {"message": "<< release.name >>"}}})),
        )
        .await
        .unwrap();
    h.ready("typo").await;
    let settings = config_maps.get("typo-settings").await.unwrap();
    assert_eq!(settings.data.unwrap()["message"], "typo");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_of_another_release_is_never_taken_over() {
    let h = Harness::start().await;
    let config_maps: Api<ConfigMap> = Api::namespaced(h.client.clone(), NS);
    let theirs: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "mine-settings", "labels": {RELEASE_LABEL: "default.other"}},
        "data": {"message": "theirs"}
    }))
    .unwrap();
    config_maps
        .create(&PostParams::default(), &theirs)
        .await
        .unwrap();
    h.create(
        "mine",
        json!({"chart": "test/app", "version": "0.1.0", "values": {"message": "my own message"}}),
    )
    .await;
    let (phase, ready, _) = ready_condition(&h, "mine", "OwnershipConflict").await;
    assert_eq!(phase, HelmReleasePhase::Failed);
    assert!(
        ready.message.contains("ConfigMap/mine-settings"),
        "{}",
        ready.message
    );
    assert!(ready.message.contains("default.other"), "{}", ready.message);
    let settings = config_maps.get("mine-settings").await.unwrap();
    assert_eq!(settings.data.unwrap()["message"], "theirs");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chart_with_a_crd_and_its_custom_resource_installs_in_one_apply() {
    let h = Harness::start().await;
    h.create(
        "widgets",
        json!({"chart": "test/widgets", "version": "0.1.0"}),
    )
    .await;
    let release = h.ready("widgets").await;
    let kinds: Vec<String> = release
        .status
        .unwrap()
        .inventory
        .iter()
        .map(|e| e.kind.clone())
        .collect();
    assert_eq!(
        kinds,
        ["CustomResourceDefinition", "Widget"],
        "inventory in apply order"
    );
    let resource = kube::discovery::ApiResource::from_gvk(&kube::api::GroupVersionKind::gvk(
        "example.com",
        "v1",
        "Widget",
    ));
    let widgets: Api<kube::api::DynamicObject> =
        Api::namespaced_with(h.client.clone(), NS, &resource);
    let widget = widgets.get("widgets").await.unwrap();
    assert_eq!(widget.data["spec"]["size"], 3);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pre_delete_hook_runs_when_the_release_is_deleted() {
    let h = Harness::start().await;
    h.create(
        "leaving",
        json!({"chart": "test/hooked", "version": "0.1.0"}),
    )
    .await;
    h.ready("leaving").await;
    let config_maps: Api<ConfigMap> = Api::namespaced(h.client.clone(), NS);
    assert!(
        config_maps
            .get_opt("leaving-farewell")
            .await
            .unwrap()
            .is_none(),
        "not at install"
    );
    let api = h.releases();
    api.delete("leaving", &DeleteParams::default())
        .await
        .unwrap();
    eventually("the release to disappear", || async {
        api.get_opt("leaving")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    assert!(
        config_maps
            .get_opt("leaving-farewell")
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        config_maps
            .get_opt("leaving-settings")
            .await
            .unwrap()
            .is_none()
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_edited_in_place_is_put_back_at_once() {
    let h = Harness::start().await;
    // The default interval (10m): only the edit itself can bring the re-apply.
    h.create(
        "web",
        json!({"chart": "test/app", "version": "0.1.0", "values": {"message": "desired"}}),
    )
    .await;
    let ready = h.ready("web").await;
    let config_maps: Api<ConfigMap> = Api::namespaced(h.client.clone(), NS);
    config_maps
        .patch(
            "web-settings",
            &PatchParams {
                field_manager: Some("kubectl-edit".into()),
                ..PatchParams::default()
            },
            &Patch::Merge(json!({"data": {"message": "edited by hand"}})),
        )
        .await
        .unwrap();
    eventually("the edit to be put back", || async {
        let settings = config_maps.get("web-settings").await.ok()?;
        (settings.data?.get("message")? == "desired").then_some(())
    })
    .await;
    eventually("the drift metric", || async {
        let text = h.metrics().encode().unwrap();
        text.contains("upstart_helmrelease_drift_corrections_total 1")
            .then_some(())
    })
    .await;
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(h.client.clone(), NS);
    eventually("a DriftCorrected event naming the object", || async {
        events
            .list(&Default::default())
            .await
            .ok()?
            .items
            .into_iter()
            .find(|e| {
                e.reason.as_deref() == Some("DriftCorrected")
                    && e.note
                        .as_deref()
                        .is_some_and(|n| n.contains("ConfigMap/web-settings (changed by hand)"))
            })
    })
    .await;
    // Put back once: the correction is not itself taken for another edit.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let text = h.metrics().encode().unwrap();
    assert!(text.contains("upstart_helmrelease_drift_corrections_total 1"));
    let after = h.releases().get("web").await.unwrap();
    assert_eq!(
        after.status, ready.status,
        "a Ready release stays Ready while an edit is put back"
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployment_image_edited_by_hand_is_put_back_and_the_release_returns_to_ready() {
    let h = Harness::start().await;
    h.create("img", json!({"chart": "test/app", "version": "0.1.0"}))
        .await;
    h.ready("img").await;
    let deployments: Api<Deployment> = Api::namespaced(h.client.clone(), NS);
    deployments
        .patch(
            "img",
            &PatchParams {
                field_manager: Some("kubectl-edit".into()),
                ..PatchParams::default()
            },
            &Patch::Strategic(json!({"spec": {"template": {"spec": {"containers": [
                {"name": "app", "image": "example/app:edited"}
            ]}}}})),
        )
        .await
        .unwrap();
    let image = |d: Deployment| d.spec?.template.spec?.containers.first()?.image.clone();
    eventually("the image to be put back", || async {
        let live = deployments.get("img").await.ok()?;
        (image(live)? == "example/app:1").then_some(())
    })
    .await;
    eventually("drift counted and the release Ready again", || async {
        let text = h.metrics().encode().unwrap();
        (text.contains("upstart_helmrelease_drift_corrections_total 1")
            && text.contains("upstart_helmreleases{phase=\"Ready\"} 1"))
        .then_some(())
    })
    .await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_write_the_apply_does_not_take_back_is_answered_once() {
    let h = Harness::start().await;
    h.create("noted", json!({"chart": "test/app", "version": "0.1.0"}))
        .await;
    h.ready("noted").await;
    let config_maps: Api<ConfigMap> = Api::namespaced(h.client.clone(), NS);
    // A field the chart does not set: the re-apply leaves it (server-side apply removes only
    // what it applied before), so that manager's write stays newer than ours.
    config_maps
        .patch(
            "noted-settings",
            &PatchParams {
                field_manager: Some("some-controller".into()),
                ..PatchParams::default()
            },
            &Patch::Merge(json!({"data": {"extra": "added by hand"}})),
        )
        .await
        .unwrap();
    eventually("the write to be answered", || async {
        let text = h.metrics().encode().unwrap();
        text.contains("upstart_helmrelease_drift_corrections_total 1")
            .then_some(())
    })
    .await;
    // Every reconcile after it sees that write again: wake the release a few times.
    for round in 0..3 {
        h.releases()
            .patch(
                "noted",
                &PatchParams::default(),
                &Patch::Merge(
                    json!({"metadata": {"annotations": {"example.com/round": round.to_string()}}}),
                ),
            )
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let text = h.metrics().encode().unwrap();
    assert!(
        text.contains("upstart_helmrelease_drift_corrections_total 1"),
        "answered once, not in a loop"
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_release_is_reapplied_on_the_interval_without_leaving_ready_or_counting_drift() {
    let h = Harness::start().await;
    h.create(
        "steady",
        json!({"chart": "test/app", "version": "0.1.0", "interval": "1s", "values": {"message": "desired"}}),
    )
    .await;
    let ready = h.ready("steady").await;
    let applied = |text: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix("upstart_helmrelease_objects_applied_total "))
            .and_then(|n| n.trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    let before = applied(&h.metrics().encode().unwrap());
    // Edits by hand are put back as they happen (see above); the interval re-apply stays as
    // the safety net. It changes nothing, so it is never taken for drift: the Deployment's
    // status written by another manager through /status included.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let text = h.metrics().encode().unwrap();
    assert!(applied(&text) > before, "re-applied on the interval");
    assert!(
        !text.contains("upstart_helmrelease_drift_corrections_total 1"),
        "no drift counted"
    );
    let after = h.releases().get("steady").await.unwrap();
    assert_eq!(
        after.status, ready.status,
        "a periodic re-apply leaves status as it was"
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dependency_on_a_service_waits_for_it_and_reads_its_external_outputs() {
    let h = Harness::start().await;
    let services: Api<upstart_api::v1alpha1::UpstartService> =
        Api::namespaced(h.client.clone(), NS);
    let service: upstart_api::v1alpha1::UpstartService = serde_json::from_value(json!({
        "apiVersion": "upstartoperators.upstart.com/v1alpha1",
        "kind": "UpstartService",
        "metadata": {"name": "svc", "namespace": NS},
        "spec": {"helmReleases": {"db": {"chart": "test/producer"}}}
    }))
    .unwrap();
    let service = services
        .create(&PostParams::default(), &service)
        .await
        .unwrap();
    // Stands in for the UpstartService operator: its child release, owned by the service.
    let child: HelmRelease = serde_json::from_value(json!({
        "apiVersion": "upstartoperators.upstart.com/v1alpha1",
        "kind": "HelmRelease",
        "metadata": {
            "name": "svc-db",
            "namespace": NS,
            "ownerReferences": [{
                "apiVersion": "upstartoperators.upstart.com/v1alpha1",
                "kind": "UpstartService",
                "name": "svc",
                "uid": service.metadata.uid.clone().unwrap()
            }]
        },
        "spec": {
            "chart": "test/producer",
            "version": "0.1.0",
            "values": {"password": "from-service"},
            "outputsFrom": [{"secretRef": {"name": "svc-db-creds"}, "scope": "external"}]
        }
    }))
    .unwrap();
    h.releases()
        .create(&PostParams::default(), &child)
        .await
        .unwrap();
    h.create(
        "consumer",
        json!({
            "chart": "test/app",
            "version": "0.1.0",
            "dependencies": [{"name": "svc"}],
            "values": {"password": "<< svc.outputs.PASSWORD >>"}
        }),
    )
    .await;
    h.ready("svc-db").await;
    let api = h.releases();
    eventually("consumer waiting for the service", || async {
        let status = api.get("consumer").await.ok()?.status?;
        (status.phase == Some(HelmReleasePhase::WaitingForDependencies)).then_some(())
    })
    .await;

    let generation = service.metadata.generation;
    services
        .patch_status(
            "svc",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"conditions": [{
                "type": "Ready", "status": "True", "reason": "Ready", "message": "",
                "observedGeneration": generation,
                "lastTransitionTime": "2026-01-01T00:00:00Z"
            }]}})),
        )
        .await
        .unwrap();
    h.ready("consumer").await;
    let deployments: Api<Deployment> = Api::namespaced(h.client.clone(), NS);
    let deployment = deployments.get("consumer").await.unwrap();
    assert_eq!(env_password(&deployment).as_deref(), Some("from-service"));
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn name_of_both_a_release_and_a_service_is_an_ambiguous_dependency() {
    let h = Harness::start().await;
    let services: Api<upstart_api::v1alpha1::UpstartService> =
        Api::namespaced(h.client.clone(), NS);
    let service = serde_json::from_value(json!({
        "apiVersion": "upstartoperators.upstart.com/v1alpha1",
        "kind": "UpstartService",
        "metadata": {"name": "shared", "namespace": NS},
        "spec": {"helmReleases": {"db": {"chart": "test/producer"}}}
    }))
    .unwrap();
    services
        .create(&PostParams::default(), &service)
        .await
        .unwrap();
    h.create("shared", json!({"chart": "test/app", "version": "0.1.0"}))
        .await;
    h.create(
        "user",
        json!({"chart": "test/app", "version": "0.1.0", "dependencies": [{"name": "shared"}]}),
    )
    .await;
    let (phase, ready, conditions) = ready_condition(&h, "user", "AmbiguousDependency").await;
    assert_eq!(phase, HelmReleasePhase::Failed);
    assert!(ready.message.contains("shared"), "{}", ready.message);
    let stalled = conditions.iter().find(|c| c.type_ == "Stalled").unwrap();
    assert_eq!(stalled.status, "True");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workload_not_healthy_within_the_timeout_fails_the_release() {
    let h = Harness::start().await;
    h.create(
        "slow",
        json!({"chart": "test/app", "version": "0.1.0", "timeout": "1s", "values": {"readyAfter": "1h"}}),
    )
    .await;
    let (phase, ready, _) = ready_condition(&h, "slow", "HealthCheckFailed").await;
    assert_eq!(phase, HelmReleasePhase::Failed);
    assert!(ready.message.contains("timeout"), "{}", ready.message);
    assert!(
        ready.message.contains("Deployment/slow"),
        "{}",
        ready.message
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suspended_release_is_left_alone_until_resumed() {
    let h = Harness::start().await;
    h.create(
        "paused",
        json!({"chart": "test/app", "version": "0.1.0", "values": {"message": "one"}}),
    )
    .await;
    h.ready("paused").await;
    let api = h.releases();
    api.patch(
        "paused",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"suspend": true, "values": {"message": "two"}}})),
    )
    .await
    .unwrap();
    eventually("the release to be Suspended", || async {
        let status = api.get("paused").await.ok()?.status?;
        (status.phase == Some(HelmReleasePhase::Suspended)).then_some(())
    })
    .await;
    let config_maps: Api<ConfigMap> = Api::namespaced(h.client.clone(), NS);
    let settings = config_maps.get("paused-settings").await.unwrap();
    assert_eq!(
        settings.data.unwrap()["message"],
        "one",
        "nothing applied while suspended"
    );

    api.patch(
        "paused",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"suspend": false}})),
    )
    .await
    .unwrap();
    h.ready("paused").await;
    let settings = config_maps.get("paused-settings").await.unwrap();
    assert_eq!(settings.data.unwrap()["message"], "two");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn environment_and_service_roots_reach_the_values_and_a_variables_change_reapplies() {
    let h = Harness::start().await;
    let ns = "pr-7";
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(h.client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {
                "name": ns,
                "labels": {upstart_api::labels::ENVIRONMENT_LABEL: "pr-7"}
            }}))
            .unwrap(),
        )
        .await
        .unwrap();
    let environments: Api<upstart_api::v1alpha1::UpstartEnvironment> = Api::all(h.client.clone());
    environments
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "apiVersion": "upstartoperators.upstart.com/v1alpha1",
                "kind": "UpstartEnvironment",
                "metadata": {"name": "pr-7"},
                "spec": {"variables": {"BRANCH": "feature-1"}}
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    let services: Api<upstart_api::v1alpha1::UpstartService> =
        Api::namespaced(h.client.clone(), ns);
    let service = services
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "apiVersion": "upstartoperators.upstart.com/v1alpha1",
                "kind": "UpstartService",
                "metadata": {"name": "checkout", "namespace": ns},
                "spec": {"helmReleases": {"web": {"chart": "test/app"}}}
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    let releases: Api<HelmRelease> = Api::namespaced(h.client.clone(), ns);
    let release: HelmRelease = serde_json::from_value(json!({
        "apiVersion": "upstartoperators.upstart.com/v1alpha1",
        "kind": "HelmRelease",
        "metadata": {
            "name": "checkout-web",
            "namespace": ns,
            "ownerReferences": [{
                "apiVersion": "upstartoperators.upstart.com/v1alpha1",
                "kind": "UpstartService",
                "name": "checkout",
                "uid": service.metadata.uid.clone().unwrap()
            }]
        },
        "spec": {
            "chart": "test/app",
            "version": "0.1.0",
            "values": {"message": "<< environment.name >>/<< environment.namespace >>/<< environment.variables.BRANCH >>/<< service.name >>"}
        }
    }))
    .unwrap();
    releases
        .create(&PostParams::default(), &release)
        .await
        .unwrap();
    let config_maps: Api<ConfigMap> = Api::namespaced(h.client.clone(), ns);
    let message = || async {
        let settings = config_maps
            .get_opt("checkout-web-settings")
            .await
            .unwrap()?;
        settings.data?.get("message").cloned()
    };
    eventually("the environment and service in the values", || async {
        (message().await? == "pr-7/pr-7/feature-1/checkout").then_some(())
    })
    .await;

    // The interval is 10 minutes: only the environment watch can bring this in time.
    environments
        .patch(
            "pr-7",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"variables": {"BRANCH": "feature-2"}}})),
        )
        .await
        .unwrap();
    eventually("the changed variable in the values", || async {
        (message().await? == "pr-7/pr-7/feature-2/checkout").then_some(())
    })
    .await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn environment_root_outside_an_environment_namespace_is_a_spec_error() {
    let h = Harness::start().await;
    h.create(
        "lonely",
        json!({"chart": "test/app", "version": "0.1.0",
               "values": {"message": "<< environment.variables.BRANCH >>"}}),
    )
    .await;
    let (phase, ready, _) = ready_condition(&h, "lonely", "UnknownExpressionRoot").await;
    assert_eq!(phase, HelmReleasePhase::Failed);
    assert!(ready.message.contains("environment"), "{}", ready.message);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_of_a_service_waits_at_deletion_for_a_release_depending_on_the_service() {
    let h = Harness::start().await;
    let services: Api<upstart_api::v1alpha1::UpstartService> =
        Api::namespaced(h.client.clone(), NS);
    let service = services
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "apiVersion": "upstartoperators.upstart.com/v1alpha1",
                "kind": "UpstartService",
                "metadata": {"name": "svc", "namespace": NS},
                "spec": {"helmReleases": {"db": {"chart": "test/producer"}}}
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    let child: HelmRelease = serde_json::from_value(json!({
        "apiVersion": "upstartoperators.upstart.com/v1alpha1",
        "kind": "HelmRelease",
        "metadata": {
            "name": "svc-db",
            "namespace": NS,
            "ownerReferences": [{
                "apiVersion": "upstartoperators.upstart.com/v1alpha1",
                "kind": "UpstartService",
                "name": "svc",
                "uid": service.metadata.uid.clone().unwrap()
            }]
        },
        "spec": {
            "chart": "test/producer",
            "version": "0.1.0",
            "values": {"password": "p"},
            "outputsFrom": [{"secretRef": {"name": "svc-db-creds"}, "scope": "external"}]
        }
    }))
    .unwrap();
    let api = h.releases();
    api.create(&PostParams::default(), &child).await.unwrap();
    h.ready("svc-db").await;
    // Depends on the service (no kind), not on its child: it waits for the service's Ready,
    // which no operator writes here; being present is enough to hold the teardown.
    h.create(
        "user",
        json!({"chart": "test/app", "version": "0.1.0", "dependencies": [{"name": "svc"}]}),
    )
    .await;
    eventually("user waiting for the service", || async {
        let status = api.get("user").await.ok()?.status?;
        (status.phase == Some(HelmReleasePhase::WaitingForDependencies)).then_some(())
    })
    .await;

    api.delete("svc-db", &DeleteParams::default())
        .await
        .unwrap();
    eventually("svc-db waiting for user", || async {
        let status = api.get("svc-db").await.ok()?.status?;
        let ready = status.conditions.iter().find(|c| c.type_ == "Ready")?;
        (status.phase == Some(HelmReleasePhase::Deleting) && ready.message.contains("user"))
            .then_some(())
    })
    .await;
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(h.client.clone(), NS);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        secrets.get_opt("svc-db-creds").await.unwrap().is_some(),
        "svc-db keeps its objects while user is there"
    );

    api.delete("user", &DeleteParams::default()).await.unwrap();
    // Well within the 60 s teardown timeout: the deletion of user wakes svc-db.
    let started = Instant::now();
    eventually("svc-db gone", || async {
        api.get_opt("svc-db").await.unwrap().is_none().then_some(())
    })
    .await;
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(secrets.get_opt("svc-db-creds").await.unwrap().is_none());
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_output_key_is_a_wait_naming_the_key_then_proceeds_when_it_appears() {
    let h = Harness::start().await;
    h.create(
        "db",
        json!({
            "chart": "test/producer",
            "version": "0.1.0",
            "values": {"password": "pw-present-31"},
            "outputsFrom": [
                {"secretRef": {"name": "db-creds"}},
                {"secretRef": {"name": "db-extra"}, "optional": true}
            ]
        }),
    )
    .await;
    h.create(
        "app",
        json!({
            "chart": "test/app",
            "version": "0.1.0",
            "dependencies": [{"name": "db"}],
            "values": {"password": "<< db.outputs.USERNAME >>"}
        }),
    )
    .await;
    h.ready("db").await;
    let api = h.releases();
    let ready = eventually("app waiting for the USERNAME key", || async {
        let status = api.get("app").await.ok()?.status?;
        let ready = status
            .conditions
            .iter()
            .find(|c| c.type_ == "Ready")?
            .clone();
        (status.phase == Some(HelmReleasePhase::WaitingForDependencies)
            && ready.reason == "MissingOutput")
            .then_some(ready)
    })
    .await;
    assert!(ready.message.contains("USERNAME"), "{}", ready.message);
    assert!(
        ready.message.contains("PASSWORD"),
        "lists the keys that exist: {}",
        ready.message
    );
    let status = serde_json::to_string(&api.get("app").await.unwrap().status).unwrap();
    assert!(
        !status.contains("pw-present-31"),
        "no value in status: {status}"
    );
    let stalled = api
        .get("app")
        .await
        .unwrap()
        .status
        .unwrap()
        .conditions
        .into_iter()
        .find(|c| c.type_ == "Stalled");
    assert_ne!(
        stalled.map(|c| c.status).as_deref(),
        Some("True"),
        "a wait, not a failure"
    );

    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(h.client.clone(), NS);
    secrets
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": "db-extra"},
                "stringData": {"USERNAME": "admin-user"}
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    h.ready("app").await;
    let deployments: Api<Deployment> = Api::namespaced(h.client.clone(), NS);
    let deployment = deployments.get("app").await.unwrap();
    assert_eq!(env_password(&deployment).as_deref(), Some("admin-user"));
    h.stop().await;
}

/// `upstart_reconciles_total` of the HelmRelease controller.
fn reconciles(h: &Harness) -> u64 {
    let text = h.metrics().encode().unwrap();
    text.lines()
        .find(|l| l.starts_with("upstart_reconciles_total{controller=\"helmrelease\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undeclared_alias_stalls_the_release_without_retries_until_the_spec_is_fixed() {
    let h = Harness::start().await;
    h.create(
        "orphan",
        json!({"chart": "test/app", "version": "0.1.0",
               "values": {"message": "<< cache.outputs.HOST >>"}}),
    )
    .await;
    let (phase, ready, conditions) = ready_condition(&h, "orphan", "UnknownExpressionRoot").await;
    assert_eq!(phase, HelmReleasePhase::Failed);
    assert!(ready.message.contains("cache"), "{}", ready.message);
    let stalled = conditions.iter().find(|c| c.type_ == "Stalled").unwrap();
    assert_eq!(stalled.status, "True");

    // Let the reconcile that wrote the status and its echo settle, then watch for retries.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = reconciles(&h);
    let status_before = h.releases().get("orphan").await.unwrap();
    assert!(before > 0);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(reconciles(&h), before, "no retries without a spec change");
    let status_after = h.releases().get("orphan").await.unwrap();
    assert_eq!(
        status_after.resource_version(),
        status_before.resource_version()
    );
    let config_maps: Api<ConfigMap> = Api::namespaced(h.client.clone(), NS);
    assert!(
        config_maps
            .get_opt("orphan-settings")
            .await
            .unwrap()
            .is_none()
    );

    h.releases()
        .patch(
            "orphan",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"values": {"message": "fixed"}}})),
        )
        .await
        .unwrap();
    h.ready("orphan").await;
    let settings = config_maps.get("orphan-settings").await.unwrap();
    assert_eq!(settings.data.unwrap()["message"], "fixed");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dependency_alias_used_twice_stalls_the_release_naming_it() {
    let h = Harness::start().await;
    h.create(
        "twice",
        json!({"chart": "test/app", "version": "0.1.0",
               "dependencies": [{"name": "cache"}, {"name": "redis", "as": "cache"}]}),
    )
    .await;
    let (phase, ready, conditions) = ready_condition(&h, "twice", "DuplicateAlias").await;
    assert_eq!(phase, HelmReleasePhase::Failed);
    assert!(ready.message.contains("cache"), "{}", ready.message);
    let stalled = conditions.iter().find(|c| c.type_ == "Stalled").unwrap();
    assert_eq!(stalled.status, "True");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = reconciles(&h);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(reconciles(&h), before, "no retries without a spec change");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_in_another_namespace_is_refused_and_nothing_of_that_render_is_applied() {
    let h = Harness::start().await;
    h.create(
        "outside",
        json!({"chart": "test/foreign", "version": "0.1.0"}),
    )
    .await;
    let (phase, ready, _) = ready_condition(&h, "outside", "ForeignNamespace").await;
    assert_eq!(phase, HelmReleasePhase::Failed);
    assert!(ready.message.contains("kube-public"), "{}", ready.message);
    let here: Api<ConfigMap> = Api::namespaced(h.client.clone(), NS);
    let there: Api<ConfigMap> = Api::namespaced(h.client.clone(), "kube-public");
    assert!(here.get_opt("outside-local").await.unwrap().is_none());
    assert!(there.get_opt("outside-elsewhere").await.unwrap().is_none());
    let status = h.releases().get("outside").await.unwrap().status.unwrap();
    assert!(status.inventory.is_empty());
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_values_of_a_chain_appear_in_no_status_event_or_log() {
    const PASSWORD: &str = "chain-secret-7781";
    let h = Harness::start().await;
    h.create(
        "db",
        json!({
            "chart": "test/producer",
            "version": "0.1.0",
            "values": {"password": PASSWORD},
            "outputsFrom": [{"secretRef": {"name": "db-creds"}}]
        }),
    )
    .await;
    h.create(
        "relay",
        json!({
            "chart": "test/relay",
            "version": "0.1.0",
            "dependencies": [{"name": "db"}],
            "values": {"url": "postgres://app:<< db.outputs.PASSWORD >>@db:5432/app"},
            "outputsFrom": [{"configMapRef": {"name": "relay-out"}}]
        }),
    )
    .await;
    h.create(
        "app",
        json!({
            "chart": "test/app",
            "version": "0.1.0",
            "dependencies": [{"name": "relay", "as": "upstream"}],
            "values": {"password": "<< upstream.outputs.URL >>", "message": "<< upstream.outputs.MISSING >>"}
        }),
    )
    .await;
    h.ready("relay").await;
    // app first waits on a missing key (its message is built next to the values) ...
    ready_condition(&h, "app", "MissingOutput").await;
    // ... then is fixed and installed with the URL.
    h.releases()
        .patch(
            "app",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"values": {"message": "plain"}}})),
        )
        .await
        .unwrap();
    h.ready("app").await;
    let deployments: Api<Deployment> = Api::namespaced(h.client.clone(), NS);
    let url = env_password(&deployments.get("app").await.unwrap()).unwrap();
    assert!(
        url.contains(PASSWORD),
        "the value did travel down the chain"
    );

    // As Secret data appears in JSON: base64.
    let encoded =
        serde_json::to_value(k8s_openapi::ByteString(PASSWORD.as_bytes().to_vec())).unwrap();
    let encoded = encoded.as_str().unwrap().to_owned();
    let leaks = |text: &str| text.contains(PASSWORD) || text.contains(&encoded);

    let statuses: Vec<_> = h
        .releases()
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|r| (r.name_any(), r.status))
        .collect();
    assert_eq!(statuses.len(), 3);
    let statuses = serde_json::to_string(&statuses).unwrap();
    assert!(!leaks(&statuses), "a status holds a value: {statuses}");

    let new_events: Api<k8s_openapi::api::events::v1::Event> =
        Api::namespaced(h.client.clone(), NS);
    let new_events = new_events.list(&Default::default()).await.unwrap().items;
    let core_events: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(h.client.clone(), NS);
    let core_events = core_events.list(&Default::default()).await.unwrap().items;
    assert!(
        !new_events.is_empty() || !core_events.is_empty(),
        "phase changes were announced"
    );
    let events = format!(
        "{}{}",
        serde_json::to_string(&new_events).unwrap(),
        serde_json::to_string(&core_events).unwrap()
    );
    assert!(!leaks(&events), "an Event holds a value: {events}");

    let logs = logs::captured();
    assert!(
        logs.contains("reconcile") && logs.contains("relay"),
        "the capture holds this test's reconciles"
    );
    assert!(!leaks(&logs), "a log line holds a value");
    h.stop().await;
}

/// Debian's `docker-registry` (CNCF distribution), as the chart-source OCI tests use it: its
/// absence fails the test with how to install it, it is not skipped.
mod registry {
    use std::io::{Read as _, Write as _};
    use std::path::{Path, PathBuf};
    use std::process::{Child, Command, Stdio};
    use std::time::{Duration, Instant};

    /// `robot:hunter2` in htpasswd form (bcrypt, cost 4 so every request stays fast).
    const HTPASSWD: &str = "robot:$2b$04$dOCUmxWrQJs1yWkqVz67X.rqevP2xIH1eXi.3iHs5PsWCz/bG0MhC\n";

    fn binary() -> PathBuf {
        let system = PathBuf::from("/usr/bin/docker-registry");
        if system.is_file() {
            return system;
        }
        std::env::var_os("PATH")
            .and_then(|paths| {
                std::env::split_paths(&paths)
                    .map(|dir| dir.join("docker-registry"))
                    .find(|p| p.is_file())
            })
            .unwrap_or_else(|| {
                panic!(
                    "docker-registry (CNCF distribution) is needed for the OCI test: run \
                     scripts/bootstrap-tools as root, or `apt-get install -y docker-registry`"
                )
            })
    }

    /// A registry requiring basic authentication as `robot` / `hunter2`; killed when dropped.
    pub struct Registry {
        child: Child,
        port: u16,
        dir: tempfile::TempDir,
    }

    impl Drop for Registry {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    impl Registry {
        pub fn start() -> Registry {
            let dir = tempfile::tempdir().unwrap();
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let htpasswd = dir.path().join("htpasswd");
            std::fs::write(&htpasswd, HTPASSWD).unwrap();
            let config = dir.path().join("config.yml");
            std::fs::write(
                &config,
                format!(
                    "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n\
                     http:\n  addr: 127.0.0.1:{port}\nauth:\n  htpasswd:\n    realm: test\n    path: {}\n",
                    dir.path().join("storage").display(),
                    htpasswd.display()
                ),
            )
            .unwrap();
            let child = Command::new(binary())
                .arg("serve")
                .arg(&config)
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(dir.path().join("registry.log")).unwrap())
                .spawn()
                .unwrap();
            let mut registry = Registry { child, port, dir };
            let deadline = Instant::now() + Duration::from_secs(20);
            while !registry.answers() {
                if let Some(status) = registry.child.try_wait().unwrap() {
                    let log = std::fs::read_to_string(registry.dir.path().join("registry.log"));
                    panic!("docker-registry exited with {status}: {log:?}");
                }
                assert!(Instant::now() < deadline, "docker-registry did not answer");
                std::thread::sleep(Duration::from_millis(50));
            }
            registry
        }

        fn answers(&self) -> bool {
            let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", self.port)) else {
                return false;
            };
            let request = format!("GET /v2/ HTTP/1.0\r\nHost: 127.0.0.1:{}\r\n\r\n", self.port);
            if stream.write_all(request.as_bytes()).is_err() {
                return false;
            }
            let mut reply = String::new();
            let _ = stream.read_to_string(&mut reply);
            reply.contains(" 401 ") || reply.contains(" 200 ")
        }

        pub fn host(&self) -> String {
            format!("127.0.0.1:{}", self.port)
        }

        /// Packages the chart in `chart_dir` and pushes it into `oci://HOST/charts` as robot.
        pub fn push(&self, chart_dir: &Path) {
            let chart = upstart_chart_package::package_chart(chart_dir).unwrap();
            let work = tempfile::tempdir().unwrap();
            let file = work
                .path()
                .join(format!("{}-{}.tgz", chart.name, chart.version));
            std::fs::write(&file, &chart.archive).unwrap();
            let output = Command::new(upstart_test_support::helm())
                .arg("push")
                .arg(&file)
                .arg(format!("oci://{}/charts", self.host()))
                .args([
                    "--plain-http",
                    "--username",
                    "robot",
                    "--password",
                    "hunter2",
                ])
                .env("HELM_CACHE_HOME", work.path().join("cache"))
                .env("HELM_CONFIG_HOME", work.path().join("config"))
                .env("HELM_DATA_HOME", work.path().join("data"))
                .env("HELM_REGISTRY_CONFIG", work.path().join("registry.json"))
                .stdin(Stdio::null())
                .output()
                .unwrap();
            assert!(
                output.status.success(),
                "helm push failed: {}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chart_from_an_oci_registry_with_credentials_from_the_operator_namespace_installs() {
    let registry = registry::Registry::start();
    let mut h = Harness::boot().await;
    registry.push(&h.cluster.dir().join("charts/app"));

    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(h.client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "upstart-system"}})).unwrap(),
        )
        .await
        .unwrap();
    let secrets: Api<k8s_openapi::api::core::v1::Secret> =
        Api::namespaced(h.client.clone(), "upstart-system");
    secrets
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": "reg-auth"},
                "stringData": {"username": "robot", "password": "hunter2"}
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    let repositories = RepositoryConfig::from_yaml(&format!(
        "repositories: {{reg: {{url: \"oci://{}/charts\", plainHttp: true, credentialsSecret: reg-auth}}}}",
        registry.host()
    ))
    .unwrap();
    let credentials = controller::load_credentials(&h.client, "upstart-system", &repositories)
        .await
        .unwrap();
    assert!(credentials.contains_key("reg"));
    let config = Config {
        repositories,
        credentials,
        ..h.config()
    };
    h.run_operator(config);

    h.create(
        "from-oci",
        json!({"chart": "reg/app", "version": "^0.1", "values": {"message": "pulled"}}),
    )
    .await;
    let release = h.ready("from-oci").await;
    let status = release.status.unwrap();
    assert_eq!(status.version.as_deref(), Some("0.1.0"));
    assert!(status.chart_digest.unwrap().starts_with("sha256:"));
    let config_maps: Api<ConfigMap> = Api::namespaced(h.client.clone(), NS);
    let settings = config_maps.get("from-oci-settings").await.unwrap();
    assert_eq!(settings.data.unwrap()["message"], "pulled");
    let shown = serde_json::to_string(&h.releases().get("from-oci").await.unwrap()).unwrap();
    assert!(!shown.contains("hunter2"));
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_credentials_secret_missing_at_start_fails_only_its_repository_until_it_is_created() {
    let registry = registry::Registry::start();
    let mut h = Harness::boot().await;
    registry.push(&h.cluster.dir().join("charts/app"));
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(h.client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "upstart-system"}})).unwrap(),
        )
        .await
        .unwrap();
    // `test` needs no credentials; `reg` names a Secret nobody has created yet.
    let mut repositories = h.config().repositories;
    repositories.repositories.extend(
        RepositoryConfig::from_yaml(&format!(
            "repositories: {{reg: {{url: \"oci://{}/charts\", plainHttp: true, credentialsSecret: reg-auth}}}}",
            registry.host()
        ))
        .unwrap()
        .repositories,
    );
    let credentials = controller::load_credentials(&h.client, "upstart-system", &repositories)
        .await
        .expect("a missing credentials Secret does not stop the operator");
    assert!(credentials.is_empty());
    h.run_operator(Config {
        repositories,
        credentials,
        credentials_namespace: Some("upstart-system".into()),
        ..h.config()
    });

    h.create(
        "from-oci",
        json!({"chart": "reg/app", "version": "^0.1", "values": {"message": "pulled"}}),
    )
    .await;
    h.create(
        "from-test",
        json!({"chart": "test/app", "version": "0.1.0"}),
    )
    .await;
    let api = h.releases();
    let condition = eventually("the release to fail naming the missing Secret", || async {
        let status = api.get("from-oci").await.ok()?.status?;
        let ready = status
            .conditions
            .iter()
            .find(|c| c.type_ == "Ready")?
            .clone();
        (ready.reason == "ChartFetchFailed").then_some(ready)
    })
    .await;
    assert_eq!(condition.status, "False");
    for part in [
        "credentials Secret upstart-system/reg-auth",
        "repository reg",
        "create it in upstart-system",
    ] {
        assert!(
            condition.message.contains(part),
            "{part:?} not in {:?}",
            condition.message
        );
    }
    let status = api.get("from-oci").await.unwrap().status.unwrap();
    assert!(
        !status
            .conditions
            .iter()
            .any(|c| c.type_ == "Stalled" && c.status == "True"),
        "creating the Secret is enough: the release keeps retrying"
    );
    // A repository with its credentials, or needing none, is not held up.
    h.ready("from-test").await;

    // Created later, the Secret is read at the next attempt: no restart.
    let secrets: Api<k8s_openapi::api::core::v1::Secret> =
        Api::namespaced(h.client.clone(), "upstart-system");
    secrets
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": "reg-auth"},
                "stringData": {"username": "robot", "password": "hunter2"}
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    let release = h.ready("from-oci").await;
    assert_eq!(release.status.unwrap().version.as_deref(), Some("0.1.0"));
    let config_maps: Api<ConfigMap> = Api::namespaced(h.client.clone(), NS);
    let settings = config_maps.get("from-oci-settings").await.unwrap();
    assert_eq!(settings.data.unwrap()["message"], "pulled");
    let shown = serde_json::to_string(&h.releases().get("from-oci").await.unwrap()).unwrap();
    assert!(!shown.contains("hunter2"));
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_killed_during_a_hook_resumes_to_ready_without_running_a_hook_twice() {
    let mut h = Harness::start().await;
    // Both hooks keep the default policy (before-hook-creation): their Jobs stay, so their
    // identity tells whether they were run again.
    h.create(
        "crashy",
        json!({"chart": "test/crashy", "version": "0.1.0", "values": {"postAfter": "3s"}}),
    )
    .await;
    let jobs: Api<k8s_openapi::api::batch::v1::Job> = Api::namespaced(h.client.clone(), NS);
    let (pre, post) = eventually("the post-install hook running", || async {
        let pre = jobs.get_opt("crashy-pre").await.unwrap()?;
        let post = jobs.get_opt("crashy-post").await.unwrap()?;
        Some((pre, post))
    })
    .await;
    let completed = |job: &k8s_openapi::api::batch::v1::Job| {
        job.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| {
                c.iter()
                    .any(|c| c.type_ == "Complete" && c.status == "True")
            })
    };
    assert!(
        completed(&pre),
        "pre-install ended before post-install started"
    );
    assert!(
        !completed(&post),
        "post-install still running when the operator dies"
    );
    let api = h.releases();
    eventually("status showing the running hook", || async {
        let status = api.get("crashy").await.ok()?.status?;
        let ready = status.conditions.iter().find(|c| c.type_ == "Ready")?;
        (status.phase == Some(HelmReleasePhase::Installing)
            && ready.message.contains("Job/crashy-post"))
        .then_some(())
    })
    .await;

    h.kill().await;
    let release = api.get("crashy").await.unwrap();
    assert!(
        release
            .finalizers()
            .iter()
            .any(|f| f == "upstartoperators.upstart.com/helmrelease")
    );

    h.run_operator(h.config());
    let release = h.ready("crashy").await;
    assert!(
        release
            .finalizers()
            .iter()
            .any(|f| f == "upstartoperators.upstart.com/helmrelease"),
        "finalizer intact"
    );
    let status = release.status.unwrap();
    let hooks: Vec<(String, String)> = status
        .hooks
        .iter()
        .map(|h| (h.object.clone(), h.phase.clone()))
        .collect();
    assert_eq!(
        hooks,
        [
            ("Job/crashy-pre".to_owned(), "Succeeded".to_owned()),
            ("Job/crashy-post".to_owned(), "Succeeded".to_owned())
        ]
    );
    let pre_after = jobs.get("crashy-pre").await.unwrap();
    let post_after = jobs.get("crashy-post").await.unwrap();
    assert_eq!(pre_after.uid(), pre.uid(), "pre-install was not run again");
    assert_eq!(
        post_after.uid(),
        post.uid(),
        "post-install was waited for, not restarted"
    );
    let config_maps: Api<ConfigMap> = Api::namespaced(h.client.clone(), NS);
    assert!(
        config_maps
            .get_opt("crashy-settings")
            .await
            .unwrap()
            .is_some()
    );

    // A new generation is a new run: its hooks do run again.
    api.patch(
        "crashy",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"values": {"postAfter": "100ms"}}})),
    )
    .await
    .unwrap();
    h.ready("crashy").await;
    let post_upgrade = jobs.get("crashy-post").await.unwrap();
    assert_eq!(
        post_upgrade.uid(),
        post.uid(),
        "post-install is not an upgrade hook"
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_pre_delete_hook_holds_the_deletion_without_holding_the_operator() {
    let mut h = Harness::start().await;
    h.create(
        "leaving",
        json!({"chart": "test/farewell", "version": "0.1.0"}),
    )
    .await;
    h.ready("leaving").await;
    let api = h.releases();
    api.delete("leaving", &DeleteParams::default())
        .await
        .unwrap();
    eventually("the deletion waiting for its hook", || async {
        let status = api.get("leaving").await.ok()?.status?;
        let ready = status.conditions.iter().find(|c| c.type_ == "Ready")?;
        (status.phase == Some(HelmReleasePhase::Deleting)
            && ready.message.contains("Job/leaving-bye"))
        .then_some(())
    })
    .await;
    let jobs: Api<k8s_openapi::api::batch::v1::Job> = Api::namespaced(h.client.clone(), NS);
    let bye = jobs.get("leaving-bye").await.unwrap();
    let config_maps: Api<ConfigMap> = Api::namespaced(h.client.clone(), NS);
    assert!(
        config_maps
            .get_opt("leaving-settings")
            .await
            .unwrap()
            .is_some(),
        "the inventory goes after the pre-delete hook"
    );

    // No reconcile is left waiting on the hook: a graceful stop is immediate.
    let stopping = Instant::now();
    h.shut_down().await;
    assert!(
        stopping.elapsed() < Duration::from_secs(2),
        "{:?}",
        stopping.elapsed()
    );

    h.run_operator(h.config());
    eventually("the release to disappear", || async {
        api.get_opt("leaving")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    assert!(
        config_maps
            .get_opt("leaving-settings")
            .await
            .unwrap()
            .is_none()
    );
    let bye_after = jobs.get("leaving-bye").await.unwrap();
    assert_eq!(bye_after.uid(), bye.uid(), "the hook was not run again");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_deleted_in_the_middle_of_its_install_removes_what_was_applied() {
    let h = Harness::start().await;
    h.create(
        "halfway",
        json!({"chart": "test/crashy", "version": "0.1.0", "values": {"postAfter": "1h"}}),
    )
    .await;
    let config_maps: Api<ConfigMap> = Api::namespaced(h.client.clone(), NS);
    let api = h.releases();
    eventually("the install waiting on its post-install hook", || async {
        let status = api.get("halfway").await.ok()?.status?;
        let ready = status.conditions.iter().find(|c| c.type_ == "Ready")?;
        (ready.message.contains("Job/halfway-post")
            && config_maps
                .get_opt("halfway-settings")
                .await
                .unwrap()
                .is_some())
        .then_some(())
    })
    .await;
    let status = api.get("halfway").await.unwrap().status.unwrap();
    assert!(
        status
            .inventory
            .iter()
            .any(|e| e.name == "halfway-settings"),
        "recorded before it was applied"
    );
    assert!(
        status.applied_digest.is_none(),
        "the install has not finished"
    );

    api.delete("halfway", &DeleteParams::default())
        .await
        .unwrap();
    eventually("the release to disappear", || async {
        api.get_opt("halfway")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    assert!(
        config_maps
            .get_opt("halfway-settings")
            .await
            .unwrap()
            .is_none()
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespace_joining_an_environment_wakes_a_release_stalled_on_environment_root() {
    let h = Harness::start().await;
    let ns = "late-env";
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(h.client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap(),
        )
        .await
        .unwrap();
    let environments: Api<upstart_api::v1alpha1::UpstartEnvironment> = Api::all(h.client.clone());
    environments
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "apiVersion": "upstartoperators.upstart.com/v1alpha1",
                "kind": "UpstartEnvironment",
                "metadata": {"name": ns},
                "spec": {"variables": {"REGION": "eu"}}
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    let releases: Api<HelmRelease> = Api::namespaced(h.client.clone(), ns);
    releases
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "apiVersion": "upstartoperators.upstart.com/v1alpha1",
                "kind": "HelmRelease",
                "metadata": {"name": "web", "namespace": ns},
                "spec": {"chart": "test/app", "version": "0.1.0",
                         "values": {"message": "<< environment.variables.REGION >>"}}
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    eventually("web stalled without an environment", || async {
        let status = releases.get("web").await.ok()?.status?;
        let ready = status.conditions.iter().find(|c| c.type_ == "Ready")?;
        (ready.reason == "UnknownExpressionRoot").then_some(())
    })
    .await;

    namespaces
        .patch(
            ns,
            &PatchParams::default(),
            &Patch::Merge(
                json!({"metadata": {"labels": {upstart_api::labels::ENVIRONMENT_LABEL: ns}}}),
            ),
        )
        .await
        .unwrap();
    let config_maps: Api<ConfigMap> = Api::namespaced(h.client.clone(), ns);
    eventually("the variable in the values", || async {
        let settings = config_maps.get_opt("web-settings").await.unwrap()?;
        (settings.data?.get("message")? == "eu").then_some(())
    })
    .await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dependent_renders_ahead_while_its_dependency_installs_and_applies_without_a_helm_run() {
    // 1. An operator whose helm records every release it renders.
    let mut h = Harness::boot().await;
    let log = h.cluster.dir().join("helm-calls.log");
    let wrapper = h.cluster.dir().join("recording-helm");
    write(
        h.cluster.dir(),
        "recording-helm",
        &format!(
            "#!/bin/sh\necho \"$*\" >> '{}'\nexec '{}' \"$@\"\n",
            log.display(),
            upstart_test_support::helm().display()
        ),
    );
    std::fs::set_permissions(
        &wrapper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    h.run_operator(Config {
        helm_path: wrapper,
        ..h.config()
    });
    let renders_of = |release: &str| {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .filter(|line| line.contains(&format!(" -- {release} ")))
            .count()
    };

    // 2. A dependency that is applied (its output ConfigMap exists) but not Ready yet.
    h.create(
        "db",
        json!({
            "chart": "test/app",
            "version": "0.1.0",
            "values": {"message": "db.internal", "readyAfter": "1h"},
            "outputsFrom": [{"configMapRef": {"name": "db-settings"}}]
        }),
    )
    .await;
    h.create(
        "web",
        json!({
            "chart": "test/app",
            "version": "0.1.0",
            "dependencies": [{"name": "db"}],
            "values": {"message": "<< db.outputs.message >>"}
        }),
    )
    .await;

    // 3. The dependent renders with the published output while it waits, and applies nothing.
    eventually("web rendered ahead", || async {
        (renders_of("web") == 1).then_some(())
    })
    .await;
    let web = h.releases().get("web").await.unwrap();
    assert_eq!(
        web.status.and_then(|s| s.phase),
        Some(HelmReleasePhase::WaitingForDependencies)
    );
    let deployments: Api<Deployment> = Api::namespaced(h.client.clone(), NS);
    assert!(deployments.get_opt("web").await.unwrap().is_none());

    // 4. Once the dependency is Ready with the same output, the apply uses that render.
    h.releases()
        .patch(
            "db",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"values": {"readyAfter": "100ms"}}})),
        )
        .await
        .unwrap();
    h.ready("db").await;
    h.ready("web").await;
    assert!(deployments.get_opt("web").await.unwrap().is_some());
    assert_eq!(renders_of("web"), 1, "the apply ran no helm of its own");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_chart_version_is_applied_and_an_object_its_templates_dropped_is_pruned() {
    // 1. Version 0.1.0 installs a ConfigMap and a Deployment.
    let h = Harness::start().await;
    h.create("site", json!({"chart": "test/site", "version": "0.1.0"}))
        .await;
    let status = h.ready("site").await.status.unwrap();
    assert_eq!(status.version.as_deref(), Some("0.1.0"));
    let config_maps: Api<ConfigMap> = Api::namespaced(h.client.clone(), NS);
    assert!(
        config_maps
            .get_opt("site-settings")
            .await
            .unwrap()
            .is_some()
    );

    // 2. Version 0.2.0 no longer has the ConfigMap: applied, and the ConfigMap pruned.
    h.releases()
        .patch(
            "site",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"version": "^0.2"}})),
        )
        .await
        .unwrap();
    let release = h.ready("site").await;
    let status = release.status.unwrap();
    assert_eq!(status.version.as_deref(), Some("0.2.0"));
    let inventory: Vec<String> = status
        .inventory
        .iter()
        .map(|e| format!("{}/{}", e.kind, e.name))
        .collect();
    assert_eq!(inventory, ["Deployment/site"]);
    assert!(
        config_maps
            .get_opt("site-settings")
            .await
            .unwrap()
            .is_none()
    );
    let deployments: Api<Deployment> = Api::namespaced(h.client.clone(), NS);
    assert!(deployments.get_opt("site").await.unwrap().is_some());
    h.stop().await;
}
