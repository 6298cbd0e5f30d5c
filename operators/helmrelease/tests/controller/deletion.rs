//! Deleting a release: what it applied is removed, dependencies wait for their dependents,
//! a release deleted in the middle of its install.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_release_removes_what_it_applied() {
    let h = Harness::start().await;
    h.create("gone", json!({"chart": "test/app", "version": "0.1.0"}))
        .await;
    h.ready("gone").await;
    h.delete("gone").await;
    let config_maps: Api<ConfigMap> = Api::namespaced(h.client.clone(), NS);
    let deployments: Api<Deployment> = Api::namespaced(h.client.clone(), NS);
    assert!(
        config_maps
            .get_opt("gone-settings")
            .await
            .unwrap()
            .is_none()
    );
    assert!(deployments.get_opt("gone").await.unwrap().is_none());
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_dependency_waits_for_its_dependents_to_go_first() {
    let h = Harness::start().await;
    h.create(
        "db",
        json!({"chart": "test/producer", "version": "0.1.0", "values": {"password": "p"},
               "outputsFrom": [{"secretRef": {"name": "db-creds"}}]}),
    )
    .await;
    h.create(
        "app",
        json!({"chart": "test/app", "version": "0.1.0", "dependencies": [{"name": "db"}]}),
    )
    .await;
    h.ready("app").await;
    let api = h.releases();
    api.delete("db", &DeleteParams::default()).await.unwrap();
    eventually("db waiting for app", || async {
        let status = api.get("db").await.ok()?.status?;
        let ready = status.conditions.iter().find(|c| c.type_ == "Ready")?;
        (status.phase == Some(HelmReleasePhase::Deleting) && ready.message.contains("app"))
            .then_some(())
    })
    .await;
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(h.client.clone(), NS);
    assert!(
        secrets.get_opt("db-creds").await.unwrap().is_some(),
        "db keeps its objects"
    );

    api.delete("app", &DeleteParams::default()).await.unwrap();
    eventually("both releases gone", || async {
        let db = api.get_opt("db").await.unwrap();
        let app = api.get_opt("app").await.unwrap();
        (db.is_none() && app.is_none()).then_some(())
    })
    .await;
    assert!(secrets.get_opt("db-creds").await.unwrap().is_none());
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_of_a_service_waits_at_deletion_for_a_release_depending_on_the_service() {
    let h = Harness::start().await;
    let services: Api<upstart_api::v1alpha1::UpstartService> =
        Api::namespaced(h.client.clone(), NS);
    let service = services
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "apiVersion": "upstartoperators.upstart.com/v1alpha1",
                "kind": "UpstartService",
                "metadata": {"name": "svc", "namespace": NS},
                "spec": {"helmReleases": {"db": {"chart": "test/producer"}}}
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    let child: HelmRelease = serde_json::from_value(json!({
        "apiVersion": "upstartoperators.upstart.com/v1alpha1",
        "kind": "HelmRelease",
        "metadata": {
            "name": "svc-db",
            "namespace": NS,
            "ownerReferences": [{
                "apiVersion": "upstartoperators.upstart.com/v1alpha1",
                "kind": "UpstartService",
                "name": "svc",
                "uid": service.metadata.uid.clone().unwrap()
            }]
        },
        "spec": {
            "chart": "test/producer",
            "version": "0.1.0",
            "values": {"password": "p"},
            "outputsFrom": [{"secretRef": {"name": "svc-db-creds"}, "scope": "external"}]
        }
    }))
    .unwrap();
    let api = h.releases();
    api.create(&PostParams::default(), &child).await.unwrap();
    h.ready("svc-db").await;
    // Depends on the service (no kind), not on its child: it waits for the service's Ready,
    // which no operator writes here; being present is enough to hold the teardown.
    h.create(
        "user",
        json!({"chart": "test/app", "version": "0.1.0", "dependencies": [{"name": "svc"}]}),
    )
    .await;
    eventually("user waiting for the service", || async {
        let status = api.get("user").await.ok()?.status?;
        (status.phase == Some(HelmReleasePhase::WaitingForDependencies)).then_some(())
    })
    .await;

    api.delete("svc-db", &DeleteParams::default())
        .await
        .unwrap();
    eventually("svc-db waiting for user", || async {
        let status = api.get("svc-db").await.ok()?.status?;
        let ready = status.conditions.iter().find(|c| c.type_ == "Ready")?;
        (status.phase == Some(HelmReleasePhase::Deleting) && ready.message.contains("user"))
            .then_some(())
    })
    .await;
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(h.client.clone(), NS);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        secrets.get_opt("svc-db-creds").await.unwrap().is_some(),
        "svc-db keeps its objects while user is there"
    );

    api.delete("user", &DeleteParams::default()).await.unwrap();
    // Well within the 60 s teardown timeout: the deletion of user wakes svc-db.
    let started = Instant::now();
    eventually("svc-db gone", || async {
        api.get_opt("svc-db").await.unwrap().is_none().then_some(())
    })
    .await;
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(secrets.get_opt("svc-db-creds").await.unwrap().is_none());
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_deleted_in_the_middle_of_its_install_removes_what_was_applied() {
    let h = Harness::start().await;
    h.create(
        "halfway",
        json!({"chart": "test/crashy", "version": "0.1.0", "values": {"postAfter": "1h"}}),
    )
    .await;
    let config_maps: Api<ConfigMap> = Api::namespaced(h.client.clone(), NS);
    let api = h.releases();
    eventually("the install waiting on its post-install hook", || async {
        let status = api.get("halfway").await.ok()?.status?;
        let ready = status.conditions.iter().find(|c| c.type_ == "Ready")?;
        (ready.message.contains("Job/halfway-post")
            && config_maps
                .get_opt("halfway-settings")
                .await
                .unwrap()
                .is_some())
        .then_some(())
    })
    .await;
    let status = api.get("halfway").await.unwrap().status.unwrap();
    assert!(
        status
            .inventory
            .iter()
            .any(|e| e.name == "halfway-settings"),
        "recorded before it was applied"
    );
    assert!(
        status.applied_digest.is_none(),
        "the install has not finished"
    );

    h.delete("halfway").await;
    assert!(
        config_maps
            .get_opt("halfway-settings")
            .await
            .unwrap()
            .is_none()
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_phase_gauge_counts_a_deleted_release_out_although_no_reconcile_follows() {
    let h = Harness::start().await;
    h.create("counted", json!({"chart": "test/app", "version": "0.1.0"}))
        .await;
    h.ready("counted").await;
    eventually("the gauge to count it Ready", || async {
        let text = h.metrics().encode().unwrap();
        text.contains("upstart_helmreleases{phase=\"Ready\"} 1")
            .then_some(())
    })
    .await;
    h.delete("counted").await;
    eventually("every phase back to 0", || async {
        let text = h.metrics().encode().unwrap();
        (text.contains("upstart_helmreleases{phase=\"Ready\"} 0")
            && text.contains("upstart_helmreleases{phase=\"Deleting\"} 0"))
        .then_some(())
    })
    .await;
    h.stop().await;
}
