//! Jobs of an environment and releases switched by its variables (issue 19): a `pre` job runs
//! before the release that depends on it and a `post` job after every release, a failed job
//! fails the environment saying where its logs are, a job runs again only when its inputs
//! change, and a release follows its `enabled` expression as the variable changes.

use k8s_openapi::api::batch::v1::Job;
use upstart_api::v1alpha1::ReleaseTimings;

use super::*;

/// A job's spec: a pod template (one container), failing when `fail`.
fn job(when: &str, fail: bool, env: serde_json::Value) -> serde_json::Value {
    json!({
        "when": when,
        "template": {
            "metadata": {"annotations": {"simulator.upstart.dev/fail": fail.to_string()}},
            "spec": {"containers": [{"name": "run", "image": "busybox:1.36", "env": env}]}
        }
    })
}

fn timings(release: &HelmRelease) -> ReleaseTimings {
    release
        .status
        .as_ref()
        .and_then(|s| s.timings.clone())
        .expect("timings")
}

fn jobs_of(jobs: &[Job], release: &str) -> Vec<String> {
    jobs.iter()
        .map(ResourceExt::name_any)
        .filter(|name| name.starts_with(&format!("{release}-")))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pre_job_runs_before_the_release_depending_on_it_and_a_post_job_after_every_release() {
    let h = Harness::start().await;
    h.create_environment(
        "jobs",
        json!({
            "helmReleases": {"api": {"chart": "test/app", "dependencies": [{"name": "seed"}]}},
            "jobs": {"seed": job("pre", false, json!([])), "smoke": job("post", false, json!([]))}
        }),
    )
    .await;
    let env = h.phase("jobs", EnvironmentPhase::Ready).await;
    assert_eq!(env.status.unwrap().total_releases, Some(3));
    let seed = h.release_ready("jobs", "jobs-seed").await;
    let api = h.release_ready("jobs", "jobs-api").await;
    let smoke = h.release_ready("jobs", "jobs-smoke").await;
    assert!(timings(&seed).ready_at.unwrap().0 <= timings(&api).started_at.unwrap().0);
    assert!(timings(&api).ready_at.unwrap().0 <= timings(&smoke).started_at.unwrap().0);
    let jobs: Api<Job> = Api::namespaced(h.client.clone(), "jobs");
    let jobs = jobs.list(&Default::default()).await.unwrap().items;
    assert_eq!(jobs_of(&jobs, "seed").len(), 1, "one Job runs the seed");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_job_fails_the_environment_with_its_reason_and_where_its_logs_are() {
    let h = Harness::start().await;
    h.create_environment(
        "broken-seed",
        json!({"jobs": {"seed": job("pre", true, json!([]))}}),
    )
    .await;
    let env = h.phase("broken-seed", EnvironmentPhase::Failed).await;
    let (_, _, message) = condition(&env, READY);
    assert!(message.contains("broken-seed-seed"), "{message}");
    assert!(message.contains("failed"), "{message}");
    assert!(
        message.contains("logs: kubectl logs -n broken-seed job/seed-"),
        "{message}"
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_runs_again_only_when_its_inputs_change() {
    let h = Harness::start().await;
    let spec = |data: &str, other: &str| {
        json!({
            "variables": {"data": data, "other": other},
            "jobs": {"seed": job("pre", false, json!([
                {"name": "DATA", "value": "<< environment.variables.data >>"}
            ]))}
        })
    };
    h.create_environment("rerun", spec("v1", "a")).await;
    h.phase("rerun", EnvironmentPhase::Ready).await;
    let jobs: Api<Job> = Api::namespaced(h.client.clone(), "rerun");
    let first = jobs_of(&jobs.list(&Default::default()).await.unwrap().items, "seed");
    assert_eq!(first.len(), 1);
    let uid = jobs.get(&first[0]).await.unwrap().uid();

    // A variable the job does not read: the same Job, not run again.
    let patch = |spec| Patch::Merge(json!({"spec": spec}));
    h.environments()
        .patch("rerun", &PatchParams::default(), &patch(spec("v1", "b")))
        .await
        .unwrap();
    h.environment_where("rerun", "the new generation observed and Ready", |e| {
        let s = e.status.as_ref();
        s.and_then(|s| s.observed_generation) == e.metadata.generation
            && s.and_then(|s| s.phase) == Some(EnvironmentPhase::Ready)
    })
    .await;
    let release = h.release_ready("rerun", "rerun-seed").await;
    let applied = release.status.as_ref().unwrap().applied_digest.clone();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        jobs.get(&first[0]).await.unwrap().uid(),
        uid,
        "not run again"
    );
    let again = h.releases("rerun").get("rerun-seed").await.unwrap();
    assert_eq!(again.status.unwrap().applied_digest, applied);

    // The variable it reads: a new Job, the old one pruned.
    h.environments()
        .patch("rerun", &PatchParams::default(), &patch(spec("v2", "b")))
        .await
        .unwrap();
    let second = eventually("a second Job, the first gone", || async {
        let names = jobs_of(&jobs.list(&Default::default()).await.unwrap().items, "seed");
        (names.len() == 1 && names[0] != first[0]).then(|| names[0].clone())
    })
    .await;
    let job = jobs.get(&second).await.unwrap();
    let env_var = &job.spec.unwrap().template.spec.unwrap().containers[0]
        .env
        .clone()
        .unwrap()[0];
    assert_eq!(env_var.value.as_deref(), Some("v2"));
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_disabled_by_a_variable_is_created_when_it_is_enabled_and_torn_down_when_disabled_again()
 {
    let h = Harness::start().await;
    let spec = |with_search: &str| {
        json!({
            "variables": {"withSearch": with_search},
            "helmReleases": {
                "api": {"chart": "test/app"},
                "search": {"chart": "test/app", "enabled": "<< environment.variables.withSearch >>"}
            }
        })
    };
    h.create_environment("switch", spec("false")).await;
    let env = h.phase("switch", EnvironmentPhase::Ready).await;
    assert_eq!(env.status.unwrap().total_releases, Some(1));
    assert!(
        h.releases("switch")
            .get_opt("switch-search")
            .await
            .unwrap()
            .is_none()
    );

    let patch = |spec| Patch::Merge(json!({"spec": spec}));
    h.environments()
        .patch("switch", &PatchParams::default(), &patch(spec("true")))
        .await
        .unwrap();
    h.release_ready("switch", "switch-search").await;
    h.environment_where("switch", "two releases Ready", |e| {
        e.status.as_ref().and_then(|s| s.ready_releases) == Some(2)
    })
    .await;

    h.environments()
        .patch("switch", &PatchParams::default(), &patch(spec("false")))
        .await
        .unwrap();
    eventually("search torn down", || async {
        let search = h.releases("switch").get_opt("switch-search").await.unwrap();
        search.is_none().then_some(())
    })
    .await;
    assert!(
        h.releases("switch")
            .get_opt("switch-api")
            .await
            .unwrap()
            .is_some()
    );

    // A value that is neither true nor false: a spec error naming the field.
    h.environments()
        .patch("switch", &PatchParams::default(), &patch(spec("maybe")))
        .await
        .unwrap();
    let env = h.phase("switch", EnvironmentPhase::Failed).await;
    let (_, reason, message) = condition(&env, READY);
    assert!(
        message.contains("spec.helmReleases.search.enabled"),
        "{reason}: {message}"
    );
    h.stop().await;
}
