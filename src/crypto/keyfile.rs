//! The keyring file (stage: crypto, startup and `keys` commands): TOML parsing with
//! strict validation, writing with mode 0600, atomic replacement.
//!
//! Every problem is reported as `origin:line:col: key[0].secret: what is wrong`, all of
//! them in one run. This file must never put secret bytes (or their base64 text) into
//! an error, a log line or a panic message, and never echo TOML parser snippets, which
//! quote the offending source line.

use std::collections::BTreeSet;
use std::fmt::{self, Write as _};
use std::fs::{self, File};
use std::io::{self, Read as _, Write as _};
use std::path::Path;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::{Deserialize, Deserializer};
use toml::Spanned;
use zeroize::Zeroizing;

use super::cipher::{KeyVersion, PseudonymKey, Secret, SECRET_LEN};
use super::keyring::Keyring;
use super::private_file::{
    create_private, create_temp_beside, parent_dir, sync_dir, warn_if_shared,
};

/// A keyring file larger than this is refused before parsing.
const MAX_KEYRING_BYTES: u64 = 1 << 20;

const FILE_HEADER: &str = "\
# tarnkappe keyring: keep this file secret and backed up.
# Removing a [[key]] erases it: whatever was sealed with it can never be opened again.
";

/// A keyring that could not be read, parsed, validated or written.
#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    /// The file could not be opened, read, written, synced or renamed.
    Io {
        /// File path (or other origin) of the keyring.
        origin: String,
        /// What was attempted: "read", "write", ...
        action: &'static str,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// `write_new` found a file at the target path and left it alone.
    Exists {
        /// File path of the keyring.
        origin: String,
    },
    /// The text is not a valid keyring; every problem found is listed.
    Invalid {
        /// File path, or `TARNKAPPE_KEYRING` for the environment variable.
        origin: String,
        /// One entry per problem, in file order.
        problems: Vec<KeyringProblem>,
    },
}

/// One problem in a keyring text. Holds names and positions, never secret text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyringProblem {
    /// 1-based line and column, when known.
    pub location: Option<(usize, usize)>,
    /// Which key is at fault: `active`, `pseudonym_secret`, `key[0].secret`, ... (may be empty).
    pub path: String,
    /// What is wrong, and the fix.
    pub what: String,
}

impl fmt::Display for KeyringError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyringError::Io {
                origin,
                action,
                source,
            } => write!(f, "{origin}: cannot {action} keyring: {source}"),
            KeyringError::Exists { origin } => write!(
                f,
                "{origin}: a file already exists there; refusing to overwrite it \
                 (that would erase its keys); choose another path"
            ),
            KeyringError::Invalid { origin, problems } => {
                for (i, p) in problems.iter().enumerate() {
                    if i > 0 {
                        f.write_char('\n')?;
                    }
                    f.write_str(origin)?;
                    if let Some((line, col)) = p.location {
                        write!(f, ":{line}:{col}")?;
                    }
                    f.write_str(": ")?;
                    if !p.path.is_empty() {
                        write!(f, "{}: ", p.path)?;
                    }
                    f.write_str(&p.what)?;
                }
                Ok(())
            }
        }
    }
}

/// Base64 text of a secret: wiped when dropped, and never shown.
struct SecretText(Zeroizing<String>);

impl<'de> Deserialize<'de> for SecretText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(|s| SecretText(Zeroizing::new(s)))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKeyring {
    active: Spanned<u32>,
    pseudonym_secret: Spanned<SecretText>,
    #[serde(default)]
    key: Vec<Spanned<RawKey>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKey {
    id: Spanned<u32>,
    created: String,
    secret: Spanned<SecretText>,
}

/// Collects problems with their positions in `text`.
struct Problems<'t> {
    text: &'t str,
    list: Vec<KeyringProblem>,
}

impl Problems<'_> {
    fn add(&mut self, offset: Option<usize>, path: &str, what: String) {
        self.list.push(KeyringProblem {
            location: offset.map(|o| line_col(self.text, o)),
            path: path.to_owned(),
            what,
        });
    }
}

impl Keyring {
    /// Reads and validates a keyring file. Warns (naming the path only) when the file is
    /// readable or writable by group or others.
    pub fn load(path: &Path) -> Result<Keyring, KeyringError> {
        let origin = path.display().to_string();
        let io_err = |action| {
            let origin = origin.clone();
            move |source| KeyringError::Io {
                origin,
                action,
                source,
            }
        };
        let file = File::open(path).map_err(io_err("open"))?;
        let meta = file.metadata().map_err(io_err("read"))?;
        warn_if_shared(path, &meta);
        if meta.len() > MAX_KEYRING_BYTES {
            return Err(io_err("read")(too_large()));
        }
        // Reserve up front so that no partial copy of the secrets is left behind by growth.
        let mut text = Zeroizing::new(String::with_capacity(meta.len() as usize + 1));
        file.take(MAX_KEYRING_BYTES + 1)
            .read_to_string(&mut text)
            .map_err(io_err("read"))?;
        if text.len() as u64 > MAX_KEYRING_BYTES {
            return Err(io_err("read")(too_large()));
        }
        Self::from_toml_str(&text, &origin)
    }

    /// Parses and validates keyring text; `origin` names it in errors (a file path, or
    /// `TARNKAPPE_KEYRING` for the environment variable).
    pub fn from_toml_str(text: &str, origin: &str) -> Result<Keyring, KeyringError> {
        let invalid = |problems| KeyringError::Invalid {
            origin: origin.to_owned(),
            problems,
        };
        let raw: RawKeyring =
            toml::from_str(text).map_err(|e| invalid(vec![toml_problem(text, &e)]))?;
        let mut problems = Problems {
            text,
            list: Vec::new(),
        };
        let pseudonym = decode_secret(&raw.pseudonym_secret, "pseudonym_secret", &mut problems);
        let keys = validate_keys(&raw, &mut problems);
        match (problems.list.is_empty(), pseudonym) {
            (true, Some(secret)) => {
                let pseudonym = PseudonymKey::new(secret);
                Keyring::from_parts(*raw.active.get_ref(), keys, pseudonym).ok_or_else(|| {
                    invalid(vec![KeyringProblem {
                        location: None,
                        path: String::new(),
                        what: "inconsistent keyring".to_owned(),
                    }])
                })
            }
            _ => Err(invalid(problems.list)),
        }
    }

    /// Writes the keyring to a new file with mode 0600; refuses if anything exists there.
    pub fn write_new(&self, path: &Path) -> Result<(), KeyringError> {
        let origin = || path.display().to_string();
        let text = self.to_toml_text();
        let mut file = match create_private(path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                return Err(KeyringError::Exists { origin: origin() })
            }
            Err(source) => {
                return Err(KeyringError::Io {
                    origin: origin(),
                    action: "create",
                    source,
                })
            }
        };
        if let Err(source) = file
            .write_all(text.as_bytes())
            .and_then(|()| file.sync_all())
        {
            drop(file);
            // We created it a moment ago: a half-written keyring must not stay behind.
            let _ = fs::remove_file(path);
            return Err(KeyringError::Io {
                origin: origin(),
                action: "write",
                source,
            });
        }
        sync_dir(&parent_dir(path));
        Ok(())
    }

    /// Replaces the keyring file atomically: writes a 0600 temporary file in the same
    /// directory, syncs it, renames it over `path`, syncs the directory.
    pub fn save(&self, path: &Path) -> Result<(), KeyringError> {
        let io_err = |action: &'static str| {
            move |source| KeyringError::Io {
                origin: path.display().to_string(),
                action,
                source,
            }
        };
        let text = self.to_toml_text();
        let (tmp, mut file) = create_temp_beside(path).map_err(io_err("create a temporary"))?;
        let written = file
            .write_all(text.as_bytes())
            .and_then(|()| file.sync_all());
        drop(file);
        let renamed = written
            .map_err(io_err("write"))
            .and_then(|()| fs::rename(&tmp, path).map_err(io_err("replace")));
        if renamed.is_err() {
            let _ = fs::remove_file(&tmp);
        } else {
            sync_dir(&parent_dir(path));
        }
        renamed
    }

    /// The keyring as TOML text, secrets included: for writing the file only.
    pub(crate) fn to_toml_text(&self) -> Zeroizing<String> {
        let mut out = Zeroizing::new(String::with_capacity(256 + 160 * self.keys().len()));
        // Writing to a String cannot fail.
        let _ = write!(
            out,
            "{FILE_HEADER}active = {}\npseudonym_secret = \"{}\"\n",
            self.active_id(),
            Zeroizing::new(URL_SAFE_NO_PAD.encode(self.pseudonym_key().secret())).as_str()
        );
        for key in self.keys() {
            let _ = write!(
                out,
                "\n[[key]]\nid = {}\ncreated = {}\nsecret = \"{}\"\n",
                key.id,
                toml::Value::String(key.created.clone()),
                Zeroizing::new(URL_SAFE_NO_PAD.encode(key.secret())).as_str()
            );
        }
        out
    }
}

fn validate_keys(raw: &RawKeyring, problems: &mut Problems<'_>) -> Vec<KeyVersion> {
    let mut keys = Vec::with_capacity(raw.key.len());
    if raw.key.is_empty() {
        problems.add(
            None,
            "key",
            "the keyring holds no [[key]]; create one with `tarnkappe keys generate`".to_owned(),
        );
    }
    for (i, entry) in raw.key.iter().enumerate() {
        let key = entry.get_ref();
        let id = *key.id.get_ref();
        let id_path = format!("key[{i}].id");
        if id == 0 {
            problems.add(
                Some(key.id.span().start),
                &id_path,
                "key ids start at 1".to_owned(),
            );
        }
        let earlier = raw.key[..i]
            .iter()
            .position(|k| *k.get_ref().id.get_ref() == id);
        if let Some(j) = earlier {
            problems.add(
                Some(key.id.span().start),
                &id_path,
                format!("id {id} is already used by key[{j}]; every key version needs its own id"),
            );
        }
        let secret = decode_secret(&key.secret, &format!("key[{i}].secret"), problems);
        if let Some(secret) = secret {
            keys.push(KeyVersion::new(id, key.created.clone(), secret));
        }
    }
    let active = *raw.active.get_ref();
    if !raw.key.is_empty() && !raw.key.iter().any(|k| *k.get_ref().id.get_ref() == active) {
        let ids: BTreeSet<u32> = raw.key.iter().map(|k| *k.get_ref().id.get_ref()).collect();
        let ids: Vec<String> = ids.iter().map(u32::to_string).collect();
        problems.add(
            Some(raw.active.span().start),
            "active",
            format!(
                "no [[key]] has id {active} (ids present: {}); set active to one of them",
                ids.join(", ")
            ),
        );
    }
    keys
}

/// Decodes a 32-byte base64url secret (padding tolerated) without copying it to the heap.
fn decode_secret(
    text: &Spanned<SecretText>,
    path: &str,
    problems: &mut Problems<'_>,
) -> Option<Secret> {
    let at = Some(text.span().start);
    let encoded = text.get_ref().0.trim_end_matches('=');
    let expected = (SECRET_LEN * 4).div_ceil(3);
    if encoded.contains(['+', '/']) {
        problems.add(
            at,
            path,
            "is standard base64; write it in base64url (`-` and `_` instead of `+` and `/`)"
                .to_owned(),
        );
        return None;
    }
    if encoded.len() != expected {
        problems.add(
            at,
            path,
            format!(
                "must be {SECRET_LEN} bytes as base64url ({expected} characters), \
                 found {}; generate secrets with `tarnkappe keys generate`",
                encoded.chars().count()
            ),
        );
        return None;
    }
    let mut buf = Zeroizing::new([0u8; SECRET_LEN + 3]);
    match URL_SAFE_NO_PAD.decode_slice(encoded, &mut buf[..]) {
        Ok(SECRET_LEN) => {
            let mut secret = Zeroizing::new([0u8; SECRET_LEN]);
            secret.copy_from_slice(&buf[..SECRET_LEN]);
            Some(secret)
        }
        _ => {
            problems.add(at, path, "is not valid base64url".to_owned());
            None
        }
    }
}

/// A problem from the TOML parser, rewritten so that no source text is echoed.
fn toml_problem(text: &str, err: &toml::de::Error) -> KeyringProblem {
    KeyringProblem {
        location: err.span().map(|s| line_col(text, s.start)),
        path: String::new(),
        what: sanitize_toml_message(err.message()),
    }
}

/// Keeps field names (in backticks) but drops values: serde's "invalid type" and
/// "invalid value" messages quote the offending value, which could be a secret.
fn sanitize_toml_message(message: &str) -> String {
    let first = message.lines().next().unwrap_or_default().trim();
    let names_fields_only = [
        "unknown field",
        "missing field",
        "duplicate key",
        "duplicate field",
    ]
    .iter()
    .any(|p| first.starts_with(p));
    if names_fields_only {
        return first.to_owned();
    }
    if let Some(i) = first.find(", expected ") {
        if first.starts_with("invalid") {
            let kind = first[..i].split(':').next().unwrap_or("invalid value");
            let expected = first[i + 2..].replace("u32", "a whole number from 1 to 4294967295");
            let hint = if expected == "expected a sequence" {
                " (write every key version as a [[key]] table)"
            } else {
                ""
            };
            return format!("{kind}, {expected}{hint}");
        }
    }
    if first.is_empty() || first.contains(['"', '\'']) && !first.starts_with("expected") {
        return "not valid TOML".to_owned();
    }
    format!("not valid TOML: {first}")
}

/// 1-based line and column (in characters) of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (
        before.matches('\n').count() + 1,
        before[line_start..].chars().count() + 1,
    )
}

fn too_large() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, "file is larger than 1 MiB")
}
