//! `version` accepts exact semver versions and Helm's range syntax, and nothing else.

use serde_json::json;
use upstart_crd_validation::CompiledSchema;

fn refused(version: &str) -> bool {
    let crd = upstart_api::crd::helm_release_crd();
    let schema =
        upstart_crd_validation::schema_for_version(&crd, upstart_api::VERSION).expect("schema");
    let object = json!({
        "apiVersion": "upstartoperators.upstart.com/v1alpha1", "kind": "HelmRelease",
        "metadata": {"name": "r", "namespace": "n"},
        "spec": {"chart": "upstart-charts/postgres", "version": version}
    });
    !CompiledSchema::new(&schema)
        .validate(&object, None)
        .is_empty()
}

#[test]
fn exact_versions_and_helm_ranges_are_accepted() {
    for version in [
        "0.1.3",
        "v1.2.3",
        "1.0.0-rc.1",
        "1.0.0+build.5",
        "1.0.0-alpha.1+sha.5114f85",
        "^0.1",
        "~1.2.3",
        "~>1.2",
        ">=1.2 <2",
        ">=1.2, <2",
        "1.x",
        "1.2.*",
        "*",
        "1.2 - 1.4",
        "^1 || ^2",
        ">= 1.2.3",
        "!=1.5.0",
        "=1.0.0",
        "<=2",
    ] {
        assert!(!refused(version), "{version:?} should be accepted");
    }
}

#[test]
fn anything_else_is_refused() {
    for version in [
        "latest", "", "1.2.3.4", "01.2.3", ">>1", "1.2 -", "^", "1.0.0-", "stable",
    ] {
        assert!(refused(version), "{version:?} should be refused");
    }
}
