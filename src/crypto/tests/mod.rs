//! Unit tests of the crypto module: the published test vectors, the envelope parser and
//! tamper detection, and the keyring file. Test secrets here are public by design.

mod envelope;
mod keyfile;
mod vectors;

use serde_json::Value;

use super::Keyring;

/// The published vectors file; the tests hold the code to it, byte for byte.
pub(super) const VECTORS_JSON: &str = include_str!("../../../docs/ciphertext-vectors.json");

pub(super) fn vectors_doc() -> Value {
    serde_json::from_str(VECTORS_JSON).expect("vectors file is JSON")
}

/// The fixed keyring of the vectors file: key 1 and key 2 (active).
pub(super) fn fixture() -> Keyring {
    let doc = vectors_doc();
    let text = doc["keyring_toml"].as_str().expect("keyring_toml");
    Keyring::from_toml_str(text, "vectors").expect("vector keyring loads")
}

pub(super) fn hex(s: &str) -> Vec<u8> {
    assert_eq!(s.len() % 2, 0, "hex has even length");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex digit"))
        .collect()
}

pub(super) fn b64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}
