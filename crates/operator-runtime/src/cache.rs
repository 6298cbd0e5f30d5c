//! Kinds a reconcile reads but does not own, kept in memory by the watch that also wakes
//! reconciles for them: a reconcile woken by a change reads that change from memory (the store
//! is updated before the wake-up is passed on) instead of asking the API server again.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures::{Stream, StreamExt};
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
    /// kinds); [`Cache::watch_with_managed_fields`] keeps them.
    pub fn watch(
        api: Api<K>,
        config: watcher::Config,
    ) -> (
        Self,
        impl Stream<Item = Result<K, watcher::Error>> + Send + 'static,
    ) {
        Self::watch_keeping(api, config, false)
    }

    /// As [`Cache::watch`], keeping each object's `managedFields` (who wrote what: how drift is
    /// told from the operator's own writes).
    pub fn watch_with_managed_fields(
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
        managed_fields: bool,
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
                if !managed_fields {
                    object.meta_mut().managed_fields = None;
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
