//! The one deletion shape of the finalizing operators (as controller-rs' `finalizer()`): the
//! finalizer is added before any work, and deletion runs a cleanup that answers "done" (the
//! finalizer goes) or "wait" (look again later), so a teardown that takes several passes lives
//! entirely in the cleanup branch.

use std::fmt::Debug;
use std::future::Future;
use std::sync::Arc;

use kube::api::{Api, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::Action;

/// What a cleanup pass ended in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cleanup {
    /// Everything the object owned is gone: the finalizer is removed.
    Done,
    /// Not yet (a dependent still present, a hook running, objects on their way out): the
    /// finalizer stays and the object is looked at again as the action says.
    Wait(Action),
}

/// Writing the finalizer failed.
#[derive(Debug, thiserror::Error)]
pub enum FinalizerError {
    /// Adding the finalizer was refused or failed (a failed JSON-patch test means the
    /// finalizers changed meanwhile: the next reconcile sees the new list).
    #[error("adding the finalizer {finalizer}: {source}")]
    Add {
        finalizer: String,
        #[source]
        source: kube::Error,
    },
    /// Removing the finalizer was refused or failed.
    #[error("removing the finalizer {finalizer}: {source}")]
    Remove {
        finalizer: String,
        #[source]
        source: kube::Error,
    },
}

impl FinalizerError {
    /// A bounded metric label.
    pub fn metric_label(&self) -> &'static str {
        match self {
            FinalizerError::Add { .. } => "add_finalizer",
            FinalizerError::Remove { .. } => "remove_finalizer",
        }
    }
}

/// Runs `apply` on a live object (after adding `name` to its finalizers when missing) or
/// `cleanup` on a deleted one that still carries `name` (removing it once cleanup says
/// [`Cleanup::Done`]). A deleted object without the finalizer needs nothing.
///
/// The finalizer list is changed with a JSON patch that first tests the list it read, so a
/// concurrent change to it fails the write instead of being overwritten.
pub async fn finalizer<K, E, ApplyFut, CleanupFut>(
    api: &Api<K>,
    name: &str,
    object: Arc<K>,
    apply: impl FnOnce(Arc<K>) -> ApplyFut,
    cleanup: impl FnOnce(Arc<K>) -> CleanupFut,
) -> Result<Action, E>
where
    K: Resource + Clone + DeserializeOwned + Debug,
    E: From<FinalizerError>,
    ApplyFut: Future<Output = Result<Action, E>>,
    CleanupFut: Future<Output = Result<Cleanup, E>>,
{
    let position = object.finalizers().iter().position(|f| f == name);
    match (object.meta().deletion_timestamp.is_some(), position) {
        (false, Some(_)) => apply(object).await,
        (false, None) => {
            let patch = add_patch(object.finalizers(), name);
            let patched = api
                .patch(
                    &object.name_any(),
                    &PatchParams::default(),
                    &Patch::<()>::Json(patch),
                )
                .await
                .map_err(|source| FinalizerError::Add {
                    finalizer: name.to_owned(),
                    source,
                })?;
            apply(Arc::new(patched)).await
        }
        (true, Some(index)) => match cleanup(object.clone()).await? {
            Cleanup::Wait(action) => Ok(action),
            Cleanup::Done => {
                let patch = remove_patch(index, name);
                let removed = api
                    .patch(
                        &object.name_any(),
                        &PatchParams::default(),
                        &Patch::<()>::Json(patch),
                    )
                    .await;
                match crate::objects::unless_gone(removed) {
                    Ok(_) => Ok(Action::await_change()),
                    Err(source) => Err(FinalizerError::Remove {
                        finalizer: name.to_owned(),
                        source,
                    }
                    .into()),
                }
            }
        },
        (true, None) => Ok(Action::await_change()),
    }
}

/// Adds `name`, testing that the list is still `current`.
fn add_patch(current: &[String], name: &str) -> json_patch::Patch {
    json_patch_of(if current.is_empty() {
        json!([
            {"op": "test", "path": "/metadata/finalizers", "value": Value::Null},
            {"op": "add", "path": "/metadata/finalizers", "value": [name]},
        ])
    } else {
        json!([
            {"op": "test", "path": "/metadata/finalizers", "value": current},
            {"op": "add", "path": "/metadata/finalizers/-", "value": name},
        ])
    })
}

/// Removes `name` at `index`, testing that it is still there.
fn remove_patch(index: usize, name: &str) -> json_patch::Patch {
    let path = format!("/metadata/finalizers/{index}");
    json_patch_of(json!([
        {"op": "test", "path": path, "value": name},
        {"op": "remove", "path": path},
    ]))
}

fn json_patch_of(operations: Value) -> json_patch::Patch {
    serde_json::from_value(operations).expect("well-formed JSON patch operations")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adding_the_first_finalizer_tests_that_there_is_no_list_yet() {
        let patch = serde_json::to_value(add_patch(&[], "upstart/cleanup")).unwrap();
        assert_eq!(
            patch,
            json!([
                {"op": "test", "path": "/metadata/finalizers", "value": null},
                {"op": "add", "path": "/metadata/finalizers", "value": ["upstart/cleanup"]},
            ])
        );
    }

    #[test]
    fn adding_beside_others_tests_the_list_read_and_appends() {
        let patch =
            serde_json::to_value(add_patch(&["other".to_owned()], "upstart/cleanup")).unwrap();
        assert_eq!(patch[0]["value"], json!(["other"]));
        assert_eq!(patch[1]["path"], json!("/metadata/finalizers/-"));
    }

    #[test]
    fn removing_tests_that_the_finalizer_is_still_at_its_index() {
        let patch = serde_json::to_value(remove_patch(1, "upstart/cleanup")).unwrap();
        assert_eq!(
            patch,
            json!([
                {"op": "test", "path": "/metadata/finalizers/1", "value": "upstart/cleanup"},
                {"op": "remove", "path": "/metadata/finalizers/1"},
            ])
        );
    }
}
