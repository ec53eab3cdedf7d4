//! What the proxy remembers of one exchange, and the recorder that turns it into one
//! value-free flow event (and metrics) from the outermost layer, refusals included.
//! Only config names, closed reason sets and numbers leave this file.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::Method;

use crate::config::{ClientAddress, Config};
use crate::error::ProxyError;
use crate::flowlog::{
    ClientAddr, ClientAddrMode, ConfigStr, Direction, FieldEvent, FlowEvent, FlowLog, MethodName,
    Outcome, RefuseReason, RequestId, UpstreamFailure,
};
use crate::route::Route;
use crate::transform::detect::Detector;
use crate::transform::request::TransformError;
use crate::transform::scan::ScanError;
use crate::transform::FieldRule;

/// Values one rule touched in one direction.
#[derive(Debug, Clone, Copy)]
pub struct FieldCount {
    /// Index of the rule in its route.
    pub rule: usize,
    /// How many values.
    pub count: u32,
}

/// One exchange as it happened.
pub struct Exchange {
    /// Sanitized or generated request id.
    pub request_id: RequestId,
    /// The request method.
    pub method: Method,
    /// Client socket address.
    pub peer: SocketAddr,
    /// Whether the client connection was TLS.
    pub tls: bool,
    /// When the request arrived.
    pub started: Instant,
    /// The matched route.
    pub route: Option<Arc<Route>>,
    /// The caller, when its token named one.
    pub caller: Option<ConfigStr>,
    /// Response values concealed from a caller not allowed to see them.
    pub concealed: u32,
    /// Status sent to the client.
    pub status: u16,
    /// Why the proxy answered itself, if it did.
    pub error: Option<ProxyError>,
    /// Request-direction counts per body rule.
    pub request_fields: Vec<FieldCount>,
    /// Request-direction counts per query rule.
    pub query_fields: Vec<FieldCount>,
    /// Sensitive-looking request values that no rule covered, by detector.
    pub uncovered: Vec<Detector>,
    /// Response values opened, per label.
    pub response_opened: Vec<(ConfigStr, u32)>,
    /// Response values that did not open.
    pub open_failures: u32,
    /// Their reasons.
    pub open_failure_reasons: Vec<&'static str>,
    /// A response on a rule route passed unopened (compressed, too large, not JSON).
    pub response_passed_unopened: bool,
    /// Time waiting on the upstream.
    pub upstream_time: Option<Duration>,
    /// Time reading and rewriting bodies.
    pub transform_time: Duration,
    /// Buffered request bytes.
    pub bytes_in: u64,
    /// Buffered response bytes.
    pub bytes_out: u64,
}

impl Exchange {
    /// A fresh record.
    pub fn new(
        request_id: RequestId,
        method: Method,
        peer: SocketAddr,
        started: Instant,
    ) -> Exchange {
        Exchange {
            request_id,
            method,
            peer,
            tls: false,
            started,
            route: None,
            caller: None,
            concealed: 0,
            status: 0,
            error: None,
            request_fields: Vec::new(),
            query_fields: Vec::new(),
            uncovered: Vec::new(),
            response_opened: Vec::new(),
            open_failures: 0,
            open_failure_reasons: Vec::new(),
            response_passed_unopened: false,
            upstream_time: None,
            transform_time: Duration::ZERO,
            bytes_in: 0,
            bytes_out: 0,
        }
    }

    /// Records the per-rule counts of a request body transform.
    pub fn add_request_counts(&mut self, counts: &[u32]) {
        self.request_fields.extend(nonzero(counts));
    }

    /// Records the per-rule counts of a query transform.
    pub fn add_query_counts(&mut self, counts: &[u32]) {
        self.query_fields.extend(nonzero(counts));
    }

    /// Every request-direction count with the rule it belongs to.
    pub fn request_counts<'a>(
        &'a self,
        route: &'a Route,
    ) -> impl Iterator<Item = (&'a FieldRule, u32)> + 'a {
        let body = self
            .request_fields
            .iter()
            .map(|fc| (&route.rules.fields[fc.rule], fc.count));
        let query = self
            .query_fields
            .iter()
            .map(|fc| (&route.query_rules.fields[fc.rule], fc.count));
        body.chain(query)
    }
}

fn nonzero(counts: &[u32]) -> impl Iterator<Item = FieldCount> + '_ {
    counts
        .iter()
        .enumerate()
        .filter(|(_, &count)| count > 0)
        .map(|(rule, &count)| FieldCount { rule, count })
}

impl Exchange {}

/// Something that sees every finished exchange (metrics).
pub type Observer = Arc<dyn Fn(&Exchange) + Send + Sync>;

/// Where exchanges go: the flow log (if configured) and the metrics hook.
#[derive(Clone, Default)]
pub struct Recorder {
    flowlog: Option<FlowLog>,
    client_hash_key: Arc<[u8; 32]>,
    observers: Vec<Observer>,
}

impl Recorder {
    /// A recorder writing to `flowlog`; client addresses hashed with `client_hash_key`.
    pub fn new(flowlog: Option<FlowLog>, client_hash_key: [u8; 32]) -> Recorder {
        Recorder {
            flowlog,
            client_hash_key: Arc::new(client_hash_key),
            observers: Vec::new(),
        }
    }

    /// Adds an observer (metrics) that sees every exchange.
    pub fn observe(&mut self, f: Observer) {
        self.observers.push(f);
    }

    /// The flow log, if any.
    pub fn flowlog(&self) -> Option<&FlowLog> {
        self.flowlog.as_ref()
    }

    /// Should rule routes refuse now (the log cannot record and the config says so)?
    pub fn must_refuse(&self) -> bool {
        self.flowlog.as_ref().is_some_and(|f| f.must_refuse())
    }

    /// Records one finished exchange.
    pub fn record(&self, ex: Exchange, config: &Config) {
        for o in &self.observers {
            o(&ex);
        }
        if let Some(log) = &self.flowlog {
            log.emit(self.event(ex, config, log.field_list()));
        }
    }

    /// The flow event of `ex`; its field entries go into `fields` (empty).
    fn event(&self, ex: Exchange, config: &Config, fields: Vec<FieldEvent>) -> FlowEvent {
        let mut ev = FlowEvent::new(ex.request_id.clone(), MethodName::new(ex.method.as_str()));
        ev.fields = fields;
        if let Some(route) = &ex.route {
            ev.route = Some(route.name);
            ev.path_template = Some(route.template.text);
            // At most one entry per rule and per opened label: at most one allocation
            // (none once the list has served an earlier event of this size).
            let most = route.rules.fields.len() + route.query_rules.fields.len();
            ev.fields.reserve(most + ex.response_opened.len());
            for (rule, count) in ex.request_counts(route) {
                ev.fields.push(FieldEvent {
                    label: rule.label,
                    category: rule.category,
                    action: ConfigStr::constant(rule.action.name()),
                    direction: Direction::Request,
                    count,
                });
            }
            for (label, count) in &ex.response_opened {
                let category = route.category_of(label);
                ev.fields.push(FieldEvent {
                    label: *label,
                    category: category.unwrap_or(ConfigStr::constant("unknown")),
                    action: ConfigStr::constant("open"),
                    direction: Direction::Response,
                    count: *count,
                });
            }
        }
        let settings = config.flow_log.as_ref();
        let mode = settings.map_or(ClientAddress::Truncate, |s| s.client_address);
        ev.client = match mode {
            ClientAddress::Omit => None,
            ClientAddress::Keep => Some(ClientAddr::from_ip(
                ex.peer.ip(),
                ClientAddrMode::Keep,
                &self.client_hash_key,
            )),
            ClientAddress::Truncate => Some(ClientAddr::from_ip(
                ex.peer.ip(),
                ClientAddrMode::Truncate,
                &self.client_hash_key,
            )),
            ClientAddress::Hash => Some(ClientAddr::from_ip(
                ex.peer.ip(),
                ClientAddrMode::Hash,
                &self.client_hash_key,
            )),
        };
        ev.upstream = ex.upstream_time.map(|_| config.upstream.name);
        ev.status = ex.status;
        ev.outcome = ex.error.map_or(Outcome::Forwarded, outcome);
        ev.open_failures = ex.open_failures;
        ev.caller = ex.caller;
        ev.uncovered = ex
            .uncovered
            .iter()
            .map(|d| ConfigStr::constant(d.name()))
            .collect();
        ev.duration_us = micros(ex.started.elapsed());
        ev.upstream_us = ex.upstream_time.map(micros);
        ev.transform_us = micros(ex.transform_time);
        ev.bytes_in = ex.bytes_in;
        ev.bytes_out = ex.bytes_out;
        ev
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// The flow-log outcome of a proxy error.
pub fn outcome(e: ProxyError) -> Outcome {
    let refused = Outcome::Refused;
    match e {
        ProxyError::BadPath(_) => refused(RefuseReason::AmbiguousPath),
        ProxyError::Body(TransformError::Crypto(_)) => refused(RefuseReason::CryptoFailure),
        ProxyError::Body(TransformError::MissingRecordKey) => refused(RefuseReason::Malformed),
        ProxyError::Body(TransformError::Scan(s)) => refused(match s {
            ScanError::DuplicateMember(_) => RefuseReason::DuplicateMember,
            ScanError::TooDeep => RefuseReason::TooDeep,
            ScanError::TooManyNodes => RefuseReason::TooLarge,
            ScanError::OurCiphertext(_) => RefuseReason::AlreadyProtected,
            ScanError::Malformed(_)
            | ScanError::MalformedForm(_)
            | ScanError::InvalidUtf8
            | ScanError::Bom
            | ScanError::LoneSurrogate(_)
            | ScanError::TrailingData(_) => RefuseReason::Malformed,
        }),
        ProxyError::TooLarge => refused(RefuseReason::TooLarge),
        ProxyError::UnsupportedMediaType | ProxyError::UnsupportedEncoding => {
            refused(RefuseReason::UnsupportedMedia)
        }
        ProxyError::BodyTimeout => refused(RefuseReason::ReadTimeout),
        ProxyError::BodyRead => refused(RefuseReason::Malformed),
        ProxyError::LogUnavailable => refused(RefuseReason::FlowLogUnavailable),
        ProxyError::Overloaded => refused(RefuseReason::Overloaded),
        ProxyError::OpenFailed => refused(RefuseReason::OpenFailed),
        ProxyError::UpstreamFailed => Outcome::UpstreamFailed(UpstreamFailure::Connect),
        ProxyError::UpstreamTimeout => Outcome::UpstreamFailed(UpstreamFailure::Timeout),
    }
}
