//! Dependencies: a dependent waits for its dependencies (releases and services) and receives
//! their outputs; ambiguous names, missing output keys, rendering ahead.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dependent_waits_then_receives_its_dependency_output_in_its_values() {
    let h = Harness::start().await;
    h.create(
        "app",
        json!({
            "chart": "test/app",
            "version": "0.1.0",
            "dependencies": [{"name": "db"}],
            "values": {"password": "<< db.outputs.PASSWORD >>"}
        }),
    )
    .await;
    let api = h.releases();
    eventually("app waiting for db", || async {
        let release = api.get("app").await.ok()?;
        let status = release.status?;
        let ready = status
            .conditions
            .iter()
            .find(|c| c.type_ == "DependenciesReady")?;
        (status.phase == Some(HelmReleasePhase::WaitingForDependencies)
            && ready.message.contains("db: does not exist"))
        .then_some(())
    })
    .await;

    h.create(
        "db",
        json!({
            "chart": "test/producer",
            "version": "0.1.0",
            "values": {"password": "s3cret"},
            "outputsFrom": [{"secretRef": {"name": "db-creds"}}]
        }),
    )
    .await;
    h.ready("db").await;
    h.ready("app").await;
    let deployments: Api<Deployment> = Api::namespaced(h.client.clone(), NS);
    let deployment = deployments.get("app").await.unwrap();
    assert_eq!(env_password(&deployment).as_deref(), Some("s3cret"));
    let text = h.metrics().encode().unwrap();
    assert!(
        text.contains("upstart_dependency_handoff_seconds_count 1"),
        "hand-off measured once"
    );

    // A rotated output reaches the dependent (SPEC §2.7).
    api.patch(
        "db",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"values": {"password": "rotated"}}})),
    )
    .await
    .unwrap();
    eventually("rotated password in the dependent", || async {
        let deployment = deployments.get("app").await.ok()?;
        (env_password(&deployment).as_deref() == Some("rotated")).then_some(())
    })
    .await;
    let app = api.get("app").await.unwrap();
    let status = serde_json::to_string(&app.status).unwrap();
    assert!(
        !status.contains("rotated") && !status.contains("s3cret"),
        "status holds no value"
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dependency_on_a_service_waits_for_it_and_reads_its_external_outputs() {
    let h = Harness::start().await;
    let services: Api<upstart_api::v1alpha1::UpstartService> =
        Api::namespaced(h.client.clone(), NS);
    let service: upstart_api::v1alpha1::UpstartService = serde_json::from_value(json!({
        "apiVersion": "upstartoperators.upstart.com/v1alpha1",
        "kind": "UpstartService",
        "metadata": {"name": "svc", "namespace": NS},
        "spec": {"helmReleases": {"db": {"chart": "test/producer"}}}
    }))
    .unwrap();
    let service = services
        .create(&PostParams::default(), &service)
        .await
        .unwrap();
    // Stands in for the UpstartService operator: its child release, owned by the service.
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
            "values": {"password": "from-service"},
            "outputsFrom": [{"secretRef": {"name": "svc-db-creds"}, "scope": "external"}]
        }
    }))
    .unwrap();
    h.releases()
        .create(&PostParams::default(), &child)
        .await
        .unwrap();
    h.create(
        "consumer",
        json!({
            "chart": "test/app",
            "version": "0.1.0",
            "dependencies": [{"name": "svc"}],
            "values": {"password": "<< svc.outputs.PASSWORD >>"}
        }),
    )
    .await;
    h.ready("svc-db").await;
    let api = h.releases();
    eventually("consumer waiting for the service", || async {
        let status = api.get("consumer").await.ok()?.status?;
        (status.phase == Some(HelmReleasePhase::WaitingForDependencies)).then_some(())
    })
    .await;

    let generation = service.metadata.generation;
    services
        .patch_status(
            "svc",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"conditions": [{
                "type": "Ready", "status": "True", "reason": "Ready", "message": "",
                "observedGeneration": generation,
                "lastTransitionTime": "2026-01-01T00:00:00Z"
            }]}})),
        )
        .await
        .unwrap();
    h.ready("consumer").await;
    let deployments: Api<Deployment> = Api::namespaced(h.client.clone(), NS);
    let deployment = deployments.get("consumer").await.unwrap();
    assert_eq!(env_password(&deployment).as_deref(), Some("from-service"));
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn name_of_both_a_release_and_a_service_is_an_ambiguous_dependency() {
    let h = Harness::start().await;
    let services: Api<upstart_api::v1alpha1::UpstartService> =
        Api::namespaced(h.client.clone(), NS);
    let service = serde_json::from_value(json!({
        "apiVersion": "upstartoperators.upstart.com/v1alpha1",
        "kind": "UpstartService",
        "metadata": {"name": "shared", "namespace": NS},
        "spec": {"helmReleases": {"db": {"chart": "test/producer"}}}
    }))
    .unwrap();
    services
        .create(&PostParams::default(), &service)
        .await
        .unwrap();
    h.create("shared", json!({"chart": "test/app", "version": "0.1.0"}))
        .await;
    h.create(
        "user",
        json!({"chart": "test/app", "version": "0.1.0", "dependencies": [{"name": "shared"}]}),
    )
    .await;
    let (phase, ready, conditions) = ready_condition(&h, "user", "AmbiguousDependency").await;
    assert_eq!(phase, HelmReleasePhase::Failed);
    assert!(ready.message.contains("shared"), "{}", ready.message);
    let stalled = conditions.iter().find(|c| c.type_ == "Stalled").unwrap();
    assert_eq!(stalled.status, "True");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_output_key_is_a_wait_naming_the_key_then_proceeds_when_it_appears() {
    let h = Harness::start().await;
    h.create(
        "db",
        json!({
            "chart": "test/producer",
            "version": "0.1.0",
            "values": {"password": "pw-present-31"},
            "outputsFrom": [
                {"secretRef": {"name": "db-creds"}},
                {"secretRef": {"name": "db-extra"}, "optional": true}
            ]
        }),
    )
    .await;
    h.create(
        "app",
        json!({
            "chart": "test/app",
            "version": "0.1.0",
            "dependencies": [{"name": "db"}],
            "values": {"password": "<< db.outputs.USERNAME >>"}
        }),
    )
    .await;
    h.ready("db").await;
    let api = h.releases();
    let ready = eventually("app waiting for the USERNAME key", || async {
        let status = api.get("app").await.ok()?.status?;
        let ready = status
            .conditions
            .iter()
            .find(|c| c.type_ == "Ready")?
            .clone();
        (status.phase == Some(HelmReleasePhase::WaitingForDependencies)
            && ready.reason == "MissingOutput")
            .then_some(ready)
    })
    .await;
    assert!(ready.message.contains("USERNAME"), "{}", ready.message);
    assert!(
        ready.message.contains("PASSWORD"),
        "lists the keys that exist: {}",
        ready.message
    );
    let status = serde_json::to_string(&api.get("app").await.unwrap().status).unwrap();
    assert!(
        !status.contains("pw-present-31"),
        "no value in status: {status}"
    );
    let stalled = api
        .get("app")
        .await
        .unwrap()
        .status
        .unwrap()
        .conditions
        .into_iter()
        .find(|c| c.type_ == "Stalled");
    assert_ne!(
        stalled.map(|c| c.status).as_deref(),
        Some("True"),
        "a wait, not a failure"
    );

    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(h.client.clone(), NS);
    secrets
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": "db-extra"},
                "stringData": {"USERNAME": "admin-user"}
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    h.ready("app").await;
    let deployments: Api<Deployment> = Api::namespaced(h.client.clone(), NS);
    let deployment = deployments.get("app").await.unwrap();
    assert_eq!(env_password(&deployment).as_deref(), Some("admin-user"));
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dependent_renders_ahead_while_its_dependency_installs_and_applies_without_a_helm_run() {
    // 1. An operator whose helm records every release it renders.
    let mut h = Harness::boot().await;
    let log = h.cluster.dir().join("helm-calls.log");
    let wrapper = h.cluster.dir().join("recording-helm");
    write(
        h.cluster.dir(),
        "recording-helm",
        &format!(
            "#!/bin/sh\necho \"$*\" >> '{}'\nexec '{}' \"$@\"\n",
            log.display(),
            upstart_test_support::helm().display()
        ),
    );
    std::fs::set_permissions(
        &wrapper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    h.run_operator(Config {
        helm_path: wrapper,
        ..h.config()
    });
    let renders_of = |release: &str| {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .filter(|line| line.contains(&format!(" -- {release} ")))
            .count()
    };

    // 2. A dependency that is applied (its output ConfigMap exists) but not Ready yet.
    h.create(
        "db",
        json!({
            "chart": "test/app",
            "version": "0.1.0",
            "values": {"message": "db.internal", "readyAfter": "1h"},
            "outputsFrom": [{"configMapRef": {"name": "db-settings"}}]
        }),
    )
    .await;
    h.create(
        "web",
        json!({
            "chart": "test/app",
            "version": "0.1.0",
            "dependencies": [{"name": "db"}],
            "values": {"message": "<< db.outputs.message >>"}
        }),
    )
    .await;

    // 3. The dependent renders with the published output while it waits, and applies nothing.
    eventually("web rendered ahead", || async {
        (renders_of("web") == 1).then_some(())
    })
    .await;
    let web = h.releases().get("web").await.unwrap();
    assert_eq!(
        web.status.and_then(|s| s.phase),
        Some(HelmReleasePhase::WaitingForDependencies)
    );
    let deployments: Api<Deployment> = Api::namespaced(h.client.clone(), NS);
    assert!(deployments.get_opt("web").await.unwrap().is_none());

    // 4. Once the dependency is Ready with the same output, the apply uses that render.
    h.releases()
        .patch(
            "db",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"values": {"readyAfter": "100ms"}}})),
        )
        .await
        .unwrap();
    h.ready("db").await;
    h.ready("web").await;
    assert!(deployments.get_opt("web").await.unwrap().is_some());
    assert_eq!(renders_of("web"), 1, "the apply ran no helm of its own");
    h.stop().await;
}

/// Issue 15, "dependency flaps": a Ready dependency that goes not Ready for a while (an upgrade
/// whose Deployment takes 2 s) holds its dependent back as a wait, never as a failure, and
/// the dependent's objects are neither removed nor applied again: once the dependency is back,
/// the dependent is Ready with the same objects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dependency_flapping_to_not_ready_and_back_leaves_its_dependent_in_place() {
    let h = Harness::start().await;
    h.create(
        "base",
        json!({"chart": "test/app", "version": "0.1.0", "values": {"readyAfter": "2s"}}),
    )
    .await;
    h.create(
        "top",
        json!({"chart": "test/app", "version": "0.1.0", "dependencies": [{"name": "base"}]}),
    )
    .await;
    h.ready("base").await;
    h.ready("top").await;
    let deployments: Api<Deployment> = Api::namespaced(h.client.clone(), NS);
    let before = deployments.get("top").await.unwrap();

    let api = h.releases();
    api.patch(
        "base",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"values": {"password": "changed"}}})),
    )
    .await
    .unwrap();
    let waiting = eventually("top waiting for base", || async {
        let release = api.get("top").await.ok()?;
        let phase = release.status.as_ref()?.phase?;
        assert_ne!(phase, HelmReleasePhase::Failed, "a flap is not a failure");
        (phase == HelmReleasePhase::WaitingForDependencies).then_some(release)
    })
    .await;
    assert!(
        deployments.get_opt("top").await.unwrap().is_some(),
        "the dependent's objects stay while it waits"
    );
    assert_eq!(
        waiting.status.as_ref().unwrap().phase,
        Some(HelmReleasePhase::WaitingForDependencies)
    );

    h.ready("base").await;
    h.ready("top").await;
    let after = deployments.get("top").await.unwrap();
    assert_eq!(
        after.metadata.resource_version, before.metadata.resource_version,
        "the dependent's Deployment was not applied again"
    );
    h.stop().await;
}
