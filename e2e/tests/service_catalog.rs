//! Scenario: UpstartServices in the catalog namespace are templates (SPEC §3). The example
//! services are valid templates; a template whose expression names an undeclared dependency is
//! invalid, and says which release and which name; no template is ever deployed.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails by panicking"
)]

use std::time::Duration;

use upstart_api::conditions::{READY, VALID, find};
use upstart_api::v1alpha1::{HelmRelease, ServicePhase, UpstartService};
use upstart_e2e::{Check, Error, TestEnv};

const TIMEOUT: Duration = Duration::from_secs(120);

/// The service once its operator has validated its current generation.
async fn validated(env: &TestEnv, namespace: &str, name: &str) -> Result<UpstartService, Error> {
    env.wait_for(
        &format!("template {name} to be validated"),
        TIMEOUT,
        || async {
            let Some(service) = env.get_in::<UpstartService>(namespace, name).await? else {
                return Ok(Check::Waiting("not found".to_owned()));
            };
            let status = service.status.clone().unwrap_or_default();
            Ok(
                if status.observed_generation == service.metadata.generation
                    && find(&status.conditions, VALID).is_some()
                {
                    Check::Done(service)
                } else {
                    Check::Waiting(format!("{:?}", status.phase))
                },
            )
        },
    )
    .await
}

fn condition(service: &UpstartService, type_: &str) -> (String, String, String) {
    let status = service.status.as_ref().expect("a status");
    let c = find(&status.conditions, type_).expect("the condition");
    (c.status.clone(), c.reason.clone(), c.message.clone())
}

#[tokio::test]
async fn catalog_templates_are_validated_and_never_deployed() -> Result<(), Error> {
    let env = TestEnv::start().await?;
    let catalog = env.catalog_namespace();

    env.step("apply the CRDs");
    env.apply_dir("crds").await?;

    env.step("apply the example services and an invalid template to the catalog");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let invalid = dir.path().join("invalid-template.yaml");
    std::fs::write(
        &invalid,
        r#"apiVersion: upstartoperators.upstart.com/v1alpha1
kind: UpstartService
metadata:
  name: e2e-invalid-template
spec:
  helmReleases:
    postgres:
      chart: upstart-charts/postgres
      version: 0.1.3
    app:
      chart: upstart-charts/example-service
      values:
        env:
          DATABASE_URL: "postgres://<< postgres.outputs.POSTGRES_USER >>@db"
"#,
    )
    .expect("writing the template");
    env.apply_catalog(&[
        std::path::PathBuf::from("examples/services"),
        invalid.clone(),
    ])
    .await?;

    env.step("the example services are valid templates");
    for name in ["example-service", "another-upstart-service"] {
        let service = validated(&env, &catalog, name).await?;
        let (valid, _, message) = condition(&service, VALID);
        assert_eq!(valid, "True", "{name}: {message}");
        assert_eq!(condition(&service, READY).0, "True");
        assert_eq!(
            service.status.as_ref().and_then(|s| s.phase),
            Some(ServicePhase::Template)
        );
    }

    env.step("the invalid template names the release and the undeclared name");
    let service = validated(&env, &catalog, "e2e-invalid-template").await?;
    let (valid, reason, message) = condition(&service, VALID);
    assert_eq!(
        (valid.as_str(), reason.as_str()),
        ("False", "TemplateInvalid")
    );
    assert!(
        message.contains("spec.helmReleases.app.values.env.DATABASE_URL")
            && message.contains("unknown name postgres"),
        "{message}"
    );

    env.step("no template was deployed");
    let releases: Vec<HelmRelease> = env.list_in(&catalog).await?;
    let deployed: Vec<String> = releases
        .iter()
        .filter_map(|r| r.metadata.labels.as_ref())
        .filter_map(|l| l.get(upstart_api::labels::SERVICE_LABEL).cloned())
        .filter(|s| {
            [
                "example-service",
                "another-upstart-service",
                "e2e-invalid-template",
            ]
            .contains(&s.as_str())
        })
        .collect();
    assert!(deployed.is_empty(), "deployed templates: {deployed:?}");

    env.finish().await
}
