//! Kinds a reconcile reads but does not own, kept in memory by the watch that also wakes
//! reconciles for them: a reconcile woken by a change reads that change from memory (the store
//! is updated before the wake-up is passed on) instead of asking the API server again.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures::{Stream, StreamExt};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{FieldsV1, ObjectMeta};
use kube::Api;
use kube::api::ListParams;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use serde::de::DeserializeOwned;

/// A store of one kind and whether its first list is complete.
pub struct Cache<K: kube::Resource + 'static>
where
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    store: Store<K>,
    listed: Arc<AtomicBool>,
}

impl<K: kube::Resource + 'static> Clone for Cache<K>
where
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    fn clone(&self) -> Self {
        Cache {
            store: self.store.clone(),
            listed: self.listed.clone(),
        }
    }
}

/// What the cache knows of one object.
#[derive(Debug)]
pub enum Cached<K> {
    /// The object as last seen by the watch.
    Found(Arc<K>),
    /// Not in the cluster, as far as the complete list and the watch since tell.
    Absent,
    /// The first list is not complete yet: read the object from the API instead.
    Unknown,
}

impl<K> Cache<K>
where
    K: kube::Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone,
{
    /// Watches `api` with `config` into a new cache. The stream yields every object applied or
    /// deleted (after the cache holds the change), for `Controller::watches_stream`; the cache
    /// is only filled while that stream is polled. Objects are kept without their
    /// `managedFields` (often the larger part of an object, and read by no reconcile of these
    /// kinds); [`Cache::watch_with_field_owners`] keeps who wrote what.
    pub fn watch(
        api: Api<K>,
        config: watcher::Config,
    ) -> (
        Self,
        impl Stream<Item = Result<K, watcher::Error>> + Send + 'static,
    ) {
        Self::watch_keeping(api, config, false)
    }

    /// As [`Cache::watch`], keeping each object's `managedFields` as
    /// [`summarise_managed_fields`] leaves them: who wrote the object, how, when, through which
    /// subresource, and which of its top-level fields (how drift is told from the operator's
    /// own writes), without the field trees below them.
    pub fn watch_with_field_owners(
        api: Api<K>,
        config: watcher::Config,
    ) -> (
        Self,
        impl Stream<Item = Result<K, watcher::Error>> + Send + 'static,
    ) {
        Self::watch_keeping(api, config, true)
    }

    fn watch_keeping(
        api: Api<K>,
        config: watcher::Config,
        field_owners: bool,
    ) -> (
        Self,
        impl Stream<Item = Result<K, watcher::Error>> + Send + 'static,
    ) {
        let (store, writer) = reflector::store();
        let listed = Arc::new(AtomicBool::new(false));
        let flag = listed.clone();
        let stream = watcher(api, config)
            .default_backoff()
            .modify(move |object| {
                let meta = object.meta_mut();
                if field_owners {
                    summarise_managed_fields(meta);
                } else {
                    meta.managed_fields = None;
                }
            })
            .reflect(writer)
            .inspect(move |event| {
                if matches!(event, Ok(watcher::Event::InitDone)) {
                    flag.store(true, Ordering::Release);
                }
            })
            .touched_objects();
        (Cache { store, listed }, stream)
    }

    /// What the cache knows of the object `key` names.
    pub fn get(&self, key: &ObjectRef<K>) -> Cached<K> {
        if !self.listed.load(Ordering::Acquire) {
            return Cached::Unknown;
        }
        match self.store.get(key) {
            Some(found) => Cached::Found(found),
            None => Cached::Absent,
        }
    }

    /// Every object of the cache (empty until the first list is complete).
    pub fn store(&self) -> &Store<K> {
        &self.store
    }

    /// The objects of `namespace` as the watch last saw them, or `None` while the first list is
    /// not complete: the store is empty until then, which would read as "there are none".
    pub fn in_namespace(&self, namespace: &str) -> Option<Vec<Arc<K>>> {
        if !self.listed.load(Ordering::Acquire) {
            return None;
        }
        Some(
            self.store
                .state()
                .into_iter()
                .filter(|object| object.meta().namespace.as_deref() == Some(namespace))
                .collect(),
        )
    }

    /// The objects of `namespace`, which `api` lists: from memory, or, before the first list
    /// is complete, from a LIST.
    pub async fn in_namespace_or_list(
        &self,
        api: &Api<K>,
        namespace: &str,
    ) -> kube::Result<Vec<K>> {
        match self.in_namespace(namespace) {
            Some(cached) => Ok(cached.into_iter().map(Arc::unwrap_or_clone).collect()),
            None => Ok(api.list(&ListParams::default()).await?.items),
        }
    }
}

/// Cuts each `managedFields` entry's `fieldsV1` to its first level (`{"f:metadata": {},
/// "f:spec": {}}`): the manager, operation, time and subresource stay, and so does which
/// top-level fields each manager owns; the trees below, most of an applied object's size in
/// memory, go.
pub fn summarise_managed_fields(meta: &mut ObjectMeta) {
    for entry in meta.managed_fields.iter_mut().flatten() {
        if let Some(FieldsV1(serde_json::Value::Object(owned))) = entry.fields_v1.as_mut() {
            for below in owned.values_mut() {
                *below = serde_json::Value::Object(serde_json::Map::new());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;
    use serde_json::json;

    use super::*;

    #[test]
    fn a_summary_keeps_who_wrote_which_top_level_fields_and_drops_the_trees_below() {
        let entry = |manager: &str, subresource: Option<&str>, fields: serde_json::Value| {
            ManagedFieldsEntry {
                manager: Some(manager.into()),
                operation: Some("Apply".into()),
                subresource: subresource.map(Into::into),
                fields_v1: Some(FieldsV1(fields)),
                ..ManagedFieldsEntry::default()
            }
        };
        let mut meta = ObjectMeta {
            managed_fields: Some(vec![
                entry(
                    "upstart",
                    None,
                    json!({"f:metadata": {"f:labels": {"f:app": {}}},
                           "f:spec": {"f:replicas": {}, "f:template": {"f:spec": {}}}}),
                ),
                entry(
                    "kubectl",
                    None,
                    json!({"f:metadata": {"f:annotations": {}}}),
                ),
                entry(
                    "kcm",
                    Some("status"),
                    json!({"f:status": {"f:replicas": {}}}),
                ),
            ]),
            ..ObjectMeta::default()
        };
        let before = meta.managed_fields.clone();
        summarise_managed_fields(&mut meta);
        let after = meta.managed_fields.unwrap_or_default();
        let fields: Vec<_> = after
            .iter()
            .map(|e| e.fields_v1.as_ref().map(|f| f.0.clone()))
            .collect();
        assert_eq!(
            fields,
            vec![
                Some(json!({"f:metadata": {}, "f:spec": {}})),
                Some(json!({"f:metadata": {}})),
                Some(json!({"f:status": {}})),
            ]
        );
        for (summary, whole) in after.iter().zip(before.unwrap_or_default()) {
            assert_eq!(summary.manager, whole.manager);
            assert_eq!(summary.operation, whole.operation);
            assert_eq!(summary.subresource, whole.subresource);
            assert_eq!(summary.time, whole.time);
        }
    }
}
