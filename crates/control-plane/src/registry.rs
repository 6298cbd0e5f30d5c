//! Resource types the control plane serves: the built-in table and CRDs registered at run time.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Value, json};

/// Storage identity of a resource type: API group and plural name (`("apps", "deployments")`).
/// Objects of every served version of a type share one storage, as in the apiserver.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResKey {
    pub group: String,
    pub plural: String,
}

/// One resource type.
#[derive(Debug, Clone)]
pub struct ResourceType {
    pub group: String,
    /// Served versions, preferred (storage) version first.
    pub versions: Vec<String>,
    pub kind: String,
    pub list_kind: String,
    pub plural: String,
    pub singular: String,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    pub namespaced: bool,
    /// A `/status` subresource exists: the main endpoint ignores status, `/status` ignores the rest.
    pub has_status: bool,
    /// A `/scale` subresource exists, with where replicas and the selector live.
    pub scale: Option<ScalePaths>,
    /// `metadata.generation` is maintained (bumped when anything outside metadata/status changes).
    pub tracks_generation: bool,
    /// Built-in kinds accept strategic merge patch; custom resources do not (415).
    pub builtin: bool,
    /// Field selectors accepted besides `metadata.name` / `metadata.namespace` (JSON paths without
    /// the leading dot, e.g. `status.phase`).
    pub field_selectors: Vec<String>,
    /// For custom resources: the CRD per served version (schema, printer columns).
    pub crd_versions: BTreeMap<String, Arc<CrdVersion>>,
    /// Objects live in another type's storage, converted on the way in and out.
    pub conversion: Option<(ResKey, crate::convert::Conversion)>,
    /// A review (SelfSubjectAccessReview, SelfSubjectReview...): only `create`, answered at once
    /// and never stored, as the apiserver's virtual review resources.
    pub review: bool,
}

/// JSON paths (`.spec.replicas`) of a scale subresource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScalePaths {
    pub spec_replicas: String,
    pub status_replicas: String,
    pub label_selector: Option<String>,
}

impl ScalePaths {
    fn standard() -> Self {
        ScalePaths {
            spec_replicas: ".spec.replicas".into(),
            status_replicas: ".status.replicas".into(),
            label_selector: Some(".spec.selector".into()),
        }
    }
}

/// What the control plane keeps from one version of a CustomResourceDefinition.
#[derive(Debug, Clone)]
pub struct CrdVersion {
    /// The compiled schema (validation, pruning, defaulting).
    pub compiled: Option<Arc<upstart_crd_validation::CompiledSchema>>,
    /// List and map merge rules for patches and server-side apply (shared by every write, not
    /// copied for each).
    pub semantics: Arc<upstart_k8s_patch::Semantics>,
    /// The `openAPIV3Schema` of this version, if given.
    pub schema: Option<Value>,
    /// `additionalPrinterColumns` as declared.
    pub printer_columns: Vec<Value>,
}

impl ResourceType {
    pub fn key(&self) -> ResKey {
        ResKey {
            group: self.group.clone(),
            plural: self.plural.clone(),
        }
    }

    /// Where the objects are stored: the type's own key unless it is served by conversion.
    pub fn storage_key(&self) -> ResKey {
        match &self.conversion {
            Some((key, _)) => key.clone(),
            None => self.key(),
        }
    }

    pub fn converter(&self) -> Option<crate::convert::Conversion> {
        self.conversion.as_ref().map(|(_, c)| *c)
    }

    pub fn api_version(&self, version: &str) -> String {
        if self.group.is_empty() {
            version.to_string()
        } else {
            format!("{}/{version}", self.group)
        }
    }

    pub fn preferred_version(&self) -> &str {
        self.versions.first().map(String::as_str).unwrap_or("v1")
    }

    pub fn serves(&self, version: &str) -> bool {
        self.versions.iter().any(|v| v == version)
    }
}

/// Every served type, by storage key.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    types: BTreeMap<ResKey, Arc<ResourceType>>,
}

const VERBS: [&str; 8] = [
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

struct Builtin {
    group: &'static str,
    version: &'static str,
    /// Further served versions (stored in `version`'s form, converted by `convert`).
    more_versions: &'static [&'static str],
    kind: &'static str,
    plural: &'static str,
    short: &'static [&'static str],
    namespaced: bool,
    status: bool,
    generation: bool,
    fields: &'static [&'static str],
    categories: &'static [&'static str],
}

#[allow(clippy::too_many_arguments)]
const fn b(
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    plural: &'static str,
    short: &'static [&'static str],
    namespaced: bool,
    status: bool,
    generation: bool,
) -> Builtin {
    Builtin {
        group,
        version,
        more_versions: &[],
        kind,
        plural,
        short,
        namespaced,
        status,
        generation,
        fields: &[],
        categories: &[],
    }
}

const ALL: &[&str] = &["all"];

/// The built-in types typical charts use. Field selectors follow the apiserver's per-kind tables.
fn builtins() -> Vec<Builtin> {
    vec![
        Builtin {
            fields: &[
                "spec.nodeName",
                "spec.restartPolicy",
                "spec.schedulerName",
                "spec.serviceAccountName",
                "spec.hostNetwork",
                "status.phase",
                "status.podIP",
                "status.nominatedNodeName",
            ],
            categories: ALL,
            ..b("", "v1", "Pod", "pods", &["po"], true, true, true)
        },
        Builtin {
            categories: ALL,
            ..b("", "v1", "Service", "services", &["svc"], true, true, false)
        },
        b(
            "",
            "v1",
            "ConfigMap",
            "configmaps",
            &["cm"],
            true,
            false,
            false,
        ),
        Builtin {
            fields: &["type"],
            ..b("", "v1", "Secret", "secrets", &[], true, false, false)
        },
        b(
            "",
            "v1",
            "ServiceAccount",
            "serviceaccounts",
            &["sa"],
            true,
            false,
            false,
        ),
        b(
            "",
            "v1",
            "Endpoints",
            "endpoints",
            &["ep"],
            true,
            false,
            false,
        ),
        Builtin {
            fields: &[
                "involvedObject.kind",
                "involvedObject.namespace",
                "involvedObject.name",
                "involvedObject.uid",
                "involvedObject.apiVersion",
                "involvedObject.resourceVersion",
                "involvedObject.fieldPath",
                "reason",
                "reportingComponent",
                "source",
                "type",
            ],
            ..b("", "v1", "Event", "events", &["ev"], true, false, false)
        },
        b(
            "",
            "v1",
            "PersistentVolumeClaim",
            "persistentvolumeclaims",
            &["pvc"],
            true,
            true,
            false,
        ),
        Builtin {
            categories: ALL,
            ..b(
                "",
                "v1",
                "ReplicationController",
                "replicationcontrollers",
                &["rc"],
                true,
                true,
                true,
            )
        },
        b(
            "",
            "v1",
            "ResourceQuota",
            "resourcequotas",
            &["quota"],
            true,
            true,
            false,
        ),
        b(
            "",
            "v1",
            "LimitRange",
            "limitranges",
            &["limits"],
            true,
            false,
            false,
        ),
        b(
            "",
            "v1",
            "PodTemplate",
            "podtemplates",
            &[],
            true,
            false,
            false,
        ),
        Builtin {
            fields: &["status.phase"],
            ..b(
                "",
                "v1",
                "Namespace",
                "namespaces",
                &["ns"],
                false,
                true,
                false,
            )
        },
        Builtin {
            fields: &["spec.unschedulable"],
            ..b("", "v1", "Node", "nodes", &["no"], false, true, false)
        },
        b(
            "",
            "v1",
            "PersistentVolume",
            "persistentvolumes",
            &["pv"],
            false,
            true,
            false,
        ),
        Builtin {
            categories: ALL,
            ..b(
                "apps",
                "v1",
                "Deployment",
                "deployments",
                &["deploy"],
                true,
                true,
                true,
            )
        },
        Builtin {
            categories: ALL,
            ..b(
                "apps",
                "v1",
                "StatefulSet",
                "statefulsets",
                &["sts"],
                true,
                true,
                true,
            )
        },
        Builtin {
            categories: ALL,
            ..b(
                "apps",
                "v1",
                "DaemonSet",
                "daemonsets",
                &["ds"],
                true,
                true,
                true,
            )
        },
        Builtin {
            fields: &["status.replicas"],
            categories: ALL,
            ..b(
                "apps",
                "v1",
                "ReplicaSet",
                "replicasets",
                &["rs"],
                true,
                true,
                true,
            )
        },
        b(
            "apps",
            "v1",
            "ControllerRevision",
            "controllerrevisions",
            &[],
            true,
            false,
            false,
        ),
        Builtin {
            fields: &["status.successful"],
            categories: ALL,
            ..b("batch", "v1", "Job", "jobs", &[], true, true, true)
        },
        Builtin {
            categories: ALL,
            ..b(
                "batch",
                "v1",
                "CronJob",
                "cronjobs",
                &["cj"],
                true,
                true,
                true,
            )
        },
        b(
            "networking.k8s.io",
            "v1",
            "Ingress",
            "ingresses",
            &["ing"],
            true,
            true,
            true,
        ),
        b(
            "networking.k8s.io",
            "v1",
            "NetworkPolicy",
            "networkpolicies",
            &["netpol"],
            true,
            false,
            true,
        ),
        b(
            "networking.k8s.io",
            "v1",
            "IngressClass",
            "ingressclasses",
            &[],
            false,
            false,
            false,
        ),
        b(
            "rbac.authorization.k8s.io",
            "v1",
            "Role",
            "roles",
            &[],
            true,
            false,
            false,
        ),
        b(
            "rbac.authorization.k8s.io",
            "v1",
            "RoleBinding",
            "rolebindings",
            &[],
            true,
            false,
            false,
        ),
        b(
            "rbac.authorization.k8s.io",
            "v1",
            "ClusterRole",
            "clusterroles",
            &[],
            false,
            false,
            false,
        ),
        b(
            "rbac.authorization.k8s.io",
            "v1",
            "ClusterRoleBinding",
            "clusterrolebindings",
            &[],
            false,
            false,
            false,
        ),
        b(
            "policy",
            "v1",
            "PodDisruptionBudget",
            "poddisruptionbudgets",
            &["pdb"],
            true,
            true,
            true,
        ),
        b(
            "coordination.k8s.io",
            "v1",
            "Lease",
            "leases",
            &[],
            true,
            false,
            false,
        ),
        Builtin {
            fields: &[
                "regarding.kind",
                "regarding.namespace",
                "regarding.name",
                "regarding.uid",
                "reason",
                "reportingController",
                "type",
            ],
            ..b(
                "events.k8s.io",
                "v1",
                "Event",
                "events",
                &["ev"],
                true,
                false,
                false,
            )
        },
        b(
            "apiextensions.k8s.io",
            "v1",
            "CustomResourceDefinition",
            "customresourcedefinitions",
            &["crd", "crds"],
            false,
            true,
            true,
        ),
        Builtin {
            categories: ALL,
            // autoscaling/v1 objects are stored as v2 (convert::hpa_v1_to_v2), as the apiserver.
            more_versions: &["v1"],
            ..b(
                "autoscaling",
                "v2",
                "HorizontalPodAutoscaler",
                "horizontalpodautoscalers",
                &["hpa"],
                true,
                true,
                true,
            )
        },
        b(
            "storage.k8s.io",
            "v1",
            "StorageClass",
            "storageclasses",
            &["sc"],
            false,
            false,
            false,
        ),
        b(
            "discovery.k8s.io",
            "v1",
            "EndpointSlice",
            "endpointslices",
            &[],
            true,
            false,
            false,
        ),
        b(
            "admissionregistration.k8s.io",
            "v1",
            "ValidatingWebhookConfiguration",
            "validatingwebhookconfigurations",
            &[],
            false,
            false,
            true,
        ),
        b(
            "admissionregistration.k8s.io",
            "v1",
            "MutatingWebhookConfiguration",
            "mutatingwebhookconfigurations",
            &[],
            false,
            false,
            true,
        ),
        b(
            "scheduling.k8s.io",
            "v1",
            "PriorityClass",
            "priorityclasses",
            &["pc"],
            false,
            false,
            false,
        ),
        b(
            "node.k8s.io",
            "v1",
            "RuntimeClass",
            "runtimeclasses",
            &[],
            false,
            false,
            false,
        ),
        b(
            "apiregistration.k8s.io",
            "v1",
            "APIService",
            "apiservices",
            &[],
            false,
            true,
            false,
        ),
        b(
            "certificates.k8s.io",
            "v1",
            "CertificateSigningRequest",
            "certificatesigningrequests",
            &["csr"],
            false,
            true,
            false,
        ),
    ]
}

/// The review resources, answered as a local admin who may do anything (this control plane
/// has no authorization): `kubectl auth can-i` and `kubectl auth whoami` use the first two.
const REVIEWS: &[(&str, &str, &str, bool)] = &[
    (
        "authorization.k8s.io",
        "SelfSubjectAccessReview",
        "selfsubjectaccessreviews",
        false,
    ),
    (
        "authorization.k8s.io",
        "SelfSubjectRulesReview",
        "selfsubjectrulesreviews",
        false,
    ),
    (
        "authorization.k8s.io",
        "SubjectAccessReview",
        "subjectaccessreviews",
        false,
    ),
    (
        "authorization.k8s.io",
        "LocalSubjectAccessReview",
        "localsubjectaccessreviews",
        true,
    ),
    (
        "authentication.k8s.io",
        "SelfSubjectReview",
        "selfsubjectreviews",
        false,
    ),
];

impl Registry {
    /// The registry with every built-in type.
    pub fn with_builtins() -> Self {
        let mut r = Registry::default();
        for bt in builtins() {
            let mut versions = vec![bt.version.to_string()];
            versions.extend(bt.more_versions.iter().map(|v| v.to_string()));
            let t = ResourceType {
                group: bt.group.to_string(),
                versions,
                kind: bt.kind.to_string(),
                list_kind: format!("{}List", bt.kind),
                plural: bt.plural.to_string(),
                singular: bt.kind.to_ascii_lowercase(),
                short_names: bt.short.iter().map(|s| s.to_string()).collect(),
                categories: bt.categories.iter().map(|s| s.to_string()).collect(),
                namespaced: bt.namespaced,
                has_status: bt.status,
                scale: matches!(
                    (bt.group, bt.plural),
                    ("apps", "deployments" | "statefulsets" | "replicasets")
                        | ("", "replicationcontrollers")
                )
                .then(ScalePaths::standard),
                tracks_generation: bt.generation,
                builtin: true,
                field_selectors: bt.fields.iter().map(|s| s.to_string()).collect(),
                crd_versions: BTreeMap::new(),
                conversion: (bt.group.is_empty() && bt.plural == "events").then(|| {
                    (
                        ResKey {
                            group: "events.k8s.io".into(),
                            plural: "events".into(),
                        },
                        crate::convert::Conversion::CoreEvent,
                    )
                }),
                review: false,
            };
            r.types.insert(t.key(), Arc::new(t));
        }
        for (group, kind, plural, namespaced) in REVIEWS {
            let t = ResourceType {
                group: group.to_string(),
                versions: vec!["v1".to_string()],
                kind: kind.to_string(),
                list_kind: format!("{kind}List"),
                plural: plural.to_string(),
                singular: kind.to_ascii_lowercase(),
                short_names: Vec::new(),
                categories: Vec::new(),
                namespaced: *namespaced,
                has_status: false,
                scale: None,
                tracks_generation: false,
                builtin: true,
                field_selectors: Vec::new(),
                crd_versions: BTreeMap::new(),
                conversion: None,
                review: true,
            };
            r.types.insert(t.key(), Arc::new(t));
        }
        r
    }

    pub fn get(&self, key: &ResKey) -> Option<&Arc<ResourceType>> {
        self.types.get(key)
    }

    /// The type served at `/apis/{group}/{version}/{plural}`.
    pub fn lookup(&self, group: &str, version: &str, plural: &str) -> Option<&Arc<ResourceType>> {
        self.types
            .get(&ResKey {
                group: group.to_string(),
                plural: plural.to_string(),
            })
            .filter(|t| t.serves(version))
    }

    pub fn all(&self) -> impl Iterator<Item = &Arc<ResourceType>> {
        self.types.values()
    }

    /// Groups and their served versions, for discovery, in a stable order (core excluded).
    pub fn groups(&self) -> BTreeMap<String, Vec<String>> {
        let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for t in self.types.values() {
            if t.group.is_empty() {
                continue;
            }
            let entry = out.entry(t.group.clone()).or_default();
            for v in &t.versions {
                if !entry.contains(v) {
                    entry.push(v.clone());
                }
            }
        }
        for versions in out.values_mut() {
            versions.sort_by_key(|v| std::cmp::Reverse(version_priority(v)));
        }
        out
    }

    pub fn insert(&mut self, t: ResourceType) {
        self.types.insert(t.key(), Arc::new(t));
    }

    pub fn remove(&mut self, key: &ResKey) {
        if self.types.get(key).is_some_and(|t| !t.builtin) {
            self.types.remove(key);
        }
    }

    /// `APIResourceList` for one group version.
    pub fn resource_list(&self, group: &str, version: &str) -> Option<Value> {
        let mut resources = Vec::new();
        for t in self
            .types
            .values()
            .filter(|t| t.group == group && t.serves(version))
        {
            let mut r = json!({
                "name": t.plural,
                "singularName": t.singular,
                "namespaced": t.namespaced,
                "kind": t.kind,
                "verbs": if t.review { &["create"][..] } else { &VERBS[..] },
            });
            if !t.short_names.is_empty() {
                r["shortNames"] = json!(t.short_names);
            }
            if !t.categories.is_empty() {
                r["categories"] = json!(t.categories);
            }
            resources.push(r);
            if t.scale.is_some() {
                resources.push(json!({
                    "name": format!("{}/scale", t.plural),
                    "singularName": "",
                    "namespaced": t.namespaced,
                    "group": "autoscaling",
                    "version": "v1",
                    "kind": "Scale",
                    "verbs": ["get", "patch", "update"],
                }));
            }
            if t.has_status {
                resources.push(json!({
                    "name": format!("{}/status", t.plural),
                    "singularName": "",
                    "namespaced": t.namespaced,
                    "kind": t.kind,
                    "verbs": ["get", "patch", "update"],
                }));
            }
        }
        if resources.is_empty() {
            return None;
        }
        let gv = if group.is_empty() {
            version.to_string()
        } else {
            format!("{group}/{version}")
        };
        Some(json!({
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": gv,
            "resources": resources,
        }))
    }
}

/// `"apps/v1"` -> `("apps", "v1")`, `"v1"` -> `("", "v1")`.
pub fn split_api_version(api_version: &str) -> (&str, &str) {
    match api_version.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version),
    }
}

/// Kubernetes version priority: GA > beta > alpha, then by number (`v2` > `v1` > `v1beta2`).
pub fn version_priority(v: &str) -> (u8, u32, u32) {
    let rest = v.strip_prefix('v').unwrap_or(v);
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let major = digits.parse().unwrap_or(0);
    let tail = &rest[digits.len()..];
    if tail.is_empty() {
        return (3, major, 0);
    }
    let (level, num) = if let Some(n) = tail.strip_prefix("beta") {
        (2, n)
    } else if let Some(n) = tail.strip_prefix("alpha") {
        (1, n)
    } else {
        (0, "0")
    };
    (level, major, num.parse().unwrap_or(0))
}

/// Builds the served type from a CustomResourceDefinition object, or explains why it cannot be
/// served (the reason lands in the `NamesAccepted` condition).
pub fn type_from_crd(crd: &Value) -> Result<ResourceType, String> {
    let spec = &crd["spec"];
    let group = spec["group"]
        .as_str()
        .ok_or("spec.group is required")?
        .to_string();
    let names = &spec["names"];
    let plural = names["plural"]
        .as_str()
        .ok_or("spec.names.plural is required")?
        .to_string();
    let kind = names["kind"]
        .as_str()
        .ok_or("spec.names.kind is required")?
        .to_string();
    let singular = names["singular"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| kind.to_ascii_lowercase());
    let list_kind = names["listKind"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| format!("{kind}List"));
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let namespaced = spec["scope"].as_str() != Some("Cluster");
    let mut versions = Vec::new();
    let mut crd_versions = BTreeMap::new();
    let mut has_status = false;
    let mut scale = None;
    let mut field_selectors = Vec::new();
    let mut storage = None;
    for v in spec["versions"].as_array().into_iter().flatten() {
        let Some(name) = v["name"].as_str() else {
            continue;
        };
        if v["storage"].as_bool() == Some(true) {
            storage = Some(name.to_string());
        }
        if v["served"].as_bool() == Some(false) {
            continue;
        }
        versions.push(name.to_string());
        if v["subresources"]["status"].is_object() {
            has_status = true;
        }
        let sc = &v["subresources"]["scale"];
        if let Some(spec_path) = sc["specReplicasPath"].as_str() {
            scale = Some(ScalePaths {
                spec_replicas: spec_path.to_string(),
                status_replicas: sc["statusReplicasPath"].as_str().unwrap_or("").to_string(),
                label_selector: sc["labelSelectorPath"].as_str().map(str::to_string),
            });
        }
        for f in v["selectableFields"].as_array().into_iter().flatten() {
            if let Some(p) = f["jsonPath"].as_str() {
                field_selectors.push(p.trim_start_matches('.').to_string());
            }
        }
        let printer_columns = v["additionalPrinterColumns"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let schema = v["schema"].get("openAPIV3Schema").cloned();
        let semantics = Arc::new(upstart_k8s_patch::Semantics::from_crd_schema(
            schema.as_ref().unwrap_or(&json!({"type": "object"})),
        ));
        crd_versions.insert(
            name.to_string(),
            Arc::new(CrdVersion {
                compiled: schema
                    .as_ref()
                    .map(|s| Arc::new(upstart_crd_validation::CompiledSchema::new(s))),
                semantics,
                schema,
                printer_columns,
            }),
        );
    }
    if versions.is_empty() {
        return Err("spec.versions must serve at least one version".to_string());
    }
    // Discovery lists the preferred version first: the highest-priority served version.
    versions.sort_by_key(|v| std::cmp::Reverse(version_priority(v)));
    let _ = storage;
    Ok(ResourceType {
        group,
        versions,
        kind,
        list_kind,
        plural,
        singular,
        short_names: strings(&names["shortNames"]),
        categories: strings(&names["categories"]),
        namespaced,
        has_status,
        scale,
        tracks_generation: true,
        builtin: false,
        field_selectors,
        crd_versions,
        conversion: None,
        review: false,
    })
}
