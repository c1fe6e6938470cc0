//! Sealed kv names (SPEC.md §4.4): what the accelerator sees of a collection or an
//! id. A sealed name is deterministic, so the accelerator can look a key up by it, and
//! it opens back into the name, so `list` and the change feed can name keys:
//!
//! ```text
//! siv  = HMAC-SHA256(name_mac_key, label ‖ context ‖ padded)[0..16]    the keyed hash
//! name = b64(siv ‖ AES-256-CTR(name_seal_key, siv, padded))            the sealed name
//! ```
//!
//! That is the SIV construction (deterministic authenticated encryption): the same
//! name always seals to the same text, and nothing but the account's keys makes a
//! sealed name that opens. The accelerator learns which keys are equal and each
//! name's length rounded up to [`NAME_BLOCK`] bytes; never a name.

use aes::Aes256;
use ctr::Ctr128BE;
use ctr::cipher::{KeyIvInit, StreamCipher};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::account::RootSecret;
use crate::b64;
use crate::primitives::{hkdf32, push_lp};
use crate::validate::{self, MAX_NAME_BYTES};
use crate::{Coded, ErrorCode};

/// HKDF label of the key that makes a name's keyed hash (its synthetic IV).
pub const LABEL_NAME_MAC: &[u8] = b"coffer/v1/kv-name-mac";
/// HKDF label of the key that encrypts a name.
pub const LABEL_NAME_SEAL: &[u8] = b"coffer/v1/kv-name-seal";
/// Domain prefix of a collection's keyed hash.
pub const LABEL_COLLECTION_NAME: &[u8] = b"coffer/v1/kv-collection-name";
/// Domain prefix of an id's keyed hash (the collection follows, framed).
pub const LABEL_ID_NAME: &[u8] = b"coffer/v1/kv-id-name";
/// Bytes of a sealed name's keyed hash.
pub const SIV_LEN: usize = 16;
/// A name is padded with zero bytes to a multiple of this (at least one block), so
/// its sealed form shows only its length rounded up.
pub const NAME_BLOCK: usize = 32;
/// Longest sealed name, in base64url characters: that of a [`MAX_NAME_BYTES`] name.
/// (base64url without padding: four characters per three bytes, rounded up.)
pub const MAX_SEALED_NAME_CHARS: usize = (4 * (SIV_LEN + MAX_NAME_BYTES)).div_ceil(3);

/// Whether `text` has a sealed name's shape: base64url of [`SIV_LEN`] + 32·k bytes,
/// k = 1 … 8. Every sealed name has it; a legacy plaintext name almost never does.
/// The accelerator marks a key written under other names as legacy; the SDK passes
/// on a change whose collection lacks it as a legacy change.
pub fn looks_sealed(text: &str) -> bool {
    text.len() <= MAX_SEALED_NAME_CHARS
        && b64::decode(text).is_some_and(|bytes| bytes.len() > SIV_LEN && (bytes.len() - SIV_LEN) % NAME_BLOCK == 0)
}

/// Why a sealed name did not open.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NameError {
    /// Not base64url, the wrong length, or not a name once opened.
    #[error("a stored name is malformed")]
    Malformed,
    /// The keyed hash does not match: not sealed by this account, tampered with, or
    /// moved from another collection.
    #[error("a stored name failed authentication (tampered, moved, or sealed under another key)")]
    Forged,
}

impl Coded for NameError {
    /// The stable code for this failure.
    fn code(&self) -> ErrorCode {
        ErrorCode::Integrity
    }
}

/// An account's two name keys.
pub struct NameKeys {
    mac: Zeroizing<[u8; 32]>,
    seal: Zeroizing<[u8; 32]>,
}

impl NameKeys {
    /// Derives both keys from the root secret.
    pub fn derive(root: &RootSecret) -> Self {
        NameKeys { mac: hkdf32(root.as_bytes(), LABEL_NAME_MAC), seal: hkdf32(root.as_bytes(), LABEL_NAME_SEAL) }
    }

    /// The sealed name of a collection.
    pub fn seal_collection(&self, collection: &str) -> String {
        self.seal(&context(LABEL_COLLECTION_NAME, None), collection)
    }

    /// The sealed name of an id in `collection` (the same id in two collections seals
    /// differently).
    pub fn seal_id(&self, collection: &str, id: &str) -> String {
        self.seal(&context(LABEL_ID_NAME, Some(collection)), id)
    }

    /// Opens a sealed collection name.
    pub fn open_collection(&self, sealed: &str) -> Result<String, NameError> {
        self.open(&context(LABEL_COLLECTION_NAME, None), sealed)
    }

    /// Opens a sealed id of `collection`.
    pub fn open_id(&self, collection: &str, sealed: &str) -> Result<String, NameError> {
        self.open(&context(LABEL_ID_NAME, Some(collection)), sealed)
    }

    fn siv(&self, context: &[u8], padded: &[u8]) -> [u8; SIV_LEN] {
        let mut mac =
            <Hmac<Sha256> as KeyInit>::new_from_slice(self.mac.as_ref()).expect("HMAC takes keys of any length");
        mac.update(context);
        mac.update(padded);
        let full: [u8; 32] = mac.finalize().into_bytes().into();
        full[..SIV_LEN].try_into().expect("16 of 32 bytes")
    }

    fn keystream(&self, siv: &[u8; SIV_LEN], bytes: &mut [u8]) {
        let key: &[u8; 32] = &self.seal;
        Ctr128BE::<Aes256>::new(key.into(), siv.into()).apply_keystream(bytes);
    }

    fn seal(&self, context: &[u8], name: &str) -> String {
        debug_assert!(name.len() <= MAX_NAME_BYTES, "names are validated before they are sealed");
        let mut padded = name.as_bytes().to_vec();
        padded.resize(name.len().max(1).div_ceil(NAME_BLOCK) * NAME_BLOCK, 0);
        let siv = self.siv(context, &padded);
        self.keystream(&siv, &mut padded);
        let mut out = siv.to_vec();
        out.extend_from_slice(&padded);
        b64::encode(out)
    }

    fn open(&self, context: &[u8], sealed: &str) -> Result<String, NameError> {
        if sealed.len() > MAX_SEALED_NAME_CHARS {
            return Err(NameError::Malformed);
        }
        let bytes = b64::decode(sealed).ok_or(NameError::Malformed)?;
        let body = bytes.len().checked_sub(SIV_LEN).ok_or(NameError::Malformed)?;
        if body == 0 || body % NAME_BLOCK != 0 {
            return Err(NameError::Malformed);
        }
        let (siv, encrypted) = bytes.split_at(SIV_LEN);
        let siv: [u8; SIV_LEN] = siv.try_into().expect("split at SIV_LEN");
        let mut padded = encrypted.to_vec();
        self.keystream(&siv, &mut padded);
        if !bool::from(self.siv(context, &padded).ct_eq(&siv)) {
            return Err(NameError::Forged);
        }
        let len = padded.iter().rposition(|&b| b != 0).map_or(0, |last| last + 1);
        padded.truncate(len);
        let name = String::from_utf8(padded).map_err(|_| NameError::Malformed)?;
        // Only a name the SDK accepts was ever sealed: refuse anything else, including
        // a padding that hides a NUL (a control character) inside the name.
        validate::id(&name).map_err(|_| NameError::Malformed)?;
        if name.len().max(1).div_ceil(NAME_BLOCK) * NAME_BLOCK != body {
            return Err(NameError::Malformed);
        }
        Ok(name)
    }
}

/// What a keyed hash covers before the padded name: the label, and for an id its
/// collection, framed.
fn context(label: &[u8], collection: Option<&str>) -> Vec<u8> {
    let mut out = label.to_vec();
    if let Some(collection) = collection {
        push_lp(&mut out, collection.as_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(byte: u8) -> NameKeys {
        NameKeys::derive(&RootSecret::from_bytes([byte; 32]))
    }

    #[test]
    fn sealing_is_deterministic_and_opens() {
        let k = keys(1);
        let sealed = k.seal_collection("medical");
        assert_eq!(sealed, k.seal_collection("medical"), "lookups need the same text every time");
        assert_ne!(sealed, k.seal_collection("medical2"));
        assert_eq!(k.open_collection(&sealed).unwrap(), "medical");
        let id = k.seal_id("medical", "salary-2026");
        assert_eq!(k.open_id("medical", &id).unwrap(), "salary-2026");
        assert_ne!(id, k.seal_id("notes", "salary-2026"), "an id seals differently per collection");
    }

    #[test]
    fn lengths_show_only_blocks() {
        let k = keys(1);
        assert_eq!(k.seal_collection("a").len(), k.seal_collection(&"a".repeat(NAME_BLOCK)).len());
        assert!(k.seal_collection(&"a".repeat(NAME_BLOCK + 1)).len() > k.seal_collection("a").len());
        let longest = k.seal_id("c", &"é".repeat(MAX_NAME_BYTES / 2));
        assert_eq!(longest.len(), MAX_SEALED_NAME_CHARS);
        assert_eq!(MAX_SEALED_NAME_CHARS, 363);
    }

    #[test]
    fn forged_moved_and_malformed_names_fail() {
        let k = keys(1);
        let id = k.seal_id("medical", "x");
        assert_eq!(k.open_id("notes", &id), Err(NameError::Forged), "moved to another collection");
        assert_eq!(keys(2).open_id("medical", &id), Err(NameError::Forged), "another account");
        assert_eq!(k.open_collection(&id), Err(NameError::Forged), "an id is no collection");
        let mut bytes = b64::decode(&id).unwrap();
        bytes[20] ^= 1;
        assert_eq!(k.open_id("medical", &b64::encode(&bytes)), Err(NameError::Forged));
        assert_eq!(k.open_id("medical", &b64::encode(&bytes[..40])), Err(NameError::Malformed));
        assert_eq!(k.open_collection("todos"), Err(NameError::Malformed), "a legacy plaintext name");
        assert!(looks_sealed(&id) && looks_sealed(&k.seal_collection(&"x".repeat(MAX_NAME_BYTES))));
        assert!(!looks_sealed("todos") && !looks_sealed("salary-2026") && !looks_sealed(&id[..40]));
        assert_eq!(k.open_collection("!!"), Err(NameError::Malformed));
    }
}
