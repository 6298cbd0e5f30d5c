//! `upstart graph`: the dependency graph of the given files, or of a live environment, as a
//! plain view that the ASCII, DOT and Mermaid renderers share.
//!
//! Edges point from a release to what it depends on, as users write `dependencies`. A service's
//! releases are drawn inside it (a cluster or subgraph); depending on a service is an edge to
//! the service.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use clap::ValueEnum;
use upstart_dag::{DependencyGraph, NodeId, NodeKind};

use crate::error::Error;
use crate::model::Scope;

/// Output formats of `upstart graph`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Install levels with each release's dependencies, for terminals.
    Ascii,
    /// Graphviz (`upstart graph ... --format dot | dot -Tsvg > graph.svg`).
    Dot,
    /// A Mermaid flowchart (paste into Markdown).
    Mermaid,
}

/// Arguments of `upstart graph`.
#[derive(Debug, clap::Args)]
pub struct GraphArgs {
    /// Manifest files, or the name of an UpstartEnvironment of the cluster (read through the
    /// kubeconfig). Files are used when every argument is an existing path.
    #[arg(required = true, value_name = "FILES|ENV")]
    pub targets: Vec<String>,

    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Ascii)]
    pub format: Format,

    /// Kubeconfig for a live environment (default: $KUBECONFIG, then ~/.kube/config).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,

    /// For a live environment: where the catalog templates are (the operators'
    /// --catalog-namespace), so services not created yet are drawn from their template.
    #[arg(long, default_value = crate::model::CATALOG_NAMESPACE)]
    pub catalog_namespace: String,
}

/// One node to draw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ViewNode {
    /// The node.
    pub id: NodeId,
    /// Its full name as users know it (`service/key`, a release name, a service name).
    pub label: String,
    /// Its name inside its service (the key), or the label.
    pub short: String,
    /// The install level (0-based); None when it is on or behind a cycle.
    pub level: Option<usize>,
    /// The service it belongs to (for a service's release).
    pub service: Option<String>,
    /// Live phase, when read from a cluster.
    pub state: Option<String>,
    /// Dependency names that resolve to nothing.
    pub unresolved: Vec<String>,
}

/// One edge: `from` depends on `to`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ViewEdge {
    /// The dependent.
    pub from: NodeId,
    /// The dependency.
    pub to: NodeId,
    /// The alias expressions use, when it differs from the dependency's name.
    pub alias: Option<String>,
}

/// A graph ready to draw.
#[derive(Clone, Debug, Default)]
pub struct GraphView {
    /// What it shows (`the current namespace`, ...).
    pub title: String,
    /// Nodes by level, then by name; blocked ones last.
    pub nodes: Vec<ViewNode>,
    /// Edges in node order, then declaration order.
    pub edges: Vec<ViewEdge>,
    /// Cycles, as `a -> b -> a`.
    pub cycles: Vec<String>,
}

impl GraphView {
    /// The view of a dependency graph, with live phases when known.
    pub fn new(title: &str, graph: &DependencyGraph, states: &HashMap<NodeId, String>) -> Self {
        let ordering = graph.ordering();
        let mut level_of = HashMap::new();
        for (level, nodes) in ordering.install_levels.iter().enumerate() {
            for node in nodes {
                level_of.insert(node.clone(), level);
            }
        }
        let mut owner: HashMap<NodeId, String> = HashMap::new();
        for node in graph.nodes() {
            if node.kind == NodeKind::UpstartService {
                // A service depends on its releases and on nothing else.
                for release in graph.depends_on(node) {
                    owner.insert(release, node.name.clone());
                }
            }
        }
        let mut nodes: Vec<ViewNode> = graph
            .nodes()
            .map(|id| {
                let label = graph.label(id).unwrap_or(&id.name).to_owned();
                let service = owner.get(id).cloned();
                let short = match &service {
                    Some(s) => label
                        .strip_prefix(&format!("{s}/"))
                        .unwrap_or(&label)
                        .to_owned(),
                    None => label.clone(),
                };
                ViewNode {
                    id: id.clone(),
                    label,
                    short,
                    level: level_of.get(id).copied(),
                    service,
                    state: states.get(id).cloned(),
                    unresolved: graph.unresolved(id).to_vec(),
                }
            })
            .collect();
        nodes.sort_by(|a, b| {
            (a.level.is_none(), a.level, &a.label, &a.id).cmp(&(
                b.level.is_none(),
                b.level,
                &b.label,
                &b.id,
            ))
        });
        let edges = nodes
            .iter()
            .flat_map(|node| {
                graph.dependencies(&node.id).iter().map(|d| ViewEdge {
                    from: node.id.clone(),
                    to: d.target.clone(),
                    alias: (d.alias != d.name).then(|| d.alias.clone()),
                })
            })
            .collect();
        GraphView {
            title: title.to_owned(),
            nodes,
            edges,
            cycles: ordering.cycles.iter().map(ToString::to_string).collect(),
        }
    }

    /// The view of a namespace of the files.
    pub fn of_scope(scope: &Scope) -> Self {
        Self::new(&scope.title, &scope.graph, &HashMap::new())
    }

    /// A node by id.
    pub fn node(&self, id: &NodeId) -> Option<&ViewNode> {
        self.nodes.iter().find(|n| &n.id == id)
    }

    /// Service name -> its releases, in node order.
    pub fn services(&self) -> BTreeMap<&str, Vec<&ViewNode>> {
        let mut out: BTreeMap<&str, Vec<&ViewNode>> = BTreeMap::new();
        for node in &self.nodes {
            if node.id.kind == NodeKind::UpstartService {
                out.entry(node.id.name.as_str()).or_default();
            }
        }
        for node in &self.nodes {
            if let Some(service) = &node.service {
                out.entry(service.as_str()).or_default().push(node);
            }
        }
        out
    }
}

/// Whether the arguments are files (every one an existing path) rather than an environment.
pub fn are_files(targets: &[String]) -> bool {
    targets.iter().all(|t| std::path::Path::new(t).exists())
}

/// An environment name is a DNS label: anything with a slash or a YAML extension is a file.
fn looks_like_a_path(target: &str) -> bool {
    target.contains('/') || target.ends_with(".yaml") || target.ends_with(".yml")
}

/// Renders views in a format.
pub fn render(views: &[GraphView], format: Format) -> String {
    match format {
        Format::Ascii => views
            .iter()
            .map(crate::render::ascii::graph)
            .collect::<Vec<_>>()
            .join("\n"),
        Format::Dot => crate::render::dot::graph(views),
        Format::Mermaid => crate::render::mermaid::graph(views),
    }
}

/// Runs `upstart graph`.
pub async fn run(args: &GraphArgs) -> Result<bool, Error> {
    let views = if are_files(&args.targets) {
        let files: Vec<PathBuf> = args.targets.iter().map(PathBuf::from).collect();
        let checked = crate::validate::check_files(&files);
        if crate::plan::report_errors(&checked) {
            return Ok(false);
        }
        checked
            .workspace
            .scopes
            .iter()
            .map(GraphView::of_scope)
            .collect()
    } else {
        if let Some(missing) = args
            .targets
            .iter()
            .find(|t| looks_like_a_path(t) && !std::path::Path::new(t).exists())
        {
            return Err(Error::Usage(format!("{missing}: no such file")));
        }
        let [environment] = args.targets.as_slice() else {
            return Err(Error::Usage(format!(
                "{} are not all existing files, and a live environment is named by one argument",
                args.targets.join(" ")
            )));
        };
        let client = crate::cluster::client(args.kubeconfig.as_deref()).await?;
        let live = crate::cluster::Live::read_environment_with_catalog(
            &client,
            environment,
            &args.catalog_namespace,
        )
        .await?;
        vec![live.view()]
    };
    anstream::println!("{}", render(&views, args.format));
    Ok(true)
}

#[cfg(test)]
pub(crate) mod tests_support {
    use std::collections::HashMap;

    use upstart_api::v1alpha1::Dependency;
    use upstart_dag::{DependencyGraph, GraphInput};

    use super::GraphView;

    fn dep(name: &str) -> Dependency {
        Dependency {
            name: name.into(),
            kind: None,
            alias: None,
        }
    }

    /// `svc` with `db` and `app` (app -> db, app -> other as `o`), and service `other` with `web`.
    pub(crate) fn sample() -> GraphView {
        let mut input = GraphInput::new();
        input.add_service_releases(
            "svc",
            [
                ("db".to_owned(), vec![]),
                (
                    "app".to_owned(),
                    vec![
                        dep("db"),
                        Dependency {
                            alias: Some("o".into()),
                            ..dep("other")
                        },
                        dep("nowhere"),
                    ],
                ),
            ],
        );
        input.add_service_releases("other", [("web".to_owned(), vec![])]);
        GraphView::new("ns", &DependencyGraph::build(&input), &HashMap::new())
    }
}

#[cfg(test)]
mod tests {
    use super::tests_support::sample;
    use super::*;

    #[test]
    fn nodes_come_in_install_order_with_their_service_and_key() {
        let view = sample();
        let order: Vec<(&str, Option<usize>)> = view
            .nodes
            .iter()
            .map(|n| (n.label.as_str(), n.level))
            .collect();
        assert_eq!(
            order,
            [
                ("other/web", Some(0)),
                ("svc/db", Some(0)),
                ("other", Some(1)),
                ("svc/app", Some(2)),
                ("svc", Some(3)),
            ]
        );
        let app = view.node(&NodeId::release("svc-app")).expect("app");
        assert_eq!(
            (app.short.as_str(), app.service.as_deref()),
            ("app", Some("svc"))
        );
        assert_eq!(app.unresolved, ["nowhere"]);
    }

    #[test]
    fn edges_keep_an_alias_that_differs_from_the_name() {
        let view = sample();
        assert_eq!(
            view.edges,
            [
                ViewEdge {
                    from: NodeId::release("svc-app"),
                    to: NodeId::release("svc-db"),
                    alias: None
                },
                ViewEdge {
                    from: NodeId::release("svc-app"),
                    to: NodeId::service("other"),
                    alias: Some("o".into())
                },
            ]
        );
    }

    #[test]
    fn arguments_are_files_only_when_all_exist() {
        assert!(are_files(&["Cargo.toml".into()]));
        assert!(!are_files(&["Cargo.toml".into(), "pr-1234".into()]));
        assert!(looks_like_a_path("services/a.yaml") && looks_like_a_path("a.yml"));
        assert!(!looks_like_a_path("pr-1234"));
    }
}
