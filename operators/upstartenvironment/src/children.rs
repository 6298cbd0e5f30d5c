//! The objects an environment wants, built by pure functions: its namespace, one UpstartService
//! per enabled service (a catalog template or an inline spec, with overrides deep-merged) and
//! one HelmRelease per environment-wide release. Spec problems (a missing template, an override
//! of an unknown key) are reported, never half-built.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::{Resource, ResourceExt};
use upstart_api::labels::{ENVIRONMENT_LABEL, MANAGED_BY_LABEL, MANAGED_BY_VALUE};
use upstart_api::names::child_name;
use upstart_api::v1alpha1::{
    Dependency, DependencyKind, EnvironmentService, HelmRelease, HelmReleaseSpec,
    UpstartEnvironment, UpstartService, UpstartServiceSpec,
};
use upstart_dag::release_values;

use crate::constants::reasons;

/// The namespace of an environment: `spec.namespace`, default `metadata.name`.
pub fn namespace_name(env: &UpstartEnvironment) -> String {
    upstart_api::names::environment_namespace(&env.name_any(), env.spec.namespace.as_deref())
}

/// A spec problem of one service: only a spec change (or a new catalog template) fixes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The service's name in `spec.services`.
    pub service: String,
    /// A bounded reason (`TemplateNotFound`, `UnknownOverrideKey`, `InvalidOverride`).
    pub reason: &'static str,
    /// What is wrong, naming the service and the key; never a value.
    pub message: String,
}

/// Everything the environment wants to exist in its namespace.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Desired {
    /// UpstartServices to apply, in spec order.
    pub services: Vec<UpstartService>,
    /// Environment-wide HelmReleases to apply, by key order.
    pub releases: Vec<HelmRelease>,
    /// Problems of services that are therefore not applied (what runs of them keeps running).
    pub problems: Vec<Problem>,
    /// Names of every enabled service (applied or with a problem): the ones not to delete.
    pub kept_services: BTreeSet<String>,
}

impl Desired {
    /// The names of every HelmRelease the environment will have once its services have created
    /// their children.
    pub fn expected_releases(&self) -> BTreeSet<String> {
        let mut names: BTreeSet<String> = self.releases.iter().map(|r| r.name_any()).collect();
        for service in &self.services {
            let name = service.name_any();
            names.extend(
                service
                    .spec
                    .helm_releases
                    .keys()
                    .map(|key| child_name(&name, key)),
            );
        }
        names
    }
}

/// The owner reference every child of the environment carries: deleting the environment
/// deletes them (garbage collection), and wake-ups find the environment through it.
pub fn owner_reference(env: &UpstartEnvironment) -> Option<OwnerReference> {
    env.controller_owner_ref(&())
}

fn labels(env: &UpstartEnvironment) -> BTreeMap<String, String> {
    BTreeMap::from([
        (ENVIRONMENT_LABEL.to_owned(), env.name_any()),
        (MANAGED_BY_LABEL.to_owned(), MANAGED_BY_VALUE.to_owned()),
    ])
}

fn child_meta(env: &UpstartEnvironment, name: String, namespace: Option<String>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace,
        labels: Some(labels(env)),
        owner_references: owner_reference(env).map(|o| vec![o]),
        ..ObjectMeta::default()
    }
}

/// The environment's namespace: labelled with the environment and owned by it.
pub fn build_namespace(env: &UpstartEnvironment) -> Namespace {
    Namespace {
        metadata: child_meta(env, namespace_name(env), None),
        ..Namespace::default()
    }
}

/// Who a live namespace belongs to, as far as this environment is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NamespaceState {
    /// It does not exist (yet).
    Missing,
    /// It exists and is owned by this environment.
    Owned,
    /// It is owned by this environment and being deleted (by someone else, or by the teardown).
    Terminating,
    /// It exists and is not this environment's: refused, never adopted, never deleted.
    Foreign,
}

/// Classifies a live namespace by its owner references: only an owner with this environment's
/// uid makes it ours (a namespace of the same name from another, or no, owner is foreign).
pub fn namespace_state(live: Option<&Namespace>, env_uid: &str) -> NamespaceState {
    let Some(live) = live else {
        return NamespaceState::Missing;
    };
    if !is_owned_by(&live.metadata, env_uid) {
        return NamespaceState::Foreign;
    }
    if live.metadata.deletion_timestamp.is_some() {
        NamespaceState::Terminating
    } else {
        NamespaceState::Owned
    }
}

/// Whether an object has an owner reference with this uid.
pub fn is_owned_by(meta: &ObjectMeta, uid: &str) -> bool {
    meta.owner_references.iter().flatten().any(|o| o.uid == uid)
}

/// Builds every child of `env`. `templates` holds the catalog's UpstartService specs by name.
pub fn desired(
    env: &UpstartEnvironment,
    templates: &BTreeMap<String, UpstartServiceSpec>,
) -> Desired {
    let namespace = namespace_name(env);
    let mut out = Desired::default();
    let env_name = env.name_any();
    for service in env.spec.services.iter().filter(|s| s.enabled()) {
        out.kept_services.insert(service.name.clone());
        match service_spec(service, templates) {
            Ok(mut spec) => out.services.push(UpstartService {
                spec: {
                    resolve_environment_releases(&env_name, spec.helm_releases.values_mut());
                    spec
                },
                metadata: child_meta(env, service.name.clone(), Some(namespace.clone())),
                status: None,
            }),
            Err(problems) => out.problems.extend(problems),
        }
    }
    for (key, spec) in &env.spec.helm_releases {
        out.releases.push(HelmRelease {
            metadata: child_meta(env, child_name(&env_name, key), Some(namespace.clone())),
            spec: environment_release_spec(&env_name, key, spec, &env.spec.helm_releases),
            status: None,
        });
    }
    out
}

/// The spec of one service: its template's (or inline) spec with the overrides applied. Every
/// problem of the service is reported at once.
pub fn service_spec(
    service: &EnvironmentService,
    templates: &BTreeMap<String, UpstartServiceSpec>,
) -> Result<UpstartServiceSpec, Vec<Problem>> {
    let problem = |reason, message: String| Problem {
        service: service.name.clone(),
        reason,
        message,
    };
    let mut spec = match (&service.spec, &service.template) {
        (Some(spec), _) => spec.clone(),
        (None, Some(template)) => match templates.get(&template.name) {
            Some(spec) => spec.clone(),
            None => {
                return Err(vec![problem(
                    reasons::TEMPLATE_NOT_FOUND,
                    format!(
                        "service {}: template {} does not exist in the catalog",
                        service.name, template.name
                    ),
                )]);
            }
        },
        // The schema refuses this; an object stored before the rule existed still gets a
        // clear message.
        (None, None) => {
            return Err(vec![problem(
                reasons::TEMPLATE_NOT_FOUND,
                format!("service {}: neither template nor spec is set", service.name),
            )]);
        }
    };
    let mut problems = Vec::new();
    for (key, release_override) in &service.overrides {
        let Some(release) = spec.helm_releases.get_mut(key) else {
            let known: Vec<&str> = spec.helm_releases.keys().map(String::as_str).collect();
            problems.push(problem(
                reasons::UNKNOWN_OVERRIDE_KEY,
                format!(
                    "service {}: override of unknown release key {key} (known keys: {})",
                    service.name,
                    known.join(", ")
                ),
            ));
            continue;
        };
        if let Some(chart) = &release_override.chart {
            release.chart = chart.clone();
        }
        if let Some(version) = &release_override.version {
            release.version = Some(version.clone());
        }
        if release_override.values.is_some() {
            let base = release
                .values
                .clone()
                .unwrap_or_else(|| serde_json::Value::Object(Default::default()));
            match release_values(
                [(format!("the values of {key}"), base)],
                release_override.values.as_ref(),
            ) {
                Ok(merged) => release.values = Some(merged),
                Err(error) => problems.push(problem(
                    reasons::INVALID_OVERRIDE,
                    format!("service {}: override of {key}: {error}", service.name),
                )),
            }
        }
    }
    if problems.is_empty() {
        Ok(spec)
    } else {
        Err(problems)
    }
}

/// `EnvironmentRelease` dependencies made concrete: the HelmRelease `<environment>-<key>`,
/// the key kept as the alias, so one catalog template works in every environment.
fn resolve_environment_releases<'a>(
    env_name: &str,
    releases: impl Iterator<Item = &'a mut HelmReleaseSpec>,
) {
    for release in releases {
        for dependency in &mut release.dependencies {
            *dependency = dependency.in_environment(Some(env_name));
        }
    }
}

/// An environment-wide release: `releaseName` defaults to the key in kebab-case (so chart
/// resource names stay short), and a dependency naming a sibling key is made concrete (the
/// sibling's object name, with the key kept as the alias expressions use).
pub fn environment_release_spec(
    env_name: &str,
    key: &str,
    spec: &HelmReleaseSpec,
    siblings: &BTreeMap<String, HelmReleaseSpec>,
) -> HelmReleaseSpec {
    let mut spec = spec.clone();
    spec.release_name = Some(spec.release_name_of_key(key));
    resolve_environment_releases(env_name, std::iter::once(&mut spec));
    for dependency in &mut spec.dependencies {
        if dependency.kind != Some(DependencyKind::UpstartService)
            && siblings.contains_key(&dependency.name)
        {
            *dependency = Dependency {
                alias: Some(dependency.alias().to_owned()),
                name: child_name(env_name, &dependency.name),
                kind: Some(DependencyKind::HelmRelease),
            };
        }
    }
    spec
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn env(spec: serde_json::Value) -> UpstartEnvironment {
        serde_json::from_value(json!({
            "apiVersion": "upstartoperators.upstart.com/v1alpha1",
            "kind": "UpstartEnvironment",
            "metadata": {"name": "pr-1", "uid": "uid-1"},
            "spec": spec,
        }))
        .expect("valid environment")
    }

    fn template() -> UpstartServiceSpec {
        serde_json::from_value(json!({"helmReleases": {
            "postgres": {"chart": "repo/postgres", "version": "0.1.3"},
            "exampleService": {
                "chart": "repo/example-service",
                "version": "^0.1",
                "dependencies": [{"name": "postgres"}],
                "values": {"image": {"repository": "app", "tag": "main"}, "replicas": 1}
            }
        }}))
        .expect("valid spec")
    }

    fn catalog() -> BTreeMap<String, UpstartServiceSpec> {
        BTreeMap::from([("example-service".to_owned(), template())])
    }

    #[test]
    fn namespace_defaults_to_the_environment_name_and_is_labelled_and_owned() {
        let e = env(json!({}));
        let ns = build_namespace(&e);
        assert_eq!(ns.metadata.name.as_deref(), Some("pr-1"));
        let labels = ns.metadata.labels.expect("labels");
        assert_eq!(labels[ENVIRONMENT_LABEL], "pr-1");
        assert_eq!(labels[MANAGED_BY_LABEL], MANAGED_BY_VALUE);
        let owner = &ns.metadata.owner_references.expect("owner")[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str()),
            ("UpstartEnvironment", "uid-1")
        );
        assert_eq!(namespace_name(&env(json!({"namespace": "other"}))), "other");
    }

    #[test]
    fn environment_release_dependencies_of_a_template_name_this_environments_release() {
        let mut catalog = catalog();
        catalog
            .get_mut("example-service")
            .expect("template")
            .helm_releases
            .get_mut("exampleService")
            .expect("key")
            .dependencies
            .push(Dependency {
                name: "launch-darkly".into(),
                kind: Some(DependencyKind::EnvironmentRelease),
                alias: None,
            });
        let e = env(json!({
            "helmReleases": {
                "launch-darkly": {"chart": "repo/ld"},
                "flags": {"chart": "repo/flags", "dependencies": [{"name": "launch-darkly", "kind": "EnvironmentRelease"}]}
            },
            "services": [{"name": "example-service", "template": {"name": "example-service"}}]
        }));
        let d = desired(&e, &catalog);
        let concrete = Dependency {
            name: "pr-1-launch-darkly".into(),
            kind: Some(DependencyKind::HelmRelease),
            alias: Some("launch-darkly".into()),
        };
        let app = &d.services[0].spec.helm_releases["exampleService"];
        assert_eq!(app.dependencies.last(), Some(&concrete));
        let flags = d.releases.iter().find(|r| r.name_any() == "pr-1-flags");
        assert_eq!(flags.expect("flags").spec.dependencies, [concrete]);
    }

    #[test]
    fn namespace_of_another_owner_or_none_is_foreign() {
        let e = env(json!({}));
        let mut ns = build_namespace(&e);
        assert_eq!(namespace_state(Some(&ns), "uid-1"), NamespaceState::Owned);
        assert_eq!(namespace_state(Some(&ns), "uid-2"), NamespaceState::Foreign);
        assert_eq!(namespace_state(None, "uid-1"), NamespaceState::Missing);
        ns.metadata.owner_references = None;
        assert_eq!(namespace_state(Some(&ns), "uid-1"), NamespaceState::Foreign);
    }

    #[test]
    fn template_service_gets_its_overrides_deep_merged_into_one_release_only() {
        let e = env(json!({"services": [{
            "name": "example-service",
            "template": {"name": "example-service"},
            "overrides": {"exampleService": {"version": "0.2.0", "values": {"image": {"tag": "pr-1"}}}}
        }]}));
        let d = desired(&e, &catalog());
        assert!(d.problems.is_empty(), "{:?}", d.problems);
        let service = &d.services[0];
        assert_eq!(service.metadata.namespace.as_deref(), Some("pr-1"));
        assert_eq!(service.labels()[ENVIRONMENT_LABEL], "pr-1");
        assert_eq!(service.owner_references()[0].uid, "uid-1");
        let app = &service.spec.helm_releases["exampleService"];
        assert_eq!(
            app.values,
            Some(json!({"image": {"repository": "app", "tag": "pr-1"}, "replicas": 1}))
        );
        assert_eq!(app.version.as_deref(), Some("0.2.0"));
        assert_eq!(app.chart, "repo/example-service");
        assert_eq!(
            service.spec.helm_releases["postgres"],
            template().helm_releases["postgres"]
        );
    }

    #[test]
    fn override_chart_replaces_and_values_apply_to_a_release_without_values() {
        let e = env(json!({"services": [{
            "name": "db",
            "template": {"name": "example-service"},
            "overrides": {"postgres": {"chart": "repo/postgres-fast", "values": {"size": "small"}}}
        }]}));
        let d = desired(&e, &catalog());
        let postgres = &d.services[0].spec.helm_releases["postgres"];
        assert_eq!(postgres.chart, "repo/postgres-fast");
        assert_eq!(postgres.values, Some(json!({"size": "small"})));
    }

    #[test]
    fn inline_service_is_used_as_written_and_disabled_services_are_skipped() {
        let e = env(json!({"services": [
            {"name": "inline", "spec": {"helmReleases": {"cache": {"chart": "repo/redis"}}}},
            {"name": "off", "template": {"name": "example-service"}, "enabled": false}
        ]}));
        let d = desired(&e, &catalog());
        assert_eq!(d.services.len(), 1);
        assert_eq!(d.services[0].name_any(), "inline");
        assert_eq!(
            d.services[0].spec.helm_releases["cache"].chart,
            "repo/redis"
        );
        assert_eq!(d.kept_services, BTreeSet::from(["inline".to_owned()]));
    }

    #[test]
    fn missing_template_is_a_problem_naming_service_and_template_and_nothing_is_built() {
        let e = env(json!({"services": [
            {"name": "svc", "template": {"name": "nope"}},
            {"name": "fine", "template": {"name": "example-service"}}
        ]}));
        let d = desired(&e, &catalog());
        assert_eq!(d.services.len(), 1);
        assert_eq!(d.services[0].name_any(), "fine");
        assert_eq!(d.problems.len(), 1);
        assert_eq!(d.problems[0].reason, reasons::TEMPLATE_NOT_FOUND);
        assert!(d.problems[0].message.contains("svc"));
        assert!(d.problems[0].message.contains("nope"));
        assert!(d.kept_services.contains("svc"), "what runs of it is kept");
    }

    #[test]
    fn override_of_an_unknown_key_names_the_key_and_the_known_ones() {
        let e = env(json!({"services": [{
            "name": "svc",
            "template": {"name": "example-service"},
            "overrides": {"exampelService": {"values": {"secret": "hunter2"}}}
        }]}));
        let d = desired(&e, &catalog());
        assert!(d.services.is_empty());
        let problem = &d.problems[0];
        assert_eq!(problem.reason, reasons::UNKNOWN_OVERRIDE_KEY);
        assert!(
            problem.message.contains("exampelService"),
            "{}",
            problem.message
        );
        assert!(problem.message.contains("exampleService, postgres"));
        assert!(!problem.message.contains("hunter2"));
    }

    #[test]
    fn environment_releases_are_named_after_the_environment_with_a_kebab_release_name() {
        let e = env(json!({"helmReleases": {
            "launch-darkly": {"chart": "repo/ld"},
            "featureFlags": {"chart": "repo/ff", "releaseName": "flags",
                             "dependencies": [{"name": "launch-darkly"}, {"name": "example-service"}]}
        }}));
        let d = desired(&e, &catalog());
        let names: Vec<String> = d.releases.iter().map(|r| r.name_any()).collect();
        assert_eq!(names, ["pr-1-feature-flags", "pr-1-launch-darkly"]);
        let ld = &d.releases[1];
        assert_eq!(ld.spec.release_name.as_deref(), Some("launch-darkly"));
        assert_eq!(ld.labels()[ENVIRONMENT_LABEL], "pr-1");
        assert_eq!(ld.owner_references()[0].uid, "uid-1");
        let ff = &d.releases[0];
        assert_eq!(ff.spec.release_name.as_deref(), Some("flags"));
        assert_eq!(
            ff.spec.dependencies[0],
            Dependency {
                name: "pr-1-launch-darkly".into(),
                kind: Some(DependencyKind::HelmRelease),
                alias: Some("launch-darkly".into()),
            }
        );
        assert_eq!(ff.spec.dependencies[1].name, "example-service");
        assert_eq!(ff.spec.dependencies[1].kind, None);
    }

    #[test]
    fn expected_releases_are_the_service_children_and_the_environment_releases() {
        let e = env(json!({
            "helmReleases": {"launch-darkly": {"chart": "repo/ld"}},
            "services": [{"name": "svc", "template": {"name": "example-service"}}]
        }));
        let d = desired(&e, &catalog());
        let expected: Vec<String> = d.expected_releases().into_iter().collect();
        assert_eq!(
            expected,
            ["pr-1-launch-darkly", "svc-example-service", "svc-postgres"]
        );
    }
}
