//! The lexical half of the strict scanner: whitespace, literals, numbers and strings
//! (escapes, surrogate pairs, control bytes, UTF-8) searched sixteen bytes at a time,
//! and whether a string value is one of our ciphertexts. Errors carry offsets, never bytes
//! of the body.

use std::borrow::Cow;

use super::{detect, Key, ScanError, Scanner, TokenAt, ValueType};

impl Scanner<'_, '_> {
    pub(super) fn malformed<T>(&self) -> Result<T, ScanError> {
        Err(ScanError::Malformed(self.i))
    }

    pub(super) fn ws(&mut self) {
        self.i = blanks(self.b, self.i);
    }

    pub(super) fn literal(&mut self, word: &[u8], t: ValueType) -> Result<ValueType, ScanError> {
        self.i = literal(self.b, self.i, word)?;
        Ok(t)
    }

    /// A number value starting at `self.i`: validated, and (request direction) shown to
    /// the card-number detector.
    #[inline]
    pub(super) fn number_value(&mut self) -> Result<(), ScanError> {
        let start = self.i;
        self.i = number(self.b, start)?;
        self.number_seen(self.request, start, self.i);
        Ok(())
    }

    /// A number spanning `start..end` was read: shown to the card-number detector in the
    /// request direction. Inlined, so that where `request` is a constant (the lean loop,
    /// compiled per direction) the test is too.
    #[inline(always)]
    pub(super) fn number_seen(&mut self, request: bool, start: usize, end: usize) {
        if request && end - start >= detect::SHORTEST_CARD {
            if let Some(found) = detect::in_number(&self.b[start..end]) {
                self.out.findings.push((start, end, found));
            }
        }
    }

    /// A string value starting at `self.i` (the quote): validated, shown to the
    /// detectors and refused or recorded if it is one of ours.
    #[inline(always)]
    pub(super) fn string_value(&mut self, key: Key, container: u32) -> Result<bool, ScanError> {
        let start = self.i;
        let lexed = string::<true>(self.b, start)?;
        self.i = lexed.end;
        self.string_seen(self.request, start, lexed, key, container)?;
        Ok(lexed.escaped)
    }

    /// Validates a member name starting at `self.i` (the quote); returns whether it
    /// holds escapes.
    #[inline(always)]
    pub(super) fn name(&mut self) -> Result<bool, ScanError> {
        let lexed = string::<false>(self.b, self.i)?;
        self.i = lexed.end;
        Ok(lexed.escaped)
    }

    /// A string value spanning `start..lexed.end` (quotes included) was read: shown to
    /// the detectors, and refused (request) or recorded (response) if it is one of ours.
    /// Inlined, so that where `request` is a constant (the lean loop, compiled per
    /// direction) its tests are too.
    #[inline(always)]
    pub(super) fn string_seen(
        &mut self,
        request: bool,
        start: usize,
        lexed: Lexed,
        key: Key,
        container: u32,
    ) -> Result<(), ScanError> {
        let end = lexed.end;
        let content = &self.b[start + 1..end - 1];
        if request && detect::may_find(content, lexed.at) {
            if let Some(found) = detect::in_string(content, lexed.at) {
                self.out.findings.push((start, end, found));
            }
        }
        let candidate =
            lexed.escaped || content.starts_with(b"tk1.") || content.first() == Some(&b'[');
        if !candidate {
            return Ok(());
        }
        let ours = {
            let text = content_str(content, lexed.escaped);
            (self.is_ours)(&text)
        };
        if !ours {
            return Ok(());
        }
        if request {
            return Err(ScanError::OurCiphertext(start));
        }
        self.out.tokens.push(TokenAt {
            start,
            end,
            escaped: lexed.escaped,
            key,
            container,
        });
        Ok(())
    }
}

/// Where the blanks from `i` end.
#[inline(always)]
pub(super) fn blanks(b: &[u8], mut i: usize) -> usize {
    while let Some(b' ' | b'\t' | b'\n' | b'\r') = b.get(i) {
        i += 1;
    }
    i
}

/// `word` (a literal) at `i`: where it ends.
#[inline(always)]
pub(super) fn literal(b: &[u8], i: usize, word: &[u8]) -> Result<usize, ScanError> {
    if b.get(i..).is_some_and(|rest| rest.starts_with(word)) {
        Ok(i + word.len())
    } else {
        Err(ScanError::Malformed(i))
    }
}

/// A number at `i`, walked with a local index (kept in a register): where it ends.
#[inline(always)]
pub(super) fn number(b: &[u8], mut i: usize) -> Result<usize, ScanError> {
    if b.get(i) == Some(&b'-') {
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
    if ok {
        Ok(i)
    } else {
        Err(ScanError::Malformed(i))
    }
}

/// A validated string.
#[derive(Debug, Clone, Copy)]
pub(super) struct Lexed {
    /// Just after its closing quote.
    pub end: usize,
    /// It holds escapes (its content must be decoded).
    pub escaped: bool,
    /// It holds an `@` (looked for only when asked: for the email detector, so that
    /// it needs no second pass).
    pub at: bool,
}

/// Validates the string whose opening quote is at `i`; looks for `@` when `AT`.
#[inline(always)]
pub(super) fn string<const AT: bool>(b: &[u8], i: usize) -> Result<Lexed, ScanError> {
    let mut i = i + 1;
    let mut lexed = Lexed {
        end: 0,
        escaped: false,
        at: false,
    };
    loop {
        i = stop::<AT, true>(b, i);
        match b.get(i) {
            Some(b'"') => {
                lexed.end = i + 1;
                return Ok(lexed);
            }
            Some(0x80..) => i = beyond_ascii(b, i)?,
            Some(b'\\') => {
                lexed.escaped = true;
                i = escape(b, i + 1)?;
            }
            Some(b'@') => {
                lexed.at = true;
                i += 1;
            }
            _ => return Err(ScanError::Malformed(i)),
        }
    }
}

/// The run of string content from `i`, where a byte above ASCII is: checked as UTF-8 up
/// to the next quote, backslash, control byte or `@` (all ASCII, so never inside a
/// character), and where it ends.
#[cold]
fn beyond_ascii(b: &[u8], i: usize) -> Result<usize, ScanError> {
    let end = stop::<true, false>(b, i);
    match std::str::from_utf8(&b[i..end]) {
        Ok(_) => Ok(end),
        Err(_) => Err(ScanError::InvalidUtf8),
    }
}

/// The escape whose backslash is just before `i`: where it ends.
fn escape(b: &[u8], i: usize) -> Result<usize, ScanError> {
    match b.get(i) {
        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => Ok(i + 1),
        Some(b'u') => {
            let (unit, i) = hex4(b, i + 1)?;
            if (0xDC00..0xE000).contains(&unit) {
                return Err(ScanError::LoneSurrogate(i));
            }
            if !(0xD800..0xDC00).contains(&unit) {
                return Ok(i);
            }
            if !b[i..].starts_with(b"\\u") {
                return Err(ScanError::LoneSurrogate(i));
            }
            let (low, i) = hex4(b, i + 2)?;
            if !(0xDC00..0xE000).contains(&low) {
                return Err(ScanError::LoneSurrogate(i));
            }
            Ok(i)
        }
        _ => Err(ScanError::Malformed(i)),
    }
}

/// Four hex digits at `i`: their value, and where they end.
fn hex4(b: &[u8], i: usize) -> Result<(u32, usize), ScanError> {
    let Some(h) = b.get(i..i + 4) else {
        return Err(ScanError::Malformed(i));
    };
    let mut v = 0u32;
    for &c in h {
        let d = (c as char).to_digit(16).ok_or(ScanError::Malformed(i))?;
        v = v * 16 + d;
    }
    Ok((v, i + 4))
}

/// Where the run of ASCII digits from `i` ends.
#[inline(always)]
fn digits_end(b: &[u8], mut i: usize) -> usize {
    while b.get(i).is_some_and(u8::is_ascii_digit) {
        i += 1;
    }
    i
}

/// How many bytes at the start of `b` a JSON string holds as they are: the length of
/// the run before the first quote, backslash or control byte (the flow log's writer
/// escapes its strings with this).
pub fn plain_prefix(b: &[u8]) -> usize {
    stop::<false, false>(b, 0)
}

/// Where the run of plain string content from `i` ends: at the next quote, backslash
/// or control byte (or `@`, when `AT`; or a byte above ASCII, when `HIGH`), or at the
/// end of `b`. Sixteen bytes at a time with SSE2 where every CPU has it (x86-64), eight
/// at a time elsewhere, then byte by byte for the tail.
#[inline(always)]
fn stop<const AT: bool, const HIGH: bool>(b: &[u8], mut i: usize) -> usize {
    #[cfg(target_arch = "x86_64")]
    {
        use safe_arch::{
            bitor_m128i, cmp_eq_mask_i8_m128i, load_unaligned_m128i, min_u8_m128i,
            move_mask_i8_m128i, set_splat_i8_m128i,
        };
        let quote = set_splat_i8_m128i(b'"' as i8);
        let backslash = set_splat_i8_m128i(b'\\' as i8);
        let below_space = set_splat_i8_m128i(0x1F);
        let at = set_splat_i8_m128i(b'@' as i8);
        while let Some(chunk) = b.get(i..i + 16) {
            let v = load_unaligned_m128i(chunk.try_into().unwrap_or(&[0; 16]));
            // A byte is a control byte when the unsigned minimum with 0x1F leaves it as is.
            let mut hit = bitor_m128i(
                bitor_m128i(
                    cmp_eq_mask_i8_m128i(v, quote),
                    cmp_eq_mask_i8_m128i(v, backslash),
                ),
                cmp_eq_mask_i8_m128i(min_u8_m128i(v, below_space), v),
            );
            if AT {
                hit = bitor_m128i(hit, cmp_eq_mask_i8_m128i(v, at));
            }
            let mut mask = move_mask_i8_m128i(hit);
            if HIGH {
                // The sign bits are the bytes above ASCII.
                mask |= move_mask_i8_m128i(v);
            }
            if mask != 0 {
                return i + mask.trailing_zeros() as usize;
            }
            i += 16;
        }
    }
    while let Some(chunk) = b.get(i..i + 8) {
        let w = u64::from_le_bytes(chunk.try_into().unwrap_or([0; 8]));
        let mut mask = if AT {
            special(w) | at_sign(w)
        } else {
            special(w)
        };
        if HIGH {
            mask |= w & HIGH_BITS;
        }
        if mask != 0 {
            return i + (mask.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while b.get(i).is_some_and(|&c| {
        c != b'"' && c != b'\\' && c >= 0x20 && (!AT || c != b'@') && (!HIGH || c < 0x80)
    }) {
        i += 1;
    }
    i
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH_BITS: u64 = 0x8080_8080_8080_8080;

/// The classic "has a zero byte" test: the lowest marked byte is exact (a borrow can
/// only mark bytes above a real match), which is all the callers use.
fn zero_byte(x: u64) -> u64 {
    x.wrapping_sub(ONES) & !x & HIGH_BITS
}

/// Marks the bytes of `w` that end a run of plain string content: a quote, a backslash
/// or a control byte.
fn special(w: u64) -> u64 {
    let quote = zero_byte(w ^ (ONES * u64::from(b'"')));
    let backslash = zero_byte(w ^ (ONES * u64::from(b'\\')));
    let control = w.wrapping_sub(ONES * 0x20) & !w & HIGH_BITS;
    quote | backslash | control
}

/// Marks the `@` bytes of `w` (for the email detector).
fn at_sign(w: u64) -> u64 {
    zero_byte(w ^ (ONES * u64::from(b'@')))
}

/// The content of a validated string (without quotes), decoded when it holds escapes.
pub fn content_str(raw: &[u8], escaped: bool) -> Cow<'_, str> {
    // The string was checked as JSON and its content as UTF-8 before this is called.
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

#[cfg(test)]
mod tests {
    use super::stop;

    /// The wide search against the obvious byte loop: every stopping byte at every
    /// offset of bodies from 0 to 40 bytes long, so that each width (16, 8, 1) and each
    /// hand-over between them is taken; non-ASCII bytes stop it only when asked.
    #[test]
    fn stops_where_the_byte_loop_stops() {
        let naive = |b: &[u8], at: bool, high: bool| {
            b.iter()
                .position(|&c| {
                    c == b'"' || c == b'\\' || c < 0x20 || (at && c == b'@') || (high && c >= 0x80)
                })
                .unwrap_or(b.len())
        };
        for len in 0..40 {
            for &special in b"\"\\\x00\x1f@" {
                for pos in 0..=len {
                    // Plain bytes from both ends of the range, including UTF-8 continuation bytes.
                    let mut body: Vec<u8> = (0..len)
                        .map(|k| [b'a', 0x20, 0x7f, 0x80, 0xff][k % 5])
                        .collect();
                    if pos < len {
                        body[pos] = special;
                    }
                    let mut ascii = body.clone();
                    ascii
                        .iter_mut()
                        .filter(|c| **c >= 0x80)
                        .for_each(|c| *c = b'b');
                    for body in [&body, &ascii] {
                        let (b, n) = (&body[..], naive);
                        assert_eq!(stop::<true, false>(b, 0), n(b, true, false), "{b:?}");
                        assert_eq!(stop::<false, false>(b, 0), n(b, false, false), "{b:?}");
                        assert_eq!(stop::<true, true>(b, 0), n(b, true, true), "{b:?}");
                        assert_eq!(stop::<false, true>(b, 0), n(b, false, true), "{b:?}");
                        if len > 3 {
                            let tail = &b[3..];
                            assert_eq!(stop::<true, false>(b, 3), 3 + n(tail, true, false));
                            assert_eq!(stop::<false, true>(b, 3), 3 + n(tail, false, true));
                        }
                    }
                }
            }
        }
    }
}
