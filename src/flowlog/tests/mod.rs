//! Tests of the flow log as a whole: the writer against real files (rotation, restart,
//! failing targets, a full queue) and `verify` against damaged copies of a good set.
//!
//! Test code only; it must never write outside its temporary directories (the `/dev/full`
//! tests reach it through a symlink, or open it without rotation).

mod record;
mod retention;
mod verify;
mod writer;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::*;

/// Generous: CI machines are slow, and a passing test never waits this long.
pub(super) const WAIT: Duration = Duration::from_secs(10);

pub(super) fn config(path: &Path) -> FlowLogConfig {
    FlowLogConfig {
        path: path.to_path_buf(),
        max_bytes: 0,
        max_age: Duration::ZERO,
        queue: 64,
        on_failure: OnFailure::Reject,
        hmac_key: None,
        instance: ConfigStr::new("test-1"),
        delete_after: None,
    }
}

/// Waits until `cond` holds, failing the test after [`WAIT`].
pub(super) fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let until = Instant::now() + WAIT;
    while !cond() {
        assert!(Instant::now() < until, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A fully populated event, as the proxy would build it for exchange `n`.
pub(super) fn event(n: u32) -> FlowEvent {
    let c = ConfigStr::new;
    let mut ev = FlowEvent::new(
        RequestId::sanitize(&format!("req-{n}")).unwrap(),
        MethodName::new("POST"),
    );
    ev.route = Some(c("signup"));
    ev.path_template = Some(c("/users/{id}"));
    ev.caller = Some(c("support"));
    ev.client = Some(ClientAddr::from_ip(
        "203.0.113.9".parse().unwrap(),
        ClientAddrMode::Truncate,
        &[0; 32],
    ));
    ev.upstream = Some(c("app"));
    ev.status = 200 + (n % 3) as u16;
    ev.fields = vec![
        FieldEvent {
            label: c("email"),
            category: c("user.contact.email"),
            action: c("encrypt"),
            direction: Direction::Request,
            count: 1,
        },
        FieldEvent {
            label: c("iban"),
            category: c("user.financial.bank_account"),
            action: c("open"),
            direction: Direction::Response,
            count: n,
        },
    ];
    ev.duration_us = 1000 + u64::from(n);
    ev.upstream_us = Some(800);
    ev.transform_us = 40;
    ev.bytes_in = 120;
    ev.bytes_out = 64;
    ev
}

/// Starts a log, emits `n` events starting at `from`, flushes and shuts down.
pub(super) fn write_events(cfg: FlowLogConfig, from: u32, n: u32) {
    let log = FlowLog::start(cfg).unwrap();
    for i in from..from + n {
        log.emit(event(i));
    }
    assert!(log.flush(WAIT), "flush");
    log.shutdown(WAIT);
}

pub(super) fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

pub(super) fn parsed(path: &Path) -> Vec<LoggedEvent> {
    lines(path)
        .iter()
        .map(|l| LoggedEvent::parse(l.as_bytes()).expect("line parses"))
        .collect()
}

pub(super) fn all_events(files: &[PathBuf]) -> Vec<LoggedEvent> {
    files.iter().flat_map(|f| parsed(f)).collect()
}
