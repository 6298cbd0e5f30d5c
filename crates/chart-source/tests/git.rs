//! Charts from git repositories, against the system git's `http-backend` on loopback: a ref
//! resolved to its commit and followed when it moves (a push, a force-push), a deleted ref
//! keeping the chart fetched before, credentials that never show, the allow-list, and the
//! archive rules applied to what a commit holds.

#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use common::{chart_dir, config, source, write};
use upstart_chart_source::{BasicAuth, ChartSource, Credentials, Error};
use upstart_test_support::git_server::{GitServer, git};

struct Repo {
    server: GitServer,
    work: std::path::PathBuf,
    _dirs: tempfile::TempDir,
}

/// A repository `charts.git` with chart `app` 0.1.0 under `charts/app` pushed to `main`.
fn repository(basic: Option<(&str, &str)>) -> Repo {
    let dirs = tempfile::tempdir().unwrap();
    let served = dirs.path().join("served");
    std::fs::create_dir_all(&served).unwrap();
    let server = GitServer::start(&served, basic);
    let work = server.create_repository("charts", &dirs.path().join("work"));
    chart_dir(&work.join("charts"), "app", "app", "0.1.0");
    commit_and_push(&work, "first");
    Repo {
        server,
        work,
        _dirs: dirs,
    }
}

fn commit_and_push(work: &Path, message: &str) -> String {
    git(work, &["add", "-A"]);
    git(work, &["commit", "-q", "-m", message]);
    git(work, &["push", "-q", "origin", "main"]);
    git(work, &["rev-parse", "HEAD"])
}

impl Repo {
    fn reference(&self, git_ref: &str) -> String {
        format!(
            "git+{}/charts.git@charts/app?ref={git_ref}",
            self.server.url()
        )
    }
    fn repo_url(&self) -> String {
        format!("git+{}/charts.git", self.server.url())
    }
}

fn listed(repo: &Repo, credentials: Option<Credentials>) -> (ChartSource, tempfile::TempDir) {
    let yaml = format!(
        "repositories: {{team: {{url: \"{}\", credentialsSecret: team-auth}}}}",
        repo.repo_url()
    );
    let cache = tempfile::tempdir().unwrap();
    let credentials: HashMap<String, Credentials> = credentials
        .map(|c| HashMap::from([("team".to_owned(), c)]))
        .unwrap_or_default();
    let source = ChartSource::new(config(&yaml), credentials, cache.path()).unwrap();
    (source, cache)
}

#[tokio::test]
async fn a_branch_resolves_to_its_commit_and_a_pushed_commit_is_followed() {
    let repo = repository(None);
    let first_commit = git(&repo.work, &["rev-parse", "HEAD"]);
    let (s, _cache) = listed(&repo, None);
    let chart = repo.reference("main");

    let resolved = s.resolve_commit(&chart, Duration::ZERO).await.unwrap();
    assert_eq!(resolved.as_deref(), Some(first_commit.as_str()));
    let first = s.fetch_at(&chart, None, resolved.as_deref()).await.unwrap();
    assert_eq!(
        (first.name.as_str(), first.version.as_str()),
        ("app", "0.1.0")
    );
    assert_eq!(first.commit.as_deref(), Some(first_commit.as_str()));
    assert!(first.path.join("templates/cm.yaml").is_file());

    // The same commit again: no fetch, one ls-remote (two requests: refs, then the listing).
    let before = repo.server.requests();
    let again = s.fetch(&chart, None).await.unwrap();
    assert_eq!(again.digest, first.digest);
    assert!(
        repo.server.requests() - before <= 2,
        "an unchanged ref costs the ref listing only ({} requests)",
        repo.server.requests() - before
    );

    write(
        &repo.work,
        "charts/app/Chart.yaml",
        "apiVersion: v2\nname: app\nversion: 0.2.0\n",
    );
    let second_commit = commit_and_push(&repo.work, "second");
    // Within max_age the last resolution stands; past it the new commit is seen.
    let kept = s
        .resolve_commit(&chart, Duration::from_secs(3600))
        .await
        .unwrap();
    assert_eq!(kept.as_deref(), Some(first_commit.as_str()));
    let moved = s.resolve_commit(&chart, Duration::ZERO).await.unwrap();
    assert_eq!(moved.as_deref(), Some(second_commit.as_str()));
    let second = s.fetch_at(&chart, None, moved.as_deref()).await.unwrap();
    assert_eq!(second.version, "0.2.0");
    assert_ne!(second.digest, first.digest);

    // Pinned to the first commit, the first chart is still read.
    let pinned = s.fetch(&repo.reference(&first_commit), None).await.unwrap();
    assert_eq!(pinned.version, "0.1.0");
}

#[tokio::test]
async fn a_force_push_is_taken_and_a_deleted_branch_keeps_the_last_chart() {
    let repo = repository(None);
    git(&repo.work, &["checkout", "-q", "-b", "feature"]);
    write(&repo.work, "charts/app/values.yaml", "greeting: feature\n");
    git(&repo.work, &["commit", "-q", "-am", "feature"]);
    git(&repo.work, &["push", "-q", "origin", "feature"]);
    let (s, _cache) = listed(&repo, None);
    let chart = repo.reference("feature");
    let first = s.fetch(&chart, None).await.unwrap();

    // Rewritten history: the branch now points at a commit that does not descend from it.
    git(&repo.work, &["reset", "-q", "--hard", "main"]);
    write(
        &repo.work,
        "charts/app/values.yaml",
        "greeting: rewritten\n",
    );
    git(&repo.work, &["commit", "-q", "-am", "rewritten"]);
    git(&repo.work, &["push", "-q", "--force", "origin", "feature"]);
    let rewritten = git(&repo.work, &["rev-parse", "HEAD"]);
    let second = s.fetch(&chart, None).await.unwrap();
    assert_eq!(second.commit.as_deref(), Some(rewritten.as_str()));
    let values = std::fs::read_to_string(second.path.join("values.yaml")).unwrap();
    assert!(values.contains("rewritten"), "{values}");
    assert_ne!(second.digest, first.digest);

    git(&repo.work, &["push", "-q", "origin", "--delete", "feature"]);
    let error = s.resolve_commit(&chart, Duration::ZERO).await.unwrap_err();
    assert!(matches!(error, Error::GitRefNotFound { .. }), "{error}");
    let kept = s.fetch(&chart, None).await.unwrap();
    assert_eq!(kept.digest, second.digest, "the chart fetched last is kept");
    let stale = kept.stale.expect("says why the last chart is used");
    assert!(stale.ref_deleted);
    assert!(
        stale.error.contains("\"feature\" not found"),
        "{}",
        stale.error
    );
}

#[tokio::test]
async fn credentials_are_sent_and_never_shown() {
    let repo = repository(Some(("robot", "hunter2")));
    let (s, _cache) = listed(&repo, None);
    let chart = repo.reference("main");
    let error = s.fetch(&chart, None).await.unwrap_err();
    assert!(
        matches!(
            error,
            Error::Git {
                transient: false,
                ..
            }
        ),
        "{error}"
    );

    let wrong = Credentials {
        basic: Some(BasicAuth {
            username: "robot".into(),
            password: "wrong-hunter3".into(),
        }),
        ..Credentials::default()
    };
    let (s, _cache) = listed(&repo, Some(wrong));
    let error = s.fetch(&chart, None).await.unwrap_err();
    let shown = format!("{error} {error:?}");
    assert!(!shown.contains("wrong-hunter3"), "{shown}");
    assert!(
        !shown.contains("cm9ib3Q6"),
        "no Authorization header either: {shown}"
    );

    let right = Credentials {
        basic: Some(BasicAuth {
            username: "robot".into(),
            password: "hunter2".into(),
        }),
        ..Credentials::default()
    };
    let (s, _cache) = listed(&repo, Some(right));
    let fetched = s.fetch(&chart, None).await.unwrap();
    assert_eq!(fetched.name, "app");
}

#[tokio::test]
async fn unlisted_git_repositories_are_refused_unless_allowed() {
    let repo = repository(None);
    let chart = repo.reference("main");
    let refused = source(config("{}"));
    let error = refused.source.fetch(&chart, None).await.unwrap_err();
    assert!(matches!(error, Error::UnlistedRepository { .. }), "{error}");
    let allowed = source(config("allowUnlisted: true"));
    assert_eq!(
        allowed.source.fetch(&chart, None).await.unwrap().name,
        "app"
    );
}

#[tokio::test]
async fn a_version_that_the_commit_does_not_hold_is_a_clear_error() {
    let repo = repository(None);
    let (s, _cache) = listed(&repo, None);
    let chart = repo.reference("main");
    assert_eq!(
        s.fetch(&chart, Some("^0.1")).await.unwrap().version,
        "0.1.0"
    );
    let error = s.fetch(&chart, Some("0.2.0")).await.unwrap_err();
    let text = error.to_string();
    assert!(
        text.contains("0.1.0 (Chart.yaml at that commit") && text.contains("\"0.2.0\""),
        "{text}"
    );
}

#[tokio::test]
async fn a_link_leaving_the_chart_and_a_missing_directory_are_refused() {
    let repo = repository(None);
    std::os::unix::fs::symlink("../../../etc/passwd", repo.work.join("charts/app/stolen")).unwrap();
    commit_and_push(&repo.work, "a link out");
    let (s, _cache) = listed(&repo, None);
    let error = s.fetch(&repo.reference("main"), None).await.unwrap_err();
    assert!(matches!(error, Error::UnsafeArchive { .. }), "{error}");

    let missing = format!("git+{}/charts.git@charts/nope?ref=main", repo.server.url());
    let error = s.fetch(&missing, None).await.unwrap_err();
    assert!(error.to_string().contains("no Chart.yaml"), "{error}");
}

#[tokio::test]
async fn a_git_chart_gets_the_dependencies_it_does_not_vendor_from_the_configured_repositories() {
    let charts = tempfile::tempdir().unwrap();
    chart_dir(charts.path(), "db", "db", "1.0.0");
    let served = upstart_chart_repo::ChartRepo::from_dir(charts.path())
        .unwrap()
        .serve("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let repo = repository(None);
    write(
        &repo.work,
        "charts/app/Chart.yaml",
        "apiVersion: v2\nname: app\nversion: 0.1.0\ndependencies:\n  - {name: db, version: ^1.0.0, repository: '@charts'}\n",
    );
    commit_and_push(&repo.work, "a dependency");
    let yaml = format!(
        "repositories: {{team: {{url: \"{}\"}}, charts: {{url: \"{}\"}}}}",
        repo.repo_url(),
        served.url()
    );
    let cache = tempfile::tempdir().unwrap();
    let s = ChartSource::new(config(&yaml), HashMap::new(), cache.path()).unwrap();
    let chart = s.fetch(&repo.reference("main"), None).await.unwrap();
    assert_eq!(chart.dependencies.len(), 1, "{chart:?}");
    assert_eq!(chart.dependencies[0].version, "1.0.0");
    assert!(chart.path.join("charts/db-1.0.0.tgz").is_file());
    assert!(chart.commit.is_some());
}

#[test]
fn a_ca_bundle_or_plain_http_on_a_git_repository_is_a_configuration_error() {
    let cache = tempfile::tempdir().unwrap();
    let yaml =
        "repositories: {team: {url: \"git+https://git.example.com/charts.git\", caBundle: x}}";
    let error = ChartSource::new(config(yaml), HashMap::new(), cache.path()).unwrap_err();
    assert!(
        error
            .to_string()
            .contains("caBundle and plainHttp do not apply"),
        "{error}"
    );
}

#[tokio::test]
async fn after_a_restart_the_commit_status_recorded_is_read_even_once_its_branch_is_deleted() {
    let repo = repository(None);
    git(&repo.work, &["checkout", "-q", "-b", "feature"]);
    write(&repo.work, "charts/app/values.yaml", "greeting: feature\n");
    git(&repo.work, &["commit", "-q", "-am", "feature"]);
    git(&repo.work, &["push", "-q", "origin", "feature"]);
    let recorded = git(&repo.work, &["rev-parse", "HEAD"]);
    git(&repo.work, &["push", "-q", "origin", "--delete", "feature"]);
    // A new process: nothing cached, the ref gone, the commit status recorded still named.
    let (s, _cache) = listed(&repo, None);
    let chart = s
        .fetch_at(&repo.reference("feature"), None, Some(&recorded))
        .await
        .unwrap();
    assert_eq!(chart.commit.as_deref(), Some(recorded.as_str()));
    let values = std::fs::read_to_string(chart.path.join("values.yaml")).unwrap();
    assert!(values.contains("feature"), "{values}");
}

#[tokio::test]
async fn a_commit_fetched_before_is_read_from_the_cache_by_the_next_process() {
    let repo = repository(None);
    let commit = git(&repo.work, &["rev-parse", "HEAD"]);
    let chart = repo.reference("main");
    let (first, cache) = listed(&repo, None);
    let fetched = first.fetch_at(&chart, None, Some(&commit)).await.unwrap();
    drop(first);
    let Repo { server, .. } = repo;
    let before = server.requests();
    // A new process on the same cache directory: the commit's chart is not fetched again.
    let yaml = format!(
        "repositories: {{team: {{url: \"git+{}/charts.git\"}}}}",
        server.url()
    );
    let second = ChartSource::new(config(&yaml), HashMap::new(), cache.path()).unwrap();
    let again = second.fetch_at(&chart, None, Some(&commit)).await.unwrap();
    assert_eq!(again.digest, fetched.digest);
    assert_eq!(server.requests(), before, "nothing asked of the git server");
}
