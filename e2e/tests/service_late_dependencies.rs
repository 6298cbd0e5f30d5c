//! Scenario: the example service is applied before the two objects of its namespace it
//! depends on (SPEC §3). It reports both unknown names and waits, with only the releases that
//! need them held back; once they are applied, it resolves them and becomes Ready.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails by panicking"
)]

use std::time::Duration;

use upstart_api::conditions::{READY, STALLED, find};
use upstart_api::v1alpha1::{HelmRelease, UpstartService};
use upstart_e2e::{Check, Error, TestEnv};

const TIMEOUT: Duration = Duration::from_secs(600);
const RESOLVED: &str = "DependenciesResolved";

#[tokio::test]
async fn service_waits_for_dependencies_created_later_and_then_becomes_ready() -> Result<(), Error>
{
    let env = TestEnv::start().await?;

    env.step("apply the CRDs and the example service alone");
    env.apply_dir("crds").await?;
    let mut applied = env
        .apply_file("examples/services/example-service.yaml")
        .await?;

    env.step("the service names both unknown dependencies and is not stalled");
    let service = env
        .wait_for("both dependencies reported unknown", TIMEOUT, || async {
            let service: UpstartService = env.get("example-service").await?.expect("applied");
            let message = service
                .status
                .as_ref()
                .and_then(|s| find(&s.conditions, RESOLVED))
                .map(|c| c.message.clone())
                .unwrap_or_default();
            Ok(
                if message.contains("launch-darkly (kind EnvironmentRelease)")
                    && message.contains("another-upstart-service")
                {
                    Check::Done(service)
                } else {
                    Check::Waiting(message)
                },
            )
        })
        .await?;
    let status = service.status.clone().expect("a status");
    let resolved = find(&status.conditions, RESOLVED).expect("DependenciesResolved");
    assert_eq!(resolved.status, "False");
    assert_eq!(resolved.reason, "UnknownDependency");
    assert!(
        resolved.message.contains("release exampleService"),
        "{}",
        resolved.message
    );
    assert_eq!(
        find(&status.conditions, STALLED).map(|c| c.status.as_str()),
        Some("False"),
        "waiting for a dependency is not a stall"
    );
    assert_eq!(
        find(&status.conditions, READY).map(|c| c.status.as_str()),
        Some("False")
    );

    env.step("the releases that need nothing missing are installed meanwhile");
    for child in [
        "example-service-postgres",
        "example-service-redis",
        "example-service-bugsnag",
    ] {
        env.wait_object_ready(
            "upstartoperators.upstart.com/v1alpha1",
            "HelmRelease",
            None,
            child,
            TIMEOUT,
        )
        .await?;
    }
    let waiting: HelmRelease = env
        .get("example-service-example-service")
        .await?
        .expect("the dependent's child exists and waits");
    assert_ne!(
        waiting.status.and_then(|s| s.phase).map(|p| p.as_str()),
        Some("Ready")
    );

    env.step("apply the missing dependencies: everything becomes Ready");
    applied.extend(
        env.apply_files(&[
            "examples/launch-darkly.yaml",
            "examples/services/another-upstart-service.yaml",
        ])
        .await?,
    );
    env.wait_ready(&applied, TIMEOUT).await?;
    let service: UpstartService = env.get("example-service").await?.expect("applied");
    let status = service.status.expect("a status");
    assert_eq!(
        find(&status.conditions, RESOLVED).map(|c| c.status.as_str()),
        Some("True")
    );
    let child: HelmRelease = env
        .get("example-service-example-service")
        .await?
        .expect("the child");
    let kinds: Vec<(String, Option<String>)> = child
        .spec
        .dependencies
        .iter()
        .map(|d| (d.name.clone(), d.kind.map(|k| format!("{k:?}"))))
        .collect();
    assert!(
        kinds.contains(&(
            "another-upstart-service".to_owned(),
            Some("UpstartService".to_owned())
        )) && kinds.contains(&("launch-darkly".to_owned(), Some("HelmRelease".to_owned()))),
        "{kinds:?}"
    );

    env.finish().await
}
