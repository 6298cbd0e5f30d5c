//! The storage and semantics layer: the store of objects, resourceVersions and watch history,
//! and the types its operations take and answer. Synchronous; the caller holds a lock.
//!
//! The operations live by concern: `reads` (list, watch), `writes` (create, update, patch),
//! `scale` (the scale subresource), `deletion` (deletes, finalizers, garbage collection),
//! `namespaces` (namespace lifecycle, the default ServiceAccount) and `crds`
//! (CustomResourceDefinition registration and cleanup).

mod crds;
mod deletion;
mod namespaces;
mod reads;
mod scale;
mod writes;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use serde_json::{Value, json};
use tokio::sync::broadcast;

use crate::error::{ApiError, ApiResult, Subject};
use crate::meta;
use crate::registry::{Registry, ResKey, ResourceType};
use crate::selectors::{FieldSelector, LabelSelector};

pub use reads::filter_event;

/// `(namespace, name)`; namespace is empty for cluster-scoped objects.
pub type ObjKey = (String, String);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One committed change, as kept in the watch history and sent to watchers.
#[derive(Debug)]
pub struct Event {
    pub rv: u64,
    pub resource: ResKey,
    pub kind: EventType,
    /// The object after the change (for `Deleted`: its last state, with the deletion's RV).
    pub object: Arc<Value>,
    /// The object before a `Modified` change, to turn selector transitions into ADDED/DELETED.
    pub old: Option<Arc<Value>>,
}

/// How unknown fields in a request body are treated (`fieldValidation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FieldValidation {
    Ignore,
    #[default]
    Warn,
    Strict,
}

/// Options common to writes.
#[derive(Debug, Clone, Default)]
pub struct WriteOpts {
    pub dry_run: bool,
    pub field_manager: String,
    pub field_validation: FieldValidation,
    /// The write is a server-side apply: managedFields are already computed.
    pub applied: bool,
}

/// The answer to a write: the object, whether it was created, warnings for the client.
#[derive(Debug, Clone)]
pub struct WriteResult {
    pub object: Value,
    pub created: bool,
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Propagation {
    Background,
    Foreground,
    Orphan,
}

#[derive(Debug, Clone, Default)]
pub struct DeleteOpts {
    pub dry_run: bool,
    pub propagation: Option<Propagation>,
    pub precondition_uid: Option<String>,
    pub precondition_rv: Option<String>,
}

#[derive(Debug, Clone)]
pub enum DeleteOutcome {
    /// The object is gone; its last state.
    Gone(Value),
    /// The object stays until its finalizers are removed; its state with `deletionTimestamp`.
    Pending(Value),
}

/// A list request.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    pub namespace: Option<String>,
    pub labels: LabelSelector,
    pub fields: FieldSelector,
    pub limit: Option<usize>,
    pub continue_token: Option<String>,
    /// Selectors apply to the served form of objects stored in another form.
    pub conversion: Option<crate::convert::Conversion>,
}

impl ListQuery {
    pub fn matches(&self, obj: &Value) -> bool {
        if let Some(c) = self.conversion {
            return self.matches_served(&c.outgoing(obj));
        }
        self.matches_served(obj)
    }

    fn matches_served(&self, obj: &Value) -> bool {
        self.namespace
            .as_deref()
            .is_none_or(|namespace| meta::namespace(obj) == namespace)
            && self.labels.matches(obj)
            && self.fields.matches(obj)
    }
}

#[derive(Clone)]
pub struct ListResult {
    pub items: Vec<Arc<Value>>,
    pub resource_version: u64,
    pub continue_token: Option<String>,
    pub remaining: Option<usize>,
}

/// What a new watch starts with.
pub struct WatchStart {
    pub initial: Vec<(EventType, Arc<Value>)>,
    pub rx: broadcast::Receiver<Arc<Event>>,
    /// The RV the initial events bring the watcher up to.
    pub rv: u64,
}

/// Every object of the cluster by resource and `(namespace, name)`, with the watch history.
pub struct Store {
    pub registry: Registry,
    rv: u64,
    objects: HashMap<ResKey, BTreeMap<ObjKey, Arc<Value>>>,
    uids: HashMap<String, (ResKey, ObjKey)>,
    history: VecDeque<Arc<Event>>,
    history_cap: usize,
    /// Highest RV no longer in the history: watches must start at or after it.
    evicted_rv: u64,
    /// Every committed event goes to the watches that subscribed.
    watchers: broadcast::Sender<Arc<Event>>,
    /// A deletion-related change happened: run finalizer/GC/namespace processing.
    needs_gc: bool,
    /// The last Service cluster IP handed out.
    next_ip: u32,
}

const CRD_GROUP: &str = "apiextensions.k8s.io";
/// Holds a deleted CRD until its instances are gone, as the apiextensions server does.
const CRD_CLEANUP_FINALIZER: &str = "customresourcecleanup.apiextensions.k8s.io";
/// Holds an object deleted in the foreground until its blocking dependents are gone.
const FOREGROUND: &str = "foregroundDeletion";
/// Holds an object deleted with orphan propagation until its dependents no longer name it.
const ORPHAN: &str = "orphan";

fn subject<'a>(resource: &'a ResourceType, name: &'a str) -> Subject<'a> {
    Subject {
        group: &resource.group,
        plural: &resource.plural,
        name,
    }
}

fn resource_key(group: &str, plural: &str) -> ResKey {
    ResKey {
        group: group.to_string(),
        plural: plural.to_string(),
    }
}

fn namespaces_key() -> ResKey {
    resource_key("", "namespaces")
}

fn crds_key() -> ResKey {
    resource_key(CRD_GROUP, "customresourcedefinitions")
}

/// Namespaces and CRDs are the kinds whose writes have effects beyond their own object.
fn is_namespaces(resource: &ResourceType) -> bool {
    resource.group.is_empty() && resource.plural == "namespaces"
}

fn is_crds(resource: &ResourceType) -> bool {
    resource.group == CRD_GROUP && resource.plural == "customresourcedefinitions"
}

impl Store {
    pub fn new(history_cap: usize) -> Self {
        let (watchers, _) = broadcast::channel(history_cap.max(16));
        let mut store = Store {
            registry: Registry::with_builtins(),
            rv: 0,
            objects: HashMap::new(),
            uids: HashMap::new(),
            history: VecDeque::new(),
            history_cap: history_cap.max(1),
            evicted_rv: 0,
            watchers,
            needs_gc: false,
            next_ip: 0,
        };
        store.create_system_namespaces();
        store
    }

    pub fn current_rv(&self) -> u64 {
        self.rv
    }

    fn bucket(&self, key: &ResKey) -> Option<&BTreeMap<ObjKey, Arc<Value>>> {
        self.objects.get(key)
    }

    fn lookup(&self, key: &ResKey, namespace: &str, name: &str) -> Option<&Arc<Value>> {
        self.bucket(key)?
            .get(&(namespace.to_string(), name.to_string()))
    }

    /// The namespace an object of `resource` is stored under: none for cluster-scoped ones.
    fn storage_namespace(resource: &ResourceType, namespace: &str) -> String {
        if resource.namespaced {
            namespace.to_string()
        } else {
            String::new()
        }
    }

    pub fn get(
        &self,
        resource: &ResourceType,
        namespace: &str,
        name: &str,
    ) -> ApiResult<Arc<Value>> {
        self.lookup(
            &resource.storage_key(),
            &Self::storage_namespace(resource, namespace),
            name,
        )
        .cloned()
        .ok_or_else(|| ApiError::not_found(subject(resource, name)))
    }

    /// Commits a change: assigns the next RV, stores (or removes) the object, records the event.
    fn commit(&mut self, key: &ResKey, kind: EventType, mut obj: Value) -> Arc<Value> {
        self.rv += 1;
        meta::metadata_mut(&mut obj).insert("resourceVersion".into(), json!(self.rv.to_string()));
        let object_key = (
            meta::namespace(&obj).to_string(),
            meta::name(&obj).to_string(),
        );
        let obj = Arc::new(obj);
        let bucket = self.objects.entry(key.clone()).or_default();
        let old = match kind {
            EventType::Deleted => {
                self.uids.remove(meta::uid(&obj));
                bucket.remove(&object_key)
            }
            _ => {
                self.uids.insert(
                    meta::uid(&obj).to_string(),
                    (key.clone(), object_key.clone()),
                );
                bucket.insert(object_key, obj.clone())
            }
        };
        let unsettled_owner = meta::owner_refs(&obj).iter().any(|(uid, _)| {
            self.find_uid(uid)
                .is_none_or(|(_, owner)| meta::is_deleting(&owner))
        });
        if kind == EventType::Deleted || meta::is_deleting(&obj) || unsettled_owner {
            self.needs_gc = true;
        }
        let event = Arc::new(Event {
            rv: self.rv,
            resource: key.clone(),
            kind,
            object: obj.clone(),
            old: if kind == EventType::Modified {
                old
            } else {
                None
            },
        });
        if self.history.len() >= self.history_cap
            && let Some(evicted) = self.history.pop_front()
        {
            self.evicted_rv = evicted.rv;
        }
        self.history.push_back(event.clone());
        // No receivers is fine: nobody is watching.
        let _ = self.watchers.send(event);
        obj
    }

    fn type_of(&self, key: &ResKey) -> Option<Arc<ResourceType>> {
        self.registry.get(key).cloned()
    }

    fn find_uid(&self, uid: &str) -> Option<(ResKey, Arc<Value>)> {
        let (key, object_key) = self.uids.get(uid)?;
        let obj = self.objects.get(key)?.get(object_key)?;
        Some((key.clone(), obj.clone()))
    }
}
