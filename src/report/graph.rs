//! Model stage of the report: the data-flow diagram as nodes and edges (callers -> routes
//! -> upstreams), each edge labelled with the categories it carried, how many values, and
//! how they were protected. The SVG, Mermaid and DOT renderers only lay it out.
//!
//! Node ids are generated (`c0`, `r0`, `u0`), never taken from names, so that they are
//! safe in every output syntax; names go into labels, which renderers escape.

use std::collections::BTreeMap;

use crate::flowlog::Direction;

use super::build::NO_ROUTE;
use super::model::*;

/// Colour of data that was protected before the upstream.
pub const GREEN: &str = "#1a7f37";
/// Colour of data as sent by the caller.
pub const GREY: &str = "#57606a";
/// Colour of data opened for the caller.
pub const ORANGE: &str = "#9a6700";
/// Colour of data no rule covered.
pub const RED: &str = "#cf222e";

/// The colour of one protection class.
pub fn colour(p: Protection) -> &'static str {
    match p {
        Protection::Protected => GREEN,
        Protection::Sent => GREY,
        Protection::Opened => ORANGE,
        Protection::Unprotected => RED,
    }
}

/// The colour of an edge: that of its most worrying item.
pub fn edge_colour(e: &Edge) -> &'static str {
    e.items
        .iter()
        .map(|i| i.protection)
        .max_by_key(|p| match p {
            Protection::Unprotected => 3,
            Protection::Opened => 2,
            Protection::Protected => 1,
            Protection::Sent => 0,
        })
        .map_or(GREY, colour)
}

/// Shown for events without a caller role.
pub const ANY_CALLER: &str = "any caller";

/// Builds the diagram from the report's rows.
pub fn diagram(routes: &[RouteRow], flows: &[FlowRow], uncovered: &[UncoveredRow]) -> Diagram {
    let mut callers: BTreeMap<(bool, Option<&str>), String> = BTreeMap::new();
    let mut upstreams: BTreeMap<&str, String> = BTreeMap::new();
    for r in routes {
        for c in &r.callers {
            callers.insert((c.caller.is_none(), c.caller.as_deref()), String::new());
        }
        for u in &r.upstreams {
            upstreams.insert(&u.upstream, String::new());
        }
    }
    let mut d = Diagram::default();
    for (i, ((_, caller), id)) in callers.iter_mut().enumerate() {
        *id = format!("c{i}");
        d.nodes.push(Node {
            id: id.clone(),
            kind: NodeKind::Caller,
            label: caller.unwrap_or(ANY_CALLER).to_owned(),
            detail: Vec::new(),
            warn: false,
        });
    }
    for (i, (name, id)) in upstreams.iter_mut().enumerate() {
        *id = format!("u{i}");
        d.nodes.push(Node {
            id: id.clone(),
            kind: NodeKind::Upstream,
            label: (*name).to_owned(),
            detail: vec!["upstream".into()],
            warn: false,
        });
    }
    for (i, r) in routes.iter().enumerate() {
        let rid = format!("r{i}");
        d.nodes.push(route_node(&rid, r));
        for c in &r.callers {
            let from = &callers[&(c.caller.is_none(), c.caller.as_deref())];
            let items = caller_items(flows, r, c.caller.as_deref());
            d.edges.push(Edge {
                from: from.clone(),
                to: rid.clone(),
                exchanges: c.exchanges,
                items,
            });
        }
        for u in &r.upstreams {
            let items = upstream_items(flows, uncovered, r, &u.upstream);
            d.edges.push(Edge {
                from: rid.clone(),
                to: upstreams[u.upstream.as_str()].clone(),
                exchanges: u.exchanges,
                items,
            });
        }
    }
    d
}

fn route_node(id: &str, r: &RouteRow) -> Node {
    let mut detail: Vec<String> = r.path_templates.clone();
    let plural = if r.exchanges == 1 { "" } else { "s" };
    detail.push(format!(
        "{} exchange{plural}, {} refused",
        r.exchanges, r.refused
    ));
    if r.route.is_none() {
        detail.push("no rule applies".into());
    }
    let no_rules = r.rules == Some(0) && r.exchanges > 0;
    if no_rules {
        detail.push("no field rules".into());
    }
    if r.exchanges == 0 {
        detail.push("not seen in the period".into());
    }
    if r.configured == Some(false) {
        detail.push("not in the config".into());
    }
    Node {
        id: id.to_owned(),
        kind: NodeKind::Route,
        label: r.route.clone().unwrap_or_else(|| NO_ROUTE.to_owned()),
        detail,
        warn: no_rules || r.configured == Some(false) || r.route.is_none(),
    }
}

type ItemKey = (Protection, String, String, bool);

fn collect(by: BTreeMap<ItemKey, u64>) -> Vec<EdgeItem> {
    by.into_iter()
        .map(
            |((protection, category, action, response), values)| EdgeItem {
                category,
                action,
                direction: if response {
                    Direction::Response
                } else {
                    Direction::Request
                },
                values,
                protection,
            },
        )
        .collect()
}

/// What went between a caller and the route: categories it sent, and those it got back
/// as plaintext.
fn caller_items(flows: &[FlowRow], r: &RouteRow, caller: Option<&str>) -> Vec<EdgeItem> {
    let mut by: BTreeMap<ItemKey, u64> = BTreeMap::new();
    for f in flows
        .iter()
        .filter(|f| f.route == r.route && f.caller.as_deref() == caller)
    {
        let response = f.direction == Direction::Response;
        let (protection, action) = match (response, f.action.as_str()) {
            (false, _) => (Protection::Sent, "sent"),
            (true, "open") => (Protection::Opened, "open"),
            (true, other) => (Protection::Protected, other),
        };
        *by.entry((protection, f.category.clone(), action.to_owned(), response))
            .or_default() += f.values;
    }
    collect(by)
}

/// What went from the route to an upstream: each category in the form the rules left it,
/// and sensitive-looking data no rule covered.
fn upstream_items(
    flows: &[FlowRow],
    uncovered: &[UncoveredRow],
    r: &RouteRow,
    upstream: &str,
) -> Vec<EdgeItem> {
    let mut by: BTreeMap<ItemKey, u64> = BTreeMap::new();
    for f in flows.iter().filter(|f| {
        f.route == r.route
            && f.upstream.as_deref() == Some(upstream)
            && f.direction == Direction::Request
    }) {
        *by.entry((
            Protection::Protected,
            f.category.clone(),
            f.action.clone(),
            false,
        ))
        .or_default() += f.values;
    }
    for u in uncovered
        .iter()
        .filter(|u| u.route == r.route && u.upstream.as_deref() == Some(upstream))
    {
        *by.entry((
            Protection::Unprotected,
            u.detector.clone(),
            "none".into(),
            false,
        ))
        .or_default() += u.exchanges;
    }
    collect(by)
}
