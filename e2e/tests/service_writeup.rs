//! Scenario: the UpstartService of the original write-up (SPEC §3) runs unchanged. With the
//! environment-wide LaunchDarkly release and another-upstart-service in the same namespace,
//! every release becomes Ready, the example service's container receives the values its
//! dependencies published, releases start only once their dependencies are Ready, and the
//! Bugsnag key, which appears late, holds back only the releases that consume it.
//!
//! `examples/services/example-service.yaml` is the service applied; with
//! `UPSTART_FIXTURES_DIR` set, the write-up's own YAML (`writeup-upstart-service.yaml` there)
//! is applied instead. Every assertion reads what a real cluster shows too (status, the
//! published Secrets and ConfigMaps, the Deployment).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails by panicking"
)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::ResourceExt;
use upstart_api::labels::SERVICE_LABEL;
use upstart_api::v1alpha1::{DependencyKind, HelmRelease, ServicePhase, UpstartService};
use upstart_e2e::{Error, TestEnv};

/// A real cluster pulls images; the local one is quick.
const TIMEOUT: Duration = Duration::from_secs(600);

/// The environment variables the write-up's service is given, and where their values come from.
const WIRED: [&str; 5] = [
    "BUGSNAG_API_KEY",
    "REDIS_BACKEND_URI",
    "LAUNCHDARKLY_SDK_KEY",
    "DATABASE_URL",
    "ANOTHER_UPSTART_SERVICE_URL",
];

fn fixtures_dir() -> Option<PathBuf> {
    std::env::var_os("UPSTART_FIXTURES_DIR")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
}

fn service_file() -> PathBuf {
    match fixtures_dir() {
        Some(dir) => {
            std::path::absolute(dir.join("writeup-upstart-service.yaml")).expect("an absolute path")
        }
        None => PathBuf::from("examples/services/example-service.yaml"),
    }
}

/// examples/launch-darkly.yaml, the release the service depends on. The example service names
/// it by its key (kind EnvironmentRelease: outside an environment, the release `launch-darkly`);
/// the write-up's own YAML names it literally, as an environment called my-environment-name
/// would, so for the write-up it is applied under that name.
fn launch_darkly_yaml() -> String {
    let yaml = std::fs::read_to_string(TestEnv::workspace_path("examples/launch-darkly.yaml"))
        .expect("examples/launch-darkly.yaml");
    match fixtures_dir() {
        Some(_) => yaml.replace(
            "\n  name: launch-darkly\n",
            "\n  name: my-environment-name-launch-darkly\n",
        ),
        None => yaml,
    }
}

fn unexpected(what: &str, message: impl Into<String>) -> Error {
    Error::Unexpected {
        what: what.to_owned(),
        message: message.into(),
    }
}

async fn secret_value(env: &TestEnv, name: &str, key: &str) -> Result<String, Error> {
    let secret: Secret = env.get(name).await?.ok_or_else(|| Error::NotFound {
        what: format!("Secret {name}"),
    })?;
    let bytes = secret
        .data
        .and_then(|d| d.get(key).cloned())
        .ok_or_else(|| unexpected(&format!("Secret {name}"), format!("no key {key}")))?;
    String::from_utf8(bytes.0).map_err(|_| unexpected(&format!("Secret {name}"), "not text"))
}

async fn config_map_value(env: &TestEnv, name: &str, key: &str) -> Result<Option<String>, Error> {
    let config_map: ConfigMap = env.get(name).await?.ok_or_else(|| Error::NotFound {
        what: format!("ConfigMap {name}"),
    })?;
    Ok(config_map.data.and_then(|d| d.get(key).cloned()))
}

/// When a release started applying and became Ready, for its current generation.
struct Times {
    started: Option<Timestamp>,
    ready: Option<Timestamp>,
}

fn times(release: &HelmRelease) -> Times {
    let t = upstart_e2e::ReleaseTimes::of(release);
    Times {
        started: t.started_at,
        ready: t.ready_at,
    }
}

/// The releases each release waits for: a HelmRelease dependency is that release, an
/// UpstartService dependency every release of that service.
fn dependencies_of(releases: &[HelmRelease]) -> BTreeMap<String, BTreeSet<String>> {
    releases
        .iter()
        .map(|release| {
            let mut waits_for = BTreeSet::new();
            for dependency in &release.spec.dependencies {
                let as_service = dependency.kind != Some(DependencyKind::HelmRelease);
                let as_release = dependency.kind != Some(DependencyKind::UpstartService);
                for other in releases {
                    let named = as_release && other.name_any() == dependency.name;
                    let of_service =
                        as_service && other.labels().get(SERVICE_LABEL) == Some(&dependency.name);
                    if named || of_service {
                        waits_for.insert(other.name_any());
                    }
                }
            }
            (release.name_any(), waits_for)
        })
        .collect()
}

#[tokio::test]
async fn writeup_service_runs_with_its_outputs_wired_in_dependency_order() -> Result<(), Error> {
    let env = TestEnv::start().await?;
    let ns = env.namespace().to_owned();

    env.step("apply the CRDs");
    env.apply_dir("crds").await?;

    env.step("apply the LaunchDarkly release, another-upstart-service and the example service");
    let mut applied = env.apply_yaml(&launch_darkly_yaml()).await?;
    applied.extend(
        env.apply_files(&[
            PathBuf::from("examples/services/another-upstart-service.yaml"),
            service_file(),
        ])
        .await?,
    );
    let service_name = applied
        .iter()
        .rev()
        .find(|a| a.kind == "UpstartService")
        .map(|a| a.name.clone())
        .expect("the service file holds an UpstartService");

    env.step("everything becomes Ready");
    env.wait_ready(&applied, TIMEOUT).await?;
    let service: UpstartService = env
        .get(&service_name)
        .await?
        .ok_or_else(|| Error::NotFound {
            what: format!("UpstartService {service_name}"),
        })?;
    let status = service.status.clone().expect("a status");
    assert_eq!(status.phase, Some(ServicePhase::Ready));
    assert_eq!(status.releases.as_deref(), Some("4/4"));
    assert!(status.ready_at.is_some());
    assert_eq!(status.exported_outputs, ["url"]);
    assert!(status.release_statuses.values().all(|r| r.ready));

    env.step("the service's container holds the values its dependencies published");
    let deployments: Vec<Deployment> = env.list_in(&ns).await?;
    let mut wired = None;
    for deployment in &deployments {
        let container = env.deployment_env(&deployment.name_any(), None).await?;
        if container.value("BUGSNAG_API_KEY").is_some() {
            wired = Some(container);
        }
    }
    let container = wired.expect("a Deployment with the write-up's environment");
    let port = config_map_value(&env, "redis-outputs", "PORT")
        .await?
        .unwrap_or_else(|| "6379".to_owned());
    let expected = [
        (
            "BUGSNAG_API_KEY",
            secret_value(&env, "bugsnag-bugsnag", "BUGSNAG_API_KEY").await?,
        ),
        (
            "REDIS_BACKEND_URI",
            format!(
                "redis://{}:{port}/1",
                config_map_value(&env, "redis-outputs", "SERVICE_FQDN")
                    .await?
                    .expect("redis publishes SERVICE_FQDN")
            ),
        ),
        (
            "LAUNCHDARKLY_SDK_KEY",
            secret_value(&env, "launch-darkly", "LD_SDK_KEY_PRICING").await?,
        ),
        (
            "DATABASE_URL",
            format!(
                "postgres://{}:{}@{}:5432/{}",
                secret_value(&env, "postgres", "POSTGRES_USER").await?,
                secret_value(&env, "postgres", "POSTGRES_PASSWORD").await?,
                secret_value(&env, "postgres", "PG_HOST").await?,
                secret_value(&env, "postgres", "POSTGRES_DB").await?,
            ),
        ),
        (
            "ANOTHER_UPSTART_SERVICE_URL",
            config_map_value(&env, "another-upstart-service-outputs", "url")
                .await?
                .expect("another-upstart-service publishes url"),
        ),
    ];
    assert_eq!(expected.each_ref().map(|(name, _)| *name), WIRED);
    for (name, value) in &expected {
        assert!(!value.is_empty(), "{name}: the published value is empty");
        // Compared without printing: these are (fake) credentials.
        assert!(
            container.value(name) == Some(value.as_str()),
            "{name} does not hold the published value"
        );
    }

    env.step("each release started only once everything it depends on was Ready");
    let releases: Vec<HelmRelease> = env.list_in(&ns).await?;
    let dependencies = dependencies_of(&releases);
    let by_name: BTreeMap<String, &HelmRelease> =
        releases.iter().map(|r| (r.name_any(), r)).collect();
    for release in &releases {
        if release.labels().get(SERVICE_LABEL) == Some(&service_name) {
            assert!(
                release.spec.dependencies.iter().all(|d| d.kind.is_some()),
                "{}: every dependency resolved to a kind",
                release.name_any()
            );
        }
        let started = times(release).started.unwrap_or_else(|| {
            panic!("{} has no startedAt for its generation", release.name_any())
        });
        for dependency in &dependencies[&release.name_any()] {
            let ready = times(by_name[dependency])
                .ready
                .unwrap_or_else(|| panic!("{dependency} has no readyAt"));
            // One-second precision: "not later than".
            assert!(
                ready <= started,
                "{} started at {started} before its dependency {dependency} was Ready at {ready}",
                release.name_any()
            );
        }
    }
    let dependent = format!("{service_name}-example-service");
    let waited_for = &dependencies[&dependent];
    assert_eq!(waited_for.len(), 5, "{dependent} waits for {waited_for:?}");

    env.step("the late Bugsnag key held back only the releases consuming it");
    let bugsnag = releases
        .iter()
        .find(|r| {
            r.spec.outputs_from.iter().any(|o| {
                o.secret_ref
                    .as_ref()
                    .is_some_and(|s| s.name == "bugsnag-bugsnag")
            })
        })
        .expect("the release publishing the Bugsnag key");
    let bugsnag_ready = times(bugsnag).ready.expect("bugsnag readyAt");
    for release in &releases {
        let name = release.name_any();
        let started = times(release).started.expect("startedAt");
        if dependencies[&name].contains(&bugsnag.name_any()) {
            assert!(started >= bugsnag_ready, "{name} did not wait for bugsnag");
        } else if dependencies[&name].is_empty() && name != bugsnag.name_any() {
            assert!(
                started <= bugsnag_ready,
                "{name} depends on nothing yet started at {started}, after bugsnag was Ready at {bugsnag_ready}"
            );
        }
    }

    env.finish().await
}
