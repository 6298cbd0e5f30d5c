//! Reading outputs: the Secrets and ConfigMaps a list of `outputsFrom` sources names, as they
//! are now, for the DAG crate to collect keys from. Here, so the DAG crate stays free of any
//! Kubernetes client, and the HelmRelease and service operators read outputs one way.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Client};
use serde::de::DeserializeOwned;
use upstart_api::v1alpha1::OutputSource;
use upstart_dag::Objects;

use crate::cache::{Cache, Cached};

/// Which kind of object a failed output read was for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputKind {
    Secret,
    ConfigMap,
}

/// Reads the objects `sources` name in `namespace` (missing ones are simply absent: whether
/// that is a wait is the DAG crate's to say). A failed read names the kind it was for.
pub async fn read_output_objects(
    client: &Client,
    namespace: &str,
    sources: &[OutputSource],
) -> Result<Objects, (OutputKind, kube::Error)> {
    read(client, namespace, sources, None).await
}

/// Output Secrets and ConfigMaps read from the API once per version: metadata-only watches
/// ([`Cache`]s of `PartialObjectMeta`, which carry no data) say which resourceVersion each object
/// is at, and an object is read only when the copy in memory is not at that version (or before
/// the watch's first list is complete). An object the watch has not seen is absent: missing
/// outputs are waited for, and the watch's event for them wakes whoever waits. A copy as old as
/// the watch is as good as the copy a read would have returned when the watch saw it; a newer
/// write's event wakes the reconcile again.
pub struct OutputReads {
    secrets: Versioned<Secret>,
    config_maps: Versioned<ConfigMap>,
}

/// Objects of one kind as last read, and the metadata watch that tells their versions.
struct Versioned<K: kube::Resource<DynamicType = ()> + 'static> {
    versions: Cache<PartialObjectMeta<K>>,
    read: Mutex<HashMap<(String, String), Arc<K>>>,
}

impl OutputReads {
    /// Reads against the versions these metadata-only caches hold.
    pub fn new(
        secrets: Cache<PartialObjectMeta<Secret>>,
        config_maps: Cache<PartialObjectMeta<ConfigMap>>,
    ) -> OutputReads {
        OutputReads {
            secrets: Versioned::new(secrets),
            config_maps: Versioned::new(config_maps),
        }
    }

    /// As [`read_output_objects`], reading only what memory does not hold at its version.
    pub async fn read(
        &self,
        client: &Client,
        namespace: &str,
        sources: &[OutputSource],
    ) -> Result<Objects, (OutputKind, kube::Error)> {
        read(client, namespace, sources, Some(self)).await
    }

    /// How many objects memory holds (for tests and the memory bench).
    pub fn held(&self) -> usize {
        self.secrets.held() + self.config_maps.held()
    }
}

impl<K> Versioned<K>
where
    K: kube::Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync,
{
    fn new(versions: Cache<PartialObjectMeta<K>>) -> Self {
        Versioned {
            versions,
            read: Mutex::default(),
        }
    }

    /// The object `name` of `api` (a namespaced one).
    async fn read(&self, api: &Api<K>, name: &str) -> kube::Result<Option<Arc<K>>> {
        let namespace = api.namespace().unwrap_or_default();
        let key = (namespace.to_owned(), name.to_owned());
        match self.versions.get(&ObjectRef::new(name).within(namespace)) {
            Cached::Found(meta) => {
                if let Some(version) = meta.metadata.resource_version.as_deref()
                    && let Some(known) = self.lock().get(&key)
                    && known.meta().resource_version.as_deref() == Some(version)
                {
                    return Ok(Some(known.clone()));
                }
            }
            // Absent as far as the watch tells: a missing output is a wait, and the watch
            // that will see it created wakes the releases that wait for it.
            Cached::Absent => {
                self.lock().remove(&key);
                return Ok(None);
            }
            Cached::Unknown => {}
        }
        let read = api.get_opt(name).await?.map(Arc::new);
        let mut memory = self.lock();
        match &read {
            Some(object) => memory.insert(key, object.clone()),
            None => memory.remove(&key),
        };
        Ok(read)
    }

    fn held(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), Arc<K>>> {
        self.read
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The objects `sources` name, read from the API or, with `memory`, only when memory does
/// not hold them at their version.
async fn read(
    client: &Client,
    namespace: &str,
    sources: &[OutputSource],
    memory: Option<&OutputReads>,
) -> Result<Objects, (OutputKind, kube::Error)> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let mut objects = Objects::new();
    for source in sources {
        if let Some(reference) = &source.secret_ref
            && let Some(found) = read_one(&secrets, memory.map(|m| &m.secrets), &reference.name)
                .await
                .map_err(|e| (OutputKind::Secret, e))?
        {
            objects = objects.with_secret(found);
        }
        if let Some(reference) = &source.config_map_ref
            && let Some(found) = read_one(
                &config_maps,
                memory.map(|m| &m.config_maps),
                &reference.name,
            )
            .await
            .map_err(|e| (OutputKind::ConfigMap, e))?
        {
            objects = objects.with_config_map(found);
        }
    }
    Ok(objects)
}

/// The object `name` of `api`: from `memory` when it holds it at its version, else read.
async fn read_one<K>(
    api: &Api<K>,
    memory: Option<&Versioned<K>>,
    name: &str,
) -> kube::Result<Option<Arc<K>>>
where
    K: kube::Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync,
{
    match memory {
        Some(memory) => memory.read(api, name).await,
        None => Ok(api.get_opt(name).await?.map(Arc::new)),
    }
}
