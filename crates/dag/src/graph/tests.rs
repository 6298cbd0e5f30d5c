//! Unit and property tests of name resolution, ordering, cycles, blocking and critical paths.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::Duration;

use proptest::prelude::*;

use super::*;
use upstart_failure::Classify;

fn dep(name: &str) -> Dependency {
    Dependency {
        name: name.to_owned(),
        kind: None,
        alias: None,
    }
}

fn dep_kind(name: &str, kind: DependencyKind) -> Dependency {
    Dependency {
        name: name.to_owned(),
        kind: Some(kind),
        alias: None,
    }
}

fn dep_as(name: &str, alias: &str) -> Dependency {
    Dependency {
        name: name.to_owned(),
        kind: None,
        alias: Some(alias.to_owned()),
    }
}

fn service(input: &mut GraphInput, name: &str, releases: &[(&str, Vec<Dependency>)]) {
    input.add_service_releases(
        name,
        releases.iter().map(|(k, d)| ((*k).to_owned(), d.clone())),
    );
}

fn r(name: &str) -> NodeId {
    NodeId::release(name)
}

fn s(name: &str) -> NodeId {
    NodeId::service(name)
}

/// Releases named `n0..` with dependencies given by index.
fn chain_input(edges: &[(usize, usize)], count: usize) -> GraphInput {
    let mut dependencies: Vec<Vec<Dependency>> = vec![Vec::new(); count];
    for &(from, to) in edges {
        dependencies[from].push(dep(&format!("n{to}")));
    }
    let mut input = GraphInput::new();
    for (i, deps) in dependencies.iter().enumerate() {
        input.add_release(&format!("n{i}"), deps);
    }
    input
}

#[test]
fn a_dependency_on_a_sibling_key_resolves_to_the_siblings_child_release() {
    let mut input = GraphInput::new();
    service(
        &mut input,
        "example-service",
        &[
            ("postgres", vec![]),
            ("exampleService", vec![dep("postgres")]),
        ],
    );
    let graph = DependencyGraph::build(&input);
    assert!(graph.problems().is_empty(), "{:?}", graph.problems());
    assert_eq!(
        graph.dependencies(&r("example-service-example-service")),
        &[ResolvedDependency {
            name: "postgres".to_owned(),
            alias: "postgres".to_owned(),
            target: r("example-service-postgres"),
        }]
    );
    assert_eq!(
        graph.label(&r("example-service-example-service")),
        Some("example-service/exampleService")
    );
}

#[test]
fn a_sibling_key_wins_over_a_namespace_object_of_the_same_name() {
    let mut input = GraphInput::new();
    input.add_release("postgres", &[]);
    service(
        &mut input,
        "svc",
        &[("postgres", vec![]), ("app", vec![dep("postgres")])],
    );
    let graph = DependencyGraph::build(&input);
    assert!(graph.problems().is_empty());
    assert_eq!(
        graph.dependencies(&r("svc-app"))[0].target,
        r("svc-postgres")
    );
}

#[test]
fn the_alias_is_kept_for_expressions() {
    let mut input = GraphInput::new();
    input.add_release("example-redis", &[]);
    input.add_release("app", &[dep_as("example-redis", "redis")]);
    let graph = DependencyGraph::build(&input);
    assert_eq!(graph.dependencies(&r("app"))[0].alias, "redis");
    assert_eq!(graph.dependencies(&r("app"))[0].name, "example-redis");
}

#[test]
fn depending_on_a_service_means_waiting_for_all_of_its_releases() {
    let mut input = GraphInput::new();
    service(
        &mut input,
        "another-upstart-service",
        &[("db", vec![]), ("api", vec![dep("db")])],
    );
    input.add_release("app", &[dep("another-upstart-service")]);
    let graph = DependencyGraph::build(&input);
    assert_eq!(
        graph.dependencies(&r("app"))[0].target,
        s("another-upstart-service")
    );
    assert_eq!(
        graph.depends_on(&s("another-upstart-service")),
        vec![
            r("another-upstart-service-api"),
            r("another-upstart-service-db")
        ]
    );
    assert_eq!(
        graph.ordering().install_levels,
        vec![
            vec![r("another-upstart-service-db")],
            vec![r("another-upstart-service-api")],
            vec![s("another-upstart-service")],
            vec![r("app")],
        ]
    );
}

#[test]
fn environment_releases_are_found_by_their_object_name() {
    let mut input = GraphInput::new();
    let spec = HelmReleaseSpec {
        chart: "upstart-charts/launch-darkly".to_owned(),
        ..Default::default()
    };
    input.add_environment(
        "my-environment-name",
        &BTreeMap::from([("launch-darkly".to_owned(), spec)]),
    );
    service(
        &mut input,
        "svc",
        &[("app", vec![dep("my-environment-name-launch-darkly")])],
    );
    let graph = DependencyGraph::build(&input);
    assert!(graph.problems().is_empty(), "{:?}", graph.problems());
    assert_eq!(
        graph.dependencies(&r("svc-app"))[0].target,
        r("my-environment-name-launch-darkly")
    );
    assert_eq!(
        graph.label(&r("my-environment-name-launch-darkly")),
        Some("my-environment-name-launch-darkly")
    );
}

#[test]
fn environment_release_dependency_is_the_environment_child_of_its_key_in_any_environment() {
    for environment in ["my-environment-name", "pr-1234"] {
        let mut input = GraphInput::new();
        let spec = HelmReleaseSpec {
            chart: "upstart-charts/launch-darkly".to_owned(),
            ..Default::default()
        };
        input.add_environment(
            environment,
            &BTreeMap::from([("launch-darkly".to_owned(), spec)]),
        );
        service(
            &mut input,
            "svc",
            &[(
                "app",
                vec![dep_kind(
                    "launch-darkly",
                    DependencyKind::EnvironmentRelease,
                )],
            )],
        );
        let graph = DependencyGraph::build(&input);
        assert!(graph.problems().is_empty(), "{:?}", graph.problems());
        let resolved = &graph.dependencies(&r("svc-app"))[0];
        assert_eq!(resolved.target, r(&format!("{environment}-launch-darkly")));
        assert_eq!(resolved.alias, "launch-darkly", "expressions keep the key");
    }
}

#[test]
fn environment_release_dependency_outside_an_environment_is_the_release_named_by_the_key() {
    let mut input = GraphInput::new();
    input.add_release("launch-darkly", &[]);
    service(
        &mut input,
        "svc",
        &[(
            "app",
            vec![dep_kind(
                "launch-darkly",
                DependencyKind::EnvironmentRelease,
            )],
        )],
    );
    let graph = DependencyGraph::build(&input);
    assert!(graph.problems().is_empty(), "{:?}", graph.problems());
    assert_eq!(
        graph.dependencies(&r("svc-app"))[0].target,
        r("launch-darkly")
    );
}

#[test]
fn missing_environment_release_is_reported_with_the_release_it_stands_for() {
    let mut input = GraphInput::new();
    input.add_environment("pr-1234", &BTreeMap::new());
    // A sibling key of the same name is not the environment release.
    service(
        &mut input,
        "svc",
        &[
            (
                "app",
                vec![dep_kind(
                    "launch-darkly",
                    DependencyKind::EnvironmentRelease,
                )],
            ),
            ("launch-darkly", vec![]),
        ],
    );
    let graph = DependencyGraph::build(&input);
    let problem = &graph.problems()[0];
    assert_eq!(
        problem,
        &Error::UnknownEnvironmentRelease {
            release: "svc/app".to_owned(),
            key: "launch-darkly".to_owned(),
            object: "pr-1234-launch-darkly".to_owned(),
        }
    );
    assert!(problem.is_wait());
    assert!(
        problem
            .to_string()
            .contains("declare launch-darkly in the environment's helmReleases"),
        "{problem}"
    );
}

#[test]
fn environment_releases_resolve_each_others_keys_first() {
    let mut input = GraphInput::new();
    let db = HelmReleaseSpec {
        chart: "c/db".to_owned(),
        ..Default::default()
    };
    let api = HelmReleaseSpec {
        chart: "c/api".to_owned(),
        dependencies: vec![dep("db")],
        ..Default::default()
    };
    input.add_environment(
        "env",
        &BTreeMap::from([("db".to_owned(), db), ("api".to_owned(), api)]),
    );
    let graph = DependencyGraph::build(&input);
    assert_eq!(graph.dependencies(&r("env-api"))[0].target, r("env-db"));
}

#[test]
fn a_name_matching_a_service_and_a_release_is_ambiguous_unless_kind_is_given() {
    let mut input = GraphInput::new();
    input.add_release("shared", &[]);
    service(&mut input, "shared", &[("x", vec![])]);
    input.add_release("a", &[dep("shared")]);
    input.add_release("b", &[dep_kind("shared", DependencyKind::UpstartService)]);
    input.add_release("c", &[dep_kind("shared", DependencyKind::HelmRelease)]);
    let graph = DependencyGraph::build(&input);
    assert_eq!(
        graph.problems(),
        &[Error::AmbiguousDependency {
            release: "a".to_owned(),
            name: "shared".to_owned()
        }]
    );
    assert!(graph.problems()[0].needs_spec_change());
    assert_eq!(graph.unresolved(&r("a")), &["shared".to_owned()]);
    assert_eq!(graph.dependencies(&r("b"))[0].target, s("shared"));
    assert_eq!(graph.dependencies(&r("c"))[0].target, r("shared"));
}

#[test]
fn unknown_names_are_reported_as_waits_and_the_rest_of_the_graph_is_built() {
    let mut input = GraphInput::new();
    service(
        &mut input,
        "svc",
        &[
            ("db", vec![]),
            ("app", vec![dep("db"), dep("not-yet-created")]),
        ],
    );
    input.add_release("x", &[dep_kind("db", DependencyKind::UpstartService)]);
    let graph = DependencyGraph::build(&input);
    let messages: Vec<String> = graph.problems().iter().map(ToString::to_string).collect();
    assert_eq!(
        messages,
        [
            "svc/app: dependency not-yet-created matches no release key, UpstartService or HelmRelease",
            "x: dependency db matches no release key, UpstartService or HelmRelease (kind UpstartService)",
        ]
    );
    assert!(graph.problems().iter().all(Error::is_wait));
    assert_eq!(graph.dependencies(&r("svc-app")).len(), 1);
    assert_eq!(
        graph.unresolved(&r("svc-app")),
        &["not-yet-created".to_owned()]
    );
    assert_eq!(graph.ordering().install_levels.len(), 3);
}

#[test]
fn two_releases_with_one_object_name_are_a_conflict_naming_both() {
    let mut input = GraphInput::new();
    service(&mut input, "svc", &[("db", vec![])]);
    input.add_release("svc-db", &[]);
    let graph = DependencyGraph::build(&input);
    assert_eq!(
        graph.problems()[0].to_string(),
        "HelmRelease svc-db is declared twice: by svc/db and by svc-db"
    );
}

#[test]
fn install_levels_group_what_can_run_in_parallel() {
    // db and cache are independent; api needs both; web needs api; docs needs nothing.
    let mut input = GraphInput::new();
    input.add_release("db", &[]);
    input.add_release("cache", &[]);
    input.add_release("api", &[dep("db"), dep("cache")]);
    input.add_release("web", &[dep("api")]);
    input.add_release("docs", &[]);
    let ordering = DependencyGraph::build(&input).ordering();
    assert_eq!(
        ordering.install_levels,
        vec![
            vec![r("cache"), r("db"), r("docs")],
            vec![r("api")],
            vec![r("web")]
        ]
    );
    assert_eq!(
        ordering.teardown_levels,
        vec![
            vec![r("web")],
            vec![r("api")],
            vec![r("cache"), r("db"), r("docs")]
        ]
    );
    assert!(ordering.cycles.is_empty() && ordering.blocked.is_empty());
}

#[test]
fn a_cycle_is_reported_with_its_full_path_starting_from_the_smallest_name() {
    let mut input = GraphInput::new();
    input.add_release("c", &[dep("a")]);
    input.add_release("b", &[dep("c")]);
    input.add_release("a", &[dep("b")]);
    input.add_release("d", &[]);
    let ordering = DependencyGraph::build(&input).ordering();
    assert_eq!(ordering.cycles.len(), 1);
    assert_eq!(ordering.cycles[0].to_string(), "a -> b -> c -> a");
    assert_eq!(
        ordering.cycle_errors()[0].to_string(),
        "dependency cycle: a -> b -> c -> a"
    );
    assert!(ordering.cycle_errors()[0].needs_spec_change());
    assert_eq!(ordering.install_levels, vec![vec![r("d")]]);
    assert_eq!(ordering.blocked, vec![r("a"), r("b"), r("c")]);
}

#[test]
fn a_release_depending_on_itself_is_a_cycle() {
    let mut input = GraphInput::new();
    service(&mut input, "svc", &[("app", vec![dep("app")])]);
    let ordering = DependencyGraph::build(&input).ordering();
    assert_eq!(ordering.cycles[0].path, ["svc/app", "svc/app"]);
}

#[test]
fn a_cycle_through_services_names_releases_as_users_know_them() {
    let mut input = GraphInput::new();
    service(&mut input, "alpha", &[("api", vec![dep("beta")])]);
    service(&mut input, "beta", &[("worker", vec![dep("alpha")])]);
    let ordering = DependencyGraph::build(&input).ordering();
    assert_eq!(ordering.cycles.len(), 1);
    assert_eq!(
        ordering.cycles[0].to_string(),
        "alpha -> alpha/api -> beta -> beta/worker -> alpha"
    );
}

#[test]
fn every_separate_cycle_is_reported_and_what_depends_on_one_is_blocked() {
    let mut input = GraphInput::new();
    input.add_release("a", &[dep("b")]);
    input.add_release("b", &[dep("a")]);
    input.add_release("x", &[dep("y")]);
    input.add_release("y", &[dep("x")]);
    input.add_release("after", &[dep("x"), dep("free")]);
    input.add_release("free", &[]);
    let ordering = DependencyGraph::build(&input).ordering();
    let paths: Vec<String> = ordering.cycles.iter().map(ToString::to_string).collect();
    assert_eq!(paths, ["a -> b -> a", "x -> y -> x"]);
    assert_eq!(ordering.install_levels, vec![vec![r("free")]]);
    assert_eq!(
        ordering.blocked,
        vec![r("a"), r("after"), r("b"), r("x"), r("y")]
    );
    // Teardown still covers everything: the dependent first, each cycle as one level.
    let torn_down: Vec<&NodeId> = ordering.teardown_levels.iter().flatten().collect();
    assert_eq!(torn_down.len(), 6);
    assert_eq!(ordering.teardown_levels[0], vec![r("after")]);
}

#[test]
fn dependents_are_the_nodes_to_wake_when_a_release_changes() {
    let mut input = GraphInput::new();
    service(
        &mut input,
        "svc",
        &[
            ("db", vec![]),
            ("api", vec![dep("db")]),
            ("worker", vec![dep("db")]),
        ],
    );
    let graph = DependencyGraph::build(&input);
    assert_eq!(
        graph.dependents(&r("svc-db")),
        vec![r("svc-api"), r("svc-worker"), s("svc")]
    );
}

fn blocking_fixture() -> DependencyGraph {
    // web -> api -> {db, cache}; cache -> config. db and config are not ready.
    let mut input = GraphInput::new();
    input.add_release("config", &[]);
    input.add_release("db", &[]);
    input.add_release("cache", &[dep("config")]);
    input.add_release("api", &[dep("db"), dep("cache")]);
    input.add_release("web", &[dep("api")]);
    DependencyGraph::build(&input)
}

#[test]
fn blocking_names_the_unready_ancestors_that_are_not_waiting_themselves() {
    let graph = blocking_fixture();
    let ready: HashSet<NodeId> = HashSet::new();
    assert_eq!(
        graph.blocking(&r("web"), |n| ready.contains(n)),
        vec![r("db"), r("config")]
    );
    let ready: HashSet<NodeId> = [r("config")].into();
    assert_eq!(
        graph.blocking(&r("web"), |n| ready.contains(n)),
        vec![r("cache"), r("db")]
    );
    let ready: HashSet<NodeId> = [r("config"), r("db"), r("cache")].into();
    assert_eq!(
        graph.blocking(&r("web"), |n| ready.contains(n)),
        vec![r("api")]
    );
    let everything: HashSet<NodeId> = graph.nodes().cloned().collect();
    assert!(
        graph
            .blocking(&r("web"), |n| everything.contains(n))
            .is_empty()
    );
}

#[test]
fn waiting_for_names_only_the_unready_direct_dependencies() {
    let graph = blocking_fixture();
    let ready: HashSet<NodeId> = [r("db")].into();
    assert_eq!(
        graph.waiting_for(&r("api"), |n| ready.contains(n)),
        vec![r("cache")]
    );
    assert_eq!(
        graph.waiting_for(&r("web"), |n| ready.contains(n)),
        vec![r("api")]
    );
}

#[test]
fn blocking_inside_a_cycle_names_the_direct_dependencies() {
    let mut input = GraphInput::new();
    input.add_release("a", &[dep("b")]);
    input.add_release("b", &[dep("a")]);
    input.add_release("x", &[dep("a")]);
    let graph = DependencyGraph::build(&input);
    assert_eq!(graph.blocking(&r("x"), |_| false), vec![r("a")]);
}

#[test]
fn blocking_names_a_release_waiting_for_an_unknown_dependency() {
    let mut input = GraphInput::new();
    input.add_release("db", &[dep("nowhere")]);
    input.add_release("other", &[]);
    input.add_release("api", &[dep("db"), dep("other")]);
    let graph = DependencyGraph::build(&input);
    let ready: HashSet<NodeId> = [r("other")].into();
    assert_eq!(
        graph.blocking(&r("api"), |n| ready.contains(n)),
        vec![r("db")]
    );
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

#[test]
fn the_critical_path_follows_the_dependency_that_became_ready_last() {
    let mut input = GraphInput::new();
    service(
        &mut input,
        "svc",
        &[
            ("db", vec![]),
            ("cache", vec![]),
            ("app", vec![dep("db"), dep("cache")]),
        ],
    );
    input.add_release("ld", &[]);
    input.add_release("web", &[dep("svc"), dep("ld")]);
    let graph = DependencyGraph::build(&input);
    let timings: HashMap<NodeId, Timing> = [
        (
            r("svc-db"),
            Timing {
                created: secs(0),
                started: secs(0),
                ready: secs(30),
            },
        ),
        (
            r("svc-cache"),
            Timing {
                created: secs(0),
                started: secs(0),
                ready: secs(5),
            },
        ),
        (
            r("ld"),
            Timing {
                created: secs(0),
                started: secs(0),
                ready: secs(40),
            },
        ),
        (
            r("svc-app"),
            Timing {
                created: secs(0),
                started: secs(30),
                ready: secs(50),
            },
        ),
        (
            r("web"),
            Timing {
                created: secs(0),
                started: secs(50),
                ready: secs(60),
            },
        ),
    ]
    .into();
    let path = graph.critical_path(&timings);
    let labels: Vec<&str> = path.iter().map(|step| step.label.as_str()).collect();
    assert_eq!(labels, ["svc/db", "svc/app", "web"]);
    assert_eq!((path[1].wait, path[1].install), (secs(30), secs(20)));
    assert_eq!((path[2].wait, path[2].install), (secs(50), secs(10)));
}

#[test]
fn the_longest_path_adds_install_durations_along_the_slowest_chain() {
    let graph = blocking_fixture();
    let durations: HashMap<NodeId, Duration> = [
        (r("config"), secs(10)),
        (r("db"), secs(3)),
        (r("cache"), secs(1)),
        (r("api"), secs(2)),
        (r("web"), secs(1)),
    ]
    .into();
    let (path, total) = graph.longest_path(&durations);
    assert_eq!(path, vec![r("config"), r("cache"), r("api"), r("web")]);
    assert_eq!(total, secs(14));
}

// ---- properties ----

/// Random edges between `count` nodes; `acyclic` keeps only edges to a lower index.
fn random_graph(acyclic: bool) -> impl Strategy<Value = (usize, Vec<(usize, usize)>)> {
    (1usize..40).prop_flat_map(move |count| {
        let edges = prop::collection::vec((0..count, 0..count), 0..count * 3);
        (Just(count), edges).prop_map(move |(count, edges)| {
            let edges = if acyclic {
                edges.into_iter().filter(|(a, b)| a > b).collect()
            } else {
                edges
            };
            (count, edges)
        })
    })
}

fn level_of(ordering: &Ordering) -> HashMap<NodeId, usize> {
    ordering
        .install_levels
        .iter()
        .enumerate()
        .flat_map(|(level, nodes)| nodes.iter().map(move |n| (n.clone(), level)))
        .collect()
}

proptest! {
    #[test]
    fn random_dags_are_ordered_with_every_dependency_in_an_earlier_level(
        (count, edges) in random_graph(true),
    ) {
        let ordering = DependencyGraph::build(&chain_input(&edges, count)).ordering();
        prop_assert!(ordering.cycles.is_empty());
        prop_assert!(ordering.blocked.is_empty());
        let level = level_of(&ordering);
        prop_assert_eq!(level.len(), count);
        for (from, to) in &edges {
            let (dependent, dependency) = (r(&format!("n{from}")), r(&format!("n{to}")));
            prop_assert!(level[&dependent] > level[&dependency]);
        }
        // Teardown is install order reversed.
        let mut reversed = ordering.install_levels.clone();
        reversed.reverse();
        prop_assert_eq!(reversed, ordering.teardown_levels);
    }

    #[test]
    fn every_cycle_is_found_and_reported_as_a_real_path(
        (count, edges) in random_graph(false),
    ) {
        let graph = DependencyGraph::build(&chain_input(&edges, count));
        let ordering = graph.ordering();

        // Reference: a node is on a cycle iff it reaches itself through at least one edge.
        let adjacency: Vec<Vec<usize>> = (0..count)
            .map(|a| edges.iter().filter(|(f, _)| *f == a).map(|(_, t)| *t).collect())
            .collect();
        let reaches = |from: usize| -> BTreeSet<usize> {
            let mut seen = BTreeSet::new();
            let mut stack = adjacency[from].clone();
            while let Some(n) = stack.pop() {
                if seen.insert(n) {
                    stack.extend(adjacency[n].iter().copied());
                }
            }
            seen
        };
        let reach: Vec<BTreeSet<usize>> = (0..count).map(reaches).collect();
        let on_cycle: BTreeSet<NodeId> =
            (0..count).filter(|&n| reach[n].contains(&n)).map(|n| r(&format!("n{n}"))).collect();
        let reported: BTreeSet<NodeId> =
            ordering.cycles.iter().flat_map(|c| c.members.iter().cloned()).collect();
        prop_assert_eq!(&reported, &on_cycle);

        let edge_set: HashSet<(String, String)> =
            edges.iter().map(|(f, t)| (format!("n{f}"), format!("n{t}"))).collect();
        for cycle in &ordering.cycles {
            prop_assert!(cycle.path.len() >= 2);
            prop_assert_eq!(cycle.path.first(), cycle.path.last());
            for pair in cycle.path.windows(2) {
                prop_assert!(edge_set.contains(&(pair[0].clone(), pair[1].clone())), "{} is not an edge", pair.join(" -> "));
            }
        }

        // Blocked: exactly the nodes on a cycle or reaching one.
        let blocked: BTreeSet<NodeId> = (0..count)
            .filter(|&n| reach[n].contains(&n) || reach[n].iter().any(|m| reach[*m].contains(m)))
            .map(|n| r(&format!("n{n}")))
            .collect();
        prop_assert_eq!(ordering.blocked.iter().cloned().collect::<BTreeSet<_>>(), blocked);

        // What installs respects every edge between installable nodes.
        let level = level_of(&ordering);
        for (from, to) in &edges {
            if let Some(l) = level.get(&r(&format!("n{from}"))) {
                let dependency = r(&format!("n{to}"));
                prop_assert!(*l > level[&dependency]);
            }
        }
        // Everything is torn down exactly once.
        prop_assert_eq!(ordering.teardown_levels.iter().map(Vec::len).sum::<usize>(), count);
    }

    #[test]
    fn the_ordering_does_not_depend_on_input_order(
        (count, edges) in random_graph(false),
        seed in any::<u64>(),
    ) {
        let first = DependencyGraph::build(&chain_input(&edges, count)).ordering();
        // Same graph, releases added in another order.
        let mut order: Vec<usize> = (0..count).collect();
        let mut state = seed;
        for i in (1..order.len()).rev() {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            order.swap(i, (state >> 33) as usize % (i + 1));
        }
        let mut input = GraphInput::new();
        for &i in &order {
            let deps: Vec<Dependency> =
                edges.iter().filter(|(f, _)| *f == i).map(|(_, t)| dep(&format!("n{t}"))).collect();
            input.add_release(&format!("n{i}"), &deps);
        }
        prop_assert_eq!(first, DependencyGraph::build(&input).ordering());
    }
}
