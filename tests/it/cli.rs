//! The built binary: `check` on every shipped config and on a broken one (exit 78, one
//! `file:line:col: key: message` line per mistake), `keys` never printing key bytes,
//! `seal`/`unseal` over NDJSON agreeing with the proxy, and `audit verify` on a flow log
//! the proxy wrote (exit 0) and on one with an edited line (exit 65, naming the line).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use http::{Method, StatusCode};
use tarnkappe::crypto::Keyring;

use crate::support::Stack;

const EXIT_CONFIG: i32 = 78;
const EXIT_DATAERR: i32 = 65;

/// The binary, with no TARNKAPPE_* variable inherited from the test's environment.
fn tarnkappe() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tarnkappe"));
    for (k, _) in std::env::vars() {
        if k.starts_with("TARNKAPPE_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("TARNKAPPE_LOG", "warn");
    cmd
}

fn run(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null()).output().expect("binary runs")
}

fn run_with_stdin(cmd: &mut Command, stdin: &[u8]) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("binary runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin)
        .expect("write stdin");
    child.wait_with_output().expect("binary finishes")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Every secret in a keyring file, as its base64 text and in its decoded bytes' common
/// renderings; none may ever be printed.
fn secrets_of(keyring: &Path) -> Vec<String> {
    let table: toml::Table =
        toml::from_str(&std::fs::read_to_string(keyring).expect("read keyring")).expect("TOML");
    let mut out = vec![table["pseudonym_secret"]
        .as_str()
        .expect("pseudonym_secret")
        .to_owned()];
    for key in table["key"].as_array().expect("[[key]]") {
        out.push(key["secret"].as_str().expect("secret").to_owned());
    }
    let mut all = out.clone();
    for s in &out {
        // A prefix long enough to be unmistakable, in case a tool printed part of one,
        // and the decoded bytes in hex.
        all.push(s[..16].to_owned());
        let bytes = URL_SAFE_NO_PAD
            .decode(s.trim_end_matches('='))
            .expect("secret is base64url");
        all.push(bytes.iter().map(|b| format!("{b:02x}")).collect());
    }
    all
}

/// Every example config the repository ships: `config/` and `deploy/`, recursively.
fn config_files() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "toml") {
                out.push(path);
            }
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    walk(&root.join("config"), &mut files);
    walk(&root.join("deploy"), &mut files);
    files.sort();
    assert!(
        files.iter().any(|f| f.ends_with("config/demo.toml")),
        "config/ holds example configs: {files:?}"
    );
    files
}

#[test]
fn check_accepts_every_shipped_config_and_prints_the_assessment() {
    let dir = tempfile::tempdir().expect("tempdir");
    let keyring = dir.path().join("keyring.toml");
    Keyring::generate()
        .expect("keys")
        .write_new(&keyring)
        .expect("write");
    let secrets = secrets_of(&keyring);
    for config in config_files() {
        // The shipped files name a keyring next to themselves that the repository does
        // not hold (it is secret): point them at a generated one by environment override.
        let out = run(tarnkappe()
            .args(["check", "--config"])
            .arg(&config)
            .env("TARNKAPPE_KEYS__KEYRING", &keyring));
        let stdout = text(&out.stdout);
        assert!(
            out.status.success(),
            "{}: {}\n{}",
            config.display(),
            stdout,
            text(&out.stderr)
        );
        assert!(stdout.contains("privacy assessment"), "{stdout}");
        assert!(stdout.contains("categories protected"), "{stdout}");
        assert!(stdout.contains("\n  flow log: "), "{stdout}");
        assert!(stdout.contains("ok: "), "{stdout}");
        for s in &secrets {
            assert!(!stdout.contains(s) && !text(&out.stderr).contains(s));
        }
    }
}

#[test]
fn check_takes_the_keyring_from_the_environment_when_the_config_names_none() {
    let dir = tempfile::tempdir().expect("tempdir");
    let keyring = dir.path().join("keyring.toml");
    Keyring::generate()
        .expect("keys")
        .write_new(&keyring)
        .expect("write");
    let config = dir.path().join("env-keys.toml");
    std::fs::write(
        &config,
        "[listen]\naddress = \"127.0.0.1:8080\"\n[upstream]\nurl = \"http://127.0.0.1:3000\"\n\
         [[route]]\nname = \"c\"\npath = \"/c\"\n  [[route.field]]\n  path = \"$.email\"\n  \
         category = \"email\"\n  action = \"encrypt\"\n",
    )
    .expect("write config");
    let content = std::fs::read_to_string(&keyring).expect("read keyring");
    let ok = run(tarnkappe()
        .args(["check", "--config"])
        .arg(&config)
        .env("TARNKAPPE_KEYRING", &content));
    assert!(ok.status.success(), "{}", text(&ok.stderr));
    for s in secrets_of(&keyring) {
        assert!(!text(&ok.stdout).contains(&s) && !text(&ok.stderr).contains(&s));
    }
    let missing = run(tarnkappe().args(["check", "--config"]).arg(&config));
    assert_eq!(missing.status.code(), Some(EXIT_CONFIG));
    assert!(text(&missing.stderr).contains("keys.keyring"));
}

#[test]
fn check_reports_every_mistake_with_file_line_and_key_and_exits_78() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("broken.toml");
    let lines = [
        "[listen]",
        "address = \"127.0.0.1:8080\"",
        "[upstream]",
        "url = \"http://127.0.0.1:3000\"",
        "timeout = \"soon\"",
        "[limits]",
        "max_body = \"huge\"",
        "[[route]]",
        "name = \"customers\"",
        "path = \"/api/customers/{*rest}\"",
        "  [[route.field]]",
        "  path = \"$.email\"",
        "  category = \"email\"",
        "  action = \"scramble\"",
    ];
    std::fs::write(&config, lines.join("\n") + "\n").expect("write config");
    let out = run(tarnkappe().args(["check", "--config"]).arg(&config));
    assert_eq!(
        out.status.code(),
        Some(EXIT_CONFIG),
        "{}",
        text(&out.stderr)
    );
    let stderr = text(&out.stderr);
    let prefix = format!("{}:", config.display());
    let found: Vec<(usize, String)> = stderr
        .lines()
        .filter_map(|l| l.strip_prefix(&prefix))
        .map(|rest| {
            // line:col: key: message
            let mut parts = rest.splitn(4, ": ");
            let pos = parts.next().expect("position");
            let key = parts.next().expect("key").to_owned();
            assert!(!parts.next().unwrap_or("").is_empty(), "a message: {rest}");
            let (line, col) = pos.split_once(':').expect("line:col");
            assert!(col.parse::<usize>().expect("column") > 0);
            (line.parse().expect("line"), key)
        })
        .collect();
    assert_eq!(
        found,
        vec![
            (5, "upstream.timeout".to_owned()),
            (7, "limits.max_body".to_owned()),
            (14, "route[0].field[0].action".to_owned()),
        ],
        "{stderr}"
    );
    assert!(out.stdout.is_empty(), "no assessment for a broken config");
}

#[test]
fn keys_commands_never_print_key_bytes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let keyring = dir.path().join("ring.toml");
    let generate = run(tarnkappe()
        .args(["keys", "generate", "--out"])
        .arg(&keyring));
    assert!(generate.status.success(), "{}", text(&generate.stderr));
    let rotate = run(tarnkappe()
        .args(["keys", "rotate", "--keyring"])
        .arg(&keyring));
    assert!(rotate.status.success(), "{}", text(&rotate.stderr));
    let list = run(tarnkappe()
        .args(["keys", "list", "--keyring"])
        .arg(&keyring));
    assert!(list.status.success(), "{}", text(&list.stderr));
    let secrets = secrets_of(&keyring);
    assert_eq!(
        secrets.len(),
        9,
        "pseudonym secret and two keys, three renderings each"
    );
    for out in [&generate, &rotate, &list] {
        let printed = text(&out.stdout) + &text(&out.stderr);
        for s in &secrets {
            assert!(!printed.contains(s), "a secret was printed");
        }
    }
    let listed = text(&list.stdout);
    let rows: Vec<&str> = listed.lines().skip(1).collect();
    assert_eq!(rows.len(), 2, "{listed}");
    assert!(rows[0].trim_start().starts_with("1 ") && !rows[0].ends_with("active"));
    assert!(rows[1].trim_start().starts_with("2 ") && rows[1].ends_with("active"));
    // An existing keyring is never overwritten.
    let again = run(tarnkappe()
        .args(["keys", "generate", "--out"])
        .arg(&keyring));
    assert!(!again.status.success());
    assert_eq!(secrets_of(&keyring), secrets);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seal_output_opens_through_the_proxy_and_unseal_round_trips() {
    let stack = Stack::start().await;
    let docs = [
        r#"{"email":"bulk1@example.com","name":"Bulk One","customer_number":42,"plan":"a"}"#,
        r#"{"email":"bulk2@example.com","address":{"city":"Bonn"},"kinds":{"t":true}}"#,
    ];
    let input = format!("{}\n\n{}\n", docs[0], docs[1]);
    let seal = |args: &[&str], stdin: &[u8]| {
        run_with_stdin(
            tarnkappe()
                .args(args)
                .arg("--config")
                .arg(&stack.config_path)
                .args(["--route", "customers"]),
            stdin,
        )
    };
    let sealed = seal(&["seal"], input.as_bytes());
    assert!(sealed.status.success(), "{}", text(&sealed.stderr));
    let sealed_text = text(&sealed.stdout);
    let lines: Vec<&str> = sealed_text.lines().collect();
    assert_eq!(lines.len(), 2, "{sealed_text}");
    for secret in ["bulk1@", "bulk2@", "Bulk One", "Bonn"] {
        assert!(!sealed_text.contains(secret), "{secret} left in plaintext");
    }
    assert!(lines[0].ends_with(r#","plan":"a"}"#));

    let unsealed = seal(&["unseal"], sealed.stdout.as_slice());
    assert!(unsealed.status.success(), "{}", text(&unsealed.stderr));
    assert_eq!(
        text(&unsealed.stdout),
        format!("{}\n{}\n", docs[0], docs[1])
    );

    // Backfill: the shop writes the sealed rows itself; the proxy opens them.
    for (line, doc) in lines.iter().zip(docs) {
        let created = stack
            .send_to_backend(
                Method::POST,
                "/api/customers",
                &[("content-type", "application/json")],
                line.to_string(),
            )
            .await;
        assert_eq!(created.status, StatusCode::CREATED);
        let id = created.json()["id"].as_i64().expect("id");
        assert_eq!(stack.get(&format!("/api/customers/{id}")).await.text(), doc);
    }

    // A line the proxy would refuse stops the run with its number, never its content.
    let bad = seal(
        &["seal"],
        b"{\"email\":\"ok@example.com\"}\n{\"email\":\"dup@example.com\",\"email\":1}\n",
    );
    assert!(!bad.status.success());
    let stderr = text(&bad.stderr);
    assert!(stderr.contains("line 2"), "{stderr}");
    assert!(!stderr.contains("dup@example.com"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_verify_accepts_the_proxys_flow_log_and_names_an_edited_line() {
    let mut stack = Stack::builder().flow_log().start().await;
    let id = stack
        .create("customers", r#"{"email":"audit@example.com"}"#)
        .await;
    stack.get(&format!("/api/customers/{id}")).await;
    stack
        .post_json("/api/customers", "{not json")
        .await
        .assert_problem(StatusCode::BAD_REQUEST, "malformed_json");
    stack.get("/api/headers").await;
    stack.stop_proxy().await;

    let log = stack.flow_log_path.clone();
    let content = std::fs::read_to_string(&log).expect("flow log written");
    assert_eq!(
        content.lines().count(),
        4,
        "one event per exchange:\n{content}"
    );
    assert!(
        !content.contains("audit@example.com"),
        "no values in the flow log"
    );

    let ok = run(tarnkappe().args(["audit", "verify"]).arg(&log));
    assert_eq!(ok.status.code(), Some(0), "{}", text(&ok.stderr));
    assert!(
        text(&ok.stdout).contains("4 event(s)"),
        "{}",
        text(&ok.stdout)
    );

    // Change one event (the second) in a way that keeps it valid JSON.
    let edited: Vec<String> = content
        .lines()
        .enumerate()
        .map(|(i, l)| {
            if i == 1 {
                assert!(l.contains(r#""status":200"#), "{l}");
                l.replacen(r#""status":200"#, r#""status":404"#, 1)
            } else {
                l.to_owned()
            }
        })
        .collect();
    std::fs::write(&log, edited.join("\n") + "\n").expect("edit flow log");
    let broken = run(tarnkappe().args(["audit", "verify"]).arg(&log));
    assert_eq!(broken.status.code(), Some(EXIT_DATAERR));
    let stderr = text(&broken.stderr);
    assert!(
        stderr.contains(&format!("{}:2:", log.display())),
        "names the file and line: {stderr}"
    );
}
