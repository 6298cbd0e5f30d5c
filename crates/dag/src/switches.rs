//! Which releases, jobs and services a spec asks for (issue 19): `enabled` evaluated over
//! `environment.variables`, jobs turned into releases, and dependencies on what is left out
//! found. One function serves the environment operator, the service operator and the CLI.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;
use upstart_api::v1alpha1::{HelmReleaseSpec, JobSpec, Switch, with_jobs};

use crate::{EnvironmentInfo, Error, ExpressionContext, Expressions};

/// Whether `switch` (an `enabled` field, named `field` in errors) is on, its expressions read
/// against `environment` (none: a service outside an environment, where only literals work).
/// Unset is on.
pub fn is_enabled(
    switch: Option<&Switch>,
    field: &str,
    environment: Option<&EnvironmentInfo>,
) -> Result<bool, Error> {
    let text = match switch {
        None => return Ok(true),
        Some(Switch::Literal(on)) => return Ok(*on),
        Some(Switch::Expression(text)) => text,
        Some(Switch::Invalid(value)) => {
            return Err(Error::InvalidSwitch {
                field: field.to_owned(),
                found: format!("a {}", json_type(value)),
            });
        }
    };
    let context = ExpressionContext {
        environment: environment.cloned(),
        ..ExpressionContext::default()
    };
    let read = Expressions::new().substitute(Value::String(text.clone()), field, &context)?;
    match read.as_str().map(str::trim) {
        Some("true") => Ok(true),
        Some("false") => Ok(false),
        other => Err(Error::InvalidSwitch {
            field: field.to_owned(),
            found: format!("{:?}", shorten(other.unwrap_or_default())),
        }),
    }
}

/// The releases one spec asks for: its `helmReleases` and `jobs` with `enabled` evaluated
/// (the field written `{prefix}.helmReleases.KEY.enabled` / `{prefix}.jobs.KEY.enabled`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Switched {
    /// The releases to create, jobs among them ([`with_jobs`]), `enabled` cleared.
    pub releases: BTreeMap<String, HelmReleaseSpec>,
    /// The keys left out (disabled, or with a switch that could not be read).
    pub disabled: BTreeSet<String>,
    /// Switches that could not be read, jobs named like releases, and releases depending on
    /// a key left out (each a spec error; the release itself is still created, and waits).
    pub problems: Vec<Error>,
}

/// Evaluates the switches of `releases` and `jobs` against `environment` and expands the jobs;
/// `owner` names the releases in errors (`service/KEY`, or the key alone when empty).
pub fn switch_releases(
    releases: &BTreeMap<String, HelmReleaseSpec>,
    jobs: &BTreeMap<String, JobSpec>,
    prefix: &str,
    owner: &str,
    environment: Option<&EnvironmentInfo>,
) -> Switched {
    let mut out = Switched::default();
    let keep =
        |key: &str, switch: Option<&Switch>, field: String, out: &mut Switched| match is_enabled(
            switch,
            &field,
            environment,
        ) {
            Ok(true) => true,
            Ok(false) => {
                out.disabled.insert(key.to_owned());
                false
            }
            Err(error) => {
                out.disabled.insert(key.to_owned());
                out.problems.push(error);
                false
            }
        };
    let on_releases: BTreeMap<String, HelmReleaseSpec> = releases
        .iter()
        .filter(|(key, spec)| {
            let field = format!("{prefix}.helmReleases.{key}.enabled");
            keep(key, spec.enabled.as_ref(), field, &mut out)
        })
        .map(|(key, spec)| (key.clone(), spec.clone()))
        .collect();
    let on_jobs: BTreeMap<String, JobSpec> = jobs
        .iter()
        .filter(|(key, job)| {
            let field = format!("{prefix}.jobs.{key}.enabled");
            keep(key, job.enabled.as_ref(), field, &mut out)
        })
        .map(|(key, job)| (key.clone(), job.clone()))
        .collect();
    let mut all = match with_jobs(&on_releases, &on_jobs) {
        Ok(all) => all,
        Err(taken) => {
            out.problems.push(Error::NameConflict {
                kind: "HelmRelease",
                name: taken.key.clone(),
                first: format!("{prefix}.helmReleases.{}", taken.key),
                second: format!("{prefix}.jobs.{}", taken.key),
            });
            on_releases
        }
    };
    for (key, spec) in &mut all {
        spec.enabled = None;
        for dependency in &spec.dependencies {
            // A sibling key wins over objects of the namespace, as the service plan resolves it.
            if dependency.kind.is_none() && out.disabled.contains(&dependency.name) {
                out.problems.push(Error::DependsOnDisabled {
                    release: name_in(owner, key),
                    dependency: dependency.name.clone(),
                });
            }
        }
    }
    out.releases = all;
    out
}

/// The dependencies of `releases` (of `owner`) on anything in `disabled` that `matches`
/// (services, environment releases left out of an environment), as errors.
pub fn dependencies_on_disabled<'a>(
    releases: impl IntoIterator<Item = (&'a String, &'a HelmReleaseSpec)>,
    owner: &str,
    matches: impl Fn(&upstart_api::v1alpha1::Dependency) -> Option<String>,
) -> Vec<Error> {
    let mut problems = Vec::new();
    for (key, spec) in releases {
        for dependency in &spec.dependencies {
            if let Some(dependency) = matches(dependency) {
                problems.push(Error::DependsOnDisabled {
                    release: name_in(owner, key),
                    dependency,
                });
            }
        }
    }
    problems
}

/// Makes `release` (of a service in an environment) depend on the environment's releases
/// `keys` (its `pre` jobs), as `kind: EnvironmentRelease`, unless it names them already.
pub fn depend_on_environment_releases(release: &mut HelmReleaseSpec, keys: &[String]) {
    for key in keys {
        if !release.dependencies.iter().any(|d| d.alias() == key) {
            release
                .dependencies
                .push(upstart_api::v1alpha1::Dependency {
                    name: key.clone(),
                    kind: Some(upstart_api::v1alpha1::DependencyKind::EnvironmentRelease),
                    alias: None,
                });
        }
    }
}

/// Makes `release` (an environment's `post` job) depend on every service of `services`
/// (`kind: UpstartService`), unless it names one already.
pub fn depend_on_services(release: &mut HelmReleaseSpec, services: &[String]) {
    for service in services {
        if !release.dependencies.iter().any(|d| &d.name == service) {
            release
                .dependencies
                .push(upstart_api::v1alpha1::Dependency {
                    name: service.clone(),
                    kind: Some(upstart_api::v1alpha1::DependencyKind::UpstartService),
                    alias: None,
                });
        }
    }
}

/// Whether an environment of spec `environment` keeps `service`: its `enabled` read against
/// the environment's variables. One that cannot be read is kept, as the environment operator
/// keeps it (reported, nothing of it torn down).
pub fn keeps_service(
    environment: &upstart_api::v1alpha1::UpstartEnvironmentSpec,
    service: &upstart_api::v1alpha1::EnvironmentService,
) -> bool {
    let info = EnvironmentInfo {
        variables: environment.variables.clone(),
        ..EnvironmentInfo::default()
    };
    is_enabled(service.enabled.as_ref(), "enabled", Some(&info)).unwrap_or(true)
}

fn name_in(owner: &str, key: &str) -> String {
    if owner.is_empty() {
        key.to_owned()
    } else {
        format!("{owner}/{key}")
    }
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "mapping",
    }
}

fn shorten(text: &str) -> String {
    const MAX: usize = 40;
    if text.chars().count() <= MAX {
        text.to_owned()
    } else {
        format!("{}…", text.chars().take(MAX).collect::<String>())
    }
}

#[cfg(test)]
mod tests {
    use upstart_api::v1alpha1::{Dependency, JobWhen};

    use super::*;

    fn environment(variables: &[(&str, &str)]) -> EnvironmentInfo {
        EnvironmentInfo {
            name: "pr-1".into(),
            namespace: "pr-1".into(),
            variables: variables
                .iter()
                .map(|(k, v)| ((*k).into(), (*v).into()))
                .collect(),
        }
    }

    fn expression(text: &str) -> Option<Switch> {
        Some(Switch::Expression(text.into()))
    }

    fn release(switch: Option<Switch>, dependencies: &[&str]) -> HelmReleaseSpec {
        HelmReleaseSpec {
            chart: "repo/app".into(),
            enabled: switch,
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

    #[test]
    fn an_unset_or_literal_switch_needs_no_environment() {
        assert_eq!(is_enabled(None, "f", None), Ok(true));
        assert_eq!(
            is_enabled(Some(&Switch::Literal(false)), "f", None),
            Ok(false)
        );
    }

    #[test]
    fn an_expression_switch_reads_the_environment_variables() {
        let on = environment(&[("withSearch", "true")]);
        let off = environment(&[("withSearch", " false ")]);
        let switch = expression("<< environment.variables.withSearch >>");
        assert_eq!(is_enabled(switch.as_ref(), "f", Some(&on)), Ok(true));
        assert_eq!(is_enabled(switch.as_ref(), "f", Some(&off)), Ok(false));
    }

    #[test]
    fn a_switch_reading_neither_true_nor_false_is_a_spec_error_naming_the_field() {
        let env = environment(&[("withSearch", "yes")]);
        let switch = expression("<< environment.variables.withSearch >>");
        let error =
            is_enabled(switch.as_ref(), "spec.services[search].enabled", Some(&env)).unwrap_err();
        assert_eq!(error.reason(), crate::reasons::INVALID_SWITCH);
        assert!(upstart_failure::Classify::needs_spec_change(&error));
        assert_eq!(
            error.to_string(),
            "spec.services[search].enabled: enabled must be true, false or an expression over environment.variables that reads true or false; it reads \"yes\""
        );
        let number = is_enabled(Some(&Switch::Invalid(3.into())), "f", None).unwrap_err();
        assert!(
            number.to_string().ends_with("it reads a number"),
            "{number}"
        );
    }

    #[test]
    fn a_switch_naming_an_undefined_variable_says_which_exist() {
        let env = environment(&[("withSearch", "true")]);
        let switch = expression("<< environment.variables.withSerch >>");
        let error = is_enabled(switch.as_ref(), "f", Some(&env)).unwrap_err();
        assert_eq!(error.reason(), crate::reasons::UNKNOWN_VARIABLE);
    }

    #[test]
    fn disabled_releases_are_left_out_and_their_dependents_reported() {
        let releases = BTreeMap::from([
            (
                "search".into(),
                release(expression("<< environment.variables.withSearch >>"), &[]),
            ),
            ("api".into(), release(None, &["search"])),
            ("worker".into(), release(Some(Switch::Literal(true)), &[])),
        ]);
        let env = environment(&[("withSearch", "false")]);
        let switched = switch_releases(&releases, &BTreeMap::new(), "spec", "svc", Some(&env));
        assert_eq!(
            switched.releases.keys().collect::<Vec<_>>(),
            ["api", "worker"]
        );
        assert_eq!(switched.disabled, BTreeSet::from(["search".to_owned()]));
        assert_eq!(
            switched.problems,
            [Error::DependsOnDisabled {
                release: "svc/api".into(),
                dependency: "search".into()
            }]
        );
        assert!(switched.releases.values().all(|r| r.enabled.is_none()));

        let env = environment(&[("withSearch", "true")]);
        let switched = switch_releases(&releases, &BTreeMap::new(), "spec", "svc", Some(&env));
        assert_eq!(switched.releases.len(), 3);
        assert!(switched.problems.is_empty());
    }

    #[test]
    fn jobs_become_releases_ordered_by_when_and_a_disabled_job_is_left_out() {
        let releases = BTreeMap::from([("api".into(), release(None, &[]))]);
        let job = |when, switch| JobSpec {
            template: serde_json::json!({"spec": {"containers": []}}),
            when: Some(when),
            enabled: switch,
            ..JobSpec::default()
        };
        let jobs = BTreeMap::from([
            ("seed".into(), job(JobWhen::Pre, None)),
            (
                "smoke".into(),
                job(JobWhen::Post, Some(Switch::Literal(false))),
            ),
        ]);
        let switched = switch_releases(&releases, &jobs, "spec", "", None);
        assert_eq!(
            switched.releases.keys().collect::<Vec<_>>(),
            ["api", "seed"]
        );
        assert_eq!(switched.releases["api"].dependencies[0].name, "seed");
        assert!(switched.problems.is_empty());
    }

    #[test]
    fn a_job_named_like_a_release_is_a_name_conflict() {
        let releases = BTreeMap::from([("api".into(), release(None, &[]))]);
        let jobs = BTreeMap::from([("api".into(), JobSpec::default())]);
        let switched = switch_releases(&releases, &jobs, "spec", "", None);
        assert_eq!(switched.problems[0].reason(), crate::reasons::NAME_CONFLICT);
        assert_eq!(switched.releases.len(), 1);
    }
}
