//! Sleep and wake (workloads to zero and back, and nothing of the HelmRelease operator's
//! undoing it), the namespace's ResourceQuota and LimitRange, and the caps on environments.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{LimitRange, ResourceQuota};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::jiff::Timestamp;
use upstart_api::labels::ASLEEP_ANNOTATION;
use upstart_environment_operator::admission::QUOTA_NAME;

use super::*;

fn replicas(deployment: &Deployment) -> Option<i32> {
    deployment.spec.as_ref()?.replicas
}

async fn replicas_become(h: &Harness, namespace: &str, name: &str, want: i32) {
    let api: Api<Deployment> = Api::namespaced(h.client.clone(), namespace);
    eventually(&format!("Deployment {name} at {want} replicas"), || async {
        let deployment = api.get_opt(name).await.unwrap()?;
        (replicas(&deployment) == Some(want)).then_some(())
    })
    .await;
}

/// The environment operator's metric lines starting with `prefix`.
fn metric(h: &Harness, prefix: &str) -> Vec<String> {
    let text = h.metrics.encode().unwrap();
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .map(str::to_owned)
        .collect()
}

/// The HelmRelease operator's count of applied objects.
fn objects_applied(h: &Harness) -> u64 {
    let text = h.operators[0].metrics.encode().unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("upstart_helmrelease_objects_applied_total "))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

async fn switch(h: &Harness, name: &str, asleep: bool) {
    h.environments()
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"sleep": {"manual": {
                "asleep": asleep, "since": Timestamp::now().to_string()
            }}}})),
        )
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sleep_scales_workloads_to_zero_and_neither_drift_correction_nor_an_interval_reapply_wakes_it()
 {
    let h = Harness::start().await;
    // The releases' Deployments are named by their keys (`.Release.Name`): web and db.
    h.create_environment(
        "nap",
        json!({
            "helmReleases": {
                "web": {"chart": "test/app", "version": "0.1.0", "interval": "1s"},
                "db": {"chart": "test/app", "version": "0.1.0"}
            },
            "sleep": {"excludeReleases": ["nap-db"]}
        }),
    )
    .await;
    h.phase("nap", EnvironmentPhase::Ready).await;

    // 1. Asleep by hand: web at zero, db (excluded) untouched.
    switch(&h, "nap", true).await;
    let env = h.phase("nap", EnvironmentPhase::Sleeping).await;
    let sleep = env.status.unwrap().sleep.unwrap();
    assert!(sleep.asleep);
    assert_eq!(sleep.by, "manual");
    replicas_become(&h, "nap", "web", 0).await;
    assert!(
        metric(&h, "upstart_environments{")
            .contains(&"upstart_environments{phase=\"Sleeping\"} 1".to_owned()),
        "{:?}",
        metric(&h, "upstart_environments{")
    );
    let db = h.releases("nap").get("nap-db").await.unwrap();
    assert!(!db.annotations().contains_key(ASLEEP_ANNOTATION));
    let deployments: Api<Deployment> = Api::namespaced(h.client.clone(), "nap");
    assert_eq!(replicas(&deployments.get("db").await.unwrap()), Some(1));
    eventually("web's status to record the sleep", || async {
        let web = h.releases("nap").get("nap-web").await.unwrap();
        web.status.filter(|s| s.asleep).map(|_| ())
    })
    .await;

    // 2. Interval re-applies (every second) apply web again, still at zero.
    let before = objects_applied(&h);
    eventually("two more interval re-applies", || async {
        (objects_applied(&h) >= before + 4).then_some(())
    })
    .await;
    assert_eq!(replicas(&deployments.get("web").await.unwrap()), Some(0));

    // 3. Scaled up by hand: the drift correction puts zero back, not the rendered one.
    deployments
        .patch(
            "web",
            &PatchParams::apply("kubectl-scale").force(),
            &Patch::Apply(json!({"apiVersion": "apps/v1", "kind": "Deployment",
                                 "metadata": {"name": "web"}, "spec": {"replicas": 3}})),
        )
        .await
        .unwrap();
    replicas_become(&h, "nap", "web", 0).await;
    assert_eq!(
        h.environments()
            .get("nap")
            .await
            .unwrap()
            .status
            .unwrap()
            .phase,
        Some(EnvironmentPhase::Sleeping)
    );

    // 4. Woken: the rendered replica count is back and the environment Ready again.
    switch(&h, "nap", false).await;
    replicas_become(&h, "nap", "web", 1).await;
    h.phase("nap", EnvironmentPhase::Ready).await;
    let web = h.releases("nap").get("nap-web").await.unwrap();
    assert!(!web.annotations().contains_key(ASLEEP_ANNOTATION));
    assert_eq!(
        metric(&h, "upstart_environment_sleep_transitions_total"),
        [
            "upstart_environment_sleep_transitions_total{to=\"asleep\"} 1",
            "upstart_environment_sleep_transitions_total{to=\"awake\"} 1"
        ]
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn environments_over_a_cap_or_their_quota_maximum_are_refused_and_start_when_room_is_made() {
    let h = Harness::with_config(|config| {
        config.limits.max_environments = Some(1);
        config.limits.default_quota = [("pods".into(), "5".into())].into();
        config.limits.max_quota = [("pods".into(), "10".into())].into();
        config.limits.default_container_requests = [("cpu".into(), "100m".into())].into();
    })
    .await;
    // 1. The first starts, its namespace quota-bound.
    h.create_environment(
        "first",
        json!({"quota": {"containerLimits": {"memory": "256Mi"}}}),
    )
    .await;
    h.phase("first", EnvironmentPhase::Ready).await;
    let quota: Api<ResourceQuota> = Api::namespaced(h.client.clone(), "first");
    let hard = quota
        .get(QUOTA_NAME)
        .await
        .unwrap()
        .spec
        .unwrap()
        .hard
        .unwrap();
    assert_eq!(
        hard,
        BTreeMap::from([("pods".to_owned(), Quantity("5".into()))])
    );
    let limits: Api<LimitRange> = Api::namespaced(h.client.clone(), "first");
    let item = limits
        .get(QUOTA_NAME)
        .await
        .unwrap()
        .spec
        .unwrap()
        .limits
        .remove(0);
    assert_eq!(item.type_, "Container");
    assert_eq!(
        item.default_request.unwrap()["cpu"],
        Quantity("100m".into())
    );
    assert_eq!(item.default.unwrap()["memory"], Quantity("256Mi".into()));

    // 2. A second is over the cap, a third over the quota maximum: refused, nothing created.
    h.create_environment("second", json!({})).await;
    h.create_environment("greedy", json!({"quota": {"hard": {"pods": "50"}}}))
        .await;
    let second = h.phase("second", EnvironmentPhase::Refused).await;
    let (_, reason, message) = condition(&second, READY);
    assert_eq!(reason, "CapReached");
    assert!(message.contains("--max-environments"), "{message}");
    let greedy = h.phase("greedy", EnvironmentPhase::Refused).await;
    let (_, reason, message) = condition(&greedy, READY);
    assert_eq!(reason, "QuotaAboveMaximum");
    assert!(message.contains("spec.quota.hard.pods 50"), "{message}");
    assert!(h.namespaces().get_opt("second").await.unwrap().is_none());
    assert_eq!(
        metric(&h, "upstart_environments_refused_total"),
        [
            "upstart_environments_refused_total{reason=\"CapReached\"} 1",
            "upstart_environments_refused_total{reason=\"QuotaAboveMaximum\"} 1"
        ]
    );
    assert!(h.namespaces().get_opt("greedy").await.unwrap().is_none());

    // 3. The first goes: the second starts by itself.
    h.environments()
        .delete("first", &DeleteParams::default())
        .await
        .unwrap();
    h.phase("second", EnvironmentPhase::Ready).await;
    assert!(h.namespaces().get_opt("second").await.unwrap().is_some());
    assert_eq!(
        h.environments()
            .get("greedy")
            .await
            .unwrap()
            .status
            .unwrap()
            .phase,
        Some(EnvironmentPhase::Refused)
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_sleep_time_zone_is_a_spec_error_naming_it() {
    let h = Harness::start().await;
    h.create_environment(
        "zoned",
        json!({"sleep": {"schedule": {"sleep": "0 20 * * 1-5", "wake": "0 7 * * 1-5",
                                      "timeZone": "Mars/Olympus"}}}),
    )
    .await;
    let env = h.phase("zoned", EnvironmentPhase::Failed).await;
    let (_, reason, message) = condition(&env, READY);
    assert_eq!(reason, "InvalidSleepSchedule");
    assert!(
        message.contains("\"Mars/Olympus\" is not a known IANA time zone"),
        "{message}"
    );
    h.stop().await;
}
