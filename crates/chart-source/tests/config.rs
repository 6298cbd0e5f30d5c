//! Configuration mistakes are found when the chart source is built, with clear messages.

#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

use std::collections::HashMap;

use upstart_chart_source::{BasicAuth, ChartSource, Credentials, Error, RepositoryConfig};
use upstart_failure::Classify;

fn build(yaml: &str, credentials: HashMap<String, Credentials>) -> Result<ChartSource, Error> {
    let cache = tempfile::tempdir().unwrap();
    ChartSource::new(
        RepositoryConfig::from_yaml(yaml).unwrap(),
        credentials,
        cache.path(),
    )
}

fn refused(yaml: &str, expected: &str) {
    let error = build(yaml, HashMap::new()).unwrap_err();
    assert!(matches!(error, Error::Config(_)), "{yaml}: {error}");
    assert!(!error.is_transient());
    assert!(error.to_string().contains(expected), "{yaml}: {error}");
}

#[test]
fn invalid_repositories_are_configuration_errors() {
    refused("repositories: {\"a/b\": {url: \"https://h\"}}", "alias");
    refused(
        "repositories: {a: {url: \"ftp://h\"}}",
        "oci://, https:// or http://",
    );
    refused("repositories: {a: {url: \"https://h\", kind: oci}}", "kind");
    refused(
        "repositories: {a: {url: \"https://h\", plainHttp: true}}",
        "plainHttp",
    );
    refused("repositories: {a: {url: \"oci://\"}}", "oci://HOST");
    refused(
        "repositories: {a: {url: \"https://h\", caBundle: \"not pem\"}}",
        "CA bundle",
    );
    refused(
        "repositories: {a: {url: \"oci://h/c\", caBundle: \"not pem\"}}",
        "CA bundle",
    );
    refused("localRoots: [/does/not/exist/anywhere]", "local chart root");
}

#[test]
fn credentials_in_a_repository_url_are_refused_without_being_repeated() {
    let error = build(
        "repositories: {a: {url: \"https://robot:hunter2@h/charts\"}}",
        HashMap::new(),
    )
    .unwrap_err();
    let text = error.to_string();
    assert!(text.contains("credentialsSecret"), "{text}");
    assert!(!text.contains("hunter2"), "{text}");
}

#[test]
fn credentials_for_an_unknown_alias_are_refused() {
    let credentials = Credentials {
        basic: Some(BasicAuth {
            username: "u".into(),
            password: "p".into(),
        }),
        ..Credentials::default()
    };
    let error = build(
        "repositories: {a: {url: \"https://h\"}}",
        HashMap::from([("b".to_owned(), credentials)]),
    )
    .unwrap_err();
    assert!(error.to_string().contains("\"b\""), "{error}");
}

#[test]
fn leftovers_of_interrupted_work_are_removed_at_start() {
    let cache = tempfile::tempdir().unwrap();
    let tmp = cache.path().join("tmp/unpack-123/chart");
    std::fs::create_dir_all(&tmp).unwrap();
    std::fs::write(tmp.join("half-written"), b"x").unwrap();
    ChartSource::new(RepositoryConfig::default(), HashMap::new(), cache.path()).unwrap();
    assert_eq!(
        std::fs::read_dir(cache.path().join("tmp")).unwrap().count(),
        0
    );
}
