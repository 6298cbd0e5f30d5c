//! Deleting an environment: while still provisioning it finishes, and waiting on children that
//! never go gives up after the timeout and says so.

use super::*;

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
