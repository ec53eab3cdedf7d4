//! Sealing and opening of field values (stage: between the transform and the upstream,
//! in both directions): the `tk1.` envelope format, the keyring and pseudonyms.
//!
//! - `envelope`: token syntax, `parse_token`, label tags, errors, `MARKER`.
//! - `keyring`: the loaded keys; `seal`, `open`, `pseudonym`, rotation.
//! - `keyfile`: the keyring file (TOML, validation, errors); `private_file`: 0600 files,
//!   atomic replace.
//! - `cipher`: per-version derived keys (AES-256-GCM-SIV, HMAC-SHA256).
//! - `derive`: secrets for other modules (flow log chain), derived from the pseudonym secret.
//!
//! The format is specified in `docs/ciphertext.md`, with test vectors in
//! `docs/ciphertext-vectors.json` that the tests here check. Nothing in this module
//! logs, returns or panics with a plaintext, a ciphertext body or key bytes, and
//! nothing that owns them derives `Debug`.

mod cipher;
mod derive;
pub mod envelope;
mod keyfile;
pub mod keyring;
mod private_file;
mod timestamp;

#[cfg(test)]
mod tests;

pub use envelope::{
    is_pseudonym, label_tag, parse_token, CryptoError, Mode, OpenError, TokenHeader, ValueType,
    MARKER, PSEUDONYM_PREFIX,
};
pub use keyring::{KeyInfo, Keyring, KeyringError, KeyringProblem};
