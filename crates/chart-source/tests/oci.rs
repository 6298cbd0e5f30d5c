//! OCI registries: a real registry (CNCF distribution, Debian's `docker-registry`, installed by
//! `scripts/bootstrap-tools`), charts pushed with the real `helm push`, fetched by alias and by
//! direct reference. The registry's access log tells how often the chart layer was downloaded.

#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

mod common;

use std::time::Duration;

use common::{config, packaged, sha256_hex, source};
use upstart_chart_source::Error;
use upstart_failure::Classify;
use upstart_test_support::registry::Registry;

/// Packages `name` at `version`, pushes it with `helm push --plain-http` into
/// `oci://HOST/charts` (logged in when the registry asks) and returns the archive's hex sha256.
fn push(registry: &Registry, name: &str, version: &str) -> String {
    let chart = packaged(name, version);
    registry.push_chart(&chart.file_name(), &chart.archive);
    chart.digest
}

/// How many times a blob with this digest was downloaded (GET, status 200).
fn blob_downloads(registry: &Registry, hex: &str) -> usize {
    let needle = format!("/blobs/sha256:{hex} HTTP/1.1\" 200");
    registry
        .access_log()
        .lines()
        .filter(|line| line.contains("\"GET ") && line.contains(&needle))
        .count()
}

fn alias_yaml(registry: &Registry) -> String {
    format!(
        "repositories: {{reg: {{url: \"oci://{}/charts\", plainHttp: true}}}}",
        registry.host()
    )
}

#[tokio::test]
async fn oci_chart_pushed_with_helm_is_fetched_by_alias_and_direct_reference_and_downloaded_once() {
    let registry = Registry::start();
    let digest_010 = push(&registry, "tiny", "0.1.0");
    let digest_020 = push(&registry, "tiny", "0.2.0");
    push(&registry, "tiny", "0.3.0-rc.1");
    let s = source(config(&alias_yaml(&registry)));

    // No version: the newest stable tag.
    let chart = s.source.fetch("reg/tiny", None).await.unwrap();
    assert_eq!(
        (chart.name.as_str(), chart.version.as_str()),
        ("tiny", "0.2.0")
    );
    assert_eq!(chart.digest, format!("sha256:{digest_020}"));
    assert!(chart.path.join("templates/cm.yaml").is_file());
    assert_eq!(blob_downloads(&registry, &digest_020), 1);

    // The same tag again, by range, by exact version and by direct reference: the manifest
    // is resolved, but the cached layer is not downloaded again.
    let again = s.source.fetch("reg/tiny", Some("^0.2")).await.unwrap();
    assert_eq!(again, chart);
    let exact = s.source.fetch("reg/tiny", Some("0.2.0")).await.unwrap();
    assert_eq!(exact, chart);
    let direct = format!("oci://{}/charts/tiny", registry.host());
    let direct_chart = s.source.fetch(&direct, Some("0.2.0")).await.unwrap();
    assert_eq!(direct_chart, chart);
    assert_eq!(blob_downloads(&registry, &digest_020), 1);

    let older = s.source.fetch("reg/tiny", Some("~0.1")).await.unwrap();
    assert_eq!(older.version, "0.1.0");
    assert_eq!(older.digest, format!("sha256:{digest_010}"));
    let pre = s.source.fetch("reg/tiny", Some(">=0.3.0-0")).await.unwrap();
    assert_eq!(pre.version, "0.3.0-rc.1");

    // Concurrent fetches of a not yet cached tag download it once.
    let fresh = source(config(&alias_yaml(&registry)));
    let fetches = (0..6).map(|_| {
        let source = fresh.source.clone();
        tokio::spawn(async move { source.fetch("reg/tiny", Some("0.1.0")).await })
    });
    for result in futures::future::join_all(fetches).await {
        assert_eq!(result.unwrap().unwrap().version, "0.1.0");
    }
    assert_eq!(blob_downloads(&registry, &digest_010), 2);
}

#[tokio::test]
async fn unlisted_oci_reference_needs_allow_unlisted() {
    let registry = Registry::start();
    let digest = push(&registry, "tiny", "1.0.0");
    let direct = format!("oci://{}/charts/tiny", registry.host());

    let s = source(config("{}"));
    let error = s.source.fetch(&direct, None).await.unwrap_err();
    assert!(matches!(error, Error::UnlistedRepository { .. }), "{error}");
    assert!(error.to_string().contains("allowUnlisted"), "{error}");
    assert_eq!(blob_downloads(&registry, &digest), 0);

    let s = source(config("allowUnlisted: true\nunlistedPlainHttp: true"));
    let chart = s.source.fetch(&direct, None).await.unwrap();
    assert_eq!(chart.version, "1.0.0");
    assert_eq!(chart.digest, format!("sha256:{digest}"));
    assert_eq!(
        sha256_hex(
            &std::fs::read(
                s.cache
                    .path()
                    .join(format!("cache/archives/sha256/{digest}.tgz"))
            )
            .unwrap()
        ),
        digest
    );
}

#[tokio::test]
async fn missing_oci_chart_and_unmatched_versions_are_retried_errors() {
    let registry = Registry::start();
    push(&registry, "tiny", "1.0.0");
    push(&registry, "tiny", "1.1.0");
    let s = source(config(&alias_yaml(&registry)));

    let error = s.source.fetch("reg/absent", None).await.unwrap_err();
    assert!(matches!(error, Error::ChartNotFound { .. }), "{error}");
    assert!(error.is_transient(), "the chart may be pushed later");

    let error = s.source.fetch("reg/tiny", Some("^2")).await.unwrap_err();
    assert!(matches!(error, Error::NoMatchingVersion { .. }), "{error}");
    assert!(
        error.to_string().contains("available: 1.1.0, 1.0.0"),
        "{error}"
    );

    let error = s.source.fetch("reg/tiny", Some("9.9.9")).await.unwrap_err();
    assert!(matches!(error, Error::NoMatchingVersion { .. }), "{error}");
    assert!(error.to_string().contains("1.1.0, 1.0.0"), "{error}");
    assert!(error.is_transient(), "the version may be pushed later");
}

#[tokio::test]
async fn registry_credentials_from_basic_auth_or_docker_config_are_used_and_never_shown() {
    let registry = Registry::start_with_basic_auth();
    let digest = push(&registry, "tiny", "1.0.0");
    let yaml = format!(
        "repositories: {{reg: {{url: \"oci://{}/charts\", plainHttp: true, credentialsSecret: reg-auth}}}}",
        registry.host()
    );
    let with = |credentials: upstart_chart_source::Credentials| {
        common::source_with(
            config(&yaml),
            std::collections::HashMap::from([("reg".to_owned(), credentials)]),
        )
    };

    let anonymous = source(config(&yaml));
    let error = anonymous.source.fetch("reg/tiny", None).await.unwrap_err();
    assert!(matches!(error, Error::AccessDenied { .. }), "{error}");
    assert!(!error.is_transient());

    let wrong = with(upstart_chart_source::Credentials {
        basic: Some(upstart_chart_source::BasicAuth {
            username: "robot".into(),
            password: "not-hunter2-but-secret".into(),
        }),
        ..Default::default()
    });
    let error = wrong.source.fetch("reg/tiny", None).await.unwrap_err();
    let shown = format!("{error} {error:?}");
    assert!(!shown.contains("not-hunter2-but-secret"), "{shown}");
    assert!(!error.is_transient(), "{error}");

    let basic = with(upstart_chart_source::Credentials {
        basic: Some(upstart_chart_source::BasicAuth {
            username: "robot".into(),
            password: "hunter2".into(),
        }),
        ..Default::default()
    });
    let chart = basic.source.fetch("reg/tiny", None).await.unwrap();
    assert_eq!(chart.digest, format!("sha256:{digest}"));

    // A kubernetes.io/dockerconfigjson Secret: auth is base64("robot:hunter2").
    let mut data = std::collections::BTreeMap::new();
    data.insert(
        ".dockerconfigjson".to_owned(),
        format!(
            "{{\"auths\":{{\"{}\":{{\"auth\":\"cm9ib3Q6aHVudGVyMg==\"}}}}}}",
            registry.host()
        )
        .into_bytes(),
    );
    let docker = with(upstart_chart_source::Credentials::from_secret_data(&data));
    let chart = docker
        .source
        .fetch("reg/tiny", Some("1.0.0"))
        .await
        .unwrap();
    assert_eq!(chart.version, "1.0.0");
}

#[tokio::test]
async fn a_dependency_in_an_oci_registry_is_fetched_when_the_registry_is_configured() {
    let registry = Registry::start();
    let digest = push(&registry, "tiny", "0.1.0");
    let root = tempfile::tempdir().unwrap();
    common::chart_dir(root.path(), "app", "app", "0.1.0");
    common::write(
        &root.path().join("app"),
        "Chart.yaml",
        &format!(
            "apiVersion: v2\nname: app\nversion: 0.1.0\ndependencies:\n  - {{name: tiny, version: ^0.1, repository: \"oci://{}/charts\"}}\n",
            registry.host()
        ),
    );
    let roots = format!("localRoots: [\"{}\"]", root.path().display());
    let s = source(config(&format!("{}\n{roots}", alias_yaml(&registry))));
    let chart = s.source.fetch("file:app", None).await.unwrap();
    assert_eq!(chart.dependencies.len(), 1);
    assert_eq!(chart.dependencies[0].digest, format!("sha256:{digest}"));
    assert!(chart.path.join("charts/tiny-0.1.0.tgz").is_file());

    // The same registry not configured: refused, naming the chart, the dependency and the fix.
    let s = source(config(&roots));
    let error = s.source.fetch("file:app", None).await.unwrap_err();
    assert!(
        matches!(error, Error::UnlistedDependencyRepository { .. }),
        "{error}"
    );
    assert!(error.to_string().contains("allowUnlisted"), "{error}");
}

/// Chart `tiny` 0.1.0 whose ConfigMap says `greeting`: the same version with other content,
/// as a re-push of a tag carries.
fn tiny_saying(greeting: &str) -> upstart_chart_package::PackagedChart {
    let tmp = tempfile::tempdir().unwrap();
    let dir = common::chart_dir(tmp.path(), "tiny", "tiny", "0.1.0");
    common::write(&dir, "values.yaml", &format!("greeting: {greeting}\n"));
    upstart_chart_package::package_chart(&dir).unwrap()
}

/// Pushes a packaged chart with `helm push --plain-http` into `oci://HOST/charts`.
fn push_chart(registry: &Registry, chart: &upstart_chart_package::PackagedChart) {
    registry.push_chart(&chart.file_name(), &chart.archive);
}

#[tokio::test]
async fn an_oci_digest_reference_reads_exactly_that_manifest_while_its_tag_follows_a_re_push() {
    let registry = Registry::start();
    let first = tiny_saying("first");
    push_chart(&registry, &first);
    let s = source(config(&alias_yaml(&registry)));
    let tagged = format!("oci://{}/charts/tiny:0.1.0", registry.host());
    let now = Duration::ZERO;

    let d1 = s
        .source
        .resolve_manifest(&tagged, None, now)
        .await
        .unwrap()
        .expect("an OCI chart has a manifest");
    let by_tag = s.source.fetch(&tagged, None).await.unwrap();
    assert_eq!(by_tag.version, "0.1.0");
    assert_eq!(by_tag.digest, format!("sha256:{}", first.digest));
    assert_eq!(by_tag.manifest_digest.as_deref(), Some(d1.as_str()));
    // The same manifest by alias and version: the same digest is recorded.
    let by_alias = s.source.fetch("reg/tiny", Some("0.1.0")).await.unwrap();
    assert_eq!(by_alias.manifest_digest.as_deref(), Some(d1.as_str()));

    // The tag moves to other content of the same version.
    let second = tiny_saying("second");
    push_chart(&registry, &second);
    let within_interval = s
        .source
        .resolve_manifest(&tagged, None, Duration::from_secs(3600))
        .await
        .unwrap();
    assert_eq!(
        within_interval.as_deref(),
        Some(d1.as_str()),
        "a resolution younger than the interval is reused"
    );
    let d2 = s
        .source
        .resolve_manifest(&tagged, None, now)
        .await
        .unwrap()
        .unwrap();
    assert_ne!(d1, d2, "the re-pushed tag resolves to its new manifest");
    let moved = s.source.fetch(&tagged, None).await.unwrap();
    assert_eq!(moved.digest, format!("sha256:{}", second.digest));
    assert_eq!(moved.manifest_digest.as_deref(), Some(d2.as_str()));

    // By digest: the first content still, whatever the tag says now.
    let pinned = format!("oci://{}/charts/tiny@{d1}", registry.host());
    assert_eq!(
        s.source.resolve_manifest(&pinned, None, now).await.unwrap(),
        Some(d1.clone())
    );
    let old = s.source.fetch(&pinned, None).await.unwrap();
    assert_eq!(old.digest, format!("sha256:{}", first.digest));
    assert_eq!(old.manifest_digest.as_deref(), Some(d1.as_str()));
    let old = s.source.fetch(&pinned, Some("^0.1")).await.unwrap();
    assert_eq!(old.version, "0.1.0");
    // A tag resolved earlier is read from the manifest it was resolved to.
    let at = s.source.fetch_at(&tagged, None, Some(&d1)).await.unwrap();
    assert_eq!(at.digest, format!("sha256:{}", first.digest));
}

#[tokio::test]
async fn a_tag_and_a_version_that_disagree_are_refused_naming_both() {
    let registry = Registry::start();
    push_chart(&registry, &tiny_saying("hello"));
    let s = source(config(&alias_yaml(&registry)));
    let tagged = format!("oci://{}/charts/tiny:0.1.0", registry.host());

    assert_eq!(
        s.source.fetch(&tagged, Some("^0.1")).await.unwrap().version,
        "0.1.0",
        "a version the tag satisfies is fine"
    );
    let error = s.source.fetch(&tagged, Some("0.2.0")).await.unwrap_err();
    assert!(matches!(error, Error::InvalidReference { .. }), "{error}");
    assert!(!error.is_transient(), "only a spec change fixes it");
    let text = error.to_string();
    for part in ["tag \"0.1.0\"", "\"0.2.0\"", "drop `version`"] {
        assert!(text.contains(part), "{part} not in {text}");
    }
    let d = s
        .source
        .resolve_manifest(&tagged, None, Duration::ZERO)
        .await
        .unwrap()
        .unwrap();
    let pinned = format!("oci://{}/charts/tiny@{d}", registry.host());
    let error = s.source.fetch(&pinned, Some("^2")).await.unwrap_err();
    assert!(matches!(error, Error::InvalidReference { .. }), "{error}");
    assert!(error.to_string().contains("version 0.1.0"), "{error}");

    // A digest the registry does not have: not found, naming it.
    let absent = format!("sha256:{}", "0".repeat(64));
    let error = s
        .source
        .fetch(
            &format!("oci://{}/charts/tiny@{absent}", registry.host()),
            None,
        )
        .await
        .unwrap_err();
    assert!(matches!(error, Error::ChartNotFound { .. }), "{error}");
    assert!(error.to_string().contains(&absent), "{error}");
}

#[tokio::test]
async fn image_digest_is_the_manifest_digest_of_the_tag_and_follows_a_re_push() {
    let registry = Registry::start();
    let first = registry.push_image("charts/api", "1.4", "first").await;
    let s = source(config(&alias_yaml(&registry)));
    let now = Duration::ZERO;

    let digest = s
        .source
        .image_digest(&registry.host(), "charts/api", "1.4", now)
        .await
        .unwrap();
    assert_eq!(digest, first);

    let second = registry.push_image("charts/api", "1.4", "second").await;
    assert_ne!(first, second);
    assert_eq!(
        s.source
            .image_digest(
                &registry.host(),
                "charts/api",
                "1.4",
                Duration::from_secs(3600)
            )
            .await
            .unwrap(),
        first,
        "reused within the interval"
    );
    assert_eq!(
        s.source
            .image_digest(&registry.host(), "charts/api", "1.4", now)
            .await
            .unwrap(),
        second
    );

    let error = s
        .source
        .image_digest(&registry.host(), "charts/api", "9.9", now)
        .await
        .unwrap_err();
    assert!(matches!(error, Error::ImageNotFound { .. }), "{error}");
    assert!(error.is_transient(), "the tag may be pushed later");

    // Outside every configured repository's path, the registry is not allowed.
    registry.push_image("other/api", "1", "x").await;
    let error = s
        .source
        .image_digest(&registry.host(), "other/api", "1", now)
        .await
        .unwrap_err();
    assert!(
        matches!(error, Error::UnlistedImageRegistry { .. }),
        "{error}"
    );
    assert!(error.to_string().contains("allowUnlisted"), "{error}");
    let open = source(config("allowUnlisted: true\nunlistedPlainHttp: true"));
    open.source
        .image_digest(&registry.host(), "other/api", "1", now)
        .await
        .unwrap();
}

#[tokio::test]
async fn image_digest_uses_the_registry_credentials_and_never_shows_them() {
    let registry = Registry::start_with_basic_auth();
    let digest = registry.push_image("charts/api", "1", "x").await;
    let yaml = format!(
        "repositories: {{reg: {{url: \"oci://{}/charts\", plainHttp: true, credentialsSecret: reg-auth}}}}",
        registry.host()
    );
    let anonymous = source(config(&yaml));
    let error = anonymous
        .source
        .image_digest(&registry.host(), "charts/api", "1", Duration::ZERO)
        .await
        .unwrap_err();
    assert!(matches!(error, Error::AccessDenied { .. }), "{error}");

    let with = common::source_with(
        config(&yaml),
        std::collections::HashMap::from([(
            "reg".to_owned(),
            upstart_chart_source::Credentials {
                basic: Some(upstart_chart_source::BasicAuth {
                    username: "robot".into(),
                    password: "hunter2".into(),
                }),
                ..Default::default()
            },
        )]),
    );
    let resolved = with
        .source
        .image_digest(&registry.host(), "charts/api", "1", Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(resolved, digest);
    let shown = format!("{error} {error:?}");
    assert!(!shown.contains("hunter2"), "{shown}");
}
