//! Test-side tools for the operations tests: a small raw HTTP/1.1 client (keep-alive,
//! pipelining, any method token, any request target, so it can send what a well-behaved
//! client library would refuse to), and a strict parser of the Prometheus text format.
//!
//! It talks to the proxy, the admin listener and Prometheus from the outside only; it
//! never reaches into the proxy's state.

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Longest wait for one answer: a hang fails the test instead of stalling the run.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(20);

/// One request, written exactly as given.
#[derive(Clone, Debug)]
pub struct Req {
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Req {
    pub fn new(method: &str, target: &str) -> Req {
        Req {
            method: method.to_owned(),
            target: target.to_owned(),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    pub fn get(target: &str) -> Req {
        Req::new("GET", target)
    }

    /// A POST with a JSON body (or anything claiming to be JSON).
    pub fn json(method: &str, target: &str, body: impl Into<Vec<u8>>) -> Req {
        Req::new(method, target)
            .header("content-type", "application/json")
            .body(body)
    }

    pub fn header(mut self, name: &str, value: &str) -> Req {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Req {
        self.body = body.into();
        self
    }

    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(format!("{} {} HTTP/1.1\r\n", self.method, self.target).as_bytes());
        out.extend_from_slice(b"host: tarnkappe.test\r\n");
        for (n, v) in &self.headers {
            out.extend_from_slice(format!("{n}: {v}\r\n").as_bytes());
        }
        if !self.body.is_empty() || matches!(self.method.as_str(), "POST" | "PUT" | "PATCH") {
            out.extend_from_slice(format!("content-length: {}\r\n", self.body.len()).as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&self.body);
    }
}

/// One answer.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    /// The first header of that (lowercase) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): status {} {}", self.status, self.text()))
    }
}

/// A keep-alive HTTP/1.1 connection.
pub struct Conn {
    stream: BufReader<TcpStream>,
}

impl Conn {
    pub async fn open(addr: SocketAddr) -> io::Result<Conn> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Conn {
            stream: BufReader::new(stream),
        })
    }

    /// Sends one request and reads its answer.
    pub async fn send(&mut self, req: &Req) -> io::Result<Resp> {
        let mut answers = self.pipeline(std::slice::from_ref(req)).await?;
        Ok(answers.remove(0))
    }

    /// Writes every request at once, then reads the answers in order.
    pub async fn pipeline(&mut self, reqs: &[Req]) -> io::Result<Vec<Resp>> {
        let mut buf = Vec::new();
        for r in reqs {
            r.encode(&mut buf);
        }
        let work = async {
            self.stream.get_mut().write_all(&buf).await?;
            let mut out = Vec::with_capacity(reqs.len());
            for r in reqs {
                out.push(read_response(&mut self.stream, r.method == "HEAD").await?);
            }
            Ok(out)
        };
        tokio::time::timeout(ANSWER_TIMEOUT, work)
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no answer in time"))?
    }
}

/// One request on a fresh connection.
pub async fn send(addr: SocketAddr, req: &Req) -> io::Result<Resp> {
    Conn::open(addr).await?.send(req).await
}

/// One request on a fresh connection; panics on a transport error.
pub async fn must(addr: SocketAddr, req: &Req) -> Resp {
    send(addr, req)
        .await
        .unwrap_or_else(|e| panic!("{} {} to {addr}: {e}", req.method, req.target))
}

async fn read_response(r: &mut BufReader<TcpStream>, head_only: bool) -> io::Result<Resp> {
    loop {
        let (status, headers) = read_head(r).await?;
        if (100..200).contains(&status) {
            continue;
        }
        let find = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
        };
        let body = if head_only || status == 204 || status == 304 {
            Vec::new()
        } else if find("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
            read_chunked(r).await?
        } else if let Some(len) = find("content-length") {
            let len: usize = len.trim().parse().map_err(|_| bad("content-length"))?;
            let mut body = vec![0; len];
            r.read_exact(&mut body).await?;
            body
        } else {
            let mut body = Vec::new();
            r.read_to_end(&mut body).await?;
            body
        };
        return Ok(Resp {
            status,
            headers,
            body,
        });
    }
}

async fn read_head(r: &mut BufReader<TcpStream>) -> io::Result<(u16, Vec<(String, String)>)> {
    let mut line = String::new();
    if r.read_line(&mut line).await? == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "connection closed before an answer",
        ));
    }
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("status line"))?;
    let mut headers = Vec::new();
    loop {
        line.clear();
        if r.read_line(&mut line).await? == 0 {
            return Err(bad("headers cut off"));
        }
        let l = line.trim_end();
        if l.is_empty() {
            return Ok((status, headers));
        }
        let (n, v) = l.split_once(':').ok_or_else(|| bad("header line"))?;
        headers.push((n.trim().to_ascii_lowercase(), v.trim().to_owned()));
    }
}

async fn read_chunked(r: &mut BufReader<TcpStream>) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        r.read_line(&mut line).await?;
        let size = line.trim().split(';').next().unwrap_or("");
        let size = usize::from_str_radix(size, 16).map_err(|_| bad("chunk size"))?;
        if size == 0 {
            loop {
                line.clear();
                if r.read_line(&mut line).await? == 0 || line.trim().is_empty() {
                    return Ok(body);
                }
            }
        }
        let start = body.len();
        body.resize(start + size, 0);
        r.read_exact(&mut body[start..]).await?;
        let mut crlf = [0u8; 2];
        r.read_exact(&mut crlf).await?;
    }
}

fn bad(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("bad answer: {what}"))
}

/// Percent-encodes a query parameter value (everything but unreserved characters).
pub fn query_escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// One sample line of the text format.
#[derive(Debug, Clone)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// A parsed `/metrics` answer.
#[derive(Debug, Default)]
pub struct Exposition {
    /// Family name -> declared type.
    pub types: BTreeMap<String, String>,
    pub samples: Vec<Sample>,
}

impl Exposition {
    /// Sum of the samples named `name` whose labels include every pair of `with`.
    pub fn sum(&self, name: &str, with: &[(&str, &str)]) -> f64 {
        self.samples
            .iter()
            .filter(|s| s.name == name)
            .filter(|s| {
                with.iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|s| s.value)
            .sum()
    }

    /// Number of series (sample lines) whose name starts with `prefix`.
    pub fn series(&self, prefix: &str) -> usize {
        self.samples
            .iter()
            .filter(|s| s.name.starts_with(prefix))
            .count()
    }
}

/// Parses the Prometheus text format (0.0.4) strictly: every sample must belong to a
/// family declared by `# TYPE` before it, names and labels must be well formed, and every
/// histogram series must end in a `+Inf` bucket equal to its `_count`.
pub fn parse_exposition(text: &str) -> Result<Exposition, String> {
    let mut out = Exposition::default();
    for (i, line) in text.lines().enumerate() {
        let at = |m: &str| format!("line {}: {m}: {line}", i + 1);
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            match (parts.next(), parts.next(), parts.next()) {
                (Some("TYPE"), Some(name), Some(ty)) => {
                    if !valid_name(name) {
                        return Err(at("bad family name"));
                    }
                    if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&ty) {
                        return Err(at("unknown type"));
                    }
                    if out.types.insert(name.to_owned(), ty.to_owned()).is_some() {
                        return Err(at("family declared twice"));
                    }
                }
                (Some("HELP"), Some(name), _) if valid_name(name) => {}
                (Some("HELP"), ..) => return Err(at("bad HELP line")),
                _ => {}
            }
            continue;
        }
        let sample = parse_sample(line).map_err(|m| at(&m))?;
        if family_of(&sample.name, &out.types).is_none() {
            return Err(at("sample of an undeclared family"));
        }
        out.samples.push(sample);
    }
    check_histograms(&out)?;
    Ok(out)
}

fn family_of<'a>(name: &'a str, types: &BTreeMap<String, String>) -> Option<&'a str> {
    if types.contains_key(name) {
        return Some(name);
    }
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix) {
            if matches!(
                types.get(base).map(String::as_str),
                Some("histogram" | "summary")
            ) {
                return Some(base);
            }
        }
    }
    None
}

fn check_histograms(e: &Exposition) -> Result<(), String> {
    for (family, ty) in &e.types {
        if ty != "histogram" {
            continue;
        }
        for count in e
            .samples
            .iter()
            .filter(|s| s.name == format!("{family}_count"))
        {
            let inf = e.samples.iter().find(|s| {
                s.name == format!("{family}_bucket")
                    && s.labels.get("le").map(String::as_str) == Some("+Inf")
                    && s.labels
                        .iter()
                        .filter(|(k, _)| *k != "le")
                        .eq(count.labels.iter())
            });
            match inf {
                Some(b) if b.value == count.value => {}
                _ => {
                    return Err(format!(
                        "{family}{:?}: no +Inf bucket equal to _count",
                        count.labels
                    ))
                }
            }
        }
    }
    Ok(())
}

fn valid_name(n: &str) -> bool {
    let mut chars = n.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn parse_sample(line: &str) -> Result<Sample, String> {
    let name_end = line.find(['{', ' ']).ok_or("no value")?;
    let name = &line[..name_end];
    if !valid_name(name) {
        return Err("bad metric name".into());
    }
    let mut labels = BTreeMap::new();
    let mut rest = &line[name_end..];
    if let Some(inner) = rest.strip_prefix('{') {
        let (parsed, after) = parse_labels(inner)?;
        labels = parsed;
        rest = after;
    }
    let mut fields = rest.split_whitespace();
    let value = fields.next().ok_or("no value")?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        v => v.parse().map_err(|_| format!("bad value `{v}`"))?,
    };
    if let Some(ts) = fields.next() {
        ts.parse::<i64>().map_err(|_| "bad timestamp")?;
    }
    if fields.next().is_some() {
        return Err("trailing text".into());
    }
    Ok(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

/// Parses `a="x",b="y"}` and returns the labels and the text after the `}`.
fn parse_labels(mut s: &str) -> Result<(BTreeMap<String, String>, &str), String> {
    let mut labels = BTreeMap::new();
    loop {
        s = s.trim_start_matches(',');
        if let Some(after) = s.strip_prefix('}') {
            return Ok((labels, after));
        }
        let eq = s.find('=').ok_or("label without `=`")?;
        let name = &s[..eq];
        if !valid_name(name) || name.contains(':') {
            return Err(format!("bad label name `{name}`"));
        }
        let mut chars = s[eq + 1..].char_indices();
        if chars.next().map(|(_, c)| c) != Some('"') {
            return Err("label value not quoted".into());
        }
        let mut value = String::new();
        let mut end = None;
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => match chars.next().map(|(_, c)| c) {
                    Some('n') => value.push('\n'),
                    Some('\\') => value.push('\\'),
                    Some('"') => value.push('"'),
                    _ => return Err("bad escape in label value".into()),
                },
                '"' => {
                    end = Some(eq + 1 + i + 1);
                    break;
                }
                c => value.push(c),
            }
        }
        let end = end.ok_or("unterminated label value")?;
        if labels.insert(name.to_owned(), value).is_some() {
            return Err(format!("label `{name}` twice"));
        }
        s = &s[end..];
    }
}

/// Writes raw bytes on a fresh connection and reads until the server closes it.
pub async fn raw_exchange(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(bytes).await.expect("write");
    let mut out = Vec::new();
    let _ = tokio::time::timeout(ANSWER_TIMEOUT, stream.read_to_end(&mut out)).await;
    out
}
