//! Output stage of the report: the report's tables as plain text cells, shared by the HTML
//! and Markdown renderers so that both carry the same data in the same order.
//!
//! Cells are unescaped text; each renderer escapes them for its syntax.

use super::build::NO_ROUTE;
use super::graph::ANY_CALLER;
use super::model::*;

/// One section of the report: a heading, paragraphs, and a table.
pub struct Section {
    /// Anchor id (fixed ASCII, safe as is).
    pub id: &'static str,
    /// Heading.
    pub title: &'static str,
    /// Paragraphs before the table.
    pub intro: Vec<String>,
    /// Column headings.
    pub head: Vec<&'static str>,
    /// Rows: an optional CSS class, then the cells.
    pub rows: Vec<(Option<&'static str>, Vec<String>)>,
    /// Shown instead of an empty table.
    pub empty: &'static str,
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "-".into()
    } else {
        items.join(", ")
    }
}

fn opt(s: &Option<String>) -> String {
    s.clone().unwrap_or_else(|| "-".into())
}

fn route(s: &Option<String>) -> String {
    s.clone().unwrap_or_else(|| NO_ROUTE.into())
}

fn span(first: &Option<String>, last: &Option<String>) -> String {
    match (first, last) {
        (Some(a), Some(b)) if a == b => a.clone(),
        (Some(a), Some(b)) => format!("{a} .. {b}"),
        _ => "-".into(),
    }
}

/// The sections after the diagram, in reading order (findings first).
pub fn sections(r: &Report) -> Vec<Section> {
    vec![
        findings(r),
        inventory(r),
        activities(r),
        refused(r),
        uncovered(r),
        routes(r),
        flows(r),
        chain(r),
        input(r),
    ]
}

fn findings(r: &Report) -> Section {
    Section {
        id: "findings",
        title: "Findings",
        intro: vec![
            "What needs attention first. A configured rule that never matched is \
                     flagged: a rule that silently does nothing is a leak."
                .into(),
        ],
        head: vec!["Severity", "Kind", "Route", "Label", "What"],
        rows: r
            .findings
            .iter()
            .map(|f| {
                let (class, sev) = match f.severity {
                    Severity::High => ("high", "high"),
                    Severity::Medium => ("medium", "medium"),
                    Severity::Low => ("low", "low"),
                };
                let cells = vec![
                    sev.into(),
                    f.kind.into(),
                    opt(&f.route),
                    opt(&f.label),
                    f.message.clone(),
                ];
                (Some(class), cells)
            })
            .collect(),
        empty: "No findings.",
    }
}

fn inventory(r: &Report) -> Section {
    Section {
        id: "inventory",
        title: "Data inventory",
        intro: vec![
            "Per data category: the routes that collect or return it, in which direction, \
             which action protects it before the upstream, and who received it as plaintext \
             from the proxy (the callers whose responses had it opened). Values counts every \
             value touched; exchanges counts exchanges per rule."
                .into(),
        ],
        head: vec![
            "Category",
            "Labels",
            "Routes",
            "Direction",
            "Protected by",
            "Plaintext seen by",
            "Values",
            "Exchanges",
            "First seen",
            "Last seen",
        ],
        rows: r
            .inventory
            .iter()
            .map(|i| {
                let dirs: Vec<String> = i
                    .directions
                    .iter()
                    .map(|d| format!("{d:?}").to_lowercase())
                    .collect();
                let values = if i.observed {
                    i.values.to_string()
                } else {
                    "0 (configured, never seen)".into()
                };
                let class = (!i.observed).then_some("medium");
                let cells = vec![
                    i.category.clone(),
                    list(&i.labels),
                    list(&i.routes),
                    list(&dirs),
                    list(&i.protection),
                    if i.plaintext_seen_by.is_empty() {
                        "nobody after the proxy".into()
                    } else {
                        list(&i.plaintext_seen_by)
                    },
                    values,
                    i.exchanges.to_string(),
                    opt(&i.first_seen),
                    opt(&i.last_seen),
                ];
                (class, cells)
            })
            .collect(),
        empty: "No data category seen or configured.",
    }
}

fn activities(r: &Report) -> Section {
    Section {
        id: "processing",
        title: "Records of processing activities (GDPR Art. 30 style)",
        intro: vec![
            "One record per route, from the configuration and the observed flows. Purpose is \
             the route's name: replace it with the business purpose, and add the data \
             subjects, the legal basis and the retention period, which tarnkappe cannot know."
                .into(),
        ],
        head: vec![
            "Purpose (route)",
            "Operations",
            "Categories of personal data",
            "Recipients",
            "Plaintext returned to",
            "Safeguards",
            "Source",
            "Exchanges",
            "Period",
        ],
        rows: r
            .processing_activities
            .iter()
            .map(|a| {
                let cells = vec![
                    a.purpose.clone(),
                    list(&a.operations),
                    list(&a.categories),
                    list(&a.recipients),
                    list(&a.plaintext_to),
                    list(&a.safeguards),
                    a.source.into(),
                    a.exchanges.to_string(),
                    span(&a.first_seen, &a.last_seen),
                ];
                (None, cells)
            })
            .collect(),
        empty: "No route seen or configured.",
    }
}

fn refused(r: &Report) -> Section {
    Section {
        id: "refused",
        title: "Refused and failed exchanges",
        intro: vec![
            "Exchanges the proxy answered itself (refused: nothing was forwarded) \
                     or that the upstream failed, by route and reason."
                .into(),
        ],
        head: vec![
            "Route",
            "Outcome",
            "Reason",
            "Status",
            "Exchanges",
            "First seen",
            "Last seen",
        ],
        rows: r
            .refused
            .iter()
            .map(|x| {
                let statuses: Vec<String> = x.statuses.iter().map(u16::to_string).collect();
                let cells = vec![
                    route(&x.route),
                    x.outcome.clone(),
                    opt(&x.reason),
                    list(&statuses),
                    x.exchanges.to_string(),
                    opt(&x.first_seen),
                    opt(&x.last_seen),
                ];
                (None, cells)
            })
            .collect(),
        empty: "No exchange was refused or failed.",
    }
}

fn uncovered(r: &Report) -> Section {
    Section {
        id: "uncovered",
        title: "Sensitive-looking data no rule covered",
        intro: vec![
            "Detectors found data that looks personal in bodies where no rule \
                     applied: it reached the upstream as sent."
                .into(),
        ],
        head: vec![
            "Route",
            "Upstream",
            "Detector",
            "Exchanges",
            "First seen",
            "Last seen",
        ],
        rows: r
            .uncovered
            .iter()
            .map(|u| {
                let cells = vec![
                    route(&u.route),
                    opt(&u.upstream),
                    u.detector.clone(),
                    u.exchanges.to_string(),
                    opt(&u.first_seen),
                    opt(&u.last_seen),
                ];
                (Some("high"), cells)
            })
            .collect(),
        empty: "None found.",
    }
}

fn routes(r: &Report) -> Section {
    Section {
        id: "routes",
        title: "Routes",
        intro: vec![],
        head: vec![
            "Route",
            "Path templates",
            "Methods",
            "Rules",
            "Callers",
            "Upstreams",
            "Exchanges",
            "Open failures",
            "Bytes in / out",
            "Period",
        ],
        rows: r.routes.iter().map(route_cells).collect(),
        empty: "No route.",
    }
}

fn route_cells(x: &RouteRow) -> (Option<&'static str>, Vec<String>) {
    let callers: Vec<String> = x
        .callers
        .iter()
        .map(|c| {
            format!(
                "{} x{}",
                c.caller.as_deref().unwrap_or(ANY_CALLER),
                c.exchanges
            )
        })
        .collect();
    let ups: Vec<String> = x
        .upstreams
        .iter()
        .map(|u| format!("{} x{}", u.upstream, u.exchanges))
        .collect();
    let rules = match (x.configured, x.rules) {
        (None, _) => "-".to_owned(),
        (Some(false), _) => "not in config".to_owned(),
        (Some(true), n) => n.unwrap_or(0).to_string(),
    };
    let cells = vec![
        route(&x.route),
        list(&x.path_templates),
        list(&x.methods),
        rules,
        list(&callers),
        list(&ups),
        format!(
            "{} ({} forwarded, {} refused, {} upstream failed, {} client aborted)",
            x.exchanges, x.forwarded, x.refused, x.upstream_failed, x.client_aborted
        ),
        x.open_failures.to_string(),
        format!("{} / {}", x.bytes_in, x.bytes_out),
        span(&x.first_seen, &x.last_seen),
    ];
    (None, cells)
}

fn flows(r: &Report) -> Section {
    Section {
        id: "flows",
        title: "Field flows",
        intro: vec![
            "Every rule's traffic per route, caller and upstream (action `open`: \
                     turned back into plaintext for the caller)."
                .into(),
        ],
        head: vec![
            "Route",
            "Caller",
            "Upstream",
            "Label",
            "Category",
            "Action",
            "Direction",
            "Values",
            "Exchanges",
            "Period",
        ],
        rows: r
            .flows
            .iter()
            .map(|f| {
                let cells = vec![
                    route(&f.route),
                    f.caller.clone().unwrap_or_else(|| ANY_CALLER.into()),
                    opt(&f.upstream),
                    f.label.clone(),
                    f.category.clone(),
                    f.action.clone(),
                    format!("{:?}", f.direction).to_lowercase(),
                    f.values.to_string(),
                    f.exchanges.to_string(),
                    span(&f.first_seen, &f.last_seen),
                ];
                (None, cells)
            })
            .collect(),
        empty: "No field rule touched any value.",
    }
}

fn chain(r: &Report) -> Section {
    let c = &r.chain;
    let mut intro = vec![format!("Status: {:?}. {}", c.status, c.summary)];
    if let Some(b) = &c.break_at {
        intro.push(format!("At {}:{}: {}", b.file, b.line, b.problem));
    }
    if c.status == ChainStatus::Intact {
        intro.push(
            "Record each instance's last hash somewhere else (a ticket, another host): a later \
             cut of the newest lines is then detectable."
                .into(),
        );
    }
    Section {
        id: "chain",
        title: "Chain verification",
        intro,
        head: vec![
            "Instance",
            "First seq",
            "Last seq",
            "Last hash",
            "From genesis",
            "HMAC",
        ],
        rows: c
            .instances
            .iter()
            .map(|i| {
                let yes = |b: bool| if b { "yes" } else { "no" }.to_owned();
                let cells = vec![
                    i.instance.clone(),
                    i.first_seq.to_string(),
                    i.last_seq.to_string(),
                    i.last_hash.clone(),
                    yes(i.from_genesis),
                    yes(i.mac),
                ];
                (None, cells)
            })
            .collect(),
        empty: "No verified chain.",
    }
}

fn input(r: &Report) -> Section {
    let i = &r.input;
    let mut intro = vec![format!(
        "{} line(s), {} event(s), {} unreadable, from {} file(s): {}",
        i.lines,
        i.events,
        i.unreadable_lines,
        i.files.len(),
        list(&i.files)
    )];
    if let Some(c) = &r.config {
        intro.push(format!(
            "Config: {} ({} route(s), {} rule(s), upstream {}).",
            c.file, c.routes, c.rules, c.upstream
        ));
    }
    Section {
        id: "input",
        title: "Input",
        intro,
        head: vec!["Instance", "Events", "First seen", "Last seen"],
        rows: i
            .instances
            .iter()
            .map(|x| {
                let cells = vec![
                    x.instance.clone(),
                    x.events.to_string(),
                    opt(&x.first_seen),
                    opt(&x.last_seen),
                ];
                (None, cells)
            })
            .collect(),
        empty: "No instance.",
    }
}
