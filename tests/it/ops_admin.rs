//! The admin listener from the outside: `/metrics` is valid Prometheus text with every
//! family of the contract after some traffic, `/healthz` and `/readyz` tell alive from
//! ready, only GET and HEAD are served, the public port proxies `/metrics` upstream
//! instead of answering it, and 10,000 distinct request paths do not grow the series
//! count (labels come from config only).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::ops::{admin_of, customer, free_port, run_cli, scrape, Setup, Site};
use crate::ops_http::{must, Conn, Req};

/// Every family an operator's dashboards and alerts may rely on.
const FAMILIES: &[&str] = &[
    "tarnkappe_requests_total",
    "tarnkappe_request_duration_seconds",
    "tarnkappe_upstream_duration_seconds",
    "tarnkappe_transform_duration_seconds",
    "tarnkappe_fields_total",
    "tarnkappe_rejected_total",
    "tarnkappe_crypto_failures_total",
    "tarnkappe_flow_log_events_total",
    "tarnkappe_flow_log_errors_total",
    "tarnkappe_flow_log_files_deleted_total",
    "tarnkappe_build_info",
    "tarnkappe_config_reload_failures_total",
];

/// A well-formed token of ours that no key in any keyring opens (unknown label tag).
fn bogus_token() -> String {
    format!("tk1.1.rs.AAAAAAAA.{}", "A".repeat(40))
}

/// Traffic that touches every family: fields sealed and opened, a refusal, a ciphertext
/// that does not open, a plain route.
async fn touch_every_family(site: &Site, proxy: SocketAddr) {
    let created = must(proxy, &Req::json("POST", "/api/customers", customer("ops"))).await;
    assert_eq!(created.status, 201, "{}", created.text());
    let location = created.header("location").expect("location").to_owned();
    assert_eq!(must(proxy, &Req::get(&location)).await.status, 200);
    let refused = must(proxy, &Req::json("POST", "/api/customers", "{\"name\":")).await;
    assert_eq!(refused.status, 400);
    // Stored behind the proxy's back, so that reading it through the proxy fails to open.
    let planted = format!("{{\"name\":\"{}\"}}", bogus_token());
    let direct = must(
        site.backend.addr,
        &Req::json("POST", "/api/customers", planted),
    )
    .await;
    assert_eq!(direct.status, 201);
    let location = direct.header("location").expect("location").to_owned();
    let opened = must(proxy, &Req::get(&location)).await;
    assert_eq!(opened.status, 200, "{}", opened.text());
    assert_eq!(must(proxy, &Req::get("/api/slow?ms=1")).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ops_admin_serves_metrics_health_and_readiness_only_on_its_own_port() {
    let site = Site::new().await;
    let server = site.start(&Setup::default()).await;
    let (proxy, admin) = (server.addr, admin_of(&server));
    assert_ne!(
        proxy.port(),
        admin.port(),
        "admin must not be the public port"
    );

    touch_every_family(&site, proxy).await;
    let (_, metrics) = scrape(admin).await;
    for family in FAMILIES {
        assert!(metrics.types.contains_key(*family), "{family} missing");
    }
    assert!(
        metrics.types.keys().any(|f| f.starts_with("process_")),
        "no process_* metrics"
    );
    assert_eq!(
        metrics.types["tarnkappe_request_duration_seconds"],
        "histogram"
    );
    assert_eq!(metrics.types["tarnkappe_requests_total"], "counter");
    assert!(metrics.sum("tarnkappe_requests_total", &[("route", "customers")]) >= 4.0);
    assert!(metrics.sum("tarnkappe_crypto_failures_total", &[]) >= 1.0);
    assert!(metrics.sum("tarnkappe_rejected_total", &[("route", "customers")]) >= 1.0);
    assert_eq!(metrics.sum("tarnkappe_build_info", &[]), 1.0);

    for (path, status) in [("/healthz", 200), ("/readyz", 200), ("/nope", 404)] {
        let r = must(admin, &Req::get(path)).await;
        assert_eq!(r.status, status, "GET {path}: {}", r.text());
    }
    let head = must(admin, &Req::new("HEAD", "/metrics")).await;
    assert_eq!(head.status, 200);
    for method in ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"] {
        for path in ["/metrics", "/healthz", "/readyz"] {
            let r = must(admin, &Req::new(method, path)).await;
            assert_eq!(r.status, 405, "{method} {path}");
            assert_eq!(r.header("allow"), Some("GET, HEAD"), "{method} {path}");
        }
    }

    // The public port is the shop's: /metrics there is the backend's business.
    let seen = site.backend.requests();
    let public = must(proxy, &Req::get("/metrics")).await;
    assert_eq!(public.status, 404, "{}", public.text());
    assert!(!public.text().contains("tarnkappe_"));
    assert_eq!(site.backend.requests(), seen + 1, "not proxied upstream");
    // And the admin port proxies nothing.
    let r = must(admin, &Req::get("/api/customers")).await;
    assert_eq!(r.status, 404);
    assert_eq!(site.backend.requests(), seen + 1);

    let a = admin.to_string();
    assert!(run_cli(&["health", "--admin", &a]).status.success());
    assert!(run_cli(&["health", "--admin", &a, "--ready"])
        .status
        .success());

    site.backend.shutdown().await;
    let r = must(admin, &Req::get("/readyz")).await;
    assert_eq!(r.status, 503, "backend down: {}", r.text());
    assert!(r.text().contains("upstream"), "{}", r.text());
    assert_eq!(must(admin, &Req::get("/healthz")).await.status, 200);
    let probe = run_cli(&["health", "--admin", &a, "--ready"]);
    assert_eq!(
        probe.status.code(),
        Some(1),
        "health --ready with the backend down"
    );
    assert!(run_cli(&["health", "--admin", &a]).status.success());
    let dead = free_port().to_string();
    assert!(!run_cli(&["health", "--admin", &dead]).status.success());
}

/// Request `i` of the cardinality run: distinct paths, queries and odd methods, cycling
/// through every (route, method, status class, refusal) the run produces in its first 10.
fn odd_request(i: usize) -> Req {
    match i % 6 {
        0 => Req::get(&format!("/p/{i}/x{i:x}")),
        1 => Req::new("FROBNICATE", &format!("/p/{i}?q={i}&r=%7B{i}%7D")),
        2 => Req::get(&format!("/api/customers/{}", 1_000_000 + i)),
        3 => Req::new("PROPFIND", &format!("/api/customers/x{i}/y")),
        4 => Req::new("DELETE", &format!("/deep/{i}/a%41b/{i}")),
        _ => Req::get(&format!("/bad%2F{i}")),
    }
}

/// Sends requests `range` over `conns` pipelined keep-alive connections; returns how many
/// answers came back.
async fn flood(proxy: SocketAddr, range: std::ops::Range<usize>, conns: usize) -> usize {
    let mut tasks = Vec::new();
    for c in 0..conns {
        let ids: Vec<usize> = range.clone().filter(|i| i % conns == c).collect();
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::open(proxy).await.expect("connect");
            let mut answered = 0;
            for batch in ids.chunks(32) {
                let reqs: Vec<Req> = batch.iter().map(|&i| odd_request(i)).collect();
                let answers = match conn.pipeline(&reqs).await {
                    Ok(a) => a,
                    // The proxy may close a connection; the rest goes on a new one.
                    Err(_) => {
                        conn = Conn::open(proxy).await.expect("reconnect");
                        conn.pipeline(&reqs).await.expect("pipelined batch")
                    }
                };
                for a in &answers {
                    assert!((400..500).contains(&a.status), "status {}", a.status);
                }
                answered += answers.len();
            }
            answered
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.expect("flood task");
    }
    total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ops_series_count_stays_flat_under_10000_distinct_paths() {
    let site = Site::new().await;
    let server = site.start(&Setup::default()).await;
    let (proxy, admin) = (server.addr, admin_of(&server));

    assert_eq!(flood(proxy, 0..10, 1).await, 10);
    let (_, before) = scrape(admin).await;
    let series_before = before.series("tarnkappe_");

    let started = Instant::now();
    assert_eq!(flood(proxy, 10..10_010, 16).await, 10_000);
    let took = started.elapsed();
    let (text, after) = scrape(admin).await;
    assert_eq!(
        after.sum("tarnkappe_requests_total", &[]),
        10_010.0,
        "every request counted"
    );
    assert_eq!(
        after.series("tarnkappe_"),
        series_before,
        "series grew with request data:\n{text}"
    );
    for s in &after.samples {
        for v in s.labels.values() {
            assert!(
                !v.contains(['/', '?', '%']) && !v.contains("FROB"),
                "raw request data in a label: {s:?}"
            );
        }
    }
    eprintln!("10,000 pipelined requests in {took:?}");
    assert!(took < Duration::from_secs(60));
}
