//! UpstartService (SPEC §3): a squad's microservice described once, as a set of releases.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::helm_release::HelmReleaseSpec;

/// The releases of one microservice; each key becomes a child HelmRelease.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "upstartoperators.upstart.com",
    version = "v1alpha1",
    kind = "UpstartService",
    plural = "upstartservices",
    shortname = "usvc",
    category = "upstart",
    namespaced,
    status = "UpstartServiceStatus",
    derive = "PartialEq",
    doc = "A microservice described once: its Helm releases, their dependencies and the outputs they publish.",
    printcolumn = r#"{"name":"Releases","type":"string","jsonPath":".status.releases"}"#,
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct UpstartServiceSpec {
    /// Release key -> HelmRelease spec. Keys are referenced by sibling `dependencies` and become
    /// child names `<service>-<key in kebab-case>`.
    #[schemars(
        extend("minProperties" = 1, "maxProperties" = 100),
        extend("x-kubernetes-validations" = [{
            "rule": "self.all(k, k.matches('^[A-Za-z]([-A-Za-z0-9]*[A-Za-z0-9])?$') && k.size() <= 63)",
            "message": "release keys must start with a letter, hold only letters, digits and '-', end with a letter or digit, and be at most 63 characters"
        }])
    )]
    pub helm_releases: BTreeMap<String, HelmReleaseSpec>,

    /// Job name -> a Job run as one more node of the service's graph (child named
    /// `<service>-<name in kebab-case>`): `when: pre` runs it before every release, `post` after
    /// all of them, or `dependencies` order it; a release depends on it by naming it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("x-kubernetes-validations" = [{
        "rule": "self.all(k, k.matches('^[A-Za-z]([-A-Za-z0-9]*[A-Za-z0-9])?$') && k.size() <= 63)",
        "message": "job names must start with a letter, hold only letters, digits and '-', end with a letter or digit, and be at most 63 characters"
    }]))]
    pub jobs: BTreeMap<String, super::jobs::JobSpec>,
}

/// What the UpstartService operator observed. Names and reasons only, never values.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpstartServiceStatus {
    /// The generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, `DependenciesResolved`, `Valid` (catalog templates), `Reconciling`, `Stalled`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// Where the service is in its life.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<ServicePhase>,
    /// `ready/total`, for `kubectl get`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub releases: Option<String>,
    /// Child releases that are Ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_releases: Option<i32>,
    /// Child releases in all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_releases: Option<i32>,
    /// Per release key: the child and where it is.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub release_statuses: BTreeMap<String, ReleaseSummary>,
    /// Names of the output keys the service exports (its releases' `scope: external` outputs).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exported_outputs: Vec<String>,
    /// The release key currently holding the service back, and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocked_by: Option<String>,
    /// When every release was first Ready for this generation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_at: Option<Time>,
}

/// One child release as the service sees it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReleaseSummary {
    /// The child HelmRelease's name.
    pub name: String,
    /// Its phase (`HelmReleasePhase`), or `Pending` before it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// Its `Ready` condition's message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Whether it is Ready for its current generation.
    #[serde(default)]
    pub ready: bool,
}

/// The phases of an UpstartService.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum ServicePhase {
    /// Nothing created yet.
    Pending,
    /// Children are being installed.
    Provisioning,
    /// Every child is Ready.
    Ready,
    /// It was Ready and a child no longer is.
    Degraded,
    /// A spec error or a failed child.
    Failed,
    /// Its children are being torn down.
    Deleting,
    /// A valid catalog template: never deployed.
    Template,
    /// A catalog template with problems (its `Valid` condition names them): environments that
    /// use it get what it says, so fix it first.
    Invalid,
}

impl ServicePhase {
    /// Every phase, in life order (for metrics that report all phases).
    pub const ALL: [ServicePhase; 8] = [
        ServicePhase::Pending,
        ServicePhase::Provisioning,
        ServicePhase::Ready,
        ServicePhase::Degraded,
        ServicePhase::Failed,
        ServicePhase::Deleting,
        ServicePhase::Template,
        ServicePhase::Invalid,
    ];

    /// The phase as written in status.
    pub fn as_str(&self) -> &'static str {
        match self {
            ServicePhase::Pending => "Pending",
            ServicePhase::Provisioning => "Provisioning",
            ServicePhase::Ready => "Ready",
            ServicePhase::Degraded => "Degraded",
            ServicePhase::Failed => "Failed",
            ServicePhase::Deleting => "Deleting",
            ServicePhase::Template => "Template",
            ServicePhase::Invalid => "Invalid",
        }
    }
}

impl crate::phase::Phase for ServicePhase {
    const ALL: &'static [ServicePhase] = &ServicePhase::ALL;

    fn as_str(self) -> &'static str {
        ServicePhase::as_str(&self)
    }
}
