//! The dependency graph of one namespace: which release waits for which, in what order they
//! install and tear down, where the cycles are, what is blocking a release, and which chain of
//! releases decided how long an environment took.
//!
//! Nodes are HelmReleases (by object name) and UpstartServices. A service node depends on all of
//! its releases, so depending on a service means waiting for every release of it. Edges point
//! from the dependent to its dependency ("`a` depends on `b`"), the way users write them.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::time::Duration;

use petgraph::Direction;
use petgraph::algo::kosaraju_scc;
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::EdgeRef;
use upstart_api::names::child_name;
use upstart_api::v1alpha1::{Dependency, DependencyKind, HelmReleaseSpec, UpstartServiceSpec};

use crate::Error;

/// What a node is in the namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NodeKind {
    /// A HelmRelease object (standalone, a service's child or an environment release).
    HelmRelease,
    /// An UpstartService: Ready when all of its releases are.
    UpstartService,
}

impl NodeKind {
    /// The Kubernetes kind.
    pub fn as_str(&self) -> &'static str {
        match self {
            NodeKind::HelmRelease => "HelmRelease",
            NodeKind::UpstartService => "UpstartService",
        }
    }
}

/// A node: an object of the namespace, by kind and object name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId {
    /// HelmRelease or UpstartService.
    pub kind: NodeKind,
    /// The object's `metadata.name` (for a service's child: `<service>-<key in kebab-case>`).
    pub name: String,
}

impl NodeId {
    /// The HelmRelease of that object name.
    pub fn release(name: impl Into<String>) -> Self {
        NodeId {
            kind: NodeKind::HelmRelease,
            name: name.into(),
        }
    }

    /// The UpstartService of that name.
    pub fn service(name: impl Into<String>) -> Self {
        NodeId {
            kind: NodeKind::UpstartService,
            name: name.into(),
        }
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.kind.as_str(), self.name)
    }
}

/// A dependency after name resolution: what it points at and the alias expressions use.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResolvedDependency {
    /// The name as written in `dependencies`.
    pub name: String,
    /// The name expressions use (`as`, default `name`).
    pub alias: String,
    /// The node it resolved to.
    pub target: NodeId,
}

/// The releases and services of one namespace, as plain data: the input of
/// [`DependencyGraph::build`].
#[derive(Clone, Debug, Default)]
pub struct GraphInput {
    releases: Vec<ReleaseEntry>,
    groups: Vec<Group>,
    /// The environment whose releases `EnvironmentRelease` dependencies name, once
    /// [`GraphInput::add_environment`] added one.
    environment: Option<String>,
}

#[derive(Clone, Debug)]
struct ReleaseEntry {
    name: String,
    label: String,
    group: Option<usize>,
    dependencies: Vec<Dependency>,
}

/// Releases that resolve each other's keys first: an UpstartService's, or an environment's.
#[derive(Clone, Debug)]
struct Group {
    name: String,
    /// Release key -> object name.
    keys: HashMap<String, String>,
    /// Only a service is itself a node others can depend on.
    is_service: bool,
}

impl GraphInput {
    /// An empty namespace.
    pub fn new() -> Self {
        Self::default()
    }

    /// An UpstartService: one child HelmRelease per key, named `<service>-<key in kebab-case>`.
    pub fn add_service(&mut self, name: &str, spec: &UpstartServiceSpec) -> &mut Self {
        self.add_service_releases(
            name,
            spec.helm_releases
                .iter()
                .map(|(key, release)| (key.clone(), release.dependencies.clone())),
        )
    }

    /// An UpstartService given as release keys and their dependencies.
    pub fn add_service_releases(
        &mut self,
        name: &str,
        releases: impl IntoIterator<Item = (String, Vec<Dependency>)>,
    ) -> &mut Self {
        self.add_group(name, true, releases, |service, key| {
            format!("{service}/{key}")
        })
    }

    /// An UpstartEnvironment's environment-wide releases, named `<environment>-<key>`. Users
    /// know them by that object name, since that is how services depend on them; an
    /// `EnvironmentRelease` dependency on a key resolves to that name from now on.
    pub fn add_environment(
        &mut self,
        name: &str,
        releases: &std::collections::BTreeMap<String, HelmReleaseSpec>,
    ) -> &mut Self {
        self.environment = Some(name.to_owned());
        self.add_group(
            name,
            false,
            releases
                .iter()
                .map(|(key, release)| (key.clone(), release.dependencies.clone())),
            child_name,
        )
    }

    /// `EnvironmentRelease` dependencies name the releases of environment `name` (without
    /// adding them, for a namespace whose environment-wide releases are objects already).
    pub fn set_environment(&mut self, name: Option<&str>) -> &mut Self {
        self.environment = name.map(str::to_owned);
        self
    }

    /// A HelmRelease that belongs to no service or environment of this input.
    pub fn add_release(&mut self, name: &str, dependencies: &[Dependency]) -> &mut Self {
        self.releases.push(ReleaseEntry {
            name: name.to_owned(),
            label: name.to_owned(),
            group: None,
            dependencies: dependencies.to_vec(),
        });
        self
    }

    fn add_group(
        &mut self,
        name: &str,
        is_service: bool,
        releases: impl IntoIterator<Item = (String, Vec<Dependency>)>,
        label: impl Fn(&str, &str) -> String,
    ) -> &mut Self {
        let group = self.groups.len();
        let mut keys = HashMap::new();
        for (key, dependencies) in releases {
            let object = child_name(name, &key);
            keys.insert(key.clone(), object.clone());
            self.releases.push(ReleaseEntry {
                name: object,
                label: label(name, &key),
                group: Some(group),
                dependencies,
            });
        }
        self.groups.push(Group {
            name: name.to_owned(),
            keys,
            is_service,
        });
        self
    }
}

#[derive(Clone, Debug)]
struct Node {
    id: NodeId,
    label: String,
    dependencies: Vec<ResolvedDependency>,
    unresolved: Vec<String>,
}

/// The graph of a namespace, with every dependency name resolved (SPEC §3).
#[derive(Clone, Debug)]
pub struct DependencyGraph {
    /// Edge `a -> b`: `a` depends on `b`.
    graph: DiGraph<Node, ()>,
    index: HashMap<NodeId, NodeIndex>,
    problems: Vec<Error>,
}

/// Install and teardown order, and what can never be installed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ordering {
    /// Level `n` holds the nodes whose dependencies are all in levels `< n`: each level can be
    /// installed in parallel once the previous ones are Ready. Nodes on or behind a cycle are
    /// left out. Sorted within a level.
    pub install_levels: Vec<Vec<NodeId>>,
    /// Every node, dependents before their dependencies (the reverse of install order). Nodes
    /// of one cycle share a level, so teardown always completes.
    pub teardown_levels: Vec<Vec<NodeId>>,
    /// Each strongly connected component with a cycle, with one concrete cycle through it.
    pub cycles: Vec<Cycle>,
    /// Nodes on a cycle or depending (transitively) on one: never installed. Sorted.
    pub blocked: Vec<NodeId>,
}

impl Ordering {
    /// The cycles as errors, for conditions and the CLI.
    pub fn cycle_errors(&self) -> Vec<Error> {
        self.cycles.iter().map(Cycle::to_error).collect()
    }
}

/// One dependency cycle.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Cycle {
    /// Labels along the cycle, the first repeated at the end: `["a", "b", "a"]` for `a -> b -> a`.
    pub path: Vec<String>,
    /// Every node of the strongly connected component (the cycle may not visit all). Sorted.
    pub members: Vec<NodeId>,
}

impl Cycle {
    /// `dependency cycle: a -> b -> a`.
    pub fn to_error(&self) -> Error {
        Error::Cycle {
            path: self.path.clone(),
        }
    }
}

impl fmt::Display for Cycle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.path.join(" -> "))
    }
}

/// When a release moved through its life, as offsets from one common origin (for instance the
/// environment's creation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    /// When it was first seen (and started waiting).
    pub created: Duration,
    /// When its dependencies were Ready and it started applying.
    pub started: Duration,
    /// When it became Ready.
    pub ready: Duration,
}

/// One release of the critical path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CriticalStep {
    /// The release.
    pub node: NodeId,
    /// Its name as users know it.
    pub label: String,
    /// How long it waited for its dependencies.
    pub wait: Duration,
    /// How long it took from starting to Ready.
    pub install: Duration,
}

impl DependencyGraph {
    /// Resolves every dependency name of `input` and builds the graph. Names that resolve to
    /// nothing, or ambiguously, are reported in [`problems`](Self::problems) and left out; the
    /// rest of the graph is built regardless, since a dependency created later is picked up on
    /// the next build.
    pub fn build(input: &GraphInput) -> DependencyGraph {
        let mut graph: DiGraph<Node, ()> = DiGraph::with_capacity(
            input.releases.len() + input.groups.len(),
            input.releases.len(),
        );
        let mut index: HashMap<NodeId, NodeIndex> = HashMap::with_capacity(input.releases.len());
        let mut problems = Vec::new();
        let mut releases: HashMap<&str, NodeIndex> = HashMap::with_capacity(input.releases.len());
        let mut services: HashMap<&str, NodeIndex> = HashMap::new();
        // The node of each release entry; None when its name was taken already.
        let mut entry_nodes: Vec<Option<NodeIndex>> = Vec::with_capacity(input.releases.len());

        for entry in &input.releases {
            if let Some(&existing) = releases.get(entry.name.as_str()) {
                problems.push(Error::NameConflict {
                    kind: NodeKind::HelmRelease.as_str(),
                    name: entry.name.clone(),
                    first: graph[existing].label.clone(),
                    second: entry.label.clone(),
                });
                entry_nodes.push(None);
                continue;
            }
            let id = NodeId::release(entry.name.clone());
            let node = graph.add_node(Node {
                id: id.clone(),
                label: entry.label.clone(),
                dependencies: Vec::new(),
                unresolved: Vec::new(),
            });
            index.insert(id, node);
            releases.insert(&entry.name, node);
            entry_nodes.push(Some(node));
        }
        let mut group_nodes: Vec<Option<NodeIndex>> = Vec::with_capacity(input.groups.len());
        for group in &input.groups {
            if !group.is_service {
                group_nodes.push(None);
                continue;
            }
            if services.contains_key(group.name.as_str()) {
                problems.push(Error::NameConflict {
                    kind: NodeKind::UpstartService.as_str(),
                    name: group.name.clone(),
                    first: group.name.clone(),
                    second: group.name.clone(),
                });
                group_nodes.push(None);
                continue;
            }
            let id = NodeId::service(group.name.clone());
            let node = graph.add_node(Node {
                id: id.clone(),
                label: group.name.clone(),
                dependencies: Vec::new(),
                unresolved: Vec::new(),
            });
            index.insert(id, node);
            services.insert(&group.name, node);
            group_nodes.push(Some(node));
        }

        // A service waits for each of its releases.
        for (entry, node) in input.releases.iter().zip(&entry_nodes) {
            if let (Some(group), Some(node)) = (entry.group, node)
                && let Some(service) = group_nodes[group]
            {
                graph.update_edge(service, *node, ());
            }
        }

        for (entry, node) in input.releases.iter().zip(&entry_nodes) {
            let Some(node) = *node else { continue };
            for dependency in &entry.dependencies {
                let target = resolve(dependency, entry, input, &releases, &services);
                match target {
                    Ok(target) => {
                        graph.update_edge(node, target, ());
                        let target_id = graph[target].id.clone();
                        graph[node].dependencies.push(ResolvedDependency {
                            name: dependency.name.clone(),
                            alias: dependency.alias().to_owned(),
                            target: target_id,
                        });
                    }
                    Err(problem) => {
                        graph[node].unresolved.push(dependency.name.clone());
                        problems.push(problem);
                    }
                }
            }
        }
        DependencyGraph {
            graph,
            index,
            problems,
        }
    }

    /// Dependency names that resolved to nothing or ambiguously, and name conflicts.
    pub fn problems(&self) -> &[Error] {
        &self.problems
    }

    /// Whether the node is part of the graph.
    pub fn contains(&self, node: &NodeId) -> bool {
        self.index.contains_key(node)
    }

    /// Every node, in no particular order.
    pub fn nodes(&self) -> impl Iterator<Item = &NodeId> {
        self.graph.node_weights().map(|node| &node.id)
    }

    /// How many nodes the graph has.
    pub fn len(&self) -> usize {
        self.graph.node_count()
    }

    /// Whether the graph has no node.
    pub fn is_empty(&self) -> bool {
        self.graph.node_count() == 0
    }

    /// The name users know a node by: `service/key` for a service's release, the object name
    /// otherwise.
    pub fn label(&self, node: &NodeId) -> Option<&str> {
        self.index.get(node).map(|&i| self.graph[i].label.as_str())
    }

    /// The resolved dependencies of a release, in declaration order (empty for a service, whose
    /// dependencies are its releases).
    pub fn dependencies(&self, node: &NodeId) -> &[ResolvedDependency] {
        self.index
            .get(node)
            .map(|&i| self.graph[i].dependencies.as_slice())
            .unwrap_or(&[])
    }

    /// Dependency names of a release that resolved to nothing (yet): it waits for them.
    pub fn unresolved(&self, node: &NodeId) -> &[String] {
        self.index
            .get(node)
            .map(|&i| self.graph[i].unresolved.as_slice())
            .unwrap_or(&[])
    }

    /// What a node waits for directly: its dependencies, and for a service its releases. Sorted.
    pub fn depends_on(&self, node: &NodeId) -> Vec<NodeId> {
        self.neighbours(node, Direction::Outgoing)
    }

    /// What waits directly for a node (including the service owning a release). Sorted. These
    /// are the nodes to wake when it becomes Ready or its outputs change, and the ones that
    /// must be gone before it is torn down.
    pub fn dependents(&self, node: &NodeId) -> Vec<NodeId> {
        self.neighbours(node, Direction::Incoming)
    }

    fn neighbours(&self, node: &NodeId, direction: Direction) -> Vec<NodeId> {
        let Some(&i) = self.index.get(node) else {
            return Vec::new();
        };
        let mut out: Vec<NodeId> = self
            .graph
            .neighbors_directed(i, direction)
            .map(|n| self.graph[n].id.clone())
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// Install levels, teardown order and cycles, in one pass over the strongly connected
    /// components (iterative, so deep chains do not exhaust the stack). Deterministic.
    pub fn ordering(&self) -> Ordering {
        let condensed = self.condense();
        let levels = condensed.levels.iter().copied().max().map_or(0, |m| m + 1);
        let mut install: Vec<Vec<NodeId>> = vec![Vec::new(); levels];
        let mut teardown: Vec<Vec<NodeId>> = vec![Vec::new(); levels];
        let mut blocked = Vec::new();
        for node in self.graph.node_indices() {
            let component = condensed.component[node.index()];
            let level = condensed.levels[component];
            let id = self.graph[node].id.clone();
            if condensed.blocked[component] {
                blocked.push(id.clone());
            } else {
                install[level].push(id.clone());
            }
            teardown[level].push(id);
        }
        for level in install.iter_mut().chain(teardown.iter_mut()) {
            level.sort();
        }
        while install.last().is_some_and(Vec::is_empty) {
            install.pop();
        }
        teardown.reverse();
        blocked.sort();
        let mut cycles: Vec<Cycle> = condensed
            .components
            .iter()
            .enumerate()
            .filter(|(c, _)| condensed.cyclic[*c])
            .map(|(c, members)| self.cycle_through(members, &condensed.component, c))
            .collect();
        cycles.sort();
        Ordering {
            install_levels: install,
            teardown_levels: teardown,
            cycles,
            blocked,
        }
    }

    /// The direct dependencies of `node` (for a service, its releases) that are not ready: what
    /// it waits for right now. Sorted.
    pub fn waiting_for(&self, node: &NodeId, is_ready: impl Fn(&NodeId) -> bool) -> Vec<NodeId> {
        let mut out = self.depends_on(node);
        out.retain(|n| !is_ready(n));
        out
    }

    /// The unready nodes holding `node` back, nearest first: the unready ancestors that are not
    /// themselves waiting for another unready node (the ones being worked on, or waiting for a
    /// dependency name that resolves to nothing). When every unready ancestor waits for another
    /// (a cycle), the direct unready dependencies are returned instead.
    pub fn blocking(&self, node: &NodeId, is_ready: impl Fn(&NodeId) -> bool) -> Vec<NodeId> {
        let Some(&start) = self.index.get(node) else {
            return Vec::new();
        };
        let unready = |i: NodeIndex| !is_ready(&self.graph[i].id);
        let mut seen: HashSet<NodeIndex> = HashSet::from([start]);
        let mut queue: VecDeque<(NodeIndex, usize)> = VecDeque::from([(start, 0)]);
        let mut found: Vec<(usize, NodeIndex)> = Vec::new();
        while let Some((current, distance)) = queue.pop_front() {
            for dependency in self.graph.neighbors_directed(current, Direction::Outgoing) {
                if !unready(dependency) || !seen.insert(dependency) {
                    continue;
                }
                let mut waits_on_unready = false;
                for further in self
                    .graph
                    .neighbors_directed(dependency, Direction::Outgoing)
                {
                    if unready(further) {
                        waits_on_unready = true;
                    }
                }
                if !waits_on_unready || !self.graph[dependency].unresolved.is_empty() {
                    found.push((distance + 1, dependency));
                }
                if waits_on_unready {
                    queue.push_back((dependency, distance + 1));
                }
            }
        }
        if found.is_empty() {
            found = self
                .graph
                .neighbors_directed(start, Direction::Outgoing)
                .filter(|&d| unready(d))
                .map(|d| (1, d))
                .collect();
        }
        found.sort_by(|a, b| {
            a.0.cmp(&b.0)
                .then_with(|| self.graph[a.1].id.cmp(&self.graph[b.1].id))
        });
        found.dedup_by_key(|f| f.1);
        found
            .into_iter()
            .map(|(_, i)| self.graph[i].id.clone())
            .collect()
    }

    /// The chain of releases that determined when the last one became Ready, first to last,
    /// from observed timings. Walking back from the release that was Ready last, each step is
    /// the dependency (through services, their releases) that became Ready last, since that is
    /// the one that let it start. Releases without timings are left out.
    pub fn critical_path(&self, timings: &HashMap<NodeId, Timing>) -> Vec<CriticalStep> {
        let timing = |i: NodeIndex| timings.get(&self.graph[i].id);
        let last = self
            .graph
            .node_indices()
            .filter(|&i| self.graph[i].id.kind == NodeKind::HelmRelease)
            .filter_map(|i| timing(i).map(|t| (t.ready, i)))
            .max_by(|a, b| {
                a.0.cmp(&b.0)
                    .then_with(|| self.graph[b.1].id.cmp(&self.graph[a.1].id))
            });
        let Some((_, mut current)) = last else {
            return Vec::new();
        };
        let mut seen = HashSet::from([current]);
        let mut chain = vec![current];
        loop {
            let released_by = self
                .release_dependencies(current)
                .into_iter()
                .filter(|i| !seen.contains(i))
                .filter_map(|i| timing(i).map(|t| (t.ready, i)))
                .max_by(|a, b| {
                    a.0.cmp(&b.0)
                        .then_with(|| self.graph[b.1].id.cmp(&self.graph[a.1].id))
                });
            match released_by {
                Some((_, previous)) => {
                    seen.insert(previous);
                    chain.push(previous);
                    current = previous;
                }
                None => break,
            }
        }
        chain
            .into_iter()
            .rev()
            .filter_map(|i| {
                let t = timing(i)?;
                Some(CriticalStep {
                    node: self.graph[i].id.clone(),
                    label: self.graph[i].label.clone(),
                    wait: t.started.saturating_sub(t.created),
                    install: t.ready.saturating_sub(t.started),
                })
            })
            .collect()
    }

    /// The longest chain of releases by install duration (a missing duration counts as zero)
    /// and its total: what bounds the time to Ready when everything else runs in parallel.
    /// Nodes on or behind a cycle are left out. Service nodes take no time and are not listed.
    pub fn longest_path(&self, durations: &HashMap<NodeId, Duration>) -> (Vec<NodeId>, Duration) {
        let ordering = self.ordering();
        let mut finish: HashMap<NodeIndex, (Duration, Option<NodeIndex>)> = HashMap::new();
        for id in ordering.install_levels.iter().flatten() {
            let i = self.index[id];
            let own = durations.get(id).copied().unwrap_or_default();
            let mut best: (Duration, Option<NodeIndex>) = (Duration::ZERO, None);
            let mut dependencies: Vec<NodeIndex> = self
                .graph
                .neighbors_directed(i, Direction::Outgoing)
                .collect();
            dependencies.sort_by(|a, b| self.graph[*a].id.cmp(&self.graph[*b].id));
            for d in dependencies {
                if let Some(&(f, _)) = finish.get(&d)
                    && (best.1.is_none() || f > best.0)
                {
                    best = (f, Some(d));
                }
            }
            finish.insert(i, (best.0 + own, best.1));
        }
        let end = finish.iter().max_by(|a, b| {
            a.1.0
                .cmp(&b.1.0)
                .then_with(|| self.graph[*b.0].id.cmp(&self.graph[*a.0].id))
        });
        let Some((&end, &(total, _))) = end else {
            return (Vec::new(), Duration::ZERO);
        };
        let mut path = Vec::new();
        let mut current = Some(end);
        while let Some(i) = current {
            if self.graph[i].id.kind == NodeKind::HelmRelease {
                path.push(self.graph[i].id.clone());
            }
            current = finish.get(&i).and_then(|f| f.1);
        }
        path.reverse();
        (path, total)
    }

    /// The HelmReleases a node waits for, looking through services to their releases.
    fn release_dependencies(&self, node: NodeIndex) -> Vec<NodeIndex> {
        let mut out = Vec::new();
        let mut stack: Vec<NodeIndex> = self
            .graph
            .neighbors_directed(node, Direction::Outgoing)
            .collect();
        let mut seen = HashSet::new();
        while let Some(i) = stack.pop() {
            if !seen.insert(i) {
                continue;
            }
            match self.graph[i].id.kind {
                NodeKind::HelmRelease => out.push(i),
                NodeKind::UpstartService => {
                    stack.extend(self.graph.neighbors_directed(i, Direction::Outgoing));
                }
            }
        }
        out
    }

    fn condense(&self) -> Condensed {
        let components = kosaraju_scc(&self.graph);
        let mut component = vec![0usize; self.graph.node_count()];
        for (c, members) in components.iter().enumerate() {
            for member in members {
                component[member.index()] = c;
            }
        }
        let count = components.len();
        let mut cyclic: Vec<bool> = components.iter().map(|members| members.len() > 1).collect();
        let mut waiting_for = vec![0usize; count];
        let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); count];
        for edge in self.graph.edge_references() {
            let (from, to) = (
                component[edge.source().index()],
                component[edge.target().index()],
            );
            if from == to {
                // Self-loops are cycles too; edges inside a component are not ordering edges.
                cyclic[from] = true;
            } else {
                dependents[to].push(from);
            }
        }
        for list in dependents.iter_mut() {
            list.sort_unstable();
            list.dedup();
            for &dependent in list.iter() {
                waiting_for[dependent] += 1;
            }
        }
        let mut levels = vec![0usize; count];
        let mut blocked = cyclic.clone();
        let mut ready: VecDeque<usize> = (0..count).filter(|&c| waiting_for[c] == 0).collect();
        while let Some(c) = ready.pop_front() {
            for &dependent in &dependents[c] {
                levels[dependent] = levels[dependent].max(levels[c] + 1);
                blocked[dependent] |= blocked[c];
                waiting_for[dependent] -= 1;
                if waiting_for[dependent] == 0 {
                    ready.push_back(dependent);
                }
            }
        }
        Condensed {
            components,
            component,
            cyclic,
            levels,
            blocked,
        }
    }

    /// One concrete cycle through a cyclic component: from its smallest label, the shortest
    /// way back to it (breadth first, neighbours in label order), so the report is stable.
    fn cycle_through(&self, members: &[NodeIndex], component: &[usize], c: usize) -> Cycle {
        let key = |i: NodeIndex| (&self.graph[i].label, &self.graph[i].id);
        let start = members.iter().copied().min_by(|a, b| key(*a).cmp(&key(*b)));
        let mut sorted_members: Vec<NodeId> =
            members.iter().map(|&i| self.graph[i].id.clone()).collect();
        sorted_members.sort();
        let Some(start) = start else {
            return Cycle {
                path: Vec::new(),
                members: sorted_members,
            };
        };
        let mut parent: HashMap<NodeIndex, NodeIndex> = HashMap::new();
        let mut queue = VecDeque::from([start]);
        let mut closing = None;
        'search: while let Some(current) = queue.pop_front() {
            let mut next: Vec<NodeIndex> = self
                .graph
                .neighbors_directed(current, Direction::Outgoing)
                .filter(|n| component[n.index()] == c)
                .collect();
            next.sort_by(|a, b| key(*a).cmp(&key(*b)));
            next.dedup();
            for n in next {
                if n == start {
                    closing = Some(current);
                    break 'search;
                }
                if let std::collections::hash_map::Entry::Vacant(e) = parent.entry(n) {
                    e.insert(current);
                    queue.push_back(n);
                }
            }
        }
        let mut path = vec![self.graph[start].label.clone()];
        let mut back = Vec::new();
        let mut current = closing;
        while let Some(i) = current {
            if i == start {
                break;
            }
            back.push(self.graph[i].label.clone());
            current = parent.get(&i).copied();
        }
        back.reverse();
        path.extend(back);
        path.push(self.graph[start].label.clone());
        Cycle {
            path,
            members: sorted_members,
        }
    }
}

struct Condensed {
    components: Vec<Vec<NodeIndex>>,
    /// Node index -> component.
    component: Vec<usize>,
    cyclic: Vec<bool>,
    levels: Vec<usize>,
    blocked: Vec<bool>,
}

/// SPEC §3: a sibling key first; otherwise the UpstartService or HelmRelease of that name in the
/// namespace (both, with no `kind`: ambiguous). An `EnvironmentRelease` is the HelmRelease
/// [`Dependency::in_environment`] names.
fn resolve(
    dependency: &Dependency,
    entry: &ReleaseEntry,
    input: &GraphInput,
    releases: &HashMap<&str, NodeIndex>,
    services: &HashMap<&str, NodeIndex>,
) -> Result<NodeIndex, Error> {
    let concrete = dependency.in_environment(input.environment.as_deref());
    let kind = concrete.kind;
    let name = concrete.name.as_str();
    if matches!(dependency.kind, None | Some(DependencyKind::HelmRelease))
        && let Some(group) = entry.group
        && let Some(object) = input.groups[group].keys.get(name)
        && let Some(&node) = releases.get(object.as_str())
    {
        return Ok(node);
    }
    let as_release = if kind == Some(DependencyKind::UpstartService) {
        None
    } else {
        releases.get(name)
    };
    let as_service = if kind == Some(DependencyKind::HelmRelease) {
        None
    } else {
        services.get(name)
    };
    match (as_release, as_service) {
        (Some(&node), None) | (None, Some(&node)) => Ok(node),
        (Some(_), Some(_)) => Err(Error::AmbiguousDependency {
            release: entry.label.clone(),
            name: name.to_owned(),
        }),
        (None, None) if dependency.kind == Some(DependencyKind::EnvironmentRelease) => {
            Err(Error::UnknownEnvironmentRelease {
                release: entry.label.clone(),
                key: dependency.name.clone(),
                object: concrete.name.clone(),
            })
        }
        (None, None) => Err(Error::UnknownDependency {
            release: entry.label.clone(),
            name: name.to_owned(),
            kind: dependency.kind.map(|k| match k {
                DependencyKind::HelmRelease => NodeKind::HelmRelease.as_str(),
                DependencyKind::UpstartService => NodeKind::UpstartService.as_str(),
                DependencyKind::EnvironmentRelease => "environment release",
            }),
        }),
    }
}

#[cfg(test)]
mod tests;
