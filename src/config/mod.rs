//! Configuration: TOML file (plus `TARNKAPPE_SECTION__KEY` environment overrides) ->
//! serde structs that refuse unknown keys -> the compiled runtime `Config`, with every
//! JSONPath compiled, sizes and durations parsed, categories resolved and routes
//! checked for ambiguity. Every problem of a file is reported in one run as
//! `file:line:col: key: message`. Never echoes a secret or the file's contents.

mod callers;
mod categories;
mod diag;
mod env;
mod raw;
mod routes;
pub(crate) mod units;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use http::Uri;
use toml::Spanned;

use crate::flowlog::{ConfigStr, FlowLogConfig};

pub use callers::{Callers, CALLER_HEADER};
pub use categories::{resolve as resolve_category, ALIASES, CATEGORIES};
use diag::Diag;
pub use diag::{ConfigError, ConfigErrors};
use raw::RawConfig;

use crate::crypto::Keyring;
use crate::route::Router;
use crate::transform::{Labels, Limits};

/// Parses a duration written as in the config (`30s`, `500ms`, `2m`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    units::duration(s)
}

/// Default for `limits.max_body`.
pub const DEFAULT_MAX_BODY: u64 = 8 << 20;
/// Default for `limits.max_depth`.
pub const DEFAULT_MAX_DEPTH: usize = 64;
/// Default for `limits.max_nodes`.
pub const DEFAULT_MAX_NODES: usize = 1_000_000;
/// Default for `limits.max_in_flight`.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 1024;
/// Default for `limits.body_timeout`.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// Default for `limits.header_timeout`.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Default for `upstream.timeout`.
pub const DEFAULT_UPSTREAM_TIMEOUT: Duration = Duration::from_secs(30);
/// Default for `upstream.connect_timeout`.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default for `flow_log.rotate_size`.
pub const DEFAULT_ROTATE_SIZE: u64 = FlowLogConfig::DEFAULT_MAX_BYTES;
/// Default for `flow_log.rotate_every`.
pub const DEFAULT_ROTATE_EVERY: Duration = FlowLogConfig::DEFAULT_MAX_AGE;

/// Where the upstream is.
#[derive(Debug, Clone)]
pub struct Upstream {
    /// Scheme and authority, e.g. `http://shop:3000`.
    pub authority: http::uri::Authority,
    /// The `Host` header the upstream gets: its host and port, without user info.
    pub host: http::HeaderValue,
    /// A path prefix from the URL (empty or starting with `/`, no trailing slash).
    pub base_path: String,
    /// Name for flow events (defaults to the authority).
    pub name: ConfigStr,
    /// Time for the whole answer head.
    pub timeout: Duration,
    /// Time to connect.
    pub connect_timeout: Duration,
}

/// Body and time bounds.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimits {
    /// Largest body a route with rules buffers.
    pub max_body: u64,
    /// JSON bounds.
    pub json: Limits,
    /// Time to read a buffered body.
    pub body_timeout: Duration,
    /// Time to read request headers.
    pub header_timeout: Duration,
    /// Requests handled at once; more are refused with 503 (read at start).
    pub max_in_flight: usize,
}

/// What the flow log keeps of the client address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAddress {
    /// The address as is.
    Keep,
    /// /24 for IPv4, /48 for IPv6.
    Truncate,
    /// A keyed hash.
    Hash,
    /// Nothing.
    Omit,
}

/// Flow-log settings.
#[derive(Debug, Clone)]
pub struct FlowLogSettings {
    /// File, or `-` for stdout.
    pub path: PathBuf,
    /// Rotate at this size.
    pub rotate_size: u64,
    /// Rotate after this age.
    pub rotate_every: Duration,
    /// Delete rotated files whose last event is older than this; `None`: keep them all.
    pub delete_after: Option<Duration>,
    /// Refuse rule routes (503) while the log is unwritable (default), or go on.
    pub reject_on_failure: bool,
    /// Client address handling.
    pub client_address: ClientAddress,
    /// Chain with an HMAC from the keyring instead of a plain hash.
    pub hmac: bool,
    /// Instance id for events.
    pub instance: Arc<str>,
    /// Queue length between the proxy and the writer.
    pub queue: usize,
}

/// Where the keyring comes from.
#[derive(Debug, Clone)]
pub enum KeyringSource {
    /// A file.
    File(PathBuf),
    /// The `TARNKAPPE_KEYRING` environment variable's content.
    Env,
}

/// A validated, compiled configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it came from.
    pub source: PathBuf,
    /// Public listener.
    pub listen: SocketAddr,
    /// TLS for the public listener, if configured.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Admin listener.
    pub admin: Option<SocketAddr>,
    /// The backend.
    pub upstream: Upstream,
    /// Bounds.
    pub limits: BodyLimits,
    /// The keyring's origin.
    pub keyring: KeyringSource,
    /// Flow log, if configured.
    pub flow_log: Option<FlowLogSettings>,
    /// Routes.
    pub router: Router,
    /// All labels, for opening responses.
    pub labels: Labels,
    /// The callers, by token hash.
    pub callers: Callers,
}

/// A config and the keyring it names, loaded together (and reloaded together).
pub struct Loaded {
    /// The config.
    pub config: Config,
    /// The keyring.
    pub keyring: Keyring,
}

/// Loads the config at `path` and its keyring; every problem at once.
pub fn load(path: &Path) -> Result<Loaded, ConfigErrors> {
    let config = load_config(path)?;
    let keyring = load_keyring(&config)?;
    Ok(Loaded { config, keyring })
}

/// Loads and compiles the config alone.
pub fn load_config(path: &Path) -> Result<Config, ConfigErrors> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors(vec![ConfigError {
            file: file.clone(),
            line: 0,
            col: 0,
            key: String::new(),
            message: format!("cannot read: {e}"),
        }])
    })?;
    let overrides = env::overrides();
    let (text, file) = if overrides.is_empty() {
        (text, file)
    } else {
        let merged = env::apply(&text, &overrides).map_err(|m| {
            ConfigErrors(vec![ConfigError {
                file: file.clone(),
                line: 0,
                col: 0,
                key: "env".into(),
                message: m,
            }])
        })?;
        (merged, format!("{file} (+env)"))
    };
    compile(&text, &file, path.parent().unwrap_or(Path::new(".")), path)
}

/// Compiles config text; `base` resolves relative paths.
pub fn compile(text: &str, file: &str, base: &Path, source: &Path) -> Result<Config, ConfigErrors> {
    let mut d = Diag::new(file, text);
    let raw: RawConfig = match toml::from_str(text) {
        Ok(raw) => raw,
        Err(e) => {
            d.at(e.span(), "", e.message().to_owned());
            return Err(ConfigErrors(d.errors));
        }
    };
    let listen = socket(&mut d, &raw.listen.address, "listen.address");
    let tls = raw.listen.tls.as_ref().and_then(|t| {
        let (cert, key) = (base.join(t.cert.get_ref()), base.join(t.key.get_ref()));
        crate::tls::server_config(&cert, &key)
            .map_err(|m| d.at(Some(t.cert.span()), "listen.tls", m))
            .ok()
    });
    let admin = raw
        .admin
        .as_ref()
        .map(|a| socket(&mut d, &a.address, "admin.address"));
    let upstream = upstream(&mut d, &raw);
    let limits = limits(&mut d, &raw);
    let keyring = match &raw.keys.keyring {
        Some(p) => KeyringSource::File(base.join(p.get_ref())),
        None => KeyringSource::Env,
    };
    let flow_log = raw.flow_log.as_ref().map(|f| flow_log(&mut d, f, base));
    let callers = callers::compile(&mut d, &raw.callers);
    let mut labels = Labels::default();
    let mut routes = Vec::new();
    for (i, r) in raw.routes.iter().enumerate() {
        if let Some(route) = routes::route(&mut d, r, i, &mut labels, &callers) {
            routes.push(route);
        }
    }
    let names: Vec<_> = raw
        .routes
        .iter()
        .map(|r| r.name.get_ref().clone())
        .collect();
    for (i, n) in names.iter().enumerate() {
        if names[..i].contains(n) {
            d.at(
                Some(raw.routes[i].name.span()),
                format!("route[{i}].name"),
                format!("route name `{n}` is used twice"),
            );
        }
    }
    let router = match Router::new(routes) {
        Ok(r) => r,
        Err((a, b)) => {
            let (ra, rb) = (&raw.routes[a], &raw.routes[b]);
            d.at(
                Some(rb.path.span()),
                format!("route[{b}].path"),
                format!("route `{}` and route `{}` match the same paths and methods: which one applies would be ambiguous", ra.name.get_ref(), rb.name.get_ref()),
            );
            Router::default()
        }
    };
    d.finish()?;
    Ok(Config {
        source: source.to_owned(),
        listen: listen.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0))),
        tls,
        admin: admin.flatten(),
        upstream: upstream.unwrap_or_else(placeholder_upstream),
        limits,
        keyring,
        flow_log,
        router,
        labels,
        callers,
    })
}

fn placeholder_upstream() -> Upstream {
    Upstream {
        authority: http::uri::Authority::from_static("invalid"),
        host: http::HeaderValue::from_static("invalid"),
        base_path: String::new(),
        name: ConfigStr::constant("invalid"),
        timeout: DEFAULT_UPSTREAM_TIMEOUT,
        connect_timeout: DEFAULT_CONNECT_TIMEOUT,
    }
}

/// Loads the keyring a config names.
pub fn load_keyring(config: &Config) -> Result<Keyring, ConfigErrors> {
    let file = config.source.display().to_string();
    let fail = |message: String| {
        ConfigErrors(vec![ConfigError {
            file: file.clone(),
            line: 0,
            col: 0,
            key: "keys.keyring".into(),
            message,
        }])
    };
    match &config.keyring {
        KeyringSource::File(p) => Keyring::load(p).map_err(|e| fail(e.to_string())),
        KeyringSource::Env => match std::env::var("TARNKAPPE_KEYRING") {
            Ok(text) => {
                Keyring::from_toml_str(&text, "TARNKAPPE_KEYRING").map_err(|e| fail(e.to_string()))
            }
            Err(_) => Err(fail(
                "no keyring: set `keys.keyring` to a file, or TARNKAPPE_KEYRING to its content"
                    .into(),
            )),
        },
    }
}

fn socket(d: &mut Diag<'_>, s: &Spanned<String>, key: &str) -> Option<SocketAddr> {
    match s.get_ref().parse() {
        Ok(a) => Some(a),
        Err(_) => {
            d.at(
                Some(s.span()),
                key,
                format!(
                    "`{}` is not an address: write e.g. \"0.0.0.0:8080\"",
                    s.get_ref()
                ),
            );
            None
        }
    }
}

fn dur(d: &mut Diag<'_>, s: &Option<Spanned<String>>, key: &str, default: Duration) -> Duration {
    match s {
        None => default,
        Some(s) => units::duration(s.get_ref()).unwrap_or_else(|m| {
            d.at(Some(s.span()), key, m);
            default
        }),
    }
}

fn count(
    d: &mut Diag<'_>,
    v: &Option<Spanned<i64>>,
    key: &str,
    default: usize,
    range: (i64, i64),
) -> usize {
    match v {
        None => default,
        Some(v) if (range.0..=range.1).contains(v.get_ref()) => *v.get_ref() as usize,
        Some(v) => {
            d.at(
                Some(v.span()),
                key,
                format!("must be between {} and {}", range.0, range.1),
            );
            default
        }
    }
}

fn upstream(d: &mut Diag<'_>, raw: &RawConfig) -> Option<Upstream> {
    let u = &raw.upstream;
    let timeout = dur(d, &u.timeout, "upstream.timeout", DEFAULT_UPSTREAM_TIMEOUT);
    let connect_timeout = dur(
        d,
        &u.connect_timeout,
        "upstream.connect_timeout",
        DEFAULT_CONNECT_TIMEOUT,
    );
    let uri: Uri = match u.url.get_ref().parse() {
        Ok(uri) => uri,
        Err(_) => {
            d.at(
                Some(u.url.span()),
                "upstream.url",
                "not a URL: write e.g. \"http://shop-backend:3000\"",
            );
            return None;
        }
    };
    if uri.scheme_str() != Some("http") || uri.authority().is_none() || uri.query().is_some() {
        d.at(Some(u.url.span()), "upstream.url", "must be an http:// URL with a host and no query (the backend sits on your private network)");
        return None;
    }
    let authority = uri.authority()?.clone();
    let host = match authority.port() {
        Some(port) => format!("{}:{port}", authority.host()),
        None => authority.host().to_owned(),
    };
    let host = http::HeaderValue::from_str(&host).ok()?;
    let base_path = uri.path().trim_end_matches('/').to_owned();
    let name = u.name.as_ref().map_or_else(
        || ConfigStr::new(authority.as_str()),
        |n| ConfigStr::new(n.get_ref().as_str()),
    );
    Some(Upstream {
        authority,
        host,
        base_path,
        name,
        timeout,
        connect_timeout,
    })
}

fn limits(d: &mut Diag<'_>, raw: &RawConfig) -> BodyLimits {
    let l = &raw.limits;
    let max_body = match &l.max_body {
        None => DEFAULT_MAX_BODY,
        Some(s) => units::size(s.get_ref()).unwrap_or_else(|m| {
            d.at(Some(s.span()), "limits.max_body", m);
            DEFAULT_MAX_BODY
        }),
    };
    let max_depth = count(
        d,
        &l.max_depth,
        "limits.max_depth",
        DEFAULT_MAX_DEPTH,
        (1, 512),
    );
    let max_nodes = count(
        d,
        &l.max_nodes,
        "limits.max_nodes",
        DEFAULT_MAX_NODES,
        (1, 100_000_000),
    );
    let max_in_flight = count(
        d,
        &l.max_in_flight,
        "limits.max_in_flight",
        DEFAULT_MAX_IN_FLIGHT,
        (1, 1_000_000),
    );
    BodyLimits {
        max_body,
        max_in_flight,
        json: Limits {
            max_depth,
            max_nodes,
        },
        body_timeout: dur(
            d,
            &l.body_timeout,
            "limits.body_timeout",
            DEFAULT_BODY_TIMEOUT,
        ),
        header_timeout: dur(
            d,
            &l.header_timeout,
            "limits.header_timeout",
            DEFAULT_HEADER_TIMEOUT,
        ),
    }
}

fn flow_log(d: &mut Diag<'_>, f: &raw::RawFlowLog, base: &Path) -> FlowLogSettings {
    let rotate_size = match &f.rotate_size {
        None => DEFAULT_ROTATE_SIZE,
        Some(s) => units::size(s.get_ref()).unwrap_or_else(|m| {
            d.at(Some(s.span()), "flow_log.rotate_size", m);
            DEFAULT_ROTATE_SIZE
        }),
    };
    let reject_on_failure = match f
        .on_log_failure
        .as_ref()
        .map(|s| (s.get_ref().as_str(), s.span()))
    {
        None | Some(("reject", _)) => true,
        Some(("continue", _)) => false,
        Some((_, span)) => {
            d.at(
                Some(span),
                "flow_log.on_log_failure",
                "must be \"reject\" (default: refuse rule routes with 503) or \"continue\"",
            );
            true
        }
    };
    let client_address = match f
        .client_address
        .as_ref()
        .map(|s| (s.get_ref().as_str(), s.span()))
    {
        None | Some(("truncate", _)) => ClientAddress::Truncate,
        Some(("keep", _)) => ClientAddress::Keep,
        Some(("hash", _)) => ClientAddress::Hash,
        Some(("omit", _)) => ClientAddress::Omit,
        Some((_, span)) => {
            d.at(
                Some(span),
                "flow_log.client_address",
                "must be \"truncate\" (default), \"keep\", \"hash\" or \"omit\"",
            );
            ClientAddress::Truncate
        }
    };
    let path = f.path.get_ref();
    FlowLogSettings {
        path: if path == "-" {
            PathBuf::from("-")
        } else {
            base.join(path)
        },
        rotate_size,
        rotate_every: dur(
            d,
            &f.rotate_every,
            "flow_log.rotate_every",
            DEFAULT_ROTATE_EVERY,
        ),
        delete_after: f.delete_after.as_ref().and_then(|s| {
            let zero = "must be longer than 0; leave it out to keep every file";
            units::duration(s.get_ref())
                .and_then(|t| if t.is_zero() { Err(zero.into()) } else { Ok(t) })
                .map_err(|m| d.at(Some(s.span()), "flow_log.delete_after", m))
                .ok()
        }),
        reject_on_failure,
        client_address,
        hmac: f.hmac.unwrap_or(false),
        instance: Arc::from(
            f.instance
                .as_ref()
                .map_or("tarnkappe", |s| s.get_ref().as_str()),
        ),
        queue: count(
            d,
            &f.queue,
            "flow_log.queue",
            FlowLogConfig::DEFAULT_QUEUE,
            (16, 10_000_000),
        ),
    }
}

#[cfg(test)]
mod tests;
