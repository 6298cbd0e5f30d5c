//! The dependency graph in Graphviz DOT: one cluster per service, edges from a release to what
//! it depends on.

use std::collections::HashMap;
use std::fmt::Write as _;

use upstart_dag::{NodeId, NodeKind};

use crate::graph::{GraphView, ViewNode};

/// A DOT string literal.
fn quote(s: &str) -> String {
    let escaped = s
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n");
    format!("\"{escaped}\"")
}

fn label(node: &ViewNode, text: &str) -> String {
    match &node.state {
        Some(state) => quote(&format!("{text}\n{state}")),
        None => quote(text),
    }
}

/// All views in one digraph (one cluster per namespace when there are several).
pub fn graph(views: &[GraphView]) -> String {
    let mut out = String::from(
        "// Edges point from a release to what it depends on.\ndigraph upstart {\n  rankdir=RL;\n  node [shape=box, style=rounded];\n",
    );
    let mut next = 0usize;
    for (v, view) in views.iter().enumerate() {
        let indent = if views.len() > 1 { "    " } else { "  " };
        if views.len() > 1 {
            let _ = writeln!(
                out,
                "  subgraph cluster_ns{v} {{\n    label={};",
                quote(&view.title)
            );
        }
        let mut ids: HashMap<&NodeId, String> = HashMap::new();
        for node in &view.nodes {
            ids.insert(&node.id, format!("n{next}"));
            next += 1;
        }
        for (s, (service, releases)) in view.services().into_iter().enumerate() {
            let _ = writeln!(
                out,
                "{indent}subgraph cluster_{v}_{s} {{\n{indent}  label={};",
                quote(&format!("UpstartService {service}"))
            );
            if let Some(node) = view.node(&NodeId::service(service)) {
                let _ = writeln!(
                    out,
                    "{indent}  {} [label={}, shape=folder];",
                    ids[&node.id],
                    label(node, service)
                );
            }
            for release in releases {
                let _ = writeln!(
                    out,
                    "{indent}  {} [label={}];",
                    ids[&release.id],
                    label(release, &release.short)
                );
            }
            let _ = writeln!(out, "{indent}}}");
        }
        for node in &view.nodes {
            if node.service.is_none() && node.id.kind == NodeKind::HelmRelease {
                let _ = writeln!(
                    out,
                    "{indent}{} [label={}];",
                    ids[&node.id],
                    label(node, &node.label)
                );
            }
        }
        for edge in &view.edges {
            let (Some(from), Some(to)) = (ids.get(&edge.from), ids.get(&edge.to)) else {
                continue;
            };
            match &edge.alias {
                Some(alias) => {
                    let _ = writeln!(out, "{indent}{from} -> {to} [label={}];", quote(alias));
                }
                None => {
                    let _ = writeln!(out, "{indent}{from} -> {to};");
                }
            }
        }
        for node in &view.nodes {
            for unresolved in &node.unresolved {
                let missing = format!("m{next}");
                next += 1;
                let _ = writeln!(
                    out,
                    "{indent}{missing} [label={}, style=dashed];\n{indent}{} -> {missing} [style=dashed];",
                    quote(&format!("{unresolved}\n(not found)")),
                    ids[&node.id]
                );
            }
        }
        if views.len() > 1 {
            out.push_str("  }\n");
        }
    }
    out.push_str("}\n");
    out
}

#[cfg(test)]
mod tests {
    use crate::graph::tests_support::sample;

    #[test]
    fn services_are_clusters_and_dependencies_are_edges() {
        let dot = super::graph(&[sample()]);
        assert!(dot.starts_with("// Edges point"), "{dot}");
        assert!(
            dot.contains("subgraph cluster_0_1 {\n    label=\"UpstartService svc\";"),
            "{dot}"
        );
        // Nodes are numbered in view order: other/web n0, svc/db n1, other n2, svc/app n3, svc n4.
        assert!(dot.contains("  n3 -> n1;\n"), "{dot}");
        assert!(dot.contains("  n3 -> n2 [label=\"o\"];\n"), "{dot}");
        assert!(
            dot.contains("[label=\"nowhere\\n(not found)\", style=dashed]"),
            "{dot}"
        );
        assert!(dot.trim_end().ends_with('}'));
    }
}
