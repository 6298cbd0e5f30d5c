//! The dependency graph as a Mermaid flowchart: one subgraph per service, edges from a release
//! to what it depends on (an edge to a service points at its subgraph).

use std::collections::HashMap;
use std::fmt::Write as _;

use upstart_dag::{NodeId, NodeKind};

use crate::graph::{GraphView, ViewNode};

/// Mermaid labels are quoted strings; quotes become `#quot;`.
fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "#quot;"))
}

fn label(node: &ViewNode, text: &str) -> String {
    match &node.state {
        Some(state) => quote(&format!("{text}<br/>{state}")),
        None => quote(text),
    }
}

/// All views in one flowchart.
pub fn graph(views: &[GraphView]) -> String {
    let mut out = String::from("flowchart RL\n");
    let mut next = 0usize;
    for view in views {
        let mut ids: HashMap<&NodeId, String> = HashMap::new();
        for node in &view.nodes {
            let prefix = match node.id.kind {
                NodeKind::UpstartService => "s",
                NodeKind::HelmRelease => "r",
            };
            ids.insert(&node.id, format!("{prefix}{next}"));
            next += 1;
        }
        for (service, releases) in view.services() {
            let id = &ids[&NodeId::service(service)];
            let title = view
                .node(&NodeId::service(service))
                .map_or_else(|| quote(service), |n| label(n, service));
            let _ = writeln!(out, "  subgraph {id}[{title}]");
            for release in releases {
                let _ = writeln!(
                    out,
                    "    {}({})",
                    ids[&release.id],
                    label(release, &release.short)
                );
            }
            out.push_str("  end\n");
        }
        for node in &view.nodes {
            if node.service.is_none() && node.id.kind == NodeKind::HelmRelease {
                let _ = writeln!(out, "  {}({})", ids[&node.id], label(node, &node.label));
            }
        }
        for edge in &view.edges {
            let (Some(from), Some(to)) = (ids.get(&edge.from), ids.get(&edge.to)) else {
                continue;
            };
            match &edge.alias {
                Some(alias) => {
                    let _ = writeln!(out, "  {from} -->|{}| {to}", quote(alias));
                }
                None => {
                    let _ = writeln!(out, "  {from} --> {to}");
                }
            }
        }
        for node in &view.nodes {
            for unresolved in &node.unresolved {
                let missing = format!("m{next}");
                next += 1;
                let _ = writeln!(
                    out,
                    "  {missing}[{}]\n  {} -.-> {missing}",
                    quote(&format!("{unresolved} (not found)")),
                    ids[&node.id]
                );
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::graph::tests_support::sample;

    #[test]
    fn services_are_subgraphs_and_edges_may_point_at_them() {
        let text = super::graph(&[sample()]);
        assert!(text.starts_with("flowchart RL\n"), "{text}");
        // Ids in view order: r0 other/web, r1 svc/db, s2 other, r3 svc/app, s4 svc.
        assert!(
            text.contains("  subgraph s4[\"svc\"]\n    r1(\"db\")\n    r3(\"app\")\n  end\n"),
            "{text}"
        );
        assert!(text.contains("  r3 --> r1\n"), "{text}");
        assert!(text.contains("  r3 -->|\"o\"| s2\n"), "{text}");
        assert!(text.contains("-.->"), "{text}");
    }
}
