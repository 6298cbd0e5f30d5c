//! Provisioning: an environment's labelled namespace, its services (from catalog templates and
//! inline) and its releases; a namespace of someone else refused; a missing template picked up
//! when the catalog gains it.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn environment_creates_its_labelled_namespace_services_from_templates_and_inline_and_its_releases()
 {
    let h = Harness::start().await;
    h.create_template(
        "web",
        json!({"helmReleases": {
            "db": {"chart": "test/app", "version": "0.1.0"},
            "frontEnd": {"chart": "test/app", "version": "0.1.0",
                         "values": {"tag": "main", "readyAfter": "100ms"}}
        }}),
    )
    .await;
    h.create_environment(
        "pr-1",
        json!({
            "helmReleases": {"launch-darkly": {"chart": "test/app", "version": "0.1.0"}},
            "services": [
                {"name": "web", "template": {"name": "web"},
                 "overrides": {"frontEnd": {"values": {"tag": "pr-1"}}}},
                {"name": "inline", "spec": {"helmReleases": {"cache": {"chart": "test/app"}}}},
                {"name": "off", "template": {"name": "web"}, "enabled": false}
            ]
        }),
    )
    .await;

    let env = h
        .environment_where("pr-1", "two services counted", |e| {
            e.status.as_ref().and_then(|s| s.services.as_deref()) == Some("0/2")
        })
        .await;
    let status = env.status.as_ref().unwrap();
    assert_eq!(status.phase, Some(EnvironmentPhase::Provisioning));
    assert_eq!(status.namespace.as_deref(), Some("pr-1"));
    assert_eq!(condition(&env, NAMESPACE_READY).0, "True");
    assert!(env.finalizers().iter().any(|f| f == FINALIZER));

    let namespace = h.namespaces().get("pr-1").await.unwrap();
    assert_eq!(namespace.labels()[ENVIRONMENT_LABEL], "pr-1");
    assert_eq!(namespace.owner_references()[0].uid, env.uid().unwrap());

    let web = h.services("pr-1").get("web").await.unwrap();
    assert_eq!(web.labels()[ENVIRONMENT_LABEL], "pr-1");
    assert_eq!(web.owner_references()[0].uid, env.uid().unwrap());
    assert_eq!(
        web.spec.helm_releases["frontEnd"].values,
        Some(json!({"tag": "pr-1", "readyAfter": "100ms"})),
        "the override is deep-merged into the template's values"
    );
    let inline = h.services("pr-1").get("inline").await.unwrap();
    assert_eq!(inline.spec.helm_releases["cache"].chart, "test/app");
    assert!(h.services("pr-1").get_opt("off").await.unwrap().is_none());

    let ld = h.release_ready("pr-1", "pr-1-launch-darkly").await;
    assert_eq!(ld.spec.release_name.as_deref(), Some("launch-darkly"));
    assert_eq!(ld.labels()[ENVIRONMENT_LABEL], "pr-1");

    // An override change touches only that service's spec.
    let web_generation = web.metadata.generation;
    let inline_generation = inline.metadata.generation;
    h.environments()
        .patch(
            "pr-1",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"services": [
                {"name": "web", "template": {"name": "web"},
                 "overrides": {"frontEnd": {"values": {"tag": "pr-2"}}}},
                {"name": "inline", "spec": {"helmReleases": {"cache": {"chart": "test/app"}}}},
                {"name": "off", "template": {"name": "web"}, "enabled": false}
            ]}})),
        )
        .await
        .unwrap();
    let web = eventually("the new override", || async {
        let web = h.services("pr-1").get("web").await.unwrap();
        (web.spec.helm_releases["frontEnd"].values
            == Some(json!({"tag": "pr-2", "readyAfter": "100ms"})))
        .then_some(web)
    })
    .await;
    assert_eq!(web.metadata.generation, web_generation.map(|g| g + 1));
    assert_eq!(
        web.spec.helm_releases["db"].values, None,
        "other releases of the service are unchanged"
    );
    let inline = h.services("pr-1").get("inline").await.unwrap();
    assert_eq!(inline.metadata.generation, inline_generation);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn existing_namespace_of_someone_else_is_refused_and_never_deleted() {
    let h = Harness::start().await;
    h.namespaces()
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "taken"}})).unwrap(),
        )
        .await
        .unwrap();
    h.create_environment(
        "intruder",
        json!({
            "namespace": "taken",
            "services": [{"name": "inline", "spec": {"helmReleases": {"cache": {"chart": "test/app"}}}}]
        }),
    )
    .await;
    let env = h.phase("intruder", EnvironmentPhase::Failed).await;
    let (status, reason, message) = condition(&env, NAMESPACE_READY);
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "NamespaceNotOwned")
    );
    assert!(message.contains("taken"), "{message}");
    assert_eq!(condition(&env, "Stalled").0, "True");
    assert!(
        h.services("taken")
            .get_opt("inline")
            .await
            .unwrap()
            .is_none()
    );
    let namespace = h.namespaces().get("taken").await.unwrap();
    assert!(
        namespace.labels().get(ENVIRONMENT_LABEL).is_none(),
        "not adopted"
    );

    h.environments()
        .delete("intruder", &DeleteParams::default())
        .await
        .unwrap();
    h.gone("intruder").await;
    let namespace = h.namespaces().get("taken").await.unwrap();
    assert!(namespace.metadata.deletion_timestamp.is_none());
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_template_is_reported_then_picked_up_when_the_catalog_gains_it() {
    let h = Harness::start().await;
    h.create_environment(
        "early",
        json!({"services": [
            {"name": "web", "template": {"name": "web"}},
            {"name": "inline", "spec": {"helmReleases": {"cache": {"chart": "test/app"}}}}
        ]}),
    )
    .await;
    let env = h.phase("early", EnvironmentPhase::Failed).await;
    let (status, reason, message) = condition(&env, READY);
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "TemplateNotFound")
    );
    assert!(message.contains("web"), "{message}");
    // The rest of the environment is there regardless.
    h.services("early").get("inline").await.unwrap();

    h.create_template(
        "web",
        json!({"helmReleases": {"db": {"chart": "test/app", "version": "0.1.0"}}}),
    )
    .await;
    // The catalog change wakes the environment (no periodic requeue is that fast).
    eventually("the service from the new template", || async {
        h.services("early").get_opt("web").await.unwrap()
    })
    .await;
    h.phase("early", EnvironmentPhase::Provisioning).await;
    h.stop().await;
}
