//! The local cluster as `upstart dev` and the e2e tests use it: start-up options, applying
//! files, waiting for Ready with and without an in-process operator, ordered shutdown.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails by panicking"
)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::StreamExt as _;
use kube::ResourceExt as _;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::discovery::ApiResource;
use kube::runtime::watcher;
use upstart_local_cluster::{
    CHARTS_ALIAS, Error, LocalCluster, LocalClusterOptions, Operator, OperatorContext, OperatorSet,
    StopSignal, apply_files, apply_manifests, parse, wait_ready,
};

const MANAGER: &str = "local-cluster-test";

fn workspace(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path)
}

const SERVICE: &str = "
apiVersion: upstartoperators.upstart.com/v1alpha1
kind: UpstartService
metadata: {name: s}
spec:
  helmReleases:
    web: {chart: upstart-charts/example-service}
";

fn service_resource() -> ApiResource {
    ApiResource {
        group: "upstartoperators.upstart.com".into(),
        version: "v1alpha1".into(),
        api_version: "upstartoperators.upstart.com/v1alpha1".into(),
        kind: "UpstartService".into(),
        plural: "upstartservices".into(),
    }
}

fn services(client: &kube::Client, ns: &str) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), ns, &service_resource())
}

/// A stand-in for the UpstartService operator: marks every UpstartService Ready, and records
/// that it was asked to stop.
fn marking_operator(stopped: Arc<AtomicBool>) -> Operator {
    Operator::new(
        "test-marker",
        &["UpstartService"],
        move |ctx: OperatorContext, stop: StopSignal| {
            let stopped = stopped.clone();
            async move {
                let all: Api<DynamicObject> =
                    Api::all_with(ctx.client.clone(), &service_resource());
                let mut events = watcher(all, watcher::Config::default()).boxed();
                let mut stop = Box::pin(stop.requested());
                loop {
                    tokio::select! {
                        () = &mut stop => break,
                        event = events.next() => {
                            let obj = match event {
                                Some(Ok(watcher::Event::Apply(obj) | watcher::Event::InitApply(obj))) => obj,
                                Some(Err(e)) => { eprintln!("test operator: watch: {e}"); tokio::time::sleep(Duration::from_millis(100)).await; continue }
                                _ => continue,
                            };
                            let ns = obj.metadata.namespace.clone().unwrap_or_default();
                            let name = obj.metadata.name.clone().unwrap_or_default();
                            let status = serde_json::json!({
                                "apiVersion": "upstartoperators.upstart.com/v1alpha1",
                                "kind": "UpstartService",
                                "metadata": {"name": name},
                                "status": {"conditions": [{
                                    "type": "Ready", "status": "True", "reason": "Ready",
                                    "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z",
                                }]}
                            });
                            services(&ctx.client, &ns)
                                .patch_status(&name, &PatchParams::apply("test-marker").force(), &Patch::Apply(status))
                                .await
                                .map_err(|e| { eprintln!("test operator: status: {e}"); e.to_string() })?;
                        }
                    }
                }
                stopped.store(true, Ordering::SeqCst);
                Ok::<(), String>(())
            }
        },
    )
}

#[tokio::test]
async fn in_process_cluster_has_no_endpoint_and_a_kubeconfig_needs_one() {
    let cluster = LocalCluster::start(LocalClusterOptions::default())
        .await
        .unwrap();
    assert_eq!(cluster.api_url(), None);
    assert_eq!(cluster.kubeconfig_path(), None);
    assert!(cluster.chart_repositories().is_empty());
    cluster.shutdown().await;

    let err = LocalCluster::start(LocalClusterOptions {
        kubeconfig_path: Some("k.yaml".into()),
        ..LocalClusterOptions::default()
    })
    .await
    .unwrap_err();
    assert!(matches!(err, Error::KubeconfigWithoutHttps { .. }), "{err}");
}

#[tokio::test]
async fn https_endpoint_writes_a_kubeconfig_and_charts_are_served_as_upstart_charts() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tmp.path().join("charts/tiny")).unwrap();
    std::fs::write(
        tmp.path().join("charts/tiny/Chart.yaml"),
        "apiVersion: v2\nname: tiny\nversion: 0.1.0\n",
    )
    .unwrap();
    let kubeconfig = tmp.path().join("out/kubeconfig");
    let cluster = LocalCluster::start(LocalClusterOptions {
        https_port: Some(0),
        kubeconfig_path: Some(kubeconfig.clone()),
        charts_dir: Some(tmp.path().join("charts")),
        ..LocalClusterOptions::default()
    })
    .await
    .unwrap();
    let url = cluster.api_url().unwrap().to_owned();
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    assert_eq!(cluster.kubeconfig_path(), Some(kubeconfig.as_path()));
    // The instance record next to the kubeconfig names this process and the port.
    let record = tmp.path().join("out/kubeconfig.dev.json");
    let instance: upstart_local_cluster::instance::Instance =
        serde_json::from_slice(&std::fs::read(&record).unwrap()).unwrap();
    assert_eq!(instance.pid, std::process::id());
    assert_eq!(
        instance.port,
        Some(cluster.endpoint().unwrap().addr.port()),
        "{instance:?}"
    );
    assert_eq!(instance.kubeconfig, kubeconfig);
    let text = std::fs::read_to_string(&kubeconfig).unwrap();
    assert!(text.contains(&url), "{text}");
    let repos = cluster.chart_repositories();
    assert_eq!(repos.len(), 1);
    assert_eq!(repos[0].alias, CHARTS_ALIAS);
    assert!(repos[0].url.starts_with("http://127.0.0.1:"));
    // The endpoint is a real HTTPS API server: a client built from it lists namespaces.
    let remote = cluster.endpoint().unwrap().client().await.unwrap();
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(remote);
    let list = namespaces.list(&Default::default()).await.unwrap();
    assert!(
        list.items
            .iter()
            .any(|n| n.metadata.name.as_deref() == Some("default"))
    );
    cluster.shutdown().await;
    assert!(!record.exists(), "the record goes with the cluster");
}

fn tiny_chart(charts: &Path, dir: &str, version: &str) {
    std::fs::create_dir_all(charts.join(dir).join("templates")).unwrap();
    std::fs::write(
        charts.join(dir).join("Chart.yaml"),
        format!("apiVersion: v2\nname: tiny\nversion: {version}\n"),
    )
    .unwrap();
    std::fs::write(
        charts.join(dir).join("templates/configmap.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}\ndata:\n  version: {{ .Chart.Version | quote }}\n",
    )
    .unwrap();
}

fn tiny_release(name: &str, version: &str) -> upstart_local_cluster::Manifest {
    parse(
        name,
        &format!(
            "apiVersion: upstartoperators.upstart.com/v1alpha1
kind: HelmRelease
metadata: {{name: {name}}}
spec: {{chart: upstart-charts/tiny, version: \"{version}\"}}
"
        ),
    )
    .unwrap()
    .remove(0)
}

#[tokio::test]
async fn a_chart_version_added_to_the_charts_directory_is_installable_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let charts = tmp.path().join("charts");
    tiny_chart(&charts, "tiny-1", "0.1.0");
    let cluster = LocalCluster::start(LocalClusterOptions {
        charts_dir: Some(charts.clone()),
        operators: OperatorSet::all(),
        helm_path: Some(upstart_test_support::helm()),
        ..LocalClusterOptions::default()
    })
    .await
    .unwrap();
    // The first release has the operator read (and, before, cache) the repository's index.
    let first = apply_manifests(
        cluster.client(),
        vec![tiny_release("first", "0.1.0")],
        MANAGER,
        "default",
    )
    .await
    .unwrap();
    cluster
        .wait_ready(&first, Duration::from_secs(60))
        .await
        .unwrap();

    tiny_chart(&charts, "tiny-2", "0.2.0");
    let second = apply_manifests(
        cluster.client(),
        vec![tiny_release("second", "0.2.0")],
        MANAGER,
        "default",
    )
    .await
    .unwrap();
    // Not minutes (the index cache period of remote repositories, then the retry interval).
    cluster
        .wait_ready(&second, Duration::from_secs(30))
        .await
        .unwrap();
    let config_maps: Api<k8s_openapi::api::core::v1::ConfigMap> =
        Api::namespaced(cluster.client().clone(), "default");
    let installed = config_maps.get("second").await.unwrap();
    assert_eq!(installed.data.unwrap()["version"], "0.2.0");
    cluster.shutdown().await;
}

#[tokio::test]
async fn an_installed_release_renders_its_chart_edited_in_place_without_a_spec_change() {
    let tmp = tempfile::tempdir().unwrap();
    let charts = tmp.path().join("charts");
    tiny_chart(&charts, "tiny-1", "0.1.0");
    let cluster = LocalCluster::start(LocalClusterOptions {
        charts_dir: Some(charts.clone()),
        operators: OperatorSet::all(),
        helm_path: Some(upstart_test_support::helm()),
        ..LocalClusterOptions::default()
    })
    .await
    .unwrap();
    let applied = apply_manifests(
        cluster.client(),
        vec![tiny_release("edited", "0.1.0")],
        MANAGER,
        "default",
    )
    .await
    .unwrap();
    cluster
        .wait_ready(&applied, Duration::from_secs(60))
        .await
        .unwrap();
    let releases: Api<upstart_api::v1alpha1::HelmRelease> =
        Api::namespaced(cluster.client().clone(), "default");
    let before = releases.get("edited").await.unwrap();

    // Same version, new content: what `helm template` renders changes.
    std::fs::write(
        charts.join("tiny-1/templates/configmap.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}\ndata:\n  version: {{ .Chart.Version | quote }}\n  edited: \"yes\"\n",
    )
    .unwrap();
    let config_maps: Api<k8s_openapi::api::core::v1::ConfigMap> =
        Api::namespaced(cluster.client().clone(), "default");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let live = config_maps.get("edited").await.unwrap();
        if live
            .data
            .unwrap_or_default()
            .get("edited")
            .map(String::as_str)
            == Some("yes")
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the edited chart was not rendered"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let after = releases.get("edited").await.unwrap();
    assert_eq!(
        after.metadata.generation, before.metadata.generation,
        "the release's spec was not touched"
    );
    let (old, new) = (
        before.status.unwrap().chart_digest.unwrap(),
        after.annotations()["upstartoperators.upstart.com/chart-digest"].clone(),
    );
    assert_ne!(old, new, "annotated with the new archive's digest");
    cluster.shutdown().await;
}

#[tokio::test]
async fn a_release_created_before_its_chart_is_added_to_the_charts_directory_becomes_ready() {
    let tmp = tempfile::tempdir().unwrap();
    let charts = tmp.path().join("charts");
    tiny_chart(&charts, "tiny-1", "0.1.0");
    let cluster = LocalCluster::start(LocalClusterOptions {
        charts_dir: Some(charts.clone()),
        operators: OperatorSet::all(),
        helm_path: Some(upstart_test_support::helm()),
        ..LocalClusterOptions::default()
    })
    .await
    .unwrap();
    let early = apply_manifests(
        cluster.client(),
        vec![tiny_release("early", "0.2.0")],
        MANAGER,
        "default",
    )
    .await
    .unwrap();
    let releases: Api<upstart_api::v1alpha1::HelmRelease> =
        Api::namespaced(cluster.client().clone(), "default");
    // Not found yet: a retried failure, not a stalled release.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let release = releases.get("early").await.unwrap();
        let failed = release.status.iter().flat_map(|s| &s.conditions).any(|c| {
            c.type_ == "Ready" && c.reason == "ChartFetchFailed" && c.message.contains("retried")
        });
        if failed {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the release did not fail fetching its chart: {:?}",
            release.status
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    tiny_chart(&charts, "tiny-2", "0.2.0");
    // Without a spec change, and not minutes later (the release's interval).
    cluster
        .wait_ready(&early, Duration::from_secs(30))
        .await
        .unwrap();
    let config_maps: Api<k8s_openapi::api::core::v1::ConfigMap> =
        Api::namespaced(cluster.client().clone(), "default");
    let installed = config_maps.get("early").await.unwrap();
    assert_eq!(installed.data.unwrap()["version"], "0.2.0");
    cluster.shutdown().await;
}

#[tokio::test]
async fn files_are_applied_crds_first_into_the_default_namespace_given() {
    let cluster = LocalCluster::start(LocalClusterOptions::default())
        .await
        .unwrap();
    let ns = parse(
        "ns",
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: team}\n",
    )
    .unwrap();
    apply_manifests(cluster.client(), ns, MANAGER, "default")
        .await
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let service = tmp.path().join("service.yaml");
    std::fs::write(&service, SERVICE).unwrap();
    let crd = workspace("crds/upstartservices.upstartoperators.upstart.com.yaml");
    // The service comes first in the list; the CRD is still applied (and established) first.
    let applied = apply_files(cluster.client(), &[&service, &crd], MANAGER, "team")
        .await
        .unwrap();
    let described: Vec<String> = applied.iter().map(|a| a.describe()).collect();
    assert_eq!(
        described,
        [
            "CustomResourceDefinition upstartservices.upstartoperators.upstart.com",
            "UpstartService team/s"
        ]
    );
    assert_eq!(applied[1].group(), "upstartoperators.upstart.com");
    let stored = applied[1].get().await.unwrap();
    let managers: Vec<_> = stored
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .filter_map(|m| m.manager)
        .collect();
    assert_eq!(managers, [MANAGER]);
    cluster.shutdown().await;
}

#[tokio::test]
async fn wait_ready_waits_for_the_operator_of_an_upstart_kind_to_report() {
    let stopped = Arc::new(AtomicBool::new(false));
    let cluster = LocalCluster::start(LocalClusterOptions {
        operators: OperatorSet::none().with(marking_operator(stopped.clone())),
        ..LocalClusterOptions::default()
    })
    .await
    .unwrap();
    assert!(cluster.reported_kinds().covers("UpstartService"));
    let mut manifests = upstart_local_cluster::read_files(&[workspace(
        "crds/upstartservices.upstartoperators.upstart.com.yaml",
    )])
    .unwrap();
    manifests.extend(parse("service", SERVICE).unwrap());
    let applied = apply_manifests(cluster.client(), manifests, MANAGER, "default")
        .await
        .unwrap();
    wait_ready(&applied, &cluster.reported_kinds(), Duration::from_secs(20))
        .await
        .unwrap();
    let service = applied[1].get().await.unwrap();
    assert_eq!(
        service.data["status"]["conditions"][0]["status"], "True",
        "{service:?}"
    );
    cluster.shutdown().await;
    assert!(
        stopped.load(Ordering::SeqCst),
        "the operator was asked to stop"
    );
}

#[tokio::test]
async fn wait_ready_times_out_while_a_running_operator_has_not_reported() {
    // An operator that reports on UpstartService but never writes anything.
    let silent = Operator::new(
        "silent",
        &["UpstartService"],
        |_ctx: OperatorContext, stop: StopSignal| async move {
            stop.requested().await;
            Ok::<(), String>(())
        },
    );
    let cluster = LocalCluster::start(LocalClusterOptions {
        operators: OperatorSet::none().with(silent),
        ..LocalClusterOptions::default()
    })
    .await
    .unwrap();
    let mut manifests = upstart_local_cluster::read_files(&[workspace(
        "crds/upstartservices.upstartoperators.upstart.com.yaml",
    )])
    .unwrap();
    manifests.extend(parse("service", SERVICE).unwrap());
    let applied = apply_manifests(cluster.client(), manifests, MANAGER, "default")
        .await
        .unwrap();
    let err = wait_ready(
        &applied,
        &cluster.reported_kinds(),
        Duration::from_millis(500),
    )
    .await
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "timed out after 500ms waiting for Ready: UpstartService default/s has no Ready \
         condition yet (its operator has not reported)"
    );
    // Without that operator, the same object is not waited for.
    wait_ready(
        &applied,
        &OperatorSet::none().reported_kinds(),
        Duration::ZERO,
    )
    .await
    .unwrap();
    cluster.shutdown().await;
}

#[tokio::test]
async fn the_upstart_crds_and_the_catalog_namespace_exist_from_the_start() {
    let cluster = LocalCluster::start(LocalClusterOptions::default())
        .await
        .unwrap();
    let crds: Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> =
        Api::all(cluster.client().clone());
    for crd in upstart_api::crd::crds() {
        let name = crd.metadata.name.unwrap();
        assert!(crds.get_opt(&name).await.unwrap().is_some(), "{name}");
    }
    assert_eq!(cluster.catalog_namespace(), "upstart-catalog");
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(cluster.client().clone());
    assert!(
        namespaces
            .get_opt("upstart-catalog")
            .await
            .unwrap()
            .is_some()
    );
    // Applying the same CRDs again (as `kubectl apply --server-side -f crds/` does) is fine.
    apply_files(cluster.client(), &[workspace("crds")], MANAGER, "default")
        .await
        .unwrap();
    cluster.shutdown().await;
}

#[tokio::test]
async fn the_example_helmrelease_becomes_ready_with_the_built_in_operators_and_charts() {
    let cluster = LocalCluster::start(LocalClusterOptions {
        charts_dir: Some(workspace("charts")),
        operators: OperatorSet::all(),
        helm_path: Some(upstart_test_support::helm()),
        ..LocalClusterOptions::default()
    })
    .await
    .unwrap();
    assert!(cluster.reported_kinds().covers("HelmRelease"));
    let applied = apply_files(
        cluster.client(),
        &[workspace("examples/launch-darkly.yaml")],
        MANAGER,
        "default",
    )
    .await
    .unwrap();
    cluster
        .wait_ready(&applied, Duration::from_secs(60))
        .await
        .unwrap();
    // The chart's Secret (the output the example service consumes) was installed.
    let secrets: Api<k8s_openapi::api::core::v1::Secret> =
        Api::namespaced(cluster.client().clone(), "default");
    let secret = secrets.get("launch-darkly").await.unwrap();
    assert!(
        secret
            .data
            .unwrap_or_default()
            .contains_key("LD_SDK_KEY_PRICING")
    );
    cluster.shutdown().await;
}

#[tokio::test]
async fn a_failing_operator_ends_the_wait_for_ready_at_once() {
    // The HelmRelease operator cannot start without helm.
    let cluster = LocalCluster::start(LocalClusterOptions {
        operators: OperatorSet::all(),
        helm_path: Some(PathBuf::from("/nonexistent/helm")),
        ..LocalClusterOptions::default()
    })
    .await
    .unwrap();
    let applied = apply_files(
        cluster.client(),
        &[workspace("examples/launch-darkly.yaml")],
        MANAGER,
        "default",
    )
    .await
    .unwrap();
    let started = std::time::Instant::now();
    let err = cluster
        .wait_ready(&applied, Duration::from_secs(60))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::OperatorFailed {
                operator: "helmrelease",
                ..
            }
        ),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(30), "{err}");
    cluster.shutdown().await;
}

#[tokio::test]
async fn the_built_in_operators_stop_promptly() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let cluster = LocalCluster::start(LocalClusterOptions {
        charts_dir: Some(workspace("charts")),
        operators: OperatorSet::all(),
        helm_path: Some(upstart_test_support::helm()),
        ..LocalClusterOptions::default()
    })
    .await
    .unwrap();
    apply_manifests(
        cluster.client(),
        parse(
            "cm",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n",
        )
        .unwrap(),
        MANAGER,
        "default",
    )
    .await
    .unwrap();
    // Right away: the operators are still starting (helm checked, discovery, first lists).
    let started = std::time::Instant::now();
    cluster.shutdown().await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "shutdown took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn an_operator_that_ends_on_its_own_counts_as_failed() {
    let quitter = Operator::new(
        "quitter",
        &["UpstartService"],
        |_ctx: OperatorContext, _stop: StopSignal| async move { Ok::<(), String>(()) },
    );
    let cluster = LocalCluster::start(LocalClusterOptions {
        operators: OperatorSet::none().with(quitter),
        ..LocalClusterOptions::default()
    })
    .await
    .unwrap();
    let failure = tokio::time::timeout(Duration::from_secs(5), cluster.operator_failure())
        .await
        .unwrap();
    assert_eq!(failure.operator, "quitter");
    assert_eq!(failure.message, "stopped before it was asked to");
    cluster.shutdown().await;
}
