//! Detectors for sensitive-looking data that no rule covers: email addresses, payment
//! card numbers (Luhn-valid) and IBANs (mod-97-valid). A finding names the detector and
//! nothing else; it goes into the flow event (`uncovered`) and a metric, so an owner
//! sees a leak the config does not handle. Never records the value.

/// What a detector found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Detector {
    /// Something shaped like an email address.
    Email,
    /// A Luhn-valid 13-19 digit number.
    CardNumber,
    /// A mod-97-valid IBAN.
    Iban,
}

impl Detector {
    /// The detector's name, as written in flow events and metric labels.
    pub fn name(self) -> &'static str {
        match self {
            Detector::Email => "email",
            Detector::CardNumber => "card_number",
            Detector::Iban => "iban",
        }
    }
}

/// Whether [`in_string`] can find anything in `s`: a cheap look at its length and
/// first bytes, inlined into the scanner so most strings cost no call.
#[inline(always)]
pub fn may_find(s: &[u8], has_at: bool) -> bool {
    match s {
        [first, second, ..] if s.len() >= 6 => {
            has_at
                || first.is_ascii_digit()
                || *first == b' '
                || *first == b'-'
                || (s.len() >= 15 && first.is_ascii_uppercase() && second.is_ascii_uppercase())
        }
        _ => false,
    }
}

/// Shorter numbers are never a card number (the scanner skips the call).
pub const SHORTEST_CARD: usize = 13;

/// Checks a string value's raw content; `has_at` says whether it holds an `@` (the
/// scanner notes that on its way through).
pub fn in_string(s: &[u8], has_at: bool) -> Option<Detector> {
    if s.len() < 6 || s.len() > 320 {
        return None;
    }
    if has_at {
        let at = memchr::memchr(b'@', s)?;
        return is_email(s, at).then_some(Detector::Email);
    }
    if s.len() <= 23
        && s.iter()
            .all(|&b| b.is_ascii_digit() || b == b' ' || b == b'-')
    {
        return luhn(s).then_some(Detector::CardNumber);
    }
    if (15..=42).contains(&s.len()) && s[..2].iter().all(u8::is_ascii_uppercase) {
        return is_iban(s).then_some(Detector::Iban);
    }
    None
}

/// Checks a JSON number's raw text.
pub fn in_number(raw: &[u8]) -> Option<Detector> {
    if !(SHORTEST_CARD..=19).contains(&raw.len()) {
        return None;
    }
    (raw.iter().all(u8::is_ascii_digit) && luhn(raw)).then_some(Detector::CardNumber)
}

fn is_email(s: &[u8], at: usize) -> bool {
    let (local, domain) = (&s[..at], &s[at + 1..]);
    let ok = |b: &u8| b.is_ascii_alphanumeric() || b"._%+-".contains(b);
    !local.is_empty()
        && local.iter().all(ok)
        && domain.len() >= 3
        && domain
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'.' || *b == b'-')
        && domain.contains(&b'.')
        && !domain.starts_with(b".")
        && !domain.ends_with(b".")
}

fn luhn(s: &[u8]) -> bool {
    let digits = || {
        s.iter()
            .rev()
            .filter(|b| b.is_ascii_digit())
            .map(|b| u32::from(b - b'0'))
    };
    let count = digits().count();
    let first = digits().next_back();
    if !(13..=19).contains(&count) || digits().all(|d| Some(d) == first) {
        return false;
    }
    let sum: u32 = digits()
        .enumerate()
        .map(|(i, d)| match (i % 2 == 1, d * 2) {
            (true, twice) if twice > 9 => twice - 9,
            (true, twice) => twice,
            (false, _) => d,
        })
        .sum();
    sum % 10 == 0
}

fn is_iban(s: &[u8]) -> bool {
    let compact: Vec<u8> = s.iter().copied().filter(|&b| b != b' ').collect();
    if !(15..=34).contains(&compact.len())
        || !compact[2..4].iter().all(u8::is_ascii_digit)
        || !compact
            .iter()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
    {
        return false;
    }
    let rearranged = compact[4..].iter().chain(&compact[..4]);
    let mut rem: u32 = 0;
    for &b in rearranged {
        let v = if b.is_ascii_digit() {
            u32::from(b - b'0')
        } else {
            u32::from(b - b'A') + 10
        };
        rem = if v >= 10 {
            (rem * 100 + v) % 97
        } else {
            (rem * 10 + v) % 97
        };
    }
    rem == 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_what_looks_personal_and_nothing_else() {
        let in_string = |s: &[u8]| in_string(s, s.contains(&b'@'));
        assert_eq!(
            in_string(b"jane.doe+x@example.co.uk"),
            Some(Detector::Email)
        );
        assert_eq!(
            in_string(b"4111 1111 1111 1111"),
            Some(Detector::CardNumber)
        );
        assert_eq!(in_string(b"4111-1111-1111-1112"), None);
        assert_eq!(
            in_string(b"DE89 3704 0044 0532 0130 00"),
            Some(Detector::Iban)
        );
        assert_eq!(in_string(b"DE89370400440532013001"), None);
        assert_eq!(in_number(b"4111111111111111"), Some(Detector::CardNumber));
        for plain in [
            &b"gold plan"[..],
            b"@handle",
            b"a@b",
            b"0000000000000000",
            b"2026-11-29",
            b"hello world",
        ] {
            assert_eq!(in_string(plain), None, "{}", String::from_utf8_lossy(plain));
        }
    }

    /// The scanner's shortcut never hides a finding: over strings built from the bytes
    /// the detectors look at, wherever `in_string` finds something, `may_find` said so.
    #[test]
    fn the_shortcut_never_hides_a_finding() {
        use rand::{Rng, SeedableRng};
        let alphabet = b"0123456789 -@.abcXYZDE";
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        let mut found = 0;
        for _ in 0..200_000 {
            let len = rng.gen_range(0..40);
            let s: Vec<u8> = (0..len)
                .map(|_| alphabet[rng.gen_range(0..alphabet.len())])
                .collect();
            let at = s.contains(&b'@');
            if in_string(&s, at).is_some() {
                found += 1;
                assert!(may_find(&s, at), "{}", String::from_utf8_lossy(&s));
            }
        }
        for s in [
            &b"4111 1111 1111 1111"[..],
            b"DE89 3704 0044 0532 0130 00",
            b"a@b.de",
        ] {
            assert!(in_string(s, s.contains(&b'@')).is_some());
            assert!(may_find(s, s.contains(&b'@')));
        }
        assert!(found > 0);
    }
}
