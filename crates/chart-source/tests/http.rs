//! HTTP chart repositories: the local chart repository crate as a real server, and a counting
//! hand-rolled one for conditional reads, concurrency, digests, credentials and failures.

#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{FakeRepo, FakeState, chart_dir, config, packaged, source, source_with};
use upstart_chart_source::{BasicAuth, Credentials, Error};
use upstart_failure::Classify;

/// Serves tiny 0.1.0, 0.1.3, 0.2.0 and 0.3.0-rc.1 (and `other` 1.0.0) with the local chart
/// repository crate.
async fn chart_repo() -> (upstart_chart_repo::RunningRepo, tempfile::TempDir) {
    let root = tempfile::tempdir().unwrap();
    for version in ["0.1.0", "0.1.3", "0.2.0", "0.3.0-rc.1"] {
        chart_dir(root.path(), &format!("tiny-{version}"), "tiny", version);
    }
    chart_dir(root.path(), "other", "other", "1.0.0");
    let repo = upstart_chart_repo::ChartRepo::from_dir(root.path()).unwrap();
    let running = repo.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    (running, root)
}

fn alias_config(url: &str) -> upstart_chart_source::RepositoryConfig {
    config(&format!("repositories: {{charts: {{url: \"{url}\"}}}}"))
}

#[tokio::test]
async fn alias_reference_without_version_fetches_the_newest_stable_into_the_cache() {
    let (repo, _root) = chart_repo().await;
    let s = source(alias_config(repo.url()));
    let chart = s.source.fetch("charts/tiny", None).await.unwrap();
    assert_eq!(chart.name, "tiny");
    assert_eq!(chart.version, "0.2.0");
    let served = repo
        .repo()
        .charts()
        .iter()
        .find(|c| c.version == "0.2.0")
        .unwrap()
        .clone();
    assert_eq!(chart.digest, format!("sha256:{}", served.digest));
    assert!(chart.path.join("Chart.yaml").is_file());
    assert!(chart.path.join("templates/cm.yaml").is_file());
    let cache = s.cache.path().join("cache");
    assert_eq!(chart.path, cache.join("charts/sha256").join(&served.digest));
    let stored =
        std::fs::read(cache.join(format!("archives/sha256/{}.tgz", served.digest))).unwrap();
    assert_eq!(stored, served.archive);
}

#[tokio::test]
async fn version_ranges_resolve_like_helm_against_the_index() {
    let (repo, _root) = chart_repo().await;
    let s = source(alias_config(repo.url()));
    let cases = [
        ("^0.1", "0.1.3"),
        ("~0.1.0", "0.1.3"),
        ("0.1.0", "0.1.0"),
        (">=0.1.1 <0.2", "0.1.3"),
        ("0.1.x", "0.1.3"),
        ("0.1 - 0.2", "0.2.0"),
        (">=0.3.0-0", "0.3.0-rc.1"),
        ("0.3.0-rc.1", "0.3.0-rc.1"),
        ("<0.1.3 || >0.1.3 <0.2", "0.1.0"),
    ];
    for (constraint, expected) in cases {
        let chart = s
            .source
            .fetch("charts/tiny", Some(constraint))
            .await
            .unwrap();
        assert_eq!(chart.version, expected, "constraint {constraint}");
        let yaml = std::fs::read_to_string(chart.path.join("Chart.yaml")).unwrap();
        assert!(yaml.contains(expected), "{constraint}: {yaml}");
    }
}

#[tokio::test]
async fn unmatched_range_and_unknown_chart_are_retried_and_an_unknown_alias_is_a_spec_error() {
    let (repo, _root) = chart_repo().await;
    let s = source(alias_config(repo.url()));

    let error = s
        .source
        .fetch("charts/tiny", Some("^1.0"))
        .await
        .unwrap_err();
    assert!(matches!(error, Error::NoMatchingVersion { .. }), "{error}");
    assert!(error.is_transient(), "the version may be published later");
    let text = error.to_string();
    assert!(
        text.contains("available: 0.3.0-rc.1, 0.2.0, 0.1.3, 0.1.0"),
        "{text}"
    );

    let error = s.source.fetch("charts/missing", None).await.unwrap_err();
    assert!(matches!(error, Error::ChartNotFound { .. }), "{error}");
    assert!(error.is_transient(), "the chart may be published later");

    let error = s.source.fetch("elsewhere/tiny", None).await.unwrap_err();
    assert!(matches!(error, Error::UnknownAlias { .. }), "{error}");
    assert!(error.to_string().contains("configured: charts"), "{error}");

    let error = s
        .source
        .fetch("charts/tiny", Some(">>1"))
        .await
        .unwrap_err();
    assert!(matches!(error, Error::InvalidConstraint { .. }), "{error}");
}

#[tokio::test]
async fn direct_http_reference_is_refused_unless_listed_or_allowed() {
    let (repo, _root) = chart_repo().await;
    let direct = format!("{}/tiny", repo.url());

    let s = source(config("{}"));
    let error = s.source.fetch(&direct, None).await.unwrap_err();
    assert!(matches!(error, Error::UnlistedRepository { .. }), "{error}");
    assert!(error.to_string().contains("allowUnlisted: true"), "{error}");
    assert!(!error.is_transient());

    // The URL of a configured repository is listed, whatever the form of the reference.
    let s = source(alias_config(repo.url()));
    assert_eq!(
        s.source.fetch(&direct, None).await.unwrap().version,
        "0.2.0"
    );

    let s = source(config("allowUnlisted: true"));
    let chart = s.source.fetch(&direct, Some("^0.1")).await.unwrap();
    assert_eq!(
        (chart.name.as_str(), chart.version.as_str()),
        ("tiny", "0.1.3")
    );
}

#[tokio::test]
async fn index_is_reread_at_most_once_per_ttl_and_then_conditionally() {
    let mut state = FakeState::default();
    let first = packaged("tiny", "0.1.0");
    state.add(&first, Some(first.digest.clone()));
    let repo = FakeRepo::start(state).await;

    // A long TTL: the second fetch does not ask the server at all.
    let s = source(config(&format!(
        "repositories: {{charts: {{url: \"{}\"}}}}\nindexTtl: 1h",
        repo.url
    )));
    s.source.fetch("charts/tiny", None).await.unwrap();
    s.source.fetch("charts/tiny", None).await.unwrap();
    assert_eq!(repo.counts.get(), (1, 0, 1));

    // A zero TTL: every fetch asks, with If-None-Match, and a 304 keeps the cached index.
    let s = source(config(&format!(
        "repositories: {{charts: {{url: \"{}\"}}}}\nindexTtl: 0s",
        repo.url
    )));
    s.source.fetch("charts/tiny", None).await.unwrap();
    s.source.fetch("charts/tiny", None).await.unwrap();
    s.source.fetch("charts/tiny", None).await.unwrap();
    assert_eq!(repo.counts.get(), (2, 2, 2));

    // A changed index is read in full and its new version used.
    let second = packaged("tiny", "0.2.0");
    repo.state
        .lock()
        .unwrap()
        .add(&second, Some(second.digest.clone()));
    let chart = s.source.fetch("charts/tiny", None).await.unwrap();
    assert_eq!(chart.version, "0.2.0");
    assert_eq!(repo.counts.get(), (3, 2, 3));
}

#[tokio::test]
async fn a_chart_published_after_the_index_was_read_is_found_without_waiting_for_the_ttl() {
    let mut state = FakeState::default();
    let first = packaged("tiny", "0.1.0");
    state.add(&first, Some(first.digest.clone()));
    let repo = FakeRepo::start(state).await;
    let s = source(config(&format!(
        "repositories: {{charts: {{url: \"{}\"}}}}\nindexTtl: 1h\nmissingRereadAfter: 1s",
        repo.url
    )));
    s.source.fetch("charts/tiny", None).await.unwrap();
    assert_eq!(repo.counts.get(), (1, 0, 1));

    // Missing from an index read less than `missingRereadAfter` ago: no request, a retried
    // failure whose message says so.
    let error = s.source.fetch("charts/late", None).await.unwrap_err();
    assert!(matches!(error, Error::ChartNotFound { .. }), "{error}");
    assert!(error.is_transient());
    assert!(error.to_string().contains("retried"), "{error}");
    let error = s
        .source
        .fetch("charts/tiny", Some("0.2.0"))
        .await
        .unwrap_err();
    assert!(matches!(error, Error::NoMatchingVersion { .. }), "{error}");
    assert!(error.is_transient());
    assert_eq!(repo.counts.get(), (1, 0, 1), "rate-limited: no request");

    // Published: once the period has passed, the next fetch reads the index again.
    let late = packaged("late", "1.0.0");
    let second = packaged("tiny", "0.2.0");
    {
        let mut state = repo.state.lock().unwrap();
        state.add(&late, Some(late.digest.clone()));
        state.add(&second, Some(second.digest.clone()));
    }
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let chart = s.source.fetch("charts/late", None).await.unwrap();
    assert_eq!(chart.version, "1.0.0");
    assert_eq!(repo.counts.get(), (2, 0, 2));
    let chart = s.source.fetch("charts/tiny", Some("0.2.0")).await.unwrap();
    assert_eq!(chart.version, "0.2.0", "found in the index just read");
    assert_eq!(repo.counts.get(), (2, 0, 3));

    // A chart that stays missing costs no request within the period.
    s.source.fetch("charts/absent", None).await.unwrap_err();
    assert_eq!(repo.counts.get(), (2, 0, 3));
}

#[tokio::test]
async fn concurrent_fetches_of_one_chart_download_it_once() {
    let mut state = FakeState::default();
    let chart = packaged("tiny", "1.0.0");
    state.add(&chart, Some(chart.digest.clone()));
    // Slow index: all fetches are in flight together.
    state.delay = Duration::from_millis(200);
    let repo = FakeRepo::start(state).await;
    let s = source(alias_config(&repo.url));
    let fetches = (0..8).map(|_| {
        let source = s.source.clone();
        tokio::spawn(async move { source.fetch("charts/tiny", Some("1.0.0")).await })
    });
    let results = futures::future::join_all(fetches).await;
    let paths: Vec<_> = results
        .into_iter()
        .map(|r| r.unwrap().unwrap().path)
        .collect();
    assert!(paths.windows(2).all(|w| w[0] == w[1]));
    assert_eq!(repo.counts.get(), (1, 0, 1));
}

#[tokio::test]
async fn cached_digest_is_not_downloaded_again_and_entries_without_digest_once() {
    let mut state = FakeState::default();
    let with = packaged("tiny", "1.0.0");
    let without = packaged("bare", "1.0.0");
    state.add(&with, Some(format!("sha256:{}", with.digest)));
    state.add(&without, None);
    let repo = FakeRepo::start(state).await;
    let s = source(alias_config(&repo.url));
    for _ in 0..3 {
        s.source.fetch("charts/tiny", None).await.unwrap();
        let bare = s.source.fetch("charts/bare", None).await.unwrap();
        assert_eq!(bare.digest, format!("sha256:{}", without.digest));
    }
    assert_eq!(repo.counts.get().2, 2);
}

#[tokio::test]
async fn archive_whose_digest_differs_from_the_index_is_refused_and_not_cached() {
    let mut state = FakeState::default();
    let chart = packaged("tiny", "1.0.0");
    let wrong = common::sha256_hex(b"something else");
    state.add(&chart, Some(wrong.clone()));
    let repo = FakeRepo::start(state).await;
    let s = source(alias_config(&repo.url));
    let error = s.source.fetch("charts/tiny", None).await.unwrap_err();
    assert!(matches!(error, Error::DigestMismatch { .. }), "{error}");
    assert!(!error.is_transient());
    assert!(error.to_string().contains(&wrong), "{error}");
    let cache = s.cache.path().join("cache");
    assert_eq!(
        std::fs::read_dir(cache.join("charts/sha256"))
            .unwrap()
            .count(),
        0
    );
    assert_eq!(
        std::fs::read_dir(cache.join("archives/sha256"))
            .unwrap()
            .count(),
        0
    );
}

#[tokio::test]
async fn credentials_go_to_the_repository_and_never_into_errors() {
    let mut state = FakeState::default();
    let chart = packaged("tiny", "1.0.0");
    state.add(&chart, Some(chart.digest.clone()));
    // base64("robot:hunter2")
    state.required_authorization = Some("Basic cm9ib3Q6aHVudGVyMg==".into());
    let repo = FakeRepo::start(state).await;
    let yaml = format!(
        "repositories: {{charts: {{url: \"{}\", credentialsSecret: charts-auth}}}}",
        repo.url
    );

    let s = source(config(&yaml));
    let error = s.source.fetch("charts/tiny", None).await.unwrap_err();
    assert!(
        matches!(error, Error::AccessDenied { status: 401, .. }),
        "{error}"
    );
    assert!(!error.is_transient());

    let wrong = Credentials {
        basic: Some(BasicAuth {
            username: "robot".into(),
            password: "wrong-hunter3".into(),
        }),
        ..Credentials::default()
    };
    let s = source_with(config(&yaml), HashMap::from([("charts".to_owned(), wrong)]));
    let error = s.source.fetch("charts/tiny", None).await.unwrap_err();
    let shown = format!("{error} {error:?}");
    assert!(!shown.contains("wrong-hunter3"), "{shown}");

    let right = Credentials {
        basic: Some(BasicAuth {
            username: "robot".into(),
            password: "hunter2".into(),
        }),
        ..Credentials::default()
    };
    let s = source_with(config(&yaml), HashMap::from([("charts".to_owned(), right)]));
    let fetched = s.source.fetch("charts/tiny", None).await.unwrap();
    assert_eq!(fetched.version, "1.0.0");
    assert!(!format!("{:?}", s.source).contains("hunter2"));
}

#[tokio::test]
async fn server_errors_and_timeouts_are_transient() {
    let mut state = FakeState::default();
    let chart = packaged("tiny", "1.0.0");
    state.add(&chart, Some(chart.digest.clone()));
    state.fail_with = Some(503);
    let repo = FakeRepo::start(state).await;
    let s = source(alias_config(&repo.url));
    let error = s.source.fetch("charts/tiny", None).await.unwrap_err();
    assert!(
        matches!(error, Error::HttpStatus { status: 503, .. }),
        "{error}"
    );
    assert!(error.is_transient());

    {
        let mut state = repo.state.lock().unwrap();
        state.fail_with = None;
        state.delay = Duration::from_secs(5);
    }
    let s = source(config(&format!(
        "repositories: {{charts: {{url: \"{}\"}}}}\nlimits: {{fetchTimeout: 200ms}}",
        repo.url
    )));
    let started = std::time::Instant::now();
    let error = s.source.fetch("charts/tiny", None).await.unwrap_err();
    assert!(matches!(error, Error::Timeout { .. }), "{error}");
    assert!(error.is_transient());
    assert!(started.elapsed() < Duration::from_secs(3));

    // Nothing listens here any more: a connection error.
    let url = repo.url.clone();
    drop(repo);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let s = source(alias_config(&url));
    let error = s.source.fetch("charts/tiny", None).await.unwrap_err();
    assert!(error.is_transient(), "{error}");
}

#[tokio::test]
async fn index_and_archive_size_limits_are_enforced() {
    let (repo, _root) = chart_repo().await;
    let s = source(config(&format!(
        "repositories: {{charts: {{url: \"{}\"}}}}\nlimits: {{maxIndexBytes: 100}}",
        repo.url()
    )));
    let error = s.source.fetch("charts/tiny", None).await.unwrap_err();
    assert!(
        matches!(
            error,
            Error::LimitExceeded {
                setting: "maxIndexBytes",
                ..
            }
        ),
        "{error}"
    );
    assert!(!error.is_transient());

    let s = source(config(&format!(
        "repositories: {{charts: {{url: \"{}\"}}}}\nlimits: {{maxArchiveBytes: 100}}",
        repo.url()
    )));
    let error = s.source.fetch("charts/tiny", None).await.unwrap_err();
    assert!(
        matches!(
            error,
            Error::LimitExceeded {
                setting: "maxArchiveBytes",
                ..
            }
        ),
        "{error}"
    );
}

#[tokio::test]
async fn credentials_are_not_sent_to_archive_urls_on_another_origin() {
    let chart = packaged("tiny", "1.0.0");
    let mut elsewhere = FakeState::default();
    elsewhere.add(&chart, None);
    let elsewhere = FakeRepo::start(elsewhere).await;

    let mut state = FakeState::default();
    state.entries.push((
        "tiny".into(),
        "1.0.0".into(),
        format!("{}/{}", elsewhere.url, chart.file_name()),
        Some(chart.digest.clone()),
    ));
    state.required_authorization = Some("Bearer tok-secret".into());
    let repo = FakeRepo::start(state).await;
    let yaml = format!(
        "repositories: {{charts: {{url: \"{}\", credentialsSecret: charts-token}}}}",
        repo.url
    );
    let mut data = std::collections::BTreeMap::new();
    data.insert("token".to_owned(), b"tok-secret".to_vec());
    let s = source_with(
        config(&yaml),
        HashMap::from([("charts".to_owned(), Credentials::from_secret_data(&data))]),
    );
    let fetched = s.source.fetch("charts/tiny", None).await.unwrap();
    assert_eq!(fetched.digest, format!("sha256:{}", chart.digest));
    assert_eq!(repo.counts.get().0, 1);
    assert_eq!(
        elsewhere.state.lock().unwrap().seen_authorization,
        vec![None]
    );
}

#[tokio::test]
async fn a_deleted_chart_directory_is_unpacked_again_from_the_cached_archive() {
    let mut state = FakeState::default();
    let chart = packaged("tiny", "1.0.0");
    state.add(&chart, Some(chart.digest.clone()));
    let repo = FakeRepo::start(state).await;
    let s = source(alias_config(&repo.url));
    let first = s.source.fetch("charts/tiny", None).await.unwrap();
    std::fs::remove_dir_all(&first.path).unwrap();
    let second = s.source.fetch("charts/tiny", None).await.unwrap();
    assert_eq!(second, first);
    assert!(second.path.join("Chart.yaml").is_file());
    assert_eq!(repo.counts.get().2, 1);
}

#[tokio::test]
async fn fetched_chart_directory_renders_with_helm_template() {
    let (repo, _root) = chart_repo().await;
    let s = source(alias_config(repo.url()));
    let chart = s.source.fetch("charts/tiny", None).await.unwrap();
    let home = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(upstart_test_support::helm())
        .args(["template", "my-release"])
        .arg(&chart.path)
        .env("HELM_CACHE_HOME", home.path().join("cache"))
        .env("HELM_CONFIG_HOME", home.path().join("config"))
        .env("HELM_DATA_HOME", home.path().join("data"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("kind: ConfigMap") && stdout.contains("name: my-release"),
        "{stdout}"
    );
}

#[tokio::test]
async fn an_unreachable_repository_serves_the_chart_fetched_last_time_marked_stale() {
    let mut state = FakeState::default();
    let chart = packaged("tiny", "1.0.0");
    state.add(&chart, Some(chart.digest.clone()));
    let repo = FakeRepo::start(state).await;
    // indexTtl 0: every fetch reads the index again, as an interval re-apply after the TTL.
    let s = source(config(&format!(
        "repositories: {{charts: {{url: \"{}\"}}}}\nindexTtl: 0s",
        repo.url
    )));
    let fresh = s.source.fetch("charts/tiny", Some("^1")).await.unwrap();
    assert_eq!(fresh.stale, None);

    repo.state.lock().unwrap().fail_with = Some(500);
    let stale = s.source.fetch("charts/tiny", Some("^1")).await.unwrap();
    let why = stale.stale.clone().expect("served stale");
    assert_eq!(why.repository, repo.url.trim_end_matches('/'));
    assert!(why.error.contains("HTTP 500"), "{}", why.error);
    assert_eq!((&stale.path, &stale.digest), (&fresh.path, &fresh.digest));
    // Another reference (here another constraint) was never fetched: nothing to serve.
    let error = s
        .source
        .fetch("charts/tiny", Some("1.0.0"))
        .await
        .unwrap_err();
    assert!(
        matches!(error, Error::HttpStatus { status: 500, .. }),
        "{error}"
    );

    // A repository that answers is believed: a missing chart is not papered over.
    repo.state.lock().unwrap().fail_with = Some(404);
    let error = s.source.fetch("charts/tiny", Some("^1")).await.unwrap_err();
    assert!(error.outage_repository().is_none(), "{error}");

    repo.state.lock().unwrap().fail_with = None;
    let back = s.source.fetch("charts/tiny", Some("^1")).await.unwrap();
    assert_eq!(back, fresh);
}
