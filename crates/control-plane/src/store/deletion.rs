//! Deletion: deletes with preconditions and propagation, finalizers, and the background work the
//! apiserver's controllers do around it, run to a fixed point (garbage collection of dependents,
//! foreground and orphan finalizers, namespace termination, CRD cleanup).

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Value, json};

use super::namespaces::held_by_spec_finalizers;
use super::{
    CRD_CLEANUP_FINALIZER, DeleteOpts, DeleteOutcome, EventType, FOREGROUND, ListQuery, ORPHAN,
    Propagation, Store, is_crds, is_namespaces, subject,
};
use crate::error::{ApiError, ApiResult};
use crate::meta;
use crate::registry::{ResKey, ResourceType};

impl Store {
    /// `DELETE` of one object, with its preconditions (uid, resourceVersion) and propagation.
    pub fn delete(
        &mut self,
        resource: &ResourceType,
        namespace: &str,
        name: &str,
        opts: &DeleteOpts,
    ) -> ApiResult<DeleteOutcome> {
        let namespace = Self::storage_namespace(resource, namespace);
        let old = self.get(resource, &namespace, name)?;
        if is_namespaces(resource) && matches!(name, "default" | "kube-system" | "kube-public") {
            return Err(ApiError::new(
                403,
                "Forbidden",
                format!("namespaces \"{name}\" is forbidden: this namespace may not be deleted"),
            )
            .with_details(json!({"name": name, "kind": "namespaces"})));
        }
        if let Some(uid) = &opts.precondition_uid
            && uid != meta::uid(&old)
        {
            return Err(ApiError::conflict(
                subject(resource, name),
                &format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                    meta::uid(&old)
                ),
            ));
        }
        if let Some(rv) = &opts.precondition_rv
            && rv != meta::resource_version(&old)
        {
            return Err(ApiError::conflict(
                subject(resource, name),
                &format!(
                    "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                    meta::resource_version(&old)
                ),
            ));
        }
        let outcome = self.delete_object(resource, &old, opts.propagation, opts.dry_run);
        if !opts.dry_run {
            self.process_deletions();
        }
        Ok(outcome)
    }

    /// Deletes one object: immediately when nothing holds it, otherwise marks it as deleting.
    pub(super) fn delete_object(
        &mut self,
        resource: &ResourceType,
        old: &Arc<Value>,
        propagation: Option<Propagation>,
        dry_run: bool,
    ) -> DeleteOutcome {
        let mut new = (**old).clone();
        let mut finalizers = meta::finalizers(&new);
        let add = match propagation {
            Some(Propagation::Foreground) => Some(FOREGROUND),
            Some(Propagation::Orphan) => Some(ORPHAN),
            _ => None,
        };
        if let Some(propagation_finalizer) = add
            && !finalizers.iter().any(|f| f == propagation_finalizer)
        {
            finalizers.push(propagation_finalizer.to_string());
        }
        let is_namespace = is_namespaces(resource);
        if is_crds(resource) && !finalizers.iter().any(|f| f == CRD_CLEANUP_FINALIZER) {
            finalizers.push(CRD_CLEANUP_FINALIZER.to_string());
        }
        let namespace_held = is_namespace && held_by_spec_finalizers(&new);
        if finalizers.is_empty() && !namespace_held {
            if dry_run {
                return DeleteOutcome::Gone(new);
            }
            let gone = self.commit(&resource.storage_key(), EventType::Deleted, new);
            return DeleteOutcome::Gone((*gone).clone());
        }
        if meta::is_deleting(old) && finalizers == meta::finalizers(old) {
            return DeleteOutcome::Pending((**old).clone());
        }
        meta::set_finalizers(&mut new, &finalizers);
        if !meta::is_deleting(old) {
            let metadata = meta::metadata_mut(&mut new);
            if let Some(generation) = metadata.get("generation").and_then(Value::as_i64)
                && generation > 0
            {
                metadata.insert("generation".into(), json!(generation + 1));
            }
            metadata.insert("deletionTimestamp".into(), json!(meta::now_rfc3339()));
            metadata.insert("deletionGracePeriodSeconds".into(), json!(0));
        }
        if is_namespace {
            if !new["status"].is_object() {
                new["status"] = json!({});
            }
            new["status"]["phase"] = json!("Terminating");
        }
        if dry_run {
            return DeleteOutcome::Pending(new);
        }
        let stored = self.commit(&resource.storage_key(), EventType::Modified, new);
        DeleteOutcome::Pending((*stored).clone())
    }

    /// `DELETE` on a collection: deletes every matching object, returns the deleted ones.
    pub fn delete_collection(
        &mut self,
        resource: &ResourceType,
        query: &ListQuery,
        opts: &DeleteOpts,
    ) -> ApiResult<Vec<Value>> {
        let targets: Vec<Arc<Value>> = self
            .bucket(&resource.storage_key())
            .map(|bucket| {
                bucket
                    .values()
                    .filter(|obj| query.matches(obj))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        let mut out = Vec::new();
        for obj in targets {
            match self.delete_object(resource, &obj, opts.propagation, opts.dry_run) {
                DeleteOutcome::Gone(last) | DeleteOutcome::Pending(last) => out.push(last),
            }
        }
        if !opts.dry_run {
            self.process_deletions();
        }
        Ok(out)
    }

    /// Removes one finalizer; the object goes when it was the last one holding a deletion.
    pub(super) fn remove_finalizer(&mut self, key: &ResKey, obj: &Arc<Value>, finalizer: &str) {
        let mut new = (**obj).clone();
        let finalizers: Vec<String> = meta::finalizers(&new)
            .into_iter()
            .filter(|kept| kept != finalizer)
            .collect();
        meta::set_finalizers(&mut new, &finalizers);
        let kind = if meta::is_deleting(&new) && finalizers.is_empty() {
            EventType::Deleted
        } else {
            EventType::Modified
        };
        self.commit(key, kind, new);
    }

    /// The work of the apiserver's background controllers around deletion, run to a fixed point:
    /// namespace termination, CRD instance cleanup, garbage collection of dependents, foreground
    /// and orphan finalizers.
    pub(super) fn process_deletions(&mut self) {
        let mut rounds = 0;
        while self.needs_gc && rounds < 10_000 {
            self.needs_gc = false;
            rounds += 1;
            self.terminate_namespaces();
            self.cleanup_crds();
            self.collect_garbage();
        }
    }

    /// One pass of the garbage collector, following its documented classification of owners:
    /// solid (exists, not being deleted in the foreground), dangling (gone) and waiting (being
    /// deleted in the foreground).
    fn collect_garbage(&mut self) {
        let all: Vec<(ResKey, Arc<Value>)> = self
            .objects
            .iter()
            .flat_map(|(key, bucket)| bucket.values().map(move |obj| (key.clone(), obj.clone())))
            .collect();
        let mut has_dependents: HashMap<String, Vec<(ResKey, Arc<Value>, bool)>> = HashMap::new();
        for (key, obj) in &all {
            for (owner_uid, blocks) in meta::owner_refs(obj) {
                has_dependents.entry(owner_uid).or_default().push((
                    key.clone(),
                    obj.clone(),
                    blocks,
                ));
            }
        }
        // Dependents first.
        for (key, obj) in &all {
            let refs = meta::owner_refs(obj);
            if refs.is_empty() {
                continue;
            }
            // The object may have changed earlier in this pass.
            let Some(current) = self
                .lookup(key, meta::namespace(obj), meta::name(obj))
                .cloned()
            else {
                continue;
            };
            if meta::uid(&current) != meta::uid(obj) {
                continue;
            }
            let mut solid = 0;
            let mut dangling = Vec::new();
            let mut waiting = Vec::new();
            for (uid, _) in &refs {
                match self.find_uid(uid) {
                    None => dangling.push(uid.clone()),
                    Some((_, owner)) => {
                        if meta::is_deleting(&owner)
                            && meta::finalizers(&owner)
                                .iter()
                                .any(|finalizer| finalizer == FOREGROUND)
                        {
                            waiting.push(uid.clone());
                        } else {
                            solid += 1;
                        }
                    }
                }
            }
            if solid > 0 {
                if !dangling.is_empty() || !waiting.is_empty() {
                    let mut new = (*current).clone();
                    let drop: Vec<String> = dangling.into_iter().chain(waiting).collect();
                    remove_owner_refs(&mut new, &drop);
                    self.commit(key, EventType::Modified, new);
                }
                continue;
            }
            if meta::is_deleting(&current) {
                continue;
            }
            let Some(resource) = self.type_of(key) else {
                continue;
            };
            let policy = if !waiting.is_empty() && has_dependents.contains_key(meta::uid(&current))
            {
                Propagation::Foreground
            } else {
                Propagation::Background
            };
            self.delete_object(&resource, &current, Some(policy), false);
        }
        // Owners waiting on dependents, and orphaning owners.
        for (key, obj) in &all {
            if !meta::is_deleting(obj) {
                continue;
            }
            let Some(current) = self
                .lookup(key, meta::namespace(obj), meta::name(obj))
                .cloned()
            else {
                continue;
            };
            let finalizers = meta::finalizers(&current);
            let uid = meta::uid(&current).to_string();
            if finalizers.iter().any(|finalizer| finalizer == ORPHAN) {
                for (dependent_key, dependent, _) in
                    has_dependents.get(&uid).cloned().unwrap_or_default()
                {
                    if let Some(current_dependent) = self
                        .lookup(
                            &dependent_key,
                            meta::namespace(&dependent),
                            meta::name(&dependent),
                        )
                        .cloned()
                    {
                        let mut new = (*current_dependent).clone();
                        remove_owner_refs(&mut new, std::slice::from_ref(&uid));
                        self.commit(&dependent_key, EventType::Modified, new);
                    }
                }
                self.remove_finalizer(key, &current, ORPHAN);
                continue;
            }
            if finalizers.iter().any(|finalizer| finalizer == FOREGROUND) {
                let blocking = has_dependents.get(&uid).is_some_and(|dependents| {
                    dependents.iter().any(|(dependent_key, dependent, blocks)| {
                        *blocks
                            && self
                                .lookup(
                                    dependent_key,
                                    meta::namespace(dependent),
                                    meta::name(dependent),
                                )
                                .is_some_and(|current_dependent| {
                                    meta::owner_refs(current_dependent).iter().any(
                                        |(owner_uid, blocks_owner)| {
                                            *owner_uid == uid && *blocks_owner
                                        },
                                    )
                                })
                    })
                });
                if !blocking {
                    self.remove_finalizer(key, &current, FOREGROUND);
                }
            }
        }
    }
}

/// Drops the owner references to `uids` (and the field, when none is left).
fn remove_owner_refs(obj: &mut Value, uids: &[String]) {
    let metadata = meta::metadata_mut(obj);
    if let Some(Value::Array(refs)) = metadata.get_mut("ownerReferences") {
        refs.retain(|owner_ref| {
            !uids
                .iter()
                .any(|uid| Some(uid.as_str()) == owner_ref["uid"].as_str())
        });
        if refs.is_empty() {
            metadata.remove("ownerReferences");
        }
    }
}
