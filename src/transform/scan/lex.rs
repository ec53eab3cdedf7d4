//! The lexical half of the strict scanner: whitespace, literals, numbers and strings
//! (escapes, surrogate pairs, control bytes) checked byte by byte or eight bytes at a
//! time, and whether a string value is one of our ciphertexts. Errors carry offsets,
//! never bytes of the body.

use std::borrow::Cow;

use super::{detect, ScanError, Scanner, TokenAt, ValueType};

impl Scanner<'_, '_> {
    pub(super) fn malformed<T>(&self) -> Result<T, ScanError> {
        Err(ScanError::Malformed(self.i))
    }

    pub(super) fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.b.get(self.i) {
            self.i += 1;
        }
    }

    pub(super) fn literal(&mut self, word: &[u8], t: ValueType) -> Result<ValueType, ScanError> {
        if self.b[self.i..].starts_with(word) {
            self.i += word.len();
            Ok(t)
        } else {
            self.malformed()
        }
    }

    /// A number value starting at `start`: validated, and (request direction) shown to
    /// the card-number detector.
    #[inline]
    pub(super) fn number_value(&mut self, start: usize) -> Result<(), ScanError> {
        self.number()?;
        if self.request {
            if let Some(found) = detect::in_number(&self.b[start..self.i]) {
                self.out.findings.push((start, self.i, found));
            }
        }
        Ok(())
    }

    /// A number, walked with a local index (kept in a register): about 1,300 per
    /// 64 KB document.
    #[inline(always)]
    fn number(&mut self) -> Result<(), ScanError> {
        let b = self.b;
        let mut i = self.i;
        if b[i] == b'-' {
            i += 1;
        }
        let ok = match b.get(i) {
            Some(b'0') => {
                i += 1;
                true
            }
            Some(b'1'..=b'9') => {
                i = digits_end(b, i + 1);
                true
            }
            _ => false,
        };
        let ok = ok && {
            if b.get(i) == Some(&b'.') {
                let start = i + 1;
                i = digits_end(b, start);
                i > start
            } else {
                true
            }
        };
        let ok = ok && {
            if let Some(b'e' | b'E') = b.get(i) {
                i += 1;
                if let Some(b'+' | b'-') = b.get(i) {
                    i += 1;
                }
                let start = i;
                i = digits_end(b, start);
                i > start
            } else {
                true
            }
        };
        self.i = i;
        if ok {
            Ok(())
        } else {
            self.malformed()
        }
    }

    /// Validates a string value starting at `self.i` (the quote); returns whether it
    /// holds escapes, and notes an `@` for the email detector.
    #[inline(always)]
    pub(super) fn string(&mut self) -> Result<bool, ScanError> {
        self.saw_at = false;
        self.lex_string::<true>()
    }

    /// Validates a member name: as [`Scanner::string`], without looking for `@`.
    #[inline(always)]
    pub(super) fn name(&mut self) -> Result<bool, ScanError> {
        self.lex_string::<false>()
    }

    #[inline(always)]
    fn lex_string<const AT: bool>(&mut self) -> Result<bool, ScanError> {
        let b = self.b;
        let mut i = self.i + 1;
        let mut escaped = false;
        loop {
            // Find the next quote, backslash or control byte, eight bytes at a time.
            loop {
                match b.get(i..i + 8) {
                    Some(chunk) => {
                        let w = u64::from_le_bytes(chunk.try_into().unwrap_or([0; 8]));
                        let mask = if AT {
                            special(w) | at_sign(w)
                        } else {
                            special(w)
                        };
                        if mask != 0 {
                            i += (mask.trailing_zeros() / 8) as usize;
                            break;
                        }
                        i += 8;
                    }
                    None => {
                        while b.get(i).is_some_and(|&c| {
                            c != b'"' && c != b'\\' && c >= 0x20 && (!AT || c != b'@')
                        }) {
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

    pub(super) fn escape(&mut self) -> Result<(), ScanError> {
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

    pub(super) fn hex4(&mut self) -> Result<u32, ScanError> {
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
    #[inline(always)]
    pub(super) fn check_string(
        &mut self,
        start: usize,
        escaped: bool,
        key: Option<(usize, usize, bool)>,
        container: u32,
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
            container,
        });
        Ok(())
    }
}

/// Where the run of ASCII digits from `i` ends.
#[inline(always)]
fn digits_end(b: &[u8], mut i: usize) -> usize {
    while b.get(i).is_some_and(u8::is_ascii_digit) {
        i += 1;
    }
    i
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// The classic "has a zero byte" test: the lowest marked byte is exact (a borrow can
/// only mark bytes above a real match), which is all the callers use.
fn zero_byte(x: u64) -> u64 {
    x.wrapping_sub(ONES) & !x & HIGH
}

/// Marks the bytes of `w` that end a run of plain string content: a quote, a backslash
/// or a control byte.
fn special(w: u64) -> u64 {
    let quote = zero_byte(w ^ (ONES * u64::from(b'"')));
    let backslash = zero_byte(w ^ (ONES * u64::from(b'\\')));
    let control = w.wrapping_sub(ONES * 0x20) & !w & HIGH;
    quote | backslash | control
}

/// Marks the `@` bytes of `w` (for the email detector).
fn at_sign(w: u64) -> u64 {
    zero_byte(w ^ (ONES * u64::from(b'@')))
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

pub(super) fn unescape(s: &str) -> String {
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
