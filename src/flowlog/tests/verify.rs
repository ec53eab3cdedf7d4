//! `verify` on a good set and on damaged copies: each damage is named at the right file
//! and line.

use std::fs;

use zeroize::Zeroizing;

use super::*;
use crate::flowlog::chain::{seal, Header};

const KEY: [u8; 32] = [0x42; 32];

/// Writes 16 events rotated by size into several files of at least three lines each.
fn good_set(dir: &Path, key: Option<[u8; 32]>) -> Vec<PathBuf> {
    let path = dir.join("flow.jsonl");
    let mut cfg = config(&path);
    cfg.max_bytes = 2400;
    cfg.hmac_key = key.map(Zeroizing::new);
    write_events(cfg, 1, 16);
    let files = files_in_order(&path);
    assert!(files.len() >= 4, "{files:?}");
    for f in &files[..files.len() - 1] {
        assert!(
            lines(f).len() >= 3,
            "{f:?} has too few lines for these tests"
        );
    }
    files
}

/// Rewrites one file's lines.
fn damage(file: &Path, edit: impl FnOnce(&mut Vec<String>)) {
    let mut ls = lines(file);
    edit(&mut ls);
    let mut text = ls.join("\n");
    text.push('\n');
    fs::write(file, text).unwrap();
}

fn broken(files: &[PathBuf], key: Option<&[u8; 32]>) -> (PathBuf, u64, BreakKind) {
    let b = verify(files, key).expect_err("verify must fail");
    let shown = b.to_string();
    let prefix = format!("{}:{}: ", b.file.display(), b.line);
    assert!(shown.starts_with(&prefix), "{shown}");
    (b.file, b.line, b.kind)
}

#[test]
fn good_set_passes() {
    let dir = tempfile::tempdir().unwrap();
    let files = good_set(dir.path(), None);
    let r = verify(&files, None).unwrap();
    assert_eq!((r.events, r.files, r.instances), (16, files.len(), 1));
    let c = &r.chains[0];
    assert_eq!(
        (c.first_seq, c.last_seq, c.from_genesis, c.mac),
        (1, 16, true, false)
    );
    assert!(r.first_time.unwrap() <= r.last_time.unwrap());
    assert_eq!(c.last_hash, all_events(&files).last().unwrap().hash);
    // A later part of the chain alone (older files archived) verifies too.
    let r = verify(&files[1..], None).unwrap();
    assert!(!r.chains[0].from_genesis);
}

#[test]
fn edited_line_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let files = good_set(dir.path(), None);
    damage(&files[1], |ls| {
        ls[1] = ls[1].replace("\"bytes_in\":120", "\"bytes_in\":121")
    });
    let got = broken(&files, None);
    assert_eq!(
        got,
        (files[1].clone(), 2, BreakKind::EditedLine { keyed: false })
    );
}

#[test]
fn deleted_line_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let files = good_set(dir.path(), None);
    damage(&files[1], |ls| {
        ls.remove(1);
    });
    let got = broken(&files, None);
    assert_eq!(
        got,
        (
            files[1].clone(),
            2,
            BreakKind::BadLink {
                at_file_start: false
            }
        )
    );
}

#[test]
fn swapped_lines_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let files = good_set(dir.path(), None);
    damage(&files[1], |ls| ls.swap(1, 2));
    let got = broken(&files, None);
    assert_eq!(
        got,
        (
            files[1].clone(),
            2,
            BreakKind::BadLink {
                at_file_start: false
            }
        )
    );
}

#[test]
fn truncated_tail_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let files = good_set(dir.path(), None);
    let last = files.last().unwrap();
    let n = lines(last).len() as u64;
    let mut bytes = fs::read(last).unwrap();
    bytes.truncate(bytes.len() - 10);
    fs::write(last, &bytes).unwrap();
    assert_eq!(
        broken(&files, None),
        (last.clone(), n, BreakKind::TruncatedTail)
    );

    // Cut inside the line but with a newline after it: still the tail.
    bytes.push(b'\n');
    fs::write(last, &bytes).unwrap();
    assert_eq!(
        broken(&files, None),
        (last.clone(), n, BreakKind::TruncatedTail)
    );

    // The same damage in the middle of a file is an unparsable line.
    damage(&files[0], |ls| ls.insert(1, "{\"v\":1,\"ti".into()));
    assert_eq!(
        broken(&files, None),
        (files[0].clone(), 2, BreakKind::Unparsable)
    );
}

#[test]
fn missing_middle_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let files = good_set(dir.path(), None);
    let without: Vec<PathBuf> = files
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 1)
        .map(|(_, f)| f.clone())
        .collect();
    let (file, line, kind) = broken(&without, None);
    assert_eq!((file, line), (files[2].clone(), 1));
    assert_eq!(
        kind,
        BreakKind::BadLink {
            at_file_start: true
        }
    );
    let shown = verify(&without, None).unwrap_err().to_string();
    assert!(
        shown.contains("missing file or lines before this one"),
        "{shown}"
    );
    // Files given out of order break the same way.
    let mut swapped = files.clone();
    swapped.swap(1, 2);
    assert_eq!(broken(&swapped, None).1, 1);
}

#[test]
fn hmac_chain_needs_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let files = good_set(dir.path(), Some(KEY));
    let r = verify(&files, Some(&KEY)).unwrap();
    assert!(r.chains[0].mac);
    assert_eq!(
        broken(&files, None),
        (files[0].clone(), 1, BreakKind::MacKeyNeeded)
    );
    let wrong = [0x43; 32];
    assert_eq!(
        broken(&files, Some(&wrong)),
        (files[0].clone(), 1, BreakKind::EditedLine { keyed: true })
    );
    // Without the key an editor cannot recompute the chain: an edit is caught.
    damage(&files[2], |ls| {
        ls[0] = ls[0].replace("\"status\":", "\"status\":1")
    });
    assert_eq!(broken(&files, Some(&KEY)).0, files[2]);
}

#[test]
fn stripped_hmac_is_caught_with_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let files = good_set(dir.path(), None);
    let (file, line, kind) = broken(&files, Some(&KEY));
    assert_eq!(
        (file, kind),
        (files.last().unwrap().clone(), BreakKind::MacMissing)
    );
    assert_eq!(line, lines(files.last().unwrap()).len() as u64);
}

/// Hand-sealed lines, as a forger who knows the format (but no key) would write them.
fn forge(path: &Path, seqs: &[u64], instance: &str) {
    let inst = ConfigStr::new(instance);
    let mut prev = GENESIS_PREV.to_string();
    let mut out = Vec::new();
    for (i, seq) in seqs.iter().enumerate() {
        let head = Header {
            time: "2024-05-01T12:00:00.000Z",
            seq: *seq,
            instance: &inst,
            prev: &prev,
        };
        let (line, hash) = seal(&event(i as u32), &head, None);
        out.extend_from_slice(&line);
        prev = hash;
    }
    fs::write(path, out).unwrap();
}

#[test]
fn seq_gap_and_several_instances() {
    let dir = tempfile::tempdir().unwrap();
    let gap = dir.path().join("gap.jsonl");
    forge(&gap, &[1, 2, 4], "a");
    let got = broken(std::slice::from_ref(&gap), None);
    assert_eq!(
        got,
        (
            gap,
            3,
            BreakKind::SeqGap {
                expected: 3,
                found: 4
            }
        )
    );

    let a = dir.path().join("a.jsonl");
    let b = dir.path().join("b.jsonl");
    forge(&a, &[1, 2, 3], "a");
    forge(&b, &[1, 2], "b");
    let r = verify(&[a.clone(), b.clone()], None).unwrap();
    assert_eq!((r.events, r.instances), (5, 2));
    assert_eq!(
        r.chains
            .iter()
            .map(|c| c.instance.as_str())
            .collect::<Vec<_>>(),
        ["a", "b"]
    );
    // Interleaved in one file, each instance still has its own intact chain.
    let (la, lb) = (lines(&a), lines(&b));
    let mixed = dir.path().join("mixed.jsonl");
    fs::write(
        &mixed,
        format!("{}\n{}\n{}\n{}\n{}\n", la[0], lb[0], la[1], lb[1], la[2]),
    )
    .unwrap();
    assert_eq!(verify(&[mixed], None).unwrap().instances, 2);
    // A break in one instance's chain counts.
    forge(&b, &[1, 2, 3], "b");
    damage(&b, |ls| {
        ls.remove(1);
    });
    let got = broken(&[a, b.clone()], None);
    assert_eq!(
        got,
        (
            b,
            2,
            BreakKind::BadLink {
                at_file_start: false
            }
        )
    );
}

#[test]
fn unreadable_file_and_empty_list() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.jsonl");
    let b = verify(std::slice::from_ref(&missing), None).unwrap_err();
    assert_eq!((b.file, b.line), (missing, 0));
    assert!(matches!(b.kind, BreakKind::Unreadable { .. }));
    assert_eq!(verify(&[], None).unwrap().events, 0);
}
