//! A chart published to a repository after the HelmRelease naming it was created is picked up
//! without a spec change: a chart missing from a cached index is a retried failure, and a retry
//! reads the index again once it is `missingRereadAfter` old (long before its TTL).

use upstart_chart_source::RepositoryConfig;

use super::*;

#[tokio::test]
async fn a_chart_published_after_the_release_was_created_becomes_ready_without_a_spec_change() {
    let mut h = Harness::boot().await;
    // A repository of its own, so the chart can be published while the operator runs.
    let root = tempfile::tempdir().unwrap();
    write(
        root.path(),
        "early/Chart.yaml",
        "apiVersion: v2\nname: early\nversion: 0.1.0\n",
    );
    write(
        root.path(),
        "early/templates/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: early\ndata: {a: b}\n",
    );
    let repo = upstart_chart_repo::ChartRepo::from_dir(root.path())
        .unwrap()
        .serve(([127, 0, 0, 1], 0).into())
        .await
        .unwrap();
    // The default index TTL (5 minutes): only the re-read of a missing chart can find it.
    let repositories = RepositoryConfig::from_yaml(&format!(
        "repositories: {{fresh: {{url: \"{}\"}}}}\nmissingRereadAfter: 1s",
        repo.url()
    ))
    .unwrap();
    h.run_operator(Config {
        repositories,
        ..h.config()
    });

    h.create(
        "late",
        json!({"chart": "fresh/late", "version": "0.1.0", "values": {"message": "published"}}),
    )
    .await;
    let (_, ready, _) = ready_condition(&h, "late", "ChartFetchFailed").await;
    for part in ["chart \"late\" not found in repository", "retried"] {
        assert!(
            ready.message.contains(part),
            "{part:?} not in {:?}",
            ready.message
        );
    }

    let app = std::fs::read_to_string(h.cluster.dir().join("charts/app/templates/configmap.yaml"))
        .unwrap();
    write(root.path(), "late/templates/configmap.yaml", &app);
    write(
        root.path(),
        "late/Chart.yaml",
        "apiVersion: v2\nname: late\nversion: 0.1.0\n",
    );
    repo.reload().unwrap();

    let generation = h.releases().get("late").await.unwrap().metadata.generation;
    let release = h.ready("late").await;
    assert_eq!(
        release.metadata.generation, generation,
        "Ready without a spec change"
    );
    let settings = Api::<ConfigMap>::namespaced(h.client.clone(), NS)
        .get("late-settings")
        .await
        .unwrap();
    assert_eq!(settings.data.unwrap()["message"], "published");
    h.stop().await;
}
