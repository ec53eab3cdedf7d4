//! The keyring (stage: crypto): every key version the proxy can open with, the active one
//! it seals with, and the pseudonym secret; `seal`, `open` and `pseudonym` for the transform.
//!
//! Built once at load and shared (`Send + Sync`, no locks): the per-field calls only reuse
//! precomputed cipher and HMAC states. The file format lives in `keyfile.rs`. This type
//! never prints, logs or returns key bytes; its `Debug` shows key ids only.

use std::fmt;

use zeroize::Zeroizing;

use super::cipher::{random_secret, KeyVersion, PseudonymKey};
use super::envelope::{parse_token, CryptoError, Mode, OpenError, TokenHeader, ValueType};
use super::timestamp::now_rfc3339;

pub use super::keyfile::{KeyringError, KeyringProblem};

/// Key versions (sorted by id, never empty), the active one, and the pseudonym key.
#[derive(Clone)]
pub struct Keyring {
    keys: Vec<KeyVersion>,
    active: usize,
    pseudonym: PseudonymKey,
}

/// What may be shown about a key version: never its bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyInfo {
    /// Key version id, as written into every token sealed with it.
    pub id: u32,
    /// When the version was created (RFC 3339, UTC, as stored in the file).
    pub created: String,
    /// True for the version that seals new values.
    pub active: bool,
}

impl Keyring {
    /// Assembles a keyring from validated parts; `None` if `active_id` is not among
    /// `keys`, if `keys` is empty or if two versions share an id.
    pub(crate) fn from_parts(
        active_id: u32,
        mut keys: Vec<KeyVersion>,
        pseudonym: PseudonymKey,
    ) -> Option<Self> {
        keys.sort_by_key(|k| k.id);
        if keys.windows(2).any(|w| w[0].id == w[1].id) {
            return None;
        }
        let active = keys.binary_search_by_key(&active_id, |k| k.id).ok()?;
        Some(Keyring {
            keys,
            active,
            pseudonym,
        })
    }

    /// A new keyring: one key version, id 1, active, and a fresh pseudonym secret.
    pub fn generate() -> Result<Keyring, CryptoError> {
        let first = KeyVersion::new(1, now_rfc3339(), random_secret()?);
        let pseudonym = PseudonymKey::new(random_secret()?);
        Ok(Keyring {
            keys: vec![first],
            active: 0,
            pseudonym,
        })
    }

    /// Adds a key version with id one above the highest, makes it active and returns its
    /// id. Older versions stay, so everything sealed with them still opens.
    ///
    /// Fails with [`CryptoError::Randomness`] if no secret can be drawn, and with
    /// [`CryptoError::Encrypt`] if the highest id already is `u32::MAX`.
    pub fn rotate(&mut self) -> Result<u32, CryptoError> {
        let Some(id) = self.keys.last().and_then(|k| k.id.checked_add(1)) else {
            tracing::error!("no key id is left above the highest one in the keyring");
            return Err(CryptoError::Encrypt);
        };
        self.keys
            .push(KeyVersion::new(id, now_rfc3339(), random_secret()?));
        self.active = self.keys.len() - 1;
        Ok(id)
    }

    /// Every key version, by id: id, creation time, active flag. Never key bytes.
    pub fn list(&self) -> Vec<KeyInfo> {
        self.keys
            .iter()
            .enumerate()
            .map(|(i, k)| KeyInfo {
                id: k.id,
                created: k.created.clone(),
                active: i == self.active,
            })
            .collect()
    }

    /// Id of the version that seals new values.
    pub fn active_id(&self) -> u32 {
        self.keys[self.active].id
    }

    /// True if a version with this id is in the keyring (its tokens can be opened).
    pub fn contains_key(&self, id: u32) -> bool {
        self.key(id).is_some()
    }

    /// Seals a value with the active key version into a `tk1.` token.
    ///
    /// `plaintext` is the string content for [`ValueType::String`] and the JSON text of
    /// the value for the other types. `label` is bound into the token: it opens under
    /// this label only. Labels should not contain NUL characters.
    pub fn seal(
        &self,
        mode: Mode,
        label: &str,
        value_type: ValueType,
        plaintext: &[u8],
    ) -> Result<String, CryptoError> {
        self.keys[self.active].seal(mode, label, None, value_type, plaintext, None)
    }

    /// Like [`Keyring::seal`], bound also to a record key (`record`): the token then
    /// opens only with the same label and the same record key, so it cannot be moved to
    /// another record of the same field.
    pub fn seal_bound(
        &self,
        mode: Mode,
        label: &str,
        record: Option<&[u8]>,
        value_type: ValueType,
        plaintext: &[u8],
    ) -> Result<String, CryptoError> {
        self.keys[self.active].seal(mode, label, record, value_type, plaintext, None)
    }

    /// Opens a token sealed by [`Keyring::seal_bound`] (or, with `None`, by `seal`).
    pub fn open_bound(
        &self,
        label: &str,
        record: Option<&[u8]>,
        token: &str,
    ) -> Result<(ValueType, Zeroizing<Vec<u8>>), OpenError> {
        let parsed = parse_token(token).ok_or(OpenError::Malformed)?;
        self.key(parsed.key_id)
            .ok_or(OpenError::UnknownKey)?
            .open(label, record, &parsed)
    }

    /// Opens a token sealed under `label`: its original JSON type and the plaintext bytes
    /// (the caller checks them as it would any input, e.g. for UTF-8).
    pub fn open(
        &self,
        label: &str,
        token: &str,
    ) -> Result<(ValueType, Zeroizing<Vec<u8>>), OpenError> {
        let parsed = parse_token(token).ok_or(OpenError::Malformed)?;
        self.open_parsed(label, &parsed)
    }

    /// Like [`Keyring::open`], for a token the caller already ran through
    /// [`parse_token`](super::envelope::parse_token).
    pub fn open_parsed(
        &self,
        label: &str,
        token: &TokenHeader<'_>,
    ) -> Result<(ValueType, Zeroizing<Vec<u8>>), OpenError> {
        self.key(token.key_id)
            .ok_or(OpenError::UnknownKey)?
            .open(label, None, token)
    }

    /// The pseudonym of a value (action `hash`): `tkp1.` + 22 base64url characters.
    /// Same input, same pseudonym, whatever the label and across key rotations.
    pub fn pseudonym(&self, plaintext: &[u8]) -> String {
        self.pseudonym.pseudonym(plaintext)
    }

    pub(crate) fn keys(&self) -> &[KeyVersion] {
        &self.keys
    }

    pub(crate) fn pseudonym_key(&self) -> &PseudonymKey {
        &self.pseudonym
    }

    fn key(&self, id: u32) -> Option<&KeyVersion> {
        self.keys
            .binary_search_by_key(&id, |k| k.id)
            .ok()
            .map(|i| &self.keys[i])
    }

    /// Seals with a chosen key version and, in random mode, a chosen nonce: for the
    /// test vectors only. A fixed nonce in production would defeat random mode.
    #[cfg(test)]
    pub(crate) fn seal_with(
        &self,
        key_id: u32,
        mode: Mode,
        label: &str,
        value_type: ValueType,
        plaintext: &[u8],
        nonce: Option<[u8; 12]>,
    ) -> Result<String, CryptoError> {
        let key = self.key(key_id).ok_or(CryptoError::Encrypt)?;
        key.seal(mode, label, None, value_type, plaintext, nonce)
    }
}

/// Key ids only: safe to print.
impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("active", &self.active_id())
            .field(
                "key_ids",
                &self.keys.iter().map(|k| k.id).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}
