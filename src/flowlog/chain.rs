//! The hash chain: how an event becomes one sealed JSON line, and how a line is split back
//! into the bytes its hash covers.
//!
//! Shared by the writer and by `verify`, so both agree byte for byte. It must never hash or
//! write anything but the record below, and never log the HMAC key.

use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::event::{ClientAddr, ConfigStr, FieldEvent, FlowEvent, MethodName, RequestId};

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

/// The canonical member order of a line; `hash` follows as the last member.
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

/// The member that ends every sealed line, before the 64 hex digits and `"}`.
const HASH_MEMBER: &[u8] = b",\"hash\":\"";
/// Length of `,"hash":"<64 hex>"}`.
const SEAL_LEN: usize = HASH_MEMBER.len() + 64 + 2;

/// Serialises `ev` with `head` into one line (with its `\n`) and returns it with its hash.
/// With a key the hash is an HMAC and the line says `"mac":true`.
pub(crate) fn seal(ev: &FlowEvent, head: &Header<'_>, key: Option<&[u8; 32]>) -> (Vec<u8>, String) {
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
    // Only strings, numbers and options of them: serialisation into a Vec cannot fail.
    let mut line = serde_json::to_vec(&record).expect("flow record serialises");
    let hash = digest(key, head.prev, &line);
    line.pop(); // the closing brace; the hash member goes before it
    line.extend_from_slice(HASH_MEMBER);
    line.extend_from_slice(hash.as_bytes());
    line.extend_from_slice(b"\"}\n");
    (line, hash)
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
    match key {
        None => {
            let mut h = Sha256::new();
            h.update(prev.as_bytes());
            h.update(canonical);
            hex(&h.finalize())
        }
        Some(key) => {
            let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key)
                .expect("HMAC accepts keys of any length");
            m.update(prev.as_bytes());
            m.update(canonical);
            hex(&m.finalize().into_bytes())
        }
    }
}

/// Lowercase hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    s
}

/// True for a well-formed hash: 64 lowercase hex digits.
pub(crate) fn is_hash(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flowlog::event::RequestId;

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
        assert_eq!(hex(&[0, 0xab, 0x1f]), "00ab1f");
    }
}
