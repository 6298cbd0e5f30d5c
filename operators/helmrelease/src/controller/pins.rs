//! What a release pins beyond its spec: the OCI manifest its chart's tag points at (or the git
//! commit its chart's ref points at), and the digest of each image its values name through
//! `imageDigest`. Both are resolved again every
//! `interval` (a HEAD of the manifest, reused within the interval by the chart source); a tag
//! that moved changes the release's inputs digest, so it re-renders and re-applies, and only
//! the releases naming that tag do.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use tracing::debug;
use upstart_api::v1alpha1::HelmRelease;
use upstart_dag::parse_image;
use upstart_failure::MetricLabel;

use crate::constants::reasons;
use crate::controller::Context;
use crate::decide::ValuesState;

/// The manifest digest the chart's OCI tag (or version) points at now, or the commit its git
/// ref points at now; `None` for charts from elsewhere. Also `None` when it cannot be
/// resolved: the fetch then resolves the tag itself and reports the failure where chart
/// failures go. A git ref that no longer exists keeps the commit status records (the inputs do
/// not change, nothing is re-rendered), with why in the second value, for the
/// RepositoryReachable condition.
pub(in crate::controller) async fn chart_manifest(
    hr: &HelmRelease,
    ctx: &Context,
) -> (Option<String>, Option<upstart_chart_source::Stale>) {
    if hr.spec.chart == upstart_api::v1alpha1::JOB_CHART {
        return (None, None);
    }
    let Ok(source) = ctx.chart_source(&hr.spec.chart).await else {
        return (None, None);
    };
    let resolved = match source
        .resolve_manifest(
            &hr.spec.chart,
            hr.spec.version.as_deref(),
            hr.spec.interval(),
        )
        .await
    {
        // Not from an OCI registry: perhaps from git.
        Ok(None) => {
            source
                .resolve_commit(&hr.spec.chart, hr.spec.interval())
                .await
        }
        other => other,
    };
    let recorded = hr.status.as_ref().and_then(|s| s.commit.clone());
    match resolved {
        Ok(found) => (found, None),
        Err(error @ upstart_chart_source::Error::GitRefNotFound { .. }) if recorded.is_some() => {
            let repository = error
                .keeps_last_chart()
                .map(|(repository, _)| repository)
                .unwrap_or_default();
            let gone = upstart_chart_source::Stale {
                repository,
                error: error.to_string(),
                ref_deleted: true,
            };
            (recorded, Some(gone))
        }
        Err(error) => {
            debug!(
                reason = error.metric_label(),
                "resolving the chart's manifest failed; the fetch reports it"
            );
            (None, None)
        }
    }
}

/// Each `imageDigest` image of the values -> its digest-pinned reference, resolved with the
/// credentials and allow-list of the OCI chart repositories; or the state the release waits
/// (registry down, tag not pushed yet, credentials refused: every `interval`) or stops
/// (registry not allowed) in, naming the image.
pub(in crate::controller) async fn resolve_images(
    ctx: &Context,
    images: &BTreeSet<String>,
    interval: Duration,
) -> Result<BTreeMap<String, String>, ValuesState> {
    let mut pinned = BTreeMap::new();
    for image in images {
        // The expression compiled, so the image parses and has a tag (a digest needs no lookup).
        let Some((parsed, tag)) = parse_image(image)
            .ok()
            .and_then(|p| p.tag.clone().map(|tag| (p, tag)))
        else {
            continue;
        };
        match ctx
            .charts
            .image_digest(&parsed.registry, &parsed.repository, &tag, interval)
            .await
        {
            Ok(digest) => {
                pinned.insert(image.clone(), parsed.pinned(&digest));
            }
            // Only the configuration or the spec can change that; anything else (credentials
            // refused, a tag not pushed yet, a registry down) is looked at again.
            Err(error @ upstart_chart_source::Error::UnlistedImageRegistry { .. }) => {
                return Err(ValuesState::SpecError {
                    reason: reasons::IMAGE_DIGEST_REFUSED.to_owned(),
                    message: format!("imageDigest {image}: {error}"),
                });
            }
            Err(error) => {
                return Err(ValuesState::Wait {
                    reason: upstart_dag::reasons::IMAGE_DIGEST_UNRESOLVED.to_owned(),
                    message: format!("imageDigest {image}: {error}"),
                });
            }
        }
    }
    Ok(pinned)
}

/// For status: each image -> the digest (`sha256:…`) it was pinned to.
pub(in crate::controller) fn image_digests(
    pinned: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    pinned
        .iter()
        .filter_map(|(image, reference)| {
            Some((image.clone(), reference.rsplit_once('@')?.1.to_owned()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lists_each_image_with_the_digest_it_was_pinned_to() {
        let digest = format!("sha256:{}", "ab".repeat(32));
        let pinned = BTreeMap::from([(
            "reg.example.com/api:1".to_owned(),
            format!("reg.example.com/api@{digest}"),
        )]);
        assert_eq!(
            image_digests(&pinned),
            BTreeMap::from([("reg.example.com/api:1".to_owned(), digest)])
        );
    }
}
