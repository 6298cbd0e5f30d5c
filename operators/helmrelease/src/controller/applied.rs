//! The objects releases applied, kept in memory by the watches that wake their releases, so
//! that observing a release's inventory (health, drift, presence) costs no request when the
//! cache already holds what the last apply wrote.
//!
//! A cached copy is only used when it cannot predate this process's own last apply of the
//! object: it has the resourceVersion that apply returned, or (for kinds with a generation) a
//! generation at least the one that apply produced. Otherwise, and for kinds not cached, the
//! object is read from the API as before. Secrets and ConfigMaps are cached as metadata only:
//! their data is never held (nor needed: their health is their presence).

use std::sync::Arc;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, Service};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::serde::Serialize;
use kube::Resource;
use kube::api::{DynamicObject, PartialObjectMeta};
use kube::runtime::reflector::ObjectRef;
use upstart_api::v1alpha1::InventoryEntry;
use upstart_operator_runtime::{Cache, Cached};

/// What this process's last apply of one object returned.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(in crate::controller) struct AppliedVersion {
    pub(in crate::controller) resource_version: Option<String>,
    pub(in crate::controller) generation: Option<i64>,
}

impl AppliedVersion {
    pub(in crate::controller) fn of(object: &DynamicObject) -> Self {
        AppliedVersion {
            resource_version: object.metadata.resource_version.clone(),
            generation: object.metadata.generation,
        }
    }

    /// Whether `cached` holds this apply (or something newer).
    fn is_held_by(&self, cached: &DynamicObject) -> bool {
        let same_version = self.resource_version.is_some()
            && cached.metadata.resource_version == self.resource_version;
        let newer_generation = matches!(
            (cached.metadata.generation, self.generation),
            (Some(cached), Some(applied)) if cached >= applied
        );
        same_version || newer_generation
    }
}

/// The caches of the kinds releases apply and whose watches wake them.
#[derive(Clone)]
pub struct AppliedObjects {
    pub(in crate::controller) deployments: Cache<Deployment>,
    pub(in crate::controller) stateful_sets: Cache<StatefulSet>,
    pub(in crate::controller) daemon_sets: Cache<DaemonSet>,
    pub(in crate::controller) jobs: Cache<Job>,
    pub(in crate::controller) pods: Cache<Pod>,
    pub(in crate::controller) services: Cache<Service>,
    pub(in crate::controller) crds: Cache<CustomResourceDefinition>,
    pub(in crate::controller) config_maps: Cache<PartialObjectMeta<ConfigMap>>,
    pub(in crate::controller) secrets: Cache<PartialObjectMeta<Secret>>,
}

/// What the caches say of one applied object.
pub(in crate::controller) enum Live {
    /// A copy that holds this process's last apply of it (or any copy, if it was not applied
    /// by this process).
    Known(Option<Arc<DynamicObject>>),
    /// Not known well enough: read it.
    Read,
}

impl AppliedObjects {
    /// The live object of `entry` (of a release in `namespace`) as far as the caches can tell,
    /// given what this process's last apply of it returned.
    pub(in crate::controller) fn live(
        &self,
        entry: &InventoryEntry,
        namespace: &str,
        applied: Option<&AppliedVersion>,
    ) -> Live {
        let namespace = entry.namespace.as_deref().unwrap_or(namespace);
        let cached = match (entry.api_version.as_str(), entry.kind.as_str()) {
            ("apps/v1", "Deployment") => lookup(&self.deployments, &entry.name, Some(namespace)),
            ("apps/v1", "StatefulSet") => lookup(&self.stateful_sets, &entry.name, Some(namespace)),
            ("apps/v1", "DaemonSet") => lookup(&self.daemon_sets, &entry.name, Some(namespace)),
            ("batch/v1", "Job") => lookup(&self.jobs, &entry.name, Some(namespace)),
            ("v1", "Pod") => lookup(&self.pods, &entry.name, Some(namespace)),
            ("v1", "Service") => lookup(&self.services, &entry.name, Some(namespace)),
            ("v1", "ConfigMap") => lookup(&self.config_maps, &entry.name, Some(namespace)),
            ("v1", "Secret") => lookup(&self.secrets, &entry.name, Some(namespace)),
            ("apiextensions.k8s.io/v1", "CustomResourceDefinition") => {
                lookup(&self.crds, &entry.name, None)
            }
            _ => Cached::Unknown,
        };
        match (cached, applied) {
            (Cached::Found(found), Some(applied)) if applied.is_held_by(&found) => {
                Live::Known(Some(found))
            }
            // Maybe older than our apply (or not there yet after it): read.
            (Cached::Found(_) | Cached::Absent, Some(_)) => Live::Read,
            (Cached::Found(found), None) => Live::Known(Some(found)),
            (Cached::Absent, None) => Live::Known(None),
            (Cached::Unknown, _) => Live::Read,
        }
    }
}

/// One object of `cache` as a [`DynamicObject`] (what the API read would have returned).
fn lookup<K>(cache: &Cache<K>, name: &str, namespace: Option<&str>) -> Cached<DynamicObject>
where
    K: Resource<DynamicType = ()>
        + Clone
        + Serialize
        + for<'de> k8s_openapi::serde::Deserialize<'de>
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let mut key = ObjectRef::<K>::new(name);
    if let Some(namespace) = namespace {
        key = key.within(namespace);
    }
    match cache.get(&key) {
        Cached::Found(found) => {
            let converted = serde_json::to_value(found.as_ref())
                .ok()
                .and_then(|value| serde_json::from_value::<DynamicObject>(value).ok());
            match converted {
                Some(mut object) => {
                    // A metadata-only copy says PartialObjectMetadata: give it its own kind.
                    let kind = K::kind(&());
                    if object.types.as_ref().is_none_or(|t| t.kind != kind) {
                        object.types = Some(kube::api::TypeMeta {
                            api_version: K::api_version(&()).into_owned(),
                            kind: kind.into_owned(),
                        });
                    }
                    Cached::Found(Arc::new(object))
                }
                None => Cached::Unknown,
            }
        }
        Cached::Absent => Cached::Absent,
        Cached::Unknown => Cached::Unknown,
    }
}
