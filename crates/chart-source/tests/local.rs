//! `file:` charts under local roots, and hostile archives (fed as local `.tgz` files) refused
//! with clear errors and without touching anything outside the cache.

#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

mod common;

use std::path::Path;

use common::{Entry, chart_dir, chart_yaml, config, source, tgz};
use upstart_chart_source::Error;
use upstart_failure::Classify;

fn roots_config(root: &Path, extra: &str) -> upstart_chart_source::RepositoryConfig {
    config(&format!("localRoots: [\"{}\"]\n{extra}", root.display()))
}

#[tokio::test]
async fn local_chart_directory_is_packaged_cached_and_stable() {
    let root = tempfile::tempdir().unwrap();
    chart_dir(root.path(), "postgres", "postgres", "0.1.3");
    let s = source(roots_config(root.path(), ""));
    let first = s.source.fetch("file:postgres", None).await.unwrap();
    assert_eq!(
        (first.name.as_str(), first.version.as_str()),
        ("postgres", "0.1.3")
    );
    assert!(first.path.join("templates/cm.yaml").is_file());
    assert!(first.digest.starts_with("sha256:"));
    // Same content, same digest, same directory.
    let again = s.source.fetch("file:postgres", Some("^0.1")).await.unwrap();
    assert_eq!(again, first);
    // An absolute path inside the root works too.
    let absolute = format!("file:{}", root.path().join("postgres").display());
    assert_eq!(s.source.fetch(&absolute, None).await.unwrap(), first);
    // A version the chart does not have is an error.
    let error = s
        .source
        .fetch("file:postgres", Some("^1"))
        .await
        .unwrap_err();
    assert!(matches!(error, Error::NoMatchingVersion { .. }), "{error}");
}

#[tokio::test]
async fn local_tgz_chart_is_unpacked() {
    let root = tempfile::tempdir().unwrap();
    let packaged = common::packaged("redis", "7.0.1");
    std::fs::write(root.path().join("redis-7.0.1.tgz"), &packaged.archive).unwrap();
    let s = source(roots_config(root.path(), ""));
    let chart = s.source.fetch("file:redis-7.0.1.tgz", None).await.unwrap();
    assert_eq!(chart.version, "7.0.1");
    assert_eq!(chart.digest, format!("sha256:{}", packaged.digest));
}

#[tokio::test]
async fn local_paths_outside_the_roots_are_refused() {
    let parent = tempfile::tempdir().unwrap();
    let root = parent.path().join("root");
    std::fs::create_dir(&root).unwrap();
    chart_dir(parent.path(), "outside", "outside", "1.0.0");
    #[cfg(unix)]
    std::os::unix::fs::symlink(parent.path().join("outside"), root.join("sneaky")).unwrap();
    let s = source(roots_config(&root, ""));

    for reference in [
        "file:../outside".to_owned(),
        format!("file:{}", parent.path().join("outside").display()),
        "file:sneaky".to_owned(),
    ] {
        let error = s.source.fetch(&reference, None).await.unwrap_err();
        assert!(
            matches!(error, Error::LocalChartRefused { .. }),
            "{reference}: {error}"
        );
        assert!(!error.is_transient());
    }
    let error = s.source.fetch("file:nothing-here", None).await.unwrap_err();
    assert!(matches!(error, Error::LocalChartNotFound { .. }), "{error}");

    let s = source(config("{}"));
    let error = s.source.fetch("file:anything", None).await.unwrap_err();
    assert!(error.to_string().contains("localRoots"), "{error}");
}

/// Fetches `archive` as a local `.tgz` with `limits` (YAML flow mapping) and returns the error.
async fn refused(archive: Vec<u8>, limits: &str) -> (Error, tempfile::TempDir) {
    let parent = tempfile::tempdir().unwrap();
    let root = parent.path().join("root");
    std::fs::create_dir(&root).unwrap();
    std::fs::write(root.join("chart.tgz"), archive).unwrap();
    let s = source(roots_config(&root, &format!("limits: {limits}")));
    let error = s.source.fetch("file:chart.tgz", None).await.unwrap_err();
    assert!(!error.is_transient(), "{error}");
    // Nothing unpacked into the cache, nothing half-written left behind.
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
    assert_eq!(std::fs::read_dir(cache.join("tmp")).unwrap().count(), 0);
    (error, parent)
}

fn ok_chart() -> Entry<'static> {
    Entry::File("tiny/Chart.yaml", chart_yaml("tiny", "1.0.0"))
}

#[tokio::test]
async fn archive_entry_with_parent_components_is_refused() {
    let (error, parent) = refused(
        tgz(&[
            ok_chart(),
            Entry::File("tiny/../../../evil.txt", b"x".to_vec()),
        ]),
        "{}",
    )
    .await;
    assert!(matches!(error, Error::UnsafeArchive { .. }), "{error}");
    assert!(error.to_string().contains("`..`"), "{error}");
    assert!(!parent.path().join("evil.txt").exists());
}

#[tokio::test]
async fn archive_entry_with_an_absolute_path_is_refused() {
    let target = tempfile::tempdir().unwrap();
    let evil = target.path().join("evil.txt");
    let evil_text = evil.display().to_string();
    let (error, _parent) = refused(
        tgz(&[ok_chart(), Entry::File(&evil_text, b"x".to_vec())]),
        "{}",
    )
    .await;
    assert!(matches!(error, Error::UnsafeArchive { .. }), "{error}");
    assert!(error.to_string().contains("absolute"), "{error}");
    assert!(!evil.exists());
}

#[tokio::test]
async fn symlinks_leaving_the_chart_are_refused() {
    for target in ["../../../etc/passwd", "/etc/passwd", "../.."] {
        let (error, _parent) = refused(
            tgz(&[ok_chart(), Entry::Symlink("tiny/templates/link", target)]),
            "{}",
        )
        .await;
        assert!(
            matches!(error, Error::UnsafeArchive { .. }),
            "{target}: {error}"
        );
        assert!(error.to_string().contains("leaves the chart"), "{error}");
    }
}

#[tokio::test]
async fn symlink_chains_resolving_outside_the_chart_are_refused() {
    // Each link looks inside the chart on its own; together they climb out.
    let (error, _parent) = refused(
        tgz(&[
            ok_chart(),
            Entry::Dir("tiny/sub/"),
            Entry::Symlink("tiny/sub/up", ".."),
            Entry::Symlink("tiny/escape", "sub/up/.."),
        ]),
        "{}",
    )
    .await;
    assert!(matches!(error, Error::UnsafeArchive { .. }), "{error}");
}

#[tokio::test]
async fn writing_through_a_symlink_is_refused() {
    let (error, _parent) = refused(
        tgz(&[
            ok_chart(),
            Entry::Dir("tiny/templates/"),
            Entry::Symlink("tiny/link", "templates"),
            Entry::File("tiny/link/x.yaml", b"x".to_vec()),
        ]),
        "{}",
    )
    .await;
    assert!(matches!(error, Error::UnsafeArchive { .. }), "{error}");
    assert!(error.to_string().contains("through a link"), "{error}");
}

#[tokio::test]
async fn hard_links_leaving_the_chart_and_device_files_are_refused() {
    let (error, _parent) = refused(
        tgz(&[ok_chart(), Entry::HardLink("tiny/passwd", "../etc/passwd")]),
        "{}",
    )
    .await;
    assert!(matches!(error, Error::UnsafeArchive { .. }), "{error}");
    let (error, _parent) = refused(
        tgz(&[ok_chart(), Entry::HardLink("tiny/passwd", "/etc/passwd")]),
        "{}",
    )
    .await;
    assert!(matches!(error, Error::UnsafeArchive { .. }), "{error}");
    let (error, _parent) = refused(tgz(&[ok_chart(), Entry::CharDevice("tiny/null")]), "{}").await;
    assert!(matches!(error, Error::UnsafeArchive { .. }), "{error}");
    assert!(error.to_string().contains("device"), "{error}");
}

#[tokio::test]
async fn a_hard_link_through_a_symlink_chain_is_refused_before_it_reads_outside_the_chart() {
    // `y -> .` and `x -> y/..` each stay inside the chart on their own, but `x` is the chart's
    // parent: a hard link to `x/FILE` copied any readable file from there before the links
    // were checked at the end (found by the chart_archive fuzz target's seeds).
    let (error, _parent) = refused(
        tgz(&[
            ok_chart(),
            Entry::Symlink("tiny/y", "."),
            Entry::Symlink("tiny/x", "y/.."),
            Entry::HardLink("tiny/copy", "tiny/x/sentinel"),
        ]),
        "{}",
    )
    .await;
    assert!(matches!(error, Error::UnsafeArchive { .. }), "{error}");
    assert!(error.to_string().contains("goes through a link"), "{error}");
}

#[tokio::test]
async fn too_many_files_and_too_large_contents_hit_the_limits() {
    let mut entries = vec![ok_chart()];
    let names: Vec<String> = (0..20)
        .map(|i| format!("tiny/templates/f{i}.yaml"))
        .collect();
    entries.extend(names.iter().map(|n| Entry::File(n, b"a: 1\n".to_vec())));
    let (error, _parent) = refused(tgz(&entries), "{maxFiles: 10}").await;
    assert!(
        matches!(
            error,
            Error::LimitExceeded {
                setting: "maxFiles",
                ..
            }
        ),
        "{error}"
    );

    // Highly compressible: a small archive that unpacks big.
    let big = vec![b'a'; 2 << 20];
    let (error, _parent) = refused(
        tgz(&[ok_chart(), Entry::File("tiny/big.txt", big)]),
        "{maxUnpackedBytes: 1048576}",
    )
    .await;
    assert!(
        matches!(
            error,
            Error::LimitExceeded {
                setting: "maxUnpackedBytes",
                ..
            }
        ),
        "{error}"
    );

    let (error, _parent) = refused(tgz(&[ok_chart()]), "{maxArchiveBytes: 10}").await;
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
async fn archives_with_a_wrong_layout_or_chart_yaml_are_invalid() {
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "two top-level entries",
            tgz(&[ok_chart(), Entry::File("other/x.yaml", b"x".to_vec())]),
        ),
        (
            "Chart.yaml naming another chart",
            tgz(&[Entry::File("tiny/Chart.yaml", chart_yaml("other", "1.0.0"))]),
        ),
        (
            "no Chart.yaml",
            tgz(&[Entry::File("tiny/values.yaml", b"a: 1\n".to_vec())]),
        ),
        (
            "a file at the top level",
            tgz(&[
                ok_chart(),
                Entry::File("Chart.yaml", chart_yaml("tiny", "1.0.0")),
            ]),
        ),
        ("not gzip at all", b"this is not a tarball".to_vec()),
    ];
    for (what, archive) in cases {
        let (error, _parent) = refused(archive, "{}").await;
        assert!(
            matches!(error, Error::InvalidArchive { .. }),
            "{what}: {error}"
        );
    }
}

#[tokio::test]
async fn links_that_stay_inside_the_chart_are_kept() {
    let parent = tempfile::tempdir().unwrap();
    let archive = tgz(&[
        ok_chart(),
        Entry::File("tiny/templates/cm.yaml", b"kind: ConfigMap\n".to_vec()),
        Entry::Symlink("tiny/templates/alias.yaml", "cm.yaml"),
        Entry::HardLink("tiny/copy.yaml", "tiny/templates/cm.yaml"),
    ]);
    std::fs::write(parent.path().join("tiny.tgz"), archive).unwrap();
    let s = source(roots_config(parent.path(), ""));
    let chart = s.source.fetch("file:tiny.tgz", None).await.unwrap();
    let aliased = std::fs::read_to_string(chart.path.join("templates/alias.yaml")).unwrap();
    assert_eq!(aliased, "kind: ConfigMap\n");
    let copied = std::fs::read_to_string(chart.path.join("copy.yaml")).unwrap();
    assert_eq!(copied, "kind: ConfigMap\n");
}

#[tokio::test]
async fn bytes_read_through_links_count_toward_the_unpacked_limit() {
    // 300 KiB, linked four times: 1.5 MiB for helm to read, over a 1 MiB limit.
    let data = vec![b'a'; 300 << 10];
    let names: Vec<String> = (0..4).map(|i| format!("tiny/templates/l{i}.txt")).collect();
    let mut entries = vec![ok_chart(), Entry::File("tiny/templates/data.txt", data)];
    entries.extend(names.iter().map(|n| Entry::Symlink(n, "data.txt")));
    let (error, _parent) = refused(tgz(&entries), "{maxUnpackedBytes: 1048576}").await;
    assert!(
        matches!(
            error,
            Error::LimitExceeded {
                setting: "maxUnpackedBytes",
                ..
            }
        ),
        "{error}"
    );

    // A directory linked to itself: what helm would walk is unbounded.
    let (error, _parent) = refused(
        tgz(&[
            ok_chart(),
            Entry::Dir("tiny/templates/"),
            Entry::File("tiny/templates/cm.yaml", b"kind: ConfigMap\n".to_vec()),
            Entry::Symlink("tiny/templates/again", "."),
            Entry::Symlink("tiny/templates/more", "."),
        ]),
        "{maxFiles: 10000}",
    )
    .await;
    assert!(
        matches!(
            error,
            Error::LimitExceeded {
                setting: "maxFiles",
                ..
            } | Error::UnsafeArchive { .. }
        ),
        "{error}"
    );
}
