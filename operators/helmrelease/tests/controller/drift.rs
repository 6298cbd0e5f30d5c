//! Live objects: deleted or edited by hand they are put back, foreign writes are answered
//! once, the interval reapply, and objects of another release are never taken over.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_deleted_by_hand_is_put_back() {
    let h = Harness::start().await;
    h.create(
        "drift",
        json!({"chart": "test/app", "version": "0.1.0", "values": {"message": "kept"}}),
    )
    .await;
    h.ready("drift").await;
    let config_maps: Api<ConfigMap> = Api::namespaced(h.client.clone(), NS);
    config_maps
        .delete("drift-settings", &DeleteParams::default())
        .await
        .unwrap();
    // The deletion event wakes the release (its release label), well before the interval.
    eventually("the ConfigMap to be put back", || async {
        let settings = config_maps.get_opt("drift-settings").await.unwrap()?;
        (settings.data?.get("message")? == "kept").then_some(())
    })
    .await;
    eventually("drift and phase metrics", || async {
        let text = h.metrics().encode().unwrap();
        (text.contains("upstart_helmrelease_drift_corrections_total 1")
            && text.contains("upstart_helmreleases{phase=\"Ready\"} 1")
            && text.contains("upstart_helmrelease_render_duration_seconds_count"))
        .then_some(())
    })
    .await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_of_another_release_is_never_taken_over() {
    let h = Harness::start().await;
    let config_maps: Api<ConfigMap> = Api::namespaced(h.client.clone(), NS);
    let theirs: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "mine-settings", "labels": {RELEASE_LABEL: "default.other"}},
        "data": {"message": "theirs"}
    }))
    .unwrap();
    config_maps
        .create(&PostParams::default(), &theirs)
        .await
        .unwrap();
    h.create(
        "mine",
        json!({"chart": "test/app", "version": "0.1.0", "values": {"message": "my own message"}}),
    )
    .await;
    let (phase, ready, _) = ready_condition(&h, "mine", "OwnershipConflict").await;
    assert_eq!(phase, HelmReleasePhase::Failed);
    assert!(
        ready.message.contains("ConfigMap/mine-settings"),
        "{}",
        ready.message
    );
    assert!(ready.message.contains("default.other"), "{}", ready.message);
    let settings = config_maps.get("mine-settings").await.unwrap();
    assert_eq!(settings.data.unwrap()["message"], "theirs");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_edited_in_place_is_put_back_at_once() {
    let h = Harness::start().await;
    // The default interval (10m): only the edit itself can bring the re-apply.
    h.create(
        "web",
        json!({"chart": "test/app", "version": "0.1.0", "values": {"message": "desired"}}),
    )
    .await;
    let ready = h.ready("web").await;
    let config_maps: Api<ConfigMap> = Api::namespaced(h.client.clone(), NS);
    config_maps
        .patch(
            "web-settings",
            &PatchParams {
                field_manager: Some("kubectl-edit".into()),
                ..PatchParams::default()
            },
            &Patch::Merge(json!({"data": {"message": "edited by hand"}})),
        )
        .await
        .unwrap();
    eventually("the edit to be put back", || async {
        let settings = config_maps.get("web-settings").await.ok()?;
        (settings.data?.get("message")? == "desired").then_some(())
    })
    .await;
    eventually("the drift metric", || async {
        let text = h.metrics().encode().unwrap();
        text.contains("upstart_helmrelease_drift_corrections_total 1")
            .then_some(())
    })
    .await;
    event_with_reason(
        &h.client,
        "DriftCorrected",
        "ConfigMap/web-settings (changed by hand)",
    )
    .await;
    // Put back once: the correction is not itself taken for another edit.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let text = h.metrics().encode().unwrap();
    assert!(text.contains("upstart_helmrelease_drift_corrections_total 1"));
    let after = h.releases().get("web").await.unwrap();
    assert_eq!(
        after.status, ready.status,
        "a Ready release stays Ready while an edit is put back"
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployment_image_edited_by_hand_is_put_back_and_the_release_returns_to_ready() {
    let h = Harness::start().await;
    h.create("img", json!({"chart": "test/app", "version": "0.1.0"}))
        .await;
    h.ready("img").await;
    let deployments: Api<Deployment> = Api::namespaced(h.client.clone(), NS);
    deployments
        .patch(
            "img",
            &PatchParams {
                field_manager: Some("kubectl-edit".into()),
                ..PatchParams::default()
            },
            &Patch::Strategic(json!({"spec": {"template": {"spec": {"containers": [
                {"name": "app", "image": "example/app:edited"}
            ]}}}})),
        )
        .await
        .unwrap();
    let image = |d: Deployment| d.spec?.template.spec?.containers.first()?.image.clone();
    eventually("the image to be put back", || async {
        let live = deployments.get("img").await.ok()?;
        (image(live)? == "example/app:1").then_some(())
    })
    .await;
    eventually("drift counted and the release Ready again", || async {
        let text = h.metrics().encode().unwrap();
        (text.contains("upstart_helmrelease_drift_corrections_total 1")
            && text.contains("upstart_helmreleases{phase=\"Ready\"} 1"))
        .then_some(())
    })
    .await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_write_the_apply_does_not_take_back_is_answered_once() {
    let h = Harness::start().await;
    h.create("noted", json!({"chart": "test/app", "version": "0.1.0"}))
        .await;
    h.ready("noted").await;
    let config_maps: Api<ConfigMap> = Api::namespaced(h.client.clone(), NS);
    // A field the chart does not set: the re-apply leaves it (server-side apply removes only
    // what it applied before), so that manager's write stays newer than ours.
    config_maps
        .patch(
            "noted-settings",
            &PatchParams {
                field_manager: Some("some-controller".into()),
                ..PatchParams::default()
            },
            &Patch::Merge(json!({"data": {"extra": "added by hand"}})),
        )
        .await
        .unwrap();
    eventually("the write to be answered", || async {
        let text = h.metrics().encode().unwrap();
        text.contains("upstart_helmrelease_drift_corrections_total 1")
            .then_some(())
    })
    .await;
    // Every reconcile after it sees that write again: wake the release a few times.
    for round in 0..3 {
        h.releases()
            .patch(
                "noted",
                &PatchParams::default(),
                &Patch::Merge(
                    json!({"metadata": {"annotations": {"example.com/round": round.to_string()}}}),
                ),
            )
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let text = h.metrics().encode().unwrap();
    assert!(
        text.contains("upstart_helmrelease_drift_corrections_total 1"),
        "answered once, not in a loop"
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_release_is_reapplied_on_the_interval_without_leaving_ready_or_counting_drift() {
    let h = Harness::start().await;
    h.create(
        "steady",
        json!({"chart": "test/app", "version": "0.1.0", "interval": "1s", "values": {"message": "desired"}}),
    )
    .await;
    let ready = h.ready("steady").await;
    let applied = |text: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix("upstart_helmrelease_objects_applied_total "))
            .and_then(|n| n.trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    let before = applied(&h.metrics().encode().unwrap());
    // Edits by hand are put back as they happen (see above); the interval re-apply stays as
    // the safety net. It changes nothing, so it is never taken for drift: the Deployment's
    // status written by another manager through /status included.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let text = h.metrics().encode().unwrap();
    assert!(applied(&text) > before, "re-applied on the interval");
    assert!(
        !text.contains("upstart_helmrelease_drift_corrections_total 1"),
        "no drift counted"
    );
    let after = h.releases().get("steady").await.unwrap();
    assert_eq!(
        after.status, ready.status,
        "a periodic re-apply leaves status as it was"
    );
    h.stop().await;
}
