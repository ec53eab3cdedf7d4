//! Secrets derived from the keyring for other parts of the proxy (the flow log's HMAC
//! chain, keyed client-address hashes), so operators manage one secret file. Derived
//! from the never-rotating pseudonym secret, so they stay stable across key rotation.
//! Never logs or returns key bytes outside a zeroizing buffer.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

use super::Keyring;

impl Keyring {
    /// A 32-byte secret for `purpose` (e.g. "flow-log-hmac"): HMAC-SHA256(pseudonym
    /// secret, "tarnkappe/v1/derive/" || purpose).
    pub fn derive_secret(&self, purpose: &str) -> Zeroizing<[u8; 32]> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(self.pseudonym_key().secret())
            .expect("HMAC takes any key length");
        mac.update(b"tarnkappe/v1/derive/");
        mac.update(purpose.as_bytes());
        let mut out = Zeroizing::new([0u8; 32]);
        out.copy_from_slice(&mac.finalize().into_bytes());
        out
    }
}
