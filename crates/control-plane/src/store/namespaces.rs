//! Namespace lifecycle: admission of new content, the `default` ServiceAccount, `/finalize`
//! and the termination of a deleted namespace's contents.

use std::sync::Arc;

use serde_json::{Value, json};

use super::{
    EventType, Propagation, Store, WriteOpts, WriteResult, namespaces_key, resource_key, subject,
};
use crate::error::{ApiError, ApiResult, Subject};
use crate::meta;
use crate::registry::{ResKey, ResourceType};

impl Store {
    /// The namespaces every cluster starts with.
    pub(super) fn create_system_namespaces(&mut self) {
        let Some(resource) = self.registry.get(&namespaces_key()).cloned() else {
            return;
        };
        for namespace in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            let obj =
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}});
            if let Err(e) = self.create(&resource, "", obj, &WriteOpts::default()) {
                tracing::error!(namespace, error = %e.message, "creating a system namespace failed");
            }
        }
    }

    /// Namespace admission: new content needs a namespace that exists and is not terminating.
    pub(super) fn check_namespace_for_create(
        &self,
        resource: &ResourceType,
        namespace: &str,
        name: &str,
    ) -> ApiResult<()> {
        if !resource.namespaced {
            return Ok(());
        }
        match self.lookup(&namespaces_key(), "", namespace) {
            None => Err(ApiError::not_found(Subject { group: "", plural: "namespaces", name: namespace })),
            Some(namespace_obj) if meta::is_deleting(namespace_obj) => Err(ApiError::new(
                403,
                "Forbidden",
                format!(
                    "{} \"{name}\" is forbidden: unable to create new content in namespace {namespace} because it is being terminated",
                    subject(resource, name).qualified()
                ),
            )
            .with_details(json!({
                "name": name,
                "group": resource.group,
                "kind": resource.plural,
                "causes": [{
                    "reason": "NamespaceTerminating",
                    "message": format!("namespace {namespace} is being terminated"),
                    "field": "metadata.namespace",
                }],
            }))),
            Some(_) => Ok(()),
        }
    }

    /// What kube-controller-manager's serviceaccounts-controller does for a new namespace: a
    /// ServiceAccount `default`, which Pods without `serviceAccountName` run as. Namespace
    /// termination deletes it with the rest of the namespace's contents.
    pub(super) fn create_default_service_account(&mut self, namespace: &str) {
        let Some(resource) = self
            .registry
            .get(&resource_key("", "serviceaccounts"))
            .cloned()
        else {
            return;
        };
        let service_account = json!({
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": "default", "namespace": namespace},
        });
        let opts = WriteOpts {
            field_manager: "kube-controller-manager".into(),
            ..WriteOpts::default()
        };
        if let Err(e) = self.create(&resource, namespace, service_account, &opts) {
            tracing::error!(namespace, error = %e.message, "creating the default ServiceAccount failed");
        }
    }

    /// `PUT /api/v1/namespaces/{name}/finalize`: replaces `spec.finalizers`.
    pub fn finalize_namespace(
        &mut self,
        resource: &ResourceType,
        name: &str,
        body: Value,
        opts: &WriteOpts,
    ) -> ApiResult<WriteResult> {
        let old = self.get(resource, "", name)?;
        let mut new = (*old).clone();
        new["spec"]["finalizers"] = body["spec"]["finalizers"].clone();
        if !new["spec"]["finalizers"].is_array() {
            new["spec"]["finalizers"] = json!([]);
        }
        if opts.dry_run || new == *old {
            return Ok(WriteResult {
                object: new,
                created: false,
                warnings: Vec::new(),
            });
        }
        let done = meta::is_deleting(&new)
            && meta::finalizers(&new).is_empty()
            && new["spec"]["finalizers"]
                .as_array()
                .is_some_and(Vec::is_empty);
        let kind = if done {
            EventType::Deleted
        } else {
            EventType::Modified
        };
        let stored = self.commit(&resource.storage_key(), kind, new);
        self.process_deletions();
        Ok(WriteResult {
            object: (*stored).clone(),
            created: false,
            warnings: Vec::new(),
        })
    }

    /// What the namespace controller does for a namespace being deleted: deletes its contents,
    /// then, once they are gone, clears `spec.finalizers` so the namespace itself can go.
    pub(super) fn terminate_namespaces(&mut self) {
        let key_of_namespaces = namespaces_key();
        let terminating: Vec<Arc<Value>> = self
            .bucket(&key_of_namespaces)
            .map(|bucket| {
                bucket
                    .values()
                    .filter(|namespace_obj| meta::is_deleting(namespace_obj))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        for namespace_obj in terminating {
            let namespace = meta::name(&namespace_obj).to_string();
            let mut remaining = 0;
            let keys: Vec<ResKey> = self.objects.keys().cloned().collect();
            for key in keys {
                let Some(resource) = self.type_of(&key) else {
                    continue;
                };
                if !resource.namespaced {
                    continue;
                }
                let in_namespace: Vec<Arc<Value>> = self
                    .bucket(&key)
                    .map(|bucket| {
                        bucket
                            .range((namespace.clone(), String::new())..)
                            .take_while(|((object_namespace, _), _)| *object_namespace == namespace)
                            .map(|(_, obj)| obj.clone())
                            .collect()
                    })
                    .unwrap_or_default();
                for obj in in_namespace {
                    if !meta::is_deleting(&obj) {
                        self.delete_object(&resource, &obj, Some(Propagation::Background), false);
                    }
                    if self.lookup(&key, &namespace, meta::name(&obj)).is_some() {
                        remaining += 1;
                    }
                }
            }
            if remaining == 0 && held_by_spec_finalizers(&namespace_obj) {
                let mut new = (*namespace_obj).clone();
                new["spec"]["finalizers"] = json!([]);
                let kind = if meta::finalizers(&new).is_empty() {
                    EventType::Deleted
                } else {
                    EventType::Modified
                };
                self.commit(&key_of_namespaces, kind, new);
            }
        }
    }
}

/// Whether a namespace's `spec.finalizers` (the namespace controller's, not metadata's) still
/// hold it: its contents are not yet deleted.
pub(super) fn held_by_spec_finalizers(namespace_obj: &Value) -> bool {
    namespace_obj["spec"]["finalizers"]
        .as_array()
        .is_some_and(|finalizers| !finalizers.is_empty())
}

/// What the apiserver gives a new namespace: the `kubernetes.io/metadata.name` label, the
/// namespace controller's finalizer and phase `Active`.
pub(super) fn prepare_namespace_create(obj: &mut Value) {
    let name = meta::name(obj).to_string();
    let metadata = meta::metadata_mut(obj);
    let labels = metadata.entry("labels").or_insert_with(|| json!({}));
    if !labels.is_object() {
        *labels = json!({});
    }
    labels["kubernetes.io/metadata.name"] = json!(name);
    obj["spec"] = json!({"finalizers": ["kubernetes"]});
    obj["status"] = json!({"phase": "Active"});
}

/// A namespace's `spec.finalizers` change only through `/finalize` and its phase is server-owned:
/// an update keeps both as they were (`/status` may change the status).
pub(super) fn keep_server_owned_namespace_fields(
    new: &mut Value,
    old: &Value,
    subresource: Option<&str>,
) {
    new["spec"] = old["spec"].clone();
    if subresource != Some("status") {
        new["status"] = old["status"].clone();
    }
}
