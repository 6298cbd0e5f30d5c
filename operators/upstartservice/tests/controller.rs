//! The UpstartService operator against the local control plane, with the real HelmRelease
//! operator running beside it: charts from a local HTTP chart repository, workloads made ready
//! by the simulator, helm from `$UPSTART_HELM`, else `.tools/bin/helm` at the workspace root,
//! else PATH (a missing helm fails these tests).

#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

use std::future::Future;
use std::path::Path;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};
use upstart_api::conditions::{READY, STALLED, VALID, find, is_ready_for_generation};
use upstart_api::labels::{RELEASE_KEY_LABEL, SERVICE_LABEL};
use upstart_api::v1alpha1::{HelmRelease, ServicePhase, UpstartService};
use upstart_control_plane::{Fault, Verb};
use upstart_service_operator::constants::DEPENDENCIES_RESOLVED;
use upstart_test_support::operators::{Cluster, RunningOperator, object_where, test_logs, write};

const WAIT: Duration = Duration::from_secs(90);
const NS: &str = "default";
const CATALOG: &str = "upstart-catalog";

/// `app`: a Deployment whose env is `.Values.env`, and, when `.Values.outputs` is set, a
/// ConfigMap publishing it. `producer`: a Secret `<release>-creds` publishing `PASSWORD`.
/// `fixed`: a ConfigMap named `.Values.name`, whatever the release.
fn charts(root: &Path) {
    write(
        root,
        "fixed/Chart.yaml",
        "apiVersion: v2\nname: fixed\nversion: 0.1.0\n",
    );
    write(
        root,
        "fixed/templates/configmap.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Values.name }}\ndata:\n  owner: {{ .Release.Name | quote }}\n",
    );
    write(
        root,
        "app/Chart.yaml",
        "apiVersion: v2\nname: app\nversion: 0.1.0\n",
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
          {{- range $name, $value := .Values.env }}
            - name: {{ $name }}
              value: {{ $value | quote }}
          {{- end }}
"#,
    );
    write(
        root,
        "app/templates/outputs.yaml",
        r#"{{- if .Values.outputs }}
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-outputs
data:
  {{- range $name, $value := .Values.outputs }}
  {{ $name }}: {{ $value | quote }}
  {{- end }}
{{- end }}
"#,
    );
    write(
        root,
        "producer/Chart.yaml",
        "apiVersion: v2\nname: producer\nversion: 0.1.0\n",
    );
    write(
        root,
        "producer/templates/secret.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {{ .Release.Name }}-creds\ndata:\n  PASSWORD: {{ .Values.password | default \"changeme\" | b64enc | quote }}\n",
    );
}

struct Harness {
    cluster: Cluster,
    client: Client,
    operators: Vec<RunningOperator>,
    /// The service operator's metrics.
    metrics: upstart_operator_runtime::Metrics,
}

impl Harness {
    async fn start() -> Harness {
        test_logs();
        let cluster = Cluster::start(charts).await;
        cluster.create_namespace(CATALOG).await;
        let client = cluster.client.clone();
        let releases = RunningOperator::helmrelease(client.clone(), cluster.helmrelease_config());
        let services =
            RunningOperator::spawn("service-operator", client.clone(), |op, shutdown| {
                upstart_service_operator::controller::run(
                    op,
                    upstart_service_operator::controller::Config::default(),
                    shutdown,
                )
            });
        Harness {
            cluster,
            client,
            metrics: services.metrics.clone(),
            operators: vec![releases, services],
        }
    }

    fn services(&self, namespace: &str) -> Api<UpstartService> {
        Api::namespaced(self.client.clone(), namespace)
    }

    fn releases(&self, namespace: &str) -> Api<HelmRelease> {
        Api::namespaced(self.client.clone(), namespace)
    }

    async fn create_service(&self, namespace: &str, name: &str, releases: Value) {
        let service: UpstartService = serde_json::from_value(json!({
            "apiVersion": "upstartoperators.upstart.com/v1alpha1",
            "kind": "UpstartService",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"helmReleases": releases}
        }))
        .unwrap();
        self.services(namespace)
            .create(&PostParams::default(), &service)
            .await
            .unwrap();
    }

    async fn create_release(&self, name: &str, spec: Value) {
        let release: HelmRelease = serde_json::from_value(json!({
            "apiVersion": "upstartoperators.upstart.com/v1alpha1",
            "kind": "HelmRelease",
            "metadata": {"name": name, "namespace": NS},
            "spec": spec
        }))
        .unwrap();
        self.releases(NS)
            .create(&PostParams::default(), &release)
            .await
            .unwrap();
    }

    /// The service once `check` holds for its status, for its current generation.
    async fn service_where(
        &self,
        namespace: &str,
        name: &str,
        what: &str,
        check: impl Fn(&UpstartService) -> bool,
    ) -> UpstartService {
        object_where(&self.services(namespace), name, WAIT, what, |service| {
            service.status.as_ref().and_then(|s| s.observed_generation)
                == service.metadata.generation
                && check(service)
        })
        .await
    }

    async fn ready_service(&self, namespace: &str, name: &str) -> UpstartService {
        self.service_where(namespace, name, "Ready", |s| {
            is_ready_for_generation(
                &s.status.as_ref().unwrap().conditions,
                s.metadata.generation,
            )
        })
        .await
    }

    async fn stop(self) {
        for operator in self.operators {
            operator.stop(Duration::from_secs(10)).await;
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

fn condition(service: &UpstartService, type_: &str) -> (String, String, String) {
    let c = find(&service.status.as_ref().unwrap().conditions, type_)
        .unwrap_or_else(|| panic!("{type_} condition present"));
    (c.status.clone(), c.reason.clone(), c.message.clone())
}

fn env(deployment: &Deployment, name: &str) -> Option<String> {
    deployment.spec.as_ref()?.template.spec.as_ref()?.containers[0]
        .env
        .as_ref()?
        .iter()
        .find(|e| e.name == name)?
        .value
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn releases_become_ready_in_dependency_order_and_the_service_reports_ready() {
    let h = Harness::start().await;
    h.create_service(
        NS,
        "shop",
        json!({
            "db": {
                "chart": "test/producer", "version": "0.1.0",
                "values": {"password": "s3cr3t-pw"},
                "outputsFrom": [{"secretRef": {"name": "db-creds"}}]
            },
            "webFrontend": {
                "chart": "test/app", "version": "0.1.0",
                "dependencies": [{"name": "db"}],
                "values": {
                    "env": {"PASSWORD": "<< db.outputs.PASSWORD >>"},
                    "outputs": {"url": "http://web-frontend"}
                },
                "outputsFrom": [{"configMapRef": {"name": "web-frontend-outputs"}, "scope": "external"}]
            }
        }),
    )
    .await;
    let service = h.ready_service(NS, "shop").await;
    let status = service.status.clone().unwrap();
    assert_eq!(status.phase, Some(ServicePhase::Ready));
    assert_eq!(status.releases.as_deref(), Some("2/2"));
    assert_eq!(
        (status.ready_releases, status.total_releases),
        (Some(2), Some(2))
    );
    assert!(status.ready_at.is_some());
    assert_eq!(status.blocked_by, None);
    assert_eq!(status.exported_outputs, ["url"]);
    assert_eq!(
        status.release_statuses["webFrontend"].name,
        "shop-web-frontend"
    );
    assert!(status.release_statuses.values().all(|r| r.ready));

    // The children: labelled, owned, with the release name and concrete dependencies.
    let web = h.releases(NS).get("shop-web-frontend").await.unwrap();
    assert_eq!(web.labels()[SERVICE_LABEL], "shop");
    assert_eq!(web.labels()[RELEASE_KEY_LABEL], "webFrontend");
    assert_eq!(web.owner_references()[0].uid, service.uid().unwrap());
    assert_eq!(web.spec.release_name.as_deref(), Some("web-frontend"));
    assert_eq!(
        serde_json::to_value(&web.spec.dependencies).unwrap(),
        json!([{"name": "shop-db", "kind": "HelmRelease", "as": "db"}])
    );
    // Wired: the dependency's output reached the dependent's workload.
    let deployment: Deployment = Api::namespaced(h.client.clone(), NS)
        .get("web-frontend")
        .await
        .unwrap();
    assert_eq!(env(&deployment, "PASSWORD").as_deref(), Some("s3cr3t-pw"));

    // In dependency order: the dependent started applying only once its dependency was Ready.
    let db = h.releases(NS).get("shop-db").await.unwrap();
    let db_ready = db.status.unwrap().timings.unwrap().ready_at.unwrap();
    let web_started = web.status.unwrap().timings.unwrap().started_at.unwrap();
    assert!(
        db_ready.0 <= web_started.0,
        "{db_ready:?} > {web_started:?}"
    );

    // Nothing in status holds a value.
    let text = serde_json::to_string(&status).unwrap();
    assert!(!text.contains("s3cr3t-pw") && !text.contains("http://web-frontend"));

    // Settled: nothing is rewritten, neither the service nor its children (a rewrite would
    // wake the other and loop).
    let versions = |service: &UpstartService, children: &[HelmRelease]| {
        let mut versions = vec![service.resource_version()];
        versions.extend(children.iter().map(|c| c.resource_version()));
        versions
    };
    let children = || async {
        h.releases(NS)
            .list(&ListParams::default().labels(&format!("{SERVICE_LABEL}=shop")))
            .await
            .unwrap()
            .items
    };
    let before = versions(&service, &children().await);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let again = h.services(NS).get("shop").await.unwrap();
    assert_eq!(
        versions(&again, &children().await),
        before,
        "a settled service is not rewritten"
    );
    let metrics = h.metrics.encode().unwrap();
    assert!(
        metrics.contains("upstart_reconciles_total{controller=\"upstartservice\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("upstart_upstartservices{phase=\"Ready\"}"),
        "{metrics}"
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_dependency_waits_is_reported_and_proceeds_once_it_is_created() {
    let h = Harness::start().await;
    h.create_service(
        NS,
        "late",
        json!({"app": {
            "chart": "test/app", "version": "0.1.0",
            "dependencies": [{"name": "launch-darkly", "as": "ld"}],
            "values": {"env": {"LD": "<< ld.outputs.url >>"}}
        }}),
    )
    .await;
    let waiting = h
        .service_where(NS, "late", "an unresolved dependency", |s| {
            find(
                &s.status.as_ref().unwrap().conditions,
                DEPENDENCIES_RESOLVED,
            )
            .is_some_and(|c| c.status == "False")
        })
        .await;
    let (_, reason, message) = condition(&waiting, DEPENDENCIES_RESOLVED);
    assert_eq!(reason, "UnknownDependency");
    assert!(
        message.contains("release app") && message.contains("launch-darkly"),
        "{message}"
    );
    assert_eq!(
        condition(&waiting, STALLED).0,
        "False",
        "a wait, not a stall"
    );
    // The child exists and waits, its dependency kept as written.
    let child = eventually("the child to wait for its dependency", || async {
        let child = h.releases(NS).get_opt("late-app").await.unwrap()?;
        (child.status.as_ref()?.phase?.as_str() == "WaitingForDependencies").then_some(child)
    })
    .await;
    assert_eq!(
        serde_json::to_value(&child.spec.dependencies).unwrap(),
        json!([{"name": "launch-darkly", "as": "ld"}])
    );

    h.create_release(
        "launch-darkly",
        json!({
            "chart": "test/app", "version": "0.1.0",
            "values": {"outputs": {"url": "https://ld.example"}},
            "outputsFrom": [{"configMapRef": {"name": "launch-darkly-outputs"}}]
        }),
    )
    .await;
    let service = h.ready_service(NS, "late").await;
    assert_eq!(condition(&service, DEPENDENCIES_RESOLVED).0, "True");
    let child = h.releases(NS).get("late-app").await.unwrap();
    assert_eq!(
        serde_json::to_value(&child.spec.dependencies).unwrap(),
        json!([{"name": "launch-darkly", "kind": "HelmRelease", "as": "ld"}])
    );
    let deployment: Deployment = Api::namespaced(h.client.clone(), NS)
        .get("app")
        .await
        .unwrap();
    assert_eq!(
        env(&deployment, "LD").as_deref(),
        Some("https://ld.example")
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cycle_across_two_services_is_reported_with_its_path_and_nothing_in_it_is_installed() {
    let h = Harness::start().await;
    h.create_service(
        NS,
        "alpha",
        json!({
            "api": {"chart": "test/app", "version": "0.1.0", "dependencies": [{"name": "beta"}]},
            "cache": {"chart": "test/app", "version": "0.1.0"}
        }),
    )
    .await;
    h.create_service(
        NS,
        "beta",
        json!({"web": {"chart": "test/app", "version": "0.1.0", "dependencies": [{"name": "alpha"}]}}),
    )
    .await;
    for name in ["alpha", "beta"] {
        let service = h
            .service_where(NS, name, "Stalled by the cycle", |s| {
                find(&s.status.as_ref().unwrap().conditions, STALLED)
                    .is_some_and(|c| c.status == "True")
            })
            .await;
        let (ready, reason, message) = condition(&service, READY);
        assert_eq!(
            (ready.as_str(), reason.as_str()),
            ("False", "DependencyCycle")
        );
        assert!(message.starts_with("dependency cycle: "), "{message}");
        let path: Vec<&str> = message["dependency cycle: ".len()..]
            .split(" -> ")
            .collect();
        assert_eq!(path.first(), path.last(), "a closed path: {message}");
        for step in ["alpha/api", "beta", "beta/web", "alpha"] {
            assert!(path.contains(&step), "{step} missing from {message}");
        }
        assert_eq!(service.status.unwrap().phase, Some(ServicePhase::Failed));
    }
    // The release outside the cycle is installed; nothing on the cycle is.
    h.releases(NS).get("alpha-cache").await.unwrap();
    eventually("the release outside the cycle to be Ready", || async {
        let r = h.releases(NS).get("alpha-cache").await.unwrap();
        is_ready_for_generation(&r.status?.conditions, r.metadata.generation).then_some(())
    })
    .await;
    // A child created while its dependency did not exist yet (alpha before beta) goes once
    // the cycle is known, since it never ran.
    for child in ["alpha-api", "beta-web"] {
        eventually(&format!("{child} not to exist"), || async {
            h.releases(NS)
                .get_opt(child)
                .await
                .unwrap()
                .is_none()
                .then_some(())
        })
        .await;
    }
    let deployments: Api<Deployment> = Api::namespaced(h.client.clone(), NS);
    let names: Vec<String> = deployments
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(|d| d.name_any())
        .collect();
    assert_eq!(names, ["cache"]);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_name_conflict_between_two_services_names_both_owners() {
    let h = Harness::start().await;
    h.create_service(
        NS,
        "example-service",
        json!({"postgres": {"chart": "test/producer", "version": "0.1.0"}}),
    )
    .await;
    h.ready_service(NS, "example-service").await;
    h.create_service(
        NS,
        "other-service",
        json!({"postgres": {"chart": "test/producer", "version": "0.1.0"}}),
    )
    .await;
    let loser = h
        .service_where(NS, "other-service", "the conflict", |s| {
            find(&s.status.as_ref().unwrap().conditions, READY)
                .is_some_and(|c| c.reason == "ReleaseNameConflict")
        })
        .await;
    let (ready, _, message) = condition(&loser, READY);
    assert_eq!(ready, "False");
    assert!(
        message.contains(
            "release name \"postgres\" of other-service/postgres is also used by example-service/postgres"
        ),
        "{message}"
    );
    assert_eq!(condition(&loser, STALLED).0, "True");
    assert!(
        h.releases(NS)
            .get_opt("other-service-postgres")
            .await
            .unwrap()
            .is_none(),
        "the later owner's child is not created"
    );
    let winner = h.ready_service(NS, "example-service").await;
    assert_eq!(winner.status.unwrap().phase, Some(ServicePhase::Ready));
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_of_another_release_is_reported_on_the_service_naming_it() {
    let h = Harness::start().await;
    h.create_release(
        "squatter",
        json!({"chart": "test/fixed", "version": "0.1.0", "values": {"name": "shared-settings"}}),
    )
    .await;
    eventually("the squatter to be Ready", || async {
        let r = h.releases(NS).get("squatter").await.unwrap();
        is_ready_for_generation(&r.status?.conditions, r.metadata.generation).then_some(())
    })
    .await;
    h.create_service(
        NS,
        "shop",
        json!({"settings": {"chart": "test/fixed", "version": "0.1.0", "values": {"name": "shared-settings"}}}),
    )
    .await;
    let service = h
        .service_where(NS, "shop", "the child's conflict", |s| {
            find(&s.status.as_ref().unwrap().conditions, READY)
                .is_some_and(|c| c.reason == "ReleaseFailed")
        })
        .await;
    let (_, _, message) = condition(&service, READY);
    assert!(
        message.starts_with("settings: ")
            && message.contains("ConfigMap/")
            && message.contains("belongs to release default.squatter"),
        "{message}"
    );
    let status = service.status.unwrap();
    assert_eq!(status.phase, Some(ServicePhase::Failed));
    assert!(
        status.release_statuses["settings"]
            .message
            .as_deref()
            .is_some_and(|m| m.contains("squatter"))
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_keys_tears_their_children_down_dependents_first() {
    let h = Harness::start().await;
    h.create_service(
        NS,
        "shop",
        json!({
            "db": {"chart": "test/producer", "version": "0.1.0", "outputsFrom": [{"secretRef": {"name": "db-creds"}}]},
            "api": {"chart": "test/app", "version": "0.1.0", "dependencies": [{"name": "db"}]},
            "cache": {"chart": "test/app", "version": "0.1.0"}
        }),
    )
    .await;
    h.ready_service(NS, "shop").await;
    h.services(NS)
        .patch(
            "shop",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"helmReleases": {"db": null, "api": null}}})),
        )
        .await
        .unwrap();
    let started = Instant::now();
    let (mut api_gone, mut db_gone) = (None, None);
    while api_gone.is_none() || db_gone.is_none() {
        assert!(
            started.elapsed() < WAIT,
            "the removed children were not deleted"
        );
        let now = started.elapsed();
        // Read in the reverse of the expected deletion order: whatever is seen gone was gone
        // before the reads after it, so a read order racing the deletions cannot fail the test.
        if db_gone.is_none() && h.releases(NS).get_opt("shop-db").await.unwrap().is_none() {
            db_gone = Some(now);
        }
        if api_gone.is_none() && h.releases(NS).get_opt("shop-api").await.unwrap().is_none() {
            api_gone = Some(now);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        api_gone <= db_gone,
        "the dependency went first: api {api_gone:?}, db {db_gone:?}"
    );
    let deployments: Api<Deployment> = Api::namespaced(h.client.clone(), NS);
    assert!(deployments.get_opt("api").await.unwrap().is_none());
    let service = h.ready_service(NS, "shop").await;
    let status = service.status.unwrap();
    assert_eq!(status.releases.as_deref(), Some("1/1"));
    assert_eq!(
        status.release_statuses.keys().collect::<Vec<_>>(),
        ["cache"]
    );
    h.releases(NS).get("shop-cache").await.unwrap();
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconciles_read_the_namespace_from_the_watch_caches_without_listing_it() {
    let h = Harness::start().await;
    h.create_service(
        NS,
        "db",
        json!({"db": {"chart": "test/producer", "version": "0.1.0"}}),
    )
    .await;
    h.create_service(
        NS,
        "shop",
        json!({"api": {"chart": "test/app", "version": "0.1.0"}}),
    )
    .await;
    h.ready_service(NS, "db").await;
    h.ready_service(NS, "shop").await;
    // Counted, not failed: a zero delay only counts the namespace's LISTs of either kind
    // (the watches list the whole cluster, once, when they start).
    let count = |resource: &str| {
        h.cluster.faults().inject(
            Fault::on(Verb::List)
                .resource(resource)
                .namespace(NS)
                .always()
                .delay(Duration::ZERO),
        )
    };
    let (service_lists, release_lists) = (count("upstartservices"), count("helmreleases"));
    h.services(NS)
        .patch(
            "shop",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"helmReleases": {"cache": {
                "chart": "test/app", "version": "0.1.0",
                "dependencies": [{"name": "api"}, {"name": "db", "kind": "UpstartService"}]
            }}}})),
        )
        .await
        .unwrap();
    let service = h.ready_service(NS, "shop").await;
    assert_eq!(service.status.unwrap().releases.as_deref(), Some("2/2"));
    let cache = h.releases(NS).get("shop-cache").await.unwrap();
    assert_eq!(
        serde_json::to_value(&cache.spec.dependencies).unwrap(),
        json!([
            {"name": "shop-api", "kind": "HelmRelease", "as": "api"},
            {"name": "db", "kind": "UpstartService", "as": "db"}
        ])
    );
    assert_eq!(
        (
            h.cluster.faults().hits(service_lists),
            h.cluster.faults().hits(release_lists)
        ),
        (0, 0),
        "LISTs of the namespace's UpstartServices and HelmReleases"
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_service_removes_its_children_dependents_first() {
    let h = Harness::start().await;
    h.create_service(
        NS,
        "shop",
        json!({
            "db": {"chart": "test/producer", "version": "0.1.0", "outputsFrom": [{"secretRef": {"name": "db-creds"}}]},
            "api": {"chart": "test/app", "version": "0.1.0", "dependencies": [{"name": "db"}]}
        }),
    )
    .await;
    h.ready_service(NS, "shop").await;
    h.services(NS)
        .delete("shop", &DeleteParams::foreground())
        .await
        .unwrap();
    let started = Instant::now();
    let (mut api_gone, mut db_gone, mut service_gone) = (None, None, None);
    while api_gone.is_none() || db_gone.is_none() || service_gone.is_none() {
        assert!(started.elapsed() < WAIT, "the service was not deleted");
        let now = started.elapsed();
        // Read in the reverse of the expected deletion order: whatever is seen gone was gone
        // before the reads after it, so a read order racing the deletions cannot fail the test.
        if service_gone.is_none() && h.services(NS).get_opt("shop").await.unwrap().is_none() {
            service_gone = Some(now);
        }
        if db_gone.is_none() && h.releases(NS).get_opt("shop-db").await.unwrap().is_none() {
            db_gone = Some(now);
        }
        if api_gone.is_none() && h.releases(NS).get_opt("shop-api").await.unwrap().is_none() {
            api_gone = Some(now);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(api_gone <= db_gone, "api {api_gone:?}, db {db_gone:?}");
    assert!(
        db_gone <= service_gone,
        "a foreground deletion waits for the children: db {db_gone:?}, service {service_gone:?}"
    );
    let deployments: Api<Deployment> = Api::namespaced(h.client.clone(), NS);
    assert!(deployments.get_opt("api").await.unwrap().is_none());
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalog_templates_are_validated_and_never_deployed() {
    let h = Harness::start().await;
    h.create_service(
        CATALOG,
        "good",
        json!({
            "db": {"chart": "test/producer", "version": "0.1.0"},
            "app": {
                "chart": "test/app", "version": "0.1.0",
                "dependencies": [{"name": "db"}, {"name": "my-env-launch-darkly", "kind": "HelmRelease"}],
                "values": {"env": {
                    "PASSWORD": "<< db.outputs.PASSWORD >>",
                    "LD": "<< my-env-launch-darkly.outputs.KEY >>",
                    "BRANCH": "<< environment.variables.branch >>"
                }}
            }
        }),
    )
    .await;
    h.create_service(
        CATALOG,
        "bad",
        json!({
            "db": {"chart": "test/producer", "version": "0.1.0"},
            "app": {"chart": "test/app", "version": "0.1.0", "values": {"env": {"PASSWORD": "<< db.outputs.PASSWORD >>"}}}
        }),
    )
    .await;
    let good = h
        .service_where(CATALOG, "good", "Valid", |s| {
            find(&s.status.as_ref().unwrap().conditions, VALID).is_some()
        })
        .await;
    assert_eq!(condition(&good, VALID).0, "True");
    assert_eq!(good.status.unwrap().phase, Some(ServicePhase::Template));
    let bad = h
        .service_where(CATALOG, "bad", "Valid", |s| {
            find(&s.status.as_ref().unwrap().conditions, VALID).is_some()
        })
        .await;
    let (valid, reason, message) = condition(&bad, VALID);
    assert_eq!(
        (valid.as_str(), reason.as_str()),
        ("False", "TemplateInvalid")
    );
    assert!(
        message.contains("spec.helmReleases.app.values.env.PASSWORD")
            && message.contains("unknown name db"),
        "{message}"
    );
    assert_eq!(
        bad.status.unwrap().phase,
        Some(ServicePhase::Invalid),
        "an invalid template says so in its phase"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let children = h
        .releases(CATALOG)
        .list(&ListParams::default())
        .await
        .unwrap();
    assert!(children.items.is_empty(), "templates are never deployed");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_are_children_ordered_around_the_releases_and_a_key_switched_off_is_torn_down() {
    let h = Harness::start().await;
    h.create_service(
        NS,
        "shop",
        json!({
            "api": {"chart": "test/app", "version": "0.1.0"},
            "extra": {"chart": "test/app", "version": "0.1.0"}
        }),
    )
    .await;
    let container = json!({"spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]}});
    h.services(NS)
        .patch(
            "shop",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"jobs": {
                "migrate": {"when": "pre", "template": container},
                "check": {"when": "post", "template": container}
            }}})),
        )
        .await
        .unwrap();
    let service = h
        .service_where(NS, "shop", "four children Ready", |s| {
            s.status.as_ref().and_then(|s| s.releases.as_deref()) == Some("4/4")
        })
        .await;
    assert_eq!(
        service
            .status
            .unwrap()
            .release_statuses
            .keys()
            .collect::<Vec<_>>(),
        ["api", "check", "extra", "migrate"]
    );
    let api = h.releases(NS).get("shop-api").await.unwrap();
    let check = h.releases(NS).get("shop-check").await.unwrap();
    let names = |r: &HelmRelease| -> Vec<String> {
        r.spec.dependencies.iter().map(|d| d.name.clone()).collect()
    };
    assert_eq!(names(&api), ["shop-migrate"]);
    assert_eq!(names(&check), ["shop-api", "shop-extra"]);

    h.services(NS)
        .patch(
            "shop",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"helmReleases": {"extra": {"enabled": false}}}})),
        )
        .await
        .unwrap();
    eventually("shop-extra torn down", || async {
        h.releases(NS)
            .get_opt("shop-extra")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    h.service_where(NS, "shop", "three children Ready", |s| {
        s.status.as_ref().and_then(|s| s.releases.as_deref()) == Some("3/3")
    })
    .await;
    h.stop().await;
}
