//! Request direction for JSON bodies: scan strictly, then splice each selected value's
//! replacement into the original bytes. Everything no rule selects keeps its exact
//! spelling (member order, number text, escapes, whitespace).
//!
//! Never logs or returns a value: errors are reasons.

use super::detect::Detector;
use super::scan::{self, content_str, Hit, Limits, ScanError};
use super::{is_ours, mask, Action, RuleSet};
use crate::crypto::{CryptoError, Keyring, ValueType};

/// Why a request body was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TransformError {
    /// The body is not strict JSON (or not a readable form).
    #[error("body refused: {}", .0.reason())]
    Scan(ScanError),
    /// Sealing failed (randomness, cipher).
    #[error("sealing failed: {}", .0.reason())]
    Crypto(CryptoError),
    /// A value bound to its record has no record key beside it.
    #[error("bound value without its record key")]
    MissingRecordKey,
}

impl TransformError {
    /// A short reason for logs, metrics and flow events.
    pub fn reason(&self) -> &'static str {
        match self {
            TransformError::Scan(e) => e.reason(),
            TransformError::Crypto(e) => e.reason(),
            TransformError::MissingRecordKey => "missing_record_key",
        }
    }
}

/// A transformed body and how many values each rule touched.
pub struct Transformed {
    /// The new body.
    pub body: Vec<u8>,
    /// Per rule (same order as the rule set), values transformed.
    pub counts: Vec<u32>,
    /// Detectors that found sensitive-looking values no rule selected (sorted, unique).
    pub uncovered: Vec<Detector>,
}

/// One replacement: bytes `start..end` of the original become `with`.
struct Edit {
    start: usize,
    end: usize,
    with: Vec<u8>,
}

/// Applies `rules` to the JSON `body`.
pub fn transform_json(
    body: &[u8],
    rules: &RuleSet,
    keyring: &Keyring,
    limits: Limits,
) -> Result<Transformed, TransformError> {
    let plan = plan(body, rules, keyring, limits)?;
    Ok(Transformed {
        body: splice(body, &plan.edits),
        counts: plan.counts,
        uncovered: plan.uncovered,
    })
}

/// A transformed body as pieces: slices of the original (no copy) and new values,
/// in order. What the proxy sends, so a large body is not copied once more.
pub struct Chunked {
    /// The pieces, in order; together the new body.
    pub chunks: Vec<bytes::Bytes>,
    /// Their total length.
    pub len: usize,
    /// Per rule, values transformed.
    pub counts: Vec<u32>,
    /// Detectors that found sensitive-looking values no rule selected.
    pub uncovered: Vec<Detector>,
}

/// Applies `rules` to the JSON `body`, sharing its unchanged bytes.
pub fn transform_json_chunked(
    body: &bytes::Bytes,
    rules: &RuleSet,
    keyring: &Keyring,
    limits: Limits,
) -> Result<Chunked, TransformError> {
    let plan = plan(body, rules, keyring, limits)?;
    let mut chunks = Vec::with_capacity(plan.edits.len() * 2 + 1);
    let mut at = 0;
    for e in plan.edits {
        if e.start > at {
            chunks.push(body.slice(at..e.start));
        }
        if !e.with.is_empty() {
            chunks.push(bytes::Bytes::from(e.with));
        }
        at = e.end;
    }
    if at < body.len() {
        chunks.push(body.slice(at..));
    }
    let len = chunks.iter().map(bytes::Bytes::len).sum();
    Ok(Chunked {
        chunks,
        len,
        counts: plan.counts,
        uncovered: plan.uncovered,
    })
}

/// What to change in a body, and what it counted.
struct Plan {
    edits: Vec<Edit>,
    counts: Vec<u32>,
    uncovered: Vec<Detector>,
}

fn plan(
    body: &[u8],
    rules: &RuleSet,
    keyring: &Keyring,
    limits: Limits,
) -> Result<Plan, TransformError> {
    let record_names = rules.record_names();
    let scan = scan::scan_keyed(
        body,
        scan::Mode::Request(&rules.paths),
        &record_names,
        limits,
        is_ours,
    )
    .map_err(TransformError::Scan)?;
    let mut hits = scan.hits;
    // Document order; on the same span the earlier rule wins; an enclosing selection
    // wins over anything inside it.
    hits.sort_by_key(|h| (h.start, h.rule));
    let drop_ranges = drop_ranges(&hits, rules);
    let mut counts = vec![0u32; rules.fields.len()];
    let mut edits: Vec<Edit> = Vec::with_capacity(hits.len());
    let mut covered_to = 0usize;
    for (hit, drop_range) in hits.iter().zip(drop_ranges) {
        if hit.start < covered_to {
            continue;
        }
        let rule = &rules.fields[hit.rule as usize];
        let edit = match drop_range {
            Some((start, end)) => Edit {
                start,
                end,
                with: Vec::new(),
            },
            None => Edit {
                start: hit.start,
                end: hit.end,
                with: {
                    let record = match &rule.bind {
                        None => None,
                        Some(member) => Some(
                            record_key(
                                body,
                                &scan.record_keys,
                                &record_names,
                                member,
                                hit.slot.container,
                            )
                            .ok_or(TransformError::MissingRecordKey)?,
                        ),
                    };
                    replacement(body, hit, rule, record.as_deref(), keyring)?
                },
            },
        };
        covered_to = hit.end;
        counts[hit.rule as usize] += 1;
        edits.push(edit);
    }
    let uncovered = uncovered(&scan.findings, &hits);
    Ok(Plan {
        edits,
        counts,
        uncovered,
    })
}

/// Findings that lie outside every selected value.
fn uncovered(findings: &[(usize, usize, Detector)], hits: &[Hit]) -> Vec<Detector> {
    let mut out: Vec<Detector> = findings
        .iter()
        .filter(|(s, e, _)| !hits.iter().any(|h| h.start <= *s && *e <= h.end))
        .map(|(_, _, d)| *d)
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// For each hit whose rule drops it, the byte range to remove so that the container
/// stays valid JSON: a member goes with the comma before it when a kept member precedes
/// it, else with the comma after it.
fn drop_ranges(hits: &[Hit], rules: &RuleSet) -> Vec<Option<(usize, usize)>> {
    let mut out = vec![None; hits.len()];
    // (container, comma_after of the last dropped member, whether all members so far were dropped)
    let mut last: Option<(u32, Option<usize>, bool)> = None;
    for (k, hit) in hits.iter().enumerate() {
        if rules.fields[hit.rule as usize].action != Action::Drop {
            continue;
        }
        let slot = hit.slot;
        let all_before_dropped = match (slot.comma_before, last) {
            (None, _) => true,
            (Some(c), Some((container, Some(after), all)))
                if container == slot.container && after == c =>
            {
                all
            }
            _ => false,
        };
        out[k] = Some(
            match (all_before_dropped, slot.comma_before, slot.comma_after) {
                (false, Some(before), _) => (before, hit.end),
                (_, _, Some(after)) => (slot.start, after + 1),
                _ => (slot.start, hit.end),
            },
        );
        last = Some((slot.container, slot.comma_after, all_before_dropped));
    }
    out
}

/// The plaintext bytes of a selected value: a string's decoded content, or the raw JSON
/// text of anything else.
pub(super) fn plaintext<'a>(body: &'a [u8], hit: &Hit) -> std::borrow::Cow<'a, [u8]> {
    let raw = &body[hit.start..hit.end];
    match hit.value_type {
        ValueType::String => match content_str(&raw[1..raw.len() - 1], hit.escaped) {
            std::borrow::Cow::Borrowed(s) => std::borrow::Cow::Borrowed(s.as_bytes()),
            std::borrow::Cow::Owned(s) => std::borrow::Cow::Owned(s.into_bytes()),
        },
        _ => std::borrow::Cow::Borrowed(raw),
    }
}

/// The record key a bound value carries: the value of sibling member `member` in the
/// object `container` (a string's content, or any other value's JSON text).
pub(super) fn record_key(
    body: &[u8],
    keys: &[scan::RecordKey],
    names: &[&str],
    member: &str,
    container: u32,
) -> Option<Vec<u8>> {
    let name = names.iter().position(|n| *n == member)?;
    let rk = keys
        .iter()
        .find(|k| k.container == container && k.name == name)?;
    let raw = &body[rk.start..rk.end];
    Some(match raw.first() {
        Some(b'"') => {
            let escaped = memchr::memchr(b'\\', raw).is_some();
            content_str(&raw[1..raw.len() - 1], escaped)
                .as_bytes()
                .to_vec()
        }
        _ => raw.to_vec(),
    })
}

fn replacement(
    body: &[u8],
    hit: &Hit,
    rule: &super::FieldRule,
    record: Option<&[u8]>,
    keyring: &Keyring,
) -> Result<Vec<u8>, TransformError> {
    let value = plaintext(body, hit);
    Ok(match &rule.action {
        Action::Encrypt | Action::EncryptDeterministic => {
            let mode = rule
                .action
                .seal_mode()
                .unwrap_or(crate::crypto::Mode::Random);
            let token = keyring
                .seal_bound(mode, &rule.label, record, hit.value_type, &value)
                .map_err(TransformError::Crypto)?;
            quoted(&token)
        }
        Action::Redact(raw) => raw.as_bytes().to_vec(),
        Action::Mask(style) => json_string(&mask(&String::from_utf8_lossy(&value), *style)),
        Action::Hash => quoted(&keyring.pseudonym(&value)),
        // Drops are ranges, handled by the caller.
        Action::Drop => Vec::new(),
    })
}

/// A URL-safe ASCII token as a JSON string: no escaping needed.
pub(super) fn quoted(token: &str) -> Vec<u8> {
    let mut v = Vec::with_capacity(token.len() + 2);
    v.push(b'"');
    v.extend_from_slice(token.as_bytes());
    v.push(b'"');
    v
}

/// Any text as a JSON string.
pub(super) fn json_string(s: &str) -> Vec<u8> {
    serde_json::to_vec(s).unwrap_or_else(|_| b"null".to_vec())
}

fn splice(body: &[u8], edits: &[Edit]) -> Vec<u8> {
    let grow: usize = edits.iter().map(|e| e.with.len()).sum();
    let mut out = Vec::with_capacity(body.len() + grow);
    let mut at = 0;
    for e in edits {
        out.extend_from_slice(&body[at..e.start]);
        out.extend_from_slice(&e.with);
        at = e.end;
    }
    out.extend_from_slice(&body[at..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transform::MaskStyle;
    use std::sync::Arc;

    const LIMITS: Limits = Limits {
        max_depth: 64,
        max_nodes: 100_000,
    };

    use crate::transform::test_rules as rules;

    fn keyring() -> Keyring {
        Keyring::generate().unwrap()
    }

    fn run(body: &str, spec: &[(&str, Action)]) -> String {
        let out = transform_json(body.as_bytes(), &rules(spec), &keyring(), LIMITS).unwrap();
        String::from_utf8(out.body).unwrap()
    }

    #[test]
    fn drop_keeps_the_container_valid() {
        let body = r#"{"a":1, "b":2, "c":3}"#;
        let cases = [
            (vec!["$.a"], r#"{ "b":2, "c":3}"#),
            (vec!["$.b"], r#"{"a":1, "c":3}"#),
            (vec!["$.c"], r#"{"a":1, "b":2}"#),
            (vec!["$.a", "$.b"], r#"{  "c":3}"#),
            (vec!["$.b", "$.c"], r#"{"a":1}"#),
            (vec!["$.a", "$.c"], r#"{ "b":2}"#),
            (vec!["$.a", "$.b", "$.c"], r#"{  }"#),
        ];
        for (paths, want) in cases {
            let spec: Vec<_> = paths.iter().map(|p| (*p, Action::Drop)).collect();
            let got = run(body, &spec);
            assert_eq!(got, want, "{paths:?}");
            serde_json::from_str::<serde_json::Value>(&got).unwrap();
        }
        assert_eq!(run("[1,2,3,4]", &[("$[1:3]", Action::Drop)]), "[1,4]");
        assert_eq!(run("[1,2,3,4]", &[("$[0,3]", Action::Drop)]), "[2,3]");
    }

    #[test]
    fn untouched_bytes_keep_their_spelling() {
        let body = "{ \"z\": 12345678901234567890123, \"email\" : \"a@b.c\", \"e\":1e2,\"s\":\"\\u00e9\" }";
        let got = run(body, &[("$.email", Action::Redact(Arc::from("null")))]);
        assert_eq!(
            got,
            "{ \"z\": 12345678901234567890123, \"email\" : null, \"e\":1e2,\"s\":\"\\u00e9\" }"
        );
    }

    #[test]
    fn mask_hash_and_encrypt_replace_values() {
        let body = r#"{"card":"4111111111111111","email":"jane@example.com","n":42}"#;
        let got = run(
            body,
            &[
                ("$.card", Action::Mask(MaskStyle::KeepLast(4))),
                ("$.email", Action::Hash),
                ("$.n", Action::Encrypt),
            ],
        );
        let v: serde_json::Value = serde_json::from_str(&got).unwrap();
        assert_eq!(v["card"], "************1111");
        assert!(v["email"].as_str().unwrap().starts_with("tkp1."));
        assert!(v["n"].as_str().unwrap().starts_with("tk1."));
        assert!(!got.contains("jane") && !got.contains("4111111111111111"));
    }

    #[test]
    fn outer_selection_wins_and_counts_once() {
        let set = rules(&[
            ("$.a.b", Action::Redact(Arc::from("0"))),
            ("$.a", Action::Redact(Arc::from("1"))),
        ]);
        let out = transform_json(br#"{"a":{"b":5}}"#, &set, &keyring(), LIMITS).unwrap();
        assert_eq!(out.body, br#"{"a":1}"#);
        assert_eq!(out.counts, vec![0, 1]);
    }

    #[test]
    fn sensitive_values_no_rule_covers_are_reported_by_detector_only() {
        use crate::transform::detect::Detector;
        let body =
            br#"{"email":"a@b.de","backup":"x@y.org","card":4111111111111111,"plan":"gold"}"#;
        let set = rules(&[("$.email", Action::Encrypt)]);
        let out = transform_json(body, &set, &keyring(), LIMITS).unwrap();
        assert_eq!(out.uncovered, vec![Detector::Email, Detector::CardNumber]);
        let set = rules(&[
            ("$.email", Action::Encrypt),
            ("$.backup", Action::Drop),
            ("$.card", Action::Drop),
        ]);
        let out = transform_json(body, &set, &keyring(), LIMITS).unwrap();
        assert!(out.uncovered.is_empty());
    }

    #[test]
    fn chunked_output_equals_the_spliced_body() {
        let kr = keyring();
        let set = rules(&[
            ("$.a", Action::Drop),
            ("$.b", Action::Redact(Arc::from("0"))),
            ("$.c", Action::Hash),
        ]);
        let body = bytes::Bytes::from_static(br#"{"a":1, "b":{"x":2}, "c":"v", "d":[1,2]}"#);
        let whole = transform_json(&body, &set, &kr, LIMITS).unwrap();
        let chunked = transform_json_chunked(&body, &set, &kr, LIMITS).unwrap();
        let joined: Vec<u8> = chunked
            .chunks
            .iter()
            .flat_map(|c| c.iter().copied())
            .collect();
        assert_eq!(joined, whole.body);
        assert_eq!(chunked.len, whole.body.len());
        assert_eq!(chunked.counts, whole.counts);
    }

    #[test]
    fn ciphertext_in_a_request_is_refused() {
        let kr = keyring();
        let token = kr
            .seal(crate::crypto::Mode::Random, "x", ValueType::String, b"v")
            .unwrap();
        let body = format!(r#"{{"other":"{token}"}}"#);
        let err = transform_json(
            body.as_bytes(),
            &rules(&[("$.email", Action::Encrypt)]),
            &kr,
            LIMITS,
        )
        .err();
        assert_eq!(err.map(|e| e.reason()), Some("ciphertext_in_request"));
        let marker = format!(r#"{{"other":"{}"}}"#, crate::crypto::MARKER);
        assert!(transform_json(marker.as_bytes(), &rules(&[]), &kr, LIMITS).is_err());
    }
}
