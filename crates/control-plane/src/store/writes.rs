//! Writes: create, update (main endpoint and `/status`) and patch in every format, server-side
//! apply included, with the apiserver's checks in the apiserver's order.

use std::sync::Arc;

use serde_json::{Value, json};

use super::crds::{prepare_crd_create, prepare_crd_update};
use super::namespaces::{
    held_by_spec_finalizers, keep_server_owned_namespace_fields, prepare_namespace_create,
};
use super::{
    EventType, FieldValidation, Store, WriteOpts, WriteResult, is_crds, is_namespaces, subject,
};
use crate::builtin;
use crate::error::{ApiError, ApiResult, Cause};
use crate::meta;
use crate::patching::{self, PatchKind};
use crate::registry::{ResourceType, split_api_version};

impl Store {
    /// Puts apiVersion/kind/namespace in place and checks them against the URL.
    fn normalise_body(
        &self,
        resource: &ResourceType,
        namespace: &str,
        obj: &mut Value,
    ) -> ApiResult<()> {
        if !obj.is_object() {
            return Err(ApiError::bad_request(
                "the body of the request must be a JSON object",
            ));
        }
        if let Some(problem) = metadata_type_problem(obj) {
            // The apiserver's decoder refuses these before anything else looks at the object.
            return Err(ApiError::bad_request(format!(
                "{kind} in version \"{version}\" cannot be handled as a {kind}: {problem}",
                kind = resource.kind,
                version = resource.preferred_version(),
            )));
        }
        if let Some(body_kind) = obj["kind"].as_str()
            && !body_kind.is_empty()
            && body_kind != resource.kind
        {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({}) does not match the expected API version ({})",
                obj["apiVersion"].as_str().unwrap_or(""),
                resource.api_version(resource.preferred_version())
            )));
        }
        let api_version = match obj["apiVersion"].as_str() {
            Some(body_version) if resource.serves(split_api_version(body_version).1) => {
                body_version.to_string()
            }
            _ => resource.api_version(resource.preferred_version()),
        };
        obj["apiVersion"] = json!(api_version);
        obj["kind"] = json!(resource.kind);
        if api_version == "autoscaling/v1" {
            // Stored in the v2 form, which every served version is converted from.
            *obj = crate::convert::hpa_v1_to_v2(obj);
        }
        let metadata = meta::metadata_mut(obj);
        if resource.namespaced {
            match metadata.get("namespace").and_then(Value::as_str) {
                Some(body_namespace)
                    if !body_namespace.is_empty() && body_namespace != namespace =>
                {
                    return Err(ApiError::bad_request(
                        "the namespace of the provided object does not match the namespace sent on the request",
                    ));
                }
                _ => {
                    metadata.insert("namespace".into(), json!(namespace));
                }
            }
        } else {
            metadata.remove("namespace");
        }
        if let Some(converter) = resource.converter() {
            *obj = converter.incoming(obj);
        }
        Ok(())
    }

    /// Schema validation, pruning and defaulting of custom resources, and the `fieldValidation`
    /// treatment of unknown fields.
    fn validate_custom(
        &self,
        resource: &ResourceType,
        obj: &mut Value,
        old: Option<&Value>,
        opts: &WriteOpts,
        warnings: &mut Vec<String>,
    ) -> ApiResult<()> {
        let version = split_api_version(obj["apiVersion"].as_str().unwrap_or(""))
            .1
            .to_string();
        let Some(schema) = resource
            .crd_versions
            .get(&version)
            .and_then(|crd_version| crd_version.compiled.clone())
        else {
            return Ok(());
        };
        let admission = schema.admit(obj, old);
        unknown_fields(&admission.pruned, opts, warnings)?;
        if !admission.errors.is_empty() {
            let qualified = format!("{}.{}", resource.kind, resource.group);
            let name = meta::name(obj).to_string();
            let causes: Vec<Value> = admission
                .errors
                .iter()
                .map(|error| {
                    json!({"reason": error.kind.reason(), "message": error.body(), "field": error.path})
                })
                .collect();
            return Err(ApiError::new(
                422,
                "Invalid",
                upstart_crd_validation::invalid_error_message(&qualified, &name, &admission.errors),
            )
            .with_details(
                json!({"name": name, "group": resource.group, "kind": resource.kind, "causes": causes}),
            ));
        }
        Ok(())
    }

    /// `POST`: a new object, named by the client or from its `generateName`.
    pub fn create(
        &mut self,
        resource: &ResourceType,
        namespace: &str,
        mut obj: Value,
        opts: &WriteOpts,
    ) -> ApiResult<WriteResult> {
        let namespace = Self::storage_namespace(resource, namespace);
        self.normalise_body(resource, &namespace, &mut obj)?;
        if !meta::resource_version(&obj).is_empty() {
            if !opts.applied {
                // What etcd storage answers; the apiserver passes it on as an internal error.
                return Err(ApiError::internal(
                    "Internal error occurred: resourceVersion should not be set on objects to be created",
                ));
            }
            meta::metadata_mut(&mut obj).remove("resourceVersion");
        }
        let mut name = meta::name(&obj).to_string();
        if name.is_empty() {
            match obj["metadata"]["generateName"].as_str() {
                Some(prefix) if !prefix.is_empty() => {
                    // Retry on the unlikely collision, as the apiserver's name generator does.
                    for _ in 0..8 {
                        name = meta::generate_name(prefix);
                        if self
                            .lookup(&resource.storage_key(), &namespace, &name)
                            .is_none()
                        {
                            break;
                        }
                    }
                    meta::metadata_mut(&mut obj).insert("name".into(), json!(name));
                }
                _ => {
                    return Err(ApiError::invalid(
                        &resource.kind,
                        &resource.group,
                        "",
                        vec![Cause::required(
                            "metadata.name",
                            "name or generateName is required",
                        )],
                    ));
                }
            }
        }
        // The apiserver's order: namespace admission, validation, then storage (AlreadyExists).
        self.check_namespace_for_create(resource, &namespace, &name)?;
        let mut causes = meta::validate_name(&resource.plural, &resource.group, &name);
        causes.extend(builtin::validate_metadata(&obj));
        if !causes.is_empty() {
            return Err(ApiError::invalid(
                &resource.kind,
                &resource.group,
                &name,
                causes,
            ));
        }
        let mut warnings = Vec::new();
        if resource.builtin {
            unknown_fields(
                &builtin::prune_unknown(resource, &mut obj)?,
                opts,
                &mut warnings,
            )?;
        } else {
            self.validate_custom(resource, &mut obj, None, opts, &mut warnings)?;
        }
        if self
            .lookup(&resource.storage_key(), &namespace, &name)
            .is_some()
        {
            return Err(ApiError::already_exists(subject(resource, &name)));
        }
        if resource.has_status
            && let Some(fields) = obj.as_object_mut()
        {
            fields.remove("status");
        }
        {
            let metadata = meta::metadata_mut(&mut obj);
            metadata.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
            metadata.insert("creationTimestamp".into(), json!(meta::now_rfc3339()));
            for server_owned in [
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "resourceVersion",
                "selfLink",
            ] {
                metadata.remove(server_owned);
            }
            if resource.tracks_generation {
                metadata.insert("generation".into(), json!(1));
            } else {
                metadata.remove("generation");
            }
        }
        if is_namespaces(resource) {
            prepare_namespace_create(&mut obj);
        } else if is_crds(resource) {
            prepare_crd_create(resource, &mut obj)?;
        }
        if resource.builtin {
            builtin::prepare(resource, &mut obj, None, &mut self.next_ip);
            let causes = builtin::validate(resource, &obj);
            if !causes.is_empty() {
                return Err(ApiError::invalid(
                    &resource.kind,
                    &resource.group,
                    &name,
                    causes,
                ));
            }
        }
        if !opts.applied {
            patching::record_update(None, &mut obj, &opts.field_manager, resource, None)?;
        }
        if opts.dry_run {
            return Ok(WriteResult {
                object: obj,
                created: true,
                warnings,
            });
        }
        let stored = self.commit(&resource.storage_key(), EventType::Added, obj);
        self.serve_if_crd(resource, &stored);
        if is_namespaces(resource) {
            self.create_default_service_account(meta::name(&stored));
        }
        self.process_deletions();
        Ok(WriteResult {
            object: (*stored).clone(),
            created: true,
            warnings,
        })
    }

    /// Update through the main endpoint (`subresource` None) or `/status`.
    pub fn update(
        &mut self,
        resource: &ResourceType,
        namespace: &str,
        name: &str,
        mut obj: Value,
        subresource: Option<&str>,
        opts: &WriteOpts,
    ) -> ApiResult<WriteResult> {
        let namespace = Self::storage_namespace(resource, namespace);
        self.normalise_body(resource, &namespace, &mut obj)?;
        let body_name = meta::name(&obj).to_string();
        if body_name.is_empty() {
            meta::metadata_mut(&mut obj).insert("name".into(), json!(name));
        } else if body_name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        let old = self.get(resource, &namespace, name)?;
        let body_rv = meta::resource_version(&obj).to_string();
        if body_rv.is_empty() {
            if !resource.builtin {
                return Err(ApiError::invalid(
                    &resource.kind,
                    &resource.group,
                    name,
                    vec![Cause::invalid(
                        "metadata.resourceVersion",
                        &json!("0x0"),
                        "must be specified for an update",
                    )],
                ));
            }
        } else if body_rv != meta::resource_version(&old) {
            return Err(ApiError::stale(subject(resource, name)));
        }
        self.write_update(resource, &old, obj, subresource, opts)
    }

    /// The shared part of update and patch: apiserver update semantics from old to new.
    pub(super) fn write_update(
        &mut self,
        resource: &ResourceType,
        old: &Arc<Value>,
        body: Value,
        subresource: Option<&str>,
        opts: &WriteOpts,
    ) -> ApiResult<WriteResult> {
        let name = meta::name(old).to_string();
        let mut warnings = Vec::new();
        let mut new = if subresource == Some("status") {
            // `/status` changes nothing but status.
            let mut with_new_status = (**old).clone();
            match body.get("status") {
                Some(status) => with_new_status["status"] = status.clone(),
                None => {
                    if let Some(fields) = with_new_status.as_object_mut() {
                        fields.remove("status");
                    }
                }
            }
            if let Some(managed_fields) = body["metadata"].get("managedFields") {
                meta::metadata_mut(&mut with_new_status)
                    .insert("managedFields".into(), managed_fields.clone());
            }
            with_new_status
        } else {
            // The main endpoint changes everything but status (when the resource has one).
            let mut with_old_status = body;
            if resource.has_status {
                match old.get("status") {
                    Some(status) => with_old_status["status"] = status.clone(),
                    None => {
                        if let Some(fields) = with_old_status.as_object_mut() {
                            fields.remove("status");
                        }
                    }
                }
            }
            with_old_status
        };
        if resource.builtin {
            unknown_fields(
                &builtin::prune_unknown(resource, &mut new)?,
                opts,
                &mut warnings,
            )?;
        } else {
            self.validate_custom(resource, &mut new, Some(old), opts, &mut warnings)?;
        }
        // Metadata the client cannot change.
        {
            let old_metadata = &old["metadata"];
            let metadata = meta::metadata_mut(&mut new);
            for server_owned in [
                "uid",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "generation",
            ] {
                match old_metadata.get(server_owned) {
                    Some(value) => metadata.insert(server_owned.into(), value.clone()),
                    None => metadata.remove(server_owned),
                };
            }
            metadata.insert(
                "resourceVersion".into(),
                old_metadata["resourceVersion"].clone(),
            );
            metadata.remove("selfLink");
        }
        if meta::is_deleting(old) {
            let before = meta::finalizers(old);
            if meta::finalizers(&new)
                .iter()
                .any(|finalizer| !before.contains(finalizer))
            {
                return Err(ApiError::invalid(
                    &resource.kind,
                    &resource.group,
                    &name,
                    vec![Cause::forbidden(
                        "metadata.finalizers",
                        "no new finalizers can be added if the object is being deleted",
                    )],
                ));
            }
        }
        if is_namespaces(resource) {
            keep_server_owned_namespace_fields(&mut new, old, subresource);
        }
        if resource.builtin {
            builtin::prepare(resource, &mut new, Some(old), &mut self.next_ip);
        }
        let mut causes = builtin::validate_metadata(&new);
        if resource.builtin && subresource.is_none() {
            causes.extend(builtin::validate(resource, &new));
        }
        causes.extend(builtin::validate_update(resource, &new, old));
        if !causes.is_empty() {
            return Err(ApiError::invalid(
                &resource.kind,
                &resource.group,
                &name,
                causes,
            ));
        }
        if resource.tracks_generation && !meta::same_for_generation(&new, old, resource.has_status)
        {
            let generation = old["metadata"]["generation"].as_i64().unwrap_or(0) + 1;
            meta::metadata_mut(&mut new).insert("generation".into(), json!(generation));
        }
        if is_crds(resource) {
            prepare_crd_update(resource, &name, &mut new, old, subresource)?;
        }
        if !opts.applied {
            patching::record_update(
                Some(old),
                &mut new,
                &opts.field_manager,
                resource,
                subresource,
            )?;
        }
        if opts.dry_run {
            return Ok(WriteResult {
                object: new,
                created: false,
                warnings,
            });
        }
        if new == **old {
            // Nothing changed: the apiserver skips the write and keeps the resourceVersion.
            return Ok(WriteResult {
                object: new,
                created: false,
                warnings,
            });
        }
        let key = resource.storage_key();
        let namespace_held = is_namespaces(resource) && held_by_spec_finalizers(&new);
        let stored =
            if meta::is_deleting(&new) && meta::finalizers(&new).is_empty() && !namespace_held {
                self.commit(&key, EventType::Deleted, new)
            } else {
                let stored = self.commit(&key, EventType::Modified, new);
                self.serve_if_crd(resource, &stored);
                stored
            };
        self.process_deletions();
        Ok(WriteResult {
            object: (*stored).clone(),
            created: false,
            warnings,
        })
    }

    /// PATCH in any of the supported formats. Apply creates the object when it does not exist.
    #[allow(clippy::too_many_arguments)]
    pub fn patch(
        &mut self,
        resource: &ResourceType,
        namespace: &str,
        name: &str,
        kind: PatchKind,
        body: &[u8],
        subresource: Option<&str>,
        force: bool,
        opts: &WriteOpts,
    ) -> ApiResult<WriteResult> {
        let namespace = Self::storage_namespace(resource, namespace);
        if kind == PatchKind::Apply {
            if opts.field_manager.is_empty() {
                return Err(ApiError::invalid(
                    "PatchOptions",
                    "meta.k8s.io",
                    "",
                    vec![Cause::required(
                        "fieldManager",
                        "is required for apply patch",
                    )],
                ));
            }
            let mut applied = patching::parse_apply_body(body)?;
            self.normalise_body(resource, &namespace, &mut applied)?;
            let body_name = meta::name(&applied).to_string();
            if body_name != name {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({body_name}) does not match the name on the URL ({name})"
                )));
            }
            let current = self
                .lookup(&resource.storage_key(), &namespace, name)
                .cloned();
            let opts = &WriteOpts {
                applied: true,
                ..opts.clone()
            };
            return match current {
                None => {
                    if subresource.is_some() {
                        return Err(ApiError::not_found(subject(resource, name)));
                    }
                    let merged = patching::server_side_apply(
                        None,
                        &applied,
                        &opts.field_manager,
                        force,
                        resource,
                        None,
                    )?;
                    self.create(resource, &namespace, merged, opts)
                }
                Some(old) => {
                    let mut merged = patching::server_side_apply(
                        Some(&old),
                        &applied,
                        &opts.field_manager,
                        force,
                        resource,
                        subresource,
                    )?;
                    let applied_rv = meta::resource_version(&applied).to_string();
                    if !applied_rv.is_empty() && applied_rv != meta::resource_version(&old) {
                        return Err(ApiError::stale(subject(resource, name)));
                    }
                    meta::metadata_mut(&mut merged).insert(
                        "resourceVersion".into(),
                        json!(meta::resource_version(&old)),
                    );
                    self.write_update(resource, &old, merged, subresource, opts)
                }
            };
        }
        if force {
            return Err(ApiError::invalid(
                "PatchOptions",
                "meta.k8s.io",
                "",
                vec![Cause::forbidden(
                    "force",
                    "may not be specified for non-apply patch",
                )],
            ));
        }
        let old = self.get(resource, &namespace, name)?;
        // A patch is written against the served form of the object.
        let view = match resource.converter() {
            Some(converter) => Arc::new(converter.outgoing(&old)),
            None => old.clone(),
        };
        let mut patched = patching::apply_patch(kind, &view, body, resource)?;
        self.normalise_body(resource, &namespace, &mut patched)?;
        if meta::name(&patched) != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({}) does not match the name on the URL ({name})",
                meta::name(&patched)
            )));
        }
        let patched_rv = meta::resource_version(&patched).to_string();
        if patched_rv != meta::resource_version(&old) {
            // A resourceVersion in the patch is a precondition, as in the apiserver.
            return Err(ApiError::stale(subject(resource, name)));
        }
        self.write_update(resource, &old, patched, subresource, opts)
    }
}

/// Why `metadata` does not decode as ObjectMeta, if it does not.
fn metadata_type_problem(obj: &Value) -> Option<String> {
    let metadata = match obj.get("metadata") {
        None | Some(Value::Null) => return None,
        Some(Value::Object(metadata)) => metadata,
        Some(_) => return Some("metadata must be an object".into()),
    };
    for key in ["labels", "annotations"] {
        match metadata.get(key) {
            None | Some(Value::Null) => {}
            Some(Value::Object(map)) if map.values().all(Value::is_string) => {}
            Some(_) => return Some(format!("metadata.{key} must be a map of strings")),
        }
    }
    match metadata.get("finalizers") {
        None | Some(Value::Null) => {}
        Some(Value::Array(finalizers)) if finalizers.iter().all(Value::is_string) => {}
        Some(_) => return Some("metadata.finalizers must be a list of strings".into()),
    }
    match metadata.get("ownerReferences") {
        None | Some(Value::Null) => {}
        Some(Value::Array(owner_refs)) if owner_refs.iter().all(Value::is_object) => {}
        Some(_) => return Some("metadata.ownerReferences must be a list of objects".into()),
    }
    for key in [
        "name",
        "namespace",
        "generateName",
        "resourceVersion",
        "uid",
    ] {
        if metadata
            .get(key)
            .is_some_and(|value| !value.is_string() && !value.is_null())
        {
            return Some(format!("metadata.{key} must be a string"));
        }
    }
    None
}

/// `fieldValidation` applied to the unknown fields a write carried (already removed).
fn unknown_fields(paths: &[String], opts: &WriteOpts, warnings: &mut Vec<String>) -> ApiResult<()> {
    if paths.is_empty() {
        return Ok(());
    }
    let unknown: Vec<String> = paths
        .iter()
        .map(|path| format!("unknown field {path:?}"))
        .collect();
    match opts.field_validation {
        FieldValidation::Strict => Err(ApiError::bad_request(format!(
            "strict decoding error: {}",
            unknown.join(", ")
        ))),
        FieldValidation::Warn => {
            warnings.extend(unknown);
            Ok(())
        }
        FieldValidation::Ignore => Ok(()),
    }
}
