//! Installing and upgrading a release: to Ready, values changes, CRDs with their custom
//! resources, health timeouts, suspension, the namespace rule, a new chart version.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_is_installed_to_ready_and_reapplied_when_its_values_change() {
    let h = Harness::start().await;
    h.create(
        "web",
        json!({"chart": "test/app", "version": "0.1.0", "values": {"message": "hello"}}),
    )
    .await;

    let release = h.ready("web").await;
    let status = release.status.unwrap();
    assert_eq!(status.phase, Some(HelmReleasePhase::Ready));
    assert_eq!(status.version.as_deref(), Some("0.1.0"));
    assert!(status.chart_digest.unwrap().starts_with("sha256:"));
    let mut kinds: Vec<String> = status
        .inventory
        .iter()
        .map(|e| format!("{}/{}", e.kind, e.name))
        .collect();
    kinds.sort();
    assert_eq!(kinds, ["ConfigMap/web-settings", "Deployment/web"]);

    let config_maps: Api<ConfigMap> = Api::namespaced(h.client.clone(), NS);
    let settings = config_maps.get("web-settings").await.unwrap();
    assert_eq!(settings.data.as_ref().unwrap()["message"], "hello");
    assert_eq!(settings.labels()[RELEASE_LABEL], "default.web");

    h.releases()
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"values": {"message": "changed"}}})),
        )
        .await
        .unwrap();
    let release = h.ready("web").await;
    assert_eq!(release.status.unwrap().phase, Some(HelmReleasePhase::Ready));
    let settings = config_maps.get("web-settings").await.unwrap();
    assert_eq!(settings.data.unwrap()["message"], "changed");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_release_writes_nothing_more_to_its_status() {
    let h = Harness::start().await;
    h.create("quiet", json!({"chart": "test/app", "version": "0.1.0"}))
        .await;
    let ready = h.ready("quiet").await;
    // Several reconciles happen in this time (status writes, workload events); none may
    // change status again.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let later = h.releases().get("quiet").await.unwrap();
    assert_eq!(later.status, ready.status);
    assert_eq!(later.resource_version(), ready.resource_version());
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chart_with_a_crd_and_its_custom_resource_installs_in_one_apply() {
    let h = Harness::start().await;
    h.create(
        "widgets",
        json!({"chart": "test/widgets", "version": "0.1.0"}),
    )
    .await;
    let release = h.ready("widgets").await;
    let kinds: Vec<String> = release
        .status
        .unwrap()
        .inventory
        .iter()
        .map(|e| e.kind.clone())
        .collect();
    assert_eq!(
        kinds,
        ["CustomResourceDefinition", "Widget"],
        "inventory in apply order"
    );
    let resource = kube::discovery::ApiResource::from_gvk(&kube::api::GroupVersionKind::gvk(
        "example.com",
        "v1",
        "Widget",
    ));
    let widgets: Api<kube::api::DynamicObject> =
        Api::namespaced_with(h.client.clone(), NS, &resource);
    let widget = widgets.get("widgets").await.unwrap();
    assert_eq!(widget.data["spec"]["size"], 3);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workload_not_healthy_within_the_timeout_fails_the_release() {
    let h = Harness::start().await;
    h.create(
        "slow",
        json!({"chart": "test/app", "version": "0.1.0", "timeout": "1s", "values": {"readyAfter": "1h"}}),
    )
    .await;
    let (phase, ready, _) = ready_condition(&h, "slow", "HealthCheckFailed").await;
    assert_eq!(phase, HelmReleasePhase::Failed);
    assert!(ready.message.contains("timeout"), "{}", ready.message);
    assert!(
        ready.message.contains("Deployment/slow"),
        "{}",
        ready.message
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suspended_release_is_left_alone_until_resumed() {
    let h = Harness::start().await;
    h.create(
        "paused",
        json!({"chart": "test/app", "version": "0.1.0", "values": {"message": "one"}}),
    )
    .await;
    h.ready("paused").await;
    let api = h.releases();
    api.patch(
        "paused",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"suspend": true, "values": {"message": "two"}}})),
    )
    .await
    .unwrap();
    eventually("the release to be Suspended", || async {
        let status = api.get("paused").await.ok()?.status?;
        (status.phase == Some(HelmReleasePhase::Suspended)).then_some(())
    })
    .await;
    let config_maps: Api<ConfigMap> = Api::namespaced(h.client.clone(), NS);
    let settings = config_maps.get("paused-settings").await.unwrap();
    assert_eq!(
        settings.data.unwrap()["message"],
        "one",
        "nothing applied while suspended"
    );

    api.patch(
        "paused",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"suspend": false}})),
    )
    .await
    .unwrap();
    h.ready("paused").await;
    let settings = config_maps.get("paused-settings").await.unwrap();
    assert_eq!(settings.data.unwrap()["message"], "two");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_in_another_namespace_is_refused_and_nothing_of_that_render_is_applied() {
    let h = Harness::start().await;
    h.create(
        "outside",
        json!({"chart": "test/foreign", "version": "0.1.0"}),
    )
    .await;
    let (phase, ready, _) = ready_condition(&h, "outside", "ForeignNamespace").await;
    assert_eq!(phase, HelmReleasePhase::Failed);
    assert!(ready.message.contains("kube-public"), "{}", ready.message);
    let here: Api<ConfigMap> = Api::namespaced(h.client.clone(), NS);
    let there: Api<ConfigMap> = Api::namespaced(h.client.clone(), "kube-public");
    assert!(here.get_opt("outside-local").await.unwrap().is_none());
    assert!(there.get_opt("outside-elsewhere").await.unwrap().is_none());
    let status = h.releases().get("outside").await.unwrap().status.unwrap();
    assert!(status.inventory.is_empty());
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_chart_version_is_applied_and_an_object_its_templates_dropped_is_pruned() {
    // 1. Version 0.1.0 installs a ConfigMap and a Deployment.
    let h = Harness::start().await;
    h.create("site", json!({"chart": "test/site", "version": "0.1.0"}))
        .await;
    let status = h.ready("site").await.status.unwrap();
    assert_eq!(status.version.as_deref(), Some("0.1.0"));
    let config_maps: Api<ConfigMap> = Api::namespaced(h.client.clone(), NS);
    assert!(
        config_maps
            .get_opt("site-settings")
            .await
            .unwrap()
            .is_some()
    );

    // 2. Version 0.2.0 no longer has the ConfigMap: applied, and the ConfigMap pruned.
    h.releases()
        .patch(
            "site",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"version": "^0.2"}})),
        )
        .await
        .unwrap();
    let release = h.ready("site").await;
    let status = release.status.unwrap();
    assert_eq!(status.version.as_deref(), Some("0.2.0"));
    let inventory: Vec<String> = status
        .inventory
        .iter()
        .map(|e| format!("{}/{}", e.kind, e.name))
        .collect();
    assert_eq!(inventory, ["Deployment/site"]);
    assert!(
        config_maps
            .get_opt("site-settings")
            .await
            .unwrap()
            .is_none()
    );
    let deployments: Api<Deployment> = Api::namespaced(h.client.clone(), NS);
    assert!(deployments.get_opt("site").await.unwrap().is_some());
    h.stop().await;
}
