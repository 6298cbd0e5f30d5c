//! Dependencies a chart lists in `Chart.yaml` without vendoring them: fetched into its
//! `charts/` as `helm dependency build` would (its `Chart.lock` honoured, checked against the
//! pinned helm's), under the rules and limits of chart references.

#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

mod common;

use std::path::Path;
use std::process::Command;

use common::{chart_dir, config, source, write};
use upstart_chart_source::Error;
use upstart_failure::Classify;

/// A dependency chart whose ConfigMap is named after it, so its render is told apart.
fn dependency(root: &Path, dir_name: &str, name: &str, version: &str) {
    let dir = chart_dir(root, dir_name, name, version);
    write(
        &dir,
        "templates/cm.yaml",
        &format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{{{ .Release.Name }}}}-{{{{ .Chart.Name }}}}\ndata:\n  version: {version:?}\n"
        ),
    );
}

/// Chart `app` 0.1.0 depending on `dependencies` (YAML list items), with a ConfigMap of its own.
fn app(root: &Path, dependencies: &str) -> std::path::PathBuf {
    let dir = chart_dir(root, "app", "app", "0.1.0");
    write(
        &dir,
        "Chart.yaml",
        &format!("apiVersion: v2\nname: app\nversion: 0.1.0\ndependencies:\n{dependencies}"),
    );
    dir
}

fn helm(home: &Path) -> Command {
    let mut command = Command::new(upstart_test_support::helm());
    command
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_DATA_HOME", home.join("data"));
    command
}

fn run(mut command: Command) -> String {
    let output = command.output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[tokio::test]
async fn dependencies_not_vendored_are_fetched_from_the_repository_and_render_with_helm() {
    let charts = tempfile::tempdir().unwrap();
    for version in ["1.0.0", "1.0.1", "1.1.0"] {
        dependency(charts.path(), &format!("db-{version}"), "db", version);
    }
    app(
        charts.path(),
        "  - {name: db, version: ~1.0.0, repository: '@charts', alias: database}\n",
    );
    let repo = upstart_chart_repo::ChartRepo::from_dir(charts.path()).unwrap();
    let repo = repo.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let s = source(config(&format!(
        "repositories: {{charts: {{url: \"{}\"}}}}",
        repo.url()
    )));

    let chart = s.source.fetch("charts/app", None).await.unwrap();
    let names: Vec<(&str, &str)> = chart
        .dependencies
        .iter()
        .map(|d| (d.name.as_str(), d.version.as_str()))
        .collect();
    assert_eq!(
        names,
        vec![("db", "1.0.1")],
        "the newest 1.0.x, as helm picks"
    );
    // helm applies the alias when it renders: the subchart's `.Chart.Name` is `database`.
    assert!(chart.path.join("charts/db-1.0.1.tgz").is_file());
    assert_ne!(chart.content_digest, chart.digest);
    let again = s.source.fetch("charts/app", None).await.unwrap();
    assert_eq!(again, chart, "the same assembled chart from the cache");

    let home = tempfile::tempdir().unwrap();
    let mut template = helm(home.path());
    template.args(["template", "rel"]).arg(&chart.path);
    let rendered = run(template);
    assert!(
        rendered.contains("name: rel-database") && rendered.contains("version: \"1.0.1\""),
        "{rendered}"
    );
}

// helm runs blocking while the repository answers it on another worker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chart_lock_made_by_helm_pins_the_version_after_a_newer_one_is_published() {
    let charts = tempfile::tempdir().unwrap();
    dependency(charts.path(), "db-1.0.0", "db", "1.0.0");
    let published = tempfile::tempdir().unwrap();
    let app_dir = app(
        published.path(),
        "  - {name: db, version: ^1.0.0, repository: '@charts'}\n",
    );
    let repo = upstart_chart_repo::ChartRepo::from_dir(charts.path())
        .unwrap()
        .auto_reload(true);
    let repo = repo.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();

    // The oracle: the pinned helm writes Chart.lock (and charts/, removed: not vendored).
    let home = tempfile::tempdir().unwrap();
    let mut add = helm(home.path());
    add.args(["repo", "add", "charts", repo.url()]);
    run(add);
    let mut update = helm(home.path());
    update.args(["dependency", "update"]).arg(&app_dir);
    run(update);
    std::fs::remove_dir_all(app_dir.join("charts")).unwrap();
    let lock = std::fs::read_to_string(app_dir.join("Chart.lock")).unwrap();
    assert!(lock.contains("version: 1.0.0"), "{lock}");
    std::fs::rename(&app_dir, charts.path().join("app")).unwrap();
    dependency(charts.path(), "db-1.5.0", "db", "1.5.0");
    repo.reload().unwrap();

    let s = source(config(&format!(
        "repositories: {{charts: {{url: \"{}\"}}}}\nindexTtl: 0s",
        repo.url()
    )));
    let chart = s.source.fetch("charts/app", None).await.unwrap();
    assert_eq!(chart.dependencies.len(), 1);
    assert_eq!(
        chart.dependencies[0].version, "1.0.0",
        "Chart.lock's version, not the newest ^1.0.0"
    );
    assert!(chart.path.join("charts/db-1.0.0.tgz").is_file());
}

#[tokio::test]
async fn a_chart_lock_out_of_sync_with_chart_yaml_is_refused_as_helm_refuses_it() {
    let root = tempfile::tempdir().unwrap();
    dependency(root.path(), "db", "db", "1.0.0");
    let dir = app(
        root.path(),
        "  - {name: db, version: ^1.0.0, repository: file://../db}\n",
    );
    write(
        &dir,
        "Chart.lock",
        "dependencies:\n- {name: db, repository: file://../db, version: 0.9.0}\ndigest: sha256:1111111111111111111111111111111111111111111111111111111111111111\n",
    );
    let s = source(config(&format!(
        "localRoots: [\"{}\"]",
        root.path().display()
    )));
    let error = s.source.fetch("file:app", None).await.unwrap_err();
    assert!(matches!(error, Error::ChartLockOutOfSync { .. }), "{error}");
    assert!(!error.is_transient());
    let text = error.to_string();
    assert!(
        text.contains("\"app\"") && text.contains("helm dependency update"),
        "{text}"
    );
}

#[tokio::test]
async fn a_dependency_from_an_unlisted_repository_is_refused_naming_the_chart_and_the_fix() {
    let root = tempfile::tempdir().unwrap();
    app(
        root.path(),
        "  - {name: redis, version: ^18, repository: https://charts.example.invalid/bitnami}\n",
    );
    let s = source(config(&format!(
        "localRoots: [\"{}\"]",
        root.path().display()
    )));
    let error = s.source.fetch("file:app", None).await.unwrap_err();
    assert!(
        matches!(error, Error::UnlistedDependencyRepository { .. }),
        "{error}"
    );
    assert!(!error.is_transient());
    let text = error.to_string();
    for part in [
        "\"app\"",
        "\"redis\"",
        "https://charts.example.invalid/bitnami",
        "allowUnlisted",
        "charts/",
    ] {
        assert!(text.contains(part), "{part} missing from: {text}");
    }
}

#[tokio::test]
async fn file_dependencies_are_relative_to_the_chart_directory_and_stay_in_the_roots() {
    let root = tempfile::tempdir().unwrap();
    dependency(root.path(), "lib", "lib", "0.3.0");
    app(
        root.path(),
        "  - {name: lib, version: ~0.3, repository: file://../lib}\n",
    );
    let s = source(config(&format!(
        "localRoots: [\"{}\"]",
        root.path().display()
    )));
    let chart = s.source.fetch("file:app", None).await.unwrap();
    assert_eq!(chart.dependencies[0].name, "lib");
    assert!(chart.path.join("charts/lib-0.3.0.tgz").is_file());

    // The same chart from a repository: `../lib` would leave it.
    let charts = tempfile::tempdir().unwrap();
    app(
        charts.path(),
        "  - {name: lib, version: ~0.3, repository: file://../lib}\n",
    );
    let repo = upstart_chart_repo::ChartRepo::from_dir(charts.path()).unwrap();
    let repo = repo.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let s = source(config(&format!(
        "repositories: {{charts: {{url: \"{}\"}}}}",
        repo.url()
    )));
    let error = s.source.fetch("charts/app", None).await.unwrap_err();
    assert!(matches!(error, Error::InvalidDependency { .. }), "{error}");
}

#[tokio::test]
async fn a_dependency_over_the_chart_limits_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let lib = chart_dir(root.path(), "lib", "lib", "0.3.0");
    write(&lib, "files/big.txt", &"x".repeat(20_000));
    app(
        root.path(),
        "  - {name: lib, version: ~0.3, repository: file://../lib}\n",
    );
    let s = source(config(&format!(
        "localRoots: [\"{}\"]\nlimits: {{maxUnpackedBytes: 10000}}",
        root.path().display()
    )));
    let error = s.source.fetch("file:app", None).await.unwrap_err();
    let Error::Dependency { source, .. } = &error else {
        panic!("expected a dependency error: {error}");
    };
    assert!(matches!(**source, Error::LimitExceeded { .. }), "{error}");
    assert!(error.to_string().contains("maxUnpackedBytes"), "{error}");
}
