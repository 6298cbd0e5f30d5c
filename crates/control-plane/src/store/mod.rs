//! The storage and semantics layer: objects, resourceVersions, watch history, writes, deletion,
//! finalizers, garbage collection and namespace termination. Synchronous; the caller holds a lock.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use base64::Engine as _;
use serde_json::{Value, json};
use tokio::sync::broadcast;

use crate::builtin;
use crate::error::{ApiError, ApiResult, Cause, Subject};
use crate::meta;
use crate::patching::{self, PatchKind};
use crate::registry::{Registry, ResKey, ResourceType, type_from_crd};
use crate::selectors::{FieldSelector, LabelSelector};

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
    pub res: ResKey,
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
            .is_none_or(|ns| meta::namespace(obj) == ns)
            && self.labels.matches(obj)
            && self.fields.matches(obj)
    }
}

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

pub struct Store {
    pub registry: Registry,
    rv: u64,
    objects: HashMap<ResKey, BTreeMap<ObjKey, Arc<Value>>>,
    uids: HashMap<String, (ResKey, ObjKey)>,
    history: VecDeque<Arc<Event>>,
    history_cap: usize,
    /// Highest RV no longer in the history: watches must start at or after it.
    evicted_rv: u64,
    tx: broadcast::Sender<Arc<Event>>,
    /// A deletion-related change happened: run finalizer/GC/namespace processing.
    needs_gc: bool,
    /// The last Service cluster IP handed out.
    next_ip: u32,
}

const NS_RES: (&str, &str) = ("", "namespaces");
const CRD_GROUP: &str = "apiextensions.k8s.io";
const CRD_CLEANUP_FINALIZER: &str = "customresourcecleanup.apiextensions.k8s.io";
const FOREGROUND: &str = "foregroundDeletion";
const ORPHAN: &str = "orphan";

fn subject<'a>(t: &'a ResourceType, name: &'a str) -> Subject<'a> {
    Subject {
        group: &t.group,
        plural: &t.plural,
        name,
    }
}

fn res_key(group: &str, plural: &str) -> ResKey {
    ResKey {
        group: group.to_string(),
        plural: plural.to_string(),
    }
}

impl Store {
    pub fn new(history_cap: usize) -> Self {
        let (tx, _) = broadcast::channel(history_cap.max(16));
        let mut s = Store {
            registry: Registry::with_builtins(),
            rv: 0,
            objects: HashMap::new(),
            uids: HashMap::new(),
            history: VecDeque::new(),
            history_cap: history_cap.max(1),
            evicted_rv: 0,
            tx,
            needs_gc: false,
            next_ip: 0,
        };
        for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            let t = s.registry.get(&res_key(NS_RES.0, NS_RES.1)).cloned();
            if let Some(t) = t {
                let obj =
                    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
                if let Err(e) = s.create(&t, "", obj, &WriteOpts::default()) {
                    tracing::error!(namespace = ns, error = %e.message, "creating a system namespace failed");
                }
            }
        }
        s
    }

    pub fn current_rv(&self) -> u64 {
        self.rv
    }

    fn bucket(&self, key: &ResKey) -> Option<&BTreeMap<ObjKey, Arc<Value>>> {
        self.objects.get(key)
    }

    fn lookup(&self, key: &ResKey, ns: &str, name: &str) -> Option<&Arc<Value>> {
        self.bucket(key)?.get(&(ns.to_string(), name.to_string()))
    }

    fn ns_of(t: &ResourceType, ns: &str) -> String {
        if t.namespaced {
            ns.to_string()
        } else {
            String::new()
        }
    }

    pub fn get(&self, t: &ResourceType, ns: &str, name: &str) -> ApiResult<Arc<Value>> {
        self.lookup(&t.storage_key(), &Self::ns_of(t, ns), name)
            .cloned()
            .ok_or_else(|| ApiError::not_found(subject(t, name)))
    }

    /// Commits a change: assigns the next RV, stores (or removes) the object, records the event.
    fn commit(&mut self, key: &ResKey, kind: EventType, mut obj: Value) -> Arc<Value> {
        self.rv += 1;
        meta::metadata_mut(&mut obj).insert("resourceVersion".into(), json!(self.rv.to_string()));
        let okey = (
            meta::namespace(&obj).to_string(),
            meta::name(&obj).to_string(),
        );
        let obj = Arc::new(obj);
        let bucket = self.objects.entry(key.clone()).or_default();
        let old = match kind {
            EventType::Deleted => {
                self.uids.remove(meta::uid(&obj));
                bucket.remove(&okey)
            }
            _ => {
                self.uids
                    .insert(meta::uid(&obj).to_string(), (key.clone(), okey.clone()));
                bucket.insert(okey, obj.clone())
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
            res: key.clone(),
            kind,
            object: obj.clone(),
            old: if kind == EventType::Modified {
                old
            } else {
                None
            },
        });
        if self.history.len() >= self.history_cap
            && let Some(e) = self.history.pop_front()
        {
            self.evicted_rv = e.rv;
        }
        self.history.push_back(event.clone());
        // No receivers is fine: nobody is watching.
        let _ = self.tx.send(event);
        obj
    }

    // ----- reads -----

    pub fn list(&self, t: &ResourceType, q: &ListQuery) -> ApiResult<ListResult> {
        let (snapshot_rv, start) = match &q.continue_token {
            Some(tok) => decode_continue(tok)?,
            None => (self.rv, None),
        };
        if q.continue_token.is_some() && snapshot_rv < self.evicted_rv {
            // The apiserver's answer once etcd has compacted the first page's revision.
            return Err(ApiError::expired(
                "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.",
            ));
        }
        let mut items = Vec::new();
        let mut next = None;
        let mut remaining = 0usize;
        if let Some(bucket) = self.bucket(&t.storage_key()) {
            let iter = bucket.iter().filter(|(k, _)| match &start {
                Some(s) => *k > s,
                None => true,
            });
            for (k, obj) in iter {
                if !q.matches(obj) {
                    continue;
                }
                if q.limit.is_some_and(|l| items.len() >= l) {
                    if next.is_none() {
                        next = Some(k.clone());
                    }
                    remaining += 1;
                    continue;
                }
                items.push(obj.clone());
            }
        }
        let continue_token = next.map(|_| {
            let last = items
                .last()
                .map(|o| (meta::namespace(o).to_string(), meta::name(o).to_string()));
            encode_continue(snapshot_rv, last.as_ref())
        });
        Ok(ListResult {
            items,
            resource_version: snapshot_rv,
            remaining: continue_token.as_ref().map(|_| remaining),
            continue_token,
        })
    }

    /// Starts a watch. `since`: None = from now with the current state as ADDED events.
    pub fn watch(
        &self,
        t: &ResourceType,
        q: &ListQuery,
        since: Option<u64>,
    ) -> ApiResult<WatchStart> {
        let key = t.storage_key();
        let rx = self.tx.subscribe();
        let mut initial = Vec::new();
        match since {
            None => {
                if let Some(bucket) = self.bucket(&key) {
                    for obj in bucket.values().filter(|o| q.matches(o)) {
                        initial.push((EventType::Added, obj.clone()));
                    }
                }
            }
            Some(rv) => {
                if rv < self.evicted_rv {
                    return Err(ApiError::expired(format!(
                        "too old resource version: {rv} ({})",
                        self.evicted_rv + 1
                    )));
                }
                for e in self.history.iter().filter(|e| e.rv > rv && e.res == key) {
                    if let Some(ty) = filter_event(e, q) {
                        initial.push((ty, e.object.clone()));
                    }
                }
            }
        }
        Ok(WatchStart {
            initial,
            rx,
            rv: self.rv,
        })
    }

    // ----- writes -----

    fn check_namespace_for_create(&self, t: &ResourceType, ns: &str, name: &str) -> ApiResult<()> {
        if !t.namespaced {
            return Ok(());
        }
        let ns_key = res_key(NS_RES.0, NS_RES.1);
        match self.lookup(&ns_key, "", ns) {
            None => Err(ApiError::not_found(Subject { group: "", plural: "namespaces", name: ns })),
            Some(n) if meta::is_deleting(n) => Err(ApiError::new(
                403,
                "Forbidden",
                format!(
                    "{} \"{name}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated",
                    subject(t, name).qualified()
                ),
            )
            .with_details(json!({
                "name": name,
                "group": t.group,
                "kind": t.plural,
                "causes": [{
                    "reason": "NamespaceTerminating",
                    "message": format!("namespace {ns} is being terminated"),
                    "field": "metadata.namespace",
                }],
            }))),
            Some(_) => Ok(()),
        }
    }

    /// Puts apiVersion/kind/namespace in place and checks them against the URL.
    fn normalise_body(&self, t: &ResourceType, ns: &str, obj: &mut Value) -> ApiResult<()> {
        if !obj.is_object() {
            return Err(ApiError::bad_request(
                "the body of the request must be a JSON object",
            ));
        }
        if let Some(problem) = metadata_type_problem(obj) {
            // The apiserver's decoder refuses these before anything else looks at the object.
            return Err(ApiError::bad_request(format!(
                "{kind} in version \"{version}\" cannot be handled as a {kind}: {problem}",
                kind = t.kind,
                version = t.preferred_version(),
            )));
        }
        if let Some(k) = obj["kind"].as_str()
            && !k.is_empty()
            && k != t.kind
        {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({}) does not match the expected API version ({})",
                obj["apiVersion"].as_str().unwrap_or(""),
                t.api_version(t.preferred_version())
            )));
        }
        let api_version = match obj["apiVersion"].as_str() {
            Some(v) if t.serves(crate::registry::split_api_version(v).1) => v.to_string(),
            _ => t.api_version(t.preferred_version()),
        };
        obj["apiVersion"] = json!(api_version);
        obj["kind"] = json!(t.kind);
        let m = meta::metadata_mut(obj);
        if t.namespaced {
            match m.get("namespace").and_then(Value::as_str) {
                Some(body_ns) if !body_ns.is_empty() && body_ns != ns => {
                    return Err(ApiError::bad_request(
                        "the namespace of the provided object does not match the namespace sent on the request",
                    ));
                }
                _ => {
                    m.insert("namespace".into(), json!(ns));
                }
            }
        } else {
            m.remove("namespace");
        }
        if let Some(c) = t.converter() {
            *obj = c.incoming(obj);
        }
        Ok(())
    }

    /// Schema validation, pruning and defaulting of custom resources, and the `fieldValidation`
    /// treatment of unknown fields.
    fn validate_custom(
        &self,
        t: &ResourceType,
        obj: &mut Value,
        old: Option<&Value>,
        opts: &WriteOpts,
        warnings: &mut Vec<String>,
    ) -> ApiResult<()> {
        let version = crate::registry::split_api_version(obj["apiVersion"].as_str().unwrap_or(""))
            .1
            .to_string();
        let Some(schema) = t
            .crd_versions
            .get(&version)
            .and_then(|v| v.compiled.clone())
        else {
            return Ok(());
        };
        let admission = schema.admit(obj, old);
        unknown_fields(&admission.pruned, opts, warnings)?;
        if !admission.errors.is_empty() {
            let qualified = format!("{}.{}", t.kind, t.group);
            let name = meta::name(obj).to_string();
            let causes: Vec<Value> = admission
                .errors
                .iter()
                .map(|e| json!({"reason": e.kind.reason(), "message": e.body(), "field": e.path}))
                .collect();
            return Err(ApiError::new(
                422,
                "Invalid",
                upstart_crd_validation::invalid_error_message(&qualified, &name, &admission.errors),
            )
            .with_details(
                json!({"name": name, "group": t.group, "kind": t.kind, "causes": causes}),
            ));
        }
        Ok(())
    }

    pub fn create(
        &mut self,
        t: &ResourceType,
        ns: &str,
        mut obj: Value,
        opts: &WriteOpts,
    ) -> ApiResult<WriteResult> {
        let ns = Self::ns_of(t, ns);
        self.normalise_body(t, &ns, &mut obj)?;
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
                        if self.lookup(&t.storage_key(), &ns, &name).is_none() {
                            break;
                        }
                    }
                    meta::metadata_mut(&mut obj).insert("name".into(), json!(name));
                }
                _ => {
                    return Err(ApiError::invalid(
                        &t.kind,
                        &t.group,
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
        self.check_namespace_for_create(t, &ns, &name)?;
        let mut causes = meta::validate_name(&t.plural, &t.group, &name);
        causes.extend(builtin::validate_metadata(&obj));
        if !causes.is_empty() {
            return Err(ApiError::invalid(&t.kind, &t.group, &name, causes));
        }
        let mut warnings = Vec::new();
        if t.builtin {
            unknown_fields(&builtin::prune_unknown(t, &mut obj), opts, &mut warnings)?;
        } else {
            self.validate_custom(t, &mut obj, None, opts, &mut warnings)?;
        }
        if self.lookup(&t.storage_key(), &ns, &name).is_some() {
            return Err(ApiError::already_exists(subject(t, &name)));
        }
        if t.has_status
            && let Some(m) = obj.as_object_mut()
        {
            m.remove("status");
        }
        {
            let m = meta::metadata_mut(&mut obj);
            m.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
            m.insert("creationTimestamp".into(), json!(meta::now_rfc3339()));
            for k in [
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "resourceVersion",
                "selfLink",
            ] {
                m.remove(k);
            }
            if t.tracks_generation {
                m.insert("generation".into(), json!(1));
            } else {
                m.remove("generation");
            }
        }
        self.prepare_create_kind(t, &mut obj)?;
        if t.builtin {
            builtin::prepare(t, &mut obj, None, &mut self.next_ip);
        }
        if !opts.applied {
            patching::record_update(None, &mut obj, &opts.field_manager, t, None)?;
        }
        if opts.dry_run {
            return Ok(WriteResult {
                object: obj,
                created: true,
                warnings,
            });
        }
        let stored = self.commit(&t.storage_key(), EventType::Added, obj);
        self.after_write(t, &stored);
        if t.group == NS_RES.0 && t.plural == NS_RES.1 {
            self.create_default_service_account(meta::name(&stored));
        }
        self.process_deletions();
        Ok(WriteResult {
            object: (*stored).clone(),
            created: true,
            warnings,
        })
    }

    /// What kube-controller-manager's serviceaccounts-controller does for a new namespace: a
    /// ServiceAccount `default`, which Pods without `serviceAccountName` run as. Namespace
    /// termination deletes it with the rest of the namespace's contents.
    fn create_default_service_account(&mut self, ns: &str) {
        let Some(t) = self.registry.get(&res_key("", "serviceaccounts")).cloned() else {
            return;
        };
        let sa = json!({
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": "default", "namespace": ns},
        });
        let opts = WriteOpts {
            field_manager: "kube-controller-manager".into(),
            ..WriteOpts::default()
        };
        if let Err(e) = self.create(&t, ns, sa, &opts) {
            tracing::error!(namespace = ns, error = %e.message, "creating the default ServiceAccount failed");
        }
    }

    /// Kind-specific create behaviour of the apiserver (namespaces, CRDs).
    fn prepare_create_kind(&mut self, t: &ResourceType, obj: &mut Value) -> ApiResult<()> {
        match (t.group.as_str(), t.plural.as_str()) {
            ("", "namespaces") => {
                let name = meta::name(obj).to_string();
                let m = meta::metadata_mut(obj);
                let labels = m.entry("labels").or_insert_with(|| json!({}));
                if !labels.is_object() {
                    *labels = json!({});
                }
                labels["kubernetes.io/metadata.name"] = json!(name);
                obj["spec"] = json!({"finalizers": ["kubernetes"]});
                obj["status"] = json!({"phase": "Active"});
            }
            (CRD_GROUP, "customresourcedefinitions") => {
                let crd_type = type_from_crd(obj).map_err(|e| {
                    ApiError::invalid(
                        &t.kind,
                        &t.group,
                        meta::name(obj),
                        vec![Cause::required("spec", &e)],
                    )
                })?;
                let expected = format!("{}.{}", crd_type.plural, crd_type.group);
                if meta::name(obj) != expected {
                    return Err(ApiError::invalid(
                        &t.kind,
                        &t.group,
                        meta::name(obj),
                        vec![Cause::invalid(
                            "metadata.name",
                            &json!(meta::name(obj)),
                            "must be spec.names.plural+\".\"+spec.group",
                        )],
                    ));
                }
                let causes = crd_schema_causes(obj);
                if !causes.is_empty() {
                    return Err(ApiError::invalid(
                        &t.kind,
                        &t.group,
                        meta::name(obj),
                        causes,
                    ));
                }
                obj["status"] = crd_status(obj, &crd_type, None);
            }
            _ => {}
        }
        Ok(())
    }

    /// Effects of a stored write on the registry.
    fn after_write(&mut self, t: &ResourceType, stored: &Value) {
        if t.group == CRD_GROUP && t.plural == "customresourcedefinitions" {
            match type_from_crd(stored) {
                Ok(ct) => {
                    let taken_by_builtin = self
                        .registry
                        .get(&ct.storage_key())
                        .is_some_and(|existing| existing.builtin);
                    if !taken_by_builtin {
                        self.registry.insert(ct);
                    }
                }
                Err(e) => tracing::warn!(crd = meta::name(stored), error = %e, "CRD not served"),
            }
        }
    }

    /// Update through the main endpoint (`subresource` None) or `/status`.
    pub fn update(
        &mut self,
        t: &ResourceType,
        ns: &str,
        name: &str,
        mut obj: Value,
        subresource: Option<&str>,
        opts: &WriteOpts,
    ) -> ApiResult<WriteResult> {
        let ns = Self::ns_of(t, ns);
        self.normalise_body(t, &ns, &mut obj)?;
        let body_name = meta::name(&obj).to_string();
        if body_name.is_empty() {
            meta::metadata_mut(&mut obj).insert("name".into(), json!(name));
        } else if body_name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        let old = self.get(t, &ns, name)?;
        let body_rv = meta::resource_version(&obj).to_string();
        if body_rv.is_empty() {
            if !t.builtin {
                return Err(ApiError::invalid(
                    &t.kind,
                    &t.group,
                    name,
                    vec![Cause::invalid(
                        "metadata.resourceVersion",
                        &json!("0x0"),
                        "must be specified for an update",
                    )],
                ));
            }
        } else if body_rv != meta::resource_version(&old) {
            return Err(ApiError::stale(subject(t, name)));
        }
        self.write_update(t, &old, obj, subresource, opts)
    }

    /// The shared part of update and patch: apiserver update semantics from old to new.
    fn write_update(
        &mut self,
        t: &ResourceType,
        old: &Arc<Value>,
        body: Value,
        subresource: Option<&str>,
        opts: &WriteOpts,
    ) -> ApiResult<WriteResult> {
        let name = meta::name(old).to_string();
        let mut warnings = Vec::new();
        let mut new = if subresource == Some("status") {
            // `/status` changes nothing but status.
            let mut n = (**old).clone();
            match body.get("status") {
                Some(s) => n["status"] = s.clone(),
                None => {
                    if let Some(m) = n.as_object_mut() {
                        m.remove("status");
                    }
                }
            }
            if let Some(mf) = body["metadata"].get("managedFields") {
                meta::metadata_mut(&mut n).insert("managedFields".into(), mf.clone());
            }
            n
        } else {
            let mut n = body;
            if t.has_status {
                match old.get("status") {
                    Some(s) => n["status"] = s.clone(),
                    None => {
                        if let Some(m) = n.as_object_mut() {
                            m.remove("status");
                        }
                    }
                }
            }
            n
        };
        if t.builtin {
            unknown_fields(&builtin::prune_unknown(t, &mut new), opts, &mut warnings)?;
        } else {
            self.validate_custom(t, &mut new, Some(old), opts, &mut warnings)?;
        }
        // Metadata the client cannot change.
        {
            let old_meta = &old["metadata"];
            let m = meta::metadata_mut(&mut new);
            for k in [
                "uid",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "generation",
            ] {
                match old_meta.get(k) {
                    Some(v) => m.insert(k.into(), v.clone()),
                    None => m.remove(k),
                };
            }
            m.insert(
                "resourceVersion".into(),
                old_meta["resourceVersion"].clone(),
            );
            m.remove("selfLink");
        }
        if meta::is_deleting(old) {
            let before = meta::finalizers(old);
            if meta::finalizers(&new).iter().any(|f| !before.contains(f)) {
                return Err(ApiError::invalid(
                    &t.kind,
                    &t.group,
                    &name,
                    vec![Cause::forbidden(
                        "metadata.finalizers",
                        "no new finalizers can be added if the object is being deleted",
                    )],
                ));
            }
        }
        if t.group.is_empty() && t.plural == "namespaces" {
            // Namespace spec.finalizers change only through /finalize; phase is server-owned.
            new["spec"] = old["spec"].clone();
            if subresource != Some("status") {
                new["status"] = old["status"].clone();
            }
        }
        if t.builtin {
            builtin::prepare(t, &mut new, Some(old), &mut self.next_ip);
        }
        let mut causes = builtin::validate_metadata(&new);
        causes.extend(builtin::validate_update(t, &new, old));
        if !causes.is_empty() {
            return Err(ApiError::invalid(&t.kind, &t.group, &name, causes));
        }
        if t.tracks_generation
            && meta::generation_relevant(&new, t.has_status)
                != meta::generation_relevant(old, t.has_status)
        {
            let g = old["metadata"]["generation"].as_i64().unwrap_or(0) + 1;
            meta::metadata_mut(&mut new).insert("generation".into(), json!(g));
        }
        if t.group == CRD_GROUP && t.plural == "customresourcedefinitions" {
            let ct = type_from_crd(&new).map_err(|e| {
                ApiError::invalid(&t.kind, &t.group, &name, vec![Cause::required("spec", &e)])
            })?;
            if subresource != Some("status") {
                let causes = crd_schema_causes(&new);
                if !causes.is_empty() {
                    return Err(ApiError::invalid(&t.kind, &t.group, &name, causes));
                }
                new["status"] = crd_status(&new, &ct, old.get("status"));
            }
        }
        if !opts.applied {
            patching::record_update(Some(old), &mut new, &opts.field_manager, t, subresource)?;
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
        let key = t.storage_key();
        let ns_held = t.group.is_empty()
            && t.plural == "namespaces"
            && new["spec"]["finalizers"]
                .as_array()
                .is_some_and(|a| !a.is_empty());
        let stored = if meta::is_deleting(&new) && meta::finalizers(&new).is_empty() && !ns_held {
            self.commit(&key, EventType::Deleted, new)
        } else {
            let s = self.commit(&key, EventType::Modified, new);
            self.after_write(t, &s);
            s
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
        t: &ResourceType,
        ns: &str,
        name: &str,
        kind: PatchKind,
        body: &[u8],
        subresource: Option<&str>,
        force: bool,
        opts: &WriteOpts,
    ) -> ApiResult<WriteResult> {
        let ns = Self::ns_of(t, ns);
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
            self.normalise_body(t, &ns, &mut applied)?;
            let body_name = meta::name(&applied).to_string();
            if body_name != name {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({body_name}) does not match the name on the URL ({name})"
                )));
            }
            let current = self.lookup(&t.storage_key(), &ns, name).cloned();
            let opts = &WriteOpts {
                applied: true,
                ..opts.clone()
            };
            return match current {
                None => {
                    if subresource.is_some() {
                        return Err(ApiError::not_found(subject(t, name)));
                    }
                    let merged = patching::server_side_apply(
                        None,
                        &applied,
                        &opts.field_manager,
                        force,
                        t,
                        None,
                    )?;
                    self.create(t, &ns, merged, opts)
                }
                Some(old) => {
                    let mut merged = patching::server_side_apply(
                        Some(&old),
                        &applied,
                        &opts.field_manager,
                        force,
                        t,
                        subresource,
                    )?;
                    let applied_rv = meta::resource_version(&applied).to_string();
                    if !applied_rv.is_empty() && applied_rv != meta::resource_version(&old) {
                        return Err(ApiError::stale(subject(t, name)));
                    }
                    meta::metadata_mut(&mut merged).insert(
                        "resourceVersion".into(),
                        json!(meta::resource_version(&old)),
                    );
                    self.write_update(t, &old, merged, subresource, opts)
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
        let old = self.get(t, &ns, name)?;
        // A patch is written against the served form of the object.
        let view = match t.converter() {
            Some(c) => Arc::new(c.outgoing(&old)),
            None => old.clone(),
        };
        let mut patched = patching::apply_patch(kind, &view, body, t)?;
        self.normalise_body(t, &ns, &mut patched)?;
        if meta::name(&patched) != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({}) does not match the name on the URL ({name})",
                meta::name(&patched)
            )));
        }
        let patched_rv = meta::resource_version(&patched).to_string();
        if patched_rv != meta::resource_version(&old) {
            // A resourceVersion in the patch is a precondition, as in the apiserver.
            return Err(ApiError::stale(subject(t, name)));
        }
        self.write_update(t, &old, patched, subresource, opts)
    }

    /// `PUT /api/v1/namespaces/{name}/finalize`: replaces `spec.finalizers`.
    pub fn finalize_namespace(
        &mut self,
        t: &ResourceType,
        name: &str,
        body: Value,
        opts: &WriteOpts,
    ) -> ApiResult<WriteResult> {
        let old = self.get(t, "", name)?;
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
        let stored = self.commit(&t.storage_key(), kind, new);
        self.process_deletions();
        Ok(WriteResult {
            object: (*stored).clone(),
            created: false,
            warnings: Vec::new(),
        })
    }

    /// `GET .../scale`: the object seen as an `autoscaling/v1` Scale.
    pub fn get_scale(&self, t: &ResourceType, ns: &str, name: &str) -> ApiResult<Value> {
        let obj = self.get(t, ns, name)?;
        scale_of(t, &obj)
    }

    /// `PUT`/`PATCH .../scale`: writes `spec.replicas` (or the CRD's specReplicasPath).
    pub fn set_scale(
        &mut self,
        t: &ResourceType,
        ns: &str,
        name: &str,
        scale: &Value,
        opts: &WriteOpts,
    ) -> ApiResult<Value> {
        let ns = Self::ns_of(t, ns);
        let old = self.get(t, &ns, name)?;
        let paths = t.scale.clone().ok_or_else(ApiError::page_not_found)?;
        let rv = meta::resource_version(scale);
        if !rv.is_empty() && rv != meta::resource_version(&old) {
            return Err(ApiError::stale(subject(t, name)));
        }
        let Some(replicas) = scale["spec"]["replicas"].as_i64().filter(|r| *r >= 0) else {
            return Err(ApiError::invalid(
                "Scale",
                "autoscaling",
                name,
                vec![Cause::invalid(
                    "spec.replicas",
                    &scale["spec"]["replicas"],
                    "must be greater than or equal to 0",
                )],
            ));
        };
        let mut new = (*old).clone();
        set_path(&mut new, &paths.spec_replicas, json!(replicas));
        let result = self.write_update(t, &old, new, None, opts)?;
        scale_of(t, &result.object)
    }

    pub fn delete(
        &mut self,
        t: &ResourceType,
        ns: &str,
        name: &str,
        opts: &DeleteOpts,
    ) -> ApiResult<DeleteOutcome> {
        let ns = Self::ns_of(t, ns);
        let old = self.get(t, &ns, name)?;
        if t.group.is_empty()
            && t.plural == "namespaces"
            && matches!(name, "default" | "kube-system" | "kube-public")
        {
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
                subject(t, name),
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
                subject(t, name),
                &format!(
                    "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                    meta::resource_version(&old)
                ),
            ));
        }
        let outcome = self.delete_object(t, &old, opts.propagation, opts.dry_run);
        if !opts.dry_run {
            self.process_deletions();
        }
        Ok(outcome)
    }

    /// Deletes one object: immediately when nothing holds it, otherwise marks it as deleting.
    fn delete_object(
        &mut self,
        t: &ResourceType,
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
        if let Some(f) = add
            && !finalizers.iter().any(|x| x == f)
        {
            finalizers.push(f.to_string());
        }
        let is_ns = t.group.is_empty() && t.plural == "namespaces";
        let is_crd = t.group == CRD_GROUP && t.plural == "customresourcedefinitions";
        if is_crd && !finalizers.iter().any(|f| f == CRD_CLEANUP_FINALIZER) {
            finalizers.push(CRD_CLEANUP_FINALIZER.to_string());
        }
        let ns_content_finalizer = is_ns
            && new["spec"]["finalizers"]
                .as_array()
                .is_some_and(|a| !a.is_empty());
        if finalizers.is_empty() && !ns_content_finalizer {
            if dry_run {
                return DeleteOutcome::Gone(new);
            }
            let gone = self.commit(&t.storage_key(), EventType::Deleted, new);
            return DeleteOutcome::Gone((*gone).clone());
        }
        if meta::is_deleting(old) && finalizers == meta::finalizers(old) {
            return DeleteOutcome::Pending((**old).clone());
        }
        meta::set_finalizers(&mut new, &finalizers);
        if !meta::is_deleting(old) {
            let m = meta::metadata_mut(&mut new);
            if let Some(g) = m.get("generation").and_then(Value::as_i64)
                && g > 0
            {
                m.insert("generation".into(), json!(g + 1));
            }
            m.insert("deletionTimestamp".into(), json!(meta::now_rfc3339()));
            m.insert("deletionGracePeriodSeconds".into(), json!(0));
        }
        if is_ns {
            if !new["status"].is_object() {
                new["status"] = json!({});
            }
            new["status"]["phase"] = json!("Terminating");
        }
        if dry_run {
            return DeleteOutcome::Pending(new);
        }
        let stored = self.commit(&t.storage_key(), EventType::Modified, new);
        DeleteOutcome::Pending((*stored).clone())
    }

    /// `DELETE` on a collection: deletes every matching object, returns the deleted ones.
    pub fn delete_collection(
        &mut self,
        t: &ResourceType,
        q: &ListQuery,
        opts: &DeleteOpts,
    ) -> ApiResult<Vec<Value>> {
        let targets: Vec<Arc<Value>> = self
            .bucket(&t.storage_key())
            .map(|b| b.values().filter(|o| q.matches(o)).cloned().collect())
            .unwrap_or_default();
        let mut out = Vec::new();
        for obj in targets {
            match self.delete_object(t, &obj, opts.propagation, opts.dry_run) {
                DeleteOutcome::Gone(v) | DeleteOutcome::Pending(v) => out.push(v),
            }
        }
        if !opts.dry_run {
            self.process_deletions();
        }
        Ok(out)
    }

    fn type_of(&self, key: &ResKey) -> Option<Arc<ResourceType>> {
        self.registry.get(key).cloned()
    }

    fn remove_finalizer(&mut self, key: &ResKey, obj: &Arc<Value>, finalizer: &str) {
        let mut new = (**obj).clone();
        let fs: Vec<String> = meta::finalizers(&new)
            .into_iter()
            .filter(|f| f != finalizer)
            .collect();
        meta::set_finalizers(&mut new, &fs);
        let kind = if meta::is_deleting(&new) && fs.is_empty() {
            EventType::Deleted
        } else {
            EventType::Modified
        };
        self.commit(key, kind, new);
    }

    /// The work of the apiserver's background controllers around deletion, run to a fixed point:
    /// namespace termination, CRD instance cleanup, garbage collection of dependents, foreground
    /// and orphan finalizers.
    fn process_deletions(&mut self) {
        let mut rounds = 0;
        while self.needs_gc && rounds < 10_000 {
            self.needs_gc = false;
            rounds += 1;
            self.terminate_namespaces();
            self.cleanup_crds();
            self.collect_garbage();
        }
    }

    fn terminate_namespaces(&mut self) {
        let ns_key = res_key(NS_RES.0, NS_RES.1);
        let terminating: Vec<Arc<Value>> = self
            .bucket(&ns_key)
            .map(|b| {
                b.values()
                    .filter(|n| meta::is_deleting(n))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        for ns_obj in terminating {
            let ns = meta::name(&ns_obj).to_string();
            let mut remaining = 0;
            let keys: Vec<ResKey> = self.objects.keys().cloned().collect();
            for key in keys {
                let Some(t) = self.type_of(&key) else {
                    continue;
                };
                if !t.namespaced {
                    continue;
                }
                let in_ns: Vec<Arc<Value>> = self
                    .bucket(&key)
                    .map(|b| {
                        b.range((ns.clone(), String::new())..)
                            .take_while(|((n, _), _)| *n == ns)
                            .map(|(_, o)| o.clone())
                            .collect()
                    })
                    .unwrap_or_default();
                for obj in in_ns {
                    if !meta::is_deleting(&obj) {
                        self.delete_object(&t, &obj, Some(Propagation::Background), false);
                    }
                    if self.lookup(&key, &ns, meta::name(&obj)).is_some() {
                        remaining += 1;
                    }
                }
            }
            if remaining == 0
                && ns_obj["spec"]["finalizers"]
                    .as_array()
                    .is_some_and(|a| !a.is_empty())
            {
                let mut new = (*ns_obj).clone();
                new["spec"]["finalizers"] = json!([]);
                let kind = if meta::finalizers(&new).is_empty() {
                    EventType::Deleted
                } else {
                    EventType::Modified
                };
                self.commit(&ns_key, kind, new);
            }
        }
    }

    fn cleanup_crds(&mut self) {
        let crd_key = res_key(CRD_GROUP, "customresourcedefinitions");
        let deleting: Vec<Arc<Value>> = self
            .bucket(&crd_key)
            .map(|b| {
                b.values()
                    .filter(|n| meta::is_deleting(n))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        for crd in deleting {
            if !meta::finalizers(&crd)
                .iter()
                .any(|f| f == CRD_CLEANUP_FINALIZER)
            {
                continue;
            }
            let Ok(ct) = type_from_crd(&crd) else {
                continue;
            };
            let key = ct.storage_key();
            let instances: Vec<Arc<Value>> = self
                .bucket(&key)
                .map(|b| b.values().cloned().collect())
                .unwrap_or_default();
            let served = self.type_of(&key);
            let mut remaining = 0;
            for obj in instances {
                if let Some(t) = &served
                    && !meta::is_deleting(&obj)
                {
                    self.delete_object(t, &obj, Some(Propagation::Background), false);
                }
                if self
                    .lookup(&key, meta::namespace(&obj), meta::name(&obj))
                    .is_some()
                {
                    remaining += 1;
                }
            }
            if remaining == 0 {
                self.remove_finalizer(&crd_key, &crd, CRD_CLEANUP_FINALIZER);
                if self.lookup(&crd_key, "", meta::name(&crd)).is_none() {
                    self.registry.remove(&key);
                }
            }
        }
    }

    fn find_uid(&self, uid: &str) -> Option<(ResKey, Arc<Value>)> {
        let (key, okey) = self.uids.get(uid)?;
        let obj = self.objects.get(key)?.get(okey)?;
        Some((key.clone(), obj.clone()))
    }

    /// One pass of the garbage collector, following its documented classification of owners:
    /// solid (exists, not being deleted in the foreground), dangling (gone) and waiting (being
    /// deleted in the foreground).
    fn collect_garbage(&mut self) {
        let all: Vec<(ResKey, Arc<Value>)> = self
            .objects
            .iter()
            .flat_map(|(k, b)| b.values().map(move |o| (k.clone(), o.clone())))
            .collect();
        let mut has_dependents: HashMap<String, Vec<(ResKey, Arc<Value>, bool)>> = HashMap::new();
        for (key, obj) in &all {
            for (owner, block) in meta::owner_refs(obj) {
                has_dependents
                    .entry(owner)
                    .or_default()
                    .push((key.clone(), obj.clone(), block));
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
                            && meta::finalizers(&owner).iter().any(|f| f == FOREGROUND)
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
            let Some(t) = self.type_of(key) else { continue };
            let policy = if !waiting.is_empty() && has_dependents.contains_key(meta::uid(&current))
            {
                Propagation::Foreground
            } else {
                Propagation::Background
            };
            self.delete_object(&t, &current, Some(policy), false);
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
            let fs = meta::finalizers(&current);
            let uid = meta::uid(&current).to_string();
            if fs.iter().any(|f| f == ORPHAN) {
                for (dkey, dep, _) in has_dependents.get(&uid).cloned().unwrap_or_default() {
                    if let Some(d) = self
                        .lookup(&dkey, meta::namespace(&dep), meta::name(&dep))
                        .cloned()
                    {
                        let mut new = (*d).clone();
                        remove_owner_refs(&mut new, std::slice::from_ref(&uid));
                        self.commit(&dkey, EventType::Modified, new);
                    }
                }
                self.remove_finalizer(key, &current, ORPHAN);
                continue;
            }
            if fs.iter().any(|f| f == FOREGROUND) {
                let blocking = has_dependents.get(&uid).is_some_and(|deps| {
                    deps.iter().any(|(dkey, dep, block)| {
                        *block
                            && self
                                .lookup(dkey, meta::namespace(dep), meta::name(dep))
                                .is_some_and(|d| {
                                    meta::owner_refs(d).iter().any(|(u, b)| *u == uid && *b)
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

/// Why `metadata` does not decode as ObjectMeta, if it does not.
fn metadata_type_problem(obj: &Value) -> Option<String> {
    let m = match obj.get("metadata") {
        None | Some(Value::Null) => return None,
        Some(Value::Object(m)) => m,
        Some(_) => return Some("metadata must be an object".into()),
    };
    for key in ["labels", "annotations"] {
        match m.get(key) {
            None | Some(Value::Null) => {}
            Some(Value::Object(map)) if map.values().all(Value::is_string) => {}
            Some(_) => return Some(format!("metadata.{key} must be a map of strings")),
        }
    }
    match m.get("finalizers") {
        None | Some(Value::Null) => {}
        Some(Value::Array(a)) if a.iter().all(Value::is_string) => {}
        Some(_) => return Some("metadata.finalizers must be a list of strings".into()),
    }
    match m.get("ownerReferences") {
        None | Some(Value::Null) => {}
        Some(Value::Array(a)) if a.iter().all(Value::is_object) => {}
        Some(_) => return Some("metadata.ownerReferences must be a list of objects".into()),
    }
    for key in [
        "name",
        "namespace",
        "generateName",
        "resourceVersion",
        "uid",
    ] {
        if m.get(key).is_some_and(|v| !v.is_string() && !v.is_null()) {
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
        .map(|p| format!("unknown field {p:?}"))
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

fn remove_owner_refs(obj: &mut Value, uids: &[String]) {
    let m = meta::metadata_mut(obj);
    if let Some(Value::Array(refs)) = m.get_mut("ownerReferences") {
        refs.retain(|r| !uids.iter().any(|u| Some(u.as_str()) == r["uid"].as_str()));
        if refs.is_empty() {
            m.remove("ownerReferences");
        }
    }
}

/// The watch event a watcher with query `q` sees for `e`, taking selector transitions into
/// account: an object that stops matching is DELETED for that watcher, one that starts is ADDED.
pub fn filter_event(e: &Event, q: &ListQuery) -> Option<EventType> {
    let now = q.matches(&e.object);
    match e.kind {
        EventType::Modified => {
            let before = e.old.as_ref().is_some_and(|o| q.matches(o));
            match (before, now) {
                (true, true) => Some(EventType::Modified),
                (false, true) => Some(EventType::Added),
                (true, false) => Some(EventType::Deleted),
                (false, false) => None,
            }
        }
        k => now.then_some(k),
    }
}

/// Why the apiserver would refuse the schemas of a CRD: every served version of an
/// `apiextensions.k8s.io/v1` CRD needs a structural `openAPIV3Schema`.
fn crd_schema_causes(crd: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    for (i, v) in crd["spec"]["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let prefix = format!("spec.versions[{i}].schema");
        match v["schema"].get("openAPIV3Schema") {
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
fn crd_status(crd: &Value, ct: &ResourceType, old: Option<&Value>) -> Value {
    let now = meta::now_rfc3339();
    let prev = |ty: &str| -> Option<Value> {
        old?.get("conditions")?
            .as_array()?
            .iter()
            .find(|c| c["type"] == ty)
            .cloned()
    };
    let cond = |ty: &str, reason: &str, message: &str| {
        prev(ty).filter(|c| c["status"] == "True").unwrap_or_else(|| {
            json!({"type": ty, "status": "True", "lastTransitionTime": now, "reason": reason, "message": message})
        })
    };
    let mut stored: Vec<String> = old
        .and_then(|o| o["storedVersions"].as_array())
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    for v in crd["spec"]["versions"].as_array().into_iter().flatten() {
        if v["storage"].as_bool() == Some(true)
            && let Some(n) = v["name"].as_str()
            && !stored.iter().any(|s| s == n)
        {
            stored.push(n.to_string());
        }
    }
    let names = &crd["spec"]["names"];
    let mut accepted = json!({
        "plural": ct.plural,
        "singular": ct.singular,
        "kind": ct.kind,
        "listKind": ct.list_kind,
    });
    if !ct.short_names.is_empty() {
        accepted["shortNames"] = json!(ct.short_names);
    }
    if let Some(c) = names.get("categories") {
        accepted["categories"] = c.clone();
    }
    json!({
        "conditions": [
            cond("NamesAccepted", "NoConflicts", "no conflicts found"),
            cond("Established", "InitialNamesAccepted", "the initial names have been accepted"),
        ],
        "acceptedNames": accepted,
        "storedVersions": stored,
    })
}

fn encode_continue(rv: u64, last: Option<&ObjKey>) -> String {
    let start = last.map(|(ns, n)| format!("{ns}/{n}")).unwrap_or_default();
    let tok = json!({"v": "meta.k8s.io/v1", "rv": rv, "start": start});
    base64::engine::general_purpose::STANDARD.encode(tok.to_string())
}

fn decode_continue(tok: &str) -> ApiResult<(u64, Option<ObjKey>)> {
    let bad = || {
        ApiError::bad_request(
            "continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)",
        )
    };
    let raw = base64::engine::general_purpose::STANDARD
        .decode(tok)
        .map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
    let rv = v["rv"].as_u64().ok_or_else(bad)?;
    let start = v["start"].as_str().ok_or_else(bad)?;
    let key = start
        .split_once('/')
        .map(|(ns, n)| (ns.to_string(), n.to_string()))
        .ok_or_else(bad)?;
    Ok((rv, Some(key)))
}

fn path_segments(path: &str) -> impl Iterator<Item = &str> {
    path.trim_start_matches('.')
        .split('.')
        .filter(|s| !s.is_empty())
}

fn get_path<'a>(obj: &'a Value, path: &str) -> &'a Value {
    path_segments(path).fold(obj, |cur, seg| &cur[seg])
}

fn set_path(obj: &mut Value, path: &str, value: Value) {
    let mut cur = obj;
    for seg in path_segments(path) {
        if !cur.is_object() {
            *cur = json!({});
        }
        cur = &mut cur[seg];
    }
    *cur = value;
}

/// A label selector object (`matchLabels`, `matchExpressions`) in its string form.
fn selector_string(sel: &Value) -> String {
    if let Some(s) = sel.as_str() {
        return s.to_string();
    }
    let mut parts: Vec<String> = sel["matchLabels"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect()
        })
        .unwrap_or_default();
    for e in sel["matchExpressions"].as_array().into_iter().flatten() {
        let key = e["key"].as_str().unwrap_or("");
        let values: Vec<&str> = e["values"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        parts.push(match e["operator"].as_str().unwrap_or("") {
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "Exists" => key.to_string(),
            _ => format!("!{key}"),
        });
    }
    parts.join(",")
}

fn scale_of(t: &ResourceType, obj: &Value) -> ApiResult<Value> {
    let paths = t.scale.as_ref().ok_or_else(ApiError::page_not_found)?;
    let m = &obj["metadata"];
    let mut scale = json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": m["name"], "uid": m["uid"], "resourceVersion": m["resourceVersion"],
            "creationTimestamp": m["creationTimestamp"],
        },
        "spec": {"replicas": get_path(obj, &paths.spec_replicas).as_i64().unwrap_or(0)},
        "status": {"replicas": get_path(obj, &paths.status_replicas).as_i64().unwrap_or(0)},
    });
    if t.namespaced {
        scale["metadata"]["namespace"] = m["namespace"].clone();
    }
    if let Some(p) = &paths.label_selector {
        let sel = get_path(obj, p);
        if !sel.is_null() {
            scale["status"]["selector"] = json!(selector_string(sel));
        }
    }
    Ok(scale)
}
