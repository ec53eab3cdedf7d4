//! The deployment files under deploy/ agree with each other and with the binary: every
//! file docker-compose.yml names exists; every config that compose and the Kubernetes
//! ConfigMap mount passes `tarnkappe check` with a fresh keyring handed over the way the
//! deployment hands it over; the Dockerfile's HEALTHCHECK works against a served config;
//! the dashboard and the alert rules use only metric families the proxy exports, and the
//! operations page documents every family.
//!
//! YAML is read by python3 with PyYAML; hadolint and promtool lint the Dockerfile and the
//! rules. Each is skipped when missing, except with CI=true, where a missing one fails
//! (scripts/ci-tools.sh installs them).

use std::collections::{BTreeMap, BTreeSet};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_tarnkappe");

/// The families the `process` collector of the prometheus crate exports.
const PROCESS_FAMILIES: &[&str] = &[
    "process_cpu_seconds_total",
    "process_max_fds",
    "process_open_fds",
    "process_resident_memory_bytes",
    "process_start_time_seconds",
    "process_threads",
    "process_virtual_memory_bytes",
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn deploy() -> PathBuf {
    root().join("deploy")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

fn in_ci() -> bool {
    matches!(std::env::var("CI").as_deref(), Ok("true") | Ok("1"))
}

/// A tool is missing: a failure in CI, a skip (with a note) elsewhere.
fn missing(what: &str) {
    assert!(
        !in_ci(),
        "{what} is missing and CI=true requires it: run scripts/ci-tools.sh"
    );
    eprintln!("skipped: {what} is not installed (scripts/ci-tools.sh installs it)");
}

/// The tool's path when it is on PATH.
fn tool(name: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        missing(name);
    }
    found
}

const YAML_TO_JSON: &str = r#"
import json, sys
try:
    import yaml
except ImportError:
    sys.exit(3)
with open(sys.argv[1], encoding="utf-8") as f:
    docs = list(yaml.safe_load_all(f))
json.dump(docs, sys.stdout, default=str)
"#;

/// Every document of a YAML file, as JSON; None when python3 or PyYAML is missing.
fn yaml(path: &Path) -> Option<Vec<Value>> {
    let out = match Command::new("python3")
        .arg("-c")
        .arg(YAML_TO_JSON)
        .arg(path)
        .output()
    {
        Ok(out) => out,
        Err(_) => {
            missing("python3");
            return None;
        }
    };
    if out.status.code() == Some(3) {
        missing("PyYAML (python3 -m pip install pyyaml)");
        return None;
    }
    assert!(
        out.status.success(),
        "{} is not valid YAML:\n{}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    Some(serde_json::from_slice(&out.stdout).expect("python's JSON"))
}

/// The single document of a YAML file.
fn yaml_one(path: &Path) -> Option<Value> {
    let mut docs = yaml(path)?;
    assert_eq!(docs.len(), 1, "{} holds one document", path.display());
    docs.pop()
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A command of ours without whatever TARNKAPPE_* the test run itself carries.
fn tarnkappe(args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("TARNKAPPE_") {
            cmd.env_remove(k);
        }
    }
    cmd
}

/// A fresh keyring made by `keys generate`: (its file, its content).
fn keyring(dir: &Path) -> (PathBuf, String) {
    let path = dir.join("keyring.toml");
    let out = tarnkappe(&["keys", "generate", "--out"])
        .arg(&path)
        .output()
        .expect("running keys generate");
    assert!(out.status.success(), "keys generate: {}", text(&out));
    let content = read(&path);
    (path, content)
}

/// `tarnkappe check --config FILE` with the environment a deployment gives the process.
fn check(config: &Path, env: &BTreeMap<String, String>) -> Output {
    let mut cmd = tarnkappe(&["check", "--config"]);
    cmd.arg(config);
    for (k, v) in env {
        if k != "TARNKAPPE_CONFIG" {
            cmd.env(k, v);
        }
    }
    cmd.output().expect("running check")
}

fn assert_check_passes(config: &Path, env: &BTreeMap<String, String>, what: &str) {
    let out = check(config, env);
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("ok: "),
        "{what}: `tarnkappe check --config {}` fails:\n{}",
        config.display(),
        text(&out)
    );
}

fn toml_table(text: &str, what: &str) -> toml::Table {
    toml::from_str(text).unwrap_or_else(|e| panic!("{what} is not TOML: {e}"))
}

fn port_of(address: &str) -> u16 {
    address
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("`{address}` has no port"))
}

/// (listen port, admin port, flow-log path) of a tarnkappe config.
fn ports_and_log(config: &toml::Table) -> (u16, u16, Option<String>) {
    let listen = config["listen"]["address"]
        .as_str()
        .expect("listen.address");
    let admin = config
        .get("admin")
        .and_then(|a| a.get("address"))
        .and_then(|a| a.as_str())
        .expect("the deployed config has an [admin] address (health checks and metrics)");
    let log = config
        .get("flow_log")
        .and_then(|f| f.get("path"))
        .and_then(|p| p.as_str())
        .map(str::to_owned);
    (port_of(listen), port_of(admin), log)
}

fn seconds(duration: &str) -> u64 {
    let digits: String = duration.chars().take_while(char::is_ascii_digit).collect();
    let n: u64 = digits.parse().expect("a duration");
    match &duration[digits.len()..] {
        "s" | "" => n,
        "m" => n * 60,
        other => panic!("unexpected duration unit `{other}`"),
    }
}

/// The container path `path` resolved through `mounts` (container target -> host source).
fn host_path(mounts: &[(String, PathBuf)], path: &str) -> Option<PathBuf> {
    mounts.iter().find_map(|(target, source)| {
        Path::new(path).strip_prefix(target).ok().map(|rest| {
            if rest.as_os_str().is_empty() {
                source.clone()
            } else {
                source.join(rest)
            }
        })
    })
}

// ---------------------------------------------------------------------------------------
// Dockerfile

/// The Dockerfile's instructions (continuations joined, comments dropped) and its stages.
struct Dockerfile {
    /// (instruction, arguments) in order.
    lines: Vec<(String, String)>,
}

impl Dockerfile {
    fn load() -> Dockerfile {
        let mut lines = Vec::new();
        let mut current = String::new();
        for line in read(&deploy().join("Dockerfile")).lines() {
            let trimmed = line.trim();
            if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_empty()) {
                continue;
            }
            match trimmed.strip_suffix('\\') {
                Some(part) => {
                    current.push_str(part);
                    current.push(' ');
                }
                None => {
                    current.push_str(trimmed);
                    let (instr, args) = current.split_once(' ').unwrap_or((&current, ""));
                    lines.push((instr.to_ascii_uppercase(), args.trim().to_owned()));
                    current.clear();
                }
            }
        }
        Dockerfile { lines }
    }

    /// Instructions of the final stage.
    fn runtime(&self) -> &[(String, String)] {
        let last_from = self
            .lines
            .iter()
            .rposition(|(i, _)| i == "FROM")
            .expect("a FROM");
        &self.lines[last_from..]
    }

    fn runtime_all(&self, instr: &str) -> Vec<&str> {
        self.runtime()
            .iter()
            .filter(|(i, _)| i == instr)
            .map(|(_, a)| a.as_str())
            .collect()
    }

    /// The runtime stage's ENV values.
    fn env(&self) -> BTreeMap<String, String> {
        let mut env = BTreeMap::new();
        for args in self.runtime_all("ENV") {
            for pair in args.split_whitespace() {
                if let Some((k, v)) = pair.split_once('=') {
                    env.insert(k.to_owned(), v.trim_matches('"').to_owned());
                }
            }
        }
        env
    }

    /// The HEALTHCHECK command (exec form).
    fn healthcheck(&self) -> Vec<String> {
        let hc = self.runtime_all("HEALTHCHECK");
        assert_eq!(hc.len(), 1, "one HEALTHCHECK in the runtime stage");
        let cmd = hc[0]
            .split_once("CMD ")
            .expect("HEALTHCHECK ... CMD [...]")
            .1;
        serde_json::from_str(cmd).expect("HEALTHCHECK CMD in exec (JSON) form")
    }

    fn config_path(&self) -> String {
        self.env()
            .get("TARNKAPPE_CONFIG")
            .cloned()
            .expect("ENV TARNKAPPE_CONFIG in the runtime stage")
    }
}

#[test]
fn dockerfile_builds_a_small_non_root_image_with_a_health_check() {
    let df = Dockerfile::load();
    let froms: Vec<_> = df.lines.iter().filter(|(i, _)| i == "FROM").collect();
    assert!(
        froms.len() >= 2,
        "multi-stage: a builder and a runtime stage"
    );
    assert!(
        froms[0].1.starts_with("rust:") && froms[0].1.contains(" AS "),
        "the builder is a named rust image stage: {}",
        froms[0].1
    );

    // The builder's toolchain is the pinned one.
    let toolchain = toml_table(
        &read(&root().join("rust-toolchain.toml")),
        "rust-toolchain.toml",
    );
    let channel = toolchain["toolchain"]["channel"].as_str().expect("channel");
    let arg = df
        .lines
        .iter()
        .find_map(|(i, a)| {
            (i == "ARG")
                .then(|| a.strip_prefix("RUST_VERSION="))
                .flatten()
        })
        .expect("ARG RUST_VERSION=...");
    assert_eq!(arg, channel, "ARG RUST_VERSION follows rust-toolchain.toml");

    // Every bind-mounted source exists and is let through .dockerignore.
    let ignore = read(&root().join(".dockerignore"));
    let allowed: BTreeSet<&str> = ignore
        .lines()
        .filter_map(|l| l.trim().strip_prefix('!'))
        .map(|l| l.trim_end_matches('/'))
        .collect();
    let mut sources = 0;
    for (_, args) in df.lines.iter().filter(|(i, _)| i == "RUN") {
        for mount in args
            .split_whitespace()
            .filter(|w| w.starts_with("--mount="))
        {
            if !mount.contains("type=bind") {
                continue;
            }
            let source = mount
                .split(',')
                .find_map(|kv| kv.strip_prefix("source="))
                .expect("bind mount with a source");
            assert!(root().join(source).exists(), "build input {source} exists");
            assert!(
                allowed.contains(source),
                "{source} is let through .dockerignore"
            );
            sources += 1;
        }
    }
    assert!(sources >= 3, "the build bind-mounts its inputs");

    // The runtime stage: no shell tools installed, a numeric non-root user, both ports,
    // the labels, a health check through our own binary.
    assert!(
        df.runtime_all("RUN").is_empty(),
        "the runtime stage installs nothing (no curl, no shell)"
    );
    let user = df.runtime_all("USER");
    let user = user.last().expect("USER in the runtime stage");
    let uid = user.split(':').next().unwrap_or_default();
    assert!(
        uid.parse::<u32>().is_ok_and(|u| u != 0),
        "numeric non-root USER, got {user}"
    );
    let exposed: BTreeSet<u16> = df
        .runtime_all("EXPOSE")
        .iter()
        .flat_map(|a| a.split_whitespace())
        .map(|p| p.trim_end_matches("/tcp").parse().expect("a port"))
        .collect();
    assert_eq!(exposed, BTreeSet::from([8080, 9090]), "EXPOSE 8080 9090");
    let labels = df.runtime_all("LABEL").join(" ");
    for key in [
        "org.opencontainers.image.title",
        "org.opencontainers.image.source",
        "org.opencontainers.image.version",
        "org.opencontainers.image.revision",
        "org.opencontainers.image.licenses",
    ] {
        assert!(labels.contains(key), "LABEL {key}");
    }
    let hc = df.healthcheck();
    assert!(
        hc[0].ends_with("/tarnkappe") && hc.get(1).map(String::as_str) == Some("health"),
        "HEALTHCHECK runs `tarnkappe health`, got {hc:?}"
    );
    assert!(df.config_path().starts_with("/etc/tarnkappe/"));
    assert_eq!(df.runtime_all("VOLUME"), vec![r#"["/var/lib/tarnkappe"]"#]);
}

#[test]
fn hadolint_passes_on_the_dockerfile() {
    let Some(hadolint) = tool("hadolint") else {
        return;
    };
    let out = Command::new(hadolint)
        .arg(deploy().join("Dockerfile"))
        .output()
        .expect("running hadolint");
    assert!(out.status.success(), "hadolint: {}", text(&out));
}

// ---------------------------------------------------------------------------------------
// docker compose

/// A compose volume entry as (source, target, read-only).
fn compose_volume(v: &Value) -> (String, String, bool) {
    match v {
        Value::String(s) => {
            let parts: Vec<&str> = s.split(':').collect();
            assert!(parts.len() >= 2, "volume `{s}` is source:target[:mode]");
            let ro = parts
                .get(2)
                .is_some_and(|m| m.split(',').any(|o| o == "ro"));
            (parts[0].to_owned(), parts[1].to_owned(), ro)
        }
        Value::Object(_) => (
            v["source"].as_str().unwrap_or_default().to_owned(),
            v["target"].as_str().expect("volume target").to_owned(),
            v["read_only"].as_bool().unwrap_or(false),
        ),
        other => panic!("unexpected volume entry {other}"),
    }
}

fn is_bind(source: &str) -> bool {
    source.starts_with('.') || source.starts_with('/') || source.starts_with('~')
}

/// A service's environment with compose's `${VAR:-default}` resolved to the default and
/// `${TARNKAPPE_KEYRING...}` to the keyring.
fn compose_env(service: &Value, keyring: &str) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    let entries: Vec<(String, String)> = match &service["environment"] {
        Value::Object(m) => m
            .iter()
            .map(|(k, v)| {
                let v = match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                (k.clone(), v)
            })
            .collect(),
        Value::Array(items) => items
            .iter()
            .filter_map(|i| i.as_str()?.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        _ => Vec::new(),
    };
    for (k, v) in entries {
        let value = match v.strip_prefix("${") {
            None => v,
            Some(_) if k == "TARNKAPPE_KEYRING" => keyring.to_owned(),
            Some(rest) => match rest.split_once(":-") {
                Some((_, default)) => default.trim_end_matches('}').to_owned(),
                None => continue,
            },
        };
        env.insert(k, value);
    }
    env
}

#[test]
fn compose_references_only_files_that_exist() {
    let Some(compose) = yaml_one(&deploy().join("docker-compose.yml")) else {
        return;
    };
    let dir = deploy();
    let services = compose["services"].as_object().expect("services");
    let named: BTreeSet<&String> = compose["volumes"]
        .as_object()
        .map(|m| m.keys().collect())
        .unwrap_or_default();
    let built: BTreeSet<&str> = services
        .values()
        .filter(|s| !s["build"].is_null())
        .filter_map(|s| s["image"].as_str())
        .collect();
    for (name, s) in services {
        if !s["build"].is_null() {
            let (context, dockerfile) = match &s["build"] {
                Value::String(c) => (c.as_str(), "Dockerfile"),
                b => (
                    b["context"].as_str().unwrap_or("."),
                    b["dockerfile"].as_str().unwrap_or("Dockerfile"),
                ),
            };
            let context = dir.join(context);
            assert!(context.is_dir(), "{name}: build context {context:?}");
            assert!(
                context.join(dockerfile).is_file(),
                "{name}: dockerfile {dockerfile} in {context:?}"
            );
        }
        if let Some(image) = s["image"].as_str() {
            if image.starts_with("tarnkappe") {
                assert!(built.contains(image), "{name}: {image} is built here");
            } else {
                let tag = image.rsplit_once(':').map(|(_, t)| t);
                assert!(
                    tag.is_some_and(|t| t != "latest"),
                    "{name}: pin the image version, got {image}"
                );
            }
        }
        for v in s["volumes"].as_array().into_iter().flatten() {
            let (source, target, _) = compose_volume(v);
            if is_bind(&source) {
                assert!(
                    dir.join(&source).exists(),
                    "{name}: bind mount {source} -> {target}: no such file in deploy/"
                );
            } else {
                assert!(
                    named.contains(&source),
                    "{name}: volume {source} is not declared"
                );
            }
        }
        for f in s["env_file"].as_array().into_iter().flatten() {
            let f = f.as_str().or_else(|| f["path"].as_str()).expect("env_file");
            assert!(dir.join(f).is_file(), "{name}: env_file {f}");
        }
        let deps: Vec<&String> = match &s["depends_on"] {
            Value::Array(a) => a
                .iter()
                .filter_map(|d| d.as_str())
                .map(|d| services.get_key_value(d).expect("a service").0)
                .collect(),
            Value::Object(m) => m.keys().collect(),
            _ => Vec::new(),
        };
        for d in deps {
            assert!(services.contains_key(d), "{name} depends on unknown {d}");
        }
        // Published ports stay on the host's loopback.
        for p in s["ports"].as_array().into_iter().flatten() {
            let host_ip = match p {
                Value::String(p) => {
                    let parts: Vec<&str> = p.split(':').collect();
                    (parts.len() == 3).then(|| parts[0].to_owned())
                }
                m => m["host_ip"].as_str().map(str::to_owned),
            };
            assert_eq!(
                host_ip.as_deref(),
                Some("127.0.0.1"),
                "{name}: port {p} is published beyond loopback"
            );
        }
    }
    for section in ["configs", "secrets"] {
        for (name, c) in compose[section].as_object().into_iter().flatten() {
            if let Some(f) = c["file"].as_str() {
                assert!(dir.join(f).is_file(), "{section}.{name}: file {f}");
            }
        }
    }
}

#[test]
fn compose_config_passes_check_and_fits_the_stack() {
    let Some(compose) = yaml_one(&deploy().join("docker-compose.yml")) else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    let (_, keyring) = keyring(tmp.path());
    let df = Dockerfile::load();
    let services = compose["services"].as_object().expect("services");

    // Every TOML file compose mounts (a file, or the files of a mounted directory) is a
    // config that passes check with the environment compose gives that service.
    let mut checked = 0;
    for (name, s) in services {
        let env = compose_env(s, &keyring);
        for v in s["volumes"].as_array().into_iter().flatten() {
            let (source, _, _) = compose_volume(v);
            if !is_bind(&source) {
                continue;
            }
            let path = deploy().join(&source);
            let files: Vec<PathBuf> = if path.is_dir() {
                std::fs::read_dir(&path)
                    .expect("listing")
                    .map(|e| e.expect("entry").path())
                    .collect()
            } else {
                vec![path]
            };
            for f in files
                .iter()
                .filter(|f| f.extension().is_some_and(|e| e == "toml"))
            {
                assert_check_passes(f, &env, &format!("compose service {name}"));
                checked += 1;
            }
        }
    }
    assert!(checked >= 1, "compose mounts a tarnkappe config");

    // The proxy service: its config is where the image looks, read-only, its flow log on
    // a writable volume, its root filesystem read-only, its admin port unpublished.
    let (name, proxy) = services
        .iter()
        .find(|(_, s)| !s["build"].is_null())
        .expect("the service that builds the image");
    let env = compose_env(proxy, &keyring);
    assert!(
        env.get("TARNKAPPE_KEYRING").is_some_and(|k| k == &keyring),
        "{name} takes the keyring from TARNKAPPE_KEYRING"
    );
    let config_path = env
        .get("TARNKAPPE_CONFIG")
        .cloned()
        .unwrap_or_else(|| df.config_path());
    let volumes: Vec<_> = proxy["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(compose_volume)
        .collect();
    let mounts: Vec<(String, PathBuf)> = volumes
        .iter()
        .filter(|(s, _, _)| is_bind(s))
        .map(|(s, t, _)| (t.clone(), deploy().join(s)))
        .collect();
    let host = host_path(&mounts, &config_path)
        .unwrap_or_else(|| panic!("{name}: nothing mounted at {config_path}"));
    assert!(host.is_file(), "{name}: {config_path} is {host:?}");
    assert!(
        volumes
            .iter()
            .any(|(_, t, ro)| *ro && Path::new(&config_path).starts_with(t)),
        "{name}: the config is mounted read-only"
    );
    assert_eq!(proxy["read_only"], Value::Bool(true), "{name}: read_only");
    let config = toml_table(&read(&host), "the compose config");
    let (listen, admin, log) = ports_and_log(&config);
    let log = log.expect("the compose config keeps a flow log");
    let log_dir = Path::new(&log).parent().expect("a directory");
    assert!(
        volumes
            .iter()
            .any(|(s, t, ro)| !ro && !is_bind(s) && log_dir.starts_with(t)),
        "{name}: the flow log {log} is on a writable named volume"
    );
    for p in proxy["ports"].as_array().into_iter().flatten() {
        let container = p
            .as_str()
            .map(port_of)
            .or_else(|| p["target"].as_u64().map(|t| t as u16));
        assert_ne!(
            container,
            Some(admin),
            "{name}: the admin port is published"
        );
    }
    assert!(
        proxy["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|p| p.as_str().is_some_and(|p| port_of(p) == listen)),
        "{name}: the proxy port {listen} is published"
    );
    let grace = env.get("TARNKAPPE_GRACE").map_or(30, |g| seconds(g));
    let stop = proxy["stop_grace_period"].as_str().map_or(10, seconds);
    assert!(
        stop > grace,
        "{name}: stop_grace_period {stop}s > grace {grace}s"
    );

    // The backend the config names is a compose service, on the port it listens on.
    let upstream = config["upstream"]["url"].as_str().expect("upstream.url");
    let authority = upstream.trim_start_matches("http://").trim_end_matches('/');
    let (host_name, port) = authority.split_once(':').expect("host:port");
    let backend = &services
        .get(host_name)
        .unwrap_or_else(|| panic!("upstream {host_name} is a compose service"));
    let command: Vec<&str> = backend["command"]
        .as_array()
        .expect("the backend's command")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(command.first(), Some(&"demo-backend"));
    let at = command
        .iter()
        .position(|a| *a == "--listen")
        .expect("--listen");
    assert_eq!(port_of(command[at + 1]), port.parse::<u16>().expect("port"));

    // Prometheus scrapes the proxy's admin port and loads the rules it is given.
    let prom_dir = deploy().join("prometheus");
    let Some(prom) = yaml_one(&prom_dir.join("prometheus.yml")) else {
        return;
    };
    let targets: Vec<&str> = prom["scrape_configs"]
        .as_array()
        .expect("scrape_configs")
        .iter()
        .filter(|j| j["job_name"] == "tarnkappe")
        .flat_map(|j| j["static_configs"].as_array().into_iter().flatten())
        .flat_map(|c| c["targets"].as_array().into_iter().flatten())
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(targets, vec![format!("{name}:{admin}")], "scrape target");
    let prometheus = services
        .values()
        .find(|s| {
            s["image"]
                .as_str()
                .is_some_and(|i| i.contains("prometheus"))
        })
        .expect("a prometheus service");
    let prom_mounts: Vec<(String, PathBuf)> = prometheus["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(compose_volume)
        .filter(|(s, _, _)| is_bind(s))
        .map(|(s, t, _)| (t, deploy().join(s)))
        .collect();
    let config_in_container = prometheus["command"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .find_map(|a| a.strip_prefix("--config.file="))
        .expect("--config.file");
    let config_dir = Path::new(config_in_container).parent().expect("dir");
    for rule in prom["rule_files"].as_array().into_iter().flatten() {
        let rule = rule.as_str().expect("a path");
        let in_container = config_dir.join(rule);
        let host = host_path(&prom_mounts, in_container.to_str().expect("utf-8"))
            .unwrap_or_else(|| panic!("rule file {rule} is not mounted into prometheus"));
        assert!(host.is_file(), "rule file {host:?}");
    }

    // Grafana gets a Prometheus data source at that service, and the dashboards folder.
    let ds = yaml_one(&deploy().join("grafana/provisioning/datasources/prometheus.yml"))
        .expect("parsed before");
    let ds = &ds["datasources"][0];
    assert_eq!(ds["type"], "prometheus");
    let url = ds["url"].as_str().expect("url");
    let prom_service = services
        .iter()
        .find(|(_, s)| std::ptr::eq(*s, prometheus))
        .map(|(n, _)| n.as_str())
        .expect("name");
    assert!(
        url.contains(&format!("//{prom_service}:")),
        "data source url {url}"
    );
    let provider = yaml_one(&deploy().join("grafana/provisioning/dashboards/tarnkappe.yml"))
        .expect("parsed before");
    let path = provider["providers"][0]["options"]["path"]
        .as_str()
        .expect("provider path");
    let grafana = services
        .values()
        .find(|s| s["image"].as_str().is_some_and(|i| i.contains("grafana")))
        .expect("a grafana service");
    let grafana_mounts: Vec<(String, PathBuf)> = grafana["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(compose_volume)
        .filter(|(s, _, _)| is_bind(s))
        .map(|(s, t, _)| (t, deploy().join(s)))
        .collect();
    let dashboards = host_path(&grafana_mounts, path).expect("dashboards mounted");
    assert!(dashboards.join("tarnkappe.json").is_file());
    assert!(host_path(&grafana_mounts, "/etc/grafana/provisioning/datasources").is_some());
}

// ---------------------------------------------------------------------------------------
// The HEALTHCHECK against a running proxy

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

#[test]
fn dockerfile_healthcheck_probes_a_proxy_serving_the_compose_config() {
    let df = Dockerfile::load();
    let tmp = tempfile::tempdir().expect("tempdir");
    let (_, keyring) = keyring(tmp.path());
    // Stands in for the shop: /readyz only needs it to accept connections.
    let shop = TcpListener::bind("127.0.0.1:0").expect("bind");
    let shop_port = shop.local_addr().expect("addr").port();
    let (public, admin) = (free_port(), free_port());
    // The image's environment, the compose config, and what only differs on this machine.
    let mut env = df.env();
    env.insert(
        "TARNKAPPE_CONFIG".into(),
        deploy()
            .join("config/tarnkappe.toml")
            .to_string_lossy()
            .into_owned(),
    );
    env.insert("TARNKAPPE_KEYRING".into(), keyring);
    env.insert(
        "TARNKAPPE_LISTEN__ADDRESS".into(),
        format!("127.0.0.1:{public}"),
    );
    env.insert(
        "TARNKAPPE_ADMIN__ADDRESS".into(),
        format!("127.0.0.1:{admin}"),
    );
    env.insert(
        "TARNKAPPE_UPSTREAM__URL".into(),
        format!("http://127.0.0.1:{shop_port}"),
    );
    env.insert(
        "TARNKAPPE_FLOW_LOG__PATH".into(),
        tmp.path().join("flow.jsonl").to_string_lossy().into_owned(),
    );
    let healthcheck = df.healthcheck();
    let probe = |extra: &[&str]| {
        let mut cmd = tarnkappe(
            &healthcheck[1..]
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
        );
        cmd.args(extra).envs(&env).output().expect("running health")
    };

    let before = probe(&[]);
    assert!(
        !before.status.success(),
        "health fails while nothing listens: {}",
        text(&before)
    );

    let log = std::fs::File::create(tmp.path().join("serve.log")).expect("log file");
    let mut serve = tarnkappe(&["serve"]);
    serve
        .envs(&env)
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("clone"))
        .stderr(log);
    let mut proxy = Running(serve.spawn().expect("starting serve"));
    let serve_log = || read(&tmp.path().join("serve.log"));

    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = probe(&[]);
        if out.status.success() {
            break;
        }
        if let Some(status) = proxy.0.try_wait().expect("try_wait") {
            panic!("serve exited with {status}:\n{}", serve_log());
        }
        assert!(
            Instant::now() < deadline,
            "the HEALTHCHECK never passed: {}\nserve:\n{}",
            text(&out),
            serve_log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let ready = probe(&["--ready"]);
    assert!(
        ready.status.success(),
        "ready: {}\n{}",
        text(&ready),
        serve_log()
    );

    // `docker stop` sends SIGTERM: the proxy drains and exits 0.
    let pid = proxy.0.id().to_string();
    let term = Command::new("sh")
        .args(["-c", "kill -TERM \"$1\"", "sh", &pid])
        .status()
        .expect("sh");
    assert!(term.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = proxy.0.try_wait().expect("try_wait") {
            break status;
        }
        assert!(Instant::now() < deadline, "serve did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        status.success(),
        "exit after SIGTERM: {status}\n{}",
        serve_log()
    );
    drop(shop);
}

// ---------------------------------------------------------------------------------------
// Kubernetes

#[test]
fn kubernetes_manifests_parse_and_their_config_passes_check() {
    let dir = deploy().join("kubernetes");
    let mut docs = Vec::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("deploy/kubernetes")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 4,
        "a Deployment, Service, ConfigMap and Secret"
    );
    for f in &files {
        let Some(parsed) = yaml(f) else {
            return;
        };
        for doc in parsed.into_iter().filter(|d| !d.is_null()) {
            let kind = doc["kind"]
                .as_str()
                .unwrap_or_else(|| panic!("{f:?}: kind"));
            assert!(doc["apiVersion"].is_string(), "{f:?}: apiVersion");
            if kind == "Kustomization" {
                for r in doc["resources"].as_array().into_iter().flatten() {
                    let r = r.as_str().expect("a resource path");
                    assert!(dir.join(r).is_file(), "kustomization resource {r}");
                }
                continue;
            }
            assert!(doc["metadata"]["name"].is_string(), "{f:?}: metadata.name");
            docs.push(doc);
        }
    }
    let find = |kind: &str| -> Vec<&Value> { docs.iter().filter(|d| d["kind"] == kind).collect() };
    let (deployment, service, configmap, secret) = (
        find("Deployment"),
        find("Service"),
        find("ConfigMap"),
        find("Secret"),
    );
    assert_eq!(
        (
            deployment.len(),
            service.len(),
            configmap.len(),
            secret.len()
        ),
        (1, 1, 1, 1)
    );
    let (deployment, service, configmap, secret) =
        (deployment[0], service[0], configmap[0], secret[0]);

    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(
        deployment["spec"]["selector"]["matchLabels"]
            .as_object()
            .map(|m| m
                .iter()
                .all(|(k, v)| deployment["spec"]["template"]["metadata"]["labels"][k] == *v)),
        Some(true),
        "the selector matches the pod labels"
    );
    let containers = pod["containers"].as_array().expect("containers");
    let c = containers
        .iter()
        .find(|c| c["name"] == "tarnkappe")
        .expect("container tarnkappe");

    // Security: non-root, read-only root, no privilege escalation, no capabilities.
    assert!(
        pod["securityContext"]["runAsNonRoot"] == true
            || c["securityContext"]["runAsNonRoot"] == true,
        "runAsNonRoot"
    );
    let sc = &c["securityContext"];
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["capabilities"]["drop"], serde_json::json!(["ALL"]));
    for kind in ["limits", "requests"] {
        for r in ["cpu", "memory"] {
            assert!(c["resources"][kind][r].is_string(), "resources.{kind}.{r}");
        }
    }

    // The environment the pod gives tarnkappe, with the Secret's key as the keyring.
    let tmp = tempfile::tempdir().expect("tempdir");
    let (_, keyring) = keyring(tmp.path());
    let mut env = BTreeMap::new();
    let mut keyring_ref = None;
    for e in c["env"].as_array().into_iter().flatten() {
        let name = e["name"].as_str().expect("env name").to_owned();
        if let Some(v) = e["value"].as_str() {
            env.insert(name, v.to_owned());
        } else if !e["valueFrom"]["secretKeyRef"].is_null() {
            let r = &e["valueFrom"]["secretKeyRef"];
            keyring_ref = Some((r["name"].clone(), r["key"].clone()));
            env.insert(name, keyring.clone());
        } else if !e["valueFrom"]["fieldRef"].is_null() {
            env.insert(name, "tarnkappe-7d9c4b5f6-x2x4q".to_owned());
        }
    }
    let (secret_name, secret_key) = keyring_ref.expect("the keyring comes from a Secret");
    assert_eq!(secret["metadata"]["name"], secret_name);
    let key = secret_key.as_str().expect("key");
    let placeholder = secret["stringData"][key]
        .as_str()
        .or_else(|| secret["data"][key].as_str())
        .expect("the Secret holds the key the Deployment reads");
    assert!(env.contains_key("TARNKAPPE_KEYRING"));

    // The ConfigMap's config, where the container reads it, passes check.
    let config_path = env
        .get("TARNKAPPE_CONFIG")
        .cloned()
        .unwrap_or_else(|| Dockerfile::load().config_path());
    let volumes = pod["volumes"].as_array().expect("volumes");
    let mounts = c["volumeMounts"].as_array().expect("volumeMounts");
    let config_mount = mounts
        .iter()
        .find(|m| Path::new(&config_path).starts_with(m["mountPath"].as_str().expect("path")))
        .expect("the config is mounted");
    assert_eq!(
        config_mount["readOnly"], true,
        "the config mount is read-only"
    );
    assert!(
        config_mount["subPath"].is_null(),
        "no subPath: updates must reach the pod"
    );
    let volume = volumes
        .iter()
        .find(|v| v["name"] == config_mount["name"])
        .expect("the config volume");
    assert_eq!(volume["configMap"]["name"], configmap["metadata"]["name"]);
    let file_name = Path::new(&config_path)
        .file_name()
        .and_then(|f| f.to_str())
        .expect("file name");
    let config_text = configmap["data"][file_name]
        .as_str()
        .unwrap_or_else(|| panic!("the ConfigMap has {file_name}"));
    let config_file = tmp.path().join(file_name);
    std::fs::write(&config_file, config_text).expect("write");
    assert_check_passes(&config_file, &env, "the Kubernetes ConfigMap");

    // The placeholder in secret.yaml is not a keyring anyone can run with.
    let mut with_placeholder = env.clone();
    with_placeholder.insert("TARNKAPPE_KEYRING".into(), placeholder.to_owned());
    let out = check(&config_file, &with_placeholder);
    assert!(
        !out.status.success(),
        "the placeholder Secret must not be a valid keyring"
    );

    // Probes on the admin port; the flow log on a writable volume; a grace period that
    // outlasts the drain.
    let config = toml_table(config_text, "the ConfigMap config");
    let (listen, admin, log) = ports_and_log(&config);
    let ports: BTreeMap<String, u64> = c["ports"]
        .as_array()
        .expect("ports")
        .iter()
        .map(|p| {
            (
                p["name"].as_str().expect("named ports").to_owned(),
                p["containerPort"].as_u64().expect("containerPort"),
            )
        })
        .collect();
    let resolve = |port: &Value| -> u64 {
        match port {
            Value::String(name) => *ports.get(name).unwrap_or_else(|| panic!("port {name}")),
            other => other.as_u64().expect("a port"),
        }
    };
    for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
        let get = &c[probe]["httpGet"];
        assert_eq!(get["path"], path, "{probe} path");
        assert_eq!(
            resolve(&get["port"]),
            u64::from(admin),
            "{probe} on the admin port"
        );
    }
    assert!(
        ports.values().any(|p| *p == u64::from(listen)),
        "the proxy port is declared"
    );
    if let Some(log) = log.filter(|l| l != "-") {
        let m = mounts
            .iter()
            .find(|m| Path::new(&log).starts_with(m["mountPath"].as_str().expect("path")))
            .unwrap_or_else(|| panic!("the flow log {log} is on a mounted volume"));
        assert_ne!(m["readOnly"], true, "the flow-log volume is writable");
    }
    let grace = env.get("TARNKAPPE_GRACE").map_or(30, |g| seconds(g));
    let termination = pod["terminationGracePeriodSeconds"].as_u64().unwrap_or(30);
    assert!(
        termination > grace,
        "terminationGracePeriodSeconds {termination} > {grace}"
    );

    // The Service exposes the proxy and never the admin port.
    for p in service["spec"]["ports"].as_array().expect("service ports") {
        let target = resolve(&p["targetPort"]);
        assert_eq!(
            target,
            u64::from(listen),
            "the Service targets only the proxy port"
        );
    }
    for (k, v) in service["spec"]["selector"].as_object().expect("selector") {
        assert_eq!(&deployment["spec"]["template"]["metadata"]["labels"][k], v);
    }
}

// ---------------------------------------------------------------------------------------
// Prometheus rules, the dashboard, the metrics reference

/// Every `tarnkappe_*` metric family src/metrics.rs registers.
fn families() -> BTreeSet<String> {
    let source = read(&root().join("src/metrics.rs"));
    let found: BTreeSet<String> = source
        .split('"')
        .skip(1)
        .step_by(2)
        .filter(|s| {
            s.starts_with("tarnkappe_") && s.chars().all(|c| c.is_ascii_lowercase() || c == '_')
        })
        .map(str::to_owned)
        .collect();
    assert!(
        found.len() >= 9,
        "families found in src/metrics.rs: {found:?}"
    );
    found
}

/// Identifiers starting with `prefix` in `text`.
fn names_with_prefix(text: &str, prefix: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let bytes = text.as_bytes();
    let ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut at = 0;
    while let Some(i) = text[at..].find(prefix) {
        let start = at + i;
        let mut end = start + prefix.len();
        while end < bytes.len() && ident(bytes[end]) {
            end += 1;
        }
        // `tarnkappe_*` in prose is no name.
        let whole = end > start + prefix.len() && bytes[end - 1] != b'_';
        if whole && (start == 0 || !ident(bytes[start - 1])) {
            out.insert(text[start..end].to_owned());
        }
        at = end;
    }
    out
}

fn known(name: &str, families: &BTreeSet<String>) -> bool {
    let base = ["_bucket", "_sum", "_count"]
        .iter()
        .find_map(|s| name.strip_suffix(s))
        .unwrap_or(name);
    families.contains(name) || families.contains(base) || PROCESS_FAMILIES.contains(&name)
}

fn dashboard() -> Value {
    let path = deploy().join("grafana/dashboards/tarnkappe.json");
    serde_json::from_str(&read(&path)).expect("the dashboard is JSON")
}

fn dashboard_exprs(d: &Value) -> Vec<String> {
    d["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .flat_map(|p| p["targets"].as_array().into_iter().flatten())
        .map(|t| t["expr"].as_str().expect("expr").to_owned())
        .collect()
}

#[test]
fn dashboard_and_alerts_use_only_exported_metrics() {
    let families = families();
    let d = dashboard();
    let alerts = read(&deploy().join("prometheus/alerts.yml"));
    for (what, text) in [
        ("the dashboard", serde_json::to_string(&d).expect("json")),
        ("alerts.yml", alerts.clone()),
    ] {
        for prefix in ["tarnkappe_", "process_"] {
            for name in names_with_prefix(&text, prefix) {
                assert!(
                    known(&name, &families),
                    "{what} uses {name}, which tarnkappe does not export"
                );
            }
        }
    }

    // The dashboard: the panels the operators asked for, each on the data-source
    // variable, unique ids, inside the 24-column grid.
    let exprs = dashboard_exprs(&d).join("\n");
    for needed in [
        "rate(tarnkappe_requests_total",
        "status=\"5xx\"",
        "tarnkappe_transform_duration_seconds_bucket",
        "tarnkappe_fields_total",
        "sum by (category",
        "tarnkappe_rejected_total",
        "tarnkappe_flow_log_errors_total",
        "tarnkappe_flow_log_events_total",
    ] {
        assert!(exprs.contains(needed), "the dashboard queries {needed}");
    }
    let mut ids = BTreeSet::new();
    for p in d["panels"].as_array().expect("panels") {
        assert!(
            ids.insert(p["id"].as_u64().expect("id")),
            "unique panel ids"
        );
        let g = &p["gridPos"];
        let (x, w) = (g["x"].as_u64().expect("x"), g["w"].as_u64().expect("w"));
        assert!(x + w <= 24, "panel {} fits the grid", p["title"]);
        if p["type"] != "row" {
            assert_eq!(
                p["datasource"]["uid"], "${datasource}",
                "panel {}",
                p["title"]
            );
            assert!(!p["targets"].as_array().expect("targets").is_empty());
        }
    }
    let vars: Vec<&str> = d["templating"]["list"]
        .as_array()
        .expect("variables")
        .iter()
        .filter_map(|v| v["name"].as_str())
        .collect();
    for v in ["datasource", "job", "instance", "route"] {
        assert!(vars.contains(&v), "dashboard variable ${v}");
    }

    // Alerts the operators asked for exist.
    for alert in [
        "TarnkappeDown",
        "TarnkappeHigh5xxRate",
        "TarnkappeUpstreamFailing",
        "TarnkappeCiphertextTampered",
        "TarnkappeUnreadableValues",
        "TarnkappeFlowLogErrors",
        "TarnkappeConfigReloadFailed",
    ] {
        assert!(
            alerts.contains(&format!("alert: {alert}\n")),
            "alert {alert}"
        );
    }
}

#[test]
fn operations_page_documents_every_family_and_alert() {
    let page = read(&root().join("docs/operations.md"));
    for family in families()
        .iter()
        .map(String::as_str)
        .chain(PROCESS_FAMILIES.iter().copied())
    {
        assert!(
            page.contains(&format!("`{family}")),
            "docs/operations.md documents {family}"
        );
    }
    let alerts = read(&deploy().join("prometheus/alerts.yml"));
    for line in alerts.lines() {
        if let Some(name) = line.trim().strip_prefix("- alert: ") {
            assert!(
                page.contains(&format!("### {name}")),
                "docs/operations.md has a section for alert {name}"
            );
            let anchor = format!("operations.md#{}", name.to_ascii_lowercase());
            assert!(
                alerts.contains(&anchor),
                "{name}'s runbook_url points at its section"
            );
        }
    }
}

#[test]
fn promtool_checks_rules_config_and_dashboard_queries() {
    let Some(promtool) = tool("promtool") else {
        return;
    };
    let prom = deploy().join("prometheus");
    let run = |args: &[&str], path: &Path| {
        let out = Command::new(&promtool)
            .args(args)
            .arg(path)
            .output()
            .expect("running promtool");
        assert!(
            out.status.success(),
            "promtool {args:?} {path:?}: {}",
            text(&out)
        );
    };
    run(&["check", "rules"], &prom.join("alerts.yml"));
    run(&["check", "config"], &prom.join("prometheus.yml"));
    run(&["test", "rules"], &prom.join("alerts.test.yml"));

    // Every dashboard query parses as PromQL (as a recording rule; JSON is YAML).
    let rules: Vec<Value> = dashboard_exprs(&dashboard())
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let e = e
                .replace("$__rate_interval", "5m")
                .replace("$__range", "1h")
                .replace("$__interval", "1m");
            serde_json::json!({"record": format!("dashboard:query_{i}"), "expr": e})
        })
        .collect();
    let tmp = tempfile::tempdir().expect("tempdir");
    let file = tmp.path().join("dashboard-queries.yml");
    let doc = serde_json::json!({"groups": [{"name": "dashboard", "rules": rules}]});
    std::fs::write(&file, doc.to_string()).expect("write");
    run(&["check", "rules"], &file);
}
