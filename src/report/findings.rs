//! Model stage of the report: what an auditor must look at first. Configured rules that
//! never matched (a rule that silently does nothing is a leak), sensitive-looking data no
//! rule covered, routes without rules, a broken chain, flows the config does not know.
//!
//! Messages name routes, labels and categories from the config, never a value.

use std::collections::BTreeSet;

use super::build::NO_ROUTE;
use super::model::*;

/// What the findings are drawn from.
pub struct Facts<'a> {
    /// What was read.
    pub input: &'a Input,
    /// The chain check.
    pub chain: &'a ChainResult,
    /// Per route.
    pub routes: &'a [RouteRow],
    /// Per field flow.
    pub flows: &'a [FlowRow],
    /// Uncovered data.
    pub uncovered: &'a [UncoveredRow],
    /// The config, if given.
    pub configured: Option<&'a Configured>,
}

fn finding(
    severity: Severity,
    kind: &'static str,
    route: Option<&str>,
    label: Option<&str>,
    message: String,
) -> Finding {
    Finding {
        severity,
        kind,
        route: route.map(str::to_owned),
        label: label.map(str::to_owned),
        message,
    }
}

/// Every finding, most severe first.
pub fn findings(f: &Facts<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    input_findings(f, &mut out);
    for u in f.uncovered {
        let route = u.route.as_deref().unwrap_or(NO_ROUTE);
        out.push(finding(
            Severity::High,
            "uncovered_data",
            u.route.as_deref(),
            None,
            format!(
                "route {route}: data that looks like `{}` passed to {} with no rule covering it \
                 ({} exchange(s)); add a field rule for it",
                u.detector,
                u.upstream.as_deref().unwrap_or("the upstream"),
                u.exchanges
            ),
        ));
    }
    if let Some(c) = f.configured {
        config_findings(f, c, &mut out);
    }
    for r in f.routes.iter().filter(|r| r.open_failures > 0) {
        out.push(finding(
            Severity::Medium,
            "open_failures",
            r.route.as_deref(),
            None,
            format!(
                "route {}: {} response value(s) did not open (retired or erased key, or \
                 tampered ciphertext) and reached the caller as the marker",
                r.route.as_deref().unwrap_or(NO_ROUTE),
                r.open_failures
            ),
        ));
    }
    out.sort_by_key(|f| f.severity);
    out
}

fn input_findings(f: &Facts<'_>, out: &mut Vec<Finding>) {
    match f.chain.status {
        ChainStatus::Intact => {}
        ChainStatus::Broken => out.push(finding(
            Severity::High,
            "chain_broken",
            None,
            None,
            format!(
                "the flow log's hash chain is broken ({}): records may have been edited, \
                 deleted or lost; treat this report as incomplete",
                f.chain.summary
            ),
        )),
        ChainStatus::Unverified => out.push(finding(
            Severity::Medium,
            "chain_unverified",
            None,
            None,
            format!("the hash chain was not verified: {}", f.chain.summary),
        )),
    }
    if f.input.events == 0 {
        out.push(finding(
            Severity::Medium,
            "no_events",
            None,
            None,
            "the files hold no flow event: nothing was observed".into(),
        ));
    }
    if f.input.unreadable_lines > 0 {
        out.push(finding(
            Severity::Medium,
            "unreadable_lines",
            None,
            None,
            format!(
                "{} line(s) were not flow events and were skipped",
                f.input.unreadable_lines
            ),
        ));
    }
    if f.input.names_overflow {
        out.push(finding(
            Severity::Medium,
            "names_overflow",
            None,
            None,
            "the files hold more distinct names than a flow log of one config can; the \
             excess is counted under `(too many distinct names)`"
                .into(),
        ));
    }
}

fn config_findings(f: &Facts<'_>, c: &Configured, out: &mut Vec<Finding>) {
    let seen: BTreeSet<(&str, &str)> = f
        .flows
        .iter()
        .filter_map(|fl| Some((fl.route.as_deref()?, fl.label.as_str())))
        .collect();
    for cr in &c.routes {
        let row = f
            .routes
            .iter()
            .find(|r| r.route.as_deref() == Some(&cr.name));
        let exchanges = row.map_or(0, |r| r.exchanges);
        let forwarded = row.map_or(0, |r| r.forwarded);
        if exchanges == 0 {
            out.push(finding(
                Severity::Low,
                "route_never_seen",
                Some(&cr.name),
                None,
                format!("route {} had no exchange in the period", cr.name),
            ));
        } else if cr.rules.is_empty() {
            out.push(finding(
                Severity::Medium,
                "route_without_rules",
                Some(&cr.name),
                None,
                format!(
                    "route {} has no field rules: its {exchanges} exchange(s) passed to the \
                     upstream unchanged; confirm it carries no personal data",
                    cr.name
                ),
            ));
        }
        for rule in &cr.rules {
            if !seen.contains(&(cr.name.as_str(), rule.label.as_str())) {
                out.push(never_matched(cr, rule, forwarded));
            }
        }
    }
    not_in_config(f, c, out);
}

/// A configured rule that no event shows: high when its route forwarded exchanges.
fn never_matched(cr: &ConfiguredRoute, rule: &ConfiguredRule, forwarded: u64) -> Finding {
    let (severity, why) = if forwarded > 0 {
        (
            Severity::High,
            format!(
                "although the route forwarded {forwarded} exchange(s); if they carried \
                 {} it reached the upstream unprotected: check the rule's path",
                rule.category
            ),
        )
    } else {
        (Severity::Medium, "(the route forwarded nothing)".to_owned())
    };
    finding(
        severity,
        "rule_never_matched",
        Some(&cr.name),
        Some(&rule.label),
        format!(
            "rule {} ({}, {}) on route {} never matched in the period {why}",
            rule.label, rule.category, rule.action, cr.name
        ),
    )
}

fn not_in_config(f: &Facts<'_>, c: &Configured, out: &mut Vec<Finding>) {
    for r in f.routes.iter().filter(|r| r.configured == Some(false)) {
        let Some(route) = &r.route else { continue };
        out.push(finding(
            Severity::Medium,
            "not_in_config",
            Some(route),
            None,
            format!(
                "route {route} appears in the flow log ({} exchange(s)) but not in the config \
                 given: the config changed during the period, or it is not the one in use",
                r.exchanges
            ),
        ));
    }
    let mut reported = BTreeSet::new();
    for fl in f.flows {
        let Some(route) = &fl.route else { continue };
        let Some(cr) = c.routes.iter().find(|cr| &cr.name == route) else {
            continue;
        };
        if cr.rules.iter().any(|r| r.label == fl.label) || !reported.insert((route, &fl.label)) {
            continue;
        }
        out.push(finding(
            Severity::Medium,
            "not_in_config",
            Some(route),
            Some(&fl.label),
            format!(
                "label {} ({}) was applied on route {route} but the config given has no such \
                 rule there",
                fl.label, fl.category
            ),
        ));
    }
}
