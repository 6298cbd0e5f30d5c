//! Edits to an environment's spec: a removed service or release is torn down (a service before
//! its releases) and the others are kept; disabling a service others depend on is refused until
//! it is enabled again.

use super::*;

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
