//! `spec.sleep` and `spec.quota` of an UpstartEnvironment: when its workloads sleep (scaled to
//! zero) and what its namespace may use.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Five cron fields (minute hour day-of-month month day-of-week), as the schema checks them
/// (the operator parses them fully).
pub const CRON: &str = r"^\s*\S+(\s+\S+){4}\s*$";
/// An IANA time zone name (`Europe/Paris`, `UTC`), as the schema checks it.
pub const TIME_ZONE: &str = r"^[A-Za-z][-+_/A-Za-z0-9]*$";

/// When the environment's Deployments and StatefulSets sleep (scaled to zero) and wake.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SleepSpec {
    /// Sleep and wake times, repeating.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<SleepSchedule>,
    /// The manual switch (`upstart env sleep` / `upstart env wake` set it). It wins until the
    /// next scheduled transition after `since`; then the schedule rules again. Without
    /// `since`, or without a schedule, it wins until it is removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manual: Option<ManualSleep>,
    /// HelmReleases that never sleep, by name (`kubectl get uhr`) or by release key (the key in
    /// the service's `helmReleases`, e.g. `postgres`): their workloads keep their replicas.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100))]
    pub exclude_releases: Vec<String>,
}

/// A repeating sleep/wake schedule: two cron expressions in one time zone.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SleepSchedule {
    /// When to sleep: a five-field cron expression (`0 20 * * 1-5`: 20:00 on weekdays).
    #[schemars(pattern(CRON), length(max = 200))]
    pub sleep: String,
    /// When to wake: a five-field cron expression (`0 7 * * 1-5`).
    #[schemars(pattern(CRON), length(max = 200))]
    pub wake: String,
    /// The IANA time zone both are read in (`Europe/Paris`). Default `UTC`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(TIME_ZONE), length(max = 64))]
    pub time_zone: Option<String>,
}

/// The manual switch of [`SleepSpec`].
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ManualSleep {
    /// `true`: asleep; `false`: awake.
    pub asleep: bool,
    /// When it was set: a scheduled transition after this time ends it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<Time>,
}

/// Whether the environment sleeps now, and why.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SleepStatus {
    /// Its workloads are scaled to zero (the excluded releases' aside).
    pub asleep: bool,
    /// `manual` (the switch decides) or `schedule`.
    pub by: String,
    /// The next scheduled transition (absent without a schedule).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_transition: Option<Time>,
}

/// What the environment's namespace may use: a ResourceQuota and a LimitRange created in it.
/// Absent fields take the operator's defaults (`--default-quota`, `--default-container-*`);
/// a value above the operator's maximum (`--max-quota`) is refused.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct QuotaSpec {
    /// The ResourceQuota's `hard` (`requests.cpu: "4"`, `limits.memory: 8Gi`, `pods: "30"`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub hard: BTreeMap<String, String>,
    /// The LimitRange's `defaultRequest` for a container that sets none (`cpu: 100m`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub container_requests: BTreeMap<String, String>,
    /// The LimitRange's `default` limits for a container that sets none (`memory: 512Mi`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub container_limits: BTreeMap<String, String>,
}
