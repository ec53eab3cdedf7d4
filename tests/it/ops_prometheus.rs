//! A real Prometheus server (Debian's `prometheus` package, installed by .ci/run) scrapes
//! the admin listener every second; the test reads `tarnkappe_requests_total` and a p99
//! request latency back through Prometheus's HTTP API, and `promtool check metrics`
//! lints the `/metrics` output. Without the binaries the test fails under `CI=true` and
//! is skipped with a note elsewhere.

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::ops::{admin_of, eventually, free_port, scrape, Setup, Site};
use crate::ops_http::{must, query_escape, send, Req};

/// Every request of this test sleeps this long at the backend, so p99 has a floor.
const SLOW_MS: u64 = 30;

/// Kills Prometheus when the test ends, panics included.
struct Prometheus(Child);

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Whether `tool` runs; when it does not, fails under CI and otherwise says why it skips.
fn available(tool: &str) -> bool {
    let found = Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "`{tool}` is missing; CI must install Debian's `prometheus` package"
        );
        eprintln!("note: `{tool}` not found; skipping (apt-get install -y prometheus)");
    }
    found
}

fn start_prometheus(dir: &Path, target: SocketAddr, web: SocketAddr) -> Prometheus {
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: tarnkappe\n    scrape_interval: 1s\n    \
             scrape_timeout: 1s\n    static_configs:\n      - targets: ['{target}']\n"
        ),
    )
    .expect("prometheus.yml");
    let log = std::fs::File::create(dir.join("prometheus.log")).expect("log file");
    let child = Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address={web}"))
        .arg("--log.level=warn")
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log file"))
        .stderr(log)
        .spawn()
        .expect("starting prometheus");
    Prometheus(child)
}

/// The values of an instant query, with their labels.
async fn query(web: SocketAddr, promql: &str) -> Option<Vec<(serde_json::Value, f64)>> {
    let target = format!("/api/v1/query?query={}", query_escape(promql));
    let answer = send(web, &Req::get(&target)).await.ok()?;
    if answer.status != 200 {
        return None;
    }
    let json = answer.json();
    assert_eq!(json["status"], "success", "{json}");
    let rows = json["data"]["result"].as_array()?;
    let values = rows
        .iter()
        .map(|r| {
            let v = r["value"][1].as_str().expect("sample value");
            (r["metric"].clone(), v.parse().expect("number"))
        })
        .collect();
    Some(values)
}

fn promtool_check_metrics(text: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("writing to promtool");
    let out = child.wait_with_output().expect("promtool output");
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ops_real_prometheus_scrapes_counters_and_latency_quantiles() {
    if !available("prometheus") || !available("promtool") {
        return;
    }
    let site = Site::new().await;
    let server = site.start(&Setup::default()).await;
    let (proxy, admin) = (server.addr, admin_of(&server));
    let web = free_port();
    let _prometheus = start_prometheus(site.dir.path(), admin, web);

    // Steady traffic while Prometheus collects the two scrapes a rate() needs.
    let sent = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let traffic = {
        let (sent, stop) = (sent.clone(), stop.clone());
        tokio::spawn(async move {
            let target = format!("/api/slow?ms={SLOW_MS}");
            while !stop.load(Ordering::Relaxed) {
                let r = must(proxy, &Req::get(&target)).await;
                assert_eq!(r.status, 200);
                sent.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };

    let (text, _) = scrape(admin).await;
    promtool_check_metrics(&text);

    let limit = Duration::from_secs(30);
    let requests = eventually(
        "Prometheus to hold 20 requests",
        limit,
        move || async move {
            let rows = query(web, "tarnkappe_requests_total").await?;
            let total: f64 = rows.iter().map(|(_, v)| v).sum();
            (total >= 20.0).then_some(rows)
        },
    )
    .await;
    let (labels, _) = &requests[0];
    assert_eq!(labels["route"], "slow", "{labels}");
    assert_eq!(labels["method"], "GET", "{labels}");
    assert_eq!(labels["status"], "2xx", "{labels}");
    assert_eq!(labels["job"], "tarnkappe", "{labels}");

    let p99 = "histogram_quantile(0.99, sum(rate(tarnkappe_request_duration_seconds_bucket[1m])) by (le))";
    let p99 = eventually("a p99 from Prometheus", limit, move || async move {
        let rows = query(web, p99).await?;
        rows.first().map(|(_, v)| *v).filter(|v| v.is_finite())
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    traffic.await.expect("traffic task");
    // In seconds: every request slept SLOW_MS at the backend, none took seconds.
    assert!(
        (SLOW_MS as f64 / 1000.0..2.0).contains(&p99),
        "p99 {p99} s for {SLOW_MS} ms requests"
    );
    let (_, after) = scrape(admin).await;
    let counted = after.sum("tarnkappe_requests_total", &[("route", "slow")]);
    assert!(counted >= 20.0 && counted as u64 >= sent.load(Ordering::Relaxed));
}
