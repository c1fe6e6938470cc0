//! What the SDK keeps on the device (SPEC.md D.1): records in the browser's
//! IndexedDB, each sealed with AES-256-GCM under a key derived from the account's
//! root secret and bound to its kind and id, so nothing kept there is plaintext and
//! no record can stand in for another.
//!
//! Records are listed by an **owner tag**, also derived from the root secret: the
//! same account finds its own records on any visit, and nobody learns from the tag
//! whose they are.

use zeroize::Zeroizing;

use crate::primitives::{NONCE_LEN, hkdf32, open, push_lp, seal};
use crate::{Coded, ErrorCode};

/// HKDF label of the key that seals device records.
pub const LABEL_DEVICE_SEAL: &[u8] = b"coffer/v1/device-seal";
/// HKDF label of the owner tag.
pub const LABEL_DEVICE_OWNER: &[u8] = b"coffer/v1/device-owner";
/// Domain prefix of a device record's AAD.
pub const LABEL_DEVICE_AAD: &[u8] = b"coffer/v1/device-record";
/// First byte of every sealed device record.
pub const DEVICE_RECORD_VERSION: u8 = 1;
/// Bytes of the owner tag (shown as 32 hex digits).
pub const OWNER_TAG_LEN: usize = 16;
/// HKDF label of the key behind name tags.
pub const LABEL_DEVICE_NAMES: &[u8] = b"coffer/v1/device-names";
/// Bytes of a name tag (shown as 32 hex digits).
pub const NAME_TAG_LEN: usize = 16;

/// What a device record holds; bound into its seal, so one kind never opens as another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RecordKind {
    /// A resumable upload's plan ([`crate::resume::UploadPlan`]).
    UploadPlan,
    /// One data chunk an upload has stored ([`crate::resume::ChunkDone`]).
    UploadChunk,
    /// What this device last knew of one kv key ([`crate::offline::CachedKey`]).
    KvCached,
    /// That this device knows every id of a kv collection (its name).
    KvListed,
    /// A kv write waiting for the accelerator ([`crate::offline::QueuedWrite`]).
    KvQueued,
}

impl RecordKind {
    /// Its name in the AAD.
    pub fn label(self) -> &'static str {
        match self {
            RecordKind::UploadPlan => "upload-plan",
            RecordKind::UploadChunk => "upload-chunk",
            RecordKind::KvCached => "kv-cached",
            RecordKind::KvListed => "kv-listed",
            RecordKind::KvQueued => "kv-queued",
        }
    }
}

/// Why a device record could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DeviceError {
    /// Not a sealed record of a version this SDK knows.
    #[error("a record kept on this device is of an unknown format (version {0}); it was left alone")]
    UnknownVersion(u8),
    /// Altered, moved to another id or kind, another account's, or cut short.
    #[error("a record kept on this device failed its integrity check (altered, or another account's)")]
    Decrypt,
    /// Opened, but its contents are not what its kind holds.
    #[error("a record kept on this device is malformed")]
    Malformed,
}

impl Coded for DeviceError {
    /// The stable code for this failure.
    fn code(&self) -> ErrorCode {
        ErrorCode::Integrity
    }
}

/// The keys behind one account's device records.
pub struct DeviceKeys {
    seal: Zeroizing<[u8; 32]>,
    owner: [u8; OWNER_TAG_LEN],
    names: Zeroizing<[u8; 32]>,
}

impl DeviceKeys {
    /// Derives them from the account's root secret.
    pub fn derive(root: &crate::account::RootSecret) -> Self {
        let owner = hkdf32(root.as_bytes(), LABEL_DEVICE_OWNER);
        let mut tag = [0; OWNER_TAG_LEN];
        tag.copy_from_slice(&owner[..OWNER_TAG_LEN]);
        DeviceKeys {
            seal: hkdf32(root.as_bytes(), LABEL_DEVICE_SEAL),
            owner: tag,
            names: hkdf32(root.as_bytes(), LABEL_DEVICE_NAMES),
        }
    }

    /// The tag a kv collection's records are found by: its name, unreadable.
    pub fn collection_tag(&self, collection: &str) -> String {
        self.name_tag(&[b"collection", collection.as_bytes()])
    }

    /// The tag one kv key's records are found by.
    pub fn key_tag(&self, collection: &str, id: &str) -> String {
        self.name_tag(&[b"key", collection.as_bytes(), id.as_bytes()])
    }

    /// `hex(BLAKE3-keyed(names, lp(part) ‖ …)[0..NAME_TAG_LEN])`.
    fn name_tag(&self, parts: &[&[u8]]) -> String {
        let mut input = Vec::new();
        for part in parts {
            push_lp(&mut input, part);
        }
        blake3::keyed_hash(&self.names, &input).as_bytes()[..NAME_TAG_LEN].iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The owner tag, as 32 lowercase hex digits: lists this account's records.
    pub fn owner(&self) -> String {
        self.owner.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Seals `plaintext` as the record `id` of `kind`; `nonce` must be fresh random bytes.
    pub fn seal(&self, kind: RecordKind, id: &str, plaintext: &[u8], nonce: [u8; NONCE_LEN]) -> Vec<u8> {
        let mut out = vec![DEVICE_RECORD_VERSION];
        out.extend_from_slice(&nonce);
        out.extend(seal(&self.seal, &nonce, &aad(kind, id), plaintext));
        out
    }

    /// Opens the record `id` of `kind`.
    pub fn open(&self, kind: RecordKind, id: &str, sealed: &[u8]) -> Result<Vec<u8>, DeviceError> {
        let (&version, rest) = sealed.split_first().ok_or(DeviceError::Decrypt)?;
        if version != DEVICE_RECORD_VERSION {
            return Err(DeviceError::UnknownVersion(version));
        }
        let (nonce, body) = rest.split_at_checked(NONCE_LEN).ok_or(DeviceError::Decrypt)?;
        let nonce: [u8; NONCE_LEN] = nonce.try_into().expect("split at NONCE_LEN");
        open(&self.seal, &nonce, &aad(kind, id), body).ok_or(DeviceError::Decrypt)
    }
}

/// `LABEL_DEVICE_AAD ‖ lp(kind) ‖ lp(id)`.
fn aad(kind: RecordKind, id: &str) -> Vec<u8> {
    let mut aad = LABEL_DEVICE_AAD.to_vec();
    push_lp(&mut aad, kind.label().as_bytes());
    push_lp(&mut aad, id.as_bytes());
    aad
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::account::RootSecret;

    #[test]
    fn a_record_opens_only_as_itself_for_its_account() {
        let keys = DeviceKeys::derive(&RootSecret::from_bytes([1; 32]));
        let other = DeviceKeys::derive(&RootSecret::from_bytes([2; 32]));
        let sealed = keys.seal(RecordKind::UploadPlan, "abc", b"plan", [7; NONCE_LEN]);
        assert_eq!(keys.open(RecordKind::UploadPlan, "abc", &sealed).unwrap(), b"plan");
        assert_eq!(keys.open(RecordKind::UploadPlan, "abd", &sealed), Err(DeviceError::Decrypt), "another id");
        assert_eq!(keys.open(RecordKind::UploadChunk, "abc", &sealed), Err(DeviceError::Decrypt), "another kind");
        assert_eq!(other.open(RecordKind::UploadPlan, "abc", &sealed), Err(DeviceError::Decrypt), "another account");
        let mut flipped = sealed.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert_eq!(keys.open(RecordKind::UploadPlan, "abc", &flipped), Err(DeviceError::Decrypt));
        let mut version = sealed.clone();
        version[0] = 2;
        assert_eq!(keys.open(RecordKind::UploadPlan, "abc", &version), Err(DeviceError::UnknownVersion(2)));
        assert_eq!(keys.open(RecordKind::UploadPlan, "abc", &sealed[..5]), Err(DeviceError::Decrypt));
        assert_eq!(keys.open(RecordKind::UploadPlan, "abc", &[]), Err(DeviceError::Decrypt));
    }

    #[test]
    fn name_tags_tell_names_and_accounts_apart() {
        let a = DeviceKeys::derive(&RootSecret::from_bytes([1; 32]));
        let b = DeviceKeys::derive(&RootSecret::from_bytes([2; 32]));
        assert_eq!(a.key_tag("todos", "t1"), a.key_tag("todos", "t1"));
        assert_ne!(a.key_tag("todos", "t1"), b.key_tag("todos", "t1"));
        assert_ne!(a.key_tag("todos", "t1"), a.key_tag("todost", "1"), "lengths are bound");
        assert_ne!(a.collection_tag("todos"), a.key_tag("todos", ""), "a collection is not a key");
        assert_eq!(a.collection_tag("todos").len(), 2 * NAME_TAG_LEN);
    }

    #[test]
    fn the_owner_tag_is_the_accounts_own() {
        let a = DeviceKeys::derive(&RootSecret::from_bytes([1; 32]));
        assert_eq!(a.owner(), DeviceKeys::derive(&RootSecret::from_bytes([1; 32])).owner());
        assert_ne!(a.owner(), DeviceKeys::derive(&RootSecret::from_bytes([2; 32])).owner());
        assert_eq!(a.owner().len(), 2 * OWNER_TAG_LEN);
    }
}
