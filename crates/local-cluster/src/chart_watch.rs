//! The `--charts` directory watched: when a chart served as `upstart-charts` is added or
//! changed in place (same version, new content), the HelmReleases using it get the new archive
//! digest in their `upstartoperators.upstart.com/chart-digest` annotation, an input of the
//! release, so an installed release renders the new content at once instead of at its next
//! spec change. Which releases to wake is decided by pure functions over plain data.

use std::collections::BTreeMap;
use std::time::Duration;

use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::{Client, ResourceExt};
use upstart_api::v1alpha1::HelmRelease;
use upstart_chart_repo::RepoHandle;
use upstart_helmrelease_operator::constants::CHART_DIGEST_ANNOTATION;

use crate::CHARTS_ALIAS;

/// How often the directory is compared with what is served.
pub(crate) const PERIOD: Duration = Duration::from_secs(1);

/// `(name, version) -> archive digest` of the served charts.
pub(crate) type Served = BTreeMap<(String, String), String>;

/// A chart version added or changed since the last look.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Changed {
    pub name: String,
    pub version: String,
    /// `sha256:<hex>`, as the HelmRelease operator reports `status.chartDigest`.
    pub digest: String,
}

/// What the watcher needs to know of a HelmRelease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Release {
    pub namespace: String,
    pub name: String,
    pub chart: String,
    /// The chart version it runs (`status.version`), when it has applied one.
    pub version: Option<String>,
    /// Its chart-digest annotation.
    pub annotated: Option<String>,
}

/// A release to wake, and the digest to annotate it with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Wake {
    pub namespace: String,
    pub name: String,
    pub digest: String,
}

/// The chart versions in `after` that are new or whose archive differs from `before`.
pub(crate) fn changed(before: &Served, after: &Served) -> Vec<Changed> {
    after
        .iter()
        .filter(|(key, digest)| before.get(*key) != Some(digest))
        .map(|((name, version), digest)| Changed {
            name: name.clone(),
            version: version.clone(),
            digest: digest.clone(),
        })
        .collect()
}

/// The releases `changed` concerns: those whose chart is `upstart-charts/NAME`; an installed
/// one only when the version it runs changed (editing another version must not upgrade it),
/// one not installed yet (perhaps failing on the chart being fixed) for any version of it.
pub(crate) fn wakes(changed: &[Changed], releases: &[Release]) -> Vec<Wake> {
    let mut out = Vec::new();
    for release in releases {
        let Some(name) = release
            .chart
            .trim()
            .strip_prefix(CHARTS_ALIAS)
            .and_then(|rest| rest.strip_prefix('/'))
        else {
            continue;
        };
        let mut of_chart = changed.iter().filter(|c| c.name == name);
        let hit = match &release.version {
            Some(version) => of_chart.find(|c| &c.version == version),
            None => of_chart.next_back(),
        };
        if let Some(hit) = hit
            && release.annotated.as_deref() != Some(hit.digest.as_str())
        {
            out.push(Wake {
                namespace: release.namespace.clone(),
                name: release.name.clone(),
                digest: hit.digest.clone(),
            });
        }
    }
    out
}

fn served(repo: &RepoHandle) -> Served {
    repo.repo()
        .charts()
        .iter()
        .map(|c| {
            (
                (c.name.clone(), c.version.clone()),
                format!("sha256:{}", c.digest),
            )
        })
        .collect()
}

/// Watches the directory `repo` serves until the task is aborted.
pub(crate) fn spawn(client: Client, repo: RepoHandle) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut seen = served(&repo);
        let mut ticks = tokio::time::interval(PERIOD);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let handle = repo.clone();
            // The server also reloads when the operator reads the index: compare with what
            // this task saw last, not with whether the files are stale.
            match tokio::task::spawn_blocking(move || handle.reload_if_stale()).await {
                Ok(Ok(_)) => {}
                Ok(Err(error)) => {
                    // A chart being edited is often briefly invalid: keep the old snapshot.
                    tracing::debug!(%error, "charts directory not readable yet");
                    continue;
                }
                Err(_) => return,
            }
            let now = served(&repo);
            let changes = changed(&seen, &now);
            if changes.is_empty() {
                seen = now;
                continue;
            }
            match wake(&client, &changes).await {
                Ok(()) => seen = now,
                // Tried again at the next tick.
                Err(error) => tracing::warn!(%error, "waking the releases of changed charts"),
            }
        }
    })
}

async fn wake(client: &Client, changes: &[Changed]) -> Result<(), kube::Error> {
    let api: Api<HelmRelease> = Api::all(client.clone());
    let releases: Vec<Release> = api
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .map(|hr| Release {
            namespace: hr.namespace().unwrap_or_default(),
            name: hr.name_any(),
            annotated: hr.annotations().get(CHART_DIGEST_ANNOTATION).cloned(),
            version: hr.status.as_ref().and_then(|s| s.version.clone()),
            chart: hr.spec.chart,
        })
        .collect();
    for change in changes {
        tracing::info!(chart = %change.name, version = %change.version, digest = %change.digest, "chart changed in the charts directory");
    }
    for wake in wakes(changes, &releases) {
        let patch = serde_json::json!({
            "metadata": {"annotations": {CHART_DIGEST_ANNOTATION: wake.digest}}
        });
        Api::<HelmRelease>::namespaced(client.clone(), &wake.namespace)
            .patch(&wake.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        tracing::info!(namespace = %wake.namespace, release = %wake.name, "release woken to render its changed chart");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn served(entries: &[(&str, &str, &str)]) -> Served {
        entries
            .iter()
            .map(|(n, v, d)| (((*n).to_owned(), (*v).to_owned()), (*d).to_owned()))
            .collect()
    }

    fn release(name: &str, chart: &str, version: Option<&str>) -> Release {
        Release {
            namespace: "default".into(),
            name: name.into(),
            chart: chart.into(),
            version: version.map(str::to_owned),
            annotated: None,
        }
    }

    #[test]
    fn added_and_edited_versions_are_changes_and_untouched_ones_are_not() {
        let before = served(&[("web", "0.1.0", "a"), ("db", "1.0.0", "b")]);
        let after = served(&[
            ("web", "0.1.0", "a2"),
            ("db", "1.0.0", "b"),
            ("db", "1.1.0", "c"),
        ]);
        let names: Vec<(String, String)> = changed(&before, &after)
            .into_iter()
            .map(|c| (c.name, c.version))
            .collect();
        assert_eq!(
            names,
            vec![
                ("db".to_owned(), "1.1.0".to_owned()),
                ("web".to_owned(), "0.1.0".to_owned())
            ]
        );
    }

    #[test]
    fn an_installed_release_is_woken_only_for_the_version_it_runs() {
        let changes = changed(&served(&[]), &served(&[("web", "0.1.0", "new")]));
        let releases = [
            release("runs-it", "upstart-charts/web", Some("0.1.0")),
            release("runs-another", "upstart-charts/web", Some("0.2.0")),
            release("other-chart", "upstart-charts/db", Some("0.1.0")),
            release("other-repository", "bitnami/web", Some("0.1.0")),
            release("not-installed", "upstart-charts/web", None),
        ];
        let woken: Vec<&str> = wakes(&changes, &releases)
            .iter()
            .map(|w| match w.name.as_str() {
                "runs-it" => "runs-it",
                "not-installed" => "not-installed",
                _ => "unexpected",
            })
            .collect();
        assert_eq!(woken, vec!["runs-it", "not-installed"]);
        assert!(wakes(&changes, &releases).iter().all(|w| w.digest == "new"));
    }

    #[test]
    fn a_release_already_annotated_with_the_digest_is_not_patched_again() {
        let changes = changed(&served(&[]), &served(&[("web", "0.1.0", "new")]));
        let mut done = release("web", "upstart-charts/web", Some("0.1.0"));
        done.annotated = Some("new".into());
        assert!(wakes(&changes, &[done]).is_empty());
    }
}
