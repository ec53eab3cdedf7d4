//! The typed, value-free flow event: one per exchange, built by the proxy's outermost layer.
//!
//! Every field is a configuration string ([`ConfigStr`]), a closed enum, a number or a
//! sanitized id, so an event cannot hold a request or response value by construction.
//! Nothing here may ever gain a field of type `String` filled from request data.

use std::collections::HashSet;
use std::fmt;
use std::net::IpAddr;
use std::sync::Mutex;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize, Serializer};
use sha2::Sha256;

use super::outcome::Outcome;

/// A string that came from the configuration (route name, path template, label, category,
/// action, upstream name, caller role, instance id) or from a closed set of names in the
/// code (detector names).
///
/// Request and response data must never be wrapped in a `ConfigStr`: the whole flow log's
/// promise rests on it. Only the config module (and code naming its own constants) calls
/// [`ConfigStr::new`].
///
/// Interned: each distinct text is stored once for the life of the process, so a
/// `ConfigStr` is a plain pointer, copied into every event and metric without an
/// allocation or a reference count that worker threads and the writer would contend on.
/// A reload that renames things keeps the old names too; they are a few bytes each.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConfigStr(&'static str);

impl ConfigStr {
    /// Wraps a string read from the configuration file or a constant of the code.
    /// Never call it with anything taken from a request or a response.
    pub fn new(from_config: &str) -> ConfigStr {
        static INTERNED: std::sync::OnceLock<Mutex<HashSet<&'static str>>> =
            std::sync::OnceLock::new();
        let mut set = INTERNED
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(&known) = set.get(from_config) {
            return ConfigStr(known);
        }
        let leaked: &'static str = Box::leak(from_config.into());
        set.insert(leaked);
        ConfigStr(leaked)
    }

    /// A name the code itself defines (action and detector names).
    pub const fn constant(name: &'static str) -> ConfigStr {
        ConfigStr(name)
    }

    /// The string itself.
    pub fn as_str(&self) -> &'static str {
        self.0
    }
}

impl std::ops::Deref for ConfigStr {
    type Target = str;

    fn deref(&self) -> &str {
        self.0
    }
}

impl PartialEq<str> for ConfigStr {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for ConfigStr {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl std::borrow::Borrow<str> for ConfigStr {
    fn borrow(&self) -> &str {
        self.0
    }
}

impl fmt::Debug for ConfigStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for ConfigStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ConfigStr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// Which way a field travelled: from the client towards the backend, or back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Client to backend.
    Request,
    /// Backend to client.
    Response,
}

impl Direction {
    /// As written in the flow log.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Request => "request",
            Direction::Response => "response",
        }
    }
}

/// What one field rule did in one exchange: names from the config, and how often.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldEvent {
    /// The rule's label from the config (e.g. `email`).
    pub label: ConfigStr,
    /// The data category (fideslang, e.g. `user.contact.email`).
    pub category: ConfigStr,
    /// The action applied (`encrypt`, `redact`, `mask`, `hash`, `drop`, `open`, ...).
    pub action: ConfigStr,
    /// Request or response.
    pub direction: Direction,
    /// How many values the rule touched in this exchange.
    pub count: u32,
}

/// A request id that is safe to log: 1 to 64 characters of `[A-Za-z0-9._-]`, held
/// inline (every exchange makes one and the flow event copies it: no allocation).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct RequestId {
    len: u8,
    bytes: [u8; RequestId::MAX_LEN],
}

impl RequestId {
    /// The longest id accepted from a client header.
    pub const MAX_LEN: usize = 64;

    /// Accepts a client-supplied id only if it is 1 to 64 characters of `[A-Za-z0-9._-]`;
    /// anything else (which could smuggle data into the log) gives `None`, and the caller
    /// generates a fresh id instead.
    pub fn sanitize(candidate: &str) -> Option<RequestId> {
        let ok_char = |c: u8| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-');
        let ok = (1..=Self::MAX_LEN).contains(&candidate.len()) && candidate.bytes().all(ok_char);
        ok.then(|| {
            let mut bytes = [0; Self::MAX_LEN];
            bytes[..candidate.len()].copy_from_slice(candidate.as_bytes());
            RequestId {
                len: candidate.len() as u8,
                bytes,
            }
        })
    }

    /// A fresh random id: 16 lowercase hex characters.
    pub fn generate() -> RequestId {
        let n: u64 = rand::random();
        let mut bytes = [0; Self::MAX_LEN];
        crate::text::hex_into(&n.to_be_bytes(), &mut bytes[..16]);
        RequestId { len: 16, bytes }
    }

    /// The id as written to the log and to problem+json bodies.
    pub fn as_str(&self) -> &str {
        // Only ASCII is ever stored (see `sanitize` and `generate`).
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or_default()
    }
}

impl fmt::Debug for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("RequestId").field(&self.as_str()).finish()
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for RequestId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// An HTTP method as logged: one of the nine standard methods, or `OTHER`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MethodName(&'static str);

impl MethodName {
    /// The methods logged by name (RFC 9110 and RFC 5789); methods are case-sensitive.
    pub const STANDARD: [&'static str; 9] = [
        "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
    ];

    /// Keeps a standard method; any other token (an extension method, or garbage) becomes
    /// `OTHER` so that a crafted method cannot carry data into the log.
    pub fn new(method: &str) -> MethodName {
        let known = Self::STANDARD.iter().find(|m| **m == method);
        MethodName(known.copied().unwrap_or("OTHER"))
    }

    /// The logged name.
    pub fn as_str(&self) -> &'static str {
        self.0
    }
}

impl From<&http::Method> for MethodName {
    fn from(method: &http::Method) -> MethodName {
        MethodName::new(method.as_str())
    }
}

impl Serialize for MethodName {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0)
    }
}

/// How the client address is written (config `client_addr`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientAddrMode {
    /// The full address.
    Keep,
    /// IPv4 cut to its /24, IPv6 to its /48: enough for abuse analysis, not a person.
    #[default]
    Truncate,
    /// A keyed hash: the same client gives the same token, but it cannot be reversed
    /// without the key.
    Hash,
}

/// A client address already reduced as configured; see [`ClientAddrMode`]. Held inline
/// (the longest form, a full IPv6 address, has 39 characters).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ClientAddr {
    len: u8,
    bytes: [u8; ClientAddr::CAP],
}

impl fmt::Debug for ClientAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ClientAddr").field(&self.as_str()).finish()
    }
}

impl fmt::Write for ClientAddr {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let at = usize::from(self.len);
        let end = at + s.len();
        if end > Self::CAP {
            return Err(fmt::Error);
        }
        self.bytes[at..end].copy_from_slice(s.as_bytes());
        self.len = end as u8;
        Ok(())
    }
}

impl ClientAddr {
    /// Reduces `ip` per `mode`. `hash_key` is used only by [`ClientAddrMode::Hash`]
    /// (HMAC-SHA256 over the address octets, first 16 bytes, as `h:` plus 32 hex digits).
    /// IPv4-mapped IPv6 addresses are treated as the IPv4 address they carry.
    pub fn from_ip(ip: IpAddr, mode: ClientAddrMode, hash_key: &[u8; 32]) -> ClientAddr {
        type Last = Option<(IpAddr, ClientAddrMode, [u8; 32], ClientAddr)>;
        thread_local! {
            // A thread's exchanges mostly come from the same few addresses (a shop's
            // frontend, its load balancer): the last result is reused for the same input.
            static LAST: std::cell::RefCell<Last> = const { std::cell::RefCell::new(None) };
        }
        LAST.with_borrow_mut(|last| match last {
            Some((i, m, k, out)) if *i == ip && *m == mode && k == hash_key => out.clone(),
            _ => {
                let out = Self::reduce(ip, mode, hash_key);
                *last = Some((ip, mode, *hash_key, out.clone()));
                out
            }
        })
    }

    fn reduce(ip: IpAddr, mode: ClientAddrMode, hash_key: &[u8; 32]) -> ClientAddr {
        use fmt::Write;
        let ip = ip.to_canonical();
        let mut out = ClientAddr {
            len: 0,
            bytes: [0; Self::CAP],
        };
        // Every form fits (`CAP`), so the writes cannot fail.
        let _ = match (mode, ip) {
            (ClientAddrMode::Keep, ip) => write!(out, "{ip}"),
            (ClientAddrMode::Truncate, IpAddr::V4(v4)) => {
                // The default mode, once per exchange: digits by hand, not `fmt`.
                let [a, b, c, _] = v4.octets();
                crate::text::write_dotted(&mut out, &[a, b, c]).and(out.write_str(".0/24"))
            }
            (ClientAddrMode::Truncate, IpAddr::V6(v6)) => {
                let s = v6.segments();
                let net = std::net::Ipv6Addr::new(s[0], s[1], s[2], 0, 0, 0, 0, 0);
                write!(out, "{net}/48")
            }
            (ClientAddrMode::Hash, ip) => {
                let octets = match ip {
                    IpAddr::V4(v4) => v4.octets().to_vec(),
                    IpAddr::V6(v6) => v6.octets().to_vec(),
                };
                let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(hash_key)
                    .expect("HMAC accepts keys of any length");
                mac.update(b"tarnkappe client address v1\0");
                mac.update(&octets);
                let digest = mac.finalize().into_bytes();
                write!(out, "h:{}", crate::text::hex(&digest[..16]))
            }
        };
        out
    }

    const CAP: usize = 48;

    /// The logged form.
    pub fn as_str(&self) -> &str {
        // Only whole `str`s are ever written in (see `write_str`).
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or_default()
    }
}

impl Serialize for ClientAddr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// One exchange, as the proxy saw it. The writer adds `v`, `time`, `seq`, `instance`,
/// `mac`, `prev` and `hash`; see docs/flow-log.md for every field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowEvent {
    /// Sanitized or generated request id.
    pub request_id: RequestId,
    /// The matched route's name; `None` when no route matched.
    pub route: Option<ConfigStr>,
    /// Standard method or `OTHER`.
    pub method: MethodName,
    /// The route's path template from the config, never the raw path or query.
    pub path_template: Option<ConfigStr>,
    /// The caller's role from the config, when known.
    pub caller: Option<ConfigStr>,
    /// Client address, reduced per config.
    pub client: Option<ClientAddr>,
    /// The upstream's name from the config.
    pub upstream: Option<ConfigStr>,
    /// The status code sent to the client.
    pub status: u16,
    /// What happened to the exchange.
    pub outcome: Outcome,
    /// What each field rule did.
    pub fields: Vec<FieldEvent>,
    /// Values in the response that did not open (replaced by the marker or refused).
    pub open_failures: u32,
    /// Detector names of sensitive-looking data that no rule covers (closed set).
    pub uncovered: Vec<ConfigStr>,
    /// Whole exchange, microseconds.
    pub duration_us: u64,
    /// Time spent waiting on the upstream, if it was called.
    pub upstream_us: Option<u64>,
    /// Time spent reading, parsing and rewriting bodies.
    pub transform_us: u64,
    /// Request body bytes received from the client.
    pub bytes_in: u64,
    /// Response body bytes sent to the client.
    pub bytes_out: u64,
}

impl FlowEvent {
    /// An event with everything but the id and method empty or zero, outcome `forwarded`;
    /// the proxy fills in the rest as the exchange proceeds.
    pub fn new(request_id: RequestId, method: MethodName) -> FlowEvent {
        FlowEvent {
            request_id,
            route: None,
            method,
            path_template: None,
            caller: None,
            client: None,
            upstream: None,
            status: 0,
            outcome: Outcome::Forwarded,
            fields: Vec::new(),
            open_failures: 0,
            uncovered: Vec::new(),
            duration_us: 0,
            upstream_us: None,
            transform_us: 0,
            bytes_in: 0,
            bytes_out: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_id_accepts_only_the_safe_alphabet() {
        assert!(RequestId::sanitize("abc-DEF_1.2").is_some());
        assert!(RequestId::sanitize(&"a".repeat(64)).is_some());
        for bad in ["", "a b", "a\"b", "ä", "x\n", "4111 1111", &"a".repeat(65)] {
            assert!(RequestId::sanitize(bad).is_none(), "{bad:?}");
        }
        let kept = RequestId::sanitize("abc-DEF_1.2").unwrap();
        assert_eq!(kept.as_str(), "abc-DEF_1.2");
        let id = RequestId::generate();
        assert_eq!(id.as_str().len(), 16);
        assert!(id
            .as_str()
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        assert!(RequestId::sanitize(id.as_str()).is_some());
        assert_ne!(id, RequestId::generate());
    }

    #[test]
    fn method_keeps_only_standard_names() {
        assert_eq!(MethodName::new("POST").as_str(), "POST");
        assert_eq!(MethodName::new("post").as_str(), "OTHER");
        assert_eq!(MethodName::new("SECRET-4111").as_str(), "OTHER");
        assert_eq!(MethodName::from(&http::Method::PATCH).as_str(), "PATCH");
    }

    #[test]
    fn client_addr_modes() {
        let key = [7u8; 32];
        let v4: IpAddr = "203.0.113.77".parse().unwrap();
        let v6: IpAddr = "2001:db8:abcd:12::1".parse().unwrap();
        let mapped: IpAddr = "::ffff:203.0.113.77".parse().unwrap();
        let keep = |ip| ClientAddr::from_ip(ip, ClientAddrMode::Keep, &key);
        let cut = |ip| ClientAddr::from_ip(ip, ClientAddrMode::Truncate, &key);
        let hash = |ip, k: &[u8; 32]| ClientAddr::from_ip(ip, ClientAddrMode::Hash, k);
        assert_eq!(keep(v4).as_str(), "203.0.113.77");
        assert_eq!(cut(v4).as_str(), "203.0.113.0/24");
        for (ip, want) in [
            ("0.0.0.0", "0.0.0.0/24"),
            ("9.10.99.1", "9.10.99.0/24"),
            ("255.100.1.7", "255.100.1.0/24"),
        ] {
            assert_eq!(cut(ip.parse().unwrap()).as_str(), want);
        }
        assert_eq!(cut(mapped).as_str(), "203.0.113.0/24");
        assert_eq!(cut(v6).as_str(), "2001:db8:abcd::/48");
        let h = hash(v4, &key);
        assert!(h.as_str().starts_with("h:") && h.as_str().len() == 34);
        assert!(!h.as_str().contains("203"));
        assert_eq!(h, hash(mapped, &key));
        assert_ne!(h, hash(v4, &[8u8; 32]));
        // The longest address there is still fits inline.
        let longest: IpAddr = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe".parse().unwrap();
        assert_eq!(keep(longest).as_str(), longest.to_string());
        assert_eq!(keep(v6).as_str(), "2001:db8:abcd:12::1");
        // The same input again, and after another mode or key: never a stale answer.
        for _ in 0..2 {
            assert_eq!(cut(v4).as_str(), "203.0.113.0/24");
            assert_eq!(keep(v4).as_str(), "203.0.113.77");
            assert_eq!(hash(v4, &key), h);
            assert_ne!(hash(v4, &[8u8; 32]), h);
        }
    }

    #[test]
    fn config_strings_are_interned() {
        let a = ConfigStr::new(&String::from("customers"));
        let b = ConfigStr::new("customers");
        assert!(std::ptr::eq(a.as_str(), b.as_str()));
        assert_eq!(a, "customers");
        assert_ne!(a, ConfigStr::new("customers2"));
        assert!(ConfigStr::constant("b") > ConfigStr::new("a"));
    }
}
