//! Fixtures of the operations tests (admin listener, Prometheus, reload, shutdown, flow-log
//! failure, logs): a temp site with a keyring and the real demo backend, a config builder,
//! the real proxy started in-process on 127.0.0.1:0, and the real binary as a child
//! process that is always killed when the test ends, even on panic.
//!
//! The tests live in `ops_*.rs`; this file holds no test. Every distinctive value the tests
//! send is built here, so the "never in a log" checks search for exactly what was sent.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use tarnkappe::crypto::Keyring;
use tarnkappe::demo::{start_backend, BackendHandle};
use tarnkappe::server::{self, Server};
use tempfile::TempDir;
use tokio::net::TcpListener;

use crate::ops_http::{must, parse_exposition, Exposition, Req};

/// The `redact` replacement of the phone rule, as the backend stores it.
pub const REDACTED: &str = "[redacted]";

/// What differs between the configs the tests write.
#[derive(Clone, Debug)]
pub struct Setup {
    /// Public address; `127.0.0.1:0` in-process (the test binds the listener itself).
    pub listen: SocketAddr,
    /// Admin address.
    pub admin: SocketAddr,
    /// `flow_log.path`, relative to the site.
    pub flow_log: String,
    /// `flow_log.on_log_failure`, when set.
    pub on_log_failure: Option<&'static str>,
    /// `flow_log.queue`, when set.
    pub queue: Option<usize>,
    /// `flow_log.rotate_size`, when set.
    pub rotate_size: Option<&'static str>,
    /// `flow_log.delete_after`, when set.
    pub delete_after: Option<&'static str>,
    /// Action of the customers route's `$.phone` rule: `encrypt` or `redact`.
    pub phone_action: &'static str,
    /// Adds a `subscriptions` rule route.
    pub subscriptions: bool,
    /// Makes the config invalid (an unknown action), to test refused reloads.
    pub broken: bool,
}

impl Default for Setup {
    fn default() -> Setup {
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        Setup {
            listen: any,
            admin: any,
            flow_log: "log/flow.jsonl".into(),
            on_log_failure: None,
            queue: None,
            rotate_size: None,
            delete_after: None,
            phone_action: "encrypt",
            subscriptions: false,
            broken: false,
        }
    }
}

impl Setup {
    /// The config file's text, for a backend at `backend`.
    pub fn render(&self, backend: SocketAddr) -> String {
        let mut t = format!(
            "[listen]\naddress = \"{}\"\n\n[admin]\naddress = \"{}\"\n\n\
             [upstream]\nurl = \"http://{backend}\"\nname = \"shop\"\ntimeout = \"10s\"\n\n\
             [keys]\nkeyring = \"keyring.toml\"\n\n[flow_log]\npath = \"{}\"\n",
            self.listen, self.admin, self.flow_log
        );
        if let Some(f) = self.on_log_failure {
            t += &format!("on_log_failure = \"{f}\"\n");
        }
        if let Some(q) = self.queue {
            t += &format!("queue = {q}\n");
        }
        if let Some(s) = self.rotate_size {
            t += &format!("rotate_size = \"{s}\"\n");
        }
        if let Some(d) = self.delete_after {
            t += &format!("delete_after = \"{d}\"\n");
        }
        let phone = match (self.broken, self.phone_action) {
            (true, _) => "action = \"encrypt-ish\"".to_owned(),
            (false, "redact") => format!("action = \"redact\"\nreplacement = \"{REDACTED}\""),
            (false, a) => format!("action = \"{a}\""),
        };
        t += &format!(
            r#"
[[route]]
name = "customers"
methods = ["POST", "GET", "PUT"]
path = "/api/customers/{{*rest}}"

  [[route.field]]
  path = "$.email"
  label = "customer.email"
  category = "email"
  action = "encrypt-deterministic"

  [[route.field]]
  path = "$.name"
  label = "customer.name"
  category = "name"
  action = "encrypt"

  [[route.field]]
  path = "$.phone"
  label = "customer.phone"
  category = "phone"
  {phone}

  [[route.field]]
  path = "$.payment.card_number"
  label = "customer.card"
  category = "card"
  action = "mask"
  keep_last = 4

[[route]]
name = "slow"
methods = ["GET"]
path = "/api/slow"

[[route]]
name = "headers"
methods = ["GET"]
path = "/api/headers"

[[route]]
name = "echo"
methods = ["POST"]
path = "/api/echo"
"#
        );
        if self.subscriptions {
            t += r#"
[[route]]
name = "subscriptions"
methods = ["POST", "GET"]
path = "/api/subscriptions/{*rest}"

  [[route.field]]
  path = "$.payment.iban"
  label = "subscription.iban"
  category = "bank"
  action = "encrypt"
"#;
        }
        t
    }
}

/// A temp directory with a keyring and a running demo backend.
pub struct Site {
    pub dir: TempDir,
    pub backend: BackendHandle,
}

impl Site {
    pub async fn new() -> Site {
        let dir = tempfile::tempdir().expect("temp dir");
        Keyring::generate()
            .expect("keyring")
            .write_new(&dir.path().join("keyring.toml"))
            .expect("writing the keyring");
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind backend");
        let backend = start_backend(listener, dir.path().join("shop.db"))
            .await
            .expect("backend");
        Site { dir, backend }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn config_path(&self) -> PathBuf {
        self.path("tarnkappe.toml")
    }

    /// Writes the config file (atomically, as an operator's deploy tool would).
    pub fn write_config(&self, setup: &Setup) -> PathBuf {
        let path = self.config_path();
        let tmp = self.path("tarnkappe.toml.new");
        std::fs::write(&tmp, setup.render(self.backend.addr)).expect("writing the config");
        std::fs::rename(&tmp, &path).expect("renaming the config");
        path
    }

    /// Writes the config and starts the real proxy in-process.
    pub async fn start(&self, setup: &Setup) -> Server {
        let path = self.write_config(setup);
        let loaded = tarnkappe::config::load(&path).unwrap_or_else(|e| panic!("config: {e}"));
        let recorder = server::recorder(&loaded).expect("recorder");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        Server::start(loaded, listener, recorder, Duration::from_secs(5)).expect("server")
    }

    /// The stored document as the backend holds it (asked directly, not through the proxy).
    pub async fn stored(&self, location: &str) -> serde_json::Value {
        let r = must(self.backend.addr, &Req::get(location)).await;
        assert_eq!(r.status, 200, "backend GET {location}: {}", r.text());
        r.json()
    }

    /// Every line of the flow log and its rotated files.
    pub fn flow_lines(&self, rel: &str) -> Vec<String> {
        let path = self.path(rel);
        let Some(dir) = path.parent().filter(|d| d.is_dir()) else {
            return Vec::new();
        };
        let mut names: Vec<_> = std::fs::read_dir(dir)
            .expect("flow-log dir")
            .map(|e| e.expect("dir entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
            .collect();
        names.sort();
        names
            .iter()
            .flat_map(|p| {
                let text = std::fs::read_to_string(p).expect("flow log");
                text.lines().map(str::to_owned).collect::<Vec<_>>()
            })
            .collect()
    }
}

/// `GET /metrics` on the admin listener, parsed strictly.
pub async fn scrape(admin: SocketAddr) -> (String, Exposition) {
    let r = must(admin, &Req::get("/metrics")).await;
    assert_eq!(r.status, 200, "/metrics: {}", r.text());
    let text = r.text();
    let parsed = parse_exposition(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    (text, parsed)
}

/// The admin address of an in-process server.
pub fn admin_of(server: &Server) -> SocketAddr {
    server
        .admin_addr
        .expect("the configs here always have [admin]")
}

/// Polls `probe` every 25 ms until it yields a value; panics after `limit`.
pub async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A port that was free a moment ago, for configs the binary binds itself.
pub fn free_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr")
}

/// A customer whose every value carries `core`, so a search for `core` finds any of them.
pub fn customer(core: &str) -> String {
    serde_json::json!({
        "email": format!("{core}@example.com"),
        "name": format!("Ada {core}"),
        "phone": format!("+49 30 {core}"),
        "plan": format!("gold-{core}"),
        "payment": { "card_number": format!("4111{core}1111") },
    })
    .to_string()
}

/// A distinctive value: letters that never occur in hex ids or hashes, plus randomness.
pub fn canary() -> String {
    let n: u64 = rand::random();
    let tail: String = (0..10)
        .map(|i| (b'g' + ((n >> (i * 4)) % 20) as u8) as char)
        .collect();
    format!("qzcanary{tail}")
}

/// The real `tarnkappe` binary as a child process; killed when dropped.
pub struct Proc {
    child: Child,
    pub stdout: PathBuf,
    pub stderr: PathBuf,
}

impl Proc {
    /// Runs `tarnkappe <args>` with `env` added; output goes to files in `dir`.
    pub fn spawn(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Proc {
        let stdout = dir.join("stdout.txt");
        let stderr = dir.join("stderr.txt");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tarnkappe"));
        cmd.args(args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout).expect("stdout file"))
            .stderr(std::fs::File::create(&stderr).expect("stderr file"));
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("spawning tarnkappe");
        Proc {
            child,
            stdout,
            stderr,
        }
    }

    /// `tarnkappe <global> serve --config <config>`, returned once its admin listener
    /// answers.
    pub async fn serve(
        dir: &Path,
        config: &Path,
        admin: SocketAddr,
        global: &[&str],
        env: &[(&str, &str)],
    ) -> Proc {
        let config = config.to_str().expect("utf-8 path");
        let mut args = global.to_vec();
        args.extend(["serve", "--config", config]);
        let mut p = Proc::spawn(dir, &args, env);
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = p.child.try_wait() {
                panic!(
                    "tarnkappe serve exited early ({status}): {}",
                    p.stderr_text()
                );
            }
            let probe = crate::ops_http::send(admin, &Req::get("/healthz")).await;
            if probe.is_ok_and(|r| r.status == 200) {
                return p;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "tarnkappe serve did not come up: {}",
                p.stderr_text()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal (`TERM`, `HUP`) with kill(1): the crate forbids unsafe code.
    pub fn signal(&self, name: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .expect("running kill")
            .success();
        assert!(ok, "kill -{name} failed");
    }

    /// Waits for the process to exit; panics after `limit`.
    pub async fn wait(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "tarnkappe did not exit within {limit:?}: {}",
                self.stderr_text()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub fn stderr_text(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    pub fn stdout_text(&self) -> String {
        std::fs::read_to_string(&self.stdout).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs `tarnkappe <args>` to completion (for `audit verify`).
pub fn run_cli(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_tarnkappe"))
        .args(args)
        .output()
        .expect("running tarnkappe")
}

/// Sends `core` through the proxy every way a client can: sealed, opened, in a query, a
/// path, a method, headers, cookies, bad and refused bodies, a plain route, a broken
/// request line. Returns how many exchanges reached the proxy's request path.
pub async fn send_sensitive_traffic(proxy: SocketAddr, core: &str) -> usize {
    let auth = format!("Bearer {core}-auth");
    let cookie = format!("session={core}-cookie");
    let created = must(
        proxy,
        &Req::json("POST", "/api/customers", customer(core))
            .header("authorization", &auth)
            .header("cookie", &cookie)
            .header("x-api-key", core)
            .header("x-request-id", &format!("{core} !")),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.text());
    let location = created.header("location").expect("location").to_owned();
    let opened = must(proxy, &Req::get(&location).header("authorization", &auth)).await;
    assert!(
        opened.text().contains(core),
        "the caller reads plaintext back"
    );
    let put = Req::json("PUT", &location, customer(core)).header("cookie", &cookie);
    assert_eq!(must(proxy, &put).await.status, 200);
    let expect = [
        (
            Req::get(&format!("/api/customers?email={core}%40example.com")),
            200,
        ),
        (
            Req::json("POST", "/api/customers", format!("{{\"email\":\"{core}\",")),
            400,
        ),
        (
            Req::json(
                "POST",
                "/api/customers",
                format!("{{\"email\":\"a{core}\",\"email\":\"b{core}\"}}"),
            ),
            400,
        ),
        (
            Req::new("POST", "/api/customers")
                .header("content-type", "text/plain")
                .body(core),
            415,
        ),
        (
            Req::get(&format!("/api/customers/{core}/x?secret={core}")),
            404,
        ),
        (Req::get(&format!("/bad%2F{core}")), 400),
        (
            Req::json("POST", "/api/echo", format!("{{\"note\":\"{core}\"}}")),
            200,
        ),
        (Req::get("/api/headers").header("cookie", &cookie), 200),
        (Req::new(core, &format!("/{core}")), 404),
    ];
    for (req, status) in &expect {
        let r = must(proxy, req).await;
        assert_eq!(
            r.status,
            *status,
            "{} {}: {}",
            req.method,
            req.target,
            r.text()
        );
    }
    // Not even HTTP: the server refuses it before the proxy sees a request.
    let garbage = format!("GET /x HTTP/1.1\r\nbad header {core}\r\n\r\n");
    crate::ops_http::raw_exchange(proxy, garbage.as_bytes()).await;
    3 + expect.len()
}
