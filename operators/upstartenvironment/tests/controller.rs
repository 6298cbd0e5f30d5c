//! The controller against the local control plane, with the real HelmRelease operator in
//! process for the releases (charts from a local HTTP chart repository, workloads made ready by
//! the simulator, helm from `$UPSTART_HELM`, else `.tools/bin/helm` at the workspace root, else
//! PATH). The UpstartService operator does not run here: where a test needs a service's
//! children or its readiness, the test plays that part by hand.

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
    _cluster: Cluster,
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
        test_logs();
        let cluster = Cluster::start(charts).await;
        cluster.create_namespace(CATALOG).await;
        let client = cluster.client.clone();
        let releases = RunningOperator::helmrelease(client.clone(), cluster.helmrelease_config());
        let config = Config {
            catalog_namespace: CATALOG.to_owned(),
            teardown_timeout,
        };
        let environments =
            RunningOperator::spawn("environment-operator", client.clone(), |op, shutdown| {
                controller::run(op, config, shutdown)
            });
        Harness {
            _cluster: cluster,
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
        // The HelmRelease operator does not stop when shut down before its first sync (a
        // kube-runtime Controller waits for that sync): give it the time to sync first.
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn environment_creates_its_labelled_namespace_services_from_templates_and_inline_and_its_releases()
 {
    let h = Harness::start().await;
    h.create_template(
        "web",
        json!({"helmReleases": {
            "db": {"chart": "test/app", "version": "0.1.0"},
            "frontEnd": {"chart": "test/app", "version": "0.1.0",
                         "values": {"tag": "main", "readyAfter": "100ms"}}
        }}),
    )
    .await;
    h.create_environment(
        "pr-1",
        json!({
            "helmReleases": {"launch-darkly": {"chart": "test/app", "version": "0.1.0"}},
            "services": [
                {"name": "web", "template": {"name": "web"},
                 "overrides": {"frontEnd": {"values": {"tag": "pr-1"}}}},
                {"name": "inline", "spec": {"helmReleases": {"cache": {"chart": "test/app"}}}},
                {"name": "off", "template": {"name": "web"}, "enabled": false}
            ]
        }),
    )
    .await;

    let env = h
        .environment_where("pr-1", "two services counted", |e| {
            e.status.as_ref().and_then(|s| s.services.as_deref()) == Some("0/2")
        })
        .await;
    let status = env.status.as_ref().unwrap();
    assert_eq!(status.phase, Some(EnvironmentPhase::Provisioning));
    assert_eq!(status.namespace.as_deref(), Some("pr-1"));
    assert_eq!(condition(&env, NAMESPACE_READY).0, "True");
    assert!(env.finalizers().iter().any(|f| f == FINALIZER));

    let namespace = h.namespaces().get("pr-1").await.unwrap();
    assert_eq!(namespace.labels()[ENVIRONMENT_LABEL], "pr-1");
    assert_eq!(namespace.owner_references()[0].uid, env.uid().unwrap());

    let web = h.services("pr-1").get("web").await.unwrap();
    assert_eq!(web.labels()[ENVIRONMENT_LABEL], "pr-1");
    assert_eq!(web.owner_references()[0].uid, env.uid().unwrap());
    assert_eq!(
        web.spec.helm_releases["frontEnd"].values,
        Some(json!({"tag": "pr-1", "readyAfter": "100ms"})),
        "the override is deep-merged into the template's values"
    );
    let inline = h.services("pr-1").get("inline").await.unwrap();
    assert_eq!(inline.spec.helm_releases["cache"].chart, "test/app");
    assert!(h.services("pr-1").get_opt("off").await.unwrap().is_none());

    let ld = h.release_ready("pr-1", "pr-1-launch-darkly").await;
    assert_eq!(ld.spec.release_name.as_deref(), Some("launch-darkly"));
    assert_eq!(ld.labels()[ENVIRONMENT_LABEL], "pr-1");

    // An override change touches only that service's spec.
    let web_generation = web.metadata.generation;
    let inline_generation = inline.metadata.generation;
    h.environments()
        .patch(
            "pr-1",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"services": [
                {"name": "web", "template": {"name": "web"},
                 "overrides": {"frontEnd": {"values": {"tag": "pr-2"}}}},
                {"name": "inline", "spec": {"helmReleases": {"cache": {"chart": "test/app"}}}},
                {"name": "off", "template": {"name": "web"}, "enabled": false}
            ]}})),
        )
        .await
        .unwrap();
    let web = eventually("the new override", || async {
        let web = h.services("pr-1").get("web").await.unwrap();
        (web.spec.helm_releases["frontEnd"].values
            == Some(json!({"tag": "pr-2", "readyAfter": "100ms"})))
        .then_some(web)
    })
    .await;
    assert_eq!(web.metadata.generation, web_generation.map(|g| g + 1));
    assert_eq!(
        web.spec.helm_releases["db"].values, None,
        "other releases of the service are unchanged"
    );
    let inline = h.services("pr-1").get("inline").await.unwrap();
    assert_eq!(inline.metadata.generation, inline_generation);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn existing_namespace_of_someone_else_is_refused_and_never_deleted() {
    let h = Harness::start().await;
    h.namespaces()
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "taken"}})).unwrap(),
        )
        .await
        .unwrap();
    h.create_environment(
        "intruder",
        json!({
            "namespace": "taken",
            "services": [{"name": "inline", "spec": {"helmReleases": {"cache": {"chart": "test/app"}}}}]
        }),
    )
    .await;
    let env = h.phase("intruder", EnvironmentPhase::Failed).await;
    let (status, reason, message) = condition(&env, NAMESPACE_READY);
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "NamespaceNotOwned")
    );
    assert!(message.contains("taken"), "{message}");
    assert_eq!(condition(&env, "Stalled").0, "True");
    assert!(
        h.services("taken")
            .get_opt("inline")
            .await
            .unwrap()
            .is_none()
    );
    let namespace = h.namespaces().get("taken").await.unwrap();
    assert!(
        namespace.labels().get(ENVIRONMENT_LABEL).is_none(),
        "not adopted"
    );

    h.environments()
        .delete("intruder", &DeleteParams::default())
        .await
        .unwrap();
    h.gone("intruder").await;
    let namespace = h.namespaces().get("taken").await.unwrap();
    assert!(namespace.metadata.deletion_timestamp.is_none());
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_template_is_reported_then_picked_up_when_the_catalog_gains_it() {
    let h = Harness::start().await;
    h.create_environment(
        "early",
        json!({"services": [
            {"name": "web", "template": {"name": "web"}},
            {"name": "inline", "spec": {"helmReleases": {"cache": {"chart": "test/app"}}}}
        ]}),
    )
    .await;
    let env = h.phase("early", EnvironmentPhase::Failed).await;
    let (status, reason, message) = condition(&env, READY);
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "TemplateNotFound")
    );
    assert!(message.contains("web"), "{message}");
    // The rest of the environment is there regardless.
    h.services("early").get("inline").await.unwrap();

    h.create_template(
        "web",
        json!({"helmReleases": {"db": {"chart": "test/app", "version": "0.1.0"}}}),
    )
    .await;
    // The catalog change wakes the environment (no periodic requeue is that fast).
    eventually("the service from the new template", || async {
        h.services("early").get_opt("web").await.unwrap()
    })
    .await;
    h.phase("early", EnvironmentPhase::Provisioning).await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn environment_becomes_ready_with_its_time_to_ready_and_the_slowest_chain_as_critical_path() {
    let h = Harness::start().await;
    h.create_environment(
        "fast",
        json!({
            "helmReleases": {
                "db": {"chart": "test/app", "version": "0.1.0", "values": {"readyAfter": "2s"}},
                "app": {"chart": "test/app", "version": "0.1.0", "values": {"readyAfter": "1s"},
                        "dependencies": [{"name": "db"}]},
                "flags": {"chart": "test/app", "version": "0.1.0"}
            },
            "services": [{"name": "web", "spec": {"helmReleases": {
                "site": {"chart": "test/app", "version": "0.1.0"}
            }}}]
        }),
    )
    .await;
    let children = h.create_children("fast", "web").await;
    assert_eq!(children, ["web-site"]);
    let app = h.release_ready("fast", "fast-app").await;
    assert_eq!(
        app.spec.dependencies[0].name, "fast-db",
        "a sibling key becomes the sibling's object name"
    );
    h.release_ready("fast", "web-site").await;
    let before = h.phase("fast", EnvironmentPhase::Provisioning).await;
    assert_eq!(
        before.status.as_ref().unwrap().services.as_deref(),
        Some("0/1")
    );
    h.mark_service_ready("fast", "web").await;

    let env = h.phase("fast", EnvironmentPhase::Ready).await;
    let status = env.status.clone().unwrap();
    assert_eq!(status.services.as_deref(), Some("1/1"));
    assert_eq!(
        (status.ready_releases, status.total_releases),
        (Some(4), Some(4))
    );
    assert!(status.ready_at.is_some());
    let time_to_ready = status.time_to_ready_seconds.unwrap();
    let path: Vec<&str> = status
        .critical_path
        .iter()
        .map(|s| s.release.as_str())
        .collect();
    assert_eq!(path, ["fast-db", "fast-app"]);
    let along_the_path: f64 = status
        .critical_path
        .iter()
        .map(|s| s.wait_seconds + s.install_seconds)
        .sum();
    // Timings are stored with whole seconds; time-to-ready is measured precisely.
    assert!(
        along_the_path <= time_to_ready + 1.0,
        "{along_the_path} along the path, {time_to_ready} to Ready"
    );
    assert!(time_to_ready >= 3.0, "{time_to_ready}");
    assert!(status.expires_at.is_none(), "no ttl, no expiry");
    let metrics = h.metrics.encode().unwrap();
    assert!(
        metrics.contains("upstart_environment_time_to_ready_seconds_count 1"),
        "{metrics}"
    );

    // Ready and nothing changing: no more status writes.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let later = h.environments().get("fast").await.unwrap();
    assert_eq!(later.status, env.status);
    assert_eq!(later.resource_version(), env.resource_version());

    // A service no longer Ready degrades the environment; readyAt stays the first time.
    let not_ready = json!({"status": {"phase": "Degraded", "conditions": [{
        "type": READY, "status": "False", "reason": "Progressing", "message": "site restarting",
        "observedGeneration": 1, "lastTransitionTime": "2026-01-01T00:00:01Z"
    }]}});
    h.services("fast")
        .patch_status("web", &PatchParams::default(), &Patch::Merge(&not_ready))
        .await
        .unwrap();
    let degraded = h.phase("fast", EnvironmentPhase::Degraded).await;
    let degraded_status = degraded.status.as_ref().unwrap();
    assert_eq!(degraded_status.services.as_deref(), Some("0/1"));
    assert_eq!(degraded_status.ready_at, status.ready_at);
    assert!(condition(&degraded, READY).2.contains("web"));
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn critical_path_names_a_release_applied_by_hand_that_held_a_dependent_back() {
    let h = Harness::start().await;
    h.create_environment(
        "handmade",
        json!({"helmReleases": {
            "app": {"chart": "test/app", "version": "0.1.0",
                    "dependencies": [{"name": "shared-db", "kind": "HelmRelease"}]},
            "quick": {"chart": "test/app", "version": "0.1.0"}
        }}),
    )
    .await;
    h.release_ready("handmade", "handmade-quick").await;
    h.phase("handmade", EnvironmentPhase::Provisioning).await;
    // The environment does not provide what app waits for; someone applies it by hand.
    let shared: HelmRelease = serde_json::from_value(json!({
        "apiVersion": "upstartoperators.upstart.com/v1alpha1",
        "kind": "HelmRelease",
        "metadata": {"name": "shared-db", "namespace": "handmade"},
        "spec": {"chart": "test/app", "version": "0.1.0", "values": {"readyAfter": "1s"}}
    }))
    .unwrap();
    h.releases("handmade")
        .create(&PostParams::default(), &shared)
        .await
        .unwrap();

    let env = h.phase("handmade", EnvironmentPhase::Ready).await;
    let path: Vec<&str> = env
        .status
        .as_ref()
        .unwrap()
        .critical_path
        .iter()
        .map(|s| s.release.as_str())
        .collect();
    assert_eq!(path, ["shared-db", "handmade-app"]);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_environment_deletes_everything_dependents_first() {
    let h = Harness::start().await;
    let deletions = record_deletions(&h.client, "short");
    h.create_environment(
        "short",
        json!({
            "ttl": "15s",
            "helmReleases": {
                "db": {"chart": "test/app", "version": "0.1.0"},
                "app": {"chart": "test/app", "version": "0.1.0", "dependencies": [{"name": "db"}]}
            },
            "services": [{"name": "front", "spec": {"helmReleases": {
                "site": {"chart": "test/app", "version": "0.1.0",
                         "dependencies": [{"name": "short-app", "kind": "HelmRelease"}]}
            }}}]
        }),
    )
    .await;
    h.create_children("short", "front").await;
    h.release_ready("short", "front-site").await;
    h.mark_service_ready("short", "front").await;
    let env = h.phase("short", EnvironmentPhase::Ready).await;
    let status = env.status.unwrap();
    let created = env.metadata.creation_timestamp.unwrap().0;
    assert_eq!(
        status.expires_at.map(|t| t.0),
        Some(created.checked_add(Duration::from_secs(15)).unwrap())
    );

    h.gone("short").await;
    eventually("the namespace to be gone", || async {
        h.namespaces()
            .get_opt("short")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    let order = deletions.lock().unwrap().clone();
    let front = position(&order, "UpstartService/front");
    let site = position(&order, "HelmRelease/front-site");
    let app = position(&order, "HelmRelease/short-app");
    let db = position(&order, "HelmRelease/short-db");
    assert!(front < app && site < app && app < db, "{order:?}");
    assert_eq!(h.expired_total(), "upstart_environments_expired_total 1");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn editing_the_ttl_moves_the_expiry_and_the_keep_annotation_suspends_it() {
    let h = Harness::start().await;
    h.create_environment_with(
        "kept",
        json!({KEEP_ANNOTATION: "true"}),
        json!({"ttl": "1s"}),
    )
    .await;
    let env = h.phase("kept", EnvironmentPhase::Ready).await;
    assert!(env.status.unwrap().expires_at.is_none());
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(h.environments().get_opt("kept").await.unwrap().is_some());

    h.environments()
        .patch(
            "kept",
            &PatchParams::default(),
            &Patch::Merge(json!({
                "metadata": {"annotations": {KEEP_ANNOTATION: null}},
                "spec": {"ttl": "1h"}
            })),
        )
        .await
        .unwrap();
    let env = h
        .environment_where("kept", "an expiry", |e| {
            e.status
                .as_ref()
                .and_then(|s| s.expires_at.as_ref())
                .is_some()
        })
        .await;
    let created = env.metadata.creation_timestamp.clone().unwrap().0;
    assert_eq!(
        env.status.unwrap().expires_at.unwrap().0,
        created.checked_add(Duration::from_secs(3600)).unwrap()
    );

    h.environments()
        .patch(
            "kept",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"ttl": "2h"}})),
        )
        .await
        .unwrap();
    h.environment_where("kept", "the expiry moved", |e| {
        e.status
            .as_ref()
            .and_then(|s| s.expires_at.as_ref())
            .map(|t| t.0)
            == created.checked_add(Duration::from_secs(7200)).ok()
    })
    .await;

    // Shortened into the past: the environment goes at once.
    h.environments()
        .patch(
            "kept",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"ttl": "1s"}})),
        )
        .await
        .unwrap();
    h.gone("kept").await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletion_while_still_provisioning_finishes() {
    let h = Harness::start().await;
    h.create_environment(
        "hasty",
        json!({
            "helmReleases": {
                "slow": {"chart": "test/app", "version": "0.1.0", "values": {"readyAfter": "30s"}},
                "after": {"chart": "test/app", "version": "0.1.0", "dependencies": [{"name": "slow"}]}
            },
            "services": [{"name": "web", "spec": {"helmReleases": {"site": {"chart": "test/app"}}}}]
        }),
    )
    .await;
    eventually("the slow release installing", || async {
        let release = h.releases("hasty").get_opt("hasty-slow").await.unwrap()?;
        release.status?.inventory.first().map(|_| ())
    })
    .await;
    h.environments()
        .delete("hasty", &DeleteParams::default())
        .await
        .unwrap();
    h.phase("hasty", EnvironmentPhase::Deleting).await;
    h.gone("hasty").await;
    assert!(h.namespaces().get_opt("hasty").await.unwrap().is_none());
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn teardown_gives_up_waiting_after_the_timeout_and_says_so() {
    let h = Harness::with_teardown_timeout(Duration::from_secs(2)).await;
    h.create_environment(
        "stuck",
        json!({"services": [{"name": "web", "spec": {"helmReleases": {"site": {"chart": "test/app"}}}}]}),
    )
    .await;
    h.phase("stuck", EnvironmentPhase::Provisioning).await;
    // A finalizer nobody removes keeps the service from ever going away.
    h.services("stuck")
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": ["example.com/never"]}})),
        )
        .await
        .unwrap();
    let started = Instant::now();
    h.environments()
        .delete("stuck", &DeleteParams::default())
        .await
        .unwrap();
    h.gone("stuck").await;
    assert!(started.elapsed() >= Duration::from_secs(1), "it did wait");
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::all(h.client.clone());
    let events = events.list(&Default::default()).await.unwrap();
    assert!(
        events
            .items
            .iter()
            .any(|e| e.reason.as_deref() == Some("TeardownTimeout")),
        "an Event says the teardown gave up waiting"
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_a_service_tears_it_down_before_its_releases_and_keeps_the_others() {
    let h = Harness::start().await;
    h.create_environment(
        "trim",
        json!({"services": [
            {"name": "keep", "spec": {"helmReleases": {"a": {"chart": "test/app"}}}},
            {"name": "drop", "spec": {"helmReleases": {"b": {"chart": "test/app"}}}}
        ]}),
    )
    .await;
    h.create_children("trim", "drop").await;
    h.release_ready("trim", "drop-b").await;
    // Plays the service operator's finalizer: the service stays until the test lets it go.
    let hold = json!({"metadata": {"finalizers": ["test.upstart.dev/hold"]}});
    h.services("trim")
        .patch("drop", &PatchParams::default(), &Patch::Merge(&hold))
        .await
        .unwrap();
    h.environments()
        .patch(
            "trim",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"services": [
                {"name": "keep", "spec": {"helmReleases": {"a": {"chart": "test/app"}}}}
            ]}})),
        )
        .await
        .unwrap();
    eventually("drop to be deleted", || async {
        let service = h.services("trim").get("drop").await.unwrap();
        service.metadata.deletion_timestamp.map(|_| ())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let release = h.releases("trim").get("drop-b").await.unwrap();
    assert!(
        release.metadata.deletion_timestamp.is_none(),
        "the release waits for its service to go first"
    );
    h.services("trim")
        .patch(
            "drop",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": null}})),
        )
        .await
        .unwrap();
    eventually("drop and its release to be gone", || async {
        let service = h.services("trim").get_opt("drop").await.unwrap();
        let release = h.releases("trim").get_opt("drop-b").await.unwrap();
        (service.is_none() && release.is_none()).then_some(())
    })
    .await;
    assert!(h.services("trim").get_opt("keep").await.unwrap().is_some());
    let env = h
        .environment_where("trim", "one service counted", |e| {
            e.status.as_ref().and_then(|s| s.services.as_deref()) == Some("0/1")
        })
        .await;
    assert_eq!(env.status.unwrap().total_releases, Some(1));
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_shut_down_before_its_first_sync_stops_at_once() {
    let cp = ControlPlane::start(upstart_control_plane::Options::default());
    let client = cp.client();
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in upstart_api::crd::crds() {
        crds.create(&PostParams::default(), &crd).await.unwrap();
    }
    let op = OperatorContext::new("environment-operator", client, CommonArgs::default());
    let shutdown = Shutdown::new();
    shutdown.trigger();
    let run =
        upstart_operator_runtime::run(op, RunOptions::in_process(), shutdown, |op, shutdown| {
            controller::run(op, Config::default(), shutdown)
        });
    tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .expect("stops without waiting for a sync that will never come")
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_an_environment_release_deletes_it_and_keeps_the_others() {
    let h = Harness::start().await;
    h.create_environment(
        "lean",
        json!({"helmReleases": {
            "kept": {"chart": "test/app", "version": "0.1.0"},
            "extra": {"chart": "test/app", "version": "0.1.0"}
        }}),
    )
    .await;
    h.phase("lean", EnvironmentPhase::Ready).await;
    h.environments()
        .patch(
            "lean",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"helmReleases": {"extra": null}}})),
        )
        .await
        .unwrap();
    eventually("lean-extra to be gone", || async {
        h.releases("lean")
            .get_opt("lean-extra")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    let env = h
        .environment_where("lean", "one release counted", |e| {
            e.status.as_ref().and_then(|s| s.total_releases) == Some(1)
        })
        .await;
    assert_eq!(env.status.unwrap().phase, Some(EnvironmentPhase::Ready));
    assert!(
        h.releases("lean")
            .get_opt("lean-kept")
            .await
            .unwrap()
            .is_some()
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabling_a_service_others_depend_on_is_refused_and_enabling_it_again_clears_that_at_once()
{
    let h = Harness::start().await;
    let spec = |db: bool, app: bool| {
        json!({"services": [
            {"name": "db", "enabled": db,
             "spec": {"helmReleases": {"pg": {"chart": "test/app"}}}},
            {"name": "app", "enabled": app,
             "spec": {"helmReleases": {"api": {"chart": "test/app",
                "dependencies": [{"name": "db", "kind": "UpstartService"}]}}}}
        ]})
    };
    let set = |db: bool, app: bool| {
        let patch = json!({"spec": spec(db, app)});
        let api = h.environments();
        async move {
            api.patch("dis", &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .unwrap();
        }
    };
    h.create_environment("dis", spec(true, true)).await;
    h.create_children("dis", "db").await;
    h.create_children("dis", "app").await;
    let pg = h.release_ready("dis", "db-pg").await;

    set(false, true).await;
    let env = h
        .environment_where("dis", "the disabling refused", |e| {
            e.status
                .as_ref()
                .and_then(|s| find(&s.conditions, "Stalled"))
                .is_some_and(|c| c.status == "True" && c.reason == "StillDependedOn")
        })
        .await;
    let (_, _, message) = condition(&env, "Stalled");
    assert!(
        message.contains("service db") && message.contains("app/api"),
        "names the service and what depends on it: {message}"
    );
    // Nothing was torn down: the dependent keeps what it runs on.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let db = h.services("dis").get("db").await.unwrap();
    assert!(db.metadata.deletion_timestamp.is_none());
    let live_pg = h.releases("dis").get("db-pg").await.unwrap();
    assert!(live_pg.metadata.deletion_timestamp.is_none());
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::all(h.client.clone());
    let events = events.list(&Default::default()).await.unwrap();
    assert!(
        events.items.iter().any(|e| {
            e.reason.as_deref() == Some("StillDependedOn")
                && e.note.as_deref().is_some_and(|n| n.contains("app/api"))
        }),
        "an Event names the dependents"
    );

    // Enabled again: nothing to wait for, the same release is kept.
    let started = Instant::now();
    set(true, true).await;
    h.environment_where("dis", "no longer stalled", |e| {
        e.status
            .as_ref()
            .and_then(|s| find(&s.conditions, "Stalled"))
            .is_some_and(|c| c.status == "False")
    })
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "at once, not after a teardown timeout"
    );
    let live_pg = h.releases("dis").get("db-pg").await.unwrap();
    assert_eq!(live_pg.uid(), pg.uid(), "the release was kept");

    // Disabled together with its dependent: both go, the dependent first.
    let deleted = record_deletions(&h.client, "dis");
    set(false, false).await;
    eventually("db and app and their releases to be gone", || async {
        let services = h.services("dis").list(&Default::default()).await.unwrap();
        let releases = h.releases("dis").list(&Default::default()).await.unwrap();
        (services.items.is_empty() && releases.items.is_empty()).then_some(())
    })
    .await;
    let order = deleted.lock().unwrap().clone();
    assert!(
        position(&order, "HelmRelease/app-api") < position(&order, "HelmRelease/db-pg"),
        "{order:?}"
    );
    h.stop().await;
}
