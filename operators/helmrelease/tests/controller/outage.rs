//! A chart repository outage after a release was installed: the interval re-apply serves the
//! chart fetched before, the release stays Ready and shows the outage as RepositoryReachable.

use upstart_api::conditions::{REPOSITORY_REACHABLE, find};

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
