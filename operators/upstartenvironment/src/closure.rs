//! Dependency closure: the dependencies of an environment's releases that name nothing of the
//! environment, resolved by the same rules as the service operator's ([`DependencyGraph`]).
//! A name the catalog has a template of is added as a service (with `spec.closure`, the
//! default), transitively; any other is a problem that names the release, the dependency and
//! the fix, instead of a release waiting for ever. Pure.

use std::collections::{BTreeMap, BTreeSet};

use upstart_api::v1alpha1::{AddedService, Dependency, UpstartServiceSpec};
use upstart_dag::{DependencyGraph, GraphInput, NodeId};

use crate::children::Problem;
use crate::constants::reasons;

/// An unresolved dependency of one release, as the graph reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unresolved {
    /// The release declaring it, as users know it (`service/key`, or an environment release's
    /// object name).
    pub release: String,
    /// The name it asks for.
    pub name: String,
    /// The kind given (`HelmRelease`, `UpstartService`, `environment release`), if any.
    pub kind: Option<&'static str>,
}

impl Unresolved {
    /// Whether a service of that name would satisfy it: the closure may add only services.
    pub fn wants_a_service(&self) -> bool {
        matches!(self.kind, None | Some("UpstartService"))
    }

    /// The service the declaring release belongs to, if it is a service's.
    fn service(&self) -> Option<&str> {
        self.release.split_once('/').map(|(service, _)| service)
    }
}

/// The services and releases a graph is built from: the environment's (built so far) and
/// those of the namespace it does not manage.
#[derive(Clone, Debug, Default)]
pub struct Members<'a> {
    /// UpstartServices by name with their specs.
    pub services: Vec<(&'a str, &'a UpstartServiceSpec)>,
    /// Standalone HelmReleases by object name with their (concrete) dependencies.
    pub releases: Vec<(&'a str, &'a [Dependency])>,
}

impl Members<'_> {
    /// The graph of these members, dependency names resolved.
    pub fn graph(&self) -> DependencyGraph {
        let mut input = GraphInput::new();
        for (name, spec) in &self.services {
            input.add_service(name, spec);
        }
        for (name, dependencies) in &self.releases {
            input.add_release(name, dependencies);
        }
        DependencyGraph::build(&input)
    }
}

/// Every dependency of `graph` that resolved to nothing, declared by a release of one of
/// `ours` (service names) or by one of `our_releases`: those of objects the environment does
/// not manage are not its to report.
pub fn unresolved(
    graph: &DependencyGraph,
    ours: &BTreeSet<String>,
    our_releases: &BTreeSet<String>,
) -> Vec<Unresolved> {
    graph
        .problems()
        .iter()
        .filter_map(|problem| match problem {
            upstart_dag::Error::UnknownDependency {
                release,
                name,
                kind,
            } => Some(Unresolved {
                release: release.clone(),
                name: name.clone(),
                kind: *kind,
            }),
            upstart_dag::Error::UnknownEnvironmentRelease {
                release, object, ..
            } => Some(Unresolved {
                release: release.clone(),
                name: object.clone(),
                kind: Some("HelmRelease"),
            }),
            _ => None,
        })
        .filter(|u| match u.service() {
            Some(service) => ours.contains(service),
            None => our_releases.contains(&u.release),
        })
        .collect()
}

/// What the environment knows of a name no member resolves.
#[derive(Clone, Debug)]
pub struct Known<'a> {
    /// Whether `spec.closure` is on.
    pub closure: bool,
    /// Catalog templates by name.
    pub catalog: &'a BTreeMap<String, UpstartServiceSpec>,
    /// Services listed with `enabled: false`.
    pub disabled: BTreeSet<String>,
    /// Services listed and enabled that could not be built (their problems are reported).
    pub unbuilt: BTreeSet<String>,
    /// Services and releases of the environment still in the namespace though no longer
    /// wanted (held by their dependents, or on their way out): reported by the removal.
    pub leaving: BTreeSet<String>,
}

impl<'a> Known<'a> {
    /// The closure on or off over `catalog`, with nothing disabled, unbuilt or leaving.
    pub fn new(closure: bool, catalog: &'a BTreeMap<String, UpstartServiceSpec>) -> Self {
        Known {
            closure,
            catalog,
            disabled: BTreeSet::new(),
            unbuilt: BTreeSet::new(),
            leaving: BTreeSet::new(),
        }
    }
}

/// What to do about one unresolved dependency.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Add the service of that name from the catalog.
    Add,
    /// Someone else reports it already (an unbuilt service, a removal held back).
    Reported,
    /// A problem naming the release, the dependency and the fix.
    Missing(Problem),
}

/// The verdict on one unresolved dependency.
pub fn verdict(unresolved: &Unresolved, known: &Known<'_>) -> Verdict {
    let Unresolved { release, name, .. } = unresolved;
    let problem = |fix: String| {
        Verdict::Missing(Problem {
            service: unresolved.service().unwrap_or(release).to_owned(),
            reason: reasons::MISSING_DEPENDENCY,
            message: format!("release {release} depends on {name}, {fix}"),
        })
    };
    if known.unbuilt.contains(name) {
        return Verdict::Reported;
    }
    if unresolved.wants_a_service() && known.disabled.contains(name) {
        if known.leaving.contains(name) {
            return Verdict::Reported;
        }
        return problem(
            "which is disabled in spec.services (its enabled is false); enable it, or drop \
             the dependency"
                .to_owned(),
        );
    }
    let in_catalog = unresolved.wants_a_service() && known.catalog.contains_key(name);
    if in_catalog && known.closure {
        return Verdict::Add;
    }
    if known.leaving.contains(name) {
        return Verdict::Reported;
    }
    if in_catalog {
        return problem(format!(
            "which the environment does not have; the catalog has a template of that name: \
             list {name} in spec.services, or leave spec.closure unset (true) so that it is \
             added"
        ));
    }
    match unresolved.kind {
        Some("HelmRelease") => problem(
            "a HelmRelease the environment does not have; add it to spec.helmReleases (a \
             release of key KEY is named <environment>-KEY), or fix the dependency"
                .to_owned(),
        ),
        _ => problem(
            "which is neither a service nor a release of the environment, nor a template of \
             the catalog; list the service in spec.services, publish its template to the \
             catalog, or fix the dependency"
                .to_owned(),
        ),
    }
}

/// The services added by the closure, each with the releases that depend on it in `graph`
/// (the final one: a service added for one release may be needed by others too).
pub fn added_services(graph: &DependencyGraph, added: &BTreeSet<String>) -> Vec<AddedService> {
    added
        .iter()
        .map(|name| {
            let node = NodeId::service(name.as_str());
            let mut required_by: Vec<String> = graph
                .dependents(&node)
                .iter()
                .filter_map(|d| graph.label(d).map(str::to_owned))
                .collect();
            required_by.sort();
            required_by.dedup();
            AddedService {
                name: name.clone(),
                required_by,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn spec(releases: serde_json::Value) -> UpstartServiceSpec {
        serde_json::from_value(json!({"helmReleases": releases})).expect("valid spec")
    }

    fn dependency_on(name: &str, kind: Option<&'static str>) -> Unresolved {
        Unresolved {
            release: "web/app".to_owned(),
            name: name.to_owned(),
            kind,
        }
    }

    #[test]
    fn a_dependency_on_an_unknown_service_of_ours_is_unresolved_and_foreign_ones_are_not_ours() {
        let web = spec(json!({
            "db": {"chart": "c/db"},
            "app": {"chart": "c/app", "dependencies": [{"name": "db"}, {"name": "auth"}]}
        }));
        let hand = spec(json!({"x": {"chart": "c/x", "dependencies": [{"name": "nope"}]}}));
        let deps = [Dependency {
            name: "pr-1-flags".into(),
            kind: Some(upstart_api::v1alpha1::DependencyKind::HelmRelease),
            alias: Some("flags".into()),
        }];
        let members = Members {
            services: vec![("web", &web), ("hand", &hand)],
            releases: vec![("pr-1-ld", &deps)],
        };
        let graph = members.graph();
        let found = unresolved(
            &graph,
            &BTreeSet::from(["web".to_owned()]),
            &BTreeSet::from(["pr-1-ld".to_owned()]),
        );
        assert_eq!(
            found,
            [
                Unresolved {
                    release: "web/app".into(),
                    name: "auth".into(),
                    kind: None
                },
                Unresolved {
                    release: "pr-1-ld".into(),
                    name: "pr-1-flags".into(),
                    kind: Some("HelmRelease")
                }
            ]
        );
    }

    #[test]
    fn a_catalog_template_is_added_with_closure_and_reported_without_it() {
        let catalog = BTreeMap::from([("auth".to_owned(), spec(json!({})))]);
        let mut known = Known::new(true, &catalog);
        assert_eq!(verdict(&dependency_on("auth", None), &known), Verdict::Add);
        assert_eq!(
            verdict(&dependency_on("auth", Some("UpstartService")), &known),
            Verdict::Add
        );
        known.closure = false;
        let Verdict::Missing(problem) = verdict(&dependency_on("auth", None), &known) else {
            panic!("reported")
        };
        assert_eq!(problem.reason, reasons::MISSING_DEPENDENCY);
        assert_eq!(problem.service, "web");
        assert!(
            problem.message.starts_with(
                "release web/app depends on auth, which the environment does not have"
            ),
            "{}",
            problem.message
        );
        assert!(
            problem.message.contains("spec.closure"),
            "{}",
            problem.message
        );
    }

    #[test]
    fn a_helmrelease_dependency_is_never_satisfied_by_adding_a_service() {
        let catalog = BTreeMap::from([("auth".to_owned(), spec(json!({})))]);
        let known = Known::new(true, &catalog);
        let Verdict::Missing(problem) =
            verdict(&dependency_on("auth", Some("HelmRelease")), &known)
        else {
            panic!("reported")
        };
        assert!(
            problem.message.contains("spec.helmReleases"),
            "{}",
            problem.message
        );
    }

    #[test]
    fn a_name_nobody_has_is_missing_with_the_ways_to_fix_it() {
        let catalog = BTreeMap::new();
        let known = Known::new(true, &catalog);
        let Verdict::Missing(problem) = verdict(&dependency_on("ghost", None), &known) else {
            panic!("reported")
        };
        assert!(
            problem.message.contains("nor a template of the catalog"),
            "{}",
            problem.message
        );
    }

    #[test]
    fn a_disabled_service_is_not_added_and_is_reported_unless_its_removal_is_held_already() {
        let catalog = BTreeMap::from([("auth".to_owned(), spec(json!({})))]);
        let mut known = Known {
            disabled: BTreeSet::from(["auth".to_owned()]),
            ..Known::new(true, &catalog)
        };
        let Verdict::Missing(problem) = verdict(&dependency_on("auth", None), &known) else {
            panic!("reported")
        };
        assert!(problem.message.contains("disabled"), "{}", problem.message);
        known.leaving.insert("auth".to_owned());
        assert_eq!(
            verdict(&dependency_on("auth", None), &known),
            Verdict::Reported
        );
    }

    #[test]
    fn a_removed_service_still_depended_on_comes_back_from_the_catalog_with_closure() {
        let catalog = BTreeMap::from([("auth".to_owned(), spec(json!({})))]);
        let mut known = Known {
            leaving: BTreeSet::from(["auth".to_owned(), "inline".to_owned()]),
            ..Known::new(true, &catalog)
        };
        assert_eq!(verdict(&dependency_on("auth", None), &known), Verdict::Add);
        assert_eq!(
            verdict(&dependency_on("inline", None), &known),
            Verdict::Reported,
            "the removal reports what it holds back"
        );
        known.unbuilt.insert("auth".to_owned());
        assert_eq!(
            verdict(&dependency_on("auth", None), &known),
            Verdict::Reported
        );
    }

    #[test]
    fn an_added_service_names_every_release_that_depends_on_it() {
        let web = spec(json!({
            "app": {"chart": "c/app", "dependencies": [{"name": "auth"}]},
            "worker": {"chart": "c/w", "dependencies": [{"name": "auth", "kind": "UpstartService"}]}
        }));
        let auth = spec(json!({"api": {"chart": "c/auth"}}));
        let members = Members {
            services: vec![("web", &web), ("auth", &auth)],
            releases: vec![],
        };
        let added = added_services(&members.graph(), &BTreeSet::from(["auth".to_owned()]));
        assert_eq!(
            added,
            [AddedService {
                name: "auth".into(),
                required_by: vec!["web/app".into(), "web/worker".into()]
            }]
        );
    }
}
