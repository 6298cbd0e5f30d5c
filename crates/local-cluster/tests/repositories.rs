//! The local cluster's chart repository configuration as `upstart dev` passes it: repositories
//! beside `upstart-charts`, unlisted references, the cluster-scoped allow-list, and which
//! `upstart-charts` wins when both the configuration and the charts directory name it.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails by panicking"
)]

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DynamicObject};
use kube::discovery::ApiResource;
use upstart_chart_repo::{ChartRepo, RunningRepo};
use upstart_chart_source::{Repository, RepositoryConfig};
use upstart_local_cluster::{
    Applied, CHARTS_ALIAS, Error, LocalCluster, LocalClusterOptions, OperatorSet, apply_manifests,
    parse,
};
use upstart_release_engine::manifests::ClusterScopedAllowList;

const MANAGER: &str = "local-cluster-test";

/// A chart `name` at `version` rendering one ConfigMap named after the release, recording
/// which chart version rendered it.
fn config_map_chart(charts: &Path, name: &str, version: &str) {
    let dir = charts.join(format!("{name}-{version}"));
    std::fs::create_dir_all(dir.join("templates")).unwrap();
    std::fs::write(
        dir.join("Chart.yaml"),
        format!("apiVersion: v2\nname: {name}\nversion: {version}\n"),
    )
    .unwrap();
    std::fs::write(
        dir.join("templates/configmap.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}\ndata:\n  \
         chart: {{ .Chart.Name }}-{{ .Chart.Version }}\n",
    )
    .unwrap();
}

/// A chart `reader` rendering a ClusterRole, as ingress-nginx or kube-state-metrics do.
fn cluster_role_chart(charts: &Path) {
    let dir = charts.join("reader");
    std::fs::create_dir_all(dir.join("templates")).unwrap();
    std::fs::write(
        dir.join("Chart.yaml"),
        "apiVersion: v2\nname: reader\nversion: 1.0.0\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("templates/clusterrole.yaml"),
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: \
         {{ .Release.Namespace }}-{{ .Release.Name }}\nrules:\n- apiGroups: [\"\"]\n  \
         resources: [pods]\n  verbs: [get, list]\n",
    )
    .unwrap();
}

async fn serve(dir: &Path) -> RunningRepo {
    ChartRepo::from_dir(dir)
        .unwrap()
        .serve("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

fn repository(url: &str) -> Repository {
    Repository {
        url: url.to_owned(),
        kind: None,
        plain_http: false,
        credentials_secret: None,
        ca_bundle: None,
    }
}

fn configured(repositories: &[(&str, &str)]) -> RepositoryConfig {
    RepositoryConfig {
        repositories: repositories
            .iter()
            .map(|(alias, url)| ((*alias).to_owned(), repository(url)))
            .collect::<BTreeMap<_, _>>(),
        ..RepositoryConfig::default()
    }
}

async fn start(options: LocalClusterOptions) -> LocalCluster {
    LocalCluster::start(LocalClusterOptions {
        operators: OperatorSet::all(),
        helm_path: Some(upstart_test_support::helm()),
        ..options
    })
    .await
    .unwrap()
}

async fn install(cluster: &LocalCluster, name: &str, chart: &str) -> Vec<Applied> {
    let release = parse(
        name,
        &format!(
            "apiVersion: upstartoperators.upstart.com/v1alpha1
kind: HelmRelease
metadata: {{name: {name}}}
spec: {{chart: \"{chart}\"}}
"
        ),
    )
    .unwrap();
    apply_manifests(cluster.client(), release, MANAGER, "default")
        .await
        .unwrap()
}

async fn installed_chart(cluster: &LocalCluster, name: &str) -> String {
    let config_maps: Api<ConfigMap> = Api::namespaced(cluster.client().clone(), "default");
    let found = config_maps.get(name).await.unwrap();
    found.data.unwrap()["chart"].clone()
}

/// Waits until the HelmRelease `name` is Ready=False with `reason`, and returns its message.
async fn refused(cluster: &LocalCluster, name: &str, reason: &str) -> String {
    let releases: Api<DynamicObject> = Api::namespaced_with(
        cluster.client().clone(),
        "default",
        &ApiResource {
            group: "upstartoperators.upstart.com".into(),
            version: "v1alpha1".into(),
            api_version: "upstartoperators.upstart.com/v1alpha1".into(),
            kind: "HelmRelease".into(),
            plural: "helmreleases".into(),
        },
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let release = releases.get(name).await.unwrap();
        let conditions = release.data["status"]["conditions"].as_array().cloned();
        let ready = conditions
            .unwrap_or_default()
            .into_iter()
            .find(|c| c["type"] == "Ready");
        if let Some(ready) = &ready
            && ready["status"] == "False"
            && ready["reason"] == reason
        {
            return ready["message"].as_str().unwrap_or_default().to_owned();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "HelmRelease {name} is not Ready=False with {reason}: {ready:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_release_from_a_repository_configured_beside_upstart_charts_becomes_ready() {
    let tmp = tempfile::tempdir().unwrap();
    config_map_chart(&tmp.path().join("charts"), "tiny", "0.1.0");
    config_map_chart(&tmp.path().join("other"), "hello", "1.0.0");
    let other = serve(&tmp.path().join("other")).await;
    let cluster = start(LocalClusterOptions {
        charts_dir: Some(tmp.path().join("charts")),
        repositories: configured(&[("other", other.url())]),
        ..LocalClusterOptions::default()
    })
    .await;
    let aliases: Vec<&str> = cluster
        .chart_repositories()
        .iter()
        .map(|r| r.alias.as_str())
        .collect();
    assert_eq!(aliases, ["other", CHARTS_ALIAS]);

    let mut applied = install(&cluster, "from-other", "other/hello").await;
    applied.extend(install(&cluster, "from-charts", "upstart-charts/tiny").await);
    cluster
        .wait_ready(&applied, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(installed_chart(&cluster, "from-other").await, "hello-1.0.0");
    assert_eq!(installed_chart(&cluster, "from-charts").await, "tiny-0.1.0");
    cluster.shutdown().await;
    other.shutdown().await;
}

#[tokio::test]
async fn a_cluster_role_is_refused_unless_its_kind_is_on_the_allow_list() {
    let tmp = tempfile::tempdir().unwrap();
    cluster_role_chart(&tmp.path().join("charts"));

    let cluster = start(LocalClusterOptions {
        charts_dir: Some(tmp.path().join("charts")),
        ..LocalClusterOptions::default()
    })
    .await;
    install(&cluster, "reader", "upstart-charts/reader").await;
    let message = refused(&cluster, "reader", "ClusterScopedNotAllowed").await;
    assert!(message.contains("ClusterRole"), "{message}");
    cluster.shutdown().await;

    let cluster = start(LocalClusterOptions {
        charts_dir: Some(tmp.path().join("charts")),
        cluster_scoped_allow_list: ClusterScopedAllowList::new([
            "rbac.authorization.k8s.io/ClusterRole",
        ]),
        ..LocalClusterOptions::default()
    })
    .await;
    let applied = install(&cluster, "reader", "upstart-charts/reader").await;
    cluster
        .wait_ready(&applied, Duration::from_secs(30))
        .await
        .unwrap();
    let roles: Api<k8s_openapi::api::rbac::v1::ClusterRole> = Api::all(cluster.client().clone());
    roles.get("default-reader").await.unwrap();
    cluster.shutdown().await;
}

#[tokio::test]
async fn an_unlisted_repository_url_is_refused_unless_unlisted_ones_are_allowed() {
    let tmp = tempfile::tempdir().unwrap();
    config_map_chart(&tmp.path().join("other"), "hello", "1.0.0");
    let other = serve(&tmp.path().join("other")).await;
    let reference = format!("{}/hello", other.url().trim_end_matches('/'));

    let cluster = start(LocalClusterOptions::default()).await;
    install(&cluster, "direct", &reference).await;
    let message = refused(&cluster, "direct", "ChartFetchFailed").await;
    assert!(
        message.contains("names a repository that is not configured"),
        "{message}"
    );
    cluster.shutdown().await;

    let cluster = start(LocalClusterOptions {
        repositories: RepositoryConfig {
            allow_unlisted: true,
            ..RepositoryConfig::default()
        },
        ..LocalClusterOptions::default()
    })
    .await;
    let applied = install(&cluster, "direct", &reference).await;
    cluster
        .wait_ready(&applied, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(installed_chart(&cluster, "direct").await, "hello-1.0.0");
    cluster.shutdown().await;
    other.shutdown().await;
}

#[tokio::test]
async fn a_configured_upstart_charts_wins_over_the_charts_directory() {
    let tmp = tempfile::tempdir().unwrap();
    config_map_chart(&tmp.path().join("charts"), "tiny", "0.1.0");
    config_map_chart(&tmp.path().join("other"), "tiny", "0.9.0");
    let other = serve(&tmp.path().join("other")).await;
    let cluster = start(LocalClusterOptions {
        charts_dir: Some(tmp.path().join("charts")),
        repositories: configured(&[(CHARTS_ALIAS, other.url())]),
        ..LocalClusterOptions::default()
    })
    .await;
    let repositories = cluster.chart_repositories();
    assert_eq!(repositories.len(), 1, "{repositories:?}");
    assert_eq!(repositories[0].url, other.url());

    let applied = install(&cluster, "tiny", "upstart-charts/tiny").await;
    cluster
        .wait_ready(&applied, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(installed_chart(&cluster, "tiny").await, "tiny-0.9.0");
    cluster.shutdown().await;
    other.shutdown().await;
}

#[tokio::test]
async fn a_repository_the_operator_would_refuse_fails_the_start() {
    let err = LocalCluster::start(LocalClusterOptions {
        repositories: configured(&[("mirror", "ftp://charts.example.com")]),
        operators: OperatorSet::all(),
        ..LocalClusterOptions::default()
    })
    .await
    .unwrap_err();
    assert!(matches!(err, Error::RepositoryConfig { .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains("\"mirror\"") && message.contains("oci://, https:// or http://"),
        "{message}"
    );
}

#[tokio::test]
async fn a_file_chart_under_a_configured_local_root_installs_and_one_outside_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("local");
    config_map_chart(&root, "mine", "0.3.0");
    config_map_chart(&tmp.path().join("elsewhere"), "theirs", "1.0.0");
    let cluster = start(LocalClusterOptions {
        repositories: RepositoryConfig {
            local_roots: vec![root.clone()],
            ..RepositoryConfig::default()
        },
        ..LocalClusterOptions::default()
    })
    .await;
    let applied = install(&cluster, "from-file", "file:mine-0.3.0").await;
    cluster
        .wait_ready(&applied, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(installed_chart(&cluster, "from-file").await, "mine-0.3.0");

    let outside = format!(
        "file:{}",
        tmp.path().join("elsewhere/theirs-1.0.0").display()
    );
    install(&cluster, "outside", &outside).await;
    let message = refused(&cluster, "outside", "ChartFetchFailed").await;
    assert!(
        message.contains("outside every local chart root"),
        "{message}"
    );
    cluster.shutdown().await;
}
