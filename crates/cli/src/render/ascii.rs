//! The dependency graph for terminals: install levels, each node with what it depends on.

use std::fmt::Write as _;

use upstart_dag::NodeKind;

use crate::graph::{GraphView, ViewNode};
use crate::render::{BOLD, DIM, ERROR, WARNING, styled};

fn name(node: &ViewNode) -> String {
    match node.id.kind {
        NodeKind::UpstartService => format!("{} (UpstartService)", node.label),
        NodeKind::HelmRelease => node.label.clone(),
    }
}

fn state(node: &ViewNode) -> String {
    node.state
        .as_deref()
        .map(|s| format!("  [{s}]"))
        .unwrap_or_default()
}

/// The view as text.
pub fn graph(view: &GraphView) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}", styled(BOLD, &view.title));
    let mut current: Option<Option<usize>> = None;
    for node in &view.nodes {
        if current != Some(node.level) {
            current = Some(node.level);
            let heading = match node.level {
                Some(level) => format!("level {}", level + 1),
                None => "blocked by a dependency cycle".to_owned(),
            };
            let style = if node.level.is_some() { BOLD } else { ERROR };
            let _ = writeln!(out, "{}", styled(style, &heading));
        }
        let _ = writeln!(out, "  {}{}", name(node), state(node));
        let mut lines: Vec<String> = Vec::new();
        if node.id.kind == NodeKind::UpstartService {
            let releases: Vec<&str> = view
                .nodes
                .iter()
                .filter(|n| n.service.as_deref() == Some(node.id.name.as_str()))
                .map(|n| n.short.as_str())
                .collect();
            if !releases.is_empty() {
                lines.push(styled(DIM, &format!("releases: {}", releases.join(", "))));
            }
        }
        for edge in view.edges.iter().filter(|e| e.from == node.id) {
            let target = view
                .node(&edge.to)
                .map_or_else(|| edge.to.name.clone(), name);
            let alias = edge
                .alias
                .as_deref()
                .map(|a| format!(" as {a}"))
                .unwrap_or_default();
            lines.push(format!("-> {target}{alias}"));
        }
        for unresolved in &node.unresolved {
            lines.push(styled(WARNING, &format!("-> {unresolved} (not found)")));
        }
        let count = lines.len();
        for (i, line) in lines.into_iter().enumerate() {
            let branch = if i + 1 == count { "└─" } else { "├─" };
            let _ = writeln!(out, "    {branch}{line}");
        }
    }
    for cycle in &view.cycles {
        let _ = writeln!(out, "{}", styled(ERROR, &format!("cycle: {cycle}")));
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::graph::tests_support::sample;

    #[test]
    fn levels_list_nodes_with_their_dependencies() {
        let text = anstream::adapter::strip_str(&super::graph(&sample())).to_string();
        let expected = "ns
level 1
  other/web
  svc/db
level 2
  other (UpstartService)
    └─releases: web
level 3
  svc/app
    ├─-> svc/db
    ├─-> other (UpstartService) as o
    └─-> nowhere (not found)
level 4
  svc (UpstartService)
    └─releases: db, app
";
        assert_eq!(text, expected);
    }
}
