//! The controller against the local control plane, with the real HelmRelease operator in
//! process for the releases (charts from a local HTTP chart repository, workloads made ready by
//! the simulator, helm from `$UPSTART_HELM`, else `.tools/bin/helm` at the workspace root, else
//! PATH). The UpstartService operator does not run here: where a test needs a service's
//! children or its readiness, the test plays that part by hand.
//!
//! One test binary (linked once), its tests by behaviour in the modules declared below; this
//! file is their shared harness: the `app` chart, [`Harness`], the waits and the recorder of
//! deletions.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails by panicking"
)]

use std::collections::BTreeMap;
use std::future::Future;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::json;
use upstart_api::conditions::{READY, find, is_ready_for_generation};
use upstart_api::labels::{ENVIRONMENT_LABEL, KEEP_ANNOTATION, SERVICE_LABEL};
use upstart_api::names::{child_name, kebab_case};
use upstart_api::v1alpha1::{EnvironmentPhase, HelmRelease, UpstartEnvironment, UpstartService};
use upstart_control_plane::ControlPlane;
use upstart_environment_operator::constants::{FINALIZER, NAMESPACE_READY};
use upstart_environment_operator::controller::{self, Config};
use upstart_operator_runtime::{CommonArgs, Metrics, OperatorContext, RunOptions, Shutdown};
use upstart_test_support::operators::{Cluster, RunningOperator, object_where, test_logs, write};

const WAIT: Duration = Duration::from_secs(60);
const CATALOG: &str = "upstart-catalog";

mod catalog;
mod expiry;
mod jobs_and_switches;
mod provisioning;
mod readiness;
mod shutdown;
mod sleep_and_quotas;
mod spec_changes;
mod teardown;
mod who_and_where;

/// `app`: a ConfigMap and a Deployment that the simulator makes available after
/// `.Values.readyAfter`.
fn charts(root: &Path) {
    write(
        root,
        "app/Chart.yaml",
        "apiVersion: v2\nname: app\nversion: 0.1.0\n",
    );
    write(
        root,
        "app/templates/configmap.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-settings\ndata:\n  tag: {{ .Values.tag | default \"none\" | quote }}\n",
    );
    write(
        root,
        "app/templates/deployment.yaml",
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}
  annotations:
    simulator.upstart.dev/ready-after: {{ .Values.readyAfter | default "100ms" }}
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
          image: example/app:{{ .Values.tag | default "1" }}
"#,
    );
}

struct Harness {
    cluster: Cluster,
    client: Client,
    /// The environment operator's metrics.
    metrics: Metrics,
    /// The HelmRelease operator, then the environment operator.
    operators: Vec<RunningOperator>,
}

impl Harness {
    async fn start() -> Harness {
        Harness::with_teardown_timeout(Duration::from_secs(60)).await
    }

    async fn with_teardown_timeout(teardown_timeout: Duration) -> Harness {
        Harness::with_config(|config| config.teardown_timeout = teardown_timeout).await
    }

    /// The environment operator configured by `configure` (over the tests' defaults).
    async fn with_config(configure: impl FnOnce(&mut Config)) -> Harness {
        test_logs();
        let cluster = Cluster::start(charts).await;
        cluster.create_namespace(CATALOG).await;
        let client = cluster.client.clone();
        let releases = RunningOperator::helmrelease(client.clone(), cluster.helmrelease_config());
        let mut config = Config {
            catalog_namespace: CATALOG.to_owned(),
            teardown_timeout: Duration::from_secs(60),
            ..Config::default()
        };
        configure(&mut config);
        let environments =
            RunningOperator::spawn("environment-operator", client.clone(), |op, shutdown| {
                controller::run(op, config, shutdown)
            });
        Harness {
            cluster,
            client,
            metrics: environments.metrics.clone(),
            operators: vec![releases, environments],
        }
    }

    fn environments(&self) -> Api<UpstartEnvironment> {
        Api::all(self.client.clone())
    }

    fn services(&self, namespace: &str) -> Api<UpstartService> {
        Api::namespaced(self.client.clone(), namespace)
    }

    fn releases(&self, namespace: &str) -> Api<HelmRelease> {
        Api::namespaced(self.client.clone(), namespace)
    }

    fn namespaces(&self) -> Api<Namespace> {
        Api::all(self.client.clone())
    }

    async fn create_environment(&self, name: &str, spec: serde_json::Value) {
        self.create_environment_with(name, json!({}), spec).await;
    }

    async fn create_environment_with(
        &self,
        name: &str,
        annotations: serde_json::Value,
        spec: serde_json::Value,
    ) {
        let env: UpstartEnvironment = serde_json::from_value(json!({
            "apiVersion": "upstartoperators.upstart.com/v1alpha1",
            "kind": "UpstartEnvironment",
            "metadata": {"name": name, "annotations": annotations},
            "spec": spec
        }))
        .unwrap();
        self.environments()
            .create(&PostParams::default(), &env)
            .await
            .unwrap();
    }

    async fn create_template(&self, name: &str, spec: serde_json::Value) {
        let service: UpstartService = serde_json::from_value(json!({
            "apiVersion": "upstartoperators.upstart.com/v1alpha1",
            "kind": "UpstartService",
            "metadata": {"name": name, "namespace": CATALOG},
            "spec": spec
        }))
        .unwrap();
        self.services(CATALOG)
            .create(&PostParams::default(), &service)
            .await
            .unwrap();
    }

    async fn environment_where(
        &self,
        name: &str,
        what: &str,
        check: impl Fn(&UpstartEnvironment) -> bool,
    ) -> UpstartEnvironment {
        object_where(&self.environments(), name, WAIT, what, check).await
    }

    async fn phase(&self, name: &str, phase: EnvironmentPhase) -> UpstartEnvironment {
        self.environment_where(name, &format!("phase {phase:?}"), |e| {
            e.status.as_ref().and_then(|s| s.phase) == Some(phase)
        })
        .await
    }

    async fn gone(&self, name: &str) {
        let api = self.environments();
        eventually(&format!("{name} to be gone"), || async {
            api.get_opt(name).await.unwrap().is_none().then_some(())
        })
        .await;
    }

    /// Plays the UpstartService operator for one service: its children, created from its
    /// spec and owned by it.
    async fn create_children(&self, namespace: &str, service: &str) -> Vec<String> {
        let live = eventually(&format!("service {service}"), || async {
            self.services(namespace).get_opt(service).await.unwrap()
        })
        .await;
        let mut names = Vec::new();
        for (key, spec) in &live.spec.helm_releases {
            let name = child_name(service, key);
            let mut spec = spec.clone();
            spec.release_name.get_or_insert_with(|| kebab_case(key));
            let release = HelmRelease {
                metadata: kube::api::ObjectMeta {
                    name: Some(name.clone()),
                    namespace: Some(namespace.to_owned()),
                    labels: Some(BTreeMap::from([(
                        SERVICE_LABEL.to_owned(),
                        service.to_owned(),
                    )])),
                    owner_references: Some(vec![live.controller_owner_ref(&()).unwrap()]),
                    ..Default::default()
                },
                spec,
                status: None,
            };
            self.releases(namespace)
                .create(&PostParams::default(), &release)
                .await
                .unwrap();
            names.push(name);
        }
        names
    }

    /// Plays the UpstartService operator's status: Ready for its current generation.
    async fn mark_service_ready(&self, namespace: &str, service: &str) {
        let api = self.services(namespace);
        let live = api.get(service).await.unwrap();
        let status = json!({"status": {
            "observedGeneration": live.metadata.generation,
            "phase": "Ready",
            "conditions": [{
                "type": READY, "status": "True", "reason": "Succeeded", "message": "",
                "observedGeneration": live.metadata.generation,
                "lastTransitionTime": "2026-01-01T00:00:00Z"
            }]
        }});
        api.patch_status(service, &PatchParams::default(), &Patch::Merge(&status))
            .await
            .unwrap();
    }

    async fn release_ready(&self, namespace: &str, name: &str) -> HelmRelease {
        let api = self.releases(namespace);
        eventually(&format!("release {name} Ready"), || async {
            let release = api.get_opt(name).await.unwrap()?;
            let status = release.status.as_ref()?;
            is_ready_for_generation(&status.conditions, release.metadata.generation)
                .then_some(release)
        })
        .await
    }

    fn expired_total(&self) -> String {
        let text = self.metrics.encode().unwrap();
        text.lines()
            .find(|l| l.starts_with("upstart_environments_expired_total "))
            .unwrap_or_default()
            .to_owned()
    }

    async fn stop(self) {
        // Stopped once synced, as in a real run (a stop before the first sync skips the
        // graceful shutdown): give the operators the time to sync first.
        for operator in &self.operators {
            eventually("the operators to be ready", || async {
                operator.readiness.is_ready().then_some(())
            })
            .await;
        }
        for operator in &self.operators {
            operator.trigger_stop();
        }
        for operator in self.operators {
            // Generous: on this 2-core machine other builds may be competing for the CPU.
            operator.join(Duration::from_secs(30)).await;
        }
    }
}

/// Polls `check` until it gives a value, for up to [`WAIT`].
async fn eventually<T, Fut>(what: &str, check: impl FnMut() -> Fut) -> T
where
    Fut: Future<Output = Option<T>>,
{
    upstart_test_support::operators::eventually(WAIT, what, check).await
}

fn condition(env: &UpstartEnvironment, type_: &str) -> (String, String, String) {
    let c = find(&env.status.as_ref().unwrap().conditions, type_).expect("condition present");
    (c.status.clone(), c.reason.clone(), c.message.clone())
}

/// Records, in order, the first time each service and release of `namespace` is seen being
/// deleted (a deletionTimestamp, or gone).
fn record_deletions(client: &Client, namespace: &str) -> Arc<Mutex<Vec<String>>> {
    let seen = Arc::new(Mutex::new(Vec::<String>::new()));
    let record = |seen: Arc<Mutex<Vec<String>>>, id: String| {
        let mut seen = seen.lock().unwrap();
        if !seen.contains(&id) {
            seen.push(id);
        }
    };
    let services = watcher(
        Api::<UpstartService>::namespaced(client.clone(), namespace),
        watcher::Config::default(),
    )
    .default_backoff()
    .map(|e| {
        e.ok().and_then(|e| match e {
            watcher::Event::Apply(s) if s.metadata.deletion_timestamp.is_some() => {
                Some(format!("UpstartService/{}", s.name_any()))
            }
            watcher::Event::Delete(s) => Some(format!("UpstartService/{}", s.name_any())),
            _ => None,
        })
    });
    let releases = watcher(
        Api::<HelmRelease>::namespaced(client.clone(), namespace),
        watcher::Config::default(),
    )
    .default_backoff()
    .map(|e| {
        e.ok().and_then(|e| match e {
            watcher::Event::Apply(r) if r.metadata.deletion_timestamp.is_some() => {
                Some(format!("HelmRelease/{}", r.name_any()))
            }
            watcher::Event::Delete(r) => Some(format!("HelmRelease/{}", r.name_any())),
            _ => None,
        })
    });
    let into = seen.clone();
    tokio::spawn(async move {
        let mut events = futures::stream::select(services, releases).boxed();
        while let Some(event) = events.next().await {
            if let Some(id) = event {
                record(into.clone(), id);
            }
        }
    });
    seen
}

fn position(order: &[String], id: &str) -> usize {
    order
        .iter()
        .position(|o| o == id)
        .unwrap_or_else(|| panic!("{id} was never deleted; deleted: {order:?}"))
}
