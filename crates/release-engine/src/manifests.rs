//! Rendered YAML to an install plan: Helm hooks separated and ordered, the rest in Helm's install
//! order, objects confined to the release namespace and labelled, inventory, prune set and
//! ownership conflicts (SPEC §2.5, §7).
//!
//! Everything here is pure. What the cluster knows (which kinds are namespaced, the labels of a
//! live object) is handed in by the caller.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use serde_json::{Map, Value};
use upstart_api::v1alpha1::InventoryEntry;

use crate::digest::json_digest;
use crate::yaml::{Converter, YamlError, YamlLimits};
use crate::{Error, Result};

/// Label naming the tool that manages an object.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// Value of [`MANAGED_BY_LABEL`] on every object this operator applies.
pub const MANAGED_BY_VALUE: &str = "upstart";
/// Label naming the release (`<namespace>.<name>`) an object belongs to.
pub const RELEASE_LABEL: &str = "upstartoperators.upstart.com/release";

/// Annotation marking an object as a Helm hook, with a comma-separated list of events.
pub const HOOK_ANNOTATION: &str = "helm.sh/hook";
/// Annotation ordering hooks of one event (an integer; ascending; unparsable means 0, as Helm).
pub const HOOK_WEIGHT_ANNOTATION: &str = "helm.sh/hook-weight";
/// Annotation listing when a hook object is deleted.
pub const HOOK_DELETE_POLICY_ANNOTATION: &str = "helm.sh/hook-delete-policy";
/// Helm's annotation that leaves an object in place when its release deletes or prunes it.
pub const RESOURCE_POLICY_ANNOTATION: &str = "helm.sh/resource-policy";

/// Whether an object carries `helm.sh/resource-policy: keep` (compared as Helm does: trimmed,
/// case-insensitive), so deleting or pruning its release leaves it in place.
pub fn is_kept(annotations: Option<&std::collections::BTreeMap<String, String>>) -> bool {
    annotations
        .and_then(|a| a.get(RESOURCE_POLICY_ANNOTATION))
        .is_some_and(|policy| policy.trim().eq_ignore_ascii_case("keep"))
}

/// Helm's `InstallOrder`, copied exactly from helm `pkg/release/v1/util/kind_sorter.go` (v4).
/// SPEC §2.5 puts CRDs and Namespaces before all of it (see [`install_order_key`]).
pub const HELM_INSTALL_ORDER: [&str; 38] = [
    "PriorityClass",
    "Namespace",
    "NetworkPolicy",
    "ResourceQuota",
    "LimitRange",
    "PodSecurityPolicy",
    "PodDisruptionBudget",
    "ServiceAccount",
    "Secret",
    "SecretList",
    "ConfigMap",
    "StorageClass",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "CustomResourceDefinition",
    "ClusterRole",
    "ClusterRoleList",
    "ClusterRoleBinding",
    "ClusterRoleBindingList",
    "Role",
    "RoleList",
    "RoleBinding",
    "RoleBindingList",
    "Service",
    "DaemonSet",
    "Pod",
    "ReplicationController",
    "ReplicaSet",
    "Deployment",
    "HorizontalPodAutoscaler",
    "StatefulSet",
    "Job",
    "CronJob",
    "IngressClass",
    "Ingress",
    "APIService",
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
];

/// Limits on the rendered manifest (SPEC §7): a hostile chart cannot exhaust memory. The text
/// is capped by `max_bytes`, and what its aliases expand to by `yaml` (nodes and scalar bytes
/// counted at every replay, over all documents of the render together).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest rendered manifest accepted, in bytes.
    pub max_bytes: usize,
    /// Most documents accepted in one render.
    pub max_documents: usize,
    /// What converting the whole manifest to JSON may build.
    pub yaml: YamlLimits,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: 16 * 1024 * 1024,
            max_documents: 5_000,
            yaml: YamlLimits::default(),
        }
    }
}

/// The cluster-scoped kinds a release may create. An entry is either `Kind` (any API group)
/// or `group/Kind` (`apiextensions.k8s.io/CustomResourceDefinition`); the core group is written
/// as the bare kind (`Namespace`, `PersistentVolume`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClusterScopedAllowList {
    entries: BTreeSet<String>,
}

impl ClusterScopedAllowList {
    pub fn new<I, S>(entries: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        ClusterScopedAllowList {
            entries: entries.into_iter().map(Into::into).collect(),
        }
    }

    /// Whether objects of this apiVersion and kind may be created.
    pub fn allows(&self, api_version: &str, kind: &str) -> bool {
        let group = api_group(api_version);
        self.entries.contains(kind) || self.entries.contains(&format!("{group}/{kind}"))
    }
}

/// The API group of an apiVersion (`apps/v1` -> `apps`, `v1` -> ``).
pub fn api_group(api_version: &str) -> &str {
    api_version.rsplit_once('/').map_or("", |(group, _)| group)
}

/// Who the release is: where its objects go and what they may be.
pub struct ReleaseScope<'a> {
    /// The release's namespace (the HelmRelease's namespace).
    pub namespace: &'a str,
    /// The HelmRelease's `metadata.name` (the label value is `<namespace>.<name>`).
    pub name: &'a str,
    /// Cluster-scoped kinds that may be created.
    pub cluster_scoped_allow_list: &'a ClusterScopedAllowList,
    /// From discovery: `Some(true)` when (apiVersion, kind) is namespaced, `Some(false)` when
    /// cluster-scoped, `None` when the cluster does not serve it.
    pub is_namespaced: &'a dyn Fn(&str, &str) -> Option<bool>,
}

impl ReleaseScope<'_> {
    /// The value of [`RELEASE_LABEL`] for this release.
    pub fn release_label_value(&self) -> String {
        upstart_api::names::release_label_value(self.namespace, self.name)
    }
}

/// One rendered object, namespaced and labelled, ready to be applied. Its `Debug` shows the
/// identity only: the object may carry values (Secret data), and debug output ends up in logs.
#[derive(Clone, PartialEq)]
pub struct ManifestObject {
    /// apiVersion, kind, namespace (None for cluster-scoped) and name.
    pub entry: InventoryEntry,
    /// The full object as it is to be applied.
    pub object: Value,
    /// The chart file it came from (`mychart/templates/web.yaml`), from Helm's `# Source:`.
    pub source: Option<String>,
}

impl std::fmt::Debug for ManifestObject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ManifestObject")
            .field("entry", &self.entry)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl ManifestObject {
    /// `Kind/name`, the way errors and conditions name an object.
    pub fn display_name(&self) -> String {
        display_name(&self.entry)
    }
}

/// The object as applied while its environment sleeps: a Deployment or StatefulSet (apps/v1)
/// with `spec.replicas: 0`; `None` for anything else (applied as rendered). The rendered
/// replicas are what waking puts back: the render is the memory, nothing else is recorded.
pub fn asleep(entry: &InventoryEntry, object: &Value) -> Option<Value> {
    if api_group(&entry.api_version) != "apps"
        || !matches!(entry.kind.as_str(), "Deployment" | "StatefulSet")
    {
        return None;
    }
    let mut copy = object.clone();
    let spec = copy
        .as_object_mut()?
        .entry("spec")
        .or_insert_with(|| Value::Object(Map::new()));
    spec.as_object_mut()?
        .insert("replicas".to_owned(), Value::from(0));
    Some(copy)
}

/// `Kind/name` of an inventory entry.
pub fn display_name(entry: &InventoryEntry) -> String {
    format!("{}/{}", entry.kind, entry.name)
}

/// The hook events the operator runs. `test` hooks are recognised and dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum HookEvent {
    PreInstall,
    PostInstall,
    PreUpgrade,
    PostUpgrade,
    PreDelete,
    PostDelete,
}

impl HookEvent {
    pub const ALL: [HookEvent; 6] = [
        HookEvent::PreInstall,
        HookEvent::PostInstall,
        HookEvent::PreUpgrade,
        HookEvent::PostUpgrade,
        HookEvent::PreDelete,
        HookEvent::PostDelete,
    ];

    /// The annotation spelling (`pre-install`), also used in status.
    pub fn as_str(self) -> &'static str {
        match self {
            HookEvent::PreInstall => "pre-install",
            HookEvent::PostInstall => "post-install",
            HookEvent::PreUpgrade => "pre-upgrade",
            HookEvent::PostUpgrade => "post-upgrade",
            HookEvent::PreDelete => "pre-delete",
            HookEvent::PostDelete => "post-delete",
        }
    }

    /// The events around an apply: (`pre-install`, `post-install`) for a first install,
    /// (`pre-upgrade`, `post-upgrade`) for an upgrade.
    pub fn around_apply(is_upgrade: bool) -> (HookEvent, HookEvent) {
        if is_upgrade {
            (HookEvent::PreUpgrade, HookEvent::PostUpgrade)
        } else {
            (HookEvent::PreInstall, HookEvent::PostInstall)
        }
    }

    fn parse(s: &str) -> Option<HookEvent> {
        HookEvent::ALL.into_iter().find(|e| e.as_str() == s)
    }
}

/// When a hook object is deleted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum HookDeletePolicy {
    /// Delete the previous object before creating the hook again (Helm's default).
    BeforeHookCreation,
    /// Delete the object once the hook succeeded.
    HookSucceeded,
    /// Delete the object once the hook failed.
    HookFailed,
}

impl HookDeletePolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            HookDeletePolicy::BeforeHookCreation => "before-hook-creation",
            HookDeletePolicy::HookSucceeded => "hook-succeeded",
            HookDeletePolicy::HookFailed => "hook-failed",
        }
    }

    fn parse(s: &str) -> Option<HookDeletePolicy> {
        [
            HookDeletePolicy::BeforeHookCreation,
            HookDeletePolicy::HookSucceeded,
            HookDeletePolicy::HookFailed,
        ]
        .into_iter()
        .find(|p| p.as_str() == s)
    }
}

/// A Helm hook: an object applied at an event, not part of the inventory.
#[derive(Clone, Debug, PartialEq)]
pub struct Hook {
    pub object: ManifestObject,
    /// The events it runs at (never empty).
    pub events: BTreeSet<HookEvent>,
    /// `helm.sh/hook-weight`; lower runs first.
    pub weight: i32,
    /// `helm.sh/hook-delete-policy`; `before-hook-creation` when none is given.
    pub delete_policies: BTreeSet<HookDeletePolicy>,
}

/// How a hook ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HookOutcome {
    Succeeded,
    Failed,
}

impl Hook {
    pub fn has_policy(&self, policy: HookDeletePolicy) -> bool {
        self.delete_policies.contains(&policy)
    }

    /// Whether a previous object of this hook is deleted (and its deletion awaited) before it is
    /// created again.
    pub fn delete_before_creation(&self) -> bool {
        self.has_policy(HookDeletePolicy::BeforeHookCreation)
    }

    /// Whether the object is deleted once the hook has ended this way.
    pub fn delete_after(&self, outcome: HookOutcome) -> bool {
        match outcome {
            HookOutcome::Succeeded => self.has_policy(HookDeletePolicy::HookSucceeded),
            HookOutcome::Failed => self.has_policy(HookDeletePolicy::HookFailed),
        }
    }

    /// `Kind/name` of the hook object (as in status `hooks[].object`).
    pub fn display_name(&self) -> String {
        self.object.display_name()
    }
}

/// How a hook has ended, from its live object: `None` while it is still running. As in Helm,
/// a Job runs until `Complete` (or `Failed`), a Pod until phase `Succeeded` (or `Failed`; a
/// running, Ready Pod has not ended), and every other kind has done its work once it exists.
pub fn hook_outcome(live: &Value) -> Option<HookOutcome> {
    match live.get("kind").and_then(Value::as_str) {
        Some("Job") => match crate::health::assess(live) {
            crate::health::Health::Healthy => Some(HookOutcome::Succeeded),
            crate::health::Health::Failed(_) => Some(HookOutcome::Failed),
            crate::health::Health::Progressing(_) => None,
        },
        Some("Pod") => match live.pointer("/status/phase").and_then(Value::as_str) {
            Some("Succeeded") => Some(HookOutcome::Succeeded),
            Some("Failed") => Some(HookOutcome::Failed),
            _ => None,
        },
        _ => Some(HookOutcome::Succeeded),
    }
}

/// A render, checked and ordered: what to apply, in which order, and the hooks around it.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// CRDs from a chart's (or subchart's) `crds/` directory. As Helm treats them: created
    /// before anything else when missing, never updated, never pruned and never deleted, so
    /// they are not part of the inventory. (A CRD in `templates/` is an ordinary resource.)
    pub crds: Vec<ManifestObject>,
    /// The release's objects in install order (CRDs, Namespaces, then Helm's order by kind,
    /// unknown kinds last, alphabetically by kind; equal kinds keep their rendered order).
    pub resources: Vec<ManifestObject>,
    /// Every hook, ordered as Helm runs them: weight, then name, then install order by kind.
    pub hooks: Vec<Hook>,
}

impl Plan {
    /// The inventory of this render (resources only, not hooks), in apply order (status
    /// `inventory` is documented so). Stable for a given render: the order comes from the kinds
    /// and the rendered order, never from the cluster.
    pub fn inventory(&self) -> Vec<InventoryEntry> {
        self.resources.iter().map(|o| o.entry.clone()).collect()
    }

    /// The hooks of one event, in the order they must run.
    pub fn hooks_for(&self, event: HookEvent) -> Vec<&Hook> {
        self.hooks
            .iter()
            .filter(|h| h.events.contains(&event))
            .collect()
    }

    /// A digest of everything this plan applies (objects after namespacing and labelling, and
    /// hooks), for status `appliedDigest`.
    pub fn digest(&self) -> String {
        let objects = self
            .crds
            .iter()
            .chain(&self.resources)
            .chain(self.hooks.iter().map(|h| &h.object))
            .map(|o| o.object.clone())
            .collect();
        json_digest(&Value::Array(objects))
    }
}

/// Parses a rendered manifest and builds the plan, or refuses the whole render: nothing of a
/// refused render is to be applied.
pub fn plan(manifest: &str, scope: &ReleaseScope<'_>, limits: &Limits) -> Result<Plan> {
    let documents = parse_documents(manifest, limits)?;
    let crd_scopes = crd_scopes(&documents);
    let release_label = scope.release_label_value();

    let mut seen = HashSet::new();
    let mut crds = Vec::new();
    let mut resources = Vec::new();
    let mut hooks = Vec::new();
    for doc in documents {
        let object = confine(doc, scope, &crd_scopes, &release_label)?;
        if !seen.insert(object.entry.clone()) {
            return Err(Error::DuplicateObject {
                object: object.display_name(),
            });
        }
        if object.entry.kind == "CustomResourceDefinition"
            && object.source.as_deref().is_some_and(is_in_crds_directory)
        {
            crds.push(object);
            continue;
        }
        match hook_annotation(&object.object) {
            None => resources.push(object),
            Some(annotation) => {
                if let Some(hook) = hook(object, &annotation) {
                    hooks.push(hook);
                }
            }
        }
    }

    resources.sort_by_key(|o| install_order_key(&o.entry.kind));
    hooks.sort_by(|a, b| {
        a.weight
            .cmp(&b.weight)
            .then_with(|| a.object.entry.name.cmp(&b.object.entry.name))
            .then_with(|| {
                install_order_key(&a.object.entry.kind)
                    .cmp(&install_order_key(&b.object.entry.kind))
            })
    });
    Ok(Plan {
        crds,
        resources,
        hooks,
    })
}

/// Whether Helm's `# Source:` path names a file of a chart's `crds/` directory: the chart's
/// own (`mychart/crds/x.yaml`) or a subchart's (`mychart/charts/sub/crds/x.yaml`, at any depth).
pub fn is_in_crds_directory(source: &str) -> bool {
    let mut rest = match source.split_once('/') {
        Some((_chart, rest)) => rest,
        None => return false,
    };
    loop {
        if rest.starts_with("crds/") {
            return true;
        }
        match rest
            .strip_prefix("charts/")
            .and_then(|sub| sub.split_once('/'))
        {
            Some((_subchart, inner)) => rest = inner,
            None => return false,
        }
    }
}

/// One rendered document before checks (no `Debug`: it may hold values).
#[derive(Clone)]
pub struct RawDocument {
    pub object: Value,
    pub source: Option<String>,
}

/// Splits and parses a multi-document manifest within the limits, converting YAML to JSON as
/// kubectl does ([`crate::yaml`]); empty documents are skipped and `kind: List` documents are
/// flattened into their items.
pub fn parse_documents(manifest: &str, limits: &Limits) -> Result<Vec<RawDocument>> {
    if manifest.len() > limits.max_bytes {
        return Err(Error::ManifestTooLarge {
            size: manifest.len(),
            limit: limits.max_bytes,
        });
    }
    let mut out = Vec::new();
    let mut converter = Converter::new(limits.yaml.clone());
    for (index, text) in split_documents(manifest).into_iter().enumerate() {
        let source = text
            .lines()
            .find_map(|l| l.strip_prefix("# Source: "))
            .map(|s| s.trim().to_owned());
        if text
            .lines()
            .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
        {
            continue;
        }
        let name = source
            .clone()
            .unwrap_or_else(|| format!("document {}", index + 1));
        let mut values = converter
            .documents(text)
            .map_err(|e| yaml_error(&name, e))?
            .into_iter();
        let value = values.next().unwrap_or(Value::Null);
        if values.next().is_some() {
            return Err(Error::InvalidYaml {
                source_file: name,
                detail:
                    "one part of the manifest holds several YAML documents (a `...` end marker?)"
                        .into(),
            });
        }
        match value {
            Value::Null => {}
            Value::Object(ref map) if is_list(map) => {
                if let Some(Value::Array(items)) = map.get("items") {
                    for item in items {
                        out.push(RawDocument {
                            object: item.clone(),
                            source: source.clone(),
                        });
                    }
                }
            }
            other => out.push(RawDocument {
                object: other,
                source: source.clone(),
            }),
        }
        if out.len() > limits.max_documents {
            return Err(Error::TooManyDocuments {
                limit: limits.max_documents,
            });
        }
    }
    Ok(out)
}

fn is_list(map: &Map<String, Value>) -> bool {
    map.get("apiVersion").and_then(Value::as_str) == Some("v1")
        && map.get("kind").and_then(Value::as_str) == Some("List")
}

/// Splits at `---` lines, as YAML (and Helm's `SplitManifests`) does.
fn split_documents(text: &str) -> Vec<&str> {
    let mut docs = Vec::new();
    let mut start = 0;
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let content = line.trim_end();
        let marker =
            content == "---" || content.starts_with("--- ") || content.starts_with("---\t");
        if marker {
            docs.push(&text[start..offset]);
            // Content after `--- ` on the marker line belongs to the new document.
            start = offset + 3;
        }
        offset += line.len();
    }
    docs.push(&text[start..]);
    docs
}

/// A YAML error: [`YamlError`] never quotes document content, only positions and limits.
fn yaml_error(source_file: &str, error: YamlError) -> Error {
    match error {
        YamlError::TooLarge { what, limit } => Error::YamlTooLarge {
            source_file: source_file.to_owned(),
            what,
            limit,
        },
        other => Error::InvalidYaml {
            source_file: source_file.to_owned(),
            detail: other.to_string(),
        },
    }
}

/// (group, version, kind) -> namespaced, from CRDs in the render itself, so a chart may ship a
/// CRD and instances of it in one release.
fn crd_scopes(documents: &[RawDocument]) -> HashMap<(String, String, String), bool> {
    let mut scopes = HashMap::new();
    for doc in documents {
        let o = &doc.object;
        if o.get("kind").and_then(Value::as_str) != Some("CustomResourceDefinition")
            || api_group(o.get("apiVersion").and_then(Value::as_str).unwrap_or(""))
                != "apiextensions.k8s.io"
        {
            continue;
        }
        let spec = o.get("spec");
        let text = |pointer: &str| {
            spec.and_then(|s| s.pointer(pointer))
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        let (Some(group), Some(kind)) = (text("/group"), text("/names/kind")) else {
            continue;
        };
        let namespaced = text("/scope").as_deref() != Some("Cluster");
        let versions = spec
            .and_then(|s| s.get("versions"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|v| v.get("name").and_then(Value::as_str));
        for version in versions {
            scopes.insert(
                (group.clone(), version.to_owned(), kind.clone()),
                namespaced,
            );
        }
    }
    scopes
}

/// Checks one object's identity and namespace, and labels it.
fn confine(
    doc: RawDocument,
    scope: &ReleaseScope<'_>,
    crd_scopes: &HashMap<(String, String, String), bool>,
    release_label: &str,
) -> Result<ManifestObject> {
    let RawDocument { mut object, source } = doc;
    let where_ = || source.clone().unwrap_or_else(|| "rendered document".into());
    let Value::Object(map) = &mut object else {
        return Err(Error::InvalidObject {
            object: where_(),
            reason: "a document is not a mapping".into(),
        });
    };
    let text = |map: &Map<String, Value>, key: &str| {
        map.get(key)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let kind = text(map, "kind").ok_or_else(|| Error::InvalidObject {
        object: where_(),
        reason: "a document has no kind".into(),
    })?;
    let api_version = text(map, "apiVersion").ok_or_else(|| Error::InvalidObject {
        object: format!("{kind} in {}", where_()),
        reason: "no apiVersion".into(),
    })?;
    let metadata = map
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    let Value::Object(metadata) = metadata else {
        return Err(Error::InvalidObject {
            object: format!("{kind} in {}", where_()),
            reason: "metadata is not a mapping".into(),
        });
    };
    let name = text(metadata, "name").ok_or_else(|| Error::InvalidObject {
        object: format!("{kind} in {}", where_()),
        reason: "metadata.name is required (generateName is not supported)".into(),
    })?;
    let display = format!("{kind}/{name}");

    let namespaced = (scope.is_namespaced)(&api_version, &kind).or_else(|| {
        let (group, version) = match api_version.rsplit_once('/') {
            Some((g, v)) => (g, v),
            None => ("", api_version.as_str()),
        };
        crd_scopes
            .get(&(group.to_owned(), version.to_owned(), kind.clone()))
            .copied()
    });
    let namespace = match namespaced {
        None => {
            return Err(Error::UnknownKind {
                object: display,
                api_version,
                kind,
            });
        }
        Some(true) => {
            match text(metadata, "namespace") {
                Some(ns) if ns != scope.namespace => {
                    return Err(Error::ForeignNamespace {
                        object: display,
                        namespace: ns,
                        release_namespace: scope.namespace.to_owned(),
                    });
                }
                _ => {}
            }
            metadata.insert("namespace".into(), Value::String(scope.namespace.into()));
            Some(scope.namespace.to_owned())
        }
        Some(false) => {
            if !scope.cluster_scoped_allow_list.allows(&api_version, &kind) {
                return Err(Error::ClusterScopedNotAllowed {
                    object: display,
                    kind,
                });
            }
            // A namespace on a cluster-scoped object means nothing to the API server; dropping
            // it keeps the inventory entry exact.
            metadata.remove("namespace");
            None
        }
    };

    let labels = metadata
        .entry("labels")
        .or_insert_with(|| Value::Object(Map::new()));
    if !labels.is_object() {
        *labels = Value::Object(Map::new());
    }
    if let Value::Object(labels) = labels {
        labels.insert(MANAGED_BY_LABEL.into(), MANAGED_BY_VALUE.into());
        labels.insert(RELEASE_LABEL.into(), release_label.into());
    }

    Ok(ManifestObject {
        entry: InventoryEntry {
            api_version,
            kind,
            namespace,
            name,
        },
        object,
        source,
    })
}

fn annotation<'a>(object: &'a Value, key: &str) -> Option<&'a str> {
    object
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(key))
        .and_then(Value::as_str)
}

fn hook_annotation(object: &Value) -> Option<String> {
    annotation(object, HOOK_ANNOTATION).map(str::to_owned)
}

fn annotation_list(value: &str) -> impl Iterator<Item = String> + '_ {
    value
        .split(',')
        .map(|s| s.trim().to_ascii_lowercase())
        .filter(|s| !s.is_empty())
}

/// A hook from an annotated object; `None` when it runs at no event the operator runs (`test`
/// hooks, unknown events): such objects are not applied at all, as in Helm.
fn hook(object: ManifestObject, events: &str) -> Option<Hook> {
    let events: BTreeSet<HookEvent> = annotation_list(events)
        .filter_map(|e| HookEvent::parse(&e))
        .collect();
    if events.is_empty() {
        return None;
    }
    let weight = annotation(&object.object, HOOK_WEIGHT_ANNOTATION)
        .and_then(|w| w.trim().parse::<i32>().ok())
        .unwrap_or(0);
    let mut delete_policies: BTreeSet<HookDeletePolicy> =
        annotation(&object.object, HOOK_DELETE_POLICY_ANNOTATION)
            .map(|p| {
                annotation_list(p)
                    .filter_map(|p| HookDeletePolicy::parse(&p))
                    .collect()
            })
            .unwrap_or_default();
    if delete_policies.is_empty() {
        delete_policies.insert(HookDeletePolicy::BeforeHookCreation);
    }
    Some(Hook {
        object,
        events,
        weight,
        delete_policies,
    })
}

/// The sort key of a kind in install order: CRDs, then Namespaces, then Helm's `InstallOrder`,
/// then unknown kinds alphabetically.
pub fn install_order_key(kind: &str) -> (u8, usize, String) {
    match kind {
        "CustomResourceDefinition" => (0, 0, String::new()),
        "Namespace" => (1, 0, String::new()),
        _ => match HELM_INSTALL_ORDER.iter().position(|k| *k == kind) {
            Some(index) => (2, index, String::new()),
            None => (3, 0, kind.to_owned()),
        },
    }
}

/// Entries in uninstall order: exactly the reverse of install order (so custom resources go
/// before their CRDs and webhooks are removed first).
pub fn uninstall_order(entries: &[InventoryEntry]) -> Vec<InventoryEntry> {
    let mut sorted = entries.to_vec();
    sorted.sort_by_key(|e| install_order_key(&e.kind));
    sorted.reverse();
    sorted
}

/// What to delete after a successful apply: in the old inventory and not in the new one, in
/// uninstall order.
pub fn prune_set(old: &[InventoryEntry], new: &[InventoryEntry]) -> Vec<InventoryEntry> {
    let keep: HashSet<&InventoryEntry> = new.iter().collect();
    let gone: Vec<InventoryEntry> = old.iter().filter(|e| !keep.contains(e)).cloned().collect();
    uninstall_order(&gone)
}

/// Who a live object belongs to, from its labels.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ownership {
    /// Labelled for this release.
    Ours,
    /// No release label: the object may be adopted.
    Unlabelled,
    /// Labelled for another release (`<namespace>.<name>`): a conflict.
    OtherRelease(String),
}

/// Reads the release label of a live object.
pub fn ownership(live_labels: Option<&BTreeMap<String, String>>, release_label: &str) -> Ownership {
    match live_labels.and_then(|l| l.get(RELEASE_LABEL)) {
        None => Ownership::Unlabelled,
        Some(owner) if owner == release_label => Ownership::Ours,
        Some(owner) => Ownership::OtherRelease(owner.clone()),
    }
}

/// Refuses to touch a live object that belongs to another release.
pub fn check_conflict(
    entry: &InventoryEntry,
    live_labels: Option<&BTreeMap<String, String>>,
    release_label: &str,
) -> Result<()> {
    match ownership(live_labels, release_label) {
        Ownership::OtherRelease(owner) => Err(Error::Conflict {
            object: display_name(entry),
            owner,
        }),
        Ownership::Ours | Ownership::Unlabelled => Ok(()),
    }
}

#[cfg(test)]
mod tests;
