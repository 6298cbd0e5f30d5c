//! Writing objects the one way every operator does: server-side apply under the operator's
//! field manager, deletion that counts "already gone" as done, and whether a live child is
//! still what the operator would write.

use std::fmt::Debug;

use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::core::object::HasSpec;
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Server-side applies `object` as `name`, forced: the operator owns the fields it writes, and
/// a conflict with a human's edit resolves in the operator's favour (SPEC §2.5).
pub async fn apply<K>(
    api: &Api<K>,
    name: &str,
    object: &(impl Serialize + Debug),
    field_manager: &str,
) -> Result<K, kube::Error>
where
    K: Clone + DeserializeOwned + Debug,
{
    api.patch(
        name,
        &PatchParams::apply(field_manager).force(),
        &Patch::Apply(object),
    )
    .await
}

/// What [`delete_if_present`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deletion {
    /// The deletion was accepted (the object may stay a while for its own finalizers).
    Requested,
    /// There was nothing to delete.
    AlreadyGone,
}

/// Deletes `name` in the background; an object that is already gone is not an error.
pub async fn delete_if_present<K>(api: &Api<K>, name: &str) -> Result<Deletion, kube::Error>
where
    K: Clone + DeserializeOwned + Debug,
{
    match api.delete(name, &DeleteParams::background()).await {
        Ok(_) => Ok(Deletion::Requested),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(Deletion::AlreadyGone),
        Err(error) => Err(error),
    }
}

/// A write whose object vanished meanwhile (404) has nothing left to do: `Ok(None)`.
pub fn unless_gone<T>(result: Result<T, kube::Error>) -> Result<Option<T>, kube::Error> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(None),
        Err(error) => Err(error),
    }
}

/// Whether a live child is as the operator would write it: the same spec, every desired label
/// and annotation with its value, every desired owner (by uid), and not on its way out. A child
/// that is not is applied again; one that is costs no request.
pub fn is_as_desired<K>(live: &K, desired: &K) -> bool
where
    K: Resource + HasSpec,
    K::Spec: PartialEq,
{
    live.spec() == desired.spec()
        && desired
            .labels()
            .iter()
            .all(|(key, value)| live.labels().get(key) == Some(value))
        && desired
            .annotations()
            .iter()
            .all(|(key, value)| live.annotations().get(key) == Some(value))
        && desired.owner_references().iter().all(|owner| {
            live.owner_references()
                .iter()
                .any(|live_owner| live_owner.uid == owner.uid)
        })
        && live.meta().deletion_timestamp.is_none()
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{OwnerReference, Time};
    use k8s_openapi::jiff::Timestamp;
    use kube::ResourceExt;
    use upstart_api::v1alpha1::{HelmRelease, HelmReleaseSpec};

    use super::is_as_desired;

    fn child() -> HelmRelease {
        let mut release = HelmRelease::new(
            "web-api",
            HelmReleaseSpec {
                chart: "upstart-charts/api".into(),
                ..HelmReleaseSpec::default()
            },
        );
        release
            .labels_mut()
            .insert("upstartoperators.upstart.com/service".into(), "web".into());
        release.metadata.owner_references = Some(vec![OwnerReference {
            api_version: "upstartoperators.upstart.com/v1alpha1".into(),
            kind: "UpstartService".into(),
            name: "web".into(),
            uid: "uid-1".into(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }]);
        release
    }

    #[test]
    fn a_child_with_the_desired_spec_labels_and_owner_is_as_desired() {
        let desired = child();
        let mut live = child();
        live.labels_mut()
            .insert("added-by-someone".into(), "else".into());
        assert!(is_as_desired(&live, &desired));
    }

    #[test]
    fn a_changed_spec_a_missing_label_a_lost_owner_or_a_deletion_is_not_as_desired() {
        let desired = child();
        let mut spec = child();
        spec.spec.version = Some("1.0.0".into());
        assert!(!is_as_desired(&spec, &desired));
        let mut unlabelled = child();
        unlabelled.labels_mut().clear();
        assert!(!is_as_desired(&unlabelled, &desired));
        let mut orphaned = child();
        orphaned.metadata.owner_references = None;
        assert!(!is_as_desired(&orphaned, &desired));
        let mut deleted = child();
        deleted.metadata.deletion_timestamp = Some(Time(Timestamp::now()));
        assert!(!is_as_desired(&deleted, &desired));
    }

    #[test]
    fn a_desired_annotation_missing_or_changed_is_not_as_desired_and_others_do_not_matter() {
        let mut desired = child();
        desired.annotations_mut().insert(
            "upstartoperators.upstart.com/template-revision".into(),
            "sha256:2".into(),
        );
        let mut stale = desired.clone();
        stale.annotations_mut().insert(
            "upstartoperators.upstart.com/template-revision".into(),
            "sha256:1".into(),
        );
        assert!(!is_as_desired(&stale, &desired));
        assert!(!is_as_desired(&child(), &desired));
        let mut extra = desired.clone();
        extra
            .annotations_mut()
            .insert("added-by-someone".into(), "else".into());
        assert!(is_as_desired(&extra, &desired));
    }
}
