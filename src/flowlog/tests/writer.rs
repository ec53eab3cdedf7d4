//! The writer against real files: rotation by size and age, restart, failing targets
//! (`/dev/full`, a directory replaced by a file), a full queue, flush and shutdown.

use std::fs;
use std::time::{Duration, Instant};

use super::*;

#[test]
fn rotation_by_size_keeps_one_chain() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flow.jsonl");
    let mut cfg = config(&path);
    cfg.max_bytes = 2000;
    write_events(cfg, 1, 12);

    let files = files_in_order(&path);
    assert!(files.len() >= 3, "{files:?}");
    let mut expect_seq = 1;
    let mut last_hash = GENESIS_PREV.to_string();
    for f in &files {
        assert!(fs::metadata(f).unwrap().len() <= 2000, "{f:?} too big");
        let evs = parsed(f);
        assert!(!evs.is_empty());
        if f != &path {
            let name = f.file_name().unwrap().to_str().unwrap();
            assert!(
                name.starts_with("flow.") && name.ends_with(&format!("-{expect_seq}.jsonl")),
                "{name}"
            );
        }
        for ev in evs {
            assert_eq!((ev.seq, &ev.prev), (expect_seq, &last_hash));
            expect_seq += 1;
            last_hash = ev.hash;
        }
    }
    assert_eq!(expect_seq, 13);
    let report = verify(&files, None).unwrap();
    assert_eq!(
        (report.events, report.files, report.instances),
        (12, files.len(), 1)
    );
    assert!(report.chains[0].from_genesis);
}

#[test]
fn rotation_by_age_keeps_one_chain() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flow.jsonl");
    let mut cfg = config(&path);
    cfg.max_age = Duration::from_millis(100);
    let log = FlowLog::start(cfg).unwrap();
    for round in 0..3 {
        log.emit(event(round * 2));
        log.emit(event(round * 2 + 1));
        assert!(log.flush(WAIT));
        std::thread::sleep(Duration::from_millis(150));
    }
    log.shutdown(WAIT);
    let files = files_in_order(&path);
    assert_eq!(files.len(), 3, "{files:?}");
    for f in &files {
        assert_eq!(lines(f).len(), 2);
    }
    assert_eq!(verify(&files, None).unwrap().events, 6);
}

#[test]
fn restart_continues_seq_and_chain() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("logs/flow.jsonl");
    write_events(config(&path), 1, 3);
    // A crash mid-write leaves half a line: the next start cuts it and links to line 3.
    let mut text = fs::read(&path).unwrap();
    text.extend_from_slice(b"{\"v\":1,\"time\":\"20");
    fs::write(&path, text).unwrap();
    write_events(config(&path), 4, 2);

    let evs = parsed(&path);
    assert_eq!(
        evs.iter().map(|e| e.seq).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5]
    );
    let report = verify(std::slice::from_ref(&path), None).unwrap();
    assert_eq!(report.chains[0].last_seq, 5);

    // After a rotation with no current file left, the newest rotated file is continued.
    let mut cfg = config(&path);
    cfg.max_bytes = 1;
    write_events(cfg, 6, 1);
    let files = files_in_order(&path);
    fs::rename(&path, dir.path().join("logs/flow.20990101T000000Z-6.jsonl")).unwrap();
    write_events(config(&path), 7, 1);
    let files_now = files_in_order(&path);
    assert_eq!(files_now.len(), files.len() + 1);
    assert_eq!(verify(&files_now, None).unwrap().chains[0].last_seq, 7);
}

#[test]
fn start_refuses_a_corrupt_tail_and_an_unopenable_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flow.jsonl");
    fs::write(&path, "not an event\n").unwrap();
    let err = FlowLog::start(config(&path)).unwrap_err();
    assert!(matches!(err, FlowLogError::CorruptTail { .. }), "{err}");

    let blocker = dir.path().join("file");
    fs::write(&blocker, "").unwrap();
    let err = FlowLog::start(config(&blocker.join("flow.jsonl"))).unwrap_err();
    assert!(matches!(err, FlowLogError::Open { .. }), "{err}");
    assert!(err.to_string().contains("cannot open for appending"));

    let mut cfg = config(&path);
    cfg.queue = 0;
    assert!(matches!(FlowLog::start(cfg), Err(FlowLogError::ZeroQueue)));
}

#[test]
fn disk_full_makes_unhealthy_then_recovers_when_the_obstruction_goes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flow.jsonl");
    std::os::unix::fs::symlink("/dev/full", &path).unwrap();
    let mut cfg = config(&path);
    cfg.max_bytes = 1; // must never rotate a device
    cfg.queue = 4;
    let log = FlowLog::start(cfg).unwrap();
    assert!(log.healthy());
    for i in 1..=3 {
        log.emit(event(i));
    }
    assert!(!log.flush(WAIT), "flush must fail on a full disk");
    assert!(!log.healthy());
    assert!(log.must_refuse());
    assert!(log.write_failures() >= 1);
    assert_eq!(
        (log.events_written(), log.errors()),
        (0, 0),
        "held, not lost"
    );
    // More than the backlog holds: the excess is lost and counted.
    for i in 4..=10 {
        log.emit(event(i));
    }
    eventually("lost events counted", || log.errors() >= 3);

    fs::remove_file(&path).unwrap();
    assert!(log.flush(WAIT), "flush after the disk came back");
    assert!(log.healthy());
    assert_eq!(log.events_written() + log.errors(), 10);
    let log_written = log.events_written();
    log.shutdown(WAIT);
    assert!(fs::symlink_metadata("/dev/full")
        .unwrap()
        .file_type()
        .is_char_device_like());
    // max_bytes = 1: each event now has a file of its own.
    let files = files_in_order(&path);
    assert_eq!(files.len() as u64, log_written);
    let evs = all_events(&files);
    assert_eq!(evs[0].seq, 1);
    assert_eq!(evs[0].prev, GENESIS_PREV);
    assert_eq!(verify(&files, None).unwrap().events, log_written);
}

trait CharDevice {
    fn is_char_device_like(&self) -> bool;
}

impl CharDevice for fs::FileType {
    fn is_char_device_like(&self) -> bool {
        std::os::unix::fs::FileTypeExt::is_char_device(self)
    }
}

#[test]
fn dev_full_directly_counts_lost_events_at_shutdown() {
    let log = FlowLog::start(config(Path::new("/dev/full"))).unwrap();
    log.emit(event(1));
    log.emit(event(2));
    assert!(!log.flush(WAIT));
    assert!(!log.healthy());
    let probe = log.clone();
    log.shutdown(WAIT);
    assert_eq!(probe.errors(), 2);
    probe.emit(event(3));
    assert_eq!(probe.errors(), 3, "emit after shutdown is counted");
    assert!(!probe.flush(Duration::from_millis(100)));
}

/// While the target fails, events arriving one by one must still be taken in rounds,
/// not one wake-up each: woken per event, the writer cost the listener threads a quarter
/// of their throughput in `continue` mode (seventh round of docs/benchmarks.md).
#[test]
fn a_failing_target_still_takes_events_in_rounds() {
    let mut cfg = config(Path::new("/dev/full"));
    cfg.on_failure = OnFailure::Continue;
    cfg.queue = 10_000;
    let log = FlowLog::start(cfg).unwrap();
    let n = 2_000;
    for i in 0..n {
        log.emit(event(i));
        // Slower than the writer takes them, as requests arrive.
        std::thread::sleep(Duration::from_micros(50));
    }
    let rounds = log
        .shared()
        .rounds
        .load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        rounds < u64::from(n) / 2,
        "{rounds} wake-ups for {n} events"
    );
    assert!(!log.healthy());
    log.shutdown(WAIT);
}

#[test]
fn deleted_directory_replaced_by_a_file_then_removed() {
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("sub");
    let path = sub.join("flow.jsonl");
    let mut cfg = config(&path);
    cfg.on_failure = OnFailure::Continue;
    let log = FlowLog::start(cfg).unwrap();
    assert!(!log.reject_when_unhealthy());
    log.emit(event(1));
    assert!(log.flush(WAIT));

    fs::remove_dir_all(&sub).unwrap();
    fs::write(&sub, "in the way").unwrap();
    log.emit(event(2));
    assert!(!log.flush(WAIT));
    assert!(!log.healthy() && !log.must_refuse());
    assert!(log.write_failures() >= 1);

    fs::remove_file(&sub).unwrap();
    eventually("retry without new events", || log.healthy());
    assert!(log.flush(WAIT));
    assert_eq!(log.events_written(), 2);
    log.shutdown(WAIT);
    // The recreated file continues the chain of the deleted one: on its own it verifies
    // as a chain that does not start at genesis (like a set whose oldest files were
    // archived), and the report says where it starts.
    let report = verify(std::slice::from_ref(&path), None).unwrap();
    let chain = &report.chains[0];
    assert_eq!((chain.first_seq, chain.from_genesis), (2, false));
}

#[test]
fn emit_never_blocks_when_the_queue_is_full() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flow.jsonl");
    let mut cfg = config(&path);
    cfg.queue = 8;
    let log = FlowLog::start(cfg).unwrap();
    let gate = log.shared().gate.lock().unwrap();
    log.emit(event(0));
    std::thread::sleep(Duration::from_millis(200)); // the writer takes it and waits at the gate
    let started = Instant::now();
    for i in 1..=100 {
        let one = Instant::now();
        log.emit(event(i));
        assert!(one.elapsed() < Duration::from_millis(50), "emit blocked");
    }
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(log.errors(), 92);
    assert!(!log.healthy());
    drop(gate);
    assert!(log.flush(WAIT));
    assert!(log.healthy());
    assert_eq!(log.events_written(), 9);
    log.shutdown(WAIT);
    assert_eq!(verify(&[path], None).unwrap().events, 9);
}

#[test]
fn flush_waits_for_everything_emitted_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flow.jsonl");
    let log = FlowLog::start(config(&path)).unwrap();
    let workers: Vec<_> = (0..4)
        .map(|t| {
            let log = log.clone();
            std::thread::spawn(move || {
                for i in 0..25 {
                    log.emit(event(t * 100 + i));
                    if i % 10 == 0 {
                        assert!(log.flush(WAIT));
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    assert!(log.flush(WAIT));
    assert_eq!(lines(&path).len() as u64, log.events_written());
    assert_eq!(log.events_written() + log.errors(), 100);
    log.shutdown(WAIT);
    verify(&[path], None).unwrap();
}

/// Written events hand their field lists back, emptied, for the next events: a later
/// event built on one carries its own fields only.
#[test]
fn field_lists_of_written_events_serve_later_events_empty() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flow.jsonl");
    let log = FlowLog::start(config(&path)).unwrap();
    assert_eq!(log.field_list().capacity(), 0, "nothing to hand back yet");
    log.emit(event(1));
    assert!(log.flush(WAIT));
    let list = log.field_list();
    assert!(list.is_empty());
    assert!(list.capacity() >= 2, "the written event's list came back");
    let mut second = event(2);
    let mut fields = list;
    fields.push(second.fields.remove(0));
    second.fields = fields;
    log.emit(second);
    assert!(log.flush(WAIT));
    log.shutdown(WAIT);
    let events = parsed(&path);
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].fields.len(), 2);
    assert_eq!(events[1].fields.len(), 1);
    assert_eq!(events[1].fields[0].label, "email");
}

/// A disk that takes long to sync (held here) does not stop the writing: events keep
/// reaching the file, while a flush, which promises durability, waits for the sync.
#[test]
fn writing_goes_on_while_a_sync_is_held() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flow.jsonl");
    let log = FlowLog::start(config(&path)).unwrap();
    let probe = log.sync_probe();
    let held = probe.hold();
    log.emit(event(0));
    // The periodic sync starts a second after the first write, and waits at the gate.
    eventually("a sync starts", || probe.started() == 1);
    for i in 1..=20 {
        log.emit(event(i));
    }
    eventually("the writer writes on", || log.events_written() == 21);
    assert_eq!(lines(&path).len(), 21);
    assert!(log.healthy());
    assert!(
        !log.flush(Duration::from_millis(200)),
        "a flush answered before the sync in flight ended"
    );
    drop(held);
    assert!(log.flush(WAIT));
    log.shutdown(WAIT);
    assert_eq!(verify(&[path], None).unwrap().events, 21);
}

/// A sync that fails on its thread counts like a failed write: the log reports unhealthy
/// (rule routes refuse) until the next write succeeds, and the flush waiting on it says
/// the events may not be durable. Nothing is lost.
#[test]
fn a_failed_sync_counts_like_a_failed_write() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flow.jsonl");
    let log = FlowLog::start(config(&path)).unwrap();
    let probe = log.sync_probe();
    let held = probe.hold();
    log.emit(event(0));
    eventually("a sync starts", || probe.started() == 1);
    // The job in flight has already been taken; the order applies to the next one.
    drop(held);
    assert!(log.flush(WAIT));
    probe.fail_next();
    log.emit(event(1));
    eventually("the failed sync is noticed", || !log.healthy());
    assert_eq!(probe.started(), 2);
    assert_eq!(log.write_failures(), 1);
    log.emit(event(2));
    assert!(log.flush(WAIT));
    assert!(log.healthy());
    assert_eq!(log.errors(), 0);
    log.shutdown(WAIT);
    assert_eq!(verify(&[path], None).unwrap().events, 3);
}

/// The queue takes memory only for events actually waiting: a bound of ten million
/// (the config's largest) costs nothing at start. Reserved whole, it would be gigabytes.
#[test]
fn a_large_queue_reserves_no_memory_up_front() {
    fn resident_kb() -> u64 {
        let status = fs::read_to_string("/proc/self/status").unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flow.jsonl");
    let mut cfg = config(&path);
    cfg.queue = 10_000_000;
    let before = resident_kb();
    let log = FlowLog::start(cfg).unwrap();
    for i in 0..1000 {
        log.emit(event(i));
    }
    assert!(log.flush(WAIT));
    // Other tests run in this process meanwhile; 200 MB leaves them room and is still
    // a tenth of what ten million slots would take.
    let grown = resident_kb().saturating_sub(before);
    assert!(grown < 200 * 1024, "resident memory grew by {grown} kB");
    assert_eq!(log.events_written(), 1000);
    log.shutdown(WAIT);
}

/// While the target fails, the writer holds at most `MAX_HELD` events for retrying, even
/// under a larger queue: a failing disk costs bounded memory. The rest are counted lost.
#[test]
fn a_failing_target_holds_at_most_max_held_events() {
    let mut cfg = config(Path::new("/dev/full"));
    cfg.queue = 4 * FlowLogConfig::MAX_HELD;
    let log = FlowLog::start(cfg).unwrap();
    let extra = 1000;
    let sent = FlowLogConfig::MAX_HELD + extra;
    for i in 0..sent {
        log.emit(event(i as u32));
    }
    eventually("the backlog beyond MAX_HELD is counted lost", || {
        log.errors() == extra as u64
    });
    assert_eq!(log.events_written(), 0);
    assert!(!log.healthy());
    // Shutting down with the backlog still unwritten counts it lost too.
    log.shutdown(WAIT);
}
