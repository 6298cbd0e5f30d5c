//! Validation of catalog templates (SPEC §3): the graph inside the service (cycles, keys that
//! would share a child name or a `.Release.Name`) and every expression checked offline against
//! the declared dependencies, with `environment.*` and `service.*` available. Dependencies on
//! objects outside the service are not checked: the environment provides them. One rule for
//! the UpstartService operator (the `Valid` condition of a template) and the UpstartEnvironment
//! operator (an invalid template is never copied into an environment). Jobs are checked as
//! the releases they become.

use upstart_api::names::release_name_clashes;
use upstart_api::v1alpha1::UpstartServiceSpec;

use crate::{DependencyGraph, Expressions, GraphInput, OfflineContext, check_aliases};

/// Every problem of the template, as messages naming the release key and the problem; empty
/// when it is valid.
pub fn validate_template(
    name: &str,
    spec: &UpstartServiceSpec,
    expressions: &Expressions,
) -> Vec<String> {
    let mut problems = Vec::new();
    // Jobs are releases of the template; switches are read in each environment, so every key
    // is checked here, on or off.
    let expanded = match upstart_api::v1alpha1::with_jobs(&spec.helm_releases, &spec.jobs) {
        Ok(helm_releases) => UpstartServiceSpec {
            helm_releases,
            jobs: Default::default(),
        },
        Err(taken) => {
            problems.push(taken.to_string());
            spec.clone()
        }
    };
    let spec = &expanded;
    let mut input = GraphInput::new();
    input.add_service(name, spec);
    let graph = DependencyGraph::build(&input);
    for problem in graph.problems() {
        // Names outside the service are the environment's to provide.
        if !matches!(
            problem,
            crate::Error::UnknownDependency { .. } | crate::Error::UnknownEnvironmentRelease { .. }
        ) {
            problems.push(problem.to_string());
        }
    }
    for cycle in graph.ordering().cycles {
        problems.push(cycle.to_error().to_string());
    }
    let claims = spec
        .helm_releases
        .iter()
        .map(|(key, release)| (release.release_name_of_key(key), key.as_str()));
    for clash in release_name_clashes(claims) {
        problems.push(format!(
            "release {}: release name \"{}\" is also used by release {}",
            clash.later, clash.release_name, clash.first
        ));
    }
    for (key, release) in &spec.helm_releases {
        for error in check_aliases(&format!("release {key}"), &release.dependencies) {
            problems.push(error.to_string());
        }
        if let Some(values) = &release.values {
            let context = OfflineContext::from_dependencies(&release.dependencies, true, true);
            let report = expressions.check_offline(
                values,
                &format!("spec.helmReleases.{key}.values"),
                &context,
            );
            problems.extend(report.errors.iter().map(ToString::to_string));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn spec(releases: serde_json::Value) -> UpstartServiceSpec {
        serde_json::from_value(json!({"helmReleases": releases})).expect("valid spec")
    }

    fn validate(releases: serde_json::Value) -> Vec<String> {
        validate_template("example-service", &spec(releases), &Expressions::new())
    }

    #[test]
    fn a_job_of_a_template_is_checked_like_a_release() {
        let spec: UpstartServiceSpec = serde_json::from_value(json!({
            "helmReleases": {"api": {"chart": "c/api", "dependencies": [{"name": "seed"}]}},
            "jobs": {"seed": {
                "dependencies": [{"name": "api"}],
                "template": {"spec": {"containers": [{"name": "c", "image": "i",
                    "env": [{"name": "X", "value": "<< nothere.outputs.X >>"}]}]}}
            }}
        }))
        .expect("valid spec");
        let problems = validate_template("svc", &spec, &Expressions::new());
        assert!(
            problems.iter().any(|p| p.contains("dependency cycle")),
            "{problems:?}"
        );
        assert!(
            problems.iter().any(|p| p.contains("unknown name nothere")),
            "{problems:?}"
        );
    }

    #[test]
    fn template_with_external_dependencies_and_declared_expressions_is_valid() {
        let problems = validate(json!({
            "postgres": {"chart": "c/postgres"},
            "app": {
                "chart": "c/app",
                "dependencies": [
                    {"name": "postgres"},
                    {"name": "my-environment-name-launch-darkly", "kind": "HelmRelease"},
                    {"name": "another-upstart-service"}
                ],
                "values": {"env": {
                    "DB": "postgres://<< postgres.outputs.POSTGRES_USER >>@db",
                    "LD": "<< my-environment-name-launch-darkly.outputs.KEY >>",
                    "URL": "<< another-upstart-service.outputs.url >>",
                    "BRANCH": "<< environment.variables.branch >>",
                    "NAME": "<< service.name >>/<< release.name >>"
                }}
            }
        }));
        assert!(problems.is_empty(), "{problems:?}");
    }

    #[test]
    fn template_depending_on_an_environment_release_by_its_key_is_valid() {
        let problems = validate(json!({
            "app": {
                "chart": "c/app",
                "dependencies": [{"name": "launch-darkly", "kind": "EnvironmentRelease"}],
                "values": {"LD": "<< launch-darkly.outputs.KEY >>"}
            }
        }));
        assert!(problems.is_empty(), "{problems:?}");
    }

    #[test]
    fn expression_on_an_undeclared_dependency_names_the_release_and_the_name() {
        let problems = validate(json!({
            "postgres": {"chart": "c/postgres"},
            "app": {"chart": "c/app", "values": {"url": "<< postgres.outputs.URL >>"}}
        }));
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].contains("spec.helmReleases.app.values.url"),
            "{}",
            problems[0]
        );
        assert!(
            problems[0].contains("unknown name postgres"),
            "{}",
            problems[0]
        );
    }

    #[test]
    fn cycle_inside_the_template_is_invalid() {
        let problems = validate(json!({
            "a": {"chart": "c/a", "dependencies": [{"name": "b"}]},
            "b": {"chart": "c/b", "dependencies": [{"name": "a"}]}
        }));
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].starts_with("dependency cycle: "),
            "{}",
            problems[0]
        );
        assert!(problems[0].contains("example-service/a"));
    }

    #[test]
    fn expression_syntax_error_and_duplicate_release_names_are_reported() {
        let problems = validate(json!({
            "db": {"chart": "c/a", "releaseName": "postgres"},
            "postgres": {"chart": "c/b", "values": {"x": "<< postgres.outputs. >>"}}
        }));
        assert!(
            problems
                .iter()
                .any(|p| p.contains("release name \"postgres\"")),
            "{problems:?}"
        );
        assert!(
            problems
                .iter()
                .any(|p| p.contains("spec.helmReleases.postgres.values.x")),
            "{problems:?}"
        );
    }

    #[test]
    fn alias_hiding_a_built_in_root_is_invalid() {
        let problems = validate(json!({
            "environment": {"chart": "c/a"},
            "app": {"chart": "c/b", "dependencies": [{"name": "environment"}]}
        }));
        assert!(
            problems
                .iter()
                .any(|p| p.contains("release app") && p.contains("reserved")),
            "{problems:?}"
        );
    }
}
