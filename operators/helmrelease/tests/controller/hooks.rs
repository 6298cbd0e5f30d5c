//! Helm hooks: order and delete policies, a failing pre-install hook, pre-delete hooks, an
//! operator killed during a hook.

use upstart_control_plane::Verb;

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hooks_run_in_order_around_the_install_and_follow_their_delete_policy() {
    let h = Harness::start().await;
    h.create(
        "hooked",
        json!({"chart": "test/hooked", "version": "0.1.0"}),
    )
    .await;
    let release = h.ready("hooked").await;
    let status = release.status.unwrap();
    let hooks: Vec<(String, String, String)> = status
        .hooks
        .iter()
        .map(|h| (h.event.clone(), h.object.clone(), h.phase.clone()))
        .collect();
    assert_eq!(
        hooks,
        [
            (
                "pre-install".into(),
                "Job/hooked-migrate".into(),
                "Succeeded".into()
            ),
            (
                "post-install".into(),
                "ConfigMap/hooked-marker".into(),
                "Succeeded".into()
            ),
        ]
    );
    let inventory: Vec<String> = status.inventory.iter().map(|e| e.name.clone()).collect();
    assert_eq!(inventory, ["hooked-settings"], "hooks are not inventory");
    let jobs: Api<k8s_openapi::api::batch::v1::Job> = Api::namespaced(h.client.clone(), NS);
    assert!(
        jobs.get_opt("hooked-migrate").await.unwrap().is_none(),
        "hook-succeeded deletes the Job"
    );
    let config_maps: Api<ConfigMap> = Api::namespaced(h.client.clone(), NS);
    assert!(
        config_maps
            .get_opt("hooked-marker")
            .await
            .unwrap()
            .is_some()
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_pre_install_hook_fails_the_release_before_anything_is_applied() {
    let h = Harness::start().await;
    h.create(
        "broken",
        json!({"chart": "test/hooked", "version": "0.1.0", "values": {"failMigration": true}}),
    )
    .await;
    let api = h.releases();
    let condition = eventually("the release to fail on its hook", || async {
        let release = api.get("broken").await.ok()?;
        let status = release.status?;
        let ready = status
            .conditions
            .iter()
            .find(|c| c.type_ == "Ready")?
            .clone();
        (status.phase == Some(HelmReleasePhase::Failed) && ready.reason == "HookFailed")
            .then_some(ready)
    })
    .await;
    assert_eq!(condition.status, "False");
    assert!(
        condition.message.contains("Job/broken-migrate"),
        "{}",
        condition.message
    );
    let config_maps: Api<ConfigMap> = Api::namespaced(h.client.clone(), NS);
    assert!(
        config_maps
            .get_opt("broken-settings")
            .await
            .unwrap()
            .is_none()
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pre_delete_hook_runs_when_the_release_is_deleted() {
    let h = Harness::start().await;
    h.create(
        "leaving",
        json!({"chart": "test/hooked", "version": "0.1.0"}),
    )
    .await;
    h.ready("leaving").await;
    let config_maps: Api<ConfigMap> = Api::namespaced(h.client.clone(), NS);
    assert!(
        config_maps
            .get_opt("leaving-farewell")
            .await
            .unwrap()
            .is_none(),
        "not at install"
    );
    h.delete("leaving").await;
    assert!(
        config_maps
            .get_opt("leaving-farewell")
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        config_maps
            .get_opt("leaving-settings")
            .await
            .unwrap()
            .is_none()
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_killed_during_a_hook_resumes_to_ready_without_running_a_hook_twice() {
    let mut h = Harness::start().await;
    // Both hooks keep the default policy (before-hook-creation): their Jobs stay, so their
    // identity tells whether they were run again.
    h.create(
        "crashy",
        json!({"chart": "test/crashy", "version": "0.1.0", "values": {"postAfter": "3s"}}),
    )
    .await;
    let jobs: Api<k8s_openapi::api::batch::v1::Job> = Api::namespaced(h.client.clone(), NS);
    let (pre, post) = eventually("the post-install hook running", || async {
        let pre = jobs.get_opt("crashy-pre").await.unwrap()?;
        let post = jobs.get_opt("crashy-post").await.unwrap()?;
        Some((pre, post))
    })
    .await;
    let completed = |job: &k8s_openapi::api::batch::v1::Job| {
        job.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| {
                c.iter()
                    .any(|c| c.type_ == "Complete" && c.status == "True")
            })
    };
    assert!(
        completed(&pre),
        "pre-install ended before post-install started"
    );
    assert!(
        !completed(&post),
        "post-install still running when the operator dies"
    );
    let api = h.releases();
    eventually("status showing the running hook", || async {
        let status = api.get("crashy").await.ok()?.status?;
        let ready = status.conditions.iter().find(|c| c.type_ == "Ready")?;
        (status.phase == Some(HelmReleasePhase::Installing)
            && ready.message.contains("Job/crashy-post"))
        .then_some(())
    })
    .await;

    h.kill().await;
    let release = api.get("crashy").await.unwrap();
    assert!(
        release
            .finalizers()
            .iter()
            .any(|f| f == "upstartoperators.upstart.com/helmrelease")
    );

    h.run_operator(h.config());
    let release = h.ready("crashy").await;
    assert!(
        release
            .finalizers()
            .iter()
            .any(|f| f == "upstartoperators.upstart.com/helmrelease"),
        "finalizer intact"
    );
    let status = release.status.unwrap();
    let hooks: Vec<(String, String)> = status
        .hooks
        .iter()
        .map(|h| (h.object.clone(), h.phase.clone()))
        .collect();
    assert_eq!(
        hooks,
        [
            ("Job/crashy-pre".to_owned(), "Succeeded".to_owned()),
            ("Job/crashy-post".to_owned(), "Succeeded".to_owned())
        ]
    );
    let pre_after = jobs.get("crashy-pre").await.unwrap();
    let post_after = jobs.get("crashy-post").await.unwrap();
    assert_eq!(pre_after.uid(), pre.uid(), "pre-install was not run again");
    assert_eq!(
        post_after.uid(),
        post.uid(),
        "post-install was waited for, not restarted"
    );
    let config_maps: Api<ConfigMap> = Api::namespaced(h.client.clone(), NS);
    assert!(
        config_maps
            .get_opt("crashy-settings")
            .await
            .unwrap()
            .is_some()
    );

    // A new generation is a new run: its hooks do run again.
    api.patch(
        "crashy",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"values": {"postAfter": "100ms"}}})),
    )
    .await
    .unwrap();
    h.ready("crashy").await;
    let post_upgrade = jobs.get("crashy-post").await.unwrap();
    assert_eq!(
        post_upgrade.uid(),
        post.uid(),
        "post-install is not an upgrade hook"
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_pre_delete_hook_holds_the_deletion_without_holding_the_operator() {
    let mut h = Harness::start().await;
    h.create(
        "leaving",
        json!({"chart": "test/farewell", "version": "0.1.0"}),
    )
    .await;
    h.ready("leaving").await;
    let api = h.releases();
    api.delete("leaving", &DeleteParams::default())
        .await
        .unwrap();
    eventually("the deletion waiting for its hook", || async {
        let status = api.get("leaving").await.ok()?.status?;
        let ready = status.conditions.iter().find(|c| c.type_ == "Ready")?;
        (status.phase == Some(HelmReleasePhase::Deleting)
            && ready.message.contains("Job/leaving-bye"))
        .then_some(())
    })
    .await;
    let jobs: Api<k8s_openapi::api::batch::v1::Job> = Api::namespaced(h.client.clone(), NS);
    let bye = jobs.get("leaving-bye").await.unwrap();
    let config_maps: Api<ConfigMap> = Api::namespaced(h.client.clone(), NS);
    assert!(
        config_maps
            .get_opt("leaving-settings")
            .await
            .unwrap()
            .is_some(),
        "the inventory goes after the pre-delete hook"
    );

    // No reconcile is left waiting on the hook: a graceful stop is immediate.
    let stopping = Instant::now();
    h.shut_down().await;
    assert!(
        stopping.elapsed() < Duration::from_secs(2),
        "{:?}",
        stopping.elapsed()
    );

    h.run_operator(h.config());
    eventually("the release to disappear", || async {
        api.get_opt("leaving")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    assert!(
        config_maps
            .get_opt("leaving-settings")
            .await
            .unwrap()
            .is_none()
    );
    let bye_after = jobs.get("leaving-bye").await.unwrap();
    assert_eq!(bye_after.uid(), bye.uid(), "the hook was not run again");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_on_a_hook_is_woken_by_its_events_not_by_polling_passes() {
    let h = Harness::start().await;
    h.create(
        "patient",
        json!({"chart": "test/farewell", "version": "0.1.0"}),
    )
    .await;
    h.ready("patient").await;
    h.cluster.faults().start_request_log();
    h.delete("patient").await;
    // The pre-delete Job runs 3 s. Each teardown pass reads it once: woken by the events of
    // the Job and of the release's own status writes, about five passes; a pass every 500 ms
    // on top of those read it 9 times or more.
    let reads = h
        .cluster
        .faults()
        .request_log()
        .iter()
        .filter(|r| r.verb == Some(Verb::Get) && r.resource == "jobs" && r.name == "patient-bye")
        .count();
    assert!(
        (1..=6).contains(&reads),
        "{reads} reads of the hook Job while it ran"
    );
    h.stop().await;
}
