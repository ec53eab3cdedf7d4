//! Request direction for `application/x-www-form-urlencoded` bodies. A rule `$.name`
//! names a form key; every pair with that key is transformed, every other pair keeps
//! its exact bytes. Invalid percent-encoding or UTF-8 is refused, never guessed at.
//!
//! Never logs or returns a value.

use super::request::{TransformError, Transformed};
use super::scan::ScanError;
use super::{detect, is_ours, mask, Action, RuleSet};
use crate::crypto::{Keyring, ValueType};

/// Applies the single-name rules of `rules` to a form body.
pub fn transform_form(
    body: &[u8],
    rules: &RuleSet,
    keyring: &Keyring,
) -> Result<Transformed, TransformError> {
    let mut counts = vec![0u32; rules.fields.len()];
    let mut uncovered = Vec::new();
    let records = record_keys(body, &rules.record_names());
    let mut out = Vec::with_capacity(body.len() + body.len() / 2);
    let mut first = true;
    let mut offset = 0;
    for pair in body.split(|&b| b == b'&') {
        let at = offset;
        offset += pair.len() + 1;
        if pair.is_empty() {
            continue;
        }
        let bad = || TransformError::Scan(ScanError::MalformedForm(at));
        // Browsers encode `;` in form data; a raw one is a separator to some parsers.
        if memchr::memchr(b';', pair).is_some() {
            return Err(bad());
        }
        let (raw_key, raw_value) = split_pair(pair);
        let key = decode(raw_key).ok_or_else(bad)?;
        let value = decode(raw_value).ok_or_else(bad)?;
        if is_ours(&value) || is_ours(&key) {
            return Err(TransformError::Scan(ScanError::OurCiphertext(at)));
        }
        let rule = rules
            .paths
            .iter()
            .position(|p| p.single_name() == Some(key.as_str()));
        let replaced = match rule {
            None => {
                uncovered.extend(detect::in_string(value.as_bytes(), value.contains('@')));
                Some(pair.to_vec())
            }
            Some(r) => {
                counts[r] += 1;
                let field = &rules.fields[r];
                let new_value = match &field.action {
                    Action::Drop => None,
                    Action::Encrypt | Action::EncryptDeterministic => {
                        let mode = match field.action {
                            Action::Encrypt => crate::crypto::Mode::Random,
                            _ => crate::crypto::Mode::Deterministic,
                        };
                        let record = match &field.bind {
                            None => None,
                            Some(member) => Some(
                                records
                                    .iter()
                                    .find(|(k, _)| k == &**member)
                                    .map(|(_, v)| v.as_bytes())
                                    .ok_or(TransformError::MissingRecordKey)?,
                            ),
                        };
                        let token = keyring
                            .seal_bound(
                                mode,
                                &field.label,
                                record,
                                ValueType::String,
                                value.as_bytes(),
                            )
                            .map_err(TransformError::Crypto)?;
                        Some(token)
                    }
                    Action::Redact(raw) => Some(redacted_text(raw)),
                    Action::Mask(style) => Some(mask(&value, *style)),
                    Action::Hash => Some(keyring.pseudonym(value.as_bytes())),
                };
                new_value.map(|v| {
                    let mut p = raw_key.to_vec();
                    p.push(b'=');
                    encode_into(&v, &mut p);
                    p
                })
            }
        };
        if let Some(p) = replaced {
            if !first {
                out.push(b'&');
            }
            out.extend_from_slice(&p);
            first = false;
        }
    }
    uncovered.sort_unstable();
    uncovered.dedup();
    Ok(Transformed {
        body: out,
        counts,
        uncovered,
    })
}

/// `key=value` into its raw halves; a pair without `=` has an empty value.
fn split_pair(pair: &[u8]) -> (&[u8], &[u8]) {
    match memchr::memchr(b'=', pair) {
        Some(eq) => (&pair[..eq], &pair[eq + 1..]),
        None => (pair, &b""[..]),
    }
}

/// The first value of each record-key name in a form (bound rules seal with it).
fn record_keys(body: &[u8], names: &[&str]) -> Vec<(String, String)> {
    if names.is_empty() {
        return Vec::new();
    }
    let mut found: Vec<(String, String)> = Vec::new();
    for pair in body.split(|&b| b == b'&') {
        let (k, v) = split_pair(pair);
        if let (Some(k), Some(v)) = (decode(k), decode(v)) {
            if names.contains(&k.as_str()) && !found.iter().any(|(f, _)| *f == k) {
                found.push((k, v));
            }
        }
    }
    found
}

/// A redaction's JSON replacement as form text: strings unquoted, null empty.
fn redacted_text(raw: &str) -> String {
    match serde_json::from_str::<serde_json::Value>(raw) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(serde_json::Value::Null) | Err(_) => String::new(),
        Ok(other) => other.to_string(),
    }
}

/// Decodes one form component (`+` is a space); None on bad escapes or invalid UTF-8.
fn decode(raw: &[u8]) -> Option<String> {
    let mut bytes = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'+' => bytes.push(b' '),
            b'%' => {
                let hi = (*raw.get(i + 1)? as char).to_digit(16)?;
                let lo = (*raw.get(i + 2)? as char).to_digit(16)?;
                bytes.push((hi * 16 + lo) as u8);
                i += 2;
            }
            b => bytes.push(b),
        }
        i += 1;
    }
    String::from_utf8(bytes).ok()
}

fn encode_into(s: &str, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b);
        } else {
            out.extend_from_slice(&[b'%', HEX[(b >> 4) as usize], HEX[(b & 15) as usize]]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transform::MaskStyle;

    use crate::transform::test_rules as rules;

    #[test]
    fn transforms_named_keys_and_keeps_the_rest() {
        let kr = Keyring::generate().unwrap();
        let set = rules(&[
            ("$.email", Action::Encrypt),
            ("$.card", Action::Mask(MaskStyle::KeepLast(4))),
            ("$.secret", Action::Drop),
        ]);
        let body = b"plan=gold%2Bplus&email=jane%40example.com&secret=x&card=4111+1111+1111+1111&a";
        let out = transform_form(body, &set, &kr).unwrap();
        let text = String::from_utf8(out.body).unwrap();
        assert!(text.starts_with("plan=gold%2Bplus&email=tk1."), "{text}");
        assert!(
            text.ends_with("&card=%2A%2A%2A%2A%2A%2A%2A%2A%2A%2A%2A%2A%2A%2A%2A1111&a"),
            "{text}"
        );
        assert!(!text.contains("secret") && !text.contains("jane"));
        assert_eq!(out.counts, vec![1, 1, 1]);
        let token = text.split('&').nth(1).unwrap().trim_start_matches("email=");
        let (_, pt) = kr.open("$.email", token).unwrap();
        assert_eq!(&pt[..], b"jane@example.com");
    }

    #[test]
    fn refuses_bad_escapes_and_our_own_tokens() {
        let kr = Keyring::generate().unwrap();
        let set = rules(&[("$.email", Action::Encrypt)]);
        assert!(transform_form(b"email=%zz", &set, &kr).is_err());
        assert!(transform_form(b"email=%ff", &set, &kr).is_err());
        let err = transform_form(b"plan=a;email=x", &set, &kr).err();
        assert_eq!(err.map(|e| e.reason()), Some("malformed_form"));
        let token = kr
            .seal(
                crate::crypto::Mode::Random,
                "$.email",
                ValueType::String,
                b"v",
            )
            .unwrap();
        let body = format!("note={token}");
        assert!(transform_form(body.as_bytes(), &set, &kr).is_err());
    }
}
