//! A raw HTTP/1.1 client over one TCP connection: writes exactly the bytes a test gives
//! (odd paths, hop-by-hop headers, chunked bodies, lies in headers) and parses the answer
//! (Content-Length, chunked, or up to EOF). Requests should say `Connection: close`.

use std::net::SocketAddr;

use http::StatusCode;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::TcpStream;

use super::EXCHANGE_TIMEOUT;

/// A parsed answer.
#[derive(Debug)]
pub struct RawReply {
    /// Status.
    pub status: StatusCode,
    /// Headers, names lowercased, in order.
    pub headers: Vec<(String, String)>,
    /// Body (de-chunked).
    pub body: Vec<u8>,
}

impl RawReply {
    /// The first header with this name ("" when absent).
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.as_str())
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Asserts a problem+json answer with this status and reason.
    pub fn assert_problem(&self, want: StatusCode, reason: &str) {
        super::assert_problem(
            self.status,
            self.header("content-type"),
            &self.body,
            want,
            reason,
        );
    }
}

/// Writes `head`, then `body` (concurrently with reading), and reads the answer. The
/// connection stays open for writing until the answer is read: a test that sends less
/// body than it declares sees the proxy's answer to a stalled client, not to a closed one.
pub async fn exchange(addr: SocketAddr, head: Vec<u8>, body: Vec<u8>) -> RawReply {
    let run = async {
        let stream = TcpStream::connect(addr).await.expect("connect");
        let (mut rd, mut wr) = stream.into_split();
        wr.write_all(&head).await.expect("write request head");
        // The proxy may answer (and close) before it has read everything: write on the
        // side and ignore write errors; the answer is what counts.
        let writer = tokio::spawn(async move {
            let _ = wr.write_all(&body).await;
            let _ = wr.flush().await;
            wr
        });
        let buf = read_answer(&mut rd).await;
        writer.abort();
        parse(&buf)
    };
    tokio::time::timeout(EXCHANGE_TIMEOUT, run)
        .await
        .expect("raw exchange finished in time")
}

async fn read_answer(rd: &mut OwnedReadHalf) -> Vec<u8> {
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        match rd.read(&mut chunk).await {
            Ok(0) => break,
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                if complete(&buf).is_some() {
                    break;
                }
            }
            // A reset after the answer arrived still leaves the answer.
            Err(_) if !buf.is_empty() => break,
            Err(e) => panic!("reading the answer: {e}"),
        }
    }
    buf
}

/// If `buf` holds a whole answer with a known length, its size.
fn complete(buf: &[u8]) -> Option<usize> {
    let head_end = find(buf, b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    if let Some(len) = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
    {
        return (buf.len() >= head_end + len).then_some(head_end + len);
    }
    if head.contains("transfer-encoding: chunked") {
        return find(&buf[head_end..], b"\r\n0\r\n\r\n")
            .or_else(|| buf[head_end..].starts_with(b"0\r\n\r\n").then_some(0))
            .map(|_| buf.len());
    }
    None
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Parses one answer.
pub fn parse(buf: &[u8]) -> RawReply {
    let head_end = find(buf, b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no answer head in {:?}", String::from_utf8_lossy(buf)));
    let head = std::str::from_utf8(&buf[..head_end]).expect("ascii head");
    let mut lines = head.split("\r\n");
    let status_line = lines.next().expect("status line");
    let code: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("status line {status_line:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let rest = &buf[head_end + 4..];
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    let body = if chunked {
        dechunk(rest)
    } else if let Some((_, len)) = headers.iter().find(|(k, _)| k == "content-length") {
        let len: usize = len.parse().expect("content-length");
        rest[..len.min(rest.len())].to_vec()
    } else {
        rest.to_vec()
    };
    RawReply {
        status: StatusCode::from_u16(code).expect("status"),
        headers,
        body,
    }
}

fn dechunk(mut rest: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = find(rest, b"\r\n") {
        let size_text = std::str::from_utf8(&rest[..eol]).expect("chunk size");
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .expect("hex chunk size");
        if size == 0 {
            break;
        }
        let start = eol + 2;
        out.extend_from_slice(&rest[start..start + size]);
        rest = &rest[start + size + 2..];
    }
    out
}

/// Encodes `body` as HTTP/1.1 chunks of `size` bytes, with the last chunk.
pub fn chunked(body: &[u8], size: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + body.len() / size * 8 + 8);
    for c in body.chunks(size) {
        out.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
        out.extend_from_slice(c);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

/// Reads a request head from a hand-written backend's connection; returns its
/// Content-Length (0 when absent) and whether it is chunked, None at EOF.
pub async fn read_request_head(
    stream: &mut tokio::io::BufReader<TcpStream>,
) -> Option<(usize, bool)> {
    use tokio::io::AsyncBufReadExt as _;
    let (mut length, mut chunked) = (0, false);
    let mut line = String::new();
    loop {
        line.clear();
        if stream.read_line(&mut line).await.ok()? == 0 {
            return None;
        }
        if line == "\r\n" {
            return Some((length, chunked));
        }
        let lower = line.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            length = v.trim().parse().ok()?;
        }
        chunked |= lower.starts_with("transfer-encoding:") && lower.contains("chunked");
    }
}
