//! Wire types: every JSON body the SDK and the accelerator exchange, and every
//! websocket frame. Both sides use these definitions, so they cannot drift.
//!
//! Binary fields travel as base64url without padding ([`crate::b64`]). Field names
//! are camelCase on the wire. Every route lives under `/v1`; a signed-in request
//! carries `Authorization: Bearer <token>` (never a token in a URL).
//!
//! | route | body | answer |
//! |---|---|---|
//! | `POST /v1/auth/salt` | [`SaltRequest`] | [`SaltResponse`] |
//! | `POST /v1/auth/signup` | [`SignUpRequest`] | [`SessionResponse`] |
//! | `POST /v1/auth/challenge` | [`ChallengeRequest`] | [`ChallengeResponse`] |
//! | `POST /v1/auth/login` | [`LoginRequest`] | [`SessionResponse`] |
//! | `GET /v1/auth/session` | — | [`SessionInfo`] |
//! | `POST /v1/auth/password` | [`ChangePasswordRequest`] | [`SessionInfo`] |
//! | `POST /v1/auth/signout` | — | 204 |
//! | `POST /v1/auth/public-key` | [`PublishKeyRequest`] | 204 |
//! | `POST /v1/auth/recovery` | [`SetRecoveryRequest`] | 204 |
//! | `POST /v1/auth/recover/challenge` | [`ChallengeRequest`] | [`RecoveryChallengeResponse`] |
//! | `POST /v1/auth/recover` | [`RecoverRequest`] | [`SessionResponse`] |
//! | `POST /v1/kv/set` | [`KvSetRequest`] | [`KvWriteResponse`] |
//! | `POST /v1/kv/get` | [`KvKeyRequest`] | [`KvGetResponse`] (`"value": null` if absent) |
//! | `POST /v1/kv/delete` | [`KvKeyRequest`] | [`KvDeleteResponse`] |
//! | `POST /v1/kv/list` | [`KvListRequest`] | [`KvListResponse`] |
//! | `GET /v1/kv/legacy` | — | [`KvLegacyResponse`] |
//! | `POST /v1/kv/rename` | [`KvRenameRequest`] | [`KvRenameResponse`] |
//! | `GET /v1/kv/feed` (websocket) | [`ClientFrame`]s | [`ServerFrame`]s |
//!
//! Any failure answers with the matching HTTP status and an [`ErrorBody`]. Shards,
//! spaces and files are in [`storage`]. What the SDK accepts as an answer — byte caps
//! per answer and list elements read one by one — is in [`answer`].

pub mod answer;
pub mod storage;

use serde::{Deserialize, Serialize};

use crate::ErrorCode;
use crate::account::KdfParams;

/// The body of every error answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Stable code to branch on.
    pub code: ErrorCode,
    /// What happened and what to do, for a person.
    pub message: String,
}

/// Asks for the salt and Argon2id parameters recorded for a username.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SaltRequest {
    /// The username to sign in as.
    pub username: String,
}

/// The salt and parameters to derive the password key with. For an unknown username
/// the accelerator answers with a stable, made-up salt, so the answer does not reveal
/// whether the username exists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SaltResponse {
    /// 16 bytes, base64url.
    pub salt: String,
    /// Argon2id parameters recorded at sign-up.
    pub kdf: KdfParams,
}

/// Creates an account. Everything secret was derived in the browser; the
/// accelerator receives only a public key and an opaque wrapped root secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SignUpRequest {
    /// The new username (see [`crate::validate::username`]).
    pub username: String,
    /// 16 random bytes, base64url.
    pub salt: String,
    /// Argon2id parameters used with the salt.
    pub kdf: KdfParams,
    /// Ed25519 public login key, 32 bytes, base64url.
    pub login_public_key: String,
    /// The root secret sealed under the wrap key (SPEC.md, "Wrapped root"), base64url.
    pub wrapped_root: String,
    /// The account's X25519 public key (SPEC.md §3.6), 32 bytes, base64url; others
    /// seal a space's new keys to it. Absent from older SDKs, which publish it later
    /// with [`PublishKeyRequest`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_public_key: Option<String>,
}

/// Publishes the account's X25519 public key (`POST /v1/auth/public-key`, bearer),
/// for an account made before keys were published: signed with the password's login
/// key over a fresh challenge and the key (SPEC.md §3.6), so a session token alone
/// cannot publish a key of its own. The key derives from the root secret, so it
/// never changes: the same key again is accepted, another one is `Conflict`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PublishKeyRequest {
    /// The accelerator's origin the signature binds, as in [`LoginRequest`].
    pub origin: String,
    /// A challenge obtained for this account's username.
    pub challenge_id: String,
    /// `account::publication_message` signed with the login key, 64 bytes, base64url.
    pub signature: String,
    /// 32 bytes, base64url.
    pub user_public_key: String,
}

/// Asks for a single-use login challenge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChallengeRequest {
    /// The username the challenge is for.
    pub username: String,
}

/// A fresh challenge to sign with the login key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChallengeResponse {
    /// Names the challenge in [`LoginRequest`]; single use.
    pub challenge_id: String,
    /// 32 random bytes, base64url.
    pub challenge: String,
    /// How long the challenge stays valid.
    pub expires_in_ms: u64,
    /// The accelerator's X25519 public key (SPEC.md §3.9), base64url: what a proof of
    /// the root is made to.
    #[serde(default)]
    pub server_public_key: String,
}

/// Proves knowledge of the password: the challenge signed by the login key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LoginRequest {
    /// The accelerator's origin the signature binds, as the client reached it
    /// (SPEC.md §3.3); the accelerator refuses one that is not its own.
    pub origin: String,
    /// From [`ChallengeResponse`].
    pub challenge_id: String,
    /// Ed25519 signature (SPEC.md, "Login signature"), 64 bytes, base64url.
    pub signature: String,
}

/// A new session, from sign-up or login.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionResponse {
    /// Bearer token for `Authorization`; the accelerator keeps only its hash.
    pub token: String,
    /// The account's stable id (bound into every kv envelope's AAD).
    pub user_id: String,
    /// The account's username.
    pub username: String,
    /// The wrapped root secret, base64url, for the device to unwrap.
    pub wrapped_root: String,
    /// The sequence number of the user's latest kv change (0 if none).
    pub kv_seq: u64,
    /// When the session expires, milliseconds since the Unix epoch.
    pub expires_at_ms: u64,
    /// The account's published X25519 public key; `null` until it is published.
    #[serde(default)]
    pub user_public_key: Option<String>,
}

/// What the accelerator knows about the current session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionInfo {
    /// The account's stable id.
    pub user_id: String,
    /// The account's username.
    pub username: String,
    /// The sequence number of the user's latest kv change.
    pub kv_seq: u64,
    /// When the session expires, milliseconds since the Unix epoch.
    pub expires_at_ms: u64,
    /// The account's published X25519 public key; `null` until it is published.
    #[serde(default)]
    pub user_public_key: Option<String>,
}

/// Replaces the password: a challenge signed with the *current* login key, and the
/// new salt, parameters, public key and wrapped root. Other sessions are revoked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChangePasswordRequest {
    /// The accelerator's origin the signature binds, as in [`LoginRequest`].
    pub origin: String,
    /// A challenge obtained for this user's username.
    pub challenge_id: String,
    /// The challenge signed with the current login key.
    pub signature: String,
    /// New 16-byte salt, base64url.
    pub salt: String,
    /// New Argon2id parameters.
    pub kdf: KdfParams,
    /// New Ed25519 public login key.
    pub login_public_key: String,
    /// The same root secret, wrapped under the new wrap key.
    pub wrapped_root: String,
}

/// Sets the account's recovery code (`POST /v1/auth/recovery`, bearer and a proof of
/// the root; SPEC.md §3.8–3.9): the recovery key's public half and the root wrapped
/// under the code's wrap key. It replaces the previous code, which stops working.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SetRecoveryRequest {
    /// The accelerator's origin the proof binds, as in [`LoginRequest`].
    pub origin: String,
    /// A challenge obtained for this account's username (`POST /v1/auth/challenge`).
    pub challenge_id: String,
    /// The proof that this device holds the account's root secret (SPEC.md §3.9),
    /// 32 bytes, base64url: a session token alone cannot set a recovery code.
    pub root_proof: String,
    /// Ed25519 public key of the code's recovery key, 32 bytes, base64url.
    pub recovery_public_key: String,
    /// The root secret wrapped under the code's wrap key (§3.4's format), base64url.
    pub wrapped_root: String,
}

/// A challenge for recovering `username` (`POST /v1/auth/recover/challenge`, body
/// [`ChallengeRequest`]), with the root as wrapped under the recovery code. For a
/// username that does not exist or has no code, the wrapped root is made up (stable
/// per username), so the answer does not tell.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecoveryChallengeResponse {
    /// Names the challenge in the [`RecoverRequest`]; single use.
    pub challenge_id: String,
    /// 32 random bytes, base64url.
    pub challenge: String,
    /// How long the challenge stays valid.
    pub expires_in_ms: u64,
    /// The root secret wrapped under the recovery code, base64url.
    pub wrapped_root: String,
}

/// Recovers an account (`POST /v1/auth/recover`, no bearer): the challenge signed
/// with the recovery key (§3.3's message), and a new password's salt, parameters,
/// login key and wrapped root, as in a password change. Every session of the
/// account is revoked; the answer is a new [`SessionResponse`].
pub type RecoverRequest = ChangePasswordRequest;

/// A kv value as stored and transported: sealed, or plaintext JSON with a MAC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum KvValue {
    /// AES-256-GCM envelope (SPEC.md, "Sealed kv value"), base64url.
    Sealed {
        /// The envelope bytes, base64url.
        envelope: String,
    },
    /// Plaintext JSON text, readable by anyone, with its MAC (SPEC.md, "Plain kv value").
    Plain {
        /// The JSON text, verbatim.
        json: String,
        /// HMAC-SHA256 tag, 32 bytes, base64url.
        mac: String,
    },
}

/// Writes one value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KvSetRequest {
    /// Collection name.
    pub collection: String,
    /// Id within the collection.
    pub id: String,
    /// The value, sealed or MAC'd by the client.
    pub value: KvValue,
}

/// Names one key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KvKeyRequest {
    /// Collection name.
    pub collection: String,
    /// Id within the collection.
    pub id: String,
}

/// Entries one page of a list answer holds at most: the accelerator's default and
/// its cap on `limit`. Every list route is paged (SPEC.md §7.4).
pub const MAX_PAGE_ENTRIES: u32 = 1000;

/// Which page of a list to answer: the query string of the `GET` list routes
/// (`?after=…&limit=…`), and the same fields in [`KvListRequest`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PageQuery {
    /// The previous page's `next`; absent for the first page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
    /// Entries wanted, 1 to [`MAX_PAGE_ENTRIES`] (the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

/// Names one collection, and the page of its ids wanted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KvListRequest {
    /// Collection name.
    pub collection: String,
    /// The page.
    #[serde(flatten)]
    pub page: PageQuery,
}

/// The answer to a write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KvWriteResponse {
    /// The change's sequence number in the user's change log.
    pub seq: u64,
}

/// The answer to a read. A missing key is an ordinary answer, not an error status,
/// so a browser does not log every `get` of an absent key as a failed request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KvGetResponse {
    /// The stored value; `None` (JSON `null`) when nothing is stored under the key.
    pub value: Option<KvValue>,
}

/// The answer to a delete.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KvDeleteResponse {
    /// Whether the key existed.
    pub existed: bool,
    /// The change's sequence number, when something was deleted.
    pub seq: Option<u64>,
}

/// One page of the ids in a collection, in byte order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KvListResponse {
    /// Ids, sorted.
    pub ids: Vec<String>,
    /// Where the next page starts (its `after`); `null` on the last page.
    #[serde(default)]
    pub next: Option<String>,
}

/// Keys a [`KvLegacyResponse`] holds at most, and renames a [`KvRenameRequest`] carries
/// at most.
pub const MAX_RENAMES: usize = 1000;

/// Stored value bytes a [`KvLegacyResponse`] page holds at most, past its first key:
/// the accelerator stops adding keys once their values reach this.
pub const MAX_LEGACY_PAGE_VALUE_BYTES: usize = 512 * 1024;

/// The first keys of the caller that are still stored under the names an SDK before
/// sealed names (SPEC.md §4.4) sent in the clear, each with its value: the SDK seals
/// a key's names only if the value opens under them, so an accelerator cannot have
/// it seal names of its choosing. Renaming them empties the list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KvLegacyResponse {
    /// At most [`MAX_RENAMES`] keys, ordered by collection, then id, whose values
    /// take at most [`MAX_LEGACY_PAGE_VALUE_BYTES`] past the first; empty when none
    /// is left.
    pub keys: Vec<KvLegacyKey>,
}

/// A legacy key and its value, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KvLegacyKey {
    /// Collection name, in plain text.
    pub collection: String,
    /// Id within the collection, in plain text.
    pub id: String,
    /// The stored value.
    pub value: KvValue,
}

/// One key to move from its legacy names to its sealed names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KvRename {
    /// The legacy key, as [`KvLegacyResponse`] named it.
    pub from: KvKeyRequest,
    /// The same key under sealed names.
    pub to: KvKeyRequest,
}

/// Moves legacy keys to their sealed names (`POST /v1/kv/rename`), at most
/// [`MAX_RENAMES`]. Each `from` that is a legacy key of the caller is renamed with its
/// value and its change-log entry (same sequence number, no new change); if `to` is
/// already taken the legacy key is dropped instead, the newer sealed one standing.
/// A `from` that is absent or not legacy is skipped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KvRenameRequest {
    /// The renames, applied in one transaction.
    pub renames: Vec<KvRename>,
}

/// What a [`KvRenameRequest`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KvRenameResponse {
    /// Legacy keys moved to their sealed names.
    pub renamed: u32,
    /// Legacy keys dropped because their sealed names were taken.
    pub dropped: u32,
}

/// What kind of change a [`ChangeEvent`] records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ChangeOp {
    /// A value was written.
    Set,
    /// A value was deleted.
    Delete,
}

/// One entry of a user's kv change log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChangeEvent {
    /// Position in the user's change log; consecutive, starting at 1.
    pub seq: u64,
    /// Collection name.
    pub collection: String,
    /// Id within the collection.
    pub id: String,
    /// Set or delete.
    pub op: ChangeOp,
    /// The value written (for `set`), `None` for `delete`.
    pub value: Option<KvValue>,
}

/// Frames the client sends on the change feed websocket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum ClientFrame {
    /// Must be the first frame: authenticates and says where to resume.
    #[serde(rename_all = "camelCase")]
    Auth {
        /// The session token.
        token: String,
        /// The last sequence number the client has seen; changes after it are
        /// replayed. `None` starts at the current head.
        since: Option<u64>,
    },
}

/// Frames the accelerator sends on the change feed websocket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum ServerFrame {
    /// Authenticated; replay (if any) follows. `seq` is the head at this moment.
    Ready {
        /// The user's latest sequence number.
        seq: u64,
    },
    /// One change, in sequence order, with no gaps.
    Change(ChangeEvent),
    /// The client is too far behind the retained log: reload everything, then carry
    /// on from `seq`. Live changes after `seq` follow on the same socket.
    Resync {
        /// The head to continue from.
        seq: u64,
    },
    /// The feed cannot continue (e.g. the session was revoked); the socket closes.
    Error(ErrorBody),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_have_their_documented_shape() {
        let auth = ClientFrame::Auth { token: "t".into(), since: Some(3) };
        assert_eq!(serde_json::to_string(&auth).unwrap(), r#"{"type":"auth","token":"t","since":3}"#);
        let change = ServerFrame::Change(ChangeEvent {
            seq: 4,
            collection: "todos".into(),
            id: "t1".into(),
            op: ChangeOp::Delete,
            value: None,
        });
        assert_eq!(
            serde_json::to_string(&change).unwrap(),
            r#"{"type":"change","seq":4,"collection":"todos","id":"t1","op":"delete","value":null}"#
        );
        let plain = KvValue::Plain { json: "1".into(), mac: "m".into() };
        assert_eq!(serde_json::to_string(&plain).unwrap(), r#"{"kind":"plain","json":"1","mac":"m"}"#);
    }
}
