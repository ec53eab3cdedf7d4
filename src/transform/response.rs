//! Response direction: every ciphertext of ours anywhere in a JSON body is opened back
//! to its original value and type. One that cannot be opened (key erased, tampered,
//! unknown label, or sitting in another field's slot) becomes the documented marker,
//! never an error page and never garbage.
//!
//! Never logs a value; failures are counted by reason.

use super::request::{json_string, quoted, record_key};
use super::scan::{self, content_str, Limits, ScanError};
use super::{is_ours, Labels};
use crate::crypto::{self, Keyring, ValueType, MARKER};
use crate::flowlog::ConfigStr;

/// What opening a response did.
#[derive(Default)]
pub struct Opened {
    /// The new body, or None when nothing of ours was in it (forward the original).
    pub body: Option<Vec<u8>>,
    /// Values opened, per label.
    pub opened: Vec<(ConfigStr, u32)>,
    /// Values replaced by the marker, per reason.
    pub failures: Vec<&'static str>,
}

/// Opens every token of ours in `body`. An error means the body is not JSON; the
/// caller forwards it unchanged (it cannot hold plaintext of ours).
pub fn open_json(
    body: &[u8],
    labels: &Labels,
    keyring: &Keyring,
    limits: Limits,
) -> Result<Opened, ScanError> {
    // Cheap pre-check: tokens always contain the prefix literally, or an escape.
    if !may_hold_tokens(body) {
        return Ok(Opened::default());
    }
    let names = labels.record_names();
    let found = scan::scan_keyed(body, scan::Mode::Response, &names, limits, is_ours)?;
    if found.tokens.is_empty() {
        return Ok(Opened::default());
    }
    let mut out = Vec::with_capacity(body.len());
    let mut opened: Vec<(ConfigStr, u32)> = Vec::new();
    let mut failures = Vec::new();
    let mut at = 0;
    for t in &found.tokens {
        out.extend_from_slice(&body[at..t.start]);
        at = t.end;
        let text = content_str(&body[t.start + 1..t.end - 1], t.escaped);
        let member = t.key.map(|(s, e, esc)| content_str(&body[s..e], esc));
        let record =
            |member: &str| record_key(body, &found.record_keys, &names, member, t.container);
        match open_one(&text, member.as_deref(), record, labels, keyring) {
            Ok((label, bytes)) => {
                out.extend_from_slice(&bytes);
                match opened.iter_mut().find(|(l, _)| *l == label) {
                    Some((_, n)) => *n += 1,
                    None => opened.push((label, 1)),
                }
            }
            Err(reason) => {
                out.extend_from_slice(&quoted(MARKER));
                failures.push(reason);
            }
        }
    }
    out.extend_from_slice(&body[at..]);
    Ok(Opened {
        body: Some(out),
        opened,
        failures,
    })
}

/// Replaces every token of ours in `body` by the marker without opening anything: what
/// a caller not allowed to see plaintext gets. Returns the new body (None when nothing
/// of ours was in it) and how many values were concealed. An error means the body is not
/// JSON; the caller forwards it unchanged (it holds no plaintext of ours).
pub fn conceal_json(body: &[u8], limits: Limits) -> Result<(Option<Vec<u8>>, u32), ScanError> {
    if !may_hold_tokens(body) {
        return Ok((None, 0));
    }
    let found = scan::scan(body, scan::Mode::Response, limits, is_ours)?;
    if found.tokens.is_empty() {
        return Ok((None, 0));
    }
    let mut out = Vec::with_capacity(body.len());
    let mut at = 0;
    for t in &found.tokens {
        out.extend_from_slice(&body[at..t.start]);
        out.extend_from_slice(&quoted(MARKER));
        at = t.end;
    }
    out.extend_from_slice(&body[at..]);
    Ok((Some(out), found.tokens.len() as u32))
}

/// Cheap pre-check: a token always contains its prefix literally, unless escapes hide it.
fn may_hold_tokens(body: &[u8]) -> bool {
    memchr::memmem::find(body, crypto::envelope::TOKEN_PREFIX.as_bytes()).is_some()
        || memchr::memchr(b'\\', body).is_some()
}

/// Opens one token to the JSON text of its value.
fn open_one(
    token: &str,
    member: Option<&str>,
    record: impl Fn(&str) -> Option<Vec<u8>>,
    labels: &Labels,
    keyring: &Keyring,
) -> Result<(ConfigStr, Vec<u8>), &'static str> {
    if token == MARKER {
        return Err("marker");
    }
    let header = crypto::parse_token(token).ok_or("malformed")?;
    let label = labels.by_tag(header.label_tag).ok_or("unknown_label")?;
    if member.is_some_and(|m| !labels.slot_allows(m, label)) {
        return Err("wrong_field");
    }
    let record = match labels.bound_to(&label) {
        None => None,
        Some(member) => Some(record(member).ok_or("missing_record_key")?),
    };
    let (value_type, plaintext) = keyring
        .open_bound(&label, record.as_deref(), token)
        .map_err(|e| e.reason())?;
    let json = match value_type {
        ValueType::String => json_string(std::str::from_utf8(&plaintext).map_err(|_| "malformed")?),
        _ => plaintext.to_vec(),
    };
    Ok((label, json))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::Mode;

    const LIMITS: Limits = Limits {
        max_depth: 64,
        max_nodes: 100_000,
    };

    fn setup() -> (Keyring, Labels) {
        let mut labels = Labels::default();
        labels.add(ConfigStr::new("c.email"), Some("email"), true);
        labels.add(ConfigStr::new("c.name"), Some("name"), true);
        labels.add(ConfigStr::new("c.n"), None, true);
        (Keyring::generate().unwrap(), labels)
    }

    #[test]
    fn opens_every_token_with_its_type() {
        let (kr, labels) = setup();
        let e = kr
            .seal(
                Mode::Random,
                "c.email",
                ValueType::String,
                "jäne\"@x".as_bytes(),
            )
            .unwrap();
        let n = kr
            .seal(
                Mode::Deterministic,
                "c.n",
                ValueType::Number,
                b"12345678901234567890123",
            )
            .unwrap();
        let o = kr
            .seal(
                Mode::Random,
                "c.n",
                ValueType::Object,
                br#"{"b":[1,true,null]}"#,
            )
            .unwrap();
        let body = format!(r#"[{{"email":"{e}","x":"{n}"}},{{"email":"{e}","deep":["{o}"]}}]"#);
        let got = open_json(body.as_bytes(), &labels, &kr, LIMITS).unwrap();
        let text = String::from_utf8(got.body.unwrap()).unwrap();
        assert_eq!(
            text,
            r#"[{"email":"jäne\"@x","x":12345678901234567890123},{"email":"jäne\"@x","deep":[{"b":[1,true,null]}]}]"#
        );
        assert!(got.failures.is_empty());
    }

    #[test]
    fn a_token_in_another_fields_slot_becomes_the_marker() {
        let (kr, labels) = setup();
        let e = kr
            .seal(Mode::Random, "c.email", ValueType::String, b"a@b")
            .unwrap();
        let body = format!(r#"{{"name":"{e}"}}"#);
        let got = open_json(body.as_bytes(), &labels, &kr, LIMITS).unwrap();
        assert_eq!(
            got.body.unwrap(),
            format!(r#"{{"name":"{MARKER}"}}"#).as_bytes()
        );
        assert_eq!(got.failures, vec!["wrong_field"]);
    }

    #[test]
    fn tampered_and_foreign_tokens_become_the_marker() {
        let (kr, labels) = setup();
        let other = Keyring::generate().unwrap();
        let foreign = other
            .seal(Mode::Random, "c.email", ValueType::String, b"a@b")
            .unwrap();
        let body = format!(r#"{{"email":"{foreign}"}}"#);
        let got = open_json(body.as_bytes(), &labels, &kr, LIMITS).unwrap();
        assert_eq!(got.failures.len(), 1);
        assert!(!String::from_utf8(got.body.unwrap())
            .unwrap()
            .contains("a@b"));
    }

    #[test]
    fn concealing_replaces_every_token_without_opening() {
        let (kr, _) = setup();
        let e = kr
            .seal(Mode::Random, "c.email", ValueType::String, b"a@b")
            .unwrap();
        let body = format!(r#"{{"email":"{e}","list":["{e}"],"plan":"gold"}}"#);
        let (out, n) = conceal_json(body.as_bytes(), LIMITS).unwrap();
        assert_eq!(n, 2);
        let text = String::from_utf8(out.unwrap()).unwrap();
        assert_eq!(
            text,
            format!(r#"{{"email":"{MARKER}","list":["{MARKER}"],"plan":"gold"}}"#)
        );
    }

    #[test]
    fn plain_bodies_are_left_alone() {
        let (kr, labels) = setup();
        let got = open_json(br#"{"a":"tk1.not-a-token"}"#, &labels, &kr, LIMITS).unwrap();
        assert!(got.body.is_none());
        assert!(open_json(b"not json tk1.", &labels, &kr, LIMITS).is_err());
    }
}
