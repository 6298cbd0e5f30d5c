//! The catalog seen from an environment: services the listed ones depend on are added from it
//! (dependency closure), or reported missing when the closure is off; a template revision
//! that fails validation is never copied (the last good copy runs on, and the environment
//! says so); a pinned environment keeps the copy it has.

use k8s_openapi::api::events::v1::Event;
use upstart_api::labels::{TEMPLATE_ANNOTATION, TEMPLATE_REVISION_ANNOTATION};
use upstart_control_plane::{Fault, Verb};

use super::*;

/// `web` needs the service `auth`, which needs the service `db`.
async fn chain_of_templates(h: &Harness) {
    h.create_template(
        "web",
        json!({"helmReleases": {"app": {"chart": "test/app",
            "dependencies": [{"name": "auth"}],
            "values": {"url": "<< auth.outputs.URL >>"}}}}),
    )
    .await;
    h.create_template(
        "auth",
        json!({"helmReleases": {"api": {"chart": "test/app",
            "dependencies": [{"name": "db", "kind": "UpstartService"}]}}}),
    )
    .await;
    h.create_template(
        "db",
        json!({"helmReleases": {"postgres": {"chart": "test/app"}}}),
    )
    .await;
}

fn status(env: &UpstartEnvironment) -> &upstart_api::v1alpha1::UpstartEnvironmentStatus {
    env.status.as_ref().expect("status")
}

async fn events_with(h: &Harness, reason: &str) -> Vec<String> {
    let events: Api<Event> = Api::all(h.client.clone());
    events
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some(reason))
        .filter_map(|e| e.note)
        .collect()
}

/// The revision annotation of a live service.
async fn revision_of(h: &Harness, namespace: &str, service: &str) -> String {
    let live = h.services(namespace).get(service).await.unwrap();
    live.annotations()[TEMPLATE_REVISION_ANNOTATION].clone()
}

async fn edit_template(h: &Harness, name: &str, spec: serde_json::Value) {
    h.services(CATALOG)
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": spec })),
        )
        .await
        .unwrap();
}

fn templates_condition(env: &UpstartEnvironment) -> (String, String, String) {
    condition(env, "TemplatesUpToDate")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_that_listed_services_depend_on_are_added_from_the_catalog_transitively() {
    let h = Harness::start().await;
    chain_of_templates(&h).await;
    h.create_environment(
        "closed",
        json!({"services": [{"name": "web", "template": {"name": "web"}}]}),
    )
    .await;
    let env = h
        .environment_where("closed", "auth and db added", |e| {
            e.status
                .as_ref()
                .is_some_and(|s| s.added_services.len() == 2)
        })
        .await;
    let added: Vec<(String, Vec<String>)> = status(&env)
        .added_services
        .iter()
        .map(|a| (a.name.clone(), a.required_by.clone()))
        .collect();
    assert_eq!(
        added,
        [
            ("auth".to_owned(), vec!["web/app".to_owned()]),
            ("db".to_owned(), vec!["auth/api".to_owned()]),
        ]
    );
    let env = h
        .environment_where("closed", "three services counted", |e| {
            e.status.as_ref().and_then(|s| s.total_services) == Some(3)
        })
        .await;
    assert_ne!(status(&env).phase, Some(EnvironmentPhase::Failed));
    for name in ["web", "auth", "db"] {
        let live = h.services("closed").get(name).await.unwrap();
        assert_eq!(live.annotations()[TEMPLATE_ANNOTATION], name);
        assert_eq!(live.labels()[ENVIRONMENT_LABEL], "closed");
    }
    let revisions: Vec<&str> = status(&env)
        .templates
        .iter()
        .map(|t| t.template.as_str())
        .collect();
    assert_eq!(
        revisions,
        ["web", "auth", "db"],
        "each copy's revision is recorded"
    );
    let notes = events_with(&h, "ServiceAdded").await;
    assert!(
        notes
            .iter()
            .any(|n| n.contains("auth") && n.contains("web/app")),
        "an Event says what was added and why: {notes:?}"
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_closure_a_missing_dependency_is_reported_instead_of_waited_for() {
    let h = Harness::start().await;
    chain_of_templates(&h).await;
    h.create_environment(
        "open",
        json!({"closure": false, "services": [{"name": "web", "template": {"name": "web"}}]}),
    )
    .await;
    let env = h
        .environment_where("open", "the missing dependency said", |e| {
            e.status
                .as_ref()
                .and_then(|s| find(&s.conditions, READY))
                .is_some_and(|c| c.reason == "MissingDependency")
        })
        .await;
    assert_eq!(
        status(&env).phase,
        Some(EnvironmentPhase::Provisioning),
        "not failed: an object applied by hand would heal it"
    );
    let (_, _, message) = condition(&env, READY);
    assert!(
        message.contains("release web/app depends on auth") && message.contains("spec.closure"),
        "names the release, the dependency and the fix: {message}"
    );
    assert!(status(&env).added_services.is_empty());
    assert!(h.services("open").get_opt("auth").await.unwrap().is_none());
    assert!(
        h.services("open").get_opt("web").await.unwrap().is_some(),
        "the listed service is applied and waits"
    );
    let notes = events_with(&h, "MissingDependency").await;
    assert!(
        notes.iter().any(|n| n.contains("web/app depends on auth")),
        "a Warning Event says it too: {notes:?}"
    );

    // The closure turned on (its default): the missing services arrive.
    h.environments()
        .patch(
            "open",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"closure": null}})),
        )
        .await
        .unwrap();
    let env = h
        .environment_where("open", "auth and db added", |e| {
            e.status
                .as_ref()
                .is_some_and(|s| s.added_services.len() == 2)
        })
        .await;
    assert_ne!(status(&env).phase, Some(EnvironmentPhase::Failed));
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_template_is_never_copied_and_the_last_good_copy_runs_on() {
    let h = Harness::start().await;
    let good = json!({"helmReleases": {"app": {"chart": "test/app", "values": {"tag": "1"}}}});
    h.create_template("web", good.clone()).await;
    h.create_environment(
        "safe",
        json!({"services": [{"name": "web", "template": {"name": "web"}}]}),
    )
    .await;
    let env = h
        .environment_where("safe", "the template copied", |e| {
            e.status.as_ref().is_some_and(|s| s.templates.len() == 1)
        })
        .await;
    let copied = status(&env).templates[0].revision.clone();
    assert_eq!(revision_of(&h, "safe", "web").await, copied);
    h.create_children("safe", "web").await;
    h.release_ready("safe", "web-app").await;

    // An edit that fails catalog validation: an expression on an undeclared dependency.
    edit_template(
        &h,
        "web",
        json!({"helmReleases": {"app": {"values": {"tag": "2", "url": "<< auth.outputs.URL >>"}}}}),
    )
    .await;
    let env = h
        .environment_where("safe", "the invalid revision refused", |e| {
            e.status
                .as_ref()
                .and_then(|s| find(&s.conditions, "TemplatesUpToDate"))
                .is_some_and(|c| c.reason == "TemplateInvalid")
        })
        .await;
    let (up_to_date, _, message) = templates_condition(&env);
    assert_eq!(up_to_date, "False");
    assert!(
        message.contains("template web") && message.contains("unknown name auth"),
        "names the template and the error: {message}"
    );
    let recorded = &status(&env).templates[0];
    assert_eq!(recorded.revision, copied, "the last good revision runs");
    assert!(
        recorded.catalog_revision.is_some(),
        "the refused one is named"
    );
    let live = h.services("safe").get("web").await.unwrap();
    assert_eq!(
        live.spec.helm_releases["app"].values,
        Some(json!({"tag": "1"})),
        "the service keeps its last good copy"
    );
    assert_ne!(
        status(&env).phase,
        Some(EnvironmentPhase::Failed),
        "what runs keeps running"
    );
    let notes = events_with(&h, "TemplateInvalid").await;
    assert!(
        notes
            .iter()
            .any(|n| n.contains("template web") && n.contains("unknown name auth")),
        "an Event names the template and the error: {notes:?}"
    );

    // An environment created now has no good copy to run: it says so and waits for a fix.
    h.create_environment(
        "late",
        json!({"services": [{"name": "web", "template": {"name": "web"}}]}),
    )
    .await;
    let late = h.phase("late", EnvironmentPhase::Failed).await;
    let (_, reason, message) = condition(&late, "Ready");
    assert_eq!(reason, "TemplateInvalid");
    assert!(message.contains("no earlier copy"), "{message}");
    assert!(h.services("late").get_opt("web").await.unwrap().is_none());

    // Fixed in the catalog: both copy the new revision.
    edit_template(
        &h,
        "web",
        json!({"helmReleases": {"app": {"values": {"tag": "2", "url": null}}}}),
    )
    .await;
    for name in ["safe", "late"] {
        h.environment_where(name, "the fixed revision copied", |e| {
            e.status
                .as_ref()
                .and_then(|s| find(&s.conditions, "TemplatesUpToDate"))
                .is_some_and(|c| c.status == "True")
        })
        .await;
        let live = eventually("the service to run the fix", || async {
            let live = h.services(name).get_opt("web").await.unwrap()?;
            (live.spec.helm_releases["app"].values == Some(json!({"tag": "2"}))).then_some(live)
        })
        .await;
        assert_ne!(live.annotations()[TEMPLATE_REVISION_ANNOTATION], copied);
    }
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconciles_read_members_and_templates_from_the_watch_caches_without_listing_them() {
    let h = Harness::start().await;
    h.create_template(
        "web",
        json!({"helmReleases": {"app": {"chart": "test/app", "values": {"tag": "1"}}}}),
    )
    .await;
    h.create_environment(
        "cached",
        json!({"services": [{"name": "web", "template": {"name": "web"}}]}),
    )
    .await;
    h.environment_where("cached", "the template copied", |e| {
        e.status.as_ref().is_some_and(|s| s.templates.len() == 1)
    })
    .await;
    h.create_children("cached", "web").await;
    h.release_ready("cached", "web-app").await;
    // Counted, not failed: a zero delay only counts the LISTs of one namespace (the watches
    // list the whole cluster, once, when they start).
    let count = |resource: &str, namespace: &str| {
        h.cluster.faults().inject(
            Fault::on(Verb::List)
                .resource(resource)
                .namespace(namespace)
                .always()
                .delay(Duration::ZERO),
        )
    };
    let counted = [
        count("upstartservices", CATALOG),
        count("upstartservices", "cached"),
        count("helmreleases", "cached"),
    ];

    // A template edit, the copy it brings, and the service's readiness: each wakes the
    // environment, which reads the catalog and its members each time.
    edit_template(
        &h,
        "web",
        json!({"helmReleases": {"app": {"values": {"tag": "2"}}}}),
    )
    .await;
    eventually("the new revision copied", || async {
        let live = h.services("cached").get_opt("web").await.unwrap()?;
        (live.spec.helm_releases["app"].values == Some(json!({"tag": "2"}))).then_some(())
    })
    .await;
    h.mark_service_ready("cached", "web").await;
    let env = h.phase("cached", EnvironmentPhase::Ready).await;
    assert_eq!(
        status(&env).templates[0].revision,
        revision_of(&h, "cached", "web").await
    );
    let lists = counted.map(|id| h.cluster.faults().hits(id));
    assert_eq!(
        lists,
        [0, 0, 0],
        "LISTs of the catalog's templates, the namespace's services and its releases"
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pinned_environment_keeps_its_copy_until_it_follows_again() {
    let h = Harness::start().await;
    h.create_template(
        "web",
        json!({"helmReleases": {"app": {"chart": "test/app", "values": {"tag": "1"}}}}),
    )
    .await;
    h.create_environment(
        "pin",
        json!({"templateUpdates": "pinned",
               "services": [{"name": "web", "template": {"name": "web"},
                             "overrides": {"app": {"values": {"extra": "a"}}}}]}),
    )
    .await;
    let env = h
        .environment_where("pin", "the template copied", |e| {
            e.status.as_ref().is_some_and(|s| s.templates.len() == 1)
        })
        .await;
    let pinned = status(&env).templates[0].revision.clone();

    edit_template(
        &h,
        "web",
        json!({"helmReleases": {"app": {"values": {"tag": "2"}}}}),
    )
    .await;
    let env = h
        .environment_where("pin", "the new revision seen and not taken", |e| {
            e.status.as_ref().is_some_and(|s| {
                s.templates
                    .first()
                    .is_some_and(|t| t.catalog_revision.is_some())
            })
        })
        .await;
    let (up_to_date, reason, message) = templates_condition(&env);
    assert_eq!(
        (up_to_date.as_str(), reason.as_str()),
        ("False", "TemplatePinned")
    );
    assert!(message.contains("service web"), "{message}");
    assert_eq!(status(&env).templates[0].revision, pinned);
    assert_eq!(revision_of(&h, "pin", "web").await, pinned);

    // An override still applies to the pinned copy.
    h.environments()
        .patch(
            "pin",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"spec": {"services": [{"name": "web", "template": {"name": "web"},
                "overrides": {"app": {"values": {"extra": "b"}}}}]}}),
            ),
        )
        .await
        .unwrap();
    eventually("the override applied to the pinned copy", || async {
        let live = h.services("pin").get("web").await.unwrap();
        (live.spec.helm_releases["app"].values == Some(json!({"tag": "1", "extra": "b"})))
            .then_some(())
    })
    .await;

    // Following again: the catalog's revision is copied.
    h.environments()
        .patch(
            "pin",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"templateUpdates": "follow"}})),
        )
        .await
        .unwrap();
    eventually("the catalog's revision copied", || async {
        let live = h.services("pin").get("web").await.unwrap();
        (live.spec.helm_releases["app"].values == Some(json!({"tag": "2", "extra": "b"})))
            .then_some(())
    })
    .await;
    let env = h
        .environment_where("pin", "templates up to date", |e| {
            e.status
                .as_ref()
                .and_then(|s| find(&s.conditions, "TemplatesUpToDate"))
                .is_some_and(|c| c.status == "True")
        })
        .await;
    assert_ne!(status(&env).templates[0].revision, pinned);
    h.stop().await;
}
