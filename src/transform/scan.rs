//! The strict JSON scanner: one pass over a body that validates it against RFC 8259
//! (plus our stricter rules: no BOM, no duplicate member names, no lone surrogates,
//! bounded depth and node count), steps the compiled JSONPath automata, and records the
//! byte spans of the values the rules select. Nothing is re-serialised: the caller
//! splices new values into the original bytes, so everything else keeps its spelling.
//!
//! Errors carry a reason and a byte offset, never a byte of the body.

use std::borrow::Cow;
use std::collections::HashSet;

use super::detect::{self, Detector};
use super::jsonpath::{JsonPath, Step};
use crate::crypto::ValueType;

/// Why a body was refused. Each maps to one problem type and status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanError {
    /// Not JSON at `offset`.
    Malformed(usize),
    /// Not a strict form body at `offset` (bad escape, invalid UTF-8, a raw `;`).
    MalformedForm(usize),
    /// The body is not valid UTF-8.
    InvalidUtf8,
    /// The body starts with a byte order mark.
    Bom,
    /// A `\u` escape leaves half a surrogate pair.
    LoneSurrogate(usize),
    /// An object repeats a member name (compared after unescaping).
    DuplicateMember(usize),
    /// Nesting deeper than the limit.
    TooDeep,
    /// More values than the limit.
    TooManyNodes,
    /// Something after the top-level value.
    TrailingData(usize),
    /// A string value already is one of our ciphertexts or the marker.
    OurCiphertext(usize),
}

impl ScanError {
    /// A short reason for logs, metrics and flow events; never a value.
    pub fn reason(&self) -> &'static str {
        match self {
            ScanError::Malformed(_) => "malformed_json",
            ScanError::MalformedForm(_) => "malformed_form",
            ScanError::InvalidUtf8 => "invalid_utf8",
            ScanError::Bom => "bom",
            ScanError::LoneSurrogate(_) => "lone_surrogate",
            ScanError::DuplicateMember(_) => "duplicate_member",
            ScanError::TooDeep => "too_deep",
            ScanError::TooManyNodes => "too_many_nodes",
            ScanError::TrailingData(_) => "trailing_data",
            ScanError::OurCiphertext(_) => "ciphertext_in_request",
        }
    }
}

/// Where a selected value sits in its container, for `drop`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    /// Start of the member (its key) or of the array element.
    pub start: usize,
    /// Identifies the container occurrence.
    pub container: u32,
    /// The comma before this member, if any.
    pub comma_before: Option<usize>,
    /// The comma after this member, if any.
    pub comma_after: Option<usize>,
}

/// A value selected by rule `rule`.
#[derive(Debug, Clone, Copy)]
pub struct Hit {
    /// Index of the rule (path) that selected it.
    pub rule: u16,
    /// Byte span of the value.
    pub start: usize,
    /// End (exclusive).
    pub end: usize,
    /// Its JSON type.
    pub value_type: ValueType,
    /// Whether a string value holds escapes (then it must be decoded).
    pub escaped: bool,
    /// Its place in the container.
    pub slot: Slot,
}

/// A string value that looks like one of our ciphertexts (response direction).
#[derive(Debug, Clone, Copy)]
pub struct TokenAt {
    /// Span of the string including its quotes.
    pub start: usize,
    /// End (exclusive).
    pub end: usize,
    /// Whether the content holds escapes.
    pub escaped: bool,
    /// Span of the enclosing member's key content (without quotes), if the string is a member value.
    pub key: Option<(usize, usize, bool)>,
}

/// Bounds for one scan.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Deepest nesting accepted.
    pub max_depth: usize,
    /// Most values accepted.
    pub max_nodes: usize,
}

/// What a scan is for.
pub enum Mode<'r> {
    /// Request direction: strict, rules selected, our ciphertexts refused.
    Request(&'r [JsonPath]),
    /// Response direction: find our ciphertexts.
    Response,
}

/// The result of a scan.
#[derive(Debug, Default)]
pub struct Scan {
    /// Selected values, in the order they end.
    pub hits: Vec<Hit>,
    /// Strings that look like our tokens (response direction).
    pub tokens: Vec<TokenAt>,
    /// Sensitive-looking values (request direction): span start, end, detector.
    pub findings: Vec<(usize, usize, Detector)>,
}

/// Scans `body`. `is_ours` tells whether a decoded string is one of our ciphertexts or
/// the marker.
pub fn scan(
    body: &[u8],
    mode: Mode<'_>,
    limits: Limits,
    is_ours: fn(&str) -> bool,
) -> Result<Scan, ScanError> {
    if body.starts_with(&[0xEF, 0xBB, 0xBF]) {
        return Err(ScanError::Bom);
    }
    let text = std::str::from_utf8(body).map_err(|_| ScanError::InvalidUtf8)?;
    let (rules, request) = match mode {
        Mode::Request(rules) => (rules, true),
        Mode::Response => (&[][..], false),
    };
    let mut s = Scanner {
        s: text,
        saw_at: false,
        b: text.as_bytes(),
        i: 0,
        rules,
        request,
        limits,
        is_ours,
        depth: 0,
        nodes: 0,
        containers: 0,
        states: (0..rules.len()).map(|r| (r as u16, 0u16)).collect(),
        keys: Vec::new(),
        out: Scan::default(),
    };
    s.ws();
    let root = Slot {
        start: s.i,
        container: u32::MAX,
        comma_before: None,
        comma_after: None,
    };
    let n = s.states.len();
    s.value((0, n), root, None)?;
    s.ws();
    if s.i != s.b.len() {
        return Err(ScanError::TrailingData(s.i));
    }
    Ok(s.out)
}

struct Scanner<'a, 'r> {
    /// The body as text (checked UTF-8 once), for borrowing member names.
    s: &'a str,
    /// The last string scanned held an `@`.
    saw_at: bool,
    b: &'a [u8],
    i: usize,
    rules: &'r [JsonPath],
    request: bool,
    limits: Limits,
    is_ours: fn(&str) -> bool,
    depth: usize,
    nodes: usize,
    containers: u32,
    /// Automaton states (rule, position): a stack of ranges, one per open value.
    states: Vec<(u16, u16)>,
    /// Decoded member names of the open objects, for duplicate detection.
    keys: Vec<Cow<'a, str>>,
    out: Scan,
}

type Range = (usize, usize);

impl<'a> Scanner<'a, '_> {
    fn malformed<T>(&self) -> Result<T, ScanError> {
        Err(ScanError::Malformed(self.i))
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.b.get(self.i) {
            self.i += 1;
        }
    }

    fn value(
        &mut self,
        st: Range,
        slot: Slot,
        key: Option<(usize, usize, bool)>,
    ) -> Result<(), ScanError> {
        if self.request && st.0 == st.1 {
            // No rule can select anything below here: validate just as strictly, but
            // without the bookkeeping selection needs.
            return self.skip();
        }
        self.nodes += 1;
        if self.nodes > self.limits.max_nodes {
            return Err(ScanError::TooManyNodes);
        }
        let start = self.i;
        let mut escaped = false;
        let value_type = match self.b.get(self.i) {
            Some(b'{') => {
                self.object(st)?;
                ValueType::Object
            }
            Some(b'[') => {
                self.array(st)?;
                ValueType::Array
            }
            Some(b'"') => {
                escaped = self.string()?;
                self.check_string(start, escaped, key)?;
                ValueType::String
            }
            Some(b't') => self.literal(b"true", ValueType::Bool)?,
            Some(b'f') => self.literal(b"false", ValueType::Bool)?,
            Some(b'n') => self.literal(b"null", ValueType::Null)?,
            Some(b'-' | b'0'..=b'9') => {
                self.number()?;
                if self.request {
                    if let Some(found) = detect::in_number(&self.b[start..self.i]) {
                        self.out.findings.push((start, self.i, found));
                    }
                }
                ValueType::Number
            }
            _ => return self.malformed(),
        };
        for k in st.0..st.1 {
            let (rule, pos) = self.states[k];
            if self.rules[rule as usize].accepts(pos) {
                let end = self.i;
                self.out.hits.push(Hit {
                    rule,
                    start,
                    end,
                    value_type,
                    escaped,
                    slot,
                });
            }
        }
        Ok(())
    }

    /// Validates a value no rule can reach (request direction): the same grammar, depth,
    /// node and ciphertext checks, and the detectors, with no selection bookkeeping.
    fn skip(&mut self) -> Result<(), ScanError> {
        self.nodes += 1;
        if self.nodes > self.limits.max_nodes {
            return Err(ScanError::TooManyNodes);
        }
        let start = self.i;
        match self.b.get(self.i) {
            Some(b'{') => {
                self.enter()?;
                self.ws();
                if self.b.get(self.i) == Some(&b'}') {
                    self.i += 1;
                } else {
                    loop {
                        if self.b.get(self.i) != Some(&b'"') {
                            return self.malformed();
                        }
                        self.string()?;
                        self.ws();
                        if self.b.get(self.i) != Some(&b':') {
                            return self.malformed();
                        }
                        self.i += 1;
                        self.ws();
                        self.skip()?;
                        if self.next_or_close(b'}')? {
                            break;
                        }
                    }
                }
                self.depth -= 1;
            }
            Some(b'[') => {
                self.enter()?;
                self.ws();
                if self.b.get(self.i) == Some(&b']') {
                    self.i += 1;
                } else {
                    loop {
                        self.skip()?;
                        if self.next_or_close(b']')? {
                            break;
                        }
                    }
                }
                self.depth -= 1;
            }
            Some(b'"') => {
                let escaped = self.string()?;
                self.check_string(start, escaped, None)?;
            }
            Some(b't') => {
                self.literal(b"true", ValueType::Bool)?;
            }
            Some(b'f') => {
                self.literal(b"false", ValueType::Bool)?;
            }
            Some(b'n') => {
                self.literal(b"null", ValueType::Null)?;
            }
            Some(b'-' | b'0'..=b'9') => {
                self.number()?;
                if let Some(found) = detect::in_number(&self.b[start..self.i]) {
                    self.out.findings.push((start, self.i, found));
                }
            }
            _ => return self.malformed(),
        }
        Ok(())
    }

    /// After a member or element: a comma (false, more follow) or the closing byte (true).
    fn next_or_close(&mut self, close: u8) -> Result<bool, ScanError> {
        self.ws();
        match self.b.get(self.i) {
            Some(b',') => {
                self.i += 1;
                self.ws();
                Ok(false)
            }
            Some(&c) if c == close => {
                self.i += 1;
                Ok(true)
            }
            _ => self.malformed(),
        }
    }

    fn literal(&mut self, word: &[u8], t: ValueType) -> Result<ValueType, ScanError> {
        if self.b[self.i..].starts_with(word) {
            self.i += word.len();
            Ok(t)
        } else {
            self.malformed()
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.i;
        while self.b.get(self.i).is_some_and(u8::is_ascii_digit) {
            self.i += 1;
        }
        self.i - start
    }

    fn number(&mut self) -> Result<(), ScanError> {
        if self.b[self.i] == b'-' {
            self.i += 1;
        }
        match self.b.get(self.i) {
            Some(b'0') => self.i += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return self.malformed(),
        }
        if self.b.get(self.i) == Some(&b'.') {
            self.i += 1;
            if self.digits() == 0 {
                return self.malformed();
            }
        }
        if let Some(b'e' | b'E') = self.b.get(self.i) {
            self.i += 1;
            if let Some(b'+' | b'-') = self.b.get(self.i) {
                self.i += 1;
            }
            if self.digits() == 0 {
                return self.malformed();
            }
        }
        Ok(())
    }

    /// Validates a string starting at `self.i` (the quote); returns whether it holds escapes.
    fn string(&mut self) -> Result<bool, ScanError> {
        let b = self.b;
        let mut i = self.i + 1;
        let mut escaped = false;
        self.saw_at = false;
        loop {
            // Find the next quote, backslash or control byte, eight bytes at a time.
            loop {
                match b.get(i..i + 8) {
                    Some(chunk) => {
                        let mask = special(u64::from_le_bytes(chunk.try_into().unwrap_or([0; 8])));
                        if mask != 0 {
                            i += (mask.trailing_zeros() / 8) as usize;
                            break;
                        }
                        i += 8;
                    }
                    None => {
                        while b
                            .get(i)
                            .is_some_and(|&c| c != b'"' && c != b'\\' && c >= 0x20)
                        {
                            i += 1;
                        }
                        break;
                    }
                }
            }
            self.i = i;
            match b.get(i) {
                Some(b'"') => {
                    self.i += 1;
                    return Ok(escaped);
                }
                Some(b'\\') => {
                    self.i += 1;
                    escaped = true;
                    self.escape()?;
                    i = self.i;
                }
                Some(b'@') => {
                    // Noted on the way, so the email detector needs no second pass.
                    self.saw_at = true;
                    i += 1;
                }
                _ => return self.malformed(),
            }
        }
    }

    fn escape(&mut self) -> Result<(), ScanError> {
        match self.b.get(self.i) {
            Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => {
                self.i += 1;
                Ok(())
            }
            Some(b'u') => {
                self.i += 1;
                let unit = self.hex4()?;
                if (0xDC00..0xE000).contains(&unit) {
                    return Err(ScanError::LoneSurrogate(self.i));
                }
                if (0xD800..0xDC00).contains(&unit) {
                    if !self.b[self.i..].starts_with(b"\\u") {
                        return Err(ScanError::LoneSurrogate(self.i));
                    }
                    self.i += 2;
                    let low = self.hex4()?;
                    if !(0xDC00..0xE000).contains(&low) {
                        return Err(ScanError::LoneSurrogate(self.i));
                    }
                }
                Ok(())
            }
            _ => self.malformed(),
        }
    }

    fn hex4(&mut self) -> Result<u32, ScanError> {
        let Some(h) = self.b.get(self.i..self.i + 4) else {
            return self.malformed();
        };
        let mut v = 0u32;
        for &c in h {
            let d = (c as char)
                .to_digit(16)
                .ok_or(ScanError::Malformed(self.i))?;
            v = v * 16 + d;
        }
        self.i += 4;
        Ok(v)
    }

    /// A string value just ended at `self.i`: refuse or record it if it is one of ours.
    fn check_string(
        &mut self,
        start: usize,
        escaped: bool,
        key: Option<(usize, usize, bool)>,
    ) -> Result<(), ScanError> {
        let content = &self.b[start + 1..self.i - 1];
        if self.request {
            if let Some(found) = detect::in_string(content, self.saw_at) {
                self.out.findings.push((start, self.i, found));
            }
        }
        let candidate = escaped || content.starts_with(b"tk1.") || content.first() == Some(&b'[');
        if !candidate {
            return Ok(());
        }
        let ours = {
            let text = content_str(content, escaped);
            (self.is_ours)(&text)
        };
        if !ours {
            return Ok(());
        }
        if self.request {
            return Err(ScanError::OurCiphertext(start));
        }
        self.out.tokens.push(TokenAt {
            start,
            end: self.i,
            escaped,
            key,
        });
        Ok(())
    }

    /// Pushes the states reached by stepping into `step`; returns their range.
    fn step(&mut self, st: Range, step: Step<'_>) -> Range {
        let from = self.states.len();
        for k in st.0..st.1 {
            let (rule, pos) = self.states[k];
            let path = &self.rules[rule as usize];
            let states = &mut self.states;
            path.advance(pos, step, &mut |p| {
                if !states[from..].contains(&(rule, p)) {
                    states.push((rule, p));
                }
            });
        }
        (from, self.states.len())
    }

    fn enter(&mut self) -> Result<u32, ScanError> {
        self.depth += 1;
        if self.depth > self.limits.max_depth {
            return Err(ScanError::TooDeep);
        }
        self.i += 1;
        self.containers += 1;
        Ok(self.containers)
    }

    fn object(&mut self, st: Range) -> Result<(), ScanError> {
        let container = self.enter()?;
        let keys_from = self.keys.len();
        let mut seen: Option<HashSet<Cow<'a, str>>> = None;
        let mut comma_before = None;
        self.ws();
        if self.b.get(self.i) == Some(&b'}') {
            self.i += 1;
            self.depth -= 1;
            return Ok(());
        }
        loop {
            let member_start = self.i;
            if self.b.get(self.i) != Some(&b'"') {
                return self.malformed();
            }
            let escaped = self.string()?;
            let raw = (member_start + 1, self.i - 1);
            // Names matter only where a rule path can still match: there they are decoded,
            // stepped through the automata and checked for duplicates. Elsewhere no rule can
            // apply, so neither can a duplicate change what reaches the backend.
            let on_path = st.0 != st.1;
            let name = if on_path {
                let text = &self.s[raw.0..raw.1];
                let name = if escaped {
                    Cow::Owned(unescape(text))
                } else {
                    Cow::Borrowed(text)
                };
                if self.request {
                    self.check_duplicate(&name, keys_from, &mut seen, member_start)?;
                }
                Some(name)
            } else {
                None
            };
            self.ws();
            if self.b.get(self.i) != Some(&b':') {
                return self.malformed();
            }
            self.i += 1;
            self.ws();
            let child = match &name {
                None => (self.states.len(), self.states.len()),
                Some(name) => self.step(st, Step::Member(name)),
            };
            let hits_from = self.out.hits.len();
            let slot = Slot {
                start: member_start,
                container,
                comma_before,
                comma_after: None,
            };
            self.value(child, slot, Some((raw.0, raw.1, escaped)))?;
            self.states.truncate(child.0);
            if let (Some(name), true) = (name, self.request) {
                self.keys.push(name);
            }
            self.ws();
            match self.b.get(self.i) {
                Some(b',') => {
                    self.patch_comma_after(hits_from, member_start, container);
                    comma_before = Some(self.i);
                    self.i += 1;
                    self.ws();
                }
                Some(b'}') => {
                    self.i += 1;
                    break;
                }
                _ => return self.malformed(),
            }
        }
        self.keys.truncate(keys_from);
        self.depth -= 1;
        Ok(())
    }

    // The name is kept as a Cow: the set holds borrowed names where it can.
    #[allow(clippy::ptr_arg)]
    fn check_duplicate(
        &mut self,
        name: &Cow<'a, str>,
        keys_from: usize,
        seen: &mut Option<HashSet<Cow<'a, str>>>,
        at: usize,
    ) -> Result<(), ScanError> {
        const LINEAR: usize = 16;
        let dup = match seen {
            Some(set) => !set.insert(name.clone()),
            None => {
                let so_far = &self.keys[keys_from..];
                let dup = so_far.iter().any(|k| k == name);
                if so_far.len() >= LINEAR {
                    let mut set: HashSet<Cow<'a, str>> = so_far.iter().cloned().collect();
                    set.insert(name.clone());
                    *seen = Some(set);
                }
                dup
            }
        };
        if dup {
            return Err(ScanError::DuplicateMember(at));
        }
        Ok(())
    }

    fn patch_comma_after(&mut self, hits_from: usize, member_start: usize, container: u32) {
        let comma = self.i;
        for hit in &mut self.out.hits[hits_from..] {
            if hit.slot.start == member_start && hit.slot.container == container {
                hit.slot.comma_after = Some(comma);
            }
        }
    }

    fn array(&mut self, st: Range) -> Result<(), ScanError> {
        let container = self.enter()?;
        let mut comma_before = None;
        self.ws();
        if self.b.get(self.i) == Some(&b']') {
            self.i += 1;
            self.depth -= 1;
            return Ok(());
        }
        let mut index = 0u64;
        loop {
            let start = self.i;
            let child = if st.0 == st.1 {
                (self.states.len(), self.states.len())
            } else {
                self.step(st, Step::Element(index))
            };
            let hits_from = self.out.hits.len();
            let slot = Slot {
                start,
                container,
                comma_before,
                comma_after: None,
            };
            self.value(child, slot, None)?;
            self.states.truncate(child.0);
            self.ws();
            match self.b.get(self.i) {
                Some(b',') => {
                    self.patch_comma_after(hits_from, start, container);
                    comma_before = Some(self.i);
                    self.i += 1;
                    self.ws();
                }
                Some(b']') => {
                    self.i += 1;
                    break;
                }
                _ => return self.malformed(),
            }
            index += 1;
        }
        self.depth -= 1;
        Ok(())
    }
}

/// Marks the bytes of `w` that need a look: a quote, a backslash, an `@` (for the email
/// detector), or a control byte.
/// The classic "has a zero byte" test: the lowest marked byte is exact (a borrow can
/// only mark bytes above a real match), which is all the caller uses.
fn special(w: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    let quote = zero(w ^ (ONES * u64::from(b'"')));
    let backslash = zero(w ^ (ONES * u64::from(b'\\')));
    let at = zero(w ^ (ONES * u64::from(b'@')));
    let control = w.wrapping_sub(ONES * 0x20) & !w & HIGH;
    quote | backslash | at | control
}

/// The content of a validated string (without quotes), decoded when it holds escapes.
pub fn content_str(raw: &[u8], escaped: bool) -> Cow<'_, str> {
    // The whole body was checked as UTF-8 and the string as JSON before this is called.
    let text = std::str::from_utf8(raw).unwrap_or_default();
    if escaped {
        Cow::Owned(unescape(text))
    } else {
        Cow::Borrowed(text)
    }
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('b') => out.push('\u{8}'),
            Some('f') => out.push('\u{c}'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('t') => out.push('\t'),
            Some('u') => {
                let hi = hex(&mut chars);
                let code = if (0xD800..0xDC00).contains(&hi) {
                    chars.next();
                    chars.next();
                    0x10000 + ((hi - 0xD800) << 10) + (hex(&mut chars).wrapping_sub(0xDC00) & 0x3FF)
                } else {
                    hi
                };
                out.push(char::from_u32(code).unwrap_or('\u{FFFD}'));
            }
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

fn hex(chars: &mut std::str::Chars<'_>) -> u32 {
    (0..4).fold(0, |v, _| {
        v * 16 + chars.next().and_then(|c| c.to_digit(16)).unwrap_or(0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        max_depth: 64,
        max_nodes: 10_000,
    };

    fn never(_: &str) -> bool {
        false
    }

    fn ours(s: &str) -> bool {
        s.starts_with("tk1.")
    }

    fn hits(body: &str, paths: &[&str]) -> Vec<String> {
        let rules: Vec<JsonPath> = paths.iter().map(|p| JsonPath::parse(p).unwrap()).collect();
        let scan = scan(body.as_bytes(), Mode::Request(&rules), LIMITS, never).unwrap();
        scan.hits
            .iter()
            .map(|h| format!("{}:{}", h.rule, &body[h.start..h.end]))
            .collect()
    }

    /// A rule that keeps every member on a configured path, so every check applies.
    fn err(body: &[u8]) -> ScanError {
        let everywhere = [JsonPath::parse("$..*").unwrap()];
        scan(body, Mode::Request(&everywhere), LIMITS, ours).unwrap_err()
    }

    /// Parser differential guard: on strings and small documents built from the bytes
    /// that matter (quotes, backslashes, escapes, control bytes, multi-byte UTF-8), the
    /// scanner accepts exactly what serde_json accepts.
    #[test]
    fn accepts_exactly_what_serde_json_accepts() {
        use rand::{Rng, SeedableRng};
        let pieces: [&[u8]; 17] = [
            b"a",
            b"Z9",
            "é".as_bytes(),
            "😀".as_bytes(),
            b"\"",
            b"\\",
            b"\\n",
            b"\\u0041",
            b"\\ud83d\\ude00",
            b"\\ud800",
            b"\\udc00",
            b"\\x",
            b"\n",
            b"\x1f",
            b"\x7f",
            b" ",
            b"tk",
        ];
        let shapes: [&[u8]; 6] = [
            b"\"S\"",
            b"[\"S\",1]",
            b"{\"S\":\"S\"}",
            b"{\"k\":[\"S\",{\"S\":null}]}",
            b"\"S",
            b"[\"S\"]x",
        ];
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        // On a configured path everywhere, and nowhere (the lean validation of values no
        // rule can reach): both must agree with serde_json.
        let everywhere = [JsonPath::parse("$..*").unwrap()];
        let nowhere = [JsonPath::parse("$.no_such_member").unwrap()];
        for n in 0..40_000 {
            let rules: &[JsonPath] = if n % 2 == 0 { &everywhere } else { &nowhere };
            let mut text = Vec::new();
            for _ in 0..rng.gen_range(0..24) {
                text.extend_from_slice(pieces[rng.gen_range(0..pieces.len())]);
            }
            let shape = shapes[rng.gen_range(0..shapes.len())];
            let mut body = Vec::new();
            for &c in shape {
                if c == b'S' {
                    body.extend_from_slice(&text);
                } else {
                    body.push(c);
                }
            }
            let ours = scan(&body, Mode::Request(rules), LIMITS, never);
            let theirs = serde_json::from_slice::<serde_json::Value>(&body);
            let dup = matches!(ours, Err(ScanError::DuplicateMember(_)));
            if !dup {
                assert_eq!(
                    ours.is_ok(),
                    theirs.is_ok(),
                    "{}",
                    String::from_utf8_lossy(&body)
                );
            }
        }
    }

    #[test]
    fn duplicates_matter_only_on_a_configured_path() {
        let rules = [JsonPath::parse("$.customer.email").unwrap()];
        let scan_with = |body: &[u8]| scan(body, Mode::Request(&rules), LIMITS, ours);
        assert!(scan_with(br#"{"customer":{"email":"a","email":"b"}}"#).is_err());
        assert!(scan_with(br#"{"customer":{"x":1},"customer":{"email":"b"}}"#).is_err());
        assert!(scan_with(br#"{"items":[{"sku":1,"sku":2}]}"#).is_ok());
    }

    #[test]
    fn selects_by_name_index_wildcard_and_descendant() {
        let body = r#"{"email":"a@x","items":[{"email":"b"},{"email":"c","n":1.50}],"deep":{"x":{"email":null}}}"#;
        assert_eq!(hits(body, &["$.email"]), vec!["0:\"a@x\""]);
        assert_eq!(
            hits(body, &["$.items[*].email"]),
            vec!["0:\"b\"", "0:\"c\""]
        );
        assert_eq!(hits(body, &["$.items[1].n"]), vec!["0:1.50"]);
        assert_eq!(hits(body, &["$..email"]).len(), 4);
        assert_eq!(hits(body, &["$.deep"]), vec![r#"0:{"x":{"email":null}}"#]);
        assert_eq!(hits(r#"{"em\u0061il":"a"}"#, &["$.email"]), vec!["0:\"a\""]);
    }

    #[test]
    fn refuses_what_a_backend_might_read_differently() {
        assert_eq!(err(br#"{"a":1,"a":2}"#), ScanError::DuplicateMember(7));
        assert!(matches!(
            err(br#"{"a":1,"\u0061":2}"#),
            ScanError::DuplicateMember(_)
        ));
        assert_eq!(err(b"\xEF\xBB\xBF{}"), ScanError::Bom);
        assert_eq!(err(b"{\"a\":\"\xff\"}"), ScanError::InvalidUtf8);
        assert!(matches!(
            err(br#"{"a":"\ud800"}"#),
            ScanError::LoneSurrogate(_)
        ));
        assert!(matches!(
            err(br#"{"a":"\udc00"}"#),
            ScanError::LoneSurrogate(_)
        ));
        assert!(matches!(err(br#"{} {}"#), ScanError::TrailingData(_)));
        assert!(matches!(
            err(br#"{"a":01}"#),
            ScanError::TrailingData(_) | ScanError::Malformed(_)
        ));
        for bad in [
            &b"{"[..],
            b"{\"a\"}",
            b"[1,]",
            b"{\"a\":1,}",
            b"\"a\nb\"",
            b"nul",
            b"1.",
            b"-",
            b"",
            b"{'a':1}",
        ] {
            assert!(
                matches!(err(bad), ScanError::Malformed(_)),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert!(matches!(
            err(br#"{"a":"tk1.1.rs.abcdefgh.xyz"}"#),
            ScanError::OurCiphertext(_)
        ));
        assert!(matches!(
            err(br#"["tk1\u002e1"]"#),
            ScanError::OurCiphertext(_)
        ));
        let deep = "[".repeat(65) + &"]".repeat(65);
        assert_eq!(err(deep.as_bytes()), ScanError::TooDeep);
        let many = format!("[{}0]", "0,".repeat(10_000));
        assert_eq!(err(many.as_bytes()), ScanError::TooManyNodes);
    }

    #[test]
    fn duplicate_detection_scales_past_the_linear_window() {
        let mut body = String::from("{");
        for i in 0..40 {
            body.push_str(&format!("\"k{i}\":{i},"));
        }
        body.push_str("\"k3\":0}");
        assert!(matches!(
            err(body.as_bytes()),
            ScanError::DuplicateMember(_)
        ));
    }

    #[test]
    fn records_commas_for_drop() {
        let rules = vec![JsonPath::parse("$.b").unwrap()];
        let body = br#"{"a":1, "b":2 ,"c":3}"#;
        let s = scan(body, Mode::Request(&rules), LIMITS, never).unwrap();
        let slot = s.hits[0].slot;
        assert_eq!(slot.comma_before, Some(6));
        assert_eq!(slot.comma_after, Some(14));
    }

    #[test]
    fn response_mode_finds_tokens_with_their_member_names() {
        let body = br#"[{"email":"tk1.x"},"tk1.y",{"n":"plain"}]"#;
        let s = scan(body, Mode::Response, LIMITS, ours).unwrap();
        assert_eq!(s.tokens.len(), 2);
        let (ks, ke, _) = s.tokens[0].key.unwrap();
        assert_eq!(&body[ks..ke], b"email");
        assert!(s.tokens[1].key.is_none());
    }

    #[test]
    fn unescape_decodes_pairs() {
        assert_eq!(unescape(r#"a\u00e9\ud83d\ude00\n\/"#), "aé😀\n/");
    }
}
