//! Puts an environment's HelmReleases to sleep and wakes them: the asleep annotation on each
//! one not excluded. The HelmRelease operator does the scaling (its every apply, drift
//! correction and interval re-apply included, sets zero replicas on Deployments and
//! StatefulSets while the annotation is there), so nothing here touches a workload and
//! nothing there can undo a sleep. See docs/architecture.md, "Sleep".

use kube::api::{Api, Patch, PatchParams};
use kube::{Client, ResourceExt};
use serde_json::json;
use tracing::info;
use upstart_api::labels::{ASLEEP_ANNOTATION, RELEASE_KEY_LABEL};
use upstart_api::v1alpha1::{HelmRelease, SleepSpec};

use crate::Error;
use crate::error::ApiStep;
use crate::sleep::excluded;

/// The field manager of the asleep annotation (a merge patch, apart from the applies).
const SLEEP_MANAGER: &str = "upstart-upstartenvironment-sleep";

/// Whether `release` should carry the asleep annotation.
pub fn wants_asleep(release: &HelmRelease, sleep: Option<&SleepSpec>, asleep: bool) -> bool {
    asleep
        && !excluded(
            sleep,
            &release.name_any(),
            release.labels().get(RELEASE_KEY_LABEL).map(String::as_str),
        )
}

/// Adds or removes the asleep annotation on each of `releases` (of `namespace`) whose mark
/// differs from what `asleep` and the exclusions want, and says how many it changed. A release
/// being deleted is left alone. Each is patched only as it is here (its resourceVersion): the
/// copies may come from a watch cache, and one changed or gone meanwhile is skipped, not
/// marked twice; its change wakes the environment, which looks at it again.
pub async fn mark<'a>(
    client: &Client,
    namespace: &str,
    releases: impl Iterator<Item = &'a HelmRelease>,
    sleep: Option<&SleepSpec>,
    asleep: bool,
) -> Result<u64, Error> {
    let api: Api<HelmRelease> = Api::namespaced(client.clone(), namespace);
    let mut marked = 0;
    for release in releases {
        if release.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let want = wants_asleep(release, sleep, asleep);
        if want == release.is_marked_asleep() {
            continue;
        }
        let value = if want { json!("true") } else { json!(null) };
        let patch = json!({"metadata": {
            "resourceVersion": release.resource_version(),
            "annotations": {ASLEEP_ANNOTATION: value}
        }});
        let name = release.name_any();
        let patched = api
            .patch(
                &name,
                &PatchParams {
                    field_manager: Some(SLEEP_MANAGER.to_owned()),
                    ..PatchParams::default()
                },
                &Patch::Merge(&patch),
            )
            .await;
        match patched {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 409 || status.code == 404 => continue,
            Err(source) => {
                return Err(Error::kube(
                    ApiStep::MarkAsleep,
                    format!(
                        "marking HelmRelease {name} {}",
                        if want { "asleep" } else { "awake" }
                    ),
                )(source));
            }
        }
        info!(release = %name, asleep = want, "release marked");
        marked += 1;
    }
    Ok(marked)
}
