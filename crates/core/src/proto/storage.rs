//! Wire types of shards, spaces and files (`client.storage`, `client.space`).
//!
//! | route | body | answer |
//! |---|---|---|
//! | `PUT /v1/shards/{address}` | the shard's bytes (`application/octet-stream`) | 204; `Integrity` if the bytes do not hash to `address` |
//! | `GET /v1/shards/{address}` | — | the shard's bytes; open to anyone (ciphertext) |
//! | `POST /v1/shards/missing` | [`ShardsRequest`] | [`ShardsMissingResponse`] |
//! | `POST /v1/shards/fetch` | [`ShardsRequest`] | a [batch of shards](#batch-fetch) |
//! | `POST /v1/spaces` | [`CreateSpaceRequest`] | [`SpaceInfo`] |
//! | `GET /v1/spaces` | — | [`SpaceListResponse`] (the caller's spaces) |
//! | `POST /v1/spaces/{space}/invites` | [`CreateInviteRequest`] | [`InviteInfo`] (owner only) |
//! | `POST /v1/spaces/join` | [`JoinSpaceRequest`] | [`SpaceInfo`] |
//! | `GET /v1/spaces/{space}/members` | — | [`MembersResponse`] (members only) |
//! | `POST /v1/spaces/{space}/leave` | — | 204 |
//! | `POST /v1/spaces/{space}/members/remove` | [`RemoveMemberRequest`] | 204 (owner only); a rotation is due |
//! | `POST /v1/spaces/{space}/roster` | [`RosterEntryRequest`] | 204 (members; SPEC.md F.12) |
//! | `GET /v1/spaces/{space}/keys?after=` | — | [`SpaceKeysResponse`] (members) |
//! | `POST /v1/spaces/{space}/rotate` | [`RotateRequest`] | [`SpaceInfo`] (members) |
//! | `GET /v1/spaces/{space}/usage` | — | [`UsageResponse`] (members only) |
//! | `POST /v1/spaces/{space}/files` | [`CommitFileRequest`] | [`FileEntry`] (writers and owners) |
//! | `GET /v1/spaces/{space}/files` | — | [`FileListResponse`] (members only) |
//! | `GET /v1/spaces/{space}/files/{file}` | — | [`FileEntry`] (members only) |
//! | `DELETE /v1/spaces/{space}/files/{file}` | — | [`DeleteFileResponse`] (writers and owners) |
//!
//! Every route but the open shard `GET` and `fetch` needs a session. Ids in paths
//! are base64url, so they need no escaping.
//!
//! # Batch fetch
//!
//! `POST /v1/shards/fetch` answers `application/octet-stream`: for each requested
//! address, in order, a 4-byte big-endian length followed by that many bytes, or the
//! length [`SHARD_ABSENT`] and nothing when the accelerator does not have it. The
//! reader knows every shard's length from the manifest and reads the answer with a
//! [`ShardBatchDecoder`], which refuses a longer length prefix before reading on.

use serde::{Deserialize, Serialize};

use crate::shard::ShardAddress;
use crate::space::SpaceError;
use crate::{Coded, ErrorCode};

/// The largest shard a `PUT` accepts: the largest chunk (16 MiB) sealed (+16-byte
/// tag) in one data shard, with room to spare.
pub const MAX_SHARD_BYTES: usize = 16 * 1024 * 1024 + 1024;
/// Most addresses in one `missing` or `fetch` request.
pub const MAX_BATCH_ADDRESSES: usize = 256;
/// Most shard addresses one file commit may list.
pub const MAX_FILE_SHARDS: usize = 1 << 20;
/// The batch-fetch length that marks a shard the accelerator does not have.
pub const SHARD_ABSENT: u32 = u32::MAX;
/// Bytes of a space id or file id before base64url (they are 22 characters).
pub const ID_BYTES: usize = 16;

/// Whether `text` is a space or file id: [`ID_BYTES`] bytes in base64url (22
/// characters). The SDK checks before sending; the accelerator checks again.
pub fn is_id(text: &str) -> bool {
    text.len() <= 64 && crate::b64::decode_array::<ID_BYTES>(text).is_some()
}

/// A member's rights in a space.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Role {
    /// Reads files and lists members.
    Reader,
    /// Also writes and deletes files.
    Writer,
    /// Also invites, removes members; a space always keeps at least one owner.
    Owner,
}

/// Names shards.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShardsRequest {
    /// At most [`MAX_BATCH_ADDRESSES`].
    pub addresses: Vec<ShardAddress>,
}

/// Which of the named shards the accelerator lacks, so a writer uploads only those.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShardsMissingResponse {
    /// The requested addresses it does not have, in request order.
    pub missing: Vec<ShardAddress>,
    /// How long from now the caller's own uncommitted uploads among the rest stay
    /// held (the accelerator's grace period, which this request moved on): a
    /// resumable upload's plan expires with it.
    pub grace_ms: u64,
}

/// Creates a space. The client draws the id (so it can record the space key in its
/// sealed `$spaces` collection before the space exists) and seals the name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateSpaceRequest {
    /// 16 random bytes, base64url.
    pub space_id: String,
    /// The name sealed under the space key (SPEC.md, "Sealed space name"), base64url.
    pub sealed_name: String,
    /// The creator's roster entry: the MAC of their user id and public key under the
    /// space key (SPEC.md F.12), 32 bytes, base64url.
    pub roster_mac: String,
}

/// A space as the caller sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SpaceInfo {
    /// The space's id.
    pub space_id: String,
    /// The sealed name, for members to open.
    pub sealed_name: String,
    /// The caller's role.
    pub role: Role,
    /// When the space was created, ms since the Unix epoch.
    pub created_at_ms: u64,
    /// The space's key epoch (F.12): 0 until its key is first rotated. The sealed
    /// name is under this epoch's key.
    #[serde(default)]
    pub epoch: u32,
    /// A member left or was removed and the key has not been rotated since: no file
    /// may be committed and no invite made until a member rotates it.
    #[serde(default)]
    pub rotation_due: bool,
    /// Whether the caller has a roster entry (F.12). A member from before rosters
    /// enters itself; one left out of a rotation holds no key for this epoch.
    #[serde(default)]
    pub in_roster: bool,
}

impl SpaceInfo {
    /// Refuses an answer about another space than the one asked for.
    pub fn check_is(&self, space_id: &str) -> Result<(), SpaceError> {
        if self.space_id == space_id { Ok(()) } else { Err(SpaceError::OtherRecord) }
    }
}

/// The caller's spaces. The SDK reads `SpaceListResponse<Listed<SpaceInfo>>`
/// ([`Listed`](super::answer::Listed)), so one malformed space cannot hide the others.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SpaceListResponse<E = SpaceInfo> {
    /// Oldest first.
    pub spaces: Vec<E>,
    /// Where the next page starts (its `after`); `null` on the last page.
    #[serde(default)]
    pub next: Option<String>,
}

/// Registers an invite: only the hash of its secret reaches the accelerator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateInviteRequest {
    /// `space::invite_secret_hash`, 32 bytes, base64url.
    pub secret_hash: String,
    /// The role joiners get (`reader` or `writer`; not `owner`).
    pub role: Role,
    /// Lifetime from now; `None` for the default (7 days).
    pub expires_in_ms: Option<u64>,
    /// How many joins it allows; `None` for the default (1).
    pub max_uses: Option<u32>,
    /// The key epoch the token carries; anything but the space's current epoch (or
    /// a rotation due) is `Conflict`, so no token hands out a key already replaced.
    #[serde(default)]
    pub epoch: u32,
}

/// A registered invite.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InviteInfo {
    /// The role joiners get.
    pub role: Role,
    /// When it stops working, ms since the Unix epoch.
    pub expires_at_ms: u64,
    /// Joins allowed in all.
    pub max_uses: u32,
}

/// Joins a space with the secret from an invite token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JoinSpaceRequest {
    /// From the token.
    pub space_id: String,
    /// The invite secret from the token, 32 bytes, base64url.
    pub secret: String,
    /// The joiner's roster entry: the MAC of their user id and public key under the
    /// token's space key (F.12), 32 bytes, base64url.
    pub roster_mac: String,
}

/// A member of a space.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Member {
    /// Account id.
    pub user_id: String,
    /// Account username.
    pub username: String,
    /// Role in this space.
    pub role: Role,
    /// When they joined, ms since the Unix epoch.
    pub joined_at_ms: u64,
    /// Their account's X25519 public key, base64url; `null` if never published.
    #[serde(default)]
    pub public_key: Option<String>,
    /// Their roster entry's MAC under the current epoch's key, base64url; `null` for
    /// a member who has none (F.12).
    #[serde(default)]
    pub roster_mac: Option<String>,
}

/// The members of a space (read by the SDK as `MembersResponse<Listed<Member>>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MembersResponse<E = Member> {
    /// In joining order.
    pub members: Vec<E>,
    /// Where the next page starts (its `after`); `null` on the last page.
    #[serde(default)]
    pub next: Option<String>,
}

/// Removes a member (owners only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RemoveMemberRequest {
    /// The member's account id.
    pub user_id: String,
}

/// Enters the caller in a space's roster (`POST /v1/spaces/{space}/roster`): a member
/// from before rosters, or one who joined again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RosterEntryRequest {
    /// The epoch whose key made the MAC; anything but the current one is `Conflict`.
    pub epoch: u32,
    /// The MAC of the caller's user id and public key (F.12), base64url.
    pub roster_mac: String,
}

/// `GET /v1/spaces/{space}/keys?after=E`: where the space's keys stand, for a member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SpaceKeysResponse {
    /// The current epoch.
    pub epoch: u32,
    /// Whether a rotation is due (see [`SpaceInfo::rotation_due`]).
    pub rotation_due: bool,
    /// The space's name sealed under the current epoch's key (as in [`SpaceInfo`]):
    /// a rotator seals it again under the new key.
    pub sealed_name: String,
    /// Whether the caller has a roster entry (see [`SpaceInfo::in_roster`]).
    #[serde(default)]
    pub in_roster: bool,
    /// The current epoch's key sealed to the caller (F.12); `null` at epoch 0, and for
    /// a member the last rotation left out.
    #[serde(default)]
    pub sealed_key: Option<String>,
    /// The links of the epochs after `after` (0 if not given), oldest first, at most
    /// [`MAX_LINKS_PER_ANSWER`]; ask again after the last for more.
    pub links: Vec<EpochLink>,
}

/// Most links in one [`SpaceKeysResponse`].
pub const MAX_LINKS_PER_ANSWER: usize = 1000;

/// One epoch's link: the previous epoch's key sealed under this one's (F.12).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EpochLink {
    /// The epoch (≥ 1).
    pub epoch: u32,
    /// Epoch `epoch − 1`'s key sealed under this epoch's, base64url.
    pub sealed_previous: String,
}

/// The query of `GET /v1/spaces/{space}/keys`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SpaceKeysQuery {
    /// Only links of epochs after this one.
    #[serde(default)]
    pub after: Option<u32>,
}

/// Rotates a space's key (`POST /v1/spaces/{space}/rotate`, writers and owners, only
/// while a rotation is due): epoch `epoch` must be the current one plus one, and
/// `members` must be exactly the members with a roster entry; otherwise `Conflict`
/// (ask again and redo).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RotateRequest {
    /// The new epoch.
    pub epoch: u32,
    /// The space's name sealed under the new key, base64url.
    pub sealed_name: String,
    /// The previous key sealed under the new one: the epoch's link, base64url.
    pub sealed_previous: String,
    /// The new key for each member, with their roster entry made again under it.
    pub members: Vec<RotatedMember>,
}

/// One member's share of a rotation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RotatedMember {
    /// The member's account id.
    pub user_id: String,
    /// The new key sealed to their public key (F.12), base64url.
    pub sealed_key: String,
    /// Their roster entry's MAC under the new key, base64url.
    pub roster_mac: String,
}

/// A space's metered bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UsageResponse {
    /// Bytes of shards (data and parity) its committed files hold.
    pub used_bytes: u64,
    /// Its quota.
    pub quota_bytes: u64,
}

/// Makes a file visible in a space. Every listed shard must already be stored; the
/// accelerator meters the sum of their sizes against the space's quota.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommitFileRequest {
    /// 16 random bytes, base64url, drawn by the writer (bound into the record's AAD).
    pub file_id: String,
    /// The manifest sealed under the space key (SPEC.md, "Sealed file record"), base64url.
    pub sealed_record: String,
    /// Every shard the file needs, data and parity, chunk table included.
    pub shards: Vec<ShardAddress>,
    /// The file's size in bytes as written. With the parameters below it bounds the
    /// shards the commit may list and their bytes (`FileParams::shard_bound`, SPEC.md
    /// F.5), so a file cannot pin more than its size needs.
    pub size: u64,
    /// Plaintext bytes per chunk (F.1).
    pub chunk_size: u32,
    /// Data shards per chunk (F.1).
    pub data_shards: u8,
    /// Parity shards per chunk (F.1).
    pub parity_shards: u8,
    /// The key epoch the record is sealed under; anything but the space's current
    /// epoch (or a rotation due) is `Conflict` (F.12).
    #[serde(default)]
    pub epoch: u32,
}

impl CommitFileRequest {
    /// The declared parameters, checked.
    pub fn params(&self) -> Result<crate::manifest::FileParams, crate::manifest::ManifestError> {
        let params = crate::manifest::FileParams {
            chunk_size: self.chunk_size,
            data_shards: self.data_shards,
            parity_shards: self.parity_shards,
        };
        params.check().map(|()| params)
    }
}

/// A committed file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileEntry {
    /// The space it is in.
    pub space_id: String,
    /// Its id in the space.
    pub file_id: String,
    /// The sealed manifest.
    pub sealed_record: String,
    /// Bytes of shards it holds (metered).
    pub stored_bytes: u64,
    /// Who committed it.
    pub created_by: String,
    /// When, ms since the Unix epoch.
    pub created_at_ms: u64,
    /// The key epoch its record is sealed under (F.12).
    #[serde(default)]
    pub epoch: u32,
}

impl FileEntry {
    /// Refuses an entry for another file than the one asked for. The sealed record's
    /// AAD binds its space and file id, but only to the ids it is opened with, so the
    /// reader opens it with the ids it asked for and also checks the ids the entry
    /// claims, which it reports.
    pub fn check_is(&self, space_id: &str, file_id: &str) -> Result<(), SpaceError> {
        if self.space_id == space_id && self.file_id == file_id { Ok(()) } else { Err(SpaceError::OtherRecord) }
    }
}

/// The files of a space (read by the SDK as `FileListResponse<Listed<FileEntry>>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileListResponse<E = FileEntry> {
    /// Oldest first.
    pub files: Vec<E>,
    /// Where the next page starts (its `after`); `null` on the last page.
    #[serde(default)]
    pub next: Option<String>,
}

/// The answer to a file delete.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeleteFileResponse {
    /// Whether the file existed.
    pub existed: bool,
}

/// Writes a batch-fetch answer: for each shard, its length and bytes, or
/// [`SHARD_ABSENT`] (the accelerator's side).
pub fn encode_shard_batch<'a>(shards: impl IntoIterator<Item = Option<&'a [u8]>>) -> Vec<u8> {
    let mut out = Vec::new();
    for shard in shards {
        match shard {
            Some(bytes) => {
                let len = u32::try_from(bytes.len()).expect("shards are below MAX_SHARD_BYTES");
                out.extend_from_slice(&len.to_be_bytes());
                out.extend_from_slice(bytes);
            }
            None => out.extend_from_slice(&SHARD_ABSENT.to_be_bytes()),
        }
    }
    out
}

/// Why a batch-fetch answer was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BatchError {
    /// A length prefix larger than this chunk's shards are: nothing of it is read or
    /// allocated, whatever it claims (up to 4 GiB).
    #[error(
        "the accelerator announced shard {index} of a batch as {declared} bytes, but this file's shards there are {expected} bytes; nothing more was read"
    )]
    LongShard {
        /// Position of the shard in the batch.
        index: usize,
        /// The length the accelerator announced.
        declared: u32,
        /// The length every shard of this chunk has.
        expected: usize,
    },
    /// Bytes after the last requested shard.
    #[error("the accelerator sent more bytes than the {count} shards asked for")]
    TrailingBytes {
        /// Shards asked for.
        count: usize,
    },
    /// The answer ended before every requested shard was framed.
    #[error("the accelerator's batch of shards ended early")]
    CutShort,
}

impl Coded for BatchError {
    /// The stable code: `Integrity` when the accelerator sent what no valid answer
    /// holds; `Network` for an answer cut short (a dropped connection looks like
    /// that, and a retry may help).
    fn code(&self) -> ErrorCode {
        match self {
            BatchError::LongShard { .. } | BatchError::TrailingBytes { .. } => ErrorCode::Integrity,
            BatchError::CutShort => ErrorCode::Network,
        }
    }
}

/// Reads a batch-fetch answer as it arrives, for `count` shards that are each
/// `shard_len` bytes long (every shard of a chunk is: [`crate::erasure::shard_len`] of
/// the chunk's sealed length and `k`).
///
/// The expected lengths come from the manifest, so the answer is checked against them
/// before anything is allocated: a length prefix over `shard_len` is refused at once
/// ([`BatchError::LongShard`]), and so is any byte after the last frame. A shorter
/// shard is kept: it is simply a bad shard, which erasure decoding treats as missing.
/// At most [`ShardBatchDecoder::max_len`] bytes are ever accepted. The shards land back
/// to back in one buffer ([`ShardBatch`]), so whole data shards are already the
/// sealed chunk, joined.
#[derive(Debug)]
pub struct ShardBatchDecoder {
    count: usize,
    shard_len: usize,
    /// Bytes accepted so far.
    taken: usize,
    /// The shards read so far, shard `i` at `i × shard_len`.
    batch: ShardBatch,
    /// The length prefix being read and how many of its bytes arrived.
    prefix: ([u8; 4], usize),
    /// The shard being read: bytes arrived, and its announced length (already checked).
    body: Option<(usize, usize)>,
}

/// The shards of a batch answer, in request order, back to back in one buffer:
/// shard `i` starts at `i × shard_len` (a short shard is followed by zeros).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardBatch {
    bytes: Vec<u8>,
    shard_len: usize,
    /// Each shard's length as it arrived; `None` when it was absent.
    lens: Vec<Option<usize>>,
}

impl ShardBatch {
    /// Shard `i` as it arrived; `None` if absent.
    pub fn shard(&self, i: usize) -> Option<&[u8]> {
        let len = (*self.lens.get(i)?)?;
        Some(&self.bytes[i * self.shard_len..i * self.shard_len + len])
    }

    /// Every shard, copied out one by one (for erasure decoding).
    pub fn into_shards(self) -> Vec<Option<Vec<u8>>> {
        (0..self.lens.len()).map(|i| self.shard(i).map(<[u8]>::to_vec)).collect()
    }

    /// The sealed chunk of `len` bytes these shards are the data shards of, without a
    /// copy — when every one of them is whole and matches its address (in
    /// `addresses`, one per shard). Otherwise the batch comes back, to be rebuilt.
    pub fn into_sealed(mut self, addresses: &[ShardAddress], len: usize) -> Result<Vec<u8>, ShardBatch> {
        let whole = self.lens.len() == addresses.len()
            && self.lens.len() * self.shard_len >= len
            && (0..self.lens.len()).all(|i| {
                self.lens[i] == Some(self.shard_len) && self.shard(i).is_some_and(|s| addresses[i].matches(s))
            });
        if !whole {
            return Err(self);
        }
        self.bytes.truncate(len);
        Ok(self.bytes)
    }
}

impl ShardBatchDecoder {
    /// A decoder for `count` shards of `shard_len` bytes.
    pub fn new(count: usize, shard_len: usize) -> Self {
        ShardBatchDecoder {
            count,
            shard_len,
            taken: 0,
            batch: ShardBatch {
                bytes: Vec::new(),
                shard_len,
                lens: Vec::with_capacity(count.min(MAX_BATCH_ADDRESSES)),
            },
            prefix: ([0; 4], 0),
            body: None,
        }
    }

    /// The longest valid answer: every shard present.
    pub fn max_len(&self) -> usize {
        self.count.saturating_mul(4 + self.shard_len)
    }

    /// Bytes a valid answer may still hold.
    pub fn room(&self) -> usize {
        self.max_len() - self.taken
    }

    /// Takes the next bytes of the answer, refusing them as soon as they cannot be
    /// part of a valid one.
    pub fn push(&mut self, bytes: &[u8]) -> Result<(), BatchError> {
        self.push_from(bytes.len(), |at, into| into.copy_from_slice(&bytes[at..at + into.len()]))
    }

    /// Takes the next `len` bytes of the answer straight from where they arrived:
    /// `fill(at, into)` copies arrived bytes `at..at + into.len()` into `into`, which
    /// is their place in the batch (or in a length prefix). Refuses them as soon as
    /// they cannot be part of a valid answer, before the bytes past that point are
    /// copied anywhere.
    pub fn push_from(&mut self, len: usize, mut fill: impl FnMut(usize, &mut [u8])) -> Result<(), BatchError> {
        let mut at = 0;
        while at < len {
            let left = len - at;
            let used = match self.body.take() {
                Some((have, shard)) => self.take_body(have, shard, left, |into| fill(at, into)),
                None => self.take_prefix(left, |into| fill(at, into))?,
            };
            self.taken += used;
            at += used;
        }
        Ok(())
    }

    /// Every shard, once the answer has ended.
    pub fn finish(self) -> Result<Vec<Option<Vec<u8>>>, BatchError> {
        self.finish_batch().map(ShardBatch::into_shards)
    }

    /// Every shard, in one buffer, once the answer has ended.
    pub fn finish_batch(self) -> Result<ShardBatch, BatchError> {
        let complete = self.batch.lens.len() == self.count && self.body.is_none() && self.prefix.1 == 0;
        if complete { Ok(self.batch) } else { Err(BatchError::CutShort) }
    }

    fn take_body(&mut self, have: usize, len: usize, left: usize, fill: impl FnOnce(&mut [u8])) -> usize {
        let used = (len - have).min(left);
        let start = self.batch.lens.len() * self.shard_len + have;
        fill(&mut self.batch.bytes[start..start + used]);
        if have + used == len {
            self.batch.lens.push(Some(len));
        } else {
            self.body = Some((have + used, len));
        }
        used
    }

    fn take_prefix(&mut self, left: usize, fill: impl FnOnce(&mut [u8])) -> Result<usize, BatchError> {
        if self.batch.lens.len() == self.count {
            return Err(BatchError::TrailingBytes { count: self.count });
        }
        let (prefix, have) = &mut self.prefix;
        let used = (4 - *have).min(left);
        fill(&mut prefix[*have..*have + used]);
        *have += used;
        if *have == 4 {
            let declared = u32::from_be_bytes(*prefix);
            self.prefix = ([0; 4], 0);
            self.start_frame(declared)?;
        }
        Ok(used)
    }

    fn start_frame(&mut self, declared: u32) -> Result<(), BatchError> {
        let index = self.batch.lens.len();
        if declared == SHARD_ABSENT {
            self.batch.lens.push(None);
            return Ok(());
        }
        let len = declared as usize;
        if len > self.shard_len {
            return Err(BatchError::LongShard { index, declared, expected: self.shard_len });
        }
        // Room for every shard at the first one, so the buffer never moves (no copy
        // on growth); its size is the manifest's, never the answer's. Then checked
        // above: at most one more shard's worth.
        if self.batch.bytes.capacity() == 0 {
            self.batch.bytes.reserve_exact(self.count.saturating_mul(self.shard_len));
        }
        self.batch.bytes.resize((index + 1) * self.shard_len, 0);
        if len == 0 {
            self.batch.lens.push(Some(0));
        } else {
            self.body = Some((0, len));
        }
        Ok(())
    }
}

/// Reads a whole batch-fetch answer for `count` shards of `shard_len` bytes (see
/// [`ShardBatchDecoder`], which reads one as it arrives).
pub fn decode_shard_batch(bytes: &[u8], count: usize, shard_len: usize) -> Result<Vec<Option<Vec<u8>>>, BatchError> {
    let mut decoder = ShardBatchDecoder::new(count, shard_len);
    decoder.push(bytes)?;
    decoder.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_batches_round_trip_and_refuse_damage() {
        let (a, b) = (vec![1u8, 2, 3], vec![4u8, 5]);
        let batch = encode_shard_batch([Some(&a[..]), None, Some(&b[..])]);
        assert_eq!(decode_shard_batch(&batch, 3, 3), Ok(vec![Some(a.clone()), None, Some(b.clone())]), "short kept");
        assert_eq!(decode_shard_batch(&batch, 2, 3), Err(BatchError::TrailingBytes { count: 2 }));
        assert_eq!(decode_shard_batch(&batch, 4, 3), Err(BatchError::CutShort));
        assert_eq!(decode_shard_batch(&batch[..5], 1, 3), Err(BatchError::CutShort), "shard cut short");
        assert_eq!(decode_shard_batch(&u32::MAX.to_be_bytes()[..3], 1, 3), Err(BatchError::CutShort));
        let long = BatchError::LongShard { index: 0, declared: 3, expected: 2 };
        assert_eq!(decode_shard_batch(&batch, 3, 2), Err(long));
        assert_eq!(decode_shard_batch(&encode_shard_batch([Some(&[][..])]), 1, 3), Ok(vec![Some(vec![])]));
    }

    #[test]
    fn a_huge_length_prefix_is_refused_before_anything_is_allocated() {
        let mut decoder = ShardBatchDecoder::new(4, 1_048_592);
        let err = decoder.push(&(u32::MAX - 1).to_be_bytes()).unwrap_err();
        assert_eq!(err, BatchError::LongShard { index: 0, declared: u32::MAX - 1, expected: 1_048_592 });
        assert_eq!(err.code(), ErrorCode::Integrity);
        assert_eq!(decoder.max_len(), 4 * (4 + 1_048_592));
    }

    #[test]
    fn chunks_may_split_anywhere_and_the_room_shrinks_to_zero() {
        let shards: Vec<Vec<u8>> = (0..5u8).map(|i| vec![i; 7]).collect();
        let batch = encode_shard_batch(shards.iter().enumerate().map(|(i, s)| (i != 2).then_some(&s[..])));
        let want: Vec<_> = shards.iter().enumerate().map(|(i, s)| (i != 2).then(|| s.clone())).collect();
        for step in 1..=batch.len() {
            let mut decoder = ShardBatchDecoder::new(5, 7);
            for piece in batch.chunks(step) {
                decoder.push(piece).unwrap();
            }
            assert_eq!(decoder.room(), decoder.max_len() - batch.len());
            assert_eq!(decoder.finish().unwrap(), want, "pieces of {step}");
        }
        let mut full = ShardBatchDecoder::new(1, 2);
        full.push(&encode_shard_batch([Some(&[9, 9][..])])).unwrap();
        assert_eq!(full.room(), 0);
        assert_eq!(full.push(&[0]), Err(BatchError::TrailingBytes { count: 1 }));
    }

    #[test]
    fn push_from_copies_nothing_past_the_point_of_refusal() {
        // Counts the bytes `fill` is asked for, out of an answer that arrives whole.
        let copied_of = |answer: &[u8], count: usize, shard_len: usize| {
            let mut decoder = ShardBatchDecoder::new(count, shard_len);
            let mut copied = 0;
            let result = decoder.push_from(answer.len(), |at, into| {
                into.copy_from_slice(&answer[at..at + into.len()]);
                copied += into.len();
            });
            (result, copied)
        };
        let shard = vec![7u8; 1000];
        let mut answer = encode_shard_batch([Some(&shard[..])]);
        let valid = answer.len();
        answer.extend(std::iter::repeat_n(0xee, 1 << 20));
        assert_eq!(copied_of(&answer, 1, 1000), (Err(BatchError::TrailingBytes { count: 1 }), valid));
        let long = encode_shard_batch([Some(&shard[..])]);
        let refused = BatchError::LongShard { index: 0, declared: 1000, expected: 999 };
        assert_eq!(copied_of(&long, 1, 999), (Err(refused), 4), "only the length prefix");
        let mut decoder = ShardBatchDecoder::new(1, 1000);
        decoder.push_from(valid, |at, into| into.copy_from_slice(&answer[at..at + into.len()])).unwrap();
        assert_eq!(decoder.finish().unwrap(), vec![Some(shard)]);
    }

    fn batch_of(shards: &[Option<&[u8]>], shard_len: usize) -> ShardBatch {
        let mut decoder = ShardBatchDecoder::new(shards.len(), shard_len);
        decoder.push(&encode_shard_batch(shards.iter().copied())).unwrap();
        decoder.finish_batch().unwrap()
    }

    #[test]
    fn whole_data_shards_are_the_sealed_chunk_and_anything_less_is_handed_back() {
        let sealed: Vec<u8> = (0..10).collect();
        let shards = crate::erasure::encode(&sealed, 4, 2).unwrap();
        let addresses: Vec<_> = shards.iter().map(|s| ShardAddress::of(s)).collect();
        let data: Vec<Option<&[u8]>> = shards[..4].iter().map(|s| Some(&s[..])).collect();
        assert_eq!(batch_of(&data, 3).into_sealed(&addresses[..4], 10), Ok(sealed.clone()));

        let mut damaged = shards[1].clone();
        damaged[0] ^= 1;
        let mut bad = data.clone();
        bad[1] = Some(&damaged);
        let back = batch_of(&bad, 3).into_sealed(&addresses[..4], 10).unwrap_err();
        assert_eq!(back.shard(1), Some(&damaged[..]), "the batch comes back as it arrived");
        let mut missing = data.clone();
        missing[3] = None;
        let back = batch_of(&missing, 3).into_sealed(&addresses[..4], 10).unwrap_err();
        assert_eq!(back.into_shards()[3], None);
        let short = [Some(&shards[0][..2]), data[1], data[2], data[3]];
        assert!(batch_of(&short, 3).into_sealed(&addresses[..4], 10).is_err(), "a short shard is not whole");
    }
}
