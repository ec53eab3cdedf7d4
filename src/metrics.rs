//! Prometheus metrics. Every family is registered up front on a registry that is passed
//! in (no globals: tests need fresh registries). Labels come from the config only
//! (route names, categories, actions, closed reason sets, status classes), never from
//! raw request data, so no request can grow the series count.

use std::cell::RefCell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry,
};

use crate::flowlog::ConfigStr;
use crate::proxy::{Exchange, FieldCount};
use crate::transform::FieldRule;

/// Latency buckets in seconds, from 100 µs to 30 s.
const BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0,
];

/// Every metric family of the proxy.
pub struct Metrics {
    requests: IntCounterVec,
    request_duration: HistogramVec,
    upstream_duration: HistogramVec,
    transform_duration: HistogramVec,
    fields: IntCounterVec,
    rejected: IntCounterVec,
    crypto_failures: IntCounterVec,
    uncovered: IntCounterVec,
    /// Flow-log events written (mirrored from the writer at scrape time).
    pub flow_log_events: IntCounter,
    /// Flow-log events lost or failed writes (mirrored at scrape time).
    pub flow_log_errors: IntCounter,
    /// Rotated flow-log files deleted as past `delete_after` (mirrored at scrape time).
    pub flow_log_files_deleted: IntCounter,
    /// Reloads refused because the new config or keyring was invalid.
    pub reload_failures: IntCounter,
    /// Successful reloads.
    pub reloads: IntCounter,
    _build: IntGaugeVec,
    /// Tells this set of families apart in the per-thread handle cache.
    id: usize,
}

static NEXT_ID: AtomicUsize = AtomicUsize::new(0);

/// The series one route touches on every exchange, looked up by label once per thread
/// and then reused: a label lookup hashes every label value and takes a lock.
#[derive(Default)]
struct RouteSeries {
    /// By standard method, then status class.
    requests: [[Option<IntCounter>; 5]; 8],
    request_duration: Option<Histogram>,
    upstream_duration: Option<Histogram>,
    transform_duration: Option<Histogram>,
    /// Request-direction field counts: body rules by index, then query rules.
    fields: Vec<Option<(ConfigStr, &'static str, IntCounter)>>,
}

thread_local! {
    /// (families id, route name, series); route names are interned, so equal names
    /// are equal pointers.
    static SERIES: RefCell<Vec<(usize, &'static str, RouteSeries)>> = const { RefCell::new(Vec::new()) };
}

/// Entries a thread keeps before it starts over (reloads that rename routes, tests
/// that make many registries).
const SERIES_CACHE: usize = 256;

fn counter_vec(
    r: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> prometheus::Result<IntCounterVec> {
    let c = IntCounterVec::new(Opts::new(name, help), labels)?;
    r.register(Box::new(c.clone()))?;
    Ok(c)
}

fn histogram_vec(r: &Registry, name: &str, help: &str) -> prometheus::Result<HistogramVec> {
    let h = HistogramVec::new(
        HistogramOpts::new(name, help).buckets(BUCKETS.to_vec()),
        &["route"],
    )?;
    r.register(Box::new(h.clone()))?;
    Ok(h)
}

fn counter(r: &Registry, name: &str, help: &str) -> prometheus::Result<IntCounter> {
    let c = IntCounter::new(name, help)?;
    r.register(Box::new(c.clone()))?;
    Ok(c)
}

impl Metrics {
    /// Registers every family on `r`.
    pub fn new(r: &Registry) -> prometheus::Result<Metrics> {
        let build = IntGaugeVec::new(
            Opts::new("tarnkappe_build_info", "Build information; always 1."),
            &["version"],
        )?;
        r.register(Box::new(build.clone()))?;
        build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        Ok(Metrics {
            requests: counter_vec(
                r,
                "tarnkappe_requests_total",
                "Exchanges by route, method and status class.",
                &["route", "method", "status"],
            )?,
            request_duration: histogram_vec(
                r,
                "tarnkappe_request_duration_seconds",
                "Whole exchange time by route.",
            )?,
            upstream_duration: histogram_vec(
                r,
                "tarnkappe_upstream_duration_seconds",
                "Time waiting for the upstream's answer head by route.",
            )?,
            transform_duration: histogram_vec(
                r,
                "tarnkappe_transform_duration_seconds",
                "Time the proxy itself spent parsing and rewriting bodies, by route.",
            )?,
            fields: counter_vec(
                r,
                "tarnkappe_fields_total",
                "Field values transformed, by route, category, action and direction.",
                &["route", "category", "action", "direction"],
            )?,
            rejected: counter_vec(
                r,
                "tarnkappe_rejected_total",
                "Exchanges the proxy refused or could not complete, by route and reason.",
                &["route", "reason"],
            )?,
            crypto_failures: counter_vec(
                r,
                "tarnkappe_crypto_failures_total",
                "Ciphertexts that did not open, by reason.",
                &["reason"],
            )?,
            uncovered: counter_vec(
                r,
                "tarnkappe_uncovered_total",
                "Requests carrying sensitive-looking values that no rule covers, by route and detector.",
                &["route", "detector"],
            )?,
            flow_log_events: counter(
                r,
                "tarnkappe_flow_log_events_total",
                "Flow-log events written.",
            )?,
            flow_log_errors: counter(
                r,
                "tarnkappe_flow_log_errors_total",
                "Flow-log events lost or writes that failed.",
            )?,
            flow_log_files_deleted: counter(
                r,
                "tarnkappe_flow_log_files_deleted_total",
                "Rotated flow-log files deleted because their events were older than flow_log.delete_after.",
            )?,
            reload_failures: counter(
                r,
                "tarnkappe_config_reload_failures_total",
                "Reloads refused (invalid config or keyring); the old one kept serving.",
            )?,
            reloads: counter(
                r,
                "tarnkappe_config_reloads_total",
                "Successful config and keyring reloads.",
            )?,
            _build: build,
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
        })
    }

    /// Counts one finished exchange.
    pub fn observe(&self, ex: &Exchange) {
        let route = ex.route.as_ref().map_or("none", |r| r.name.as_str());
        let (method, m) = standard_method(&ex.method);
        let (class, c) = match ex.status {
            100..=199 => ("1xx", 0),
            200..=299 => ("2xx", 1),
            300..=399 => ("3xx", 2),
            400..=499 => ("4xx", 3),
            _ => ("5xx", 4),
        };
        let transformed = ex.route.as_ref().is_some_and(|r| r.has_rules());
        SERIES.with_borrow_mut(|cache| {
            let at = cache
                .iter()
                .position(|(id, name, _)| *id == self.id && std::ptr::eq(*name, route));
            let at = at.unwrap_or_else(|| {
                if cache.len() >= SERIES_CACHE {
                    cache.clear();
                }
                cache.push((self.id, route, RouteSeries::default()));
                cache.len() - 1
            });
            let series = &mut cache[at].2;
            series.requests[m][c]
                .get_or_insert_with(|| self.requests.with_label_values(&[route, method, class]))
                .inc();
            let elapsed = ex.started.elapsed();
            observe(
                &mut series.request_duration,
                &self.request_duration,
                route,
                elapsed,
            );
            if let Some(up) = ex.upstream_time {
                observe(
                    &mut series.upstream_duration,
                    &self.upstream_duration,
                    route,
                    up,
                );
            }
            if transformed {
                let took = ex.transform_time;
                observe(
                    &mut series.transform_duration,
                    &self.transform_duration,
                    route,
                    took,
                );
            }
            if let Some(r) = &ex.route {
                // Body rules by their index in the route, then query rules after them.
                let body = &r.rules.fields;
                self.count_fields(series, route, &ex.request_fields, body, 0);
                let query = &r.query_rules.fields;
                self.count_fields(series, route, &ex.query_fields, query, body.len());
            }
        });
        if let Some(r) = &ex.route {
            if ex.concealed > 0 {
                self.fields
                    .with_label_values(&[route, "any", "conceal", "response"])
                    .inc_by(u64::from(ex.concealed));
            }
            for (label, count) in &ex.response_opened {
                let category = r.category_of(label).map_or("other", |c| c.as_str());
                self.fields
                    .with_label_values(&[route, category, "open", "response"])
                    .inc_by(u64::from(*count));
            }
        }
        if let Some(e) = ex.error {
            self.rejected.with_label_values(&[route, e.reason()]).inc();
        }
        if ex.response_passed_unopened {
            self.rejected
                .with_label_values(&[route, "response_passed_unopened"])
                .inc();
        }
        for d in &ex.uncovered {
            self.uncovered.with_label_values(&[route, d.name()]).inc();
        }
        for reason in &ex.open_failure_reasons {
            self.crypto_failures.with_label_values(&[reason]).inc();
        }
    }
}

impl Metrics {
    /// Adds request-direction field counts to `series`, the rules' slots starting at
    /// `offset`. Each cached counter is checked against its rule: a reload may give a
    /// route of the same name other rules.
    fn count_fields(
        &self,
        series: &mut RouteSeries,
        route: &str,
        counts: &[FieldCount],
        rules: &[FieldRule],
        offset: usize,
    ) {
        for counted in counts {
            let rule = &rules[counted.rule];
            let at = offset + counted.rule;
            if series.fields.len() <= at {
                series.fields.resize_with(at + 1, || None);
            }
            let (category, action) = (rule.category, rule.action.name());
            let cached = &mut series.fields[at];
            if !cached
                .as_ref()
                .is_some_and(|(c, a, _)| *c == category && *a == action)
            {
                let labels = [route, category.as_str(), action, "request"];
                *cached = Some((category, action, self.fields.with_label_values(&labels)));
            }
            if let Some((_, _, counter)) = cached {
                counter.inc_by(u64::from(counted.count));
            }
        }
    }
}

/// Observes `took` on a route's histogram of `family`, looked up on first use.
fn observe(cached: &mut Option<Histogram>, family: &HistogramVec, route: &str, took: Duration) {
    cached
        .get_or_insert_with(|| family.with_label_values(&[route]))
        .observe(took.as_secs_f64());
}

/// Standard methods keep their name; anything else is `OTHER` (bounded labels). With
/// the name, its place among them.
fn standard_method(m: &http::Method) -> (&'static str, usize) {
    use http::Method as M;
    match *m {
        M::GET => ("GET", 0),
        M::POST => ("POST", 1),
        M::PUT => ("PUT", 2),
        M::PATCH => ("PATCH", 3),
        M::DELETE => ("DELETE", 4),
        M::HEAD => ("HEAD", 5),
        M::OPTIONS => ("OPTIONS", 6),
        _ => ("OTHER", 7),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flowlog::RequestId;

    fn exchange(method: http::Method, status: u16) -> Exchange {
        let peer = std::net::SocketAddr::from(([127, 0, 0, 1], 9));
        let mut ex = Exchange::new(
            RequestId::generate(),
            method,
            peer,
            std::time::Instant::now(),
        );
        ex.status = status;
        ex
    }

    fn count(r: &Registry, method: &str, class: &str) -> u64 {
        r.gather()
            .iter()
            .filter(|f| f.get_name() == "tarnkappe_requests_total")
            .flat_map(|f| f.get_metric())
            .filter(|m| {
                let l = m.get_label();
                l.iter()
                    .any(|p| p.get_name() == "method" && p.get_value() == method)
                    && l.iter()
                        .any(|p| p.get_name() == "status" && p.get_value() == class)
            })
            .map(|m| m.get_counter().get_value() as u64)
            .sum()
    }

    #[test]
    fn cached_series_count_per_registry_method_and_class() {
        let (ra, rb) = (Registry::new(), Registry::new());
        let (a, b) = (Metrics::new(&ra).unwrap(), Metrics::new(&rb).unwrap());
        for _ in 0..3 {
            a.observe(&exchange(http::Method::GET, 200));
        }
        a.observe(&exchange(http::Method::POST, 503));
        a.observe(&exchange(http::Method::from_bytes(b"BREW").unwrap(), 404));
        b.observe(&exchange(http::Method::GET, 200));
        assert_eq!(count(&ra, "GET", "2xx"), 3);
        assert_eq!(count(&ra, "POST", "5xx"), 1);
        assert_eq!(count(&ra, "OTHER", "4xx"), 1);
        assert_eq!(count(&rb, "GET", "2xx"), 1);
        assert_eq!(count(&rb, "POST", "5xx"), 0);
    }
}
