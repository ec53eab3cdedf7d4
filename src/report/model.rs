//! Model stage of the report: the typed, serialisable report that every format renders
//! (the `json` format is this struct as is; its schema is documented in docs/report.md).
//!
//! It holds names from the configuration, closed-set names, counts and times only: never a
//! field value, a request id or a client address. Renderers must escape every string in
//! it, because config names are treated as untrusted text.

use serde::Serialize;

use crate::flowlog::{ChainSummary, Direction};

/// The `schema` member: bumped when a member changes meaning or disappears.
pub const SCHEMA: &str = "tarnkappe-report/1";

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Always [`SCHEMA`].
    pub schema: &'static str,
    /// `tarnkappe <version>`.
    pub generator: String,
    /// Earliest and latest event time.
    pub period: Period,
    /// What was read.
    pub input: Input,
    /// The config given with `--config`, if any.
    pub config: Option<ConfigInfo>,
    /// The hash-chain verification result.
    pub chain: ChainResult,
    /// Problems found, most severe first.
    pub findings: Vec<Finding>,
    /// Per route (observed or configured).
    pub routes: Vec<RouteRow>,
    /// Per route, caller, upstream, label, category, action and direction.
    pub flows: Vec<FlowRow>,
    /// Per data category.
    pub inventory: Vec<InventoryRow>,
    /// Sensitive-looking data that no rule covered.
    pub uncovered: Vec<UncoveredRow>,
    /// Refused and failed exchanges, by route, outcome and reason.
    pub refused: Vec<RefusedRow>,
    /// Records of processing activities (GDPR Art. 30 style), one per route.
    pub processing_activities: Vec<ActivityRow>,
    /// The data-flow diagram: callers -> routes -> upstreams.
    pub diagram: Diagram,
}

/// A time span; `null` members when no event had a readable time.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Period {
    /// Earliest event time (RFC 3339).
    pub first_seen: Option<String>,
    /// Latest event time (RFC 3339).
    pub last_seen: Option<String>,
}

/// What was read.
#[derive(Debug, Clone, Serialize)]
pub struct Input {
    /// The files, in the order read.
    pub files: Vec<String>,
    /// Lines read.
    pub lines: u64,
    /// Lines that were flow events.
    pub events: u64,
    /// Lines that were not flow events (skipped; `chain` says where).
    pub unreadable_lines: u64,
    /// Per proxy instance (replica).
    pub instances: Vec<InstanceRow>,
    /// True when more distinct names than the report keeps were found (a damaged or
    /// foreign file); the excess is counted under `(too many distinct names)`.
    pub names_overflow: bool,
}

/// One proxy instance.
#[derive(Debug, Clone, Serialize)]
pub struct InstanceRow {
    /// The instance id.
    pub instance: String,
    /// Its events.
    pub events: u64,
    /// Its earliest event.
    pub first_seen: Option<String>,
    /// Its latest event.
    pub last_seen: Option<String>,
}

/// The config given.
#[derive(Debug, Clone, Serialize)]
pub struct ConfigInfo {
    /// Its path.
    pub file: String,
    /// The configured upstream's name.
    pub upstream: String,
    /// Routes configured.
    pub routes: usize,
    /// Field rules configured.
    pub rules: usize,
}

/// Outcome of the chain check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChainStatus {
    /// Every file verified.
    Intact,
    /// A break was found (see `break_at`).
    Broken,
    /// HMAC-chained events and no key: not checked.
    Unverified,
}

/// The chain check (`tarnkappe audit verify` on the same files).
#[derive(Debug, Clone, Serialize)]
pub struct ChainResult {
    /// Intact, broken or unverified.
    pub status: ChainStatus,
    /// One sentence for people.
    pub summary: String,
    /// Per instance (only when intact).
    pub instances: Vec<ChainSummary>,
    /// The first break (only when broken or unverified).
    pub break_at: Option<BreakRow>,
}

/// Where the chain breaks.
#[derive(Debug, Clone, Serialize)]
pub struct BreakRow {
    /// The file.
    pub file: String,
    /// 1-based line; 0 for the file as a whole.
    pub line: u64,
    /// What is wrong.
    pub problem: String,
}

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Personal data may flow unprotected, or the record cannot be trusted.
    High,
    /// Needs a look.
    Medium,
    /// For the record.
    Low,
}

/// One problem found.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// High, medium or low.
    pub severity: Severity,
    /// Stable kind (see docs/report.md).
    pub kind: &'static str,
    /// The route concerned.
    pub route: Option<String>,
    /// The rule label concerned.
    pub label: Option<String>,
    /// What is wrong and what to do.
    pub message: String,
}

/// A caller's share of a route.
#[derive(Debug, Clone, Serialize)]
pub struct CallerCount {
    /// Caller role; `null` when unknown.
    pub caller: Option<String>,
    /// Exchanges.
    pub exchanges: u64,
}

/// An upstream's share of a route.
#[derive(Debug, Clone, Serialize)]
pub struct UpstreamCount {
    /// Upstream name.
    pub upstream: String,
    /// Exchanges that named it.
    pub exchanges: u64,
}

/// One route.
#[derive(Debug, Clone, Serialize)]
pub struct RouteRow {
    /// Route name; `null` for requests no route matched.
    pub route: Option<String>,
    /// In the config given (`null` without `--config`).
    pub configured: Option<bool>,
    /// Field rules configured (`null` without `--config` or when not configured).
    pub rules: Option<usize>,
    /// Path templates (configured and observed).
    pub path_templates: Vec<String>,
    /// Methods (configured and observed).
    pub methods: Vec<String>,
    /// Upstreams named by its events.
    pub upstreams: Vec<UpstreamCount>,
    /// Callers of its events.
    pub callers: Vec<CallerCount>,
    /// All exchanges.
    pub exchanges: u64,
    /// Forwarded.
    pub forwarded: u64,
    /// Refused by the proxy.
    pub refused: u64,
    /// Upstream failed.
    pub upstream_failed: u64,
    /// Client went away.
    pub client_aborted: u64,
    /// Response values that did not open.
    pub open_failures: u64,
    /// Request body bytes.
    pub bytes_in: u64,
    /// Response body bytes.
    pub bytes_out: u64,
    /// Earliest exchange.
    pub first_seen: Option<String>,
    /// Latest exchange.
    pub last_seen: Option<String>,
}

/// One field flow.
#[derive(Debug, Clone, Serialize)]
pub struct FlowRow {
    /// Route name.
    pub route: Option<String>,
    /// Caller role.
    pub caller: Option<String>,
    /// Upstream name.
    pub upstream: Option<String>,
    /// Rule label.
    pub label: String,
    /// Data category.
    pub category: String,
    /// Action (`open` for values turned back into plaintext for the caller).
    pub action: String,
    /// Request or response.
    pub direction: Direction,
    /// Values touched.
    pub values: u64,
    /// Exchanges that touched any.
    pub exchanges: u64,
    /// Earliest.
    pub first_seen: Option<String>,
    /// Latest.
    pub last_seen: Option<String>,
}

/// One data category.
#[derive(Debug, Clone, Serialize)]
pub struct InventoryRow {
    /// Data category (fideslang).
    pub category: String,
    /// Rule labels carrying it.
    pub labels: Vec<String>,
    /// Routes that collect or return it.
    pub routes: Vec<String>,
    /// Directions seen.
    pub directions: Vec<Direction>,
    /// Actions that protect it on the way to the upstream.
    pub protection: Vec<String>,
    /// Who received it as plaintext from the proxy: caller roles, or
    /// `any caller of route NAME` when the caller is not known.
    pub plaintext_seen_by: Vec<String>,
    /// Values touched.
    pub values: u64,
    /// Exchanges that touched it.
    pub exchanges: u64,
    /// Earliest.
    pub first_seen: Option<String>,
    /// Latest.
    pub last_seen: Option<String>,
    /// False for a category only configured, never seen in the period.
    pub observed: bool,
}

/// Sensitive-looking data no rule covered on a route.
#[derive(Debug, Clone, Serialize)]
pub struct UncoveredRow {
    /// Route name.
    pub route: Option<String>,
    /// Upstream that received it.
    pub upstream: Option<String>,
    /// Detector name.
    pub detector: String,
    /// Exchanges with such findings.
    pub exchanges: u64,
    /// Earliest.
    pub first_seen: Option<String>,
    /// Latest.
    pub last_seen: Option<String>,
}

/// Refused or failed exchanges of one route, outcome and reason.
#[derive(Debug, Clone, Serialize)]
pub struct RefusedRow {
    /// Route name; `null` when no route matched.
    pub route: Option<String>,
    /// `refused` or `upstream_failed`.
    pub outcome: String,
    /// The reason name.
    pub reason: Option<String>,
    /// Status codes sent.
    pub statuses: Vec<u16>,
    /// Exchanges.
    pub exchanges: u64,
    /// Earliest.
    pub first_seen: Option<String>,
    /// Latest.
    pub last_seen: Option<String>,
}

/// One record of processing (GDPR Art. 30 style).
#[derive(Debug, Clone, Serialize)]
pub struct ActivityRow {
    /// Purpose: the route's name (rename it in your documentation as needed).
    pub purpose: String,
    /// Methods and path templates.
    pub operations: Vec<String>,
    /// Categories of personal data.
    pub categories: Vec<String>,
    /// Recipients: the upstream(s).
    pub recipients: Vec<String>,
    /// Who receives plaintext back from the proxy.
    pub plaintext_to: Vec<String>,
    /// Technical safeguards: `category: action`.
    pub safeguards: Vec<String>,
    /// `config`, `observed` or `config+observed`.
    pub source: &'static str,
    /// Exchanges in the period.
    pub exchanges: u64,
    /// Earliest.
    pub first_seen: Option<String>,
    /// Latest.
    pub last_seen: Option<String>,
}

/// The data-flow diagram.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Diagram {
    /// Callers, routes and upstreams.
    pub nodes: Vec<Node>,
    /// Caller -> route and route -> upstream.
    pub edges: Vec<Edge>,
}

/// Column of a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeKind {
    /// A caller role (or any caller).
    Caller,
    /// A route.
    Route,
    /// An upstream.
    Upstream,
}

/// One node.
#[derive(Debug, Clone, Serialize)]
pub struct Node {
    /// Id unique in the diagram (`c0`, `r0`, `u0`, ...): safe in every output format.
    pub id: String,
    /// Column.
    pub kind: NodeKind,
    /// Name shown.
    pub label: String,
    /// Extra lines shown under the name.
    pub detail: Vec<String>,
    /// True when something about it needs attention (no rules, never seen, ...).
    pub warn: bool,
}

/// What protected the data on an edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protection {
    /// Sent in by the caller (the proxy protects it on the way on).
    Sent,
    /// Encrypted, hashed, masked, redacted or dropped.
    Protected,
    /// Turned back into plaintext for the caller.
    Opened,
    /// No rule covered it: it reached the upstream as sent.
    Unprotected,
}

/// One labelled item of an edge.
#[derive(Debug, Clone, Serialize)]
pub struct EdgeItem {
    /// Data category (or detector name for unprotected items).
    pub category: String,
    /// Action (`sent`, `open`, the rule's action, or `none`).
    pub action: String,
    /// Request or response.
    pub direction: Direction,
    /// Values.
    pub values: u64,
    /// Protection class.
    pub protection: Protection,
}

impl EdgeItem {
    /// The item as one label line, e.g. `user.contact.email: encrypt x12`.
    pub fn text(&self) -> String {
        let what = match self.protection {
            Protection::Sent => "sent".to_owned(),
            Protection::Opened => "opened".to_owned(),
            Protection::Unprotected => "NO RULE".to_owned(),
            Protection::Protected => self.action.clone(),
        };
        format!("{}: {what} x{}", self.category, self.values)
    }
}

/// One edge.
#[derive(Debug, Clone, Serialize)]
pub struct Edge {
    /// Node id.
    pub from: String,
    /// Node id.
    pub to: String,
    /// Exchanges along it.
    pub exchanges: u64,
    /// Categories and how they were protected.
    pub items: Vec<EdgeItem>,
}

impl Edge {
    /// One line per category: what happened to it on this edge (`sent x3, opened x2`),
    /// with the most worrying protection class of those parts.
    pub fn grouped(&self) -> Vec<(String, Protection)> {
        let mut out: Vec<(String, Vec<String>, Protection)> = Vec::new();
        for item in &self.items {
            let what = item.text();
            let part = what
                .strip_prefix(&format!("{}: ", item.category))
                .unwrap_or(&what)
                .to_owned();
            match out.iter_mut().find(|(c, _, _)| *c == item.category) {
                Some((_, parts, worst)) => {
                    parts.push(part);
                    *worst = (*worst).max(item.protection);
                }
                None => out.push((item.category.clone(), vec![part], item.protection)),
            }
        }
        out.into_iter()
            .map(|(c, parts, worst)| (format!("{c}: {}", parts.join(", ")), worst))
            .collect()
    }

    /// Label lines: the exchange count, then one line per category.
    pub fn lines(&self) -> Vec<String> {
        let mut out = vec![format!(
            "{} exchange{}",
            self.exchanges,
            if self.exchanges == 1 { "" } else { "s" }
        )];
        out.extend(self.grouped().into_iter().map(|(line, _)| line));
        out
    }
}

/// The configured side: routes and rules from `--config`, as plain names.
#[derive(Debug, Clone, Default)]
pub struct Configured {
    /// The config file.
    pub file: String,
    /// The upstream's name.
    pub upstream: String,
    /// The routes in config order.
    pub routes: Vec<ConfiguredRoute>,
}

/// One configured route.
#[derive(Debug, Clone)]
pub struct ConfiguredRoute {
    /// Name.
    pub name: String,
    /// Methods (empty: all).
    pub methods: Vec<String>,
    /// Path template.
    pub path_template: String,
    /// Field rules.
    pub rules: Vec<ConfiguredRule>,
}

/// One configured field rule.
#[derive(Debug, Clone)]
pub struct ConfiguredRule {
    /// Label.
    pub label: String,
    /// Category.
    pub category: String,
    /// Action name.
    pub action: String,
}

impl Configured {
    /// The names of a compiled config.
    pub fn from_config(config: &crate::config::Config) -> Configured {
        Configured {
            file: config.source.display().to_string(),
            upstream: config.upstream.name.to_string(),
            routes: config
                .router
                .routes()
                .iter()
                .map(|r| ConfiguredRoute {
                    name: r.name.to_string(),
                    methods: r.methods.iter().map(|m| m.as_str().to_owned()).collect(),
                    path_template: r.template.text.to_string(),
                    rules: r
                        .rules
                        .fields
                        .iter()
                        .map(|f| ConfiguredRule {
                            label: f.label.to_string(),
                            category: f.category.to_string(),
                            action: f.action.name().to_owned(),
                        })
                        .collect(),
                })
                .collect(),
        }
    }
}
