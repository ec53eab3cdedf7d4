//! Output stage of the report: the data-flow diagram drawn as inline SVG by our own
//! layout (three columns: callers, routes, upstreams), so the HTML report needs no script,
//! font or image from anywhere.
//!
//! The element carries no `xmlns`: inline in HTML5 it needs none, and the report stays
//! free of any URL. Every name is escaped ([`escape::xml`]) and cut to fit; the full name is kept in a
//! `<title>` tooltip. It must never reference anything outside the document.

use std::collections::HashMap;
use std::fmt::Write;

use super::escape::{self, fit};
use super::graph::{colour, edge_colour, GREEN, GREY, ORANGE, RED};
use super::model::{Diagram, Edge, Node, NodeKind};

const LINE: f64 = 15.0;
const CHAR_W: f64 = 7.3;
const TOP: f64 = 44.0;
const ROW_GAP: f64 = 18.0;
const SIDE_W: f64 = 170.0;
const CALLER_X: f64 = 16.0;
const LABEL1_X: f64 = 276.0;
const ROUTE_X: f64 = 566.0;
const ROUTE_W: f64 = 220.0;
const LABEL2_X: f64 = ROUTE_X + ROUTE_W;
const LABEL2_W: f64 = 350.0;
const UP_X: f64 = LABEL2_X + LABEL2_W + 80.0;
const WIDTH: f64 = UP_X + SIDE_W + 16.0;
/// Label lines shown per edge; the rest is summarised (the tables have everything).
const MAX_LINES: usize = 8;

/// The label lines of an edge, each with its colour, cut to `MAX_LINES`.
fn edge_lines(e: &Edge) -> Vec<(String, &'static str)> {
    let mut lines = vec![(e.lines()[0].clone(), "#24292f")];
    let grouped = e.grouped();
    for (text, protection) in grouped.iter().take(MAX_LINES - 1) {
        lines.push((text.clone(), colour(*protection)));
    }
    if grouped.len() > MAX_LINES - 1 {
        let more = grouped.len() - (MAX_LINES - 1);
        lines.push((format!("+{more} more (see the tables)"), GREY));
    }
    lines
}

fn block_h(lines: usize) -> f64 {
    lines as f64 * LINE + 10.0
}

/// Writes one text line, cut to `width` pixels, with a tooltip when cut.
fn text(out: &mut String, x: f64, y: f64, width: f64, s: &str, attrs: &str) {
    let max = (width / CHAR_W).floor().max(4.0) as usize;
    let shown = fit(s, max);
    let title = if shown == s {
        String::new()
    } else {
        format!("<title>{}</title>", escape::xml(s))
    };
    let _ = writeln!(
        out,
        r#"<text x="{x:.1}" y="{y:.1}" {attrs}>{title}{}</text>"#,
        escape::xml(&shown)
    );
}

fn node_box(out: &mut String, n: &Node, x: f64, y: f64, w: f64, h: f64) {
    let (fill, stroke) = match (n.kind, n.warn) {
        (_, true) => ("#fff8c5", "#9a6700"),
        (NodeKind::Caller, _) => ("#ddf4ff", "#0969da"),
        (NodeKind::Route, _) => ("#f6f8fa", "#24292f"),
        (NodeKind::Upstream, _) => ("#eaeef2", "#57606a"),
    };
    let dash = if n.detail.iter().any(|d| d.starts_with("not seen")) {
        r#" stroke-dasharray="5 3""#
    } else {
        ""
    };
    let _ = writeln!(
        out,
        r#"<g class="node {kind:?}"><rect x="{x:.1}" y="{y:.1}" width="{w:.1}" height="{h:.1}" rx="6" fill="{fill}" stroke="{stroke}" stroke-width="1.5"{dash}/>"#,
        kind = n.kind
    );
    text(
        out,
        x + 8.0,
        y + LINE + 2.0,
        w - 16.0,
        &n.label,
        r#"font-weight="bold""#,
    );
    for (i, d) in n.detail.iter().enumerate() {
        let y = y + LINE * (i as f64 + 2.0) + 2.0;
        text(out, x + 8.0, y, w - 16.0, d, r##"fill="#57606a""##);
    }
    out.push_str("</g>\n");
}

fn side_h(n: &Node) -> f64 {
    (1 + n.detail.len()) as f64 * LINE + 12.0
}

/// Centres of `nodes` spread over `height`.
fn spread(nodes: &[&Node], height: f64) -> Vec<f64> {
    let step = height / nodes.len().max(1) as f64;
    (0..nodes.len())
        .map(|i| TOP + step * (i as f64 + 0.5))
        .collect()
}

/// Where the route rows go: `(top, height)` per route, and the height of the columns.
fn layout(d: &Diagram, routes: &[&Node], sides: [&[&Node]; 2]) -> (Vec<(f64, f64)>, f64) {
    let blocks =
        |edges: Vec<&Edge>| -> f64 { edges.iter().map(|e| block_h(edge_lines(e).len())).sum() };
    // Each route row holds its node and the label blocks of its edges.
    let mut rows = Vec::new();
    let mut y = TOP;
    for r in routes {
        let left = blocks(d.edges.iter().filter(|e| e.to == r.id).collect());
        let right = blocks(d.edges.iter().filter(|e| e.from == r.id).collect());
        let h = side_h(r).max(left).max(right);
        rows.push((y, h));
        y += h + ROW_GAP;
    }
    let need = |n: &[&Node]| n.iter().map(|n| side_h(n) + ROW_GAP).sum::<f64>();
    let height = (y - TOP).max(need(sides[0])).max(need(sides[1])).max(60.0);
    (rows, height)
}

/// The diagram as one `<svg>` element.
pub fn render(d: &Diagram) -> String {
    let of = |k: NodeKind| d.nodes.iter().filter(|n| n.kind == k).collect::<Vec<_>>();
    let (callers, routes, ups) = (
        of(NodeKind::Caller),
        of(NodeKind::Route),
        of(NodeKind::Upstream),
    );
    let (rows, height) = layout(d, &routes, [&callers, &ups]);
    let mut out = String::new();
    open(&mut out, TOP + height + 70.0, d.nodes.is_empty());
    let mut centre: HashMap<&str, f64> = HashMap::new();
    for (nodes, x) in [(&callers, CALLER_X), (&ups, UP_X)] {
        for (n, cy) in nodes.iter().zip(spread(nodes, height)) {
            centre.insert(&n.id, cy);
            node_box(&mut out, n, x, cy - side_h(n) / 2.0, SIDE_W, side_h(n));
        }
    }
    for (r, (y, h)) in routes.iter().zip(&rows) {
        node_box(&mut out, r, ROUTE_X, *y, ROUTE_W, *h);
        let mut top = *y;
        for e in d.edges.iter().filter(|e| e.to == r.id) {
            top = edge_left(&mut out, e, top, centre[e.from.as_str()]);
        }
        let mut top = *y;
        for e in d.edges.iter().filter(|e| e.from == r.id) {
            top = edge_right(&mut out, e, top, centre[e.to.as_str()]);
        }
    }
    legend(&mut out, TOP + height + 24.0);
    out.push_str("</svg>\n");
    out
}

/// The `<svg>` start tag, arrow markers and column titles.
fn open(out: &mut String, total_h: f64, empty: bool) {
    let _ = writeln!(
        out,
        r#"<svg id="flow-diagram" role="img" aria-labelledby="flow-diagram-title" viewBox="0 0 {WIDTH:.0} {total_h:.0}" width="100%" style="max-width:{WIDTH:.0}px" font-family="DejaVu Sans Mono, Menlo, Consolas, monospace" font-size="12">"#
    );
    out.push_str(r#"<title id="flow-diagram-title">Data flow: callers, routes, upstreams</title>"#);
    out.push_str("\n<defs>");
    for (name, c) in [
        ("grey", GREY),
        ("green", GREEN),
        ("orange", ORANGE),
        ("red", RED),
    ] {
        let _ = write!(
            out,
            r#"<marker id="arrow-{name}" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="{c}"/></marker>"#
        );
    }
    out.push_str("</defs>\n");
    for (x, t) in [
        (CALLER_X, "Callers"),
        (ROUTE_X, "Routes (tarnkappe)"),
        (UP_X, "Upstreams"),
    ] {
        let _ = writeln!(
            out,
            r##"<text x="{x:.1}" y="22" font-weight="bold" font-size="14" fill="#24292f">{t}</text>"##
        );
    }
    if empty {
        let _ = writeln!(
            out,
            r#"<text x="{ROUTE_X:.1}" y="{:.1}">No exchange observed and no route configured.</text>"#,
            TOP + 30.0
        );
    }
}

fn marker(c: &str) -> &'static str {
    match c {
        GREEN => "green",
        ORANGE => "orange",
        RED => "red",
        _ => "grey",
    }
}

fn stroke_w(e: &Edge) -> f64 {
    (1.2 + (e.exchanges.max(1) as f64).log10() * 0.6).min(4.5)
}

/// A caller -> route edge whose label block starts at `top`; returns the next block's top.
fn edge_left(out: &mut String, e: &Edge, top: f64, from_y: f64) -> f64 {
    let lines = edge_lines(e);
    let anchor = top + lines.len() as f64 * LINE + 4.0;
    let c = edge_colour(e);
    let x0 = CALLER_X + SIDE_W;
    let mid = (x0 + LABEL1_X) / 2.0;
    let _ = writeln!(
        out,
        r#"<g class="edge"><path d="M{x0:.1},{from_y:.1} C{mid:.1},{from_y:.1} {mid:.1},{anchor:.1} {LABEL1_X:.1},{anchor:.1} L{ROUTE_X:.1},{anchor:.1}" fill="none" stroke="{c}" stroke-width="{:.1}" marker-end="url(#arrow-{})"/>"#,
        stroke_w(e),
        marker(c)
    );
    label_lines(out, &lines, LABEL1_X + 4.0, top, ROUTE_X - LABEL1_X - 12.0);
    out.push_str("</g>\n");
    top + block_h(lines.len())
}

/// A route -> upstream edge whose label block starts at `top`.
fn edge_right(out: &mut String, e: &Edge, top: f64, to_y: f64) -> f64 {
    let lines = edge_lines(e);
    let anchor = top + lines.len() as f64 * LINE + 4.0;
    let c = edge_colour(e);
    let x1 = LABEL2_X + LABEL2_W;
    let mid = (x1 + UP_X) / 2.0;
    let _ = writeln!(
        out,
        r#"<g class="edge"><path d="M{LABEL2_X:.1},{anchor:.1} L{x1:.1},{anchor:.1} C{mid:.1},{anchor:.1} {mid:.1},{to_y:.1} {UP_X:.1},{to_y:.1}" fill="none" stroke="{c}" stroke-width="{:.1}" marker-end="url(#arrow-{})"/>"#,
        stroke_w(e),
        marker(c)
    );
    label_lines(out, &lines, LABEL2_X + 8.0, top, LABEL2_W - 12.0);
    out.push_str("</g>\n");
    top + block_h(lines.len())
}

fn label_lines(out: &mut String, lines: &[(String, &str)], x: f64, top: f64, width: f64) {
    for (i, (s, c)) in lines.iter().enumerate() {
        let y = top + LINE * (i as f64 + 1.0) - 2.0;
        text(out, x, y, width, s, &format!(r#"fill="{c}""#));
    }
}

fn legend(out: &mut String, y: f64) {
    let items = [
        (GREEN, "protected before the upstream (action named)"),
        (GREY, "sent by the caller"),
        (ORANGE, "opened: plaintext returned to the caller"),
        (RED, "NO RULE: sensitive-looking data reached the upstream"),
    ];
    let mut x = CALLER_X;
    for (i, (c, t)) in items.iter().enumerate() {
        if i == 2 {
            x = CALLER_X;
        }
        let yy = y + if i >= 2 { 20.0 } else { 0.0 };
        let _ = writeln!(
            out,
            r#"<rect x="{x:.1}" y="{:.1}" width="14" height="10" fill="{c}"/><text x="{:.1}" y="{yy:.1}" fill="{c}">{}</text>"#,
            yy - 9.0,
            x + 20.0,
            escape::xml(t)
        );
        x += 560.0;
    }
}
