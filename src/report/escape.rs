//! Output stage of the report: escaping for every output syntax, in one place so that it
//! can be reviewed as a whole. Names come from the config but are treated as untrusted:
//! no name may open a tag, an attribute, a link, an edge or a statement in any format.

/// Text for XML/HTML content and attribute values: `& < > " '` as entities, control
/// characters as U+FFFD (they are not allowed in XML).
pub fn xml(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// Text for a Markdown table cell (CommonMark + GFM): punctuation that could start
/// markup, a link, raw HTML, math or a table cell is backslash-escaped, and so are the
/// `:` of `://` and the `.` of `www.` (GFM autolinks); line breaks become spaces.
pub fn md(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    let mut rest = s;
    while let Some(c) = rest.chars().next() {
        let after = &rest[c.len_utf8()..];
        match c {
            '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '|' | '~' | '#' | '!' | '&' | '$'
            | '@' => {
                out.push('\\');
                out.push(c);
            }
            ':' if after.starts_with("//") => out.push_str("\\:"),
            '.' if out.ends_with("www") || out.ends_with("WWW") => out.push_str("\\."),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
        rest = after;
    }
    out
}

/// Text inside a double-quoted Mermaid label: quotes, `#`, `<`, `>`, `&`, `|` and
/// backticks as Mermaid entity codes; control characters as spaces.
pub fn mermaid(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '"' | '#' | '<' | '>' | '&' | '|' | '`' | ';' | '[' | ']' | '{' | '}' | '(' | ')' => {
                out.push_str(&format!("#{};", u32::from(c)));
            }
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// Text inside a double-quoted Graphviz DOT string: backslash and quote escaped (so no
/// name can form an escape sequence like `\l`), control characters as spaces.
pub fn dot(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// At most `max` characters, the last one `…` when cut.
pub fn fit(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const NASTY: &str = "<script>alert(1)</script>\"'&|`#[x](http://e.x)\n\\l";

    #[test]
    fn xml_leaves_no_markup() {
        let e = xml(NASTY);
        assert!(!e.contains(['<', '>', '"', '\'', '\n']));
        assert_eq!(xml("a&b"), "a&amp;b");
    }

    #[test]
    fn md_leaves_no_markup() {
        assert_eq!(md("see http://x or www.y"), "see http\\://x or www\\.y");
        assert_eq!(md("12:30 (s)"), "12:30 (s)");
        let e = md(NASTY);
        assert!(!e.contains('\n'));
        for (i, c) in e.char_indices() {
            if matches!(c, '<' | '|' | '[' | '`') {
                assert_eq!(&e[i - 1..i], "\\", "{e}");
            }
        }
    }

    #[test]
    fn mermaid_and_dot_stay_inside_quotes() {
        let m = mermaid(NASTY);
        assert!(!m.contains(['"', '<', '|', '\n', '[', ']']));
        let d = dot(NASTY);
        assert!(!d.contains('\n'));
        assert!(d.contains("\\\"") && d.contains("\\\\l"));
        assert!(!d.replace("\\\\", "").replace("\\\"", "").contains('"'));
    }

    #[test]
    fn fit_cuts_on_characters() {
        assert_eq!(fit("abcdef", 4), "abc…");
        assert_eq!(fit("äöü", 3), "äöü");
    }
}
