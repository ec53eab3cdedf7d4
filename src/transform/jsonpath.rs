//! JSONPath (RFC 9535) compiled once at config load into a small automaton that the
//! streaming JSON scanner steps through while it reads a body.
//!
//! Supported: the root `$`, child and descendant segments (`.name`, `['name']`,
//! `..name`, `.*`, `[*]`, `..*`), non-negative indices, non-negative slices and unions
//! (`['a','b']`, `[0,2]`). Filter expressions and negative indices need the whole
//! document (or the array length) before anything can be decided, which a streaming
//! splice cannot do; they are refused at load with a clear message. This module never
//! sees a body value.

use std::fmt;

/// One selector inside a segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Selector {
    /// A member name.
    Name(String),
    /// Every member or element.
    Wildcard,
    /// One array element.
    Index(u64),
    /// Array elements `start..end` stepping by `step`.
    Slice {
        /// First index.
        start: u64,
        /// One past the last index, if bounded.
        end: Option<u64>,
        /// Step, at least 1.
        step: u64,
    },
}

/// A child segment (`.x`, `[..]`) or a descendant segment (`..x`, `..[..]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment {
    /// True for `..`.
    pub descendant: bool,
    /// The union of selectors.
    pub selectors: Vec<Selector>,
}

/// A compiled JSONPath.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JsonPath {
    /// The source text, for messages.
    pub source: String,
    /// The segments after `$`.
    pub segments: Vec<Segment>,
}

/// Why a path does not compile; the message names the offending column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathError {
    /// 0-based character offset in the path.
    pub offset: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at character {}: {}", self.offset + 1, self.message)
    }
}

/// The element a scanner steps into: an object member or an array element.
#[derive(Clone, Copy, Debug)]
pub enum Step<'a> {
    /// An object member, by its decoded name.
    Member(&'a str),
    /// An array element, by index.
    Element(u64),
}

impl Selector {
    fn matches(&self, step: Step<'_>) -> bool {
        match (self, step) {
            (Selector::Wildcard, _) => true,
            (Selector::Name(n), Step::Member(m)) => n == m,
            (Selector::Index(i), Step::Element(e)) => *i == e,
            (Selector::Slice { start, end, step }, Step::Element(e)) => {
                e >= *start && end.is_none_or(|end| e < end) && (e - start) % step == 0
            }
            _ => false,
        }
    }
}

impl JsonPath {
    /// Compiles `source`.
    pub fn parse(source: &str) -> Result<JsonPath, PathError> {
        Parser {
            s: source.as_bytes(),
            i: 0,
        }
        .path()
    }

    /// Is this path a single member name below the root (`$.name`, `$['name']`)?
    /// Only such paths apply to form bodies.
    pub fn single_name(&self) -> Option<&str> {
        match self.segments.as_slice() {
            [Segment {
                descendant: false,
                selectors,
            }] => match selectors.as_slice() {
                [Selector::Name(n)] => Some(n),
                _ => None,
            },
            _ => None,
        }
    }

    /// The member name that the selected values sit under, when the last segment names
    /// exactly one member: used to notice a ciphertext moved into another field's slot.
    pub fn last_name(&self) -> Option<&str> {
        match self.segments.last()?.selectors.as_slice() {
            [Selector::Name(n)] => Some(n),
            _ => None,
        }
    }

    /// Advances the automaton state `pos` (segments matched so far) by one step into the
    /// document, pushing the states reached into `out`.
    pub fn advance(&self, pos: u16, step: Step<'_>, out: &mut impl FnMut(u16)) {
        let Some(seg) = self.segments.get(pos as usize) else {
            return;
        };
        if seg.descendant {
            out(pos);
        }
        if seg.selectors.iter().any(|s| s.matches(step)) {
            out(pos + 1);
        }
    }

    /// Is `pos` the accepting state?
    pub fn accepts(&self, pos: u16) -> bool {
        pos as usize == self.segments.len()
    }
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn err<T>(&self, message: impl Into<String>) -> Result<T, PathError> {
        Err(PathError {
            offset: self.i,
            message: message.into(),
        })
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn path(mut self) -> Result<JsonPath, PathError> {
        if !self.eat(b'$') {
            return self.err("a path starts with `$`");
        }
        let mut segments = Vec::new();
        loop {
            self.skip_ws();
            match self.peek() {
                None => break,
                Some(b'.') => {
                    self.i += 1;
                    let descendant = self.eat(b'.');
                    let selectors = if self.peek() == Some(b'[') {
                        if !descendant {
                            return self.err("`.[` is not valid: write `[` or `..[`");
                        }
                        self.bracket()?
                    } else if self.eat(b'*') {
                        vec![Selector::Wildcard]
                    } else {
                        vec![Selector::Name(self.shorthand()?)]
                    };
                    segments.push(Segment {
                        descendant,
                        selectors,
                    });
                }
                Some(b'[') => {
                    let selectors = self.bracket()?;
                    segments.push(Segment {
                        descendant: false,
                        selectors,
                    });
                }
                Some(_) => return self.err("expected `.`, `..` or `[`"),
            }
        }
        if segments.is_empty() {
            return self.err("`$` alone selects the whole body: name a member below it");
        }
        let source = String::from_utf8_lossy(self.s).into_owned();
        Ok(JsonPath { source, segments })
    }

    fn shorthand(&mut self) -> Result<String, PathError> {
        let start = self.i;
        while let Some(b) = self.peek() {
            let first = self.i == start;
            let ok =
                b.is_ascii_alphabetic() || b == b'_' || b >= 0x80 || (!first && b.is_ascii_digit());
            if !ok {
                break;
            }
            self.i += 1;
        }
        if self.i == start {
            return self.err("expected a member name, `*` or `[`");
        }
        Ok(String::from_utf8_lossy(&self.s[start..self.i]).into_owned())
    }

    fn bracket(&mut self) -> Result<Vec<Selector>, PathError> {
        self.i += 1; // '['
        let mut selectors = Vec::new();
        loop {
            self.skip_ws();
            selectors.push(self.selector()?);
            self.skip_ws();
            if self.eat(b']') {
                return Ok(selectors);
            }
            if !self.eat(b',') {
                return self.err("expected `,` or `]`");
            }
        }
    }

    fn selector(&mut self) -> Result<Selector, PathError> {
        match self.peek() {
            Some(b'\'' | b'"') => Ok(Selector::Name(self.quoted()?)),
            Some(b'*') => {
                self.i += 1;
                Ok(Selector::Wildcard)
            }
            Some(b'?') => self.err(
                "filter selectors (`?...`) are not supported: they need the whole document before \
                 anything can be forwarded; select the member by name or wildcard instead",
            ),
            Some(b'-') => {
                self.err("negative indices are not supported: they need the array length")
            }
            Some(b) if b.is_ascii_digit() || b == b':' => self.index_or_slice(),
            _ => self.err("expected a quoted name, `*`, an index or a slice"),
        }
    }

    fn int(&mut self) -> Result<Option<u64>, PathError> {
        self.skip_ws();
        if self.peek() == Some(b'-') {
            return self.err("negative indices are not supported: they need the array length");
        }
        let start = self.i;
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.i += 1;
        }
        if self.i == start {
            return Ok(None);
        }
        let text = std::str::from_utf8(&self.s[start..self.i]).unwrap_or("x");
        if text.len() > 1 && text.starts_with('0') {
            return self.err("an index has no leading zeros");
        }
        text.parse()
            .map(Some)
            .or_else(|_| self.err("index too large"))
    }

    fn index_or_slice(&mut self) -> Result<Selector, PathError> {
        let first = self.int()?;
        self.skip_ws();
        if !self.eat(b':') {
            return match first {
                Some(i) => Ok(Selector::Index(i)),
                None => self.err("expected an index"),
            };
        }
        let end = self.int()?;
        self.skip_ws();
        let step = if self.eat(b':') {
            self.int()?.unwrap_or(1)
        } else {
            1
        };
        if step == 0 {
            return self.err("a slice step of 0 selects nothing");
        }
        Ok(Selector::Slice {
            start: first.unwrap_or(0),
            end,
            step,
        })
    }

    fn quoted(&mut self) -> Result<String, PathError> {
        let quote = self.s[self.i];
        self.i += 1;
        let mut out = String::new();
        loop {
            let Some(b) = self.peek() else {
                return self.err("unterminated quoted name");
            };
            self.i += 1;
            match b {
                b if b == quote => return Ok(out),
                b'\\' => {
                    let Some(e) = self.peek() else {
                        return self.err("unterminated escape");
                    };
                    self.i += 1;
                    out.push(match e {
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'/' => '/',
                        b'\\' => '\\',
                        b'\'' => '\'',
                        b'"' => '"',
                        b'u' => self.unicode_escape()?,
                        _ => return self.err("unknown escape"),
                    });
                }
                _ => {
                    // Copy one UTF-8 character.
                    let start = self.i - 1;
                    let len = utf8_len(b);
                    let end = (start + len).min(self.s.len());
                    match std::str::from_utf8(&self.s[start..end]) {
                        Ok(c) => out.push_str(c),
                        Err(_) => return self.err("invalid UTF-8"),
                    }
                    self.i = end;
                }
            }
        }
    }

    fn hex4(&mut self) -> Result<u32, PathError> {
        let Some(h) = self.s.get(self.i..self.i + 4) else {
            return self.err("short \\u escape");
        };
        let text = std::str::from_utf8(h).map_err(|_| PathError {
            offset: self.i,
            message: "bad \\u escape".into(),
        })?;
        let v = u32::from_str_radix(text, 16).or_else(|_| self.err("bad \\u escape"))?;
        self.i += 4;
        Ok(v)
    }

    fn unicode_escape(&mut self) -> Result<char, PathError> {
        let hi = self.hex4()?;
        let code = if (0xD800..0xDC00).contains(&hi) {
            if !(self.eat(b'\\') && self.eat(b'u')) {
                return self.err("lone surrogate in \\u escape");
            }
            let lo = self.hex4()?;
            if !(0xDC00..0xE000).contains(&lo) {
                return self.err("lone surrogate in \\u escape");
            }
            0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
        } else {
            hi
        };
        char::from_u32(code).map_or_else(|| self.err("lone surrogate in \\u escape"), Ok)
    }
}

fn utf8_len(first: u8) -> usize {
    match first {
        0xF0..=0xFF => 4,
        0xE0..=0xEF => 3,
        0xC0..=0xDF => 2,
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(p: &str) -> Vec<Segment> {
        JsonPath::parse(p).unwrap().segments
    }

    #[test]
    fn parses_the_shapes_we_support() {
        assert_eq!(
            names("$.email")[0].selectors,
            vec![Selector::Name("email".into())]
        );
        assert_eq!(
            names("$['e-mail']")[0].selectors,
            vec![Selector::Name("e-mail".into())]
        );
        assert_eq!(
            names("$[\"a\\u0041\"]")[0].selectors,
            vec![Selector::Name("aA".into())]
        );
        let s = names("$.items[*].email");
        assert_eq!(s.len(), 3);
        assert_eq!(s[1].selectors, vec![Selector::Wildcard]);
        let s = names("$..email");
        assert!(s[0].descendant);
        let s = names("$.a[0, 2]");
        assert_eq!(s[1].selectors, vec![Selector::Index(0), Selector::Index(2)]);
        let s = names("$.a[1:5:2]");
        assert_eq!(
            s[1].selectors,
            vec![Selector::Slice {
                start: 1,
                end: Some(5),
                step: 2
            }]
        );
        assert_eq!(
            JsonPath::parse("$.payment.card").unwrap().last_name(),
            Some("card")
        );
        assert_eq!(
            JsonPath::parse("$.email").unwrap().single_name(),
            Some("email")
        );
        assert_eq!(JsonPath::parse("$.a.b").unwrap().single_name(), None);
    }

    #[test]
    fn refuses_what_a_stream_cannot_decide() {
        for bad in [
            "email", "$", "$[?@.a]", "$[-1]", "$.a[", "$.", "$['a'", "$[0:1:0]", "$.a b", "$[01]",
        ] {
            assert!(JsonPath::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn automaton_follows_descendants_and_slices() {
        let p = JsonPath::parse("$..email").unwrap();
        let mut got = vec![];
        p.advance(0, Step::Member("x"), &mut |s| got.push(s));
        assert_eq!(got, vec![0]);
        got.clear();
        p.advance(0, Step::Member("email"), &mut |s| got.push(s));
        assert_eq!(got, vec![0, 1]);
        assert!(p.accepts(1));
        let p = JsonPath::parse("$[1:]").unwrap();
        let mut got = vec![];
        p.advance(0, Step::Element(0), &mut |s| got.push(s));
        p.advance(0, Step::Element(7), &mut |s| got.push(s));
        assert_eq!(got, vec![1]);
    }
}
