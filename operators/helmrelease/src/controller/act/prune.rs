//! Deleting what a release no longer renders (and, at teardown, everything it applied), as
//! Helm does: an object marked `helm.sh/resource-policy: keep` is left in place.

use kube::Resource;
use upstart_api::v1alpha1::{HelmRelease, InventoryEntry};
use upstart_operator_runtime::objects;
use upstart_release_engine::manifests;

use crate::Error;
use crate::constants::reasons;
use crate::controller::Context;
use crate::error::ApiStep;

/// What [`delete_unless_kept`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(in crate::controller) enum Removal {
    /// Deleted (or already gone).
    Deleted,
    /// Left in place: it carries `helm.sh/resource-policy: keep`.
    Kept,
}

/// Deletes an object of the release as Helm's uninstall and upgrade do: unless the live object
/// carries `helm.sh/resource-policy: keep`, which leaves it in place (announced by an Event).
pub(in crate::controller) async fn delete_unless_kept(
    hr: &HelmRelease,
    ctx: &Context,
    namespace: &str,
    entry: &InventoryEntry,
) -> Result<Removal, Error> {
    let live = match ctx.dynamic_api(entry, namespace).await {
        Ok(api) => api.get_opt(&entry.name).await.map_err(Error::kube(
            ApiStep::ReadObject,
            format!("reading {}", manifests::display_name(entry)),
        ))?,
        Err(Error::UnknownKind { .. }) => None,
        Err(error) => return Err(error),
    };
    if live.is_some_and(|live| manifests::is_kept(live.metadata.annotations.as_ref())) {
        let note = format!(
            "{} left in place: it carries {}: keep",
            manifests::display_name(entry),
            manifests::RESOURCE_POLICY_ANNOTATION
        );
        ctx.recorder
            .normal(
                &hr.object_ref(&()),
                reasons::RESOURCE_KEPT,
                "Delete",
                Some(&note),
            )
            .await;
        return Ok(Removal::Kept);
    }
    delete_entry(ctx, namespace, entry).await?;
    Ok(Removal::Deleted)
}

pub(in crate::controller) async fn delete_entry(
    ctx: &Context,
    namespace: &str,
    entry: &InventoryEntry,
) -> Result<(), Error> {
    let api = match ctx.dynamic_api(entry, namespace).await {
        Ok(api) => api,
        // A kind no longer served has nothing left to delete.
        Err(Error::UnknownKind { .. }) => return Ok(()),
        Err(error) => return Err(error),
    };
    objects::delete_if_present(&api, &entry.name)
        .await
        .map(drop)
        .map_err(|source| Error::Kube {
            step: ApiStep::DeleteObject,
            action: format!("deleting {}", manifests::display_name(entry)),
            source,
        })
}
