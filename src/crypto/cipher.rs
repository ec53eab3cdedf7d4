//! Key material of one key version and the seal/open operations on it (stage: crypto).
//!
//! Subkeys are derived once, when a key version is built, so that sealing a field costs
//! one AES-GCM-SIV call and, in deterministic mode, one HMAC. Secrets live in
//! `Zeroizing` buffers. Nothing here derives `Debug`, logs, or puts a plaintext,
//! ciphertext or key byte into an error or a panic message.

use aes_gcm_siv::aead::{AeadInPlace, KeyInit};
use aes_gcm_siv::{Aes256GcmSiv, Nonce, Tag};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use rand::rngs::OsRng;
use rand::RngCore;
use sha2::Sha256;
use zeroize::Zeroizing;

use super::envelope::{
    associated_data, build_header, CryptoError, Mode, OpenError, TokenHeader, ValueType, NONCE_LEN,
    PSEUDONYM_BYTES, PSEUDONYM_PREFIX, TAG_LEN,
};

type HmacSha256 = Hmac<Sha256>;

/// Size of every master secret and derived key.
pub(crate) const SECRET_LEN: usize = 32;

/// A 32-byte secret that is wiped when dropped.
pub(crate) type Secret = Zeroizing<[u8; SECRET_LEN]>;

const INFO_ENC: &[u8] = b"tarnkappe/v1/enc";
const INFO_NONCE: &[u8] = b"tarnkappe/v1/nonce";
const INFO_PSEUDONYM: &[u8] = b"tarnkappe/v1/pseudonym";

/// A fresh secret from the operating system; an RNG failure is an error, never a panic.
pub(crate) fn random_secret() -> Result<Secret, CryptoError> {
    let mut secret = Zeroizing::new([0u8; SECRET_LEN]);
    fill_random(&mut secret[..])?;
    Ok(secret)
}

fn fill_random(buf: &mut [u8]) -> Result<(), CryptoError> {
    OsRng.try_fill_bytes(buf).map_err(|e| {
        tracing::error!(error = %e, "operating system random number generator failed");
        CryptoError::Randomness
    })
}

/// A nonce for random-mode sealing: from the thread's CSPRNG (ChaCha12, seeded and
/// periodically reseeded from the operating system), so a request sealing several
/// fields makes no system call per field. AES-GCM-SIV stays safe even if a nonce repeats.
fn fill_nonce(buf: &mut [u8]) -> Result<(), CryptoError> {
    rand::thread_rng().try_fill_bytes(buf).map_err(|e| {
        tracing::error!(error = %e, "random number generator failed");
        CryptoError::Randomness
    })
}

/// HMAC-SHA256(master, info): the subkey for one purpose.
fn derive(master: &[u8; SECRET_LEN], info: &[u8]) -> Secret {
    let mut out = Zeroizing::new([0u8; SECRET_LEN]);
    out.copy_from_slice(&keyed_mac(master).chain_update(info).finalize().into_bytes());
    out
}

fn keyed_mac(key: &[u8; SECRET_LEN]) -> HmacSha256 {
    // HMAC takes keys of any length, so this cannot fail.
    <HmacSha256 as Mac>::new_from_slice(key).expect("HMAC accepts any key length")
}

/// One key version: its master secret (kept to write the keyring back) and the cipher
/// and HMAC states derived from it.
#[derive(Clone)]
pub(crate) struct KeyVersion {
    pub(crate) id: u32,
    pub(crate) created: String,
    secret: Secret,
    cipher: Aes256GcmSiv,
    nonce_mac: HmacSha256,
}

impl KeyVersion {
    pub(crate) fn new(id: u32, created: String, secret: Secret) -> Self {
        let enc_key = derive(&secret, INFO_ENC);
        let nonce_key = derive(&secret, INFO_NONCE);
        KeyVersion {
            id,
            created,
            cipher: Aes256GcmSiv::new((&*enc_key).into()),
            nonce_mac: keyed_mac(&nonce_key),
            secret,
        }
    }

    pub(crate) fn secret(&self) -> &[u8; SECRET_LEN] {
        &self.secret
    }

    /// Seals `plaintext` into a token. `fixed_nonce` exists for the test vectors only
    /// and is honoured in random mode only.
    pub(crate) fn seal(
        &self,
        mode: Mode,
        label: &str,
        record: Option<&[u8]>,
        value_type: ValueType,
        plaintext: &[u8],
        fixed_nonce: Option<[u8; NONCE_LEN]>,
    ) -> Result<String, CryptoError> {
        let sealed_len = NONCE_LEN + plaintext.len() + TAG_LEN;
        let mut token = build_header(
            self.id,
            mode,
            value_type,
            label,
            1 + (sealed_len * 4).div_ceil(3),
        );
        let ad = associated_data(&token, label, record);
        let nonce = match (mode, fixed_nonce) {
            (Mode::Deterministic, _) => self.derived_nonce(&ad, plaintext),
            (Mode::Random, Some(nonce)) => nonce,
            (Mode::Random, None) => {
                let mut nonce = [0u8; NONCE_LEN];
                fill_nonce(&mut nonce)?;
                nonce
            }
        };
        // Zeroizing: until encryption succeeds this buffer holds the plaintext.
        let mut sealed = Zeroizing::new(Vec::with_capacity(sealed_len));
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(plaintext);
        let tag = self
            .cipher
            .encrypt_in_place_detached(Nonce::from_slice(&nonce), &ad, &mut sealed[NONCE_LEN..])
            .map_err(|_| CryptoError::Encrypt)?;
        sealed.extend_from_slice(&tag);
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(&*sealed, &mut token);
        Ok(token)
    }

    /// Opens a token already parsed by `parse_token` whose key id is this key's.
    pub(crate) fn open(
        &self,
        label: &str,
        record: Option<&[u8]>,
        token: &TokenHeader<'_>,
    ) -> Result<(ValueType, Zeroizing<Vec<u8>>), OpenError> {
        let mut buf = Zeroizing::new(Vec::with_capacity(token.body.len() * 3 / 4 + 3));
        URL_SAFE_NO_PAD
            .decode_vec(token.body, &mut buf)
            .map_err(|_| OpenError::Malformed)?;
        let len = buf.len();
        if len < NONCE_LEN + TAG_LEN {
            return Err(OpenError::Malformed);
        }
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&buf[..NONCE_LEN]);
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(&buf[len - TAG_LEN..]);
        // Decrypt in place at the front of the same zeroizing buffer.
        buf.copy_within(NONCE_LEN..len - TAG_LEN, 0);
        buf.truncate(len - NONCE_LEN - TAG_LEN);
        let ad = associated_data(token.header, label, record);
        self.cipher
            .decrypt_in_place_detached(
                Nonce::from_slice(&nonce),
                &ad,
                &mut buf,
                Tag::from_slice(&tag),
            )
            .map_err(|_| OpenError::Tampered)?;
        // A deterministic token must carry the nonce its plaintext derives: this keeps
        // "equal value, equal token" true even for tokens we did not make ourselves.
        if token.mode == Mode::Deterministic
            && self
                .nonce_mac_for(&ad, &buf)
                .verify_truncated_left(&nonce)
                .is_err()
        {
            return Err(OpenError::Tampered);
        }
        Ok((token.value_type, buf))
    }

    /// First 12 bytes of HMAC-SHA256(nonce_key, ad || 0x00 || plaintext).
    fn derived_nonce(&self, ad: &[u8], plaintext: &[u8]) -> [u8; NONCE_LEN] {
        let full = self.nonce_mac_for(ad, plaintext).finalize().into_bytes();
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&full[..NONCE_LEN]);
        nonce
    }

    fn nonce_mac_for(&self, ad: &[u8], plaintext: &[u8]) -> HmacSha256 {
        self.nonce_mac
            .clone()
            .chain_update(ad)
            .chain_update([0u8])
            .chain_update(plaintext)
    }
}

/// The never-rotating pseudonym secret and the HMAC state derived from it.
#[derive(Clone)]
pub(crate) struct PseudonymKey {
    secret: Secret,
    mac: HmacSha256,
}

impl PseudonymKey {
    pub(crate) fn new(secret: Secret) -> Self {
        let key = derive(&secret, INFO_PSEUDONYM);
        PseudonymKey {
            mac: keyed_mac(&key),
            secret,
        }
    }

    pub(crate) fn secret(&self) -> &[u8; SECRET_LEN] {
        &self.secret
    }

    /// `tkp1.` + base64url(first 16 bytes of HMAC-SHA256(pseudonym_key, plaintext)).
    pub(crate) fn pseudonym(&self, plaintext: &[u8]) -> String {
        let full = self
            .mac
            .clone()
            .chain_update(plaintext)
            .finalize()
            .into_bytes();
        let mut out = String::with_capacity(PSEUDONYM_PREFIX.len() + 22);
        out.push_str(PSEUDONYM_PREFIX);
        URL_SAFE_NO_PAD.encode_string(&full[..PSEUDONYM_BYTES], &mut out);
        out
    }
}
