//! `spec.chartRepositories` (`{ALIAS: URL}`): an environment overriding the repository an alias
//! points to for all its releases, so that a PR's charts are tried in its environment without
//! editing any service.
//!
//! Every chart reference `ALIAS/NAME` of the releases the environment builds (its services'
//! and its own) becomes the direct reference `URL/NAME`. The HelmRelease operator resolves a
//! direct reference only when its repository is configured (under any alias) or the
//! configuration allows unlisted repositories: the override cannot reach a repository the
//! operator's configuration does not allow.

use std::collections::BTreeMap;

use upstart_api::v1alpha1::rewrite_chart;

use crate::children::Desired;

/// Rewrites the chart references of every release in `desired` (see [`rewrite_chart`]).
pub fn apply(desired: &mut Desired, repositories: &BTreeMap<String, String>) {
    if repositories.is_empty() {
        return;
    }
    let specs = desired
        .services
        .iter_mut()
        .flat_map(|s| s.spec.helm_releases.values_mut())
        .chain(desired.releases.iter_mut().map(|r| &mut r.spec));
    for spec in specs {
        if let Some(chart) = rewrite_chart(&spec.chart, repositories) {
            spec.chart = chart;
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

    use super::*;

    fn overrides() -> BTreeMap<String, String> {
        BTreeMap::from([(
            "upstart-charts".to_owned(),
            "https://charts.example.com/pr-1234/".to_owned(),
        )])
    }

    #[test]
    fn an_overridden_alias_becomes_the_override_url() {
        assert_eq!(
            rewrite_chart("upstart-charts/shop", &overrides()).as_deref(),
            Some("https://charts.example.com/pr-1234/shop")
        );
    }

    #[test]
    fn every_release_of_the_services_and_of_the_environment_gets_the_override() {
        use upstart_api::v1alpha1::{HelmRelease, UpstartService};
        let service: UpstartService = serde_json::from_value(serde_json::json!({
            "apiVersion": "upstartoperators.upstart.com/v1alpha1", "kind": "UpstartService",
            "metadata": {"name": "shop"},
            "spec": {"helmReleases": {
                "app": {"chart": "upstart-charts/shop"},
                "cache": {"chart": "bitnami/redis"}
            }}
        }))
        .unwrap();
        let release: HelmRelease = serde_json::from_value(serde_json::json!({
            "apiVersion": "upstartoperators.upstart.com/v1alpha1", "kind": "HelmRelease",
            "metadata": {"name": "env-flags"},
            "spec": {"chart": "upstart-charts/flags"}
        }))
        .unwrap();
        let mut desired = Desired {
            services: vec![service],
            releases: vec![release],
            ..Desired::default()
        };
        apply(&mut desired, &overrides());
        let releases = &desired.services[0].spec.helm_releases;
        assert_eq!(
            releases["app"].chart,
            "https://charts.example.com/pr-1234/shop"
        );
        assert_eq!(releases["cache"].chart, "bitnami/redis");
        assert_eq!(
            desired.releases[0].spec.chart,
            "https://charts.example.com/pr-1234/flags"
        );
    }

    #[test]
    fn other_aliases_and_direct_references_are_left_alone() {
        for chart in [
            "bitnami/redis",
            "oci://ghcr.io/org/upstart-charts/shop",
            "https://charts.example.com/upstart-charts/shop",
            "file:./charts/shop",
            "upstart-charts/",
            "upstart-charts/a/b",
        ] {
            assert_eq!(rewrite_chart(chart, &overrides()), None, "{chart}");
        }
    }
}
