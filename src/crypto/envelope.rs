//! Envelope format of a sealed field value (stage: crypto, used by the transform in both
//! directions): the token syntax `tk1.<kid>.<m><t>.<tag>.<body>`, its cheap syntactic
//! parser, the label tag, the associated data and the error types.
//!
//! This file holds no key material and does no encryption. It must never put a value,
//! a token body or key bytes into an error, a log line or a panic message.
//! The format is documented for users and auditors in `docs/ciphertext.md`.

use std::fmt::Write as _;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use sha2::{Digest, Sha256};

/// What the proxy puts in place of a token it cannot open (key erased or unknown,
/// tampered with, moved to another field). It is refused on the way in, like a token.
pub const MARKER: &str = "[tarnkappe: unreadable]";

/// Prefix of a pseudonym (action `hash`): `tkp1.` then 22 base64url characters.
pub const PSEUDONYM_PREFIX: &str = "tkp1.";

/// Prefix of every token of format version 1.
pub const TOKEN_PREFIX: &str = "tk1.";

/// Length in characters of the label tag inside a token.
pub const LABEL_TAG_LEN: usize = 8;

/// Length in bytes of the AES-GCM-SIV nonce at the start of the body.
pub(crate) const NONCE_LEN: usize = 12;

/// Length in bytes of the AES-GCM-SIV authentication tag at the end of the body.
pub(crate) const TAG_LEN: usize = 16;

/// Bytes of HMAC output kept for a pseudonym.
pub(crate) const PSEUDONYM_BYTES: usize = 16;

/// Domain separation for the label tag hash.
const LABEL_TAG_DOMAIN: &[u8] = b"tarnkappe-label\0";

/// Shortest body: base64url of a nonce and a tag around an empty plaintext (28 bytes).
const MIN_BODY_CHARS: usize = ((NONCE_LEN + TAG_LEN) * 4).div_ceil(3);

/// Characters of a pseudonym after its prefix: base64url of 16 bytes.
const PSEUDONYM_CHARS: usize = 22;

/// The original JSON type of a sealed value, so that a number stays a number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ValueType {
    /// JSON string; the plaintext is the decoded string content (UTF-8).
    String,
    /// JSON number; the plaintext is its JSON text, exactly as received.
    Number,
    /// JSON `true` or `false`; the plaintext is its JSON text.
    Bool,
    /// JSON `null`; the plaintext is `null`.
    Null,
    /// JSON object; the plaintext is its JSON text.
    Object,
    /// JSON array; the plaintext is its JSON text.
    Array,
}

impl ValueType {
    /// Every type, in the order of the format description.
    pub const ALL: [ValueType; 6] = [
        ValueType::String,
        ValueType::Number,
        ValueType::Bool,
        ValueType::Null,
        ValueType::Object,
        ValueType::Array,
    ];

    /// The type character of the token header (`s n b z o a`).
    pub const fn as_char(self) -> char {
        match self {
            ValueType::String => 's',
            ValueType::Number => 'n',
            ValueType::Bool => 'b',
            ValueType::Null => 'z',
            ValueType::Object => 'o',
            ValueType::Array => 'a',
        }
    }

    /// The type named by a header character, if it is one.
    pub const fn from_char(c: char) -> Option<Self> {
        match c {
            's' => Some(ValueType::String),
            'n' => Some(ValueType::Number),
            'b' => Some(ValueType::Bool),
            'z' => Some(ValueType::Null),
            'o' => Some(ValueType::Object),
            'a' => Some(ValueType::Array),
            _ => None,
        }
    }
}

/// How the nonce of a token was chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Random nonce (action `encrypt`): equal values give different tokens.
    Random,
    /// Nonce derived from key, label, header and plaintext (action
    /// `encrypt-deterministic`): equal values give equal tokens.
    Deterministic,
}

impl Mode {
    /// The mode character of the token header (`r` or `d`).
    pub const fn as_char(self) -> char {
        match self {
            Mode::Random => 'r',
            Mode::Deterministic => 'd',
        }
    }

    /// The mode named by a header character, if it is one.
    pub const fn from_char(c: char) -> Option<Self> {
        match c {
            'r' => Some(Mode::Random),
            'd' => Some(Mode::Deterministic),
            _ => None,
        }
    }
}

/// The parts of a syntactically valid token, borrowed from it.
///
/// Deliberately not `Debug`: `body` is ciphertext.
#[derive(Clone, Copy)]
pub struct TokenHeader<'a> {
    /// Key version id (`<kid>`), 1 or more.
    pub key_id: u32,
    /// Nonce mode (`<m>`).
    pub mode: Mode,
    /// Original JSON type (`<t>`).
    pub value_type: ValueType,
    /// The 8-character label tag (`<tag>`).
    pub label_tag: &'a str,
    /// `tk1.<kid>.<m><t>.<tag>`: the part bound into the associated data.
    pub header: &'a str,
    /// base64url of nonce || ciphertext || tag.
    pub body: &'a str,
}

/// Why a token did not open. Carries no value; [`OpenError::reason`] is a metrics label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    /// The token names a key version that is not in the keyring (erased or foreign).
    #[error("ciphertext names a key version that is not in the keyring")]
    UnknownKey,
    /// The token does not authenticate: changed, or moved to another label.
    #[error("ciphertext does not authenticate (changed, or moved to another field)")]
    Tampered,
    /// The value does not have the shape of a token.
    #[error("value is not a well-formed tarnkappe ciphertext")]
    Malformed,
}

impl OpenError {
    /// Stable short name for metrics labels and flow events.
    pub const fn reason(&self) -> &'static str {
        match self {
            OpenError::UnknownKey => "unknown_key",
            OpenError::Tampered => "tampered",
            OpenError::Malformed => "malformed",
        }
    }
}

/// Why a value could not be sealed. Carries no value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    /// The operating system's random number generator failed.
    #[error("operating system random number generator failed")]
    Randomness,
    /// The cipher refused the input (only possible for absurdly large values).
    #[error("encryption failed")]
    Encrypt,
}

impl CryptoError {
    /// Stable short name for metrics labels and flow events.
    pub const fn reason(&self) -> &'static str {
        match self {
            CryptoError::Randomness => "randomness",
            CryptoError::Encrypt => "encrypt",
        }
    }
}

/// Checks that `s` has the exact shape of a token; no allocation, no cryptography.
///
/// `Some` means: prefix `tk1.`, a key id without leading zeros in `1..=u32::MAX`, a known
/// mode and type character, an 8-character base64url tag, and a canonical base64url body
/// (no padding, zero trailing bits) long enough for a nonce and a tag. It does not mean
/// the token opens.
pub fn parse_token(s: &str) -> Option<TokenHeader<'_>> {
    let rest = s.strip_prefix(TOKEN_PREFIX)?;
    let (kid, rest) = rest.split_once('.')?;
    let key_id = parse_key_id(kid)?;
    let (mode_type, rest) = rest.split_once('.')?;
    let &[m, t] = mode_type.as_bytes() else {
        return None;
    };
    let mode = Mode::from_char(char::from(m))?;
    let value_type = ValueType::from_char(char::from(t))?;
    let (label_tag, body) = rest.split_once('.')?;
    if label_tag.len() != LABEL_TAG_LEN || !label_tag.bytes().all(is_base64url_byte) {
        return None;
    }
    if body.len() < MIN_BODY_CHARS || !is_canonical_base64url(body) {
        return None;
    }
    Some(TokenHeader {
        key_id,
        mode,
        value_type,
        label_tag,
        header: &s[..s.len() - body.len() - 1],
        body,
    })
}

/// True if `s` has the exact shape of a pseudonym (`tkp1.` + 22 base64url characters).
pub fn is_pseudonym(s: &str) -> bool {
    s.strip_prefix(PSEUDONYM_PREFIX)
        .is_some_and(|rest| rest.len() == PSEUDONYM_CHARS && is_canonical_base64url(rest))
}

/// The 8-character tag of a label: first 8 characters of
/// base64url-no-pad(SHA-256("tarnkappe-label\0" || label)).
pub fn label_tag(label: &str) -> String {
    let mut out = String::with_capacity(LABEL_TAG_LEN);
    push_label_tag(&mut out, label);
    out
}

/// Appends the label tag to `out`. A config has a few labels and every seal needs the
/// tag of one: each thread keeps the tags it worked out, by label text.
fn push_label_tag(out: &mut String, label: &str) {
    thread_local! {
        static TAGS: std::cell::RefCell<Vec<(Box<str>, [u8; LABEL_TAG_LEN])>> =
            const { std::cell::RefCell::new(Vec::new()) };
    }
    TAGS.with_borrow_mut(|tags| {
        let tag = match tags.iter().find(|(known, _)| **known == *label) {
            Some((_, tag)) => *tag,
            None => {
                let tag = compute_label_tag(label);
                if tags.len() >= 64 {
                    tags.clear();
                }
                tags.push((label.into(), tag));
                tag
            }
        };
        // Base64url characters only.
        out.push_str(std::str::from_utf8(&tag).unwrap_or_default());
    });
}

/// Six hash bytes are exactly eight base64 characters.
fn compute_label_tag(label: &str) -> [u8; LABEL_TAG_LEN] {
    let digest = Sha256::new()
        .chain_update(LABEL_TAG_DOMAIN)
        .chain_update(label.as_bytes())
        .finalize();
    let mut tag = [0u8; LABEL_TAG_LEN];
    let _ = URL_SAFE_NO_PAD.encode_slice(&digest[..6], &mut tag);
    tag
}

/// Builds `tk1.<kid>.<m><t>.<tag>` into a string with room for the body after it.
pub(crate) fn build_header(
    key_id: u32,
    mode: Mode,
    value_type: ValueType,
    label: &str,
    body_capacity: usize,
) -> String {
    let mut out = String::with_capacity(TOKEN_PREFIX.len() + 24 + body_capacity);
    out.push_str(TOKEN_PREFIX);
    // Writing to a String cannot fail.
    let _ = write!(out, "{key_id}");
    out.push('.');
    out.push(mode.as_char());
    out.push(value_type.as_char());
    out.push('.');
    push_label_tag(&mut out, label);
    out
}

/// Associated data: header bytes || 0x00 || label bytes.
pub(crate) fn associated_data(header: &str, label: &str, record: Option<&[u8]>) -> Vec<u8> {
    let extra = record.map_or(0, |r| r.len() + 1);
    let mut ad = Vec::with_capacity(header.len() + 1 + label.len() + extra);
    ad.extend_from_slice(header.as_bytes());
    ad.push(0);
    ad.extend_from_slice(label.as_bytes());
    // A bound value also carries its record key (labels hold no NUL, so this cannot be
    // confused with a longer label).
    if let Some(record) = record {
        ad.push(0);
        ad.extend_from_slice(record);
    }
    ad
}

/// Decimal u32, at least 1, no sign, no leading zero.
fn parse_key_id(s: &str) -> Option<u32> {
    let b = s.as_bytes();
    if b.is_empty() || b.len() > 10 || b[0] == b'0' || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    s.parse().ok()
}

fn is_base64url_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

/// Value (0..64) of a base64url character already known to be valid.
fn base64url_value(b: u8) -> u8 {
    match b {
        b'A'..=b'Z' => b - b'A',
        b'a'..=b'z' => b - b'a' + 26,
        b'0'..=b'9' => b - b'0' + 52,
        b'-' => 62,
        _ => 63,
    }
}

/// Unpadded base64url whose length and trailing bits are those the encoder produces,
/// so that every string accepted here decodes, and decodes to exactly one byte string.
fn is_canonical_base64url(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() % 4 == 1 || !b.iter().all(|&c| is_base64url_byte(c)) {
        return false;
    }
    let unused_bits_mask = match b.len() % 4 {
        2 => 0b1111,
        3 => 0b0011,
        _ => 0,
    };
    b.last()
        .is_none_or(|&c| base64url_value(c) & unused_bits_mask == 0)
}
