//! Scenario: the generated CRDs and the examples in `examples/` (not `examples/broken/`, which
//! the CLI's checks must refuse) are accepted by the API server, stored, read back as the typed
//! `v1alpha1` resources, and printed with the printer columns of SPEC §1. Locally no operator
//! runs, so what is read back is exactly what was applied.

use std::collections::BTreeSet;

use upstart_api::v1alpha1::{HelmRelease, UpstartEnvironment, UpstartService};
use upstart_e2e::upstart_local_cluster::{LocalClusterOptions, OperatorSet};
use upstart_e2e::{Error, TestEnv};

const API_VERSION: &str = "upstartoperators.upstart.com/v1alpha1";

/// The typed object the file at `path` (relative to the workspace root) describes.
fn from_file<K: serde::de::DeserializeOwned>(path: &str) -> K {
    let text = std::fs::read_to_string(TestEnv::workspace_path(path))
        .unwrap_or_else(|e| panic!("reading {path}: {e}"));
    serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{path} is not typed: {e}"))
}

fn not_found(what: &str) -> Error {
    Error::NotFound { what: what.into() }
}

#[tokio::test]
async fn crds_and_examples_are_accepted_by_the_api() -> Result<(), Error> {
    let env = TestEnv::start_with(LocalClusterOptions {
        operators: OperatorSet::none(),
        ..TestEnv::local_options()
    })
    .await?;

    env.step("apply the CRDs of crds/");
    let crds = env.apply_dir("crds").await?;
    let applied: BTreeSet<String> = crds.iter().map(|a| a.name.clone()).collect();
    let generated: BTreeSet<String> = upstart_api::crd::crds()
        .into_iter()
        .filter_map(|crd| crd.metadata.name)
        .collect();
    assert_eq!(applied, generated, "crds/ holds exactly the generated CRDs");

    env.step("apply the examples: services, the HelmRelease, the environment");
    let examples = env
        .apply_files(&[
            "examples/services",
            "examples/launch-darkly.yaml",
            "examples/environment.yaml",
        ])
        .await?;
    let mut described: Vec<String> = examples.iter().map(|a| a.describe()).collect();
    described.sort();
    let ns = env.namespace();
    assert_eq!(
        described,
        [
            format!("HelmRelease {ns}/launch-darkly"),
            "UpstartEnvironment my-environment-name".to_owned(),
            format!("UpstartService {ns}/another-upstart-service"),
            format!("UpstartService {ns}/example-service"),
        ]
    );

    env.step("read each back as its typed v1alpha1 resource, spec unchanged");
    for (name, file) in [
        ("example-service", "examples/services/example-service.yaml"),
        (
            "another-upstart-service",
            "examples/services/another-upstart-service.yaml",
        ),
    ] {
        let stored: UpstartService = env.get(name).await?.ok_or_else(|| not_found(name))?;
        let written: UpstartService = from_file(file);
        assert_eq!(stored.spec, written.spec, "{file}");
    }
    let release: HelmRelease = env
        .get("launch-darkly")
        .await?
        .ok_or_else(|| not_found("the HelmRelease"))?;
    assert_eq!(
        release.spec,
        from_file::<HelmRelease>("examples/launch-darkly.yaml").spec
    );
    let environment: UpstartEnvironment = env
        .get_cluster_scoped("my-environment-name")
        .await?
        .ok_or_else(|| not_found("the UpstartEnvironment"))?;
    assert_eq!(
        environment.spec,
        from_file::<UpstartEnvironment>("examples/environment.yaml").spec
    );
    assert_eq!(environment.metadata.namespace, None, "cluster-scoped");

    env.step("list them as kubectl get does: the printer columns of SPEC §1");
    let services = env.table(API_VERSION, "UpstartService").await?;
    assert_eq!(services.columns, ["Name", "Releases", "Phase", "Age"]);
    assert_eq!(services.rows.len(), 2, "{services:?}");
    let releases = env.table(API_VERSION, "HelmRelease").await?;
    assert_eq!(
        releases.columns,
        [
            "Name", "Chart", "Version", "Phase", "Ready", "Age", "Manifest", "Commit"
        ]
    );
    assert_eq!(
        releases
            .cell("launch-darkly", "Chart")
            .and_then(|c| c.as_str()),
        Some("upstart-charts/launch-darkly")
    );
    let environments = env.table(API_VERSION, "UpstartEnvironment").await?;
    assert_eq!(
        environments.columns,
        [
            "Name",
            "Namespace",
            "Services",
            "Phase",
            "Requester",
            "Endpoint",
            "Expires",
            "Age"
        ]
    );
    assert!(
        environments.cell("my-environment-name", "Age").is_some(),
        "{environments:?}"
    );

    env.step("timestamps are recorded for install-order checks");
    let times = env
        .times(API_VERSION, "UpstartService", "example-service")
        .await?;
    assert!(times.created.is_some(), "{times:?}");
    if !env.is_real_cluster() {
        assert_eq!(times.ready_since, None, "no operator has reported");
    }

    env.finish().await
}
