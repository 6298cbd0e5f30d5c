//! Expressions in values: syntax errors, the environment and service roots, aliases; spec
//! errors stall the release without retries until the spec changes.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expression_syntax_error_stalls_the_release_until_the_spec_changes() {
    let h = Harness::start().await;
    h.create(
        "typo",
        json!({"chart": "test/app", "version": "0.1.0", "values": {"message": "<< release.name"}}),
    )
    .await;
    let (phase, ready, conditions) = ready_condition(&h, "typo", "ExpressionSyntax").await;
    assert_eq!(phase, HelmReleasePhase::Failed);
    assert_eq!(ready.status, "False");
    let stalled = conditions.iter().find(|c| c.type_ == "Stalled").unwrap();
    assert_eq!(stalled.status, "True");
    let config_maps: Api<ConfigMap> = Api::namespaced(h.client.clone(), NS);
    assert!(
        config_maps
            .get_opt("typo-settings")
            .await
            .unwrap()
            .is_none()
    );

    h.releases()
        .patch(
            "typo",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"values": {"message": "<< release.name >>"}}})),
        )
        .await
        .unwrap();
    h.ready("typo").await;
    let settings = config_maps.get("typo-settings").await.unwrap();
    assert_eq!(settings.data.unwrap()["message"], "typo");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn environment_and_service_roots_reach_the_values_and_a_variables_change_reapplies() {
    let h = Harness::start().await;
    let ns = "pr-7";
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(h.client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {
                "name": ns,
                "labels": {upstart_api::labels::ENVIRONMENT_LABEL: "pr-7"}
            }}))
            .unwrap(),
        )
        .await
        .unwrap();
    let environments: Api<upstart_api::v1alpha1::UpstartEnvironment> = Api::all(h.client.clone());
    environments
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "apiVersion": "upstartoperators.upstart.com/v1alpha1",
                "kind": "UpstartEnvironment",
                "metadata": {"name": "pr-7"},
                "spec": {"variables": {"BRANCH": "feature-1"}}
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    let services: Api<upstart_api::v1alpha1::UpstartService> =
        Api::namespaced(h.client.clone(), ns);
    let service = services
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "apiVersion": "upstartoperators.upstart.com/v1alpha1",
                "kind": "UpstartService",
                "metadata": {"name": "checkout", "namespace": ns},
                "spec": {"helmReleases": {"web": {"chart": "test/app"}}}
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    let releases: Api<HelmRelease> = Api::namespaced(h.client.clone(), ns);
    let release: HelmRelease = serde_json::from_value(json!({
        "apiVersion": "upstartoperators.upstart.com/v1alpha1",
        "kind": "HelmRelease",
        "metadata": {
            "name": "checkout-web",
            "namespace": ns,
            "ownerReferences": [{
                "apiVersion": "upstartoperators.upstart.com/v1alpha1",
                "kind": "UpstartService",
                "name": "checkout",
                "uid": service.metadata.uid.clone().unwrap()
            }]
        },
        "spec": {
            "chart": "test/app",
            "version": "0.1.0",
            "values": {"message": "<< environment.name >>/<< environment.namespace >>/<< environment.variables.BRANCH >>/<< service.name >>"}
        }
    }))
    .unwrap();
    releases
        .create(&PostParams::default(), &release)
        .await
        .unwrap();
    let config_maps: Api<ConfigMap> = Api::namespaced(h.client.clone(), ns);
    let message = || async {
        let settings = config_maps
            .get_opt("checkout-web-settings")
            .await
            .unwrap()?;
        settings.data?.get("message").cloned()
    };
    eventually("the environment and service in the values", || async {
        (message().await? == "pr-7/pr-7/feature-1/checkout").then_some(())
    })
    .await;

    // The interval is 10 minutes: only the environment watch can bring this in time.
    environments
        .patch(
            "pr-7",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"variables": {"BRANCH": "feature-2"}}})),
        )
        .await
        .unwrap();
    eventually("the changed variable in the values", || async {
        (message().await? == "pr-7/pr-7/feature-2/checkout").then_some(())
    })
    .await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn environment_root_outside_an_environment_namespace_is_a_spec_error() {
    let h = Harness::start().await;
    h.create(
        "lonely",
        json!({"chart": "test/app", "version": "0.1.0",
               "values": {"message": "<< environment.variables.BRANCH >>"}}),
    )
    .await;
    let (phase, ready, _) = ready_condition(&h, "lonely", "UnknownExpressionRoot").await;
    assert_eq!(phase, HelmReleasePhase::Failed);
    assert!(ready.message.contains("environment"), "{}", ready.message);
    h.stop().await;
}

/// `upstart_reconciles_total` of the HelmRelease controller.
fn reconciles(h: &Harness) -> u64 {
    let text = h.metrics().encode().unwrap();
    text.lines()
        .find(|l| l.starts_with("upstart_reconciles_total{controller=\"helmrelease\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undeclared_alias_stalls_the_release_without_retries_until_the_spec_is_fixed() {
    let h = Harness::start().await;
    h.create(
        "orphan",
        json!({"chart": "test/app", "version": "0.1.0",
               "values": {"message": "<< cache.outputs.HOST >>"}}),
    )
    .await;
    let (phase, ready, conditions) = ready_condition(&h, "orphan", "UnknownExpressionRoot").await;
    assert_eq!(phase, HelmReleasePhase::Failed);
    assert!(ready.message.contains("cache"), "{}", ready.message);
    let stalled = conditions.iter().find(|c| c.type_ == "Stalled").unwrap();
    assert_eq!(stalled.status, "True");

    // Let the reconcile that wrote the status and its echo settle, then watch for retries.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = reconciles(&h);
    let status_before = h.releases().get("orphan").await.unwrap();
    assert!(before > 0);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(reconciles(&h), before, "no retries without a spec change");
    let status_after = h.releases().get("orphan").await.unwrap();
    assert_eq!(
        status_after.resource_version(),
        status_before.resource_version()
    );
    let config_maps: Api<ConfigMap> = Api::namespaced(h.client.clone(), NS);
    assert!(
        config_maps
            .get_opt("orphan-settings")
            .await
            .unwrap()
            .is_none()
    );

    h.releases()
        .patch(
            "orphan",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"values": {"message": "fixed"}}})),
        )
        .await
        .unwrap();
    h.ready("orphan").await;
    let settings = config_maps.get("orphan-settings").await.unwrap();
    assert_eq!(settings.data.unwrap()["message"], "fixed");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dependency_alias_used_twice_stalls_the_release_naming_it() {
    let h = Harness::start().await;
    h.create(
        "twice",
        json!({"chart": "test/app", "version": "0.1.0",
               "dependencies": [{"name": "cache"}, {"name": "redis", "as": "cache"}]}),
    )
    .await;
    let (phase, ready, conditions) = ready_condition(&h, "twice", "DuplicateAlias").await;
    assert_eq!(phase, HelmReleasePhase::Failed);
    assert!(ready.message.contains("cache"), "{}", ready.message);
    let stalled = conditions.iter().find(|c| c.type_ == "Stalled").unwrap();
    assert_eq!(stalled.status, "True");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = reconciles(&h);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(reconciles(&h), before, "no retries without a spec change");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespace_joining_an_environment_wakes_a_release_stalled_on_environment_root() {
    let h = Harness::start().await;
    let ns = "late-env";
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(h.client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap(),
        )
        .await
        .unwrap();
    let environments: Api<upstart_api::v1alpha1::UpstartEnvironment> = Api::all(h.client.clone());
    environments
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "apiVersion": "upstartoperators.upstart.com/v1alpha1",
                "kind": "UpstartEnvironment",
                "metadata": {"name": ns},
                "spec": {"variables": {"REGION": "eu"}}
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    let releases: Api<HelmRelease> = Api::namespaced(h.client.clone(), ns);
    releases
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "apiVersion": "upstartoperators.upstart.com/v1alpha1",
                "kind": "HelmRelease",
                "metadata": {"name": "web", "namespace": ns},
                "spec": {"chart": "test/app", "version": "0.1.0",
                         "values": {"message": "<< environment.variables.REGION >>"}}
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    eventually("web stalled without an environment", || async {
        let status = releases.get("web").await.ok()?.status?;
        let ready = status.conditions.iter().find(|c| c.type_ == "Ready")?;
        (ready.reason == "UnknownExpressionRoot").then_some(())
    })
    .await;

    namespaces
        .patch(
            ns,
            &PatchParams::default(),
            &Patch::Merge(
                json!({"metadata": {"labels": {upstart_api::labels::ENVIRONMENT_LABEL: ns}}}),
            ),
        )
        .await
        .unwrap();
    let config_maps: Api<ConfigMap> = Api::namespaced(h.client.clone(), ns);
    eventually("the variable in the values", || async {
        let settings = config_maps.get_opt("web-settings").await.unwrap()?;
        (settings.data?.get("message")? == "eu").then_some(())
    })
    .await;
    h.stop().await;
}
