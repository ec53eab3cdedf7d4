//! The upstream side: our own HTTP/1.1 client over a pool of keep-alive connections
//! per listener, the hop-by-hop header rules of RFC 9110 §7.6.1 and the forwarding
//! headers. Never logs a header value.
//!
//! The client is ours rather than hyper's: an exchange with the upstream runs in the
//! task of the client's exchange, with no connection task and no channel in between
//! (hyper's client needs both), which was a fifth of the proxy's work per request. Its
//! parts: `wire` (heads and framing, without I/O), `pool` (idle connections), `send`
//! (writing a request, reading an answer). A connection goes back to the pool when
//! the answer it carried has been read to its end, and a request that a pooled
//! connection could not take (the backend closed it while idle) goes out on another.

mod pool;
mod send;
mod wire;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::Authority;
use http::{Method, Request, Response};

use crate::body::Body;
use pool::Pool;
use send::Outgoing;

/// Pooled connections tried for one request before a fresh one is opened.
const STALE_RETRIES: usize = 3;

/// Why an exchange with the upstream failed.
#[derive(Debug)]
pub enum UpstreamError {
    /// No connection within the connect timeout, or refused.
    Connect,
    /// The connection broke before a complete answer head, or the answer head could
    /// not be read.
    Exchange,
}

/// One listener's connections to the upstream.
#[derive(Clone)]
pub struct UpstreamClient {
    pool: Arc<Pool>,
}

/// Builds a listener's client.
pub fn client(connect_timeout: Duration) -> UpstreamClient {
    UpstreamClient {
        pool: Arc::new(Pool::new(connect_timeout)),
    }
}

impl UpstreamClient {
    /// Sends `req` (origin-form URI) with the headers of `fwd` to `authority`; the
    /// answer's body returns the connection to the pool once it has been read to its end.
    pub async fn send(
        &self,
        authority: &Authority,
        req: Request<Body>,
        fwd: &Forwarding,
    ) -> Result<Response<Body>, UpstreamError> {
        let (parts, body) = req.into_parts();
        let framing = wire::Out::of(
            &parts.method,
            &parts.headers,
            http_body::Body::size_hint(&body).exact(),
            http_body::Body::is_end_stream(&body),
        );
        let mut stale = 0;
        let mut conn = self.conn(authority, &mut stale).await?;
        let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        wire::write_head(
            &mut conn.wbuf,
            &parts.method,
            target,
            &parts.headers,
            framing,
            Some(fwd),
        );
        let mut out = Outgoing::new(conn.wbuf.split().freeze(), body, framing);
        let sent = loop {
            match std::future::poll_fn(|cx| out.poll_send(&mut conn, cx)).await {
                Ok(sent) => break sent,
                // Nothing reached this connection: the backend had closed it while
                // idle, and the request can go on another.
                Err(send::SendError::Write) if conn.reused && !out.started => {
                    conn = self.conn(authority, &mut stale).await?;
                }
                Err(e) => {
                    tracing::debug!(error = ?e, "request to the upstream failed");
                    return Err(UpstreamError::Exchange);
                }
            }
        };
        let head = send::read_head(&mut conn, parts.method == Method::HEAD)
            .await
            .map_err(|e| {
                tracing::debug!(error = %e, "answer from the upstream unreadable");
                UpstreamError::Exchange
            })?;
        let body = send::answer_body(conn, &head, sent, &self.pool);
        let mut resp = Response::new(body);
        *resp.status_mut() = head.status;
        *resp.version_mut() = head.version;
        *resp.headers_mut() = head.headers;
        Ok(resp)
    }

    /// A pooled connection while fewer than [`STALE_RETRIES`] have failed, else a new one.
    async fn conn(
        &self,
        authority: &Authority,
        stale: &mut usize,
    ) -> Result<pool::Conn, UpstreamError> {
        if *stale < STALE_RETRIES {
            *stale += 1;
            if let Some(conn) = self.pool.take(authority) {
                return Ok(conn);
            }
        }
        *stale = STALE_RETRIES;
        // Boxed: a new connection is rare, and its future would otherwise make every
        // exchange's future larger (and costlier to move).
        Box::pin(self.pool.connect(authority)).await
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
    /// Bit of `X-Forwarded-Proto`.
    pub const FORWARDED_PROTO: u16 = 1 << (HOP_BY_HOP_COUNT + 3);
    /// Bit of `X-Forwarded-Host`.
    pub const FORWARDED_HOST: u16 = 1 << (HOP_BY_HOP_COUNT + 4);
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
/// request id, the caller token and `X-Forwarded-For/-Proto/-Host`; 0 for every other
/// header.
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
        "x-forwarded-proto" => 12,
        "x-forwarded-host" => 13,
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
                connection_tokens(value.as_bytes(), &mut named);
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

/// Reads one Connection header value: adds the header names it lists (hop-by-hop
/// too) to `named` and returns whether it says `close`. `keep-alive` is neither.
fn connection_tokens(value: &[u8], named: &mut Vec<HeaderName>) -> bool {
    let mut close = false;
    for token in value.split(|b| *b == b',').map(<[u8]>::trim_ascii) {
        if token.eq_ignore_ascii_case(b"close") {
            close = true;
        } else if !token.eq_ignore_ascii_case(b"keep-alive") {
            named.extend(HeaderName::from_bytes(token).ok());
        }
    }
    close
}

/// The headers the proxy sets on every request it forwards. They are written straight
/// into the request head after the client's own headers (a map insert each cost more
/// than the rest of the header work), and no line of the client's with one of these
/// names goes on.
pub struct Forwarding {
    /// `Host`: the upstream's.
    pub host: HeaderValue,
    /// `X-Forwarded-For`: the earlier hops the client named, then the client.
    pub forwarded_for: Option<HeaderValue>,
    /// `X-Forwarded-Proto`.
    pub proto: &'static str,
    /// `X-Forwarded-Host`: the host the client asked for, when it named one.
    pub forwarded_host: Option<HeaderValue>,
    /// `X-Request-Id`.
    pub request_id: HeaderValue,
}

/// The forwarding headers of a request from `client`; takes the client's own lines of
/// those names out of `h` (its `Host` is left out when the head is written). `seen` is
/// [`Seen::of`] these headers.
pub fn forwarding(
    h: &mut HeaderMap,
    seen: Seen,
    client: SocketAddr,
    tls: bool,
    client_host: Option<HeaderValue>,
    request_id: HeaderValue,
    upstream_host: HeaderValue,
) -> Forwarding {
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
        h.remove(&X_FORWARDED_FOR);
    }
    for (bit, name) in [
        (Seen::FORWARDED_PROTO, &X_FORWARDED_PROTO),
        (Seen::FORWARDED_HOST, &X_FORWARDED_HOST),
        (Seen::REQUEST_ID, &X_REQUEST_ID),
    ] {
        if seen.has(bit) {
            h.remove(name);
        }
    }
    let forwarded_for = match client.ip() {
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
    Forwarding {
        host: upstream_host,
        forwarded_for: forwarded_for.ok(),
        proto: if tls { "https" } else { "http" },
        forwarded_host: client_host,
        request_id,
    }
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
    fn keeps_earlier_hops_in_order_and_takes_the_clients_own_lines_out() {
        let mut h = HeaderMap::new();
        h.append(
            X_FORWARDED_FOR,
            HeaderValue::from_static("203.0.113.1, 198.51.100.2"),
        );
        h.append(X_FORWARDED_FOR, HeaderValue::from_static(" 192.0.2.3 "));
        h.insert(X_FORWARDED_PROTO, HeaderValue::from_static("gopher"));
        h.insert(X_FORWARDED_HOST, HeaderValue::from_static("evil.example"));
        h.insert(X_REQUEST_ID, HeaderValue::from_static("from-client"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        let client = SocketAddr::from(([10, 1, 2, 3], 4000));
        let seen = Seen::of(&h);
        let upstream = HeaderValue::from_static("shop.internal");
        let fwd = forwarding(
            &mut h,
            seen,
            client,
            true,
            None,
            HeaderValue::from_static("id-1"),
            upstream.clone(),
        );
        assert_eq!(h.keys().collect::<Vec<_>>(), ["x-kept"]);
        let xff = fwd.forwarded_for.expect("a value");
        assert_eq!(xff, "203.0.113.1, 198.51.100.2, 192.0.2.3, 10.1.2.3");
        assert_eq!(fwd.proto, "https");
        assert_eq!(fwd.request_id, "id-1");
        assert_eq!(fwd.host, "shop.internal");
        assert!(fwd.forwarded_host.is_none());

        let mut h = HeaderMap::new();
        let fwd = forwarding(
            &mut h,
            Seen::default(),
            client,
            false,
            Some(HeaderValue::from_static("shop.example")),
            HeaderValue::from_static("id-2"),
            upstream.clone(),
        );
        assert_eq!(fwd.forwarded_for.expect("a value"), "10.1.2.3");
        assert_eq!(fwd.proto, "http");
        assert_eq!(fwd.forwarded_host.expect("a value"), "shop.example");
        let v6 = SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, 4000));
        let fwd = forwarding(
            &mut h,
            Seen::default(),
            v6,
            false,
            None,
            HeaderValue::from_static("id-3"),
            upstream,
        );
        assert_eq!(fwd.forwarded_for.expect("a value"), "::1");
    }
}
