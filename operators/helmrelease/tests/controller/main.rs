//! The controller against the local control plane: charts from a local HTTP chart repository,
//! workloads made ready by the simulator, helm from `$UPSTART_HELM`, else `.tools/bin/helm`
//! at the workspace root, else PATH (a missing helm fails these tests).
//!
//! One test binary (linked once), its tests by behaviour in the modules declared below; this
//! file is their shared harness: the charts, [`Harness`], the captured logs and the waits.

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

mod confinement;
mod crds;
mod deletion;
mod dependencies;
mod drift;
mod expressions;
mod hooks;
mod install;
mod lookup;
mod outage;
mod parity;
mod published;
mod restarts;
mod secrets;
mod sources;

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
    parity::charts(root);
    lookup::charts(root);
    confinement::charts(root);
    restarts::charts(root);
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
    // A CRD in the chart's crds/ directory (Helm: created first, never updated or deleted)
    // and an instance of it in templates/.
    write(
        root,
        "gadgets/Chart.yaml",
        "apiVersion: v2\nname: gadgets\nversion: 0.1.0\n",
    );
    write(
        root,
        "gadgets/crds/gadgets.yaml",
        r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: gadgets.example.com
spec:
  group: example.com
  names: {kind: Gadget, plural: gadgets, singular: gadget, listKind: GadgetList}
  scope: Namespaced
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          x-kubernetes-preserve-unknown-fields: true
"#,
    );
    write(
        root,
        "gadgets/templates/gadget.yaml",
        "apiVersion: example.com/v1\nkind: Gadget\nmetadata:\n  name: {{ .Release.Name }}\nspec:\n  size: {{ .Values.size | default 1 }}\n",
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

    /// Deletes a release and waits until it is gone (its finalizer removed).
    async fn delete(&self, name: &str) {
        let api = self.releases();
        api.delete(name, &DeleteParams::default()).await.unwrap();
        eventually(&format!("release {name} to disappear"), || async {
            api.get_opt(name).await.unwrap().is_none().then_some(())
        })
        .await;
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
/// Waits for an Event in the test namespace with `reason` whose note mentions `about`.
async fn event_with_reason(client: &Client, reason: &str, about: &str) {
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), NS);
    eventually(&format!("a {reason} Event naming {about}"), || async {
        events
            .list(&Default::default())
            .await
            .ok()?
            .items
            .into_iter()
            .find(|e| {
                e.reason.as_deref() == Some(reason)
                    && e.note.as_deref().is_some_and(|n| n.contains(about))
            })
    })
    .await;
}

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
