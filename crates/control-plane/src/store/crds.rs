//! CustomResourceDefinitions: their schema checks and status, serving a stored CRD's resource,
//! and the cleanup of its instances when it is deleted.

use std::sync::Arc;

use serde_json::{Value, json};

use super::{CRD_CLEANUP_FINALIZER, Propagation, Store, crds_key, is_crds};
use crate::error::{ApiError, ApiResult, Cause};
use crate::meta;
use crate::registry::{ResourceType, type_from_crd};

impl Store {
    /// A stored CRD's resource is served from now on, unless a built-in resource has its name.
    pub(super) fn serve_if_crd(&mut self, resource: &ResourceType, stored: &Value) {
        if is_crds(resource) {
            match type_from_crd(stored) {
                Ok(crd_type) => {
                    let taken_by_builtin = self
                        .registry
                        .get(&crd_type.storage_key())
                        .is_some_and(|existing| existing.builtin);
                    if !taken_by_builtin {
                        self.registry.insert(crd_type);
                    }
                }
                Err(e) => tracing::warn!(crd = meta::name(stored), error = %e, "CRD not served"),
            }
        }
    }

    /// What the apiextensions server does for a CRD being deleted: deletes its instances, then,
    /// once they are gone, removes its cleanup finalizer and stops serving its resource.
    pub(super) fn cleanup_crds(&mut self) {
        let key_of_crds = crds_key();
        let deleting: Vec<Arc<Value>> = self
            .bucket(&key_of_crds)
            .map(|bucket| {
                bucket
                    .values()
                    .filter(|crd| meta::is_deleting(crd))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        for crd in deleting {
            if !meta::finalizers(&crd)
                .iter()
                .any(|finalizer| finalizer == CRD_CLEANUP_FINALIZER)
            {
                continue;
            }
            let Ok(crd_type) = type_from_crd(&crd) else {
                continue;
            };
            let key = crd_type.storage_key();
            let instances: Vec<Arc<Value>> = self
                .bucket(&key)
                .map(|bucket| bucket.values().cloned().collect())
                .unwrap_or_default();
            let served = self.type_of(&key);
            let mut remaining = 0;
            for obj in instances {
                if let Some(resource) = &served
                    && !meta::is_deleting(&obj)
                {
                    self.delete_object(resource, &obj, Some(Propagation::Background), false);
                }
                if self
                    .lookup(&key, meta::namespace(&obj), meta::name(&obj))
                    .is_some()
                {
                    remaining += 1;
                }
            }
            if remaining == 0 {
                self.remove_finalizer(&key_of_crds, &crd, CRD_CLEANUP_FINALIZER);
                if self.lookup(&key_of_crds, "", meta::name(&crd)).is_none() {
                    self.registry.remove(&key);
                }
            }
        }
    }
}

/// The apiserver's checks of a new CRD (its names, its schemas) and the status the
/// apiextensions controllers give it.
pub(super) fn prepare_crd_create(resource: &ResourceType, crd: &mut Value) -> ApiResult<()> {
    let crd_type = type_from_crd(crd).map_err(|e| {
        ApiError::invalid(
            &resource.kind,
            &resource.group,
            meta::name(crd),
            vec![Cause::required("spec", &e)],
        )
    })?;
    let expected = format!("{}.{}", crd_type.plural, crd_type.group);
    if meta::name(crd) != expected {
        return Err(ApiError::invalid(
            &resource.kind,
            &resource.group,
            meta::name(crd),
            vec![Cause::invalid(
                "metadata.name",
                &json!(meta::name(crd)),
                "must be spec.names.plural+\".\"+spec.group",
            )],
        ));
    }
    let causes = crd_schema_causes(crd);
    if !causes.is_empty() {
        return Err(ApiError::invalid(
            &resource.kind,
            &resource.group,
            meta::name(crd),
            causes,
        ));
    }
    crd["status"] = crd_status(crd, &crd_type, None);
    Ok(())
}

/// The checks of an updated CRD: its spec must still define a resource; through the main
/// endpoint its schemas are checked again and its status follows the new spec.
pub(super) fn prepare_crd_update(
    resource: &ResourceType,
    name: &str,
    new: &mut Value,
    old: &Value,
    subresource: Option<&str>,
) -> ApiResult<()> {
    let crd_type = type_from_crd(new).map_err(|e| {
        ApiError::invalid(
            &resource.kind,
            &resource.group,
            name,
            vec![Cause::required("spec", &e)],
        )
    })?;
    if subresource != Some("status") {
        let causes = crd_schema_causes(new);
        if !causes.is_empty() {
            return Err(ApiError::invalid(
                &resource.kind,
                &resource.group,
                name,
                causes,
            ));
        }
        new["status"] = crd_status(new, &crd_type, old.get("status"));
    }
    Ok(())
}

/// Why the apiserver would refuse the schemas of a CRD: every served version of an
/// `apiextensions.k8s.io/v1` CRD needs a structural `openAPIV3Schema`.
fn crd_schema_causes(crd: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    for (index, version) in crd["spec"]["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let prefix = format!("spec.versions[{index}].schema");
        match version["schema"].get("openAPIV3Schema") {
            None => causes.push(Cause::required(
                &format!("{prefix}.openAPIV3Schema"),
                "schemas are required",
            )),
            Some(schema) => {
                for problem in upstart_crd_validation::check_structural(schema) {
                    let (field, message) = problem.split_once(": ").unwrap_or(("", &problem));
                    causes.push(Cause {
                        reason: "FieldValueInvalid",
                        field: format!("{prefix}.{field}"),
                        message: message.to_string(),
                    });
                }
            }
        }
    }
    causes
}

/// The status the apiextensions controllers give a CRD: names accepted and established.
fn crd_status(crd: &Value, crd_type: &ResourceType, old: Option<&Value>) -> Value {
    let now = meta::now_rfc3339();
    let previous = |condition_type: &str| -> Option<Value> {
        old?.get("conditions")?
            .as_array()?
            .iter()
            .find(|condition| condition["type"] == condition_type)
            .cloned()
    };
    // A condition already true keeps its lastTransitionTime.
    let condition = |condition_type: &str, reason: &str, message: &str| {
        previous(condition_type)
            .filter(|condition| condition["status"] == "True")
            .unwrap_or_else(|| {
                json!({"type": condition_type, "status": "True", "lastTransitionTime": now, "reason": reason, "message": message})
            })
    };
    let mut stored: Vec<String> = old
        .and_then(|old_status| old_status["storedVersions"].as_array())
        .map(|versions| {
            versions
                .iter()
                .filter_map(|version| version.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    for version in crd["spec"]["versions"].as_array().into_iter().flatten() {
        if version["storage"].as_bool() == Some(true)
            && let Some(version_name) = version["name"].as_str()
            && !stored.iter().any(|already| already == version_name)
        {
            stored.push(version_name.to_string());
        }
    }
    let names = &crd["spec"]["names"];
    let mut accepted = json!({
        "plural": crd_type.plural,
        "singular": crd_type.singular,
        "kind": crd_type.kind,
        "listKind": crd_type.list_kind,
    });
    if !crd_type.short_names.is_empty() {
        accepted["shortNames"] = json!(crd_type.short_names);
    }
    if let Some(categories) = names.get("categories") {
        accepted["categories"] = categories.clone();
    }
    json!({
        "conditions": [
            condition("NamesAccepted", "NoConflicts", "no conflicts found"),
            condition("Established", "InitialNamesAccepted", "the initial names have been accepted"),
        ],
        "acceptedNames": accepted,
        "storedVersions": stored,
    })
}
