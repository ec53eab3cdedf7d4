//! The upstream side: a pool of keep-alive HTTP/1.1 connections per listener, the
//! hop-by-hop header rules of RFC 9110 §7.6.1 and the forwarding headers.
//! Never logs a header value.
//!
//! The pool is ours rather than hyper-util's general client: one listener's exchanges
//! and its connections stay on one thread, a connection goes back to the pool when the
//! response body it carried has ended (no task per request to watch for that), and a
//! request that a pooled connection never sent (the backend closed it while idle) is
//! sent again on another one.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::Authority;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;

use crate::body::{self, Body};

/// Idle connections older than this are closed rather than reused.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// At most this many idle connections are kept per listener.
const MAX_IDLE: usize = 256;
/// Pooled connections tried for one request before a fresh one is opened.
const STALE_RETRIES: usize = 3;

/// Why an exchange with the upstream failed.
#[derive(Debug)]
pub enum UpstreamError {
    /// No connection within the connect timeout, or refused.
    Connect,
    /// The connection broke before a complete answer head.
    Exchange,
}

/// One listener's connections to the upstream.
#[derive(Clone)]
pub struct UpstreamClient {
    pool: Arc<Pool>,
}

struct Pool {
    connect_timeout: Duration,
    idle: Mutex<Idle>,
}

#[derive(Default)]
struct Idle {
    /// Whom the connections below talk to; changes only on a reload.
    authority: Option<Authority>,
    /// Bumped when the authority changes, so that connections to the old one that
    /// come back from an exchange are closed instead of pooled.
    epoch: u64,
    /// Most recently used last.
    conns: Vec<(SendRequest<Body>, Instant)>,
}

/// Builds a listener's client.
pub fn client(connect_timeout: Duration) -> UpstreamClient {
    UpstreamClient {
        pool: Arc::new(Pool {
            connect_timeout,
            idle: Mutex::new(Idle::default()),
        }),
    }
}

impl UpstreamClient {
    /// Sends `req` (origin-form URI, `Host` set) to `authority`; the answer's body
    /// returns the connection to the pool once it has been read to its end.
    pub async fn send(
        &self,
        authority: &Authority,
        mut req: Request<Body>,
    ) -> Result<Response<Body>, UpstreamError> {
        let mut stale = 0;
        loop {
            let pooled = if stale < STALE_RETRIES {
                self.pool.take(authority)
            } else {
                None
            };
            let reused = pooled.is_some();
            let (mut sender, epoch) = match pooled {
                Some(found) => found,
                // Boxed: a new connection is rare, and its future would otherwise
                // make every exchange's future larger (and costlier to move).
                None => Box::pin(self.pool.connect(authority)).await?,
            };
            match sender.try_send_request(req).await {
                Ok(resp) => {
                    let pool = self.pool.clone();
                    return Ok(resp.map(|incoming| {
                        body::boxed(Pooled {
                            incoming,
                            ended: false,
                            slot: Some((sender, epoch, pool)),
                        })
                    }));
                }
                Err(mut e) => match e.take_message() {
                    // Never written: the backend had closed this idle connection.
                    Some(back) if reused => {
                        req = back;
                        stale += 1;
                    }
                    _ => return Err(UpstreamError::Exchange),
                },
            }
        }
    }
}

impl Idle {
    /// Points the pool at `authority`: after a reload that changed it, the old
    /// connections go. Returns whether it changed.
    fn retarget(&mut self, authority: &Authority) -> bool {
        // Compared as written (the config's spelling), not as `Authority::eq` does
        // (case-insensitively): cheaper, and a respelt authority only empties the pool.
        if self.authority.as_ref().map(Authority::as_str) == Some(authority.as_str()) {
            return false;
        }
        self.conns.clear();
        self.authority = Some(authority.clone());
        self.epoch += 1;
        true
    }
}

impl Pool {
    fn lock(&self) -> std::sync::MutexGuard<'_, Idle> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A ready idle connection to `authority`, most recently used first.
    fn take(&self, authority: &Authority) -> Option<(SendRequest<Body>, u64)> {
        let mut idle = self.lock();
        if idle.retarget(authority) {
            return None;
        }
        let mut busy = Vec::new();
        let mut found = None;
        while let Some((sender, since)) = idle.conns.pop() {
            if sender.is_closed() || since.elapsed() > IDLE_TIMEOUT {
                continue;
            }
            if sender.is_ready() {
                found = Some((sender, idle.epoch));
                break;
            }
            // Still finishing the request body it carried: keep it for later.
            busy.push((sender, since));
        }
        idle.conns.extend(busy.into_iter().rev());
        found
    }

    /// Takes back a connection whose answer has been read to its end.
    fn put(&self, sender: SendRequest<Body>, epoch: u64) {
        if sender.is_closed() {
            return;
        }
        let mut idle = self.lock();
        if idle.epoch != epoch {
            return;
        }
        if idle
            .conns
            .first()
            .is_some_and(|(_, since)| since.elapsed() > IDLE_TIMEOUT)
        {
            idle.conns.remove(0);
        }
        if idle.conns.len() < MAX_IDLE {
            idle.conns.push((sender, Instant::now()));
        }
    }

    async fn connect(
        &self,
        authority: &Authority,
    ) -> Result<(SendRequest<Body>, u64), UpstreamError> {
        let epoch = {
            let mut idle = self.lock();
            idle.retarget(authority);
            idle.epoch
        };
        let host = authority.host();
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        let port = authority.port_u16().unwrap_or(80);
        let stream = tokio::time::timeout(
            self.connect_timeout,
            tokio::net::TcpStream::connect((host, port)),
        )
        .await
        .map_err(|_| UpstreamError::Connect)?
        .map_err(|_| UpstreamError::Connect)?;
        let _ = stream.set_nodelay(true);
        let (sender, conn) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|_| UpstreamError::Connect)?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "upstream connection ended with an error");
            }
        });
        Ok((sender, epoch))
    }
}

/// An answer body that hands its connection back to the pool once read to its end.
struct Pooled {
    incoming: Incoming,
    ended: bool,
    slot: Option<(SendRequest<Body>, u64, Arc<Pool>)>,
}

impl http_body::Body for Pooled {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.incoming).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => self.ended = true,
            // A broken body leaves the connection unusable.
            Poll::Ready(Some(Err(_))) => self.slot = None,
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.ended || self.incoming.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.incoming.size_hint()
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        // Only a connection whose answer was read whole can carry another exchange.
        if http_body::Body::is_end_stream(self) {
            if let Some((sender, epoch, pool)) = self.slot.take() {
                pool.put(sender, epoch);
            }
        }
    }
}

/// `X-Forwarded-For`.
pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
/// `X-Forwarded-Proto`.
pub const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
/// `X-Forwarded-Host`.
pub const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
/// `X-Request-Id`: kept when the client sent a safe one, else generated.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// How many names [`HOP_BY_HOP`] holds.
const HOP_BY_HOP_COUNT: usize = 9;

const HOP_BY_HOP: [HeaderName; HOP_BY_HOP_COUNT] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Which of the headers the proxy acts on a message carries, found in one pass over
/// its names: most messages carry none of them, and a hashed lookup per header would
/// cost more than the pass.
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct Seen(u16);

impl Seen {
    /// Bit of `X-Request-Id`.
    pub const REQUEST_ID: u16 = 1 << HOP_BY_HOP_COUNT;
    /// Bit of the caller token header.
    pub const CALLER: u16 = 1 << (HOP_BY_HOP_COUNT + 1);
    /// Bit of `X-Forwarded-For`.
    pub const FORWARDED_FOR: u16 = 1 << (HOP_BY_HOP_COUNT + 2);
    const HOP_BY_HOP: u16 = (1 << HOP_BY_HOP_COUNT) - 1;

    /// The headers of `h` the proxy acts on.
    pub fn of(h: &HeaderMap) -> Seen {
        Seen(h.keys().fold(0, |seen, name| seen | bit(name)))
    }

    /// Whether the header of `bit` is there.
    pub fn has(self, bit: u16) -> bool {
        self.0 & bit != 0
    }
}

/// The bit of `name` in [`Seen`]: the place in [`HOP_BY_HOP`] for those, then the
/// request id, the caller token and `X-Forwarded-For`; 0 for every other header.
fn bit(name: &HeaderName) -> u16 {
    let place = match name.as_str() {
        "connection" => 0,
        "keep-alive" => 1,
        "proxy-connection" => 2,
        "proxy-authenticate" => 3,
        "proxy-authorization" => 4,
        "te" => 5,
        "trailer" => 6,
        "transfer-encoding" => 7,
        "upgrade" => 8,
        "x-request-id" => 9,
        "x-tarnkappe-caller" => 10,
        "x-forwarded-for" => 11,
        _ => return 0,
    };
    1 << place
}

/// Removes hop-by-hop headers, including those the Connection header names; `seen`
/// is [`Seen::of`] these headers.
pub fn strip_hop_by_hop(h: &mut HeaderMap, seen: Seen) {
    let present = seen.0 & Seen::HOP_BY_HOP;
    if present == 0 {
        return;
    }
    let mut named = Vec::new();
    if present & 1 != 0 {
        if let Ok(header::Entry::Occupied(connection)) = h.try_entry(header::CONNECTION) {
            let (_, values) = connection.remove_entry_mult();
            for value in values {
                for token in value
                    .as_bytes()
                    .split(|b| *b == b',')
                    .map(<[u8]>::trim_ascii)
                {
                    // `keep-alive` goes anyway, `close` names no header.
                    if token.eq_ignore_ascii_case(b"keep-alive")
                        || token.eq_ignore_ascii_case(b"close")
                    {
                        continue;
                    }
                    if let Ok(name) = HeaderName::from_bytes(token) {
                        named.push(name);
                    }
                }
            }
        }
    }
    for (i, name) in HOP_BY_HOP.iter().enumerate().skip(1) {
        if present & (1 << i) != 0 {
            h.remove(name);
        }
    }
    for name in &named {
        h.remove(name);
    }
}

/// Adds `X-Forwarded-For/-Proto/-Host` and the request id; `seen` is [`Seen::of`]
/// these headers.
pub fn add_forwarding(
    h: &mut HeaderMap,
    seen: Seen,
    client: SocketAddr,
    tls: bool,
    host: Option<HeaderValue>,
    request_id: HeaderValue,
) {
    let mut xff = String::new();
    if seen.has(Seen::FORWARDED_FOR) {
        // Keep every earlier hop, across repeated header lines, in order.
        let hops = h
            .get_all(&X_FORWARDED_FOR)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|v| !v.is_empty());
        for hop in hops {
            xff.push_str(hop);
            xff.push_str(", ");
        }
    }
    let value = match client.ip() {
        // The usual case, written on the stack and copied once.
        std::net::IpAddr::V4(v4) if xff.is_empty() => {
            let mut buf = [0u8; 15];
            let len = crate::text::dotted_into(&v4.octets(), &mut buf);
            HeaderValue::from_bytes(&buf[..len])
        }
        ip => {
            push_ip(&mut xff, ip);
            HeaderValue::from_str(&xff)
        }
    };
    if let Ok(v) = value {
        h.insert(X_FORWARDED_FOR, v);
    }
    let proto = if tls { "https" } else { "http" };
    h.insert(X_FORWARDED_PROTO, HeaderValue::from_static(proto));
    if let Some(host) = host {
        h.insert(X_FORWARDED_HOST, host);
    }
    h.insert(X_REQUEST_ID, request_id);
}

/// Writes an address as `Display` does, IPv4 without the formatting machinery.
fn push_ip(out: &mut String, ip: std::net::IpAddr) {
    match ip {
        // Writing to a String cannot fail.
        std::net::IpAddr::V4(v4) => drop(crate::text::write_dotted(out, &v4.octets())),
        std::net::IpAddr::V6(_) => out.push_str(&ip.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_hop_by_hop_and_named_headers() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-secret-hop"),
        );
        h.insert("x-secret-hop", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert(header::TE, HeaderValue::from_static("trailers"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        let seen = Seen::of(&h);
        strip_hop_by_hop(&mut h, seen);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-kept"));

        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, HeaderValue::from_static("close"));
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("2"));
        let seen = Seen::of(&h);
        strip_hop_by_hop(&mut h, seen);
        assert_eq!(h.keys().collect::<Vec<_>>(), [header::CONTENT_LENGTH]);

        // Repeated Connection lines, mixed case and spacing.
        let mut h = HeaderMap::new();
        h.append(header::CONNECTION, HeaderValue::from_static("Keep-Alive"));
        h.append(
            header::CONNECTION,
            HeaderValue::from_static(" X-One ,close,x-two"),
        );
        h.insert("x-one", HeaderValue::from_static("1"));
        h.insert("x-two", HeaderValue::from_static("2"));
        h.insert("x-three", HeaderValue::from_static("3"));
        let seen = Seen::of(&h);
        strip_hop_by_hop(&mut h, seen);
        assert_eq!(h.keys().collect::<Vec<_>>(), ["x-three"]);
    }

    #[test]
    fn seen_bits_match_the_list_and_the_named_headers() {
        for (i, name) in HOP_BY_HOP.iter().enumerate() {
            assert_eq!(bit(name), 1 << i);
        }
        assert_eq!(bit(&X_REQUEST_ID), Seen::REQUEST_ID);
        assert_eq!(bit(&crate::config::CALLER_HEADER), Seen::CALLER);
        assert_eq!(bit(&X_FORWARDED_FOR), Seen::FORWARDED_FOR);
        assert_eq!(bit(&header::CONTENT_TYPE), 0);
        let mut h = HeaderMap::new();
        h.insert(header::TE, HeaderValue::from_static("trailers"));
        h.insert(X_FORWARDED_FOR, HeaderValue::from_static("192.0.2.1"));
        let seen = Seen::of(&h);
        assert!(seen.has(Seen::FORWARDED_FOR) && seen.has(1 << 5));
        assert!(!seen.has(Seen::REQUEST_ID) && !seen.has(Seen::CALLER));
    }

    #[test]
    fn writes_addresses_as_display_does() {
        for ip in [
            "0.0.0.0",
            "10.0.0.255",
            "127.0.0.1",
            "192.168.100.9",
            "::1",
            "2001:db8::7",
        ] {
            let ip: std::net::IpAddr = ip.parse().unwrap();
            let mut out = String::new();
            push_ip(&mut out, ip);
            assert_eq!(out, ip.to_string());
        }
    }

    #[test]
    fn keeps_earlier_hops_in_order() {
        let mut h = HeaderMap::new();
        h.append(
            X_FORWARDED_FOR,
            HeaderValue::from_static("203.0.113.1, 198.51.100.2"),
        );
        h.append(X_FORWARDED_FOR, HeaderValue::from_static(" 192.0.2.3 "));
        let client = SocketAddr::from(([10, 1, 2, 3], 4000));
        let seen = Seen::of(&h);
        add_forwarding(
            &mut h,
            seen,
            client,
            true,
            None,
            HeaderValue::from_static("id-1"),
        );
        let xff: Vec<_> = h.get_all(X_FORWARDED_FOR).iter().collect();
        assert_eq!(xff, ["203.0.113.1, 198.51.100.2, 192.0.2.3, 10.1.2.3"]);
        assert_eq!(h[X_FORWARDED_PROTO], "https");
        assert_eq!(h[X_REQUEST_ID], "id-1");

        let mut h = HeaderMap::new();
        add_forwarding(
            &mut h,
            Seen::default(),
            client,
            false,
            None,
            HeaderValue::from_static("id-2"),
        );
        assert_eq!(h[X_FORWARDED_FOR], "10.1.2.3");
        assert_eq!(h[X_FORWARDED_PROTO], "http");
        let v6 = SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, 4000));
        add_forwarding(
            &mut h,
            Seen::default(),
            v6,
            false,
            None,
            HeaderValue::from_static("id-3"),
        );
        assert_eq!(h[X_FORWARDED_FOR], "::1");
    }
}
