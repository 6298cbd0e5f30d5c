//! Reverse-dependency teardown (SPEC §4, §2.8): the graph of an environment's services and
//! releases, which objects to delete next so that dependents always go before what they
//! depend on, and which removals to hold back because something staying depends on them.
//! Pure: the controller deletes a level, waits until its objects are gone, asks again.

use std::collections::{BTreeMap, BTreeSet};

use upstart_api::v1alpha1::{Dependency, UpstartServiceSpec};
use upstart_dag::{DependencyGraph, GraphInput, NodeId, NodeKind};

/// The graph of an environment's namespace: its services (with their child releases) and its
/// environment-wide releases (whose dependencies are already concrete object names).
pub fn environment_graph<'a>(
    services: impl IntoIterator<Item = (&'a str, &'a UpstartServiceSpec)>,
    releases: impl IntoIterator<Item = (&'a str, &'a [Dependency])>,
) -> DependencyGraph {
    let mut input = GraphInput::new();
    for (name, spec) in services {
        input.add_service(name, spec);
    }
    for (name, dependencies) in releases {
        input.add_release(name, dependencies);
    }
    DependencyGraph::build(&input)
}

/// The objects to delete now, out of those still `present` that are to be torn down: the ones
/// of the first teardown level (dependents first) that still holds any. Objects the graph does
/// not know go first, since nothing the graph knows can depend on them. Empty: all gone.
pub fn next_level(
    graph: &DependencyGraph,
    doomed: impl Fn(&NodeId) -> bool,
    present: &BTreeSet<NodeId>,
) -> Vec<NodeId> {
    let unknown: Vec<NodeId> = present
        .iter()
        .filter(|n| doomed(n) && !graph.contains(n))
        .cloned()
        .collect();
    if !unknown.is_empty() {
        return unknown;
    }
    for level in graph.ordering().teardown_levels {
        let now: Vec<NodeId> = level
            .into_iter()
            .filter(|n| doomed(n) && present.contains(n))
            .collect();
        if !now.is_empty() {
            return now;
        }
    }
    Vec::new()
}

/// Of the services and environment releases to remove (`leaving`: services as
/// [`NodeId::service`], environment releases as [`NodeId::release`]), those that something
/// staying still depends on, each with what depends on it (the names users know, sorted).
///
/// These stay as they are: removed, their releases would wait in `Deleting` for dependents
/// that are never going (SPEC §2.8), and the dependents would lose what they run on. Anything
/// that a held one depends on is held too, for the same reason.
pub fn held_back(graph: &DependencyGraph, leaving: &[NodeId]) -> BTreeMap<NodeId, Vec<String>> {
    // A service leaves with its releases (the only nodes a service node depends on).
    let units: Vec<(&NodeId, BTreeSet<NodeId>)> = leaving
        .iter()
        .map(|unit| {
            let mut nodes: BTreeSet<NodeId> = BTreeSet::from([unit.clone()]);
            if unit.kind == NodeKind::UpstartService {
                nodes.extend(graph.depends_on(unit));
            }
            (unit, nodes)
        })
        .collect();
    let mut held: BTreeMap<NodeId, Vec<String>> = BTreeMap::new();
    loop {
        let going: BTreeSet<&NodeId> = units
            .iter()
            .filter(|(unit, _)| !held.contains_key(*unit))
            .flat_map(|(_, nodes)| nodes)
            .collect();
        let mut changed = false;
        for (unit, nodes) in &units {
            if held.contains_key(*unit) {
                continue;
            }
            let staying: BTreeSet<String> = nodes
                .iter()
                .flat_map(|node| graph.dependents(node))
                .filter(|dependent| !going.contains(dependent))
                .map(|dependent| {
                    graph
                        .label(&dependent)
                        .map_or_else(|| dependent.name.clone(), str::to_owned)
                })
                .collect();
            if !staying.is_empty() {
                held.insert((*unit).clone(), staying.into_iter().collect());
                changed = true;
            }
        }
        if !changed {
            return held;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;

    use super::*;

    fn spec(value: serde_json::Value) -> UpstartServiceSpec {
        serde_json::from_value(value).expect("valid spec")
    }

    /// `app` (service `app`, release `api`) depends on the service `db` and the environment
    /// release `env-ld`; `db` has one release.
    fn graph() -> DependencyGraph {
        let app = spec(
            json!({"helmReleases": {"api": {"chart": "r/a", "dependencies": [
            {"name": "db", "kind": "UpstartService"}, {"name": "env-ld", "kind": "HelmRelease"}]}}}),
        );
        let db = spec(json!({"helmReleases": {"postgres": {"chart": "r/p"}}}));
        let services = BTreeMap::from([("app".to_owned(), app), ("db".to_owned(), db)]);
        environment_graph(
            services.iter().map(|(n, s)| (n.as_str(), s)),
            [("env-ld", [].as_slice())],
        )
    }

    fn everything() -> BTreeSet<NodeId> {
        BTreeSet::from([
            NodeId::service("app"),
            NodeId::service("db"),
            NodeId::release("env-ld"),
        ])
    }

    #[test]
    fn dependents_are_torn_down_before_their_dependencies() {
        let graph = graph();
        let mut present = everything();
        let mut order = Vec::new();
        loop {
            let level = next_level(&graph, |_| true, &present);
            if level.is_empty() {
                break;
            }
            for node in &level {
                present.remove(node);
            }
            order.push(level);
        }
        assert_eq!(
            order,
            vec![
                vec![NodeId::service("app")],
                vec![NodeId::service("db")],
                vec![NodeId::release("env-ld")],
            ]
        );
    }

    #[test]
    fn a_level_is_repeated_until_its_objects_are_gone() {
        let graph = graph();
        let present = everything();
        assert_eq!(
            next_level(&graph, |_| true, &present),
            vec![NodeId::service("app")]
        );
        assert_eq!(
            next_level(&graph, |_| true, &present),
            vec![NodeId::service("app")],
            "nothing moves on while app is still there"
        );
    }

    #[test]
    fn only_doomed_objects_are_deleted() {
        let graph = graph();
        let level = next_level(&graph, |n| n.name == "db", &everything());
        assert_eq!(level, vec![NodeId::service("db")]);
    }

    #[test]
    fn objects_unknown_to_the_graph_go_first() {
        let graph = graph();
        let mut present = everything();
        present.insert(NodeId::release("stray"));
        assert_eq!(
            next_level(&graph, |_| true, &present),
            vec![NodeId::release("stray")]
        );
    }

    #[test]
    fn a_removal_something_staying_depends_on_is_held_back_naming_the_dependents() {
        let graph = graph();
        let held = held_back(&graph, &[NodeId::service("db")]);
        assert_eq!(
            held,
            BTreeMap::from([(NodeId::service("db"), vec!["app/api".to_owned()])])
        );
        let held = held_back(&graph, &[NodeId::release("env-ld")]);
        assert_eq!(held[&NodeId::release("env-ld")], vec!["app/api".to_owned()]);
    }

    #[test]
    fn dependents_leaving_too_release_the_hold() {
        let graph = graph();
        let all = [
            NodeId::service("app"),
            NodeId::service("db"),
            NodeId::release("env-ld"),
        ];
        assert!(held_back(&graph, &all).is_empty());
        assert!(held_back(&graph, &[NodeId::service("app")]).is_empty());
    }

    #[test]
    fn what_a_held_removal_depends_on_is_held_too() {
        // app depends on db and env-ld; removing db and env-ld while app stays holds both,
        // and env-ld would also be held if only db kept needing it.
        let graph = graph();
        let held = held_back(&graph, &[NodeId::service("db"), NodeId::release("env-ld")]);
        assert_eq!(held.len(), 2, "{held:?}");
        let db = spec(json!({"helmReleases": {"postgres": {"chart": "r/p",
            "dependencies": [{"name": "env-ld", "kind": "HelmRelease"}]}}}));
        let app = spec(json!({"helmReleases": {"api": {"chart": "r/a",
            "dependencies": [{"name": "db", "kind": "UpstartService"}]}}}));
        let services = BTreeMap::from([("app".to_owned(), app), ("db".to_owned(), db)]);
        let graph = environment_graph(
            services.iter().map(|(n, s)| (n.as_str(), s)),
            [("env-ld", [].as_slice())],
        );
        let held = held_back(&graph, &[NodeId::service("db"), NodeId::release("env-ld")]);
        assert_eq!(held[&NodeId::service("db")], vec!["app/api".to_owned()]);
        assert_eq!(
            held[&NodeId::release("env-ld")],
            vec!["db/postgres".to_owned()],
            "env-ld stays because held db still needs it"
        );
    }

    #[test]
    fn nothing_present_means_done() {
        assert!(next_level(&graph(), |_| true, &BTreeSet::new()).is_empty());
    }
}
