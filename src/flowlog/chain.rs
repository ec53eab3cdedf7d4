//! The hash chain: how an event becomes one sealed JSON line, and how a line is split back
//! into the bytes its hash covers.
//!
//! Shared by the writer and by `verify`, so both agree byte for byte. It must never hash or
//! write anything but the record below, and never log the HMAC key.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use super::event::{ClientAddr, ConfigStr, FieldEvent, FlowEvent};

/// `prev` of the very first event of a chain.
pub const GENESIS_PREV: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The record format version written as `"v"`.
pub const FORMAT_VERSION: u32 = 1;

/// What the writer adds around an event.
pub(crate) struct Header<'a> {
    pub time: &'a str,
    pub seq: u64,
    pub instance: &'a ConfigStr,
    pub prev: &'a str,
}

/// The member that ends every sealed line, before the 64 hex digits and `"}`.
const HASH_MEMBER: &[u8] = b",\"hash\":\"";
/// Length of `,"hash":"<64 hex>"}`.
const SEAL_LEN: usize = HASH_MEMBER.len() + 64 + 2;

/// Serialises `ev` with `head` into one line (with its `\n`) and returns it with its hash.
/// With a key the hash is an HMAC and the line says `"mac":true`.
#[cfg(test)]
pub(crate) fn seal(ev: &FlowEvent, head: &Header<'_>, key: Option<&[u8; 32]>) -> (Vec<u8>, String) {
    let mut line = Vec::new();
    let hash = seal_into(&mut line, ev, head, key, &mut FieldHeads::default());
    (line, String::from_utf8_lossy(&hash).into_owned())
}

/// As [`seal`], appending the line to `out` and returning the hash's hex digits: the
/// writer's hot path, one buffer for a whole batch and no allocation per event. `heads`
/// keeps the field entries of earlier events.
///
/// Written by hand rather than through serde: the member order and escaping are those
/// of `serde_json` for [`Record`] (a test holds the two to the same bytes), at a fraction
/// of the cost.
pub(crate) fn seal_into(
    out: &mut Vec<u8>,
    ev: &FlowEvent,
    head: &Header<'_>,
    key: Option<&[u8; 32]>,
    heads: &mut FieldHeads,
) -> [u8; 64] {
    let start = out.len();
    out.extend_from_slice(b"{\"v\":");
    push_u64(out, u64::from(FORMAT_VERSION));
    out.extend_from_slice(b",\"time\":");
    push_str(out, head.time);
    out.extend_from_slice(b",\"seq\":");
    push_u64(out, head.seq);
    out.extend_from_slice(b",\"instance\":");
    push_str(out, head.instance.as_str());
    out.extend_from_slice(b",\"request_id\":");
    push_str(out, ev.request_id.as_str());
    out.extend_from_slice(b",\"route\":");
    push_opt(out, ev.route.as_ref().map(ConfigStr::as_str));
    out.extend_from_slice(b",\"method\":");
    push_str(out, ev.method.as_str());
    out.extend_from_slice(b",\"path_template\":");
    push_opt(out, ev.path_template.as_ref().map(ConfigStr::as_str));
    out.extend_from_slice(b",\"caller\":");
    push_opt(out, ev.caller.as_ref().map(ConfigStr::as_str));
    out.extend_from_slice(b",\"client\":");
    push_opt(out, ev.client.as_ref().map(ClientAddr::as_str));
    out.extend_from_slice(b",\"upstream\":");
    push_opt(out, ev.upstream.as_ref().map(ConfigStr::as_str));
    out.extend_from_slice(b",\"status\":");
    push_u64(out, u64::from(ev.status));
    out.extend_from_slice(b",\"outcome\":");
    push_str(out, ev.outcome.as_str());
    out.extend_from_slice(b",\"reason\":");
    push_opt(out, ev.outcome.reason());
    out.extend_from_slice(b",\"fields\":[");
    for (i, f) in ev.fields.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(heads.get(f));
        push_u64(out, u64::from(f.count));
        out.push(b'}');
    }
    out.extend_from_slice(b"],\"open_failures\":");
    push_u64(out, u64::from(ev.open_failures));
    out.extend_from_slice(b",\"uncovered\":[");
    for (i, u) in ev.uncovered.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        push_str(out, u.as_str());
    }
    out.extend_from_slice(b"],\"duration_us\":");
    push_u64(out, ev.duration_us);
    out.extend_from_slice(b",\"upstream_us\":");
    match ev.upstream_us {
        Some(us) => push_u64(out, us),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"transform_us\":");
    push_u64(out, ev.transform_us);
    out.extend_from_slice(b",\"bytes_in\":");
    push_u64(out, ev.bytes_in);
    out.extend_from_slice(b",\"bytes_out\":");
    push_u64(out, ev.bytes_out);
    if key.is_some() {
        out.extend_from_slice(b",\"mac\":true");
    }
    out.extend_from_slice(b",\"prev\":");
    push_str(out, head.prev);
    out.push(b'}');
    let hash = digest_hex(key, head.prev, &out[start..]);
    out.pop(); // the closing brace; the hash member goes before it
    out.extend_from_slice(HASH_MEMBER);
    out.extend_from_slice(&hash);
    out.extend_from_slice(b"\"}\n");
    hash
}

/// Field entries up to their count (`{"label":…,"direction":"request","count":`), each
/// written once for the writer's life instead of four strings escaped per entry and event.
/// The names are interned config strings, so their addresses (and lengths: the compiler
/// may store one constant inside another) tell entries apart; equal texts at different
/// addresses just take two slots.
#[derive(Default)]
pub(crate) struct FieldHeads {
    slots: Vec<Option<(HeadKey, Box<[u8]>)>>,
}

type HeadKey = [usize; 7];

/// A config has a few dozen rules at most: a collision only costs writing an entry anew.
const HEAD_SLOTS: usize = 64;

impl FieldHeads {
    fn get(&mut self, f: &FieldEvent) -> &[u8] {
        let names = [f.label.as_str(), f.category.as_str(), f.action.as_str()];
        let mut key: HeadKey = [f.direction as usize; 7];
        for (i, name) in names.iter().enumerate() {
            key[2 * i] = name.as_ptr() as usize;
            key[2 * i + 1] = name.len();
        }
        let mixed = key.iter().fold(0u64, |h, &w| {
            (h ^ w as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)
        });
        let at = (mixed >> 58) as usize % HEAD_SLOTS;
        if self.slots.is_empty() {
            self.slots.resize_with(HEAD_SLOTS, || None);
        }
        // Compared word by word in registers (`==` on the arrays calls memcmp).
        let same = |k: &HeadKey| k.iter().zip(&key).fold(0, |d, (a, b)| d | (a ^ b)) == 0;
        if !matches!(&self.slots[at], Some((k, _)) if same(k)) {
            let mut entry = Vec::with_capacity(128);
            entry.extend_from_slice(b"{\"label\":");
            push_str(&mut entry, names[0]);
            entry.extend_from_slice(b",\"category\":");
            push_str(&mut entry, names[1]);
            entry.extend_from_slice(b",\"action\":");
            push_str(&mut entry, names[2]);
            entry.extend_from_slice(b",\"direction\":");
            push_str(&mut entry, f.direction.as_str());
            entry.extend_from_slice(b",\"count\":");
            self.slots[at] = Some((key, entry.into_boxed_slice()));
        }
        self.slots[at].as_ref().map_or(&[], |(_, entry)| entry)
    }
}

fn push_u64(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(crate::text::decimal(n, &mut [0; 20]));
}

fn push_opt(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => push_str(out, s),
        None => out.extend_from_slice(b"null"),
    }
}

/// A JSON string, escaped as `serde_json` escapes: `"`, `\\`, and control characters
/// (the short forms where JSON has them, `\u00XX` otherwise); everything else as is.
fn push_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let b = s.as_bytes();
    // Nearly always: nothing to escape, found sixteen bytes at a time (the scanner's
    // search for string ends).
    let plain = crate::transform::scan::plain_prefix(b);
    if plain == b.len() {
        out.extend_from_slice(b);
        out.push(b'"');
        return;
    }
    out.extend_from_slice(&b[..plain]);
    let mut run = plain;
    for (i, &c) in b.iter().enumerate().skip(plain) {
        let short = match c {
            b'"' => b'"',
            b'\\' => b'\\',
            b'\n' => b'n',
            b'\r' => b'r',
            b'\t' => b't',
            0x08 => b'b',
            0x0c => b'f',
            0..=0x1f => 0,
            _ => continue,
        };
        out.extend_from_slice(&b[run..i]);
        run = i + 1;
        if short == 0 {
            let mut digits = [0u8; 2];
            crate::text::hex_into(&[c], &mut digits);
            out.extend_from_slice(b"\\u00");
            out.extend_from_slice(&digits);
        } else {
            out.push(b'\\');
            out.push(short);
        }
    }
    out.extend_from_slice(&b[run..]);
    out.push(b'"');
}

/// Splits a line (without its `\n`) into the canonical bytes its hash covers and the hash
/// it states. `None` if the line does not end in a well-formed hash member.
pub(crate) fn unseal(line: &[u8]) -> Option<(Vec<u8>, &str)> {
    let cut = line.len().checked_sub(SEAL_LEN)?;
    let (body, seal) = line.split_at(cut);
    let hash = seal.strip_prefix(HASH_MEMBER)?.strip_suffix(b"\"}")?;
    if hash.len() != 64 || !hash.iter().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    let mut canonical = Vec::with_capacity(body.len() + 1);
    canonical.extend_from_slice(body);
    canonical.push(b'}');
    Some((canonical, std::str::from_utf8(hash).ok()?))
}

/// Hex SHA-256 (or HMAC-SHA256 with a key) over the previous hash's hex digits followed by
/// the canonical bytes.
pub(crate) fn digest(key: Option<&[u8; 32]>, prev: &str, canonical: &[u8]) -> String {
    String::from_utf8_lossy(&digest_hex(key, prev, canonical)).into_owned()
}

fn digest_hex(key: Option<&[u8; 32]>, prev: &str, canonical: &[u8]) -> [u8; 64] {
    match key {
        None => {
            let mut h = Sha256::new();
            h.update(prev.as_bytes());
            h.update(canonical);
            hex_array(&h.finalize().into())
        }
        Some(key) => {
            let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key)
                .expect("HMAC accepts keys of any length");
            m.update(prev.as_bytes());
            m.update(canonical);
            hex_array(&m.finalize().into_bytes().into())
        }
    }
}

fn hex_array(bytes: &[u8; 32]) -> [u8; 64] {
    let mut out = [0u8; 64];
    crate::text::hex_into(bytes, &mut out);
    out
}

/// True for a well-formed hash: 64 lowercase hex digits.
pub(crate) fn is_hash(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flowlog::event::{ClientAddrMode, Direction, FieldEvent, MethodName, RequestId};
    use crate::flowlog::outcome::{Outcome, RefuseReason};
    use serde::Serialize;

    /// The canonical member order of a line as serde would write it; `seal_into` must
    /// write the same bytes.
    #[derive(Serialize)]
    struct Record<'a> {
        v: u32,
        time: &'a str,
        seq: u64,
        instance: &'a ConfigStr,
        request_id: &'a RequestId,
        route: Option<&'a ConfigStr>,
        method: MethodName,
        path_template: Option<&'a ConfigStr>,
        caller: Option<&'a ConfigStr>,
        client: Option<&'a ClientAddr>,
        upstream: Option<&'a ConfigStr>,
        status: u16,
        outcome: &'static str,
        reason: Option<&'static str>,
        fields: &'a [FieldEvent],
        open_failures: u32,
        uncovered: &'a [ConfigStr],
        duration_us: u64,
        upstream_us: Option<u64>,
        transform_us: u64,
        bytes_in: u64,
        bytes_out: u64,
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        mac: bool,
        prev: &'a str,
    }

    fn by_serde(ev: &FlowEvent, head: &Header<'_>, key: Option<&[u8; 32]>) -> Vec<u8> {
        let record = Record {
            v: FORMAT_VERSION,
            time: head.time,
            seq: head.seq,
            instance: head.instance,
            request_id: &ev.request_id,
            route: ev.route.as_ref(),
            method: ev.method,
            path_template: ev.path_template.as_ref(),
            caller: ev.caller.as_ref(),
            client: ev.client.as_ref(),
            upstream: ev.upstream.as_ref(),
            status: ev.status,
            outcome: ev.outcome.as_str(),
            reason: ev.outcome.reason(),
            fields: &ev.fields,
            open_failures: ev.open_failures,
            uncovered: &ev.uncovered,
            duration_us: ev.duration_us,
            upstream_us: ev.upstream_us,
            transform_us: ev.transform_us,
            bytes_in: ev.bytes_in,
            bytes_out: ev.bytes_out,
            mac: key.is_some(),
            prev: head.prev,
        };
        serde_json::to_vec(&record).unwrap()
    }

    #[test]
    fn hand_written_lines_are_the_bytes_serde_writes() {
        let tricky = "a\"b\\c\n\r\t\u{8}\u{c}\u{1}\u{1f}\u{7f} é € 𝄞 </script>";
        let inst = ConfigStr::new(tricky);
        let mut full = FlowEvent::new(RequestId::generate(), MethodName::new("PATCH"));
        full.route = Some(ConfigStr::new("customers"));
        full.path_template = Some(ConfigStr::new("/api/{id}"));
        full.caller = Some(ConfigStr::new(tricky));
        full.client = Some(ClientAddr::from_ip(
            "203.0.113.9".parse().unwrap(),
            ClientAddrMode::Truncate,
            &[0; 32],
        ));
        // Escapes after a plain run longer than the sixteen bytes searched at once.
        full.upstream = Some(ConfigStr::new("a-plain-run-of-more-than-16\u{1}\"shop"));
        full.status = 413;
        full.outcome = Outcome::Refused(RefuseReason::TooLarge);
        for (n, direction) in [(1, Direction::Request), (u32::MAX, Direction::Response)] {
            full.fields.push(FieldEvent {
                label: ConfigStr::new(tricky),
                category: ConfigStr::new("user.contact.email"),
                action: ConfigStr::constant("encrypt"),
                direction,
                count: n,
            });
        }
        full.open_failures = 3;
        full.uncovered = vec![ConfigStr::constant("email"), ConfigStr::constant("iban")];
        full.duration_us = u64::MAX;
        full.upstream_us = Some(0);
        full.transform_us = 10;
        full.bytes_in = 1 << 40;
        full.bytes_out = 7;
        let bare = FlowEvent::new(RequestId::sanitize("r1").unwrap(), MethodName::new("GET"));
        for ev in [&full, &bare] {
            for key in [None, Some(&[9u8; 32])] {
                let head = Header {
                    time: "2024-05-01T12:00:00.000Z",
                    seq: u64::MAX,
                    instance: &inst,
                    prev: GENESIS_PREV,
                };
                let (line, hash) = seal(ev, &head, key);
                let mut want = by_serde(ev, &head, key);
                assert_eq!(digest(key, GENESIS_PREV, &want), hash);
                want.pop();
                want.extend_from_slice(format!(",\"hash\":\"{hash}\"}}\n").as_bytes());
                assert_eq!(
                    String::from_utf8(line).unwrap(),
                    String::from_utf8(want).unwrap()
                );
            }
        }
    }

    #[test]
    fn field_entries_kept_between_events_write_what_serde_writes() {
        // More distinct entries than slots, so some evict others, names that are one
        // inside another, and every entry seen again with other counts.
        let inst = ConfigStr::new("web-1");
        let labels: Vec<ConfigStr> = (0..40)
            .map(|i| ConfigStr::new(&format!("label.{i}\"x")))
            .collect();
        let actions = [
            ConfigStr::constant("encrypt-deterministic"),
            ConfigStr::constant("encrypt"),
            ConfigStr::new("encrypt"),
        ];
        let mut heads = FieldHeads::default();
        for round in 0..3u32 {
            for (i, label) in labels.iter().enumerate() {
                let mut ev =
                    FlowEvent::new(RequestId::sanitize("r1").unwrap(), MethodName::new("POST"));
                for (j, action) in actions.iter().enumerate() {
                    ev.fields.push(FieldEvent {
                        label: *label,
                        category: ConfigStr::new("user.contact.email"),
                        action: *action,
                        direction: if (i + j + round as usize) % 2 == 0 {
                            Direction::Request
                        } else {
                            Direction::Response
                        },
                        count: round * 1000 + (i * 3 + j) as u32,
                    });
                }
                let head = head(&inst, GENESIS_PREV);
                let mut line = Vec::new();
                let hash = seal_into(&mut line, &ev, &head, None, &mut heads);
                let mut want = by_serde(&ev, &head, None);
                want.pop();
                want.extend_from_slice(b",\"hash\":\"");
                want.extend_from_slice(&hash);
                want.extend_from_slice(b"\"}\n");
                assert_eq!(
                    String::from_utf8(line).unwrap(),
                    String::from_utf8(want).unwrap()
                );
            }
        }
    }

    fn head<'a>(instance: &'a ConfigStr, prev: &'a str) -> Header<'a> {
        Header {
            time: "2024-05-01T12:00:00.000Z",
            seq: 1,
            instance,
            prev,
        }
    }

    #[test]
    fn sealed_line_unseals_to_what_was_hashed() {
        let inst = ConfigStr::new("web-1");
        let ev = FlowEvent::new(RequestId::sanitize("r1").unwrap(), MethodName::new("GET"));
        for key in [None, Some(&[9u8; 32])] {
            let (line, hash) = seal(&ev, &head(&inst, GENESIS_PREV), key);
            assert_eq!(line.last(), Some(&b'\n'));
            let (canonical, stated) = unseal(&line[..line.len() - 1]).unwrap();
            assert_eq!(stated, hash);
            assert_eq!(digest(key, GENESIS_PREV, &canonical), hash);
            let text = String::from_utf8(canonical).unwrap();
            assert!(text.starts_with("{\"v\":1,\"time\":"));
            assert_eq!(text.contains("\"mac\":true"), key.is_some());
            assert!(!text.contains(' '));
        }
    }

    #[test]
    fn unseal_rejects_malformed_seals() {
        assert!(unseal(b"{}").is_none());
        let upper = format!("{{\"a\":1,\"hash\":\"{}\"}}", "A".repeat(64));
        assert!(unseal(upper.as_bytes()).is_none());
        let short = format!("{{\"a\":1,\"hash\":\"{}\"}}", "a".repeat(63));
        assert!(unseal(short.as_bytes()).is_none());
    }
}
