//! The few primitive operations every format is built from, in one place: HKDF
//! labels, length-prefixed framing for AAD, and AES-256-GCM with a caller's nonce.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::Zeroizing;

/// Bytes in an AES-256-GCM nonce.
pub const NONCE_LEN: usize = 12;
/// Bytes in an AES-256-GCM tag.
pub const TAG_LEN: usize = 16;

/// HKDF-SHA256 (RFC 5869) with an empty salt, expanding `ikm` to 32 bytes under `label`.
pub fn hkdf32(ikm: &[u8], label: &[u8]) -> Zeroizing<[u8; 32]> {
    let mut out = Zeroizing::new([0u8; 32]);
    Hkdf::<Sha256>::new(None, ikm).expand(label, out.as_mut()).expect("32 bytes is a valid HKDF-SHA256 output length");
    out
}

/// Appends `bytes` as a 4-byte big-endian length followed by the bytes (SPEC.md, "lp").
pub fn push_lp(out: &mut Vec<u8>, bytes: &[u8]) {
    let len = u32::try_from(bytes.len()).expect("framed fields are far below 4 GiB");
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
}

/// AES-256-GCM encryption; returns ciphertext ‖ tag.
///
/// The caller owns nonce uniqueness: every caller in this crate uses a fresh random
/// nonce per message or a key used for exactly one message (see SPEC.md).
pub fn seal(key: &[u8; 32], nonce: &[u8; NONCE_LEN], aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
    let cipher = Aes256Gcm::new(key.into());
    cipher
        .encrypt(&Nonce::from(*nonce), Payload { msg: plaintext, aad })
        .expect("AES-GCM encryption of a message under 64 GiB cannot fail")
}

/// AES-256-GCM decryption of ciphertext ‖ tag; `None` if it does not authenticate.
pub fn open(key: &[u8; 32], nonce: &[u8; NONCE_LEN], aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
    let cipher = Aes256Gcm::new(key.into());
    cipher.decrypt(&Nonce::from(*nonce), Payload { msg: sealed, aad }).ok()
}
