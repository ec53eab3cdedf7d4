//! Request-target normalisation, so that no encoding trick can carry plaintext past a
//! rule: unreserved percent-escapes are decoded, the rest upper-cased, dot segments
//! removed, duplicate slashes folded. Escapes that a backend might read as a path
//! separator (`%2F`, `%5C`) or that end a string (`%00`) are refused, as are `;` path
//! parameters and anything
//! that is not an absolute path. The upstream receives exactly the normalised path.

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

/// Normalises the path part of a request target (without the query).
pub fn normalize(path: &str) -> Result<String, PathRefusal> {
    if !path.starts_with('/') {
        return Err(PathRefusal::NotAbsolute);
    }
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
