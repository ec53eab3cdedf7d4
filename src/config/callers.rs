//! Callers: who may see plaintext. A caller proves who it is with a token in the
//! `X-Tarnkappe-Caller` header; the config holds only the token's SHA-256, so the file
//! grants nothing to whoever reads it. The proxy strips the header before the upstream.
//! Never logs a token.

use std::collections::HashMap;

use sha2::{Digest, Sha256};

use super::diag::Diag;
use super::raw::RawCaller;
use crate::flowlog::ConfigStr;

/// The request header that carries a caller's token.
pub const CALLER_HEADER: http::HeaderName = http::HeaderName::from_static("x-tarnkappe-caller");

/// The configured callers.
#[derive(Debug, Clone, Default)]
pub struct Callers {
    by_hash: HashMap<[u8; 32], ConfigStr>,
    names: Vec<ConfigStr>,
}

impl Callers {
    /// The configured name equal to `name`, shared.
    pub fn name(&self, name: &str) -> Option<ConfigStr> {
        self.names.iter().find(|n| **n == name).copied()
    }

    /// The caller a token identifies, if any.
    pub fn identify(&self, token: &[u8]) -> Option<&ConfigStr> {
        if self.by_hash.is_empty() {
            return None;
        }
        let hash: [u8; 32] = Sha256::digest(token).into();
        self.by_hash.get(&hash)
    }
}

/// Compiles `[[caller]]` tables.
pub(super) fn compile(d: &mut Diag<'_>, raw: &[RawCaller]) -> Callers {
    let mut callers = Callers::default();
    for (i, c) in raw.iter().enumerate() {
        let name = c.name.get_ref();
        if name.is_empty()
            || !name
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || "-_.".contains(ch))
        {
            d.at(
                Some(c.name.span()),
                format!("caller[{i}].name"),
                "a caller name uses letters, digits, `-`, `_` and `.`",
            );
            continue;
        }
        if callers.name(name).is_some() {
            d.at(
                Some(c.name.span()),
                format!("caller[{i}].name"),
                format!("caller `{name}` is defined twice"),
            );
            continue;
        }
        let hex = c.token_sha256.get_ref();
        let Some(hash) = parse_hex32(hex) else {
            d.at(
                Some(c.token_sha256.span()),
                format!("caller[{i}].token_sha256"),
                "must be 64 hex digits: the SHA-256 of the caller's token (e.g. `printf %s TOKEN | sha256sum`)",
            );
            continue;
        };
        let name = ConfigStr::new(name.as_str());
        if callers.by_hash.insert(hash, name).is_some() {
            d.at(
                Some(c.token_sha256.span()),
                format!("caller[{i}].token_sha256"),
                "two callers share one token",
            );
        }
        callers.names.push(name);
    }
    callers
}

fn parse_hex32(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}
