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
//! | `POST /v1/spaces/{space}/members/remove` | [`RemoveMemberRequest`] | 204 (owner only) |
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
//! length [`SHARD_ABSENT`] and nothing when the accelerator does not have it.

use serde::{Deserialize, Serialize};

use crate::shard::ShardAddress;

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
}

/// The caller's spaces.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SpaceListResponse {
    /// Oldest first.
    pub spaces: Vec<SpaceInfo>,
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
}

/// The members of a space.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MembersResponse {
    /// In joining order.
    pub members: Vec<Member>,
}

/// Removes a member (owners only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RemoveMemberRequest {
    /// The member's account id.
    pub user_id: String,
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
}

/// The files of a space.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileListResponse {
    /// Oldest first.
    pub files: Vec<FileEntry>,
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

/// Reads a batch-fetch answer for `count` requested shards (the reader's side).
/// `None` if it is cut short, too long or holds a shard over [`MAX_SHARD_BYTES`].
pub fn decode_shard_batch(mut bytes: &[u8], count: usize) -> Option<Vec<Option<Vec<u8>>>> {
    let mut out = Vec::with_capacity(count.min(MAX_BATCH_ADDRESSES));
    for _ in 0..count {
        let (len, rest) = bytes.split_first_chunk::<4>()?;
        let len = u32::from_be_bytes(*len);
        bytes = rest;
        if len == SHARD_ABSENT {
            out.push(None);
            continue;
        }
        let len = len as usize;
        if len > MAX_SHARD_BYTES || len > bytes.len() {
            return None;
        }
        let (shard, rest) = bytes.split_at(len);
        out.push(Some(shard.to_vec()));
        bytes = rest;
    }
    bytes.is_empty().then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_batches_round_trip_and_refuse_damage() {
        let a = vec![1u8, 2, 3];
        let batch = encode_shard_batch([Some(&a[..]), None, Some(&[][..])]);
        assert_eq!(decode_shard_batch(&batch, 3), Some(vec![Some(a.clone()), None, Some(vec![])]));
        assert_eq!(decode_shard_batch(&batch, 2), None, "trailing bytes");
        assert_eq!(decode_shard_batch(&batch, 4), None, "cut short");
        assert_eq!(decode_shard_batch(&batch[..5], 1), None, "shard cut short");
        assert_eq!(decode_shard_batch(&u32::MAX.to_be_bytes()[..3], 1), None);
    }
}
