//! HTTP/1.1 on the upstream connection, without I/O: the request head the proxy
//! writes, the answer head it reads, how each body is framed (RFC 9112 §6) and the
//! chunked decoder. The backend is the one the config names, but what it sends is
//! still checked: a head or framing this module cannot read for certain is an error
//! (the client gets a 502), never a guess.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode, Version};

/// The most an answer head may take.
pub const MAX_HEAD: usize = 64 * 1024;
/// The most header lines an answer head may have.
const MAX_HEADERS: usize = 100;
/// The most bytes of chunk extensions and trailer lines an answer body may carry.
const MAX_CHUNK_META: usize = 16 * 1024;

/// Why the backend's bytes could not be read.
#[derive(Debug, thiserror::Error)]
pub enum Malformed {
    /// The head does not parse as HTTP/1.x.
    #[error("answer head does not parse")]
    Head,
    /// The head is larger than [`MAX_HEAD`] or has too many lines.
    #[error("answer head too large")]
    TooLarge,
    /// Content-Length is not one number, or Transfer-Encoding comes with it or
    /// on an HTTP/1.0 answer.
    #[error("answer framing is ambiguous")]
    Framing,
    /// `101 Switching Protocols`, which the proxy never asks for.
    #[error("unasked protocol switch")]
    Upgrade,
    /// The connection ended before a complete answer head.
    #[error("connection closed before the answer head")]
    Closed,
    /// The chunked body breaks its grammar.
    #[error("chunked body does not parse")]
    Chunk,
}

/// How the request body is framed on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Out {
    /// No body and no length header (a GET, say).
    Nothing,
    /// Exactly this many bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

impl Out {
    /// The framing of a request with these headers and body: the Content-Length the
    /// request carries (hyper checked a client's; the proxy sets its own after a
    /// rewrite), else the body's exact size, else chunked.
    pub fn of(method: &Method, headers: &HeaderMap, exact: Option<u64>, empty: bool) -> Out {
        if let Some(n) = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse().ok())
        {
            return Out::Length(n);
        }
        match exact {
            Some(0) | None if empty => {
                // A method that carries a body says so even when it is empty.
                if matches!(*method, Method::POST | Method::PUT | Method::PATCH) {
                    Out::Length(0)
                } else {
                    Out::Nothing
                }
            }
            Some(n) => Out::Length(n),
            None => Out::Chunked,
        }
    }
}

/// Writes the request head: request line; with `fwd`, its `Host`; `headers` in their
/// order (names are lower case, values were checked when made; with `fwd`, the client's
/// `Host` is left out); the other forwarding headers of `fwd`; and the framing header
/// when the headers lack it.
pub fn write_head(
    out: &mut BytesMut,
    method: &Method,
    target: &str,
    headers: &HeaderMap,
    framing: Out,
    fwd: Option<&super::Forwarding>,
) {
    out.put_slice(method.as_str().as_bytes());
    out.put_u8(b' ');
    out.put_slice(target.as_bytes());
    out.put_slice(b" HTTP/1.1\r\n");
    if let Some(fwd) = fwd {
        line(out, b"host", fwd.host.as_bytes());
    }
    for (name, value) in headers {
        if fwd.is_some() && name == header::HOST {
            continue;
        }
        line(out, name.as_str().as_bytes(), value.as_bytes());
    }
    if let Some(fwd) = fwd {
        if let Some(xff) = &fwd.forwarded_for {
            line(out, b"x-forwarded-for", xff.as_bytes());
        }
        line(out, b"x-forwarded-proto", fwd.proto.as_bytes());
        if let Some(host) = &fwd.forwarded_host {
            line(out, b"x-forwarded-host", host.as_bytes());
        }
        line(out, b"x-request-id", fwd.request_id.as_bytes());
    }
    match framing {
        Out::Length(n) if !headers.contains_key(header::CONTENT_LENGTH) => {
            line(
                out,
                b"content-length",
                crate::text::decimal(n, &mut [0; 20]),
            );
        }
        Out::Chunked => line(out, b"transfer-encoding", b"chunked"),
        _ => {}
    }
    out.put_slice(b"\r\n");
}

/// One header line.
fn line(out: &mut BytesMut, name: &[u8], value: &[u8]) {
    out.put_slice(name);
    out.put_slice(b": ");
    out.put_slice(value);
    out.put_slice(b"\r\n");
}

/// The size line of one chunk of `len` bytes.
pub fn chunk_size_line(len: usize) -> Bytes {
    let mut digits = [0u8; 16];
    let hex = crate::text::hex_number(len as u64, &mut digits);
    let mut line = BytesMut::with_capacity(hex.len() + 2);
    line.put_slice(hex);
    line.put_slice(b"\r\n");
    line.freeze()
}

/// How the answer body is framed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum In {
    /// No body (an answer to HEAD, a 204 or a 304).
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// Chunked.
    Chunked,
    /// Until the backend closes the connection.
    Close,
}

/// An answer head, its hop-by-hop headers already taken out.
#[derive(Debug)]
pub struct Head {
    pub status: StatusCode,
    pub version: Version,
    pub headers: HeaderMap,
    pub framing: In,
    /// Whether the connection may carry another exchange after this answer.
    pub keep_alive: bool,
}

/// Parses an answer head at the start of `buf` and takes it off: None while the
/// head is incomplete. An interim (1xx) answer comes back like any other; the caller
/// drops it and reads on.
pub fn parse_head(buf: &mut BytesMut, to_head: bool) -> Result<Option<Head>, Malformed> {
    // Left uninitialised: httparse fills what it uses (3 KiB not cleared per answer).
    let mut lines =
        [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut answer = httparse::Response::new(&mut []);
    let parsed = httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut answer,
        buf,
        &mut lines,
    );
    let len = match parsed {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => return Err(Malformed::TooLarge),
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(Malformed::TooLarge),
        Err(_) => return Err(Malformed::Head),
    };
    if len > MAX_HEAD {
        return Err(Malformed::TooLarge);
    }
    let status = answer
        .code
        .and_then(|c| StatusCode::from_u16(c).ok())
        .ok_or(Malformed::Head)?;
    let version = match answer.version {
        Some(0) => Version::HTTP_10,
        _ => Version::HTTP_11,
    };
    // Where each name and value sits, so that the values can share the head's bytes.
    let base = buf.as_ptr() as usize;
    let mut spans = [(0u32, 0u32, 0u32, 0u32); MAX_HEADERS];
    let count = answer.headers.len();
    for (span, line) in spans.iter_mut().zip(answer.headers.iter()) {
        let name = line.name.as_ptr() as usize - base;
        let value = line.value.as_ptr() as usize - base;
        *span = (
            name as u32,
            line.name.len() as u32,
            value as u32,
            line.value.len() as u32,
        );
    }
    let bytes = buf.split_to(len).freeze();
    let mut headers = HeaderMap::with_capacity(count);
    let mut length = None;
    let mut chunked = None;
    let mut close = version == Version::HTTP_10;
    // Names the Connection header lists (rare): hop-by-hop too.
    let mut named = Vec::new();
    for &(name, name_len, value, value_len) in &spans[..count] {
        let name = HeaderName::from_bytes(&bytes[name as usize..(name + name_len) as usize])
            .map_err(|_| Malformed::Head)?;
        let value = bytes.slice(value as usize..(value + value_len) as usize);
        if name == header::CONTENT_LENGTH {
            length = Some(content_length(&value, length)?);
        } else if name == header::TRANSFER_ENCODING {
            // The last coding decides: chunked or not at all (read until close).
            chunked = Some(last_token(&value).eq_ignore_ascii_case(b"chunked"));
        } else if name == header::CONNECTION {
            close |= super::connection_tokens(&value, &mut named);
        }
        // Hop-by-hop headers (RFC 9110 §7.6.1) are for this connection only: the
        // answer the client gets never carries them.
        if super::bit(&name) & super::Seen::HOP_BY_HOP != 0 {
            continue;
        }
        let value = HeaderValue::from_maybe_shared(value).map_err(|_| Malformed::Head)?;
        headers.append(name, value);
    }
    for name in &named {
        headers.remove(name);
    }
    if status == StatusCode::SWITCHING_PROTOCOLS {
        return Err(Malformed::Upgrade);
    }
    let framing = if status.is_informational()
        || to_head
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        In::Empty
    } else {
        match (chunked, length) {
            // Both, or a coding on HTTP/1.0: a sign of smuggling, never a guess.
            (Some(_), Some(_)) => return Err(Malformed::Framing),
            (Some(_), None) if version == Version::HTTP_10 => return Err(Malformed::Framing),
            (Some(true), None) => In::Chunked,
            (Some(false), None) | (None, None) => In::Close,
            (None, Some(n)) => In::Length(n),
        }
    };
    let keep_alive = !close && framing != In::Close;
    Ok(Some(Head {
        status,
        version,
        headers,
        framing,
        keep_alive,
    }))
}

/// What the start of an answer that arrived while the request was still being
/// written is.
#[derive(Debug, PartialEq, Eq)]
pub enum Early {
    /// Not a whole head yet.
    Partial,
    /// A whole interim (1xx, not 101) head of this many bytes: the request goes on.
    Interim(usize),
    /// The final answer (or bytes that are not a head): the request stops here.
    Final,
}

/// Looks at the start of `buf` without taking anything.
pub fn early(buf: &[u8]) -> Early {
    let mut lines = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut answer = httparse::Response::new(&mut lines);
    match answer.parse(buf) {
        Ok(httparse::Status::Partial) if buf.len() <= MAX_HEAD => Early::Partial,
        Ok(httparse::Status::Complete(len))
            if answer
                .code
                .is_some_and(|c| (100..200).contains(&c) && c != 101) =>
        {
            Early::Interim(len)
        }
        _ => Early::Final,
    }
}

/// A Content-Length value (a list of equal numbers is one number), checked against
/// an earlier line's.
fn content_length(value: &[u8], earlier: Option<u64>) -> Result<u64, Malformed> {
    let mut found = earlier;
    for item in value.split(|b| *b == b',') {
        let item = item.trim_ascii();
        if item.is_empty() || item.len() > 19 || !item.iter().all(u8::is_ascii_digit) {
            return Err(Malformed::Framing);
        }
        let n = item.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
        if found.is_some_and(|f| f != n) {
            return Err(Malformed::Framing);
        }
        found = Some(n);
    }
    found.ok_or(Malformed::Framing)
}

fn last_token(value: &[u8]) -> &[u8] {
    value
        .rsplit(|b| *b == b',')
        .next()
        .unwrap_or(value)
        .trim_ascii()
}

/// What the chunked decoder found.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Body bytes.
    Data(Bytes),
    /// More input is needed.
    More,
    /// The body has ended (trailers, if any, were read and dropped).
    Done,
}

/// Where the chunked decoder is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum At {
    /// In the hex size; whether a digit was seen.
    Size(bool),
    /// After the size: blanks, an extension or the line end.
    AfterSize,
    /// In a chunk extension.
    Extension,
    /// Expecting the LF of the size line.
    SizeLf,
    /// In chunk data.
    Data,
    /// Expecting the CR after chunk data.
    DataCr,
    /// Expecting the LF after chunk data.
    DataLf,
    /// At the start of a trailer line or the final empty line.
    TrailerStart,
    /// In a trailer line.
    Trailer,
    /// Expecting the LF ending a trailer line.
    TrailerLf,
    /// Expecting the LF of the final empty line.
    EndLf,
    Done,
}

/// Decodes a chunked body from a buffer the caller keeps filling.
#[derive(Debug)]
pub struct Chunked {
    at: At,
    /// Bytes left in the current chunk, or the size being read.
    size: u64,
    /// Extension and trailer bytes seen so far.
    meta: usize,
}

impl Default for Chunked {
    fn default() -> Self {
        Chunked {
            at: At::Size(false),
            size: 0,
            meta: 0,
        }
    }
}

impl Chunked {
    /// Takes what it can from the front of `buf`.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Step, Malformed> {
        let mut used = 0;
        while used < buf.len() {
            if self.at == At::Data {
                buf.advance(used);
                let take = usize::try_from(self.size)
                    .unwrap_or(usize::MAX)
                    .min(buf.len());
                self.size -= take as u64;
                if self.size == 0 {
                    self.at = At::DataCr;
                }
                return Ok(Step::Data(buf.split_to(take).freeze()));
            }
            let b = buf[used];
            used += 1;
            self.at = self.next(b)?;
            if self.at == At::Done {
                buf.advance(used);
                return Ok(Step::Done);
            }
        }
        buf.advance(used);
        Ok(if self.at == At::Done {
            Step::Done
        } else {
            Step::More
        })
    }

    /// Whether the whole body has been read.
    pub fn done(&self) -> bool {
        self.at == At::Done
    }

    /// One framing byte.
    fn next(&mut self, b: u8) -> Result<At, Malformed> {
        let at = match (self.at, b) {
            (At::Size(_), b) if b.is_ascii_hexdigit() => {
                let digit = (b as char).to_digit(16).unwrap_or(0);
                if self.size >> 60 != 0 {
                    return Err(Malformed::Chunk);
                }
                self.size = self.size << 4 | u64::from(digit);
                At::Size(true)
            }
            (At::Size(true) | At::AfterSize, b' ' | b'\t') => At::AfterSize,
            (At::Size(true) | At::AfterSize, b';') => At::Extension,
            (At::Size(true) | At::AfterSize | At::Extension, b'\r') => At::SizeLf,
            (At::Extension, b'\n') => return Err(Malformed::Chunk),
            (At::Extension, _) => {
                self.meta += 1;
                At::Extension
            }
            (At::SizeLf, b'\n') if self.size == 0 => At::TrailerStart,
            (At::SizeLf, b'\n') => At::Data,
            (At::DataCr, b'\r') => At::DataLf,
            (At::DataLf, b'\n') => At::Size(false),
            (At::TrailerStart, b'\r') => At::EndLf,
            (At::TrailerStart | At::Trailer, b) if b != b'\r' && b != b'\n' => {
                self.meta += 1;
                At::Trailer
            }
            (At::Trailer, b'\r') => At::TrailerLf,
            (At::TrailerLf, b'\n') => At::TrailerStart,
            (At::EndLf, b'\n') => At::Done,
            _ => return Err(Malformed::Chunk),
        };
        if self.meta > MAX_CHUNK_META {
            return Err(Malformed::Chunk);
        }
        Ok(at)
    }
}

#[cfg(test)]
mod tests;
