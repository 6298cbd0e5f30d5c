//! UpstartEnvironment (SPEC §4): one isolated namespace with every service it needs, and a TTL.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::helm_release::HelmReleaseSpec;
use super::upstart_service::UpstartServiceSpec;
use super::validation::{DNS1123_LABEL, DURATION, optional_values_schema, version_schema};

/// An environment: its namespace, services, environment-wide releases and lifetime.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "upstartoperators.upstart.com",
    version = "v1alpha1",
    kind = "UpstartEnvironment",
    plural = "upstartenvironments",
    shortname = "uenv",
    category = "upstart",
    status = "UpstartEnvironmentStatus",
    derive = "PartialEq",
    doc = "An isolated, expiring environment: a namespace with every service it needs.",
    printcolumn = r#"{"name":"Namespace","type":"string","jsonPath":".status.namespace"}"#,
    printcolumn = r#"{"name":"Services","type":"string","jsonPath":".status.services"}"#,
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Requester","type":"string","description":"Who asked for the environment (the requester annotation)","jsonPath":".status.requester"}"#,
    printcolumn = r#"{"name":"Endpoint","type":"string","description":"Where to reach it first: an Ingress URL, else a LoadBalancer address, else a Service DNS name (status.endpoints has them all)","jsonPath":".status.endpoints[0].url"}"#,
    printcolumn = r#"{"name":"Expires","type":"string","description":"When the environment deletes itself (a date column would print <invalid> for a future time)","jsonPath":".status.expiresAt"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct UpstartEnvironmentSpec {
    /// The namespace created and owned by the environment. Default: `metadata.name`. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        pattern(DNS1123_LABEL),
        length(max = 63),
        extend("x-kubernetes-validations" = [{"rule": "self == oldSelf", "message": "namespace is immutable"}])
    )]
    pub namespace: Option<String>,

    /// Lifetime from creation (Go duration, e.g. `72h`); the environment deletes itself at
    /// `status.expiresAt`. Editing it moves the expiry. None: no expiry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(DURATION))]
    pub ttl: Option<String>,

    /// Free-form variables, available to every release as `<< environment.variables.KEY >>`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub variables: BTreeMap<String, String>,

    /// Chart repository overrides, alias -> URL (e.g. `{upstart-charts:
    /// https://charts.example.com/pr-1234}`): every chart reference `ALIAS/NAME` of the
    /// environment's releases (its services' and its own) becomes `URL/NAME`, so that another
    /// repository's charts (a pull request's) are tried without editing any service. The
    /// HelmRelease operator resolves such a URL only when its repository configuration lists it
    /// (under any alias) or allows unlisted repositories.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("x-kubernetes-validations" = [{
        "rule": "self.all(k, self[k].startsWith('https://') || self[k].startsWith('http://') || self[k].startsWith('oci://'))",
        "message": "chart repository URLs must start with https://, http:// or oci://"
    }]))]
    pub chart_repositories: BTreeMap<String, String>,

    /// Environment-wide releases, children named `<env>-<key>`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("x-kubernetes-validations" = [{
        "rule": "self.all(k, k.matches('^[A-Za-z]([-A-Za-z0-9]*[A-Za-z0-9])?$') && k.size() <= 63)",
        "message": "release keys must start with a letter, hold only letters, digits and '-', end with a letter or digit, and be at most 63 characters"
    }]))]
    pub helm_releases: BTreeMap<String, HelmReleaseSpec>,

    /// Job name -> a Job run as one more node of the environment's graph (child named
    /// `<env>-<name>`): `when: pre` runs it before every release of the environment and of its
    /// services, `post` after all of them, or `dependencies` order it; a release depends on it
    /// by naming it (`kind: EnvironmentRelease` from a service).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("x-kubernetes-validations" = [{
        "rule": "self.all(k, k.matches('^[A-Za-z]([-A-Za-z0-9]*[A-Za-z0-9])?$') && k.size() <= 63)",
        "message": "job names must start with a letter, hold only letters, digits and '-', end with a letter or digit, and be at most 63 characters"
    }]))]
    pub jobs: BTreeMap<String, super::jobs::JobSpec>,

    /// The services of the environment; they start together, ordered only by dependencies.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub services: Vec<EnvironmentService>,

    /// Dependency closure. `true` (default): a service that a release of the environment
    /// depends on (by name, not a `HelmRelease` dependency) and that the environment does not
    /// list is copied from the catalog template of that name too, transitively, and reported
    /// in `status.addedServices`. `false`: nothing is added, and such a dependency is reported
    /// as missing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closure: Option<bool>,

    /// What a service copied from a catalog template does when the template changes. `follow`
    /// (default): it copies each new revision (one that fails catalog validation is never
    /// copied: the service keeps its last good copy, and the environment says so). `pinned`:
    /// it keeps the revision it copied first (`status.templates`) until this is set back to
    /// `follow`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_updates: Option<TemplateUpdates>,

    /// When the environment's Deployments and StatefulSets sleep (scaled to zero) and wake:
    /// a schedule, a manual switch, releases that never sleep. TTL runs on while asleep.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sleep: Option<super::sleep::SleepSpec>,

    /// What the environment's namespace may use (a ResourceQuota and a LimitRange), within
    /// the operator's maximums.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota: Option<super::sleep::QuotaSpec>,
}

impl UpstartEnvironmentSpec {
    /// Whether services the listed ones depend on are added from the catalog (`spec.closure`).
    pub fn closure(&self) -> bool {
        self.closure.unwrap_or(true)
    }

    /// `spec.templateUpdates`, defaulted.
    pub fn template_updates(&self) -> TemplateUpdates {
        self.template_updates.unwrap_or_default()
    }
}

/// The chart reference `chart` with its alias replaced by the URL `repositories` (an
/// environment's `spec.chartRepositories`) gives that alias, when `chart` is `ALIAS/NAME` of an
/// overridden alias; `None` otherwise (other forms are left alone: `oci://`, `https://`,
/// `file:`, `git+…`). The environment operator rewrites its releases with it, and `upstart env
/// diff` reads them the same way.
pub fn rewrite_chart(chart: &str, repositories: &BTreeMap<String, String>) -> Option<String> {
    let (alias, name) = chart.split_once('/')?;
    if alias.contains(':') || name.is_empty() || name.contains('/') {
        return None;
    }
    let url = repositories.get(alias)?;
    Some(format!("{}/{name}", url.trim_end_matches('/')))
}

/// Whether the services of an environment follow their catalog templates' edits.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum TemplateUpdates {
    // Copy every valid new revision (documented on the field: doc comments here would replace
    // the field's description in the schema).
    #[default]
    Follow,
    // Keep the revision copied first.
    Pinned,
}

/// One service of an environment: a catalog template or an inline spec, with overrides.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "has(self.template) != has(self.spec)",
    "message": "exactly one of template or spec must be set"
}]))]
pub struct EnvironmentService {
    /// The UpstartService created in the environment's namespace.
    #[schemars(pattern(DNS1123_LABEL), length(min = 1, max = 63))]
    pub name: String,
    /// An UpstartService of the catalog namespace to copy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<TemplateReference>,
    /// An inline service spec.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<UpstartServiceSpec>,
    /// Per release key: chart, version, values (deep-merged into the template's).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub overrides: BTreeMap<String, ReleaseOverride>,
    /// `false`, or an expression over `environment.variables` that is `false` once
    /// substituted (`<< environment.variables.withSearch >>`), leaves the service out (one
    /// that was created is torn down, dependents first). Default `true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "super::jobs::switch_schema")]
    pub enabled: Option<super::jobs::Switch>,
}

/// A catalog template, by name.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct TemplateReference {
    /// The UpstartService's name in the catalog namespace.
    #[schemars(
        pattern(super::validation::DNS1123_SUBDOMAIN),
        length(min = 1, max = 253)
    )]
    pub name: String,
}

/// What an environment changes in one release of a service.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReleaseOverride {
    /// Replaces the chart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(super::validation::CHART), length(max = 512))]
    pub chart: Option<String>,
    /// Replaces the version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "version_schema")]
    pub version: Option<String>,
    /// Deep-merged over the release's inline values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "optional_values_schema")]
    pub values: Option<serde_json::Value>,
    /// Replaces the release's `enabled`: `false`, or an expression over
    /// `environment.variables` that is `false` once substituted, leaves it out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "super::jobs::switch_schema")]
    pub enabled: Option<super::jobs::Switch>,
}

/// What the UpstartEnvironment operator observed. Names and reasons only, never values.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpstartEnvironmentStatus {
    /// The generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, `NamespaceReady`, `Reconciling`, `Stalled`, `TemplatesUpToDate`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// Where the environment is in its life.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<EnvironmentPhase>,
    /// The environment's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// `ready/total` services, for `kubectl get`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub services: Option<String>,
    /// Services that are Ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_services: Option<i32>,
    /// Services in all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_services: Option<i32>,
    /// Releases (of services and environment-wide) that are Ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_releases: Option<i32>,
    /// Releases in all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_releases: Option<i32>,
    /// When the environment was first Ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_at: Option<Time>,
    /// Seconds from creation to `readyAt`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_to_ready_seconds: Option<f64>,
    /// The chain of releases that determined time-to-ready.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub critical_path: Vec<CriticalPathStep>,
    /// When the environment deletes itself (absent: never, or kept by annotation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Time>,
    /// The catalog template each service was copied from and the revision it runs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["service"]))]
    pub templates: Vec<TemplateRevision>,
    /// Who asked for the environment: its `upstartoperators.upstart.com/requester`
    /// annotation (set by `upstart env create` from the kubeconfig's user). Informational:
    /// anyone who may edit the environment may set it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requester: Option<String>,
    /// Where the environment's services can be reached: Ingress URLs, LoadBalancer addresses,
    /// then Service DNS names (at most 50).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub endpoints: Vec<Endpoint>,
    /// Services the environment added from the catalog because its releases depend on them
    /// (`spec.closure`), with the releases that do.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub added_services: Vec<AddedService>,
    /// Whether the environment sleeps (`spec.sleep`), why, and its next scheduled transition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sleep: Option<super::sleep::SleepStatus>,
}

/// The copy of a catalog template a service runs.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TemplateRevision {
    /// The UpstartService in the environment's namespace.
    pub service: String,
    /// The catalog template it was copied from.
    pub template: String,
    /// The revision it runs: the `sha256:` digest of the template's spec as copied.
    pub revision: String,
    /// The catalog's current revision, when the service runs another one (`pinned`, or the
    /// catalog's revision is invalid); absent when they are the same or the template is gone
    /// from the catalog.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catalog_revision: Option<String>,
}

/// Where one service of an environment can be reached.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Endpoint {
    /// The UpstartService (or environment-wide HelmRelease) it belongs to.
    pub service: String,
    /// `Ingress` (a host, with `https` when the Ingress has TLS for it), `LoadBalancer` (an
    /// address a LoadBalancer Service was given) or `Service` (a cluster DNS name).
    pub kind: String,
    /// The Ingress or Service it comes from.
    pub object: String,
    /// `https://HOST[/PATH]`, `ADDRESS:PORT`, or `NAME.NAMESPACE.svc:PORT`.
    pub url: String,
}

/// A service added by the dependency closure.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AddedService {
    /// The service, named (and copied from the catalog template named) as the dependency.
    pub name: String,
    /// The releases that depend on it, as `service/key` (or an environment release's name).
    pub required_by: Vec<String>,
}

/// One release on the critical path.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CriticalPathStep {
    /// The HelmRelease's name.
    pub release: String,
    /// Seconds from the environment's creation (or its predecessor's readiness) until it could start.
    pub wait_seconds: f64,
    /// Seconds from its start to Ready.
    pub install_seconds: f64,
}

/// Where an environment is in its life.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum EnvironmentPhase {
    Provisioning,
    Ready,
    Degraded,
    Failed,
    Expiring,
    Deleting,
    /// Its workloads are scaled to zero (`spec.sleep`).
    Sleeping,
    /// Not started: a cap on environments is reached, or its quota is above the operator's
    /// maximum (the Ready condition says which). Nothing of it exists.
    Refused,
}

impl EnvironmentPhase {
    /// Every phase, in life order (for metrics that report all phases).
    pub const ALL: [EnvironmentPhase; 8] = [
        EnvironmentPhase::Provisioning,
        EnvironmentPhase::Ready,
        EnvironmentPhase::Degraded,
        EnvironmentPhase::Failed,
        EnvironmentPhase::Expiring,
        EnvironmentPhase::Deleting,
        EnvironmentPhase::Sleeping,
        EnvironmentPhase::Refused,
    ];

    /// The phase as written in status.
    pub fn as_str(&self) -> &'static str {
        match self {
            EnvironmentPhase::Provisioning => "Provisioning",
            EnvironmentPhase::Ready => "Ready",
            EnvironmentPhase::Degraded => "Degraded",
            EnvironmentPhase::Failed => "Failed",
            EnvironmentPhase::Expiring => "Expiring",
            EnvironmentPhase::Deleting => "Deleting",
            EnvironmentPhase::Sleeping => "Sleeping",
            EnvironmentPhase::Refused => "Refused",
        }
    }
}

impl crate::phase::Phase for EnvironmentPhase {
    const ALL: &'static [EnvironmentPhase] = &EnvironmentPhase::ALL;

    fn as_str(self) -> &'static str {
        EnvironmentPhase::as_str(&self)
    }
}
