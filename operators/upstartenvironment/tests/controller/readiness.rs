//! Readiness: time to ready, the critical path (the slowest chain, or a release applied by hand
//! that held a dependent back), no status writes once settled, and degrading when a service is
//! no longer Ready.

use super::*;

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
