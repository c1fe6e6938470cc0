//! Space keys, invite tokens and sealed file records (SPEC.md, "Spaces").
//!
//! Every space has a random 32-byte [`SpaceKey`] that only its members hold. An
//! [`InviteToken`] carries the space id, the space key and a random invite secret; the
//! accelerator keeps only [`invite_secret_hash`] and checks the secret a joiner
//! presents against it, so the space key never reaches the accelerator. A file record
//! in a space keeps the file's manifest sealed under a key derived from the space key,
//! bound to the space id and file id ([`seal_file_record`]).

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::b64;
use crate::manifest::MAX_MANIFEST_LEN;
use crate::primitives::{NONCE_LEN, TAG_LEN, hkdf32, open, push_lp, seal};
use crate::proto::storage::FileEntry;
use crate::validate::{self, ValidationError};
use crate::{Coded, ErrorCode};

/// Bytes in a space key.
pub const SPACE_KEY_LEN: usize = 32;
/// Bytes in an invite secret.
pub const INVITE_SECRET_LEN: usize = 32;
/// The invite token format version this SDK writes and reads.
pub const INVITE_VERSION: u8 = 1;
/// What every invite token starts with: `"coffer-invite"`, its version, `':'`.
pub const INVITE_PREFIX: &str = "coffer-invite1:";
/// Longest invite token text: the prefix and base64url of the longest token
/// (a 256-byte space id).
pub const MAX_INVITE_LEN: usize = 512;
/// Domain prefix of the invite secret hash.
pub const LABEL_INVITE_SECRET: &[u8] = b"coffer/v1/invite-secret";
/// HKDF label of the key that seals a space's file records.
pub const LABEL_FILE_RECORD_KEY: &[u8] = b"coffer/v1/space-file-record-key";
/// Domain prefix of a file record's AAD.
pub const LABEL_FILE_RECORD: &[u8] = b"coffer/v1/file-record";
/// First byte of a sealed file record.
pub const FILE_RECORD_VERSION: u8 = 1;
/// HKDF label of the key that seals a space's name.
pub const LABEL_SPACE_NAME_KEY: &[u8] = b"coffer/v1/space-name-key";
/// Domain prefix of a sealed space name's AAD.
pub const LABEL_SPACE_NAME: &[u8] = b"coffer/v1/space-name";
/// First byte of a sealed space name.
pub const SPACE_NAME_VERSION: u8 = 1;
/// Longest space name, in UTF-8 bytes.
pub const MAX_SPACE_NAME_BYTES: usize = 256;

/// Why an invite token or file record could not be made or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SpaceError {
    /// An invite token of a version this SDK does not know.
    #[error("this invite token has format version {0}, which this SDK does not know; update the SDK")]
    UnknownInviteVersion(u32),
    /// Not an invite token: wrong prefix, not base64url, wrong length, bad space id.
    #[error("not a Coffer invite token (expected text starting with \"coffer-invite1:\"); ask for the invite again")]
    BadInvite,
    /// A file record of a version this SDK does not know.
    #[error("this file record has format version {0}, which this SDK does not know; update the SDK")]
    UnknownRecordVersion(u8),
    /// A file record too short or too long to be one.
    #[error("the file record is malformed")]
    BadRecord,
    /// The file record did not authenticate: altered, moved to another space or id,
    /// or sealed under another space key. Deliberately says no more than that.
    #[error("the file record failed authentication (altered, moved, or sealed under another space key)")]
    RecordDecrypt,
    /// A space name over [`MAX_SPACE_NAME_BYTES`].
    #[error("a space name is at most {MAX_SPACE_NAME_BYTES} bytes")]
    NameTooLong,
    /// A sealed space name that is malformed or does not authenticate.
    #[error("the space's name failed authentication (altered, or sealed under another space key)")]
    NameDecrypt,
    /// A manifest longer than any manifest can be.
    #[error("a manifest is at most {MAX_MANIFEST_LEN} characters")]
    ManifestTooLong,
    /// The accelerator answered about another space or file than the one asked for.
    #[error("the accelerator answered with the record of another space or file than the one asked for")]
    OtherRecord,
    /// An invite token whose key differs from the key this account already holds for
    /// the space. The held key is kept: it came from this account's own sealed store.
    #[error(
        "this account already holds a different key for this space; the invite token's key was refused and yours kept (the token was altered, or mixed up)"
    )]
    KeyConflict,
    /// An invite token whose key does not open the space's sealed name: it is not the
    /// space's key.
    #[error(
        "the invite token's key is not this space's key (it does not open the space's name): the token was altered; ask for a new invite"
    )]
    InviteKeyMismatch,
    /// A space id or file id that is not a valid id.
    #[error(transparent)]
    Invalid(#[from] ValidationError),
}

impl Coded for SpaceError {
    /// The stable code for this failure.
    fn code(&self) -> ErrorCode {
        match self {
            SpaceError::UnknownInviteVersion(_) | SpaceError::BadInvite | SpaceError::ManifestTooLong => {
                ErrorCode::InvalidInput
            }
            SpaceError::NameTooLong => ErrorCode::TooLarge,
            SpaceError::NameDecrypt | SpaceError::OtherRecord | SpaceError::InviteKeyMismatch => ErrorCode::Integrity,
            SpaceError::KeyConflict => ErrorCode::Conflict,
            SpaceError::UnknownRecordVersion(_) | SpaceError::BadRecord | SpaceError::RecordDecrypt => {
                ErrorCode::Integrity
            }
            SpaceError::Invalid(e) => e.code(),
        }
    }
}

/// A space's key: 32 random bytes known to its members only.
#[derive(Clone, PartialEq, Eq)]
pub struct SpaceKey(Zeroizing<[u8; SPACE_KEY_LEN]>);

impl SpaceKey {
    /// Takes 32 fresh random bytes (the caller draws them when creating a space),
    /// or a key received in an invite.
    pub fn from_bytes(bytes: [u8; SPACE_KEY_LEN]) -> Self {
        SpaceKey(Zeroizing::new(bytes))
    }

    /// The raw key (to keep it in the member's sealed `$spaces` collection).
    pub fn as_bytes(&self) -> &[u8; SPACE_KEY_LEN] {
        &self.0
    }

    fn file_record_key(&self) -> Zeroizing<[u8; 32]> {
        hkdf32(self.0.as_ref(), LABEL_FILE_RECORD_KEY)
    }

    fn name_key(&self) -> Zeroizing<[u8; 32]> {
        hkdf32(self.0.as_ref(), LABEL_SPACE_NAME_KEY)
    }
}

impl std::fmt::Debug for SpaceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SpaceKey(…)")
    }
}

/// The secret half of an invite: 32 random bytes. The accelerator sees it when the
/// invite is used, and keeps only its hash.
#[derive(Clone, PartialEq, Eq)]
pub struct InviteSecret(Zeroizing<[u8; INVITE_SECRET_LEN]>);

impl InviteSecret {
    /// Takes 32 fresh random bytes.
    pub fn from_bytes(bytes: [u8; INVITE_SECRET_LEN]) -> Self {
        InviteSecret(Zeroizing::new(bytes))
    }

    /// The raw secret (sent to the accelerator when joining).
    pub fn as_bytes(&self) -> &[u8; INVITE_SECRET_LEN] {
        &self.0
    }
}

impl std::fmt::Debug for InviteSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InviteSecret(…)")
    }
}

/// What the accelerator stores for an invite:
/// SHA-256(`"coffer/v1/invite-secret"` ‖ lp(space id) ‖ secret).
pub fn invite_secret_hash(space_id: &str, secret: &InviteSecret) -> [u8; 32] {
    let mut input = LABEL_INVITE_SECRET.to_vec();
    push_lp(&mut input, space_id.as_bytes());
    input.extend_from_slice(secret.as_bytes());
    Sha256::digest(&input).into()
}

/// Checks a presented secret against a stored hash, in constant time (the
/// accelerator's side of joining).
pub fn verify_invite_secret(space_id: &str, secret: &InviteSecret, stored_hash: &[u8; 32]) -> bool {
    invite_secret_hash(space_id, secret).ct_eq(stored_hash).into()
}

/// An invitation to a space: everything a new member needs, in one string.
///
/// Text form: `coffer-invite1:` + base64url(version 1 ‖ lp(space id) ‖ space key ‖
/// invite secret). It holds the space key: share it like a password, over a channel
/// the accelerator does not see (it must never be sent to the accelerator whole).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InviteToken {
    /// The space's id, as the accelerator knows it.
    pub space_id: String,
    /// The space's key.
    pub space_key: SpaceKey,
    /// The secret whose hash the accelerator checks on joining.
    pub secret: InviteSecret,
}

impl InviteToken {
    /// The token's text form. Fails only for an invalid space id.
    pub fn encode(&self) -> Result<Zeroizing<String>, SpaceError> {
        validate::id(&self.space_id)?;
        let mut bytes = Zeroizing::new(vec![INVITE_VERSION]);
        push_lp(&mut bytes, self.space_id.as_bytes());
        bytes.extend_from_slice(self.space_key.as_bytes());
        bytes.extend_from_slice(self.secret.as_bytes());
        Ok(Zeroizing::new(format!("{INVITE_PREFIX}{}", b64::encode(&*bytes))))
    }

    /// Parses a token's text form (surrounding whitespace, as left by copy and paste,
    /// is ignored).
    pub fn parse(text: &str) -> Result<InviteToken, SpaceError> {
        let text = text.trim();
        let rest = text.strip_prefix("coffer-invite").ok_or(SpaceError::BadInvite)?;
        let (digits, payload) = rest.split_once(':').ok_or(SpaceError::BadInvite)?;
        let canonical = matches!(digits.as_bytes(), [b'1'..=b'9', more @ ..] if more.len() < 9 && more.iter().all(u8::is_ascii_digit));
        if !canonical {
            return Err(SpaceError::BadInvite);
        }
        let version: u32 = digits.parse().map_err(|_| SpaceError::BadInvite)?;
        if version != u32::from(INVITE_VERSION) {
            return Err(SpaceError::UnknownInviteVersion(version));
        }
        if text.len() > MAX_INVITE_LEN {
            return Err(SpaceError::BadInvite);
        }
        let bytes = Zeroizing::new(b64::decode(payload).ok_or(SpaceError::BadInvite)?);
        let (&version, rest) = bytes.split_first().ok_or(SpaceError::BadInvite)?;
        if version != INVITE_VERSION || rest.len() < 4 {
            return Err(SpaceError::BadInvite);
        }
        let (len, rest) = rest.split_at(4);
        let id_len = u32::from_be_bytes(len.try_into().expect("split at 4")) as usize;
        if rest.len() != id_len.saturating_add(SPACE_KEY_LEN + INVITE_SECRET_LEN) {
            return Err(SpaceError::BadInvite);
        }
        let (id, rest) = rest.split_at(id_len);
        let (key, secret) = rest.split_at(SPACE_KEY_LEN);
        let space_id = std::str::from_utf8(id).map_err(|_| SpaceError::BadInvite)?;
        validate::id(space_id).map_err(|_| SpaceError::BadInvite)?;
        Ok(InviteToken {
            space_id: space_id.to_owned(),
            space_key: SpaceKey::from_bytes(key.try_into().expect("split at SPACE_KEY_LEN")),
            secret: InviteSecret::from_bytes(secret.try_into().expect("the rest is INVITE_SECRET_LEN")),
        })
    }
}

impl InviteToken {
    /// Refuses a token whose key differs from `held`, the key this account already
    /// holds for the space (if any): a tampered token must not replace a good key.
    pub fn check_held_key(&self, held: Option<&SpaceKey>) -> Result<(), SpaceError> {
        match held {
            Some(held) if !bool::from(held.as_bytes().ct_eq(self.space_key.as_bytes())) => Err(SpaceError::KeyConflict),
            _ => Ok(()),
        }
    }

    /// Proves the token's key is the space's: the space's name is sealed under the
    /// space key, bound to the space id, so only the right key opens it.
    pub fn check_key(&self, sealed_name: &[u8]) -> Result<(), SpaceError> {
        open_space_name(&self.space_key, &self.space_id, sealed_name)
            .map(drop)
            .map_err(|_| SpaceError::InviteKeyMismatch)
    }
}

fn file_record_aad(space_id: &str, file_id: &str) -> Vec<u8> {
    let mut aad = LABEL_FILE_RECORD.to_vec();
    push_lp(&mut aad, space_id.as_bytes());
    push_lp(&mut aad, file_id.as_bytes());
    aad
}

/// Seals a file's manifest for its record in a space:
/// version ‖ nonce ‖ AES-256-GCM(HKDF(space key, "coffer/v1/space-file-record-key"),
/// nonce, AAD = "coffer/v1/file-record" ‖ lp(space id) ‖ lp(file id), manifest).
/// `nonce` must be 12 fresh random bytes: one space key seals many records.
pub fn seal_file_record(
    key: &SpaceKey,
    space_id: &str,
    file_id: &str,
    manifest: &str,
    nonce: [u8; NONCE_LEN],
) -> Result<Vec<u8>, SpaceError> {
    validate::id(space_id)?;
    validate::id(file_id)?;
    if manifest.len() > MAX_MANIFEST_LEN {
        return Err(SpaceError::ManifestTooLong);
    }
    let mut out = Vec::with_capacity(1 + NONCE_LEN + manifest.len() + TAG_LEN);
    out.push(FILE_RECORD_VERSION);
    out.extend_from_slice(&nonce);
    out.extend(seal(&key.file_record_key(), &nonce, &file_record_aad(space_id, file_id), manifest.as_bytes()));
    Ok(out)
}

/// Opens a sealed file record back into its manifest text.
pub fn open_file_record(key: &SpaceKey, space_id: &str, file_id: &str, sealed: &[u8]) -> Result<String, SpaceError> {
    let (&version, rest) = sealed.split_first().ok_or(SpaceError::BadRecord)?;
    if version != FILE_RECORD_VERSION {
        return Err(SpaceError::UnknownRecordVersion(version));
    }
    if rest.len() < NONCE_LEN + TAG_LEN || rest.len() > NONCE_LEN + MAX_MANIFEST_LEN + TAG_LEN {
        return Err(SpaceError::BadRecord);
    }
    let (nonce, body) = rest.split_at(NONCE_LEN);
    let nonce: [u8; NONCE_LEN] = nonce.try_into().expect("split at NONCE_LEN");
    let plain = open(&key.file_record_key(), &nonce, &file_record_aad(space_id, file_id), body)
        .ok_or(SpaceError::RecordDecrypt)?;
    String::from_utf8(plain).map_err(|_| SpaceError::BadRecord)
}

/// Opens the file record the accelerator answered for `space_id`/`file_id` into its
/// manifest text; refuses an entry for any other file ([`SpaceError::OtherRecord`]).
pub fn open_file_entry(key: &SpaceKey, space_id: &str, file_id: &str, entry: &FileEntry) -> Result<String, SpaceError> {
    entry.check_is(space_id, file_id)?;
    let sealed = b64::decode(&entry.sealed_record).ok_or(SpaceError::BadRecord)?;
    open_file_record(key, space_id, file_id, &sealed)
}

fn space_name_aad(space_id: &str) -> Vec<u8> {
    let mut aad = LABEL_SPACE_NAME.to_vec();
    push_lp(&mut aad, space_id.as_bytes());
    aad
}

/// Seals a space's name, which members see and the accelerator does not:
/// version ‖ nonce ‖ AES-256-GCM(HKDF(space key, "coffer/v1/space-name-key"), nonce,
/// AAD = "coffer/v1/space-name" ‖ lp(space id), name). `nonce`: 12 fresh random bytes.
pub fn seal_space_name(
    key: &SpaceKey,
    space_id: &str,
    name: &str,
    nonce: [u8; NONCE_LEN],
) -> Result<Vec<u8>, SpaceError> {
    validate::id(space_id)?;
    if name.len() > MAX_SPACE_NAME_BYTES {
        return Err(SpaceError::NameTooLong);
    }
    let mut out = Vec::with_capacity(1 + NONCE_LEN + name.len() + TAG_LEN);
    out.push(SPACE_NAME_VERSION);
    out.extend_from_slice(&nonce);
    out.extend(seal(&key.name_key(), &nonce, &space_name_aad(space_id), name.as_bytes()));
    Ok(out)
}

/// Opens a sealed space name.
pub fn open_space_name(key: &SpaceKey, space_id: &str, sealed: &[u8]) -> Result<String, SpaceError> {
    let (&version, rest) = sealed.split_first().ok_or(SpaceError::NameDecrypt)?;
    if version != SPACE_NAME_VERSION || rest.len() < NONCE_LEN + TAG_LEN {
        return Err(SpaceError::NameDecrypt);
    }
    let (nonce, body) = rest.split_at(NONCE_LEN);
    let nonce: [u8; NONCE_LEN] = nonce.try_into().expect("split at NONCE_LEN");
    let plain = open(&key.name_key(), &nonce, &space_name_aad(space_id), body).ok_or(SpaceError::NameDecrypt)?;
    String::from_utf8(plain).map_err(|_| SpaceError::NameDecrypt)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn space_name_round_trip_and_binding() {
        let key = SpaceKey::from_bytes([7; 32]);
        let sealed = seal_space_name(&key, "s1", "Holiday photos", [1; 12]).unwrap();
        assert_eq!(open_space_name(&key, "s1", &sealed).unwrap(), "Holiday photos");
        assert_eq!(open_space_name(&key, "s2", &sealed), Err(SpaceError::NameDecrypt));
        assert_eq!(open_space_name(&SpaceKey::from_bytes([8; 32]), "s1", &sealed), Err(SpaceError::NameDecrypt));
        let long = "x".repeat(MAX_SPACE_NAME_BYTES + 1);
        assert_eq!(seal_space_name(&key, "s1", &long, [1; 12]), Err(SpaceError::NameTooLong));
    }

    fn token() -> InviteToken {
        InviteToken {
            space_id: "spc_1".into(),
            space_key: SpaceKey::from_bytes([1; 32]),
            secret: InviteSecret::from_bytes([2; 32]),
        }
    }

    #[test]
    fn invite_round_trip() {
        let text = token().encode().unwrap();
        assert!(text.starts_with(INVITE_PREFIX));
        assert_eq!(InviteToken::parse(&text).unwrap(), token());
        assert_eq!(InviteToken::parse(&format!("  {}\n", *text)).unwrap(), token());
        let long = InviteToken { space_id: "x".repeat(validate::MAX_NAME_BYTES), ..token() };
        assert!(long.encode().unwrap().len() <= MAX_INVITE_LEN);
        let bad_id = InviteToken { space_id: String::new(), ..token() };
        assert_eq!(bad_id.encode().unwrap_err().code(), ErrorCode::InvalidInput);
    }

    #[test]
    fn bad_invites() {
        let text = token().encode().unwrap();
        let payload = &text[INVITE_PREFIX.len()..];
        let bytes = b64::decode(payload).unwrap();
        let reencode = |b: &[u8]| format!("{INVITE_PREFIX}{}", b64::encode(b));
        assert_eq!(InviteToken::parse(&format!("coffer-invite2:{payload}")), Err(SpaceError::UnknownInviteVersion(2)));
        for bad in [
            format!("coffer-invite:{payload}"),
            format!("coffer-invite01:{payload}"),
            format!("coffer1:{payload}"),
            format!("{}=", *text),
            text[..text.len() - 2].to_owned(),
            reencode(&[&bytes[..], &[0]].concat()),
            reencode(&[&[2u8][..], &bytes[1..]].concat()),
            reencode(&[1, 0xff, 0xff, 0xff, 0xff]),
            reencode(&[1, 0, 0, 0, 0]),
            reencode(&[]),
            format!("{INVITE_PREFIX}{}", "A".repeat(600)),
            String::new(),
        ] {
            assert_eq!(InviteToken::parse(&bad), Err(SpaceError::BadInvite), "{bad}");
        }
    }

    #[test]
    fn invite_secret_hash_binds_the_space() {
        let t = token();
        let hash = invite_secret_hash(&t.space_id, &t.secret);
        assert!(verify_invite_secret("spc_1", &t.secret, &hash));
        assert!(!verify_invite_secret("spc_2", &t.secret, &hash));
        assert!(!verify_invite_secret("spc_1", &InviteSecret::from_bytes([3; 32]), &hash));
    }

    #[test]
    fn file_record_round_trip_and_binding() {
        let key = SpaceKey::from_bytes([7; 32]);
        let sealed = seal_file_record(&key, "spc_1", "f1", "coffer1:abc", [4; 12]).unwrap();
        assert_eq!(open_file_record(&key, "spc_1", "f1", &sealed).unwrap(), "coffer1:abc");
        assert_eq!(open_file_record(&key, "spc_2", "f1", &sealed), Err(SpaceError::RecordDecrypt));
        assert_eq!(open_file_record(&key, "spc_1", "f2", &sealed), Err(SpaceError::RecordDecrypt));
        let other = SpaceKey::from_bytes([8; 32]);
        assert_eq!(open_file_record(&other, "spc_1", "f1", &sealed), Err(SpaceError::RecordDecrypt));
        let mut v2 = sealed.clone();
        v2[0] = 2;
        assert_eq!(open_file_record(&key, "spc_1", "f1", &v2), Err(SpaceError::UnknownRecordVersion(2)));
        assert_eq!(open_file_record(&key, "spc_1", "f1", &sealed[..20]), Err(SpaceError::BadRecord));
        assert_eq!(open_file_record(&key, "spc_1", "f1", &[]), Err(SpaceError::BadRecord));
        let long = "x".repeat(MAX_MANIFEST_LEN + 1);
        assert_eq!(seal_file_record(&key, "spc_1", "f1", &long, [0; 12]), Err(SpaceError::ManifestTooLong));
        assert!(matches!(seal_file_record(&key, "", "f1", "m", [0; 12]), Err(SpaceError::Invalid(_))));
    }

    #[test]
    fn an_invite_key_must_open_the_space_name_and_never_replaces_a_held_key() {
        let t = token();
        let sealed = seal_space_name(&t.space_key, &t.space_id, "Team", [5; 12]).unwrap();
        t.check_key(&sealed).unwrap();
        t.check_held_key(None).unwrap();
        t.check_held_key(Some(&t.space_key)).unwrap();
        let tampered = InviteToken { space_key: SpaceKey::from_bytes([9; 32]), ..t.clone() };
        assert_eq!(tampered.check_key(&sealed), Err(SpaceError::InviteKeyMismatch));
        assert_eq!(tampered.check_key(&sealed).unwrap_err().code(), ErrorCode::Integrity);
        assert_eq!(tampered.check_held_key(Some(&t.space_key)), Err(SpaceError::KeyConflict));
        assert_eq!(SpaceError::KeyConflict.code(), ErrorCode::Conflict);
        let other_space = seal_space_name(&t.space_key, "spc_2", "Team", [5; 12]).unwrap();
        assert_eq!(t.check_key(&other_space), Err(SpaceError::InviteKeyMismatch), "bound to the space id");
        assert_eq!(t.check_key(b"garbage"), Err(SpaceError::InviteKeyMismatch));
    }

    #[test]
    fn a_file_entry_opens_only_for_the_file_asked_for() {
        let key = SpaceKey::from_bytes([7; 32]);
        let entry = |space_id: &str, file_id: &str, record: &[u8]| FileEntry {
            space_id: space_id.into(),
            file_id: file_id.into(),
            sealed_record: b64::encode(record),
            stored_bytes: 1,
            created_by: "u".into(),
            created_at_ms: 1,
            epoch: 0,
        };
        let a = seal_file_record(&key, "s", "a", "coffer1:a", [1; 12]).unwrap();
        let b = seal_file_record(&key, "s", "b", "coffer1:b", [2; 12]).unwrap();
        assert_eq!(open_file_entry(&key, "s", "a", &entry("s", "a", &a)).unwrap(), "coffer1:a");
        // Another file's whole entry, or its record under the asked ids: both refused.
        assert_eq!(open_file_entry(&key, "s", "a", &entry("s", "b", &b)), Err(SpaceError::OtherRecord));
        assert_eq!(open_file_entry(&key, "s", "a", &entry("t", "a", &a)), Err(SpaceError::OtherRecord));
        assert_eq!(open_file_entry(&key, "s", "a", &entry("s", "a", &b)), Err(SpaceError::RecordDecrypt));
        assert_eq!(SpaceError::OtherRecord.code(), ErrorCode::Integrity);
        let mut bad = entry("s", "a", &a);
        bad.sealed_record = "not base64!".into();
        assert_eq!(open_file_entry(&key, "s", "a", &bad), Err(SpaceError::BadRecord));
    }
}
