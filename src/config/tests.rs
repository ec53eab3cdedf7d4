//! Config compile tests: every problem reported at once, with file:line:col and key.

use super::*;
use crate::transform::{Action, MaskStyle};
use http::Method;

fn compile_text(text: &str) -> Result<Config, ConfigErrors> {
    compile(
        text,
        "t.toml",
        Path::new("/etc/tk"),
        Path::new("/etc/tk/t.toml"),
    )
}

const GOOD: &str = r#"
[listen]
address = "127.0.0.1:8080"
[upstream]
url = "http://127.0.0.1:3000/base/"
timeout = "5s"
[limits]
max_body = "1MiB"
[keys]
keyring = "keys/keyring.toml"
[[route]]
name = "customers"
methods = ["POST", "get"]
path = "/api/customers/{id}"
  [[route.field]]
  path = "$.email"
  label = "customer.email"
  category = "email"
  action = "encrypt-deterministic"
  [[route.field]]
  path = "$.card"
  category = "card"
  action = "mask"
  keep_last = 4
  [[route.field]]
  path = "$.secret"
  category = "credentials"
  action = "redact"
  replacement = "gone"
"#;

#[test]
fn compiles_a_good_config() {
    let c = compile_text(GOOD).unwrap();
    assert_eq!(c.upstream.base_path, "/base");
    assert_eq!(c.limits.max_body, 1 << 20);
    let r = &c.router.routes()[0];
    assert_eq!(r.methods, vec![Method::POST, Method::GET]);
    assert_eq!(&*r.rules.fields[0].category, "user.contact.email");
    assert_eq!(
        r.rules.fields[1].action,
        Action::Mask(MaskStyle::KeepLast(4))
    );
    assert_eq!(
        r.rules.fields[2].action,
        Action::Redact(Arc::from("\"gone\""))
    );
    assert!(
        matches!(&c.keyring, KeyringSource::File(p) if p == Path::new("/etc/tk/keys/keyring.toml"))
    );
}

#[test]
fn unknown_keys_are_errors_with_a_line() {
    let text = GOOD.replace("timeout = \"5s\"", "timeuot = \"5s\"");
    let e = compile_text(&text).unwrap_err();
    assert_eq!(e.0.len(), 1);
    assert!(e.to_string().starts_with("t.toml:6:1: "), "{e}");
    assert!(e.to_string().contains("timeuot"), "{e}");
}

#[test]
fn reports_every_problem_at_once() {
    let text = GOOD
        .replace("$.email", "$[?@.x]")
        .replace("category = \"card\"", "category = \"crad\"")
        .replace("\"encrypt-deterministic\"", "\"encrypt-please\"")
        .replace("\"1MiB\"", "\"1 lot\"")
        .replace("\"get\"", "\"G ET\"");
    let e = compile_text(&text).unwrap_err();
    let all = e.to_string();
    assert_eq!(e.0.len(), 5, "{all}");
    assert!(all.contains("t.toml:8:12: limits.max_body:"), "{all}");
    assert!(
        all.contains("route[0].field[0].path: at character 3: filter selectors"),
        "{all}"
    );
    assert!(
        all.contains("route[0].field[1].category: unknown category `crad`: did you mean `card`?"),
        "{all}"
    );
    assert!(
        all.contains("route[0].field[0].action: unknown action `encrypt-please`"),
        "{all}"
    );
    assert!(
        all.contains("route[0].methods[1]: not an HTTP method"),
        "{all}"
    );
}

#[test]
fn refuses_ambiguous_routes_and_misplaced_options() {
    let text = format!("{GOOD}\n[[route]]\nname = \"other\"\npath = \"/api/customers/{{key}}\"\n");
    let e = compile_text(&text).unwrap_err().to_string();
    assert!(e.contains("ambiguous"), "{e}");
    let text = GOOD.replace(
        "replacement = \"gone\"",
        "replacement = \"gone\"\n  keep_last = 2",
    );
    let e = compile_text(&text).unwrap_err().to_string();
    assert!(
        e.contains("route[0].field[2].keep_last: `keep_last` does not apply to action `redact`"),
        "{e}"
    );
}

#[test]
fn refuses_https_upstreams_and_bad_addresses() {
    let text = GOOD
        .replace("http://127.0.0.1:3000/base/", "https://x")
        .replace("127.0.0.1:8080", "nowhere");
    let e = compile_text(&text).unwrap_err();
    assert_eq!(e.0.len(), 2, "{e}");
}

#[test]
fn bind_applies_to_sealing_rules_and_one_member_per_label() {
    let text = GOOD
        .replace("  keep_last = 4", "  keep_last = 4\n  bind = \"id\"")
        .replace(
            "action = \"encrypt-deterministic\"",
            "action = \"encrypt-deterministic\"\n  bind = \"id\"",
        );
    let e = compile_text(&text).unwrap_err().to_string();
    assert!(
        e.contains(
            "route[0].field[1].bind: `bind` applies to encrypt and encrypt-deterministic only"
        ),
        "{e}"
    );
    let ok = GOOD.replace(
        "action = \"encrypt-deterministic\"",
        "action = \"encrypt-deterministic\"\n  bind = \"id\"",
    );
    let c = compile_text(&ok).unwrap();
    assert_eq!(
        c.labels.bound_to("customer.email").map(|m| &**m),
        Some("id")
    );
}

#[test]
fn flow_log_delete_after_is_a_positive_duration() {
    let with = |v: &str| format!("{GOOD}\n[flow_log]\npath = \"flow.jsonl\"\n{v}\n");
    let c = compile_text(&with("")).unwrap();
    assert_eq!(c.flow_log.unwrap().delete_after, None);
    let c = compile_text(&with("delete_after = \"400d\"")).unwrap();
    assert_eq!(
        c.flow_log.unwrap().delete_after,
        Some(Duration::from_secs(400 * 86_400))
    );
    for (bad, says) in [
        (
            "\"0d\"",
            "must be longer than 0; leave it out to keep every file",
        ),
        ("\"a year\"", "is not a duration"),
        ("\"36501d\"", "is too long"),
    ] {
        let text = with(&format!("delete_after = {bad}"));
        let e = compile_text(&text).unwrap_err().to_string();
        let line = 1 + text
            .lines()
            .position(|l| l.starts_with("delete_after"))
            .unwrap();
        assert!(
            e.contains(&format!("t.toml:{line}:16: flow_log.delete_after: ")) && e.contains(says),
            "{bad}: {e}"
        );
    }
}
