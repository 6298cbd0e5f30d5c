//! Deleting what a release no longer renders (and, at teardown, everything it applied), as
//! Helm does: an object marked `helm.sh/resource-policy: keep` is left in place. An object the
//! operator may not delete (403: a kind its RBAC does not cover, such as CRDs) is left in place
//! with an Event rather than holding the release (and its namespace) for ever.

use kube::Resource;
use kube::runtime::reflector::ObjectRef;
use upstart_api::v1alpha1::{HelmRelease, InventoryEntry};
use upstart_operator_runtime::objects;
use upstart_release_engine::manifests;

use crate::Error;
use crate::constants::reasons;
use crate::controller::Context;
use crate::controller::observe::object_key;
use crate::error::ApiStep;

/// What [`delete_unless_kept`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(in crate::controller) enum Removal {
    /// Deleted (or already gone).
    Deleted,
    /// Left in place: it carries `helm.sh/resource-policy: keep`.
    Kept,
    /// Left in place: the operator is not allowed to delete it (announced by an Event).
    Forbidden,
}

/// Deletes an object of the release as Helm's uninstall and upgrade do: unless the live object
/// carries `helm.sh/resource-policy: keep`, which leaves it in place (announced by an Event).
pub(in crate::controller) async fn delete_unless_kept(
    hr: &HelmRelease,
    ctx: &Context,
    namespace: &str,
    entry: &InventoryEntry,
) -> Result<Removal, Error> {
    let live = match ctx.dynamic_api(hr, entry, namespace).await {
        Ok(api) => match api.get_opt(&entry.name).await {
            Ok(live) => live,
            // Not allowed to read it: it cannot be known to be kept; the delete says the rest.
            Err(kube::Error::Api(status)) if status.code == 403 => None,
            Err(source) => {
                return Err(Error::Kube {
                    step: ApiStep::ReadObject,
                    action: format!("reading {}", manifests::display_name(entry)),
                    source,
                });
            }
        },
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
    match delete_entry(hr, ctx, namespace, entry).await {
        Ok(()) => Ok(Removal::Deleted),
        Err(error) if error.is_forbidden() => {
            let note = format!(
                "{} left in place: the operator is not allowed to delete it ({})",
                manifests::display_name(entry),
                error.api_status().unwrap_or("Forbidden")
            );
            ctx.recorder
                .warning(
                    &hr.object_ref(&()),
                    reasons::DELETE_FORBIDDEN,
                    "Delete",
                    Some(&note),
                )
                .await;
            Ok(Removal::Forbidden)
        }
        Err(error) => Err(error),
    }
}

pub(in crate::controller) async fn delete_entry(
    hr: &HelmRelease,
    ctx: &Context,
    namespace: &str,
    entry: &InventoryEntry,
) -> Result<(), Error> {
    let api = match ctx.dynamic_api(hr, entry, namespace).await {
        Ok(api) => api,
        // A kind no longer served has nothing left to delete.
        Err(Error::UnknownKind { .. }) => return Ok(()),
        Err(error) => return Err(error),
    };
    let key = object_key(entry, namespace);
    ctx.remember(&ObjectRef::from_obj(hr), |m| m.applied.remove(&key));
    objects::delete_if_present(&api, &entry.name)
        .await
        .map(drop)
        .map_err(|source| Error::Kube {
            step: ApiStep::DeleteObject,
            action: format!("deleting {}", manifests::display_name(entry)),
            source,
        })
}
