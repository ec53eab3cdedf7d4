//! Reload without dropping a request: config rewrites and `Server::reload` under
//! continuous POST load on a rule route, an invalid config refused while the old one keeps
//! serving (and counted in `tarnkappe_config_reload_failures_total`), and SIGHUP reloading
//! the real binary.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::ops::{
    admin_of, customer, eventually, free_port, run_cli, scrape, Proc, Setup, Site, REDACTED,
};
use crate::ops_http::{must, Conn, Req};

/// Creates a customer through the proxy and returns what the backend stored for it.
async fn create_and_read_back(site: &Site, proxy: SocketAddr, core: &str) -> serde_json::Value {
    let r = must(proxy, &Req::json("POST", "/api/customers", customer(core))).await;
    assert_eq!(r.status, 201, "{}", r.text());
    site.stored(r.header("location").expect("location")).await
}

fn phone_is_sealed(stored: &serde_json::Value) -> bool {
    stored["phone"]
        .as_str()
        .is_some_and(|p| p.starts_with("tk1."))
}

/// POST load from `tasks` keep-alive clients until `stop`; returns (ok, failed).
fn load(
    proxy: SocketAddr,
    tasks: usize,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<(u64, u64)> {
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    tokio::spawn(async move {
        let mut handles = Vec::new();
        for t in 0..tasks {
            let (ok, failed, stop) = (ok.clone(), failed.clone(), stop.clone());
            handles.push(tokio::spawn(async move {
                let mut conn = Conn::open(proxy).await.expect("connect");
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    let req =
                        Req::json("POST", "/api/customers", customer(&format!("load{t}x{i}")));
                    match conn.send(&req).await {
                        Ok(r) if r.status == 201 => ok.fetch_add(1, Ordering::Relaxed),
                        Ok(r) => {
                            eprintln!("load: status {} {}", r.status, r.text());
                            failed.fetch_add(1, Ordering::Relaxed)
                        }
                        Err(e) => {
                            eprintln!("load: {e}");
                            conn = Conn::open(proxy).await.expect("reconnect");
                            failed.fetch_add(1, Ordering::Relaxed)
                        }
                    };
                }
            }));
        }
        for h in handles {
            h.await.expect("load task");
        }
        (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ops_reload_under_load_drops_no_request_and_refuses_invalid_config() {
    let site = Site::new().await;
    let base = Setup::default();
    let server = site.start(&base).await;
    let (proxy, admin) = (server.addr, admin_of(&server));
    assert!(phone_is_sealed(
        &create_and_read_back(&site, proxy, "before").await
    ));

    let stop = Arc::new(AtomicBool::new(false));
    let load = load(proxy, 4, stop.clone());
    let started = Instant::now();
    let redact = Setup {
        phone_action: "redact",
        ..base.clone()
    };
    let with_route = Setup {
        subscriptions: true,
        ..redact.clone()
    };
    let mut reloads = 0;
    for setup in [&redact, &base, &with_route, &base, &redact] {
        tokio::time::sleep(Duration::from_millis(300)).await;
        site.write_config(setup);
        server.reload().expect("valid config reloads");
        reloads += 1;
    }
    // An invalid config is refused; the last good one (phone redacted) keeps serving.
    tokio::time::sleep(Duration::from_millis(300)).await;
    site.write_config(&Setup {
        broken: true,
        ..with_route.clone()
    });
    let errors = server
        .reload()
        .expect_err("an invalid config must be refused");
    assert!(errors.to_string().contains("encrypt-ish"), "{errors}");
    let stored = create_and_read_back(&site, proxy, "afterbad").await;
    assert_eq!(stored["phone"], REDACTED, "old config must keep serving");
    let sub = must(
        proxy,
        &Req::json(
            "POST",
            "/api/subscriptions",
            "{\"payment\":{\"iban\":\"DE00\"}}",
        ),
    )
    .await;
    assert_eq!(sub.status, 201);
    let sub = site.stored(sub.header("location").expect("location")).await;
    assert_eq!(
        sub["payment"]["iban"], "DE00",
        "the refused config's route must not apply"
    );

    // Back to a good config that adds the route: it applies.
    site.write_config(&with_route);
    server.reload().expect("valid config reloads");
    reloads += 1;
    let sub = must(
        proxy,
        &Req::json(
            "POST",
            "/api/subscriptions",
            "{\"payment\":{\"iban\":\"DE00\"}}",
        ),
    )
    .await;
    let sub = site.stored(sub.header("location").expect("location")).await;
    assert!(
        sub["payment"]["iban"]
            .as_str()
            .is_some_and(|v| v.starts_with("tk1.")),
        "{sub}"
    );

    tokio::time::sleep(Duration::from_secs(3).saturating_sub(started.elapsed())).await;
    stop.store(true, Ordering::Relaxed);
    let (ok, failed) = load.await.expect("load");
    assert_eq!(failed, 0, "requests failed during reloads ({ok} succeeded)");
    assert!(ok >= 40, "too little load to mean anything: {ok}");

    let (_, m) = scrape(admin).await;
    assert_eq!(m.sum("tarnkappe_config_reload_failures_total", &[]), 1.0);
    assert_eq!(m.sum("tarnkappe_config_reloads_total", &[]), reloads as f64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ops_sighup_reloads_the_binary_and_keeps_serving_on_a_bad_config() {
    let site = Site::new().await;
    let admin = free_port();
    let base = Setup {
        listen: free_port(),
        admin,
        ..Setup::default()
    };
    let config = site.write_config(&base);
    let mut proc = Proc::serve(site.dir.path(), &config, admin, &[], &[]).await;
    let proxy = base.listen;
    assert!(phone_is_sealed(
        &create_and_read_back(&site, proxy, "hup0").await
    ));

    // Config and keyring change together; one SIGHUP applies both.
    site.write_config(&Setup {
        phone_action: "redact",
        ..base.clone()
    });
    let keyring = site.path("keyring.toml");
    let rotated = run_cli(&[
        "keys",
        "rotate",
        "--keyring",
        keyring.to_str().expect("utf-8"),
    ]);
    assert!(rotated.status.success(), "{rotated:?}");
    proc.signal("HUP");
    let site_ref = &site;
    let stored = eventually(
        "SIGHUP to apply the new config",
        Duration::from_secs(10),
        move || async move {
            let stored = create_and_read_back(site_ref, proxy, "hup1").await;
            (stored["phone"] == REDACTED).then_some(stored)
        },
    )
    .await;
    let name = stored["name"].as_str().unwrap_or_default();
    assert!(
        name.starts_with("tk1.2."),
        "sealed with the rotated key: {name}"
    );
    let config_arg = config.to_str().expect("utf-8");
    assert!(run_cli(&["health", "--config", config_arg, "--ready"])
        .status
        .success());

    site.write_config(&Setup {
        broken: true,
        ..base.clone()
    });
    proc.signal("HUP");
    eventually(
        "the refused reload to be counted",
        Duration::from_secs(10),
        move || async move {
            let (_, m) = scrape(admin).await;
            (m.sum("tarnkappe_config_reload_failures_total", &[]) == 1.0).then_some(())
        },
    )
    .await;
    assert!(proc.is_running(), "a bad config must not stop the proxy");
    let stored = create_and_read_back(&site, proxy, "hup2").await;
    assert_eq!(
        stored["phone"], REDACTED,
        "the last good config keeps serving"
    );
    assert!(
        proc.stderr_text().contains("encrypt-ish"),
        "refusal not logged: {}",
        proc.stderr_text()
    );

    proc.signal("TERM");
    let status = proc.wait(Duration::from_secs(15)).await;
    assert!(status.success(), "exit {status}: {}", proc.stderr_text());
}

/// Metric series are looked up once per route and thread and then reused; a reload that
/// changes what a rule does must show in the next exchange's labels.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ops_reload_moves_field_counts_to_the_new_action() {
    let site = Site::new().await;
    let encrypting = Setup::default();
    let server = site.start(&encrypting).await;
    let (proxy, admin) = (server.addr, admin_of(&server));
    let phone = |action: &'static str| {
        [
            ("category", "user.contact.phone_number"),
            ("action", action),
        ]
    };
    let posted = must(
        proxy,
        &Req::json("POST", "/api/customers", customer("before")),
    )
    .await;
    assert_eq!(posted.status, 201, "{}", posted.text());
    let (_, m) = scrape(admin).await;
    assert_eq!(m.sum("tarnkappe_fields_total", &phone("encrypt")), 1.0);

    site.write_config(&Setup {
        phone_action: "redact",
        ..Setup::default()
    });
    server.reload().expect("valid config reloads");
    let posted = must(
        proxy,
        &Req::json("POST", "/api/customers", customer("after")),
    )
    .await;
    assert_eq!(posted.status, 201, "{}", posted.text());
    let (_, m) = scrape(admin).await;
    assert_eq!(m.sum("tarnkappe_fields_total", &phone("encrypt")), 1.0);
    assert_eq!(m.sum("tarnkappe_fields_total", &phone("redact")), 1.0);
}
