//! Model stage of the report: turns the bounded counters of [`scan`](super::scan) and the
//! configured routes into the rows of the [`Report`]: routes, flows, data inventory,
//! refused exchanges, records of processing.
//!
//! Works on names and counts only; it never sees an event, let alone a value.

use std::collections::{BTreeMap, BTreeSet};

use super::model::*;
use super::scan::{Aggregate, Tally};

/// Shown for requests that matched no route.
pub const NO_ROUTE: &str = "(no route)";

/// Builds the report.
pub fn build(
    agg: &Aggregate,
    configured: Option<&Configured>,
    chain: ChainResult,
    files: Vec<String>,
) -> Report {
    let routes = routes(agg, configured);
    let flows = flows(agg);
    let inventory = inventory(agg, configured);
    let uncovered = uncovered(agg);
    let refused = refused(agg);
    let processing_activities = activities(&routes, &flows, &uncovered, configured);
    let input = Input {
        files,
        lines: agg.lines,
        events: agg.events,
        unreadable_lines: agg.unreadable,
        instances: instances(agg),
        names_overflow: agg.names.overflowed,
    };
    let findings = super::findings::findings(&super::findings::Facts {
        input: &input,
        chain: &chain,
        routes: &routes,
        flows: &flows,
        uncovered: &uncovered,
        configured,
    });
    let diagram = super::graph::diagram(&routes, &flows, &uncovered);
    Report {
        schema: SCHEMA,
        generator: format!("tarnkappe {}", env!("CARGO_PKG_VERSION")),
        period: Period {
            first_seen: agg.all.first.to_rfc3339(),
            last_seen: agg.all.last.to_rfc3339(),
        },
        input,
        config: configured.map(|c| ConfigInfo {
            file: c.file.clone(),
            upstream: c.upstream.clone(),
            routes: c.routes.len(),
            rules: c.routes.iter().map(|r| r.rules.len()).sum(),
        }),
        chain,
        findings,
        routes,
        flows,
        inventory,
        uncovered,
        refused,
        processing_activities,
        diagram,
    }
}

fn name(agg: &Aggregate, id: u32) -> Option<String> {
    agg.names.get(id).map(str::to_owned)
}

fn times(t: &Tally) -> (Option<String>, Option<String>) {
    (t.first.to_rfc3339(), t.last.to_rfc3339())
}

/// Sort key that puts `None` (no route) after every name.
fn last_none(o: &Option<String>) -> (bool, &str) {
    (o.is_none(), o.as_deref().unwrap_or(""))
}

fn instances(agg: &Aggregate) -> Vec<InstanceRow> {
    let mut rows: Vec<InstanceRow> = agg
        .instances
        .iter()
        .map(|(id, t)| {
            let (first_seen, last_seen) = times(t);
            InstanceRow {
                instance: name(agg, *id).unwrap_or_default(),
                events: t.exchanges,
                first_seen,
                last_seen,
            }
        })
        .collect();
    rows.sort_by(|a, b| a.instance.cmp(&b.instance));
    rows
}

#[derive(Default)]
struct RouteAcc {
    configured: Option<bool>,
    rules: Option<usize>,
    templates: BTreeSet<String>,
    methods: BTreeSet<String>,
    upstreams: BTreeMap<String, u64>,
    callers: BTreeMap<Option<String>, u64>,
    tally: Tally,
    outcomes: [u64; 4],
    open_failures: u64,
}

fn routes(agg: &Aggregate, configured: Option<&Configured>) -> Vec<RouteRow> {
    let mut by = route_accs(agg);
    if let Some(c) = configured {
        for (route, acc) in by.iter_mut() {
            acc.configured = route.as_ref().map(|_| false);
        }
        for r in &c.routes {
            let acc = by.entry(Some(r.name.clone())).or_default();
            acc.configured = Some(true);
            acc.rules = Some(r.rules.len());
            acc.templates.insert(r.path_template.clone());
            if r.methods.is_empty() {
                acc.methods.insert("ANY".into());
            }
            acc.methods.extend(r.methods.iter().cloned());
        }
    }
    let mut rows: Vec<RouteRow> = by.into_iter().map(route_row).collect();
    rows.sort_by(|a, b| last_none(&a.route).cmp(&last_none(&b.route)));
    rows
}

fn route_accs(agg: &Aggregate) -> BTreeMap<Option<String>, RouteAcc> {
    let mut by: BTreeMap<Option<String>, RouteAcc> = BTreeMap::new();
    for (k, t) in &agg.exchanges {
        let acc = by.entry(name(agg, k.route)).or_default();
        acc.tally.merge(t);
        acc.templates.extend(name(agg, k.template));
        acc.methods.extend(name(agg, k.method));
        if let Some(u) = name(agg, k.upstream) {
            *acc.upstreams.entry(u).or_default() += t.exchanges;
        }
        *acc.callers.entry(name(agg, k.caller)).or_default() += t.exchanges;
        let slot = match agg.names.get(k.outcome) {
            Some("forwarded") => Some(0),
            Some("refused") => Some(1),
            Some("upstream_failed") => Some(2),
            Some("client_aborted") => Some(3),
            _ => None,
        };
        if let Some(i) = slot {
            acc.outcomes[i] += t.exchanges;
        }
        acc.open_failures += t.values;
    }
    by
}

fn route_row((route, a): (Option<String>, RouteAcc)) -> RouteRow {
    let (first_seen, last_seen) = times(&a.tally);
    RouteRow {
        configured: a.configured,
        rules: a.rules,
        path_templates: a.templates.into_iter().collect(),
        methods: a.methods.into_iter().collect(),
        upstreams: a
            .upstreams
            .into_iter()
            .map(|(upstream, exchanges)| UpstreamCount {
                upstream,
                exchanges,
            })
            .collect(),
        callers: a
            .callers
            .into_iter()
            .map(|(caller, exchanges)| CallerCount { caller, exchanges })
            .collect(),
        exchanges: a.tally.exchanges,
        forwarded: a.outcomes[0],
        refused: a.outcomes[1],
        upstream_failed: a.outcomes[2],
        client_aborted: a.outcomes[3],
        open_failures: a.open_failures,
        bytes_in: a.tally.bytes_in,
        bytes_out: a.tally.bytes_out,
        first_seen,
        last_seen,
        route,
    }
}

fn flows(agg: &Aggregate) -> Vec<FlowRow> {
    let mut rows: Vec<FlowRow> = agg
        .fields
        .iter()
        .map(|(k, t)| {
            let (first_seen, last_seen) = times(t);
            FlowRow {
                route: name(agg, k.route),
                caller: name(agg, k.caller),
                upstream: name(agg, k.upstream),
                label: name(agg, k.label).unwrap_or_default(),
                category: name(agg, k.category).unwrap_or_default(),
                action: name(agg, k.action).unwrap_or_default(),
                direction: k.direction(),
                values: t.values,
                exchanges: t.exchanges,
                first_seen,
                last_seen,
            }
        })
        .collect();
    rows.sort_by(|a, b| {
        let key = |r: &FlowRow| {
            (
                last_none(&r.route).0,
                r.route.clone(),
                r.direction == crate::flowlog::Direction::Response,
                r.label.clone(),
                r.action.clone(),
                last_none(&r.caller).0,
                r.caller.clone(),
                r.upstream.clone(),
            )
        };
        key(a).cmp(&key(b))
    });
    rows
}

#[derive(Default)]
struct InvAcc {
    labels: BTreeSet<String>,
    routes: BTreeSet<String>,
    directions: BTreeSet<bool>,
    protection: BTreeSet<String>,
    seen_by: BTreeSet<String>,
    tally: Tally,
    observed: bool,
}

fn inventory(agg: &Aggregate, configured: Option<&Configured>) -> Vec<InventoryRow> {
    let mut by: BTreeMap<String, InvAcc> = BTreeMap::new();
    for (k, t) in &agg.fields {
        let acc = by
            .entry(name(agg, k.category).unwrap_or_default())
            .or_default();
        let route = name(agg, k.route).unwrap_or_else(|| NO_ROUTE.to_owned());
        let action = agg.names.get(k.action).unwrap_or_default();
        acc.observed = true;
        acc.labels.extend(name(agg, k.label));
        acc.directions.insert(k.response);
        acc.tally.merge(t);
        if k.response && action == "open" {
            acc.seen_by.insert(
                name(agg, k.caller).unwrap_or_else(|| format!("any caller of route {route}")),
            );
        } else {
            acc.protection.insert(action.to_owned());
        }
        acc.routes.insert(route);
    }
    for r in configured.iter().flat_map(|c| &c.routes) {
        for rule in &r.rules {
            let acc = by.entry(rule.category.clone()).or_default();
            if !acc.observed {
                acc.labels.insert(rule.label.clone());
                acc.routes.insert(r.name.clone());
                acc.protection.insert(rule.action.clone());
            }
        }
    }
    by.into_iter()
        .map(|(category, a)| {
            let (first_seen, last_seen) = times(&a.tally);
            InventoryRow {
                category,
                labels: a.labels.into_iter().collect(),
                routes: a.routes.into_iter().collect(),
                directions: a.directions.into_iter().map(direction).collect(),
                protection: a.protection.into_iter().collect(),
                plaintext_seen_by: a.seen_by.into_iter().collect(),
                values: a.tally.values,
                exchanges: a.tally.exchanges,
                first_seen,
                last_seen,
                observed: a.observed,
            }
        })
        .collect()
}

fn direction(response: bool) -> crate::flowlog::Direction {
    if response {
        crate::flowlog::Direction::Response
    } else {
        crate::flowlog::Direction::Request
    }
}

fn uncovered(agg: &Aggregate) -> Vec<UncoveredRow> {
    let mut by: BTreeMap<(bool, Option<String>, Option<String>, String), Tally> = BTreeMap::new();
    for (k, t) in &agg.uncovered {
        let route = name(agg, k.route);
        let key = (
            route.is_none(),
            route,
            name(agg, k.upstream),
            name(agg, k.detector).unwrap_or_default(),
        );
        by.entry(key).or_default().merge(t);
    }
    by.into_iter()
        .map(|((_, route, upstream, detector), t)| {
            let (first_seen, last_seen) = times(&t);
            UncoveredRow {
                route,
                upstream,
                detector,
                exchanges: t.exchanges,
                first_seen,
                last_seen,
            }
        })
        .collect()
}

type RefusedKey = (bool, Option<String>, String, Option<String>);

fn refused(agg: &Aggregate) -> Vec<RefusedRow> {
    let mut by: BTreeMap<RefusedKey, (Tally, BTreeSet<u16>)> = BTreeMap::new();
    for (k, t) in &agg.exchanges {
        let outcome = agg.names.get(k.outcome).unwrap_or_default();
        if outcome != "refused" && outcome != "upstream_failed" {
            continue;
        }
        let route = name(agg, k.route);
        let key = (
            route.is_none(),
            route,
            outcome.to_owned(),
            name(agg, k.reason),
        );
        let (tally, statuses) = by.entry(key).or_default();
        tally.merge(t);
        statuses.insert(k.status);
    }
    by.into_iter()
        .map(|((_, route, outcome, reason), (t, statuses))| {
            let (first_seen, last_seen) = times(&t);
            RefusedRow {
                route,
                outcome,
                reason,
                statuses: statuses.into_iter().collect(),
                exchanges: t.exchanges,
                first_seen,
                last_seen,
            }
        })
        .collect()
}

fn activities(
    routes: &[RouteRow],
    flows: &[FlowRow],
    uncovered: &[UncoveredRow],
    configured: Option<&Configured>,
) -> Vec<ActivityRow> {
    let mut rows = Vec::new();
    for r in routes {
        let Some(route) = &r.route else { continue };
        let conf = configured.and_then(|c| c.routes.iter().find(|cr| &cr.name == route));
        let mut categories = BTreeSet::new();
        let mut safeguards = BTreeSet::new();
        let mut plaintext_to = BTreeSet::new();
        for f in flows.iter().filter(|f| f.route.as_ref() == Some(route)) {
            categories.insert(f.category.clone());
            if f.direction == crate::flowlog::Direction::Response && f.action == "open" {
                plaintext_to.insert(f.caller.clone().unwrap_or_else(|| "any caller".into()));
            } else {
                safeguards.insert(format!("{}: {}", f.category, f.action));
            }
        }
        for u in uncovered.iter().filter(|u| u.route.as_ref() == Some(route)) {
            categories.insert(format!("{} (detected, no rule)", u.detector));
            safeguards.insert(format!("{}: none", u.detector));
        }
        for rule in conf.iter().flat_map(|c| &c.rules) {
            categories.insert(rule.category.clone());
            safeguards.insert(format!("{}: {}", rule.category, rule.action));
        }
        let mut recipients: Vec<String> = r.upstreams.iter().map(|u| u.upstream.clone()).collect();
        if recipients.is_empty() {
            recipients.extend(
                configured
                    .filter(|_| conf.is_some())
                    .map(|c| c.upstream.clone()),
            );
        }
        let methods = r.methods.join(", ");
        let source = match (conf.is_some(), r.exchanges > 0) {
            (true, true) => "config+observed",
            (true, false) => "config",
            _ => "observed",
        };
        rows.push(ActivityRow {
            purpose: route.clone(),
            operations: r
                .path_templates
                .iter()
                .map(|t| format!("{methods} {t}"))
                .collect(),
            categories: categories.into_iter().collect(),
            recipients,
            plaintext_to: plaintext_to.into_iter().collect(),
            safeguards: safeguards.into_iter().collect(),
            source,
            exchanges: r.exchanges,
            first_seen: r.first_seen.clone(),
            last_seen: r.last_seen.clone(),
        });
    }
    rows
}
