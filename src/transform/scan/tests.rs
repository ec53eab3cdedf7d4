//! Scanner tests: selection, strictness, and a differential check against serde_json.

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

/// A body for the differential tests: one of `shapes`, each `hole` byte in it replaced
/// by the same run of `pieces` (a count drawn from `count`, each piece drawn at random).
fn random_body(
    rng: &mut impl rand::Rng,
    pieces: &[&[u8]],
    count: std::ops::Range<usize>,
    shapes: &[&[u8]],
    hole: u8,
) -> Vec<u8> {
    let mut fill = Vec::new();
    for _ in 0..rng.gen_range(count) {
        fill.extend_from_slice(pieces[rng.gen_range(0..pieces.len())]);
    }
    let mut body = Vec::new();
    for &c in shapes[rng.gen_range(0..shapes.len())] {
        if c == hole {
            body.extend_from_slice(&fill);
        } else {
            body.push(c);
        }
    }
    body
}

/// Parser differential guard: on strings and small documents built from the bytes
/// that matter (quotes, backslashes, escapes, control bytes, multi-byte UTF-8), the
/// scanner accepts exactly what serde_json accepts.
#[test]
fn accepts_exactly_what_serde_json_accepts() {
    use rand::SeedableRng;
    let pieces: [&[u8]; 25] = [
        b"a",
        b"Z9",
        "é".as_bytes(),
        "😀".as_bytes(),
        "€ and more text past sixteen bytes".as_bytes(),
        // Not UTF-8: a stray byte, a lone continuation, a cut-off sequence, an overlong
        // form, an encoded surrogate, beyond U+10FFFF.
        b"\xff",
        b"\xa9",
        b"\xe2\x82",
        b"\xc0\xaf",
        b"\xed\xa0\x80",
        b"\xf4\x90\x80\x80",
        b"@",
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
    let shapes: [&[u8]; 7] = [
        b"\"S\"",
        b"[\"S\",1]",
        b"{\"S\":\"S\"}",
        b"{\"k\":[\"S\",{\"S\":null}]}",
        b"\"S",
        b"[\"S\"]x",
        b"[\"a\"]S",
    ];
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    // On a configured path everywhere, and nowhere (the lean validation of values no
    // rule can reach): both must agree with serde_json.
    let everywhere = [JsonPath::parse("$..*").unwrap()];
    let nowhere = [JsonPath::parse("$.no_such_member").unwrap()];
    for n in 0..40_000 {
        let rules: &[JsonPath] = if n % 2 == 0 { &everywhere } else { &nowhere };
        let body = random_body(&mut rng, &pieces, 0..24, &shapes, b'S');
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

/// The same guard for numbers: every spelling built from the bytes a number may hold,
/// alone, in an array and as a member value, on a configured path and off it.
#[test]
fn numbers_are_accepted_exactly_as_serde_json_accepts_them() {
    use rand::SeedableRng;
    let pieces: [&[u8]; 10] = [b"-", b"0", b"1", b"9", b".", b"e", b"E", b"+", b"00", b" "];
    let shapes: [&[u8]; 4] = [b"N", b"[N]", b"[1,N,2]", b"{\"a\":N,\"b\":N}"];
    let everywhere = [JsonPath::parse("$..*").unwrap()];
    let nowhere = [JsonPath::parse("$.no_such_member").unwrap()];
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    for n in 0..40_000 {
        let rules: &[JsonPath] = if n % 2 == 0 { &everywhere } else { &nowhere };
        let body = random_body(&mut rng, &pieces, 1..7, &shapes, b'N');
        let ours = scan(&body, Mode::Request(rules), LIMITS, never);
        let theirs = serde_json::from_slice::<serde_json::Value>(&body);
        // serde_json (without arbitrary precision) refuses numbers beyond f64; the proxy
        // passes numbers on as written, whatever their size (SPEC), and a backend that
        // refuses them refuses the whole document.
        if theirs
            .as_ref()
            .is_err_and(|e| e.to_string().contains("number out of range"))
        {
            continue;
        }
        assert_eq!(
            ours.is_ok(),
            theirs.is_ok(),
            "{}",
            String::from_utf8_lossy(&body)
        );
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
    // Bytes that are not UTF-8 anywhere, also after another fault, in either direction
    // and off any rule's path: refused as not UTF-8.
    let nowhere = [JsonPath::parse("$.no_such_member").unwrap()];
    for bad in [
        &b"\xff"[..],
        b"{\"a\":1}\xff",
        b"[1,\xff]",
        b"[1 2,\"\xff\"]",
        b"{\"\xc3\":1}",
        b"[\"a\",\"\xed\xa0\x80\"]",
        b"[\"a long plain run before it \xc0\xaf\"]",
    ] {
        let shown = String::from_utf8_lossy(bad);
        assert_eq!(err(bad), ScanError::InvalidUtf8, "{shown}");
        let lean = scan(bad, Mode::Request(&nowhere), LIMITS, ours);
        assert_eq!(lean.unwrap_err(), ScanError::InvalidUtf8, "{shown}");
        let response = scan(bad, Mode::Response, LIMITS, ours);
        assert_eq!(response.unwrap_err(), ScanError::InvalidUtf8, "{shown}");
    }
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

/// Values no rule can reach go through the lean validator: each refusal above must
/// come out the same there, at the same offset.
#[test]
fn refuses_the_same_where_no_rule_reaches() {
    let nowhere = [JsonPath::parse("$.no_such_member").unwrap()];
    let everywhere = [JsonPath::parse("$..*").unwrap()];
    let deep = |n: usize| format!("{{\"x\":{}{}}}", "[".repeat(n), "]".repeat(n));
    let many = format!("{{\"x\":[{}0]}}", "0,".repeat(10_000));
    let too_deep = deep(64);
    let bodies = [
        &br#"{"x":{"a":1,}}"#[..],
        br#"{"x":[1,]}"#,
        br#"{"x":{"a"}}"#,
        br#"{"x":{"a":1 "b":2}}"#,
        br#"{"x":[1 2]}"#,
        br#"{"x":{"a":1]}"#,
        br#"{"x":[1}}"#,
        br#"{"x":[nul]}"#,
        br#"{"x":[tru]}"#,
        br#"{"x":[-]}"#,
        br#"{"x":[1.]}"#,
        br#"{"x":[1e]}"#,
        br#"{"x":["a\qb"]}"#,
        br#"{"x":["\ud800"]}"#,
        br#"{"x":["\ud800\u0041"]}"#,
        br#"{"x":["\udc00"]}"#,
        br#"{"x":["\u12g4"]}"#,
        b"{\"x\":[\"a\x01b\"]}",
        br#"{"x":{"k":"tk1.1.rs.abcdefgh.xyz"}}"#,
        br#"{"x":[[[{"k":["tk1\u002e1"]}]]]}"#,
        br#"{"x":[{}]"#,
        br#"{"x":[[],{},[{}]],"y":"#,
        too_deep.as_bytes(),
        many.as_bytes(),
    ];
    for body in bodies {
        let lean = scan(body, Mode::Request(&nowhere), LIMITS, ours).unwrap_err();
        let full = scan(body, Mode::Request(&everywhere), LIMITS, ours).unwrap_err();
        assert_eq!(lean, full, "{}", String::from_utf8_lossy(body));
    }
    assert_eq!(
        scan(too_deep.as_bytes(), Mode::Request(&nowhere), LIMITS, ours).unwrap_err(),
        ScanError::TooDeep
    );
    assert!(scan(deep(63).as_bytes(), Mode::Request(&nowhere), LIMITS, ours).is_ok());
    let fine = br#"{"x":[{"a":[1,-2.5e3,true,false,null,"s",{}],"b":{"c":[]}} , [ ]],"y":1}"#;
    assert!(scan(fine, Mode::Request(&nowhere), LIMITS, ours).is_ok());
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

/// Blanks now and then, of every kind JSON allows.
fn blank(rng: &mut impl rand::Rng, out: &mut Vec<u8>) {
    if rng.gen_ratio(1, 4) {
        out.extend_from_slice([&b" "[..], b"\n  ", b"\t", b"\r\n"][rng.gen_range(0..4)]);
    }
}

/// A random JSON document for the lean-versus-long-way comparisons: nested objects and
/// arrays, our tokens (plain and escaped), other strings, numbers, literals, blanks.
fn random_document(rng: &mut impl rand::Rng, depth: u32, out: &mut Vec<u8>) {
    let scalars: [&[u8]; 9] = [
        br#""tk1.a""#,
        br#""tk1\u002eb""#,
        br#""[tarnkappe""#,
        br#""plain text""#,
        br#""a\"b\\c""#,
        b"-12.5e3",
        b"0",
        b"true",
        b"null",
    ];
    match (depth, rng.gen_range(0..4)) {
        (0, _) | (_, 0) => out.extend_from_slice(scalars[rng.gen_range(0..scalars.len())]),
        (_, 1 | 2) => {
            out.push(b'{');
            for n in 0..rng.gen_range(0..5) {
                if n > 0 {
                    out.push(b',');
                }
                blank(rng, out);
                out.extend_from_slice(format!("\"k{n}\"").as_bytes());
                blank(rng, out);
                out.push(b':');
                blank(rng, out);
                random_document(rng, depth - 1, out);
                blank(rng, out);
            }
            out.push(b'}');
        }
        _ => {
            out.push(b'[');
            for n in 0..rng.gen_range(0..5) {
                if n > 0 {
                    out.push(b',');
                }
                blank(rng, out);
                random_document(rng, depth - 1, out);
                blank(rng, out);
            }
            out.push(b']');
        }
    }
}

/// In the response direction a body without bound labels goes through the lean
/// validator, one with bound labels the long way (it needs every object's record
/// keys). Both must find the same tokens with the same member names and containers,
/// and refuse a broken body the same way at the same offset.
#[test]
fn responses_scan_the_same_the_lean_and_the_long_way() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(23);
    let absent = ["no_such_member"];
    let mut tokens = 0;
    for n in 0..3_000 {
        let mut body = Vec::new();
        random_document(&mut rng, 5, &mut body);
        if n % 3 == 0 && !body.is_empty() {
            // Broken on purpose: cut short, or a byte changed.
            let at = rng.gen_range(0..body.len());
            if n % 2 == 0 {
                body.truncate(at);
            } else {
                body[at] = [b'x', b'"', b',', b'}', 0x01][rng.gen_range(0..5)];
            }
        }
        let lean = scan(&body, Mode::Response, LIMITS, ours);
        let long = scan_keyed(&body, Mode::Response, &absent, LIMITS, ours);
        match (lean, long) {
            (Ok(lean), Ok(long)) => {
                let key = |t: &TokenAt| (t.start, t.end, t.escaped, t.key, t.container);
                let lean: Vec<_> = lean.tokens.iter().map(key).collect();
                let long: Vec<_> = long.tokens.iter().map(key).collect();
                assert_eq!(lean, long, "{}", String::from_utf8_lossy(&body));
                tokens += lean.len();
            }
            (lean, long) => assert_eq!(
                lean.map(|_| ()),
                long.map(|_| ()),
                "{}",
                String::from_utf8_lossy(&body)
            ),
        }
    }
    assert!(tokens > 1_000, "too few tokens compared: {tokens}");
}

/// Every value of a document, containers included, counted independently of the scanner.
fn values_in(v: &serde_json::Value) -> usize {
    1 + match v {
        serde_json::Value::Array(items) => items.iter().map(values_in).sum(),
        serde_json::Value::Object(members) => members.values().map(values_in).sum(),
        _ => 0,
    }
}

/// The lean loop stops counting values when the body is too short to hold more than
/// `max_nodes`: the bound it relies on must hold for every document, the densest shapes
/// included, and the limit must still refuse one value too many.
#[test]
fn bodies_too_short_to_exceed_the_node_limit_hold_no_more_values() {
    use rand::SeedableRng;
    let mut rng = rand::rngs::StdRng::seed_from_u64(31);
    let dense = [
        "0",
        "[0,0,0]",
        "[[[]]]",
        r#"{"":0}"#,
        r#"[{},[],"",0]"#,
        "[]",
    ];
    let mut bodies: Vec<Vec<u8>> = dense.iter().map(|d| d.as_bytes().to_vec()).collect();
    for _ in 0..2_000 {
        let mut body = Vec::new();
        random_document(&mut rng, 6, &mut body);
        bodies.push(body);
    }
    for body in &bodies {
        let parsed: serde_json::Value = serde_json::from_slice(body).unwrap();
        let values = values_in(&parsed);
        assert!(
            values <= body.len().div_ceil(2),
            "{}",
            String::from_utf8_lossy(body)
        );
        // Any limit below the count (the highest suffices) leaves counting on.
        assert!(
            could_exceed(body.len(), values - 1),
            "{}",
            String::from_utf8_lossy(body)
        );
    }
    // [0,0,...,0] with k zeros: k + 1 values in 2k + 1 bytes, the densest there is.
    for k in [1, 2, 10, 4_999] {
        let body = format!("[{}0]", "0,".repeat(k - 1));
        let at = |max_nodes| {
            let limits = Limits {
                max_depth: 64,
                max_nodes,
            };
            scan(body.as_bytes(), Mode::Request(&[]), limits, never).map(|_| ())
        };
        assert_eq!(at(k + 1), Ok(()), "{k}");
        assert_eq!(at(k), Err(ScanError::TooManyNodes), "{k}");
    }
}
