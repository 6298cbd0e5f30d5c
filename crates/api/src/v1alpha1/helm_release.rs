//! HelmRelease (SPEC §2): one chart installed in one namespace, gated on its dependencies. Its
//! spec is also the shape of every `helmReleases` entry of UpstartService and UpstartEnvironment.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::references::{Dependency, OutputSource, ValuesReference};
use super::validation::{
    CHART, DNS1123_LABEL, DNS1123_SUBDOMAIN, DURATION, optional_values_schema, version_schema,
};
use crate::duration::parse_duration;

/// How often a Ready release is re-applied to correct drift, unless `interval` says otherwise.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(10 * 60);
/// How long a release may take to become healthy before it is Failed, unless `timeout` says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10 * 60);

/// One Helm release: a chart, its values, what it waits for and what it publishes.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "upstartoperators.upstart.com",
    version = "v1alpha1",
    kind = "HelmRelease",
    plural = "helmreleases",
    shortname = "uhr",
    category = "upstart",
    namespaced,
    status = "HelmReleaseStatus",
    derive = "PartialEq",
    doc = "A Helm chart installed in this namespace once its dependencies are Ready, with their outputs wired into its values.",
    printcolumn = r#"{"name":"Chart","type":"string","jsonPath":".spec.chart"}"#,
    printcolumn = r#"{"name":"Version","type":"string","jsonPath":".status.version"}"#,
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    printcolumn = r#"{"name":"Manifest","type":"string","priority":1,"jsonPath":".status.manifestDigest"}"#,
    printcolumn = r#"{"name":"Commit","type":"string","priority":1,"jsonPath":".status.commit"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct HelmReleaseSpec {
    /// The chart: `ALIAS/NAME` of a configured repository, `oci://HOST/PATH/NAME` (with
    /// `:TAG` for a tag re-resolved every interval, or `@sha256:DIGEST` for exactly that
    /// manifest), `https://HOST/PATH/NAME` (when unlisted repositories are allowed),
    /// `git+https://HOST/PATH.git@DIR?ref=REF` (also `git+http://`, `git+ssh://`: the chart in
    /// directory `DIR` of the commit branch or tag `REF` points at, re-resolved every
    /// interval; no `ref`: the repository's default branch) or `file:PATH`.
    #[schemars(pattern(CHART), length(max = 512))]
    pub chart: String,

    /// Chart version: exact or a semver range. Default: the newest stable version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "version_schema")]
    pub version: Option<String>,

    /// `.Release.Name` of the render. Default: `metadata.name` (for an UpstartService child, the
    /// release key in kebab-case).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(DNS1123_LABEL), length(max = 53))]
    pub release_name: Option<String>,

    /// Inline Helm values; they win over `valuesFrom`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "optional_values_schema")]
    pub values: Option<serde_json::Value>,

    /// Values documents merged first, in order, from Secrets or ConfigMaps of the namespace.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values_from: Vec<ValuesReference>,

    /// Releases or services of the same namespace that must be Ready first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dependencies: Vec<Dependency>,

    /// Secrets and ConfigMaps this release publishes as its outputs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outputs_from: Vec<OutputSource>,

    /// Drift check and re-apply period (Go duration). Default `10m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(DURATION))]
    pub interval: Option<String>,

    /// How long to wait for health before Failed (Go duration). Default `10m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(DURATION))]
    pub timeout: Option<String>,

    /// Ready requires healthy workloads; `false`: applied is enough. Default `true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait: Option<bool>,

    /// Skip the chart's Helm hooks.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub disable_hooks: bool,

    /// Stop reconciling (nothing is applied or pruned) until unset.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub suspend: bool,

    /// A ServiceAccount of the release's namespace: the chart's objects are applied, read,
    /// pruned and deleted (hooks too) as that account, impersonated by the operator, so the
    /// chart can only do what the account's Roles allow there. Default: the operator's
    /// `--default-service-account`; neither: the operator's own rights.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(DNS1123_SUBDOMAIN), length(max = 253))]
    pub service_account_name: Option<String>,

    /// As a `helmReleases` entry of an UpstartService or UpstartEnvironment: `false`, or an
    /// expression over `environment.variables` that is `false` once substituted, leaves the
    /// release out (one that was created is torn down, dependents first). Default `true`.
    /// Ignored on a HelmRelease object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "super::jobs::switch_schema")]
    pub enabled: Option<super::jobs::Switch>,
}

impl HelmRelease {
    /// Whether its environment marked it asleep ([`crate::labels::ASLEEP_ANNOTATION`] is
    /// `"true"`): the environment operator sets the mark, the HelmRelease operator reads it.
    pub fn is_marked_asleep(&self) -> bool {
        self.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(crate::labels::ASLEEP_ANNOTATION))
            .map(String::as_str)
            == Some("true")
    }
}

impl HelmReleaseSpec {
    /// The drift-check period.
    pub fn interval(&self) -> Duration {
        self.interval
            .as_deref()
            .and_then(|d| parse_duration(d).ok())
            .unwrap_or(DEFAULT_INTERVAL)
    }

    /// The health timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
            .as_deref()
            .and_then(|d| parse_duration(d).ok())
            .unwrap_or(DEFAULT_TIMEOUT)
    }

    /// Whether Ready waits for healthy workloads.
    pub fn wait(&self) -> bool {
        self.wait.unwrap_or(true)
    }

    /// `.Release.Name` of the release of key `key` of an UpstartService or an environment
    /// (SPEC §3): `releaseName`, else the key in kebab-case, so chart object names such as
    /// `postgres` keep working.
    pub fn release_name_of_key(&self, key: &str) -> String {
        self.release_name
            .clone()
            .unwrap_or_else(|| crate::names::kebab_case(key))
    }

    /// `.Release.Name` of a HelmRelease object called `name` (SPEC §2.1): `releaseName`, else the
    /// object's name.
    pub fn release_name_of_object(&self, name: &str) -> String {
        self.release_name.clone().unwrap_or_else(|| name.to_owned())
    }
}

/// What the HelmRelease operator observed and did. Never holds a value: names, digests, reasons.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HelmReleaseStatus {
    /// The generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, `DependenciesReady`, `Reconciling`, `Stalled` (see `conditions`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// Where the release is in its life.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<HelmReleasePhase>,
    /// The resolved chart version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The digest (`sha256:...`) of the chart archive that was rendered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chart_digest: Option<String>,
    /// For a chart from an OCI registry: the digest (`sha256:...`) of the manifest it was read
    /// from. Its tag is resolved again every `interval`; a tag moved to another manifest
    /// re-renders and re-applies the release.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest_digest: Option<String>,
    /// For a chart from a git repository: the commit (40 hex digits) it was read from. Its
    /// branch or tag is resolved again every `interval`; a new commit re-renders and re-applies
    /// the release.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// The images `imageDigest` resolved for the last apply: each image as written in the
    /// values (`REGISTRY/REPOSITORY:TAG`) -> the digest it was pinned to (`sha256:...`).
    /// Resolved again every `interval`; a moved tag re-renders and re-applies the release.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub image_digests: std::collections::BTreeMap<String, String>,
    /// Digest of everything the last applied render depended on (chart, values, outputs, names).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_digest: Option<String>,
    /// The objects applied by the last successful apply, in apply order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inventory: Vec<InventoryEntry>,
    /// Names of the output keys this release currently publishes (never their values).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outputs: Vec<String>,
    /// Objects a prune or the deletion left in place because they carry
    /// `helm.sh/resource-policy: keep` (no longer part of the release).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kept: Vec<InventoryEntry>,
    /// Hooks of the last install, upgrade or deletion.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hooks: Vec<HookStatus>,
    /// The inputs digest (as `appliedDigest`) of the install or upgrade whose hooks `hooks`
    /// lists: a hook recorded there as Succeeded is not run again for the same inputs, even
    /// once its object is gone (`ttlSecondsAfterFinished: 0`) or the operator restarted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hooks_digest: Option<String>,
    /// When the release first waited, started applying and became Ready, for this generation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timings: Option<ReleaseTimings>,
    /// The last apply scaled the release's Deployments and StatefulSets to zero: its
    /// environment sleeps (the asleep annotation).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub asleep: bool,
}

/// Where a release is in its life.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum HelmReleasePhase {
    Pending,
    WaitingForDependencies,
    Installing,
    Upgrading,
    Ready,
    Failed,
    Deleting,
    Suspended,
}

impl HelmReleasePhase {
    /// Every phase, in life order (for metrics that report all phases).
    pub const ALL: [HelmReleasePhase; 8] = [
        HelmReleasePhase::Pending,
        HelmReleasePhase::WaitingForDependencies,
        HelmReleasePhase::Installing,
        HelmReleasePhase::Upgrading,
        HelmReleasePhase::Ready,
        HelmReleasePhase::Failed,
        HelmReleasePhase::Deleting,
        HelmReleasePhase::Suspended,
    ];

    /// The phase as written in status.
    pub fn as_str(&self) -> &'static str {
        match self {
            HelmReleasePhase::Pending => "Pending",
            HelmReleasePhase::WaitingForDependencies => "WaitingForDependencies",
            HelmReleasePhase::Installing => "Installing",
            HelmReleasePhase::Upgrading => "Upgrading",
            HelmReleasePhase::Ready => "Ready",
            HelmReleasePhase::Failed => "Failed",
            HelmReleasePhase::Deleting => "Deleting",
            HelmReleasePhase::Suspended => "Suspended",
        }
    }
}

impl crate::phase::Phase for HelmReleasePhase {
    const ALL: &'static [HelmReleasePhase] = &HelmReleasePhase::ALL;

    fn as_str(self) -> &'static str {
        HelmReleasePhase::as_str(&self)
    }
}

/// One applied object.
#[derive(
    Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub struct InventoryEntry {
    pub api_version: String,
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub name: String,
}

/// The outcome of one Helm hook.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HookStatus {
    /// `pre-install`, `post-install`, `pre-upgrade`, `post-upgrade`, `pre-delete`, `post-delete`.
    pub event: String,
    /// `Kind/name` of the hook object.
    pub object: String,
    /// `Running`, `Succeeded` or `Failed`.
    pub phase: String,
}

/// When this generation of the release moved through its life (for the critical path).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReleaseTimings {
    /// When the release was first seen for this generation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<Time>,
    /// When its dependencies were all Ready and it started applying.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Time>,
    /// When it became Ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_at: Option<Time>,
}
