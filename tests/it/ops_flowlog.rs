//! The flow log under failure and under hostile traffic (issue 3, items 1 and 3): while
//! its target cannot be written, `on_log_failure = "reject"` answers 503 on rule routes
//! (plain routes keep serving) and recovers without losing an event once the target is
//! writable again; `"continue"` keeps serving and counts in
//! `tarnkappe_flow_log_errors_total`; and no value sent through the proxy ever reaches
//! the file.
//!
//! Targets that really fail as root: a log directory replaced by a regular file (the
//! writer cannot recreate it) and `/dev/full` (every write fails with ENOSPC).

use std::net::SocketAddr;
use std::time::Duration;

use tarnkappe::flowlog::files_in_order;
use tarnkappe::server::Server;

use crate::ops::{
    admin_of, canary, customer, eventually, free_port, run_cli, scrape, send_sensitive_traffic,
    Proc, Setup, Site,
};
use crate::ops_http::{must, Req, Resp};

const LIMIT: Duration = Duration::from_secs(10);

async fn post_customer(proxy: SocketAddr) -> Resp {
    must(
        proxy,
        &Req::json("POST", "/api/customers", customer("flow")),
    )
    .await
}

fn flush(server: &Server) -> bool {
    let log = server
        .proxy
        .recorder()
        .flowlog()
        .expect("flow log configured");
    log.flush(Duration::from_secs(5))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ops_flow_log_failure_rejects_rule_routes_and_recovers_without_losing_events() {
    let site = Site::new().await;
    let setup = Setup {
        flow_log: "logs/flow.jsonl".into(),
        ..Setup::default()
    };
    let server = site.start(&setup).await;
    let (proxy, admin) = (server.addr, admin_of(&server));
    assert_eq!(post_customer(proxy).await.status, 201);
    assert!(flush(&server), "the first event is on disk");

    // The directory is gone and a file holds its name: the log cannot be recreated.
    let logs = site.path("logs");
    std::fs::remove_dir_all(&logs).expect("removing the log dir");
    std::fs::write(&logs, b"not a directory").expect("blocking the log dir");
    let mut sent = 0;
    let refused = eventually("rule routes to answer 503", LIMIT, || {
        sent += 1;
        async move { Some(post_customer(proxy).await).filter(|r| r.status == 503) }
    })
    .await;
    assert_eq!(
        refused.header("content-type"),
        Some("application/problem+json")
    );
    assert!(
        refused.header("retry-after").is_some(),
        "503 without Retry-After"
    );
    assert_eq!(
        refused.json()["type"],
        "urn:tarnkappe:problem:flow_log_unavailable"
    );
    for plain in ["/api/headers", "/api/slow?ms=0"] {
        let r = must(proxy, &Req::get(plain)).await;
        sent += 1;
        assert_eq!(
            r.status, 200,
            "route without rules {plain} must keep serving"
        );
    }
    let ready = must(admin, &Req::get("/readyz")).await;
    assert_eq!(ready.status, 503);
    assert!(ready.text().contains("flow log"), "{}", ready.text());

    std::fs::remove_file(&logs).expect("repairing the log dir");
    eventually("rule routes to serve again", LIMIT, || {
        sent += 1;
        async move { (post_customer(proxy).await.status == 201).then_some(()) }
    })
    .await;
    assert_eq!(must(admin, &Req::get("/readyz")).await.status, 200);
    let (_, m) = scrape(admin).await;
    // Held, not lost: written once the target was back (the line count below proves it).
    assert!(m.sum("tarnkappe_flow_log_events_total", &[]) >= sent as f64);
    assert!(server.shutdown().await);

    // Every exchange since the break was held and written, and the chain runs on.
    let lines = site.flow_lines(&setup.flow_log);
    assert_eq!(lines.len(), sent, "one event per exchange since the break");
    let first: serde_json::Value = serde_json::from_str(&lines[0]).expect("event");
    assert_eq!(first["seq"], 2, "the chain continues after event 1");
    let refused = lines
        .iter()
        .filter(|l| l.contains("\"reason\":\"flow_log_unavailable\""))
        .count();
    assert!(refused >= 1, "the 503s are recorded too");
    let verify = run_cli(&[
        "audit",
        "verify",
        site.path(&setup.flow_log).to_str().expect("utf-8"),
    ]);
    assert!(
        verify.status.success(),
        "{}{}",
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );
}

/// `continue` on a full disk, with a small queue: the backlog overflows and the lost
/// events are counted, while every request is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ops_flow_log_on_full_disk_continue_serves_and_counts_lost_events() {
    let site = Site::new().await;
    let setup = Setup {
        flow_log: "/dev/full".into(),
        on_log_failure: Some("continue"),
        queue: Some(16),
        ..Setup::default()
    };
    let server = site.start(&setup).await;
    let (proxy, admin) = (server.addr, admin_of(&server));
    for _ in 0..40 {
        assert_eq!(
            post_customer(proxy).await.status,
            201,
            "continue must serve"
        );
    }
    eventually("lost events to be counted", LIMIT, || async move {
        let (_, m) = scrape(admin).await;
        (m.sum("tarnkappe_flow_log_errors_total", &[]) > 0.0).then_some(())
    })
    .await;
    let ready = must(admin, &Req::get("/readyz")).await;
    assert_eq!(ready.status, 503, "{}", ready.text());
}

/// A failing target must show in `tarnkappe_flow_log_errors_total` ("events lost or
/// writes that failed", and what the shipped `TarnkappeFlowLogErrors` alert watches) at
/// the first failed write, in both modes: not only once 65,536 held events overflow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ops_flow_log_failed_writes_show_in_errors_total_at_once() {
    for mode in ["continue", "reject"] {
        let site = Site::new().await;
        let setup = Setup {
            flow_log: "/dev/full".into(),
            on_log_failure: Some(mode),
            ..Setup::default()
        };
        let server = site.start(&setup).await;
        let (proxy, admin) = (server.addr, admin_of(&server));
        for _ in 0..5 {
            let status = post_customer(proxy).await.status;
            assert!(
                status == 201 || (mode == "reject" && status == 503),
                "{mode}: {status}"
            );
        }
        let what = format!("failed writes to be counted ({mode})");
        eventually(&what, LIMIT, || async move {
            let (_, m) = scrape(admin).await;
            (m.sum("tarnkappe_flow_log_errors_total", &[]) > 0.0).then_some(())
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ops_flow_log_never_holds_a_value_sent_through_the_proxy() {
    let site = Site::new().await;
    let setup = Setup::default();
    let server = site.start(&setup).await;
    let core = canary();
    let exchanges = send_sensitive_traffic(server.addr, &core).await;
    assert!(server.shutdown().await);

    let lines = site.flow_lines(&setup.flow_log);
    assert!(
        lines.len() >= exchanges,
        "{} events for {exchanges} exchanges",
        lines.len()
    );
    for (i, line) in lines.iter().enumerate() {
        assert!(
            !line.contains(&core),
            "flow log line {} holds a sent value: {line}",
            i + 1
        );
        assert!(!line.contains("qzcanary"), "line {}: {line}", i + 1);
    }
    let all = lines.join("\n");
    for gone in ["Bearer", "session=", "example.com", "/bad", "secret="] {
        assert!(!all.contains(gone), "flow log holds `{gone}`");
    }
}

/// `flow_log.delete_after` with the real binary: while it serves, rotated files whose
/// last event is past the limit are deleted (oldest first, the current file never), the
/// deletions show in `tarnkappe_flow_log_files_deleted_total` and its log, and what stays
/// passes `audit verify`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ops_flow_log_deletes_rotated_files_past_delete_after() {
    let site = Site::new().await;
    let setup = Setup {
        listen: free_port(),
        admin: free_port(),
        flow_log: "logs/flow.jsonl".into(),
        rotate_size: Some("4KiB"),
        delete_after: Some("3s"),
        ..Setup::default()
    };
    let config = site.write_config(&setup);
    let proc = Proc::serve(site.dir.path(), &config, setup.admin, &[], &[]).await;
    let (proxy, admin) = (setup.listen, setup.admin);
    let current = site.path(&setup.flow_log);

    for _ in 0..12 {
        assert_eq!(post_customer(proxy).await.status, 201);
    }
    let early = eventually("rotated files", LIMIT, || {
        let files = files_in_order(&current);
        async move { (files.len() >= 3).then_some(files) }
    })
    .await;
    // Not yet past the limit: nothing goes.
    let (_, m) = scrape(admin).await;
    assert_eq!(m.sum("tarnkappe_flow_log_files_deleted_total", &[]), 0.0);
    assert!(early.iter().all(|f| f.exists()));

    tokio::time::sleep(Duration::from_millis(3500)).await;
    for _ in 0..12 {
        assert_eq!(post_customer(proxy).await.status, 201);
    }
    let rotated_early = early.len() - 1;
    let deleted = eventually("the early files to be deleted", LIMIT, || async move {
        let (_, m) = scrape(admin).await;
        let n = m.sum("tarnkappe_flow_log_files_deleted_total", &[]);
        (n >= rotated_early as f64).then_some(n)
    })
    .await;
    for f in &early[..rotated_early] {
        assert!(!f.exists(), "{} past delete_after was kept", f.display());
    }
    assert!(current.exists(), "the current file is never deleted");
    assert!(
        proc.stderr_text()
            .contains("flow log file past delete_after deleted"),
        "{}",
        proc.stderr_text()
    );

    let left = files_in_order(&current);
    let args: Vec<&str> = ["audit", "verify"]
        .into_iter()
        .chain(left.iter().map(|p| p.to_str().expect("utf-8")))
        .collect();
    let verified = run_cli(&args);
    assert_eq!(
        verified.status.code(),
        Some(0),
        "after {deleted} deletions: {}",
        String::from_utf8_lossy(&verified.stderr)
    );
}
