//! `flow_log.delete_after`: rotated files past the limit are deleted, oldest first, and
//! what stays still verifies; nothing else in the directory is touched.

use std::fs;
use std::time::{Duration, SystemTime};

use super::*;
use crate::flowlog::retention::prune;

const DAY: Duration = Duration::from_secs(86_400);

/// Writes `n` events from `from` with rotation every few events, then shuts down.
fn rotated_batch(path: &Path, from: u32, n: u32) {
    let mut cfg = config(path);
    cfg.max_bytes = 2000;
    write_events(cfg, from, n);
}

#[test]
fn only_the_oldest_files_past_the_limit_go_and_the_rest_still_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flow.jsonl");
    rotated_batch(&path, 1, 8);
    let old = files_in_order(&path);
    std::thread::sleep(Duration::from_millis(50));
    let between = SystemTime::now();
    std::thread::sleep(Duration::from_millis(50));
    rotated_batch(&path, 9, 8);
    let before = files_in_order(&path);
    let counts: Vec<usize> = before.iter().map(|f| parsed(f).len()).collect();
    assert!(old.len() >= 3 && before.len() > old.len() + 1, "{before:?}");
    // Not this log's rotated files: another stem, a stray suffix, a hand-made copy.
    let strangers = [
        "other.20200101T000000Z-1.jsonl",
        "flow.jsonl.bak",
        "flow.20200101T000000Z-1.jsonl.gz",
        "notes.txt",
    ];
    for s in strangers {
        fs::write(dir.path().join(s), "{}\n").unwrap();
    }

    // Nothing is old enough yet.
    assert_eq!(prune(&path, DAY, SystemTime::now()), 0);
    assert_eq!(files_in_order(&path), before);

    // A day after `between`: the rotated files of the first batch go. The file that was
    // current when it ended took the second batch's first events, so it may stay.
    let now = between + DAY;
    let deleted = prune(&path, DAY, now);
    let after = files_in_order(&path);
    assert_eq!(deleted as usize, before.len() - after.len());
    assert!(deleted as usize >= old.len() - 1, "{deleted} of {old:?}");
    assert!(after.len() >= 2 && after.last() == Some(&path), "{after:?}");
    for f in &after {
        let evs = parsed(f);
        let last = evs.last().unwrap();
        assert!(
            time::parse_rfc3339(&last.time).unwrap() >= between,
            "{f:?} kept though older"
        );
    }
    let report = verify(&after, None).expect("what stays verifies");
    assert!(report.events < 16, "{}", report.events);
    let gone: usize = counts[..deleted as usize].iter().sum();
    assert_eq!(report.events as usize + gone, 16);
    for s in strangers {
        assert!(dir.path().join(s).exists(), "{s} was touched");
    }

    // Far in the future: every rotated file goes, the current one never does.
    prune(&path, DAY, SystemTime::now() + 10 * DAY);
    assert_eq!(files_in_order(&path), vec![path.clone()]);
    assert!(path.exists());
}

#[test]
fn a_file_it_cannot_date_stops_the_deleting() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flow.jsonl");
    rotated_batch(&path, 1, 12);
    let before = files_in_order(&path);
    assert!(before.len() >= 4, "{before:?}");
    // The second file's last line is no event: it and every newer file stay, however old.
    let mut text = fs::read_to_string(&before[1]).unwrap();
    text.push_str("not an event\n");
    fs::write(&before[1], text).unwrap();

    let deleted = prune(&path, DAY, SystemTime::now() + 10 * DAY);
    assert_eq!(deleted, 1);
    assert_eq!(files_in_order(&path), before[1..].to_vec());
}

#[test]
fn the_writer_deletes_at_start_and_after_rotating() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flow.jsonl");
    let keep = Duration::from_millis(300);
    rotated_batch(&path, 1, 8);
    let first = files_in_order(&path);
    assert!(first.len() >= 3, "{first:?}");
    std::thread::sleep(keep + Duration::from_millis(100));

    // At start, before any event: every rotated file is past the limit.
    let mut cfg = config(&path);
    cfg.max_bytes = 2000;
    cfg.delete_after = Some(keep);
    let log = FlowLog::start(cfg).unwrap();
    eventually("the old files to go at start", || {
        files_in_order(&path) == vec![path.clone()]
    });
    assert_eq!(log.files_deleted() as usize, first.len() - 1);

    // Writing on rotates; once the new rotated files are past the limit, the next
    // rotation has them deleted while the chain goes on.
    for i in 9..17 {
        log.emit(event(i));
    }
    assert!(log.flush(WAIT));
    let rotated = files_in_order(&path).len() - 1;
    assert!(rotated >= 2, "{rotated}");
    std::thread::sleep(keep + Duration::from_millis(100));
    for i in 17..25 {
        log.emit(event(i));
    }
    assert!(log.flush(WAIT));
    eventually("the files rotated before the pause to go", || {
        log.files_deleted() as usize >= first.len() - 1 + rotated
    });
    log.shutdown(WAIT);

    let left = files_in_order(&path);
    let report = verify(&left, None).expect("what stays verifies");
    let evs = all_events(&left);
    assert_eq!(evs.last().unwrap().seq, 24);
    assert_eq!(report.events, evs.len() as u64);
    assert!(evs[0].seq > 9, "first kept seq {}", evs[0].seq);
}

#[test]
fn a_quiet_log_has_its_old_current_file_rotated_and_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flow.jsonl");
    let mut cfg = config(&path);
    cfg.max_age = Duration::from_millis(200);
    cfg.delete_after = Some(Duration::from_millis(300));
    let log = FlowLog::start(cfg).unwrap();
    for i in 1..4 {
        log.emit(event(i));
    }
    assert!(log.flush(WAIT));
    let last = parsed(&path).pop().unwrap();

    // No event comes; the file is rotated for its age and then deleted for its events'.
    eventually("the quiet file to be rotated and deleted", || {
        log.files_deleted() == 1
    });
    assert_eq!(files_in_order(&path), vec![path.clone()]);
    assert_eq!(fs::metadata(&path).unwrap().len(), 0);

    // The chain goes on from the deleted file's last event.
    log.emit(event(4));
    assert!(log.flush(WAIT));
    log.shutdown(WAIT);
    let next = parsed(&path);
    assert_eq!((next[0].seq, &next[0].prev), (4, &last.hash));
    verify(&files_in_order(&path), None).expect("what stays verifies");
}
