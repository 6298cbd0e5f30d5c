//! Jobs and switches of a service or an environment (issue 19): a Job is a pod template run to
//! completion as one more node of the release graph, and `enabled` turns a release, a job or a
//! service on or off, literally or from an expression over `environment.variables`.
//!
//! A job becomes a release like any other (`JobSpec::as_release`, chart [`JOB_CHART`]), so the
//! machinery that orders, waits, substitutes, reports and deletes releases serves jobs too;
//! [`with_jobs`] is the one place that turns a spec's `helmReleases` and `jobs` into the
//! releases to create, `pre` and `post` made into ordinary dependencies.

use std::collections::BTreeMap;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

use super::helm_release::HelmReleaseSpec;
use super::references::Dependency;
use super::validation::DURATION;

/// The chart reference of a job's release: not a chart, the HelmRelease operator renders the
/// values (`template`, `backoffLimit`) into one `batch/v1` Job itself.
pub const JOB_CHART: &str = "builtin:job";

/// A Job run once its dependencies are Ready, again only when its substituted pod template
/// changes.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobSpec {
    /// The Job's pod template (`metadata`, `spec`, as in a Job's `spec.template`). Strings may
    /// hold `<< EXPR >>` expressions. `spec.restartPolicy` defaults to `Never`.
    #[schemars(schema_with = "pod_template_schema")]
    pub template: serde_json::Value,

    /// `pre`: every release of the service (of the environment: its releases and every
    /// service's) depends on the job. `post`: the job depends on every release (and, in an
    /// environment, every service). Neither: only `dependencies` order it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<JobWhen>,

    /// Releases, jobs or services of the namespace that must be Ready first (their outputs
    /// readable as `<< ALIAS.outputs.KEY >>`). A release depends on a job by naming it here.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dependencies: Vec<Dependency>,

    /// Retries before the Job fails. Default `0`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub backoff_limit: Option<i32>,

    /// How long the Job may take to complete before it is Failed (Go duration). Default `10m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(DURATION))]
    pub timeout: Option<String>,

    /// `false`, or an expression that is `false` after substitution, leaves the job out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "switch_schema")]
    pub enabled: Option<Switch>,
}

/// When a job runs relative to the releases beside it.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum JobWhen {
    // Before every release (documented on the field).
    Pre,
    // After every release.
    Post,
}

/// `enabled`: a literal `true`/`false`, or a string of `<< EXPR >>` expressions over
/// `environment.variables` that reads `true` or `false` once substituted.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(untagged)]
pub enum Switch {
    /// `true` or `false`.
    Literal(bool),
    /// E.g. `<< environment.variables.withSearch >>`.
    Expression(String),
    /// Anything else the schema let through (a number, a list): refused where it is evaluated,
    /// rather than making the whole object unreadable.
    Invalid(serde_json::Value),
}

impl JsonSchema for Switch {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Switch".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        switch_schema(generator)
    }
}

impl From<bool> for Switch {
    fn from(value: bool) -> Self {
        Switch::Literal(value)
    }
}

/// A bool or a string: a structural schema cannot say "one of two types" except for
/// int-or-string, so the field keeps any value and the operators refuse anything else
/// (`NeedsSpecChange`, naming the field).
pub(crate) fn switch_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "x-kubernetes-preserve-unknown-fields": true,
        "description": "`true`/`false`, or a string of `<< EXPR >>` expressions over `environment.variables` that reads `true` or `false` once substituted (e.g. `<< environment.variables.withSearch >>`). Default `true`."
    })
}

fn pod_template_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
        "description": "The Job's pod template (`metadata`, `spec`), as in a Job's `spec.template`. Strings may hold `<< EXPR >>` expressions; `spec.restartPolicy` defaults to `Never`."
    })
}

impl JobSpec {
    /// The release that runs this job: chart [`JOB_CHART`], the pod template (with
    /// `restartPolicy: Never` unless it sets one) and `backoffLimit` as its values, its
    /// dependencies, timeout and switch. `when` is not part of it: [`with_jobs`] turns it into
    /// dependencies.
    pub fn as_release(&self) -> HelmReleaseSpec {
        let mut template = self.template.clone();
        if let Some(spec) = template.get_mut("spec").and_then(|s| s.as_object_mut()) {
            spec.entry("restartPolicy")
                .or_insert_with(|| serde_json::Value::from("Never"));
        }
        HelmReleaseSpec {
            chart: JOB_CHART.to_owned(),
            values: Some(serde_json::json!({
                "template": template,
                "backoffLimit": self.backoff_limit.unwrap_or(0),
            })),
            dependencies: self.dependencies.clone(),
            timeout: self.timeout.clone(),
            enabled: self.enabled.clone(),
            ..HelmReleaseSpec::default()
        }
    }
}

/// A job named like a release of the same spec: the two would be one child.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "job {key} has the name of a release of the same spec (helmReleases.{key}): rename one of them"
)]
pub struct JobNameTaken {
    /// The key both use.
    pub key: String,
}

/// The releases to create for `releases` and `jobs` (one spec's, switches already applied):
/// every release, every job as [`JobSpec::as_release`]; a `pre` job becomes a dependency of
/// every release, and every release a dependency of a `post` job (jobs of neither kind keep
/// only their own dependencies). `is_job` of the result says which keys are jobs.
pub fn with_jobs(
    releases: &BTreeMap<String, HelmReleaseSpec>,
    jobs: &BTreeMap<String, JobSpec>,
) -> Result<BTreeMap<String, HelmReleaseSpec>, JobNameTaken> {
    let mut all = releases.clone();
    for (key, job) in jobs {
        if all.contains_key(key) {
            return Err(JobNameTaken { key: key.clone() });
        }
        let mut release = job.as_release();
        if job.when == Some(JobWhen::Post) {
            for name in releases.keys() {
                add_dependency(&mut release.dependencies, name);
            }
        }
        all.insert(key.clone(), release);
    }
    for (key, job) in jobs {
        if job.when != Some(JobWhen::Pre) {
            continue;
        }
        for name in releases.keys() {
            if let Some(release) = all.get_mut(name) {
                add_dependency(&mut release.dependencies, key);
            }
        }
    }
    Ok(all)
}

/// Whether a release spec is a job's ([`JobSpec::as_release`]).
pub fn is_job(release: &HelmReleaseSpec) -> bool {
    release.chart == JOB_CHART
}

/// Adds a dependency on the sibling `name` unless one already names it.
fn add_dependency(dependencies: &mut Vec<Dependency>, name: &str) {
    if !dependencies.iter().any(|d| d.name == name) {
        dependencies.push(Dependency {
            name: name.to_owned(),
            kind: None,
            alias: None,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn release(dependencies: &[&str]) -> HelmReleaseSpec {
        HelmReleaseSpec {
            chart: "repo/app".into(),
            dependencies: dependencies
                .iter()
                .map(|n| Dependency {
                    name: (*n).into(),
                    kind: None,
                    alias: None,
                })
                .collect(),
            ..HelmReleaseSpec::default()
        }
    }

    fn job(when: Option<JobWhen>) -> JobSpec {
        JobSpec {
            template: serde_json::json!({"spec": {"containers": [{"name": "c", "image": "busybox"}]}}),
            when,
            ..JobSpec::default()
        }
    }

    fn names(spec: &HelmReleaseSpec) -> Vec<&str> {
        spec.dependencies.iter().map(|d| d.name.as_str()).collect()
    }

    #[test]
    fn a_pre_job_is_a_dependency_of_every_release_and_a_post_job_depends_on_every_release() {
        let releases = BTreeMap::from([
            ("db".into(), release(&[])),
            ("api".into(), release(&["db"])),
        ]);
        let jobs = BTreeMap::from([
            ("seed".into(), job(Some(JobWhen::Pre))),
            ("smoke".into(), job(Some(JobWhen::Post))),
        ]);
        let all = with_jobs(&releases, &jobs).unwrap();
        assert_eq!(names(&all["db"]), ["seed"]);
        assert_eq!(names(&all["api"]), ["db", "seed"]);
        assert_eq!(names(&all["smoke"]), ["api", "db"]);
        assert!(names(&all["seed"]).is_empty());
        assert!(is_job(&all["seed"]) && !is_job(&all["db"]));
    }

    #[test]
    fn a_job_without_when_keeps_only_its_own_dependencies() {
        let releases = BTreeMap::from([("api".into(), release(&["migrate"]))]);
        let mut migrate = job(None);
        migrate.dependencies = release(&["db"]).dependencies;
        let all = with_jobs(&releases, &BTreeMap::from([("migrate".into(), migrate)])).unwrap();
        assert_eq!(names(&all["migrate"]), ["db"]);
        assert_eq!(names(&all["api"]), ["migrate"]);
    }

    #[test]
    fn a_job_named_like_a_release_is_refused() {
        let releases = BTreeMap::from([("api".into(), release(&[]))]);
        let error = with_jobs(&releases, &BTreeMap::from([("api".into(), job(None))])).unwrap_err();
        assert_eq!(error.key, "api");
    }

    #[test]
    fn a_job_release_defaults_restart_policy_to_never_and_keeps_one_set() {
        let values = job(None).as_release().values.unwrap();
        assert_eq!(values["template"]["spec"]["restartPolicy"], "Never");
        assert_eq!(values["backoffLimit"], 0);
        let mut on_failure = job(None);
        on_failure.template["spec"]["restartPolicy"] = "OnFailure".into();
        let values = on_failure.as_release().values.unwrap();
        assert_eq!(values["template"]["spec"]["restartPolicy"], "OnFailure");
    }

    #[test]
    fn a_switch_reads_a_bool_or_a_string() {
        let literal: Switch = serde_json::from_str("false").unwrap();
        assert_eq!(literal, Switch::Literal(false));
        let expression: Switch =
            serde_json::from_str("\"<< environment.variables.withSearch >>\"").unwrap();
        assert!(matches!(expression, Switch::Expression(_)));
        let number: Switch = serde_json::from_str("3").unwrap();
        assert_eq!(number, Switch::Invalid(3.into()));
    }
}
