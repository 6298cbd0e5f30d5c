//! What a service's children should be, decided from the namespace as plain data: every
//! dependency name resolved to a concrete `{kind, name, as}` (SPEC §3), the namespace's graph
//! checked for cycles, `.Release.Name` conflicts found, and the keys that must not be applied.
//! Pure: the same service and namespace give the same plan.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use upstart_api::labels::{ENVIRONMENT_LABEL, SERVICE_LABEL};
use upstart_api::names::{ReleaseNameClash, child_name, release_name_clashes};
use upstart_api::v1alpha1::{
    Dependency, DependencyKind, HelmRelease, HelmReleaseSpec, UpstartService,
};
use upstart_dag::{DependencyGraph, GraphInput, NodeId, NodeKind, Ordering};
use upstart_failure::{Class, Classify};

use crate::constants::reasons;

/// What is wrong with one release key, or with the service as a whole.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Problem {
    /// A dependency name matches nothing in the namespace (yet): the child waits for it.
    UnknownDependency { key: String, name: String },
    /// An `EnvironmentRelease` dependency whose HelmRelease does not exist (yet): the child waits.
    UnknownEnvironmentRelease {
        key: String,
        name: String,
        object: String,
    },
    /// A dependency name matches both an UpstartService and a HelmRelease, and has no kind.
    AmbiguousDependency { key: String, name: String },
    /// A dependency cycle through this service: nothing on it is installed.
    Cycle { path: String },
    /// Another release of the namespace, installed or created first, uses this `.Release.Name`.
    ReleaseNameConflict {
        key: String,
        release_name: String,
        mine: String,
        other: String,
    },
    /// The child's object name is taken: by a HelmRelease this service does not manage, or by
    /// another key of the same service (keys that are equal in kebab-case).
    NameTaken {
        key: String,
        name: String,
        by: String,
    },
    /// An `enabled` that reads neither true nor false, a job named like a release, or a
    /// dependency on a key `enabled` leaves out ([`switched`]).
    Switch {
        reason: &'static str,
        message: String,
    },
}

impl Problem {
    /// The bounded condition reason.
    pub fn reason(&self) -> &'static str {
        match self {
            Problem::UnknownDependency { .. } | Problem::UnknownEnvironmentRelease { .. } => {
                reasons::UNKNOWN_DEPENDENCY
            }
            Problem::AmbiguousDependency { .. } => reasons::AMBIGUOUS_DEPENDENCY,
            Problem::Cycle { .. } => reasons::DEPENDENCY_CYCLE,
            Problem::ReleaseNameConflict { .. } => reasons::RELEASE_NAME_CONFLICT,
            Problem::NameTaken { .. } => reasons::NAME_CONFLICT,
            Problem::Switch { reason, .. } => reason,
        }
    }

    /// Whether it is about a dependency name (the `DependenciesResolved` condition).
    pub fn is_resolution(&self) -> bool {
        matches!(
            self,
            Problem::UnknownDependency { .. }
                | Problem::UnknownEnvironmentRelease { .. }
                | Problem::AmbiguousDependency { .. }
        )
    }

    /// A sentence for conditions and Events: names only.
    pub fn message(&self) -> String {
        match self {
            Problem::UnknownDependency { key, name } => format!(
                "release {key}: dependency {name} matches no release key, UpstartService or HelmRelease in the namespace; waiting for it"
            ),
            Problem::UnknownEnvironmentRelease { key, name, object } => format!(
                "release {key}: dependency {name} (kind EnvironmentRelease) is the HelmRelease {object}, which does not exist in the namespace; waiting for it"
            ),
            Problem::AmbiguousDependency { key, name } => format!(
                "release {key}: dependency {name} is ambiguous: an UpstartService and a HelmRelease are both named {name}; set its kind"
            ),
            Problem::Cycle { path } => format!("dependency cycle: {path}"),
            Problem::ReleaseNameConflict {
                release_name,
                mine,
                other,
                ..
            } => format!(
                "release name \"{release_name}\" of {mine} is also used by {other}, which has it first"
            ),
            Problem::NameTaken { key, name, by } => {
                format!("release {key}: HelmRelease {name} is already {by}")
            }
            Problem::Switch { message, .. } => message.clone(),
        }
    }
}

impl Classify for Problem {
    /// Only a spec change (of this service or another object) can fix it; an unknown
    /// dependency is a wait, since it may be created later.
    fn class(&self) -> Class {
        match self {
            Problem::UnknownDependency { .. } | Problem::UnknownEnvironmentRelease { .. } => {
                Class::Waiting
            }
            _ => Class::NeedsSpecChange,
        }
    }
}

/// The plan for one release key.
#[derive(Clone, Debug, PartialEq)]
pub struct KeyPlan {
    /// The child HelmRelease's name.
    pub child: String,
    /// Its `.Release.Name`.
    pub release_name: String,
    /// Its spec: the key's spec with `releaseName` set and concrete dependencies.
    pub spec: HelmReleaseSpec,
    /// Sibling keys it depends on.
    pub siblings: Vec<String>,
    /// Why it must not be applied (a cycle, a name conflict); `None`: apply it.
    pub withheld: Option<Problem>,
}

/// The plan for a whole service.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    /// Per release key.
    pub keys: BTreeMap<String, KeyPlan>,
    /// Keys in dependency order: dependencies first, ties by key, the keys of one cycle
    /// together.
    pub order: Vec<String>,
    /// Every problem, in a stable order: resolution per key, then cycles, then conflicts.
    pub problems: Vec<Problem>,
}

impl Plan {
    /// Problems only a spec change can fix.
    pub fn spec_errors(&self) -> impl Iterator<Item = &Problem> {
        self.problems.iter().filter(|p| p.needs_spec_change())
    }
}

/// The service as its children are planned: its `enabled` switches read and its jobs made
/// releases ([`upstart_dag::switch_releases`]; in an environment the environment operator has
/// done both already, outside one only literal switches can be read), with the problems found.
pub fn switched(service: &UpstartService) -> (UpstartService, Vec<Problem>) {
    let name = service.name_any();
    let result = upstart_dag::switch_releases(
        &service.spec.helm_releases,
        &service.spec.jobs,
        "spec",
        &name,
        None,
    );
    let problems = result
        .problems
        .iter()
        .map(|e| Problem::Switch {
            reason: e.reason(),
            message: e.to_string(),
        })
        .collect();
    let mut switched = service.clone();
    switched.spec.helm_releases = result.releases;
    switched.spec.jobs.clear();
    (switched, problems)
}

/// Plans the children of `service` given everything of its namespace: the other
/// UpstartServices and every HelmRelease (its own children included; they are recognised by
/// their service label and stand for the service's keys).
///
/// The stages, each its own function: read the namespace ([`Namespace::read`]), build its
/// dependency graph ([`Namespace::graph`]), resolve each key's dependencies
/// ([`resolve_keys`]), then withhold the keys on a cycle ([`withhold_cycles`]), those losing a
/// `.Release.Name` ([`withhold_release_name_conflicts`]) and those whose child name is taken
/// ([`withhold_taken_child_names`]), and order what is left ([`order_keys`]). Problems are
/// collected in that order.
pub fn plan(
    service: &UpstartService,
    services: &[UpstartService],
    releases: &[HelmRelease],
) -> Plan {
    let namespace = Namespace::read(service, services, releases);
    let graph = namespace.graph();
    let ordering = graph.ordering();
    let children = Children::of(service);

    let mut problems = Vec::new();
    let mut keys = resolve_keys(&namespace, &graph, &children, &mut problems);
    withhold_cycles(&namespace, &ordering, &children, &mut keys, &mut problems);
    withhold_release_name_conflicts(&namespace, &mut keys, &mut problems);
    withhold_taken_child_names(&namespace, &children, &mut keys, &mut problems);
    let order = order_keys(&ordering, &children, &keys);
    Plan {
        keys,
        order,
        problems,
    }
}

/// The part of the namespace a plan reads: the services (this one included) and the
/// HelmReleases no service owns, which take part in the dependency graph as themselves.
struct Namespace<'a> {
    /// The planned service.
    service: &'a UpstartService,
    /// Its name.
    me: String,
    namespace: Option<String>,
    /// Every UpstartService of the namespace, this one included, by name.
    services: Vec<&'a UpstartService>,
    /// The HelmReleases of the namespace that no UpstartService of it owns.
    standalone: Vec<&'a HelmRelease>,
    /// Every HelmRelease given, children included (the namespace is checked where it matters).
    releases: &'a [HelmRelease],
    /// The environment that created the service, when one did.
    environment: Option<&'a str>,
}

impl<'a> Namespace<'a> {
    /// Decides which services and which standalone HelmReleases are the planned service's
    /// neighbours: those of its namespace, a HelmRelease standing for itself only when no
    /// service of the namespace owns it.
    fn read(
        service: &'a UpstartService,
        services: &'a [UpstartService],
        releases: &'a [HelmRelease],
    ) -> Self {
        let me = service.name_any();
        let namespace = service.namespace();
        let mut all: Vec<&UpstartService> = services
            .iter()
            .filter(|s| s.namespace() == namespace && s.name_any() != me)
            .collect();
        all.push(service);
        all.sort_by_key(|s| s.name_any());
        let service_names: BTreeSet<String> = all.iter().map(|s| s.name_any()).collect();
        let standalone: Vec<&HelmRelease> = releases
            .iter()
            .filter(|r| r.namespace() == namespace)
            .filter(|r| {
                r.labels()
                    .get(SERVICE_LABEL)
                    .is_none_or(|owner| !service_names.contains(owner))
            })
            .collect();
        // A service an environment created carries its label; its EnvironmentRelease
        // dependencies name that environment's releases (the environment operator already
        // made them concrete).
        let environment = service.labels().get(ENVIRONMENT_LABEL).map(String::as_str);
        Self {
            service,
            me,
            namespace,
            services: all,
            standalone,
            releases,
            environment,
        }
    }

    /// The namespace's dependency graph: every service's releases and every standalone
    /// HelmRelease, with their dependencies resolved by name.
    fn graph(&self) -> DependencyGraph {
        let mut input = GraphInput::new();
        input.set_environment(self.environment);
        for s in &self.services {
            input.add_service(&s.name_any(), &s.spec);
        }
        for r in &self.standalone {
            input.add_release(&r.name_any(), &r.spec.dependencies);
        }
        DependencyGraph::build(&input)
    }

    /// Whether the HelmRelease `name` of the namespace exists and was installed, and (when
    /// `service` is given) is that service's child.
    fn installed(&self, name: &str, service: Option<&str>) -> bool {
        self.releases.iter().any(|r| {
            r.namespace() == self.namespace
                && r.name_any() == name
                && service
                    .is_none_or(|s| r.labels().get(SERVICE_LABEL).map(String::as_str) == Some(s))
                && !crate::children::never_installed(r)
        })
    }
}

/// The child HelmRelease name of each release key of the planned service, both ways.
struct Children {
    child_of_key: BTreeMap<String, String>,
    key_of_child: HashMap<String, String>,
}

impl Children {
    fn of(service: &UpstartService) -> Self {
        let me = service.name_any();
        let child_of_key: BTreeMap<String, String> = service
            .spec
            .helm_releases
            .keys()
            .map(|k| (k.clone(), child_name(&me, k)))
            .collect();
        let key_of_child = child_of_key
            .iter()
            .map(|(k, c)| (c.clone(), k.clone()))
            .collect();
        Self {
            child_of_key,
            key_of_child,
        }
    }

    /// The key whose child is `child`, if any.
    fn key(&self, child: &str) -> Option<&str> {
        self.key_of_child.get(child).map(String::as_str)
    }
}

/// Decides each key's concrete dependencies (`{kind, name, as}`), its sibling keys and its
/// `.Release.Name`; a dependency that resolves to nothing is a problem of the key, and a key
/// whose child node the graph gave to another key (kebab-case twins) is withheld.
fn resolve_keys(
    namespace: &Namespace<'_>,
    graph: &DependencyGraph,
    children: &Children,
    problems: &mut Vec<Problem>,
) -> BTreeMap<String, KeyPlan> {
    let me = &namespace.me;
    let mut keys = BTreeMap::new();
    for (key, spec) in &namespace.service.spec.helm_releases {
        let child = children.child_of_key[key].clone();
        let node = NodeId::release(child.clone());
        let label = format!("{me}/{key}");
        let owns_node = graph.label(&node) == Some(label.as_str());
        let mut dependencies = Vec::with_capacity(spec.dependencies.len());
        let mut siblings = Vec::new();
        for dependency in &spec.dependencies {
            let resolved = owns_node
                .then(|| {
                    graph
                        .dependencies(&node)
                        .iter()
                        .find(|r| r.name == dependency.name && r.alias == dependency.alias())
                })
                .flatten();
            match resolved {
                Some(resolved) => {
                    if let Some(sibling) = children.key(&resolved.target.name)
                        && resolved.target.kind == NodeKind::HelmRelease
                    {
                        siblings.push(sibling.to_owned());
                    }
                    dependencies.push(Dependency {
                        name: resolved.target.name.clone(),
                        kind: Some(match resolved.target.kind {
                            NodeKind::HelmRelease => DependencyKind::HelmRelease,
                            NodeKind::UpstartService => DependencyKind::UpstartService,
                        }),
                        alias: Some(dependency.alias().to_owned()),
                    });
                }
                None => {
                    let (problem, kept) = unresolved(namespace, graph, key, &label, dependency);
                    problems.push(problem);
                    dependencies.push(kept);
                }
            }
        }
        let release_name = spec.release_name_of_key(key);
        let withheld = (!owns_node).then(|| Problem::NameTaken {
            key: key.clone(),
            name: child.clone(),
            by: format!(
                "the child of release key {}",
                graph
                    .label(&node)
                    .and_then(|l| l.strip_prefix(&format!("{me}/")))
                    .unwrap_or("another")
            ),
        });
        keys.insert(
            key.clone(),
            KeyPlan {
                child,
                release_name: release_name.clone(),
                spec: HelmReleaseSpec {
                    release_name: Some(release_name),
                    dependencies,
                    ..spec.clone()
                },
                siblings,
                withheld,
            },
        );
    }
    keys
}

/// Decides what an unresolved dependency of `key` (graph label `label`) is: ambiguous, an
/// environment release not there yet, or unknown; and the dependency written into the child
/// meanwhile.
fn unresolved(
    namespace: &Namespace<'_>,
    graph: &DependencyGraph,
    key: &str,
    label: &str,
    dependency: &Dependency,
) -> (Problem, Dependency) {
    let ambiguous = graph.problems().iter().any(|p| {
        matches!(p, upstart_dag::Error::AmbiguousDependency { release, name }
            if *release == label && *name == dependency.name)
    });
    // An environment release is waited for as the HelmRelease it means.
    let concrete = dependency.in_environment(namespace.environment);
    let problem = if ambiguous {
        Problem::AmbiguousDependency {
            key: key.to_owned(),
            name: dependency.name.clone(),
        }
    } else if dependency.kind == Some(DependencyKind::EnvironmentRelease) {
        Problem::UnknownEnvironmentRelease {
            key: key.to_owned(),
            name: dependency.name.clone(),
            object: concrete.name.clone(),
        }
    } else {
        Problem::UnknownDependency {
            key: key.to_owned(),
            name: dependency.name.clone(),
        }
    };
    // Kept as written (kind-less unless given): the HelmRelease operator waits for whichever
    // appears, and this plan is redone when something does.
    let kept = Dependency {
        name: concrete.name,
        kind: concrete.kind,
        alias: Some(dependency.alias().to_owned()),
    };
    (problem, kept)
}

/// Withholds every key on a dependency cycle through this service or one of its releases;
/// each such cycle is one problem.
fn withhold_cycles(
    namespace: &Namespace<'_>,
    ordering: &Ordering,
    children: &Children,
    keys: &mut BTreeMap<String, KeyPlan>,
    problems: &mut Vec<Problem>,
) {
    let my_nodes: BTreeSet<NodeId> = children
        .child_of_key
        .values()
        .map(|c| NodeId::release(c.clone()))
        .chain([NodeId::service(namespace.me.clone())])
        .collect();
    for cycle in &ordering.cycles {
        if !cycle.members.iter().any(|m| my_nodes.contains(m)) {
            continue;
        }
        let problem = Problem::Cycle {
            path: cycle.to_string(),
        };
        for member in &cycle.members {
            if member.kind == NodeKind::HelmRelease
                && let Some(key) = children.key(&member.name)
                && let Some(plan) = keys.get_mut(key)
            {
                plan.withheld.get_or_insert_with(|| problem.clone());
            }
        }
        problems.push(problem);
    }
}

/// Decides who keeps each `.Release.Name` claimed twice in the namespace, and withholds this
/// service's keys that lose: a release already installed keeps its name, else the owner
/// created first (creation times have one-second precision: then the name decides).
fn withhold_release_name_conflicts(
    namespace: &Namespace<'_>,
    keys: &mut BTreeMap<String, KeyPlan>,
    problems: &mut Vec<Problem>,
) {
    let mut claims = release_name_claims(namespace);
    claims.sort_by(|a, b| {
        b.installed
            .cmp(&a.installed)
            .then_with(|| {
                a.created
                    .as_ref()
                    .map(|t| t.0)
                    .cmp(&b.created.as_ref().map(|t| t.0))
            })
            .then_with(|| a.owner.cmp(&b.owner))
    });
    let clashes = release_name_clashes(claims.into_iter().map(|c| (c.release_name.clone(), c)));
    for ReleaseNameClash {
        release_name,
        first,
        later,
    } in clashes
    {
        let Some(key) = &later.mine else { continue };
        let problem = Problem::ReleaseNameConflict {
            key: key.clone(),
            release_name,
            mine: later.owner.clone(),
            other: first.owner.clone(),
        };
        if let Some(plan) = keys.get_mut(key) {
            plan.withheld.get_or_insert_with(|| problem.clone());
        }
        problems.push(problem);
    }
}

/// The `.Release.Name` each release of the namespace claims: every key of every service and
/// every standalone HelmRelease.
fn release_name_claims(namespace: &Namespace<'_>) -> Vec<Claim> {
    let mut claims: Vec<Claim> = Vec::new();
    for s in &namespace.services {
        let service = s.name_any();
        for (key, spec) in &s.spec.helm_releases {
            claims.push(Claim {
                release_name: spec.release_name_of_key(key),
                installed: namespace.installed(&child_name(&service, key), Some(&service)),
                created: s.metadata.creation_timestamp.clone(),
                owner: format!("{service}/{key}"),
                mine: (service == namespace.me).then(|| key.clone()),
            });
        }
    }
    for r in &namespace.standalone {
        claims.push(Claim {
            release_name: r.spec.release_name_of_object(&r.name_any()),
            installed: !crate::children::never_installed(r),
            created: r.metadata.creation_timestamp.clone(),
            owner: r.name_any(),
            mine: None,
        });
    }
    claims
}

/// Withholds the keys whose child name is a HelmRelease this service does not manage (never
/// taken over), then reports the keys the graph gave to a kebab-case twin
/// ([`resolve_keys`] withheld them) once each.
fn withhold_taken_child_names(
    namespace: &Namespace<'_>,
    children: &Children,
    keys: &mut BTreeMap<String, KeyPlan>,
    problems: &mut Vec<Problem>,
) {
    for plan in keys.values_mut() {
        if plan.withheld.is_some() {
            continue;
        }
        let foreign = namespace.releases.iter().find(|r| {
            r.namespace() == namespace.namespace
                && r.name_any() == plan.child
                && r.labels().get(SERVICE_LABEL) != Some(&namespace.me)
        });
        if let Some(foreign) = foreign {
            let key = children.key_of_child[plan.child.as_str()].clone();
            let by = match foreign.labels().get(SERVICE_LABEL) {
                Some(owner) => format!("managed by UpstartService {owner}"),
                None => "in the namespace and not managed by this service".to_owned(),
            };
            let problem = Problem::NameTaken {
                key,
                name: plan.child.clone(),
                by,
            };
            plan.withheld = Some(problem.clone());
            problems.push(problem);
        }
    }
    for plan in keys.values() {
        if let Some(problem @ Problem::NameTaken { .. }) = &plan.withheld
            && !problems.contains(problem)
        {
            problems.push(problem.clone());
        }
    }
}

/// Orders the keys: the teardown order reversed, so dependencies first, and unlike the install
/// levels it also holds the releases on or behind a cycle; keys the graph does not hold last.
fn order_keys(
    ordering: &Ordering,
    children: &Children,
    keys: &BTreeMap<String, KeyPlan>,
) -> Vec<String> {
    let mut order: Vec<String> = ordering
        .teardown_levels
        .iter()
        .rev()
        .flatten()
        .filter(|n| n.kind == NodeKind::HelmRelease)
        .filter_map(|n| children.key(&n.name).map(str::to_owned))
        .collect();
    for key in keys.keys() {
        if !order.contains(key) {
            order.push(key.clone());
        }
    }
    order
}

/// One release's claim on a `.Release.Name`.
#[derive(Clone)]
struct Claim {
    release_name: String,
    /// The release holding the claim is installed.
    installed: bool,
    created: Option<Time>,
    owner: String,
    /// The key, when the claim is this service's.
    mine: Option<String>,
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    pub(crate) fn service(name: &str, created: i64, releases: Value) -> UpstartService {
        serde_json::from_value(json!({
            "apiVersion": "upstartoperators.upstart.com/v1alpha1",
            "kind": "UpstartService",
            "metadata": {
                "name": name, "namespace": "pr-1", "uid": format!("uid-{name}"),
                "creationTimestamp": format!("2026-01-01T00:00:{created:02}Z"),
            },
            "spec": {"helmReleases": releases}
        }))
        .expect("valid UpstartService")
    }

    fn release(name: &str, created: i64, spec: Value) -> HelmRelease {
        let mut object = json!({
            "apiVersion": "upstartoperators.upstart.com/v1alpha1",
            "kind": "HelmRelease",
            "metadata": {
                "name": name, "namespace": "pr-1",
                "creationTimestamp": format!("2026-01-01T00:00:{created:02}Z"),
            },
            "spec": {"chart": "charts/app"}
        });
        if let (Some(target), Some(extra)) = (object["spec"].as_object_mut(), spec.as_object()) {
            target.extend(extra.clone());
        }
        serde_json::from_value(object).expect("valid HelmRelease")
    }

    fn deps(plan: &Plan, key: &str) -> Vec<Value> {
        plan.keys[key]
            .spec
            .dependencies
            .iter()
            .map(|d| serde_json::to_value(d).expect("serialisable"))
            .collect()
    }

    #[test]
    fn sibling_dependency_becomes_the_sibling_child_keeping_the_written_name_as_alias() {
        let svc = service(
            "example-service",
            0,
            json!({
                "postgres": {"chart": "c/postgres"},
                "exampleService": {"chart": "c/app", "dependencies": [{"name": "postgres"}]}
            }),
        );
        let plan = plan(&svc, &[], &[]);
        assert_eq!(
            deps(&plan, "exampleService"),
            [json!({"name": "example-service-postgres", "kind": "HelmRelease", "as": "postgres"})]
        );
        assert_eq!(plan.keys["exampleService"].siblings, ["postgres"]);
        assert_eq!(
            plan.keys["exampleService"].child,
            "example-service-example-service"
        );
        assert_eq!(plan.order, ["postgres", "exampleService"]);
        assert!(plan.problems.is_empty());
    }

    #[test]
    fn release_name_defaults_to_the_key_in_kebab_case_and_an_explicit_one_wins() {
        let svc = service(
            "svc",
            0,
            json!({
                "exampleService": {"chart": "c/app"},
                "db": {"chart": "c/postgres", "releaseName": "postgres"}
            }),
        );
        let plan = plan(&svc, &[], &[]);
        assert_eq!(plan.keys["exampleService"].release_name, "example-service");
        assert_eq!(
            plan.keys["exampleService"].spec.release_name.as_deref(),
            Some("example-service")
        );
        assert_eq!(plan.keys["db"].release_name, "postgres");
    }

    #[test]
    fn dependency_on_another_service_or_a_standalone_release_gets_its_kind() {
        let svc = service(
            "svc",
            0,
            json!({"app": {"chart": "c/app", "dependencies": [
                {"name": "other"}, {"name": "launch-darkly", "as": "ld"}
            ]}}),
        );
        let other = service("other", 1, json!({"web": {"chart": "c/app"}}));
        let ld = release("launch-darkly", 2, json!({}));
        let plan = plan(&svc, &[other], &[ld]);
        assert_eq!(
            deps(&plan, "app"),
            [
                json!({"name": "other", "kind": "UpstartService", "as": "other"}),
                json!({"name": "launch-darkly", "kind": "HelmRelease", "as": "ld"}),
            ]
        );
        assert!(plan.problems.is_empty(), "{:?}", plan.problems);
    }

    #[test]
    fn environment_release_dependency_is_the_release_named_by_its_key_outside_an_environment() {
        let svc = service(
            "svc",
            0,
            json!({"app": {"chart": "c/app", "dependencies": [
                {"name": "launch-darkly", "kind": "EnvironmentRelease"}
            ]}}),
        );
        let ld = release("launch-darkly", 1, json!({}));
        let plan = plan(&svc, &[], &[ld]);
        assert!(plan.problems.is_empty(), "{:?}", plan.problems);
        assert_eq!(
            deps(&plan, "app"),
            [json!({"name": "launch-darkly", "kind": "HelmRelease", "as": "launch-darkly"})]
        );
    }

    #[test]
    fn missing_environment_release_waits_for_the_release_of_the_services_environment() {
        let mut svc = service(
            "svc",
            0,
            json!({"app": {"chart": "c/app", "dependencies": [
                {"name": "launch-darkly", "kind": "EnvironmentRelease"}
            ]}}),
        );
        svc.labels_mut()
            .insert(ENVIRONMENT_LABEL.to_owned(), "pr-1234".to_owned());
        let plan = plan(&svc, &[], &[]);
        assert_eq!(
            plan.problems,
            [Problem::UnknownEnvironmentRelease {
                key: "app".to_owned(),
                name: "launch-darkly".to_owned(),
                object: "pr-1234-launch-darkly".to_owned(),
            }]
        );
        assert!(
            !plan.problems[0].needs_spec_change(),
            "a wait, not a spec error"
        );
        // The child waits for the concrete release, which the HelmRelease operator can read.
        assert_eq!(
            deps(&plan, "app"),
            [
                json!({"name": "pr-1234-launch-darkly", "kind": "HelmRelease", "as": "launch-darkly"})
            ]
        );
    }

    #[test]
    fn unknown_dependency_is_kept_without_kind_and_reported_as_a_wait() {
        let svc = service(
            "svc",
            0,
            json!({"app": {"chart": "c/app", "dependencies": [{"name": "later"}]}}),
        );
        let plan = plan(&svc, &[], &[]);
        assert_eq!(
            deps(&plan, "app"),
            [json!({"name": "later", "as": "later"})]
        );
        assert_eq!(
            plan.problems,
            [Problem::UnknownDependency {
                key: "app".into(),
                name: "later".into()
            }]
        );
        assert!(!plan.problems[0].needs_spec_change());
        assert!(plan.problems[0].message().contains("app"));
        assert!(plan.problems[0].message().contains("later"));
        assert!(
            plan.keys["app"].withheld.is_none(),
            "the child is created and waits"
        );
    }

    #[test]
    fn name_of_both_a_service_and_a_release_is_ambiguous_without_kind() {
        let svc = service(
            "svc",
            0,
            json!({"app": {"chart": "c/app", "dependencies": [{"name": "db"}]}}),
        );
        let other = service("db", 1, json!({"x": {"chart": "c/app"}}));
        let db = release("db", 2, json!({}));
        let plan = plan(
            &svc,
            std::slice::from_ref(&other),
            std::slice::from_ref(&db),
        );
        assert!(
            matches!(&plan.problems[..], [Problem::AmbiguousDependency { key, name }] if key == "app" && name == "db")
        );
        assert_eq!(deps(&plan, "app"), [json!({"name": "db", "as": "db"})]);

        let with_kind = service(
            "svc",
            0,
            json!({"app": {"chart": "c/app", "dependencies": [{"name": "db", "kind": "HelmRelease"}]}}),
        );
        let plan = super::plan(&with_kind, &[other], &[db]);
        assert!(plan.problems.is_empty());
        assert_eq!(
            deps(&plan, "app"),
            [json!({"name": "db", "kind": "HelmRelease", "as": "db"})]
        );
    }

    #[test]
    fn own_children_stand_for_the_keys_and_are_not_standalone_releases() {
        let svc = service(
            "svc",
            0,
            json!({"db": {"chart": "c/postgres"}, "app": {"chart": "c/app", "dependencies": [{"name": "db"}]}}),
        );
        let mut child = release("svc-db", 5, json!({"releaseName": "db"}));
        child
            .labels_mut()
            .insert(SERVICE_LABEL.to_owned(), "svc".to_owned());
        let plan = plan(&svc, &[], &[child]);
        assert!(plan.problems.is_empty(), "{:?}", plan.problems);
    }

    #[test]
    fn cycle_across_two_services_is_reported_with_its_path_and_withholds_its_releases() {
        let a = service(
            "a",
            0,
            json!({"app": {"chart": "c/app", "dependencies": [{"name": "b"}]}, "free": {"chart": "c/app"}}),
        );
        let b = service(
            "b",
            1,
            json!({"web": {"chart": "c/app", "dependencies": [{"name": "a"}]}}),
        );
        let plan_a = plan(&a, std::slice::from_ref(&b), &[]);
        let cycle = plan_a
            .problems
            .iter()
            .find_map(|p| match p {
                Problem::Cycle { path } => Some(path.clone()),
                _ => None,
            })
            .expect("a cycle");
        for name in ["a/app", "b/web", " -> "] {
            assert!(cycle.contains(name), "{cycle}");
        }
        let steps: Vec<&str> = cycle.split(" -> ").collect();
        assert_eq!(steps.first(), steps.last(), "the path is closed: {cycle}");
        assert!(matches!(
            plan_a.keys["app"].withheld,
            Some(Problem::Cycle { .. })
        ));
        assert!(plan_a.keys["free"].withheld.is_none());
        let plan_b = plan(&b, &[a], &[]);
        assert!(matches!(
            plan_b.keys["web"].withheld,
            Some(Problem::Cycle { .. })
        ));
        assert!(
            plan_b.problems[0]
                .message()
                .starts_with("dependency cycle: ")
        );
    }

    #[test]
    fn release_name_conflict_is_lost_by_the_owner_created_later_and_names_both() {
        let first = service(
            "example-service",
            0,
            json!({"postgres": {"chart": "c/postgres"}}),
        );
        let second = service(
            "other-service",
            5,
            json!({"postgres": {"chart": "c/postgres"}}),
        );
        let plan_first = plan(&first, std::slice::from_ref(&second), &[]);
        assert!(plan_first.problems.is_empty());
        assert!(plan_first.keys["postgres"].withheld.is_none());
        let plan_second = plan(&second, &[first], &[]);
        let problem = plan_second.keys["postgres"]
            .withheld
            .clone()
            .expect("withheld");
        assert_eq!(
            problem.message(),
            "release name \"postgres\" of other-service/postgres is also used by example-service/postgres, which has it first"
        );
        assert!(problem.needs_spec_change());
    }

    #[test]
    fn installed_release_keeps_its_release_name_against_an_owner_created_earlier() {
        let earlier = service("a", 0, json!({"postgres": {"chart": "c/postgres"}}));
        let later = service("b", 5, json!({"postgres": {"chart": "c/postgres"}}));
        let mut installed = release("b-postgres", 6, json!({"releaseName": "postgres"}));
        installed
            .labels_mut()
            .insert(SERVICE_LABEL.to_owned(), "b".to_owned());
        installed.status =
            Some(serde_json::from_value(json!({"appliedDigest": "sha256:a"})).expect("valid"));
        let plan_earlier = plan(
            &earlier,
            std::slice::from_ref(&later),
            std::slice::from_ref(&installed),
        );
        assert!(matches!(
            &plan_earlier.keys["postgres"].withheld,
            Some(Problem::ReleaseNameConflict { other, .. }) if other == "b/postgres"
        ));
        let plan_later = plan(&later, &[earlier], &[installed]);
        assert!(plan_later.keys["postgres"].withheld.is_none());
    }

    #[test]
    fn standalone_release_created_first_keeps_its_release_name() {
        let svc = service("svc", 5, json!({"launchDarkly": {"chart": "c/ld"}}));
        let ld = release("my-env-ld", 0, json!({"releaseName": "launch-darkly"}));
        let plan = plan(&svc, &[], &[ld]);
        assert!(matches!(
            &plan.keys["launchDarkly"].withheld,
            Some(Problem::ReleaseNameConflict { other, .. }) if other == "my-env-ld"
        ));
    }

    #[test]
    fn helm_release_of_the_child_name_not_managed_by_the_service_is_not_taken_over() {
        let svc = service("svc", 0, json!({"db": {"chart": "c/postgres"}}));
        let foreign = release("svc-db", 1, json!({"releaseName": "other"}));
        let plan = plan(&svc, &[], &[foreign]);
        assert!(matches!(
            plan.keys["db"].withheld,
            Some(Problem::NameTaken { .. })
        ));
        assert_eq!(plan.problems.len(), 1);
    }

    #[test]
    fn keys_equal_in_kebab_case_cannot_both_have_a_child() {
        let svc = service(
            "svc",
            0,
            json!({"fooBar": {"chart": "c/a", "releaseName": "one"}, "foo-bar": {"chart": "c/a", "releaseName": "two"}}),
        );
        let plan = plan(&svc, &[], &[]);
        let withheld: Vec<&String> = plan
            .keys
            .iter()
            .filter(|(_, p)| p.withheld.is_some())
            .map(|(k, _)| k)
            .collect();
        assert_eq!(withheld.len(), 1);
        assert_eq!(plan.problems.len(), 1);
    }

    #[test]
    fn services_of_other_namespaces_are_ignored() {
        let svc = service(
            "svc",
            0,
            json!({"app": {"chart": "c/app", "dependencies": [{"name": "elsewhere"}]}}),
        );
        let mut other = service("elsewhere", 0, json!({"x": {"chart": "c/a"}}));
        other.metadata.namespace = Some("pr-2".into());
        let plan = plan(&svc, &[other], &[]);
        assert!(matches!(
            &plan.problems[..],
            [Problem::UnknownDependency { .. }]
        ));
    }

    mod properties {
        use proptest::prelude::*;

        use super::*;

        /// Up to 8 keys, each depending on some of the others (by key name).
        fn sibling_graphs() -> impl Strategy<Value = Vec<Vec<usize>>> {
            (1usize..8).prop_flat_map(|n| {
                proptest::collection::vec(proptest::collection::vec(0..n, 0..4), n)
            })
        }

        fn service_of(graph: &[Vec<usize>]) -> UpstartService {
            let releases: serde_json::Map<String, Value> = graph
                .iter()
                .enumerate()
                .map(|(i, deps)| {
                    let mut deps: Vec<usize> = deps.clone();
                    deps.sort_unstable();
                    deps.dedup();
                    let deps: Vec<Value> = deps
                        .iter()
                        .map(|d| json!({"name": format!("k{d}")}))
                        .collect();
                    (
                        format!("k{i}"),
                        json!({"chart": "c/x", "dependencies": deps}),
                    )
                })
                .collect();
            service("svc", 0, Value::Object(releases))
        }

        /// Whether key `start` can reach itself through one or more dependencies.
        fn reaches_itself(graph: &[Vec<usize>], start: usize) -> bool {
            let mut seen = vec![false; graph.len()];
            let mut stack: Vec<usize> = graph[start].clone();
            while let Some(next) = stack.pop() {
                if next == start {
                    return true;
                }
                if !std::mem::replace(&mut seen[next], true) {
                    stack.extend(&graph[next]);
                }
            }
            false
        }

        proptest! {
            #[test]
            fn siblings_resolve_and_the_order_respects_them_unless_on_a_cycle(graph in sibling_graphs()) {
                let svc = service_of(&graph);
                let plan = plan(&svc, &[], &[]);
                let only_cycles = plan.problems.iter().all(|p| matches!(p, Problem::Cycle { .. }));
                prop_assert!(only_cycles, "{:?}", plan.problems);
                let position = |key: &str| plan.order.iter().position(|k| k == key).expect("every key is ordered");
                prop_assert_eq!(plan.order.len(), graph.len());
                for (key, key_plan) in &plan.keys {
                    for dependency in &key_plan.spec.dependencies {
                        prop_assert_eq!(dependency.kind, Some(DependencyKind::HelmRelease));
                        prop_assert_eq!(&dependency.name, &child_name("svc", dependency.alias()));
                    }
                    let on_cycle = matches!(key_plan.withheld, Some(Problem::Cycle { .. }));
                    if !on_cycle {
                        for sibling in &key_plan.siblings {
                            let sibling_on_cycle = plan.keys[sibling].withheld.is_some();
                            prop_assert!(sibling_on_cycle || position(sibling) < position(key), "{} before {}", sibling, key);
                        }
                    }
                    let index: usize = key[1..].parse().expect("k<index>");
                    prop_assert_eq!(on_cycle, reaches_itself(&graph, index), "{}", key);
                }
                prop_assert_eq!(
                    plan.problems.is_empty(),
                    (0..graph.len()).all(|i| !reaches_itself(&graph, i))
                );
            }

            #[test]
            fn plan_does_not_depend_on_the_order_the_namespace_is_listed_in(graph in sibling_graphs()) {
                let svc = service_of(&graph);
                let a = service("a", 1, json!({"x": {"chart": "c/x", "dependencies": [{"name": "svc"}]}}));
                let b = service("b", 2, json!({"y": {"chart": "c/x", "releaseName": "k0"}}));
                let r = release("r", 3, json!({"dependencies": [{"name": "a"}]}));
                let q = release("q", 4, json!({}));
                let one = plan(&svc, &[a.clone(), b.clone()], &[r.clone(), q.clone()]);
                let two = plan(&svc, &[b, a], &[q, r]);
                prop_assert_eq!(one, two);
            }
        }
    }
}
