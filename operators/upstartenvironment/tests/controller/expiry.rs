//! The ttl: an expired environment deletes everything, dependents first; editing the ttl moves
//! the expiry and the keep annotation suspends it.

use super::*;

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
