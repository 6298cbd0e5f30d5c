//! Scenario (issue 19): an environment with jobs around its releases and a release switched by
//! one of its variables. A `pre` seed job that a release depends on runs first, a `post`
//! smoke test after every release; the `search` release, off while `withSearch` is `false`, is
//! installed once the variable says `true` and torn down when it says `false` again. The
//! services' jobs go through the whole stack: the environment operator reads the switches,
//! the service operator makes the jobs children, the HelmRelease operator runs each as a Job.
//! On the local cluster, `api`'s image is pinned with `imageDigest` to a tag of a local
//! registry (Debian's `docker-registry`, as the HelmRelease operator's OCI tests start it);
//! the tag pushed again rolls the Deployment out to the new digest.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails by panicking"
)]

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use upstart_api::v1alpha1::{EnvironmentPhase, HelmRelease, UpstartEnvironment};
use upstart_e2e::{Check, Error, TestEnv};

const TIMEOUT: Duration = Duration::from_secs(300);
const NAME: &str = "jobs-and-switches";

/// The environment, with `withSearch` set to `with_search`; `api`'s image pinned to the
/// digest of `image` when there is one.
fn environment(with_search: bool, image: Option<&str>) -> String {
    let api_values = match image {
        Some(image) => format!(
            "interval: 1s\n            values: {{image: {{repository: '<< imageDigest \"{image}\" >>', tag: pinned}}}}"
        ),
        None => "values: {}".to_owned(),
    };
    format!(
        r#"
apiVersion: upstartoperators.upstart.com/v1alpha1
kind: UpstartEnvironment
metadata:
  name: {NAME}
spec:
  ttl: 1h
  variables:
    withSearch: "{with_search}"
    dataset: small
  services:
    - name: shop
      spec:
        helmReleases:
          cache:
            chart: upstart-charts/redis
          api:
            chart: upstart-charts/redis
            dependencies: [{{name: seed}}, {{name: cache}}]
            {api_values}
          search:
            chart: upstart-charts/redis
            enabled: "<< environment.variables.withSearch >>"
        jobs:
          seed:
            when: pre
            template:
              spec:
                containers:
                  - name: seed
                    image: busybox:1.36
                    command: ["sh", "-c", "echo seeding $DATASET"]
                    env: [{{name: DATASET, value: "<< environment.variables.dataset >>"}}]
          smoke:
            when: post
            template:
              spec:
                containers:
                  - name: smoke
                    image: busybox:1.36
                    command: ["sh", "-c", "echo smoke test passed"]
"#
    )
}

async fn release(env: &TestEnv, name: &str) -> Result<Option<HelmRelease>, Error> {
    env.get_in::<HelmRelease>(NAME, name).await
}

async fn wait_environment(env: &TestEnv, releases: i32) -> Result<(), Error> {
    env.wait_for(
        &format!("the environment Ready with {releases} releases"),
        TIMEOUT,
        || async {
            let status = env
                .get_cluster_scoped::<UpstartEnvironment>(NAME)
                .await?
                .and_then(|e| e.status);
            Ok(match status {
                Some(s)
                    if s.phase == Some(EnvironmentPhase::Ready)
                        && s.ready_releases == Some(releases)
                        && s.total_releases == Some(releases) =>
                {
                    Check::Done(())
                }
                other => Check::Waiting(format!(
                    "{:?}",
                    other.map(|s| (s.phase, s.ready_releases, s.total_releases))
                )),
            })
        },
    )
    .await
}

#[tokio::test]
async fn jobs_run_around_the_releases_and_a_release_follows_its_variable() -> Result<(), Error> {
    // A registry on this machine is reachable by the in-process operators only.
    let local = std::env::var_os(upstart_e2e::KUBECONFIG_ENV).is_none_or(|v| v.is_empty());
    let registry = local.then(upstart_test_support::registry::Registry::start);
    let mut options = TestEnv::local_options();
    let image = registry
        .as_ref()
        .map(|r| format!("{}/team/api:1.4", r.host()));
    if let Some(registry) = &registry {
        options.repositories =
            upstart_e2e::upstart_local_cluster::RepositoryConfig::from_yaml(&format!(
                "repositories: {{team: {{url: \"oci://{}/team\", plainHttp: true}}}}",
                registry.host()
            ))
            .expect("a repository configuration");
    }
    let first = match &registry {
        Some(registry) => Some(registry.push_image("team/api", "1.4", "first").await),
        None => None,
    };
    let env = TestEnv::start_with(options).await?;
    let environment = |with_search| environment(with_search, image.as_deref());

    env.step("apply the CRDs and the environment with withSearch false");
    env.apply_dir("crds").await?;
    env.apply_yaml(&environment(false)).await?;

    env.step("Ready with cache, api and the two jobs; no search");
    wait_environment(&env, 4).await?;
    assert!(release(&env, "shop-search").await?.is_none());
    let timings = |r: Option<HelmRelease>| r.and_then(|r| r.status?.timings).expect("timings");
    let seed = timings(release(&env, "shop-seed").await?);
    let api = timings(release(&env, "shop-api").await?);
    let smoke = timings(release(&env, "shop-smoke").await?);
    assert!(
        seed.ready_at.unwrap().0 <= api.started_at.unwrap().0,
        "seed before api"
    );
    assert!(
        api.ready_at.unwrap().0 <= smoke.started_at.unwrap().0,
        "smoke after api"
    );
    let jobs = env.list_in::<Job>(NAME).await?;
    let names: Vec<String> = jobs
        .iter()
        .filter_map(|j| j.metadata.name.clone())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(names.iter().any(|n| n.starts_with("seed-")), "{names:?}");

    env.step("withSearch true: search is installed");
    env.apply_yaml(&environment(true)).await?;
    wait_environment(&env, 5).await?;

    env.step("withSearch false again: search is torn down, the rest stays");
    env.apply_yaml(&environment(false)).await?;
    env.wait_for("search to be gone", TIMEOUT, || async {
        Ok(match release(&env, "shop-search").await? {
            None => Check::Done(()),
            Some(_) => Check::Waiting("shop-search still exists".to_owned()),
        })
    })
    .await?;
    wait_environment(&env, 4).await?;
    let again: Vec<String> = env
        .list_in::<Job>(NAME)
        .await?
        .iter()
        .filter_map(|j| j.metadata.name.clone())
        .collect();
    assert_eq!(
        again, names,
        "the jobs did not run again: their inputs did not change"
    );

    if let (Some(registry), Some(image), Some(first)) = (&registry, &image, first) {
        env.step("api runs the image pinned to its digest; a re-pushed tag rolls it out");
        let pinned = |digest: &str| format!("{}/team/api@{digest}:pinned", registry.host());
        let deployed = || async {
            let deployment: Option<Deployment> = env.get_in(NAME, "api").await?;
            Ok::<_, Error>(
                deployment.and_then(|d| d.spec?.template.spec?.containers.first()?.image.clone()),
            )
        };
        assert_eq!(deployed().await?, Some(pinned(&first)));
        let second = registry.push_image("team/api", "1.4", "second").await;
        assert_ne!(first, second);
        env.wait_for("the Deployment on the new digest", TIMEOUT, || async {
            let now = deployed().await?;
            Ok(if now == Some(pinned(&second)) {
                Check::Done(())
            } else {
                Check::Waiting(format!("{now:?}"))
            })
        })
        .await?;
        let api = release(&env, "shop-api")
            .await?
            .and_then(|r| r.status)
            .expect("status");
        assert_eq!(api.image_digests.get(image), Some(&second));
    }

    env.finish().await
}
