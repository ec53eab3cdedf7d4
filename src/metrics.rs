//! Prometheus metrics. Every family is registered up front on a registry that is passed
//! in (no globals: tests need fresh registries). Labels come from the config only
//! (route names, categories, actions, closed reason sets, status classes), never from
//! raw request data, so no request can grow the series count.

use prometheus::{
    HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry,
};

use crate::proxy::Exchange;

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
    /// Reloads refused because the new config or keyring was invalid.
    pub reload_failures: IntCounter,
    /// Successful reloads.
    pub reloads: IntCounter,
    _build: IntGaugeVec,
}

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
        })
    }

    /// Counts one finished exchange.
    pub fn observe(&self, ex: &Exchange) {
        let route = ex.route.as_ref().map_or("none", |r| &*r.name);
        let method = standard_method(&ex.method);
        let class = match ex.status {
            100..=199 => "1xx",
            200..=299 => "2xx",
            300..=399 => "3xx",
            400..=499 => "4xx",
            _ => "5xx",
        };
        self.requests
            .with_label_values(&[route, method, class])
            .inc();
        self.request_duration
            .with_label_values(&[route])
            .observe(ex.started.elapsed().as_secs_f64());
        if let Some(up) = ex.upstream_time {
            self.upstream_duration
                .with_label_values(&[route])
                .observe(up.as_secs_f64());
        }
        if let Some(r) = &ex.route {
            if r.has_rules() {
                self.transform_duration
                    .with_label_values(&[route])
                    .observe(ex.transform_time.as_secs_f64());
            }
            for (rule, count) in ex.request_counts(r) {
                self.fields
                    .with_label_values(&[route, &rule.category, rule.action.name(), "request"])
                    .inc_by(u64::from(count));
            }
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

/// Standard methods keep their name; anything else is `OTHER` (bounded labels).
fn standard_method(m: &http::Method) -> &'static str {
    use http::Method as M;
    match *m {
        M::GET => "GET",
        M::POST => "POST",
        M::PUT => "PUT",
        M::PATCH => "PATCH",
        M::DELETE => "DELETE",
        M::HEAD => "HEAD",
        M::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}
