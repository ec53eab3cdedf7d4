//! Output stage of the report: the data-flow diagram alone, as a Graphviz DOT digraph
//! (`dot -Tsvg report.dot > report.svg`).
//!
//! Node ids are the generated `c0`/`r0`/`u0`; every name is inside a quoted string
//! escaped with [`escape::dot`], so no name can add a node, an edge or an attribute.

use std::fmt::Write;

use super::escape::dot as esc;
use super::graph::edge_colour;
use super::model::{Diagram, NodeKind};

/// The diagram as a DOT digraph.
pub fn render(d: &Diagram) -> String {
    let mut out = String::from("digraph tarnkappe_data_flow {\n  rankdir=LR;\n");
    out.push_str("  node [shape=box, style=\"rounded,filled\", fillcolor=\"#f6f8fa\", fontname=\"monospace\", fontsize=11];\n");
    out.push_str("  edge [fontname=\"monospace\", fontsize=10];\n");
    for (kind, id, title) in [
        (NodeKind::Caller, "cluster_callers", "Callers"),
        (NodeKind::Route, "cluster_routes", "Routes (tarnkappe)"),
        (NodeKind::Upstream, "cluster_upstreams", "Upstreams"),
    ] {
        let _ = writeln!(out, "  subgraph {id} {{\n    label=\"{title}\";");
        for n in d.nodes.iter().filter(|n| n.kind == kind) {
            let mut lines = vec![esc(&n.label)];
            lines.extend(n.detail.iter().map(|l| esc(l)));
            let fill = if n.warn {
                ", fillcolor=\"#fff8c5\""
            } else {
                ""
            };
            let _ = writeln!(out, "    {} [label=\"{}\"{fill}];", n.id, lines.join("\\n"));
        }
        out.push_str("  }\n");
    }
    for e in &d.edges {
        let lines: Vec<String> = e.lines().iter().map(|l| esc(l)).collect();
        let _ = writeln!(
            out,
            "  {} -> {} [label=\"{}\\l\", color=\"{}\"];",
            e.from,
            e.to,
            lines.join("\\l"),
            edge_colour(e)
        );
    }
    out.push_str("}\n");
    out
}
