//! Output stage of the report: the data-flow diagram alone, as a Mermaid flowchart.
//!
//! Node ids are the generated `c0`/`r0`/`u0`; every name is a quoted label escaped with
//! [`escape::mermaid`], so no name can add a node, an edge or a directive.

use std::fmt::Write;

use super::escape::mermaid as esc;
use super::graph::edge_colour;
use super::model::{Diagram, Node, NodeKind};

fn label(n: &Node) -> String {
    let mut parts = vec![format!("<b>{}</b>", esc(&n.label))];
    parts.extend(n.detail.iter().map(|d| esc(d)));
    parts.join("<br/>")
}

/// The diagram as a Mermaid `flowchart LR`.
pub fn render(d: &Diagram) -> String {
    let mut out = String::from("flowchart LR\n");
    for (kind, id, title) in [
        (NodeKind::Caller, "callers", "Callers"),
        (NodeKind::Route, "routes", "Routes (tarnkappe)"),
        (NodeKind::Upstream, "upstreams", "Upstreams"),
    ] {
        let _ = writeln!(out, "  subgraph {id}[\"{title}\"]");
        for n in d.nodes.iter().filter(|n| n.kind == kind) {
            let _ = writeln!(out, "    {}[\"{}\"]", n.id, label(n));
        }
        out.push_str("  end\n");
    }
    for e in &d.edges {
        let text: Vec<String> = e.lines().iter().map(|l| esc(l)).collect();
        let _ = writeln!(out, "  {} -->|\"{}\"| {}", e.from, text.join("<br/>"), e.to);
    }
    for (i, e) in d.edges.iter().enumerate() {
        let _ = writeln!(out, "  linkStyle {i} stroke:{}", edge_colour(e));
    }
    out.push_str("  classDef warn fill:#fff8c5,stroke:#9a6700\n");
    for n in d.nodes.iter().filter(|n| n.warn) {
        let _ = writeln!(out, "  class {} warn", n.id);
    }
    out
}
