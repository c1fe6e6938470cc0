//! Where the accelerator keeps its records: users, sessions, login challenges, kv
//! values and each user's kv change log.
//!
//! [`Records`] is a synchronous trait so that a backend can be any blocking
//! database client; handlers call it through [`crate::server::AppState::records`],
//! which runs it on tokio's blocking pool. [`sqlite::SqliteRecords`] is the embedded
//! default; a PostgreSQL backend for several accelerators would implement the same
//! trait without touching the routes.
//!
//! Every kv method takes the user id first and every query is keyed by it, so one
//! user can never reach another's values.

pub mod sqlite;

use coffer_core::account::KdfParams;
use coffer_core::b64;
use coffer_core::proto::{ChangeEvent, ChangeOp, KvValue};

/// Why a store operation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// Sign-up with a username that already exists.
    UsernameTaken,
    /// The database failed; the text is for the log, not for clients.
    Backend(String),
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::UsernameTaken => f.write_str("username taken"),
            StoreError::Backend(detail) => write!(f, "database: {detail}"),
        }
    }
}

impl std::error::Error for StoreError {}

/// What a password gives the accelerator: everything needed to let a device
/// derive its keys again and prove it knows the password. None of it is secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// Argon2id salt, handed to any device that asks.
    pub salt: [u8; 16],
    /// Argon2id parameters used with the salt.
    pub kdf: KdfParams,
    /// Ed25519 public login key; login challenges are checked against it.
    pub login_public_key: [u8; 32],
    /// The root secret wrapped under the password's wrap key; opaque here.
    pub wrapped_root: Vec<u8>,
}

/// One account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Stable random id; bound into every kv envelope by the client.
    pub user_id: String,
    /// The name the user signs in with (unique).
    pub username: String,
    /// The current password's public material.
    pub credentials: Credentials,
    /// Sequence number of the user's latest kv change (0 before the first).
    pub kv_seq: u64,
}

/// A live session, found by the hash of its token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// Whose session it is.
    pub user_id: String,
    /// That user's current username, for the session answer and password checks.
    pub username: String,
    /// Sequence number of the user's latest kv change.
    pub kv_seq: u64,
    /// When the session stops working, milliseconds since the Unix epoch.
    pub expires_at_ms: u64,
}

/// A login challenge waiting for its one answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// Random id the client quotes back.
    pub challenge_id: String,
    /// The username it was issued for (known or not).
    pub username: String,
    /// The random bytes to sign.
    pub challenge: [u8; 32],
    /// When it stops being accepted, milliseconds since the Unix epoch.
    pub expires_at_ms: u64,
}

/// A kv value as stored: sealed bytes, or plaintext JSON with its MAC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoredValue {
    /// The decoded AES-256-GCM envelope; the accelerator cannot open it.
    Sealed(Vec<u8>),
    /// Plaintext JSON the user chose not to encrypt, and its MAC.
    Plain {
        /// The JSON text, verbatim.
        json: String,
        /// HMAC-SHA256 tag under the user's kv MAC key.
        mac: [u8; 32],
    },
}

impl StoredValue {
    /// The wire form.
    pub fn to_wire(&self) -> KvValue {
        match self {
            StoredValue::Sealed(bytes) => KvValue::Sealed { envelope: b64::encode(bytes) },
            StoredValue::Plain { json, mac } => KvValue::Plain { json: json.clone(), mac: b64::encode(mac) },
        }
    }
}

/// One entry of a user's change log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// Position in the user's log: 1, 2, 3, … with no gaps.
    pub seq: u64,
    /// Collection written.
    pub collection: String,
    /// Id written.
    pub id: String,
    /// The value set, or `None` for a delete.
    pub value: Option<StoredValue>,
}

impl Change {
    /// The wire form.
    pub fn to_event(&self) -> ChangeEvent {
        ChangeEvent {
            seq: self.seq,
            collection: self.collection.clone(),
            id: self.id.clone(),
            op: if self.value.is_some() { ChangeOp::Set } else { ChangeOp::Delete },
            value: self.value.as_ref().map(StoredValue::to_wire),
        }
    }
}

/// A slice of a user's change log, read in one consistent snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeWindow {
    /// The user's latest sequence number at the time of the read.
    pub head: u64,
    /// Retained changes after the requested sequence number, in order, at most the
    /// requested number. If the first one is not the one right after the requested
    /// sequence number, the ones between were pruned.
    pub changes: Vec<Change>,
}

/// The accelerator's records. Implementations must be safe to call from many
/// threads at once; each method is one transaction.
pub trait Records: Send + Sync + 'static {
    /// Creates an account; [`StoreError::UsernameTaken`] if the name exists.
    fn create_user(&self, user: &User) -> Result<(), StoreError>;

    /// Finds an account by username.
    fn user_by_name(&self, username: &str) -> Result<Option<User>, StoreError>;

    /// Replaces a user's credentials if the current login key is still
    /// `expected_public_key`, and revokes every session except `keep_session`.
    /// Returns `false` (changing nothing) if the key had already changed.
    fn replace_credentials(
        &self,
        user_id: &str,
        expected_public_key: &[u8; 32],
        new: &Credentials,
        keep_session: &[u8; 32],
    ) -> Result<bool, StoreError>;

    /// Records a session under the hash of its token, dropping expired ones.
    fn create_session(&self, token_hash: &[u8; 32], user_id: &str, expires_at_ms: u64, now_ms: u64)
    -> Result<(), StoreError>;

    /// The session with this token hash, if it exists and has not expired at `now_ms`.
    fn session(&self, token_hash: &[u8; 32], now_ms: u64) -> Result<Option<Session>, StoreError>;

    /// Revokes a session. Returns the user it belonged to, if any.
    fn delete_session(&self, token_hash: &[u8; 32]) -> Result<Option<String>, StoreError>;

    /// Records a challenge, dropping expired ones.
    fn create_challenge(&self, challenge: &Challenge, now_ms: u64) -> Result<(), StoreError>;

    /// Removes and returns a challenge: each is answered at most once.
    fn take_challenge(&self, challenge_id: &str) -> Result<Option<Challenge>, StoreError>;

    /// Reads one value.
    fn kv_get(&self, user_id: &str, collection: &str, id: &str) -> Result<Option<StoredValue>, StoreError>;

    /// Writes one value and appends the change to the log, in one transaction.
    /// Returns the change's sequence number.
    fn kv_set(&self, user_id: &str, collection: &str, id: &str, value: &StoredValue) -> Result<u64, StoreError>;

    /// Deletes one value; if it existed, appends the change to the log in the same
    /// transaction and returns its sequence number.
    fn kv_delete(&self, user_id: &str, collection: &str, id: &str) -> Result<Option<u64>, StoreError>;

    /// The ids in a collection, in byte order.
    fn kv_list(&self, user_id: &str, collection: &str) -> Result<Vec<String>, StoreError>;

    /// The user's latest sequence number and up to `limit` retained changes after `after`.
    fn changes_after(&self, user_id: &str, after: u64, limit: usize) -> Result<ChangeWindow, StoreError>;
}
