//! Reverse-dependency teardown (SPEC §4, §2.8): the graph of an environment's services and
//! releases, and which objects to delete next so that dependents always go before what they
//! depend on. Pure: the controller deletes a level, waits until its objects are gone, asks
//! again.

use std::collections::BTreeSet;

use upstart_api::v1alpha1::{Dependency, UpstartServiceSpec};
use upstart_dag::{DependencyGraph, GraphInput, NodeId};

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
    fn nothing_present_means_done() {
        assert!(next_level(&graph(), |_| true, &BTreeSet::new()).is_empty());
    }
}
