//! The keyring file: round trips, mode 0600, refusal to overwrite, atomic save, and
//! every validation error, each naming origin, line and key and never a secret.

use std::io::Write as _;
use std::sync::{Arc, Mutex};

use super::{b64, fixture};
use crate::crypto::{Keyring, KeyringError, KeyringProblem, Mode, ValueType};

const ORIGIN: &str = "keys/test.toml";
const S1: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";
const S2: &str = "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8";
const SP: &str = "QEFCQ0RFRkdISUpLTE1OT1BRUlNUVVZXWFlaW1xdXl8";

fn text(active: &str, pseudonym: &str, keys: &[(&str, &str)]) -> String {
    let mut t = format!("active = {active}\npseudonym_secret = \"{pseudonym}\"\n");
    for (id, secret) in keys {
        t.push_str(&format!(
            "\n[[key]]\nid = {id}\ncreated = \"2026-11-29T14:00:00Z\"\nsecret = \"{secret}\"\n"
        ));
    }
    t
}

/// Parses text that must be invalid; checks that the message names the origin and holds
/// no secret text of the input (nor of the fixture).
fn problems(text: &str) -> (String, Vec<KeyringProblem>) {
    let err = Keyring::from_toml_str(text, ORIGIN).expect_err("must be invalid");
    let shown = err.to_string();
    let debug = format!("{err:?}");
    assert!(shown.starts_with(ORIGIN), "{shown}");
    let secrets = text
        .split('"')
        .skip(1)
        .step_by(2)
        .filter(|s| s.len() > 20)
        .chain([S1, S2, SP]);
    for secret in secrets {
        let probe = &secret[..12];
        assert!(!shown.contains(probe), "{shown:?} shows secret text");
        assert!(!debug.contains(probe), "{debug:?} shows secret text");
    }
    match err {
        KeyringError::Invalid { problems, .. } => (shown, problems),
        other => panic!("expected Invalid, got {other}"),
    }
}

fn only(text: &str) -> (String, KeyringProblem) {
    let (shown, mut list) = problems(text);
    assert_eq!(list.len(), 1, "{shown}");
    (shown, list.remove(0))
}

#[test]
fn valid_text_loads_and_padding_is_tolerated() {
    let k = Keyring::from_toml_str(&text("2", SP, &[("1", S1), ("2", S2)]), ORIGIN).expect("ok");
    assert_eq!(k.active_id(), 2);
    let padded = format!("{S1}=");
    let k = Keyring::from_toml_str(&text("1", SP, &[("1", &padded)]), ORIGIN).expect("ok");
    assert_eq!(k.list().len(), 1);
}

#[test]
fn wrong_secret_size_names_line_and_key() {
    let short = b64(&[1u8; 31]);
    let (shown, p) = only(&text("1", SP, &[("1", S1), ("2", &short)]));
    assert_eq!(p.path, "key[1].secret");
    assert_eq!(p.location, Some((12, 10)));
    assert!(
        shown.starts_with("keys/test.toml:12:10: key[1].secret: must be 32 bytes"),
        "{shown}"
    );
    let long = b64(&[1u8; 33]);
    assert_eq!(
        only(&text("1", SP, &[("1", &long)])).1.path,
        "key[0].secret"
    );
    let (_, p) = only(&text("1", &short, &[("1", S1)]));
    assert_eq!(p.path, "pseudonym_secret");
    assert_eq!(p.location, Some((2, 20)));
}

#[test]
fn bad_base64_is_named_without_echoing_it() {
    let bad = format!("{}!{}", &S1[..20], &S1[21..]);
    let (shown, p) = only(&text("1", SP, &[("1", &bad)]));
    assert_eq!(p.path, "key[0].secret");
    assert!(shown.contains("not valid base64url"), "{shown}");
    // Nonzero unused bits: not the canonical encoding of any 32 bytes.
    let trailing = format!("{}9", &S1[..42]);
    assert!(only(&text("1", SP, &[("1", &trailing)]))
        .0
        .contains("not valid base64url"));
    let standard = format!("{}+{}", &S1[..20], &S1[21..]);
    let (shown, _) = only(&text("1", SP, &[("1", &standard)]));
    assert!(shown.contains("standard base64"), "{shown}");
}

#[test]
fn duplicate_ids_are_refused() {
    let (shown, p) = only(&text("1", SP, &[("1", S1), ("1", S2)]));
    assert_eq!(p.path, "key[1].id");
    assert!(shown.contains("already used by key[0]"), "{shown}");
}

#[test]
fn active_id_must_be_present() {
    let (shown, p) = only(&text("7", SP, &[("1", S1), ("2", S2)]));
    assert_eq!(p.path, "active");
    assert_eq!(p.location, Some((1, 10)));
    assert!(
        shown.contains("no [[key]] has id 7 (ids present: 1, 2)"),
        "{shown}"
    );
}

#[test]
fn a_keyring_without_keys_is_refused() {
    let (shown, p) = only(&text("1", SP, &[]));
    assert_eq!(p.path, "key");
    assert!(shown.contains("holds no [[key]]"), "{shown}");
}

#[test]
fn key_id_zero_is_refused() {
    let (_, p) = only(&text("1", SP, &[("0", S2), ("1", S1)]));
    assert_eq!(p.path, "key[0].id");
}

#[test]
fn every_problem_is_reported_in_one_run() {
    let (shown, list) = problems(&text("9", "x", &[("1", "y"), ("1", S2)]));
    let paths: Vec<&str> = list.iter().map(|p| p.path.as_str()).collect();
    assert_eq!(
        paths,
        ["pseudonym_secret", "key[0].secret", "key[1].id", "active"]
    );
    assert_eq!(shown.lines().count(), 4);
    assert!(shown.lines().all(|l| l.starts_with("keys/test.toml:")));
}

#[test]
fn unknown_and_missing_fields_are_refused() {
    let good = text("1", SP, &[("1", S1)]);
    let (shown, p) = only(&format!("extra = 1\n{good}"));
    assert!(shown.contains("unknown field `extra`"), "{shown}");
    assert_eq!(p.location.map(|l| l.0), Some(1));
    let typo = good.replace("\nsecret = ", "\nsecrte = ");
    let (shown, _) = only(&typo);
    assert!(shown.contains("unknown field `secrte`"), "{shown}");
    let missing = good.replace("created = \"2026-11-29T14:00:00Z\"\n", "");
    assert!(only(&missing).0.contains("missing field `created`"));
    let no_active = good.replace("active = 1\n", "");
    assert!(only(&no_active).0.contains("missing field `active`"));
}

#[test]
fn type_and_syntax_errors_do_not_echo_the_source() {
    let good = text("1", SP, &[("1", S1)]);
    // A secret pasted where a number belongs must not come back in the message.
    let (shown, p) = only(&good.replace("id = 1", &format!("id = \"{S2}\"")));
    assert!(shown.contains("expected a whole number"), "{shown}");
    assert_eq!(p.location.map(|l| l.0), Some(5));
    let (shown, _) = only(&good.replace(&format!("\"{S1}\""), &format!("\"{S1}")));
    assert!(shown.contains("not valid TOML"), "{shown}");
    let (shown, _) = only(&good.replace(&format!("\"{S1}\""), S1));
    assert!(
        shown.contains("not valid TOML") || shown.contains("invalid"),
        "{shown}"
    );
    let (shown, _) = only("active = -1\npseudonym_secret = \"x\"\n");
    assert!(!shown.contains("-1"), "{shown}");
}

#[test]
fn write_new_then_load_round_trips_with_mode_0600() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("keyring.toml");
    let mut keyring = Keyring::generate().expect("generate");
    keyring.rotate().expect("rotate");
    keyring.write_new(&path).expect("write_new");
    assert_private(&path);
    let loaded = Keyring::load(&path).expect("load");
    assert_eq!(loaded.list(), keyring.list());
    let token = keyring
        .seal(Mode::Random, "a.b", ValueType::Number, b"12.50")
        .expect("seal");
    assert_eq!(&loaded.open("a.b", &token).expect("open").1[..], b"12.50");
    assert_eq!(loaded.pseudonym(b"x"), keyring.pseudonym(b"x"));
    let content = std::fs::read_to_string(&path).expect("read");
    assert!(content.starts_with("# tarnkappe keyring: keep this file secret and backed up."));
}

#[test]
fn write_new_refuses_to_overwrite() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("keyring.toml");
    std::fs::write(&path, "precious").expect("write");
    let err = Keyring::generate()
        .expect("generate")
        .write_new(&path)
        .expect_err("must refuse");
    assert!(matches!(err, KeyringError::Exists { .. }));
    assert!(err.to_string().contains(&path.display().to_string()));
    assert_eq!(std::fs::read_to_string(&path).expect("read"), "precious");
}

#[test]
fn save_replaces_atomically_and_keeps_old_keys() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("keyring.toml");
    let mut keyring = fixture();
    let old = keyring
        .seal(Mode::Random, "x", ValueType::Bool, b"true")
        .expect("seal");
    keyring.write_new(&path).expect("write_new");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let loose = std::fs::Permissions::from_mode(0o644);
        std::fs::set_permissions(&path, loose).expect("chmod");
    }
    assert_eq!(keyring.rotate().expect("rotate"), 3);
    keyring.save(&path).expect("save");
    assert_private(&path);
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(names, ["keyring.toml"], "no temporary file is left behind");
    let loaded = Keyring::load(&path).expect("load");
    assert_eq!(loaded.active_id(), 3);
    assert_eq!(loaded.list(), keyring.list());
    assert_eq!(&loaded.open("x", &old).expect("old opens").1[..], b"true");
    // Saving to a directory that does not exist fails with the path, and leaves nothing.
    let missing = dir.path().join("nope").join("keyring.toml");
    let err = keyring.save(&missing).expect_err("must fail");
    assert!(err.to_string().contains("nope"), "{err}");
}

#[test]
fn created_survives_a_round_trip_even_with_quotes() {
    let odd = text("1", SP, &[("1", S1)]).replace(
        "\"2026-11-29T14:00:00Z\"",
        "\"2026-11-29 \\\"by hand\\\" \\\\ ok\"",
    );
    let keyring = Keyring::from_toml_str(&odd, ORIGIN).expect("loads");
    let again = Keyring::from_toml_str(&keyring.to_toml_text(), ORIGIN).expect("reloads");
    assert_eq!(again.list()[0].created, "2026-11-29 \"by hand\" \\ ok");
}

#[test]
fn missing_file_names_the_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("absent.toml");
    let err = Keyring::load(&path).expect_err("must fail");
    assert!(matches!(err, KeyringError::Io { .. }));
    assert!(
        err.to_string().starts_with(&path.display().to_string()),
        "{err}"
    );
}

#[test]
fn loading_a_shared_file_warns_with_the_path_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("keyring.toml");
    std::fs::write(&path, text("1", SP, &[("1", S1)])).expect("write");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).expect("chmod");
    }
    let logs = capture_logs(|| {
        Keyring::load(&path).expect("loads despite the warning");
    });
    #[cfg(unix)]
    assert!(
        logs.contains("chmod 600") && logs.contains("keyring.toml"),
        "{logs}"
    );
    assert!(!logs.contains(&S1[..12]) && !logs.contains(&SP[..12]));
}

#[cfg(unix)]
fn assert_private(path: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(path)
        .expect("metadata")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[cfg(not(unix))]
fn assert_private(_: &std::path::Path) {}

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn capture_logs(f: impl FnOnce()) -> String {
    let out = Captured::default();
    let writer = out.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::with_default(subscriber, f);
    let mut bytes = out.0.lock().expect("lock").clone();
    bytes.flush().expect("flush");
    String::from_utf8(bytes).expect("utf-8 logs")
}
