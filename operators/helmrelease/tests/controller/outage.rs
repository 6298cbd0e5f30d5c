//! A chart repository outage after a release was installed: the interval re-apply serves the
//! chart fetched before, the release stays Ready and shows the outage as RepositoryReachable;
//! a deletion during the outage still ends.

use upstart_api::conditions::{REPOSITORY_REACHABLE, find};
use upstart_helmrelease_operator::constants::reasons;

use super::*;

fn reachable(release: &HelmRelease) -> Option<(String, String, String)> {
    let status = release.status.as_ref()?;
    find(&status.conditions, REPOSITORY_REACHABLE)
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repository_outage_keeps_a_ready_release_ready_and_shows_as_a_condition() {
    let mut h = Harness::boot().await;
    // A repository of its own, so the test can stop it and start it again on the same port.
    let charts = h.cluster.dir().join("charts");
    let repo = upstart_chart_repo::ChartRepo::from_dir(&charts)
        .unwrap()
        .serve(([127, 0, 0, 1], 0).into())
        .await
        .unwrap();
    let addr = repo.addr();
    let url = repo.url().to_owned();
    h.run_operator(Config {
        // indexTtl 0: each re-apply reads the index, as one after the 5-minute TTL does.
        repositories: RepositoryConfig::from_yaml(&format!(
            "repositories: {{flaky: {{url: \"{url}\"}}}}\nindexTtl: 0s"
        ))
        .unwrap(),
        ..h.config()
    });
    h.create(
        "weathered",
        json!({"chart": "flaky/app", "version": "^0.1", "interval": "1s", "values": {"message": "hi"}}),
    )
    .await;
    let ready = h.ready("weathered").await;
    assert_eq!(reachable(&ready), None, "no outage, no condition");

    repo.shutdown().await;
    let down = object_where(
        &h.releases(),
        "weathered",
        WAIT,
        "RepositoryReachable=False",
        |r| reachable(r).is_some_and(|(status, _, _)| status == "False"),
    )
    .await;
    let (_, reason, message) = reachable(&down).unwrap();
    assert_eq!(reason, "RepositoryUnavailable");
    assert!(message.contains(url.trim_end_matches('/')), "{message}");
    let status = down.status.as_ref().unwrap();
    assert_eq!(status.phase, Some(HelmReleasePhase::Ready));
    assert!(is_ready_for_generation(
        &status.conditions,
        down.metadata.generation
    ));
    let ready_before = find(&ready.status.as_ref().unwrap().conditions, "Ready").unwrap();
    let ready_now = find(&status.conditions, "Ready").unwrap();
    assert_eq!(ready_now, ready_before, "Ready untouched by the outage");
    // Re-applied several times while down: still Ready, never Failed.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let still = h.releases().get("weathered").await.unwrap();
    assert_eq!(
        still.status.as_ref().unwrap().phase,
        Some(HelmReleasePhase::Ready)
    );

    let _repo = upstart_chart_repo::ChartRepo::from_dir(&charts)
        .unwrap()
        .serve(addr)
        .await
        .unwrap();
    let back = object_where(
        &h.releases(),
        "weathered",
        WAIT,
        "RepositoryReachable=True",
        |r| reachable(r).is_some_and(|(status, _, _)| status == "True"),
    )
    .await;
    assert_eq!(reachable(&back).unwrap().1, "RepositoryReachable");
    assert!(is_ready_for_generation(
        &back.status.as_ref().unwrap().conditions,
        back.metadata.generation
    ));
    h.stop().await;
}

/// Issue 15, "repository down at deletion": a new operator (an empty chart cache, as a new pod
/// has) cannot fetch the chart, so it cannot render the delete hooks; the deletion still ends,
/// the hooks skipped with an Event, and what the release applied is removed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_deleted_while_its_repository_is_down_and_its_chart_not_cached_is_removed() {
    let mut h = Harness::boot().await;
    let charts = h.cluster.dir().join("charts");
    let repo = upstart_chart_repo::ChartRepo::from_dir(&charts)
        .unwrap()
        .serve(([127, 0, 0, 1], 0).into())
        .await
        .unwrap();
    let config = Config {
        repositories: RepositoryConfig::from_yaml(&format!(
            "repositories: {{flaky: {{url: \"{}\"}}}}",
            repo.url()
        ))
        .unwrap(),
        ..h.config()
    };
    h.run_operator(config.clone());
    h.create(
        "stranded",
        json!({"chart": "flaky/app", "version": "^0.1", "values": {"message": "hi"}}),
    )
    .await;
    h.ready("stranded").await;
    h.kill().await;
    repo.shutdown().await;

    let empty_cache = tempfile::tempdir().unwrap();
    h.run_operator(Config {
        cache_dir: empty_cache.path().to_owned(),
        ..config
    });
    h.delete("stranded").await;
    event_with_reason(
        &h.client,
        reasons::DELETE_HOOKS_SKIPPED,
        "delete hooks skipped",
    )
    .await;
    let config_maps: Api<ConfigMap> = Api::namespaced(h.client.clone(), NS);
    let deployments: Api<Deployment> = Api::namespaced(h.client.clone(), NS);
    eventually("the release's objects to be deleted", || async {
        let config_map = config_maps.get_opt("stranded-settings").await.unwrap();
        let deployment = deployments.get_opt("stranded").await.unwrap();
        (config_map.is_none() && deployment.is_none()).then_some(())
    })
    .await;
    h.stop().await;
}
