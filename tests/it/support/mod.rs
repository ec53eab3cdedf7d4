//! Fixtures shared by the integration tests: a [`Stack`] (config and keyring written into
//! a tempdir, the real demo backend storing to SQLite on disk, the real proxy in front of
//! it, both on 127.0.0.1:0), HTTP/1.1 and HTTP/2 clients, a raw-socket client for what a
//! well-behaved client library would not send, and assertions on problem+json answers.
//!
//! Nothing here sleeps to wait for something: every wait is a bounded read or poll.

pub mod raw;

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode, Version};
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tarnkappe::config;
use tarnkappe::crypto::Keyring;
use tarnkappe::demo::{start_backend, BackendHandle};
use tarnkappe::server::{self, Server};
use tempfile::TempDir;
use tokio::net::TcpListener;

pub use raw::RawReply;

/// The client the tests speak through.
pub type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// Longest any single exchange in a test may take before the test fails.
pub const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(20);

/// The customers route most tests use: every sensitive member of a customer document is
/// sealed, `kinds.*` seals one value of each JSON type, everything else stays plaintext.
pub const CUSTOMERS_ROUTE: &str = concat!(
    r#"
[[route]]
name = "customers"
methods = ["POST", "GET", "PUT", "DELETE"]
path = "/api/customers/{*rest}"

"#,
    include_str!("../../fixtures/customer-fields.toml"),
    r#"
  [[route.field]]
  path = "$.customer_number"
  label = "customer.number"
  category = "user.unique_id"
  action = "encrypt"

  [[route.field]]
  path = "$.kinds.*"
  label = "customer.kinds"
  category = "user"
  action = "encrypt"
"#
);

/// A subscriptions route as in `config/demo.toml`: its `$..email` rule ends in the same
/// member name as the customers route's `$.email`.
pub const SUBSCRIPTIONS_ROUTE: &str = r#"
[[route]]
name = "subscriptions"
methods = ["POST", "GET", "PUT"]
path = "/api/subscriptions/{*rest}"

  [[route.field]]
  path = "$..email"
  label = "subscription.email"
  category = "email"
  action = "hash"

  [[route.field]]
  path = "$.payment.iban"
  label = "subscription.iban"
  category = "bank"
  action = "encrypt"
"#;

/// Builds a [`Stack`].
pub struct StackBuilder {
    routes: String,
    max_body: String,
    limits: Vec<String>,
    upstream_timeout: String,
    dead_upstream: bool,
    upstream_at: Option<std::net::SocketAddr>,
    flow_log: bool,
}

/// Both routes, the default.
pub fn customer_routes() -> String {
    format!("{CUSTOMERS_ROUTE}{SUBSCRIPTIONS_ROUTE}")
}

impl Default for StackBuilder {
    fn default() -> Self {
        StackBuilder {
            routes: customer_routes(),
            max_body: "8MiB".to_owned(),
            limits: Vec::new(),
            upstream_timeout: "10s".to_owned(),
            dead_upstream: false,
            upstream_at: None,
            flow_log: false,
        }
    }
}

impl StackBuilder {
    /// Replaces the routes (TOML `[[route]]` tables).
    pub fn routes(mut self, toml: &str) -> Self {
        self.routes = toml.to_owned();
        self
    }

    /// Sets `limits.max_body`.
    pub fn max_body(mut self, size: &str) -> Self {
        self.max_body = size.to_owned();
        self
    }

    /// Adds a line to `[limits]`, e.g. `max_nodes = 100` or `body_timeout = "300ms"`.
    pub fn limit(mut self, line: &str) -> Self {
        self.limits.push(line.to_owned());
        self
    }

    /// Sets `upstream.timeout`.
    pub fn upstream_timeout(mut self, timeout: &str) -> Self {
        self.upstream_timeout = timeout.to_owned();
        self
    }

    /// Points the proxy at a port nobody listens on (the backend still runs).
    pub fn dead_upstream(mut self) -> Self {
        self.dead_upstream = true;
        self
    }

    /// Points the proxy at another upstream (the demo backend still runs).
    pub fn upstream_at(mut self, addr: std::net::SocketAddr) -> Self {
        self.upstream_at = Some(addr);
        self
    }

    /// Writes a flow log to `flow.jsonl` in the stack's directory.
    pub fn flow_log(mut self) -> Self {
        self.flow_log = true;
        self
    }

    /// Writes config and keyring, starts the backend and the proxy.
    pub async fn start(self) -> Stack {
        let dir = tempfile::tempdir().expect("tempdir");
        let backend_listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind backend");
        let backend = start_backend(backend_listener, dir.path().join("shop.db"))
            .await
            .expect("backend starts");
        let upstream = match self.upstream_at {
            Some(addr) => addr,
            None if self.dead_upstream => closed_port().await,
            None => backend.addr,
        };
        let keyring_path = dir.path().join("keyring.toml");
        Keyring::generate()
            .expect("keys")
            .write_new(&keyring_path)
            .expect("keyring written");
        let flow_log_path = dir.path().join("flow.jsonl");
        let mut text = format!(
            "[listen]\naddress = \"127.0.0.1:0\"\n\n\
             [upstream]\nurl = \"http://{upstream}\"\nname = \"demo-shop\"\ntimeout = \"{}\"\n\n\
             [limits]\nmax_body = \"{}\"\n",
            self.upstream_timeout, self.max_body
        );
        for line in &self.limits {
            text.push_str(line);
            text.push('\n');
        }
        text.push_str("\n[keys]\nkeyring = \"keyring.toml\"\n");
        if self.flow_log {
            text.push_str("\n[flow_log]\npath = \"flow.jsonl\"\n");
        }
        text.push_str(&self.routes);
        let config_path = dir.path().join("tarnkappe.toml");
        std::fs::write(&config_path, text).expect("config written");
        let loaded = config::load(&config_path).unwrap_or_else(|e| panic!("config loads:\n{e}"));
        let recorder = server::recorder(&loaded).expect("recorder");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let server = Server::start(loaded, listener, recorder, Duration::from_secs(5))
            .expect("proxy starts");
        Stack {
            dir,
            backend,
            server: Some(server),
            config_path,
            keyring_path,
            flow_log_path,
            client: Client::builder(TokioExecutor::new()).build_http(),
            h2: Client::builder(TokioExecutor::new())
                .http2_only(true)
                .build_http(),
        }
    }
}

/// An address on 127.0.0.1 that refuses connections: bound once, then released.
async fn closed_port() -> std::net::SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    l.local_addr().expect("addr")
}

/// Backend and proxy, running.
pub struct Stack {
    /// Holds config, keyring, database and flow log; removed on drop.
    pub dir: TempDir,
    /// The demo shop backend.
    pub backend: BackendHandle,
    server: Option<Server>,
    /// The proxy's config file.
    pub config_path: PathBuf,
    /// The keyring file the config names.
    pub keyring_path: PathBuf,
    /// Where the flow log goes, when the builder asked for one.
    pub flow_log_path: PathBuf,
    client: HttpClient,
    h2: HttpClient,
}

/// An answer, read whole.
#[derive(Debug)]
pub struct Reply {
    /// Status.
    pub status: StatusCode,
    /// HTTP version it came with.
    pub version: Version,
    /// Headers.
    pub headers: HeaderMap,
    /// Body.
    pub body: Bytes,
}

impl Reply {
    /// The body as UTF-8.
    pub fn text(&self) -> &str {
        std::str::from_utf8(&self.body).expect("utf-8 body")
    }

    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("JSON body ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    /// A header as text ("" when absent).
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map(|v| v.to_str().expect("ascii header"))
            .unwrap_or("")
    }
}

impl Stack {
    /// Starts the default stack.
    pub async fn start() -> Stack {
        StackBuilder::default().start().await
    }

    /// A builder.
    pub fn builder() -> StackBuilder {
        StackBuilder::default()
    }

    /// The running proxy.
    pub fn server(&self) -> &Server {
        self.server.as_ref().expect("proxy running")
    }

    /// The keyring the proxy currently holds.
    pub fn keyring(&self) -> Keyring {
        self.server().proxy.snapshot().keyring.clone()
    }

    /// Stops the proxy (drain, flow log flushed); the backend keeps running.
    pub async fn stop_proxy(&mut self) {
        if let Some(server) = self.server.take() {
            assert!(server.shutdown().await, "proxy drained in time");
        }
    }

    /// Reloads config and keyring from disk, as SIGHUP would.
    pub fn reload(&self) {
        self.server()
            .reload()
            .unwrap_or_else(|e| panic!("reload:\n{e}"));
    }

    /// `http://proxy` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.server().addr)
    }

    /// `http://backend` + `path`: bypasses the proxy.
    pub fn backend_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.backend.addr)
    }

    /// Sends one request through the proxy over HTTP/1.1.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Reply {
        send(&self.client, method, &self.url(path), headers, body.into()).await
    }

    /// Sends one request through the proxy over HTTP/2 with prior knowledge (h2c).
    pub async fn send_h2(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Reply {
        send(&self.h2, method, &self.url(path), headers, body.into()).await
    }

    /// Sends one request straight to the backend, as a shop's own tools would.
    pub async fn send_to_backend(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Reply {
        let url = self.backend_url(path);
        send(&self.client, method, &url, headers, body.into()).await
    }

    /// POSTs a JSON body through the proxy.
    pub async fn post_json(&self, path: &str, body: &str) -> Reply {
        self.send(
            Method::POST,
            path,
            &[("content-type", "application/json")],
            body.to_owned(),
        )
        .await
    }

    /// GETs through the proxy.
    pub async fn get(&self, path: &str) -> Reply {
        self.send(Method::GET, path, &[], Bytes::new()).await
    }

    /// POSTs a customer through the proxy and returns its id.
    pub async fn create(&self, collection: &str, doc: &str) -> i64 {
        let reply = self.post_json(&format!("/api/{collection}"), doc).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());
        reply.json()["id"].as_i64().expect("id")
    }

    /// Writes `request` on a fresh connection to the proxy and reads the answer.
    pub async fn raw(&self, request: impl Into<Vec<u8>>) -> RawReply {
        raw::exchange(self.server().addr, request.into(), Vec::new()).await
    }

    /// Like [`Stack::raw`], then streams `body` after the head while reading the answer
    /// (the proxy may answer before it has read everything).
    pub async fn raw_streaming(&self, head: impl Into<Vec<u8>>, body: Vec<u8>) -> RawReply {
        raw::exchange(self.server().addr, head.into(), body).await
    }

    /// A read-only connection to the backend's database.
    pub fn db(&self) -> rusqlite::Connection {
        rusqlite::Connection::open_with_flags(
            &self.backend.db_path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .expect("open database")
    }

    /// A read-write connection to the backend's database, to play the attacker.
    pub fn db_rw(&self) -> rusqlite::Connection {
        let conn = rusqlite::Connection::open(&self.backend.db_path).expect("open database");
        conn.busy_timeout(Duration::from_secs(5))
            .expect("busy timeout");
        conn
    }

    /// The stored document of a row, verbatim.
    pub fn stored(&self, table: &str, id: i64) -> String {
        self.db()
            .query_row(
                &format!("SELECT doc FROM {table} WHERE id = ?1"),
                [id],
                |r| r.get(0),
            )
            .expect("stored row")
    }

    /// Every byte of every database file (main file and any journal) on disk.
    pub fn db_file_bytes(&self) -> Vec<u8> {
        let name = file_name(&self.backend.db_path);
        let mut all = Vec::new();
        for entry in std::fs::read_dir(self.dir.path()).expect("list dir") {
            let path = entry.expect("entry").path();
            if file_name(&path).starts_with(&name) {
                all.extend(std::fs::read(&path).expect("read database file"));
            }
        }
        assert!(!all.is_empty(), "the database file exists");
        all
    }
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .expect("file name")
        .to_string_lossy()
        .into_owned()
}

/// Sends one request with `client` and reads the whole answer.
pub async fn send(
    client: &HttpClient,
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: Bytes,
) -> Reply {
    let mut req = Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(Full::new(body)).expect("request");
    let exchange = async {
        let resp = client.request(req).await.expect("answer");
        let (parts, body) = resp.into_parts();
        let body = body.collect().await.expect("body").to_bytes();
        Reply {
            status: parts.status,
            version: parts.version,
            headers: parts.headers,
            body,
        }
    };
    tokio::time::timeout(EXCHANGE_TIMEOUT, exchange)
        .await
        .expect("exchange finished in time")
}

/// Does `haystack` contain `needle`?
pub fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// Asserts a problem+json answer with this status and reason, and returns its body.
pub fn assert_problem(
    status: StatusCode,
    content_type: &str,
    body: &[u8],
    want: StatusCode,
    reason: &str,
) {
    let text = String::from_utf8_lossy(body);
    assert_eq!(status, want, "status for {reason}: {text}");
    assert_eq!(content_type, "application/problem+json", "{reason}");
    let json: serde_json::Value = serde_json::from_slice(body).expect("problem body is JSON");
    assert_eq!(
        json["type"],
        format!("urn:tarnkappe:problem:{reason}"),
        "problem type: {text}"
    );
    assert_eq!(json["status"], want.as_u16(), "{text}");
}

impl Reply {
    /// Asserts a problem+json answer with this status and reason.
    pub fn assert_problem(&self, want: StatusCode, reason: &str) {
        assert_problem(
            self.status,
            self.header("content-type"),
            &self.body,
            want,
            reason,
        );
    }
}

/// Finds `"tk1...."` strings in a stored document, in order.
pub fn tokens(doc: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = doc;
    while let Some(at) = rest.find("\"tk1.") {
        let tail = &rest[at + 1..];
        let end = tail.find('"').expect("closing quote");
        out.push(tail[..end].to_owned());
        rest = &tail[end..];
    }
    out
}

/// The member `name` of a stored JSON document, as a string (a token).
pub fn member_token(doc: &str, pointer: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(doc).expect("stored doc is JSON");
    v.pointer(pointer)
        .and_then(|m| m.as_str())
        .unwrap_or_else(|| panic!("{pointer} is a string in the stored doc"))
        .to_owned()
}
