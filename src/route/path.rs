//! Request-target normalisation, so that no encoding trick can carry plaintext past a
//! rule: unreserved percent-escapes are decoded, the rest upper-cased, dot segments
//! removed, duplicate slashes folded. Escapes that a backend might read as a path
//! separator (`%2F`, `%5C`) or that end a string (`%00`) are refused, as are `;` path
//! parameters and anything
//! that is not an absolute path. The upstream receives exactly the normalised path.

use std::borrow::Cow;

/// Why a path was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathRefusal {
    /// Not an origin-form absolute path.
    NotAbsolute,
    /// A broken percent-escape.
    BadEscape,
    /// An escape that different servers read differently.
    AmbiguousEscape,
    /// A raw backslash or control character.
    BadCharacter,
}

/// Normalises the path part of a request target (without the query). Most paths are
/// already in normal form and come back borrowed.
pub fn normalize(path: &str) -> Result<Cow<'_, str>, PathRefusal> {
    if !path.starts_with('/') {
        return Err(PathRefusal::NotAbsolute);
    }
    if is_normal(path.as_bytes()) {
        return Ok(Cow::Borrowed(path));
    }
    normalize_slow(path).map(Cow::Owned)
}

/// No escape, no character to refuse, no empty, `.` or `..` segment: nothing to change.
fn is_normal(b: &[u8]) -> bool {
    let plain = |&c: &u8| c > 0x20 && c != 0x7f && !matches!(c, b'%' | b'\\' | b';');
    b.iter().all(plain)
        && !b
            .windows(2)
            .any(|w| w[0] == b'/' && (w[1] == b'/' || w[1] == b'.'))
}

fn normalize_slow(path: &str) -> Result<String, PathRefusal> {
    let b = path.as_bytes();
    let mut decoded = String::with_capacity(path.len());
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        match c {
            b'%' => {
                let hex = |k: usize| b.get(k).and_then(|&h| (h as char).to_digit(16));
                let (Some(hi), Some(lo)) = (hex(i + 1), hex(i + 2)) else {
                    return Err(PathRefusal::BadEscape);
                };
                let v = (hi * 16 + lo) as u8;
                if v.is_ascii_alphanumeric() || matches!(v, b'-' | b'.' | b'_' | b'~') {
                    decoded.push(v as char);
                } else if matches!(v, b'/' | b'\\' | 0) {
                    return Err(PathRefusal::AmbiguousEscape);
                } else {
                    decoded.push('%');
                    decoded.push_str(&format!("{v:02X}"));
                }
                i += 3;
            }
            // A backslash is a separator to some servers; `;` starts path parameters that
            // some servers strip before routing (`/api/customers;x=1`).
            b'\\' | b';' => return Err(PathRefusal::BadCharacter),
            c if c < 0x21 || c == 0x7f => return Err(PathRefusal::BadCharacter),
            _ => {
                decoded.push(c as char);
                i += 1;
            }
        }
    }
    let mut out: Vec<&str> = Vec::new();
    let trailing = decoded.ends_with('/') || decoded.ends_with("/.") || decoded.ends_with("/..");
    for seg in decoded.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    let mut result = String::with_capacity(decoded.len());
    for seg in &out {
        result.push('/');
        result.push_str(seg);
    }
    if result.is_empty() || (trailing && !out.is_empty()) {
        result.push('/');
    }
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_tricks_to_one_spelling() {
        assert_eq!(normalize("/api/customers").unwrap(), "/api/customers");
        assert_eq!(normalize("//api///customers/").unwrap(), "/api/customers/");
        assert_eq!(normalize("/api/x/../customers").unwrap(), "/api/customers");
        assert_eq!(normalize("/api/./%63ustomers").unwrap(), "/api/customers");
        assert_eq!(
            normalize("/api/%2e%2e/api/customers").unwrap(),
            "/api/customers"
        );
        assert_eq!(normalize("/a/%c3%a9").unwrap(), "/a/%C3%A9");
        assert_eq!(normalize("/..").unwrap(), "/");
        assert_eq!(normalize("/").unwrap(), "/");
        assert_eq!(normalize("/a/.b").unwrap(), "/a/.b");
        assert_eq!(normalize("/a/b.").unwrap(), "/a/b.");
        assert_eq!(normalize("/a/.").unwrap(), "/a/");
    }

    #[test]
    fn normal_paths_come_back_borrowed() {
        for p in [
            "/",
            "/api/customers",
            "/api/customers/",
            "/a.b/c-d_e~f",
            "/x/a.",
            "/A/%41",
        ] {
            let n = normalize(p).unwrap();
            assert_eq!(matches!(n, Cow::Borrowed(_)), !p.contains('%'), "{p}");
            assert_eq!(n, normalize_slow(p).unwrap(), "{p}");
        }
    }

    #[test]
    fn refuses_ambiguous_paths() {
        assert_eq!(
            normalize("/api/customers%2F1"),
            Err(PathRefusal::AmbiguousEscape)
        );
        assert_eq!(normalize("/api/%5c"), Err(PathRefusal::AmbiguousEscape));
        assert_eq!(normalize("/api/%00"), Err(PathRefusal::AmbiguousEscape));
        assert_eq!(normalize("/api/%zz"), Err(PathRefusal::BadEscape));
        assert_eq!(normalize("/api\\x"), Err(PathRefusal::BadCharacter));
        assert_eq!(normalize("*"), Err(PathRefusal::NotAbsolute));
        assert_eq!(
            normalize("/api/customers;jsessionid=1"),
            Err(PathRefusal::BadCharacter)
        );
    }
}
