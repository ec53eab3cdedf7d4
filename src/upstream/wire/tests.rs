use super::*;

fn head_of(text: &str, to_head: bool) -> Result<Option<Head>, Malformed> {
    parse_head(&mut BytesMut::from(text), to_head)
}

fn framing(text: &str) -> In {
    head_of(text, false)
        .expect("parses")
        .expect("complete")
        .framing
}

#[test]
fn request_framing_follows_the_declared_length_then_the_body() {
    let mut with_length = HeaderMap::new();
    with_length.insert(header::CONTENT_LENGTH, HeaderValue::from_static("12"));
    assert_eq!(
        Out::of(&Method::POST, &with_length, None, false),
        Out::Length(12)
    );
    let none = HeaderMap::new();
    assert_eq!(
        Out::of(&Method::POST, &none, Some(7), false),
        Out::Length(7)
    );
    assert_eq!(Out::of(&Method::POST, &none, None, false), Out::Chunked);
    assert_eq!(Out::of(&Method::POST, &none, Some(0), true), Out::Length(0));
    assert_eq!(Out::of(&Method::GET, &none, Some(0), true), Out::Nothing);
    assert_eq!(Out::of(&Method::DELETE, &none, None, true), Out::Nothing);
}

#[test]
fn request_head_is_written_in_order_with_its_framing() {
    let mut h = HeaderMap::new();
    h.insert(header::HOST, HeaderValue::from_static("shop.internal"));
    h.append("x-a", HeaderValue::from_static("1"));
    h.append("x-a", HeaderValue::from_static("2"));
    let mut out = BytesMut::new();
    write_head(
        &mut out,
        &Method::POST,
        "/api/c?x=1",
        &h,
        Out::Length(42),
        None,
    );
    assert_eq!(
        &out[..],
        b"POST /api/c?x=1 HTTP/1.1\r\nhost: shop.internal\r\nx-a: 1\r\nx-a: 2\r\ncontent-length: 42\r\n\r\n"
    );
    out.clear();
    write_head(
        &mut out,
        &Method::PUT,
        "/",
        &HeaderMap::new(),
        Out::Chunked,
        None,
    );
    assert_eq!(
        &out[..],
        b"PUT / HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n"
    );
    out.clear();
    write_head(
        &mut out,
        &Method::GET,
        "/",
        &HeaderMap::new(),
        Out::Nothing,
        None,
    );
    assert_eq!(&out[..], b"GET / HTTP/1.1\r\n\r\n");
    // A length the headers already carry is not said twice.
    let mut h = HeaderMap::new();
    h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("3"));
    out.clear();
    write_head(&mut out, &Method::POST, "/", &h, Out::Length(3), None);
    assert_eq!(&out[..], b"POST / HTTP/1.1\r\ncontent-length: 3\r\n\r\n");
}

#[test]
fn forwarding_headers_are_written_in_place_of_the_clients_own() {
    let mut h = HeaderMap::new();
    h.insert(header::HOST, HeaderValue::from_static("shop.example"));
    h.insert(header::ACCEPT, HeaderValue::from_static("*/*"));
    let fwd = crate::upstream::Forwarding {
        host: HeaderValue::from_static("backend:3000"),
        forwarded_for: Some(HeaderValue::from_static("192.0.2.1, 10.0.0.7")),
        proto: "https",
        forwarded_host: Some(HeaderValue::from_static("shop.example")),
        request_id: HeaderValue::from_static("abc123"),
    };
    let mut out = BytesMut::new();
    write_head(&mut out, &Method::GET, "/x", &h, Out::Nothing, Some(&fwd));
    assert_eq!(
        std::str::from_utf8(&out).expect("ascii"),
        "GET /x HTTP/1.1\r\nhost: backend:3000\r\naccept: */*\r\n\
         x-forwarded-for: 192.0.2.1, 10.0.0.7\r\nx-forwarded-proto: https\r\n\
         x-forwarded-host: shop.example\r\nx-request-id: abc123\r\n\r\n"
    );
}

#[test]
fn chunk_size_lines_are_lower_hex() {
    assert_eq!(&chunk_size_line(1)[..], b"1\r\n");
    assert_eq!(&chunk_size_line(255)[..], b"ff\r\n");
    assert_eq!(&chunk_size_line(65536)[..], b"10000\r\n");
    assert_eq!(&chunk_size_line(usize::MAX)[..], b"ffffffffffffffff\r\n");
}

#[test]
fn an_answer_head_is_taken_off_the_buffer_with_its_headers() {
    let mut buf = BytesMut::from(
        "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nX-Two: a\r\nx-two: b\r\nContent-Length: 5\r\n\r\nhello",
    );
    let head = parse_head(&mut buf, false)
        .expect("parses")
        .expect("complete");
    assert_eq!(head.status, StatusCode::CREATED);
    assert_eq!(head.version, Version::HTTP_11);
    assert_eq!(head.framing, In::Length(5));
    assert!(head.keep_alive);
    assert_eq!(head.headers["content-type"], "application/json");
    let twos: Vec<_> = head.headers.get_all("x-two").iter().collect();
    assert_eq!(twos, ["a", "b"]);
    assert_eq!(&buf[..], b"hello");
}

#[test]
fn an_incomplete_head_waits_and_a_huge_one_is_refused() {
    assert!(head_of("HTTP/1.1 200 OK\r\nContent-Le", false)
        .expect("ok")
        .is_none());
    let huge = format!("HTTP/1.1 200 OK\r\nx: {}", "a".repeat(MAX_HEAD + 1));
    assert!(matches!(head_of(&huge, false), Err(Malformed::TooLarge)));
    let many: String = (0..MAX_HEADERS + 1)
        .map(|i| format!("x-{i}: 1\r\n"))
        .collect();
    let many = format!("HTTP/1.1 200 OK\r\n{many}\r\n");
    assert!(matches!(head_of(&many, false), Err(Malformed::TooLarge)));
    assert!(matches!(
        head_of("HTTP/1.1 2x0 OK\r\n\r\n", false),
        Err(Malformed::Head)
    ));
    assert!(matches!(
        head_of("SSH-2.0-OpenSSH\r\n\r\n", false),
        Err(Malformed::Head)
    ));
}

#[test]
fn answer_framing_follows_rfc_9112() {
    assert_eq!(
        framing("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
        In::Length(0)
    );
    assert_eq!(
        framing("HTTP/1.1 200 OK\r\ncontent-length: 7, 7\r\n\r\n"),
        In::Length(7)
    );
    assert_eq!(
        framing("HTTP/1.1 200 OK\r\ncontent-length: 7\r\ncontent-length: 7\r\n\r\n"),
        In::Length(7)
    );
    assert_eq!(
        framing("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n"),
        In::Chunked
    );
    assert_eq!(
        framing("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"),
        In::Close
    );
    assert_eq!(framing("HTTP/1.1 200 OK\r\n\r\n"), In::Close);
    assert_eq!(
        framing("HTTP/1.1 204 No Content\r\nContent-Length: 9\r\n\r\n"),
        In::Empty
    );
    assert_eq!(
        framing("HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n"),
        In::Empty
    );
    assert_eq!(framing("HTTP/1.1 100 Continue\r\n\r\n"), In::Empty);
    let to_head = head_of("HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n", true);
    assert_eq!(to_head.expect("ok").expect("complete").framing, In::Empty);
}

#[test]
fn ambiguous_framing_is_an_error_not_a_guess() {
    for text in [
        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 0x5\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: \r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n",
        "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
    ] {
        assert!(
            matches!(head_of(text, false), Err(Malformed::Framing)),
            "{text}"
        );
    }
    assert!(matches!(
        head_of(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n",
            false
        ),
        Err(Malformed::Upgrade)
    ));
}

#[test]
fn keep_alive_ends_with_close_http_1_0_or_a_close_delimited_body() {
    let keep = |t: &str| head_of(t, false).expect("ok").expect("complete").keep_alive;
    assert!(keep("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"));
    assert!(!keep(
        "HTTP/1.1 200 OK\r\nConnection: keep-alive, Close\r\nContent-Length: 0\r\n\r\n"
    ));
    assert!(!keep("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n"));
    assert!(!keep("HTTP/1.1 200 OK\r\n\r\n"));
}

/// Decodes `wire` fed in pieces of `step` bytes; returns the body and what is left.
fn dechunk(wire: &[u8], step: usize) -> Result<(Vec<u8>, Vec<u8>), Malformed> {
    let mut decoder = Chunked::default();
    let mut buf = BytesMut::new();
    let mut body = Vec::new();
    for (i, piece) in wire.chunks(step).enumerate() {
        buf.extend_from_slice(piece);
        loop {
            match decoder.decode(&mut buf)? {
                Step::Data(d) => body.extend_from_slice(&d),
                Step::More => break,
                Step::Done => {
                    let unfed = &wire[((i + 1) * step).min(wire.len())..];
                    return Ok((body, [&buf[..], unfed].concat()));
                }
            }
        }
    }
    assert!(!decoder.done());
    Err(Malformed::Closed)
}

#[test]
fn chunked_bodies_decode_whatever_the_read_boundaries() {
    let wire =
        b"5\r\nhello\r\n1;ext=\"a b\"\r\n \r\nA \r\n0123456789\r\n0\r\nx-trailer: t\r\n\r\nNEXT";
    for step in 1..wire.len() {
        let (body, rest) = dechunk(wire, step).expect("decodes");
        assert_eq!(body, b"hello 0123456789", "step {step}");
        assert_eq!(rest, b"NEXT", "step {step}");
    }
    let (body, rest) = dechunk(b"0\r\n\r\n", 1).expect("empty body");
    assert!(body.is_empty() && rest.is_empty());
}

#[test]
fn broken_chunked_bodies_are_errors() {
    for wire in [
        &b"x\r\n"[..],
        b"\r\n",
        b"5\nhello\r\n0\r\n\r\n",
        b"5\r\nhelloX\r\n0\r\n\r\n",
        b"5\r\nhello\r\n0\r\n\r\r",
        b"5;\n",
        b"11111111111111111\r\n",
    ] {
        assert!(
            dechunk(wire, 1).is_err(),
            "{:?}",
            String::from_utf8_lossy(wire)
        );
    }
    let long_extension = format!("1;{}\r\n", "e".repeat(MAX_CHUNK_META + 1));
    assert!(matches!(
        dechunk(long_extension.as_bytes(), 4096),
        Err(Malformed::Chunk)
    ));
    let long_trailer = format!("0\r\nx: {}\r\n\r\n", "t".repeat(MAX_CHUNK_META + 1));
    assert!(matches!(
        dechunk(long_trailer.as_bytes(), 4096),
        Err(Malformed::Chunk)
    ));
}

#[test]
fn an_early_answer_is_told_apart_without_taking_it() {
    assert_eq!(early(b""), Early::Partial);
    assert_eq!(early(b"HTTP/1.1 100 Cont"), Early::Partial);
    let interim = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 413";
    assert_eq!(early(interim), Early::Interim(25));
    assert_eq!(
        early(b"HTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\n"),
        Early::Interim(40)
    );
    assert_eq!(early(b"HTTP/1.1 413 Too Large\r\n\r\n"), Early::Final);
    assert_eq!(early(b"HTTP/1.1 101 Switching\r\n\r\n"), Early::Final);
    assert_eq!(early(b"garbage\r\n\r\n"), Early::Final);
}

#[test]
fn hop_by_hop_headers_never_leave_the_answer_head() {
    let text = "HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Hop, close\r\nX-Hop: for this hop\r\n\
                Keep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\nTrailer: x-sum\r\n\
                Upgrade: h2c\r\nTE: trailers\r\nTransfer-Encoding: chunked\r\nX-Kept: yes\r\n\r\n";
    let head = head_of(text, false).expect("parses").expect("complete");
    let names: Vec<_> = head.headers.keys().map(HeaderName::as_str).collect();
    assert_eq!(names, ["x-kept"]);
    assert_eq!(head.framing, In::Chunked);
    assert!(!head.keep_alive, "close was among the tokens");
}
