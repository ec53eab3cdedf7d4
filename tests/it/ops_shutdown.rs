//! Graceful shutdown of the real binary: SIGTERM with requests in flight stops accepting
//! at once, lets those requests finish with 200, flushes one flow event for each of them
//! into a chain that `tarnkappe audit verify` accepts, and exits 0.

use std::time::Duration;

use crate::ops::{eventually, free_port, run_cli, Proc, Setup, Site};
use crate::ops_http::{must, Req};

/// In-flight requests at the moment of SIGTERM.
const IN_FLIGHT: usize = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ops_sigterm_drains_in_flight_requests_flushes_the_flow_log_and_exits_0() {
    let site = Site::new().await;
    let setup = Setup {
        listen: free_port(),
        admin: free_port(),
        ..Setup::default()
    };
    let config = site.write_config(&setup);
    let mut proc = Proc::serve(site.dir.path(), &config, setup.admin, &[], &[]).await;
    let proxy = setup.listen;

    let before = site.backend.requests();
    let slow: Vec<_> = (0..IN_FLIGHT)
        .map(|_| tokio::spawn(async move { must(proxy, &Req::get("/api/slow?ms=2000")).await }))
        .collect();
    let backend = &site.backend;
    eventually(
        "the slow requests to reach the backend",
        Duration::from_secs(5),
        move || async move { (backend.requests() >= before + IN_FLIGHT as u64).then_some(()) },
    )
    .await;

    proc.signal("TERM");
    eventually(
        "the public port to refuse connections",
        Duration::from_millis(1500),
        move || async move {
            tokio::net::TcpStream::connect(proxy)
                .await
                .is_err()
                .then_some(())
        },
    )
    .await;
    assert!(
        slow.iter().all(|h| !h.is_finished()),
        "the port must close while requests are still in flight"
    );
    assert!(
        proc.is_running(),
        "exited before the in-flight requests finished"
    );

    for r in slow {
        let r = r.await.expect("slow request task");
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.json()["slept"], 2000);
    }
    let status = proc.wait(Duration::from_secs(15)).await;
    assert_eq!(status.code(), Some(0), "{}", proc.stderr_text());

    let events: Vec<serde_json::Value> = site
        .flow_lines(&setup.flow_log)
        .iter()
        .map(|l| serde_json::from_str(l).expect("flow event"))
        .collect();
    let drained = events
        .iter()
        .filter(|e| e["route"] == "slow" && e["status"] == 200)
        .count();
    assert_eq!(drained, IN_FLIGHT, "one flushed event per drained request");
    let flow = site.path(&setup.flow_log);
    let verify = run_cli(&["audit", "verify", flow.to_str().expect("utf-8")]);
    assert!(
        verify.status.success(),
        "audit verify: {}{}",
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );
}
