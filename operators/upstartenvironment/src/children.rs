//! The objects an environment wants, built by pure functions: its namespace, one UpstartService
//! per enabled service (a catalog template or an inline spec, with overrides deep-merged), one
//! per service the dependency closure adds, and one HelmRelease per environment-wide release.
//! Spec problems (a missing or invalid template, an override of an unknown key, a dependency
//! nothing provides) are reported, never half-built.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::{Resource, ResourceExt};
use upstart_api::labels::{ENVIRONMENT_LABEL, MANAGED_BY_LABEL, MANAGED_BY_VALUE};
use upstart_api::names::child_name;
use upstart_api::v1alpha1::{
    AddedService, Dependency, DependencyKind, EnvironmentService, HelmRelease, HelmReleaseSpec,
    JobWhen, TemplateReference, TemplateUpdates, UpstartEnvironment, UpstartService,
    UpstartServiceSpec,
};

use crate::closure;
use crate::constants::reasons;
use crate::templates::{self, TemplateCopy, TemplateUse};

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
    /// Names of every enabled service (applied or with a problem) and of every service the
    /// closure added: the ones not to delete.
    pub kept_services: BTreeSet<String>,
    /// The template copy each template-made service runs.
    pub templates: Vec<TemplateUse>,
    /// The services the closure added, and why.
    pub added: Vec<AddedService>,
    /// Dependencies nothing of the environment provides (reason `MissingDependency`): not a
    /// failure, since an object applied by hand heals them, but said instead of waited on.
    pub missing: Vec<Problem>,
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

/// What the children of an environment are built from besides its spec: the catalog, the
/// template copies its services carry, and what else is in its namespace.
#[derive(Clone, Debug, Default)]
pub struct Sources {
    /// The catalog's templates by name.
    pub catalog: BTreeMap<String, UpstartServiceSpec>,
    /// The template copy each live service of the environment carries, by service name.
    pub recorded: BTreeMap<String, TemplateCopy>,
    /// UpstartServices of the namespace the environment does not own (applied by hand):
    /// dependencies may name them.
    pub foreign_services: Vec<(String, UpstartServiceSpec)>,
    /// HelmReleases of the namespace that neither the environment nor a service owns, with
    /// their dependencies.
    pub foreign_releases: Vec<(String, Vec<Dependency>)>,
    /// Names of the environment's services and releases in the namespace (wanted or not).
    pub present: BTreeSet<String>,
}

/// Whether building the children of `env` may need the catalog: a service made from a
/// template, or (with the closure on) any dependency at all, of a release or a job, which may
/// name a template.
pub fn needs_catalog(env: &UpstartEnvironment) -> bool {
    let environment = environment_info(env);
    let enabled = || {
        env.spec
            .services
            .iter()
            .filter(|s| service_enabled(s, &environment).unwrap_or(true))
    };
    let inline = || enabled().filter_map(|s| s.spec.as_ref());
    enabled().any(|s| s.template.is_some())
        || (env.spec.closure()
            && inline()
                .flat_map(|s| s.helm_releases.values().map(|r| &r.dependencies))
                .chain(env.spec.helm_releases.values().map(|r| &r.dependencies))
                .chain(inline().flat_map(|s| s.jobs.values().map(|j| &j.dependencies)))
                .chain(env.spec.jobs.values().map(|j| &j.dependencies))
                .any(|dependencies| !dependencies.is_empty()))
}

/// `environment.*` of `env`, which `enabled` expressions read.
pub fn environment_info(env: &UpstartEnvironment) -> upstart_dag::EnvironmentInfo {
    upstart_dag::EnvironmentInfo {
        name: env.name_any(),
        namespace: namespace_name(env),
        variables: env.spec.variables.clone(),
    }
}

/// Whether `service` is part of the environment: its `enabled` read against `environment`.
pub fn service_enabled(
    service: &EnvironmentService,
    environment: &upstart_dag::EnvironmentInfo,
) -> Result<bool, upstart_dag::Error> {
    upstart_dag::is_enabled(
        service.enabled.as_ref(),
        &format!("spec.services[{}].enabled", service.name),
        Some(environment),
    )
}

/// A problem of `service` (or of an environment release) from a DAG error.
fn problem_of(service: &str, error: &upstart_dag::Error) -> Problem {
    Problem {
        service: service.to_owned(),
        reason: error.reason(),
        message: error.to_string(),
    }
}

/// The template copy a service was made from, and how it stands against the catalog.
type Copied = (TemplateCopy, TemplateUse);

/// A template's validation: its errors, none when it is valid.
pub type Validate<'a> = &'a dyn Fn(&str, &UpstartServiceSpec) -> Vec<String>;

/// Builds every child of `env`: its enabled services (each template copy chosen by
/// [`templates::choose`], overrides applied), the services the closure adds for them
/// ([`closure`]), and its environment-wide releases.
pub fn desired(env: &UpstartEnvironment, sources: &Sources, validate: Validate<'_>) -> Desired {
    let namespace = namespace_name(env);
    let mut out = Desired::default();
    let env_name = env.name_any();
    let mode = env.spec.template_updates();
    let environment = environment_info(env);
    let mut unbuilt = BTreeSet::new();
    // The environment's own releases and jobs, switched: its pre jobs go before every
    // service's releases, its post jobs after every service.
    let own = upstart_dag::switch_releases(
        &env.spec.helm_releases,
        &env.spec.jobs,
        "spec",
        "",
        Some(&environment),
    );
    out.problems
        .extend(own.problems.iter().map(|e| problem_of(&env_name, e)));
    let jobs_on = |when| -> Vec<String> {
        env.spec
            .jobs
            .iter()
            .filter(|(key, job)| job.when == Some(when) && own.releases.contains_key(*key))
            .map(|(key, _)| key.clone())
            .collect()
    };
    let pre_jobs = jobs_on(JobWhen::Pre);
    let post_jobs = jobs_on(JobWhen::Post);
    for service in &env.spec.services {
        match service_enabled(service, &environment) {
            Ok(true) => {}
            Ok(false) => continue,
            Err(error) => {
                // Kept (nothing of it is torn down over a typo) but not built.
                out.kept_services.insert(service.name.clone());
                unbuilt.insert(service.name.clone());
                out.problems.push(problem_of(&service.name, &error));
                continue;
            }
        }
        out.kept_services.insert(service.name.clone());
        let built = base_spec(service, mode, sources, validate)
            .and_then(|(spec, copy)| apply_overrides(service, spec).map(|spec| (spec, copy)));
        match built {
            Ok((spec, copy)) => {
                let mut spec =
                    switch_service(&service.name, &spec, &environment, &mut out.problems);
                for release in spec.helm_releases.values_mut() {
                    upstart_dag::switches::depend_on_environment_releases(release, &pre_jobs);
                }
                out.push_service(env, &namespace, &service.name, spec, copy);
            }
            Err(problems) => {
                unbuilt.insert(service.name.clone());
                out.problems.extend(problems);
            }
        }
    }
    let services: Vec<String> = out.services.iter().map(|s| s.name_any()).collect();
    for (key, spec) in &own.releases {
        let mut spec = environment_release_spec(&env_name, key, spec, &own.releases);
        if post_jobs.contains(key) {
            upstart_dag::switches::depend_on_services(&mut spec, &services);
        }
        out.releases.push(HelmRelease {
            metadata: child_meta(env, child_name(&env_name, key), Some(namespace.clone())),
            spec,
            status: None,
        });
    }
    for service in &out.services {
        let name = service.name_any();
        let on_disabled =
            upstart_dag::dependencies_on_disabled(&service.spec.helm_releases, &name, |d| {
                own.disabled
                    .iter()
                    .find(|key| {
                        d.kind == Some(DependencyKind::HelmRelease)
                            && d.name == child_name(&env_name, key)
                    })
                    .cloned()
            });
        out.problems
            .extend(on_disabled.iter().map(|e| problem_of(&name, e)));
    }
    complete(env, &namespace, sources, validate, unbuilt, &mut out);
    out
}

/// A service's spec with its switches read and its jobs made releases
/// ([`upstart_dag::switch_releases`]): what is disabled is left out (so the service operator
/// tears down what it created of it); problems (a switch that reads neither true nor false, a
/// dependency on something disabled) are added to `problems`.
fn switch_service(
    name: &str,
    spec: &UpstartServiceSpec,
    environment: &upstart_dag::EnvironmentInfo,
    problems: &mut Vec<Problem>,
) -> UpstartServiceSpec {
    let switched = upstart_dag::switch_releases(
        &spec.helm_releases,
        &spec.jobs,
        &format!("spec.services[{name}]"),
        name,
        Some(environment),
    );
    problems.extend(switched.problems.iter().map(|e| problem_of(name, e)));
    UpstartServiceSpec {
        helm_releases: switched.releases,
        jobs: BTreeMap::new(),
    }
}

/// The dependency closure over what [`desired`] built: adds the catalog services that are
/// depended on, until nothing more is, and reports every dependency left unresolved.
fn complete(
    env: &UpstartEnvironment,
    namespace: &str,
    sources: &Sources,
    validate: Validate<'_>,
    mut unbuilt: BTreeSet<String>,
    out: &mut Desired,
) {
    let our_releases: BTreeSet<String> = out.releases.iter().map(|r| r.name_any()).collect();
    // Enabled services are wanted even when they could not be built; the rest of what is
    // present (disabled or removed services, removed releases) is on its way out.
    let wanted = out.kept_services.clone();
    let mut known = closure::Known {
        disabled: {
            let environment = environment_info(env);
            env.spec
                .services
                .iter()
                .filter(|s| service_enabled(s, &environment) == Ok(false))
                .map(|s| s.name.clone())
                .collect()
        },
        leaving: sources
            .present
            .iter()
            .filter(|name| !wanted.contains(*name) && !our_releases.contains(*name))
            .cloned()
            .collect(),
        ..closure::Known::new(env.spec.closure(), &sources.catalog)
    };
    let mut added = BTreeSet::new();
    loop {
        let services: Vec<(String, UpstartServiceSpec)> = out
            .services
            .iter()
            .map(|s| (s.name_any(), s.spec.clone()))
            .collect();
        let members = closure::Members {
            services: services
                .iter()
                .chain(&sources.foreign_services)
                .map(|(name, spec)| (name.as_str(), spec))
                .collect(),
            releases: out
                .releases
                .iter()
                .map(|r| {
                    (
                        r.metadata.name.as_deref().unwrap_or_default(),
                        r.spec.dependencies.as_slice(),
                    )
                })
                .chain(
                    sources
                        .foreign_releases
                        .iter()
                        .map(|(name, dependencies)| (name.as_str(), dependencies.as_slice())),
                )
                .collect(),
        };
        let graph = members.graph();
        let ours: BTreeSet<String> = services.iter().map(|(name, _)| name.clone()).collect();
        known.unbuilt.clone_from(&unbuilt);
        let mut to_add = BTreeSet::new();
        let mut missing = Vec::new();
        for unresolved in closure::unresolved(&graph, &ours, &our_releases) {
            match closure::verdict(&unresolved, &known) {
                closure::Verdict::Add => {
                    to_add.insert(unresolved.name);
                }
                closure::Verdict::Reported => {}
                closure::Verdict::Missing(problem) => missing.push(problem),
            }
        }
        if to_add.is_empty() {
            out.added = closure::added_services(&graph, &added);
            out.missing = missing;
            return;
        }
        for name in to_add {
            out.kept_services.insert(name.clone());
            added.insert(name.clone());
            let template = TemplateReference { name: name.clone() };
            let service = EnvironmentService {
                name: name.clone(),
                template: Some(template),
                ..EnvironmentService::default()
            };
            match base_spec(&service, env.spec.template_updates(), sources, validate) {
                Ok((spec, copy)) => out.push_service(env, namespace, &name, spec, copy),
                Err(problems) => {
                    unbuilt.insert(name);
                    out.problems.extend(problems);
                }
            }
        }
    }
}

impl Desired {
    /// Adds the UpstartService `name` of `spec` (environment releases made concrete), with the
    /// template copy it was made from recorded on it.
    fn push_service(
        &mut self,
        env: &UpstartEnvironment,
        namespace: &str,
        name: &str,
        mut spec: UpstartServiceSpec,
        copy: Option<Copied>,
    ) {
        resolve_environment_releases(&env.name_any(), spec.helm_releases.values_mut());
        let mut metadata = child_meta(env, name.to_owned(), Some(namespace.to_owned()));
        if let Some((copy, used)) = copy {
            metadata.annotations = Some(copy.annotations());
            self.templates.push(used);
        }
        self.services.push(UpstartService {
            spec,
            metadata,
            status: None,
        });
    }
}

/// The spec a service starts from: its inline spec, or the copy of its template that
/// [`templates::choose`] picks (returned too, to be recorded).
fn base_spec(
    service: &EnvironmentService,
    mode: TemplateUpdates,
    sources: &Sources,
    validate: Validate<'_>,
) -> Result<(UpstartServiceSpec, Option<Copied>), Vec<Problem>> {
    match (&service.spec, &service.template) {
        (Some(spec), _) => Ok((spec.clone(), None)),
        (None, Some(template)) => templates::choose(
            &service.name,
            &template.name,
            mode,
            sources.catalog.get(&template.name),
            sources.recorded.get(&service.name),
            validate,
        )
        .map(|(copy, used)| (copy.spec.clone(), Some((copy, used))))
        .map_err(|problem| vec![problem]),
        // The schema refuses this; an object stored before the rule existed still gets a
        // clear message.
        (None, None) => Err(vec![Problem {
            service: service.name.clone(),
            reason: reasons::TEMPLATE_NOT_FOUND,
            message: format!("service {}: neither template nor spec is set", service.name),
        }]),
    }
}

/// `spec` with the service's overrides applied. Every problem of the service is reported at
/// once.
pub fn apply_overrides(
    service: &EnvironmentService,
    mut spec: UpstartServiceSpec,
) -> Result<UpstartServiceSpec, Vec<Problem>> {
    let problem = |reason, message: String| Problem {
        service: service.name.clone(),
        reason,
        message,
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
        if let Err(error) = upstart_dag::apply_override(key, release, release_override) {
            problems.push(problem(
                reasons::INVALID_OVERRIDE,
                format!("service {}: override of {key}: {error}", service.name),
            ));
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
    use upstart_api::labels::{TEMPLATE_ANNOTATION, TEMPLATE_REVISION_ANNOTATION};

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

    /// The children of `e` with `catalog`, every template valid, nothing else in the namespace.
    fn build(e: &UpstartEnvironment, catalog: BTreeMap<String, UpstartServiceSpec>) -> Desired {
        let sources = Sources {
            catalog,
            ..Sources::default()
        };
        desired(e, &sources, &|_, _| Vec::new())
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
    fn the_catalog_is_read_for_a_dependency_of_a_job_as_of_a_release() {
        let job =
            json!({"template": {"spec": {"containers": []}}, "dependencies": [{"name": "db"}]});
        let inline_job = env(json!({"services": [
            {"name": "app", "spec": {"helmReleases": {"app": {"chart": "c/app"}}, "jobs": {"seed": job}}}
        ]}));
        assert!(needs_catalog(&inline_job));
        assert!(needs_catalog(&env(json!({"jobs": {"seed": job}}))));
        assert!(!needs_catalog(&env(
            json!({"jobs": {"seed": job}, "closure": false})
        )));
        assert!(!needs_catalog(&env(json!({"services": [
            {"name": "app", "spec": {"helmReleases": {"app": {"chart": "c/app"}}}}
        ]}))));
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
        let d = build(&e, catalog);
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
        let d = build(&e, catalog());
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
        let d = build(&e, catalog());
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
        let d = build(&e, catalog());
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
        let d = build(&e, catalog());
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
        let d = build(&e, catalog());
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
        let d = build(&e, catalog());
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
        let d = build(&e, catalog());
        let expected: Vec<String> = d.expected_releases().into_iter().collect();
        assert_eq!(
            expected,
            ["pr-1-launch-darkly", "svc-example-service", "svc-postgres"]
        );
    }

    fn chain_catalog() -> BTreeMap<String, UpstartServiceSpec> {
        let spec = |v: serde_json::Value| -> UpstartServiceSpec {
            serde_json::from_value(json!({ "helmReleases": v })).expect("valid spec")
        };
        BTreeMap::from([
            (
                "web".to_owned(),
                spec(json!({"app": {"chart": "repo/app", "dependencies": [{"name": "auth"}]}})),
            ),
            (
                "auth".to_owned(),
                spec(
                    json!({"api": {"chart": "repo/auth", "dependencies": [{"name": "db", "kind": "UpstartService"}]}}),
                ),
            ),
            (
                "db".to_owned(),
                spec(json!({"postgres": {"chart": "repo/postgres"}})),
            ),
        ])
    }

    #[test]
    fn services_the_listed_ones_depend_on_are_added_from_the_catalog_transitively() {
        let e = env(json!({"services": [{"name": "web", "template": {"name": "web"}}]}));
        let d = build(&e, chain_catalog());
        assert!(d.problems.is_empty(), "{:?}", d.problems);
        let names: Vec<String> = d.services.iter().map(|s| s.name_any()).collect();
        assert_eq!(names, ["web", "auth", "db"]);
        assert_eq!(
            d.added,
            [
                AddedService {
                    name: "auth".into(),
                    required_by: vec!["web/app".into()]
                },
                AddedService {
                    name: "db".into(),
                    required_by: vec!["auth/api".into()]
                },
            ]
        );
        assert!(
            d.kept_services.contains("db"),
            "added services are not removed"
        );
        let db = &d.services[2];
        assert_eq!(db.labels()[ENVIRONMENT_LABEL], "pr-1");
        assert_eq!(db.annotations()[TEMPLATE_ANNOTATION], "db");
        assert_eq!(
            d.templates.len(),
            3,
            "added services record their copies too"
        );
    }

    #[test]
    fn a_listed_service_is_not_added_again() {
        let e = env(json!({
            "services": [
                {"name": "web", "template": {"name": "web"}},
                {"name": "auth", "spec": {"helmReleases": {"api": {"chart": "repo/auth"}}}}
            ]
        }));
        let d = build(&e, chain_catalog());
        assert!(d.added.is_empty(), "{:?}", d.added);
        assert!(d.problems.is_empty(), "{:?}", d.problems);
    }

    #[test]
    fn without_closure_a_dependency_on_an_unlisted_service_is_a_problem_naming_the_fix() {
        let e = env(json!({
            "closure": false,
            "services": [{"name": "web", "template": {"name": "web"}}]
        }));
        let d = build(&e, chain_catalog());
        assert!(d.added.is_empty());
        let names: Vec<String> = d.services.iter().map(|s| s.name_any()).collect();
        assert_eq!(names, ["web"], "the service is applied and waits");
        assert!(d.problems.is_empty(), "{:?}", d.problems);
        assert_eq!(d.missing.len(), 1, "{:?}", d.missing);
        assert_eq!(d.missing[0].reason, reasons::MISSING_DEPENDENCY);
        assert!(
            d.missing[0]
                .message
                .contains("release web/app depends on auth"),
            "{}",
            d.missing[0].message
        );
    }

    #[test]
    fn a_dependency_on_an_object_applied_by_hand_is_neither_added_nor_missing() {
        let e = env(json!({"services": [{"name": "web", "template": {"name": "web"}}]}));
        let sources = Sources {
            catalog: chain_catalog(),
            foreign_releases: vec![("auth".to_owned(), Vec::new())],
            ..Sources::default()
        };
        let d = desired(&e, &sources, &|_, _| Vec::new());
        assert!(d.added.is_empty(), "{:?}", d.added);
        assert!(d.missing.is_empty(), "{:?}", d.missing);
    }

    #[test]
    fn an_invalid_template_is_not_copied_and_the_service_keeps_its_last_good_copy() {
        let e = env(json!({"services": [{
            "name": "svc",
            "template": {"name": "example-service"},
            "overrides": {"exampleService": {"values": {"image": {"tag": "pr-1"}}}}
        }]}));
        let good = TemplateCopy::of("example-service", &template());
        let mut edited = template();
        edited
            .helm_releases
            .get_mut("postgres")
            .expect("key")
            .version = Some("9.9.9".into());
        let sources = Sources {
            catalog: BTreeMap::from([("example-service".to_owned(), edited)]),
            recorded: BTreeMap::from([("svc".to_owned(), good.clone())]),
            ..Sources::default()
        };
        let d = desired(&e, &sources, &|_, _| vec!["broken".to_owned()]);
        assert!(d.problems.is_empty(), "{:?}", d.problems);
        let svc = &d.services[0];
        assert_eq!(
            svc.spec.helm_releases["postgres"].version.as_deref(),
            Some("0.1.3")
        );
        assert_eq!(
            svc.spec.helm_releases["exampleService"]
                .values
                .as_ref()
                .expect("values")["image"]["tag"],
            "pr-1",
            "overrides still apply to the kept copy"
        );
        assert_eq!(
            svc.annotations()[TEMPLATE_REVISION_ANNOTATION],
            good.revision
        );
        assert!(matches!(
            d.templates[0].state,
            templates::TemplateState::Invalid { .. }
        ));
    }
}
