//! The strict JSON scanner: one pass over a body that validates it against RFC 8259
//! (plus our stricter rules: no BOM, no duplicate member names, no lone surrogates,
//! bounded depth and node count), steps the compiled JSONPath automata, and records the
//! byte spans of the values the rules select. Nothing is re-serialised: the caller
//! splices new values into the original bytes, so everything else keeps its spelling.
//!
//! Errors carry a reason and a byte offset, never a byte of the body.

use std::borrow::Cow;
use std::collections::HashSet;

mod lex;

use lex::{blanks, unescape};
pub use lex::{content_str, plain_prefix};

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
    /// The container it sits in (for its record key, when its label is bound).
    pub container: u32,
}

/// A member whose name is one of the record-key names asked for: where its value is.
#[derive(Debug, Clone, Copy)]
pub struct RecordKey {
    /// The object it belongs to.
    pub container: u32,
    /// Index into the names asked for.
    pub name: usize,
    /// Span of its value.
    pub start: usize,
    /// End (exclusive).
    pub end: usize,
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
    /// Members named like a record key, per object.
    pub record_keys: Vec<RecordKey>,
}

/// Scans `body`. `is_ours` tells whether a decoded string is one of our ciphertexts or
/// the marker.
pub fn scan(
    body: &[u8],
    mode: Mode<'_>,
    limits: Limits,
    is_ours: fn(&str) -> bool,
) -> Result<Scan, ScanError> {
    scan_keyed(body, mode, &[], limits, is_ours)
}

/// Like [`scan`], also recording where the members named in `record_names` sit (the
/// record keys that bound labels need).
pub fn scan_keyed(
    body: &[u8],
    mode: Mode<'_>,
    record_names: &[&str],
    limits: Limits,
    is_ours: fn(&str) -> bool,
) -> Result<Scan, ScanError> {
    if body.starts_with(&[0xEF, 0xBB, 0xBF]) {
        return Err(ScanError::Bom);
    }
    let (rules, request) = match mode {
        Mode::Request(rules) => (rules, true),
        Mode::Response => (&[][..], false),
    };
    let s = Scanner {
        b: body,
        i: 0,
        rules,
        record_names,
        request,
        limits,
        count_nodes: could_exceed(body.len(), limits.max_nodes),
        is_ours,
        depth: 0,
        nodes: 0,
        containers: 0,
        states: (0..rules.len()).map(|r| (r as u16, 0u16)).collect(),
        keys: Vec::new(),
        open: Vec::new(),
        out: Scan::default(),
    };
    s.document().map_err(|e| {
        // The lexer checks UTF-8 only where JSON allows bytes above ASCII (in strings)
        // and the grammar refuses them elsewhere; a broken body that is also not UTF-8
        // is refused as not UTF-8, whichever came first.
        if std::str::from_utf8(body).is_err() {
            ScanError::InvalidUtf8
        } else {
            e
        }
    })
}

/// Whether a body of `len` bytes can hold more than `max_nodes` values. Each value takes a
/// byte, and every value after the first of a container a separator or a closing byte more:
/// a body of n bytes holds at most (n + 1) / 2 values (`[0,0,0]`, `[[[]]]`). Below that the
/// lean loop need not count them.
fn could_exceed(len: usize, max_nodes: usize) -> bool {
    len / 2 + 1 > max_nodes
}

struct Scanner<'a, 'r> {
    /// The body. Strings are checked as UTF-8 as they are read; nothing else may hold
    /// bytes above ASCII.
    b: &'a [u8],
    i: usize,
    rules: &'r [JsonPath],
    /// Member names whose values are record keys of bound labels.
    record_names: &'r [&'r str],
    request: bool,
    limits: Limits,
    /// False when the body is too short to exceed `max_nodes` (see [`could_exceed`]).
    count_nodes: bool,
    is_ours: fn(&str) -> bool,
    depth: usize,
    nodes: usize,
    containers: u32,
    /// Automaton states (rule, position): a stack of ranges, one per open value.
    states: Vec<(u16, u16)>,
    /// Decoded member names of the open objects, for duplicate detection.
    keys: Vec<Cow<'a, str>>,
    /// The containers [`Scanner::skip`] is in, but for the innermost: opening byte and
    /// number (kept for reuse).
    open: Vec<(u8, u32)>,
    out: Scan,
}

type Range = (usize, usize);

/// Where a member's name sits (content span, whether it holds escapes), for a value that
/// is a member's.
pub(super) type Key = Option<(usize, usize, bool)>;

impl<'a> Scanner<'a, '_> {
    /// The whole body: one value, blanks around it allowed.
    fn document(mut self) -> Result<Scan, ScanError> {
        self.ws();
        let root = Slot {
            start: self.i,
            container: u32::MAX,
            comma_before: None,
            comma_after: None,
        };
        let n = self.states.len();
        self.value((0, n), root, None)?;
        self.ws();
        if self.i != self.b.len() {
            return Err(ScanError::TrailingData(self.i));
        }
        Ok(self.out)
    }

    fn value(&mut self, st: Range, slot: Slot, key: Key) -> Result<(), ScanError> {
        if st.0 == st.1 && (self.request || self.record_names.is_empty()) {
            // No rule can select anything below here: validate just as strictly, but
            // without the bookkeeping selection needs. (A response with bound labels
            // needs the record keys of every object: it takes the long way.)
            return self.skip(key, slot.container);
        }
        self.count_node()?;
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
                escaped = self.string_value(key, slot.container)?;
                ValueType::String
            }
            Some(b't') => self.literal(b"true", ValueType::Bool)?,
            Some(b'f') => self.literal(b"false", ValueType::Bool)?,
            Some(b'n') => self.literal(b"null", ValueType::Null)?,
            Some(b'-' | b'0'..=b'9') => {
                self.number_value()?;
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

    /// Validates a value no rule can reach: the same grammar, depth, node and ciphertext
    /// checks, the detectors (request direction) and the tokens with their member names
    /// and containers (response direction), with no selection bookkeeping. Most of a
    /// large body goes through here, so it is one loop with the position in a local and
    /// the open containers on a stack, instead of a call per container and the position
    /// kept in the scanner. `key` and `container` place the value itself.
    fn skip(&mut self, key: Key, container: u32) -> Result<(), ScanError> {
        let mut open = std::mem::take(&mut self.open);
        open.clear();
        let i = self.i;
        let end = match (self.count_nodes, self.request) {
            (true, true) => self.skip_from::<true, true>(i, key, container, &mut open),
            (true, false) => self.skip_from::<true, false>(i, key, container, &mut open),
            (false, true) => self.skip_from::<false, true>(i, key, container, &mut open),
            (false, false) => self.skip_from::<false, false>(i, key, container, &mut open),
        };
        self.open = open;
        self.i = end?;
        Ok(())
    }

    fn skip_from<const COUNT: bool, const REQUEST: bool>(
        &mut self,
        mut i: usize,
        mut key: Key,
        mut container: u32,
        open: &mut Vec<(u8, u32)>,
    ) -> Result<usize, ScanError> {
        let b = self.b;
        // The innermost open container's opening byte (0: none) and number; the ones
        // around it wait on `open`.
        let mut top = 0u8;
        'value: loop {
            // At the first byte of a value; `key` and `container` place it.
            if COUNT {
                self.count_node()?;
            }
            match b.get(i) {
                Some(&opening @ (b'{' | b'[')) => {
                    let id = self.deeper()?;
                    i = blanks(b, i + 1);
                    if b.get(i) == Some(&closing(opening)) {
                        i += 1;
                        self.depth -= 1;
                    } else {
                        open.push((top, container));
                        (top, container) = (opening, id);
                        key = None;
                        if opening == b'{' {
                            (i, key) = member_name::<REQUEST>(b, i)?;
                        }
                        continue 'value;
                    }
                }
                Some(b'"') => {
                    let lexed = lex::string::<true>(b, i)?;
                    self.string_seen(REQUEST, i, lexed, key, container)?;
                    i = lexed.end;
                }
                Some(b't') => i = lex::literal(b, i, b"true")?,
                Some(b'f') => i = lex::literal(b, i, b"false")?,
                Some(b'n') => i = lex::literal(b, i, b"null")?,
                Some(b'-' | b'0'..=b'9') => {
                    let end = lex::number(b, i)?;
                    self.number_seen(REQUEST, i, end);
                    i = end;
                }
                _ => return Err(ScanError::Malformed(i)),
            }
            // After a value: a comma and the next member or element, or closing bytes.
            while top != 0 {
                i = blanks(b, i);
                match b.get(i) {
                    Some(b',') => {
                        i = blanks(b, i + 1);
                        if top == b'{' {
                            (i, key) = member_name::<REQUEST>(b, i)?;
                        } else {
                            key = None;
                        }
                        continue 'value;
                    }
                    Some(&c) if c == closing(top) => {
                        i += 1;
                        self.depth -= 1;
                        (top, container) = open.pop().unwrap_or((0, u32::MAX));
                    }
                    _ => return Err(ScanError::Malformed(i)),
                }
            }
            return Ok(i);
        }
    }

    /// One more value; over `max_nodes`, the scan ends.
    #[inline(always)]
    fn count_node(&mut self) -> Result<(), ScanError> {
        self.nodes += 1;
        if self.nodes > self.limits.max_nodes {
            return Err(ScanError::TooManyNodes);
        }
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
        let container = self.deeper()?;
        self.i += 1;
        Ok(container)
    }

    /// A container opens: one level deeper (within the limit), and its number.
    #[inline(always)]
    fn deeper(&mut self) -> Result<u32, ScanError> {
        self.depth += 1;
        if self.depth > self.limits.max_depth {
            return Err(ScanError::TooDeep);
        }
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
            let escaped = self.name()?;
            let raw = (member_start + 1, self.i - 1);
            // Names matter only where a rule path can still match: there they are decoded,
            // stepped through the automata and checked for duplicates. Elsewhere no rule can
            // apply, so neither can a duplicate change what reaches the backend.
            let on_path = st.0 != st.1;
            let name = if on_path {
                let name = self.name_at(raw, escaped)?;
                if self.request {
                    self.check_duplicate(&name, keys_from, &mut seen, member_start)?;
                }
                Some(name)
            } else {
                None
            };
            let record = self.record_key_index(raw, escaped);
            self.i = colon(self.b, self.i)?;
            let value_start = self.i;
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
            if let Some(name) = record {
                self.out.record_keys.push(RecordKey {
                    container,
                    name,
                    start: value_start,
                    end: self.i,
                });
            }
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

    /// A member name the lexer has read (and so checked as UTF-8), decoded.
    fn name_at(&self, raw: (usize, usize), escaped: bool) -> Result<Cow<'a, str>, ScanError> {
        let b: &'a [u8] = self.b;
        let text = std::str::from_utf8(&b[raw.0..raw.1]).map_err(|_| ScanError::InvalidUtf8)?;
        Ok(if escaped {
            Cow::Owned(unescape(text))
        } else {
            Cow::Borrowed(text)
        })
    }

    /// Which of the record-key names this member has, if any.
    fn record_key_index(&self, raw: (usize, usize), escaped: bool) -> Option<usize> {
        if self.record_names.is_empty() {
            return None;
        }
        let name = self.name_at(raw, escaped).ok()?;
        self.record_names.iter().position(|n| *n == name)
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

/// The byte that closes a container opened by `opening` (`{` or `[`).
fn closing(opening: u8) -> u8 {
    if opening == b'{' {
        b'}'
    } else {
        b']'
    }
}

/// A member name at `i` (which must be its quote), and the colon after it: where the
/// member's value starts, and (response direction) the span of the name's content and
/// whether it holds escapes.
#[inline(always)]
fn member_name<const REQUEST: bool>(b: &[u8], i: usize) -> Result<(usize, Key), ScanError> {
    if b.get(i) != Some(&b'"') {
        return Err(ScanError::Malformed(i));
    }
    let name = lex::string::<false>(b, i)?;
    // Only the response direction's tokens take their member's name.
    let key = (!REQUEST).then_some((i + 1, name.end - 1, name.escaped));
    Ok((colon(b, name.end)?, key))
}

/// The colon after a member name that ends at `i`, blanks around it allowed: where the
/// member's value starts.
#[inline(always)]
fn colon(b: &[u8], i: usize) -> Result<usize, ScanError> {
    let i = blanks(b, i);
    if b.get(i) != Some(&b':') {
        return Err(ScanError::Malformed(i));
    }
    Ok(blanks(b, i + 1))
}

#[cfg(test)]
mod tests;
