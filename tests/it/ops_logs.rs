//! The binary's own logs never hold a value: `tarnkappe --log-format json serve` at
//! `TARNKAPPE_LOG=debug` sees sealed fields, refused bodies, queries, paths, methods,
//! Authorization and Cookie headers and a broken request carrying a distinctive value,
//! and neither stderr nor stdout ever shows it. Every stderr line is one JSON object.

use std::time::Duration;

use crate::ops::{canary, free_port, send_sensitive_traffic, Proc, Setup, Site};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ops_logs_never_hold_values_and_are_json_lines() {
    let site = Site::new().await;
    let setup = Setup {
        listen: free_port(),
        admin: free_port(),
        ..Setup::default()
    };
    let config = site.write_config(&setup);
    let mut proc = Proc::serve(
        site.dir.path(),
        &config,
        setup.admin,
        &["--log-format", "json"],
        &[("TARNKAPPE_LOG", "debug")],
    )
    .await;
    let core = canary();
    send_sensitive_traffic(setup.listen, &core).await;
    proc.signal("TERM");
    let status = proc.wait(Duration::from_secs(15)).await;
    assert!(status.success(), "exit {status}");

    let (stderr, stdout) = (proc.stderr_text(), proc.stdout_text());
    for (name, text) in [("stderr", &stderr), ("stdout", &stdout)] {
        for (i, line) in text.lines().enumerate() {
            assert!(
                !line.contains(&core) && !line.contains("qzcanary"),
                "{name} line {} holds a sent value: {line}",
                i + 1
            );
            for leak in ["Bearer", "session=", "example.com", "secret="] {
                assert!(
                    !line.contains(leak),
                    "{name} line {} holds `{leak}`: {line}",
                    i + 1
                );
            }
        }
    }
    let mut messages = Vec::new();
    for (i, line) in stderr.lines().enumerate() {
        let event: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("stderr line {} is not JSON ({e}): {line}", i + 1));
        assert!(event.is_object(), "line {}: {line}", i + 1);
        assert!(
            event.get("level").is_some(),
            "line {} has no level: {line}",
            i + 1
        );
        messages.push(event["message"].as_str().unwrap_or_default().to_owned());
    }
    assert!(
        messages.iter().any(|m| m.contains("listening")),
        "the start-up line is missing: {stderr}"
    );
}
