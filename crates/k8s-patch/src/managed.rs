//! Server-side apply and field ownership: `metadata.managedFields` as the apiserver keeps it.
//!
//! [`apply`] follows structured-merge-diff's `Updater.Apply` (merge, prune what this manager
//! applied before and nobody owns any more, detect conflicts, take ownership) and
//! [`record_update`] its `Updater.Update` (a create, update or patch takes ownership of what it
//! changed, away from everybody else), both wrapped the way the apiserver's field manager wraps
//! them: server-set metadata is never owned, a status subresource splits the object, timestamps
//! move only when the object changes, entries are sorted.

use std::fmt;

use serde_json::{Map, Value};

use crate::Error;
use crate::fieldpath::{FieldSet, Path};
use crate::semantics::Semantics;
use crate::typed::{
    compare, ensure_named_fields, merge, remove_items, to_field_set, without_null_fields,
};

/// The operation a managedFields entry records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Operation {
    /// A server-side apply.
    Apply,
    /// A create, update or patch.
    Update,
}

impl Operation {
    /// The spelling in `managedFields[].operation`.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Apply => "Apply",
            Operation::Update => "Update",
        }
    }
}

/// Which part of the object a write reaches, for kinds with or without a status subresource.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteScope {
    /// The kind has no status subresource: a write reaches the whole object.
    WholeObject,
    /// The kind has a status subresource and this write goes to the main resource: `.status`
    /// is neither changed nor owned (the apiserver resets it).
    MainResource,
    /// A write to the `/status` subresource: only `.status` is changed and owned, and entries
    /// carry `subresource: status`. (The real apiserver also lets a few metadata fields through
    /// `/status` for some kinds; this keeps everything but `.status` as it was.)
    StatusSubresource,
}

impl WriteScope {
    fn includes(self, path: &Path) -> bool {
        let status = path.0.first().is_some_and(
            |e| matches!(e, crate::fieldpath::PathElement::Field(f) if &**f == "status"),
        );
        match self {
            WriteScope::WholeObject => true,
            WriteScope::MainResource => !status,
            WriteScope::StatusSubresource => status,
        }
    }

    fn subresource(self) -> Option<String> {
        match self {
            WriteScope::StatusSubresource => Some("status".to_owned()),
            _ => None,
        }
    }
}

/// One entry of `metadata.managedFields`.
#[derive(Clone, Debug, PartialEq)]
pub struct ManagedFieldsEntry {
    /// The field manager's name.
    pub manager: String,
    /// Apply or Update.
    pub operation: Operation,
    /// The apiVersion the fields were written with.
    pub api_version: String,
    /// When the manager last changed the object (RFC 3339), if known.
    pub time: Option<String>,
    /// `status` for writes through the status subresource.
    pub subresource: Option<String>,
    /// The owned fields.
    pub fields: FieldSet,
}

impl ManagedFieldsEntry {
    /// Whether two entries are the same manager as the apiserver counts them: an applier is one
    /// manager whatever apiVersion it applies with, an updater is one per apiVersion.
    fn same_manager(&self, other: &ManagedFieldsEntry) -> bool {
        self.manager == other.manager
            && self.operation == other.operation
            && self.subresource == other.subresource
            && (self.operation == Operation::Apply || self.api_version == other.api_version)
    }

    /// The apiserver's way of naming this manager in conflict messages: `"name"`, with
    /// ` with subresource "status"` and, for updaters, ` using apps/v1`.
    fn describe(&self) -> String {
        let mut out = quote(&self.manager);
        if let Some(subresource) = &self.subresource {
            out.push_str(&format!(" with subresource {}", quote(subresource)));
        }
        if self.operation == Operation::Update {
            out.push_str(&format!(" using {}", self.api_version));
        }
        out
    }

    /// The apiserver's manager identifier (a JSON encoding of the entry without fields and
    /// time), which orders managers in conflict messages.
    fn identifier(&self) -> String {
        let mut out = format!(
            "{{\"manager\":{},\"operation\":\"{}\"",
            quote(&self.manager),
            self.operation.as_str()
        );
        if self.operation == Operation::Update {
            out.push_str(&format!(",\"apiVersion\":{}", quote(&self.api_version)));
        }
        if let Some(subresource) = &self.subresource {
            out.push_str(&format!(",\"subresource\":{}", quote(subresource)));
        }
        out.push('}');
        out
    }

    fn decode(value: &Value) -> Result<ManagedFieldsEntry, Error> {
        let invalid = |what: &str| Error::InvalidManagedFields(what.to_owned());
        let text = |key: &str| value.get(key).and_then(Value::as_str).map(str::to_owned);
        let operation = match text("operation").as_deref() {
            Some("Apply") => Operation::Apply,
            Some("Update") => Operation::Update,
            _ => return Err(invalid("operation must be Apply or Update")),
        };
        match text("fieldsType").as_deref() {
            Some("FieldsV1") | None => {}
            Some(_) => return Err(invalid("fieldsType must be FieldsV1")),
        }
        let fields = match value.get("fieldsV1") {
            Some(fields) if !fields.is_null() => FieldSet::from_fields_v1(fields)?,
            _ => FieldSet::new(),
        };
        Ok(ManagedFieldsEntry {
            manager: text("manager").unwrap_or_default(),
            operation,
            api_version: text("apiVersion").unwrap_or_default(),
            time: text("time"),
            subresource: text("subresource").filter(|s| !s.is_empty()),
            fields,
        })
    }

    fn encode(&self) -> Value {
        let mut map = Map::new();
        map.insert("apiVersion".into(), Value::String(self.api_version.clone()));
        map.insert("fieldsType".into(), Value::String("FieldsV1".into()));
        map.insert("fieldsV1".into(), self.fields.to_fields_v1());
        map.insert("manager".into(), Value::String(self.manager.clone()));
        map.insert(
            "operation".into(),
            Value::String(self.operation.as_str().into()),
        );
        if let Some(subresource) = &self.subresource {
            map.insert("subresource".into(), Value::String(subresource.clone()));
        }
        if let Some(time) = &self.time {
            map.insert("time".into(), Value::String(time.clone()));
        }
        Value::Object(map)
    }
}

/// The manager the apiserver gives the fields of an object without managedFields on its first
/// apply.
pub const BEFORE_FIRST_APPLY: &str = "before-first-apply";

fn quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

/// Decodes `metadata.managedFields` of an object (absent or null: no entries).
pub fn managed_fields(object: &Value) -> Result<Vec<ManagedFieldsEntry>, Error> {
    match object.pointer("/metadata/managedFields") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(entries)) => entries.iter().map(ManagedFieldsEntry::decode).collect(),
        Some(_) => Err(Error::InvalidManagedFields(
            "metadata.managedFields must be a list".to_owned(),
        )),
    }
}

/// Sorts entries as the apiserver does: appliers first, then by time, manager, apiVersion and
/// subresource.
fn sort_entries(entries: &mut [ManagedFieldsEntry]) {
    entries.sort_by(|p, q| {
        p.operation
            .cmp(&q.operation)
            .then_with(|| {
                p.time
                    .as_deref()
                    .unwrap_or("")
                    .cmp(q.time.as_deref().unwrap_or(""))
            })
            .then_with(|| p.manager.cmp(&q.manager))
            .then_with(|| p.api_version.cmp(&q.api_version))
            .then_with(|| p.subresource.cmp(&q.subresource))
    });
}

/// The most `Update` entries an object keeps, as the apiserver's field manager.
const MAX_UPDATE_MANAGERS: usize = 10;

/// The manager the oldest updates are folded into when an object has more than ten updaters.
pub const ANCIENT_CHANGES: &str = "ancient-changes";

/// Folds the oldest `Update` entries into one `ancient-changes` entry per apiVersion while there
/// are more than ten, as the apiserver's `capManagersManager` does.
fn cap_updaters(entries: &mut Vec<ManagedFieldsEntry>) {
    let count = |entries: &[ManagedFieldsEntry]| {
        entries
            .iter()
            .filter(|e| e.operation == Operation::Update)
            .count()
    };
    if count(entries) <= MAX_UPDATE_MANAGERS {
        return;
    }
    let mut oldest: Vec<ManagedFieldsEntry> = Vec::new();
    let mut rest: Vec<ManagedFieldsEntry> = Vec::new();
    for entry in entries.drain(..) {
        if entry.operation == Operation::Update && entry.manager != ANCIENT_CHANGES {
            oldest.push(entry);
        } else {
            rest.push(entry);
        }
    }
    oldest.sort_by(|a, b| {
        a.time
            .as_deref()
            .unwrap_or("")
            .cmp(b.time.as_deref().unwrap_or(""))
            .then_with(|| a.manager.cmp(&b.manager))
    });
    let mut oldest = oldest.into_iter();
    while count(&rest) + oldest.len() > MAX_UPDATE_MANAGERS {
        let Some(entry) = oldest.next() else { break };
        let bucket = rest.iter_mut().find(|e| {
            e.manager == ANCIENT_CHANGES
                && e.operation == Operation::Update
                && e.api_version == entry.api_version
                && e.subresource.is_none()
        });
        match bucket {
            Some(bucket) => {
                bucket.fields = bucket.fields.union(&entry.fields);
                if entry.time > bucket.time {
                    bucket.time = entry.time;
                }
            }
            None => rest.push(ManagedFieldsEntry {
                manager: ANCIENT_CHANGES.to_owned(),
                subresource: None,
                ..entry
            }),
        }
    }
    rest.extend(oldest);
    *entries = rest;
}

/// Writes `entries` into `object.metadata.managedFields`, keeping `original` verbatim when the
/// entries did not change so that a no-op write leaves the object byte-identical.
fn store_managed_fields(
    object: &mut Value,
    mut entries: Vec<ManagedFieldsEntry>,
    before: &[ManagedFieldsEntry],
    original: Option<&Value>,
) {
    entries.retain(|e| !e.fields.is_empty());
    cap_updaters(&mut entries);
    sort_entries(&mut entries);
    let encoded = if entries.as_slice() == before && original.is_some() {
        original.cloned()
    } else if entries.is_empty() {
        None
    } else {
        sort_entries(&mut entries);
        Some(Value::Array(
            entries.iter().map(ManagedFieldsEntry::encode).collect(),
        ))
    };
    let Some(object) = object.as_object_mut() else {
        return;
    };
    match encoded {
        Some(encoded) => {
            let metadata = object
                .entry("metadata")
                .or_insert_with(|| Value::Object(Map::new()));
            if let Some(metadata) = metadata.as_object_mut() {
                metadata.insert("managedFields".to_owned(), encoded);
            }
        }
        None => {
            if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
                metadata.remove("managedFields");
            }
        }
    }
}

fn without_managed_fields(object: &Value) -> Value {
    let mut object = object.clone();
    if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        metadata.remove("managedFields");
    }
    object
}

/// Paths the apiserver never records as owned (its `stripMeta`): identity and server-set
/// metadata.
fn is_stripped(path: &Path) -> bool {
    use crate::fieldpath::PathElement::Field;
    match path.0.as_slice() {
        [Field(top)] => matches!(&**top, "apiVersion" | "kind" | "metadata"),
        [Field(metadata), Field(field)] => {
            &**metadata == "metadata"
                && matches!(
                    &**field,
                    "name"
                        | "namespace"
                        | "creationTimestamp"
                        | "selfLink"
                        | "uid"
                        | "clusterName"
                        | "generation"
                        | "managedFields"
                        | "resourceVersion"
                )
        }
        _ => false,
    }
}

/// One field another manager owns that an apply would change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conflict {
    /// The other manager's name.
    pub manager: String,
    /// How the apiserver names that manager: `"name"`, `"name" using apps/v1`,
    /// `"name" with subresource "status" using v1`.
    pub manager_description: String,
    /// The field, as the apiserver prints it: `.spec.replicas`,
    /// `.spec.template.spec.containers[name="app"].image`.
    pub field: String,
    identifier: String,
    path: Path,
}

impl Conflict {
    /// The message of this conflict's `StatusCause` (type `FieldManagerConflict`, field
    /// [`Conflict::field`]): `conflict with "name" using apps/v1`.
    pub fn cause_message(&self) -> String {
        format!("conflict with {}", self.manager_description)
    }
}

/// The conflicts that make an apply fail with 409 Conflict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conflicts(pub Vec<Conflict>);

impl fmt::Display for Conflicts {
    /// The apiserver's message: `Apply failed with 1 conflict: conflict with "kubectl" using
    /// apps/v1: .spec.replicas`, or for several, one group per manager in manager order:
    /// `Apply failed with 2 conflicts: conflicts with "a":\n- .spec.x\n- .spec.y`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let [only] = self.0.as_slice() {
            return write!(
                f,
                "Apply failed with 1 conflict: conflict with {}: {}",
                only.manager_description, only.field
            );
        }
        let mut identifiers: Vec<&str> = self.0.iter().map(|c| c.identifier.as_str()).collect();
        identifiers.sort_unstable();
        identifiers.dedup();
        let mut lines = Vec::new();
        for identifier in identifiers {
            let group: Vec<&Conflict> = self
                .0
                .iter()
                .filter(|c| c.identifier == identifier)
                .collect();
            lines.push(format!("conflicts with {}:", group[0].manager_description));
            lines.extend(group.iter().map(|c| format!("- {}", c.field)));
        }
        write!(
            f,
            "Apply failed with {} conflicts: {}",
            self.0.len(),
            lines.join("\n")
        )
    }
}

/// Who applies, and how.
#[derive(Clone, Copy, Debug)]
pub struct ApplyParams<'a> {
    /// The field manager (`?fieldManager=`), required for apply.
    pub manager: &'a str,
    /// `?force=true`: take ownership of conflicting fields instead of failing.
    pub force: bool,
    /// Which part of the object this request writes.
    pub scope: WriteScope,
    /// The request time, RFC 3339 (`2024-01-02T03:04:05Z`), recorded in the manager's entry
    /// when the object changes.
    pub now: &'a str,
}

/// Who wrote with a create, update or patch.
#[derive(Clone, Copy, Debug)]
pub struct UpdateParams<'a> {
    /// The field manager (`?fieldManager=`, or derived from the user agent as the apiserver
    /// does: the part before the first `/`).
    pub manager: &'a str,
    /// The apiVersion the request was made with (`apps/v1`).
    pub api_version: &'a str,
    /// Which part of the object this request writes.
    pub scope: WriteScope,
    /// The request time, RFC 3339.
    pub now: &'a str,
}

/// Server-side apply of `applied` onto `live` (`None` when the object does not exist yet).
///
/// Returns the new object with `metadata.managedFields` updated. Server-set metadata
/// (`resourceVersion`, `uid`, `generation`, timestamps) is left to the caller. Applying the same
/// configuration again returns a value equal to `live`, managedFields included, so the caller
/// can detect a no-op by comparing.
///
/// Errors: [`Error::Conflict`] (409) when another manager owns a field this apply changes and
/// `force` is false; [`Error::ManagedFieldsInApply`] (400) when the configuration carries
/// `metadata.managedFields`; [`Error::InvalidList`] (422) for an associative list item without
/// its keys or with duplicate keys.
pub fn apply(
    live: Option<&Value>,
    applied: &Value,
    params: &ApplyParams<'_>,
    sem: &Semantics,
) -> Result<Value, Error> {
    let result = apply_with(live, applied, params, sem, true);
    if params.manager != KUBECTL {
        return result;
    }
    // `kubectl apply --server-side` after client-side `kubectl apply`: as the apiserver's
    // lastAppliedManager, conflicts on fields whose live value is still the one recorded in the
    // last-applied annotation are not conflicts, and the annotation follows the new
    // configuration (lastAppliedUpdater), so that going back to client-side apply works.
    let result = match result {
        Err(Error::Conflict(conflicts)) if !params.force => {
            match live.and_then(|live| allowed_by_last_applied(live, sem)) {
                Some(allowed) => {
                    let remaining: Vec<Conflict> = conflicts
                        .0
                        .into_iter()
                        .filter(|c| !allowed.contains(&c.path))
                        .collect();
                    if remaining.is_empty() {
                        let forced = ApplyParams {
                            force: true,
                            ..*params
                        };
                        apply_with(live, applied, &forced, sem, true)
                    } else {
                        Err(Error::Conflict(Conflicts(remaining)))
                    }
                }
                None => Err(Error::Conflict(conflicts)),
            }
        }
        other => other,
    };
    result.map(|mut object| {
        sync_last_applied(&mut object, applied);
        object
    })
}

/// The field manager whose applies interoperate with client-side `kubectl apply`.
const KUBECTL: &str = "kubectl";

/// The annotation client-side `kubectl apply` keeps its last configuration in.
pub const LAST_APPLIED_ANNOTATION: &str = "kubectl.kubernetes.io/last-applied-configuration";

fn last_applied(object: &Value) -> Option<&str> {
    object
        .get("metadata")?
        .get("annotations")?
        .get(LAST_APPLIED_ANNOTATION)?
        .as_str()
        .filter(|s| !s.is_empty())
}

/// The fields of the last-applied configuration whose live value has not changed since.
fn allowed_by_last_applied(live: &Value, sem: &Semantics) -> Option<FieldSet> {
    let last: Value = serde_json::from_str(last_applied(live)?).ok()?;
    let fields = to_field_set(&last, sem).ok()?;
    let changed = compare(&last, &without_managed_fields(live), sem).ok()?;
    Some(fields.difference(&changed.modified))
}

/// Rewrites the last-applied annotation, when the object has one, to the applied configuration
/// (without the annotation itself), encoded as the apiserver encodes it.
fn sync_last_applied(object: &mut Value, applied: &Value) {
    if last_applied(object).is_none() {
        return;
    }
    let mut config = applied.clone();
    if let Some(annotations) = config
        .get_mut("metadata")
        .and_then(|m| m.get_mut("annotations"))
        .and_then(Value::as_object_mut)
    {
        annotations.remove(LAST_APPLIED_ANNOTATION);
    }
    let Ok(mut encoded) = serde_json::to_string(&config) else {
        return;
    };
    encoded.push('\n');
    if let Some(annotations) = object
        .get_mut("metadata")
        .and_then(|m| m.get_mut("annotations"))
        .and_then(Value::as_object_mut)
    {
        annotations.insert(LAST_APPLIED_ANNOTATION.to_owned(), Value::String(encoded));
    }
}

/// [`apply`], with the shortcut for unchanged re-applies switchable so that tests can check it
/// agrees with the full computation.
fn apply_with(
    live: Option<&Value>,
    applied: &Value,
    params: &ApplyParams<'_>,
    sem: &Semantics,
    shortcut: bool,
) -> Result<Value, Error> {
    if applied
        .pointer("/metadata/managedFields")
        .is_some_and(|v| !v.is_null())
    {
        return Err(Error::ManagedFieldsInApply);
    }
    let Some(applied_map) = applied.as_object() else {
        return Err(Error::NotAnObject);
    };
    let scope = params.scope;
    let empty = Value::Object(Map::new());
    let live_full = live.unwrap_or(&empty);
    let before = managed_fields(live_full)?;
    let live_obj = without_managed_fields(live_full);

    let config = match scope {
        WriteScope::WholeObject => applied.clone(),
        WriteScope::MainResource => {
            let mut config = applied_map.clone();
            config.remove("status");
            Value::Object(config)
        }
        WriteScope::StatusSubresource => {
            let mut config = Map::new();
            if let Some(status) = applied_map.get("status") {
                config.insert("status".to_owned(), status.clone());
            }
            Value::Object(config)
        }
    };

    let mut applied_set = to_field_set(&config, sem)?;
    applied_set.retain(|p| scope.includes(p) && !is_stripped(p));
    let merged = merge(&live_obj, &config, sem)?;

    let me = ManagedFieldsEntry {
        manager: params.manager.to_owned(),
        operation: Operation::Apply,
        api_version: applied_map
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        time: None,
        subresource: scope.subresource(),
        fields: applied_set,
    };
    let mut entries = before.clone();
    if entries.is_empty() && live.is_some() {
        // An object that nobody owns a field of (written before field tracking, or with its
        // managedFields cleared): the apiserver gives its fields to `before-first-apply`, so
        // the first applier conflicts with what was there instead of silently taking it.
        let mut fields = to_field_set(&live_obj, sem)?;
        fields.retain(|p| scope.includes(p) && !is_stripped(p));
        entries.push(ManagedFieldsEntry {
            manager: BEFORE_FIRST_APPLY.to_owned(),
            operation: Operation::Update,
            api_version: me.api_version.clone(),
            time: Some(params.now.to_owned()),
            subresource: None,
            fields,
        });
    }
    let previous = entries.iter().position(|e| e.same_manager(&me));
    // The common case of re-applying an unchanged configuration: nothing to prune, change or
    // take over, so the live object is the answer.
    if let Some(i) = previous.filter(|_| shortcut)
        && entries[i].fields == me.fields
        && merged == live_obj
    {
        return Ok(live_full.clone());
    }
    let (last_set, last_time) = match previous {
        Some(i) => {
            let old = entries.remove(i);
            (old.fields, old.time)
        }
        None => (FieldSet::new(), None),
    };

    // Prune: what this manager applied last time, does not apply now, and nobody else owns.
    let merged = if last_set.is_empty() {
        merged
    } else {
        let mut all_owned = me.fields.clone();
        for entry in &entries {
            all_owned.0.extend(entry.fields.iter().cloned());
        }
        let remove =
            ensure_named_fields(&last_set, sem).difference(&ensure_named_fields(&all_owned, sem));
        remove_items(&merged, &remove, &all_owned, sem)?
    };

    let mut comparison = compare(&live_obj, &merged, sem)?;
    comparison.retain(|p| scope.includes(p));
    let changed = comparison.modified.union(&comparison.added);
    let mut conflicts = Vec::new();
    for entry in &entries {
        for path in entry.fields.intersection(&changed).in_iteration_order() {
            conflicts.push(Conflict {
                manager: entry.manager.clone(),
                manager_description: entry.describe(),
                field: path.to_string(),
                identifier: entry.identifier(),
                path,
            });
        }
    }
    if !conflicts.is_empty() && !params.force {
        return Err(Error::Conflict(Conflicts(conflicts)));
    }
    for entry in &mut entries {
        entry.fields = entry
            .fields
            .difference(&changed)
            .difference(&comparison.removed);
    }

    let merged = without_null_fields(&merged);
    // The apiserver stamps the applier's entry on every apply, then puts the old timestamps back
    // when nothing but timestamps changed: the time moves when the object or the applier's
    // fields change.
    let unchanged = merged == live_obj && last_set == me.fields;
    let time = match last_time {
        Some(time) if unchanged => Some(time),
        _ => Some(params.now.to_owned()),
    };
    entries.push(ManagedFieldsEntry { time, ..me });
    for entry in &mut entries {
        entry.fields.retain(|p| !is_stripped(p));
    }
    // Both lists sorted, so that store_managed_fields sees equal lists when nothing changed.
    sort_entries(&mut entries);
    let mut before_sorted = before.clone();
    sort_entries(&mut before_sorted);

    let mut result = merged;
    store_managed_fields(
        &mut result,
        entries,
        &before_sorted,
        live_full.pointer("/metadata/managedFields"),
    );
    Ok(result)
}

/// Records the ownership a create, update or patch takes: the fields it changed or added
/// become owned by `params.manager` (operation `Update`) and are taken away from every other
/// manager; fields it removed are no longer owned by anyone. `old` is `None` for a create.
///
/// `new` is the object as it will be stored; its `metadata.managedFields` is rewritten. As the
/// apiserver does, managedFields sent by the client in `new` are taken as the starting point
/// when non-empty (a client may edit them), otherwise those of `old`; `[{}]` clears them; writes
/// through the status subresource always start from `old`'s.
pub fn record_update(
    old: Option<&Value>,
    new: &mut Value,
    params: &UpdateParams<'_>,
    sem: &Semantics,
) -> Result<(), Error> {
    if !new.is_object() {
        return Err(Error::NotAnObject);
    }
    let scope = params.scope;
    let empty = Value::Object(Map::new());
    let old_full = old.unwrap_or(&empty);
    // `managedFields: [{}]` is the documented way for a client to clear all ownership.
    let reset = new
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .is_some_and(
            |entries| matches!(entries.as_slice(), [Value::Object(entry)] if entry.is_empty()),
        );
    let from_new = match managed_fields(new) {
        Ok(entries) if !entries.is_empty() && scope != WriteScope::StatusSubresource => {
            Some(entries)
        }
        _ => None,
    };
    let (before, original) = match from_new {
        _ if reset && scope != WriteScope::StatusSubresource => (Vec::new(), None),
        Some(entries) => (entries, new.pointer("/metadata/managedFields").cloned()),
        None => (
            managed_fields(old_full)?,
            old_full.pointer("/metadata/managedFields").cloned(),
        ),
    };
    let old_obj = without_managed_fields(old_full);
    let new_obj = without_managed_fields(new);

    let mut comparison = compare(&old_obj, &new_obj, sem)?;
    comparison.retain(|p| scope.includes(p));
    let mut changed = comparison.modified.union(&comparison.added);
    let mut entries = before.clone();
    for entry in &mut entries {
        entry.fields = entry
            .fields
            .difference(&changed)
            .difference(&comparison.removed);
    }
    changed.retain(|p| !is_stripped(p));
    if !changed.is_empty() {
        let me = ManagedFieldsEntry {
            manager: params.manager.to_owned(),
            operation: Operation::Update,
            api_version: params.api_version.to_owned(),
            time: Some(params.now.to_owned()),
            subresource: scope.subresource(),
            fields: changed,
        };
        match entries.iter_mut().find(|e| e.same_manager(&me)) {
            Some(entry) => {
                entry.fields = entry.fields.union(&me.fields);
                entry.time = me.time;
            }
            None => entries.push(me),
        }
    }
    for entry in &mut entries {
        entry.fields.retain(|p| !is_stripped(p));
    }
    sort_entries(&mut entries);
    let mut before_sorted = before;
    sort_entries(&mut before_sorted);
    let mut result = new_obj;
    store_managed_fields(&mut result, entries, &before_sorted, original.as_ref());
    *new = result;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_unchanged_reapply_shortcut_agrees_with_the_full_computation() {
        let sem = Semantics::builtin();
        let configs = [
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "labels": {"a": "1"}},
                   "data": {"k": "v", "n": null}}),
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d", "finalizers": ["x/y"]},
                   "spec": {"replicas": 1, "selector": {"matchLabels": {"a": "b"}}, "template": {"spec": {
                       "containers": [{"name": "a", "image": "i", "env": [{"name": "E", "value": "1"}],
                                       "ports": [{"containerPort": 80}]}]}}}}),
        ];
        for config in configs {
            let first = ApplyParams {
                manager: "m",
                force: false,
                scope: WriteScope::WholeObject,
                now: "2024-01-01T00:00:00Z",
            };
            let live = apply(None, &config, &first, &sem).unwrap();
            let again = ApplyParams {
                now: "2024-01-01T00:01:00Z",
                ..first
            };
            let full = apply_with(Some(&live), &config, &again, &sem, false).unwrap();
            let short = apply_with(Some(&live), &config, &again, &sem, true).unwrap();
            assert_eq!(full, live);
            assert_eq!(short, live);
        }
    }
}
